//! An in-memory [`DbRestorer`]: instances, snapshots and a restorable time window.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use crate::clock::SharedClock;
use crate::model::Region;
use crate::provider::{
    DbCapabilities, DbEndpoint, DbInstance, DbInstanceId, DbRestorer, DbStatus, ResourceTags,
    RestorePoint, RestoreWindow, Snapshot, SnapshotId, SnapshotKind,
};
use crate::wait::{Backoff, conditions, poll_until};
use crate::{Error, Result};

/// Where a restored instance's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoredFrom {
    /// A snapshot, with the time its data is from.
    Snapshot(SnapshotId, Timestamp),
    /// A source instance as it was at a time.
    PointInTime(DbInstanceId, Timestamp),
}

/// A region's databases in memory.
///
/// Each instance can be restored to any time from its creation (or the start of the
/// backup retention period) to now. Creating an instance takes an automated snapshot,
/// as RDS does. A restore creates a new instance that is `creating` for the configured
/// time, then `available`. Sources are never changed.
#[derive(Debug)]
pub struct InMemoryDbRestorer {
    region: Region,
    clock: SharedClock,
    restore_time: Duration,
    retention: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    instances: BTreeMap<DbInstanceId, InstanceState>,
    snapshots: Vec<Snapshot>,
}

#[derive(Debug, Clone)]
struct InstanceState {
    created_at: Timestamp,
    available_at: Timestamp,
    restored_from: Option<RestoredFrom>,
    tags: ResourceTags,
}

/// RDS identifiers are case-insensitive (stored in lower case).
fn key(id: &DbInstanceId) -> DbInstanceId {
    DbInstanceId::new(id.as_str().to_ascii_lowercase())
}

impl InMemoryDbRestorer {
    /// No instances; restores take 5 minutes; 7 days of point-in-time retention.
    pub fn new(region: Region, clock: SharedClock) -> Self {
        InMemoryDbRestorer {
            region,
            clock,
            restore_time: Duration::from_secs(300),
            retention: Duration::from_secs(7 * 24 * 3600),
            state: Mutex::new(State::default()),
        }
    }

    /// Sets how long a restore takes.
    pub fn with_restore_time(mut self, d: Duration) -> Self {
        self.restore_time = d;
        self
    }

    /// Adds an available instance created at `created_at`, with its automated snapshot.
    pub fn add_instance(&self, id: impl Into<DbInstanceId>, created_at: Timestamp) {
        let id = key(&id.into());
        let mut st = self.lock();
        st.snapshots.push(Snapshot {
            id: SnapshotId::new(format!(
                "rds:{id}-{}",
                created_at.strftime("%Y-%m-%d-%H-%M")
            )),
            instance: id.clone(),
            created_at,
            kind: SnapshotKind::Automated,
            available: true,
        });
        st.instances.insert(
            id,
            InstanceState {
                created_at,
                available_at: created_at,
                restored_from: None,
                tags: ResourceTags::new(),
            },
        );
    }

    /// Takes a manual snapshot of `instance` now.
    pub fn take_snapshot(
        &self,
        instance: &DbInstanceId,
        id: impl Into<SnapshotId>,
    ) -> Result<Snapshot> {
        self.add_snapshot(instance, id, self.clock.now())
    }

    /// Records a manual snapshot of `instance` whose data is from `at`.
    pub fn add_snapshot(
        &self,
        instance: &DbInstanceId,
        id: impl Into<SnapshotId>,
        at: Timestamp,
    ) -> Result<Snapshot> {
        let now = at;
        let mut st = self.lock();
        let instance = &key(instance);
        if !st.instances.contains_key(instance) {
            return Err(Error::not_found(self, format!("database {instance}")));
        }
        let id = id.into();
        if st.snapshots.iter().any(|s| s.id == id) {
            return Err(Error::conflict(
                self,
                format!("snapshot {id} already exists"),
            ));
        }
        let snap = Snapshot {
            id,
            instance: instance.clone(),
            created_at: now,
            kind: SnapshotKind::Manual,
            available: true,
        };
        st.snapshots.push(snap.clone());
        Ok(snap)
    }

    /// Where a restored instance's data comes from; `None` for an original instance.
    pub fn restored_from(&self, id: &DbInstanceId) -> Option<RestoredFrom> {
        self.lock().instances.get(&key(id))?.restored_from.clone()
    }

    /// Every instance identifier.
    pub fn instance_ids(&self) -> Vec<DbInstanceId> {
        self.lock().instances.keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("lock")
    }

    fn window(&self, inst: &InstanceState) -> RestoreWindow {
        let now = self.clock.now();
        let retention = SignedDuration::try_from(self.retention).unwrap_or(SignedDuration::MAX);
        let oldest = now.saturating_sub(retention).unwrap_or(Timestamp::MIN);
        RestoreWindow {
            earliest: inst.created_at.max(oldest),
            latest: now,
        }
    }

