//! The logs conformance suite against the in-memory provider, bare and layered.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use meshos_rollback_core::clock::{SharedClock, TokioClock};
use meshos_rollback_core::conformance::logs::{BEFORE_SINCE, LINES, LogsFixture, run};
use meshos_rollback_core::memory::InMemoryLogs;
use meshos_rollback_core::model::{Region, ServiceId, ServiceRef};
use meshos_rollback_core::provider::LogSource;

fn svc(name: &str) -> ServiceRef {
    ServiceRef::new(
        Region::new("us-east-1").unwrap(),
        ServiceId::ecs("meshos-us-east-1", name),
    )
}

/// Logs prepared as the fixture describes; now is ten seconds after the last line.
fn prepared() -> (InMemoryLogs, LogsFixture) {
    let start: Timestamp = "2025-10-30T10:00:00Z".parse().unwrap();
    let clock: SharedClock = Arc::new(TokioClock::starting_at(start));
    let logs = InMemoryLogs::new(clock.clone());
    let since = clock.now() - SignedDuration::from_mins(10);
    let fx = LogsFixture {
        service: svc("meshos-api"),
        since,
        empty: svc("meshos-worker"),
        missing: svc("meshos-nope"),
    };
    logs.record(
        &fx.service,
        since - SignedDuration::from_mins(1),
        BEFORE_SINCE,
    );
    for (i, line) in LINES.iter().enumerate() {
        logs.record(
            &fx.service,
            since + SignedDuration::from_secs(1 + i as i64),
            *line,
        );
    }
    logs.create_log(&fx.empty);
    (logs, fx)
}

#[tokio::test(start_paused = true)]
async fn in_memory_logs() {
    let (logs, fx) = prepared();
    run(&logs, &fx).await;
}

#[tokio::test(start_paused = true)]
async fn lines_after_now_are_not_read() {
    let (logs, fx) = prepared();
    let future = Timestamp::now() + SignedDuration::from_hours(24 * 365 * 50);
    logs.record(&fx.service, future, "ERROR from the future");
    let got = logs
        .errors(&fx.service, fx.since, "future", 5)
        .await
        .unwrap();
    assert_eq!(got.count, 0, "{got:?}");
}

#[tokio::test(start_paused = true)]
async fn layered_in_memory_logs() {
    use meshos_rollback_core::layer::{
        Layered, RetryBudget, RetryLayer, RetryPolicy, TimeoutLayer, standard_stack,
    };
    let (logs, fx) = prepared();
    let inner: Arc<dyn LogSource> = Arc::new(logs);
    let layer = standard_stack(
        RetryLayer::new(RetryPolicy::default(), RetryBudget::new(20, 0.1)),
        TimeoutLayer::standard(),
        &meshos_rollback_core::redact::Redactor::new(),
    );
    let layered = Layered::new(inner, layer);
    assert_eq!(layered.to_string(), "InMemoryLogs");
    run(&layered, &fx).await;
}
