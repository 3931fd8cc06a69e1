//! [`DnsSwitcher`]: point DNS at the previous endpoint and take regions out of routing.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{display_mock, string_id};
use crate::Result;
use crate::model::Region;

string_id!(
    /// A submitted DNS change, to wait for (a Route53 change id).
    ChangeId
);

/// What a [`DnsSwitcher`] can do; checked before a plan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsCapabilities {
    /// Alias records (`point_record` with [`DnsTarget::Alias`]).
    pub alias_records: bool,
    /// Per-region weighted records (`region_weights`, `set_region_weight`).
    pub weighted_routing: bool,
}

/// Where a record points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DnsTarget {
    /// An alias to a load balancer (the playbook's `rollback-dns.json`).
    Alias {
        /// The load balancer's hosted zone.
        hosted_zone_id: String,
        /// The load balancer's DNS name.
        dns_name: String,
        /// Whether DNS answers depend on the target's health.
        evaluate_target_health: bool,
    },
    /// Plain values of a record type.
    Values {
        /// Record type, such as `A` or `CNAME`.
        record_type: String,
        /// Time to live, in seconds.
        ttl: u32,
        /// The values.
        values: Vec<String>,
    },
}

impl fmt::Display for DnsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsTarget::Alias { dns_name, .. } => write!(f, "alias {dns_name}"),
            DnsTarget::Values {
                record_type,
                values,
                ..
            } => write!(f, "{record_type} {}", values.join(",")),
        }
    }
}

/// Whether a submitted change is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Not yet on every name server.
    Pending,
    /// Live everywhere.
    InSync,
}

/// A region's weight in a weighted record set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RegionWeight {
    /// The region (the record's set identifier).
    pub region: Region,
    /// Its routing weight; 0 takes it out of routing.
    pub weight: u32,
}

/// Switches DNS records in one zone (a Route53 hosted zone).
///
/// Region routing uses weighted records of one name whose set identifier is the
/// region: weight 0 excludes the region (the playbook's federation exclusion), its
/// earlier weight re-admits it.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait DnsSwitcher: fmt::Debug + fmt::Display + Send + Sync {
    /// What this switcher can do.
    fn capabilities(&self) -> DnsCapabilities;

    /// Where the simple (non-weighted) record `name` points now; `None` if there is none.
    async fn record(&self, name: &str) -> Result<Option<DnsTarget>>;

    /// Creates or replaces (UPSERT) the simple record `name`.
    async fn point_record(&self, name: &str, target: &DnsTarget) -> Result<ChangeId>;

    /// Whether a change is live.
    async fn change_status(&self, change: &ChangeId) -> Result<ChangeStatus>;

    /// Waits until a change is live everywhere. No deadline of its own.
    async fn wait_in_sync(&self, change: &ChangeId) -> Result<()>;

    /// The per-region weights of the weighted record set `name`.
    async fn region_weights(&self, name: &str) -> Result<Vec<RegionWeight>>;

    /// Sets one region's weight in the weighted record set `name`, keeping its target.
    async fn set_region_weight(&self, name: &str, region: &Region, weight: u32)
    -> Result<ChangeId>;
}

display_mock!(MockDnsSwitcher);
