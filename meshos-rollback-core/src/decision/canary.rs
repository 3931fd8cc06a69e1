//! The canary auto-rollback rules (playbook § Automated Rollback).

use serde::{Deserialize, Serialize};

use super::{Action, Decision, Finding, Findings, Rule, check_number};
use crate::Result;
use crate::observation::{Observation, Signal, SignalSet, present};

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
    /// missing, and `Continue` otherwise.
    pub fn evaluate(&self, observation: &Observation) -> Decision {
        let cur = &observation.current;
        let base = &observation.baseline;
        let mut findings = Findings::new();
        let mut missing = SignalSet::EMPTY;

        match (present(cur.error_rate_pct), present(base.error_rate_pct)) {
            (Some(o), Some(b)) => {
                let threshold = b + self.error_rate_margin_pct;
                if o > threshold {
                    findings.push(finding(Rule::CanaryErrorRate, o, threshold, Some(b)));
                }
            }
            (o, b) => {
                note_missing(&mut missing, o, Signal::ErrorRate);
                note_missing(&mut missing, b, Signal::BaselineErrorRate);
            }
        }
        match (present(cur.p95_latency_ms), present(base.p95_latency_ms)) {
            (Some(o), Some(b)) => {
                let threshold = b * self.p95_latency_factor;
                if o > threshold {
                    findings.push(finding(Rule::CanaryP95Latency, o, threshold, Some(b)));
                }
            }
            (o, b) => {
                note_missing(&mut missing, o, Signal::P95Latency);
                note_missing(&mut missing, b, Signal::BaselineP95Latency);
            }
        }
        match present(cur.cpu_pct) {
            Some(o) if o > self.cpu_above_pct => {
                findings.push(finding(Rule::CanaryCpu, o, self.cpu_above_pct, None))
            }
            Some(_) => {}
            None => missing.insert(Signal::Cpu),
        }
        match present(cur.memory_pct) {
            Some(o) if o > self.memory_above_pct => {
                findings.push(finding(Rule::CanaryMemory, o, self.memory_above_pct, None))
            }
            Some(_) => {}
            None => missing.insert(Signal::Memory),
        }
        Decision::conclude(findings, missing, Action::Rollback)
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

fn note_missing(set: &mut SignalSet, value: Option<f64>, signal: Signal) {
    if value.is_none() {
        set.insert(signal);
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
    use crate::observation::Metrics;

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
        match d.outcome {
            Outcome::NoData { at_least, missing } => {
                assert_eq!(at_least, Action::Continue);
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
