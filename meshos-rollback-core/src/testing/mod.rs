//! The playbook's demo fleet in memory: every provider for a set of regions, on one
//! clock, with the Mesh OS names. For tests, examples and demos (feature `testing`);
//! not part of the library's API for real rollbacks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::clock::SharedClock;
use crate::engine::{Providers, RegionProviders};
use crate::layer::{Layer, Layered};
use crate::memory::*;
use crate::model::{Region, Revision, ServiceId, ServiceRef};
use crate::observation::Metrics;
use crate::provider::*;

/// One region's in-memory providers.
#[derive(Debug, Clone)]
pub struct InMemoryRegion {
    /// Services and rollouts.
    pub deployer: Arc<InMemoryDeployer>,
    /// The load balancer.
    pub traffic: Arc<InMemoryTrafficShifter>,
    /// Databases.
    pub database: Arc<InMemoryDbRestorer>,
    /// Schema migrations.
    pub migrator: Arc<InMemorySchemaMigrator>,
}

/// Every in-memory provider for a set of regions, sharing one clock. Keep the concrete
/// handles to set scenarios up and inspect state; hand [`providers`](Self::providers)
/// to the engine.
#[derive(Debug, Clone)]
pub struct InMemoryWorld {
    /// The shared clock.
    pub clock: SharedClock,
    /// Per-region providers.
    pub regions: BTreeMap<Region, InMemoryRegion>,
    /// The hosted zone.
    pub dns: Arc<InMemoryDnsSwitcher>,
    /// Metrics.
    pub metrics: Arc<InMemoryMetrics>,
    /// Health endpoints.
    pub health: Arc<InMemoryHealthChecker>,
    /// Smoke tests.
    pub smoke: Arc<InMemorySmokeTests>,
    /// The chat channel.
    pub notifier: Arc<InMemoryNotifier>,
    /// The pager.
    pub escalator: Arc<InMemoryEscalator>,
    /// Customer reports.
    pub reports: Arc<InMemoryCustomerReports>,
    /// The image registry.
    pub registry: Arc<InMemoryImageRegistry>,
}

/// The names the playbook fleet uses.
pub mod fleet {
    use super::*;

    /// The weighted record set routing to every region.
    pub const API_RECORD: &str = "api.meshos.io";
    /// The known-good version.
    pub const GOOD: &str = "v2.4.9";
    /// The bad release.
    pub const BAD: &str = "v2.5.0";
    /// The known-good version's image.
    pub const GOOD_IMAGE: &str = "meshos/mesh-kernel:sha-abc123";
    /// The bad release's image.
    pub const BAD_IMAGE: &str = "meshos/mesh-kernel:sha-def456";
    /// The listener of each region's load balancer.
    pub const LISTENER: &str = "listener/meshos-api";
    /// The stable target group.
    pub const STABLE_TG: &str = "tg/meshos-api-stable";
    /// The canary target group.
    pub const CANARY_TG: &str = "tg/meshos-api-canary";

    /// `meshos-api` in the region's ECS cluster.
    pub fn api(region: &Region) -> ServiceId {
        ServiceId::ecs(format!("meshos-{region}"), "meshos-api")
    }

    /// The canary service.
    pub fn canary(region: &Region) -> ServiceId {
        ServiceId::ecs(format!("meshos-{region}"), "meshos-api-canary")
    }

    /// The region's database.
    pub fn database(region: &Region) -> DbInstanceId {
        DbInstanceId::new(format!("meshos-db-{region}"))
    }

    /// Healthy metrics of the good version.
    pub fn healthy() -> Metrics {
        Metrics::new(0.04, 120.0, 45.0, 55.0, 1000.0)
    }

    /// The bad version's metrics: 6.2 % errors, P95 410 ms, CPU 93 %.
    pub fn breaching() -> Metrics {
        Metrics::new(6.2, 410.0, 93.0, 71.0, 990.0)
    }
}

