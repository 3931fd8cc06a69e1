//! An in-memory [`MetricsSource`]: scripted series, or metrics that follow the
//! revision a service is serving.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use super::InMemoryDeployer;
use crate::clock::SharedClock;
use crate::model::{RevisionId, ServiceRef};
use crate::observation::Metrics;
use crate::provider::{MetricsPoint, MetricsSource, TimeRange};
use crate::{Error, Result};

/// Metrics in memory. A service's metrics come from, in order:
/// 1. its revision profiles, when linked to a deployer: the metrics of the revision
///    serving at that time (a bad release breaches until rolled back);
/// 2. its scripted series: the newest point at or before that time;
/// 3. nothing: every value `None`, as an empty Prometheus result.
#[derive(Debug)]
pub struct InMemoryMetrics {
    clock: SharedClock,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    series: HashMap<ServiceRef, Vec<(Timestamp, Metrics)>>,
    linked: HashMap<ServiceRef, Linked>,
    baselines: HashMap<ServiceRef, Metrics>,
}

#[derive(Debug)]
struct Linked {
    deployer: Arc<InMemoryDeployer>,
    profiles: HashMap<RevisionId, Metrics>,
}

impl InMemoryMetrics {
    /// No metrics for anything yet.
    pub fn new(clock: SharedClock) -> Self {
        InMemoryMetrics {
            clock,
            state: Mutex::new(State::default()),
        }
    }

    /// Adds a point to a service's scripted series.
    pub fn record(&self, service: &ServiceRef, at: Timestamp, metrics: Metrics) {
        let mut st = self.lock();
        let series = st.series.entry(service.clone()).or_default();
        series.push((at, metrics));
        series.sort_by_key(|(t, _)| *t);
    }

    /// Sets a service's baseline.
    pub fn set_baseline(&self, service: &ServiceRef, metrics: Metrics) {
        self.lock().baselines.insert(service.clone(), metrics);
    }

    /// Makes a service's metrics follow the revision `deployer` serves: `profiles`
    /// gives the metrics of each revision id or image (a revision derived by
    /// `set_env`/`set_image` is looked up by its image, then by the id it came from).
    pub fn link_revisions(
        &self,
        service: &ServiceRef,
        deployer: Arc<InMemoryDeployer>,
        profiles: impl IntoIterator<Item = (RevisionId, Metrics)>,
    ) {
        self.lock().linked.insert(
            service.clone(),
            Linked {
                deployer,
                profiles: profiles.into_iter().collect(),
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("lock")
    }

    fn at(&self, st: &State, service: &ServiceRef, t: Timestamp) -> Metrics {
        if let Some(l) = st.linked.get(service) {
            let Some(rev) = l.deployer.serving_revision_at(&service.service, t) else {
                return Metrics::default();
            };
            // A revision derived by set_env/set_image (`v2.4.9+1`) behaves like the
            // image it runs, or else like the revision it was derived from.
            let image = l
                .deployer
                .revision(&service.service, &rev)
                .and_then(|r| r.image)
                .map(RevisionId::new);
            let root = RevisionId::new(rev.as_str().split('+').next().unwrap_or(rev.as_str()));
            return [Some(rev), image, Some(root)]
                .into_iter()
                .flatten()
                .find_map(|id| l.profiles.get(&id).copied())
                .unwrap_or_default();
        }
        st.series
            .get(service)
            .and_then(|s| s.iter().rev().find(|(at, _)| *at <= t))
            .map(|(_, m)| *m)
            .unwrap_or_default()
    }
}

impl fmt::Display for InMemoryMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemoryMetrics")
    }
}

#[async_trait]
impl MetricsSource for InMemoryMetrics {
    async fn observe(&self, service: &ServiceRef, _window: Duration) -> Result<Metrics> {
        let now = self.clock.now();
        let st = self.lock();
        Ok(self.at(&st, service, now))
    }

    async fn baseline(&self, service: &ServiceRef, _window: Duration) -> Result<Metrics> {
        Ok(self
            .lock()
            .baselines
            .get(service)
            .copied()
            .unwrap_or_default())
    }

    async fn observe_range(
        &self,
        service: &ServiceRef,
        _window: Duration,
        range: &TimeRange,
    ) -> Result<Vec<MetricsPoint>> {
        if range.step.is_zero() {
            return Err(Error::invalid("range.step", "must be longer than zero"));
        }
        if range.start > range.end {
            return Err(Error::invalid("range.start", "must not be after range.end"));
        }
        let step = SignedDuration::try_from(range.step)
            .map_err(|_| Error::invalid("range.step", "too long"))?;
        let st = self.lock();
        let mut out = Vec::new();
        let mut t = range.start;
        while t <= range.end {
            out.push(MetricsPoint {
                at: t,
                metrics: self.at(&st, service, t),
            });
            t = match t.checked_add(step) {
                Ok(next) => next,
                Err(_) => break,
            };
        }
        Ok(out)
    }
}
