//! [`Layered`]: a provider with a layer around every method.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;

use super::{Layer, Operation};
use crate::Result;
use crate::model::{Region, RevisionHistory, RollbackTarget, ServiceId, ServiceRef};
use crate::observation::Metrics;
use crate::provider::*;

/// A provider `P` (such as `dyn Deployer`) with the layer `L` around every call.
/// It implements the same trait as `P`, and `Display`s as `P` does.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use meshos_rollback_core::clock::SystemClock;
/// use meshos_rollback_core::layer::{Layered, RetryBudget, RetryLayer, RetryPolicy, TimeoutLayer, standard_stack};
/// use meshos_rollback_core::memory::InMemoryDeployer;
/// use meshos_rollback_core::model::Region;
/// use meshos_rollback_core::provider::Deployer;
///
/// let budget = RetryBudget::new(20, 0.1); // shared by every region
/// let inner: Arc<dyn Deployer> =
///     Arc::new(InMemoryDeployer::new(Region::new("us-east-1").unwrap(), Arc::new(SystemClock)));
/// let redactor = meshos_rollback_core::redact::Redactor::new(); // share with the engine
/// let layer = standard_stack(RetryLayer::new(RetryPolicy::default(), budget), TimeoutLayer::standard(), &redactor);
/// let deployer: Arc<dyn Deployer> = Arc::new(Layered::new(inner, layer));
/// assert_eq!(deployer.to_string(), "InMemoryDeployer(us-east-1)");
/// ```
pub struct Layered<P: ?Sized, L> {
    inner: Arc<P>,
    layer: L,
}

impl<P: ?Sized, L> Layered<P, L> {
    /// Wraps `inner` in `layer`.
    pub fn new(inner: Arc<P>, layer: L) -> Self {
        Layered { inner, layer }
    }

    /// The wrapped provider.
    pub fn inner(&self) -> &Arc<P> {
        &self.inner
    }
}

