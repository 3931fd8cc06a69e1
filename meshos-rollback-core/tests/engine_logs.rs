//! Error logs in verification: counted and sampled as evidence in the report, never a
//! reason to fail by themselves.

mod common;

use std::sync::Arc;

use common::*;
use jiff::SignedDuration;
use meshos_rollback_core::engine::*;
use meshos_rollback_core::memory::InMemoryLogs;
use meshos_rollback_core::model::ServiceRef;
use meshos_rollback_core::provider::LogEvidence;
use meshos_rollback_core::testing::fleet;

#[tokio::test(start_paused = true)]
async fn error_lines_since_verification_started_are_in_the_report() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let api = ServiceRef::new(r.clone(), fleet::api(&r));
    let logs = Arc::new(InMemoryLogs::new(s.clock.clone()));
    let now = s.clock.now();
    // The bad release's errors, before the rollback: not counted.
    logs.record(
        &api,
        now - SignedDuration::from_mins(1),
        "ERROR v2.5.0 nil pointer",
    );
    // During the 15-minute verification window.
    let during = |m: i64| now + SignedDuration::from_mins(m);
    logs.record(
        &api,
        during(10),
        "ERROR upstream auth failed: Bearer sk9f8d7s6a5",
    );
    logs.record(&api, during(11), "INFO GET /api/v1/status 200");
    logs.record(&api, during(12), "ERROR db timeout after 5s");
    logs.record(&api, during(13), "ERROR db timeout after 7s");
    logs.record(&api, during(14), "ERROR cache miss storm");
    let engine = s.engine_with(s.world.providers().with_logs(logs));

    let plan = engine.plan(&single_region_spec(&s, &r)).await.unwrap();
    assert!(plan.to_string().contains("error logs"), "{plan}");
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(
        report.status,
        RunStatus::Succeeded,
        "error lines alone do not fail verification: {report}"
    );
    let verify = &report.region(&r).unwrap().steps[3];
    assert_eq!(verify.step.kind(), "verify");
    assert!(
        verify.started_at.is_some_and(|t| t < during(10)),
        "the lines lie in the verification window"
    );
    let Some(StepOutcome::Verified { outcome }) = &verify.outcome else {
        panic!("{verify:?}");
    };
    assert!(outcome.passed, "{outcome}");
    let Some(LogEvidence::Read(logs)) = &outcome.error_logs else {
        panic!("{outcome:?}");
    };
    assert_eq!(logs.count, 4, "{outcome}");
    assert!(!logs.truncated);
    let samples: Vec<&str> = logs.samples.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(samples.len(), 3, "at most three samples: {samples:?}");
    assert!(samples[0].starts_with("ERROR upstream auth failed: Bearer "));
    assert!(!samples[0].contains("sk9f8d7s6a5"), "redacted: {samples:?}");
    assert_eq!(
        samples[1..],
        ["ERROR db timeout after 5s", "ERROR db timeout after 7s"]
    );
    let text = outcome.to_string();
    assert!(
        text.contains("4 error log line(s) since verification started"),
        "{text}"
    );
    assert!(text.contains("log: "), "samples are shown: {text}");
    assert!(
        report.to_string().contains("4 error log line(s)"),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_log_is_a_note_not_a_failure() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    // No log for the service: the source answers NotFound.
    let logs = Arc::new(InMemoryLogs::new(s.clock.clone()));
    let engine = s.engine_with(s.world.providers().with_logs(logs));
    let spec = quick(RollbackSpec::new(vec![RegionSpec::new(
        r.clone(),
        fleet::api(&r),
    )]));
    let plan = engine.plan(&spec).await.unwrap();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    let outcome = report
        .region(&r)
        .unwrap()
        .steps
        .iter()
        .find_map(|s| match &s.outcome {
            Some(StepOutcome::Verified { outcome }) => Some(outcome.clone()),
            _ => None,
        })
        .expect("a verify step");
    assert!(
        matches!(&outcome.error_logs, Some(LogEvidence::Unreadable(why)) if why.contains("InMemoryLogs")),
        "{outcome:?}"
    );
    assert!(
        outcome.headline().contains("error logs not read"),
        "{outcome}"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_log_source_nothing_changes() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let plan = s.engine().plan(&single_region_spec(&s, &r)).await.unwrap();
    assert!(!plan.to_string().contains("error logs"), "{plan}");
}
