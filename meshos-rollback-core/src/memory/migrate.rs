//! An in-memory [`SchemaMigrator`] with batches, like knex or Sequelize.

use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::provider::{AppliedMigration, MigrationTarget, SchemaMigrator, SchemaStatus};
use crate::{Error, Result};

/// Applied migrations in memory.
#[derive(Debug)]
pub struct InMemorySchemaMigrator {
    database: String,
    applied: Mutex<Vec<AppliedMigration>>,
}

impl InMemorySchemaMigrator {
    /// A database with no migrations applied.
    pub fn new(database: impl Into<String>) -> Self {
        InMemorySchemaMigrator {
            database: database.into(),
            applied: Mutex::new(Vec::new()),
        }
    }

    /// Applies migrations as one new batch.
    pub fn apply_batch(&self, names: &[&str]) {
        let mut applied = self.applied.lock().expect("lock");
        let batch = applied.iter().map(|m| m.batch).max().unwrap_or(0) + 1;
        applied.extend(names.iter().map(|n| AppliedMigration {
            name: (*n).to_owned(),
            batch,
        }));
    }
}

impl fmt::Display for InMemorySchemaMigrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InMemorySchemaMigrator({})", self.database)
    }
}

#[async_trait]
impl SchemaMigrator for InMemorySchemaMigrator {
    async fn status(&self) -> Result<SchemaStatus> {
        Ok(SchemaStatus {
            applied: self.applied.lock().expect("lock").clone(),
        })
    }

    async fn roll_back(&self, target: &MigrationTarget) -> Result<Vec<String>> {
        let mut applied = self.applied.lock().expect("lock");
        match target {
            MigrationTarget::LastBatch => {
                let Some(last) = applied.iter().map(|m| m.batch).max() else {
                    return Ok(Vec::new());
                };
                let mut reverted: Vec<String> = applied
                    .iter()
                    .filter(|m| m.batch == last)
                    .map(|m| m.name.clone())
                    .collect();
                reverted.reverse();
                applied.retain(|m| m.batch != last);
                Ok(reverted)
            }
            MigrationTarget::Named(name) => {
                let i = applied
                    .iter()
                    .position(|m| &m.name == name)
                    .ok_or_else(|| Error::not_found(&*self, format!("applied migration {name}")))?;
                applied.remove(i);
                Ok(vec![name.clone()])
            }
        }
    }
}