    fn create(
        &self,
        st: &mut State,
        target: &DbInstanceId,
        from: RestoredFrom,
        tags: &ResourceTags,
    ) -> Result<DbInstance> {
        check_identifier(target)?;
        // RDS stores identifiers in lower case: `DB-1` and `db-1` are one instance.
        let target = &key(target);
        if st.instances.contains_key(target) {
            return Err(Error::conflict(
                self,
                format!(
                    "database {target} already exists; choose a new identifier for the restore"
                ),
            ));
        }
        let now = self.clock.now();
        let ready = now
            .saturating_add(
                SignedDuration::try_from(self.restore_time).unwrap_or(SignedDuration::MAX),
            )
            .unwrap_or(Timestamp::MAX);
        st.instances.insert(
            target.clone(),
            InstanceState {
                created_at: now,
                available_at: ready,
                restored_from: Some(from),
                tags: tags.clone(),
            },
        );
        Ok(self.describe(target, &st.instances[target]))
    }

    fn describe(&self, id: &DbInstanceId, inst: &InstanceState) -> DbInstance {
        let available = self.clock.now() >= inst.available_at;
        DbInstance {
            id: id.clone(),
            status: if available {
                DbStatus::Available
            } else {
                DbStatus::Creating
            },
            endpoint: available.then(|| DbEndpoint {
                host: format!("{id}.{}.db.in-memory", self.region),
                port: 5432,
            }),
            tags: inst.tags.clone(),
        }
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

impl fmt::Display for InMemoryDbRestorer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InMemoryDbRestorer({})", self.region)
    }
}

#[async_trait]
impl DbRestorer for InMemoryDbRestorer {
    fn capabilities(&self) -> DbCapabilities {
        DbCapabilities {
            snapshot_restore: true,
            point_in_time_restore: true,
        }
    }

    async fn snapshots(&self, instance: &DbInstanceId) -> Result<Vec<Snapshot>> {
        let st = self.lock();
        let instance = &key(instance);
        if !st.instances.contains_key(instance) {
            return Err(Error::not_found(self, format!("database {instance}")));
        }
        let mut out: Vec<Snapshot> = st
            .snapshots
            .iter()
            .filter(|s| &s.instance == instance)
            .cloned()
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(out)
    }

    async fn restore_window(&self, instance: &DbInstanceId) -> Result<RestoreWindow> {
        let st = self.lock();
        let inst = st
            .instances
            .get(&key(instance))
            .ok_or_else(|| Error::not_found(self, format!("database {instance}")))?;
        Ok(self.window(inst))
    }

    async fn restore_snapshot(
        &self,
        snapshot: &SnapshotId,
        target: &DbInstanceId,
        tags: &ResourceTags,
    ) -> Result<DbInstance> {
        let mut st = self.lock();
        let snap = st
            .snapshots
            .iter()
            .find(|s| &s.id == snapshot)
            .cloned()
            .ok_or_else(|| Error::not_found(self, format!("snapshot {snapshot}")))?;
        if !snap.available {
            return Err(Error::conflict(
                self,
                format!("snapshot {snapshot} is not available yet"),
            ));
        }
        self.create(
            &mut st,
            target,
            RestoredFrom::Snapshot(snap.id, snap.created_at),
            tags,
        )
    }

    async fn restore_to_point_in_time(
        &self,
        source: &DbInstanceId,
        target: &DbInstanceId,
        point: &RestorePoint,
        tags: &ResourceTags,
    ) -> Result<DbInstance> {
        let mut st = self.lock();
        let inst = st
            .instances
            .get(&key(source))
            .ok_or_else(|| Error::not_found(self, format!("database {source}")))?;
        let window = self.window(inst);
        let at = match point {
            RestorePoint::Latest => window.latest,
            RestorePoint::At(t) => {
                if !window.contains(*t) {
                    return Err(Error::invalid(
                        "restore time",
                        format!(
                            "{t} is outside the restorable window of {source} ({} to {})",
                            window.earliest, window.latest
                        ),
                    ));
                }
                *t
            }
        };
        self.create(
            &mut st,
            target,
            RestoredFrom::PointInTime(source.clone(), at),
            tags,
        )
    }

    async fn instance(&self, id: &DbInstanceId) -> Result<DbInstance> {
        let st = self.lock();
        let id = &key(id);
        let inst = st
            .instances
            .get(id)
            .ok_or_else(|| Error::not_found(self, format!("database {id}")))?;
        Ok(self.describe(id, inst))
    }

    async fn wait_available(&self, id: &DbInstanceId) -> Result<DbInstance> {
        let what = format!("{self}: database {id}");
        let backoff = Backoff {
            initial: Duration::from_secs(5),
            factor: 2.0,
            max_interval: Duration::from_secs(30),
            max_checks: None,
        };
        poll_until(
            &what,
            || self.instance(id),
            &conditions::db_available,
            &backoff,
        )
        .await
    }
}
