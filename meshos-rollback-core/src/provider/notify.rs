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
}

/// A message for a chat channel, already rendered and redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// What it is for.
    pub kind: MessageKind,
    /// The incident it belongs to.
    pub incident_id: String,
    /// The text, lines separated by `\n`, as the playbook writes it.
    pub text: String,
}

/// Posts messages to people (a Slack channel).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Notifier: fmt::Debug + fmt::Display + Send + Sync {
    /// Posts one message.
    async fn send(&self, message: &Message) -> Result<()>;
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

/// Pages on-call and resolves pages (PagerDuty Events API).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Escalator: fmt::Debug + fmt::Display + Send + Sync {
    /// Opens (or re-triggers) the page for `escalation.dedup_key`.
    async fn trigger(&self, escalation: &Escalation) -> Result<()>;

    /// Resolves the page with this key.
    async fn resolve(&self, dedup_key: &str) -> Result<()>;
}

display_mock!(MockNotifier, MockEscalator);
