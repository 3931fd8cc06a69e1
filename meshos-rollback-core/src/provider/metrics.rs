//! [`MetricsSource`]: the numbers the decision rules read.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::display_mock;
use crate::Result;
use crate::model::ServiceRef;
use crate::observation::Metrics;

/// A span of time sampled at a fixed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    /// First sample time.
    pub start: Timestamp,
    /// Last sample time (inclusive).
    pub end: Timestamp,
    /// Distance between samples.
    pub step: Duration,
}

/// Metrics at one sample time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricsPoint {
    /// When.
    pub at: Timestamp,
    /// The metrics over the window ending then.
    pub metrics: Metrics,
}

/// Reads service metrics (Prometheus, CloudWatch, Datadog).
///
/// A metric with no data is `None`, never zero: an empty query result is not a
/// healthy service.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait MetricsSource: fmt::Debug + fmt::Display + Send + Sync {
    /// The metrics over the `window` ending now.
    async fn observe(&self, service: &ServiceRef, window: Duration) -> Result<Metrics>;

    /// What is normal for the service: the same `window` at the configured offset
    /// (an hour or a week ago), or a fixed baseline.
    async fn baseline(&self, service: &ServiceRef, window: Duration) -> Result<Metrics>;

    /// The metrics over `window`, sampled at every step of `range`.
    async fn observe_range(
        &self,
        service: &ServiceRef,
        window: Duration,
        range: &TimeRange,
    ) -> Result<Vec<MetricsPoint>>;
}

display_mock!(MockMetricsSource);
