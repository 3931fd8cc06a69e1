//! The canary auto-rollback rules (playbook § Automated Rollback).

use serde::{Deserialize, Serialize};

use super::{Action, Decision, Finding, Findings, Gaps, Rule, check_number};
use crate::Result;
use crate::observation::{Observation, Signal};

/// When a canary is rolled back automatically. Any rule firing rolls back:
///
/// | Rule | Default |
/// |------|---------|
/// | error rate > baseline + margin | 0.5 percentage points |
/// | P95 latency > baseline × factor | 1.5 |
/// | CPU > limit | 90 % |
/// | memory > limit | 90 % |
///
/// ```
/// use meshos_rollback_core::decision::{Action, CanaryPolicy};
/// use meshos_rollback_core::observation::{Metrics, Observation};
///
/// let stable = Metrics::new(0.2, 120.0, 40.0, 50.0, 900.0);
/// let canary = Metrics::new(1.1, 130.0, 45.0, 52.0, 100.0);
/// let decision = CanaryPolicy::default().evaluate(&Observation::new(canary, stable));
/// assert_eq!(decision.action(), Some(Action::Rollback));
/// assert_eq!(
///     decision.findings[0].to_string(),
///     "error rate 1.10% > 0.70% (baseline 0.20% + 0.50 pp): initiate rollback"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CanaryPolicyBuilder", into = "CanaryPolicyBuilder")]
pub struct CanaryPolicy {
    error_rate_margin_pct: f64,
    p95_latency_factor: f64,
    cpu_above_pct: f64,
    memory_above_pct: f64,
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        CanaryPolicyBuilder::default()
            .build()
            .expect("the playbook's canary defaults are valid")
    }
}

impl CanaryPolicy {
    /// A builder starting from the playbook's defaults.
    pub fn builder() -> CanaryPolicyBuilder {
        CanaryPolicyBuilder::default()
    }

    /// Error-rate margin over baseline, in percentage points.
    pub fn error_rate_margin_pct(&self) -> f64 {
        self.error_rate_margin_pct
    }

    /// P95 latency factor over baseline.
    pub fn p95_latency_factor(&self) -> f64 {
        self.p95_latency_factor
    }

    /// CPU limit, in percent.
    pub fn cpu_above_pct(&self) -> f64 {
        self.cpu_above_pct
    }

    /// Memory limit, in percent.
    pub fn memory_above_pct(&self) -> f64 {
        self.memory_above_pct
    }

    /// Evaluates the canary (`observation.current`) against the stable baseline
    /// (`observation.baseline`). The outcome is `Rollback` when any rule fires (even
    /// if other inputs are missing), `NoData` when nothing fired but some input was
    /// missing or invalid (see [`validate`](crate::observation::validate)), and
    /// `Continue` otherwise.
    pub fn evaluate(&self, observation: &Observation) -> Decision {
        let cur = &observation.current;
        let base = &observation.baseline;
        let mut findings = Findings::new();
        let mut gaps = Gaps::default();

        // Both sides of a baseline rule are read, so each one's gap is reported.
        let o = gaps.read(Signal::ErrorRate, cur.error_rate_pct);
        let b = gaps.read(Signal::BaselineErrorRate, base.error_rate_pct);
        if let (Some(o), Some(b)) = (o, b) {
            let threshold = b + self.error_rate_margin_pct;
            if o > threshold {
                findings.push(finding(Rule::CanaryErrorRate, o, threshold, Some(b)));
            }
        }
        let o = gaps.read(Signal::P95Latency, cur.p95_latency_ms);
        let b = gaps.read(Signal::BaselineP95Latency, base.p95_latency_ms);
        if let (Some(o), Some(b)) = (o, b) {
            let threshold = b * self.p95_latency_factor;
            if o > threshold {
                findings.push(finding(Rule::CanaryP95Latency, o, threshold, Some(b)));
            }
        }
        if let Some(o) = gaps.read(Signal::Cpu, cur.cpu_pct)
            && o > self.cpu_above_pct
        {
            findings.push(finding(Rule::CanaryCpu, o, self.cpu_above_pct, None));
        }
        if let Some(o) = gaps.read(Signal::Memory, cur.memory_pct)
            && o > self.memory_above_pct
        {
            findings.push(finding(Rule::CanaryMemory, o, self.memory_above_pct, None));
        }
        Decision::conclude(findings, gaps, Action::Rollback)
    }
}

