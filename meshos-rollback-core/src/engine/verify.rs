//! Post-rollback verification (playbook § Post-Rollback Verification): health
//! endpoints, smoke tests, metrics held under the limits for a window, customer reports.
//!
//! With a [`LogSource`](crate::provider::LogSource), verification also counts the
//! service's error lines (pattern [`DEFAULT_ERROR_PATTERN`]) written since it started,
//! and keeps up to three of them, redacted, in the outcome. They are evidence
//! for the report, not a check: the metrics decide whether the rollback fixed things
//! (a recovered service still logs the odd error, and a quiet log proves nothing), so
//! error lines never fail verification and a log that cannot be read is a note, not a
//! problem.

use std::fmt;
use std::time::Duration;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use super::plan::VerificationChecks;
use super::providers::Providers;
use super::spec::VerificationSpec;
use crate::Result;
use crate::clock::Clock;
use crate::decision::{RollbackPolicy, VerificationReport, VerificationVerdict};
use crate::model::{Region, ServiceRef};
use crate::observation::{Observation, Reading, Signal, validate};
use crate::provider::{
    DEFAULT_ERROR_PATTERN, HealthCheckResult, HealthEndpoint, LogEvidence, SmokeTestResult,
};
use crate::redact::Redactor;

/// Error lines kept in a [`VerificationOutcome`] at most.
pub(crate) const LOG_SAMPLES: usize = 3;

/// Characters of a sample line kept at most; the rest is cut with `…`.
const MAX_SAMPLE_CHARS: usize = 300;

/// What verification found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationOutcome {
    /// Whether the rollback fixed things.
    pub passed: bool,
    /// Health endpoint results (first and last round).
    pub health: Vec<HealthCheckResult>,
    /// The smoke-test result, when run.
    pub smoke: Option<SmokeTestResult>,
    /// Metric checks made during the window.
    pub metric_checks: u32,
    /// How long the metrics were held under the limits.
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::required")]
    pub held_for: Duration,
    /// The last metrics check (the failing one, if one failed).
    pub last_metrics: Option<VerificationReport>,
    /// Customer reports in the matrix's window at the end.
    pub customer_reports: Option<u32>,
    /// What is wrong, in plain words; empty when passed.
    pub problems: Vec<String>,
    /// With a log source: the error lines in the service's log since verification
    /// started (their count and up to three, oldest first, redacted and shortened),
    /// or why the log could not be read. Evidence only: never a failure.
    #[serde(default)]
    pub error_logs: Option<LogEvidence>,
}

impl VerificationOutcome {
    /// One line saying plainly whether the rollback fixed things.
    pub fn headline(&self) -> String {
        if self.passed {
            let mut parts = Vec::new();
            let healthy = self.health.iter().filter(|h| h.healthy).count();
            if !self.health.is_empty() {
                parts.push(format!(
                    "{healthy}/{} health checks passing",
                    self.health.len()
                ));
            }
            if let Some(s) = &self.smoke {
                parts.push(format!("smoke tests: {}", s.summary));
            }
            if self.metric_checks > 0 {
                parts.push(format!(
                    "metrics under the limits for {} ({} checks)",
                    super::plan::human_duration(self.held_for),
                    self.metric_checks
                ));
            }
            if let Some(n) = self.customer_reports {
                parts.push(format!("{n} customer report(s)"));
            }
            if let Some(logs) = self.logs_part() {
                parts.push(logs);
            }
            format!("the rollback fixed it: {}", parts.join(", "))
        } else {
            let mut line = format!("the rollback did NOT fix it: {}", self.problems.join("; "));
            if let Some(logs) = self.logs_part() {
                line.push_str(&format!(" ({logs})"));
            }
            line
        }
    }

    /// The error-log evidence for the headline.
    fn logs_part(&self) -> Option<String> {
        Some(match self.error_logs.as_ref()? {
            LogEvidence::Read(s) => format!(
                "{}{} error log line(s) since verification started",
                if s.truncated { "at least " } else { "" },
                s.count
            ),
            LogEvidence::Unreadable(why) => format!("error logs not read: {why}"),
        })
    }
}

impl fmt::Display for VerificationOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline())?;
        for h in &self.health {
            write!(f, "\n  - {h}")?;
        }
        if let Some(m) = &self.last_metrics {
            for line in m.to_string().lines() {
                write!(f, "\n  {line}")?;
            }
        }
        if let Some(LogEvidence::Read(s)) = &self.error_logs {
            for line in &s.samples {
                write!(f, "\n  log: {line}")?;
            }
        }
        Ok(())
    }
}

