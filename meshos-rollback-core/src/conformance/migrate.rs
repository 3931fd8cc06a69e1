//! Conformance of a [`SchemaMigrator`].

use super::{expect_kind, expect_ok};
use crate::ErrorKind;
use crate::provider::{MigrationTarget, SchemaMigrator};

/// Runs the migration suite on a database prepared with two batches:
/// `first` (one migration), then `second` (two migrations, applied in that order).
pub async fn run(migrator: &dyn SchemaMigrator, first: &str, second: [&str; 2]) {
    let who = migrator.to_string();
    let status = expect_ok(migrator.status().await, "status");
    assert_eq!(status.version(), Some(second[1]), "{who}: schema version");
    assert!(status.is_applied(first));

    let reverted = expect_ok(
        migrator.roll_back(&MigrationTarget::LastBatch).await,
        "rollback",
    );
    assert_eq!(
        reverted,
        vec![second[1].to_owned(), second[0].to_owned()],
        "{who}: last batch, newest first"
    );
    let status = expect_ok(migrator.status().await, "status");
    assert_eq!(
        status.version(),
        Some(first),
        "{who}: version after rollback"
    );

    expect_kind(
        migrator
            .roll_back(&MigrationTarget::Named(second[0].to_owned()))
            .await,
        ErrorKind::NotFound,
        "revert a migration that is not applied",
    );
    let reverted = expect_ok(
        migrator
            .roll_back(&MigrationTarget::Named(first.to_owned()))
            .await,
        "migrate down by name",
    );
    assert_eq!(reverted, vec![first.to_owned()]);
    assert_eq!(expect_ok(migrator.status().await, "status").version(), None);
    let nothing = expect_ok(
        migrator.roll_back(&MigrationTarget::LastBatch).await,
        "rollback of nothing",
    );
    assert!(nothing.is_empty(), "{who}: nothing to revert");
}
