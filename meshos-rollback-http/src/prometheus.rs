//! [`PrometheusMetrics`]: the playbook's five signals (error rate, P95, CPU, memory,
//! request rate), read with PromQL over Prometheus' HTTP API.
//!
//! Each metric is one PromQL query template ([`QueryTemplates`]) in which
//! `{service}`, `{region}`, `{scope}` and `{window}` are filled in per call. Instant
//! queries (`/api/v1/query`) answer [`MetricsSource::observe`] and
//! [`MetricsSource::baseline`]; range queries (`/api/v1/query_range`) answer
//! [`MetricsSource::observe_range`]. An empty result or `NaN` is no data (`None`),
//! never zero.
//!
//! # The playbook's latency query
//! The playbook (Post-Rollback Verification, Metrics Verification) reads P95 from a
//! **summary**:
//!
//! ```text
//! curl -g 'http://prometheus.meshos.io/api/v1/query?query=http_request_duration_seconds{job="meshos-api",quantile="0.95"}'
//! ```
//!
//! That is [`LatencyQuery::Summary`]. The default, [`LatencyQuery::Histogram`], is
//! `histogram_quantile` over `_bucket` series instead, which is **not** the
//! playbook's query: against a server that only has the summary it reads as no data,
//! and the summary preset against a histogram-only server does too. Pick the one the
//! service exports ([`PrometheusMetricsBuilder::with_latency`]). The playbook gives
//! no error-rate, CPU, memory or request-rate query, so those have one default each.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use meshos_rollback_core::clock::{SharedClock, SystemClock};
use meshos_rollback_core::model::{ServiceId, ServiceRef};
use meshos_rollback_core::observation::Metrics;
use meshos_rollback_core::provider::{MetricsPoint, MetricsSource, TimeRange};
use meshos_rollback_core::{Error, Result};
use serde::Deserialize;

use crate::client::{default_client, display_url, parse_http_url, read_body};
use crate::error::{self, Context};

/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Prometheus refuses range queries with more points than this per series.
const MAX_POINTS: u64 = 11_000;

/// The placeholders a template may use.
const PLACEHOLDERS: [&str; 4] = ["service", "region", "scope", "window"];

/// One PromQL template per metric; `None` where the backend has no such metric (it
/// then reads as no data).
///
/// Placeholders, filled in per call:
///
/// | Placeholder | Value | Example |
/// |-------------|-------|---------|
/// | `{service}` | the service's short name ([`ServiceId::name`]) | `meshos-api` |
/// | `{region}` | the region | `us-east-1` |
/// | `{scope}` | the ECS cluster or Kubernetes namespace, empty for a custom id | `production` |
/// | `{window}` | the window as a PromQL duration | `5m` |
///
/// `{service}`, `{region}` and `{scope}` are escaped for a PromQL string literal, so
/// they belong inside double quotes (`job="{service}"`). Any other `{name}` is refused
/// as a typo when the source is built.
///
/// The defaults assume every series carries `job="<service>"` and `region="<region>"`
/// labels, HTTP metrics as the Prometheus client libraries name them and container
/// metrics as cAdvisor names them:
///
/// | Metric | Default query (labels `L` = `job="{service}",region="{region}"`) |
/// |--------|---------------------------------------------------------------|
/// | error rate, % | `100 * (sum(rate(http_requests_total{L,code=~"5.."}[{window}])) or vector(0)) / sum(rate(http_requests_total{L}[{window}]))` |
/// | P95, ms | [`LatencyQuery::Histogram`]: `1000 * histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{L}[{window}])))` |
/// | CPU, % | `100 * avg(rate(container_cpu_usage_seconds_total{L}[{window}]) / (container_spec_cpu_quota{L} / container_spec_cpu_period{L}))` |
/// | memory, % | `100 * avg(avg_over_time(container_memory_working_set_bytes{L}[{window}]) / container_spec_memory_limit_bytes{L})` |
/// | request rate, rps | `sum(rate(http_requests_total{L}[{window}]))` |
///
/// The P95 query is a preset ([`LatencyQuery`]); [`QueryTemplates::with_latency`]
/// switches it to the playbook's summary query.
///
/// The `or vector(0)` makes a service that served requests but never a 5xx read as
/// 0 % errors (its 5xx series do not exist), while a service with no requests at all
/// still reads as no data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTemplates {
    /// Share of requests answered with a 5xx, in percent.
    pub error_rate_pct: Option<String>,
    /// 95th percentile latency, in milliseconds.
    pub p95_latency_ms: Option<String>,
    /// CPU utilisation, in percent of the allocation.
    pub cpu_pct: Option<String>,
    /// Memory utilisation, in percent of the allocation.
    pub memory_pct: Option<String>,
    /// Requests per second.
    pub request_rate_rps: Option<String>,
}

