use std::collections::BTreeMap;
use std::time::Duration;

use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::conformance::notify::run;
use meshos_rollback_core::engine::comms;
use meshos_rollback_core::model::Region;
use meshos_rollback_core::provider::{Message, MessageKind, Notifier};
use meshos_rollback_http::slack::SlackNotifier;
use secrecy::SecretString;

use crate::recorder::{Recorder, Reply, refused_url};
use crate::{MARKER, assert_no_secret, captured_logs};

/// The path part of the webhook is the credential.
fn webhook_path() -> String {
    format!("/services/T0MESHOS/B0ROLLBACK/{MARKER}xyzXYZ0123456789")
}

fn notifier(base: &str) -> SlackNotifier {
    SlackNotifier::builder(SecretString::from(format!("{base}{}", webhook_path())))
        .with_label("#rollbacks")
        .with_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn message(kind: MessageKind, text: &str) -> Message {
    Message::new(kind, "INC-20251030-001", text)
}

/// The playbook's announcement, exactly (Communication § During Rollback); the
/// engine's renderer must produce the same text (checked below).
const ANNOUNCEMENT: &str = "🔄 ROLLBACK IN PROGRESS\nRegion: us-east-1\nReason: High error rate detected\nStarted: 10:15 UTC\nETA: 10:20 UTC\nStatus updates every 2 minutes";

#[tokio::test]
async fn conformance_suite() {
    crate::capture_logs();
    let slack = Recorder::fixed(200, "ok").await;
    let n = notifier(&slack.url);
    let received = || {
        slack
            .requests()
            .iter()
            .map(|r| r.json()["text"].as_str().unwrap().to_owned())
            .collect()
    };
    run(&n, &received).await;
}

#[tokio::test]
async fn the_playbooks_messages_arrive_exactly() {
    crate::capture_logs();
    let slack = Recorder::fixed(200, "ok").await;
    let n = notifier(&slack.url);
    // The engine renders the playbook's messages; they must arrive unchanged.
    let started: jiff::Timestamp = "2025-10-30T10:15:00Z".parse().unwrap();
    let announcement = comms::announcement(
        &[Region::new("us-east-1").unwrap()],
        "High error rate detected",
        started,
        Duration::from_secs(300),
        Duration::from_secs(120),
    );
    assert_eq!(announcement, ANNOUNCEMENT);
    let progress = BTreeMap::from([(
        Region::new("us-east-1").unwrap(),
        comms::RegionProgress {
            done: 2,
            total: 4,
            current: Some("shift traffic to stable".into()),
            finished: None,
        },
    )]);
    let update = comms::status_update(
        "2025-10-30T10:17:00Z".parse().unwrap(),
        started,
        Duration::from_secs(300),
        None,
        &progress,
    );
    let update = update.as_str();
    let resolution =
        "✅ ROLLBACK COMPLETE\nRegion: us-east-1\nRolled back to v2.4.9\nHealth checks passing";
    n.send(&message(MessageKind::Announcement, ANNOUNCEMENT))
        .await
        .unwrap();
    n.send(&message(MessageKind::StatusUpdate, update))
        .await
        .unwrap();
    n.send(&message(MessageKind::Resolution, resolution))
        .await
        .unwrap();

    let got = slack.requests();
    assert_eq!(got.len(), 3, "one POST per message, nothing else");
    for (r, text) in got.iter().zip([ANNOUNCEMENT, update, resolution]) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, webhook_path());
        assert_eq!(r.content_type, "application/json");
        // The whole body, byte for byte: one `text` field, nothing else.
        assert_eq!(r.body, serde_json::json!({ "text": text }).to_string());
    }
    assert_eq!(
        got[0].body,
        r#"{"text":"🔄 ROLLBACK IN PROGRESS\nRegion: us-east-1\nReason: High error rate detected\nStarted: 10:15 UTC\nETA: 10:20 UTC\nStatus updates every 2 minutes"}"#
    );
}

