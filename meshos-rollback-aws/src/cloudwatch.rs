//! [`CloudWatchMetrics`]: the playbook's metrics verification read from CloudWatch,
//! the ALB's request metrics and the ECS service's utilisation.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricDataResult, MetricStat};
use aws_types::SdkConfig;
use jiff::{SignedDuration, Timestamp};
use meshos_rollback_core::clock::{SharedClock, SystemClock};
use meshos_rollback_core::model::{ServiceId, ServiceRef};
use meshos_rollback_core::observation::Metrics;
use meshos_rollback_core::provider::{MetricsPoint, MetricsSource, TimeRange};
use meshos_rollback_core::{Error, Result};

use crate::error::from_sdk;
use crate::sdk::{date_time, prepare_client};

/// Points one [`MetricsSource::observe_range`] reads at most (one `GetMetricData`
/// call each).
pub const MAX_RANGE_POINTS: u64 = 120;

/// The CloudWatch dimensions of one service: its ECS service (CPU, memory) and its
/// ALB target group (errors, latency, requests). Either may be left out; its metrics
/// then read as no data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceDimensions {
    ecs: Option<(String, String)>,
    alb: Option<(String, String)>,
}

impl ServiceDimensions {
    /// No dimensions yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `AWS/ECS` dimensions `ClusterName` and `ServiceName`.
    pub fn with_ecs(mut self, cluster: impl Into<String>, service: impl Into<String>) -> Self {
        self.ecs = Some((cluster.into(), service.into()));
        self
    }

    /// The `AWS/ApplicationELB` dimensions `TargetGroup` (such as
    /// `targetgroup/meshos-api-stable/0123456789abcdef`) and `LoadBalancer` (such as
    /// `app/meshos/0123456789abcdef`): the ARN suffixes, not whole ARNs.
    pub fn with_alb(
        mut self,
        target_group: impl Into<String>,
        load_balancer: impl Into<String>,
    ) -> Self {
        self.alb = Some((target_group.into(), load_balancer.into()));
        self
    }
}

/// Where [`MetricsSource::baseline`] comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Baseline {
    /// The same queries over the same window, this long ago (an hour, a week).
    Offset(Duration),
    /// Fixed values, the same for every service.
    Fixed(Metrics),
}

impl Default for Baseline {
    /// The same window an hour ago.
    fn default() -> Self {
        Baseline::Offset(Duration::from_secs(3600))
    }
}

/// Builds a [`CloudWatchMetrics`].
#[derive(Debug)]
pub struct CloudWatchMetricsBuilder {
    clients: Vec<aws_sdk_cloudwatch::Client>,
    services: BTreeMap<ServiceRef, ServiceDimensions>,
    baseline: Baseline,
    clock: Option<SharedClock>,
}

