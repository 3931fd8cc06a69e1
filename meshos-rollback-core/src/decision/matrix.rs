//! The rollback decision matrix (playbook § Rollback Decision Matrix).

use serde::{Deserialize, Serialize};

use super::{Action, Decision, Finding, Findings, Gaps, Rule, check_number, check_order};
use crate::observation::{Observation, Signal};
use crate::{Error, Result};

/// The playbook's decision matrix. The result is the most severe action of the rules
/// that fired, with every rule that fired:
///
/// | Metric | Threshold | Action |
/// |--------|-----------|--------|
/// | Error rate | > 1 % | monitor closely |
/// | Error rate | > 5 % | initiate rollback |
/// | Latency P95 | > 2 × baseline | monitor closely |
/// | Latency P95 | > 3 × baseline | initiate rollback |
/// | Customer reports | > 5 in 5 min | investigate immediately |
/// | Customer reports | > 20 in 5 min | initiate rollback |
/// | SLA violation | any | initiate rollback |
/// | Data corruption | any | stop all deployments, escalate |
///
/// Every input is needed: an unknown data-corruption state, for instance, gives
/// [`Outcome::NoData`](super::Outcome::NoData) unless the decision is already the most
/// severe. Say `with_data_corruption(false)` when no corruption alert is open.
///
/// ```
/// use meshos_rollback_core::decision::{Action, DecisionMatrix};
/// use meshos_rollback_core::observation::{Metrics, Observation};
///
/// let now = Metrics { error_rate_pct: Some(6.0), p95_latency_ms: Some(250.0), ..Metrics::default() };
/// let baseline = Metrics { p95_latency_ms: Some(120.0), ..Metrics::default() };
/// let obs = Observation::new(now, baseline)
///     .with_customer_reports(7)
///     .with_sla_violation(false)
///     .with_data_corruption(false);
/// let decision = DecisionMatrix::default().evaluate(&obs);
/// assert_eq!(decision.action(), Some(Action::Rollback));
/// assert_eq!(decision.findings.len(), 4); // error rate > 1 % and > 5 %, P95 > 2x, reports > 5
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DecisionMatrixBuilder", into = "DecisionMatrixBuilder")]
pub struct DecisionMatrix {
    b: DecisionMatrixBuilder,
}

impl Default for DecisionMatrix {
    fn default() -> Self {
        DecisionMatrixBuilder::default()
            .build()
            .expect("the playbook's matrix defaults are valid")
    }
}

impl DecisionMatrix {
    /// A builder starting from the playbook's defaults.
    pub fn builder() -> DecisionMatrixBuilder {
        DecisionMatrixBuilder::default()
    }

    /// The checked settings.
    pub fn settings(&self) -> &DecisionMatrixBuilder {
        &self.b
    }

    /// The window customer reports are counted in.
    pub fn customer_reports_window(&self) -> std::time::Duration {
        self.b.customer_reports_window
    }

