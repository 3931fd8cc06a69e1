//! What was measured: the signals the playbook's rules read.
//!
//! Every value is an `Option`: a metric that could not be read is `None`, never zero,
//! and a `NaN` counts as missing too. A value no real service can have (negative, not
//! finite, or a percentage above 100) is an [`InvalidReading`]: [`validate`] is the one
//! place that decides, and the evaluators in [`crate::decision`] treat it as missing and
//! say why. Missing and invalid values become an explicit no-data outcome instead of
//! being read as healthy.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Service metrics over one window.
///
/// Rates are percentages (`5.0` means 5 %), latency in milliseconds, request rate in
/// requests per second. Percentages are in `[0, 100]`, latency and request rate are
/// finite and at least 0; anything else is invalid (see [`validate`]).
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
///
/// This only drops `NaN`; the evaluators use [`validate`], which also rejects values
/// a signal cannot have.
#[inline]
pub(crate) fn present(v: Option<f64>) -> Option<f64> {
    v.filter(|x| !x.is_nan())
}

/// What one raw value of a signal is worth to the rules.
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use]
pub enum Reading {
    /// A value the signal can really have.
    Valid(f64),
    /// No value: `None` or `NaN`.
    Missing,
    /// A value the signal cannot have: a broken exporter or a bad division, never a
    /// measurement. The rules treat it as missing.
    Invalid(InvalidReading),
}

/// Checks one raw value of `signal` against what the signal can be: the one place
/// the evaluators decide whether a value is real.
///
/// - `None` and `NaN` are [`Reading::Missing`].
/// - An infinite value is invalid ([`InvalidReason::NotFinite`]), then a negative one
///   ([`InvalidReason::Negative`]; `-0.0` counts as 0), then a percentage (error rate,
///   CPU, memory) above 100 ([`InvalidReason::AboveHundredPercent`]).
/// - Everything else, 0 and 100 included, is [`Reading::Valid`]. A request rate of 0
///   is a real reading (no traffic).
///
/// ```
/// use meshos_rollback_core::observation::{validate, InvalidReason, Reading, Signal};
///
/// assert_eq!(validate(Signal::Cpu, Some(100.0)), Reading::Valid(100.0));
/// assert_eq!(validate(Signal::RequestRate, Some(0.0)), Reading::Valid(0.0));
/// assert_eq!(validate(Signal::ErrorRate, Some(f64::NAN)), Reading::Missing);
/// let Reading::Invalid(r) = validate(Signal::ErrorRate, Some(-3.0)) else { panic!() };
/// assert_eq!(r.reason, InvalidReason::Negative);
/// assert_eq!(r.to_string(), "error rate -3 % is negative");
/// ```
#[inline]
pub fn validate(signal: Signal, value: Option<f64>) -> Reading {
    let Some(value) = present(value) else {
        return Reading::Missing;
    };
    let reason = if !value.is_finite() {
        InvalidReason::NotFinite
    } else if value < 0.0 {
        InvalidReason::Negative
    } else if signal.is_percentage() && value > 100.0 {
        InvalidReason::AboveHundredPercent
    } else {
        return Reading::Valid(value);
    };
    Reading::Invalid(InvalidReading {
        signal,
        value,
        reason,
    })
}

/// Why a value cannot be a real reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InvalidReason {
    /// Infinite.
    NotFinite,
    /// Below zero.
    Negative,
    /// A percentage above 100.
    AboveHundredPercent,
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidReason::NotFinite => "is not finite",
            InvalidReason::Negative => "is negative",
            InvalidReason::AboveHundredPercent => "is above 100 %",
        })
    }
}

/// A value a signal cannot have, with why: "CPU 250 % is above 100 %".
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct InvalidReading {
    /// The signal the value was read for.
    pub signal: Signal,
    /// The value as read, in the signal's unit.
    pub value: f64,
    /// Why it cannot be real.
    pub reason: InvalidReason,
}

// Values compare by bit pattern (`total_cmp`), so equality is reflexive and the type
// can be `Eq` like the outcomes that hold it.
impl PartialEq for InvalidReading {
    fn eq(&self, other: &Self) -> bool {
        self.signal == other.signal
            && self.reason == other.reason
            && self.value.total_cmp(&other.value).is_eq()
    }
}

impl Eq for InvalidReading {}

impl fmt::Display for InvalidReading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.signal,
            self.value,
            self.signal.unit(),
            self.reason
        )
    }
}

