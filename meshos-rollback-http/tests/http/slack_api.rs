//! `SlackApiNotifier` against `fake_slack`, a local server that answers as the Web API
//! reference documents: <https://api.slack.com/methods/chat.postMessage>,
//! <https://api.slack.com/methods/chat.update>,
//! <https://api.slack.com/docs/rate-limits>.

use std::sync::Arc;
use std::time::Duration;

use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::conformance::notify::run;
use meshos_rollback_core::layer::{Layered, RetryBudget, RetryLayer, RetryPolicy, TimeoutLayer};
use meshos_rollback_core::provider::{Message, MessageKind, Notifier};
use meshos_rollback_core::wait::Backoff;
use meshos_rollback_http::slack_api::{RateLimited, SlackApiNotifier};
use secrecy::SecretString;
use serde_json::json;

use crate::fake_slack::{FakeSlack, Next};
use crate::recorder::refused_url;
use crate::{MARKER, assert_no_secret, captured_logs};

const CHANNEL: &str = "C0ROLLBACK";
const INCIDENT: &str = "INC-20251030-001";

fn token() -> String {
    format!("xoxb-0000-{MARKER}-0123456789abcdef")
}

async fn fake() -> FakeSlack {
    FakeSlack::start(&token(), &[CHANNEL]).await
}

fn notifier_with(base_url: &str, token: &str, channel: &str) -> SlackApiNotifier {
    SlackApiNotifier::builder(SecretString::from(token.to_owned()), channel)
        .with_base_url(base_url)
        .with_label("#rollbacks")
        .with_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn notifier(slack: &FakeSlack) -> SlackApiNotifier {
    notifier_with(&slack.base_url, &token(), CHANNEL)
}

fn message(kind: MessageKind, text: &str) -> Message {
    Message::new(kind, INCIDENT, text)
}

/// The playbook's announcement (Communication § During Rollback).
const ANNOUNCEMENT: &str = "🔄 ROLLBACK IN PROGRESS\nRegion: us-east-1\nReason: High error rate detected\nStarted: 10:15 UTC\nETA: 10:20 UTC\nStatus updates every 2 minutes";

#[tokio::test]
async fn conformance_suite() {
    crate::capture_logs();
    let slack = fake().await;
    let n = notifier(&slack);
    let received = || slack.messages().into_iter().map(|m| m.text).collect();
    run(&n, &received).await;
    let got = slack.messages();
    assert_eq!(got[1].thread_ts.as_deref(), Some(got[0].ts.as_str()));
}

#[tokio::test]
async fn an_incident_is_one_thread_and_its_announcement_shows_the_outcome() {
    crate::capture_logs();
    let slack = fake().await;
    let n = notifier(&slack);
    let update = "Status update (10:17 UTC): 2 of 4 steps done; P95 < 2s & falling";
    let escalation = "Unresolved after 15 minutes: <rollback> needs a decision";
    let resolution = "✅ ROLLBACK COMPLETE\nRegion: us-east-1\nRolled back to v2.4.9";
    n.send(&message(MessageKind::Announcement, ANNOUNCEMENT))
        .await
        .unwrap();
    n.send(&message(MessageKind::StatusUpdate, update))
        .await
        .unwrap();
    n.send(
        &message(MessageKind::Escalation, escalation)
            .with_mentions(["<@U024BE7LH>".to_owned(), "<!subteam^SAZ94GDB8>".to_owned()]),
    )
    .await
    .unwrap();
    n.send(&message(MessageKind::Info, "Customer reports: 3"))
        .await
        .unwrap();
    n.send(&message(MessageKind::Resolution, resolution))
        .await
        .unwrap();

    let calls = slack.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "chat.postMessage",
            "chat.postMessage",
            "chat.postMessage",
            "chat.postMessage",
            "chat.postMessage",
            "chat.update"
        ]
    );
    for c in &calls {
        assert_eq!(
            c.authorization.as_deref(),
            Some(format!("Bearer {}", token()).as_str())
        );
        assert_eq!(c.content_type, "application/json; charset=utf-8");
    }
    let parent = "1700000000.000001";
    // The whole body of each call, nothing more.
    assert_eq!(
        calls[0].body,
        json!({ "channel": CHANNEL, "text": ANNOUNCEMENT })
    );
    assert_eq!(
        calls[1].body,
        json!({
            "channel": CHANNEL,
            "thread_ts": parent,
            "text": "Status update (10:17 UTC): 2 of 4 steps done; P95 &lt; 2s &amp; falling",
        })
    );
    assert_eq!(
        calls[2].body,
        json!({
            "channel": CHANNEL,
            "thread_ts": parent,
            "text": "<@U024BE7LH> <!subteam^SAZ94GDB8>\nUnresolved after 15 minutes: &lt;rollback&gt; needs a decision",
        })
    );
    assert_eq!(
        calls[3].body,
        json!({ "channel": CHANNEL, "thread_ts": parent, "text": "Customer reports: 3" })
    );
    assert_eq!(
        calls[4].body,
        json!({ "channel": CHANNEL, "thread_ts": parent, "text": resolution })
    );
    let resolved = format!("{ANNOUNCEMENT}\n✅ ROLLBACK COMPLETE");
    assert_eq!(
        calls[5].body,
        json!({ "channel": CHANNEL, "ts": parent, "text": resolved })
    );
    // What the channel shows: the edited announcement on top, the rest in its thread.
    let messages = slack.messages();
    assert_eq!(messages[0].text, resolved);
    assert_eq!(messages[0].thread_ts, None);
    assert!(
        messages[1..]
            .iter()
            .all(|m| m.thread_ts.as_deref() == Some(parent))
    );
}

