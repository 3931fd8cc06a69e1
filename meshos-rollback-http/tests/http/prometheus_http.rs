//! `PrometheusMetrics` against a scripted HTTP server: the exact requests, and how
//! answers a real Prometheus rarely gives (errors, timeouts, garbage) are reported.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::clock::Clock;
use meshos_rollback_core::model::{Region, ServiceId, ServiceRef};
use meshos_rollback_core::observation::Metrics;
use meshos_rollback_core::provider::{MetricsSource, TimeRange};
use meshos_rollback_http::prometheus::{Baseline, PrometheusMetrics, QueryTemplates};

use crate::recorder::{Recorder, Reply, refused_url};

#[derive(Debug)]
struct Fixed(Timestamp);

impl Clock for Fixed {
    fn now(&self) -> Timestamp {
        self.0
    }
}

const NOW: &str = "2025-10-30T10:25:00Z";

fn svc() -> ServiceRef {
    ServiceRef::new(
        Region::new("us-east-1").unwrap(),
        ServiceId::ecs("meshos-us-east-1", "meshos-api"),
    )
}

fn source(url: &str, templates: QueryTemplates) -> PrometheusMetrics {
    PrometheusMetrics::builder(url)
        .with_clock(Arc::new(Fixed(NOW.parse().unwrap())))
        .with_templates(templates)
        .with_timeout(Duration::from_millis(400))
        .build()
        .unwrap()
}

fn one(value: &str) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1761819900,"{value}"]}}]}}}}"#
    )
}