#[tokio::test]
async fn slack_control_characters_are_escaped() {
    crate::capture_logs();
    let slack = Recorder::fixed(200, "ok").await;
    let n = notifier(&slack.url);
    n.send(&message(
        MessageKind::Resolution,
        "Error rate < 0.1% & P95 > baseline? <!channel>",
    ))
    .await
    .unwrap();
    assert_eq!(
        slack.requests()[0].json()["text"],
        "Error rate &lt; 0.1% &amp; P95 &gt; baseline? &lt;!channel&gt;"
    );
}

#[tokio::test]
async fn answers_are_classified_and_never_retried() {
    crate::capture_logs();
    for (status, body, kind) in [
        (400, "invalid_payload", ErrorKind::InvalidInput),
        (403, "action_prohibited", ErrorKind::PermissionDenied),
        (404, "no_service", ErrorKind::NotFound),
        (410, "channel_is_archived", ErrorKind::NotFound),
        (429, "rate_limited", ErrorKind::Transient),
        (500, "rollup_error", ErrorKind::Transient),
    ] {
        let slack = Recorder::fixed(status, body).await;
        let n = notifier(&slack.url);
        let e = n
            .send(&message(MessageKind::StatusUpdate, "update"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{status}: {e}");
        assert!(e.to_string().contains(body), "{e}");
        assert!(e.to_string().contains("Slack(#rollbacks)"), "{e}");
        assert_eq!(slack.requests().len(), 1, "{status}: no retry");
        assert_no_secret(&e);
    }
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_transient_and_redacted() {
    crate::capture_logs();
    let slack = Recorder::fixed(200, "ok").await;
    slack.script([Reply::new(200, "ok").after(Duration::from_secs(3))]);
    let n = notifier(&slack.url);
    let e = n
        .send(&message(MessageKind::StatusUpdate, "update"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(
        e.to_string()
            .contains("no answer within the 500ms request timeout"),
        "{e}"
    );
    assert_no_secret(&e);

    let e = notifier(&refused_url())
        .send(&message(MessageKind::StatusUpdate, "update"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("Connection refused"), "{e}");
    assert_no_secret(&e);
}

#[tokio::test]
async fn an_echoed_webhook_is_redacted_from_the_error() {
    crate::capture_logs();
    let slack = Recorder::start(|r| Reply::new(400, format!("bad request to {}", r.path))).await;
    let e = notifier(&slack.url)
        .send(&message(MessageKind::Info, "hi"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .ends_with("HTTP 400 Bad Request: bad request to [redacted]"),
        "{e}"
    );
    assert_no_secret(&e);
}

#[tokio::test]
async fn the_webhook_is_in_no_debug_display_or_log_line() {
    crate::capture_logs();
    let slack = Recorder::fixed(200, "ok").await;
    let n = notifier(&slack.url);
    assert_eq!(n.to_string(), "Slack(#rollbacks)");
    assert!(!format!("{n:?}").contains(MARKER), "{n:?}");
    let unlabelled = SlackNotifier::builder(SecretString::from(format!(
        "https://hooks.slack.com{}",
        webhook_path()
    )))
    .build()
    .unwrap();
    assert_eq!(unlabelled.to_string(), "Slack(hooks.slack.com)");
    n.send(&message(MessageKind::Announcement, ANNOUNCEMENT))
        .await
        .unwrap();
    tracing::info!(notifier = %n, debug = ?n, "sent");
    let e = notifier(&refused_url())
        .send(&message(MessageKind::Info, "x"))
        .await
        .unwrap_err();
    assert_no_secret(&e);
    let logs = captured_logs();
    assert!(
        logs.contains("provider call failed"),
        "the capture works: {logs}"
    );
    assert!(
        logs.contains("reqwest::connect"),
        "reqwest's own log records are captured too"
    );
    assert!(logs.contains("Slack(#rollbacks)"));
    assert!(!logs.contains(MARKER), "a secret reached the logs:\n{logs}");
}