impl Default for QueryTemplates {
    fn default() -> Self {
        let l = r#"job="{service}",region="{region}""#;
        QueryTemplates {
            error_rate_pct: Some(format!(
                r#"100 * (sum(rate(http_requests_total{{{l},code=~"5.."}}[{{window}}])) or vector(0)) / sum(rate(http_requests_total{{{l}}}[{{window}}]))"#
            )),
            p95_latency_ms: Some(LatencyQuery::default().template()),
            cpu_pct: Some(format!(
                "100 * avg(rate(container_cpu_usage_seconds_total{{{l}}}[{{window}}]) / (container_spec_cpu_quota{{{l}}} / container_spec_cpu_period{{{l}}}))"
            )),
            memory_pct: Some(format!(
                "100 * avg(avg_over_time(container_memory_working_set_bytes{{{l}}}[{{window}}]) / container_spec_memory_limit_bytes{{{l}}})"
            )),
            request_rate_rps: Some(format!("sum(rate(http_requests_total{{{l}}}[{{window}}]))")),
        }
    }
}

impl QueryTemplates {
    /// No query at all: every metric reads as no data until set.
    pub fn none() -> Self {
        QueryTemplates {
            error_rate_pct: None,
            p95_latency_ms: None,
            cpu_pct: None,
            memory_pct: None,
            request_rate_rps: None,
        }
    }

    /// Sets the error-rate query (percent).
    pub fn with_error_rate_pct(mut self, query: impl Into<String>) -> Self {
        self.error_rate_pct = Some(query.into());
        self
    }

    /// Sets the P95 query (milliseconds).
    pub fn with_p95_latency_ms(mut self, query: impl Into<String>) -> Self {
        self.p95_latency_ms = Some(query.into());
        self
    }

    /// Sets the P95 query to a preset: [`LatencyQuery::Summary`] for the playbook's
    /// summary, [`LatencyQuery::Histogram`] for histogram buckets.
    pub fn with_latency(self, preset: LatencyQuery) -> Self {
        self.with_p95_latency_ms(preset.template())
    }

    /// Sets the CPU query (percent).
    pub fn with_cpu_pct(mut self, query: impl Into<String>) -> Self {
        self.cpu_pct = Some(query.into());
        self
    }

    /// Sets the memory query (percent).
    pub fn with_memory_pct(mut self, query: impl Into<String>) -> Self {
        self.memory_pct = Some(query.into());
        self
    }

    /// Sets the request-rate query (requests per second).
    pub fn with_request_rate_rps(mut self, query: impl Into<String>) -> Self {
        self.request_rate_rps = Some(query.into());
        self
    }