fn finding(rule: Rule, observed: f64, threshold: f64, baseline: Option<f64>) -> Finding {
    Finding {
        rule,
        action: Action::Rollback,
        observed,
        threshold,
        baseline,
    }
}

/// Builds a [`CanaryPolicy`]; also its configuration-file form (section `canary`).
///
/// ```toml
/// error_rate_margin_pct = 0.5
/// p95_latency_factor = 1.5
/// cpu_above_pct = 90.0
/// memory_above_pct = 90.0
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanaryPolicyBuilder {
    /// Error-rate margin over baseline, in percentage points.
    pub error_rate_margin_pct: f64,
    /// P95 latency factor over baseline (at least 1).
    pub p95_latency_factor: f64,
    /// CPU limit, in percent.
    pub cpu_above_pct: f64,
    /// Memory limit, in percent.
    pub memory_above_pct: f64,
}

impl Default for CanaryPolicyBuilder {
    fn default() -> Self {
        CanaryPolicyBuilder {
            error_rate_margin_pct: 0.5,
            p95_latency_factor: 1.5,
            cpu_above_pct: 90.0,
            memory_above_pct: 90.0,
        }
    }
}

impl CanaryPolicyBuilder {
    /// Sets the error-rate margin, in percentage points.
    pub fn with_error_rate_margin_pct(mut self, v: f64) -> Self {
        self.error_rate_margin_pct = v;
        self
    }

    /// Sets the P95 latency factor.
    pub fn with_p95_latency_factor(mut self, v: f64) -> Self {
        self.p95_latency_factor = v;
        self
    }

    /// Sets the CPU limit, in percent.
    pub fn with_cpu_above_pct(mut self, v: f64) -> Self {
        self.cpu_above_pct = v;
        self
    }

    /// Sets the memory limit, in percent.
    pub fn with_memory_above_pct(mut self, v: f64) -> Self {
        self.memory_above_pct = v;
        self
    }

    /// Checks every field and builds the policy.
    pub fn build(self) -> Result<CanaryPolicy> {
        check_number(
            "canary.error_rate_margin_pct",
            self.error_rate_margin_pct,
            0.0,
            100.0,
        )?;
        check_number(
            "canary.p95_latency_factor",
            self.p95_latency_factor,
            1.0,
            f64::MAX,
        )?;
        check_number("canary.cpu_above_pct", self.cpu_above_pct, 0.0, 100.0)?;
        check_number("canary.memory_above_pct", self.memory_above_pct, 0.0, 100.0)?;
        Ok(CanaryPolicy {
            error_rate_margin_pct: self.error_rate_margin_pct,
            p95_latency_factor: self.p95_latency_factor,
            cpu_above_pct: self.cpu_above_pct,
            memory_above_pct: self.memory_above_pct,
        })
    }
}

impl TryFrom<CanaryPolicyBuilder> for CanaryPolicy {
    type Error = crate::Error;
    fn try_from(b: CanaryPolicyBuilder) -> Result<Self> {
        b.build()
    }
}

