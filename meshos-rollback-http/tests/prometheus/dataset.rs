//! The Prometheus test data set, and the values it implies, computed without
//! Prometheus.
//!
//! Time is cut into one-minute blocks ending at the anchor `T` (a whole minute):
//! block `m` covers `(T - (m+1)·60 s, T - m·60 s]`. Within a block every rate and gauge
//! of every series is constant ([`Load`]); samples are taken at seconds 5, 20, 35 and
//! 50 of each minute, never on a block edge, so a `[1m]` window ending on a minute
//! holds exactly one block's samples whether the range selector is closed on the left
//! (Prometheus 2) or open (Prometheus 3), and a longer window is checked only where
//! its blocks are equal. Counters start at 10^6 so `rate()` never extrapolates
//! towards zero. Under those conditions `rate()` is exactly the block's rate and the
//! expected numbers below are plain averages.
//!
//! Latency comes in both forms a client library exports under
//! `http_request_duration_seconds`: most services have a histogram (`_bucket`), the
//! playbook's `meshos-api` a summary (`{quantile="0.5|0.9|0.95|0.99"}`), each with
//! `_sum`/`_count`. A service has one or the other, never both, as in real exporters
//! (the `_sum`/`_count` series would collide). A summary's quantiles are gauges the
//! client computed; at a whole minute the newest sample is second 50 of the block
//! that ends there, so an instant query reads that block's quantiles.
//!
//! Shared with the `prometheus_testdata` example (`#[path]`), which writes the same
//! data for a long-running server (`MESHOS_PROMETHEUS_URL`).

#![allow(dead_code, unreachable_pub)]

use std::fmt::Write as _;

use meshos_rollback_core::model::{Region, ServiceId, ServiceRef};
use meshos_rollback_core::observation::Metrics;

/// Seconds into each minute at which every series is sampled.
pub const SAMPLE_SECONDS: [i64; 4] = [5, 20, 35, 50];
/// How many minutes of data end at the anchor.
pub const SPAN_MINUTES: i64 = 75;
/// Blocks before this one (counting back from the anchor) are the "earlier" phase,
/// which the one-hour baseline reads.
pub const CURRENT_MINUTES: i64 = 30;
/// The CPU allocation: quota / period = 2 cores.
pub const CPU_QUOTA: f64 = 200_000.0;
/// The CPU period.
pub const CPU_PERIOD: f64 = 100_000.0;
/// The memory limit: 2 GiB.
pub const MEM_LIMIT: f64 = 2.0 * GIB;
/// The quantiles a summary exports (the `quantile` label values).
pub const SUMMARY_QUANTILES: [&str; 4] = ["0.5", "0.9", "0.95", "0.99"];
/// The finite histogram bucket bounds, in seconds.
pub const BUCKETS: [f64; 6] = [0.05, 0.1, 0.2, 0.3, 0.5, 1.0];
/// Every counter's value at the start of the data.
pub const START: f64 = 1_000_000.0;
/// The name of the gauge that holds the anchor, in Unix seconds.
pub const ANCHOR_SERIES: &str = "meshos_testdata_anchor_seconds";
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What one instance does during one block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Requests per second answered 200.
    pub ok_rps: f64,
    /// Requests per second answered 503.
    pub err_rps: f64,
    /// Share of requests per finite bucket (`BUCKETS`), not cumulative; the rest took
    /// longer than the last bound.
    pub latency: [f64; 6],
    /// CPU in use, in cores.
    pub cpu_cores: f64,
    /// Memory working set, in bytes.
    pub mem_bytes: f64,
}

/// Earlier (baseline) latency: p95 = 0.1 + 0.1 · (0.95 - 0.93) / 0.05 = 140 ms.
const LAT_BASE: [f64; 6] = [0.65, 0.28, 0.05, 0.015, 0.005, 0.0];
/// Healthy latency: p95 = 0.1 + 0.1 · (0.95 - 0.90) / 0.08 = 162.5 ms.
const LAT_OK: [f64; 6] = [0.60, 0.30, 0.08, 0.015, 0.005, 0.0];
/// Degraded latency: p95 = 0.3 + 0.2 · (0.95 - 0.90) / 0.08 = 425 ms.
const LAT_MID: [f64; 6] = [0.30, 0.30, 0.20, 0.10, 0.08, 0.02];
/// Slow latency: p95 = 0.5 + 0.5 · (0.95 - 0.90) / 0.07 ≈ 857 ms.
const LAT_SLOW: [f64; 6] = [0.05, 0.15, 0.30, 0.25, 0.15, 0.07];