    fn entries(&self) -> [(&'static str, Option<&str>); 5] {
        [
            ("error_rate_pct", self.error_rate_pct.as_deref()),
            ("p95_latency_ms", self.p95_latency_ms.as_deref()),
            ("cpu_pct", self.cpu_pct.as_deref()),
            ("memory_pct", self.memory_pct.as_deref()),
            ("request_rate_rps", self.request_rate_rps.as_deref()),
        ]
    }
}

/// Which series the P95 query reads, for the labels `job="{service}",region="{region}"`.
///
/// | Preset | Query | Reads |
/// |--------|-------|-------|
/// | `Histogram` (default) | `1000 * histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{L}[{window}])))` | a histogram's `_bucket` series |
/// | `Summary` (the playbook's) | `1000 * max(http_request_duration_seconds{L,quantile="0.95"})` | a summary's `quantile="0.95"` series |
///
/// A service exports one or the other under this name, never both (their `_sum` and
/// `_count` series would collide), and each preset reads the other kind as no data,
/// so a wrong choice shows up as a missing P95, never as a healthy one.
///
/// The histogram default keeps existing configurations reading what they read. The
/// summary preset is the playbook's selector plus the `region` label every default
/// query filters on (decisions are per region) and one aggregation:
///
/// - **`max` across instances.** A summary's quantiles are computed in each process
///   and cannot be merged: PromQL has no way to get the fleet's p95 from per-instance
///   p95s. The max is an honest bound: at most 5 % of each instance's requests are
///   slower than its own p95, so at most 5 % of all requests are slower than the
///   largest one, and the fleet's true p95 is never above it. It errs towards
///   "slow" (one slow instance shows), the safe side for a rollback decision.
/// - **Not `avg`.** The mean of quantiles is not a quantile of anything: one busy,
///   slow instance next to an idle, fast one averages to a p95 far below what most
///   requests saw, which would hide exactly the instance a rollback is about.
/// - **No `{window}`.** The client computes the quantile over its own sliding window
///   (client_golang's `DefMaxAge`: ten minutes); PromQL can neither re-window nor
///   re-aggregate it. The value is each instance's latest sample
///   (within Prometheus' five-minute lookback), as in the playbook's `curl`.
///
/// Chosen with [`PrometheusMetricsBuilder::with_latency`] or
/// [`QueryTemplates::with_latency`]; in a text config it parses from `"histogram"`
/// or `"summary"` ([`FromStr`](std::str::FromStr)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LatencyQuery {
    /// `histogram_quantile(0.95, …)` over `http_request_duration_seconds_bucket`.
    #[default]
    Histogram,
    /// The playbook's `http_request_duration_seconds{quantile="0.95"}`, the `max`
    /// across instances.
    Summary,
}

impl LatencyQuery {
    /// The P95 template (milliseconds) this preset stands for.
    pub fn template(self) -> String {
        let l = r#"job="{service}",region="{region}""#;
        match self {
            LatencyQuery::Histogram => format!(
                "1000 * histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{l}}}[{{window}}])))"
            ),
            LatencyQuery::Summary => {
                format!(r#"1000 * max(http_request_duration_seconds{{{l},quantile="0.95"}})"#)
            }
        }
    }

    /// The preset's name in a config file.
    pub fn as_str(self) -> &'static str {
        match self {
            LatencyQuery::Histogram => "histogram",
            LatencyQuery::Summary => "summary",
        }
    }
}

impl fmt::Display for LatencyQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LatencyQuery {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "histogram" => Ok(LatencyQuery::Histogram),
            "summary" => Ok(LatencyQuery::Summary),
            other => Err(Error::invalid(
                "prometheus.latency",
                format!("unknown preset {other:?}; known: \"histogram\", \"summary\""),
            )),
        }
    }
}

/// Where [`MetricsSource::baseline`] comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Baseline {
    /// The same queries over the same window, evaluated this long ago (an hour, a
    /// week): PromQL's `offset`, applied to the evaluation time.
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

/// Builds a [`PrometheusMetrics`].
#[derive(Debug, Clone)]
pub struct PrometheusMetricsBuilder {
    url: String,
    client: Option<reqwest::Client>,
    timeout: Duration,
    templates: QueryTemplates,
    baseline: Baseline,
    clock: Option<SharedClock>,
}

impl PrometheusMetricsBuilder {
    /// Uses this client (proxies, extra root certificates, an `Authorization`
    /// default header) instead of the crate's default one.
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Sets the per-request timeout (default [`DEFAULT_TIMEOUT`]); it is also sent as
    /// the query's evaluation `timeout`, so Prometheus stops working when we stop
    /// waiting.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the query templates (default [`QueryTemplates::default`]).
    pub fn with_templates(mut self, templates: QueryTemplates) -> Self {
        self.templates = templates;
        self
    }

    /// Sets the P95 query to a preset (default [`LatencyQuery::Histogram`]); the
    /// playbook's is [`LatencyQuery::Summary`]. It changes the templates set so far,
    /// so call it after [`with_templates`](Self::with_templates).
    pub fn with_latency(mut self, preset: LatencyQuery) -> Self {
        self.templates = self.templates.with_latency(preset);
        self
    }

    /// Sets where the baseline comes from (default: an hour earlier).
    pub fn with_baseline(mut self, baseline: Baseline) -> Self {
        self.baseline = baseline;
        self
    }

