//! Every conformance suite, run against the in-memory providers on tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use meshos_rollback_core::clock::{SharedClock, TokioClock};
use meshos_rollback_core::conformance;
use meshos_rollback_core::memory::*;
use meshos_rollback_core::model::{Region, Revision, ServiceId, ServiceRef};
use meshos_rollback_core::observation::Metrics;
use meshos_rollback_core::provider::*;

fn clock() -> SharedClock {
    Arc::new(TokioClock::starting_at(
        "2025-10-30T10:00:00Z".parse().unwrap(),
    ))
}

fn region(name: &str) -> Region {
    Region::new(name).unwrap()
}

#[tokio::test(start_paused = true)]
async fn deployer() {
    let d = InMemoryDeployer::new(region("us-east-1"), clock());
    let svc = ServiceId::ecs("meshos-us-east-1", "meshos-api");
    d.add_service(
        &svc,
        "api",
        3,
        Revision::new("v2.4.9").with_image("meshos/mesh-kernel:sha-abc123"),
    );
    d.deploy(
        &svc,
        Revision::new("v2.5.0").with_image("meshos/mesh-kernel:sha-def456"),
    )
    .unwrap();
    let fx = conformance::deploy::DeployerFixture {
        service: svc,
        older: "v2.4.9".into(),
        newer: "v2.5.0".into(),
        missing_revision: "v0.0.1".into(),
        missing_service: ServiceId::ecs("meshos-us-east-1", "nope"),
        container: "api".into(),
        image: "meshos/mesh-kernel:sha-abc123".into(),
    };
    conformance::deploy::run(&d, &fx).await;
}

#[tokio::test(start_paused = true)]
async fn traffic_shifter() {
    let t = InMemoryTrafficShifter::new(region("us-east-1"));
    t.add_target("stable", &["i-1:8080", "i-2:8080"]);
    t.add_target("canary", &["i-3:8080"]);
    t.add_route(
        "listener/app",
        &[
            TargetWeight::new("stable", 90),
            TargetWeight::new("canary", 10),
        ],
    )
    .unwrap();
    let fx = conformance::traffic::TrafficFixture {
        route: "listener/app".into(),
        stable: "stable".into(),
        canary: "canary".into(),
        missing_route: "listener/none".into(),
        missing_target: "none".into(),
    };
    conformance::traffic::run(&t, &fx).await;
}

fn alias(name: &str) -> DnsTarget {
    DnsTarget::Alias {
        hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
        dns_name: name.into(),
        evaluate_target_health: true,
    }
}

#[tokio::test(start_paused = true)]
async fn dns_switcher() {
    let dns = InMemoryDnsSwitcher::new("Z0MESHOS", clock());
    dns.add_weighted(
        "api.meshos.io",
        region("us-east-1"),
        100,
        alias("use1.elb.amazonaws.com"),
    );
    dns.add_weighted(
        "api.meshos.io",
        region("eu-west-1"),
        50,
        alias("euw1.elb.amazonaws.com"),
    );
    let fx = conformance::dns::DnsFixture {
        record: "rollback-test.meshos.io".into(),
        missing_record: "nothing.meshos.io".into(),
        targets: [
            alias("new.elb.amazonaws.com"),
            alias("previous.elb.amazonaws.com"),
        ],
        weighted: "api.meshos.io.".into(),
        regions: [(region("us-east-1"), 100), (region("eu-west-1"), 50)],
        missing_region: region("ap-south-1"),
    };
    conformance::dns::run(&dns, &fx).await;
}

#[tokio::test(start_paused = true)]
async fn db_restorer() {
    let c = clock();
    let db = InMemoryDbRestorer::new(region("us-east-1"), c.clone());
    db.add_instance("meshos-db-us-east-1", c.now());
    tokio::time::sleep(Duration::from_secs(3600)).await;
    db.take_snapshot(&"meshos-db-us-east-1".into(), "manual-before-deploy")
        .unwrap();
    let fx = conformance::database::DbFixture {
        source: "meshos-db-us-east-1".into(),
        target_prefix: "meshos-db-us-east-1-restored".into(),
        missing: "meshos-db-nowhere".into(),
    };
    conformance::database::run(&db, &fx).await;
}

#[tokio::test(start_paused = true)]
async fn metrics_source() {
    let c = clock();
    let m = InMemoryMetrics::new(c.clone());
    let svc = ServiceRef::new(region("us-east-1"), ServiceId::custom("meshos-api"));
    let start = c.now();
    let good = Metrics::new(0.05, 120.0, 40.0, 50.0, 1000.0);
    for i in 0..10 {
        let at = start
            .checked_add(jiff::SignedDuration::from_mins(i))
            .unwrap();
        m.record(&svc, at, good);
    }
    m.set_baseline(&svc, Metrics::new(0.04, 110.0, 35.0, 45.0, 990.0));
    tokio::time::sleep(Duration::from_secs(600)).await;
    let fx = conformance::metrics::MetricsFixture {
        service: svc.clone(),
        expected: good,
        expected_baseline: Metrics::new(0.04, 110.0, 35.0, 45.0, 990.0),
        window: Duration::from_secs(300),
        range: TimeRange {
            start,
            end: start
                .checked_add(jiff::SignedDuration::from_mins(9))
                .unwrap(),
            step: Duration::from_secs(60),
        },
        empty: ServiceRef::new(region("us-east-1"), ServiceId::custom("silent")),
        tolerance: 1e-9,
    };
    conformance::metrics::run(&m, &fx).await;
}