impl CloudWatchMetricsBuilder {
    /// A source for the region of `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(aws_sdk_cloudwatch::Client::new(config))
    }

    /// A source using an existing CloudWatch client.
    pub fn from_client(client: aws_sdk_cloudwatch::Client) -> Self {
        CloudWatchMetricsBuilder {
            clients: vec![client],
            services: BTreeMap::new(),
            baseline: Baseline::default(),
            clock: None,
        }
    }

    /// Also reads the region of `config` (CloudWatch is regional; one source serves
    /// every region of a playbook).
    pub fn with_region_config(self, config: &SdkConfig) -> Self {
        self.with_region_client(aws_sdk_cloudwatch::Client::new(config))
    }

    /// Also reads the region of `client`.
    pub fn with_region_client(mut self, client: aws_sdk_cloudwatch::Client) -> Self {
        self.clients.push(client);
        self
    }

    /// Says which dimensions `service` has. An ECS service id
    /// ([`ServiceId::Ecs`]) gets its cluster and service names as ECS dimensions
    /// unless `dimensions` names others.
    pub fn with_service(mut self, service: ServiceRef, dimensions: ServiceDimensions) -> Self {
        let mut dimensions = dimensions;
        if dimensions.ecs.is_none()
            && let ServiceId::Ecs { cluster, service } = &service.service
        {
            dimensions.ecs = Some((cluster.clone(), service.clone()));
        }
        self.services.insert(service, dimensions);
        self
    }

    /// Sets where the baseline comes from (default: the same window an hour earlier).
    pub fn with_baseline(mut self, baseline: Baseline) -> Self {
        self.baseline = baseline;
        self
    }

    /// Sets the clock that says what "now" is (default: the system clock).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Checks the configuration (regions, HTTP clients, baseline offset, services).
    pub fn build(self) -> Result<CloudWatchMetrics> {
        let mut clients = BTreeMap::new();
        for client in self.clients {
            let (client, region) = prepare_client!("CloudWatchMetrics", client, aws_sdk_cloudwatch);
            if clients.insert(region.clone(), client).is_some() {
                return Err(Error::invalid(
                    "cloudwatch.region",
                    format!("CloudWatchMetrics: region {region} is configured twice"),
                ));
            }
        }
        if let Baseline::Offset(d) = self.baseline
            && (d.is_zero() || SignedDuration::try_from(d).is_err())
        {
            return Err(Error::invalid(
                "cloudwatch.baseline",
                "the offset must be longer than zero, like 1h or 1w",
            ));
        }
        for (service, dims) in &self.services {
            if !clients.contains_key(service.region.as_str()) {
                return Err(Error::invalid(
                    "cloudwatch.services",
                    format!(
                        "CloudWatchMetrics: {service} is in a region without a client; add one with `with_region_config`"
                    ),
                ));
            }
            let values = dims.ecs.iter().chain(dims.alb.iter());
            if values
                .flat_map(|(a, b)| [a, b])
                .any(|v| v.trim().is_empty() || v.starts_with("arn:"))
            {
                return Err(Error::invalid(
                    "cloudwatch.services",
                    format!(
                        "CloudWatchMetrics: {service}: dimension values must be non-empty names or ARN suffixes (targetgroup/…, app/…), not ARNs"
                    ),
                ));
            }
        }
        let shown = format!(
            "CloudWatchMetrics({})",
            clients.keys().cloned().collect::<Vec<_>>().join(",")
        );
        Ok(CloudWatchMetrics {
            clients,
            services: self.services,
            baseline: self.baseline,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            shown,
        })
    }
}

/// A [`MetricsSource`] over CloudWatch metrics.
///
/// Every observation is one `GetMetricData` request with five queries, each over one
/// period covering the window (the window rounded up to whole minutes), ending at the
/// last whole minute before now (the current minute is still filling):
///
/// | Metric | Namespace, dimensions | Statistic | As |
/// |--------|-----------------------|-----------|----|
/// | error rate | `AWS/ApplicationELB` `HTTPCode_Target_5XX_Count` / `RequestCount`, `TargetGroup` + `LoadBalancer` | `Sum` | percent |
/// | P95 | `AWS/ApplicationELB` `TargetResponseTime` | `p95` | seconds → ms |
/// | CPU, memory | `AWS/ECS` `CPUUtilization`, `MemoryUtilization`, `ClusterName` + `ServiceName` | `Average` | percent |
/// | request rate | `AWS/ApplicationELB` `RequestCount` | `Sum` | per second of the period |
///
/// A metric without a datapoint is `None`, never zero, with one exception that
/// follows the ALB's own behaviour: it publishes `HTTPCode_Target_5XX_Count` only for
/// periods with 5xx answers, so a period with requests and no 5xx datapoint has an
/// error rate of 0 %. Without requests the error rate is `None`.
///
/// The baseline is the same window an offset earlier ([`Baseline`], default an hour),
/// or fixed values. A service must be configured with
/// [`CloudWatchMetricsBuilder::with_service`]; another is `NotFound`.
///
/// `Display` is `CloudWatchMetrics(<regions>)`.
#[derive(Debug)]
pub struct CloudWatchMetrics {
    clients: BTreeMap<String, aws_sdk_cloudwatch::Client>,
    services: BTreeMap<ServiceRef, ServiceDimensions>,
    baseline: Baseline,
    clock: SharedClock,
    shown: String,
}

