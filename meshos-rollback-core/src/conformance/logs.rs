//! Conformance of a [`LogSource`].

use jiff::{SignedDuration, Timestamp};

use super::{expect_kind, expect_ok};
use crate::ErrorKind;
use crate::model::ServiceRef;
use crate::provider::{LogSource, matches_terms};

/// The lines the caller writes to the fixture's service, in this order, one second
/// apart starting one second after [`LogsFixture::since`].
pub const LINES: &[&str] = &[
    "INFO meshos-api started on :8080",
    "ERROR db timeout after 5s",
    "WARN slow query took 900ms",
    "ERROR upstream connection refused",
    "ERROR db timeout after 7s",
    "INFO GET /health 200",
];

/// The line the caller writes one minute before [`LogsFixture::since`]: an error the
/// window must not count.
pub const BEFORE_SINCE: &str = "ERROR stale failure before the window";

/// What the caller prepared for [`run`].
#[derive(Debug, Clone)]
pub struct LogsFixture {
    /// A service whose log holds [`BEFORE_SINCE`] and then [`LINES`] as described.
    pub service: ServiceRef,
    /// The start of the window; now is at least [`LINES`]`.len()` seconds later.
    pub since: Timestamp,
    /// A service whose log exists and holds no line at all.
    pub empty: ServiceRef,
    /// A service the source has no log for.
    pub missing: ServiceRef,
}

/// Runs the logs suite: counts and samples of the term subset (one term, two terms
/// anded, the empty pattern), oldest first; the window excludes earlier lines; a
/// sample of 0 still counts; an empty log counts 0; an unknown service is
/// `NotFound`.
pub async fn run(source: &dyn LogSource, fx: &LogsFixture) {
    let who = source.to_string();
    for (pattern, sample) in [("ERROR", 2), ("ERROR timeout", 5), ("", 10), ("ERROR", 0)] {
        let want: Vec<&str> = LINES
            .iter()
            .copied()
            .filter(|l| matches_terms(pattern, l))
            .collect();
        let got = expect_ok(
            source.errors(&fx.service, fx.since, pattern, sample).await,
            &format!("errors matching {pattern:?}"),
        );
        assert_eq!(
            got.count,
            want.len() as u64,
            "{who}: lines matching {pattern:?} since {}: {got:?}",
            fx.since
        );
        assert!(!got.truncated, "{who}: a small window is read to its end");
        let samples: Vec<&str> = got.samples.iter().map(|l| l.message.trim_end()).collect();
        let first: Vec<&str> = want.iter().copied().take(sample).collect();
        assert_eq!(
            samples, first,
            "{who}: the first {sample} lines matching {pattern:?}, oldest first"
        );
        assert!(
            got.samples.iter().all(|l| l.at >= fx.since),
            "{who}: samples lie in the window"
        );
    }

    let earlier = fx.since - SignedDuration::from_mins(5);
    let all = expect_ok(
        source.errors(&fx.service, earlier, "ERROR", 1).await,
        "errors over a wider window",
    );
    assert_eq!(
        all.samples.first().map(|l| l.message.trim_end()),
        Some(BEFORE_SINCE),
        "{who}: a wider window includes the earlier line"
    );

    let none = expect_ok(
        source
            .errors(&fx.service, fx.since, "NO-SUCH-TERM", 3)
            .await,
        "errors matching nothing",
    );
    assert_eq!(none.count, 0, "{who}: no line matches: {none:?}");
    assert!(none.samples.is_empty(), "{who}: no samples without matches");

    let empty = expect_ok(
        source.errors(&fx.empty, fx.since, "ERROR", 3).await,
        "errors of an empty log",
    );
    assert_eq!(empty.count, 0, "{who}: an empty log counts 0: {empty:?}");

    expect_kind(
        source.errors(&fx.missing, fx.since, "ERROR", 3).await,
        ErrorKind::NotFound,
        "a service without a log",
    );
}
