use std::time::Duration;

use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::conformance::notify::run;
use meshos_rollback_core::provider::{Message, MessageKind, Notifier};
use meshos_rollback_http::teams::TeamsNotifier;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::recorder::{Recorded, Recorder, Reply, refused_url};
use crate::{MARKER, assert_no_secret, captured_logs};

/// A Workflows trigger URL is `…/workflows/<id>/triggers/manual/paths/invoke?…&sig=<sig>`;
/// the `sig` signs it and is the credential.
const WEBHOOK_PATH: &str = "/powerautomate/automations/direct/workflows/0a1b2c3d4e5f40718293a4b5c6d7e8f9/triggers/manual/paths/invoke";

fn sig() -> String {
    format!("{MARKER}-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0")
}

fn webhook_query() -> String {
    format!(
        "api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={}",
        sig()
    )
}

fn webhook(base: &str) -> String {
    format!("{base}{WEBHOOK_PATH}?{}", webhook_query())
}

fn notifier(base: &str) -> TeamsNotifier {
    TeamsNotifier::builder(SecretString::from(webhook(base)))
        .with_label("#mesh-os-oncall")
        .with_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn message(kind: MessageKind, text: &str) -> Message {
    Message::new(kind, "INC-20251030-001", text)
}

/// The playbook's announcement, exactly (Communication § During Rollback).
const ANNOUNCEMENT: &str = "🔄 ROLLBACK IN PROGRESS\nRegion: us-east-1\nReason: High error rate detected\nStarted: 10:15 UTC\nETA: 10:20 UTC\nStatus updates every 2 minutes";

fn workflows_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::new(
        status,
        json!({ "error": { "code": code, "message": message } }).to_string(),
    )
}

/// A fake Workflows trigger (*When a Teams webhook request is received*) as strict as
/// the real one with the *Send webhook alerts to a channel* template: the signature
/// must match, the body must be a message whose attachments are Adaptive Cards
/// (`contentType` `application/vnd.microsoft.card.adaptive`, content with `type`
/// `AdaptiveCard`, a `version` and a `body`), or it answers 400, as Workflows does;
/// every mention entity must match an `<at>…</at>` in the card. Accepted: `202`, no body.
fn strict_workflows(r: &Recorded) -> Reply {
    if r.method != "POST" || r.path != WEBHOOK_PATH {
        return workflows_error(404, "TriggerNotFound", "no such workflow trigger");
    }
    let sig_ok = r.params().iter().any(|(k, v)| k == "sig" && *v == sig());
    if !sig_ok {
        return workflows_error(
            401,
            "DirectApiAuthorizationRequired",
            "The request must be authenticated",
        );
    }
    let bad = |why: &str| workflows_error(400, "InvalidRequestContent", why);
    let Ok(v) = serde_json::from_str::<Value>(&r.body) else {
        return bad("The request content is not valid JSON");
    };
    let Some(attachments) = v["attachments"].as_array().filter(|a| !a.is_empty()) else {
        return bad("'attachments' is missing or empty");
    };
    for a in attachments {
        if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
            return bad("the attachment is not an Adaptive Card");
        }
        let card = &a["content"];
        if card["type"] != "AdaptiveCard" {
            return bad("the card's 'type' must be 'AdaptiveCard'");
        }
        if !card["version"].is_string() {
            return bad("the card has no 'version'");
        }
        let Some(body) = card["body"].as_array() else {
            return bad("the card has no 'body'");
        };
        let mut texts = Vec::new();
        for element in body {
            if element["type"] == "TextBlock" {
                match element["text"].as_str() {
                    Some(t) => texts.push(t),
                    None => return bad("a TextBlock has no 'text'"),
                }
            } else if !element["type"].is_string() {
                return bad("an element has no 'type'");
            }
        }
        for entity in card["msteams"]["entities"].as_array().into_iter().flatten() {
            let text = entity["text"].as_str().unwrap_or("");
            let named =
                entity["mentioned"]["id"].is_string() && entity["mentioned"]["name"].is_string();
            if entity["type"] != "mention" || !named || !texts.iter().any(|t| t.contains(text)) {
                return bad("a mention entity does not match the card");
            }
        }
    }
    Reply::new(202, "")
}

/// The card of a recorded request.
fn card(r: &Recorded) -> Value {
    r.json()["attachments"][0]["content"].clone()
}

