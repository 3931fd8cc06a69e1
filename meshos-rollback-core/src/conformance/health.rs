//! Conformance of a [`HealthChecker`] and [`SmokeTests`].

use super::{expect_kind, expect_ok};
use crate::ErrorKind;
use crate::model::ServiceRef;
use crate::provider::{HealthChecker, HealthEndpoint, SmokeTests};

/// What the caller prepared for [`run`].
#[derive(Debug, Clone)]
pub struct HealthFixture {
    /// Answers 200.
    pub healthy: HealthEndpoint,
    /// Answers 503.
    pub failing: HealthEndpoint,
    /// Nothing listens there.
    pub unreachable: HealthEndpoint,
}

/// Runs the health suite: healthy, failing (a status) and unreachable (no status)
/// endpoints are results, not errors; an invalid URL is an error.
pub async fn run(checker: &dyn HealthChecker, fx: &HealthFixture) {
    let who = checker.to_string();
    let ok = expect_ok(checker.check(&fx.healthy).await, "healthy endpoint");
    assert!(ok.healthy && ok.status == Some(200), "{who}: {ok}");
    assert_eq!(ok.endpoint, fx.healthy.name);
    let bad = expect_ok(checker.check(&fx.failing).await, "failing endpoint");
    assert!(!bad.healthy && bad.status == Some(503), "{who}: {bad}");
    let down = expect_ok(checker.check(&fx.unreachable).await, "unreachable endpoint");
    assert!(!down.healthy && down.status.is_none(), "{who}: {down}");
    assert!(
        !down.detail.is_empty(),
        "{who}: an unreachable endpoint says why"
    );
    expect_kind(
        checker
            .check(&HealthEndpoint::new("bad", "not a url"))
            .await,
        ErrorKind::InvalidInput,
        "an invalid URL",
    );
}

/// Runs the smoke-test suite: `passing` passes, `failing` fails with a summary.
pub async fn run_smoke(tests: &dyn SmokeTests, passing: &ServiceRef, failing: &ServiceRef) {
    let who = tests.to_string();
    let ok = expect_ok(tests.run(passing).await, "passing suite");
    assert!(ok.passed, "{who}: {}", ok.summary);
    let bad = expect_ok(tests.run(failing).await, "failing suite");
    assert!(
        !bad.passed && !bad.summary.is_empty(),
        "{who}: {}",
        bad.summary
    );
}
