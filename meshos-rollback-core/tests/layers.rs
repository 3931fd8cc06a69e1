//! The layers, around mocks and in-memory providers, on tokio's paused clock.

mod common;

use common::Captured;

use std::sync::Arc;
use std::time::Duration;

use meshos_rollback_core::clock::TokioClock;
use meshos_rollback_core::conformance;
use meshos_rollback_core::layer::*;
use meshos_rollback_core::memory::{InMemoryDeployer, InMemoryTrafficShifter};
use meshos_rollback_core::model::{Region, Revision, RevisionHistory, RollbackTarget, ServiceId};
use meshos_rollback_core::provider::{Deployer, MockDeployer, TargetWeight, TrafficShifter};
use meshos_rollback_core::{Error, ErrorKind};

fn no_jitter() -> RetryPolicy {
    RetryPolicy {
        jitter: false,
        ..RetryPolicy::default()
    }
}

fn history() -> RevisionHistory {
    RevisionHistory {
        current: Revision::new("2"),
        previous: vec![Revision::new("1")],
        rollout_in_progress: false,
    }
}

fn svc() -> ServiceId {
    ServiceId::ecs("c", "s")
}

#[tokio::test(start_paused = true)]
async fn retry_rides_out_throttling_with_backoff() {
    let mut mock = MockDeployer::new();
    let mut calls = 0;
    mock.expect_revisions().times(3).returning(move |_| {
        calls += 1;
        if calls < 3 {
            Err(Error::transient("MockDeployer", "Rate exceeded"))
        } else {
            Ok(history())
        }
    });
    let budget = RetryBudget::new(10, 0.0);
    let d = Layered::new(
        Arc::new(mock) as Arc<dyn Deployer>,
        RetryLayer::new(no_jitter(), budget.clone()),
    );
    let start = tokio::time::Instant::now();
    assert_eq!(d.revisions(&svc()).await.unwrap(), history());
    // 200 ms + 400 ms of backoff.
    assert_eq!(start.elapsed(), Duration::from_millis(600));
    assert_eq!(budget.remaining(), 8);
}

fn throttled(after: Duration) -> Error {
    Error::Transient {
        provider: "MockDeployer".into(),
        message: "HTTP 429: Rate exceeded".into(),
        source: Some(Box::new(meshos_rollback_core::error::RetryAfter(after))),
    }
}

#[tokio::test(start_paused = true)]
async fn retry_waits_at_least_what_retry_after_asks_and_gives_up_on_too_long_a_wait() {
    let mut mock = MockDeployer::new();
    let mut calls = 0;
    mock.expect_revisions().times(2).returning(move |_| {
        calls += 1;
        if calls < 2 {
            Err(throttled(Duration::from_secs(7)))
        } else {
            Ok(history())
        }
    });
    let d = Layered::new(
        Arc::new(mock) as Arc<dyn Deployer>,
        RetryLayer::new(no_jitter(), RetryBudget::new(10, 0.0)),
    );
    let start = tokio::time::Instant::now();
    assert_eq!(d.revisions(&svc()).await.unwrap(), history());
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(7),
        "Retry-After, not the 200 ms backoff"
    );

    // More than max_retry_after (60 s): one attempt, the error back at once.
    let mut mock = MockDeployer::new();
    mock.expect_revisions()
        .times(1)
        .returning(|_| Err(throttled(Duration::from_secs(3600))));
    let d = Layered::new(
        Arc::new(mock) as Arc<dyn Deployer>,
        RetryLayer::new(no_jitter(), RetryBudget::new(10, 0.0)),
    );
    let start = tokio::time::Instant::now();
    let e = d.revisions(&svc()).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn retry_never_repeats_what_is_not_safe_to_repeat() {
    let mut mock = MockDeployer::new();
    mock.expect_roll_back()
        .times(1)
        .returning(|_, _| Err(Error::transient("MockDeployer", "503")));
    mock.expect_revisions()
        .times(1)
        .returning(|_| Err(Error::not_found("MockDeployer", "service")));
    let d = Layered::new(
        Arc::new(mock) as Arc<dyn Deployer>,
        RetryLayer::new(no_jitter(), RetryBudget::new(10, 0.0)),
    );
    // roll_back(Previous) is not idempotent: one attempt only.
    let err = d
        .roll_back(&svc(), &RollbackTarget::Previous)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    // Not-found is not retryable.
    assert!(d.revisions(&svc()).await.unwrap_err().is_not_found());
}

#[tokio::test(start_paused = true)]
async fn the_budget_is_shared_across_regions() {
    let budget = RetryBudget::new(1, 0.0);
    let plan = FaultPlan::new();
    plan.inject(FaultRule::always(Fault::Error(ErrorKind::Transient)).on("weights"));
    let mk = |region: &str| {
        let t = InMemoryTrafficShifter::new(Region::new(region).unwrap());
        let layer =
            RetryLayer::new(no_jitter(), budget.clone()).around(FaultLayer::new(plan.clone()));
        Layered::new(Arc::new(t) as Arc<dyn TrafficShifter>, layer)
    };
    let (a, b) = (mk("us-east-1"), mk("eu-west-1"));
    assert!(a.weights(&"r".into()).await.is_err());
    assert!(b.weights(&"r".into()).await.is_err());
    // One retry in the whole budget: 2 first attempts + 1 retry.
    assert_eq!(plan.injected().len(), 3);
    assert_eq!(budget.remaining(), 0);
}

