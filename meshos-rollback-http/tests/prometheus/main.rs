//! `PrometheusMetrics` against a real Prometheus (Debian package `prometheus`), on a
//! data set written by the test and backfilled with promtool; every expected number
//! is computed from the data set's loads, without Prometheus (see `dataset.rs`).
//!
//! `#[ignore = "needs prometheus"]`: run with `--include-ignored` (the workspace's test
//! command does). A missing `prometheus`/`promtool` binary fails the test; it never
//! skips. `MESHOS_PROMETHEUS_URL` points the tests at an existing server that holds
//! the data set instead.

mod dataset;
mod server;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::clock::Clock;
use meshos_rollback_core::conformance::metrics::{MetricsFixture, assert_metrics_close, run};
use meshos_rollback_core::decision::{
    Action, CanaryPolicy, DecisionMatrix, Outcome, VerificationLimits, VerificationVerdict,
};
use meshos_rollback_core::observation::{Metrics, Observation, Signal};
use meshos_rollback_core::provider::{MetricsSource, TimeRange};
use meshos_rollback_http::prometheus::{Baseline, PrometheusMetrics, QueryTemplates};

use dataset::{Scenario, expected};

const TOLERANCE: f64 = 1e-9;
const FIVE_MINUTES: Duration = Duration::from_secs(300);
const ONE_MINUTE: Duration = Duration::from_secs(60);
const HOUR: i64 = 3600;

/// A clock stopped at the data set's anchor.
#[derive(Debug)]
struct Fixed(Timestamp);

impl Clock for Fixed {
    fn now(&self) -> Timestamp {
        self.0
    }
}

fn ts(unix: i64) -> Timestamp {
    Timestamp::from_second(unix).expect("timestamp")
}

fn source(p: &server::Prometheus) -> PrometheusMetrics {
    PrometheusMetrics::builder(&p.url)
        .with_clock(Arc::new(Fixed(ts(p.anchor))))
        .with_baseline(Baseline::Offset(Duration::from_secs(HOUR as u64)))
        .with_timeout(Duration::from_secs(10))
        .build()
        .expect("source")
}

