//! [`DbRestorer`]: restore a database to a NEW instance, never touching the source.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{display_mock, string_id};
use crate::Result;

string_id!(
    /// A database instance identifier (an RDS DB instance identifier).
    DbInstanceId
);
string_id!(
    /// A database snapshot identifier.
    SnapshotId
);

/// What a [`DbRestorer`] can do; checked before a plan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DbCapabilities {
    /// Restores from snapshots.
    pub snapshot_restore: bool,
    /// Restores to a point in time.
    pub point_in_time_restore: bool,
}

/// Who made a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// Taken by the backup schedule.
    Automated,
    /// Taken by a person or a tool.
    Manual,
}

/// A database snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Its identifier.
    pub id: SnapshotId,
    /// The instance it was taken of.
    pub instance: DbInstanceId,
    /// When the data in it is from.
    pub created_at: Timestamp,
    /// Automated or manual.
    pub kind: SnapshotKind,
    /// Whether it can be restored now.
    pub available: bool,
}

/// The times an instance can be restored to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreWindow {
    /// The earliest restorable time.
    pub earliest: Timestamp,
    /// The latest restorable time.
    pub latest: Timestamp,
}

impl RestoreWindow {
    /// Whether `at` lies within the window (inclusive).
    pub fn contains(&self, at: Timestamp) -> bool {
        self.earliest <= at && at <= self.latest
    }
}

/// The time to restore to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestorePoint {
    /// The latest restorable time.
    Latest,
    /// A given time, inside the restore window.
    At(Timestamp),
}

impl fmt::Display for RestorePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestorePoint::Latest => f.write_str("latest restorable time"),
            RestorePoint::At(t) => write!(f, "{t}"),
        }
    }
}

/// An instance's lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DbStatus {
    /// Being created or restored.
    Creating,
    /// Ready for connections.
    Available,
    /// Being changed (renamed, resized, backed up).
    Modifying,
    /// Failed; it will not become available.
    Failed,
    /// Any other state, in the backend's words.
    Other(String),
}

/// Where to connect to an instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DbEndpoint {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for DbEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Tags on a created resource (RDS tags). The engine tags what it creates with its
/// run and step ([`CREATED_BY_RUN`], [`CREATED_BY_STEP`]) and adopts an existing
/// resource on resume only when those tags say this run and step created it.
pub type ResourceTags = BTreeMap<String, String>;

/// The tag naming the run that created a resource.
pub const CREATED_BY_RUN: &str = "meshos-rollback:run-id";
/// The tag naming the step that created a resource.
pub const CREATED_BY_STEP: &str = "meshos-rollback:step-id";

/// A database instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbInstance {
    /// Its identifier.
    pub id: DbInstanceId,
    /// Its state.
    pub status: DbStatus,
    /// Where to connect, once known.
    pub endpoint: Option<DbEndpoint>,
    /// Its tags.
    #[serde(default)]
    pub tags: ResourceTags,
}

/// Restores databases from snapshots or to a point in time, always into a NEW
/// instance. Implementations never delete, rename or modify the source instance or
/// its snapshots; a target identifier that exists is a [`Conflict`](crate::Error::Conflict).
/// Identifiers compare as the backend compares them (RDS: case-insensitively), and the
/// new instance carries the `tags` it was restored with.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait DbRestorer: fmt::Debug + fmt::Display + Send + Sync {
    /// What this restorer can do.
    fn capabilities(&self) -> DbCapabilities;

    /// Snapshots of `instance`, newest first.
    async fn snapshots(&self, instance: &DbInstanceId) -> Result<Vec<Snapshot>>;

    /// The times `instance` can be restored to.
    async fn restore_window(&self, instance: &DbInstanceId) -> Result<RestoreWindow>;

    /// Starts restoring `snapshot` into the new instance `target`, tagged with `tags`.
    async fn restore_snapshot(
        &self,
        snapshot: &SnapshotId,
        target: &DbInstanceId,
        tags: &ResourceTags,
    ) -> Result<DbInstance>;

    /// Starts restoring `source` as it was at `point` into the new instance `target`,
    /// tagged with `tags`. A time outside the restore window is
    /// [`InvalidInput`](crate::Error::InvalidInput).
    async fn restore_to_point_in_time(
        &self,
        source: &DbInstanceId,
        target: &DbInstanceId,
        point: &RestorePoint,
        tags: &ResourceTags,
    ) -> Result<DbInstance>;

    /// An instance's state now.
    async fn instance(&self, id: &DbInstanceId) -> Result<DbInstance>;

    /// Waits until the instance is available and returns it (with its endpoint).
    /// No deadline of its own.
    async fn wait_available(&self, id: &DbInstanceId) -> Result<DbInstance>;
}

display_mock!(MockDbRestorer);
