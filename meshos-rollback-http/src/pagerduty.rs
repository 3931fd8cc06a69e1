//! [`PagerDutyEscalator`]: pages on-call through the PagerDuty Events API v2.
//!
//! Alert events (`trigger`, `acknowledge`, `resolve`) `POST` to `<base URL>/v2/enqueue`
//! ([Send an Alert Event](https://developer.pagerduty.com/docs/send-alert-event),
//! [API reference](https://developer.pagerduty.com/api-reference/368ae3d938c9e-send-an-event-to-pager-duty)):
//! `trigger` sends the routing key, the dedup key and a payload (`summary`, `source`,
//! `severity`, `custom_details`); `acknowledge` and `resolve` send only the routing
//! key, the action and the dedup key. Change events `POST` to
//! `<base URL>/v2/change/enqueue`
//! ([Send a Change Event](https://developer.pagerduty.com/docs/send-change-event)):
//! `{routing_key, payload: {summary, timestamp, source, custom_details}}`; they page
//! nobody. The base URL is configurable so tests reach a local server.
//!
//! PagerDuty answers `202 Accepted` (`{"status":"success",…}`) to every accepted
//! event; `400` with `{"status":"invalid event","message":…,"errors":[…]}` to one it
//! refuses, which becomes [`ErrorKind::InvalidInput`](meshos_rollback_core::ErrorKind)
//! quoting `message` and `errors`; `429` and `5xx` are transient (a `Retry-After`,
//! when sent, is quoted in the message). Limits of the reference are applied before
//! sending: a `summary` longer than [`MAX_SUMMARY_CHARS`] is cut on a character
//! boundary (a page that arrives shortened beats one refused mid-incident); a
//! `dedup_key` longer than [`MAX_DEDUP_KEY_CHARS`] is refused, because cutting it
//! would resolve or acknowledge a different alert.
//!
//! The routing key is a credential: kept in a [`SecretString`], it appears in no
//! `Debug`, `Display`, error or log line.

use std::fmt;
use std::time::Duration;

use std::collections::BTreeMap;

use async_trait::async_trait;
use meshos_rollback_core::model::Severity;
use meshos_rollback_core::provider::{ChangeEvent, Escalation, Escalator};
use meshos_rollback_core::{Error, Result};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::client::{
    default_client, display_url, parse_http_url, read_body, retry_after, with_retry_after,
};
use crate::error::{self, Context};

/// PagerDuty's Events API.
pub const DEFAULT_BASE_URL: &str = "https://events.pagerduty.com";
/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// PagerDuty keeps at most this many characters of a summary; longer ones are cut
/// here, with `…`, rather than refused in the middle of an incident.
pub const MAX_SUMMARY_CHARS: usize = 1024;
/// PagerDuty's limit on a `dedup_key`; longer keys are refused before sending.
pub const MAX_DEDUP_KEY_CHARS: usize = 255;

/// Builds a [`PagerDutyEscalator`].
#[derive(Debug, Clone)]
pub struct PagerDutyEscalatorBuilder {
    routing_key: SecretString,
    base_url: String,
    client: Option<reqwest::Client>,
    timeout: Duration,
    client_name: String,
}

impl PagerDutyEscalatorBuilder {
    /// Sends events to this base URL instead of [`DEFAULT_BASE_URL`].
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Uses this client instead of the crate's default one. Do not enable
    /// `connection_verbose` on it: that logs request bytes, the routing key included.
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Sets the per-request timeout (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the `client` field of every event (default `meshos-rollback`), shown in
    /// PagerDuty as the event's origin.
    pub fn with_client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// Checks the settings and builds the escalator.
    pub fn build(self) -> Result<PagerDutyEscalator> {
        if self.routing_key.expose_secret().trim().is_empty() {
            return Err(Error::invalid("pagerduty.routing_key", "must not be empty"));
        }
        let base = parse_http_url("pagerduty.base_url", &self.base_url)?;
        let under_base = |path: &str| {
            base.join(&format!("{}{path}", base.path().trim_end_matches('/')))
                .map_err(|e| Error::invalid("pagerduty.base_url", e.to_string()))
        };
        let endpoint = under_base("/v2/enqueue")?;
        let change_endpoint = under_base("/v2/change/enqueue")?;
        if self.timeout.is_zero() {
            return Err(Error::invalid(
                "pagerduty.timeout",
                "must be longer than zero",
            ));
        }
        let shown = format!("PagerDuty({})", display_url(&base));
        let client = match self.client {
            Some(c) => c,
            None => default_client(&shown)?,
        };
        Ok(PagerDutyEscalator {
            routing_key: self.routing_key,
            endpoint,
            change_endpoint,
            shown,
            client,
            timeout: self.timeout,
            client_name: self.client_name,
        })
    }
}

/// An [`Escalator`] over the PagerDuty Events API v2.
///
/// `Display` is `PagerDuty(<base URL>)`; `Debug` redacts the routing key.
pub struct PagerDutyEscalator {
    routing_key: SecretString,
    endpoint: url::Url,
    change_endpoint: url::Url,
    shown: String,
    client: reqwest::Client,
    timeout: Duration,
    client_name: String,
}

impl PagerDutyEscalator {
    /// A builder for the integration's routing key, taken from the caller: this
    /// crate reads no environment or file on its own.
    pub fn builder(routing_key: SecretString) -> PagerDutyEscalatorBuilder {
        PagerDutyEscalatorBuilder {
            routing_key,
            base_url: DEFAULT_BASE_URL.to_owned(),
            client: None,
            timeout: DEFAULT_TIMEOUT,
            client_name: "meshos-rollback".to_owned(),
        }
    }