/// The invalid readings of one evaluation, at most one per signal, in signal
/// declaration order.
///
/// Empty on valid data, and an empty list does not allocate: only a broken reading
/// costs an allocation. (An inline array of every signal would make each report and
/// outcome several times larger for the rare case.)
#[derive(Clone, Default, PartialEq, Eq)]
pub struct InvalidReadings(Vec<InvalidReading>);

impl InvalidReadings {
    /// No invalid reading.
    pub const EMPTY: InvalidReadings = InvalidReadings(Vec::new());

    /// Adds a reading, replacing an earlier one for the same signal.
    pub fn insert(&mut self, reading: InvalidReading) {
        match self.0.binary_search_by_key(&reading.signal, |r| r.signal) {
            Ok(i) => self.0[i] = reading,
            Err(i) => self.0.insert(i, reading),
        }
    }

    /// The invalid reading of `signal`, if any.
    pub fn get(&self, signal: Signal) -> Option<&InvalidReading> {
        self.0.iter().find(|r| r.signal == signal)
    }

    /// Whether there is none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The readings, in signal declaration order.
    pub fn iter(&self) -> std::slice::Iter<'_, InvalidReading> {
        self.0.iter()
    }

    /// The signals with an invalid reading.
    pub fn signals(&self) -> SignalSet {
        self.iter().map(|r| r.signal).collect()
    }
}

impl<'a> IntoIterator for &'a InvalidReadings {
    type Item = &'a InvalidReading;
    type IntoIter = std::slice::Iter<'a, InvalidReading>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for InvalidReadings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// `"error rate -3 % is negative; CPU 250 % is above 100 %"`.
impl fmt::Display for InvalidReadings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl Serialize for InvalidReadings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for InvalidReadings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<InvalidReading>::deserialize(d)?.into_iter().collect())
    }
}

impl FromIterator<InvalidReading> for InvalidReadings {
    fn from_iter<I: IntoIterator<Item = InvalidReading>>(iter: I) -> Self {
        let mut set = InvalidReadings::EMPTY;
        for r in iter {
            set.insert(r);
        }
        set
    }
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

impl Signal {
    /// Whether the signal is a percentage, bounded by 100.
    fn is_percentage(self) -> bool {
        matches!(
            self,
            Signal::ErrorRate | Signal::BaselineErrorRate | Signal::Cpu | Signal::Memory
        )
    }

    /// The unit its values are shown in.
    fn unit(self) -> &'static str {
        match self {
            Signal::ErrorRate | Signal::BaselineErrorRate | Signal::Cpu | Signal::Memory => "%",
            Signal::P95Latency | Signal::BaselineP95Latency => "ms",
            Signal::RequestRate | Signal::BaselineRequestRate => "req/s",
            Signal::CustomerReports => "reports",
            Signal::SlaViolation | Signal::DataCorruption => "(flag)",
        }
    }
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

    fn reason(signal: Signal, v: f64) -> Option<InvalidReason> {
        match validate(signal, Some(v)) {
            Reading::Invalid(r) => {
                assert_eq!((r.signal, r.value.to_bits()), (signal, v.to_bits()));
                Some(r.reason)
            }
            Reading::Valid(x) => {
                assert_eq!(x.to_bits(), v.to_bits());
                None
            }
            Reading::Missing => panic!("{signal} {v} read as missing"),
        }
    }

    const PERCENTAGES: [Signal; 4] = [
        Signal::ErrorRate,
        Signal::BaselineErrorRate,
        Signal::Cpu,
        Signal::Memory,
    ];
    const UNBOUNDED: [Signal; 4] = [
        Signal::P95Latency,
        Signal::BaselineP95Latency,
        Signal::RequestRate,
        Signal::BaselineRequestRate,
    ];

    #[test]
    fn percentages_are_valid_from_zero_to_a_hundred() {
        for s in PERCENTAGES {
            for v in [0.0, -0.0, 0.001, 50.0, 99.999, 100.0] {
                assert_eq!(reason(s, v), None, "{s} {v}");
            }
            assert_eq!(reason(s, -3.0), Some(InvalidReason::Negative), "{s}");
            assert_eq!(reason(s, -1e-9), Some(InvalidReason::Negative), "{s}");
            assert_eq!(
                reason(s, 100.0001),
                Some(InvalidReason::AboveHundredPercent),
                "{s}"
            );
            assert_eq!(
                reason(s, 250.0),
                Some(InvalidReason::AboveHundredPercent),
                "{s}"
            );
            for v in [f64::INFINITY, f64::NEG_INFINITY] {
                assert_eq!(reason(s, v), Some(InvalidReason::NotFinite), "{s} {v}");
            }
        }
    }

