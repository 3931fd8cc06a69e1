//! [`RdsRestorer`]: restore an RDS instance from a snapshot or to a point in time,
//! always into a NEW instance (the playbook's `restore-db-instance-from-db-snapshot`
//! and `restore-db-instance-to-point-in-time`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types::DbInstance as SdkInstance;
use aws_types::SdkConfig;
use jiff::{SignedDuration, Timestamp};
use meshos_rollback_core::provider::{
    DbCapabilities, DbEndpoint, DbInstance, DbInstanceId, DbRestorer, DbStatus, ResourceTags,
    RestorePoint, RestoreWindow, Snapshot, SnapshotId, SnapshotKind,
};
use meshos_rollback_core::wait::{Backoff, conditions, poll_until};
use meshos_rollback_core::{Error, Result};

use crate::error::{from_sdk, missing};
use crate::sdk::{date_time, prepare_client, timestamp};

/// Builds an [`RdsRestorer`].
#[derive(Debug)]
pub struct RdsRestorerBuilder {
    client: aws_sdk_rds::Client,
    wait: Backoff,
}

impl RdsRestorerBuilder {
    /// A restorer using a client built from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(aws_sdk_rds::Client::new(config))
    }

    /// A restorer using an existing RDS client.
    pub fn from_client(client: aws_sdk_rds::Client) -> Self {
        RdsRestorerBuilder {
            client,
            wait: RdsRestorer::default_wait(),
        }
    }

    /// Sets how [`DbRestorer::wait_available`] polls.
    pub fn with_wait(mut self, wait: Backoff) -> Self {
        self.wait = wait;
        self
    }

    /// Checks the configuration (region, HTTP client).
    pub fn build(self) -> Result<RdsRestorer> {
        let (client, region) = prepare_client!("RdsRestorer", self.client, aws_sdk_rds);
        Ok(RdsRestorer {
            client,
            region,
            wait: self.wait,
        })
    }
}

/// A [`DbRestorer`] for RDS DB instances in one region.
///
/// * Snapshots (automated and manual) are listed newest first.
/// * Restores always create a new instance; an identifier that exists is a
///   [`Conflict`](Error::Conflict) (RDS's `DBInstanceAlreadyExists`). The source
///   instance and its snapshots are only read, never modified.
/// * The new instance gets the source's subnet group, security groups, instance
///   class, Multi-AZ and public-access settings and custom parameter group (RDS
///   would otherwise restore into the default security group and subnet group).
/// * The restorable window is RDS's own (`DescribeDBInstanceAutomatedBackups`); where
///   that API gives none, it is derived from the instance's creation time, backup
///   retention period and latest restorable time. A time outside it is refused
///   before anything is created.
#[derive(Debug)]
pub struct RdsRestorer {
    client: aws_sdk_rds::Client,
    region: String,
    wait: Backoff,
}

/// Settings of the source instance a restore carries over.
#[derive(Debug, Default)]
struct Placement {
    subnet_group: Option<String>,
    security_groups: Option<Vec<String>>,
    parameter_group: Option<String>,
    class: Option<String>,
    multi_az: Option<bool>,
    public: Option<bool>,
}

impl RdsRestorer {
    /// Starts building a restorer from an SDK configuration.
    pub fn builder(config: &SdkConfig) -> RdsRestorerBuilder {
        RdsRestorerBuilder::new(config)
    }

    /// The default polling of [`DbRestorer::wait_available`]: 10 s, doubling to 30 s,
    /// at most 240 checks (about 2 hours; restores take 10 to 60 minutes).
    pub fn default_wait() -> Backoff {
        Backoff {
            initial: Duration::from_secs(10),
            factor: 2.0,
            max_interval: Duration::from_secs(30),
            max_checks: Some(240),
        }
    }

