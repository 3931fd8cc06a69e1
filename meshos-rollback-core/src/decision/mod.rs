//! The playbook's decision rules as pure, configurable, explainable evaluators.
//!
//! - [`CanaryPolicy`]: the canary auto-rollback rules.
//! - [`DecisionMatrix`]: the rollback decision matrix.
//! - [`VerificationLimits`]: the post-rollback verification limits.
//!
//! Each is a pure function of an [`Observation`](crate::observation::Observation):
//! no I/O, and no allocation on valid data (only an invalid reading costs one, to say
//! why), so it can run on every scrape. Defaults are exactly the playbook's numbers;
//! thresholds are strict ("greater than"), as in the playbook's table. Missing or
//! `NaN` inputs never read as healthy: they lead to
//! [`Outcome::NoData`], which the caller must handle. So do impossible values (a
//! negative error rate, an infinite P95, a CPU above 100 %): every evaluator reads
//! metrics through [`validate`], treats an invalid
//! value as missing, and names it with its reason in the no-data outcome.

mod canary;
mod matrix;
mod policy;
mod verification;

use std::fmt;

use arrayvec::ArrayVec;
use serde::{Deserialize, Serialize};

use crate::observation::{InvalidReadings, Reading, Signal, SignalSet, validate};

pub use canary::{CanaryPolicy, CanaryPolicyBuilder};
pub use matrix::{DecisionMatrix, DecisionMatrixBuilder};
pub use policy::RollbackPolicy;
pub use verification::{
    LimitCheck, VerificationLimits, VerificationLimitsBuilder, VerificationReport,
    VerificationVerdict,
};

/// What to do, from least to most severe. `Ord` follows severity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing fired: carry on.
    #[default]
    Continue,
    /// Monitor closely.
    Monitor,
    /// Investigate immediately.
    Investigate,
    /// Initiate rollback.
    Rollback,
    /// Stop all deployments and escalate.
    StopAndEscalate,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Continue => "continue",
            Action::Monitor => "monitor closely",
            Action::Investigate => "investigate immediately",
            Action::Rollback => "initiate rollback",
            Action::StopAndEscalate => "stop all deployments, escalate",
        })
    }
}

/// A rule of the canary policy or the decision matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Canary: error rate above baseline plus a margin.
    CanaryErrorRate,
    /// Canary: P95 latency above baseline times a factor.
    CanaryP95Latency,
    /// Canary: CPU above a limit.
    CanaryCpu,
    /// Canary: memory above a limit.
    CanaryMemory,
    /// Matrix: error rate above the monitor threshold.
    ErrorRateMonitor,
    /// Matrix: error rate above the rollback threshold.
    ErrorRateRollback,
    /// Matrix: P95 latency above the monitor multiple of baseline.
    P95LatencyMonitor,
    /// Matrix: P95 latency above the rollback multiple of baseline.
    P95LatencyRollback,
    /// Matrix: customer reports above the investigate threshold.
    CustomerReportsInvestigate,
    /// Matrix: customer reports above the rollback threshold.
    CustomerReportsRollback,
    /// Matrix: an SLA violation.
    SlaViolation,
    /// Matrix: data corruption.
    DataCorruption,
}

/// A rule that fired, with what was observed and what it was compared with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// The action the rule calls for.
    pub action: Action,
    /// The observed value, in the rule's unit (percent, milliseconds, a count; 1 for
    /// a yes/no signal).
    pub observed: f64,
    /// The threshold it exceeded, in the same unit (for baseline rules, already
    /// derived from the baseline).
    pub threshold: f64,
    /// The baseline the threshold was derived from, for baseline rules.
    pub baseline: Option<f64>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (o, t) = (self.observed, self.threshold);
        let b = self.baseline.unwrap_or(f64::NAN);
        match self.rule {
            Rule::CanaryErrorRate => write!(
                f,
                "error rate {o:.2}% > {t:.2}% (baseline {b:.2}% + {:.2} pp)",
                t - b
            )?,
            Rule::CanaryP95Latency | Rule::P95LatencyMonitor | Rule::P95LatencyRollback => write!(
                f,
                "P95 latency {o:.0} ms > {t:.0} ms ({:.1} x baseline {b:.0} ms)",
                t / b
            )?,
            Rule::CanaryCpu => write!(f, "CPU {o:.1}% > {t:.1}%")?,
            Rule::CanaryMemory => write!(f, "memory {o:.1}% > {t:.1}%")?,
            Rule::ErrorRateMonitor | Rule::ErrorRateRollback => {
                write!(f, "error rate {o:.2}% > {t:.2}%")?
            }
            Rule::CustomerReportsInvestigate | Rule::CustomerReportsRollback => {
                write!(f, "customer reports {o:.0} > {t:.0} in the window")?
            }
            Rule::SlaViolation => f.write_str("SLA violation")?,
            Rule::DataCorruption => f.write_str("data corruption detected")?,
        }
        write!(f, ": {}", self.action)
    }
}