const fn load(ok_rps: f64, err_rps: f64, latency: [f64; 6], cpu_cores: f64, mem_gib: f64) -> Load {
    Load {
        ok_rps,
        err_rps,
        latency,
        cpu_cores,
        mem_bytes: mem_gib * GIB,
    }
}

/// The services of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `checkout` in us-east-1: recovered, every verification limit holds.
    Healthy,
    /// `payments` in us-east-1: 6.6 % errors, P95 857 ms, CPU 94 %: roll back.
    Breaching,
    /// `ghost` in us-east-1: no series at all.
    Silent,
    /// `search` in us-east-1: breaching until 15 minutes ago, degraded for five
    /// minutes, healthy for the last ten.
    Recovering,
    /// `batch` in us-east-1: series exist but no request for the last 30 minutes.
    Idle,
    /// `static` in us-east-1: requests, but no 5xx series ever.
    NoServerErrors,
    /// `checkout` in eu-west-1: same job as `Healthy`, other numbers.
    HealthyEu,
    /// The playbook's `meshos-api` in us-east-1, latency as a **summary** only:
    /// instance `i-2` was slow (p95 450 ms) until 10 minutes ago; now the p95s are
    /// 150 ms and 185 ms, an hour ago 110 ms and 125 ms.
    Api,
}

/// How a scenario exports `http_request_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyExport {
    /// `_bucket{le=…}`, `_sum`, `_count`.
    Histogram,
    /// `{quantile=…}`, `_sum`, `_count`.
    Summary,
}

/// Summary quantiles (p50, p90, p95, p99 in seconds) of `meshos-api`, per instance.
const API_SUMMARY_BASE: [[f64; 4]; 2] =
    [[0.040, 0.085, 0.110, 0.180], [0.045, 0.095, 0.125, 0.210]];
