//! [`PagerDutyEscalator`]: pages on-call through the PagerDuty Events API v2.
//!
//! `trigger` sends `event_action: "trigger"` with the routing key, the dedup key and
//! a payload (`summary`, `source`, `severity`, `custom_details`); `resolve` sends
//! `event_action: "resolve"` for the same dedup key. Both `POST` to
//! `<base URL>/v2/enqueue`; the base URL is configurable so tests reach a local
//! server. The routing key is a credential: kept in a [`SecretString`], it appears in
//! no `Debug`, `Display`, error or log line.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use meshos_rollback_core::model::Severity;
use meshos_rollback_core::provider::{Escalation, Escalator};
use meshos_rollback_core::{Error, Result};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::client::{default_client, display_url, parse_http_url, read_body};
use crate::error::{self, Context};

/// PagerDuty's Events API.
pub const DEFAULT_BASE_URL: &str = "https://events.pagerduty.com";
/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// PagerDuty keeps at most this many characters of a summary; longer ones are cut
/// here, with `…`, rather than refused in the middle of an incident.
pub const MAX_SUMMARY_CHARS: usize = 1024;

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
        let endpoint = base
            .join(&format!("{}/v2/enqueue", base.path().trim_end_matches('/')))
            .map_err(|e| Error::invalid("pagerduty.base_url", e.to_string()))?;
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

    async fn send(&self, event: &Event<'_>, operation: &str) -> Result<()> {
        let secret = self.routing_key.expose_secret();
        let ctx = Context {
            provider: &self.shown,
            operation,
            input: "escalation",
            timeout: self.timeout,
        };
        let response = self
            .client
            .post(self.endpoint.clone())
            .timeout(self.timeout)
            .json(event)
            .send()
            .await
            .map_err(|e| error::from_reqwest(&ctx, e, &[secret]))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // `{"status":"invalid event","message":"Event object is invalid","errors":[…]}`
        let detail = read_body(response)
            .await
            .map(|b| error::excerpt(&b))
            .unwrap_or_default();
        Err(error::from_status(&ctx, status, &detail, &[secret]))
    }
}

impl fmt::Debug for PagerDutyEscalator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagerDutyEscalator")
            .field("routing_key", &"[redacted]")
            .field("endpoint", &self.endpoint.as_str())
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
    custom_details: &'a std::collections::BTreeMap<String, String>,
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

#[async_trait]
impl Escalator for PagerDutyEscalator {
    async fn trigger(&self, escalation: &Escalation) -> Result<()> {
        require("escalation.dedup_key", &escalation.dedup_key)?;
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
        self.send(&event, &format!("trigger {:?}", escalation.dedup_key))
            .await
    }

    async fn resolve(&self, dedup_key: &str) -> Result<()> {
        require("escalation.dedup_key", dedup_key)?;
        let event = Event {
            routing_key: self.routing_key.expose_secret(),
            event_action: "resolve",
            dedup_key,
            client: None,
            payload: None,
        };
        self.send(&event, &format!("resolve {dedup_key:?}")).await
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