    /// Sets the clock that says what "now" is (default: the system clock). Queries
    /// are always evaluated at an explicit time from this clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Checks the URL, the timeout and every template, and builds the source.
    pub fn build(self) -> Result<PrometheusMetrics> {
        let mut base = parse_http_url("prometheus.url", &self.url)?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(Error::invalid(
                "prometheus.url",
                "must not have a query or fragment: give the server's base URL",
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if self.timeout.is_zero() {
            return Err(Error::invalid(
                "prometheus.timeout",
                "must be longer than zero",
            ));
        }
        let mut templates = Vec::new();
        for (name, template) in self.templates.entries() {
            if let Some(t) = template {
                check_template(name, t)?;
            }
            templates.push((name, template.map(str::to_owned)));
        }
        if let Baseline::Offset(d) = self.baseline
            && (d.is_zero() || SignedDuration::try_from(d).is_err())
        {
            return Err(Error::invalid(
                "prometheus.baseline",
                "the offset must be longer than zero, like 1h or 1w",
            ));
        }
        let shown = format!("Prometheus({})", display_url(&base));
        let client = match self.client {
            Some(c) => c,
            None => default_client(&shown)?,
        };
        Ok(PrometheusMetrics {
            base,
            shown,
            client,
            timeout: self.timeout,
            templates,
            baseline: self.baseline,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
        })
    }
}

/// A [`MetricsSource`] over Prometheus' HTTP API.
///
/// `Display` is `Prometheus(<base URL without credentials>)`.
#[derive(Debug)]
pub struct PrometheusMetrics {
    base: url::Url,
    shown: String,
    client: reqwest::Client,
    timeout: Duration,
    templates: Vec<(&'static str, Option<String>)>,
    baseline: Baseline,
    clock: SharedClock,
}

impl fmt::Display for PrometheusMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PrometheusMetrics {
    /// A builder for the server at `url` (such as `http://127.0.0.1:9090`, or a base
    /// with a path prefix like `https://host/prometheus`).
    pub fn builder(url: impl Into<String>) -> PrometheusMetricsBuilder {
        PrometheusMetricsBuilder {
            url: url.into(),
            client: None,
            timeout: DEFAULT_TIMEOUT,
            templates: QueryTemplates::default(),
            baseline: Baseline::default(),
            clock: None,
        }
    }

    /// The PromQL sent for each configured metric (named like the [`Metrics`]
    /// fields), for `service` over `window`: what to paste into Prometheus' UI when a
    /// number looks wrong.
    pub fn queries(
        &self,
        service: &ServiceRef,
        window: Duration,
    ) -> Result<Vec<(&'static str, String)>> {
        let window = promql_duration(window)?;
        Ok(self
            .templates
            .iter()
            .filter_map(|(name, t)| t.as_ref().map(|t| (*name, render(t, service, &window))))
            .collect())
    }

    fn context<'a>(&'a self, operation: &'a str, input: &'a str) -> Context<'a> {
        Context {
            provider: &self.shown,
            operation,
            input,
            timeout: self.timeout,
        }
    }

    /// Sends one API request and returns its `data`.
    async fn get(&self, path: &str, params: &[(&str, &str)], ctx: &Context<'_>) -> Result<Data> {
        let mut url = self
            .base
            .join(path)
            .map_err(|e| error::bad_answer(ctx, format!("cannot build the API URL: {e}")))?;
        url.query_pairs_mut()
            .extend_pairs(params)
            .append_pair("timeout", &seconds(self.timeout));
        let response = self
            .client
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| error::from_reqwest(ctx, e, &[]))?;
        let status = response.status();
        let body = read_body(response)
            .await
            .map_err(|e| error::from_reqwest(ctx, e, &[]))?;
        let parsed: std::result::Result<ApiResponse, _> = serde_json::from_str(&body);
        match parsed {
            Ok(ApiResponse {
                status: ApiStatus::Success,
                data: Some(data),
                ..
            }) if status.is_success() => Ok(data),
            Ok(ApiResponse {
                status: ApiStatus::Error,
                error_type,
                error,
                ..
            }) => {
                let detail = format!(
                    "{}: {}",
                    error_type.as_deref().unwrap_or("error"),
                    error.as_deref().unwrap_or("(no message)")
                );
                if status.is_success() {
                    Err(error::bad_answer(ctx, detail))
                } else {
                    Err(error::from_status(ctx, status, &detail, &[]))
                }
            }
            _ if !status.is_success() => {
                Err(error::from_status(ctx, status, &error::excerpt(&body), &[]))
            }
            Ok(_) => Err(error::bad_answer(ctx, "status success without data")),
            Err(e) => Err(error::bad_answer(
                ctx,
                format!("{e} in {:?}", error::excerpt(&body)),
            )),
        }
    }