impl fmt::Display for CloudWatchMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Query ids, which `GetMetricData` wants to start with a lower-case letter.
const ERRORS: &str = "e5xx";
const REQUESTS: &str = "requests";
const P95: &str = "p95";
const CPU: &str = "cpu";
const MEMORY: &str = "memory";

impl CloudWatchMetrics {
    /// Starts building a source for the region of `config`.
    pub fn builder(config: &SdkConfig) -> CloudWatchMetricsBuilder {
        CloudWatchMetricsBuilder::new(config)
    }

    /// The queries of one observation with `period` seconds.
    fn queries(dims: &ServiceDimensions, period: i32) -> Vec<MetricDataQuery> {
        let query = |id: &str, namespace: &str, name: &str, stat: &str, d: [(&str, &str); 2]| {
            let metric = Metric::builder()
                .namespace(namespace)
                .metric_name(name)
                .set_dimensions(Some(
                    d.iter()
                        .map(|(k, v)| Dimension::builder().name(*k).value(*v).build())
                        .collect(),
                ))
                .build();
            MetricDataQuery::builder()
                .id(id)
                .metric_stat(
                    MetricStat::builder()
                        .metric(metric)
                        .period(period)
                        .stat(stat)
                        .build(),
                )
                .return_data(true)
                .build()
        };
        let mut out = Vec::new();
        if let Some((tg, lb)) = &dims.alb {
            let d = [("TargetGroup", tg.as_str()), ("LoadBalancer", lb.as_str())];
            let alb = "AWS/ApplicationELB";
            out.push(query(ERRORS, alb, "HTTPCode_Target_5XX_Count", "Sum", d));
            out.push(query(REQUESTS, alb, "RequestCount", "Sum", d));
            out.push(query(P95, alb, "TargetResponseTime", "p95", d));
        }
        if let Some((cluster, service)) = &dims.ecs {
            let d = [
                ("ClusterName", cluster.as_str()),
                ("ServiceName", service.as_str()),
            ];
            out.push(query(CPU, "AWS/ECS", "CPUUtilization", "Average", d));
            out.push(query(MEMORY, "AWS/ECS", "MemoryUtilization", "Average", d));
        }
        out
    }

    /// The metrics over `window` ending at the last whole minute at or before `at`.
    async fn at(
        &self,
        service: &ServiceRef,
        window: Duration,
        at: Timestamp,
        what: &str,
    ) -> Result<Metrics> {
        let dims = self
            .services
            .get(service)
            .ok_or_else(|| Error::not_found(self, format!("CloudWatch dimensions of {service}")))?;
        let client = self
            .clients
            .get(service.region.as_str())
            .ok_or_else(|| Error::not_found(self, format!("a client for {}", service.region)))?;
        let period = period_secs(window)?;
        let end = Timestamp::from_second(at.as_second().div_euclid(60) * 60)
            .map_err(|e| Error::invalid("cloudwatch.time", e.to_string()))?;
        let start = end
            .checked_sub(SignedDuration::from_secs(i64::from(period)))
            .map_err(|e| Error::invalid("cloudwatch.time", e.to_string()))?;
        let queries = Self::queries(dims, period);
        if queries.is_empty() {
            return Ok(Metrics::default());
        }
        let out = client
            .get_metric_data()
            .set_metric_data_queries(Some(queries))
            .start_time(date_time(start))
            .end_time(date_time(end))
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("{what} of {service}"), e))?;
        let results = out.metric_data_results();
        let sum = |id| value(results, id, Combine::Sum);
        let avg = |id| value(results, id, Combine::Mean);
        let requests = sum(REQUESTS);
        let error_rate_pct = match requests {
            Some(r) if r > 0.0 => Some(sum(ERRORS).unwrap_or(0.0) / r * 100.0),
            _ => None,
        };
        Ok(Metrics {
            error_rate_pct,
            p95_latency_ms: value(results, P95, Combine::Max).map(|s| s * 1000.0),
            cpu_pct: avg(CPU),
            memory_pct: avg(MEMORY),
            request_rate_rps: requests.map(|r| r / f64::from(period)),
        })
    }
}