const API_SUMMARY_OK: [[f64; 4]; 2] = [[0.050, 0.120, 0.150, 0.260], [0.060, 0.150, 0.185, 0.320]];
const API_SUMMARY_SLOW: [f64; 4] = [0.090, 0.300, 0.450, 0.800];
/// The mean latency behind every summary's `_sum`, in seconds.
const API_MEAN: f64 = 0.07;

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 8] = [
        Scenario::Healthy,
        Scenario::Breaching,
        Scenario::Silent,
        Scenario::Recovering,
        Scenario::Idle,
        Scenario::NoServerErrors,
        Scenario::HealthyEu,
        Scenario::Api,
    ];

    /// The `job` label.
    pub fn job(self) -> &'static str {
        match self {
            Scenario::Healthy | Scenario::HealthyEu => "checkout",
            Scenario::Breaching => "payments",
            Scenario::Silent => "ghost",
            Scenario::Recovering => "search",
            Scenario::Idle => "batch",
            Scenario::NoServerErrors => "static",
            Scenario::Api => "meshos-api",
        }
    }

    /// The `region` label.
    pub fn region(self) -> &'static str {
        match self {
            Scenario::HealthyEu => "eu-west-1",
            _ => "us-east-1",
        }
    }

    /// The service as the provider is asked about it.
    pub fn service(self) -> ServiceRef {
        ServiceRef::new(
            Region::new(self.region()).expect("region"),
            ServiceId::kubernetes("production", self.job()),
        )
    }

    fn instances(self) -> usize {
        if self == Scenario::Silent { 0 } else { 2 }
    }

    /// How the scenario exports latency.
    pub fn latency_export(self) -> LatencyExport {
        match self {
            Scenario::Api => LatencyExport::Summary,
            _ => LatencyExport::Histogram,
        }
    }

    /// The summary quantiles ([`SUMMARY_QUANTILES`], seconds) `instance` reports
    /// during block `m`; `None` for a scenario that exports a histogram.
    pub fn summary(self, m: i64, instance: usize) -> Option<[f64; 4]> {
        if self.latency_export() != LatencyExport::Summary {
            return None;
        }
        Some(match (m, instance) {
            (CURRENT_MINUTES.., i) => API_SUMMARY_BASE[i],
            (10.., 1) => API_SUMMARY_SLOW,
            (_, i) => API_SUMMARY_OK[i],
        })
    }

    fn has_5xx_series(self) -> bool {
        self != Scenario::NoServerErrors
    }

    /// The load of `instance` during block `m` (0 = the minute ending at the anchor).
    pub fn load(self, m: i64, instance: usize) -> Load {
        let i = instance;
        let earlier = m >= CURRENT_MINUTES;
        let base = [
            load(400.0, 0.2, LAT_BASE, 0.7, 0.8),
            load(500.0, 0.25, LAT_BASE, 0.9, 1.0),
        ][i];
        let healthy = [
            load(450.0, 0.2, LAT_OK, 0.8, 0.9),
            load(540.0, 0.3, LAT_OK, 1.0, 1.1),
        ][i];
        let breaching = [
            load(400.0, 30.0, LAT_SLOW, 1.9, 1.0),
            load(500.0, 34.0, LAT_SLOW, 1.86, 1.2),
        ][i];
        let degraded = [
            load(420.0, 2.0, LAT_MID, 1.5, 1.0),
            load(510.0, 2.5, LAT_MID, 1.5, 1.1),
        ][i];
        match self {
            Scenario::Silent => unreachable!("no instances"),
            _ if earlier && self != Scenario::HealthyEu => base,
            Scenario::Healthy => healthy,
            Scenario::Breaching => breaching,
            Scenario::Recovering => match m {
                0..10 => healthy,
                10..15 => degraded,
                _ => breaching,
            },
            Scenario::Idle => load(0.0, 0.0, LAT_BASE, 0.02, 0.2),
            Scenario::NoServerErrors => [
                load(100.0, 0.0, LAT_OK, 0.3, 0.5),
                load(120.0, 0.0, LAT_OK, 0.4, 0.6),
            ][i],
            Scenario::HealthyEu => [
                load(200.0, 1.0, LAT_BASE, 0.5, 0.6),
                load(220.0, 1.2, LAT_BASE, 0.6, 0.7),
            ][i],
            // `latency` is unused: the summary quantiles come from `summary`.
            Scenario::Api => [
                load(420.0, 0.1, LAT_OK, 0.6, 0.7),
                load(500.0, 0.2, LAT_OK, 0.7, 0.8),
            ][i],
        }
    }
}

/// The anchor for data written now: the start of the previous minute, so the last
/// sample (10 s before it) is more than a minute in the past.
pub fn anchor_now() -> i64 {
    let now = jiff::Timestamp::now().as_second();
    now - now.rem_euclid(60) - 60
}

/// The metrics the default templates should read over the `window_minutes` ending at
/// `at` (a whole minute, at most the anchor).
pub fn expected(s: Scenario, anchor: i64, at: i64, window_minutes: i64) -> Metrics {
    assert_eq!(
        (anchor - at).rem_euclid(60),
        0,
        "evaluate on a whole minute"
    );
    let first = (anchor - at) / 60;
    let n = s.instances();
    if n == 0 {
        return Metrics::default();
    }
    let blocks: Vec<i64> = (first..first + window_minutes).collect();
    let nb = blocks.len() as f64;
    let (mut ok, mut err) = (0.0, 0.0);
    let mut cum_buckets = [0.0; 7];
    let (mut cpu_share, mut mem_share) = (0.0, 0.0);
    for i in 0..n {
        let (mut cpu, mut mem) = (0.0, 0.0);
        for &m in &blocks {
            let l = s.load(m, i);
            ok += l.ok_rps / nb;
            err += l.err_rps / nb;
            let total = l.ok_rps + l.err_rps;
            let mut below = 0.0;
            for (b, share) in l.latency.iter().enumerate() {
                below += share;
                cum_buckets[b] += total * below / nb;
            }
            cum_buckets[6] += total / nb;
            cpu += l.cpu_cores / nb;
            mem += l.mem_bytes / nb;
        }
        cpu_share += cpu / (CPU_QUOTA / CPU_PERIOD) / n as f64;
        mem_share += mem / MEM_LIMIT / n as f64;
    }
    let total = ok + err;
    Metrics {
        error_rate_pct: (total > 0.0).then(|| 100.0 * err / total),
        p95_latency_ms: match s.latency_export() {
            LatencyExport::Histogram => quantile(0.95, &cum_buckets).map(|s| s * 1000.0),
            LatencyExport::Summary => None,
        },
        cpu_pct: Some(100.0 * cpu_share),
        memory_pct: Some(100.0 * mem_share),
        request_rate_rps: Some(total),
    }
}