    /// Evaluates every template at one time.
    async fn instant(
        &self,
        service: &ServiceRef,
        window: Duration,
        at: Timestamp,
        what: &str,
    ) -> Result<Metrics> {
        let window = promql_duration(window)?;
        let time = prom_time(at);
        let queries = self.templates.iter().map(|(name, template)| {
            let window = &window;
            let time = &time;
            async move {
                let Some(template) = template else {
                    return Ok(None);
                };
                let query = render(template, service, window);
                let operation = format!("{what} {name} query for {service} at {at}");
                let input = format!("prometheus.templates.{name}");
                let ctx = self.context(&operation, &input);
                let data = self
                    .get("api/v1/query", &[("query", &query), ("time", time)], &ctx)
                    .await?;
                instant_value(data, &ctx, &query)
            }
        });
        let values = futures::future::try_join_all(queries).await?;
        Ok(metrics_from(&values))
    }
}

#[async_trait]
impl MetricsSource for PrometheusMetrics {
    async fn observe(&self, service: &ServiceRef, window: Duration) -> Result<Metrics> {
        self.instant(service, window, self.clock.now(), "observe")
            .await
    }

    async fn baseline(&self, service: &ServiceRef, window: Duration) -> Result<Metrics> {
        match self.baseline {
            Baseline::Fixed(m) => Ok(m),
            Baseline::Offset(offset) => {
                let offset = SignedDuration::try_from(offset)
                    .map_err(|_| Error::invalid("prometheus.baseline", "offset too long"))?;
                let at = self
                    .clock
                    .now()
                    .checked_sub(offset)
                    .map_err(|e| Error::invalid("prometheus.baseline", e.to_string()))?;
                self.instant(service, window, at, "baseline").await
            }
        }
    }

    async fn observe_range(
        &self,
        service: &ServiceRef,
        window: Duration,
        range: &TimeRange,
    ) -> Result<Vec<MetricsPoint>> {
        let step_ms = u64::try_from(range.step.as_millis()).unwrap_or(u64::MAX);
        if step_ms == 0 {
            return Err(Error::invalid(
                "range.step",
                "must be at least one millisecond",
            ));
        }
        if range.start > range.end {
            return Err(Error::invalid("range.start", "must not be after range.end"));
        }
        let start_ms = range.start.as_millisecond();
        let span_ms = u64::try_from(range.end.as_millisecond() - start_ms).unwrap_or(0);
        let count = span_ms / step_ms + 1;
        if count > MAX_POINTS {
            return Err(Error::invalid(
                "range.step",
                format!(
                    "{count} points per series; Prometheus allows at most {MAX_POINTS}: use a longer step"
                ),
            ));
        }
        let step = SignedDuration::try_from(range.step)
            .map_err(|_| Error::invalid("range.step", "too long"))?;
        let window = promql_duration(window)?;
        let (start, end, step_param) = (
            prom_time(range.start),
            prom_time(range.end),
            seconds(range.step),
        );
        let queries = self.templates.iter().map(|(name, template)| {
            let (window, start, end, step_param) = (&window, &start, &end, &step_param);
            async move {
                let Some(template) = template else {
                    return Ok(None);
                };
                let query = render(template, service, window);
                let operation = format!("range {name} query for {service}");
                let input = format!("prometheus.templates.{name}");
                let ctx = self.context(&operation, &input);
                let data = self
                    .get(
                        "api/v1/query_range",
                        &[
                            ("query", query.as_str()),
                            ("start", start),
                            ("end", end),
                            ("step", step_param),
                        ],
                        &ctx,
                    )
                    .await?;
                range_values(data, &ctx, &query).map(Some)
            }
        });
        let series = futures::future::try_join_all(queries).await?;
        let mut points = Vec::with_capacity(count as usize);
        let mut at = range.start;
        for k in 0..count {
            let key = start_ms + (k * step_ms) as i64;
            let values: Vec<Option<f64>> = series
                .iter()
                .map(|s| s.as_ref().and_then(|m| m.get(&key).copied()).flatten())
                .collect();
            points.push(MetricsPoint {
                at,
                metrics: metrics_from(&values),
            });
            at = match at.checked_add(step) {
                Ok(t) => t,
                Err(_) => break,
            };
        }
        Ok(points)
    }
}