/// The rules that fired, in rule order. Fixed capacity, no allocation.
pub type Findings = ArrayVec<Finding, 8>;

/// The conclusion of an evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// Enough data to decide: do this.
    Act {
        /// The most severe action of the rules that fired, or `Continue`.
        action: Action,
    },
    /// Some inputs were missing or invalid, and they could have called for more than
    /// what the valid data calls for. Never read this as healthy.
    NoData {
        /// What the valid data alone calls for.
        at_least: Action,
        /// The inputs that were missing, `NaN` or invalid.
        missing: SignalSet,
        /// Of those, the ones whose value was impossible, with the value and why:
        /// usually a broken exporter.
        #[serde(default, skip_serializing_if = "InvalidReadings::is_empty")]
        invalid: InvalidReadings,
    },
}

/// The result of evaluating the canary policy or the decision matrix: the outcome and
/// every rule that fired, so a person sees why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The conclusion.
    pub outcome: Outcome,
    /// Every rule that fired.
    pub findings: Findings,
}

impl Decision {
    /// The action when the data was sufficient; `None` for [`Outcome::NoData`].
    pub fn action(&self) -> Option<Action> {
        match self.outcome {
            Outcome::Act { action } => Some(action),
            Outcome::NoData { .. } => None,
        }
    }

    /// Whether the decision calls for a rollback or more (conclusively).
    pub fn requires_rollback(&self) -> bool {
        self.action().is_some_and(|a| a >= Action::Rollback)
    }

    /// The most severe action the present data calls for, even without full data.
    pub fn at_least(&self) -> Action {
        match self.outcome {
            Outcome::Act { action } => action,
            Outcome::NoData { at_least, .. } => at_least,
        }
    }

    /// Builds a decision from findings, the inputs that could not be read, and the
    /// most severe action those inputs could have caused.
    fn conclude(findings: Findings, gaps: Gaps, missing_could_reach: Action) -> Self {
        let action = findings
            .iter()
            .map(|f| f.action)
            .max()
            .unwrap_or(Action::Continue);
        let outcome = if gaps.missing.is_empty() || action >= missing_could_reach {
            Outcome::Act { action }
        } else {
            Outcome::NoData {
                at_least: action,
                missing: gaps.missing,
                invalid: gaps.invalid,
            }
        };
        Decision { outcome, findings }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Act { action } => write!(f, "{action}")?,
            Outcome::NoData {
                at_least,
                missing,
                invalid,
            } => {
                write!(
                    f,
                    "no data for {missing}: cannot decide (present data alone: {at_least})"
                )?;
                if !invalid.is_empty() {
                    write!(f, "; invalid: {invalid}")?;
                }
            }
        }
        for finding in &self.findings {
            write!(f, "\n  - {finding}")?;
        }
        Ok(())
    }
}

/// The inputs an evaluation could not use, and why. Allocates only for an invalid
/// reading.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gaps {
    /// Every input not used: missing, `NaN` or invalid.
    pub(crate) missing: SignalSet,
    /// The invalid ones, with their values and reasons.
    pub(crate) invalid: InvalidReadings,
}

impl Gaps {
    /// The value of `signal` when valid; otherwise `None`, noting it as missing and,
    /// when impossible, why.
    #[inline]
    pub(crate) fn read(&mut self, signal: Signal, value: Option<f64>) -> Option<f64> {
        match validate(signal, value) {
            Reading::Valid(v) => Some(v),
            Reading::Missing => {
                self.missing.insert(signal);
                None
            }
            Reading::Invalid(reading) => {
                self.missing.insert(signal);
                self.invalid.insert(reading);
                None
            }
        }
    }

    /// Notes a signal with no value (for inputs that are not metrics).
    #[inline]
    pub(crate) fn lack(&mut self, signal: Signal) {
        self.missing.insert(signal);
    }
}

/// Checks a configured number, naming the field in the error.
pub(crate) fn check_number(field: &str, value: f64, min: f64, max: f64) -> crate::Result<()> {
    if !value.is_finite() {
        return Err(crate::Error::invalid(
            field,
            format!("must be a finite number, got {value}"),
        ));
    }
    if value < min {
        return Err(crate::Error::invalid(
            field,
            format!("must be at least {min}, got {value}"),
        ));
    }
    if value > max {
        return Err(crate::Error::invalid(
            field,
            format!("must be at most {max}, got {value}"),
        ));
    }
    Ok(())
}

/// Checks that a "monitor" threshold is not above its "rollback" threshold.
pub(crate) fn check_order(lower: (&str, f64), upper: (&str, f64)) -> crate::Result<()> {
    if lower.1 > upper.1 {
        return Err(crate::Error::invalid(
            lower.0,
            format!("{} must not be above {} ({})", lower.1, upper.0, upper.1),
        ));
    }
    Ok(())
}
