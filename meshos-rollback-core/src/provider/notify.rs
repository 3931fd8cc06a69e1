//! [`Notifier`] and [`Escalator`]: tell people what is happening.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::display_mock;
use crate::Result;
use crate::model::Severity;

/// What a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// "ROLLBACK IN PROGRESS".
    Announcement,
    /// The periodic status update while a rollback runs.
    StatusUpdate,
    /// The rollback finished (or failed) and what came of it.
    Resolution,
    /// Anything else worth saying in the channel.
    Info,
    /// The stakeholder e-mail (`[ONGOING]` / `[RESOLVED]` in its subject).
    StakeholderEmail,
    /// An escalation to a person (unresolved after N minutes, data corruption,
    /// customer reports), addressed with [`Message::mentions`].
    Escalation,
}

/// A message for people, already rendered and redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// What it is for.
    pub kind: MessageKind,
    /// The incident it belongs to. Notifiers that thread (Slack) keep every message
    /// of one incident in the announcement's thread.
    pub incident_id: String,
    /// The text, lines separated by `\n`, as the playbook writes it. Plain text:
    /// a notifier escapes whatever its channel would read as markup.
    pub text: String,
    /// A subject line, for channels that have one (e-mail); chat notifiers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Who must read it, as the channel addresses them (Slack `<@U024BE7LH>`,
    /// `<!subteam^SAZ94GDB8>`, an e-mail address). Configured per contact, never taken
    /// from user text; a notifier that can mention puts them first, unescaped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
}

impl Message {
    /// A message with no subject and no mentions.
    pub fn new(kind: MessageKind, incident_id: impl Into<String>, text: impl Into<String>) -> Self {
        Message {
            kind,
            incident_id: incident_id.into(),
            text: text.into(),
            subject: None,
            mentions: Vec::new(),
        }
    }

    /// Sets the subject line.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Adds mentions.
    pub fn with_mentions(mut self, mentions: impl IntoIterator<Item = String>) -> Self {
        self.mentions.extend(mentions);
        self
    }
}

/// Posts messages to people (a Slack channel).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Notifier: fmt::Debug + fmt::Display + Send + Sync {
    /// Posts one message.
    async fn send(&self, message: &Message) -> Result<()>;

    /// Where an incident's messages are threaded (Slack: its announcement), as an
    /// opaque token the engine journals after the announcement; `None` for a
    /// notifier that does not thread.
    fn thread(&self, incident_id: &str) -> Option<String> {
        let _ = incident_id;
        None
    }

    /// Continues an incident's thread that an earlier process began (a resumed run),
    /// from the token [`thread`](Self::thread) gave then.
    fn continue_thread(&self, incident_id: &str, thread: &str) {
        let _ = (incident_id, thread);
    }
}

/// A page for on-call (a PagerDuty event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    /// Groups triggers and the resolve of one problem (PagerDuty `dedup_key`).
    pub dedup_key: String,
    /// One line: what is wrong.
    pub summary: String,
    /// How bad.
    pub severity: Severity,
    /// Where it comes from, such as `meshos-rollback/us-east-1`.
    pub source: String,
    /// Extra facts (decision findings, failed step), already redacted.
    pub details: BTreeMap<String, String>,
}

/// A change on a service's timeline (PagerDuty Change Events): a rollback started or
/// finished. Responders see it beside the alerts; it pages nobody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// One line: what changed ("Rollback of api in us-east-1 to v2.3.9 started").
    pub summary: String,
    /// Where it comes from, such as `meshos-rollback/us-east-1`.
    pub source: String,
    /// When it happened.
    pub timestamp: jiff::Timestamp,
    /// Extra facts (run id, incident, outcome), already redacted.
    pub details: BTreeMap<String, String>,
}

/// Pages on-call and resolves pages (PagerDuty Events API).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Escalator: fmt::Debug + fmt::Display + Send + Sync {
    /// Opens (or re-triggers) the page for `escalation.dedup_key`. Triggering a key
    /// that is open already must not open a second page.
    async fn trigger(&self, escalation: &Escalation) -> Result<()>;

    /// Resolves the page with this key.
    async fn resolve(&self, dedup_key: &str) -> Result<()>;

    /// Acknowledges the page with this key: a person has taken over.
    async fn acknowledge(&self, dedup_key: &str) -> Result<()> {
        let _ = dedup_key;
        Err(crate::Error::Unsupported {
            provider: self.to_string(),
            operation: "acknowledge".into(),
        })
    }

    /// Records a change on the service's timeline.
    async fn change_event(&self, change: &ChangeEvent) -> Result<()> {
        let _ = change;
        Err(crate::Error::Unsupported {
            provider: self.to_string(),
            operation: "change_event".into(),
        })
    }
}

display_mock!(MockNotifier, MockEscalator);
