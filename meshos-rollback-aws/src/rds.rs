//! [`RdsRestorer`]: restore an RDS instance or Aurora cluster from a snapshot or to a
//! point in time, always into a NEW instance or cluster (the playbook's
//! `restore-db-instance-from-db-snapshot`, `restore-db-instance-to-point-in-time` and
//! their `db-cluster` forms).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types::{
    DbCluster, DbClusterSnapshot, DbInstance as SdkInstance, DbSnapshot, Tag,
    VpcSecurityGroupMembership,
};
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

/// Where a restore lands when its source is gone (restore after deletion): RDS would
/// otherwise put it in the default VPC with the default security group, where the
/// application cannot reach it (and which may be publicly accessible).
///
/// ```
/// use meshos_rollback_aws::rds::Placement;
/// let place = Placement::new("meshos-db-private", ["sg-0123456789abcdef0"])
///     .with_instance_class("db.r6g.large");
/// assert!(!place.publicly_accessible);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The DB subnet group (`DBSubnetGroupName`).
    pub subnet_group: String,
    /// The VPC security group ids (`VpcSecurityGroupIds`); at least one.
    pub security_groups: Vec<String>,
    /// Sent as `PubliclyAccessible`; `false` unless set.
    pub publicly_accessible: bool,
    /// The instance class; required for an Aurora cluster whose source is gone (its
    /// writer instance is created with it). An instance restore without it keeps the
    /// snapshot's class.
    pub instance_class: Option<String>,
}

impl Placement {
    /// A private placement in `subnet_group` behind `security_groups`.
    pub fn new(
        subnet_group: impl Into<String>,
        security_groups: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Placement {
            subnet_group: subnet_group.into(),
            security_groups: security_groups.into_iter().map(Into::into).collect(),
            publicly_accessible: false,
            instance_class: None,
        }
    }

    /// Sets the instance class (see [`Placement::instance_class`]).
    pub fn with_instance_class(mut self, class: impl Into<String>) -> Self {
        self.instance_class = Some(class.into());
        self
    }

    /// Sets `PubliclyAccessible`.
    pub fn with_public_access(mut self, public: bool) -> Self {
        self.publicly_accessible = public;
        self
    }
}

/// Builds an [`RdsRestorer`].
#[derive(Debug)]
pub struct RdsRestorerBuilder {
    client: aws_sdk_rds::Client,
    wait: Backoff,
    placement: Option<Placement>,
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
            placement: None,
        }
    }

    /// Sets how [`DbRestorer::wait_available`] polls.
    pub fn with_wait(mut self, wait: Backoff) -> Self {
        self.wait = wait;
        self
    }

    /// Sets where a restore goes when the snapshot's source no longer exists. Without
    /// it such a restore is refused; while the source exists its placement is used.
    pub fn with_placement(mut self, placement: Placement) -> Self {
        self.placement = Some(placement);
        self
    }

    /// Checks the configuration (region, HTTP client, placement).
    pub fn build(self) -> Result<RdsRestorer> {
        if let Some(p) = &self.placement
            && (p.subnet_group.trim().is_empty()
                || p.security_groups.is_empty()
                || p.security_groups.iter().any(|g| g.trim().is_empty()))
        {
            return Err(Error::invalid(
                "placement",
                "name a DB subnet group and at least one VPC security group",
            ));
        }
        let (client, region) = prepare_client!("RdsRestorer", self.client, aws_sdk_rds);
        Ok(RdsRestorer {
            client,
            region,
            wait: self.wait,
            placement: self.placement,
        })
    }
}