    /// Evaluates the matrix. A missing or invalid input (see
    /// [`validate`](crate::observation::validate)) gives `NoData` unless the valid
    /// data already calls for as much as that input could have.
    pub fn evaluate(&self, observation: &Observation) -> Decision {
        let c = &self.b;
        let cur = &observation.current;
        let mut findings = Findings::new();
        let mut gaps = Gaps::default();
        // The most severe action a missing input could have called for.
        let mut missing_could_reach = Action::Continue;
        let mut could = |action: Action| missing_could_reach = missing_could_reach.max(action);

        match gaps.read(Signal::ErrorRate, cur.error_rate_pct) {
            Some(o) => {
                tier(
                    &mut findings,
                    o,
                    None,
                    (
                        Rule::ErrorRateMonitor,
                        c.error_rate_monitor_above_pct,
                        Action::Monitor,
                    ),
                    (
                        Rule::ErrorRateRollback,
                        c.error_rate_rollback_above_pct,
                        Action::Rollback,
                    ),
                );
            }
            None => could(Action::Rollback),
        }
        let o = gaps.read(Signal::P95Latency, cur.p95_latency_ms);
        let b = gaps.read(
            Signal::BaselineP95Latency,
            observation.baseline.p95_latency_ms,
        );
        match (o, b) {
            (Some(o), Some(b)) => tier(
                &mut findings,
                o,
                Some(b),
                (
                    Rule::P95LatencyMonitor,
                    b * c.p95_monitor_above_factor,
                    Action::Monitor,
                ),
                (
                    Rule::P95LatencyRollback,
                    b * c.p95_rollback_above_factor,
                    Action::Rollback,
                ),
            ),
            _ => could(Action::Rollback),
        }
        match observation.customer_reports {
            Some(n) => tier(
                &mut findings,
                f64::from(n),
                None,
                (
                    Rule::CustomerReportsInvestigate,
                    f64::from(c.customer_reports_investigate_above),
                    Action::Investigate,
                ),
                (
                    Rule::CustomerReportsRollback,
                    f64::from(c.customer_reports_rollback_above),
                    Action::Rollback,
                ),
            ),
            None => {
                gaps.lack(Signal::CustomerReports);
                could(Action::Rollback);
            }
        }
        match observation.sla_violation {
            Some(true) => findings.push(flag(Rule::SlaViolation, c.sla_violation_action)),
            Some(false) => {}
            None => {
                gaps.lack(Signal::SlaViolation);
                could(c.sla_violation_action);
            }
        }
        match observation.data_corruption {
            Some(true) => findings.push(flag(Rule::DataCorruption, c.data_corruption_action)),
            Some(false) => {}
            None => {
                gaps.lack(Signal::DataCorruption);
                could(c.data_corruption_action);
            }
        }
        Decision::conclude(findings, gaps, missing_could_reach)
    }
}

/// Applies a two-level rule: both levels are reported when both fire.
fn tier(
    findings: &mut Findings,
    observed: f64,
    baseline: Option<f64>,
    lower: (Rule, f64, Action),
    upper: (Rule, f64, Action),
) {
    for (rule, threshold, action) in [lower, upper] {
        if observed > threshold {
            findings.push(Finding {
                rule,
                action,
                observed,
                threshold,
                baseline,
            });
        }
    }
}

fn flag(rule: Rule, action: Action) -> Finding {
    Finding {
        rule,
        action,
        observed: 1.0,
        threshold: 0.0,
        baseline: None,
    }
}

/// Builds a [`DecisionMatrix`]; also its configuration-file form (section `matrix`).
///
/// ```toml
/// error_rate_monitor_above_pct = 1.0
/// error_rate_rollback_above_pct = 5.0
/// p95_monitor_above_factor = 2.0
/// p95_rollback_above_factor = 3.0
/// customer_reports_investigate_above = 5
/// customer_reports_rollback_above = 20
/// customer_reports_window = "5m"
/// sla_violation_action = "rollback"
/// data_corruption_action = "stop_and_escalate"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionMatrixBuilder {
    /// Error rate above which to monitor closely, in percent.
    pub error_rate_monitor_above_pct: f64,
    /// Error rate above which to roll back, in percent.
    pub error_rate_rollback_above_pct: f64,
    /// P95 multiple of baseline above which to monitor closely.
    pub p95_monitor_above_factor: f64,
    /// P95 multiple of baseline above which to roll back.
    pub p95_rollback_above_factor: f64,
    /// Customer reports in the window above which to investigate.
    pub customer_reports_investigate_above: u32,
    /// Customer reports in the window above which to roll back.
    pub customer_reports_rollback_above: u32,
    /// The window customer reports are counted in.
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::required")]
    pub customer_reports_window: std::time::Duration,
    /// What an SLA violation calls for.
    pub sla_violation_action: Action,
    /// What data corruption calls for.
    pub data_corruption_action: Action,
}

impl Default for DecisionMatrixBuilder {
    fn default() -> Self {
        DecisionMatrixBuilder {
            error_rate_monitor_above_pct: 1.0,
            error_rate_rollback_above_pct: 5.0,
            p95_monitor_above_factor: 2.0,
            p95_rollback_above_factor: 3.0,
            customer_reports_investigate_above: 5,
            customer_reports_rollback_above: 20,
            customer_reports_window: std::time::Duration::from_secs(300),
            sla_violation_action: Action::Rollback,
            data_corruption_action: Action::StopAndEscalate,
        }
    }
}

