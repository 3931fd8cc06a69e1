use std::collections::BTreeMap;
use std::time::Duration;

use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::conformance::notify::run_escalator;
use meshos_rollback_core::model::Severity;
use meshos_rollback_core::provider::{Escalation, Escalator};
use meshos_rollback_http::pagerduty::PagerDutyEscalator;
use secrecy::SecretString;
use serde_json::json;

use crate::recorder::{Recorder, Reply, refused_url};
use crate::{MARKER, assert_no_secret, captured_logs};

fn routing_key() -> String {
    format!("R0{MARKER}0123456789abcdef012345")
}

const ACCEPTED: &str =
    r#"{"status":"success","message":"Event processed","dedup_key":"meshos-INC-20251030-001"}"#;

fn escalator(base: &str) -> PagerDutyEscalator {
    PagerDutyEscalator::builder(SecretString::from(routing_key()))
        .with_base_url(base)
        .with_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn page() -> Escalation {
    Escalation {
        dedup_key: "meshos-INC-20251030-001".into(),
        summary: "Data corruption in us-east-1: stop all deployments, escalate".into(),
        severity: Severity::Critical,
        source: "meshos-rollback/us-east-1".into(),
        details: BTreeMap::from([
            ("finding".to_owned(), "data corruption detected".to_owned()),
            ("region".to_owned(), "us-east-1".to_owned()),
        ]),
    }
}

#[tokio::test]
async fn conformance_suite() {
    crate::capture_logs();
    let pd = Recorder::fixed(202, ACCEPTED).await;
    let e = escalator(&pd.url);
    let received = || {
        pd.requests()
            .iter()
            .map(|r| {
                let v = r.json();
                (
                    v["event_action"].as_str().unwrap().to_owned(),
                    v["dedup_key"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    run_escalator(&e, "meshos-INC-1", &received).await;
}

#[tokio::test]
async fn trigger_and_resolve_send_exact_events_v2_payloads() {
    crate::capture_logs();
    let pd = Recorder::fixed(202, ACCEPTED).await;
    let e = escalator(&pd.url);
    e.trigger(&page()).await.unwrap();
    e.resolve("meshos-INC-20251030-001").await.unwrap();
    let got = pd.requests();
    assert_eq!(got.len(), 2);
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v2/enqueue");
        assert_eq!(r.content_type, "application/json");
    }
    assert_eq!(
        got[0].json(),
        json!({
            "routing_key": routing_key(),
            "event_action": "trigger",
            "dedup_key": "meshos-INC-20251030-001",
            "client": "meshos-rollback",
            "payload": {
                "summary": "Data corruption in us-east-1: stop all deployments, escalate",
                "source": "meshos-rollback/us-east-1",
                "severity": "critical",
                "custom_details": {
                    "finding": "data corruption detected",
                    "region": "us-east-1"
                }
            }
        })
    );
    assert_eq!(
        got[1].json(),
        json!({
            "routing_key": routing_key(),
            "event_action": "resolve",
            "dedup_key": "meshos-INC-20251030-001"
        })
    );
}

#[tokio::test]
async fn severities_and_long_summaries() {
    crate::capture_logs();
    let pd = Recorder::fixed(202, ACCEPTED).await;
    let e = escalator(&pd.url);
    let mut p = page();
    p.severity = Severity::High;
    p.summary = "x".repeat(3000);
    e.trigger(&p).await.unwrap();
    let v = pd.requests()[0].json();
    assert_eq!(v["payload"]["severity"], "error");
    let summary = v["payload"]["summary"].as_str().unwrap();
    assert_eq!(summary.chars().count(), 1024);
    assert!(summary.ends_with('…'));
}

#[tokio::test]
async fn incomplete_pages_are_refused_before_sending() {
    crate::capture_logs();
    let pd = Recorder::fixed(202, ACCEPTED).await;
    let e = escalator(&pd.url);
    for (field, page) in [
        (
            "escalation.dedup_key",
            Escalation {
                dedup_key: String::new(),
                ..page()
            },
        ),
        (
            "escalation.summary",
            Escalation {
                summary: " ".into(),
                ..page()
            },
        ),
        (
            "escalation.source",
            Escalation {
                source: String::new(),
                ..page()
            },
        ),
    ] {
        let err = e.trigger(&page).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.to_string().starts_with(&format!("invalid {field}")),
            "{err}"
        );
    }
    assert_eq!(
        e.resolve("").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(pd.requests().is_empty());
}

#[tokio::test]
async fn answers_are_classified_redacted_and_never_retried() {
    crate::capture_logs();
    let invalid = r#"{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)"]}"#;
    for (status, body, kind) in [
        (400, invalid, ErrorKind::InvalidInput),
        (
            429,
            r#"{"status":"throttle event","message":"Requests for this service are arriving too quickly."}"#,
            ErrorKind::Transient,
        ),
        (500, "", ErrorKind::Transient),
        (502, "bad gateway", ErrorKind::Transient),
        (403, "forbidden", ErrorKind::PermissionDenied),
    ] {
        let pd = Recorder::fixed(status, body).await;
        let err = escalator(&pd.url).trigger(&page()).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{status}: {err}");
        assert!(err.to_string().contains(&format!("HTTP {status}")), "{err}");
        assert!(
            err.to_string().contains("PagerDuty(http://127.0.0.1:"),
            "{err}"
        );
        assert_eq!(pd.requests().len(), 1, "no retry");
        assert_no_secret(&err);
    }
    // A server that echoes the routing key back does not get it into the error.
    let pd = Recorder::start(|r| Reply::new(400, r.body.clone())).await;
    let err = escalator(&pd.url).trigger(&page()).await.unwrap_err();
    assert!(
        err.to_string().contains(r#""routing_key":"[redacted]""#),
        "{err}"
    );
    assert_no_secret(&err);
}

#[tokio::test]
async fn timeouts_and_refusals_are_transient() {
    crate::capture_logs();
    let pd = Recorder::fixed(202, ACCEPTED).await;
    pd.script([Reply::new(202, ACCEPTED).after(Duration::from_secs(3))]);
    let err = escalator(&pd.url).resolve("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(
        err.to_string()
            .contains("no answer within the 500ms request timeout"),
        "{err}"
    );
    assert_no_secret(&err);
    let err = escalator(&refused_url())
        .trigger(&page())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert_no_secret(&err);
}

#[tokio::test]
async fn the_routing_key_is_in_no_debug_display_or_log_line() {
    crate::capture_logs();
    let pd = Recorder::fixed(202, ACCEPTED).await;
    let e = escalator(&pd.url);
    assert!(e.to_string().starts_with("PagerDuty(http://127.0.0.1:"));
    assert!(!format!("{e:?}").contains(MARKER), "{e:?}");
    e.trigger(&page()).await.unwrap();
    tracing::info!(escalator = %e, debug = ?e, "paged");
    let err = escalator(&refused_url())
        .trigger(&page())
        .await
        .unwrap_err();
    assert_no_secret(&err);
    let logs = captured_logs();
    assert!(logs.contains("paged"), "the capture works");
    assert!(!logs.contains(MARKER), "a secret reached the logs:\n{logs}");
}