    async fn describe(&self, id: &str) -> Result<SdkInstance> {
        let out = self
            .client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("database {id}"), e))?;
        out.db_instances()
            .first()
            .cloned()
            .ok_or_else(|| missing(self, format!("database {id}")))
    }

    async fn window_of(&self, inst: &SdkInstance) -> Result<RestoreWindow> {
        let id = inst.db_instance_identifier().unwrap_or_default();
        if inst.backup_retention_period().unwrap_or(0) == 0 {
            return Err(Error::conflict(
                self,
                format!("database {id} keeps no automated backups: it has no restorable window"),
            ));
        }
        let out = self
            .client
            .describe_db_instance_automated_backups()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("automated backups of {id}"), e))?;
        let reported = out
            .db_instance_automated_backups()
            .iter()
            .filter(|b| b.status() == Some("active"))
            .find_map(|b| b.restore_window())
            .and_then(|w| {
                Some(RestoreWindow {
                    earliest: timestamp(w.earliest_time()?)?,
                    latest: timestamp(w.latest_time()?)?,
                })
            });
        if let Some(w) = reported {
            return Ok(w);
        }
        derived_window(inst).ok_or_else(|| {
            Error::conflict(
                self,
                format!("database {id} has no restorable time yet (no backup has completed)"),
            )
        })
    }

    async fn placement_of(&self, id: &str) -> Result<Placement> {
        match self.describe(id).await {
            Ok(inst) => Ok(placement(&inst)),
            // The snapshot's instance may be gone: restore with the snapshot's settings.
            Err(e) if e.is_not_found() => Ok(Placement::default()),
            Err(e) => Err(e),
        }
    }
}

impl fmt::Display for RdsRestorer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RdsRestorer({})", self.region)
    }
}

#[async_trait]
impl DbRestorer for RdsRestorer {
    fn capabilities(&self) -> DbCapabilities {
        DbCapabilities {
            snapshot_restore: true,
            point_in_time_restore: true,
        }
    }

    async fn snapshots(&self, instance: &DbInstanceId) -> Result<Vec<Snapshot>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_db_snapshots()
                .db_instance_identifier(instance.as_str())
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| from_sdk(self, format!("snapshots of {instance}"), e))?;
            for s in page.db_snapshots() {
                let (Some(id), Some(created)) = (
                    s.db_snapshot_identifier(),
                    s.snapshot_create_time()
                        .or(s.original_snapshot_create_time())
                        .and_then(timestamp),
                ) else {
                    // Still being created: no time yet, not restorable either.
                    continue;
                };
                out.push(Snapshot {
                    id: SnapshotId::new(id),
                    instance: DbInstanceId::new(
                        s.db_instance_identifier().unwrap_or(instance.as_str()),
                    ),
                    created_at: created,
                    kind: if s.snapshot_type() == Some("automated") {
                        SnapshotKind::Automated
                    } else {
                        SnapshotKind::Manual
                    },
                    available: s.status() == Some("available"),
                });
            }
            match page.marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        if out.is_empty() {
            // RDS lists no snapshots for an unknown instance: say which it is.
            self.describe(instance.as_str()).await?;
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(out)
    }

    async fn restore_window(&self, instance: &DbInstanceId) -> Result<RestoreWindow> {
        let inst = self.describe(instance.as_str()).await?;
        self.window_of(&inst).await
    }

    async fn restore_snapshot(
        &self,
        snapshot: &SnapshotId,
        target: &DbInstanceId,
        tags: &ResourceTags,
    ) -> Result<DbInstance> {
        check_identifier(target)?;
        let snaps = self
            .client
            .describe_db_snapshots()
            .db_snapshot_identifier(snapshot.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("snapshot {snapshot}"), e))?;
        let snap = snaps
            .db_snapshots()
            .first()
            .ok_or_else(|| missing(self, format!("snapshot {snapshot}")))?;
        if snap.status() != Some("available") {
            return Err(Error::conflict(
                self,
                format!(
                    "snapshot {snapshot} is {}, not available",
                    snap.status().unwrap_or("in an unknown state")
                ),
            ));
        }
        let place = match snap.db_instance_identifier() {
            Some(source) => self.placement_of(source).await?,
            None => Placement::default(),
        };
        let out = self
            .client
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(target.as_str())
            .db_snapshot_identifier(snapshot.as_str())
            .set_db_subnet_group_name(place.subnet_group)
            .set_vpc_security_group_ids(place.security_groups)
            .set_db_parameter_group_name(place.parameter_group)
            .set_db_instance_class(place.class)
            .set_multi_az(place.multi_az)
            .set_publicly_accessible(place.public)
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("restore of {snapshot} into {target}"), e))?;
        let inst = out.db_instance().ok_or_else(|| {
            Error::failed(self, "RestoreDBInstanceFromDBSnapshot returned no instance")
        })?;
        Ok(instance_of(target, inst))
    }

    async fn restore_to_point_in_time(
        &self,
        source: &DbInstanceId,
        target: &DbInstanceId,
        point: &RestorePoint,
        tags: &ResourceTags,
    ) -> Result<DbInstance> {
        check_identifier(target)?;
        let inst = self.describe(source.as_str()).await?;
        let window = self.window_of(&inst).await?;
        if let RestorePoint::At(t) = point
            && !window.contains(*t)
        {
            return Err(Error::invalid(
                "restore time",
                format!(
                    "{t} is outside the restorable window of {source} ({} to {})",
                    window.earliest, window.latest
                ),
            ));
        }
        let place = placement(&inst);
        let mut req = self
            .client
            .restore_db_instance_to_point_in_time()
            .source_db_instance_identifier(source.as_str())
            .target_db_instance_identifier(target.as_str())
            .set_db_subnet_group_name(place.subnet_group)
            .set_vpc_security_group_ids(place.security_groups)
            .set_db_parameter_group_name(place.parameter_group)
            .set_db_instance_class(place.class)
            .set_multi_az(place.multi_az)
            .set_publicly_accessible(place.public)
            .set_tags(Some(sdk_tags(tags)));
        req = match point {
            RestorePoint::Latest => req.use_latest_restorable_time(true),
            RestorePoint::At(t) => req.restore_time(date_time(*t)),
        };
        let out = req.send().await.map_err(|e| {
            from_sdk(
                self,
                format!("restore of {source} at {point} into {target}"),
                e,
            )
        })?;
        let inst = out.db_instance().ok_or_else(|| {
            Error::failed(self, "RestoreDBInstanceToPointInTime returned no instance")
        })?;
        Ok(instance_of(target, inst))
    }

    async fn instance(&self, id: &DbInstanceId) -> Result<DbInstance> {
        let inst = self.describe(id.as_str()).await?;
        Ok(instance_of(id, &inst))
    }

    async fn wait_available(&self, id: &DbInstanceId) -> Result<DbInstance> {
        let what = format!("{self}: database {id}");
        poll_until(
            &what,
            || self.instance(id),
            &conditions::db_available,
            &self.wait,
        )
        .await
    }
}