impl<P: ?Sized + fmt::Display, L> fmt::Display for Layered<P, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl<P: ?Sized + fmt::Debug, L: fmt::Debug> fmt::Debug for Layered<P, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layered")
            .field("inner", &&*self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

/// Runs one call of `self.inner` through `self.layer`.
macro_rules! through {
    ($self:ident, $name:literal, $idempotent:expr, |$inner:ident| $call:expr) => {{
        let op = Operation {
            provider: &$self.inner,
            name: $name,
            idempotent: $idempotent,
        };
        let $inner = &$self.inner;
        $self.layer.call(&op, || $call).await
    }};
}

#[async_trait]
impl<L: Layer> Deployer for Layered<dyn Deployer, L> {
    fn capabilities(&self) -> DeployerCapabilities {
        self.inner.capabilities()
    }
    async fn revisions(&self, service: &ServiceId) -> Result<RevisionHistory> {
        through!(self, "revisions", true, |p| p.revisions(service))
    }
    async fn roll_back(
        &self,
        service: &ServiceId,
        target: &RollbackTarget,
    ) -> Result<RevisionChange> {
        // "Previous" moves again on every call: never repeat it.
        let idempotent = matches!(target, RollbackTarget::Revision(_));
        through!(self, "roll_back", idempotent, |p| p
            .roll_back(service, target))
    }
    async fn rollout_status(&self, service: &ServiceId) -> Result<RolloutStatus> {
        through!(self, "rollout_status", true, |p| p.rollout_status(service))
    }
    async fn wait_until_stable(&self, service: &ServiceId) -> Result<RolloutStatus> {
        through!(self, "wait_until_stable", true, |p| p
            .wait_until_stable(service))
    }
    async fn set_env(&self, service: &ServiceId, var: &EnvVar) -> Result<RevisionChange> {
        through!(self, "set_env", true, |p| p.set_env(service, var))
    }
    async fn set_image(&self, service: &ServiceId, update: &ImageUpdate) -> Result<RevisionChange> {
        through!(self, "set_image", true, |p| p.set_image(service, update))
    }
    async fn instances(&self, service: &ServiceId) -> Result<Vec<Instance>> {
        through!(self, "instances", true, |p| p.instances(service))
    }
}

#[async_trait]
impl<L: Layer> TrafficShifter for Layered<dyn TrafficShifter, L> {
    fn capabilities(&self) -> TrafficCapabilities {
        self.inner.capabilities()
    }
    async fn weights(&self, route: &RouteId) -> Result<Vec<TargetWeight>> {
        through!(self, "weights", true, |p| p.weights(route))
    }
    async fn shift_all_to(&self, route: &RouteId, target: &TargetId) -> Result<()> {
        through!(self, "shift_all_to", true, |p| p
            .shift_all_to(route, target))
    }
    async fn set_weights(&self, route: &RouteId, weights: &[TargetWeight]) -> Result<()> {
        through!(self, "set_weights", true, |p| p.set_weights(route, weights))
    }
    async fn target_health(&self, target: &TargetId) -> Result<TargetHealth> {
        through!(self, "target_health", true, |p| p.target_health(target))
    }
}

#[async_trait]
impl<L: Layer> DnsSwitcher for Layered<dyn DnsSwitcher, L> {
    fn capabilities(&self) -> DnsCapabilities {
        self.inner.capabilities()
    }
    async fn record(&self, name: &str) -> Result<Option<DnsTarget>> {
        through!(self, "record", true, |p| p.record(name))
    }
    async fn point_record(&self, name: &str, target: &DnsTarget) -> Result<ChangeId> {
        through!(self, "point_record", true, |p| p.point_record(name, target))
    }
    async fn change_status(&self, change: &ChangeId) -> Result<ChangeStatus> {
        through!(self, "change_status", true, |p| p.change_status(change))
    }
    async fn wait_in_sync(&self, change: &ChangeId) -> Result<()> {
        through!(self, "wait_in_sync", true, |p| p.wait_in_sync(change))
    }
    async fn region_weights(&self, name: &str) -> Result<Vec<RegionWeight>> {
        through!(self, "region_weights", true, |p| p.region_weights(name))
    }
    async fn set_region_weight(
        &self,
        name: &str,
        region: &Region,
        weight: u32,
    ) -> Result<ChangeId> {
        through!(self, "set_region_weight", true, |p| p
            .set_region_weight(name, region, weight))
    }
}

#[async_trait]
impl<L: Layer> DbRestorer for Layered<dyn DbRestorer, L> {
    fn capabilities(&self) -> DbCapabilities {
        self.inner.capabilities()
    }
    async fn snapshots(&self, instance: &DbInstanceId) -> Result<Vec<Snapshot>> {
        through!(self, "snapshots", true, |p| p.snapshots(instance))
    }
    async fn restore_window(&self, instance: &DbInstanceId) -> Result<RestoreWindow> {
        through!(self, "restore_window", true, |p| p.restore_window(instance))
    }
    async fn restore_snapshot(
        &self,
        snapshot: &SnapshotId,
        target: &DbInstanceId,
        tags: &ResourceTags,
    ) -> Result<DbInstance> {
        // A lost answer plus a retry would meet its own new instance as a conflict;
        // the engine adopts an existing target on resume instead (by its tags).
        through!(self, "restore_snapshot", false, |p| p
            .restore_snapshot(snapshot, target, tags))
    }
    async fn restore_to_point_in_time(
        &self,
        source: &DbInstanceId,
        target: &DbInstanceId,
        point: &RestorePoint,
        tags: &ResourceTags,
    ) -> Result<DbInstance> {
        through!(self, "restore_to_point_in_time", false, |p| p
            .restore_to_point_in_time(source, target, point, tags))
    }
    async fn instance(&self, id: &DbInstanceId) -> Result<DbInstance> {
        through!(self, "instance", true, |p| p.instance(id))
    }
    async fn wait_available(&self, id: &DbInstanceId) -> Result<DbInstance> {
        through!(self, "wait_available", true, |p| p.wait_available(id))
    }
}

#[async_trait]
impl<L: Layer> MetricsSource for Layered<dyn MetricsSource, L> {
    async fn observe(&self, service: &ServiceRef, window: Duration) -> Result<Metrics> {
        through!(self, "observe", true, |p| p.observe(service, window))
    }
    async fn baseline(&self, service: &ServiceRef, window: Duration) -> Result<Metrics> {
        through!(self, "baseline", true, |p| p.baseline(service, window))
    }
    async fn observe_range(
        &self,
        service: &ServiceRef,
        window: Duration,
        range: &TimeRange,
    ) -> Result<Vec<MetricsPoint>> {
        through!(self, "observe_range", true, |p| p
            .observe_range(service, window, range))
    }
}

#[async_trait]
impl<L: Layer> HealthChecker for Layered<dyn HealthChecker, L> {
    async fn check(&self, endpoint: &HealthEndpoint) -> Result<HealthCheckResult> {
        through!(self, "check", true, |p| p.check(endpoint))
    }
}

#[async_trait]
impl<L: Layer> SmokeTests for Layered<dyn SmokeTests, L> {
    async fn run(&self, service: &ServiceRef) -> Result<SmokeTestResult> {
        through!(self, "run", true, |p| p.run(service))
    }
}

#[async_trait]
impl<L: Layer> Notifier for Layered<dyn Notifier, L> {
    async fn send(&self, message: &Message) -> Result<()> {
        // A duplicate chat message is better than a missing one.
        through!(self, "send", true, |p| p.send(message))
    }
    fn thread(&self, incident_id: &str) -> Option<String> {
        self.inner.thread(incident_id)
    }
    fn continue_thread(&self, incident_id: &str, thread: &str) {
        self.inner.continue_thread(incident_id, thread)
    }
}

#[async_trait]
impl<L: Layer> Escalator for Layered<dyn Escalator, L> {
    async fn trigger(&self, escalation: &Escalation) -> Result<()> {
        // The dedup key makes a repeated trigger the same page.
        through!(self, "trigger", true, |p| p.trigger(escalation))
    }
    async fn resolve(&self, dedup_key: &str) -> Result<()> {
        through!(self, "resolve", true, |p| p.resolve(dedup_key))
    }
    async fn acknowledge(&self, dedup_key: &str) -> Result<()> {
        through!(self, "acknowledge", true, |p| p.acknowledge(dedup_key))
    }
    async fn change_event(&self, change: &ChangeEvent) -> Result<()> {
        // A repeated change event is a duplicate line on a timeline, not a page.
        through!(self, "change_event", true, |p| p.change_event(change))
    }
}

#[async_trait]
impl<L: Layer> SchemaMigrator for Layered<dyn SchemaMigrator, L> {
    async fn status(&self) -> Result<SchemaStatus> {
        through!(self, "status", true, |p| p.status())
    }
    async fn roll_back(&self, target: &MigrationTarget) -> Result<Vec<String>> {
        // Repeating "last batch" would revert a second batch.
        through!(self, "roll_back", false, |p| p.roll_back(target))
    }
}

#[async_trait]
impl<L: Layer> CustomerReports for Layered<dyn CustomerReports, L> {
    async fn count_since(&self, region: &Region, since: Timestamp) -> Result<u32> {
        through!(self, "count_since", true, |p| p.count_since(region, since))
    }
}

#[async_trait]
impl<L: Layer> ImageRegistry for Layered<dyn ImageRegistry, L> {
    async fn resolve(&self, repository: &str, image: &ImageRef) -> Result<String> {
        through!(self, "resolve", true, |p| p.resolve(repository, image))
    }
    async fn retag(&self, repository: &str, source: &ImageRef, tag: &str) -> Result<Retagged> {
        through!(self, "retag", true, |p| p.retag(repository, source, tag))
    }
}

#[async_trait]
impl<L: Layer> RollbackLock for Layered<dyn RollbackLock, L> {
    async fn acquire(&self, key: &LockKey, holder: &str, ttl: Duration) -> Result<Lease> {
        through!(self, "acquire", true, |p| p.acquire(key, holder, ttl))
    }
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        through!(self, "renew", true, |p| p.renew(lease, ttl))
    }
    async fn release(&self, lease: &Lease) -> Result<()> {
        through!(self, "release", true, |p| p.release(lease))
    }
}

#[async_trait]
impl<L: Layer> LogSource for Layered<dyn LogSource, L> {
    async fn errors(
        &self,
        service: &ServiceRef,
        since: Timestamp,
        pattern: &str,
        sample: usize,
    ) -> Result<LogSummary> {
        through!(self, "errors", true, |p| p
            .errors(service, since, pattern, sample))
    }
}
