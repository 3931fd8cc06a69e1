//! The providers a playbook acts through, per region and shared.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::Region;
use crate::provider::*;

/// The providers of one region. Backends may differ per region (ECS in one,
/// Kubernetes in another): the engine only sees the traits.
#[derive(Debug, Clone)]
pub struct RegionProviders {
    /// Rolls the application back.
    pub deployer: Arc<dyn Deployer>,
    /// The region's load balancer.
    pub traffic: Option<Arc<dyn TrafficShifter>>,
    /// The region's databases.
    pub database: Option<Arc<dyn DbRestorer>>,
    /// The region's schema migrations.
    pub migrator: Option<Arc<dyn SchemaMigrator>>,
}

impl RegionProviders {
    /// A region with only a deployer.
    pub fn new(deployer: Arc<dyn Deployer>) -> Self {
        RegionProviders {
            deployer,
            traffic: None,
            database: None,
            migrator: None,
        }
    }

    /// Adds a traffic shifter.
    pub fn with_traffic(mut self, t: Arc<dyn TrafficShifter>) -> Self {
        self.traffic = Some(t);
        self
    }

    /// Adds a database restorer.
    pub fn with_database(mut self, d: Arc<dyn DbRestorer>) -> Self {
        self.database = Some(d);
        self
    }

    /// Adds a schema migrator.
    pub fn with_migrator(mut self, m: Arc<dyn SchemaMigrator>) -> Self {
        self.migrator = Some(m);
        self
    }
}

/// Every provider the engine may use.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    /// Per-region providers.
    pub regions: BTreeMap<Region, RegionProviders>,
    /// DNS (global: one hosted zone routes to every region).
    pub dns: Option<Arc<dyn DnsSwitcher>>,
    /// Metrics (global: queries carry the region).
    pub metrics: Option<Arc<dyn MetricsSource>>,
    /// Health endpoint prober.
    pub health: Option<Arc<dyn HealthChecker>>,
    /// Smoke-test hook.
    pub smoke: Option<Arc<dyn SmokeTests>>,
    /// Chat channel.
    pub notifier: Option<Arc<dyn Notifier>>,
    /// On-call pager.
    pub escalator: Option<Arc<dyn Escalator>>,
    /// Customer reports.
    pub reports: Option<Arc<dyn CustomerReports>>,
    /// Image registry.
    pub registry: Option<Arc<dyn ImageRegistry>>,
    /// Service logs (global: queries carry the region). Verification counts error
    /// lines as evidence; they do not decide whether it passed.
    pub logs: Option<Arc<dyn LogSource>>,
    /// Named channels that the spec's `comms.contacts` reach people through.
    pub channels: BTreeMap<String, super::routing::Channel>,
}

impl Providers {
    /// No providers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a region.
    pub fn with_region(mut self, region: Region, providers: RegionProviders) -> Self {
        self.regions.insert(region, providers);
        self
    }

    /// Sets the DNS switcher.
    pub fn with_dns(mut self, p: Arc<dyn DnsSwitcher>) -> Self {
        self.dns = Some(p);
        self
    }

    /// Sets the metrics source.
    pub fn with_metrics(mut self, p: Arc<dyn MetricsSource>) -> Self {
        self.metrics = Some(p);
        self
    }

    /// Sets the health checker.
    pub fn with_health(mut self, p: Arc<dyn HealthChecker>) -> Self {
        self.health = Some(p);
        self
    }

    /// Sets the smoke-test hook.
    pub fn with_smoke_tests(mut self, p: Arc<dyn SmokeTests>) -> Self {
        self.smoke = Some(p);
        self
    }

    /// Sets the notifier.
    pub fn with_notifier(mut self, p: Arc<dyn Notifier>) -> Self {
        self.notifier = Some(p);
        self
    }

    /// Sets the escalator.
    pub fn with_escalator(mut self, p: Arc<dyn Escalator>) -> Self {
        self.escalator = Some(p);
        self
    }

    /// Sets the customer-report source.
    pub fn with_reports(mut self, p: Arc<dyn CustomerReports>) -> Self {
        self.reports = Some(p);
        self
    }

    /// Sets the image registry.
    pub fn with_registry(mut self, p: Arc<dyn ImageRegistry>) -> Self {
        self.registry = Some(p);
        self
    }

    /// Registers a named channel (`"slack"`, `"pagerduty"`, `"email"`) for the spec's
    /// contacts to be reached through.
    pub fn with_channel(
        mut self,
        name: impl Into<String>,
        channel: super::routing::Channel,
    ) -> Self {
        self.channels.insert(name.into(), channel);
        self
    }

    /// Sets the log source that verification reads error lines from.
    pub fn with_logs(mut self, p: Arc<dyn LogSource>) -> Self {
        self.logs = Some(p);
        self
    }
}
