//! [`Route53DnsSwitcher`]: point records back at the previous endpoint and take a
//! region out of weighted routing (the playbook's `rollback-dns.json` and
//! `federation_manager --exclude-region`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_types::SdkConfig;
use meshos_rollback_core::model::Region;
use meshos_rollback_core::provider::{
    ChangeId, ChangeStatus, DnsCapabilities, DnsSwitcher, DnsTarget, RegionWeight,
};
use meshos_rollback_core::wait::{Backoff, conditions, poll_until};
use meshos_rollback_core::{Error, Result};

use crate::error::{from_sdk, missing};
use crate::sdk::prepare_client;

/// The largest weight of a Route53 weighted record.
pub const MAX_WEIGHT: u32 = 255;

/// Pages of one name read at most (300 records each).
const MAX_PAGES: usize = 10;

/// Builds a [`Route53DnsSwitcher`].
#[derive(Debug)]
pub struct Route53DnsSwitcherBuilder {
    client: aws_sdk_route53::Client,
    zone: String,
    wait: Backoff,
}

impl Route53DnsSwitcherBuilder {
    /// A switcher for the hosted zone `zone_id` (`Z123…` or `/hostedzone/Z123…`),
    /// using a client built from `config`.
    pub fn new(config: &SdkConfig, zone_id: impl Into<String>) -> Self {
        Self::from_client(aws_sdk_route53::Client::new(config), zone_id)
    }

    /// A switcher using an existing Route53 client.
    pub fn from_client(client: aws_sdk_route53::Client, zone_id: impl Into<String>) -> Self {
        Route53DnsSwitcherBuilder {
            client,
            zone: zone_id.into(),
            wait: Route53DnsSwitcher::default_wait(),
        }
    }

    /// Sets how [`DnsSwitcher::wait_in_sync`] polls.
    pub fn with_wait(mut self, wait: Backoff) -> Self {
        self.wait = wait;
        self
    }

    /// Checks the configuration (zone id, region, HTTP client).
    pub fn build(self) -> Result<Route53DnsSwitcher> {
        let zone = self.zone.trim_start_matches("/hostedzone/").to_owned();
        if zone.is_empty() || !zone.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::invalid(
                "hosted_zone_id",
                format!("{:?} is not a Route53 hosted zone id", self.zone),
            ));
        }
        let (client, _region) = prepare_client!("Route53DnsSwitcher", self.client, aws_sdk_route53);
        Ok(Route53DnsSwitcher {
            client,
            zone,
            wait: self.wait,
        })
    }
}

/// A [`DnsSwitcher`] over one Route53 hosted zone.
///
/// * [`DnsSwitcher::point_record`] UPSERTs a simple record: an alias is an `A` alias
///   record exactly as in the playbook's `rollback-dns.json`, and when the name also
///   has an `AAAA` alias (a dual-stack load balancer) both move in one change batch,
///   which Route53 applies atomically. A values target changes only its own type.
/// * [`DnsSwitcher::record`] reports the `A` record (else `AAAA`, `CNAME`, …); when
///   the name's `A` and `AAAA` aliases point at different targets it is a
///   [`Conflict`](Error::Conflict) naming both, never one of them as "the" target.
/// * [`DnsSwitcher::wait_in_sync`] polls `GetChange` until `INSYNC`.
/// * Weighted routing: records of one name whose `SetIdentifier` is the region.
///   [`DnsSwitcher::set_region_weight`] UPSERTs that region's records (every type, such
///   as `A` and `AAAA`) with only the weight changed, so weight 0 excludes the region
///   and keeps its target for re-admission. Set identifiers that are no region name
///   are not listed.
///
/// Names compare case-insensitively, with or without the final dot.
#[derive(Debug)]
pub struct Route53DnsSwitcher {
    client: aws_sdk_route53::Client,
    zone: String,
    wait: Backoff,
}

impl Route53DnsSwitcher {
    /// Starts building a switcher for `zone_id` from an SDK configuration.
    pub fn builder(config: &SdkConfig, zone_id: impl Into<String>) -> Route53DnsSwitcherBuilder {
        Route53DnsSwitcherBuilder::new(config, zone_id)
    }