    async fn send(
        &self,
        endpoint: &url::Url,
        body: &impl Serialize,
        operation: &str,
        input: &str,
    ) -> Result<()> {
        let secret = self.routing_key.expose_secret();
        let ctx = Context {
            provider: &self.shown,
            operation,
            input,
            timeout: self.timeout,
        };
        let response = self
            .client
            .post(endpoint.clone())
            .timeout(self.timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| error::from_reqwest(&ctx, e, &[secret]))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let wait = retry_after(response.headers());
        // Redacted before it is cut to an excerpt, so no cut-off part of the key stays.
        let body = error::redact(&read_body(response).await.unwrap_or_default(), &[secret]);
        let mut detail = refusal(&body).unwrap_or_else(|| error::excerpt(&body));
        if let Some(wait) = &wait {
            detail = format!("{detail} (Retry-After: {wait})")
                .trim_start()
                .to_owned();
        }
        Err(with_retry_after(
            error::from_status(&ctx, status, &detail, &[secret]),
            wait.as_deref(),
        ))
    }

    /// An alert event (`/v2/enqueue`).
    async fn send_event(&self, event: &Event<'_>, operation: &str) -> Result<()> {
        self.send(&self.endpoint, event, operation, "escalation")
            .await
    }
}

/// What PagerDuty says when it refuses an event,
/// `{"status":"invalid event","message":"Event object is invalid","errors":[…]}`,
/// as `message: error; error`. `None` when the body has another shape.
fn refusal(body: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Refusal {
        message: String,
        #[serde(default)]
        errors: Vec<String>,
    }
    let r: Refusal = serde_json::from_str(body).ok()?;
    let mut out = r.message;
    if !r.errors.is_empty() {
        out.push_str(": ");
        out.push_str(&r.errors.join("; "));
    }
    Some(error::excerpt(&out))
}

impl fmt::Debug for PagerDutyEscalator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagerDutyEscalator")
            .field("routing_key", &"[redacted]")
            .field("endpoint", &self.endpoint.as_str())
            .field("change_endpoint", &self.change_endpoint.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PagerDutyEscalator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// One Events API v2 event.
#[derive(Serialize)]
struct Event<'a> {
    routing_key: &'a str,
    event_action: &'static str,
    dedup_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Payload<'a>>,
}

#[derive(Serialize)]
struct Payload<'a> {
    summary: String,
    source: &'a str,
    severity: &'static str,
    custom_details: &'a BTreeMap<String, String>,
}

/// One Change Events API event.
#[derive(Serialize)]
struct Change<'a> {
    routing_key: &'a str,
    payload: ChangePayload<'a>,
}

#[derive(Serialize)]
struct ChangePayload<'a> {
    summary: String,
    /// RFC 3339, as jiff prints a timestamp (`2025-10-30T10:15:00Z`).
    timestamp: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    source: &'a str,
    custom_details: &'a BTreeMap<String, String>,
}

/// PagerDuty's four severities.
fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Low => "info",
        Severity::Medium => "warning",
        Severity::High => "error",
        Severity::Critical => "critical",
    }
}

/// The text cut to [`MAX_SUMMARY_CHARS`] characters, on a character boundary.
fn summary(text: &str) -> String {
    if text.chars().count() <= MAX_SUMMARY_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_SUMMARY_CHARS - 1).collect();
    cut.push('…');
    cut
}

fn require(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    Ok(())
}

fn dedup_key(key: &str) -> Result<()> {
    require("escalation.dedup_key", key)?;
    let chars = key.chars().count();
    if chars > MAX_DEDUP_KEY_CHARS {
        return Err(Error::invalid(
            "escalation.dedup_key",
            format!("is {chars} characters long; PagerDuty allows at most {MAX_DEDUP_KEY_CHARS}"),
        ));
    }
    Ok(())
}

