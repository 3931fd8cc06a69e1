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
use meshos_rollback_http::prometheus::{Baseline, LatencyQuery, PrometheusMetrics, QueryTemplates};

use dataset::{LatencyExport, Scenario, expected, expected_summary};

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
    source_with(p, LatencyQuery::default())
}

fn source_with(p: &server::Prometheus, latency: LatencyQuery) -> PrometheusMetrics {
    PrometheusMetrics::builder(&p.url)
        .with_clock(Arc::new(Fixed(ts(p.anchor))))
        .with_baseline(Baseline::Offset(Duration::from_secs(HOUR as u64)))
        .with_timeout(Duration::from_secs(10))
        .with_latency(latency)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus"]
async fn summary_preset_reads_the_playbooks_p95() {
    let p = server::start().await;
    let t = p.anchor;
    let summary = source_with(&p, LatencyQuery::Summary);
    let api = Scenario::Api.service();
    assert_eq!(Scenario::Api.latency_export(), LatencyExport::Summary);

    // Now: the instances report p95 150 ms and 185 ms; the preset takes the max
    // (the average, 167.5 ms, would be no quantile of anything).
    let now = summary.observe(&api, FIVE_MINUTES).await.unwrap();
    assert_eq!(now.p95_latency_ms, Some(185.0), "{now:?}");
    assert_metrics_close(
        "meshos-api",
        &now,
        &expected_summary(Scenario::Api, t, t, 5),
        TOLERANCE,
    );
    // An hour ago: 110 ms and 125 ms.
    let base = summary.baseline(&api, FIVE_MINUTES).await.unwrap();
    assert_eq!(base.p95_latency_ms, Some(125.0), "{base:?}");
    assert_metrics_close(
        "meshos-api baseline",
        &base,
        &expected_summary(Scenario::Api, t, t - HOUR, 5),
        TOLERANCE,
    );

    // Minute by minute: i-2's slow p95 (450 ms) shows until 10 minutes ago.
    let range = TimeRange {
        start: ts(t - 15 * 60),
        end: ts(t),
        step: ONE_MINUTE,
    };
    let points = summary
        .observe_range(&api, ONE_MINUTE, &range)
        .await
        .unwrap();
    assert_eq!(points.len(), 16);
    let mut p95s = Vec::new();
    for (k, point) in points.iter().enumerate() {
        let at = t - 15 * 60 + 60 * k as i64;
        assert_eq!(point.at, ts(at));
        let want = expected_summary(Scenario::Api, t, at, 1);
        assert_metrics_close(&format!("point {k}"), &point.metrics, &want, TOLERANCE);
        p95s.push(point.metrics.p95_latency_ms.unwrap());
    }
    let mut want = vec![450.0; 6];
    want.extend([185.0; 10]);
    assert_eq!(p95s, want);

    // The verification limits pass on it: 185 ms is under the playbook's 200 ms.
    let report = VerificationLimits::default().check(&Observation::new(now, base));
    assert_eq!(report.verdict, VerificationVerdict::Passed, "{report}");

    // The playbook's selector as it stands returns one series per instance: it
    // needs the aggregation the preset adds.
    let verbatim = PrometheusMetrics::builder(&p.url)
        .with_clock(Arc::new(Fixed(ts(t))))
        .with_templates(QueryTemplates::none().with_p95_latency_ms(
            r#"1000 * http_request_duration_seconds{job="{service}",quantile="0.95"}"#,
        ))
        .build()
        .unwrap();
    let e = verbatim.observe(&api, FIVE_MINUTES).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("returned 2 series"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus"]
async fn each_latency_preset_reads_the_other_kind_as_no_data() {
    let p = server::start().await;
    let t = p.anchor;
    let histogram = source_with(&p, LatencyQuery::Histogram);
    let summary = source_with(&p, LatencyQuery::Summary);
    let limits = VerificationLimits::default();
    let canary = CanaryPolicy::default();

    // The histogram preset against histogram data still reads the buckets.
    let healthy = Scenario::Healthy.service();
    let m = histogram.observe(&healthy, FIVE_MINUTES).await.unwrap();
    assert_metrics_close(
        "histogram",
        &m,
        &expected(Scenario::Healthy, t, t, 5),
        TOLERANCE,
    );
    assert!(
        (m.p95_latency_ms.unwrap() - 162.5).abs() < TOLERANCE,
        "{m:?}"
    );

    // The summary preset against every histogram-only service: P95 is no data
    // (never 0, never healthy), everything else is still read.
    for s in Scenario::ALL {
        if s.latency_export() != LatencyExport::Histogram || s == Scenario::Silent {
            continue;
        }
        let svc = s.service();
        let current = summary.observe(&svc, FIVE_MINUTES).await.unwrap();
        let baseline = summary.baseline(&svc, FIVE_MINUTES).await.unwrap();
        assert_eq!(current.p95_latency_ms, None, "{s:?}: {current:?}");
        assert_eq!(baseline.p95_latency_ms, None, "{s:?}: {baseline:?}");
        assert_metrics_close(
            &format!("{s:?} summary"),
            &current,
            &expected_summary(s, t, t, 5),
            TOLERANCE,
        );
        assert!(current.request_rate_rps.is_some(), "{s:?}: {current:?}");
        let report = limits.check(&Observation::new(current, baseline));
        assert!(
            report.missing.contains(Signal::P95Latency),
            "{s:?}: {report}"
        );
        assert_ne!(
            report.verdict,
            VerificationVerdict::Passed,
            "{s:?}: {report}"
        );
    }
    // A healthy service read with the wrong preset is not "continue".
    let read = observation(
        summary.observe(&healthy, FIVE_MINUTES).await.unwrap(),
        summary.baseline(&healthy, FIVE_MINUTES).await.unwrap(),
    );
    let decision = canary.evaluate(&read);
    assert!(
        matches!(decision.outcome, Outcome::NoData { .. }),
        "{decision:?}"
    );

    // And today's histogram default against the summary-only meshos-api: no P95,
    // which is what the playbook's service looked like before the preset.
    let api = Scenario::Api.service();
    let m = histogram.observe(&api, FIVE_MINUTES).await.unwrap();
    assert_eq!(m.p95_latency_ms, None, "{m:?}");
    assert_metrics_close(
        "meshos-api histogram",
        &m,
        &expected(Scenario::Api, t, t, 5),
        TOLERANCE,
    );
    let points = histogram
        .observe_range(
            &api,
            ONE_MINUTE,
            &TimeRange {
                start: ts(t - 5 * 60),
                end: ts(t),
                step: ONE_MINUTE,
            },
        )
        .await
        .unwrap();
    assert!(points.iter().all(|p| p.metrics.p95_latency_ms.is_none()));
}
