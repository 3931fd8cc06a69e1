//! Conformance of a [`MetricsSource`].

use std::time::Duration;

use super::{expect_kind, expect_ok};
use crate::ErrorKind;
use crate::model::ServiceRef;
use crate::observation::Metrics;
use crate::provider::{MetricsSource, TimeRange};

/// What the caller prepared for [`run`].
#[derive(Debug, Clone)]
pub struct MetricsFixture {
    /// A service with data, whose metrics over `window` ending now are `expected`.
    pub service: ServiceRef,
    /// The expected metrics (`None` where the backend has no such metric).
    pub expected: Metrics,
    /// The service's expected baseline.
    pub expected_baseline: Metrics,
    /// The window to observe.
    pub window: Duration,
    /// A range with data for `service` at every step.
    pub range: TimeRange,
    /// A service with no data at all.
    pub empty: ServiceRef,
    /// Allowed relative difference (floating-point sums in the backend).
    pub tolerance: f64,
}

fn close(a: Option<f64>, b: Option<f64>, tol: f64) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => (x - y).abs() <= tol * x.abs().max(y.abs()).max(1e-12),
        _ => false,
    }
}

/// Asserts that two metrics agree within a relative tolerance.
#[track_caller]
pub fn assert_metrics_close(who: &str, got: &Metrics, want: &Metrics, tol: f64) {
    let pairs = [
        ("error rate", got.error_rate_pct, want.error_rate_pct),
        ("P95", got.p95_latency_ms, want.p95_latency_ms),
        ("CPU", got.cpu_pct, want.cpu_pct),
        ("memory", got.memory_pct, want.memory_pct),
        ("request rate", got.request_rate_rps, want.request_rate_rps),
    ];
    for (name, g, w) in pairs {
        assert!(close(g, w, tol), "{who}: {name}: got {g:?}, want {w:?}");
    }
}

/// Runs the metrics suite: values and baseline as expected, an empty service reads
/// as no data (never zero), a range has a point per step, and a bad range is refused.
pub async fn run(source: &dyn MetricsSource, fx: &MetricsFixture) {
    let who = source.to_string();
    let got = expect_ok(source.observe(&fx.service, fx.window).await, "observe");
    assert_metrics_close(&who, &got, &fx.expected, fx.tolerance);
    let base = expect_ok(source.baseline(&fx.service, fx.window).await, "baseline");
    assert_metrics_close(
        &format!("{who} baseline"),
        &base,
        &fx.expected_baseline,
        fx.tolerance,
    );

    let empty = expect_ok(source.observe(&fx.empty, fx.window).await, "observe empty");
    assert!(
        empty.is_empty(),
        "{who}: a service without data must read as no data: {empty:?}"
    );

    let points = expect_ok(
        source
            .observe_range(&fx.service, fx.window, &fx.range)
            .await,
        "observe range",
    );
    let span = (fx.range.end - fx.range.start).as_secs_f64();
    let want = (span / fx.range.step.as_secs_f64()).floor() as usize + 1;
    assert_eq!(
        points.len(),
        want,
        "{who}: one point per step of {:?}",
        fx.range
    );
    assert_eq!(
        points[0].at, fx.range.start,
        "{who}: first point at the range start"
    );
    assert!(
        points.windows(2).all(|w| w[0].at < w[1].at),
        "{who}: points in time order"
    );
    assert!(
        points.iter().all(|p| !p.metrics.is_empty()),
        "{who}: data at every step"
    );

    let bad = crate::provider::TimeRange {
        step: Duration::ZERO,
        ..fx.range
    };
    expect_kind(
        source.observe_range(&fx.service, fx.window, &bad).await,
        ErrorKind::InvalidInput,
        "a zero step",
    );
    let reversed = crate::provider::TimeRange {
        start: fx.range.end,
        end: fx.range.start,
        ..fx.range
    };
    if fx.range.start < fx.range.end {
        expect_kind(
            source
                .observe_range(&fx.service, fx.window, &reversed)
                .await,
            ErrorKind::InvalidInput,
            "a reversed range",
        );
    }
}
