//! What was measured: the signals the playbook's rules read.
//!
//! Every value is an `Option`: a metric that could not be read is `None`, never zero,
//! and a `NaN` counts as missing too. The evaluators in [`crate::decision`] turn
//! missing values into an explicit no-data outcome instead of reading them as healthy.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Service metrics over one window.
///
/// Rates are percentages (`5.0` means 5 %), latency in milliseconds, request rate in
/// requests per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metrics {
    /// Share of requests that failed (HTTP 5xx), in percent.
    pub error_rate_pct: Option<f64>,
    /// 95th percentile latency, in milliseconds.
    pub p95_latency_ms: Option<f64>,
    /// CPU utilisation, in percent of the allocation.
    pub cpu_pct: Option<f64>,
    /// Memory utilisation, in percent of the allocation.
    pub memory_pct: Option<f64>,
    /// Requests per second.
    pub request_rate_rps: Option<f64>,
}

impl Metrics {
    /// Metrics with every value present.
    pub fn new(
        error_rate_pct: f64,
        p95_latency_ms: f64,
        cpu_pct: f64,
        memory_pct: f64,
        request_rate_rps: f64,
    ) -> Self {
        Metrics {
            error_rate_pct: Some(error_rate_pct),
            p95_latency_ms: Some(p95_latency_ms),
            cpu_pct: Some(cpu_pct),
            memory_pct: Some(memory_pct),
            request_rate_rps: Some(request_rate_rps),
        }
    }

    /// Whether no value at all is present (an empty query result).
    pub fn is_empty(&self) -> bool {
        [
            self.error_rate_pct,
            self.p95_latency_ms,
            self.cpu_pct,
            self.memory_pct,
            self.request_rate_rps,
        ]
        .iter()
        .all(|v| present(*v).is_none())
    }
}

/// Everything the decision rules read for one service in one region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Observation {
    /// The metrics now (for a canary: the canary's metrics).
    pub current: Metrics,
    /// The baseline to compare with (for a canary: the stable fleet; otherwise the
    /// same window an hour or a week earlier).
    pub baseline: Metrics,
    /// Customer reports in the decision matrix's window (5 minutes by default).
    pub customer_reports: Option<u32>,
    /// Whether an SLA is being violated.
    pub sla_violation: Option<bool>,
    /// Whether data corruption has been detected.
    pub data_corruption: Option<bool>,
}

impl Observation {
    /// An observation of `current` against `baseline`, with nothing else known.
    pub fn new(current: Metrics, baseline: Metrics) -> Self {
        Observation {
            current,
            baseline,
            ..Observation::default()
        }
    }

    /// Sets the customer-report count.
    pub fn with_customer_reports(mut self, count: u32) -> Self {
        self.customer_reports = Some(count);
        self
    }

    /// Sets whether an SLA is violated.
    pub fn with_sla_violation(mut self, violated: bool) -> Self {
        self.sla_violation = Some(violated);
        self
    }

    /// Sets whether data corruption was detected.
    pub fn with_data_corruption(mut self, corrupted: bool) -> Self {
        self.data_corruption = Some(corrupted);
        self
    }
}

/// A value counts as present only when it is a number.
#[inline]
pub(crate) fn present(v: Option<f64>) -> Option<f64> {
    v.filter(|x| !x.is_nan())
}

/// One input of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Signal {
    /// Current error rate.
    ErrorRate,
    /// Baseline error rate.
    BaselineErrorRate,
    /// Current P95 latency.
    P95Latency,
    /// Baseline P95 latency.
    BaselineP95Latency,
    /// CPU utilisation.
    Cpu,
    /// Memory utilisation.
    Memory,
    /// Current request rate.
    RequestRate,
    /// Baseline request rate.
    BaselineRequestRate,
    /// Customer reports in the window.
    CustomerReports,
    /// SLA violation.
    SlaViolation,
    /// Data corruption.
    DataCorruption,
}

impl Signal {
    /// Every signal, in declaration order.
    pub const ALL: [Signal; 11] = [
        Signal::ErrorRate,
        Signal::BaselineErrorRate,
        Signal::P95Latency,
        Signal::BaselineP95Latency,
        Signal::Cpu,
        Signal::Memory,
        Signal::RequestRate,
        Signal::BaselineRequestRate,
        Signal::CustomerReports,
        Signal::SlaViolation,
        Signal::DataCorruption,
    ];
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::ErrorRate => "error rate",
            Signal::BaselineErrorRate => "baseline error rate",
            Signal::P95Latency => "P95 latency",
            Signal::BaselineP95Latency => "baseline P95 latency",
            Signal::Cpu => "CPU",
            Signal::Memory => "memory",
            Signal::RequestRate => "request rate",
            Signal::BaselineRequestRate => "baseline request rate",
            Signal::CustomerReports => "customer reports",
            Signal::SlaViolation => "SLA violation",
            Signal::DataCorruption => "data corruption",
        })
    }
}

/// A set of [`Signal`]s, such as those with no data. `Copy`, no allocation.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SignalSet(u16);

impl SignalSet {
    /// The empty set.
    pub const EMPTY: SignalSet = SignalSet(0);

    /// Adds a signal.
    #[inline]
    pub fn insert(&mut self, s: Signal) {
        self.0 |= 1 << (s as u8);
    }

    /// Whether the set holds `s`.
    #[inline]
    pub fn contains(&self, s: Signal) -> bool {
        self.0 & (1 << (s as u8)) != 0
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The signals in the set, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = Signal> + '_ {
        Signal::ALL.into_iter().filter(|s| self.contains(*s))
    }
}

impl fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for SignalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl Serialize for SignalSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for SignalSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<Signal>::deserialize(d)?;
        let mut set = SignalSet::EMPTY;
        for s in list {
            set.insert(s);
        }
        Ok(set)
    }
}

impl FromIterator<Signal> for SignalSet {
    fn from_iter<I: IntoIterator<Item = Signal>>(iter: I) -> Self {
        let mut set = SignalSet::EMPTY;
        for s in iter {
            set.insert(s);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_counts_as_missing() {
        assert_eq!(present(Some(f64::NAN)), None);
        assert_eq!(present(Some(1.0)), Some(1.0));
        let m = Metrics {
            cpu_pct: Some(f64::NAN),
            ..Metrics::default()
        };
        assert!(m.is_empty());
        assert!(!Metrics::new(0.0, 1.0, 1.0, 1.0, 1.0).is_empty());
    }

    #[test]
    fn signal_set_round_trips() {
        let set: SignalSet = [Signal::Cpu, Signal::DataCorruption].into_iter().collect();
        assert!(set.contains(Signal::Cpu));
        assert!(!set.contains(Signal::Memory));
        assert_eq!(set.to_string(), "CPU, data corruption");
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["cpu","data_corruption"]"#);
        assert_eq!(serde_json::from_str::<SignalSet>(&json).unwrap(), set);
    }
}
