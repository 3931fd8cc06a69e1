//! The load-balancer shift: all traffic to the stable target, health confirmed.
//!
//! Idempotency: "all to stable" is an absolute setting; a repeat sets the same weights.
//! The weights before the first attempt are the recorded pre-state, not re-read.

use super::{StepCtx, StepFailure};
use crate::Error;
use crate::engine::journal::{PreState, StepOutcome};
use crate::provider::{RouteId, TargetId, traffic_share};

pub(super) async fn pre_state(
    ctx: &StepCtx<'_>,
    route: &RouteId,
) -> crate::Result<Option<PreState>> {
    let t = ctx
        .region_providers()?
        .traffic
        .as_ref()
        .ok_or_else(|| ctx.missing("traffic"))?;
    Ok(Some(PreState::Weights(t.weights(route).await?)))
}

pub(super) async fn shift(
    ctx: &StepCtx<'_>,
    route: &RouteId,
    stable: &TargetId,
    pre: Option<&PreState>,
) -> std::result::Result<StepOutcome, StepFailure> {
    let t = ctx
        .region_providers()?
        .traffic
        .as_ref()
        .ok_or_else(|| ctx.missing("traffic"))?;
    let before = t.target_health(stable).await?;
    if before.healthy.is_empty() {
        return Err(Error::failed(
            t,
            format!(
                "refusing to shift all traffic to {stable}: it has no healthy backend ({before})"
            ),
        )
        .into());
    }
    t.shift_all_to(route, stable).await?;
    let weights = t.weights(route).await?;
    // No weights: the route forwards nowhere (an ALB listener that only redirects or
    // answers fixed responses), so no traffic reaches the bad version.
    if !weights.is_empty() && traffic_share(&weights, stable) < 1.0 {
        return Err(Error::failed(
            t,
            format!("after the shift {stable} gets only part of the traffic: {weights:?}"),
        )
        .into());
    }
    let health = t.target_health(stable).await?;
    let outcome = StepOutcome::TrafficShifted {
        previous: match pre {
            Some(PreState::Weights(w)) => w.clone(),
            _ => Vec::new(),
        },
        health: health.clone(),
    };
    if !health.all_healthy() {
        return Err(StepFailure {
            error: Error::failed(
                t,
                format!("traffic is on {stable}, but not every backend is healthy: {health}"),
            ),
            detail: Some(outcome),
        });
    }
    Ok(outcome)
}