impl From<CanaryPolicy> for CanaryPolicyBuilder {
    fn from(p: CanaryPolicy) -> Self {
        CanaryPolicyBuilder {
            error_rate_margin_pct: p.error_rate_margin_pct,
            p95_latency_factor: p.p95_latency_factor,
            cpu_above_pct: p.cpu_above_pct,
            memory_above_pct: p.memory_above_pct,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Outcome;
    use crate::observation::{InvalidReadings, InvalidReason, Metrics, SignalSet};

    const BASE: Metrics = Metrics {
        error_rate_pct: Some(0.2),
        p95_latency_ms: Some(100.0),
        cpu_pct: Some(40.0),
        memory_pct: Some(40.0),
        request_rate_rps: Some(1000.0),
    };

    fn healthy() -> Metrics {
        Metrics {
            error_rate_pct: Some(0.2),
            p95_latency_ms: Some(100.0),
            cpu_pct: Some(50.0),
            memory_pct: Some(50.0),
            request_rate_rps: Some(100.0),
        }
    }

    fn eval(m: Metrics) -> Decision {
        CanaryPolicy::default().evaluate(&Observation::new(m, BASE))
    }

    fn fired(d: &Decision) -> Vec<Rule> {
        d.findings.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn healthy_canary_continues() {
        let d = eval(healthy());
        assert_eq!(d.action(), Some(Action::Continue));
        assert!(d.findings.is_empty());
    }

    #[test]
    fn error_rate_boundary_is_baseline_plus_half_a_point() {
        // Threshold = 0.2 + 0.5 = 0.7 %.
        for (v, fires) in [(0.69, false), (0.7, false), (0.71, true)] {
            let d = eval(Metrics {
                error_rate_pct: Some(v),
                ..healthy()
            });
            assert_eq!(d.requires_rollback(), fires, "error rate {v}");
            if fires {
                assert_eq!(fired(&d), vec![Rule::CanaryErrorRate]);
                assert_eq!(d.findings[0].threshold, 0.2 + 0.5);
                assert_eq!(d.findings[0].observed, v);
            }
        }
    }

    #[test]
    fn p95_boundary_is_baseline_times_one_and_a_half() {
        for (v, fires) in [(149.9, false), (150.0, false), (150.1, true)] {
            let d = eval(Metrics {
                p95_latency_ms: Some(v),
                ..healthy()
            });
            assert_eq!(d.requires_rollback(), fires, "p95 {v}");
            if fires {
                assert_eq!(fired(&d), vec![Rule::CanaryP95Latency]);
                assert_eq!(d.findings[0].threshold, 150.0);
            }
        }
    }

    #[test]
    fn cpu_and_memory_boundaries_are_ninety_percent() {
        for (v, fires) in [(89.9, false), (90.0, false), (90.1, true)] {
            let d = eval(Metrics {
                cpu_pct: Some(v),
                ..healthy()
            });
            assert_eq!(d.requires_rollback(), fires, "cpu {v}");
            let d = eval(Metrics {
                memory_pct: Some(v),
                ..healthy()
            });
            assert_eq!(d.requires_rollback(), fires, "memory {v}");
        }
    }

    #[test]
    fn every_fired_rule_is_reported() {
        let d = eval(Metrics::new(5.0, 400.0, 95.0, 97.0, 10.0));
        assert_eq!(
            fired(&d),
            vec![
                Rule::CanaryErrorRate,
                Rule::CanaryP95Latency,
                Rule::CanaryCpu,
                Rule::CanaryMemory
            ]
        );
        let text = d.to_string();
        assert!(text.starts_with("initiate rollback"), "{text}");
        assert!(text.contains("CPU 95.0% > 90.0%"), "{text}");
        assert!(
            text.contains("P95 latency 400 ms > 150 ms (1.5 x baseline 100 ms)"),
            "{text}"
        );
    }

    #[test]
    fn missing_data_is_no_data_not_healthy() {
        let d = eval(Metrics {
            cpu_pct: None,
            ..healthy()
        });
        assert_eq!(d.action(), None);
        match &d.outcome {
            Outcome::NoData {
                at_least,
                missing,
                invalid,
            } => {
                assert!(invalid.is_empty());
                assert_eq!(*at_least, Action::Continue);
                assert_eq!(missing.iter().collect::<Vec<_>>(), vec![Signal::Cpu]);
            }
            other => panic!("expected no data, got {other:?}"),
        }
        let d = eval(Metrics {
            memory_pct: Some(f64::NAN),
            ..healthy()
        });
        assert_eq!(d.action(), None);
        // Without a baseline the baseline rules cannot be evaluated.
        let d = CanaryPolicy::default().evaluate(&Observation::new(healthy(), Metrics::default()));
        let Outcome::NoData { missing, .. } = d.outcome else {
            panic!("expected no data")
        };
        assert!(missing.contains(Signal::BaselineErrorRate));
        assert!(missing.contains(Signal::BaselineP95Latency));
    }

    #[test]
    fn a_fired_rule_decides_even_with_missing_data() {
        let d = eval(Metrics {
            cpu_pct: Some(99.0),
            memory_pct: None,
            ..healthy()
        });
        assert_eq!(d.action(), Some(Action::Rollback));
    }

    #[test]
    fn invalid_configuration_names_the_field() {
        let cases = [
            (
                CanaryPolicy::builder().with_cpu_above_pct(120.0),
                "canary.cpu_above_pct",
            ),
            (
                CanaryPolicy::builder().with_memory_above_pct(-1.0),
                "canary.memory_above_pct",
            ),
            (
                CanaryPolicy::builder().with_error_rate_margin_pct(f64::NAN),
                "canary.error_rate_margin_pct",
            ),
            (
                CanaryPolicy::builder().with_p95_latency_factor(0.5),
                "canary.p95_latency_factor",
            ),
        ];
        for (builder, field) in cases {
            let err = builder.build().unwrap_err();
            assert!(
                matches!(&err, crate::Error::InvalidInput { field: f, .. } if f == field),
                "{err}"
            );
        }
    }

    proptest::proptest! {
        /// A worse canary never turns a rollback into "continue".
        #[test]
        fn worse_never_less_severe(
            er in 0.0..10.0f64, p95 in 1.0..1000.0f64, cpu in 0.0..100.0f64, mem in 0.0..100.0f64,
            d_er in 0.0..10.0f64, d_p95 in 0.0..1000.0f64, d_cpu in 0.0..50.0f64, d_mem in 0.0..50.0f64,
        ) {
            let policy = CanaryPolicy::default();
            let base = Metrics::new(0.2, 100.0, 40.0, 40.0, 1000.0);
            let now = Metrics::new(er, p95, cpu, mem, 100.0);
            let worse = Metrics::new(er + d_er, p95 + d_p95, (cpu + d_cpu).min(100.0), (mem + d_mem).min(100.0), 100.0);
            let a = policy.evaluate(&Observation::new(now, base)).action().unwrap();
            let b = policy.evaluate(&Observation::new(worse, base)).action().unwrap();
            proptest::prop_assert!(b >= a);
        }
    }

    /// The no-data outcome of `d`, or a panic naming what it was.
    fn no_data(d: &Decision) -> (Action, SignalSet, InvalidReadings) {
        match &d.outcome {
            Outcome::NoData {
                at_least,
                missing,
                invalid,
            } => (*at_least, *missing, invalid.clone()),
            other => panic!("expected no data, got {other:?}: {d}"),
        }
    }

    // Defect: a negative, infinite or above-100 % canary value was compared as if real,
    // so a broken exporter read as a healthy canary ("continue").
    #[test]
    fn impossible_canary_values_are_no_data_with_the_reason() {
        let cases: [(Metrics, Signal, InvalidReason, &str); 7] = [
            (
                Metrics {
                    error_rate_pct: Some(-3.0),
                    ..healthy()
                },
                Signal::ErrorRate,
                InvalidReason::Negative,
                "error rate -3 % is negative",
            ),
            (
                Metrics {
                    error_rate_pct: Some(f64::INFINITY),
                    ..healthy()
                },
                Signal::ErrorRate,
                InvalidReason::NotFinite,
                "error rate inf % is not finite",
            ),
            (
                Metrics {
                    p95_latency_ms: Some(f64::NEG_INFINITY),
                    ..healthy()
                },
                Signal::P95Latency,
                InvalidReason::NotFinite,
                "P95 latency -inf ms is not finite",
            ),
            (
                Metrics {
                    p95_latency_ms: Some(-1.0),
                    ..healthy()
                },
                Signal::P95Latency,
                InvalidReason::Negative,
                "P95 latency -1 ms is negative",
            ),
            (
                Metrics {
                    cpu_pct: Some(-20.0),
                    ..healthy()
                },
                Signal::Cpu,
                InvalidReason::Negative,
                "CPU -20 % is negative",
            ),
            (
                // Below the 90 % limit would be wrong too; above 100 is not a reading.
                Metrics {
                    memory_pct: Some(250.0),
                    ..healthy()
                },
                Signal::Memory,
                InvalidReason::AboveHundredPercent,
                "memory 250 % is above 100 %",
            ),
            (
                Metrics {
                    error_rate_pct: Some(100.5),
                    ..healthy()
                },
                Signal::ErrorRate,
                InvalidReason::AboveHundredPercent,
                "error rate 100.5 % is above 100 %",
            ),
        ];
        for (m, signal, reason, text) in cases {
            let d = eval(m);
            assert_eq!(d.action(), None, "{text}: {d}");
            let (at_least, missing, invalid) = no_data(&d);
            assert_eq!(at_least, Action::Continue, "{text}");
            assert_eq!(missing.iter().collect::<Vec<_>>(), vec![signal], "{text}");
            let got: Vec<_> = invalid.iter().map(|r| (r.signal, r.reason)).collect();
            assert_eq!(got, vec![(signal, reason)], "{text}");
            assert!(d.findings.is_empty(), "{text}: {d}");
            let shown = d.to_string();
            assert!(shown.ends_with(&format!("; invalid: {text}")), "{shown}");
        }
    }

    // Defect: a CPU of 250 % fired the CPU rule as if it were a real 250 %.
    #[test]
    fn an_impossible_value_never_fires_a_rule() {
        let d = eval(Metrics {
            cpu_pct: Some(250.0),
            ..healthy()
        });
        assert!(!d.findings.iter().any(|f| f.rule == Rule::CanaryCpu), "{d}");
        assert_eq!(d.action(), None);
    }

    #[test]
    fn an_impossible_baseline_is_no_data_for_the_baseline() {
        let base = Metrics {
            error_rate_pct: Some(-0.2),
            p95_latency_ms: Some(f64::INFINITY),
            ..BASE
        };
        let d = CanaryPolicy::default().evaluate(&Observation::new(healthy(), base));
        let (at_least, missing, invalid) = no_data(&d);
        assert_eq!(at_least, Action::Continue);
        assert_eq!(
            missing,
            [Signal::BaselineErrorRate, Signal::BaselineP95Latency]
                .into_iter()
                .collect()
        );
        assert_eq!(invalid.signals(), missing);
        assert!(
            d.to_string().ends_with(
                "; invalid: baseline error rate -0.2 % is negative; \
                 baseline P95 latency inf ms is not finite"
            ),
            "{d}"
        );
    }

    // `NoData { at_least }` keeps saying what the valid data calls for, and a rule
    // that fires on valid data still decides.
    #[test]
    fn valid_data_still_decides_next_to_an_impossible_value() {
        let d = eval(Metrics {
            cpu_pct: Some(95.0),
            memory_pct: Some(-1.0),
            ..healthy()
        });
        assert_eq!(d.action(), Some(Action::Rollback));
        assert_eq!(fired(&d), vec![Rule::CanaryCpu]);
    }

    #[test]
    fn zero_and_a_hundred_percent_are_real_readings() {
        let d = eval(Metrics {
            error_rate_pct: Some(0.0),
            p95_latency_ms: Some(0.0),
            cpu_pct: Some(0.0),
            memory_pct: Some(0.0),
            request_rate_rps: Some(0.0),
        });
        assert_eq!(d.action(), Some(Action::Continue), "{d}");
        let d = eval(Metrics {
            cpu_pct: Some(100.0),
            memory_pct: Some(100.0),
            ..healthy()
        });
        assert_eq!(d.action(), Some(Action::Rollback), "{d}");
        assert_eq!(fired(&d), vec![Rule::CanaryCpu, Rule::CanaryMemory]);
        let d = eval(Metrics {
            error_rate_pct: Some(100.0),
            ..healthy()
        });
        assert_eq!(fired(&d), vec![Rule::CanaryErrorRate]);
    }

    proptest::proptest! {
        /// An impossible value in any one signal is never "continue": it is no data
        /// naming that signal, unless a valid rule fires.
        #[test]
        fn an_impossible_value_is_never_a_pass(
            field in 0..6usize,
            bad in proptest::prop_oneof![
                -1e12..-1e-9f64,
                proptest::strategy::Just(f64::INFINITY),
                proptest::strategy::Just(f64::NEG_INFINITY),
            ],
            over in 100.000_001..1e6f64,
            use_over in proptest::bool::ANY,
        ) {
            let (mut cur, mut base) = (healthy(), BASE);
            let (slot, signal, pct) = match field {
                0 => (&mut cur.error_rate_pct, Signal::ErrorRate, true),
                1 => (&mut base.error_rate_pct, Signal::BaselineErrorRate, true),
                2 => (&mut cur.p95_latency_ms, Signal::P95Latency, false),
                3 => (&mut base.p95_latency_ms, Signal::BaselineP95Latency, false),
                4 => (&mut cur.cpu_pct, Signal::Cpu, true),
                _ => (&mut cur.memory_pct, Signal::Memory, true),
            };
            let v = if pct && use_over { over } else { bad };
            *slot = Some(v);
            let d = CanaryPolicy::default().evaluate(&Observation::new(cur, base));
            proptest::prop_assert_eq!(d.action(), None, "{}", d);
            let (at_least, missing, invalid) = no_data(&d);
            proptest::prop_assert_eq!(at_least, Action::Continue);
            proptest::prop_assert!(missing.contains(signal));
            let r = invalid.get(signal).copied();
            proptest::prop_assert!(r.is_some_and(|r| r.value.to_bits() == v.to_bits()));
        }
    }

    #[test]
    fn custom_thresholds_apply() {
        let p = CanaryPolicy::builder()
            .with_cpu_above_pct(95.0)
            .build()
            .unwrap();
        let obs = Observation::new(
            Metrics {
                cpu_pct: Some(93.0),
                ..healthy()
            },
            BASE,
        );
        assert_eq!(p.evaluate(&obs).action(), Some(Action::Continue));
    }
}