/// The health endpoints of a region, from the templates.
pub(crate) fn endpoints(spec: &VerificationSpec, region: &Region) -> Vec<HealthEndpoint> {
    spec.health_endpoints
        .iter()
        .map(|t| endpoint(region, t.replace("{region}", region.as_str())))
        .collect()
}

/// A health endpoint named by its region and path.
fn endpoint(region: &Region, url: String) -> HealthEndpoint {
    let name = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
        .unwrap_or_else(|| url.clone());
    HealthEndpoint::new(format!("{region} {name}"), url)
}

async fn probe(
    providers: &Providers,
    eps: &[HealthEndpoint],
    out: &mut VerificationOutcome,
) -> Result<()> {
    let Some(checker) = &providers.health else {
        return Ok(());
    };
    for ep in eps {
        let r = checker.check(ep).await?;
        if !r.healthy {
            out.problems.push(format!("{r}"));
        }
        out.health.push(r);
    }
    Ok(())
}

/// Runs the planned checks for one service, then (with `spec.logs`) adds the error
/// lines logged since it started, passed or not.
pub(crate) async fn verify(
    providers: &Providers,
    spec: &VerificationChecks,
    policy: &RollbackPolicy,
    clock: &dyn Clock,
    service: &ServiceRef,
) -> Result<VerificationOutcome> {
    let started = clock.now();
    let mut out = checks(providers, spec, policy, clock, service).await?;
    if spec.logs
        && let Some(logs) = &providers.logs
    {
        match logs
            .errors(service, started, DEFAULT_ERROR_PATTERN, LOG_SAMPLES)
            .await
        {
            Ok(mut summary) => {
                // The journal masks the engine's registered secrets; this masks
                // credential patterns (tokens, webhook paths) that a log line may carry.
                let redactor = Redactor::new();
                summary.samples.truncate(LOG_SAMPLES);
                for l in &mut summary.samples {
                    l.message = shorten(&redactor.redact(l.message.trim_end()));
                }
                out.error_logs = Some(LogEvidence::Read(summary));
            }
            Err(e) => out.error_logs = Some(LogEvidence::Unreadable(format!("{logs}: {e}"))),
        }
    }
    Ok(out)
}