#[tokio::test(start_paused = true)]
async fn each_attempt_gets_its_own_deadline() {
    let plan = FaultPlan::new();
    plan.inject(FaultRule::always(Fault::Hang).on("revisions").times(1));
    let d = InMemoryDeployer::new(
        Region::new("us-east-1").unwrap(),
        Arc::new(TokioClock::from_system()),
    );
    d.add_service(&svc(), "app", 1, Revision::new("1"));
    let layer = RetryLayer::new(no_jitter(), RetryBudget::new(5, 0.0))
        .around(TimeoutLayer::new(Duration::from_secs(2)).around(FaultLayer::new(plan.clone())));
    let d = Layered::new(Arc::new(d) as Arc<dyn Deployer>, layer);
    let start = tokio::time::Instant::now();
    let h = d.revisions(&svc()).await.unwrap();
    assert_eq!(h.current.id.as_str(), "1");
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(2200),
        "2 s timeout, 200 ms backoff"
    );

    // Without retry, the timeout is the answer.
    plan.inject(FaultRule::always(Fault::Hang).on("revisions"));
    let err = d.inner().revisions(&svc()).await; // bypasses the layers: no hang
    assert!(err.is_ok());
    let only_timeout = Layered::new(
        d.inner().clone(),
        TimeoutLayer::new(Duration::from_secs(2)).around(FaultLayer::new(plan.clone())),
    );
    let err = only_timeout.revisions(&svc()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        err.to_string()
            .contains("InMemoryDeployer(us-east-1): revisions timed out after 2s"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_and_provider_scoped_faults() {
    let plan = FaultPlan::new();
    plan.inject(FaultRule::always(Fault::Latency(Duration::from_secs(5))).on_provider("us-east-1"));
    plan.inject(
        FaultRule::always(Fault::Error(ErrorKind::PermissionDenied)).on_provider("eu-west-1"),
    );
    let mk = |region: &str| {
        let t = InMemoryTrafficShifter::new(Region::new(region).unwrap());
        t.add_target("stable", &["i-1"]);
        t.add_route("r", &[TargetWeight::new("stable", 1)]).unwrap();
        Layered::new(
            Arc::new(t) as Arc<dyn TrafficShifter>,
            FaultLayer::new(plan.clone()),
        )
    };
    let start = tokio::time::Instant::now();
    assert!(mk("us-east-1").weights(&"r".into()).await.is_ok());
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    let err = mk("eu-west-1").weights(&"r".into()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(mk("us-west-2").weights(&"r".into()).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn conformance_holds_through_the_standard_stack() {
    let d = InMemoryDeployer::new(
        Region::new("us-east-1").unwrap(),
        Arc::new(TokioClock::from_system()),
    );
    let s = ServiceId::kubernetes("production", "meshos-api");
    d.add_service(&s, "api", 3, Revision::new("1"));
    d.deploy(&s, Revision::new("2")).unwrap();
    let plan = FaultPlan::new();
    // Throttle the first call of every idempotent kind: retries must hide it.
    // (roll_back(Previous) is never retried, so it is left alone here.)
    for op in [
        "revisions",
        "rollout_status",
        "wait_until_stable",
        "set_env",
        "set_image",
    ] {
        plan.inject(
            FaultRule::always(Fault::Error(ErrorKind::Transient))
                .on(op)
                .times(1),
        );
    }
    let layer = standard_stack(
        RetryLayer::new(RetryPolicy::default(), RetryBudget::new(100, 0.1)),
        TimeoutLayer::standard(),
        &meshos_rollback_core::redact::Redactor::new(),
    )
    .around(FaultLayer::new(plan.clone()));
    let layered = Layered::new(Arc::new(d) as Arc<dyn Deployer>, layer);
    conformance::deploy::run(
        &layered,
        &conformance::deploy::DeployerFixture {
            service: s.clone(),
            older: "1".into(),
            newer: "2".into(),
            missing_revision: "99".into(),
            missing_service: ServiceId::kubernetes("production", "nope"),
            container: "api".into(),
            image: "meshos/mesh-kernel:sha-abc123".into(),
        },
    )
    .await;
    assert_eq!(plan.injected().len(), 5, "{:?}", plan.injected());
}

#[tokio::test(start_paused = true)]
async fn trace_layer_names_provider_and_operation() {
    let out = Captured::default();
    let _guard = out.install();
    let mut mock = MockDeployer::new();
    mock.expect_revisions()
        .returning(|_| Err(Error::not_found("MockDeployer", "service ecs:c/s")));
    let d = Layered::new(Arc::new(mock) as Arc<dyn Deployer>, TraceLayer::default());
    let _ = d.revisions(&svc()).await;
    let text = out.text();
    assert!(
        text.contains("provider_call{provider=MockDeployer op=\"revisions\"}"),
        "{text}"
    );
    assert!(text.contains("kind=NotFound"), "{text}");
}