/// The metrics the default templates with the summary P95 preset should read: as
/// [`expected`], but P95 is the largest p95 any instance reported for the block that
/// ends at `at`, and no data for a scenario that exports a histogram.
pub fn expected_summary(s: Scenario, anchor: i64, at: i64, window_minutes: i64) -> Metrics {
    let m = (anchor - at) / 60;
    let p95 = (0..s.instances())
        .filter_map(|i| s.summary(m, i).map(|q| q[2]))
        .reduce(f64::max);
    Metrics {
        p95_latency_ms: p95.map(|s| s * 1000.0),
        ..expected(s, anchor, at, window_minutes)
    }
}

/// The q-quantile of a cumulative histogram (the finite `BUCKETS`, then +Inf), by
/// linear interpolation within the bucket that holds the rank; `None` when empty.
pub fn quantile(q: f64, cumulative: &[f64; 7]) -> Option<f64> {
    let count = cumulative[6];
    if count <= 0.0 {
        return None;
    }
    let rank = q * count;
    let b = cumulative.iter().position(|&c| c >= rank)?;
    if b == 6 {
        return Some(BUCKETS[5]);
    }
    let (lower, below) = if b == 0 {
        (0.0, 0.0)
    } else {
        (BUCKETS[b - 1], cumulative[b - 1])
    };
    Some(lower + (BUCKETS[b] - lower) * (rank - below) / (cumulative[b] - below))
}

/// Every sample time, ascending.
fn sample_times(anchor: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for m in (0..SPAN_MINUTES).rev() {
        let block_start = anchor - (m + 1) * 60;
        for s in SAMPLE_SECONDS {
            out.push((m, block_start + s));
        }
    }
    out
}

/// The integral of `rate` for one instance from the start of the data to `t` in
/// block `m`, on top of [`START`].
fn counter(s: Scenario, i: usize, anchor: i64, m: i64, t: i64, rate: impl Fn(&Load) -> f64) -> f64 {
    let mut v = START;
    for older in (m + 1..SPAN_MINUTES).rev() {
        v += rate(&s.load(older, i)) * 60.0;
    }
    let block_start = anchor - (m + 1) * 60;
    v + rate(&s.load(m, i)) * (t - block_start) as f64
}