/// A [`DbRestorer`] for RDS DB instances and Aurora DB clusters in one region.
///
/// * A [`DbInstanceId`] names a DB instance or, when no instance has that name (or
///   the instance of that name is a member of the cluster of that name), an Aurora
///   DB cluster. Identifiers are case-insensitive, as in RDS: they are sent and
///   returned in lower case.
/// * Snapshots (automated and manual; DB snapshots or DB cluster snapshots) are
///   listed newest first.
/// * Restores always create a new instance or cluster; an identifier that exists is
///   a [`Conflict`](Error::Conflict). The source and its snapshots are only read,
///   never modified.
/// * The restore request carries what RDS does not copy by itself: subnet group,
///   security groups, instance class, Multi-AZ and public access, custom parameter
///   and option groups, IAM database authentication, deletion protection, storage
///   type / IOPS / throughput, CloudWatch log exports, the CA certificate, and the
///   source's tags (`aws:` tags excepted) merged with the run's tags (which win). They
///   come from the source, or, when it is gone, from the snapshot's recorded
///   settings (IAM authentication, storage, option group, tags) and the builder's
///   [`Placement`]; without a placement such a restore is a
///   [`Precondition`](Error::Precondition) error and nothing is created.
/// * An Aurora cluster is restored with `RestoreDBClusterFromSnapshot` or
///   `RestoreDBClusterToPointInTime`, then its writer `<target>-writer` is created
///   with the class of the source's writer. It is available when both the cluster
///   and the writer are; its endpoint is the cluster (writer) endpoint.
/// * The restorable window is RDS's own (`DescribeDBInstanceAutomatedBackups`, or the
///   cluster's earliest and latest restorable times); where that API gives none, it
///   is derived from the instance's creation time, backup retention period and latest
///   restorable time. A time outside it is refused before anything is created.
#[derive(Debug)]
pub struct RdsRestorer {
    client: aws_sdk_rds::Client,
    region: String,
    wait: Backoff,
    placement: Option<Placement>,
}

/// What a restore request carries over from the source (or its snapshot), because
/// RDS would otherwise use its defaults.
#[derive(Debug, Default, Clone)]
struct Carried {
    subnet_group: Option<String>,
    security_groups: Option<Vec<String>>,
    parameter_group: Option<String>,
    cluster_parameter_group: Option<String>,
    option_group: Option<String>,
    class: Option<String>,
    multi_az: Option<bool>,
    public: Option<bool>,
    iam_auth: Option<bool>,
    deletion_protection: Option<bool>,
    storage_type: Option<String>,
    iops: Option<i32>,
    storage_throughput: Option<i32>,
    log_exports: Option<Vec<String>>,
    ca_certificate: Option<String>,
    engine: Option<String>,
    tags: ResourceTags,
}

/// What a [`DbInstanceId`] names.
enum Source {
    Instance(Box<SdkInstance>),
    Cluster(Box<DbCluster>),
}

/// Applies [`Carried`] and the tags to an instance restore request (the two restore
/// builders are different types with the same setters).
macro_rules! carry_instance {
    ($req:expr, $c:expr, $tags:expr) => {{
        let c: Carried = $c;
        $req.set_db_subnet_group_name(c.subnet_group)
            .set_vpc_security_group_ids(c.security_groups)
            .set_db_parameter_group_name(c.parameter_group)
            .set_option_group_name(c.option_group)
            .set_db_instance_class(c.class)
            .set_multi_az(c.multi_az)
            .set_publicly_accessible(c.public)
            .set_enable_iam_database_authentication(c.iam_auth)
            .set_deletion_protection(c.deletion_protection)
            .set_storage_type(c.storage_type)
            .set_iops(c.iops)
            .set_storage_throughput(c.storage_throughput)
            .set_enable_cloudwatch_logs_exports(c.log_exports)
            .set_ca_certificate_identifier(c.ca_certificate)
            .set_tags(Some(sdk_tags(&merged_tags(c.tags, $tags))))
    }};
}

