//! [`CommandMigrator`]: the playbook's `npm run migrate:rollback`, `migrate:down -- --name`
//! and `migrate:status`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use meshos_rollback_core::provider::{
    AppliedMigration, MigrationTarget, SchemaMigrator, SchemaStatus,
};
use meshos_rollback_core::{Error, Result};
use serde::Deserialize;

use crate::command::{CommandTemplate, Finished, Runner};

/// How the status command prints the applied migrations, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFormat {
    /// A JSON array: `[{"name": "20251001_init", "batch": 1}, …]`.
    Json,
    /// One line per applied migration: `BATCH NAME`. Blank lines and lines starting
    /// with `#` are ignored.
    BatchLines,
}

/// The three commands of a migration tool, for one database.
#[derive(Debug, Clone)]
pub struct MigrationCommands {
    /// Prints the applied migrations (`npm run --silent migrate:status -- --json`).
    pub status: CommandTemplate,
    /// Reverts the last batch (`npm run migrate:rollback`).
    pub rollback: CommandTemplate,
    /// Reverts one migration; `{name}` is its name (`npm run migrate:down -- --name {name}`).
    pub down: CommandTemplate,
    /// What `status` prints.
    pub format: StatusFormat,
}

/// Schema rollback through the project's own migration tool.
///
/// Each rollback reads the status before and after, so the result lists exactly what
/// was reverted, whatever the tool prints. Migration names must be plain (letters,
/// digits, `_`, `-`, `.`, not starting with `-`) so they cannot smuggle options into
/// the `down` command.
#[derive(Debug, Clone)]
pub struct CommandMigrator {
    database: String,
    commands: MigrationCommands,
    runner: Runner,
}

impl CommandMigrator {
    /// The migration tool of `database` (a label for messages), with a 10-minute deadline
    /// per command.
    pub fn new(database: impl Into<String>, commands: MigrationCommands) -> Self {
        CommandMigrator {
            database: database.into(),
            commands,
            runner: Runner::new(Duration::from_secs(600)),
        }
    }

    /// Runs the commands in `dir`.
    pub fn in_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runner.dir = Some(dir.into());
        self
    }

    /// Sets the deadline per command.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.runner.timeout = timeout;
        self
    }

    /// Keeps at most the last `bytes` of stdout and of stderr per command (default
    /// 1 MiB each); the rest is read and dropped. Error messages say how much, and a
    /// status listing longer than this is an error, never half read.
    pub fn with_output_limit(mut self, bytes: usize) -> Self {
        self.runner.output_limit = bytes;
        self
    }

    async fn run_checked(
        &self,
        what: &str,
        template: &CommandTemplate,
        values: &[(&str, &str)],
    ) -> Result<Finished> {
        let done = self.runner.run(self, &template.render(values)).await?;
        if done.success {
            Ok(done)
        } else {
            Err(Error::failed(
                self,
                format!(
                    "{what} ({template}) failed with {}: {}",
                    done.code
                        .map_or_else(|| "a signal".to_owned(), |c| format!("exit status {c}")),
                    done.summary()
                ),
            ))
        }
    }

    fn parse(&self, out: &str) -> Result<SchemaStatus> {
        let malformed = |detail: String| {
            Error::failed(
                self,
                format!(
                    "cannot read the output of {}: {detail}",
                    self.commands.status
                ),
            )
        };
        let applied = match self.commands.format {
            StatusFormat::Json => {
                #[derive(Deserialize)]
                struct Entry {
                    name: String,
                    batch: u32,
                }
                let entries: Vec<Entry> =
                    serde_json::from_str(out.trim()).map_err(|e| malformed(e.to_string()))?;
                entries
                    .into_iter()
                    .map(|e| AppliedMigration {
                        name: e.name,
                        batch: e.batch,
                    })
                    .collect()
            }
            StatusFormat::BatchLines => out
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| {
                    let (batch, name) = l
                        .split_once(char::is_whitespace)
                        .ok_or_else(|| malformed(format!("{l:?} is not \"BATCH NAME\"")))?;
                    let batch = batch
                        .parse()
                        .map_err(|_| malformed(format!("{batch:?} is not a batch number")))?;
                    Ok(AppliedMigration {
                        name: name.trim().to_owned(),
                        batch,
                    })
                })
                .collect::<Result<_>>()?,
        };
        Ok(SchemaStatus { applied })
    }

    /// What `before` has that `after` lacks, newest first.
    fn reverted(before: &SchemaStatus, after: &SchemaStatus) -> Vec<String> {
        before
            .applied
            .iter()
            .rev()
            .filter(|m| !after.is_applied(&m.name))
            .map(|m| m.name.clone())
            .collect()
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "migration name",
            format!("{name:?}: use letters, digits, '_', '-' and '.', not starting with '-'"),
        ))
    }
}

impl fmt::Display for CommandMigrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandMigrator({})", self.database)
    }
}

#[async_trait]
impl SchemaMigrator for CommandMigrator {
    async fn status(&self) -> Result<SchemaStatus> {
        let done = self
            .run_checked("migration status", &self.commands.status, &[])
            .await?;
        if done.stdout.dropped > 0 {
            return Err(Error::failed(
                self,
                format!(
                    "{} printed more than the output limit of {} bytes ({} bytes dropped); \
                     raise it with with_output_limit",
                    self.commands.status, self.runner.output_limit, done.stdout.dropped
                ),
            ));
        }
        self.parse(&done.stdout.text)
    }

    async fn roll_back(&self, target: &MigrationTarget) -> Result<Vec<String>> {
        let before = self.status().await?;
        match target {
            MigrationTarget::LastBatch => {
                if before.applied.is_empty() {
                    return Ok(Vec::new());
                }
                self.run_checked("rollback of the last batch", &self.commands.rollback, &[])
                    .await?;
            }
            MigrationTarget::Named(name) => {
                check_name(name)?;
                if !before.is_applied(name) {
                    return Err(Error::not_found(self, format!("applied migration {name}")));
                }
                self.run_checked(
                    &format!("rollback of {name}"),
                    &self.commands.down,
                    &[("name", name.as_str())],
                )
                .await?;
            }
        }
        let after = self.status().await?;
        Ok(Self::reverted(&before, &after))
    }
}