/// The data set as an OpenMetrics text file for `promtool tsdb create-blocks-from
/// openmetrics`: timestamps in seconds, each family's samples together and in time
/// order, `# EOF` at the end.
pub fn openmetrics(anchor: i64) -> String {
    let times = sample_times(anchor);
    let mut out = String::with_capacity(16 << 20);
    let labels = |s: Scenario, i: usize| {
        format!(
            r#"job="{}",region="{}",namespace="production",instance="i-{}""#,
            s.job(),
            s.region(),
            i + 1
        )
    };
    let series = || {
        Scenario::ALL
            .into_iter()
            .flat_map(|s| (0..s.instances()).map(move |i| (s, i)))
    };

    out.push_str("# TYPE http_requests counter\n");
    for &(m, t) in &times {
        for (s, i) in series() {
            let l = labels(s, i);
            let ok = counter(s, i, anchor, m, t, |x| x.ok_rps);
            writeln!(out, r#"http_requests_total{{{l},code="200"}} {ok} {t}"#).unwrap();
            if s.has_5xx_series() {
                let err = counter(s, i, anchor, m, t, |x| x.err_rps);
                writeln!(out, r#"http_requests_total{{{l},code="503"}} {err} {t}"#).unwrap();
            }
        }
    }

    out.push_str("# TYPE http_request_duration_seconds histogram\n");
    for &(m, t) in &times {
        for (s, i) in series().filter(|(s, _)| s.latency_export() == LatencyExport::Histogram) {
            let l = labels(s, i);
            for (b, bound) in BUCKETS.iter().enumerate() {
                let v = counter(s, i, anchor, m, t, |x| {
                    (x.ok_rps + x.err_rps) * x.latency[..=b].iter().sum::<f64>()
                });
                writeln!(
                    out,
                    r#"http_request_duration_seconds_bucket{{{l},le="{bound}"}} {v} {t}"#
                )
                .unwrap();
            }
            let count = counter(s, i, anchor, m, t, |x| x.ok_rps + x.err_rps);
            writeln!(
                out,
                r#"http_request_duration_seconds_bucket{{{l},le="+Inf"}} {count} {t}"#
            )
            .unwrap();
            writeln!(
                out,
                "http_request_duration_seconds_count{{{l}}} {count} {t}"
            )
            .unwrap();
            let sum = counter(s, i, anchor, m, t, |x| (x.ok_rps + x.err_rps) * 0.1);
            writeln!(out, "http_request_duration_seconds_sum{{{l}}} {sum} {t}").unwrap();
        }
    }

    // The same family name as a summary, for the services that export one.
    out.push_str("# TYPE http_request_duration_seconds summary\n");
    for &(m, t) in &times {
        for (s, i) in series() {
            let Some(values) = s.summary(m, i) else {
                continue;
            };
            let l = labels(s, i);
            for (q, v) in SUMMARY_QUANTILES.iter().zip(values) {
                writeln!(
                    out,
                    r#"http_request_duration_seconds{{{l},quantile="{q}"}} {v} {t}"#
                )
                .unwrap();
            }
            let count = counter(s, i, anchor, m, t, |x| x.ok_rps + x.err_rps);
            writeln!(
                out,
                "http_request_duration_seconds_count{{{l}}} {count} {t}"
            )
            .unwrap();
            let sum = counter(s, i, anchor, m, t, |x| (x.ok_rps + x.err_rps) * API_MEAN);
            writeln!(out, "http_request_duration_seconds_sum{{{l}}} {sum} {t}").unwrap();
        }
    }

    out.push_str("# TYPE container_cpu_usage_seconds counter\n");
    for &(m, t) in &times {
        for (s, i) in series() {
            let v = counter(s, i, anchor, m, t, |x| x.cpu_cores);
            writeln!(
                out,
                "container_cpu_usage_seconds_total{{{}}} {v} {t}",
                labels(s, i)
            )
            .unwrap();
        }
    }

    for (name, value) in [
        ("container_spec_cpu_quota", CPU_QUOTA),
        ("container_spec_cpu_period", CPU_PERIOD),
        ("container_spec_memory_limit_bytes", MEM_LIMIT),
    ] {
        writeln!(out, "# TYPE {name} gauge").unwrap();
        for &(_, t) in &times {
            for (s, i) in series() {
                writeln!(out, "{name}{{{}}} {value} {t}", labels(s, i)).unwrap();
            }
        }
    }

    out.push_str("# TYPE container_memory_working_set_bytes gauge\n");
    for &(m, t) in &times {
        for (s, i) in series() {
            let v = s.load(m, i).mem_bytes;
            writeln!(
                out,
                "container_memory_working_set_bytes{{{}}} {v} {t}",
                labels(s, i)
            )
            .unwrap();
        }
    }

    writeln!(out, "# TYPE {ANCHOR_SERIES} gauge").unwrap();
    for &(_, t) in &times {
        writeln!(out, "{ANCHOR_SERIES} {anchor} {t}").unwrap();
    }
    out.push_str("# EOF\n");
    out
}
