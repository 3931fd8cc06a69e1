use std::collections::BTreeMap;
use std::time::Duration;

use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::conformance::notify::run_escalator;
use meshos_rollback_core::model::Severity;
use meshos_rollback_core::provider::{ChangeEvent, Escalation, Escalator};
use meshos_rollback_http::pagerduty::PagerDutyEscalator;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::recorder::{Recorded, Recorder, Reply, refused_url};
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

/// A fake Events API v2 as strict as the reference: it answers what PagerDuty answers,
/// and refuses what PagerDuty refuses, with PagerDuty's error shape.
///
/// Alert events, `POST /v2/enqueue`:
/// <https://developer.pagerduty.com/api-reference/368ae3d938c9e-send-an-event-to-pager-duty>
/// and <https://developer.pagerduty.com/docs/send-alert-event> (`routing_key` and
/// `event_action` required, `event_action` one of `trigger`, `acknowledge`, `resolve`;
/// `dedup_key` at most 255 characters and required unless triggering; a trigger's
/// `payload.summary`, `payload.source` and `payload.severity` required, the summary at
/// most 1024 characters). Change events, `POST /v2/change/enqueue`:
/// <https://developer.pagerduty.com/docs/send-change-event> (`routing_key` and
/// `payload.summary` required, the summary at most 1024 characters). Both answer
/// `202 Accepted` with `{"status":"success",…}`; a refused event gets `400` with
/// `{"status":"invalid event","message":"Event object is invalid","errors":[…]}`.
pub(crate) fn strict_pagerduty(r: &Recorded) -> Reply {
    let invalid = |error: &str| {
        Reply::new(
            400,
            json!({
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": [error],
            })
            .to_string(),
        )
    };
    if r.method != "POST" {
        return Reply::new(405, "");
    }
    let Ok(v) = serde_json::from_str::<Value>(&r.body) else {
        return Reply::new(
            400,
            r#"{"status":"Unrecognized object","message":"Event object format is unrecognized","errors":["JSON parse error"]}"#,
        );
    };
    let text = |pointer: &str| v.pointer(pointer).and_then(Value::as_str);
    let blank = |pointer: &str| text(pointer).is_none_or(|s| s.trim().is_empty());
    if blank("/routing_key") {
        return invalid("'routing_key' is missing or blank");
    }
    let summary_too_long = text("/payload/summary").is_some_and(|s| s.chars().count() > 1024);
    match r.path.as_str() {
        "/v2/enqueue" => {
            let action = text("/event_action");
            if !matches!(action, Some("trigger" | "acknowledge" | "resolve")) {
                return invalid("'event_action' is missing or invalid");
            }
            if text("/dedup_key").is_some_and(|k| k.chars().count() > 255) {
                return invalid("'dedup_key' is too long (maximum is 255 characters)");
            }
            if action != Some("trigger") && blank("/dedup_key") {
                return invalid("'dedup_key' is missing or blank");
            }
            if action == Some("trigger") {
                if blank("/payload/summary") {
                    return invalid("'payload.summary' is missing or blank");
                }
                if summary_too_long {
                    return invalid("'payload.summary' is too long (maximum is 1024 characters)");
                }
                if blank("/payload/source") {
                    return invalid("'payload.source' is missing or blank");
                }
                if !matches!(
                    text("/payload/severity"),
                    Some("critical" | "error" | "warning" | "info")
                ) {
                    return invalid("'payload.severity' is missing or invalid");
                }
            }
            let key = text("/dedup_key").unwrap_or("generated-0001");
            Reply::new(
                202,
                json!({"status": "success", "message": "Event processed", "dedup_key": key})
                    .to_string(),
            )
        }
        "/v2/change/enqueue" => {
            if blank("/payload/summary") {
                return invalid("'payload.summary' is missing or blank");
            }
            if summary_too_long {
                return invalid("'payload.summary' is too long (maximum is 1024 characters)");
            }
            if let Some(ts) = v.pointer("/payload/timestamp")
                && ts
                    .as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .is_none()
            {
                return invalid("'payload.timestamp' is not a valid timestamp");
            }
            Reply::new(
                202,
                r#"{"status":"success","message":"Change event processed"}"#,
            )
        }
        _ => Reply::new(404, ""),
    }
}

fn change() -> ChangeEvent {
    ChangeEvent {
        summary: "Rollback of meshos-api in us-east-1 to v2.4.9 started".into(),
        source: "meshos-rollback/us-east-1".into(),
        timestamp: "2025-10-30T10:15:00Z".parse().unwrap(),
        details: BTreeMap::from([
            ("incident".to_owned(), "INC-20251030-001".to_owned()),
            ("run".to_owned(), "run-42".to_owned()),
        ]),
    }
}