impl DecisionMatrixBuilder {
    /// Sets the error-rate thresholds (monitor, rollback), in percent.
    pub fn with_error_rate_pct(mut self, monitor_above: f64, rollback_above: f64) -> Self {
        self.error_rate_monitor_above_pct = monitor_above;
        self.error_rate_rollback_above_pct = rollback_above;
        self
    }

    /// Sets the P95 multiples of baseline (monitor, rollback).
    pub fn with_p95_factor(mut self, monitor_above: f64, rollback_above: f64) -> Self {
        self.p95_monitor_above_factor = monitor_above;
        self.p95_rollback_above_factor = rollback_above;
        self
    }

    /// Sets the customer-report thresholds (investigate, rollback) and window.
    pub fn with_customer_reports(
        mut self,
        investigate_above: u32,
        rollback_above: u32,
        window: std::time::Duration,
    ) -> Self {
        self.customer_reports_investigate_above = investigate_above;
        self.customer_reports_rollback_above = rollback_above;
        self.customer_reports_window = window;
        self
    }

    /// Sets what an SLA violation and data corruption call for.
    pub fn with_flag_actions(mut self, sla_violation: Action, data_corruption: Action) -> Self {
        self.sla_violation_action = sla_violation;
        self.data_corruption_action = data_corruption;
        self
    }

    /// Checks every field and builds the matrix.
    pub fn build(self) -> Result<DecisionMatrix> {
        let er_m = (
            "matrix.error_rate_monitor_above_pct",
            self.error_rate_monitor_above_pct,
        );
        let er_r = (
            "matrix.error_rate_rollback_above_pct",
            self.error_rate_rollback_above_pct,
        );
        check_number(er_m.0, er_m.1, 0.0, 100.0)?;
        check_number(er_r.0, er_r.1, 0.0, 100.0)?;
        check_order(er_m, er_r)?;
        let p_m = (
            "matrix.p95_monitor_above_factor",
            self.p95_monitor_above_factor,
        );
        let p_r = (
            "matrix.p95_rollback_above_factor",
            self.p95_rollback_above_factor,
        );
        check_number(p_m.0, p_m.1, 1.0, f64::MAX)?;
        check_number(p_r.0, p_r.1, 1.0, f64::MAX)?;
        check_order(p_m, p_r)?;
        check_order(
            (
                "matrix.customer_reports_investigate_above",
                f64::from(self.customer_reports_investigate_above),
            ),
            (
                "matrix.customer_reports_rollback_above",
                f64::from(self.customer_reports_rollback_above),
            ),
        )?;
        if self.customer_reports_window.is_zero() {
            return Err(Error::invalid(
                "matrix.customer_reports_window",
                "must be longer than zero, like \"5m\"",
            ));
        }
        if self.sla_violation_action < Action::Monitor {
            return Err(Error::invalid(
                "matrix.sla_violation_action",
                "an SLA violation must call for at least \"monitor\"",
            ));
        }
        if self.data_corruption_action < Action::Rollback {
            return Err(Error::invalid(
                "matrix.data_corruption_action",
                "data corruption must call for at least \"rollback\"",
            ));
        }
        Ok(DecisionMatrix { b: self })
    }
}

impl TryFrom<DecisionMatrixBuilder> for DecisionMatrix {
    type Error = Error;
    fn try_from(b: DecisionMatrixBuilder) -> Result<Self> {
        b.build()
    }
}

