//! Conformance of a [`Notifier`] and an [`Escalator`].

use std::collections::BTreeMap;

use super::{expect_kind, expect_ok};
use crate::ErrorKind;
use crate::model::Severity;
use crate::provider::{Escalation, Escalator, Message, MessageKind, Notifier};

/// Runs the notifier suite: two messages arrive, in order, with their text intact
/// (multi-line, non-ASCII). `received` returns the texts the far end got so far.
pub async fn run(notifier: &dyn Notifier, received: &(dyn Fn() -> Vec<String> + Sync)) {
    let who = notifier.to_string();
    let before = received().len();
    let texts = [
        "🔄 ROLLBACK IN PROGRESS\nRegion: us-east-1\nReason: High error rate detected",
        "Status update: 2 of 4 steps done in us-east-1",
    ];
    for (i, text) in texts.iter().enumerate() {
        let kind = if i == 0 {
            MessageKind::Announcement
        } else {
            MessageKind::StatusUpdate
        };
        let message = Message::new(kind, "INC-TEST-001", *text);
        expect_ok(notifier.send(&message).await, "send");
    }
    let got = received();
    assert_eq!(got.len(), before + 2, "{who}: two messages arrive");
    for (i, text) in texts.iter().enumerate() {
        assert!(
            got[before + i].contains(text),
            "{who}: message {i} arrives intact: {:?}",
            got[before + i]
        );
    }
}

/// Runs the escalator suite: trigger then resolve arrive in order for one key; an
/// empty key is refused. `received` returns (action, dedup key) pairs the far end got.
pub async fn run_escalator(
    escalator: &dyn Escalator,
    dedup_key: &str,
    received: &(dyn Fn() -> Vec<(String, String)> + Sync),
) {
    let who = escalator.to_string();
    let before = received().len();
    let page = Escalation {
        dedup_key: dedup_key.to_owned(),
        summary: "Data corruption in us-east-1: stop all deployments".into(),
        severity: Severity::Critical,
        source: "meshos-rollback/us-east-1".into(),
        details: BTreeMap::from([("finding".to_owned(), "data corruption detected".to_owned())]),
    };
    expect_ok(escalator.trigger(&page).await, "trigger");
    expect_ok(escalator.resolve(dedup_key).await, "resolve");
    let got = received();
    assert_eq!(
        got[before..].to_vec(),
        vec![
            ("trigger".to_owned(), dedup_key.to_owned()),
            ("resolve".to_owned(), dedup_key.to_owned())
        ],
        "{who}: trigger then resolve"
    );
    let empty = Escalation {
        dedup_key: String::new(),
        ..page
    };
    expect_kind(
        escalator.trigger(&empty).await,
        ErrorKind::InvalidInput,
        "an empty dedup key",
    );
}