#[async_trait]
impl Escalator for PagerDutyEscalator {
    async fn trigger(&self, escalation: &Escalation) -> Result<()> {
        dedup_key(&escalation.dedup_key)?;
        require("escalation.summary", &escalation.summary)?;
        require("escalation.source", &escalation.source)?;
        let event = Event {
            routing_key: self.routing_key.expose_secret(),
            event_action: "trigger",
            dedup_key: &escalation.dedup_key,
            client: Some(&self.client_name),
            payload: Some(Payload {
                summary: summary(&escalation.summary),
                source: &escalation.source,
                severity: severity(escalation.severity),
                custom_details: &escalation.details,
            }),
        };
        self.send_event(&event, &format!("trigger {:?}", escalation.dedup_key))
            .await
    }

    async fn resolve(&self, key: &str) -> Result<()> {
        self.follow_up("resolve", key).await
    }

    async fn acknowledge(&self, key: &str) -> Result<()> {
        self.follow_up("acknowledge", key).await
    }

    async fn change_event(&self, change: &ChangeEvent) -> Result<()> {
        require("change.summary", &change.summary)?;
        let body = Change {
            routing_key: self.routing_key.expose_secret(),
            payload: ChangePayload {
                summary: summary(&change.summary),
                timestamp: change.timestamp.to_string(),
                source: &change.source,
                custom_details: &change.details,
            },
        };
        let operation = format!("change event at {}", change.timestamp);
        self.send(&self.change_endpoint, &body, &operation, "change")
            .await
    }
}

impl PagerDutyEscalator {
    /// `acknowledge` or `resolve`: the key alone names the alert. PagerDuty drops one
    /// for a key with no open alert and still answers 202.
    async fn follow_up(&self, action: &'static str, key: &str) -> Result<()> {
        dedup_key(key)?;
        let event = Event {
            routing_key: self.routing_key.expose_secret(),
            event_action: action,
            dedup_key: key,
            client: None,
            payload: None,
        };
        self.send_event(&event, &format!("{action} {key:?}")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_summaries_are_cut_to_pagerdutys_limit() {
        let long = "é".repeat(2000);
        let s = summary(&long);
        assert_eq!(s.chars().count(), MAX_SUMMARY_CHARS);
        assert!(s.ends_with('…'));
        assert_eq!(summary("short"), "short");
    }

    #[test]
    fn dedup_keys_longer_than_pagerdutys_limit_are_refused() {
        assert!(dedup_key(&"é".repeat(MAX_DEDUP_KEY_CHARS)).is_ok());
        let e = dedup_key(&"k".repeat(MAX_DEDUP_KEY_CHARS + 1)).unwrap_err();
        assert_eq!(e.kind(), meshos_rollback_core::ErrorKind::InvalidInput);
        assert!(
            e.to_string()
                .starts_with("invalid escalation.dedup_key: is 256 characters long"),
            "{e}"
        );
    }

    #[test]
    fn refusals_quote_message_and_errors() {
        assert_eq!(
            refusal(r#"{"status":"invalid event","message":"Event object is invalid","errors":["'payload.summary' is missing or blank"]}"#).as_deref(),
            Some("Event object is invalid: 'payload.summary' is missing or blank")
        );
        assert_eq!(refusal(r#"{"status":"throttle event","message":"Requests for this service are arriving too quickly."}"#).as_deref(), Some("Requests for this service are arriving too quickly."));
        assert_eq!(refusal("bad gateway"), None);
        assert_eq!(refusal(r#"{"routing_key":"x"}"#), None);
    }

    #[test]
    fn severities_map_to_pagerdutys() {
        assert_eq!(severity(Severity::Low), "info");
        assert_eq!(severity(Severity::Medium), "warning");
        assert_eq!(severity(Severity::High), "error");
        assert_eq!(severity(Severity::Critical), "critical");
    }

    #[test]
    fn the_events_endpoint_keeps_a_base_path() {
        let key = || SecretString::from("0123456789abcdef0123456789abcdef");
        let pd = PagerDutyEscalator::builder(key())
            .with_base_url("http://127.0.0.1:1/pd/")
            .build()
            .unwrap();
        assert_eq!(pd.endpoint.as_str(), "http://127.0.0.1:1/pd/v2/enqueue");
        assert_eq!(
            pd.change_endpoint.as_str(),
            "http://127.0.0.1:1/pd/v2/change/enqueue"
        );
        assert_eq!(pd.to_string(), "PagerDuty(http://127.0.0.1:1/pd)");
        let pd = PagerDutyEscalator::builder(key()).build().unwrap();
        assert_eq!(
            pd.endpoint.as_str(),
            "https://events.pagerduty.com/v2/enqueue"
        );
        assert!(!format!("{pd:?}").contains("0123456789abcdef"));
        let e = PagerDutyEscalator::builder(SecretString::from(" "))
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), meshos_rollback_core::ErrorKind::InvalidInput);
    }
}
