//! [`HttpCustomerReports`]: the playbook's `check-customer-issues --since …`, over a
//! simple HTTP JSON endpoint.
//!
//! The contract: `GET <url>?region=<region>&since=<RFC 3339 time>` answers
//! `{"count": <reports about region at or after since>}`. Authentication, when the
//! endpoint needs it, comes with an injected client (a default `Authorization`
//! header).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use meshos_rollback_core::model::Region;
use meshos_rollback_core::provider::CustomerReports;
use meshos_rollback_core::{Error, Result};
use serde::Deserialize;

use crate::client::{default_client, display_url, parse_http_url, read_body};
use crate::error::{self, Context};

/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds an [`HttpCustomerReports`].
#[derive(Debug, Clone)]
pub struct HttpCustomerReportsBuilder {
    url: String,
    client: Option<reqwest::Client>,
    timeout: Duration,
}

impl HttpCustomerReportsBuilder {
    /// Uses this client instead of the crate's default one.
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Sets the per-request timeout (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and builds the source.
    pub fn build(self) -> Result<HttpCustomerReports> {
        let url = parse_http_url("customer_reports.url", &self.url)?;
        if self.timeout.is_zero() {
            return Err(Error::invalid(
                "customer_reports.timeout",
                "must be longer than zero",
            ));
        }
        let shown = format!("HttpCustomerReports({})", display_url(&url));
        let client = match self.client {
            Some(c) => c,
            None => default_client(&shown)?,
        };
        Ok(HttpCustomerReports {
            url,
            shown,
            client,
            timeout: self.timeout,
        })
    }
}

/// A [`CustomerReports`] source over an HTTP JSON endpoint.
///
/// `Display` is `HttpCustomerReports(<URL without credentials or query>)`.
#[derive(Debug)]
pub struct HttpCustomerReports {
    url: url::Url,
    shown: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl HttpCustomerReports {
    /// A builder for the endpoint at `url`; any query it has is kept and `region`
    /// and `since` are added.
    pub fn builder(url: impl Into<String>) -> HttpCustomerReportsBuilder {
        HttpCustomerReportsBuilder {
            url: url.into(),
            client: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Display for HttpCustomerReports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

#[derive(Deserialize)]
struct CountAnswer {
    count: u32,
}

#[async_trait]
impl CustomerReports for HttpCustomerReports {
    async fn count_since(&self, region: &Region, since: Timestamp) -> Result<u32> {
        let operation = format!("count reports about {region} since {since}");
        let ctx = Context {
            provider: &self.shown,
            operation: &operation,
            input: "customer_reports query",
            timeout: self.timeout,
        };
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair("region", region.as_str())
            .append_pair("since", &since.to_string());
        let response = self
            .client
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| error::from_reqwest(&ctx, e, &[]))?;
        let status = response.status();
        let body = read_body(response)
            .await
            .map_err(|e| error::from_reqwest(&ctx, e, &[]))?;
        if !status.is_success() {
            return Err(error::from_status(
                &ctx,
                status,
                &error::excerpt(&body),
                &[],
            ));
        }
        serde_json::from_str::<CountAnswer>(&body)
            .map(|a| a.count)
            .map_err(|e| {
                error::bad_answer(
                    &ctx,
                    format!(
                        "want {{\"count\": <non-negative integer>}}: {e} in {:?}",
                        error::excerpt(&body)
                    ),
                )
            })
    }
}