/// How the datapoints of one query are combined, should the period straddle two.
#[derive(Clone, Copy)]
enum Combine {
    Sum,
    Mean,
    /// For percentiles, which cannot be combined exactly: the worse one.
    Max,
}

fn value(results: &[MetricDataResult], id: &str, how: Combine) -> Option<f64> {
    let values: Vec<f64> = results
        .iter()
        .filter(|r| r.id() == Some(id))
        .flat_map(|r| r.values().iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        return None;
    }
    Some(match how {
        Combine::Sum => values.iter().sum(),
        Combine::Mean => values.iter().sum::<f64>() / values.len() as f64,
        Combine::Max => values.iter().copied().fold(f64::MIN, f64::max),
    })
}

/// The period of a window: whole minutes, at least one (CloudWatch's standard
/// resolution), at most what an `i32` of seconds holds.
fn period_secs(window: Duration) -> Result<i32> {
    let minutes = window.as_secs().div_ceil(60).max(1);
    i32::try_from(minutes * 60)
        .map_err(|_| Error::invalid("window", "too long for a CloudWatch period"))
}

#[async_trait]
impl MetricsSource for CloudWatchMetrics {
    async fn observe(&self, service: &ServiceRef, window: Duration) -> Result<Metrics> {
        self.at(service, window, self.clock.now(), "metrics").await
    }

    async fn baseline(&self, service: &ServiceRef, window: Duration) -> Result<Metrics> {
        match self.baseline {
            Baseline::Fixed(m) => Ok(m),
            Baseline::Offset(offset) => {
                let offset = SignedDuration::try_from(offset)
                    .map_err(|_| Error::invalid("cloudwatch.baseline", "offset too long"))?;
                let at = self
                    .clock
                    .now()
                    .checked_sub(offset)
                    .map_err(|e| Error::invalid("cloudwatch.baseline", e.to_string()))?;
                self.at(service, window, at, "baseline metrics").await
            }
        }
    }

    async fn observe_range(
        &self,
        service: &ServiceRef,
        window: Duration,
        range: &TimeRange,
    ) -> Result<Vec<MetricsPoint>> {
        if range.step.is_zero() {
            return Err(Error::invalid("range.step", "must be longer than zero"));
        }
        if range.start > range.end {
            return Err(Error::invalid("range.start", "must not be after range.end"));
        }
        let step = SignedDuration::try_from(range.step)
            .map_err(|_| Error::invalid("range.step", "too long"))?;
        let span = range.end.duration_since(range.start).as_secs_f64();
        let count = (span / range.step.as_secs_f64()).floor() as u64 + 1;
        if count > MAX_RANGE_POINTS {
            return Err(Error::invalid(
                "range.step",
                format!(
                    "{count} points; CloudWatchMetrics reads at most {MAX_RANGE_POINTS} (one request each): use a longer step"
                ),
            ));
        }
        let mut points = Vec::with_capacity(count as usize);
        let mut at = range.start;
        for _ in 0..count {
            let metrics = self.at(service, window, at, "range metrics").await?;
            points.push(MetricsPoint { at, metrics });
            at = match at.checked_add(step) {
                Ok(t) => t,
                Err(_) => break,
            };
        }
        Ok(points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_whole_minutes() {
        assert_eq!(period_secs(Duration::from_secs(1)).unwrap(), 60);
        assert_eq!(period_secs(Duration::from_secs(300)).unwrap(), 300);
        assert_eq!(period_secs(Duration::from_secs(301)).unwrap(), 360);
        assert_eq!(period_secs(Duration::ZERO).unwrap(), 60);
    }
}
