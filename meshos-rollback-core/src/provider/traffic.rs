//! [`TrafficShifter`]: move load-balancer traffic back to the stable target.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{display_mock, string_id};
use crate::Result;

string_id!(
    /// A route whose traffic is split between targets: an ALB listener ARN, an
    /// ingress or mesh route name.
    RouteId
);
string_id!(
    /// A group of backends traffic is sent to: an ALB target-group ARN, a service name.
    TargetId
);

/// What a [`TrafficShifter`] can do; checked before a plan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TrafficCapabilities {
    /// `set_weights` with several non-zero weights works.
    pub weighted: bool,
    /// `target_health` works.
    pub target_health: bool,
}

/// One target's share of a route's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TargetWeight {
    /// The target.
    pub target: TargetId,
    /// Its weight; shares are weights over their sum.
    pub weight: u32,
}

impl TargetWeight {
    /// A target and its weight.
    pub fn new(target: impl Into<TargetId>, weight: u32) -> Self {
        TargetWeight {
            target: target.into(),
            weight,
        }
    }
}

/// The share of traffic `target` receives under `weights`, from 0.0 to 1.0.
pub fn traffic_share(weights: &[TargetWeight], target: &TargetId) -> f64 {
    let total: u64 = weights.iter().map(|w| u64::from(w.weight)).sum();
    if total == 0 {
        return 0.0;
    }
    let mine: u64 = weights
        .iter()
        .filter(|w| &w.target == target)
        .map(|w| u64::from(w.weight))
        .sum();
    mine as f64 / total as f64
}

/// A backend that is not healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnhealthyBackend {
    /// The backend (instance id and port, IP).
    pub id: String,
    /// Its state, such as `unhealthy`, `draining`, `initial`.
    pub state: String,
    /// The backend's reason, when given.
    pub reason: Option<String>,
}

/// The health of a target's registered backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetHealth {
    /// The target.
    pub target: TargetId,
    /// Backends that are healthy.
    pub healthy: Vec<String>,
    /// Backends that are not, with why.
    pub unhealthy: Vec<UnhealthyBackend>,
}

impl TargetHealth {
    /// At least one backend is registered and every one is healthy.
    pub fn all_healthy(&self) -> bool {
        !self.healthy.is_empty() && self.unhealthy.is_empty()
    }
}

impl fmt::Display for TargetHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} healthy, {} not",
            self.target,
            self.healthy.len(),
            self.unhealthy.len()
        )?;
        for u in &self.unhealthy {
            write!(f, "; {} {}", u.id, u.state)?;
            if let Some(r) = &u.reason {
                write!(f, " ({r})")?;
            }
        }
        Ok(())
    }
}

/// Splits a route's traffic between targets (an ALB listener's forward action).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TrafficShifter: fmt::Debug + fmt::Display + Send + Sync {
    /// What this shifter can do.
    fn capabilities(&self) -> TrafficCapabilities;

    /// The route's current weights, one per target it forwards to.
    async fn weights(&self, route: &RouteId) -> Result<Vec<TargetWeight>>;

    /// Sends all of the route's traffic to `target` (the playbook's
    /// `modify-listener --default-actions Type=forward,TargetGroupArn=STABLE`).
    async fn shift_all_to(&self, route: &RouteId, target: &TargetId) -> Result<()>;

    /// Sets the route's weights. Weights must not all be zero.
    async fn set_weights(&self, route: &RouteId, weights: &[TargetWeight]) -> Result<()>;

    /// The health of the target's registered backends.
    async fn target_health(&self, target: &TargetId) -> Result<TargetHealth>;
}

display_mock!(MockTrafficShifter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_weight_over_total() {
        let w = [
            TargetWeight::new("stable", 90),
            TargetWeight::new("canary", 10),
        ];
        assert_eq!(traffic_share(&w, &"stable".into()), 0.9);
        assert_eq!(traffic_share(&w, &"other".into()), 0.0);
        assert_eq!(traffic_share(&[], &"stable".into()), 0.0);
    }
}
