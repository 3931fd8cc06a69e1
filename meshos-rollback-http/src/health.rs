//! [`HttpHealthChecker`]: the playbook's `curl -f https://REGION.meshos.io/health`.
//!
//! One `GET` per endpoint with a per-request timeout. As with `curl -f`, an answer
//! below 400 is healthy and 400 or above is not; a refused connection or a timeout is
//! an unhealthy result with the reason in `detail`, not an error. Redirects are not
//! followed (nor does `curl` without `-L`). Only an endpoint that cannot be probed at
//! all (an invalid URL) is an error.

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use meshos_rollback_core::provider::{HealthCheckResult, HealthChecker, HealthEndpoint};
use meshos_rollback_core::{Error, Result};

use crate::client::{default_client, parse_http_url, read_body};
use crate::error::{error_chain, excerpt};

/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds an [`HttpHealthChecker`].
#[derive(Debug, Clone)]
pub struct HttpHealthCheckerBuilder {
    client: Option<reqwest::Client>,
    timeout: Duration,
}

impl HttpHealthCheckerBuilder {
    /// Uses this client instead of the crate's default one (which follows no
    /// redirects). An injected client's redirect policy applies as configured.
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Sets the per-request timeout, connection and body included (default
    /// [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and builds the checker.
    pub fn build(self) -> Result<HttpHealthChecker> {
        if self.timeout.is_zero() {
            return Err(Error::invalid("health.timeout", "must be longer than zero"));
        }
        let shown = format!("HttpHealthChecker(timeout {:?})", self.timeout);
        let client = match self.client {
            Some(c) => c,
            None => default_client(&shown)?,
        };
        Ok(HttpHealthChecker {
            client,
            timeout: self.timeout,
            shown,
        })
    }
}

/// A [`HealthChecker`] over HTTP(S).
///
/// `Display` is `HttpHealthChecker(timeout 5s)`.
#[derive(Debug)]
pub struct HttpHealthChecker {
    client: reqwest::Client,
    timeout: Duration,
    shown: String,
}

impl HttpHealthChecker {
    /// A builder with the defaults.
    pub fn builder() -> HttpHealthCheckerBuilder {
        HttpHealthCheckerBuilder {
            client: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The endpoints the playbook probes after a rollback in `region`:
    /// `https://REGION.meshos.io/health` and `https://REGION.meshos.io/api/v1/status`.
    pub fn playbook_endpoints(region: &meshos_rollback_core::model::Region) -> [HealthEndpoint; 2] {
        [
            HealthEndpoint::new("health", format!("https://{region}.meshos.io/health")),
            HealthEndpoint::new(
                "api status",
                format!("https://{region}.meshos.io/api/v1/status"),
            ),
        ]
    }

    fn unreachable(
        &self,
        endpoint: &HealthEndpoint,
        started: Instant,
        err: reqwest::Error,
    ) -> HealthCheckResult {
        let err = err.without_url();
        let detail = if err.is_timeout() {
            format!("no answer within {:?}", self.timeout)
        } else {
            error_chain(&err)
        };
        HealthCheckResult {
            endpoint: endpoint.name.clone(),
            healthy: false,
            status: err.status().map(|s| s.as_u16()),
            elapsed: started.elapsed(),
            detail,
        }
    }
}

impl fmt::Display for HttpHealthChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

#[async_trait]
impl HealthChecker for HttpHealthChecker {
    async fn check(&self, endpoint: &HealthEndpoint) -> Result<HealthCheckResult> {
        // The URL itself stays out of the message: it may hold a token.
        let url = parse_http_url(
            &format!("health endpoint {:?}", endpoint.name),
            &endpoint.url,
        )?;
        let started = Instant::now();
        let response = match self.client.get(url).timeout(self.timeout).send().await {
            Ok(r) => r,
            Err(e) => return Ok(self.unreachable(endpoint, started, e)),
        };
        let status = response.status();
        let body = match read_body(response).await {
            Ok(b) => b,
            Err(e) => {
                let mut result = self.unreachable(endpoint, started, e);
                result.status = Some(status.as_u16());
                result.detail = format!("HTTP {status}, then reading the body: {}", result.detail);
                return Ok(result);
            }
        };
        let healthy = status.as_u16() < 400;
        let detail = match (healthy, excerpt(&body)) {
            (true, body) => body,
            (false, body) if body.is_empty() => format!("HTTP {status}"),
            (false, body) => format!("HTTP {status}: {body}"),
        };
        Ok(HealthCheckResult {
            endpoint: endpoint.name.clone(),
            healthy,
            status: Some(status.as_u16()),
            elapsed: started.elapsed(),
            detail,
        })
    }
}
