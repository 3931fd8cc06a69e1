//! [`HealthChecker`] and [`SmokeTests`]: is the service answering, and correctly?

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::display_mock;
use crate::Result;
use crate::model::ServiceRef;

/// An endpoint to probe, such as `https://us-east-1.meshos.io/health`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HealthEndpoint {
    /// A short name for reports, such as `health` or `api status`.
    pub name: String,
    /// The URL.
    pub url: String,
}

impl HealthEndpoint {
    /// An endpoint.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        HealthEndpoint {
            name: name.into(),
            url: url.into(),
        }
    }
}

/// The result of probing one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckResult {
    /// The endpoint's name.
    pub endpoint: String,
    /// Healthy: answered in time with a success status (`curl -f`).
    pub healthy: bool,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// How long the probe took.
    pub elapsed: Duration,
    /// Why it is unhealthy (refused, timed out, status 503), or a short body excerpt.
    pub detail: String,
}

impl fmt::Display for HealthCheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.healthy { "ok" } else { "FAIL" };
        write!(f, "{mark}: {}", self.endpoint)?;
        if let Some(s) = self.status {
            write!(f, " HTTP {s}")?;
        }
        write!(f, " in {} ms", self.elapsed.as_millis())?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// Probes health endpoints.
///
/// An endpoint that is down is a result with `healthy: false`, not an error; errors
/// are for probes that could not be attempted (an invalid URL).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait HealthChecker: fmt::Debug + fmt::Display + Send + Sync {
    /// Probes one endpoint.
    async fn check(&self, endpoint: &HealthEndpoint) -> Result<HealthCheckResult>;
}

/// The result of a smoke-test run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokeTestResult {
    /// Whether every smoke test passed.
    pub passed: bool,
    /// A summary, such as `12 passed, 1 failed: checkout`.
    pub summary: String,
}

/// Runs a smoke-test suite against a service (`npm run test:smoke -- --region R`).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SmokeTests: fmt::Debug + fmt::Display + Send + Sync {
    /// Runs the suite.
    async fn run(&self, service: &ServiceRef) -> Result<SmokeTestResult>;
}

display_mock!(MockHealthChecker, MockSmokeTests);
