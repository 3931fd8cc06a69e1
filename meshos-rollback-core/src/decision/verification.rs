//! The post-rollback verification limits (playbook § Metrics Verification).

use std::fmt;
use std::time::Duration;

use arrayvec::ArrayVec;
use serde::{Deserialize, Serialize};

use super::check_number;
use crate::observation::{Observation, Signal, SignalSet, present};
use crate::{Error, Result};

/// What "recovered" means after a rollback. Every limit must hold (strictly below),
/// at every check, for the whole window:
///
/// | Metric | Default limit |
/// |--------|---------------|
/// | error rate | < 0.1 % |
/// | P95 latency | < 200 ms, or back at baseline (≤ baseline × 1.0) |
/// | CPU, memory | < 70 % |
/// | request rate | within ±20 % of baseline ("stabilise at normal levels") |
/// | window | 15 minutes, checked every minute |
///
/// ```
/// use meshos_rollback_core::decision::{VerificationLimits, VerificationVerdict};
/// use meshos_rollback_core::observation::{Metrics, Observation};
///
/// let now = Metrics::new(0.05, 180.0, 55.0, 60.0, 950.0);
/// let baseline = Metrics::new(0.05, 170.0, 50.0, 55.0, 1000.0);
/// let report = VerificationLimits::default().check(&Observation::new(now, baseline));
/// assert_eq!(report.verdict, VerificationVerdict::Passed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "VerificationLimitsBuilder",
    into = "VerificationLimitsBuilder"
)]
pub struct VerificationLimits {
    b: VerificationLimitsBuilder,
}

impl Default for VerificationLimits {
    fn default() -> Self {
        VerificationLimitsBuilder::default()
            .build()
            .expect("the playbook's verification defaults are valid")
    }
}

/// The result of one verification check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationVerdict {
    /// Every limit holds.
    Passed,
    /// At least one limit is exceeded.
    Failed,
    /// No limit is exceeded, but some input was missing: not a pass.
    NoData,
}

/// One limit compared with what was observed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LimitCheck {
    /// The signal checked.
    pub signal: Signal,
    /// The observed value.
    pub observed: f64,
    /// The limit (for the request rate: the allowed deviation from baseline, in percent,
    /// with `observed` the deviation).
    pub limit: f64,
    /// Whether the limit holds.
    pub passed: bool,
}

impl fmt::Display for LimitCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.passed { "ok" } else { "FAIL" };
        let (o, l) = (self.observed, self.limit);
        match self.signal {
            Signal::ErrorRate => write!(f, "{mark}: error rate {o:.3}% (limit < {l}%)"),
            Signal::P95Latency => write!(f, "{mark}: P95 latency {o:.0} ms (limit < {l:.0} ms)"),
            Signal::Cpu => write!(f, "{mark}: CPU {o:.1}% (limit < {l}%)"),
            Signal::Memory => write!(f, "{mark}: memory {o:.1}% (limit < {l}%)"),
            Signal::RequestRate => {
                write!(f, "{mark}: request rate {o:.1}% off baseline (limit ±{l}%)")
            }
            other => write!(f, "{mark}: {other} {o} (limit {l})"),
        }
    }
}

/// Every limit checked at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationReport {
    /// The verdict.
    pub verdict: VerificationVerdict,
    /// The limits that could be checked.
    pub checks: ArrayVec<LimitCheck, 5>,
    /// The inputs that were missing.
    pub missing: SignalSet,
}

impl fmt::Display for VerificationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.verdict {
            VerificationVerdict::Passed => f.write_str("verification passed")?,
            VerificationVerdict::Failed => f.write_str("verification FAILED")?,
            VerificationVerdict::NoData => {
                write!(f, "verification inconclusive: no data for {}", self.missing)?
            }
        }
        for c in &self.checks {
            write!(f, "\n  - {c}")?;
        }
        Ok(())
    }
}

impl VerificationLimits {
    /// A builder starting from the playbook's defaults.
    pub fn builder() -> VerificationLimitsBuilder {
        VerificationLimitsBuilder::default()
    }

