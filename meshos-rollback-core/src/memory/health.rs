//! In-memory [`HealthChecker`] and [`SmokeTests`] with scripted answers.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::model::{Region, ServiceRef};
use crate::provider::{
    HealthCheckResult, HealthChecker, HealthEndpoint, SmokeTestResult, SmokeTests,
};
use crate::{Error, Result};

/// Health endpoints in memory: each URL answers with a scripted HTTP status; an
/// unknown URL is refused, as a host with nothing listening would be.
#[derive(Debug, Default)]
pub struct InMemoryHealthChecker {
    answers: Mutex<HashMap<String, u16>>,
}

impl InMemoryHealthChecker {
    /// No endpoints answer yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `url` answer with `status`.
    pub fn set_status(&self, url: &str, status: u16) {
        self.answers
            .lock()
            .expect("lock")
            .insert(url.to_owned(), status);
    }
}

impl fmt::Display for InMemoryHealthChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemoryHealthChecker")
    }
}

#[async_trait]
impl HealthChecker for InMemoryHealthChecker {
    async fn check(&self, endpoint: &HealthEndpoint) -> Result<HealthCheckResult> {
        if !(endpoint.url.starts_with("http://") || endpoint.url.starts_with("https://")) {
            return Err(Error::invalid(
                "health endpoint url",
                format!("{:?} is not an http(s) URL", endpoint.url),
            ));
        }
        let status = self
            .answers
            .lock()
            .expect("lock")
            .get(&endpoint.url)
            .copied();
        Ok(match status {
            Some(code) => HealthCheckResult {
                endpoint: endpoint.name.clone(),
                healthy: (200..400).contains(&code),
                status: Some(code),
                elapsed: Duration::from_millis(5),
                detail: String::new(),
            },
            None => HealthCheckResult {
                endpoint: endpoint.name.clone(),
                healthy: false,
                status: None,
                elapsed: Duration::from_millis(1),
                detail: "connection refused".into(),
            },
        })
    }
}

/// Smoke tests in memory: each region's suite passes unless scripted to fail.
#[derive(Debug, Default)]
pub struct InMemorySmokeTests {
    failing: Mutex<HashMap<Region, String>>,
}

impl InMemorySmokeTests {
    /// Every suite passes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the region's suite fail with `summary`, or pass again with `None`.
    pub fn set_failing(&self, region: &Region, summary: Option<&str>) {
        let mut f = self.failing.lock().expect("lock");
        match summary {
            Some(s) => f.insert(region.clone(), s.to_owned()),
            None => f.remove(region),
        };
    }
}

impl fmt::Display for InMemorySmokeTests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemorySmokeTests")
    }
}

#[async_trait]
impl SmokeTests for InMemorySmokeTests {
    async fn run(&self, service: &ServiceRef) -> Result<SmokeTestResult> {
        let failing = self
            .failing
            .lock()
            .expect("lock")
            .get(&service.region)
            .cloned();
        Ok(match failing {
            Some(summary) => SmokeTestResult {
                passed: false,
                summary,
            },
            None => SmokeTestResult {
                passed: true,
                summary: format!("smoke tests passed for {service}"),
            },
        })
    }
}
