//! The post-rollback verification limits (playbook § Metrics Verification).

use std::fmt;
use std::time::Duration;

use arrayvec::ArrayVec;
use serde::{Deserialize, Serialize};

use super::{Gaps, check_number};
use crate::observation::{InvalidReadings, Observation, Signal, SignalSet};
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
    /// No limit is exceeded, but some input was missing or invalid: not a pass.
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
    /// The inputs that were missing, `NaN` or invalid.
    pub missing: SignalSet,
    /// Of those, the ones whose value was impossible, with the value and why: usually
    /// a broken exporter.
    #[serde(default, skip_serializing_if = "InvalidReadings::is_empty")]
    pub invalid: InvalidReadings,
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
        if !self.invalid.is_empty() {
            write!(f, "; invalid: {}", self.invalid)?;
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

    /// Checks one observation against every limit. A missing or invalid input (see
    /// [`validate`](crate::observation::validate)) is never a pass: the verdict is
    /// `NoData` unless another limit fails.
    pub fn check(&self, observation: &Observation) -> VerificationReport {
        let l = &self.b;
        let cur = &observation.current;
        let base = &observation.baseline;
        let mut checks = ArrayVec::new();
        let mut gaps = Gaps::default();
        let mut below = |signal: Signal, value: Option<f64>, limit: f64| {
            if let Some(v) = gaps.read(signal, value) {
                checks.push(LimitCheck {
                    signal,
                    observed: v,
                    limit,
                    passed: v < limit,
                })
            }
        };
        below(
            Signal::ErrorRate,
            cur.error_rate_pct,
            l.error_rate_below_pct,
        );
        below(Signal::Cpu, cur.cpu_pct, l.cpu_below_pct);
        below(Signal::Memory, cur.memory_pct, l.memory_below_pct);

        match gaps.read(Signal::P95Latency, cur.p95_latency_ms) {
            None => {}
            Some(v) if v < l.p95_below_ms => checks.push(LimitCheck {
                signal: Signal::P95Latency,
                observed: v,
                limit: l.p95_below_ms,
                passed: true,
            }),
            // Above the absolute limit it may still be "back at baseline".
            Some(v) => {
                if let Some(b) = gaps.read(Signal::BaselineP95Latency, base.p95_latency_ms) {
                    let limit = b * l.p95_baseline_factor;
                    checks.push(LimitCheck {
                        signal: Signal::P95Latency,
                        observed: v,
                        limit: limit.max(l.p95_below_ms),
                        passed: v <= limit,
                    })
                }
            }
        }
        let v = gaps.read(Signal::RequestRate, cur.request_rate_rps);
        let b = gaps.read(Signal::BaselineRequestRate, base.request_rate_rps);
        match (v, b) {
            (Some(v), Some(b)) if b > 0.0 => {
                let deviation = (v - b).abs() / b * 100.0;
                checks.push(LimitCheck {
                    signal: Signal::RequestRate,
                    observed: deviation,
                    limit: l.request_rate_tolerance_pct,
                    passed: deviation <= l.request_rate_tolerance_pct,
                })
            }
            // A real but zero baseline gives no deviation to compare with.
            (_, Some(b)) if b <= 0.0 => gaps.lack(Signal::BaselineRequestRate),
            _ => {}
        }
        let verdict = if checks.iter().any(|c| !c.passed) {
            VerificationVerdict::Failed
        } else if !gaps.missing.is_empty() {
            VerificationVerdict::NoData
        } else {
            VerificationVerdict::Passed
        };
        VerificationReport {
            verdict,
            checks,
            missing: gaps.missing,
            invalid: gaps.invalid,
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
    use crate::observation::{InvalidReason, Metrics};

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

    fn report(m: Metrics, base: Metrics) -> VerificationReport {
        VerificationLimits::default().check(&Observation::new(m, base))
    }

    // Defect: an error rate of -3 % passed "< 0.1 %", a P95 of -inf passed "< 200 ms",
    // a CPU of -20 % passed "< 70 %": a broken exporter verified a rollback.
    #[test]
    fn impossible_values_are_no_data_never_a_pass() {
        let cases: [(Metrics, Signal, InvalidReason, &str); 8] = [
            (
                Metrics {
                    error_rate_pct: Some(-3.0),
                    ..good()
                },
                Signal::ErrorRate,
                InvalidReason::Negative,
                "error rate -3 % is negative",
            ),
            (
                Metrics {
                    error_rate_pct: Some(f64::NEG_INFINITY),
                    ..good()
                },
                Signal::ErrorRate,
                InvalidReason::NotFinite,
                "error rate -inf % is not finite",
            ),
            (
                Metrics {
                    p95_latency_ms: Some(f64::NEG_INFINITY),
                    ..good()
                },
                Signal::P95Latency,
                InvalidReason::NotFinite,
                "P95 latency -inf ms is not finite",
            ),
            (
                Metrics {
                    p95_latency_ms: Some(-10.0),
                    ..good()
                },
                Signal::P95Latency,
                InvalidReason::Negative,
                "P95 latency -10 ms is negative",
            ),
            (
                Metrics {
                    cpu_pct: Some(-20.0),
                    ..good()
                },
                Signal::Cpu,
                InvalidReason::Negative,
                "CPU -20 % is negative",
            ),
            (
                Metrics {
                    memory_pct: Some(f64::INFINITY),
                    ..good()
                },
                Signal::Memory,
                InvalidReason::NotFinite,
                "memory inf % is not finite",
            ),
            (
                Metrics {
                    request_rate_rps: Some(-1000.0),
                    ..good()
                },
                Signal::RequestRate,
                InvalidReason::Negative,
                "request rate -1000 req/s is negative",
            ),
            (
                Metrics {
                    request_rate_rps: Some(f64::INFINITY),
                    ..good()
                },
                Signal::RequestRate,
                InvalidReason::NotFinite,
                "request rate inf req/s is not finite",
            ),
        ];
        for (m, signal, reason, text) in cases {
            let r = report(m, baseline());
            assert_eq!(r.verdict, VerificationVerdict::NoData, "{text}: {r}");
            assert_eq!(r.missing.iter().collect::<Vec<_>>(), vec![signal], "{text}");
            let got: Vec<_> = r.invalid.iter().map(|i| (i.signal, i.reason)).collect();
            assert_eq!(got, vec![(signal, reason)], "{text}");
            assert!(r.checks.iter().all(|c| c.signal != signal), "{text}: {r}");
            let shown = r.to_string();
            assert!(
                shown.starts_with(&format!(
                    "verification inconclusive: no data for {signal}; invalid: {text}"
                )),
                "{shown}"
            );
        }
    }

    // Defect: a CPU of 250 % was reported as a real failing check ("CPU 250.0%"),
    // hiding that the exporter is broken.
    #[test]
    fn above_a_hundred_percent_is_invalid_not_a_failing_check() {
        let r = report(
            Metrics {
                cpu_pct: Some(250.0),
                error_rate_pct: Some(100.1),
                ..good()
            },
            baseline(),
        );
        assert_eq!(r.verdict, VerificationVerdict::NoData, "{r}");
        assert_eq!(
            r.invalid.to_string(),
            "error rate 100.1 % is above 100 %; CPU 250 % is above 100 %"
        );
        // A real failing limit still fails, and the invalid reading is still shown.
        let r = report(
            Metrics {
                cpu_pct: Some(250.0),
                memory_pct: Some(80.0),
                ..good()
            },
            baseline(),
        );
        assert_eq!(r.verdict, VerificationVerdict::Failed, "{r}");
        assert!(
            r.to_string()
                .starts_with("verification FAILED; invalid: CPU 250 % is above 100 %"),
            "{r}"
        );
    }

    #[test]
    fn an_impossible_baseline_is_no_data_for_the_baseline() {
        // P95 above 200 ms needs the baseline; a negative one is not a baseline.
        let mut b = baseline();
        b.p95_latency_ms = Some(-300.0);
        b.request_rate_rps = Some(f64::INFINITY);
        let r = report(
            Metrics {
                p95_latency_ms: Some(250.0),
                ..good()
            },
            b,
        );
        assert_eq!(r.verdict, VerificationVerdict::NoData, "{r}");
        assert_eq!(
            r.invalid.signals(),
            [Signal::BaselineP95Latency, Signal::BaselineRequestRate]
                .into_iter()
                .collect()
        );
        assert_eq!(r.missing, r.invalid.signals());
    }

    #[test]
    fn zero_and_a_hundred_percent_are_real_readings() {
        let zero = Metrics::new(0.0, 0.0, 0.0, 0.0, 1000.0);
        let r = report(zero, baseline());
        assert_eq!(r.verdict, VerificationVerdict::Passed, "{r}");
        assert!(r.invalid.is_empty());
        // 100 % is a real, failing reading.
        for m in [
            Metrics {
                error_rate_pct: Some(100.0),
                ..good()
            },
            Metrics {
                cpu_pct: Some(100.0),
                ..good()
            },
            Metrics {
                memory_pct: Some(100.0),
                ..good()
            },
        ] {
            let r = report(m, baseline());
            assert_eq!(r.verdict, VerificationVerdict::Failed, "{r}");
            assert!(r.invalid.is_empty(), "{r}");
        }
        // No traffic at all is a real reading: 100 % off baseline, a failure.
        let r = report(
            Metrics {
                request_rate_rps: Some(0.0),
                ..good()
            },
            baseline(),
        );
        assert_eq!(r.verdict, VerificationVerdict::Failed, "{r}");
        assert!(r.invalid.is_empty(), "{r}");
        // A zero baseline is real too, but gives nothing to compare with.
        let mut b = baseline();
        b.request_rate_rps = Some(0.0);
        let r = report(good(), b);
        assert_eq!(r.verdict, VerificationVerdict::NoData, "{r}");
        assert!(r.missing.contains(Signal::BaselineRequestRate));
        assert!(r.invalid.is_empty(), "{r}");
    }

    #[test]
    fn invalid_readings_round_trip_and_are_optional_in_json() {
        let r = report(
            Metrics {
                error_rate_pct: Some(-3.0),
                ..good()
            },
            baseline(),
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(
                r#""invalid":[{"signal":"error_rate","value":-3.0,"reason":"negative"}]"#
            ),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<VerificationReport>(&json).unwrap(),
            r
        );
        // Reports written before invalid readings existed still load.
        let ok = report(good(), baseline());
        let json = serde_json::to_string(&ok).unwrap();
        assert!(!json.contains("invalid"), "{json}");
        assert_eq!(
            serde_json::from_str::<VerificationReport>(&json).unwrap(),
            ok
        );
    }

    proptest::proptest! {
        /// An impossible value in any signal the check reads is never a pass.
        #[test]
        fn an_impossible_value_is_never_a_pass(
            field in 0..5usize,
            bad in proptest::prop_oneof![
                -1e12..-1e-9f64,
                proptest::strategy::Just(f64::INFINITY),
                proptest::strategy::Just(f64::NEG_INFINITY),
            ],
            over in 100.000_001..1e6f64,
            use_over in proptest::bool::ANY,
        ) {
            let mut m = good();
            let (slot, signal, pct) = match field {
                0 => (&mut m.error_rate_pct, Signal::ErrorRate, true),
                1 => (&mut m.p95_latency_ms, Signal::P95Latency, false),
                2 => (&mut m.cpu_pct, Signal::Cpu, true),
                3 => (&mut m.memory_pct, Signal::Memory, true),
                _ => (&mut m.request_rate_rps, Signal::RequestRate, false),
            };
            let v = if pct && use_over { over } else { bad };
            *slot = Some(v);
            let r = report(m, baseline());
            proptest::prop_assert_eq!(r.verdict, VerificationVerdict::NoData, "{}", r);
            proptest::prop_assert!(r.missing.contains(signal));
            proptest::prop_assert!(r.invalid.get(signal).is_some_and(|i| i.value.to_bits() == v.to_bits()));
        }
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