    /// The default polling of [`DnsSwitcher::wait_in_sync`]: 1 s, doubling to 10 s, at
    /// most 60 checks (about 9 minutes; changes usually sync within a minute).
    pub fn default_wait() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            factor: 2.0,
            max_interval: Duration::from_secs(10),
            max_checks: Some(60),
        }
    }

    /// Every record set named `name`, across pages.
    async fn records_named(&self, name: &str) -> Result<Vec<ResourceRecordSet>> {
        let wanted = normalize(name);
        let mut out = Vec::new();
        let mut start: (String, Option<RrType>, Option<String>) = (name.to_owned(), None, None);
        for _ in 0..MAX_PAGES {
            let page = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(&self.zone)
                .start_record_name(&start.0)
                .set_start_record_type(start.1.take())
                .set_start_record_identifier(start.2.take())
                .send()
                .await
                .map_err(|e| from_sdk(self, format!("records named {name}"), e))?;
            let mut past = false;
            for r in page.resource_record_sets() {
                if normalize(r.name()) == wanted {
                    // A page that restarts at a type repeats no record: skip duplicates
                    // in case an endpoint ignores the record identifier.
                    if !out.contains(r) {
                        out.push(r.clone());
                    }
                } else if !out.is_empty() {
                    past = true;
                }
            }
            match (page.is_truncated(), page.next_record_name()) {
                (true, Some(next)) if !past && normalize(next) == wanted => {
                    start = (
                        next.to_owned(),
                        page.next_record_type().cloned(),
                        page.next_record_identifier().map(str::to_owned),
                    );
                }
                _ => break,
            }
        }
        Ok(out)
    }

    async fn upsert(&self, what: &str, records: Vec<ResourceRecordSet>) -> Result<ChangeId> {
        let mut batch = ChangeBatch::builder().comment(format!("meshos-rollback: {what}"));
        for r in records {
            batch = batch.changes(
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(r)
                    .build()
                    .map_err(|e| Error::invalid("dns change", e.to_string()))?,
            );
        }
        let batch = batch
            .build()
            .map_err(|e| Error::invalid("dns change", e.to_string()))?;
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| from_sdk(self, what, e))?;
        let id = out
            .change_info()
            .map(|c| c.id().trim_start_matches("/change/").to_owned())
            .ok_or_else(|| Error::failed(self, "ChangeResourceRecordSets returned no change id"))?;
        Ok(ChangeId::new(id))
    }
}

impl fmt::Display for Route53DnsSwitcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Route53DnsSwitcher({})", self.zone)
    }
}

#[async_trait]
impl DnsSwitcher for Route53DnsSwitcher {
    fn capabilities(&self) -> DnsCapabilities {
        DnsCapabilities {
            alias_records: true,
            weighted_routing: true,
        }
    }