impl InMemoryWorld {
    /// Empty providers for `regions`.
    pub fn new(clock: SharedClock, regions: &[Region]) -> Self {
        let regions = regions
            .iter()
            .map(|r| {
                (
                    r.clone(),
                    InMemoryRegion {
                        deployer: Arc::new(InMemoryDeployer::new(r.clone(), clock.clone())),
                        traffic: Arc::new(InMemoryTrafficShifter::new(r.clone())),
                        database: Arc::new(InMemoryDbRestorer::new(r.clone(), clock.clone())),
                        migrator: Arc::new(InMemorySchemaMigrator::new(format!("meshos-db-{r}"))),
                    },
                )
            })
            .collect();
        InMemoryWorld {
            dns: Arc::new(InMemoryDnsSwitcher::new("Z0MESHOSIO", clock.clone())),
            metrics: Arc::new(InMemoryMetrics::new(clock.clone())),
            health: Arc::new(InMemoryHealthChecker::new()),
            smoke: Arc::new(InMemorySmokeTests::new()),
            notifier: Arc::new(InMemoryNotifier::new()),
            escalator: Arc::new(InMemoryEscalator::new()),
            reports: Arc::new(InMemoryCustomerReports::new()),
            registry: Arc::new(InMemoryImageRegistry::new()),
            regions,
            clock,
        }
    }

    /// The playbook's fleet: in every region `meshos-api` (ECS cluster `meshos-REGION`)
    /// and its canary run [`fleet::GOOD`]; `api.meshos.io` routes to each region at
    /// weight 100; each load balancer's listener forwards to a stable and a canary target
    /// group; each region has `meshos-db-REGION` (created a week ago, snapshot an hour
    /// ago) and two migration batches; health endpoints answer 200; metrics follow the
    /// revision each service serves ([`fleet::BAD`] breaches, [`fleet::GOOD`] is healthy).
    /// Nothing is broken yet: deploy [`fleet::BAD`] to start a scenario.
    pub fn playbook_fleet(clock: SharedClock, regions: &[Region]) -> Self {
        let w = Self::new(clock.clone(), regions);
        let now = clock.now();
        let week_ago = now
            .checked_sub(SignedDuration::from_hours(24 * 7))
            .unwrap_or(now);
        let hour_ago = now
            .checked_sub(SignedDuration::from_hours(1))
            .unwrap_or(now);
        w.registry
            .push("meshos/mesh-kernel", "sha-abc123", "sha256:0a1b2c3d");
        w.registry
            .push("meshos/mesh-kernel", "sha-def456", "sha256:9f8e7d6c");
        w.registry
            .push("meshos/mesh-kernel", "latest", "sha256:9f8e7d6c");
        for (region, r) in &w.regions {
            for svc in [fleet::api(region), fleet::canary(region)] {
                r.deployer.add_service(
                    &svc,
                    "api",
                    3,
                    Revision::new(fleet::GOOD).with_image(fleet::GOOD_IMAGE),
                );
                w.metrics.link_revisions(
                    &ServiceRef::new(region.clone(), svc.clone()),
                    r.deployer.clone(),
                    [
                        (fleet::GOOD.into(), fleet::healthy()),
                        (fleet::BAD.into(), fleet::breaching()),
                        (fleet::GOOD_IMAGE.into(), fleet::healthy()),
                        (fleet::BAD_IMAGE.into(), fleet::breaching()),
                    ],
                );
                w.metrics
                    .set_baseline(&ServiceRef::new(region.clone(), svc), fleet::healthy());
            }
            r.traffic
                .add_target(fleet::STABLE_TG, &["10.0.1.10:8080", "10.0.2.10:8080"]);
            r.traffic.add_target(fleet::CANARY_TG, &["10.0.3.10:8080"]);
            r.traffic
                .add_route(
                    fleet::LISTENER,
                    &[
                        TargetWeight::new(fleet::STABLE_TG, 90),
                        TargetWeight::new(fleet::CANARY_TG, 10),
                    ],
                )
                .expect("valid fleet routes");
            w.dns.add_weighted(
                fleet::API_RECORD,
                region.clone(),
                100,
                DnsTarget::Alias {
                    hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
                    dns_name: format!("meshos-{region}.elb.amazonaws.com"),
                    evaluate_target_health: true,
                },
            );
            r.database.add_instance(fleet::database(region), week_ago);
            r.database
                .add_snapshot(
                    &fleet::database(region),
                    format!("meshos-db-{region}-before-{}", fleet::BAD.replace('.', "-")),
                    hour_ago,
                )
                .expect("the instance exists");
            r.migrator.apply_batch(&["20251001_init"]);
            r.migrator.apply_batch(&["20251030_add_feature_column"]);
            for path in ["health", "api/v1/status"] {
                w.health
                    .set_status(&format!("https://{region}.meshos.io/{path}"), 200);
            }
        }
        w
    }

