//! An in-memory [`DnsSwitcher`]: a hosted zone with simple and weighted records.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use crate::clock::SharedClock;
use crate::model::Region;
use crate::provider::{
    ChangeId, ChangeStatus, DnsCapabilities, DnsSwitcher, DnsTarget, RegionWeight,
};
use crate::wait::{Backoff, conditions, poll_until};
use crate::{Error, Result};

/// The largest routing weight, as in Route53.
pub const MAX_REGION_WEIGHT: u32 = 255;

/// A hosted zone in memory. Names are case-insensitive, with or without the final
/// dot. A change is pending for the configured propagation time, then in sync.
#[derive(Debug)]
pub struct InMemoryDnsSwitcher {
    zone: String,
    clock: SharedClock,
    propagation: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    simple: BTreeMap<String, DnsTarget>,
    weighted: BTreeMap<String, BTreeMap<Region, (u32, DnsTarget)>>,
    changes: HashMap<ChangeId, Timestamp>,
    next_change: u64,
}

/// Route53 compares names case-insensitively and with an optional final dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl InMemoryDnsSwitcher {
    /// An empty zone whose changes take 10 seconds of `clock` time to be in sync.
    pub fn new(zone: impl Into<String>, clock: SharedClock) -> Self {
        InMemoryDnsSwitcher {
            zone: zone.into(),
            clock,
            propagation: Duration::from_secs(10),
            state: Mutex::new(State::default()),
        }
    }

    /// Sets how long a change stays pending.
    pub fn with_propagation(mut self, d: Duration) -> Self {
        self.propagation = d;
        self
    }

    /// Adds (or replaces) one region's record in the weighted set `name`.
    pub fn add_weighted(&self, name: &str, region: Region, weight: u32, target: DnsTarget) {
        self.lock()
            .weighted
            .entry(normalize(name))
            .or_default()
            .insert(region, (weight, target));
    }

    /// Adds (or replaces) a simple record.
    pub fn add_record(&self, name: &str, target: DnsTarget) {
        self.lock().simple.insert(normalize(name), target);
    }

    /// Where a region's weighted record points.
    pub fn weighted_target(&self, name: &str, region: &Region) -> Option<DnsTarget> {
        self.lock()
            .weighted
            .get(&normalize(name))?
            .get(region)
            .map(|(_, t)| t.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("lock")
    }

    fn submit(&self, st: &mut State) -> ChangeId {
        st.next_change += 1;
        let id = ChangeId::new(format!("C{:08}", st.next_change));
        let live = self
            .clock
            .now()
            .saturating_add(
                SignedDuration::try_from(self.propagation).unwrap_or(SignedDuration::MAX),
            )
            .unwrap_or(Timestamp::MAX);
        st.changes.insert(id.clone(), live);
        id
    }
}

fn check_target(target: &DnsTarget) -> Result<()> {
    match target {
        DnsTarget::Alias {
            dns_name,
            hosted_zone_id,
            ..
        } => {
            if dns_name.is_empty() || hosted_zone_id.is_empty() {
                return Err(Error::invalid(
                    "dns target",
                    "an alias needs a DNS name and a hosted zone id",
                ));
            }
        }
        DnsTarget::Values {
            values,
            record_type,
            ..
        } => {
            if values.is_empty() || record_type.is_empty() {
                return Err(Error::invalid(
                    "dns target",
                    "a record needs a type and at least one value",
                ));
            }
        }
    }
    Ok(())
}

impl fmt::Display for InMemoryDnsSwitcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InMemoryDnsSwitcher({})", self.zone)
    }
}

#[async_trait]
impl DnsSwitcher for InMemoryDnsSwitcher {
    fn capabilities(&self) -> DnsCapabilities {
        DnsCapabilities {
            alias_records: true,
            weighted_routing: true,
        }
    }

    async fn record(&self, name: &str) -> Result<Option<DnsTarget>> {
        Ok(self.lock().simple.get(&normalize(name)).cloned())
    }

    async fn point_record(&self, name: &str, target: &DnsTarget) -> Result<ChangeId> {
        if normalize(name).is_empty() {
            return Err(Error::invalid("record name", "must not be empty"));
        }
        check_target(target)?;
        let mut st = self.lock();
        st.simple.insert(normalize(name), target.clone());
        Ok(self.submit(&mut st))
    }

    async fn change_status(&self, change: &ChangeId) -> Result<ChangeStatus> {
        let live = *self
            .lock()
            .changes
            .get(change)
            .ok_or_else(|| Error::not_found(self, format!("change {change}")))?;
        Ok(if self.clock.now() >= live {
            ChangeStatus::InSync
        } else {
            ChangeStatus::Pending
        })
    }

    async fn wait_in_sync(&self, change: &ChangeId) -> Result<()> {
        let what = format!("{self}: change {change}");
        let backoff = Backoff {
            initial: Duration::from_secs(2),
            ..Backoff::default()
        };
        poll_until(
            &what,
            || self.change_status(change),
            &conditions::change_in_sync,
            &backoff,
        )
        .await
        .map(|_| ())
    }

    async fn region_weights(&self, name: &str) -> Result<Vec<RegionWeight>> {
        let st = self.lock();
        let set = st
            .weighted
            .get(&normalize(name))
            .ok_or_else(|| Error::not_found(self, format!("weighted record set {name}")))?;
        Ok(set
            .iter()
            .map(|(region, (weight, _))| RegionWeight {
                region: region.clone(),
                weight: *weight,
            })
            .collect())
    }

    async fn set_region_weight(
        &self,
        name: &str,
        region: &Region,
        weight: u32,
    ) -> Result<ChangeId> {
        if weight > MAX_REGION_WEIGHT {
            return Err(Error::invalid(
                "weight",
                format!("{weight} is above the maximum {MAX_REGION_WEIGHT}"),
            ));
        }
        let mut st = self.lock();
        let entry = st
            .weighted
            .get_mut(&normalize(name))
            .and_then(|set| set.get_mut(region))
            .ok_or_else(|| {
                Error::not_found(self, format!("weighted record {name} for region {region}"))
            })?;
        entry.0 = weight;
        Ok(self.submit(&mut st))
    }
}
