//! Verification steps: the region's own checks, and the regions not rolled back.
//!
//! Idempotency: they only read, so a repeat checks again.

use super::{StepCtx, StepFailure};
use crate::Error;
use crate::engine::journal::StepOutcome;
use crate::engine::plan::VerificationChecks;
use crate::engine::verify;
use crate::model::{ServiceId, ServiceRef};

type StepResult = std::result::Result<StepOutcome, StepFailure>;

pub(super) async fn verify(
    ctx: &StepCtx<'_>,
    service: &ServiceId,
    checks: &VerificationChecks,
) -> StepResult {
    let sref = ServiceRef::new(ctx.region.clone(), service.clone());
    let outcome =
        verify::verify(ctx.providers, checks, ctx.plan.policy(), ctx.clock, &sref).await?;
    if outcome.passed {
        Ok(StepOutcome::Verified { outcome })
    } else {
        Err(StepFailure {
            error: Error::failed(format!("verification of {sref}"), outcome.headline()),
            detail: Some(StepOutcome::Verified { outcome }),
        })
    }
}

pub(super) async fn check_others(ctx: &StepCtx<'_>, services: &[ServiceRef]) -> StepResult {
    let (lines, problems) = verify::check_others(
        ctx.providers,
        ctx.plan.verification(),
        ctx.plan.policy(),
        services,
    )
    .await?;
    let outcome = StepOutcome::OtherRegionsChecked { regions: lines };
    if problems.is_empty() {
        Ok(outcome)
    } else {
        Err(StepFailure {
            error: Error::failed("other regions", problems.join("; ")),
            detail: Some(outcome),
        })
    }
}