/// The texts of a card's TextBlocks.
fn texts(r: &Recorded) -> Vec<String> {
    card(r)["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn conformance_suite() {
    crate::capture_logs();
    let teams = Recorder::start(strict_workflows).await;
    let n = notifier(&teams.url);
    let received = || {
        teams
            .requests()
            .iter()
            .map(|r| texts(r).join("\n"))
            .collect()
    };
    run(&n, &received).await;
}

#[tokio::test]
async fn the_announcement_arrives_as_an_exact_adaptive_card() {
    crate::capture_logs();
    let teams = Recorder::start(strict_workflows).await;
    let n = notifier(&teams.url);
    n.send(&message(MessageKind::Announcement, ANNOUNCEMENT))
        .await
        .unwrap();
    let got = teams.requests();
    assert_eq!(got.len(), 1, "one POST, nothing else");
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, WEBHOOK_PATH);
    assert_eq!(
        r.query,
        webhook_query(),
        "the signed query is sent unchanged"
    );
    assert_eq!(r.content_type, "application/json");
    let block = |text: &str| json!({ "type": "TextBlock", "text": text, "wrap": true });
    assert_eq!(
        r.json(),
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        { "type": "TextBlock", "text": "🔄 ROLLBACK IN PROGRESS", "weight": "bolder", "wrap": true },
                        block("Region: us-east-1"),
                        block("Reason: High error rate detected"),
                        block("Started: 10:15 UTC"),
                        block("ETA: 10:20 UTC"),
                        block("Status updates every 2 minutes"),
                    ]
                }
            }]
        })
    );
    assert_eq!(texts(r).join("\n"), ANNOUNCEMENT, "the text arrives intact");
}

#[tokio::test]
async fn markdown_in_the_text_shows_literally() {
    crate::capture_logs();
    let teams = Recorder::start(strict_workflows).await;
    let n = notifier(&teams.url);
    n.send(&message(
        MessageKind::StatusUpdate,
        "Step *shift_traffic* done\r\n\n- 2 of 4 steps\n1. [runbook](http://x) `kubectl`\nError rate < 0.1% & P95 > baseline",
    ))
    .await
    .unwrap();
    let r = &teams.requests()[0];
    assert_eq!(
        texts(r),
        [
            "Step \\*shift\\_traffic\\* done",
            "\\- 2 of 4 steps",
            "1\\. \\[runbook\\](http://x) \\`kubectl\\`",
            "Error rate < 0.1% & P95 > baseline",
        ],
        "blank lines are left out, `\\r` is dropped"
    );
    assert_eq!(card(r)["body"][0]["weight"], "bolder");
    assert!(card(r)["body"][1].get("weight").is_none());
}

#[tokio::test]
async fn mentions_lead_the_card_with_teams_entities() {
    crate::capture_logs();
    let teams = Recorder::start(strict_workflows).await;
    let n = notifier(&teams.url);
    let m = message(
        MessageKind::Escalation,
        "Rollback unresolved after 15 minutes\nRegion: us-east-1",
    )
    .with_mentions([
        "Adele Vance <AdeleV@contoso.onmicrosoft.com>".to_owned(),
        "Eng Manager <87d349ed-44d7-43e1-9a83-5f2406dee5bd>".to_owned(),
        "@vp_engineering".to_owned(),
    ]);
    n.send(&m).await.unwrap();
    let r = &teams.requests()[0];
    assert_eq!(
        texts(r),
        [
            "<at>Adele Vance</at> <at>Eng Manager</at> @vp\\_engineering",
            "Rollback unresolved after 15 minutes",
            "Region: us-east-1",
        ]
    );
    assert_eq!(card(r)["body"][0].get("weight"), None);
    assert_eq!(card(r)["body"][1]["weight"], "bolder");
    assert_eq!(
        card(r)["msteams"],
        json!({
            "entities": [
                {
                    "type": "mention",
                    "text": "<at>Adele Vance</at>",
                    "mentioned": { "id": "AdeleV@contoso.onmicrosoft.com", "name": "Adele Vance" }
                },
                {
                    "type": "mention",
                    "text": "<at>Eng Manager</at>",
                    "mentioned": { "id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd", "name": "Eng Manager" }
                }
            ]
        })
    );
    // Without mentions there is no `msteams` property at all.
    n.send(&message(MessageKind::Info, "hi")).await.unwrap();
    assert!(card(&teams.requests()[1]).get("msteams").is_none());
}