#[tokio::test]
async fn without_an_announcement_messages_go_top_level_and_incidents_keep_apart() {
    crate::capture_logs();
    let slack = fake().await;
    let n = notifier(&slack);
    n.send(&Message::new(MessageKind::StatusUpdate, "INC-2", "update"))
        .await
        .unwrap();
    n.send(&Message::new(MessageKind::Resolution, "INC-2", "✅ done"))
        .await
        .unwrap();
    n.send(&Message::new(
        MessageKind::Announcement,
        "INC-3",
        "🔄 three",
    ))
    .await
    .unwrap();
    n.send(&Message::new(MessageKind::StatusUpdate, "INC-4", "four"))
        .await
        .unwrap();
    let calls = slack.calls();
    assert_eq!(calls.len(), 4, "no chat.update without an announcement");
    assert!(calls.iter().all(|c| c.method == "chat.postMessage"));
    assert!(
        calls.iter().all(|c| c.body.get("thread_ts").is_none()),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_new_process_continues_the_thread_from_the_journalled_token() {
    crate::capture_logs();
    let slack = fake().await;
    let first = notifier(&slack);
    assert_eq!(first.thread(INCIDENT), None, "no announcement yet");
    first
        .send(&message(MessageKind::Announcement, ANNOUNCEMENT))
        .await
        .unwrap();
    let token = first
        .thread(INCIDENT)
        .expect("a thread after the announcement");
    assert!(
        !token.contains(MARKER),
        "the bot token is not in the thread token"
    );
    // The process dies; a resumed run starts a new notifier and hands it the token.
    let second = notifier(&slack);
    second.continue_thread(INCIDENT, &token);
    second
        .send(&message(MessageKind::Announcement, "🔁 ROLLBACK RESUMED"))
        .await
        .unwrap();
    second
        .send(&message(MessageKind::Resolution, "✅ ROLLBACK COMPLETE"))
        .await
        .unwrap();
    let got = slack.messages();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[1].thread_ts.as_deref(),
        Some(got[0].ts.as_str()),
        "same thread"
    );
    assert_eq!(got[2].thread_ts.as_deref(), Some(got[0].ts.as_str()));
    // A token it cannot read starts a new thread rather than failing.
    let third = notifier(&slack);
    third.continue_thread("INC-2", "not a token");
    third
        .send(&Message::new(MessageKind::Announcement, "INC-2", "new"))
        .await
        .unwrap();
    assert_eq!(slack.messages().last().unwrap().thread_ts, None);
}

#[tokio::test]
async fn a_repeated_identical_send_posts_once() {
    crate::capture_logs();
    let slack = fake().await;
    let n = notifier(&slack);
    let announcement = message(MessageKind::Announcement, ANNOUNCEMENT);
    let resolution = message(MessageKind::Resolution, "✅ ROLLBACK COMPLETE");
    for m in [&announcement, &announcement, &resolution, &resolution] {
        n.send(m).await.unwrap();
    }
    let methods: Vec<String> = slack.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        ["chat.postMessage", "chat.postMessage", "chat.update"]
    );
    // Another text, kind or incident is another message.
    n.send(&message(
        MessageKind::Resolution,
        "✅ ROLLBACK COMPLETE (2)",
    ))
    .await
    .unwrap();
    n.send(&message(MessageKind::Info, "✅ ROLLBACK COMPLETE"))
        .await
        .unwrap();
    assert_eq!(slack.messages().len(), 4);
}

