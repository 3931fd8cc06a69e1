//! Canary auto-rollback: the watch loop on the in-memory fleet, on tokio's paused clock.

mod common;

use std::time::Duration;

use common::*;
use meshos_rollback_core::engine::*;
use meshos_rollback_core::model::{Revision, ServiceRef};
use meshos_rollback_core::provider::{TrafficShifter, traffic_share};
use meshos_rollback_core::testing::fleet;

fn watch(s: &Scenario) -> (CanaryWatch, RollbackSpec) {
    let r = &s.regions[0];
    let canary = ServiceRef::new(r.clone(), fleet::canary(r));
    let stable = ServiceRef::new(r.clone(), fleet::api(r));
    let spec = quick(RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), canary.service.clone())
            .shifting_traffic(fleet::LISTENER, fleet::STABLE_TG),
    ]));
    (
        CanaryWatch::new(canary, stable, "INC-CANARY-1")
            .with_schedule(Duration::from_secs(1800), Duration::from_secs(60)),
        spec,
    )
}

#[tokio::test(start_paused = true)]
async fn a_canary_that_breaches_midway_is_rolled_back_by_itself() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let d = s.world.region(&r).deployer.clone();
    let (watch, spec) = watch(&s);
    // The bad version reaches the canary ten minutes into the watch.
    let deploy = async {
        tokio::time::sleep(Duration::from_secs(600)).await;
        d.deploy(
            &fleet::canary(&r),
            Revision::new(fleet::BAD).with_image(fleet::BAD_IMAGE),
        )
        .unwrap();
    };
    let engine = s.engine();
    let (outcome, ()) = tokio::join!(engine.watch_canary(&watch, &spec), deploy);
    let outcome = outcome.unwrap();
    let CanaryOutcome::RolledBack { decision, report } = &outcome else {
        panic!("expected a rollback, got {outcome}");
    };
    assert!(decision.requires_rollback());
    assert_eq!(decision.findings.len(), 3, "{decision}");
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    assert_eq!(report.gate.kind, "automatic");
    assert!(
        report
            .gate
            .reason
            .as_deref()
            .unwrap()
            .contains("error rate 6.20% > 0.54%")
    );
    assert_eq!(
        report.request.incident.summary,
        "Canary meshos-api-canary: error rate 6.20% > 0.54% (baseline 0.04% + 0.50 pp): initiate rollback"
    );
    // The rollout to the bad version finishes at 10:10:30; the next check, at 10:11,
    // sees it and the rollback starts at once.
    assert_eq!(report.started_at.to_string(), "2025-10-30T10:11:00Z");
    assert_eq!(
        d.current_revision(&fleet::canary(&r)).unwrap().as_str(),
        fleet::GOOD
    );
    let w = s
        .world
        .region(&r)
        .traffic
        .weights(&fleet::LISTENER.into())
        .await
        .unwrap();
    assert_eq!(traffic_share(&w, &fleet::STABLE_TG.into()), 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_healthy_canary_is_watched_for_the_whole_duration() {
    let s = scenario(&["us-east-1"]);
    let (watch, spec) = watch(&s);
    let started = tokio::time::Instant::now();
    let outcome = s.engine().watch_canary(&watch, &spec).await.unwrap();
    assert_eq!(outcome, CanaryOutcome::Healthy { checks: 31 });
    assert_eq!(started.elapsed(), Duration::from_secs(1800));
    assert!(
        s.world.notifier.messages().is_empty(),
        "nothing to announce"
    );
}

#[tokio::test(start_paused = true)]
async fn a_canary_without_data_is_not_promoted() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let (mut watch, spec) = watch(&s);
    // A canary the metrics source knows nothing about.
    watch.canary = ServiceRef::new(
        r.clone(),
        meshos_rollback_core::model::ServiceId::custom("unknown"),
    );
    let outcome = s.engine().watch_canary(&watch, &spec).await.unwrap();
    match outcome {
        CanaryOutcome::Inconclusive { checks, missing } => {
            assert_eq!(checks, 3);
            assert!(!missing.is_empty());
        }
        other => panic!("{other}"),
    }
    assert_eq!(s.current(&r), fleet::GOOD, "nothing rolled back");
}