/// The answer of Prometheus' query API.
#[derive(Debug, Deserialize)]
struct ApiResponse {
    status: ApiStatus,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ApiStatus {
    Success,
    Error,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<VectorSample>),
    Scalar(SamplePair),
    Matrix(Vec<RangeSeries>),
    String(serde::de::IgnoredAny),
}

/// `[<unix seconds>, "<value>"]`: values are JSON strings (`"NaN"`, `"+Inf"` too).
type SamplePair = (f64, String);

#[derive(Debug, Deserialize)]
struct VectorSample {
    metric: BTreeMap<String, String>,
    value: SamplePair,
}

#[derive(Debug, Deserialize)]
struct RangeSeries {
    metric: BTreeMap<String, String>,
    values: Vec<SamplePair>,
}

/// One number from an instant query: no series is no data; more than one is a
/// template that forgot to aggregate.
fn instant_value(data: Data, ctx: &Context<'_>, query: &str) -> Result<Option<f64>> {
    match data {
        Data::Scalar((_, v)) => parse_value(&v, ctx),
        Data::Vector(samples) => match samples.as_slice() {
            [] => Ok(None),
            [one] => parse_value(&one.value.1, ctx),
            many => Err(too_many(ctx, query, many.iter().map(|s| &s.metric))),
        },
        Data::Matrix(_) | Data::String(_) => Err(Error::invalid(
            ctx.input,
            format!(
                "{}: {}: `{query}` must return one number (an instant vector or a scalar)",
                ctx.provider, ctx.operation
            ),
        )),
    }
}

/// The values of a range query by millisecond timestamp.
fn range_values(data: Data, ctx: &Context<'_>, query: &str) -> Result<BTreeMap<i64, Option<f64>>> {
    match data {
        Data::Matrix(series) => match series.as_slice() {
            [] => Ok(BTreeMap::new()),
            [one] => one
                .values
                .iter()
                .map(|(t, v)| Ok(((t * 1000.0).round() as i64, parse_value(v, ctx)?)))
                .collect(),
            many => Err(too_many(ctx, query, many.iter().map(|s| &s.metric))),
        },
        _ => Err(error::bad_answer(
            ctx,
            "a range query did not return a matrix",
        )),
    }
}

fn too_many<'a>(
    ctx: &Context<'_>,
    query: &str,
    labels: impl ExactSizeIterator<Item = &'a BTreeMap<String, String>>,
) -> Error {
    let n = labels.len();
    let shown: Vec<String> = labels
        .take(3)
        .map(|m| {
            let pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            format!("{{{}}}", pairs.join(","))
        })
        .collect();
    Error::invalid(
        ctx.input,
        format!(
            "{}: {}: `{query}` returned {n} series ({}); aggregate it to one (sum, avg, max)",
            ctx.provider,
            ctx.operation,
            shown.join(", ")
        ),
    )
}

/// Parses a sample value; `NaN` is no data.
fn parse_value(v: &str, ctx: &Context<'_>) -> Result<Option<f64>> {
    let x: f64 = v
        .parse()
        .map_err(|_| error::bad_answer(ctx, format!("sample value {v:?} is not a number")))?;
    Ok((!x.is_nan()).then_some(x))
}

fn metrics_from(values: &[Option<f64>]) -> Metrics {
    let get = |i: usize| values.get(i).copied().flatten();
    Metrics {
        error_rate_pct: get(0),
        p95_latency_ms: get(1),
        cpu_pct: get(2),
        memory_pct: get(3),
        request_rate_rps: get(4),
    }
}

/// Refuses a template with an unknown `{placeholder}` or no text.
fn check_template(name: &str, template: &str) -> Result<()> {
    let field = format!("prometheus.templates.{name}");
    if template.trim().is_empty() {
        return Err(Error::invalid(field, "is empty; use None for no query"));
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let ident_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if ident_len > 0 && after[ident_len..].starts_with('}') {
            let ident = &after[..ident_len];
            if !PLACEHOLDERS.contains(&ident) {
                return Err(Error::invalid(
                    field,
                    format!(
                        "unknown placeholder {{{ident}}}; known: {{service}}, {{region}}, {{scope}}, {{window}}"
                    ),
                ));
            }
        }
        rest = after;
    }
    Ok(())
}