#[tokio::test]
async fn a_failed_update_is_retried_without_posting_the_resolution_again() {
    crate::capture_logs();
    let slack = fake().await;
    let n = notifier(&slack);
    n.send(&message(MessageKind::Announcement, ANNOUNCEMENT))
        .await
        .unwrap();
    let resolution = message(MessageKind::Resolution, "✅ ROLLBACK COMPLETE");
    // The reply is posted; the edit is throttled.
    slack.next([Next::Normal, Next::Status(503)]);
    let e = n.send(&resolution).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains("mark the announcement"), "{e}");
    n.send(&resolution).await.unwrap();
    let methods: Vec<String> = slack.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        [
            "chat.postMessage",
            "chat.postMessage",
            "chat.update",
            "chat.update"
        ]
    );
    assert_eq!(
        slack.messages()[0].text,
        format!("{ANNOUNCEMENT}\n✅ ROLLBACK COMPLETE")
    );
}

#[tokio::test]
async fn an_answer_lost_to_a_timeout_still_duplicates_as_documented() {
    crate::capture_logs();
    let slack = fake().await;
    let n = notifier(&slack);
    slack.next([Next::Late(Duration::from_secs(2))]);
    let m = message(MessageKind::StatusUpdate, "update");
    let e = n.send(&m).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    n.send(&m).await.unwrap();
    assert_eq!(slack.messages().len(), 2, "Slack posted both attempts");
}

#[tokio::test]
async fn slack_errors_are_classified_and_name_slacks_error() {
    crate::capture_logs();
    let slack = fake().await;
    let m = message(MessageKind::StatusUpdate, "update");

    let wrong_token = format!("xoxb-9999-{MARKER}-revoked");
    let e = notifier_with(&slack.base_url, &wrong_token, CHANNEL)
        .send(&m)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_eq!(
        e.to_string(),
        "Slack API(#rollbacks): permission denied: post StatusUpdate message of INC-20251030-001: chat.postMessage: invalid_auth"
    );
    assert_no_secret(&e);

    let e = notifier_with(&slack.base_url, &token(), "C0UNKNOWN")
        .send(&m)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("channel C0UNKNOWN"), "{e}");
    assert!(e.to_string().contains("channel_not_found"), "{e}");
    assert_no_secret(&e);

    let n = notifier(&slack);
    for (code, kind) in [
        ("missing_scope", ErrorKind::PermissionDenied),
        ("token_revoked", ErrorKind::PermissionDenied),
        ("not_in_channel", ErrorKind::NotFound),
        ("ratelimited", ErrorKind::Transient),
        ("msg_too_long", ErrorKind::Failed),
    ] {
        slack.next([Next::Error(code)]);
        let e = n.send(&m).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{code}: {e}");
        assert!(e.to_string().contains(code), "{e}");
        assert_no_secret(&e);
    }
    for status in [500, 503] {
        slack.next([Next::Status(status)]);
        let e = n.send(&m).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient, "{status}: {e}");
    }
    assert!(slack.messages().is_empty(), "nothing was posted");
}

#[tokio::test]
async fn a_429_is_transient_and_carries_retry_after() {
    crate::capture_logs();
    let slack = fake().await;
    let n = notifier(&slack);
    slack.next([Next::RateLimited(30)]);
    let e = n
        .send(&message(MessageKind::StatusUpdate, "update"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.is_retryable());
    assert!(
        e.to_string()
            .ends_with("chat.postMessage is rate limited; retry after 30s"),
        "{e}"
    );
    let limited = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<RateLimited>())
        .expect("the source says how long to wait");
    assert_eq!(limited.retry_after(), Duration::from_secs(30));
    assert_eq!(
        e.retry_after(),
        Some(Duration::from_secs(30)),
        "the core retry layer finds the delay"
    );
    assert_eq!(limited.method(), "chat.postMessage");
    assert_no_secret(&e);
    assert!(slack.messages().is_empty());
}

