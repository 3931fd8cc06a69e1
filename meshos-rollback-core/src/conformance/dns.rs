//! Conformance of a [`DnsSwitcher`].

use super::{expect_kind, expect_ok};
use crate::ErrorKind;
use crate::model::Region;
use crate::provider::{ChangeStatus, DnsSwitcher, DnsTarget};

/// What the caller prepared for [`run`].
#[derive(Debug, Clone)]
pub struct DnsFixture {
    /// A simple record name the suite may create and change, such as
    /// `api-<random>.example.com`.
    pub record: String,
    /// A name with no record.
    pub missing_record: String,
    /// Two different alias targets (the current and the previous load balancer).
    pub targets: [DnsTarget; 2],
    /// A weighted record set with one record per region in `regions`.
    pub weighted: String,
    /// Two regions of `weighted` and their current weights (both non-zero).
    pub regions: [(Region, u32); 2],
    /// A region with no record in `weighted`.
    pub missing_region: Region,
}

/// Runs the DNS suite: UPSERT and read back, wait for sync, exclude a region (weight
/// 0) and re-admit it, and not-found errors. Leaves the weights as found.
pub async fn run(dns: &dyn DnsSwitcher, fx: &DnsFixture) {
    let who = dns.to_string();
    let caps = dns.capabilities();

    assert_eq!(
        expect_ok(
            dns.record(&fx.missing_record).await,
            "read a missing record"
        ),
        None,
        "{who}: a missing record reads as None"
    );
    for target in &fx.targets {
        let change = expect_ok(dns.point_record(&fx.record, target).await, "point record");
        expect_ok(dns.wait_in_sync(&change).await, "wait in sync");
        assert_eq!(
            expect_ok(dns.change_status(&change).await, "change status"),
            ChangeStatus::InSync,
            "{who}: status after waiting"
        );
        assert_eq!(
            expect_ok(dns.record(&fx.record).await, "read record").as_ref(),
            Some(target),
            "{who}: record reads back as written"
        );
    }
    // UPSERT of the same target is fine.
    let same = expect_ok(
        dns.point_record(&fx.record, &fx.targets[1]).await,
        "point again",
    );
    expect_ok(dns.wait_in_sync(&same).await, "wait in sync");

    if caps.weighted_routing {
        let weights = expect_ok(dns.region_weights(&fx.weighted).await, "region weights");
        for (region, weight) in &fx.regions {
            assert!(
                weights
                    .iter()
                    .any(|w| &w.region == region && w.weight == *weight),
                "{who}: {region} has weight {weight} in {weights:?}"
            );
        }
        let (excluded, before) = &fx.regions[0];
        let (other, other_weight) = &fx.regions[1];
        let change = expect_ok(
            dns.set_region_weight(&fx.weighted, excluded, 0).await,
            "exclude region",
        );
        expect_ok(dns.wait_in_sync(&change).await, "wait for exclusion");
        let w = expect_ok(dns.region_weights(&fx.weighted).await, "region weights");
        assert!(
            w.iter().any(|w| &w.region == excluded && w.weight == 0),
            "{who}: {excluded} excluded: {w:?}"
        );
        assert!(
            w.iter()
                .any(|w| &w.region == other && w.weight == *other_weight),
            "{who}: excluding {excluded} must leave {other} alone: {w:?}"
        );
        let change = expect_ok(
            dns.set_region_weight(&fx.weighted, excluded, *before).await,
            "re-admit region",
        );
        expect_ok(dns.wait_in_sync(&change).await, "wait for re-admission");
        let w = expect_ok(dns.region_weights(&fx.weighted).await, "region weights");
        assert!(
            w.iter()
                .any(|w| &w.region == excluded && w.weight == *before),
            "{who}: {excluded} re-admitted at weight {before}: {w:?}"
        );
        expect_kind(
            dns.set_region_weight(&fx.weighted, &fx.missing_region, 0)
                .await,
            ErrorKind::NotFound,
            "weight of a region without a record",
        );
        expect_kind(
            dns.region_weights(&fx.missing_record).await,
            ErrorKind::NotFound,
            "weights of a missing record set",
        );
    }
}
