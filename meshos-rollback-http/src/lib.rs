//! HTTP-based providers for meshos-rollback: the playbook's Prometheus queries,
//! `curl -f` health checks, Slack and Microsoft Teams announcements, PagerDuty pages
//! and change events, and the customer report count, each behind a core provider
//! trait.
//!
//! | Type | Core trait | Talks to | Playbook section |
//! |------|------------|----------|------------------|
//! | [`PrometheusMetrics`] | [`MetricsSource`](meshos_rollback_core::provider::MetricsSource) | Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`) | Metrics Verification, Canary Auto-Rollback |
//! | [`HttpHealthChecker`] | [`HealthChecker`](meshos_rollback_core::provider::HealthChecker) | any `http(s)` endpoint (`/health`, `/api/v1/status`) | Health Checks |
//! | [`SlackNotifier`] | [`Notifier`](meshos_rollback_core::provider::Notifier) | Slack incoming webhook | Communication |
//! | [`TeamsNotifier`] | [`Notifier`](meshos_rollback_core::provider::Notifier) | Microsoft Teams Workflows webhook (Adaptive Card) | Communication |
//! | [`PagerDutyEscalator`] | [`Escalator`](meshos_rollback_core::provider::Escalator) | PagerDuty Events API v2: trigger, acknowledge, resolve, change events | Emergency Contacts |
//! | [`HttpCustomerReports`] | [`CustomerReports`](meshos_rollback_core::provider::CustomerReports) | a JSON endpoint answering `{"count": N}` | Customer Impact Assessment |
//!
//! Cargo features: none. Every provider is always built; TLS is rustls on *ring* with
//! the platform's trust store (no native-tls, no aws-lc).
//!
//! # Behaviour shared by every provider
//! - **Builders**: `Type::builder(…)`, `with_*`, `build() -> Result`; `build` checks
//!   URLs, timeouts and templates, so a bad setting fails before the first request.
//! - **Injected client**: `with_client(reqwest::Client)` for proxies, extra roots or
//!   an `Authorization` header; no provider reads credentials or environment on its
//!   own. The default client follows no redirects and does not retry.
//! - **Per-request timeout** (`with_timeout`), nothing more: retries, overall
//!   deadlines and tracing are core layers wrapped around any provider.
//! - **Errors**, mapped in one place: timeouts, refused connections, 429 and 5xx are
//!   [`ErrorKind::Transient`](meshos_rollback_core::ErrorKind::Transient); 404/410
//!   `NotFound`; 401/403 `PermissionDenied`; 400/422 `InvalidInput`; anything else
//!   `Failed`. Messages name the provider and the operation, and quote a
//!   `Retry-After` header when the server sends one.
//! - **Secrets** (the Slack webhook URL, the Teams Workflows webhook URL with its
//!   `sig=` signature, the PagerDuty routing key) are
//!   [`secrecy::SecretString`]s: never in `Debug`, `Display`, an error or a log line.
//!   reqwest errors are stripped of their URL, and whatever a server echoes back is
//!   redacted.
//! - **No data is not zero**: an empty Prometheus result or `NaN` is `None`.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use meshos_rollback_core::model::{Region, ServiceId, ServiceRef};
//! use meshos_rollback_http::{PrometheusMetrics, QueryTemplates, Baseline, SlackNotifier, TeamsNotifier};
//! use secrecy::SecretString;
//!
//! # fn main() -> meshos_rollback_core::Result<()> {
//! let prometheus = PrometheusMetrics::builder("http://127.0.0.1:9090")
//!     .with_baseline(Baseline::Offset(Duration::from_secs(7 * 24 * 3600)))
//!     .with_templates(QueryTemplates::default().with_request_rate_rps(
//!         r#"sum(rate(http_requests_total{service="{service}",zone=~"{region}.*"}[{window}]))"#,
//!     ))
//!     .with_timeout(Duration::from_secs(5))
//!     .build()?;
//! assert_eq!(prometheus.to_string(), "Prometheus(http://127.0.0.1:9090)");
//!
//! let api = ServiceRef::new(Region::new("us-east-1")?, ServiceId::kubernetes("production", "meshos-api"));
//! let queries = prometheus.queries(&api, Duration::from_secs(300))?;
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
pub mod teams;

pub use health::{HttpHealthChecker, HttpHealthCheckerBuilder};
pub use pagerduty::{PagerDutyEscalator, PagerDutyEscalatorBuilder};
pub use prometheus::{Baseline, PrometheusMetrics, PrometheusMetricsBuilder, QueryTemplates};
pub use reports::{HttpCustomerReports, HttpCustomerReportsBuilder};
pub use slack::{SlackNotifier, SlackNotifierBuilder};
pub use teams::{TeamsNotifier, TeamsNotifierBuilder};