    /// The checked settings.
    pub fn settings(&self) -> &VerificationLimitsBuilder {
        &self.b
    }

    /// How long metrics must hold under the limits.
    pub fn window(&self) -> Duration {
        self.b.window
    }

    /// How often they are checked during the window.
    pub fn check_interval(&self) -> Duration {
        self.b.check_interval
    }

    /// Checks one observation against every limit.
    pub fn check(&self, observation: &Observation) -> VerificationReport {
        let l = &self.b;
        let cur = &observation.current;
        let base = &observation.baseline;
        let mut checks = ArrayVec::new();
        let mut missing = SignalSet::EMPTY;
        let mut below = |signal: Signal, value: Option<f64>, limit: f64| match present(value) {
            Some(v) => checks.push(LimitCheck {
                signal,
                observed: v,
                limit,
                passed: v < limit,
            }),
            None => missing.insert(signal),
        };
        below(
            Signal::ErrorRate,
            cur.error_rate_pct,
            l.error_rate_below_pct,
        );
        below(Signal::Cpu, cur.cpu_pct, l.cpu_below_pct);
        below(Signal::Memory, cur.memory_pct, l.memory_below_pct);

        match present(cur.p95_latency_ms) {
            None => missing.insert(Signal::P95Latency),
            Some(v) if v < l.p95_below_ms => checks.push(LimitCheck {
                signal: Signal::P95Latency,
                observed: v,
                limit: l.p95_below_ms,
                passed: true,
            }),
            // Above the absolute limit it may still be "back at baseline".
            Some(v) => match present(base.p95_latency_ms) {
                Some(b) => {
                    let limit = b * l.p95_baseline_factor;
                    checks.push(LimitCheck {
                        signal: Signal::P95Latency,
                        observed: v,
                        limit: limit.max(l.p95_below_ms),
                        passed: v <= limit,
                    })
                }
                None => missing.insert(Signal::BaselineP95Latency),
            },
        }
        match (
            present(cur.request_rate_rps),
            present(base.request_rate_rps),
        ) {
            (Some(v), Some(b)) if b > 0.0 => {
                let deviation = (v - b).abs() / b * 100.0;
                checks.push(LimitCheck {
                    signal: Signal::RequestRate,
                    observed: deviation,
                    limit: l.request_rate_tolerance_pct,
                    passed: deviation <= l.request_rate_tolerance_pct,
                })
            }
            (v, b) => {
                if v.is_none() {
                    missing.insert(Signal::RequestRate);
                }
                if b.is_none_or(|b| b <= 0.0) {
                    missing.insert(Signal::BaselineRequestRate);
                }
            }
        }
        let verdict = if checks.iter().any(|c| !c.passed) {
            VerificationVerdict::Failed
        } else if !missing.is_empty() {
            VerificationVerdict::NoData
        } else {
            VerificationVerdict::Passed
        };
        VerificationReport {
            verdict,
            checks,
            missing,
        }
    }
}

/// Builds [`VerificationLimits`]; also their configuration-file form (section
/// `verification`).
///
/// ```toml
/// error_rate_below_pct = 0.1
/// p95_below_ms = 200.0
/// p95_baseline_factor = 1.0
/// cpu_below_pct = 70.0
/// memory_below_pct = 70.0
/// request_rate_tolerance_pct = 20.0
/// window = "15m"
/// check_interval = "1m"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerificationLimitsBuilder {
    /// Error rate must be below this, in percent.
    pub error_rate_below_pct: f64,
    /// P95 latency must be below this, in milliseconds...
    pub p95_below_ms: f64,
    /// ...or at most this multiple of baseline.
    pub p95_baseline_factor: f64,
    /// CPU must be below this, in percent.
    pub cpu_below_pct: f64,
    /// Memory must be below this, in percent.
    pub memory_below_pct: f64,
    /// Request rate must be within this many percent of baseline.
    pub request_rate_tolerance_pct: f64,
    /// How long the limits must hold (the playbook says 15-30 minutes).
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::required")]
    pub window: Duration,
    /// How often to check during the window.
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::required")]
    pub check_interval: Duration,
}