#[tokio::test]
async fn what_teams_cannot_take_is_refused_before_sending() {
    crate::capture_logs();
    let teams = Recorder::start(strict_workflows).await;
    let n = notifier(&teams.url);
    let e = n
        .send(&message(
            MessageKind::StakeholderEmail,
            "[ONGOING] rollback",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().starts_with("Teams(#mesh-os-oncall): "), "{e}");
    let e = n
        .send(&message(MessageKind::Info, " \n"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let huge = "x".repeat(30 * 1024);
    let e = n
        .send(&message(MessageKind::Info, &huge))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("Teams accepts at most 28672"), "{e}");
    assert!(teams.requests().is_empty());
}

#[tokio::test]
async fn the_fake_refuses_what_workflows_refuses() {
    crate::capture_logs();
    let teams = Recorder::start(strict_workflows).await;
    let http = crate::plain_http_client();
    let url = webhook(&teams.url);
    let post = |body: Value| {
        let req = http.post(&url).json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let good_card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard", "version": "1.4",
        "body": [{ "type": "TextBlock", "text": "hi", "wrap": true }]
    });
    let message = |content_type: &str, card: Value| json!({ "type": "message", "attachments": [{ "contentType": content_type, "contentUrl": null, "content": card }] });
    let adaptive = "application/vnd.microsoft.card.adaptive";
    assert_eq!(post(message(adaptive, good_card.clone())).await.0, 202);
    let without = |field: &str| {
        let mut c = good_card.clone();
        c.as_object_mut().unwrap().remove(field);
        c
    };
    for (body, why) in [
        (json!({ "text": "hi" }), "'attachments' is missing"),
        (
            message("application/vnd.microsoft.card.hero", good_card.clone()),
            "not an Adaptive Card",
        ),
        (message(adaptive, without("type")), "'type' must be"),
        (message(adaptive, without("version")), "no 'version'"),
        (message(adaptive, without("body")), "no 'body'"),
    ] {
        let (status, answer) = post(body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains(why), "{answer}");
    }
    // A wrong signature is refused.
    let forged = http
        .post(format!("{}{WEBHOOK_PATH}?sig=forged", teams.url))
        .json(&message(adaptive, good_card))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
}

#[tokio::test]
async fn answers_are_classified_and_never_retried() {
    crate::capture_logs();
    for (reply, kind, says) in [
        (
            workflows_error(400, "InvalidRequestContent", "the card has no 'body'"),
            ErrorKind::InvalidInput,
            "HTTP 400 Bad Request: InvalidRequestContent: the card has no 'body'",
        ),
        (
            workflows_error(
                401,
                "DirectApiAuthorizationRequired",
                "must be authenticated",
            ),
            ErrorKind::PermissionDenied,
            "HTTP 401 Unauthorized: DirectApiAuthorizationRequired",
        ),
        (
            workflows_error(403, "WorkflowTriggerIsNotEnabled", "the flow is turned off"),
            ErrorKind::PermissionDenied,
            "HTTP 403 Forbidden",
        ),
        (
            workflows_error(404, "WorkflowNotFound", "the flow was deleted"),
            ErrorKind::NotFound,
            "HTTP 404 Not Found: WorkflowNotFound: the flow was deleted",
        ),
        (
            workflows_error(429, "WorkflowTriggerThrottled", "too many requests")
                .with_header("retry-after", "17"),
            ErrorKind::Transient,
            "HTTP 429 Too Many Requests: WorkflowTriggerThrottled: too many requests (Retry-After: 17)",
        ),
        (Reply::new(500, ""), ErrorKind::Transient, "HTTP 500"),
        (
            Reply::new(502, "Bad Gateway"),
            ErrorKind::Transient,
            "HTTP 502 Bad Gateway: Bad Gateway",
        ),
    ] {
        let status = reply.status;
        let teams = Recorder::start(move |_| reply.clone()).await;
        let e = notifier(&teams.url)
            .send(&message(MessageKind::StatusUpdate, "update"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{status}: {e}");
        assert!(e.to_string().contains(says), "{e}");
        assert!(e.to_string().contains("Teams(#mesh-os-oncall)"), "{e}");
        assert!(
            e.to_string()
                .contains("post StatusUpdate message of INC-20251030-001"),
            "{e}"
        );
        assert_eq!(teams.requests().len(), 1, "{status}: no retry");
        assert_no_secret(&e);
    }
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_transient_and_redacted() {
    crate::capture_logs();
    let teams = Recorder::start(strict_workflows).await;
    teams.script([Reply::new(202, "").after(Duration::from_secs(3))]);
    let e = notifier(&teams.url)
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
    let teams = Recorder::start(|r| {
        workflows_error(
            400,
            "InvalidRequestContent",
            &format!("bad request to {}?{} (sig {})", r.path, r.query, sig()),
        )
    })
    .await;
    let e = notifier(&teams.url)
        .send(&message(MessageKind::Info, "hi"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().ends_with(
            "InvalidRequestContent: bad request to [redacted]?[redacted] (sig [redacted])"
        ),
        "{e}"
    );
    assert_no_secret(&e);
}

#[tokio::test]
async fn the_webhook_is_in_no_debug_display_or_log_line() {
    crate::capture_logs();
    let teams = Recorder::start(strict_workflows).await;
    let n = notifier(&teams.url);
    assert_eq!(n.to_string(), "Teams(#mesh-os-oncall)");
    assert!(!format!("{n:?}").contains(MARKER), "{n:?}");
    let unlabelled = TeamsNotifier::builder(SecretString::from(webhook(
        "https://prod-00.westus.logic.azure.com:443",
    )))
    .build()
    .unwrap();
    assert_eq!(
        unlabelled.to_string(),
        "Teams(prod-00.westus.logic.azure.com)"
    );
    assert!(!format!("{unlabelled:?}").contains(MARKER));
    let e = TeamsNotifier::builder(SecretString::from(format!("ftp://x/?sig={}", sig())))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_no_secret(&e);
    n.send(&message(MessageKind::Announcement, ANNOUNCEMENT))
        .await
        .unwrap();
    tracing::info!(notifier = %n, debug = ?n, "posted to teams");
    let e = notifier(&refused_url())
        .send(&message(MessageKind::Info, "x"))
        .await
        .unwrap_err();
    assert_no_secret(&e);
    let logs = captured_logs();
    assert!(logs.contains("posted to teams"), "the capture works");
    assert!(logs.contains("Teams(#mesh-os-oncall)"));
    assert!(!logs.contains(MARKER), "a secret reached the logs:\n{logs}");
}