fn observation(current: Metrics, baseline: Metrics) -> Observation {
    Observation::new(current, baseline)
        .with_customer_reports(0)
        .with_sla_violation(false)
        .with_data_corruption(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus"]
async fn conformance_suite() {
    let p = server::start().await;
    let src = source(&p);
    let t = p.anchor;
    let fx = MetricsFixture {
        service: Scenario::Healthy.service(),
        expected: expected(Scenario::Healthy, t, t, 5),
        expected_baseline: expected(Scenario::Healthy, t, t - HOUR, 5),
        window: FIVE_MINUTES,
        range: TimeRange {
            start: ts(t - 15 * 60),
            end: ts(t),
            step: ONE_MINUTE,
        },
        empty: Scenario::Silent.service(),
        tolerance: TOLERANCE,
    };
    run(&src, &fx).await;
    assert_eq!(src.to_string(), format!("Prometheus({})", p.url));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus"]
async fn decisions_read_from_prometheus_match_the_data_set() {
    let p = server::start().await;
    let src = source(&p);
    let t = p.anchor;
    let canary = CanaryPolicy::default();
    let matrix = DecisionMatrix::default();
    for (scenario, want_canary, want_matrix) in [
        (Scenario::Healthy, Action::Continue, Action::Continue),
        (Scenario::Breaching, Action::Rollback, Action::Rollback),
    ] {
        let svc = scenario.service();
        let current = src.observe(&svc, FIVE_MINUTES).await.expect("observe");
        let baseline = src.baseline(&svc, FIVE_MINUTES).await.expect("baseline");
        let want_current = expected(scenario, t, t, 5);
        let want_baseline = expected(scenario, t, t - HOUR, 5);
        println!("{scenario:?}: read {current:?}\n  computed {want_current:?}");
        println!("{scenario:?} baseline: read {baseline:?}\n  computed {want_baseline:?}");
        assert_metrics_close(&format!("{scenario:?}"), &current, &want_current, TOLERANCE);
        assert_metrics_close(
            &format!("{scenario:?} baseline"),
            &baseline,
            &want_baseline,
            TOLERANCE,
        );

        let read = observation(current, baseline);
        let computed = observation(want_current, want_baseline);
        let (c_read, c_want) = (canary.evaluate(&read), canary.evaluate(&computed));
        let (m_read, m_want) = (matrix.evaluate(&read), matrix.evaluate(&computed));
        assert_eq!(c_read.outcome, c_want.outcome, "{scenario:?} canary");
        assert_eq!(m_read.outcome, m_want.outcome, "{scenario:?} matrix");
        assert_eq!(c_read.findings.len(), c_want.findings.len(), "{scenario:?}");
        assert_eq!(
            c_read.action(),
            Some(want_canary),
            "{scenario:?} canary: {c_read:?}"
        );
        assert_eq!(
            m_read.action(),
            Some(want_matrix),
            "{scenario:?} matrix: {m_read:?}"
        );
    }

    // The breaching service trips every canary rule but memory.
    let svc = Scenario::Breaching.service();
    let read = observation(
        src.observe(&svc, FIVE_MINUTES).await.unwrap(),
        src.baseline(&svc, FIVE_MINUTES).await.unwrap(),
    );
    let fired: Vec<String> = canary
        .evaluate(&read)
        .findings
        .iter()
        .map(|f| format!("{:?}", f.rule))
        .collect();
    assert_eq!(
        fired,
        ["CanaryErrorRate", "CanaryP95Latency", "CanaryCpu"],
        "{read:?}"
    );

    // No data is never healthy.
    let svc = Scenario::Silent.service();
    let current = src.observe(&svc, FIVE_MINUTES).await.unwrap();
    let baseline = src.baseline(&svc, FIVE_MINUTES).await.unwrap();
    assert!(
        current.is_empty() && baseline.is_empty(),
        "{current:?} {baseline:?}"
    );
    for decision in [
        canary.evaluate(&observation(current, baseline)),
        matrix.evaluate(&observation(current, baseline)),
    ] {
        assert!(
            matches!(decision.outcome, Outcome::NoData { .. }),
            "silent service: {decision:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus"]
async fn verification_window_follows_the_recovery_minute_by_minute() {
    let p = server::start().await;
    let src = source(&p);
    let t = p.anchor;
    let svc = Scenario::Recovering.service();
    let limits = VerificationLimits::default();
    let baseline = src.baseline(&svc, FIVE_MINUTES).await.unwrap();
    assert_metrics_close(
        "baseline",
        &baseline,
        &expected(Scenario::Recovering, t, t - HOUR, 5),
        TOLERANCE,
    );
    let range = TimeRange {
        start: ts(t) - limits.window(),
        end: ts(t),
        step: limits.check_interval(),
    };
    let points = src.observe_range(&svc, ONE_MINUTE, &range).await.unwrap();
    assert_eq!(points.len(), 16);
    let mut verdicts = Vec::new();
    for (k, point) in points.iter().enumerate() {
        let at = t - 15 * 60 + 60 * k as i64;
        assert_eq!(point.at, ts(at));
        let want = expected(Scenario::Recovering, t, at, 1);
        assert_metrics_close(&format!("point {k}"), &point.metrics, &want, TOLERANCE);
        let read = limits
            .check(&Observation::new(point.metrics, baseline))
            .verdict;
        let computed = limits.check(&Observation::new(want, baseline)).verdict;
        assert_eq!(read, computed, "point {k}");
        verdicts.push(read);
    }
    // Breaching 15 minutes ago, degraded until 10 minutes ago, healthy since.
    let failed = VerificationVerdict::Failed;
    let passed = VerificationVerdict::Passed;
    let mut want = vec![failed; 6];
    want.extend([passed; 10]);
    assert_eq!(verdicts, want);

    // The same window over a healthy service passes at every check.
    let healthy = Scenario::Healthy.service();
    let base = src.baseline(&healthy, FIVE_MINUTES).await.unwrap();
    for point in src
        .observe_range(&healthy, ONE_MINUTE, &range)
        .await
        .unwrap()
    {
        let report = limits.check(&Observation::new(point.metrics, base));
        assert_eq!(report.verdict, passed, "{report}");
    }
    // And a silent one is inconclusive at every check, never a pass.
    let silent = Scenario::Silent.service();
    let points = src
        .observe_range(&silent, ONE_MINUTE, &range)
        .await
        .unwrap();
    assert_eq!(points.len(), 16);
    for point in points {
        assert!(point.metrics.is_empty());
        let report = limits.check(&Observation::new(point.metrics, base));
        assert_eq!(report.verdict, VerificationVerdict::NoData, "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus"]
async fn empty_results_are_no_data_never_zero() {
    let p = server::start().await;
    let src = source(&p);
    let t = p.anchor;

    // Series exist, but no request for 30 minutes: 0/0 is no data; 0 rps is data.
    let idle = src
        .observe(&Scenario::Idle.service(), FIVE_MINUTES)
        .await
        .unwrap();
    assert_eq!(idle.error_rate_pct, None);
    assert_eq!(idle.p95_latency_ms, None);
    assert_eq!(idle.request_rate_rps, Some(0.0));
    assert_metrics_close("idle", &idle, &expected(Scenario::Idle, t, t, 5), TOLERANCE);
    let report = VerificationLimits::default().check(&Observation::new(idle, idle));
    assert!(report.missing.contains(Signal::ErrorRate), "{report}");

    // Requests but never a 5xx series: 0 % errors, not no data.
    let fine = src
        .observe(&Scenario::NoServerErrors.service(), FIVE_MINUTES)
        .await
        .unwrap();
    assert_eq!(fine.error_rate_pct, Some(0.0));
    assert_metrics_close(
        "static",
        &fine,
        &expected(Scenario::NoServerErrors, t, t, 5),
        TOLERANCE,
    );

    // A region is a label filter: the eu-west-1 checkout is not us-east-1's.
    let eu = src
        .observe(&Scenario::HealthyEu.service(), FIVE_MINUTES)
        .await
        .unwrap();
    assert_metrics_close(
        "eu",
        &eu,
        &expected(Scenario::HealthyEu, t, t, 5),
        TOLERANCE,
    );
    let us = src
        .observe(&Scenario::Healthy.service(), FIVE_MINUTES)
        .await
        .unwrap();
    assert_ne!(eu.request_rate_rps, us.request_rate_rps);

    // Before the data began there is nothing, not zeros.
    let old = PrometheusMetrics::builder(&p.url)
        .with_clock(Arc::new(Fixed(ts(t - 3 * HOUR))))
        .build()
        .unwrap();
    let m = old
        .observe(&Scenario::Healthy.service(), FIVE_MINUTES)
        .await
        .unwrap();
    assert!(m.is_empty(), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus"]
async fn custom_templates_and_fixed_baselines() {
    let p = server::start().await;
    let t = p.anchor;
    // Another team's labels: `namespace` instead of `region`, via {scope}.
    let templates = QueryTemplates::none().with_request_rate_rps(
        r#"sum(rate(http_requests_total{namespace="{scope}",job="{service}"}[{window}]))"#,
    );
    let fixed = Metrics::new(0.05, 150.0, 50.0, 50.0, 1000.0);
    let src = PrometheusMetrics::builder(&p.url)
        .with_clock(Arc::new(Fixed(ts(t))))
        .with_templates(templates)
        .with_baseline(Baseline::Fixed(fixed))
        .build()
        .unwrap();
    let m = src
        .observe(&Scenario::HealthyEu.service(), FIVE_MINUTES)
        .await
        .unwrap();
    // Without the region label both checkouts are summed.
    let us = expected(Scenario::Healthy, t, t, 5)
        .request_rate_rps
        .unwrap();
    let eu = expected(Scenario::HealthyEu, t, t, 5)
        .request_rate_rps
        .unwrap();
    let want = Metrics {
        request_rate_rps: Some(us + eu),
        ..Metrics::default()
    };
    assert_metrics_close("custom", &m, &want, TOLERANCE);
    assert_eq!(
        src.baseline(&Scenario::Healthy.service(), FIVE_MINUTES)
            .await
            .unwrap(),
        fixed
    );
    let queries = src
        .queries(&Scenario::Healthy.service(), FIVE_MINUTES)
        .unwrap();
    assert_eq!(
        queries,
        [(
            "request_rate_rps",
            r#"sum(rate(http_requests_total{namespace="production",job="checkout"}[5m]))"#
                .to_owned()
        )]
    );

    // A week-old baseline outside the data is no data.
    let week = PrometheusMetrics::builder(&p.url)
        .with_clock(Arc::new(Fixed(ts(t))))
        .with_baseline(Baseline::Offset(Duration::from_secs(7 * 24 * 3600)))
        .build()
        .unwrap();
    let b = week
        .baseline(&Scenario::Healthy.service(), FIVE_MINUTES)
        .await
        .unwrap();
    assert!(b.is_empty(), "{b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus"]
async fn prometheus_errors_are_clear_errors() {
    let p = server::start().await;
    let svc = Scenario::Healthy.service();
    let with = |query: &str| {
        PrometheusMetrics::builder(&p.url)
            .with_clock(Arc::new(Fixed(ts(p.anchor))))
            .with_templates(QueryTemplates::none().with_cpu_pct(query))
            .build()
            .unwrap()
    };

    // A PromQL syntax error: status "error", errorType "bad_data", HTTP 400.
    let e = with(r#"sum(rate(http_requests_total{job="{service}"}[{window}])"#)
        .observe(&svc, FIVE_MINUTES)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("invalid prometheus.templates.cpu_pct: Prometheus(http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("HTTP 400 Bad Request: bad_data: "), "{text}");

    // A template that forgot to aggregate: more than one series.
    let e = with(r#"rate(http_requests_total{job="{service}",region="{region}"}[{window}])"#)
        .observe(&svc, FIVE_MINUTES)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("returned 4 series"), "{e}");

    // A range vector is not a number.
    let e = with(r#"http_requests_total{job="{service}"}[{window}]"#)
        .observe(&svc, FIVE_MINUTES)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("must return one number"), "{e}");

    // A zero step and a reversed range are refused before any request.
    let src = source(&p);
    let t = ts(p.anchor);
    let bad = TimeRange {
        start: t,
        end: t,
        step: Duration::ZERO,
    };
    let e = src.observe_range(&svc, ONE_MINUTE, &bad).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    // Too many points for Prometheus: refused locally with the reason.
    let huge = TimeRange {
        start: t - Duration::from_secs(24 * 3600),
        end: t,
        step: Duration::from_secs(1),
    };
    let e = src
        .observe_range(&svc, ONE_MINUTE, &huge)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("at most 11000"), "{e}");
}