impl Default for VerificationLimitsBuilder {
    fn default() -> Self {
        VerificationLimitsBuilder {
            error_rate_below_pct: 0.1,
            p95_below_ms: 200.0,
            p95_baseline_factor: 1.0,
            cpu_below_pct: 70.0,
            memory_below_pct: 70.0,
            request_rate_tolerance_pct: 20.0,
            window: Duration::from_secs(15 * 60),
            check_interval: Duration::from_secs(60),
        }
    }
}

impl VerificationLimitsBuilder {
    /// Sets the error-rate limit, in percent.
    pub fn with_error_rate_below_pct(mut self, v: f64) -> Self {
        self.error_rate_below_pct = v;
        self
    }

    /// Sets the P95 limit and the baseline factor.
    pub fn with_p95(mut self, below_ms: f64, baseline_factor: f64) -> Self {
        self.p95_below_ms = below_ms;
        self.p95_baseline_factor = baseline_factor;
        self
    }

    /// Sets the CPU and memory limits, in percent.
    pub fn with_cpu_memory_below_pct(mut self, cpu: f64, memory: f64) -> Self {
        self.cpu_below_pct = cpu;
        self.memory_below_pct = memory;
        self
    }

    /// Sets the allowed request-rate deviation from baseline, in percent.
    pub fn with_request_rate_tolerance_pct(mut self, v: f64) -> Self {
        self.request_rate_tolerance_pct = v;
        self
    }

    /// Sets the window and how often to check in it.
    pub fn with_window(mut self, window: Duration, check_interval: Duration) -> Self {
        self.window = window;
        self.check_interval = check_interval;
        self
    }

    /// Checks every field and builds the limits.
    pub fn build(self) -> Result<VerificationLimits> {
        check_number(
            "verification.error_rate_below_pct",
            self.error_rate_below_pct,
            0.0,
            100.0,
        )?;
        check_number(
            "verification.p95_below_ms",
            self.p95_below_ms,
            0.0,
            f64::MAX,
        )?;
        check_number(
            "verification.p95_baseline_factor",
            self.p95_baseline_factor,
            0.0,
            f64::MAX,
        )?;
        check_number("verification.cpu_below_pct", self.cpu_below_pct, 0.0, 100.0)?;
        check_number(
            "verification.memory_below_pct",
            self.memory_below_pct,
            0.0,
            100.0,
        )?;
        check_number(
            "verification.request_rate_tolerance_pct",
            self.request_rate_tolerance_pct,
            0.0,
            f64::MAX,
        )?;
        if self.check_interval.is_zero() {
            return Err(Error::invalid(
                "verification.check_interval",
                "must be longer than zero, like \"1m\"",
            ));
        }
        if self.check_interval > self.window {
            return Err(Error::invalid(
                "verification.check_interval",
                format!(
                    "must not be longer than verification.window ({:?})",
                    self.window
                ),
            ));
        }
        Ok(VerificationLimits { b: self })
    }
}

impl TryFrom<VerificationLimitsBuilder> for VerificationLimits {
    type Error = Error;
    fn try_from(b: VerificationLimitsBuilder) -> Result<Self> {
        b.build()
    }
}

