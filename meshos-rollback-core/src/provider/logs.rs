//! [`LogSource`]: error lines of a service, the playbook's
//! `aws logs tail /aws/ecs/meshos-api --since 30m`.

use std::fmt;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::display_mock;
use crate::Result;
use crate::model::ServiceRef;

/// The pattern verification counts when none is configured: unquoted `ERROR`, which
/// CloudWatch Logs matches as a case-sensitive term anywhere in the message.
pub const DEFAULT_ERROR_PATTERN: &str = "ERROR";

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the line was written.
    pub at: Timestamp,
    /// The message, as the backend stores it (not redacted: the caller redacts).
    pub message: String,
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.at, self.message)
    }
}

/// Lines that matched a pattern: how many, and the first few, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSummary {
    /// Matching lines in the window. A backend that stops reading at its bound
    /// reports what it read and sets `truncated`.
    pub count: u64,
    /// Up to the requested number of matching lines, oldest first.
    pub samples: Vec<LogLine>,
    /// Whether the backend stopped before the end of the window (page bound), so
    /// `count` is a lower bound.
    #[serde(default)]
    pub truncated: bool,
}

/// What a log said over a window, kept as evidence in a report: the summary, or why
/// the log could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogEvidence {
    /// The log was read.
    Read(LogSummary),
    /// It could not be read, and why.
    Unreadable(String),
}

/// Reads a service's log lines (CloudWatch Logs, Loki, files).
///
/// Patterns follow CloudWatch Logs' filter syntax for unquoted terms: whitespace
/// separates terms, a line matches when it contains every term (case-sensitive
/// substrings). An empty pattern matches every line. Backends may support more of
/// their own syntax; conformance checks only this subset.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait LogSource: fmt::Debug + fmt::Display + Send + Sync {
    /// Lines of `service` written at or after `since` up to now that match
    /// `pattern`: their count and the first `sample` of them. A service with no
    /// configured log is `NotFound`; a log with no matching line counts 0.
    async fn errors(
        &self,
        service: &ServiceRef,
        since: Timestamp,
        pattern: &str,
        sample: usize,
    ) -> Result<LogSummary>;
}

display_mock!(MockLogSource);

/// Whether `message` matches `pattern` in the subset every [`LogSource`] supports:
/// every whitespace-separated term is a substring (case-sensitive). Quoted phrases
/// (`"connection refused"`) count as one term without the quotes.
pub fn matches_terms(pattern: &str, message: &str) -> bool {
    terms(pattern).iter().all(|t| message.contains(t.as_str()))
}

/// The terms of a pattern: whitespace-separated words, a double-quoted phrase as one.
fn terms(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = pattern.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            if end > 0 {
                out.push(quoted[..end].to_owned());
            }
            rest = quoted.get(end + 1..).unwrap_or("").trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(rest[..end].to_owned());
            rest = rest[end..].trim_start();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_anded_substrings() {
        assert!(matches_terms("ERROR", "2026 ERROR db timeout"));
        assert!(
            !matches_terms("ERROR", "2026 error db timeout"),
            "case-sensitive"
        );
        assert!(matches_terms("ERROR timeout", "ERROR: db timeout"));
        assert!(!matches_terms("ERROR refused", "ERROR: db timeout"));
        assert!(matches_terms("", "anything"));
        assert!(matches_terms("\"db timeout\" ERROR", "ERROR: db timeout"));
        assert!(!matches_terms("\"timeout db\"", "ERROR: db timeout"));
    }
}