/// `text` cut to [`MAX_SAMPLE_CHARS`] characters.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_SAMPLE_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// Runs the planned checks for one service. Fails fast: an unhealthy endpoint or a
/// limit exceeded ends it at once; missing metric data is a failure, never a pass; and
/// a verification that checked nothing did not pass.
async fn checks(
    providers: &Providers,
    spec: &VerificationChecks,
    policy: &RollbackPolicy,
    clock: &dyn Clock,
    service: &ServiceRef,
) -> Result<VerificationOutcome> {
    let mut out = VerificationOutcome {
        passed: false,
        health: Vec::new(),
        smoke: None,
        metric_checks: 0,
        held_for: Duration::ZERO,
        last_metrics: None,
        customer_reports: None,
        problems: Vec::new(),
        error_logs: None,
    };
    let eps: Vec<HealthEndpoint> = spec
        .health_endpoints
        .iter()
        .map(|u| endpoint(&service.region, u.clone()))
        .collect();
    probe(providers, &eps, &mut out).await?;
    if !out.problems.is_empty() {
        return Ok(out);
    }
    if spec.smoke_tests
        && let Some(smoke) = &providers.smoke
    {
        let r = smoke.run(service).await?;
        if !r.passed {
            out.problems
                .push(format!("smoke tests failed: {}", r.summary));
        }
        out.smoke = Some(r);
        if !out.problems.is_empty() {
            return Ok(out);
        }
    }
    if spec.metrics
        && let Some(metrics) = &providers.metrics
    {
        let limits = &policy.verification;
        let window = limits.window();
        let interval = limits.check_interval();
        let baseline = metrics.baseline(service, interval).await?;
        let started = tokio::time::Instant::now();
        loop {
            let current = metrics.observe(service, interval).await?;
            let report = limits.check(&Observation::new(current, baseline));
            out.metric_checks += 1;
            let verdict = report.verdict;
            out.last_metrics = Some(report);
            match verdict {
                VerificationVerdict::Passed => {}
                VerificationVerdict::Failed => {
                    let failing: Vec<String> = out
                        .last_metrics
                        .iter()
                        .flat_map(|r| r.checks.iter().filter(|c| !c.passed).map(|c| c.to_string()))
                        .collect();
                    out.problems.push(format!(
                        "metrics over the limits after {}: {}",
                        super::plan::human_duration(started.elapsed()),
                        failing.join(", ")
                    ));
                    return Ok(out);
                }
                VerificationVerdict::NoData => {
                    let missing = out
                        .last_metrics
                        .as_ref()
                        .map(|r| r.missing.to_string())
                        .unwrap_or_default();
                    out.problems.push(format!(
                        "no metric data for {missing}: cannot confirm recovery; check the metrics source"
                    ));
                    return Ok(out);
                }
            }
            out.held_for = started.elapsed();
            if out.held_for >= window {
                break;
            }
            tokio::time::sleep(interval.min(window - out.held_for)).await;
        }
    }
    if spec.customer_reports
        && let Some(reports) = &providers.reports
    {
        let w = policy.matrix.customer_reports_window();
        let since = clock
            .now()
            .checked_sub(SignedDuration::try_from(w).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(clock.now());
        let n = reports.count_since(&service.region, since).await?;
        out.customer_reports = Some(n);
        let limit = policy.matrix.settings().customer_reports_investigate_above;
        if n > limit {
            out.problems.push(format!(
                "customers are still reporting problems: {n} report(s) in the last {} (investigate above {limit})",
                super::plan::human_duration(w)
            ));
        }
    }
    // Health once more at the end of the window.
    if out.metric_checks > 0 {
        probe(providers, &eps, &mut out).await?;
    }
    if out.health.is_empty()
        && out.smoke.is_none()
        && out.metric_checks == 0
        && out.customer_reports.is_none()
    {
        out.problems.push(
            "nothing was checked (no health endpoint, smoke test, metric or customer-report check ran): not verified".into(),
        );
    }
    out.passed = out.problems.is_empty();
    Ok(out)
}

/// Checks that regions not rolled back stay healthy: every health endpoint answers, and
/// where a metrics source exists, error rate and P95 are below the matrix's "monitor"
/// levels. Missing data is inconclusive, a problem, never read as healthy.
pub(crate) async fn check_others(
    providers: &Providers,
    spec: &VerificationSpec,
    policy: &RollbackPolicy,
    services: &[ServiceRef],
) -> Result<(Vec<String>, Vec<String>)> {
    let m = policy.matrix.settings();
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for svc in services {
        let region = &svc.region;
        let eps = endpoints(spec, region);
        let mut ok = 0;
        match &providers.health {
            Some(checker) => {
                for ep in &eps {
                    let r = checker.check(ep).await?;
                    if r.healthy {
                        ok += 1;
                    } else {
                        problems.push(format!("{region}: {r}"));
                    }
                }
            }
            None => problems.push(format!(
                "{region}: no HealthChecker, so its health was not checked"
            )),
        }
        let mut line = format!("{region}: {ok}/{} endpoints healthy", eps.len());
        if let Some(metrics) = &providers.metrics {
            let w = policy.verification.check_interval();
            let now = metrics.observe(svc, w).await?;
            let base = metrics.baseline(svc, w).await?;
            let er = validate(Signal::ErrorRate, now.error_rate_pct);
            match er {
                Reading::Valid(er) => {
                    line.push_str(&format!(", error rate {er:.2}%"));
                    if er > m.error_rate_monitor_above_pct {
                        problems.push(format!(
                            "{region}: error rate {er:.2}% > {:.2}%",
                            m.error_rate_monitor_above_pct
                        ));
                    }
                }
                other => {
                    line.push_str(", no error-rate data");
                    problems.push(format!(
                        "{region}: no error-rate data{}: cannot tell whether it is healthy",
                        why(&other)
                    ));
                }
            }
            let p95 = validate(Signal::P95Latency, now.p95_latency_ms);
            let base95 = validate(Signal::BaselineP95Latency, base.p95_latency_ms);
            match (&p95, &base95) {
                (Reading::Valid(p), Reading::Valid(b)) if *b > 0.0 => {
                    line.push_str(&format!(", P95 {p:.0} ms"));
                    if *p > b * m.p95_monitor_above_factor {
                        problems.push(format!(
                            "{region}: P95 {p:.0} ms > {:.1} x baseline {b:.0} ms",
                            m.p95_monitor_above_factor
                        ));
                    }
                }
                _ => {
                    let reason = match (&p95, &base95) {
                        (Reading::Valid(_), b) => why(b),
                        (p, _) => why(p),
                    };
                    line.push_str(", no P95 data");
                    problems.push(format!(
                        "{region}: no P95 latency data (now or baseline){reason}: cannot tell whether it is healthy"
                    ));
                }
            }
        }
        lines.push(line);
    }
    Ok((lines, problems))
}

/// Why a reading is not usable, for a problem line: empty when it is just missing.
fn why(r: &Reading) -> String {
    match r {
        Reading::Invalid(i) => format!(" ({i})"),
        _ => String::new(),
    }
}