impl From<VerificationLimits> for VerificationLimitsBuilder {
    fn from(v: VerificationLimits) -> Self {
        v.b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::Metrics;

    fn baseline() -> Metrics {
        Metrics::new(0.05, 150.0, 50.0, 50.0, 1000.0)
    }

    fn good() -> Metrics {
        Metrics::new(0.05, 150.0, 50.0, 50.0, 1000.0)
    }

    fn verdict(m: Metrics) -> VerificationVerdict {
        VerificationLimits::default()
            .check(&Observation::new(m, baseline()))
            .verdict
    }

    #[test]
    fn recovered_service_passes() {
        assert_eq!(verdict(good()), VerificationVerdict::Passed);
    }

    #[test]
    fn error_rate_must_be_strictly_below_a_tenth_of_a_percent() {
        for (v, want) in [
            (0.099, VerificationVerdict::Passed),
            (0.1, VerificationVerdict::Failed),
            (0.101, VerificationVerdict::Failed),
        ] {
            let m = Metrics {
                error_rate_pct: Some(v),
                ..good()
            };
            assert_eq!(verdict(m), want, "error rate {v}");
        }
    }

    #[test]
    fn cpu_and_memory_must_be_below_seventy() {
        for (v, want) in [
            (69.9, VerificationVerdict::Passed),
            (70.0, VerificationVerdict::Failed),
            (70.1, VerificationVerdict::Failed),
        ] {
            assert_eq!(
                verdict(Metrics {
                    cpu_pct: Some(v),
                    ..good()
                }),
                want
            );
            assert_eq!(
                verdict(Metrics {
                    memory_pct: Some(v),
                    ..good()
                }),
                want
            );
        }
    }

    #[test]
    fn p95_passes_below_200ms_or_back_at_baseline() {
        let limits = VerificationLimits::default();
        let with_base = |p95: f64, base: f64| {
            let mut b = baseline();
            b.p95_latency_ms = Some(base);
            limits
                .check(&Observation::new(
                    Metrics {
                        p95_latency_ms: Some(p95),
                        ..good()
                    },
                    b,
                ))
                .verdict
        };
        assert_eq!(with_base(199.9, 100.0), VerificationVerdict::Passed);
        assert_eq!(with_base(200.0, 100.0), VerificationVerdict::Failed);
        assert_eq!(with_base(200.1, 100.0), VerificationVerdict::Failed);
        // A service whose normal P95 is 250 ms is recovered when back at 250 ms.
        assert_eq!(with_base(249.9, 250.0), VerificationVerdict::Passed);
        assert_eq!(with_base(250.0, 250.0), VerificationVerdict::Passed);
        assert_eq!(with_base(250.1, 250.0), VerificationVerdict::Failed);
    }

    #[test]
    fn request_rate_must_be_back_near_baseline() {
        for (v, want) in [
            (800.0, VerificationVerdict::Passed),
            (1200.0, VerificationVerdict::Passed),
            (799.0, VerificationVerdict::Failed),
            (1201.0, VerificationVerdict::Failed),
        ] {
            let m = Metrics {
                request_rate_rps: Some(v),
                ..good()
            };
            assert_eq!(verdict(m), want, "request rate {v}");
        }
    }

    #[test]
    fn missing_data_is_never_a_pass() {
        let m = Metrics {
            cpu_pct: None,
            ..good()
        };
        let r = VerificationLimits::default().check(&Observation::new(m, baseline()));
        assert_eq!(r.verdict, VerificationVerdict::NoData);
        assert!(r.missing.contains(Signal::Cpu));
        assert!(
            r.to_string()
                .starts_with("verification inconclusive: no data for CPU")
        );
        // A failing limit decides even with missing data.
        let m = Metrics {
            cpu_pct: None,
            error_rate_pct: Some(3.0),
            ..good()
        };
        assert_eq!(verdict(m), VerificationVerdict::Failed);
        // Empty metrics.
        assert_eq!(verdict(Metrics::default()), VerificationVerdict::NoData);
    }

    #[test]
    fn invalid_limits_name_the_field() {
        let e = VerificationLimits::builder()
            .with_cpu_memory_below_pct(70.0, 170.0)
            .build()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid verification.memory_below_pct")
        );
        let e = VerificationLimits::builder()
            .with_window(Duration::from_secs(60), Duration::from_secs(120))
            .build()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid verification.check_interval")
        );
        let e = VerificationLimits::builder()
            .with_error_rate_below_pct(f64::INFINITY)
            .build()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid verification.error_rate_below_pct")
        );
    }
}
