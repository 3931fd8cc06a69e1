//! The providers inside the core's standard layer stack (trace → retry → timeout), as
//! the engine runs them: retries happen in the layer, never in the provider, and the
//! trace layer's log lines carry no secret.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::layer::{
    Layered, RetryBudget, RetryLayer, RetryPolicy, TimeoutLayer, standard_stack,
};
use meshos_rollback_core::model::Severity;
use meshos_rollback_core::provider::{Escalation, Escalator, Message, MessageKind, Notifier};
use meshos_rollback_core::wait::Backoff;
use meshos_rollback_http::{PagerDutyEscalator, SlackNotifier};
use secrecy::SecretString;

use crate::recorder::{Recorder, Reply};
use crate::{MARKER, captured_logs};

fn stack() -> impl meshos_rollback_core::layer::Layer + Clone {
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
    standard_stack(
        RetryLayer::new(policy, RetryBudget::new(10, 0.1)),
        TimeoutLayer::new(Duration::from_secs(5)),
        &meshos_rollback_core::redact::Redactor::new(),
    )
}

#[tokio::test]
async fn slack_503s_are_retried_by_the_layer_and_a_400_is_not() {
    crate::capture_logs();
    let slack = Recorder::fixed(200, "ok").await;
    slack.script([
        Reply::new(503, "service_unavailable"),
        Reply::new(503, "service_unavailable"),
    ]);
    let url = format!("{}/services/T0/B0/{MARKER}layered0123456789", slack.url);
    let inner: Arc<dyn Notifier> = Arc::new(
        SlackNotifier::builder(SecretString::from(url.clone()))
            .with_label("#rollbacks")
            .build()
            .unwrap(),
    );
    let slack_layered = Layered::new(inner.clone(), stack());
    assert_eq!(slack_layered.to_string(), "Slack(#rollbacks)");
    let msg = Message::new(MessageKind::StatusUpdate, "INC-1", "update");
    slack_layered.send(&msg).await.unwrap();
    assert_eq!(slack.requests().len(), 3, "two 503s, then delivered");
    assert!(
        slack
            .requests()
            .iter()
            .all(|r| r.body == r#"{"text":"update"}"#)
    );

    slack.script([Reply::new(400, "invalid_payload")]);
    let e = slack_layered.send(&msg).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        slack.requests().len(),
        4,
        "an invalid payload is not retried"
    );

    let logs = captured_logs();
    assert!(
        logs.contains("provider_call"),
        "the trace layer logged: {logs}"
    );
    assert!(!logs.contains(MARKER), "a secret reached the logs:\n{logs}");
}

#[tokio::test]
async fn pagerduty_throttling_is_retried_by_the_layer() {
    crate::capture_logs();
    let pd = Recorder::fixed(202, r#"{"status":"success"}"#).await;
    pd.script([Reply::new(429, r#"{"status":"throttle event"}"#)]);
    let inner: Arc<dyn Escalator> = Arc::new(
        PagerDutyEscalator::builder(SecretString::from(format!(
            "K{MARKER}0123456789abcdef0123456"
        )))
        .with_base_url(&pd.url)
        .build()
        .unwrap(),
    );
    let layered = Layered::new(inner, stack());
    let page = Escalation {
        dedup_key: "meshos-rollback/INC-1/us-east-1".into(),
        summary: "us-east-1: stop all deployments, escalate".into(),
        severity: Severity::Critical,
        source: "meshos-rollback/us-east-1".into(),
        details: BTreeMap::new(),
    };
    layered.trigger(&page).await.unwrap();
    let got = pd.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, got[1].body, "the retry sends the same event");
    assert!(!captured_logs().contains(MARKER));
}
