//! The playbook's post-rollback verification (§ Post-Rollback Verification, Metrics
//! Verification) against a Prometheus: for each service, the error rate, P95, CPU,
//! memory and request rate at every check of the verification window, judged by the
//! core's `VerificationLimits` against the same window an hour earlier.
//!
//! One command starts a local Prometheus with demo data and runs this:
//!
//! ```text
//! scripts/prometheus-example.sh
//! ```
//!
//! By hand: `MESHOS_PROMETHEUS_URL=http://127.0.0.1:9090 cargo run -p
//! meshos-rollback-examples --example prometheus_verification -- [--at UNIX_SECONDS]
//! [--latency histogram|summary] [SERVICE ...]` (services as `region/namespace/name`;
//! default: the demo data's `us-east-1/production/checkout` and
//! `us-east-1/production/search`). `--latency summary` reads P95 as the playbook does,
//! from the summary `http_request_duration_seconds{quantile="0.95"}` (the demo data's
//! `us-east-1/production/meshos-api` exports one); the default reads histogram buckets.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use meshos_rollback_core::clock::{Clock, SharedClock, SystemClock};
use meshos_rollback_core::decision::{VerificationLimits, VerificationVerdict};
use meshos_rollback_core::model::{Region, ServiceId, ServiceRef};
use meshos_rollback_core::observation::Observation;
use meshos_rollback_core::provider::{MetricsSource, TimeRange};
use meshos_rollback_http::{Baseline, LatencyQuery, PrometheusMetrics};

/// "Now" for the demo data, which ends a minute before it was written.
#[derive(Debug)]
struct At(Timestamp);

impl Clock for At {
    fn now(&self) -> Timestamp {
        self.0
    }
}

fn fmt(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "no data".to_owned(), |v| format!("{v:.3}{unit}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url =
        std::env::var("MESHOS_PROMETHEUS_URL").unwrap_or_else(|_| "http://127.0.0.1:9090".into());
    let mut args = std::env::args().skip(1).peekable();
    let mut clock: SharedClock = Arc::new(SystemClock);
    let mut services = Vec::new();
    let mut latency = LatencyQuery::default();
    while let Some(arg) = args.next() {
        if arg == "--at" {
            let secs: i64 = args.next().ok_or("--at needs Unix seconds")?.parse()?;
            clock = Arc::new(At(Timestamp::from_second(secs)?));
        } else if arg == "--latency" {
            latency = args
                .next()
                .ok_or("--latency needs histogram or summary")?
                .parse()?;
        } else {
            let mut parts = arg.splitn(3, '/');
            let (Some(region), Some(ns), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("{arg:?}: want region/namespace/name").into());
            };
            services.push(ServiceRef::new(
                Region::new(region)?,
                ServiceId::kubernetes(ns, name),
            ));
        }
    }
    if services.is_empty() {
        for name in ["checkout", "search"] {
            services.push(ServiceRef::new(
                Region::new("us-east-1")?,
                ServiceId::kubernetes("production", name),
            ));
        }
    }

    let limits = VerificationLimits::default();
    let now = clock.now();
    let prometheus = PrometheusMetrics::builder(url)
        .with_clock(clock)
        .with_baseline(Baseline::Offset(Duration::from_secs(3600)))
        .with_timeout(Duration::from_secs(10))
        .with_latency(latency)
        .build()?;
    let range = TimeRange {
        start: now - limits.window(),
        end: now,
        step: limits.check_interval(),
    };
    println!(
        "Post-rollback verification with {prometheus} (P95 from the {latency}): every {:?} for {:?} up to {now}",
        limits.check_interval(),
        limits.window()
    );
    for service in &services {
        let baseline = prometheus
            .baseline(service, Duration::from_secs(300))
            .await?;
        let points = prometheus
            .observe_range(service, limits.check_interval(), &range)
            .await?;
        println!(
            "\n{service} (baseline an hour ago: P95 {}, {})",
            fmt(baseline.p95_latency_ms, " ms"),
            fmt(baseline.request_rate_rps, " rps")
        );
        println!(
            "  {:<21} {:>11} {:>13} {:>9} {:>9} {:>12}  verdict",
            "at", "errors", "P95", "CPU", "memory", "requests"
        );
        let mut verdicts = Vec::new();
        for p in &points {
            let report = limits.check(&Observation::new(p.metrics, baseline));
            let m = &p.metrics;
            println!(
                "  {:<21} {:>11} {:>13} {:>9} {:>9} {:>12}  {:?}",
                p.at.to_string(),
                fmt(m.error_rate_pct, " %"),
                fmt(m.p95_latency_ms, " ms"),
                fmt(m.cpu_pct, " %"),
                fmt(m.memory_pct, " %"),
                fmt(m.request_rate_rps, " rps"),
                report.verdict
            );
            verdicts.push(report);
        }
        let all_passed = verdicts
            .iter()
            .all(|r| r.verdict == VerificationVerdict::Passed);
        match verdicts.last() {
            Some(last) if all_passed => println!("  => verified: every check passed\n  {last}"),
            Some(last) => println!(
                "  => NOT verified: {} of {} checks did not pass; latest:\n  {last}",
                verdicts
                    .iter()
                    .filter(|r| r.verdict != VerificationVerdict::Passed)
                    .count(),
                verdicts.len()
            ),
            None => println!("  => no checks"),
        }
    }
    Ok(())
}