#[tokio::test]
async fn the_fake_is_as_strict_as_pagerduty() {
    crate::capture_logs();
    let pd = Recorder::start(strict_pagerduty).await;
    let http = crate::plain_http_client();
    let post = |path: &str, body: Value| {
        let req = http.post(format!("{}{path}", pd.url)).json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let key = routing_key();
    let trigger = json!({
        "routing_key": key, "event_action": "trigger", "dedup_key": "k",
        "payload": {"summary": "s", "source": "src", "severity": "critical"}
    });
    assert_eq!(post("/v2/enqueue", trigger.clone()).await.0, 202);
    for (path, body, error) in [
        (
            "/v2/enqueue",
            json!({"event_action": "resolve", "dedup_key": "k"}),
            "'routing_key' is missing",
        ),
        (
            "/v2/enqueue",
            json!({"routing_key": key, "event_action": "escalate", "dedup_key": "k"}),
            "'event_action' is missing or invalid",
        ),
        (
            "/v2/enqueue",
            json!({"routing_key": key, "event_action": "acknowledge"}),
            "'dedup_key' is missing",
        ),
        (
            "/v2/enqueue",
            json!({"routing_key": key, "event_action": "trigger", "dedup_key": "k",
                   "payload": {"summary": "x".repeat(1025), "source": "src", "severity": "info"}}),
            "'payload.summary' is too long",
        ),
        (
            "/v2/enqueue",
            json!({"routing_key": key, "event_action": "resolve", "dedup_key": "k".repeat(256)}),
            "'dedup_key' is too long",
        ),
        (
            "/v2/change/enqueue",
            json!({"routing_key": key, "payload": {"source": "src"}}),
            "'payload.summary' is missing",
        ),
        (
            "/v2/change/enqueue",
            json!({"routing_key": key, "payload": {"summary": "x".repeat(1025)}}),
            "'payload.summary' is too long",
        ),
    ] {
        let (status, answer) = post(path, body).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(answer.contains(error), "{answer}");
    }
    assert_eq!(
        post(
            "/v2/change/enqueue",
            json!({"routing_key": key, "payload": {"summary": "s"}})
        )
        .await
        .0,
        202
    );
}

#[tokio::test]
async fn conformance_suite() {
    crate::capture_logs();
    let pd = Recorder::start(strict_pagerduty).await;
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
    let pd = Recorder::start(strict_pagerduty).await;
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
async fn acknowledge_and_change_event_send_exact_payloads() {
    crate::capture_logs();
    let pd = Recorder::start(strict_pagerduty).await;
    let e = escalator(&pd.url);
    e.trigger(&page()).await.unwrap();
    e.acknowledge("meshos-INC-20251030-001").await.unwrap();
    e.change_event(&change()).await.unwrap();
    e.resolve("meshos-INC-20251030-001").await.unwrap();
    let got = pd.requests();
    assert_eq!(got.len(), 4, "one POST each, no retry, nothing else");
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.content_type, "application/json");
    }
    assert_eq!(got[1].path, "/v2/enqueue");
    assert_eq!(
        got[1].json(),
        json!({
            "routing_key": routing_key(),
            "event_action": "acknowledge",
            "dedup_key": "meshos-INC-20251030-001"
        })
    );
    assert_eq!(got[2].path, "/v2/change/enqueue");
    assert_eq!(
        got[2].json(),
        json!({
            "routing_key": routing_key(),
            "payload": {
                "summary": "Rollback of meshos-api in us-east-1 to v2.4.9 started",
                "timestamp": "2025-10-30T10:15:00Z",
                "source": "meshos-rollback/us-east-1",
                "custom_details": {
                    "incident": "INC-20251030-001",
                    "run": "run-42"
                }
            }
        })
    );
    assert_eq!(got[3].json()["event_action"], "resolve");
}

