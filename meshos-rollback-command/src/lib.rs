//! meshos-rollback providers that run the playbook's own commands.
//!
//! | Type | Core trait | Playbook command |
//! |------|------------|------------------|
//! | [`CommandSmokeTests`] | `SmokeTests` | `npm run test:smoke -- --region us-east-1` |
//! | [`CommandMigrator`] | `SchemaMigrator` | `npm run migrate:rollback`, `migrate:down -- --name …`, `migrate:status` |
//!
//! Commands are argument vectors ([`CommandTemplate`]), never shell lines, with
//! `{region}`, `{service}` and `{name}` placeholders. Each runs in its own process
//! group with a deadline: the whole group (`npm` and the `sh`/node it started) is
//! killed when the deadline passes or the rollback is cancelled. Each keeps only the
//! tail of its stdout and stderr (1 MiB each unless set with `with_output_limit`);
//! output that reaches a result or an error has credentials in URLs and
//! `password=`-style values masked. No features.

mod capture;
mod command;
mod group;
mod migrate;
mod smoke;

pub use command::CommandTemplate;
pub use migrate::{CommandMigrator, MigrationCommands, StatusFormat};
pub use smoke::CommandSmokeTests;
