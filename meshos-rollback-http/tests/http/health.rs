use std::time::Duration;

use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::conformance::health::{HealthFixture, run};
use meshos_rollback_core::model::Region;
use meshos_rollback_core::provider::{HealthChecker, HealthEndpoint};
use meshos_rollback_http::health::HttpHealthChecker;

use crate::recorder::{Recorder, Reply, refused_url};

async fn service() -> Recorder {
    Recorder::start(|r| match r.path.as_str() {
        "/health" => Reply::new(200, "OK"),
        "/api/v1/status" => Reply::new(503, r#"{"status":"degraded","db":"down"}"#),
        "/moved" => Reply::new(302, ""),
        "/slow" => Reply::new(200, "late").after(Duration::from_secs(3)),
        _ => Reply::new(404, "no such page"),
    })
    .await
}

#[tokio::test]
async fn conformance_suite() {
    crate::capture_logs();
    let s = service().await;
    let checker = HttpHealthChecker::builder().build().unwrap();
    let fx = HealthFixture {
        healthy: HealthEndpoint::new("health", format!("{}/health", s.url)),
        failing: HealthEndpoint::new("api status", format!("{}/api/v1/status", s.url)),
        unreachable: HealthEndpoint::new("down", format!("{}/health", refused_url())),
    };
    run(&checker, &fx).await;
    assert_eq!(checker.to_string(), "HttpHealthChecker(timeout 5s)");
}

#[tokio::test]
async fn results_say_what_curl_f_would() {
    crate::capture_logs();
    let s = service().await;
    let checker = HttpHealthChecker::builder().build().unwrap();

    let ok = checker
        .check(&HealthEndpoint::new("health", format!("{}/health", s.url)))
        .await
        .unwrap();
    assert!(ok.healthy);
    assert_eq!(
        (ok.endpoint.as_str(), ok.status, ok.detail.as_str()),
        ("health", Some(200), "OK")
    );

    let bad = checker
        .check(&HealthEndpoint::new(
            "api status",
            format!("{}/api/v1/status", s.url),
        ))
        .await
        .unwrap();
    assert!(!bad.healthy);
    assert_eq!(bad.status, Some(503));
    assert_eq!(
        bad.detail,
        r#"HTTP 503 Service Unavailable: {"status":"degraded","db":"down"}"#
    );
    assert!(
        bad.to_string().starts_with("FAIL: api status HTTP 503 in "),
        "{bad}"
    );

    // `curl -f` succeeds on a redirect and does not follow it without -L.
    let moved = checker
        .check(&HealthEndpoint::new("moved", format!("{}/moved", s.url)))
        .await
        .unwrap();
    assert!(moved.healthy && moved.status == Some(302), "{moved}");

    let missing = checker
        .check(&HealthEndpoint::new("missing", format!("{}/nope", s.url)))
        .await
        .unwrap();
    assert!(!missing.healthy && missing.status == Some(404), "{missing}");

    // One GET per probe: no retry, no redirect followed.
    let paths: Vec<(String, String)> = s
        .requests()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    assert_eq!(
        paths,
        [
            ("GET", "/health"),
            ("GET", "/api/v1/status"),
            ("GET", "/moved"),
            ("GET", "/nope")
        ]
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
    );
}

#[tokio::test]
async fn a_slow_endpoint_is_unhealthy_after_the_timeout() {
    crate::capture_logs();
    let s = service().await;
    let checker = HttpHealthChecker::builder()
        .with_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let slow = checker
        .check(&HealthEndpoint::new("slow", format!("{}/slow", s.url)))
        .await
        .unwrap();
    assert!(!slow.healthy);
    assert_eq!(slow.status, None);
    assert_eq!(slow.detail, "no answer within 300ms");
    assert!(
        slow.elapsed >= Duration::from_millis(300) && slow.elapsed < Duration::from_secs(2),
        "{:?}",
        slow.elapsed
    );
}

#[tokio::test]
async fn a_refused_connection_says_so() {
    crate::capture_logs();
    let checker = HttpHealthChecker::builder().build().unwrap();
    let down = checker
        .check(&HealthEndpoint::new(
            "down",
            format!("{}/health", refused_url()),
        ))
        .await
        .unwrap();
    assert!(!down.healthy && down.status.is_none());
    assert!(
        down.detail.contains("Connection refused"),
        "{}",
        down.detail
    );
}

#[tokio::test]
async fn invalid_urls_are_errors_that_do_not_echo_the_url() {
    crate::capture_logs();
    let checker = HttpHealthChecker::builder().build().unwrap();
    for url in [
        "not a url".to_owned(),
        format!("ftp://host/health?token={}", crate::MARKER),
        format!("/health?token={}", crate::MARKER),
    ] {
        let e = checker
            .check(&HealthEndpoint::new("bad", url.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{url}");
        assert!(
            e.to_string()
                .starts_with(r#"invalid health endpoint "bad""#),
            "{e}"
        );
        crate::assert_no_secret(&e);
    }
    let e = HttpHealthChecker::builder()
        .with_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn the_playbooks_endpoints() {
    let [health, status] =
        HttpHealthChecker::playbook_endpoints(&Region::new("us-east-1").unwrap());
    assert_eq!(
        health,
        HealthEndpoint::new("health", "https://us-east-1.meshos.io/health")
    );
    assert_eq!(
        status,
        HealthEndpoint::new("api status", "https://us-east-1.meshos.io/api/v1/status")
    );
}