/// Fills in the placeholders in one pass, so a value that looks like a placeholder
/// is never expanded again.
fn render(template: &str, service: &ServiceRef, window: &str) -> String {
    let scope = match &service.service {
        ServiceId::Ecs { cluster, .. } => cluster.as_str(),
        ServiceId::Kubernetes { namespace, .. } => namespace.as_str(),
        ServiceId::Custom { .. } => "",
    };
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    'scan: while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        for (name, value) in [
            ("{service}", escape(service.service.name())),
            ("{region}", escape(service.region.as_str())),
            ("{scope}", escape(scope)),
            ("{window}", window.to_owned()),
        ] {
            if let Some(tail) = after.strip_prefix(name) {
                out.push_str(&value);
                rest = tail;
                continue 'scan;
            }
        }
        out.push('{');
        rest = &after[1..];
    }
    out.push_str(rest);
    out
}

/// Escapes a value for the inside of a double-quoted PromQL string.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out
}

/// A window as a PromQL duration (`5m`, `90s`, `1500ms`).
fn promql_duration(window: Duration) -> Result<String> {
    let ms = window.as_millis();
    if ms == 0 {
        return Err(Error::invalid(
            "window",
            "must be at least one millisecond, like 5m",
        ));
    }
    Ok(if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    })
}