#[tokio::test]
async fn the_core_retry_layer_delivers_after_a_429_once() {
    crate::capture_logs();
    let slack = fake().await;
    let inner: Arc<dyn Notifier> = Arc::new(notifier(&slack));
    let policy = RetryPolicy {
        max_attempts: 3,
        backoff: Backoff {
            initial: Duration::from_millis(20),
            factor: 2.0,
            max_interval: Duration::from_millis(50),
            max_checks: None,
        },
        jitter: false,
        ..RetryPolicy::default()
    };
    let retried = Layered::new(
        inner.clone(),
        RetryLayer::new(policy, RetryBudget::new(10, 0.1)),
    );
    let timed = Layered::new(
        Arc::new(retried) as Arc<dyn Notifier>,
        TimeoutLayer::new(Duration::from_secs(5)),
    );
    slack.next([Next::RateLimited(1)]);
    let start = std::time::Instant::now();
    timed
        .send(&message(MessageKind::Announcement, ANNOUNCEMENT))
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Slack's Retry-After (1 s) is waited out, not the 20 ms backoff: {:?}",
        start.elapsed()
    );
    assert_eq!(slack.calls().len(), 2, "one 429, then delivered");
    assert_eq!(slack.messages().len(), 1);
}

#[tokio::test]
async fn a_stakeholder_email_is_unsupported_and_nothing_is_posted() {
    crate::capture_logs();
    let slack = fake().await;
    let n = notifier(&slack);
    let e = n
        .send(
            &message(MessageKind::StakeholderEmail, "Rollback complete")
                .with_subject("[RESOLVED] meshos-api rollback"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().starts_with("Slack API(#rollbacks): "), "{e}");
    let e = n
        .send(&message(MessageKind::Info, "x").with_mentions(["@oncall".to_owned()]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = n.send(&message(MessageKind::Info, " ")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(slack.calls().is_empty());
}

/// Pins the fake's strictness, so the tests above cannot pass against a lenient peer.
#[tokio::test]
async fn the_fake_is_as_strict_as_the_reference() {
    crate::capture_logs();
    let slack = fake().await;
    // Plain HTTP only; the crate's TLS setup is not what this test is about.
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap();
    let call = |method: &str, auth: Option<String>, body: serde_json::Value| {
        let mut req = client
            .post(format!("{}{method}", slack.base_url))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let bearer = || Some(format!("Bearer {}", token()));
    let post = json!({ "channel": CHANNEL, "text": "hi" });
    let error = |v: serde_json::Value| v["error"].as_str().unwrap_or("").to_owned();
    assert_eq!(
        error(call("chat.postMessage", None, post.clone()).await),
        "not_authed"
    );
    assert_eq!(
        error(
            call(
                "chat.postMessage",
                Some("Bearer xoxb-other".into()),
                post.clone()
            )
            .await
        ),
        "invalid_auth"
    );
    assert_eq!(
        error(
            call(
                "chat.postMessage",
                bearer(),
                json!({ "channel": "C0NOPE", "text": "hi" })
            )
            .await
        ),
        "channel_not_found"
    );
    assert_eq!(
        error(
            call(
                "chat.postMessage",
                bearer(),
                json!({ "channel": CHANNEL, "text": "hi", "thread_ts": "1.000001" })
            )
            .await
        ),
        "thread_not_found"
    );
    assert_eq!(
        error(
            call(
                "chat.update",
                bearer(),
                json!({ "channel": CHANNEL, "ts": "1.000001", "text": "x" })
            )
            .await
        ),
        "message_not_found"
    );
    let ok = call("chat.postMessage", bearer(), post).await;
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["channel"], CHANNEL);
    assert!(slack.messages().len() == 1 && ok["ts"] == slack.messages()[0].ts.as_str());
}

#[tokio::test]
async fn the_token_is_in_no_debug_display_error_or_log_line() {
    crate::capture_logs();
    let slack = fake().await;
    let n = notifier(&slack);
    assert_eq!(n.to_string(), "Slack API(#rollbacks)");
    assert!(!format!("{n:?}").contains(MARKER), "{n:?}");
    let unlabelled = SlackApiNotifier::builder(SecretString::from(token()), CHANNEL)
        .build()
        .unwrap();
    assert_eq!(unlabelled.to_string(), "Slack API(C0ROLLBACK)");
    assert!(!format!("{unlabelled:?}").contains(MARKER));
    n.send(&message(MessageKind::Announcement, ANNOUNCEMENT))
        .await
        .unwrap();
    tracing::info!(notifier = %n, debug = ?n, "sent");
    let e = notifier_with(&format!("{}/api/", refused_url()), &token(), CHANNEL)
        .send(&message(MessageKind::Info, "x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert_no_secret(&e);
    let logs = captured_logs();
    assert!(logs.contains("provider call failed"), "the capture works");
    assert!(logs.contains("Slack API(#rollbacks)"));
    assert!(!logs.contains(MARKER), "a secret reached the logs:\n{logs}");
}
