//! Conformance of a [`CustomerReports`] source.

use jiff::Timestamp;

use super::expect_ok;
use crate::model::Region;
use crate::provider::CustomerReports;

/// Runs the customer-report suite. The caller prepared `count` reports about `region`
/// at or after `since` (and possibly older ones before it), and none about `quiet`.
pub async fn run(
    reports: &dyn CustomerReports,
    region: &Region,
    since: Timestamp,
    count: u32,
    quiet: &Region,
) {
    let who = reports.to_string();
    assert_eq!(
        expect_ok(reports.count_since(region, since).await, "count"),
        count,
        "{who}: reports since {since}"
    );
    assert_eq!(
        expect_ok(reports.count_since(quiet, since).await, "count quiet"),
        0,
        "{who}: a quiet region"
    );
    let future = since
        .checked_add(jiff::SignedDuration::from_hours(24 * 365))
        .expect("a year later");
    assert_eq!(
        expect_ok(reports.count_since(region, future).await, "count future"),
        0,
        "{who}: nothing in the future"
    );
}