    #[test]
    fn latency_and_request_rate_are_valid_from_zero_without_upper_bound() {
        for s in UNBOUNDED {
            // 0 is a real reading: no traffic, or a cached answer.
            for v in [0.0, -0.0, 150.0, 250.0, 1e12, f64::MAX] {
                assert_eq!(reason(s, v), None, "{s} {v}");
            }
            assert_eq!(reason(s, -5.0), Some(InvalidReason::Negative), "{s}");
            // -inf is reported as not finite, the more telling reason.
            for v in [f64::INFINITY, f64::NEG_INFINITY] {
                assert_eq!(reason(s, v), Some(InvalidReason::NotFinite), "{s} {v}");
            }
        }
    }

    #[test]
    fn none_and_nan_are_missing_not_invalid() {
        for s in Signal::ALL {
            assert_eq!(validate(s, None), Reading::Missing);
            assert_eq!(validate(s, Some(f64::NAN)), Reading::Missing);
            assert_eq!(validate(s, Some(-f64::NAN)), Reading::Missing);
        }
    }

    #[test]
    fn invalid_readings_say_signal_value_and_reason() {
        let text = |s: Signal, v: f64| match validate(s, Some(v)) {
            Reading::Invalid(r) => r.to_string(),
            other => panic!("{s} {v}: {other:?}"),
        };
        assert_eq!(text(Signal::ErrorRate, -3.0), "error rate -3 % is negative");
        assert_eq!(text(Signal::Cpu, 250.0), "CPU 250 % is above 100 %");
        assert_eq!(
            text(Signal::P95Latency, f64::INFINITY),
            "P95 latency inf ms is not finite"
        );
        assert_eq!(
            text(Signal::BaselineRequestRate, -0.5),
            "baseline request rate -0.5 req/s is negative"
        );
    }

    #[test]
    fn invalid_readings_keep_one_per_signal_in_order_and_round_trip() {
        let r = |signal, value, reason| InvalidReading {
            signal,
            value,
            reason,
        };
        let mut set = InvalidReadings::EMPTY;
        assert!(set.is_empty());
        set.insert(r(Signal::Cpu, 250.0, InvalidReason::AboveHundredPercent));
        set.insert(r(Signal::ErrorRate, 7.0, InvalidReason::Negative));
        set.insert(r(Signal::ErrorRate, -3.0, InvalidReason::Negative));
        assert_eq!(set.len(), 2);
        assert_eq!(
            set.to_string(),
            "error rate -3 % is negative; CPU 250 % is above 100 %"
        );
        assert_eq!(set.get(Signal::ErrorRate).unwrap().value, -3.0);
        assert!(set.get(Signal::Memory).is_none());
        assert_eq!(
            set.signals(),
            [Signal::ErrorRate, Signal::Cpu].into_iter().collect()
        );
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(
            json,
            r#"[{"signal":"error_rate","value":-3.0,"reason":"negative"},{"signal":"cpu","value":250.0,"reason":"above_hundred_percent"}]"#
        );
        assert_eq!(serde_json::from_str::<InvalidReadings>(&json).unwrap(), set);
    }

    proptest::proptest! {
        /// `validate` accepts exactly the values in the signal's range, unchanged.
        #[test]
        fn valid_exactly_within_bounds(v in proptest::num::f64::ANY, i in 0..8usize) {
            let s = [PERCENTAGES, UNBOUNDED].concat()[i];
            let max = if PERCENTAGES.contains(&s) { 100.0 } else { f64::MAX };
            let in_bounds = (0.0..=max).contains(&v);
            match validate(s, Some(v)) {
                Reading::Valid(x) => {
                    proptest::prop_assert!(in_bounds);
                    proptest::prop_assert_eq!(x.to_bits(), v.to_bits());
                }
                Reading::Missing => proptest::prop_assert!(v.is_nan()),
                Reading::Invalid(r) => {
                    proptest::prop_assert!(!in_bounds && !v.is_nan());
                    proptest::prop_assert_eq!(r.signal, s);
                }
            }
        }
    }
}