/// The same for a cluster restore request. The CA certificate, class and public
/// access belong to the writer instance, not the cluster.
macro_rules! carry_cluster {
    ($req:expr, $c:expr, $tags:expr) => {{
        let c: &Carried = $c;
        $req.set_db_subnet_group_name(c.subnet_group.clone())
            .set_vpc_security_group_ids(c.security_groups.clone())
            .set_db_cluster_parameter_group_name(c.cluster_parameter_group.clone())
            .set_enable_iam_database_authentication(c.iam_auth)
            .set_deletion_protection(c.deletion_protection)
            .set_storage_type(c.storage_type.clone())
            .set_iops(c.iops)
            .set_enable_cloudwatch_logs_exports(c.log_exports.clone())
            .set_tags(Some(sdk_tags(&merged_tags(c.tags.clone(), $tags))))
    }};
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

    async fn find_instance(&self, id: &str) -> Result<Option<SdkInstance>> {
        match self.describe(id).await {
            Ok(i) => Ok(Some(i)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn find_cluster(&self, id: &str) -> Result<Option<DbCluster>> {
        match self
            .client
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("database cluster {id}"), e))
        {
            Ok(out) => Ok(out.db_clusters().first().cloned()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The instance or cluster `id` names (already lower case).
    async fn source(&self, id: &str) -> Result<Source> {
        let inst = self.find_instance(id).await?;
        // A cluster's writer may carry the cluster's own name: then the name means
        // the cluster, as the playbook restores clusters, not their members.
        let member_of_namesake = inst.as_ref().is_some_and(|i| {
            i.db_cluster_identifier()
                .is_some_and(|c| c.eq_ignore_ascii_case(id))
        });
        if let Some(i) = &inst
            && !member_of_namesake
        {
            return Ok(Source::Instance(Box::new(i.clone())));
        }
        match (self.find_cluster(id).await?, inst) {
            (Some(c), _) => Ok(Source::Cluster(Box::new(c))),
            (None, Some(i)) => Ok(Source::Instance(Box::new(i))),
            (None, None) => Err(missing(self, format!("database {id}"))),
        }
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

    fn cluster_window(&self, c: &DbCluster) -> Result<RestoreWindow> {
        let window = c
            .earliest_restorable_time()
            .and_then(timestamp)
            .zip(c.latest_restorable_time().and_then(timestamp));
        match window {
            Some((earliest, latest)) => Ok(RestoreWindow {
                earliest: earliest.min(latest),
                latest,
            }),
            None => Err(Error::conflict(
                self,
                format!(
                    "database cluster {} has no restorable time yet",
                    c.db_cluster_identifier().unwrap_or_default()
                ),
            )),
        }
    }

    /// The settings a restore of `snapshot` (taken of `source`) carries: the
    /// source's while it exists, else the snapshot's and the configured placement.
    async fn carried_for_snapshot(
        &self,
        snap: &DbSnapshot,
        target: &DbInstanceId,
    ) -> Result<Carried> {
        let source = snap.db_instance_identifier().map(str::to_ascii_lowercase);
        if let Some(source) = &source
            && let Some(inst) = self.find_instance(source).await?
        {
            return Ok(Carried::from_instance(&inst));
        }
        let place = self.placement_for(source.as_deref(), target, false)?;
        Ok(Carried::from_snapshot(snap, place))
    }

    /// The configured placement, or the refusal to restore into RDS's defaults.
    fn placement_for(
        &self,
        source: Option<&str>,
        target: &DbInstanceId,
        cluster: bool,
    ) -> Result<&Placement> {
        let source = source.map_or_else(
            || "the snapshot's source database is unknown".to_owned(),
            |s| format!("the snapshot's source database {s} no longer exists"),
        );
        let Some(place) = &self.placement else {
            return Err(Error::precondition(
                format!("{self}: placement of {target}"),
                format!(
                    "{source}, so RDS would put {target} in the default VPC with the default \
                     security group (perhaps publicly accessible), out of the application's \
                     reach: set the DB subnet group and VPC security groups with \
                     RdsRestorerBuilder::with_placement(Placement::new(subnet_group, \
                     security_groups)){}",
                    if cluster {
                        " and the writer's instance class (Placement::with_instance_class)"
                    } else {
                        ""
                    }
                ),
            ));
        };
        if cluster && place.instance_class.is_none() {
            return Err(Error::precondition(
                format!("{self}: placement of {target}"),
                format!(
                    "{source}, so the instance class of the writer of cluster {target} is \
                     unknown: set it with Placement::with_instance_class"
                ),
            ));
        }
        Ok(place)
    }

    async fn writer_of(&self, c: &DbCluster) -> Result<Option<SdkInstance>> {
        let Some(w) = c
            .db_cluster_members()
            .iter()
            .find(|m| m.is_cluster_writer() == Some(true))
            .and_then(|m| m.db_instance_identifier())
        else {
            return Ok(None);
        };
        self.find_instance(&w.to_ascii_lowercase()).await
    }

    /// The settings of a cluster restore from the source cluster and its writer.
    async fn carried_from_cluster(&self, c: &DbCluster) -> Result<Carried> {
        let writer = self.writer_of(c).await?;
        Ok(Carried::from_cluster(c, writer.as_ref()))
    }

    async fn cluster_view(&self, id: &DbInstanceId, c: &DbCluster) -> Result<DbInstance> {
        let mut status = status_of(c.status().unwrap_or("creating"));
        if status == DbStatus::Available {
            // The cluster endpoint answers only once the writer is up.
            status = match self.writer_of(c).await? {
                Some(w) => status_of(w.db_instance_status().unwrap_or("creating")),
                None => DbStatus::Other("no writer instance".to_owned()),
            };
        }
        Ok(cluster_instance(id, c, status))
    }

    /// Refuses a target that names an existing instance or cluster (one namespace for
    /// the playbook, two in RDS).
    async fn check_cluster_target(&self, target: &DbInstanceId) -> Result<String> {
        let writer = writer_id(target)?;
        for (what, exists) in [
            (
                "database cluster",
                self.find_cluster(target.as_str()).await?.is_some(),
            ),
            (
                "database",
                self.find_instance(target.as_str()).await?.is_some(),
            ),
            ("database", self.find_instance(&writer).await?.is_some()),
        ] {
            if exists {
                return Err(Error::conflict(
                    self,
                    format!("{what} {target} (or its writer {writer}) already exists"),
                ));
            }
        }
        Ok(writer)
    }

    /// Creates the writer of a restored cluster.
    async fn create_writer(
        &self,
        cluster: &DbInstanceId,
        writer: &str,
        c: &Carried,
        tags: &ResourceTags,
    ) -> Result<()> {
        self.client
            .create_db_instance()
            .db_instance_identifier(writer)
            .db_cluster_identifier(cluster.as_str())
            .set_engine(c.engine.clone())
            .set_db_instance_class(c.class.clone())
            .set_db_parameter_group_name(c.parameter_group.clone())
            .set_publicly_accessible(c.public)
            .set_ca_certificate_identifier(c.ca_certificate.clone())
            .set_tags(Some(sdk_tags(&merged_tags(c.tags.clone(), tags))))
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("writer {writer} of cluster {cluster}"), e))?;
        Ok(())
    }

    async fn restore_cluster_snapshot(
        &self,
        snap: &DbClusterSnapshot,
        target: &DbInstanceId,
        tags: &ResourceTags,
    ) -> Result<DbInstance> {
        let snapshot = snap.db_cluster_snapshot_identifier().unwrap_or_default();
        if snap.status() != Some("available") {
            return Err(Error::conflict(
                self,
                format!(
                    "cluster snapshot {snapshot} is {}, not available",
                    snap.status().unwrap_or("in an unknown state")
                ),
            ));
        }
        let writer = self.check_cluster_target(target).await?;
        let source = snap.db_cluster_identifier().map(str::to_ascii_lowercase);
        let from_source = match &source {
            Some(s) => self.find_cluster(s).await?,
            None => None,
        };
        let mut carried = match &from_source {
            Some(c) => self.carried_from_cluster(c).await?,
            None => Carried::from_cluster_snapshot(
                snap,
                self.placement_for(source.as_deref(), target, true)?,
            ),
        };
        if carried.class.is_none() {
            carried.class = self
                .placement
                .as_ref()
                .and_then(|p| p.instance_class.clone());
        }
        if carried.class.is_none() {
            return Err(Error::precondition(
                format!("{self}: writer of {target}"),
                "the source cluster has no writer instance to take the class from: set it \
                 with Placement::with_instance_class",
            ));
        }
        carried.engine = carried.engine.or(snap.engine().map(str::to_owned));
        let req = self
            .client
            .restore_db_cluster_from_snapshot()
            .db_cluster_identifier(target.as_str())
            .snapshot_identifier(snapshot)
            .set_engine(carried.engine.clone())
            .set_engine_version(snap.engine_version().map(str::to_owned));
        let out = carry_cluster!(req, &carried, tags)
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("restore of {snapshot} into {target}"), e))?;
        let cluster = out.db_cluster().ok_or_else(|| {
            Error::failed(self, "RestoreDBClusterFromSnapshot returned no cluster")
        })?;
        self.create_writer(target, &writer, &carried, tags).await?;
        Ok(cluster_instance(target, cluster, DbStatus::Creating))
    }

    async fn restore_cluster_to_point_in_time(
        &self,
        c: &DbCluster,
        source: &DbInstanceId,
        target: &DbInstanceId,
        point: &RestorePoint,
        tags: &ResourceTags,
    ) -> Result<DbInstance> {
        let window = self.cluster_window(c)?;
        check_point(source, point, &window)?;
        let writer = self.check_cluster_target(target).await?;
        let carried = self.carried_from_cluster(c).await?;
        if carried.class.is_none() {
            return Err(Error::precondition(
                format!("{self}: writer of {target}"),
                format!("cluster {source} has no writer instance to take the class from"),
            ));
        }
        let mut req = self
            .client
            .restore_db_cluster_to_point_in_time()
            .source_db_cluster_identifier(source.as_str())
            .db_cluster_identifier(target.as_str());
        req = match point {
            RestorePoint::Latest => req.use_latest_restorable_time(true),
            RestorePoint::At(t) => req.restore_to_time(date_time(*t)),
        };
        let out = carry_cluster!(req, &carried, tags)
            .send()
            .await
            .map_err(|e| {
                from_sdk(
                    self,
                    format!("restore of {source} at {point} into {target}"),
                    e,
                )
            })?;
        let cluster = out.db_cluster().ok_or_else(|| {
            Error::failed(self, "RestoreDBClusterToPointInTime returned no cluster")
        })?;
        self.create_writer(target, &writer, &carried, tags).await?;
        Ok(cluster_instance(target, cluster, DbStatus::Creating))
    }

    async fn cluster_snapshots(&self, cluster: &DbInstanceId) -> Result<Vec<Snapshot>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_db_cluster_snapshots()
                .db_cluster_identifier(cluster.as_str())
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| from_sdk(self, format!("snapshots of cluster {cluster}"), e))?;
            for s in page.db_cluster_snapshots() {
                let (Some(id), Some(created)) = (
                    s.db_cluster_snapshot_identifier(),
                    s.snapshot_create_time().and_then(timestamp),
                ) else {
                    continue;
                };
                out.push(Snapshot {
                    id: SnapshotId::new(id.to_ascii_lowercase()),
                    instance: lower_id(s.db_cluster_identifier().unwrap_or(cluster.as_str())),
                    created_at: created,
                    kind: kind_of(s.snapshot_type()),
                    available: s.status() == Some("available"),
                });
            }
            match page.marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        Ok(out)
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
        let instance = &lower(instance);
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
                    id: SnapshotId::new(id.to_ascii_lowercase()),
                    instance: lower_id(s.db_instance_identifier().unwrap_or(instance.as_str())),
                    created_at: created,
                    kind: kind_of(s.snapshot_type()),
                    available: s.status() == Some("available"),
                });
            }
            match page.marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        if out.is_empty() {
            // No DB snapshots: an Aurora cluster keeps DB cluster snapshots. RDS
            // lists nothing for an unknown name either: say which it is.
            match self.source(instance.as_str()).await? {
                Source::Cluster(_) => out = self.cluster_snapshots(instance).await?,
                Source::Instance(_) => {}
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(out)
    }

    async fn restore_window(&self, instance: &DbInstanceId) -> Result<RestoreWindow> {
        match self.source(lower(instance).as_str()).await? {
            Source::Instance(inst) => self.window_of(&inst).await,
            Source::Cluster(c) => self.cluster_window(&c),
        }
    }

    async fn restore_snapshot(
        &self,
        snapshot: &SnapshotId,
        target: &DbInstanceId,
        tags: &ResourceTags,
    ) -> Result<DbInstance> {
        check_identifier(target)?;
        let target = &lower(target);
        let snapshot = &SnapshotId::new(snapshot.as_str().to_ascii_lowercase());
        let found = self
            .client
            .describe_db_snapshots()
            .db_snapshot_identifier(snapshot.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("snapshot {snapshot}"), e));
        let snap = match found {
            Ok(out) => out.db_snapshots().first().cloned(),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let Some(snap) = snap else {
            // Not a DB snapshot: perhaps an Aurora cluster's.
            let found = self
                .client
                .describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier(snapshot.as_str())
                .send()
                .await
                .map_err(|e| from_sdk(self, format!("snapshot {snapshot}"), e));
            return match found {
                Ok(out) => match out.db_cluster_snapshots().first() {
                    Some(cs) => self.restore_cluster_snapshot(cs, target, tags).await,
                    None => Err(missing(self, format!("snapshot {snapshot}"))),
                },
                Err(e) if e.is_not_found() => Err(missing(self, format!("snapshot {snapshot}"))),
                Err(e) => Err(e),
            };
        };
        if snap.status() != Some("available") {
            return Err(Error::conflict(
                self,
                format!(
                    "snapshot {snapshot} is {}, not available",
                    snap.status().unwrap_or("in an unknown state")
                ),
            ));
        }
        let carried = self.carried_for_snapshot(&snap, target).await?;
        let req = self
            .client
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(target.as_str())
            .db_snapshot_identifier(snapshot.as_str());
        let out = carry_instance!(req, carried, tags)
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
        let (source, target) = (&lower(source), &lower(target));
        let inst = match self.source(source.as_str()).await? {
            Source::Instance(inst) => inst,
            Source::Cluster(c) => {
                return self
                    .restore_cluster_to_point_in_time(&c, source, target, point, tags)
                    .await;
            }
        };
        if let Some(cluster) = inst.db_cluster_identifier() {
            return Err(Error::invalid(
                "source database",
                format!("{source} is an instance of Aurora cluster {cluster}: name the cluster"),
            ));
        }
        let window = self.window_of(&inst).await?;
        check_point(source, point, &window)?;
        let req = self
            .client
            .restore_db_instance_to_point_in_time()
            .source_db_instance_identifier(source.as_str())
            .target_db_instance_identifier(target.as_str());
        let mut req = carry_instance!(req, Carried::from_instance(&inst), tags);
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
        let id = &lower(id);
        match self.source(id.as_str()).await? {
            Source::Instance(inst) => Ok(instance_of(id, &inst)),
            Source::Cluster(c) => self.cluster_view(id, &c).await,
        }
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

fn check_point(source: &DbInstanceId, point: &RestorePoint, window: &RestoreWindow) -> Result<()> {
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
    Ok(())
}

/// RDS identifiers are case-insensitive and stored in lower case.
fn lower(id: &DbInstanceId) -> DbInstanceId {
    lower_id(id.as_str())
}

fn lower_id(id: &str) -> DbInstanceId {
    DbInstanceId::new(id.to_ascii_lowercase())
}

/// The writer instance of a restored cluster.
fn writer_id(cluster: &DbInstanceId) -> Result<String> {
    let writer = format!("{cluster}-writer");
    if writer.len() > 63 {
        return Err(Error::invalid(
            "target database identifier",
            format!(
                "{cluster:?}: an Aurora cluster's name may have at most 56 characters, as \
                 its writer instance is named <cluster>-writer"
            ),
        ));
    }
    Ok(writer)
}

fn kind_of(snapshot_type: Option<&str>) -> SnapshotKind {
    if snapshot_type == Some("automated") {
        SnapshotKind::Automated
    } else {
        SnapshotKind::Manual
    }
}

fn group_ids(groups: &[VpcSecurityGroupMembership]) -> Option<Vec<String>> {
    let ids: Vec<String> = groups
        .iter()
        .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
        .collect();
    (!ids.is_empty()).then_some(ids)
}

/// Default groups are what RDS picks anyway; only a custom one must be named.
/// Default parameter groups are `default.<family>`, default option groups
/// `default:<engine>-<major>`, the default subnet group `default`.
fn custom(name: Option<&str>) -> Option<String> {
    name.filter(|n| !n.starts_with("default.") && !n.starts_with("default:") && *n != "default")
        .map(str::to_owned)
}

fn tags_of(list: &[Tag]) -> ResourceTags {
    list.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// The source's tags with the run's on top; `aws:` tags are AWS's own and RDS
/// refuses them in a request.
fn merged_tags(source: ResourceTags, run: &ResourceTags) -> ResourceTags {
    let mut out: ResourceTags = source
        .into_iter()
        .filter(|(k, _)| !k.starts_with("aws:"))
        .collect();
    out.extend(run.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// Whether a restore may name IOPS and throughput: provisioned storage always; gp3
/// only above the engine's baseline size (RDS refuses them below it:
/// "InvalidParameterCombination").
fn provisioned(
    storage_type: Option<&str>,
    engine: Option<&str>,
    allocated_gib: Option<i32>,
) -> bool {
    match storage_type {
        Some("io1" | "io2") => true,
        Some("gp3") => {
            let baseline = match engine.unwrap_or_default() {
                e if e.starts_with("sqlserver") => 0,
                e if e.starts_with("oracle") => 200,
                _ => 400,
            };
            allocated_gib.unwrap_or(0) >= baseline
        }
        _ => false,
    }
}

impl Carried {
    fn from_instance(inst: &SdkInstance) -> Self {
        let provisioned = provisioned(inst.storage_type(), inst.engine(), inst.allocated_storage());
        let logs = inst.enabled_cloudwatch_logs_exports();
        Carried {
            subnet_group: inst
                .db_subnet_group()
                .and_then(|g| g.db_subnet_group_name())
                .map(str::to_owned),
            security_groups: group_ids(inst.vpc_security_groups()),
            parameter_group: inst
                .db_parameter_groups()
                .iter()
                .find_map(|g| custom(g.db_parameter_group_name())),
            option_group: inst
                .option_group_memberships()
                .iter()
                .find_map(|g| custom(g.option_group_name())),
            class: inst.db_instance_class().map(str::to_owned),
            multi_az: inst.multi_az(),
            public: inst.publicly_accessible(),
            iam_auth: inst.iam_database_authentication_enabled(),
            deletion_protection: inst.deletion_protection(),
            storage_type: inst.storage_type().map(str::to_owned),
            iops: inst.iops().filter(|_| provisioned),
            storage_throughput: inst
                .storage_throughput()
                .filter(|_| provisioned && inst.storage_type() == Some("gp3")),
            log_exports: (!logs.is_empty()).then(|| logs.to_vec()),
            ca_certificate: inst.ca_certificate_identifier().map(str::to_owned),
            engine: inst.engine().map(str::to_owned),
            tags: tags_of(inst.tag_list()),
            cluster_parameter_group: None,
        }
    }

    /// The source is gone: what the snapshot recorded, placed as configured. The
    /// snapshot records no deletion protection, log exports or CA certificate.
    fn from_snapshot(snap: &DbSnapshot, place: &Placement) -> Self {
        let provisioned = provisioned(snap.storage_type(), snap.engine(), snap.allocated_storage());
        Carried {
            subnet_group: Some(place.subnet_group.clone()),
            security_groups: Some(place.security_groups.clone()),
            public: Some(place.publicly_accessible),
            class: place.instance_class.clone(),
            option_group: custom(snap.option_group_name()),
            iam_auth: snap.iam_database_authentication_enabled(),
            storage_type: snap.storage_type().map(str::to_owned),
            iops: snap.iops().filter(|_| provisioned),
            storage_throughput: snap
                .storage_throughput()
                .filter(|_| provisioned && snap.storage_type() == Some("gp3")),
            engine: snap.engine().map(str::to_owned),
            tags: tags_of(snap.tag_list()),
            ..Carried::default()
        }
    }

    fn from_cluster(c: &DbCluster, writer: Option<&SdkInstance>) -> Self {
        let logs = c.enabled_cloudwatch_logs_exports();
        Carried {
            subnet_group: c.db_subnet_group().map(str::to_owned),
            security_groups: group_ids(c.vpc_security_groups()),
            cluster_parameter_group: custom(c.db_cluster_parameter_group()),
            parameter_group: writer.and_then(|w| {
                w.db_parameter_groups()
                    .iter()
                    .find_map(|g| custom(g.db_parameter_group_name()))
            }),
            class: writer.and_then(|w| w.db_instance_class().map(str::to_owned)),
            public: writer.and_then(SdkInstance::publicly_accessible),
            ca_certificate: writer.and_then(|w| w.ca_certificate_identifier().map(str::to_owned)),
            iam_auth: c.iam_database_authentication_enabled(),
            deletion_protection: c.deletion_protection(),
            storage_type: c.storage_type().map(str::to_owned),
            // Aurora storage has no provisioned IOPS; Multi-AZ DB clusters do.
            iops: c.iops(),
            log_exports: (!logs.is_empty()).then(|| logs.to_vec()),
            engine: c.engine().map(str::to_owned),
            tags: tags_of(c.tag_list()),
            ..Carried::default()
        }
    }

    fn from_cluster_snapshot(snap: &DbClusterSnapshot, place: &Placement) -> Self {
        Carried {
            subnet_group: Some(place.subnet_group.clone()),
            security_groups: Some(place.security_groups.clone()),
            public: Some(place.publicly_accessible),
            class: place.instance_class.clone(),
            iam_auth: snap.iam_database_authentication_enabled(),
            storage_type: snap.storage_type().map(str::to_owned),
            engine: snap.engine().map(str::to_owned),
            tags: tags_of(snap.tag_list()),
            ..Carried::default()
        }
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
fn sdk_tags(tags: &ResourceTags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
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
            .map_or_else(|| lower(id), lower_id),
        status,
        endpoint,
        tags: tags_of(inst.tag_list()),
    }
}

/// A cluster as the playbook sees it: its writer endpoint, and `status` (the
/// cluster's and its writer's together).
fn cluster_instance(id: &DbInstanceId, c: &DbCluster, status: DbStatus) -> DbInstance {
    let endpoint = c.endpoint().zip(c.port()).and_then(|(host, port)| {
        Some(DbEndpoint {
            host: host.to_owned(),
            port: u16::try_from(port).ok()?,
        })
    });
    DbInstance {
        id: c
            .db_cluster_identifier()
            .map_or_else(|| lower(id), lower_id),
        status,
        endpoint,
        tags: tags_of(c.tag_list()),
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
    fn iops_only_where_rds_takes_them() {
        assert!(provisioned(Some("io1"), Some("postgres"), Some(100)));
        assert!(provisioned(Some("gp3"), Some("postgres"), Some(400)));
        assert!(!provisioned(Some("gp3"), Some("postgres"), Some(399)));
        assert!(provisioned(Some("gp3"), Some("oracle-ee"), Some(200)));
        assert!(provisioned(Some("gp3"), Some("sqlserver-se"), Some(20)));
        assert!(!provisioned(Some("gp2"), Some("postgres"), Some(1000)));
    }

    #[test]
    fn run_tags_win_and_aws_tags_stay_behind() {
        let source = ResourceTags::from([
            ("team".to_owned(), "payments".to_owned()),
            ("run".to_owned(), "old".to_owned()),
            ("aws:cloudformation:stack-name".to_owned(), "db".to_owned()),
        ]);
        let run = ResourceTags::from([("run".to_owned(), "new".to_owned())]);
        assert_eq!(
            merged_tags(source, &run),
            ResourceTags::from([
                ("team".to_owned(), "payments".to_owned()),
                ("run".to_owned(), "new".to_owned()),
            ])
        );
    }

    #[test]
    fn default_groups_are_not_named() {
        assert_eq!(custom(Some("default.postgres16")), None);
        assert_eq!(custom(Some("default:postgres-16")), None);
        assert_eq!(custom(Some("meshos-pg16")).as_deref(), Some("meshos-pg16"));
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