    async fn record(&self, name: &str) -> Result<Option<DnsTarget>> {
        let records = self.records_named(name).await?;
        let simple: Vec<&ResourceRecordSet> = records
            .iter()
            .filter(|r| r.set_identifier().is_none())
            .filter(|r| !matches!(r.r#type(), RrType::Ns | RrType::Soa))
            .collect();
        // A dual-stack name is an A and an AAAA alias to one load balancer. If they
        // disagree, no single answer is true (IPv4 and IPv6 clients reach different
        // versions): say so instead of reporting the A alone as "the" target.
        let aliases: Vec<&ResourceRecordSet> = simple
            .iter()
            .copied()
            .filter(|r| is_address_alias(r))
            .collect();
        if let Some((first, rest)) = aliases.split_first()
            && let Some(other) = rest.iter().find(|r| !same_alias(first, r))
        {
            return Err(Error::conflict(
                self,
                format!(
                    "record {name}: its {} alias points at {} but its {} alias at {}; \
                     point_record moves both",
                    first.r#type().as_str(),
                    target_of(first),
                    other.r#type().as_str(),
                    target_of(other),
                ),
            ));
        }
        let rank = |t: &RrType| match t {
            RrType::A => 0,
            RrType::Aaaa => 1,
            RrType::Cname => 2,
            _ => 3,
        };
        Ok(simple
            .into_iter()
            .min_by_key(|r| rank(r.r#type()))
            .map(target_of))
    }

    async fn point_record(&self, name: &str, target: &DnsTarget) -> Result<ChangeId> {
        if normalize(name).is_empty() {
            return Err(Error::invalid("record name", "must not be empty"));
        }
        let record = simple_record(name, target)?;
        let mut records = vec![record.clone()];
        if matches!(target, DnsTarget::Alias { .. }) {
            // A dual-stack name also has an AAAA alias: move it in the same change
            // batch (applied atomically), or IPv6 clients keep reaching the version
            // being rolled back.
            let existing = self.records_named(name).await?;
            if existing
                .iter()
                .any(|r| is_address_alias(r) && r.r#type() == &RrType::Aaaa)
            {
                let mut aaaa = record;
                aaaa.r#type = RrType::Aaaa;
                records.push(aaaa);
            }
        }
        self.upsert(&format!("record {name} -> {target}"), records)
            .await
    }

    async fn change_status(&self, change: &ChangeId) -> Result<ChangeStatus> {
        let out = self
            .client
            .get_change()
            .id(change.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("change {change}"), e))?;
        let info = out
            .change_info()
            .ok_or_else(|| missing(self, format!("change {change}")))?;
        Ok(match info.status() {
            aws_sdk_route53::types::ChangeStatus::Insync => ChangeStatus::InSync,
            _ => ChangeStatus::Pending,
        })
    }

    async fn wait_in_sync(&self, change: &ChangeId) -> Result<()> {
        let what = format!("{self}: change {change}");
        poll_until(
            &what,
            || self.change_status(change),
            &conditions::change_in_sync,
            &self.wait,
        )
        .await
        .map(|_| ())
    }

    async fn region_weights(&self, name: &str) -> Result<Vec<RegionWeight>> {
        let records = self.records_named(name).await?;
        let mut out: Vec<RegionWeight> = Vec::new();
        for r in &records {
            let (Some(id), Some(weight)) = (r.set_identifier(), r.weight()) else {
                continue;
            };
            let Ok(region) = Region::new(id) else {
                continue;
            };
            if !out.iter().any(|w| w.region == region) {
                out.push(RegionWeight {
                    region,
                    weight: u32::try_from(weight).unwrap_or(0),
                });
            }
        }
        if out.is_empty() {
            return Err(missing(self, format!("weighted record set {name}")));
        }
        Ok(out)
    }

    async fn set_region_weight(
        &self,
        name: &str,
        region: &Region,
        weight: u32,
    ) -> Result<ChangeId> {
        if weight > MAX_WEIGHT {
            return Err(Error::invalid(
                "weight",
                format!("{weight} is above the Route53 maximum {MAX_WEIGHT}"),
            ));
        }
        let records: Vec<ResourceRecordSet> = self
            .records_named(name)
            .await?
            .into_iter()
            .filter(|r| r.set_identifier() == Some(region.as_str()) && r.weight().is_some())
            .map(|mut r| {
                r.weight = Some(i64::from(weight));
                r
            })
            .collect();
        if records.is_empty() {
            return Err(missing(
                self,
                format!("weighted record {name} for region {region}"),
            ));
        }
        self.upsert(
            &format!("weight of {region} in {name} -> {weight}"),
            records,
        )
        .await
    }
}

/// A simple (not weighted) A or AAAA record that is an alias.
fn is_address_alias(r: &ResourceRecordSet) -> bool {
    r.set_identifier().is_none()
        && matches!(r.r#type(), RrType::A | RrType::Aaaa)
        && r.alias_target().is_some()
}

/// Whether two alias records reach the same target. ELB aliases may carry the
/// `dualstack.` prefix (the console adds it) or not, and may evaluate health
/// differently: either way clients reach the same balancer.
fn same_alias(a: &ResourceRecordSet, b: &ResourceRecordSet) -> bool {
    let key = |r: &ResourceRecordSet| {
        r.alias_target().map(|t| {
            let name = normalize(t.dns_name());
            let name = name
                .strip_prefix("dualstack.")
                .map(str::to_owned)
                .unwrap_or(name);
            (t.hosted_zone_id().to_ascii_uppercase(), name)
        })
    };
    key(a) == key(b)
}

/// Route53 names: case-insensitive, optional final dot, `\052` for `*`.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.')
        .replace("\\052", "*")
        .to_ascii_lowercase()
}

fn target_of(r: &ResourceRecordSet) -> DnsTarget {
    match r.alias_target() {
        Some(a) => DnsTarget::Alias {
            hosted_zone_id: a.hosted_zone_id().to_owned(),
            dns_name: a.dns_name().trim_end_matches('.').to_owned(),
            evaluate_target_health: a.evaluate_target_health(),
        },
        None => DnsTarget::Values {
            record_type: r.r#type().as_str().to_owned(),
            ttl: r.ttl().and_then(|t| u32::try_from(t).ok()).unwrap_or(0),
            values: r
                .resource_records()
                .iter()
                .map(|v| v.value().to_owned())
                .collect(),
        },
    }
}

fn simple_record(name: &str, target: &DnsTarget) -> Result<ResourceRecordSet> {
    let invalid = |e: aws_smithy_types::error::operation::BuildError| {
        Error::invalid("dns target", e.to_string())
    };
    let record = match target {
        DnsTarget::Alias {
            hosted_zone_id,
            dns_name,
            evaluate_target_health,
        } => {
            if hosted_zone_id.is_empty() || dns_name.is_empty() {
                return Err(Error::invalid(
                    "dns target",
                    "an alias needs a DNS name and a hosted zone id",
                ));
            }
            ResourceRecordSet::builder()
                .name(name)
                .r#type(RrType::A)
                .alias_target(
                    AliasTarget::builder()
                        .hosted_zone_id(hosted_zone_id)
                        .dns_name(dns_name)
                        .evaluate_target_health(*evaluate_target_health)
                        .build()
                        .map_err(invalid)?,
                )
                .build()
                .map_err(invalid)?
        }
        DnsTarget::Values {
            record_type,
            ttl,
            values,
        } => {
            if values.is_empty() || record_type.is_empty() {
                return Err(Error::invalid(
                    "dns target",
                    "a record needs a type and at least one value",
                ));
            }
            let mut b = ResourceRecordSet::builder()
                .name(name)
                .r#type(RrType::from(record_type.to_ascii_uppercase().as_str()))
                .ttl(i64::from(*ttl));
            for v in values {
                b = b.resource_records(
                    ResourceRecord::builder()
                        .value(v)
                        .build()
                        .map_err(invalid)?,
                );
            }
            b.build().map_err(invalid)?
        }
    };
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize() {
        assert_eq!(normalize("API.MeshOS.io."), "api.meshos.io");
        assert_eq!(normalize("\\052.meshos.io."), "*.meshos.io");
    }

    #[test]
    fn dual_stack_aliases_compare_by_balancer() {
        let rec = |kind: RrType, zone: &str, dns: &str, health: bool| {
            ResourceRecordSet::builder()
                .name("api.meshos.io")
                .r#type(kind)
                .alias_target(
                    AliasTarget::builder()
                        .hosted_zone_id(zone)
                        .dns_name(dns)
                        .evaluate_target_health(health)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        };
        let a = rec(
            RrType::A,
            "Z35SXDOTRQ7X7K",
            "dualstack.Old-ALB-1.elb.amazonaws.com.",
            true,
        );
        let aaaa = rec(
            RrType::Aaaa,
            "z35sxdotrq7x7k",
            "old-alb-1.elb.amazonaws.com",
            false,
        );
        assert!(is_address_alias(&a) && is_address_alias(&aaaa));
        assert!(
            same_alias(&a, &aaaa),
            "prefix, case, final dot and health aside"
        );
        let other = rec(
            RrType::Aaaa,
            "Z35SXDOTRQ7X7K",
            "new-alb-2.elb.amazonaws.com",
            true,
        );
        assert!(!same_alias(&a, &other));
        let mut weighted = a.clone();
        weighted.set_identifier = Some("us-east-1".into());
        assert!(
            !is_address_alias(&weighted),
            "weighted records are not simple"
        );
    }

    #[test]
    fn alias_record_is_the_playbooks_json() {
        let t = DnsTarget::Alias {
            hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
            dns_name: "previous-alb-123.us-east-1.elb.amazonaws.com".into(),
            evaluate_target_health: true,
        };
        let r = simple_record("api.meshos.io", &t).unwrap();
        assert_eq!(r.name(), "api.meshos.io");
        assert_eq!(r.r#type(), &RrType::A);
        assert!(r.set_identifier().is_none() && r.ttl().is_none());
        assert_eq!(target_of(&r), t);
        let v = DnsTarget::Values {
            record_type: "cname".into(),
            ttl: 60,
            values: vec!["old.meshos.io".into()],
        };
        let r = simple_record("www.meshos.io", &v).unwrap();
        assert_eq!(r.r#type(), &RrType::Cname);
        assert_eq!(
            target_of(&r),
            DnsTarget::Values {
                record_type: "CNAME".into(),
                ttl: 60,
                values: vec!["old.meshos.io".into()]
            }
        );
        let empty = DnsTarget::Values {
            record_type: "A".into(),
            ttl: 60,
            values: vec![],
        };
        assert!(simple_record("x", &empty).is_err());
    }
}