#[tokio::test(start_paused = true)]
async fn metrics_follow_the_serving_revision() {
    let c = clock();
    let d = Arc::new(InMemoryDeployer::new(region("us-east-1"), c.clone()));
    let svc = ServiceId::custom("meshos-api");
    d.add_service(&svc, "api", 2, Revision::new("good"));
    let m = InMemoryMetrics::new(c.clone());
    let sref = ServiceRef::new(region("us-east-1"), svc.clone());
    let healthy = Metrics::new(0.05, 100.0, 40.0, 40.0, 500.0);
    let broken = Metrics::new(8.0, 400.0, 95.0, 60.0, 500.0);
    m.link_revisions(
        &sref,
        d.clone(),
        [("good".into(), healthy), ("bad".into(), broken)],
    );
    d.deploy(&svc, Revision::new("bad")).unwrap();
    // Still serving the good revision while the rollout runs.
    assert_eq!(
        m.observe(&sref, Duration::from_secs(60)).await.unwrap(),
        healthy
    );
    d.wait_until_stable(&svc).await.unwrap();
    assert_eq!(
        m.observe(&sref, Duration::from_secs(60)).await.unwrap(),
        broken
    );
    d.roll_back(&svc, &meshos_rollback_core::model::RollbackTarget::Previous)
        .await
        .unwrap();
    d.wait_until_stable(&svc).await.unwrap();
    assert_eq!(
        m.observe(&sref, Duration::from_secs(60)).await.unwrap(),
        healthy
    );
}

#[tokio::test(start_paused = true)]
async fn health_checker_and_smoke_tests() {
    let h = InMemoryHealthChecker::new();
    h.set_status("https://us-east-1.meshos.io/health", 200);
    h.set_status("https://us-east-1.meshos.io/api/v1/status", 503);
    let fx = conformance::health::HealthFixture {
        healthy: HealthEndpoint::new("health", "https://us-east-1.meshos.io/health"),
        failing: HealthEndpoint::new("api status", "https://us-east-1.meshos.io/api/v1/status"),
        unreachable: HealthEndpoint::new("down", "https://eu-west-1.meshos.io/health"),
    };
    conformance::health::run(&h, &fx).await;

    let s = InMemorySmokeTests::new();
    s.set_failing(&region("eu-west-1"), Some("1 failed: checkout"));
    conformance::health::run_smoke(
        &s,
        &ServiceRef::new(region("us-east-1"), ServiceId::custom("api")),
        &ServiceRef::new(region("eu-west-1"), ServiceId::custom("api")),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn lock() {
    let l = InMemoryLock::new(clock());
    conformance::lock::run(
        &l,
        &LockKey::new("rollback-us-east-1-api"),
        Duration::from_secs(30),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn schema_migrator() {
    let m = InMemorySchemaMigrator::new("meshos");
    m.apply_batch(&["20251001_init"]);
    m.apply_batch(&["20251030_add_feature_column", "20251030_backfill_feature"]);
    conformance::migrate::run(
        &m,
        "20251001_init",
        ["20251030_add_feature_column", "20251030_backfill_feature"],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn notifier_and_escalator() {
    let n = InMemoryNotifier::new();
    conformance::notify::run(&n, &|| n.messages().into_iter().map(|m| m.text).collect()).await;
    let e = InMemoryEscalator::new();
    conformance::notify::run_escalator(&e, "meshos-INC-1", &|| e.history()).await;
    assert!(e.open_pages().is_empty());
}

#[tokio::test(start_paused = true)]
async fn image_registry() {
    let r = InMemoryImageRegistry::new();
    r.push("meshos/mesh-kernel", "sha-abc123", "sha256:aaaa");
    r.push("meshos/mesh-kernel", "sha-def456", "sha256:bbbb");
    let fx = conformance::registry::RegistryFixture {
        repository: "meshos/mesh-kernel".into(),
        good: "sha-abc123".into(),
        bad: "sha-def456".into(),
    };
    conformance::registry::run(&r, &fx).await;
}

#[tokio::test(start_paused = true)]
async fn customer_reports() {
    let r = InMemoryCustomerReports::new();
    let since: Timestamp = "2025-10-30T10:00:00Z".parse().unwrap();
    r.report(
        &region("us-east-1"),
        "2025-10-30T09:50:00Z".parse().unwrap(),
        4,
    );
    r.report(
        &region("us-east-1"),
        "2025-10-30T10:02:00Z".parse().unwrap(),
        7,
    );
    r.report(&region("us-east-1"), since, 2);
    conformance::reports::run(&r, &region("us-east-1"), since, 9, &region("eu-west-1")).await;
}
