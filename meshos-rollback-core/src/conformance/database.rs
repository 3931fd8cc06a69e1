//! Conformance of a [`DbRestorer`].

use super::{expect_kind, expect_ok};
use crate::ErrorKind;
use crate::provider::{
    CREATED_BY_RUN, DbInstanceId, DbRestorer, DbStatus, ResourceTags, RestorePoint, SnapshotId,
};

/// What the caller prepared for [`run`].
#[derive(Debug, Clone)]
pub struct DbFixture {
    /// An available instance with at least one available snapshot.
    pub source: DbInstanceId,
    /// A prefix for the instances the suite creates; unique per run
    /// (`meshos-db-restored-<random>`).
    pub target_prefix: String,
    /// An instance that does not exist.
    pub missing: DbInstanceId,
}

/// Runs the restore suite: snapshots newest first, restore a snapshot and a point in
/// time into new instances, wait until available, refuse an existing target and a
/// time outside the window, and leave the source exactly as it was.
pub async fn run(db: &dyn DbRestorer, fx: &DbFixture) {
    let who = db.to_string();
    let caps = db.capabilities();
    let source_before = expect_ok(db.instance(&fx.source).await, "describe source");
    assert_eq!(
        source_before.status,
        DbStatus::Available,
        "{who}: source must be available"
    );
    let snapshots_before = expect_ok(db.snapshots(&fx.source).await, "snapshots");
    assert!(
        !snapshots_before.is_empty(),
        "{who}: the fixture needs a snapshot"
    );
    assert!(
        snapshots_before
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at),
        "{who}: snapshots newest first"
    );
    assert!(
        snapshots_before.iter().all(|s| s.instance == fx.source),
        "{who}: snapshots of another instance listed"
    );
    let target = |suffix: &str| DbInstanceId::new(format!("{}-{suffix}", fx.target_prefix));
    let tags = ResourceTags::from([(CREATED_BY_RUN.to_owned(), "conformance-run".to_owned())]);

    if caps.snapshot_restore {
        let snap = snapshots_before
            .iter()
            .find(|s| s.available)
            .expect("an available snapshot");
        let t1 = target("snap");
        let started = expect_ok(
            db.restore_snapshot(&snap.id, &t1, &tags).await,
            "restore snapshot",
        );
        assert_eq!(started.id, t1, "{who}: restore target id");
        let ready = expect_ok(db.wait_available(&t1).await, "wait available");
        assert_eq!(ready.status, DbStatus::Available);
        assert!(
            ready.endpoint.is_some(),
            "{who}: an available instance has an endpoint"
        );
        assert_eq!(
            ready.tags.get(CREATED_BY_RUN).map(String::as_str),
            Some("conformance-run"),
            "{who}: a restored instance carries the tags it was restored with: {:?}",
            ready.tags
        );
        // Identifiers compare as the backend compares them (RDS: case-insensitively):
        // the upper-case name is the same instance, never a new one.
        let upper = DbInstanceId::new(t1.as_str().to_ascii_uppercase());
        expect_kind(
            db.restore_snapshot(&snap.id, &upper, &tags).await,
            ErrorKind::Conflict,
            "restore into an existing identifier spelt in upper case",
        );
        expect_kind(
            db.restore_snapshot(&snap.id, &t1, &tags).await,
            ErrorKind::Conflict,
            "restore into an existing identifier",
        );
        expect_kind(
            db.restore_snapshot(
                &SnapshotId::new(format!("{}-missing", fx.target_prefix)),
                &target("never"),
                &tags,
            )
            .await,
            ErrorKind::NotFound,
            "restore a missing snapshot",
        );
    }

    if caps.point_in_time_restore {
        let window = expect_ok(db.restore_window(&fx.source).await, "restore window");
        assert!(window.earliest <= window.latest, "{who}: window {window:?}");
        let t2 = target("pitr");
        expect_ok(
            db.restore_to_point_in_time(&fx.source, &t2, &RestorePoint::At(window.latest), &tags)
                .await,
            "restore to a point in time",
        );
        let ready = expect_ok(db.wait_available(&t2).await, "wait available");
        assert!(ready.endpoint.is_some(), "{who}: endpoint after PITR");
        let t3 = target("latest");
        expect_ok(
            db.restore_to_point_in_time(&fx.source, &t3, &RestorePoint::Latest, &tags)
                .await,
            "restore to the latest time",
        );
        expect_ok(db.wait_available(&t3).await, "wait available");
        let too_early = window
            .earliest
            .checked_sub(jiff::SignedDuration::from_hours(24 * 400))
            .expect("a year earlier");
        expect_kind(
            db.restore_to_point_in_time(
                &fx.source,
                &target("early"),
                &RestorePoint::At(too_early),
                &tags,
            )
            .await,
            ErrorKind::InvalidInput,
            "restore to a time before the window",
        );
        expect_kind(
            db.restore_to_point_in_time(&fx.source, &t2, &RestorePoint::Latest, &tags)
                .await,
            ErrorKind::Conflict,
            "point-in-time restore into an existing identifier",
        );
        expect_kind(
            db.restore_to_point_in_time(&fx.missing, &target("gone"), &RestorePoint::Latest, &tags)
                .await,
            ErrorKind::NotFound,
            "restore of a missing source",
        );
        let early = db.instance(&target("early")).await;
        expect_kind(
            early,
            ErrorKind::NotFound,
            "a refused restore creates nothing",
        );
    }

    expect_kind(
        db.instance(&fx.missing).await,
        ErrorKind::NotFound,
        "describe a missing instance",
    );

    // The source is untouched.
    let source_after = expect_ok(db.instance(&fx.source).await, "describe source");
    assert_eq!(
        source_after, source_before,
        "{who}: the source instance must not change"
    );
    let snapshots_after = expect_ok(db.snapshots(&fx.source).await, "snapshots");
    for s in &snapshots_before {
        assert!(
            snapshots_after.iter().any(|a| a.id == s.id),
            "{who}: snapshot {} of the source must survive",
            s.id
        );
    }
}
