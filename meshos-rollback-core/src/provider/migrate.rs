//! [`SchemaMigrator`]: roll database schema migrations back.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::display_mock;
use crate::Result;

/// An applied migration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppliedMigration {
    /// Its name, such as `20251030_add_feature_column`.
    pub name: String,
    /// The batch it was applied in; `migrate:rollback` reverts the highest batch.
    pub batch: u32,
}

/// The schema's migration state (`npm run migrate:status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaStatus {
    /// Applied migrations, oldest first.
    pub applied: Vec<AppliedMigration>,
}

impl SchemaStatus {
    /// The newest applied migration, the schema version.
    pub fn version(&self) -> Option<&str> {
        self.applied.last().map(|m| m.name.as_str())
    }

    /// Whether the named migration is applied.
    pub fn is_applied(&self, name: &str) -> bool {
        self.applied.iter().any(|m| m.name == name)
    }
}

/// Which migrations to revert.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationTarget {
    /// The last batch (`npm run migrate:rollback`).
    LastBatch,
    /// One named migration (`npm run migrate:down -- --name NAME`).
    Named(String),
}

impl fmt::Display for MigrationTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrationTarget::LastBatch => f.write_str("last batch"),
            MigrationTarget::Named(n) => write!(f, "migration {n}"),
        }
    }
}

/// Reverts schema migrations of one database.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SchemaMigrator: fmt::Debug + fmt::Display + Send + Sync {
    /// The applied migrations.
    async fn status(&self) -> Result<SchemaStatus>;

    /// Reverts `target`, returning the names reverted, newest first. Reverting a named
    /// migration that is not applied is [`NotFound`](crate::Error::NotFound).
    async fn roll_back(&self, target: &MigrationTarget) -> Result<Vec<String>>;
}

display_mock!(MockSchemaMigrator);
