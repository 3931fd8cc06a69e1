//! HTTP-based providers for meshos-rollback: the playbook's metrics from Prometheus,
//! `curl -f` health checks, Slack and Microsoft Teams announcements, the stakeholder
//! e-mail over SMTP, PagerDuty pages and change events, and the customer report
//! count, each behind a core provider trait.
//!
//! | Type | Core trait | Talks to | Playbook section |
//! |------|------------|----------|------------------|
//! | [`PrometheusMetrics`] | [`MetricsSource`](meshos_rollback_core::provider::MetricsSource) | Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`) | Metrics Verification, Canary Auto-Rollback |
//! | [`HttpHealthChecker`] | [`HealthChecker`](meshos_rollback_core::provider::HealthChecker) | any `http(s)` endpoint (`/health`, `/api/v1/status`) | Health Checks |
//! | [`SlackNotifier`] | [`Notifier`](meshos_rollback_core::provider::Notifier) | Slack incoming webhook | Communication |
//! | [`SmtpNotifier`] | [`Notifier`](meshos_rollback_core::provider::Notifier) | an SMTP submission server (STARTTLS, implicit TLS) | Communication (stakeholder e-mail) |
//! | [`SlackApiNotifier`] | [`Notifier`](meshos_rollback_core::provider::Notifier) | Slack Web API (`chat.postMessage`, `chat.update`) with a bot token; one thread per incident | Communication |
//! | [`TeamsNotifier`] | [`Notifier`](meshos_rollback_core::provider::Notifier) | Microsoft Teams Workflows webhook (Adaptive Card) | Communication |
//! | [`PagerDutyEscalator`] | [`Escalator`](meshos_rollback_core::provider::Escalator) | PagerDuty Events API v2: trigger, acknowledge, resolve, change events | Emergency Contacts |
//! | [`HttpCustomerReports`] | [`CustomerReports`](meshos_rollback_core::provider::CustomerReports) | a JSON endpoint answering `{"count": N}` | Customer Impact Assessment |
//!
//! The playbook reads P95 from a summary,
//! `http_request_duration_seconds{job="meshos-api",quantile="0.95"}`: that is
//! [`LatencyQuery::Summary`]. The default P95 query, [`LatencyQuery::Histogram`], reads
//! histogram buckets instead (see [`prometheus`] for both and why the summary one takes
//! the `max` across instances).
//!
//! Cargo features: none. Every provider is always built; TLS is rustls on *ring* with
//! the platform's trust store (no native-tls, no aws-lc), for HTTP (reqwest) and SMTP
//! (lettre) alike.
//!
//! # Behaviour shared by every provider
//! - **Builders**: `Type::builder(…)`, `with_*`, `build() -> Result`; `build` checks
//!   URLs, timeouts and templates, so a bad setting fails before the first request.
//! - **Injected client**: `with_client(reqwest::Client)` for proxies, extra roots or
//!   an `Authorization` header; no provider reads credentials or environment on its
//!   own. The default client follows no redirects and does not retry. (The SMTP
//!   notifier speaks SMTP through lettre, not HTTP: it takes its host, credentials
//!   and extra roots through its builder instead.)
//! - **Per-request timeout** (`with_timeout`), nothing more: retries, overall
//!   deadlines and tracing are core layers wrapped around any provider.
//! - **Errors**, mapped in one place: timeouts, refused connections, 429 and 5xx are
//!   [`ErrorKind::Transient`](meshos_rollback_core::ErrorKind::Transient); 404/410
//!   `NotFound`; 401/403 `PermissionDenied`; 400/422 `InvalidInput`; anything else
//!   `Failed`. Messages name the provider and the operation. SMTP replies map the
//!   same way in [`smtp`]: 4xx transient, 530/535 `PermissionDenied`, other 5xx
//!   `Failed`, each naming the reply code. The Slack Web API answers most failures
//!   with HTTP 200 and `"ok": false`; its error strings are mapped the same way
//!   (`invalid_auth` is `PermissionDenied`, `channel_not_found` `NotFound`, …), and a
//!   429's `Retry-After` travels as a core
//!   [`RetryAfter`](meshos_rollback_core::error::RetryAfter) source of the `Transient`
//!   error, which the core retry layer honours; other providers quote a
//!   `Retry-After` header in the message.
//! - **Secrets** (the Slack webhook URL, the Slack bot token, the PagerDuty routing
//!   key, the Teams Workflows webhook URL with its `sig=` signature, the SMTP
//!   password) are
//!   [`secrecy::SecretString`]s: never in `Debug`, `Display`, an error or a log line.
//!   reqwest errors are stripped of their URL, and whatever a server echoes back is
//!   redacted.
//! - **No data is not zero**: an empty Prometheus result or `NaN` is `None`.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use meshos_rollback_core::model::{Region, ServiceId, ServiceRef};
//! use meshos_rollback_http::{
//!     Baseline, LatencyQuery, PrometheusMetrics, QueryTemplates, SlackApiNotifier,
//!     SlackNotifier, TeamsNotifier,
//! };
//! use secrecy::SecretString;
//!
//! # fn main() -> meshos_rollback_core::Result<()> {
//! let prometheus = PrometheusMetrics::builder("http://127.0.0.1:9090")
//!     .with_baseline(Baseline::Offset(Duration::from_secs(7 * 24 * 3600)))
//!     .with_templates(QueryTemplates::default().with_request_rate_rps(
//!         r#"sum(rate(http_requests_total{service="{service}",zone=~"{region}.*"}[{window}]))"#,
//!     ))
//!     // P95 from the playbook's summary instead of histogram buckets.
//!     .with_latency(LatencyQuery::Summary)
//!     .with_timeout(Duration::from_secs(5))
//!     .build()?;
//! assert_eq!(prometheus.to_string(), "Prometheus(http://127.0.0.1:9090)");
//!
//! let api = ServiceRef::new(Region::new("us-east-1")?, ServiceId::kubernetes("production", "meshos-api"));
//! let queries = prometheus.queries(&api, Duration::from_secs(300))?;
//! assert_eq!(
//!     queries[1],
//!     (
//!         "p95_latency_ms",
//!         r#"1000 * max(http_request_duration_seconds{job="meshos-api",region="us-east-1",quantile="0.95"})"#.to_owned()
//!     )
//! );
//! assert_eq!(
//!     queries.last().unwrap().1,
//!     r#"sum(rate(http_requests_total{service="meshos-api",zone=~"us-east-1.*"}[5m]))"#
//! );
//!
//! // The caller hands the secret over; it never shows.
//! let webhook = SecretString::from("https://hooks.slack.com/services/T000/B000/XXXXXXXX");
//! let slack = SlackNotifier::builder(webhook).with_label("#mesh-os-oncall").build()?;
//! assert_eq!(slack.to_string(), "Slack(#mesh-os-oncall)");
//! assert!(!format!("{slack:?}").contains("XXXXXXXX"));
//!
//! // A bot token threads each incident's messages under its announcement.
//! let token = SecretString::from("xoxb-0000-0000-XXXXXXXX");
//! let bot = SlackApiNotifier::builder(token, "C0ROLLBACK").with_label("#mesh-os-oncall").build()?;
//! assert_eq!(bot.to_string(), "Slack API(#mesh-os-oncall)");
//! assert!(!format!("{bot:?}").contains("XXXXXXXX"));
//! // A Teams channel, through its Workflows webhook: the `sig=` never shows either.
//! let teams = TeamsNotifier::builder(SecretString::from(
//!     "https://prod-00.westus.logic.azure.com/workflows/0123abcd/triggers/manual/paths/invoke?api-version=2016-06-01&sig=YYYYYYYY",
//! ))
//! .build()?;
//! assert_eq!(teams.to_string(), "Teams(prod-00.westus.logic.azure.com)");
//! assert!(!format!("{teams:?}").contains("YYYYYYYY"));
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
pub mod health;
pub mod pagerduty;
pub mod prometheus;
pub mod reports;
pub mod slack;
pub mod slack_api;
pub mod smtp;
pub mod teams;

pub use health::{HttpHealthChecker, HttpHealthCheckerBuilder};
pub use pagerduty::{PagerDutyEscalator, PagerDutyEscalatorBuilder};
pub use prometheus::{
    Baseline, LatencyQuery, PrometheusMetrics, PrometheusMetricsBuilder, QueryTemplates,
};
pub use reports::{HttpCustomerReports, HttpCustomerReportsBuilder};
pub use slack::{SlackNotifier, SlackNotifierBuilder};
pub use slack_api::{RateLimited, SlackApiNotifier, SlackApiNotifierBuilder};
pub use smtp::{SmtpNotifier, SmtpNotifierBuilder, SmtpTls};
pub use teams::{TeamsNotifier, TeamsNotifierBuilder};