    /// `meshos-api` in every region of the playbook fleet.
    pub fn fleet_services(&self) -> Vec<ServiceRef> {
        self.regions
            .keys()
            .map(|r| ServiceRef::new(r.clone(), fleet::api(r)))
            .collect()
    }

    /// The region's providers.
    pub fn region(&self, region: &Region) -> &InMemoryRegion {
        &self.regions[region]
    }

    /// Every provider, as the engine takes them.
    pub fn providers(&self) -> Providers {
        let mut p = Providers::new()
            .with_dns(self.dns.clone())
            .with_metrics(self.metrics.clone())
            .with_health(self.health.clone())
            .with_smoke_tests(self.smoke.clone())
            .with_notifier(self.notifier.clone())
            .with_escalator(self.escalator.clone())
            .with_reports(self.reports.clone())
            .with_registry(self.registry.clone());
        for (region, r) in &self.regions {
            p = p.with_region(
                region.clone(),
                RegionProviders::new(r.deployer.clone())
                    .with_traffic(r.traffic.clone())
                    .with_database(r.database.clone())
                    .with_migrator(r.migrator.clone()),
            );
        }
        p
    }

    /// Every provider wrapped in `layer` (retry, timeouts, faults, …).
    pub fn layered_providers<L: Layer + Clone + 'static>(&self, layer: L) -> Providers {
        fn wrap<P: ?Sized, L>(inner: Arc<P>, layer: &L) -> Arc<Layered<P, L>>
        where
            L: Clone,
        {
            Arc::new(Layered::new(inner, layer.clone()))
        }
        let mut p = Providers::new()
            .with_dns(wrap::<dyn DnsSwitcher, L>(self.dns.clone(), &layer))
            .with_metrics(wrap::<dyn MetricsSource, L>(self.metrics.clone(), &layer))
            .with_health(wrap::<dyn HealthChecker, L>(self.health.clone(), &layer))
            .with_smoke_tests(wrap::<dyn SmokeTests, L>(self.smoke.clone(), &layer))
            .with_notifier(wrap::<dyn Notifier, L>(self.notifier.clone(), &layer))
            .with_escalator(wrap::<dyn Escalator, L>(self.escalator.clone(), &layer))
            .with_reports(wrap::<dyn CustomerReports, L>(self.reports.clone(), &layer))
            .with_registry(wrap::<dyn ImageRegistry, L>(self.registry.clone(), &layer));
        for (region, r) in &self.regions {
            p = p.with_region(
                region.clone(),
                RegionProviders::new(wrap::<dyn Deployer, L>(r.deployer.clone(), &layer))
                    .with_traffic(wrap::<dyn TrafficShifter, L>(r.traffic.clone(), &layer))
                    .with_database(wrap::<dyn DbRestorer, L>(r.database.clone(), &layer))
                    .with_migrator(wrap::<dyn SchemaMigrator, L>(r.migrator.clone(), &layer)),
            );
        }
        p
    }

    /// Sets how long rollouts take in every region.
    pub fn set_rollout_time(&self, d: Duration) {
        for r in self.regions.values() {
            r.deployer.set_rollout_time(d);
        }
    }

    /// Reports `count` customer complaints about `region` now.
    pub fn report_customers(&self, region: &Region, count: u32) -> Timestamp {
        let now = self.clock.now();
        self.reports.report(region, now, count);
        now
    }
}