fn placement(inst: &SdkInstance) -> Placement {
    let groups: Vec<String> = inst
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
        .collect();
    Placement {
        subnet_group: inst
            .db_subnet_group()
            .and_then(|g| g.db_subnet_group_name())
            .map(str::to_owned),
        security_groups: (!groups.is_empty()).then_some(groups),
        // Default groups are what RDS picks anyway; only a custom one must be named.
        parameter_group: inst
            .db_parameter_groups()
            .iter()
            .filter_map(|g| g.db_parameter_group_name())
            .find(|n| !n.starts_with("default."))
            .map(str::to_owned),
        class: inst.db_instance_class().map(str::to_owned),
        multi_az: inst.multi_az(),
        public: inst.publicly_accessible(),
    }
}

/// The window from the instance alone: from its creation (or the start of the
/// retention period) to its latest restorable time.
fn derived_window(inst: &SdkInstance) -> Option<RestoreWindow> {
    let latest = inst.latest_restorable_time().and_then(timestamp)?;
    let retention_days = i64::from(inst.backup_retention_period().unwrap_or(0).max(0));
    let oldest = latest
        .checked_sub(SignedDuration::from_hours(24 * retention_days))
        .unwrap_or(Timestamp::MIN);
    let created = inst.instance_create_time().and_then(timestamp);
    Some(RestoreWindow {
        earliest: created.map_or(oldest, |c| c.max(oldest)).min(latest),
        latest,
    })
}

fn status_of(s: &str) -> DbStatus {
    match s {
        "available" => DbStatus::Available,
        "creating" => DbStatus::Creating,
        "failed"
        | "restore-error"
        | "incompatible-restore"
        | "incompatible-parameters"
        | "incompatible-network"
        | "incompatible-option-group"
        | "inaccessible-encryption-credentials" => DbStatus::Failed,
        "modifying"
        | "backing-up"
        | "renaming"
        | "rebooting"
        | "upgrading"
        | "maintenance"
        | "storage-optimization"
        | "resetting-master-credentials"
        | "configuring-enhanced-monitoring"
        | "configuring-iam-database-auth"
        | "configuring-log-exports"
        | "converting-to-vpc"
        | "moving-to-vpc" => DbStatus::Modifying,
        other => DbStatus::Other(other.to_owned()),
    }
}

