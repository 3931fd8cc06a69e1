//! DNS steps: exclude a region (weight 0), re-admit it, point a record elsewhere.
//!
//! Idempotency: each is an UPSERT of an explicit value (weight 0, the planned weight,
//! the planned target), so a repeat writes the same value again and changes nothing.

use super::{StepCtx, StepFailure};
use crate::Error;
use crate::engine::journal::{PreState, StepOutcome};
use crate::engine::plan::Step;
use crate::provider::DnsTarget;

type StepResult = std::result::Result<StepOutcome, StepFailure>;

pub(super) async fn exclude_pre_state(
    ctx: &StepCtx<'_>,
    record: &str,
) -> crate::Result<Option<PreState>> {
    let dns = ctx
        .providers
        .dns
        .as_ref()
        .ok_or_else(|| ctx.missing("dns"))?;
    let weights = dns.region_weights(record).await?;
    let w = weights
        .iter()
        .find(|w| &w.region == ctx.region)
        .ok_or_else(|| {
            Error::not_found(
                dns,
                format!("a weighted record for {} in {record}", ctx.region),
            )
        })?;
    Ok(Some(PreState::RegionWeight(w.weight)))
}

pub(super) async fn exclude(ctx: &StepCtx<'_>, record: &str, pre: Option<&PreState>) -> StepResult {
    let dns = ctx
        .providers
        .dns
        .as_ref()
        .ok_or_else(|| ctx.missing("dns"))?;
    let Some(PreState::RegionWeight(previous_weight)) = pre else {
        return Err(Error::precondition(
            "pre_state",
            "the weight before exclusion was not recorded",
        )
        .into());
    };
    let change = dns.set_region_weight(record, ctx.region, 0).await?;
    dns.wait_in_sync(&change).await?;
    Ok(StepOutcome::Excluded {
        previous_weight: *previous_weight,
        change,
    })
}

/// Re-admits at the weight the region had when this run excluded it; if that was 0
/// (it was already out), at the weight the plan resolved, which is never 0.
pub(super) async fn readmit(ctx: &StepCtx<'_>, record: &str, planned: u32) -> StepResult {
    let dns = ctx
        .providers
        .dns
        .as_ref()
        .ok_or_else(|| ctx.missing("dns"))?;
    let recorded = match ctx
        .outcome_of(|s| matches!(s, Step::ExcludeRegion { record: r, .. } if r == record))
    {
        Some(StepOutcome::Excluded {
            previous_weight, ..
        }) => *previous_weight,
        _ => {
            return Err(Error::precondition(
                "readmit",
                format!(
                    "{} was not excluded by this run, so there is nothing to re-admit",
                    ctx.region
                ),
            )
            .into());
        }
    };
    let weight = if recorded > 0 { recorded } else { planned };
    if weight == 0 {
        return Err(Error::precondition(
            "readmit_weight",
            "re-admitting at weight 0 would leave the region out of routing; set readmit_weight",
        )
        .into());
    }
    let change = dns.set_region_weight(record, ctx.region, weight).await?;
    dns.wait_in_sync(&change).await?;
    Ok(StepOutcome::Readmitted { weight })
}

pub(super) async fn point_pre_state(
    ctx: &StepCtx<'_>,
    record: &str,
) -> crate::Result<Option<PreState>> {
    let dns = ctx
        .providers
        .dns
        .as_ref()
        .ok_or_else(|| ctx.missing("dns"))?;
    Ok(Some(PreState::DnsRecord(dns.record(record).await?)))
}

pub(super) async fn point(
    ctx: &StepCtx<'_>,
    record: &str,
    target: &DnsTarget,
    pre: Option<&PreState>,
) -> StepResult {
    let dns = ctx
        .providers
        .dns
        .as_ref()
        .ok_or_else(|| ctx.missing("dns"))?;
    let change = dns.point_record(record, target).await?;
    dns.wait_in_sync(&change).await?;
    Ok(StepOutcome::DnsPointed {
        previous: match pre {
            Some(PreState::DnsRecord(r)) => r.clone(),
            _ => None,
        },
        change,
    })
}