#[tokio::test]
async fn change_events_are_checked_cut_and_classified() {
    crate::capture_logs();
    let pd = Recorder::start(strict_pagerduty).await;
    let e = escalator(&pd.url);
    // Sub-second timestamps stay RFC 3339; a long summary is cut, not refused.
    let long = ChangeEvent {
        summary: "é".repeat(3000),
        source: String::new(),
        timestamp: "2025-10-30T10:15:00.25Z".parse().unwrap(),
        details: BTreeMap::new(),
    };
    e.change_event(&long).await.unwrap();
    let v = pd.requests()[0].json();
    assert_eq!(v["payload"]["timestamp"], "2025-10-30T10:15:00.25Z");
    assert_eq!(
        v["payload"]["summary"].as_str().unwrap().chars().count(),
        1024
    );
    assert!(
        v["payload"].get("source").is_none(),
        "an empty source is left out"
    );
    assert_eq!(v["payload"]["custom_details"], json!({}));

    let err = e
        .change_event(&ChangeEvent {
            summary: " ".into(),
            ..change()
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().starts_with("invalid change.summary"),
        "{err}"
    );
    assert_eq!(pd.requests().len(), 1, "refused before sending");

    let invalid = r#"{"status":"invalid event","message":"Event object is invalid","errors":["'payload.summary' is missing or blank"]}"#;
    for (reply, kind, says) in [
        (
            Reply::new(400, invalid),
            ErrorKind::InvalidInput,
            "invalid change: PagerDuty(http://127.0.0.1:",
        ),
        (
            Reply::new(429, "").with_header("retry-after", "30"),
            ErrorKind::Transient,
            "HTTP 429 Too Many Requests: (Retry-After: 30)",
        ),
        (Reply::new(503, ""), ErrorKind::Transient, "HTTP 503"),
    ] {
        let pd = Recorder::start(move |_| reply.clone()).await;
        let err = escalator(&pd.url)
            .change_event(&change())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert!(err.to_string().contains(says), "{err}");
        assert!(
            err.to_string()
                .contains("change event at 2025-10-30T10:15:00Z"),
            "{err}"
        );
        assert_eq!(pd.requests().len(), 1, "no retry");
        assert_no_secret(&err);
        if kind == ErrorKind::Transient && says.contains("429") {
            assert_eq!(
                err.retry_after(),
                Some(Duration::from_secs(30)),
                "the core retry layer gets the delay"
            );
        }
    }
    // PagerDuty's own words reach the message.
    let pd = Recorder::fixed(400, invalid).await;
    let err = escalator(&pd.url)
        .change_event(&change())
        .await
        .unwrap_err();
    assert!(
        err.to_string().ends_with(
            "HTTP 400 Bad Request: Event object is invalid: 'payload.summary' is missing or blank"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn dedup_keys_are_limited_to_255_characters() {
    crate::capture_logs();
    let pd = Recorder::start(strict_pagerduty).await;
    let e = escalator(&pd.url);
    let longest = "k".repeat(255);
    e.trigger(&Escalation {
        dedup_key: longest.clone(),
        ..page()
    })
    .await
    .unwrap();
    e.acknowledge(&longest).await.unwrap();
    e.resolve(&longest).await.unwrap();
    assert_eq!(pd.requests().len(), 3);

    let too_long = "k".repeat(256);
    let errors = [
        e.trigger(&Escalation {
            dedup_key: too_long.clone(),
            ..page()
        })
        .await
        .unwrap_err(),
        e.acknowledge(&too_long).await.unwrap_err(),
        e.resolve(&too_long).await.unwrap_err(),
        e.acknowledge("").await.unwrap_err(),
    ];
    for err in errors {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(
            err.to_string().starts_with("invalid escalation.dedup_key"),
            "{err}"
        );
    }
    assert_eq!(pd.requests().len(), 3, "refused before sending");
}

#[tokio::test]
async fn severities_and_long_summaries() {
    crate::capture_logs();
    let pd = Recorder::start(strict_pagerduty).await;
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
    let pd = Recorder::start(strict_pagerduty).await;
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
    // PagerDuty's `message` and `errors` are what the message quotes.
    let pd = Recorder::fixed(400, invalid).await;
    let err = escalator(&pd.url).acknowledge("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().starts_with("invalid escalation: PagerDuty(")
            && err.to_string().ends_with(
                "acknowledge \"k\": HTTP 400 Bad Request: Event object is invalid: Length of 'routing_key' is incorrect (should be 32 characters)"
            ),
        "{err}"
    );
    let pd = Recorder::start(|_| Reply::new(429, r#"{"status":"throttle event","message":"Requests for this service are arriving too quickly."}"#).with_header("retry-after", "60")).await;
    let err = escalator(&pd.url).trigger(&page()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(
        err.to_string().ends_with(
            "HTTP 429 Too Many Requests: Requests for this service are arriving too quickly. (Retry-After: 60)"
        ),
        "{err}"
    );
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
    let pd = Recorder::start(strict_pagerduty).await;
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
    let pd = Recorder::start(strict_pagerduty).await;
    let e = escalator(&pd.url);
    assert!(e.to_string().starts_with("PagerDuty(http://127.0.0.1:"));
    assert!(!format!("{e:?}").contains(MARKER), "{e:?}");
    e.trigger(&page()).await.unwrap();
    e.acknowledge("meshos-INC-20251030-001").await.unwrap();
    e.change_event(&change()).await.unwrap();
    tracing::info!(escalator = %e, debug = ?e, "paged");
    let echo = Recorder::start(|r| Reply::new(400, r.body.clone())).await;
    let err = escalator(&echo.url)
        .change_event(&change())
        .await
        .unwrap_err();
    assert_no_secret(&err);
    let err = escalator(&refused_url())
        .trigger(&page())
        .await
        .unwrap_err();
    assert_no_secret(&err);
    let logs = captured_logs();
    assert!(logs.contains("paged"), "the capture works");
    assert!(!logs.contains(MARKER), "a secret reached the logs:\n{logs}");
}