/// A time as Unix seconds with millisecond precision, as the API takes it.
fn prom_time(t: Timestamp) -> String {
    let ms = t.as_millisecond();
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// A duration as seconds with millisecond precision.
fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshos_rollback_core::model::Region;

    fn svc(name: &str) -> ServiceRef {
        ServiceRef::new(
            Region::new("us-east-1").unwrap(),
            ServiceId::kubernetes("production", name),
        )
    }

    #[test]
    fn templates_are_rendered_in_one_pass_and_escaped() {
        let q = render(
            r#"up{job="{service}",region="{region}",ns="{scope}"}[{window}] {x"#,
            &svc(r#"we"ird\{region}"#),
            "5m",
        );
        assert_eq!(
            q,
            r#"up{job="we\"ird\\{region}",region="us-east-1",ns="production"}[5m] {x"#
        );
    }

    #[test]
    fn default_templates_render_for_a_service() {
        let t = QueryTemplates::default();
        for (name, template) in t.entries() {
            check_template(name, template.unwrap()).unwrap();
        }
        let q = render(
            t.error_rate_pct.as_deref().unwrap(),
            &svc("meshos-api"),
            "5m",
        );
        assert_eq!(
            q,
            r#"100 * (sum(rate(http_requests_total{job="meshos-api",region="us-east-1",code=~"5.."}[5m])) or vector(0)) / sum(rate(http_requests_total{job="meshos-api",region="us-east-1"}[5m]))"#
        );
    }

    #[test]
    fn latency_presets_render_to_exact_promql() {
        let svc = svc("meshos-api");
        let histogram = r#"1000 * histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{job="meshos-api",region="us-east-1"}[5m])))"#;
        let summary = r#"1000 * max(http_request_duration_seconds{job="meshos-api",region="us-east-1",quantile="0.95"})"#;
        for (preset, want) in [
            (LatencyQuery::Histogram, histogram),
            (LatencyQuery::Summary, summary),
        ] {
            let template = preset.template();
            check_template("p95_latency_ms", &template).unwrap();
            assert_eq!(render(&template, &svc, "5m"), want, "{preset}");
            let t = QueryTemplates::default().with_latency(preset);
            assert_eq!(t.p95_latency_ms.as_deref(), Some(template.as_str()));
            assert_eq!(
                t,
                QueryTemplates {
                    p95_latency_ms: Some(template),
                    ..QueryTemplates::default()
                },
                "only the P95 query changes"
            );
            assert_eq!(preset.to_string().parse::<LatencyQuery>().unwrap(), preset);
        }
        // The default is today's histogram query, so existing users read the same.
        assert_eq!(LatencyQuery::default(), LatencyQuery::Histogram);
        assert_eq!(
            QueryTemplates::default().p95_latency_ms.as_deref(),
            Some(LatencyQuery::Histogram.template().as_str())
        );
        // The summary query is the playbook's selector, aggregated.
        assert!(summary.contains(r#"http_request_duration_seconds{job="meshos-api","#));
        assert!(summary.contains(r#"quantile="0.95""#));

        let e = "Summary".parse::<LatencyQuery>().unwrap_err();
        assert_eq!(e.kind(), meshos_rollback_core::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("prometheus.latency"), "{e}");
    }

    #[test]
    fn the_builder_preset_changes_only_the_p95_query() {
        let src = PrometheusMetrics::builder("http://127.0.0.1:9090")
            .with_templates(QueryTemplates::none().with_cpu_pct("up"))
            .with_latency(LatencyQuery::Summary)
            .build()
            .unwrap();
        let queries = src
            .queries(&svc("meshos-api"), Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            queries,
            [
                (
                    "p95_latency_ms",
                    r#"1000 * max(http_request_duration_seconds{job="meshos-api",region="us-east-1",quantile="0.95"})"#
                        .to_owned()
                ),
                ("cpu_pct", "up".to_owned()),
            ]
        );
    }

    #[test]
    fn unknown_placeholders_and_empty_templates_are_refused() {
        let e = check_template("cpu_pct", r#"up{job="{servce}"}"#).unwrap_err();
        assert!(
            e.to_string().contains("unknown placeholder {servce}"),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with("invalid prometheus.templates.cpu_pct")
        );
        assert!(check_template("cpu_pct", "  ").is_err());
        check_template("cpu_pct", r#"sum({__name__="up"})"#).unwrap();
    }

    #[test]
    fn durations_and_times_use_prometheus_forms() {
        assert_eq!(promql_duration(Duration::from_secs(300)).unwrap(), "5m");
        assert_eq!(promql_duration(Duration::from_secs(7200)).unwrap(), "2h");
        assert_eq!(promql_duration(Duration::from_secs(90)).unwrap(), "90s");
        assert_eq!(
            promql_duration(Duration::from_millis(1500)).unwrap(),
            "1500ms"
        );
        assert!(promql_duration(Duration::ZERO).is_err());
        let t: Timestamp = "2025-10-30T10:15:00.25Z".parse().unwrap();
        assert_eq!(prom_time(t), "1761819300.250");
        assert_eq!(seconds(Duration::from_millis(60_500)), "60.500");
    }

    #[test]
    fn values_are_json_strings_and_nan_is_no_data() {
        let ctx = Context {
            provider: "P",
            operation: "op",
            input: "in",
            timeout: Duration::from_secs(1),
        };
        assert_eq!(parse_value("0.25", &ctx).unwrap(), Some(0.25));
        assert_eq!(parse_value("NaN", &ctx).unwrap(), None);
        assert_eq!(parse_value("+Inf", &ctx).unwrap(), Some(f64::INFINITY));
        assert!(parse_value("many", &ctx).is_err());
    }

    #[test]
    fn answers_are_read_as_one_number_or_none() {
        let ctx = Context {
            provider: "P",
            operation: "op",
            input: "prometheus.templates.cpu_pct",
            timeout: Duration::from_secs(1),
        };
        let parse = |s: &str| {
            serde_json::from_str::<ApiResponse>(s)
                .unwrap()
                .data
                .unwrap()
        };
        let empty = parse(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#);
        assert_eq!(instant_value(empty, &ctx, "q").unwrap(), None);
        let one = parse(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"42"]}]}}"#,
        );
        assert_eq!(instant_value(one, &ctx, "q").unwrap(), Some(42.0));
        let scalar =
            parse(r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"7"]}}"#);
        assert_eq!(instant_value(scalar, &ctx, "q").unwrap(), Some(7.0));
        let two = parse(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"i":"a"},"value":[1,"1"]},{"metric":{"i":"b"},"value":[1,"2"]}]}}"#,
        );
        let e = instant_value(two, &ctx, "q").unwrap_err();
        assert_eq!(e.kind(), meshos_rollback_core::ErrorKind::InvalidInput);
        assert!(
            e.to_string()
                .contains(r#"returned 2 series ({i="a"}, {i="b"})"#),
            "{e}"
        );
    }
}