#[tokio::test]
async fn instant_queries_carry_the_query_time_and_timeout() {
    crate::capture_logs();
    let s = Recorder::start(|_| Reply::new(200, one("12.5"))).await;
    let templates = QueryTemplates::none()
        .with_cpu_pct(r#"max(cpu{cluster="{scope}",svc="{service}",region="{region}"}[{window}])"#);
    let src = source(&format!("{}/prom/", s.url), templates);
    let m = src.observe(&svc(), Duration::from_secs(900)).await.unwrap();
    assert_eq!(
        m,
        Metrics {
            cpu_pct: Some(12.5),
            ..Metrics::default()
        }
    );
    let b = src
        .baseline(&svc(), Duration::from_secs(900))
        .await
        .unwrap();
    assert_eq!(b.cpu_pct, Some(12.5));
    let reqs = s.requests();
    assert_eq!(reqs.len(), 2, "one query per configured metric");
    assert_eq!(reqs[0].path, "/prom/api/v1/query");
    let query = r#"max(cpu{cluster="meshos-us-east-1",svc="meshos-api",region="us-east-1"}[15m])"#;
    let now = NOW.parse::<Timestamp>().unwrap().as_second();
    let p = |s: &str, t: i64| {
        vec![
            ("query".to_owned(), s.to_owned()),
            ("time".to_owned(), format!("{t}.000")),
            ("timeout".to_owned(), "0.400".to_owned()),
        ]
    };
    assert_eq!(reqs[0].params(), p(query, now));
    assert_eq!(reqs[1].params(), p(query, now - 3600), "an hour earlier");
}

#[tokio::test]
async fn range_queries_fill_every_step_and_leave_gaps_empty() {
    crate::capture_logs();
    // Values at the first and third step only; the second is a gap.
    let body = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1761819600,"0.5"],[1761819720,"NaN"]]}]}}"#;
    let s = Recorder::start(move |_| Reply::new(200, body)).await;
    let src = source(&s.url, QueryTemplates::none().with_error_rate_pct("sum(x)"));
    let start: Timestamp = "2025-10-30T10:20:00Z".parse().unwrap();
    let range = TimeRange {
        start,
        end: "2025-10-30T10:22:30Z".parse().unwrap(),
        step: Duration::from_secs(60),
    };
    let points = src
        .observe_range(&svc(), Duration::from_secs(60), &range)
        .await
        .unwrap();
    let got: Vec<(String, Option<f64>)> = points
        .iter()
        .map(|p| (p.at.to_string(), p.metrics.error_rate_pct))
        .collect();
    assert_eq!(
        got,
        [
            ("2025-10-30T10:20:00Z".to_owned(), Some(0.5)),
            ("2025-10-30T10:21:00Z".to_owned(), None),
            ("2025-10-30T10:22:00Z".to_owned(), None),
        ]
    );
    let r = &s.requests()[0];
    assert_eq!(r.path, "/api/v1/query_range");
    assert_eq!(
        r.params(),
        [
            ("query", "sum(x)"),
            ("start", "1761819600.000"),
            ("end", "1761819750.000"),
            ("step", "60.000"),
            ("timeout", "0.400"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    let reversed = TimeRange {
        start: range.end,
        end: range.start,
        ..range
    };
    let e = src
        .observe_range(&svc(), Duration::from_secs(60), &reversed)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(s.requests().len(), 1, "refused before sending");
}

#[tokio::test]
async fn prometheus_errors_timeouts_and_garbage_are_clear_errors() {
    crate::capture_logs();
    let cases: [(Reply, ErrorKind, &str); 6] = [
        (
            Reply::new(
                503,
                r#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#,
            ),
            ErrorKind::Transient,
            "HTTP 503 Service Unavailable: timeout: query timed out in expression evaluation",
        ),
        (
            Reply::new(
                422,
                r#"{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}"#,
            ),
            ErrorKind::InvalidInput,
            "execution: many-to-many matching not allowed",
        ),
        (
            Reply::new(401, "Unauthorized"),
            ErrorKind::PermissionDenied,
            "HTTP 401 Unauthorized: Unauthorized",
        ),
        (
            Reply::new(200, "<html>proxy login</html>"),
            ErrorKind::Failed,
            "unexpected answer",
        ),
        (
            Reply::new(
                200,
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"lots"]}]}}"#,
            ),
            ErrorKind::Failed,
            r#"sample value "lots" is not a number"#,
        ),
        (
            Reply::new(200, one("1")).after(Duration::from_secs(3)),
            ErrorKind::Transient,
            "no answer within the 400ms request timeout",
        ),
    ];
    for (reply, kind, text) in cases {
        let s = Recorder::start(move |_| reply.clone()).await;
        let src = source(&s.url, QueryTemplates::none().with_memory_pct("sum(m)"));
        let e = src
            .observe(&svc(), Duration::from_secs(300))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.to_string().contains(text), "{e}");
        assert!(
            e.to_string()
                .contains("observe memory_pct query for us-east-1/ecs:meshos-us-east-1/meshos-api"),
            "the error names the metric and service: {e}"
        );
        assert_eq!(s.requests().len(), 1, "no retry");
    }
    let src = source(&refused_url(), QueryTemplates::default());
    let e = src
        .observe(&svc(), Duration::from_secs(300))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
}

#[test]
fn settings_are_checked_when_built() {
    let bad = [
        PrometheusMetrics::builder("localhost:9090").build(),
        PrometheusMetrics::builder("http://127.0.0.1:9090/?x=1").build(),
        PrometheusMetrics::builder("http://127.0.0.1:9090")
            .with_timeout(Duration::ZERO)
            .build(),
        PrometheusMetrics::builder("http://127.0.0.1:9090")
            .with_baseline(Baseline::Offset(Duration::ZERO))
            .build(),
        PrometheusMetrics::builder("http://127.0.0.1:9090")
            .with_templates(QueryTemplates::none().with_cpu_pct(r#"up{job="{job}"}"#))
            .build(),
    ];
    for b in bad {
        assert_eq!(b.unwrap_err().kind(), ErrorKind::InvalidInput);
    }
    let p = PrometheusMetrics::builder("https://user:pw@prom.internal/prometheus")
        .build()
        .unwrap();
    assert_eq!(
        p.to_string(),
        "Prometheus(https://prom.internal/prometheus)"
    );
    assert!(!format!("{p:?}").contains("pw@"), "{p:?}");
}
