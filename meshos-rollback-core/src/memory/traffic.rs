//! An in-memory [`TrafficShifter`]: listeners with weighted targets and backend health.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::model::Region;
use crate::provider::{
    RouteId, TargetHealth, TargetId, TargetWeight, TrafficCapabilities, TrafficShifter,
    UnhealthyBackend,
};
use crate::{Error, Result};

/// The largest weight, as on an ALB listener.
pub const MAX_TARGET_WEIGHT: u32 = 999;

/// A region's load balancer in memory: routes (listeners) forwarding to weighted
/// targets (target groups) whose backends have a health state. Validates like an
/// ALB: weights 0..=999, known targets only, not all zero, no duplicates.
#[derive(Debug)]
pub struct InMemoryTrafficShifter {
    region: Region,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    routes: BTreeMap<RouteId, Vec<TargetWeight>>,
    targets: BTreeMap<TargetId, BTreeMap<String, Backend>>,
}

#[derive(Debug, Clone)]
struct Backend {
    state: String,
    reason: Option<String>,
}

impl InMemoryTrafficShifter {
    /// A load balancer with no routes or targets.
    pub fn new(region: Region) -> Self {
        InMemoryTrafficShifter {
            region,
            state: Mutex::new(State::default()),
        }
    }

    /// Adds a target with healthy backends.
    pub fn add_target(&self, target: impl Into<TargetId>, backends: &[&str]) {
        let backends = backends
            .iter()
            .map(|b| {
                (
                    (*b).to_owned(),
                    Backend {
                        state: "healthy".into(),
                        reason: None,
                    },
                )
            })
            .collect();
        self.lock().targets.insert(target.into(), backends);
    }

    /// Sets a backend's health state (`healthy`, `unhealthy`, `draining`, …).
    pub fn set_backend_health(
        &self,
        target: &TargetId,
        backend: &str,
        state: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let mut st = self.lock();
        let backends = st
            .targets
            .get_mut(target)
            .ok_or_else(|| Error::not_found(self, format!("target {target}")))?;
        backends.insert(
            backend.to_owned(),
            Backend {
                state: state.to_owned(),
                reason: reason.map(str::to_owned),
            },
        );
        Ok(())
    }

    /// Adds a route with its weights.
    pub fn add_route(&self, route: impl Into<RouteId>, weights: &[TargetWeight]) -> Result<()> {
        let mut st = self.lock();
        self.validate(&st, weights)?;
        st.routes.insert(route.into(), weights.to_vec());
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("lock")
    }

    fn validate(&self, st: &State, weights: &[TargetWeight]) -> Result<()> {
        if weights.is_empty() {
            return Err(Error::invalid("weights", "at least one target is needed"));
        }
        for (i, w) in weights.iter().enumerate() {
            if w.weight > MAX_TARGET_WEIGHT {
                return Err(Error::invalid(
                    format!("weights[{i}].weight"),
                    format!("{} is above the maximum {MAX_TARGET_WEIGHT}", w.weight),
                ));
            }
            if !st.targets.contains_key(&w.target) {
                return Err(Error::not_found(self, format!("target {}", w.target)));
            }
            if weights[..i].iter().any(|o| o.target == w.target) {
                return Err(Error::invalid(
                    format!("weights[{i}].target"),
                    format!("{} is listed twice", w.target),
                ));
            }
        }
        if weights.iter().all(|w| w.weight == 0) {
            return Err(Error::invalid(
                "weights",
                "all weights are zero: the route would drop all traffic",
            ));
        }
        Ok(())
    }
}

impl fmt::Display for InMemoryTrafficShifter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InMemoryTrafficShifter({})", self.region)
    }
}

#[async_trait]
impl TrafficShifter for InMemoryTrafficShifter {
    fn capabilities(&self) -> TrafficCapabilities {
        TrafficCapabilities {
            weighted: true,
            target_health: true,
        }
    }

    async fn weights(&self, route: &RouteId) -> Result<Vec<TargetWeight>> {
        self.lock()
            .routes
            .get(route)
            .cloned()
            .ok_or_else(|| Error::not_found(self, format!("route {route}")))
    }

    async fn shift_all_to(&self, route: &RouteId, target: &TargetId) -> Result<()> {
        let mut st = self.lock();
        if !st.routes.contains_key(route) {
            return Err(Error::not_found(self, format!("route {route}")));
        }
        let single = [TargetWeight::new(target.clone(), 1)];
        self.validate(&st, &single)?;
        st.routes.insert(route.clone(), single.to_vec());
        Ok(())
    }

    async fn set_weights(&self, route: &RouteId, weights: &[TargetWeight]) -> Result<()> {
        let mut st = self.lock();
        if !st.routes.contains_key(route) {
            return Err(Error::not_found(self, format!("route {route}")));
        }
        self.validate(&st, weights)?;
        st.routes.insert(route.clone(), weights.to_vec());
        Ok(())
    }

    async fn target_health(&self, target: &TargetId) -> Result<TargetHealth> {
        let st = self.lock();
        let backends = st
            .targets
            .get(target)
            .ok_or_else(|| Error::not_found(self, format!("target {target}")))?;
        let mut health = TargetHealth {
            target: target.clone(),
            healthy: Vec::new(),
            unhealthy: Vec::new(),
        };
        for (id, b) in backends {
            if b.state == "healthy" {
                health.healthy.push(id.clone());
            } else {
                health.unhealthy.push(UnhealthyBackend {
                    id: id.clone(),
                    state: b.state.clone(),
                    reason: b.reason.clone(),
                });
            }
        }
        Ok(health)
    }
}