impl From<DecisionMatrix> for DecisionMatrixBuilder {
    fn from(m: DecisionMatrix) -> Self {
        m.b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Outcome;
    use crate::observation::{InvalidReadings, InvalidReason, Metrics};
    use proptest::prelude::*;

    fn obs(error_rate: f64, p95: f64, reports: u32) -> Observation {
        Observation::new(
            Metrics {
                error_rate_pct: Some(error_rate),
                p95_latency_ms: Some(p95),
                ..Metrics::default()
            },
            Metrics {
                p95_latency_ms: Some(100.0),
                ..Metrics::default()
            },
        )
        .with_customer_reports(reports)
        .with_sla_violation(false)
        .with_data_corruption(false)
    }

    fn action(o: &Observation) -> Action {
        DecisionMatrix::default()
            .evaluate(o)
            .action()
            .expect("complete data")
    }

    #[test]
    fn quiet_service_continues() {
        assert_eq!(action(&obs(0.0, 100.0, 0)), Action::Continue);
    }

    #[test]
    fn error_rate_boundaries() {
        for (v, want) in [
            (0.99, Action::Continue),
            (1.0, Action::Continue),
            (1.01, Action::Monitor),
            (4.99, Action::Monitor),
            (5.0, Action::Monitor),
            (5.01, Action::Rollback),
        ] {
            assert_eq!(action(&obs(v, 100.0, 0)), want, "error rate {v}");
        }
    }

    #[test]
    fn p95_boundaries_are_multiples_of_baseline() {
        for (v, want) in [
            (199.9, Action::Continue),
            (200.0, Action::Continue),
            (200.1, Action::Monitor),
            (299.9, Action::Monitor),
            (300.0, Action::Monitor),
            (300.1, Action::Rollback),
        ] {
            assert_eq!(action(&obs(0.0, v, 0)), want, "p95 {v}");
        }
    }

    #[test]
    fn customer_report_boundaries() {
        for (n, want) in [
            (4, Action::Continue),
            (5, Action::Continue),
            (6, Action::Investigate),
            (19, Action::Investigate),
            (20, Action::Investigate),
            (21, Action::Rollback),
        ] {
            assert_eq!(action(&obs(0.0, 100.0, n)), want, "reports {n}");
        }
    }

    #[test]
    fn any_sla_violation_rolls_back_and_corruption_escalates() {
        assert_eq!(
            action(&obs(0.0, 100.0, 0).with_sla_violation(true)),
            Action::Rollback
        );
        let d = DecisionMatrix::default().evaluate(
            &obs(6.0, 100.0, 0)
                .with_sla_violation(true)
                .with_data_corruption(true),
        );
        assert_eq!(d.action(), Some(Action::StopAndEscalate));
        let rules: Vec<Rule> = d.findings.iter().map(|f| f.rule).collect();
        assert_eq!(
            rules,
            vec![
                Rule::ErrorRateMonitor,
                Rule::ErrorRateRollback,
                Rule::SlaViolation,
                Rule::DataCorruption
            ]
        );
        assert!(
            d.to_string()
                .contains("data corruption detected: stop all deployments, escalate")
        );
    }

    #[test]
    fn every_fired_rule_has_value_and_threshold() {
        let d = DecisionMatrix::default().evaluate(&obs(2.5, 320.0, 8));
        assert_eq!(d.action(), Some(Action::Rollback));
        let f: Vec<(Rule, f64, f64)> = d
            .findings
            .iter()
            .map(|f| (f.rule, f.observed, f.threshold))
            .collect();
        assert_eq!(
            f,
            vec![
                (Rule::ErrorRateMonitor, 2.5, 1.0),
                (Rule::P95LatencyMonitor, 320.0, 200.0),
                (Rule::P95LatencyRollback, 320.0, 300.0),
                (Rule::CustomerReportsInvestigate, 8.0, 5.0),
            ]
        );
    }

    #[test]
    fn missing_inputs_give_no_data() {
        let mut o = obs(2.0, 100.0, 0);
        o.data_corruption = None;
        let d = DecisionMatrix::default().evaluate(&o);
        assert_eq!(
            d.outcome,
            Outcome::NoData {
                at_least: Action::Monitor,
                missing: [Signal::DataCorruption].into_iter().collect(),
                invalid: InvalidReadings::EMPTY,
            }
        );
        // NaN is missing.
        let mut o = obs(0.0, 100.0, 0);
        o.current.error_rate_pct = Some(f64::NAN);
        assert!(DecisionMatrix::default().evaluate(&o).action().is_none());
        // Missing baseline makes the latency rules undecidable.
        let mut o = obs(0.0, 100.0, 0);
        o.baseline.p95_latency_ms = None;
        let Outcome::NoData { missing, .. } = DecisionMatrix::default().evaluate(&o).outcome else {
            panic!("expected no data")
        };
        assert!(missing.contains(Signal::BaselineP95Latency));
    }

    #[test]
    fn the_most_severe_action_decides_despite_missing_inputs() {
        let mut o = obs(0.0, 100.0, 0).with_data_corruption(true);
        o.current.error_rate_pct = None;
        o.customer_reports = None;
        let d = DecisionMatrix::default().evaluate(&o);
        assert_eq!(d.action(), Some(Action::StopAndEscalate));
    }

    #[test]
    fn invalid_configuration_names_the_field() {
        let cases: [(DecisionMatrixBuilder, &str); 6] = [
            (
                DecisionMatrix::builder().with_error_rate_pct(6.0, 5.0),
                "matrix.error_rate_monitor_above_pct",
            ),
            (
                DecisionMatrix::builder().with_error_rate_pct(1.0, 150.0),
                "matrix.error_rate_rollback_above_pct",
            ),
            (
                DecisionMatrix::builder().with_p95_factor(f64::NAN, 3.0),
                "matrix.p95_monitor_above_factor",
            ),
            (
                DecisionMatrix::builder().with_p95_factor(4.0, 3.0),
                "matrix.p95_monitor_above_factor",
            ),
            (
                DecisionMatrix::builder().with_customer_reports(
                    30,
                    20,
                    std::time::Duration::from_secs(300),
                ),
                "matrix.customer_reports_investigate_above",
            ),
            (
                DecisionMatrix::builder().with_flag_actions(Action::Rollback, Action::Monitor),
                "matrix.data_corruption_action",
            ),
        ];
        for (b, field) in cases {
            let err = b.build().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidInput { field: f, .. } if f == field),
                "{field}: {err}"
            );
        }
        assert!(
            DecisionMatrix::builder()
                .with_error_rate_pct(-1.0, 5.0)
                .build()
                .is_err()
        );
    }

    // Defect: an error rate of -3 % or an infinite P95 was compared as if real, so a
    // broken exporter read as "continue"; a P95 baseline of -inf made every P95 a
    // rollback.
    #[test]
    fn impossible_values_are_no_data_with_the_reason() {
        type Spoil = fn(&mut Observation);
        let cases: [(Spoil, Signal, InvalidReason, &str); 6] = [
            (
                |o| o.current.error_rate_pct = Some(-3.0),
                Signal::ErrorRate,
                InvalidReason::Negative,
                "error rate -3 % is negative",
            ),
            (
                |o| o.current.error_rate_pct = Some(f64::INFINITY),
                Signal::ErrorRate,
                InvalidReason::NotFinite,
                "error rate inf % is not finite",
            ),
            (
                |o| o.current.error_rate_pct = Some(250.0),
                Signal::ErrorRate,
                InvalidReason::AboveHundredPercent,
                "error rate 250 % is above 100 %",
            ),
            (
                |o| o.current.p95_latency_ms = Some(f64::INFINITY),
                Signal::P95Latency,
                InvalidReason::NotFinite,
                "P95 latency inf ms is not finite",
            ),
            (
                |o| o.current.p95_latency_ms = Some(-40.0),
                Signal::P95Latency,
                InvalidReason::Negative,
                "P95 latency -40 ms is negative",
            ),
            (
                |o| o.baseline.p95_latency_ms = Some(f64::NEG_INFINITY),
                Signal::BaselineP95Latency,
                InvalidReason::NotFinite,
                "baseline P95 latency -inf ms is not finite",
            ),
        ];
        for (spoil, signal, reason, text) in cases {
            let mut o = obs(0.0, 100.0, 0);
            spoil(&mut o);
            let d = DecisionMatrix::default().evaluate(&o);
            let Outcome::NoData {
                at_least,
                missing,
                invalid,
            } = &d.outcome
            else {
                panic!("{text}: expected no data, got {d}")
            };
            assert_eq!(*at_least, Action::Continue, "{text}");
            assert_eq!(missing.iter().collect::<Vec<_>>(), vec![signal], "{text}");
            let got: Vec<_> = invalid.iter().map(|r| (r.signal, r.reason)).collect();
            assert_eq!(got, vec![(signal, reason)], "{text}");
            assert!(d.findings.is_empty(), "{text}: {d}");
            let shown = d.to_string();
            assert!(
                shown.starts_with(&format!("no data for {signal}: cannot decide")),
                "{shown}"
            );
            assert!(shown.ends_with(&format!("; invalid: {text}")), "{shown}");
        }
    }

    // `at_least` still reports what the valid data calls for, and a conclusive rule
    // still decides next to an impossible value.
    #[test]
    fn valid_data_still_counts_next_to_an_impossible_value() {
        let mut o = obs(2.0, 100.0, 0);
        o.current.p95_latency_ms = Some(-1.0);
        let d = DecisionMatrix::default().evaluate(&o);
        assert_eq!(d.at_least(), Action::Monitor);
        assert_eq!(d.action(), None);
        let mut o = obs(-5.0, 100.0, 0).with_data_corruption(true);
        o.current.p95_latency_ms = Some(f64::INFINITY);
        let d = DecisionMatrix::default().evaluate(&o);
        assert_eq!(d.action(), Some(Action::StopAndEscalate));
    }

    #[test]
    fn zero_and_a_hundred_percent_are_real_readings() {
        assert_eq!(action(&obs(0.0, 0.0, 0)), Action::Continue);
        assert_eq!(action(&obs(100.0, 100.0, 0)), Action::Rollback);
        let mut o = obs(0.0, 0.0, 0);
        o.baseline.p95_latency_ms = Some(0.0);
        assert_eq!(action(&o), Action::Continue);
    }

    fn full_observation() -> impl Strategy<Value = Observation> {
        (
            0.0..20.0f64,
            1.0..2000.0f64,
            1.0..500.0f64,
            0u32..40,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(er, p95, base, reports, sla, corrupt)| {
                Observation::new(
                    Metrics {
                        error_rate_pct: Some(er),
                        p95_latency_ms: Some(p95),
                        ..Metrics::default()
                    },
                    Metrics {
                        p95_latency_ms: Some(base),
                        ..Metrics::default()
                    },
                )
                .with_customer_reports(reports)
                .with_sla_violation(sla)
                .with_data_corruption(corrupt)
            })
    }

    proptest! {
        /// A worse observation never yields a less severe action.
        #[test]
        fn worse_never_less_severe(
            o in full_observation(),
            d_er in 0.0..10.0f64,
            d_p95 in 0.0..1000.0f64,
            d_reports in 0u32..30,
            sla in any::<bool>(),
            corrupt in any::<bool>(),
        ) {
            let mut worse = o;
            worse.current.error_rate_pct = o.current.error_rate_pct.map(|v| v + d_er);
            worse.current.p95_latency_ms = o.current.p95_latency_ms.map(|v| v + d_p95);
            worse.customer_reports = o.customer_reports.map(|v| v + d_reports);
            worse.sla_violation = o.sla_violation.map(|v| v || sla);
            worse.data_corruption = o.data_corruption.map(|v| v || corrupt);
            let m = DecisionMatrix::default();
            prop_assert!(m.evaluate(&worse).action().unwrap() >= m.evaluate(&o).action().unwrap());
        }

        /// An impossible error rate or P95 is never an action: it is no data naming
        /// the signal, unless the valid data already calls for a rollback.
        #[test]
        fn an_impossible_value_is_never_a_pass(
            o in full_observation(),
            p95 in proptest::bool::ANY,
            bad in prop_oneof![
                -1e12..-1e-9f64,
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
                100.000_001..1e6f64,
            ],
        ) {
            let m = DecisionMatrix::default();
            let mut spoiled = o;
            // Above 100 is a real latency: make it negative instead.
            let signal = if p95 {
                spoiled.current.p95_latency_ms = Some(if bad > 100.0 { -bad } else { bad });
                Signal::P95Latency
            } else {
                spoiled.current.error_rate_pct = Some(bad);
                Signal::ErrorRate
            };
            let d = m.evaluate(&spoiled);
            match &d.outcome {
                Outcome::NoData { missing, invalid, .. } => {
                    prop_assert_eq!(missing.iter().collect::<Vec<_>>(), vec![signal]);
                    prop_assert!(invalid.get(signal).is_some());
                }
                Outcome::Act { action } => prop_assert!(*action >= Action::Rollback, "{}", d),
            }
        }

        /// Knowing more never lowers what the present data already calls for.
        #[test]
        fn missing_data_never_hides_a_fired_rule(o in full_observation()) {
            let m = DecisionMatrix::default();
            let full = m.evaluate(&o).action().unwrap();
            let mut partial = o;
            partial.data_corruption = None;
            let d = m.evaluate(&partial);
            prop_assert!(d.at_least() <= full);
            if let Some(a) = d.action() { prop_assert_eq!(a, full); }
        }
    }
}
