//! [`SlackNotifier`]: posts the playbook's messages through a Slack incoming webhook.
//!
//! Each message is one `POST` of `{"text": …}` with the core [`Message::text`]
//! unchanged except for the three characters Slack requires escaped (`&`, `<`, `>`
//! become `&amp;`, `&lt;`, `&gt;`), so the channel shows exactly the text the engine
//! rendered, with no accidental links or mentions. The webhook URL is a credential:
//! it is kept in a [`SecretString`] and appears in no `Debug`, `Display`, error or
//! log line.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use meshos_rollback_core::provider::{Message, Notifier};
use meshos_rollback_core::{Error, Result};
use secrecy::{ExposeSecret, SecretString};

use crate::client::{default_client, parse_http_url, read_body};
use crate::error::{self, Context};

/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds a [`SlackNotifier`].
#[derive(Debug, Clone)]
pub struct SlackNotifierBuilder {
    webhook: SecretString,
    label: Option<String>,
    client: Option<reqwest::Client>,
    timeout: Duration,
}

impl SlackNotifierBuilder {
    /// Names the channel in `Display` (`Slack(#rollbacks)`); by default the
    /// webhook's host is shown.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Uses this client instead of the crate's default one. Do not enable
    /// `connection_verbose` on it: that logs request bytes, the webhook path included.
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Sets the per-request timeout (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the webhook URL (without ever printing it) and builds the notifier.
    pub fn build(self) -> Result<SlackNotifier> {
        let url = parse_http_url("slack.webhook_url", self.webhook.expose_secret())?;
        if self.timeout.is_zero() {
            return Err(Error::invalid("slack.timeout", "must be longer than zero"));
        }
        let label = self
            .label
            .unwrap_or_else(|| url.host_str().unwrap_or("webhook").to_owned());
        let shown = format!("Slack({label})");
        let client = match self.client {
            Some(c) => c,
            None => default_client(&shown)?,
        };
        Ok(SlackNotifier {
            webhook: self.webhook,
            shown,
            client,
            timeout: self.timeout,
        })
    }
}

/// A [`Notifier`] that posts to a Slack incoming webhook.
///
/// `Display` is `Slack(<label or webhook host>)`; `Debug` redacts the webhook.
pub struct SlackNotifier {
    webhook: SecretString,
    shown: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl SlackNotifier {
    /// A builder for the webhook URL (`https://hooks.slack.com/services/…`), taken
    /// from the caller: this crate reads no environment or file on its own.
    pub fn builder(webhook_url: SecretString) -> SlackNotifierBuilder {
        SlackNotifierBuilder {
            webhook: webhook_url,
            label: None,
            client: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Debug for SlackNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackNotifier")
            .field("webhook", &"[redacted]")
            .field("shown", &self.shown)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for SlackNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// What to redact from anything a server says: the webhook URL, its path and query,
/// and every long path segment (Slack's `/services/T…/B…/<token>`), longest first.
fn secret_parts(webhook: &str) -> Vec<String> {
    let mut parts = vec![webhook.to_owned()];
    if let Ok(url) = url::Url::parse(webhook) {
        if url.path().len() > 1 {
            parts.push(url.path().to_owned());
        }
        parts.extend(url.query().map(str::to_owned));
        parts.extend(
            url.path_segments()
                .into_iter()
                .flatten()
                .filter(|s| s.len() >= 8 && *s != "services")
                .map(str::to_owned),
        );
    }
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    parts
}

/// Escapes the characters Slack's formatting gives a meaning to.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

#[async_trait]
impl Notifier for SlackNotifier {
    async fn send(&self, message: &Message) -> Result<()> {
        if message.text.trim().is_empty() {
            return Err(Error::invalid("message.text", "must not be empty"));
        }
        let secret = self.webhook.expose_secret();
        let parts = secret_parts(secret);
        let secrets: Vec<&str> = parts.iter().map(String::as_str).collect();
        let operation = format!("post {:?} message of {}", message.kind, message.incident_id);
        let ctx = Context {
            provider: &self.shown,
            operation: &operation,
            input: "message.text",
            timeout: self.timeout,
        };
        let body = serde_json::json!({ "text": escape(&message.text) });
        let response = self
            .client
            .post(secret)
            .timeout(self.timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| error::from_reqwest(&ctx, e, &secrets))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Slack says why in a short plain-text body: `invalid_payload`, `no_service`.
        let detail = read_body(response)
            .await
            .map(|b| error::excerpt(&b))
            .unwrap_or_default();
        Err(error::from_status(&ctx, status, &detail, &secrets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slack_control_characters_are_escaped() {
        assert_eq!(
            escape("Error rate < 0.1% & P95 > baseline: \"ok\" 🔄"),
            "Error rate &lt; 0.1% &amp; P95 &gt; baseline: \"ok\" 🔄"
        );
    }

    #[test]
    fn every_part_of_the_webhook_is_redacted() {
        let parts =
            secret_parts("https://hooks.slack.com/services/T0123ABCD/B0123ABCD/abcdefXYZ?x=1");
        assert_eq!(
            parts,
            [
                "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/abcdefXYZ?x=1",
                "/services/T0123ABCD/B0123ABCD/abcdefXYZ",
                "T0123ABCD",
                "B0123ABCD",
                "abcdefXYZ",
                "x=1",
            ]
        );
    }

    #[test]
    fn an_invalid_webhook_is_refused_without_echoing_it() {
        let e = SlackNotifier::builder(SecretString::from("hooks.slack.com/services/T0/B0/sekrit"))
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), meshos_rollback_core::ErrorKind::InvalidInput);
        assert!(!e.to_string().contains("sekrit"), "{e}");
        assert!(!format!("{e:?}").contains("sekrit"), "{e:?}");
    }
}