/// The run's tags, as RDS takes them on a restore (`Tags.member.N`).
fn sdk_tags(tags: &ResourceTags) -> Vec<aws_sdk_rds::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect()
}

fn instance_of(id: &DbInstanceId, inst: &SdkInstance) -> DbInstance {
    let status = status_of(inst.db_instance_status().unwrap_or("creating"));
    let endpoint = inst.endpoint().and_then(|e| {
        Some(DbEndpoint {
            host: e.address()?.to_owned(),
            port: u16::try_from(e.port()?).ok()?,
        })
    });
    DbInstance {
        id: inst
            .db_instance_identifier()
            .map_or_else(|| id.clone(), DbInstanceId::new),
        status,
        endpoint,
        tags: inst
            .tag_list()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
    }
}

/// RDS identifiers: 1-63 letters, digits and hyphens, starting with a letter, no `--`,
/// not ending in `-`.
fn check_identifier(id: &DbInstanceId) -> Result<()> {
    let s = id.as_str();
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "target database identifier",
            format!("{s:?}: use 1-63 letters, digits and single hyphens, starting with a letter"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::types::Endpoint;

    #[test]
    fn statuses_map() {
        assert_eq!(status_of("available"), DbStatus::Available);
        assert_eq!(status_of("creating"), DbStatus::Creating);
        assert_eq!(status_of("incompatible-restore"), DbStatus::Failed);
        assert_eq!(status_of("backing-up"), DbStatus::Modifying);
        assert_eq!(status_of("stopped"), DbStatus::Other("stopped".into()));
    }

    #[test]
    fn window_derives_from_retention_and_creation() {
        let latest: Timestamp = "2025-10-30T10:00:00Z".parse().unwrap();
        let inst = SdkInstance::builder()
            .db_instance_identifier("db")
            .backup_retention_period(7)
            .latest_restorable_time(date_time(latest))
            .instance_create_time(date_time("2025-01-01T00:00:00Z".parse().unwrap()))
            .build();
        let w = derived_window(&inst).unwrap();
        assert_eq!(w.latest, latest);
        assert_eq!(w.earliest, "2025-10-23T10:00:00Z".parse().unwrap());
        let young = SdkInstance::builder()
            .backup_retention_period(7)
            .latest_restorable_time(date_time(latest))
            .instance_create_time(date_time("2025-10-30T09:00:00Z".parse().unwrap()))
            .build();
        assert_eq!(
            derived_window(&young).unwrap().earliest,
            "2025-10-30T09:00:00Z".parse().unwrap()
        );
        let no_backup = SdkInstance::builder().backup_retention_period(7).build();
        assert!(derived_window(&no_backup).is_none());
    }

    #[test]
    fn endpoint_only_when_known() {
        let creating = SdkInstance::builder()
            .db_instance_identifier("db-restored")
            .db_instance_status("creating")
            .build();
        let i = instance_of(&"db-restored".into(), &creating);
        assert_eq!(i.status, DbStatus::Creating);
        assert!(i.endpoint.is_none());
        let ready = SdkInstance::builder()
            .db_instance_identifier("db-restored")
            .db_instance_status("available")
            .endpoint(
                Endpoint::builder()
                    .address("db-restored.abc.rds.amazonaws.com")
                    .port(5432)
                    .build(),
            )
            .build();
        let i = instance_of(&"db-restored".into(), &ready);
        assert_eq!(
            i.endpoint.unwrap().to_string(),
            "db-restored.abc.rds.amazonaws.com:5432"
        );
    }

    #[test]
    fn identifiers_are_checked() {
        for ok in ["meshos-db-us-east-1-restored", "a"] {
            assert!(check_identifier(&ok.into()).is_ok(), "{ok}");
        }
        for bad in ["", "1db", "db-", "db--x", "db_x"] {
            assert!(check_identifier(&bad.into()).is_err(), "{bad}");
        }
    }
}
