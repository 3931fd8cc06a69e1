//! meshos-rollback providers that run the playbook's own commands.
//!
//! | Type | Core trait | Playbook command |
//! |------|------------|------------------|
//! | [`CommandSmokeTests`] | `SmokeTests` | `npm run test:smoke -- --region us-east-1` |
//! | [`CommandMigrator`] | `SchemaMigrator` | `npm run migrate:rollback`, `migrate:down -- --name …`, `migrate:status` |
//!
//! Commands are argument vectors ([`CommandTemplate`]), never shell lines, with
//! `{region}`, `{service}` and `{name}` placeholders. Each has a deadline (the process
//! is killed when it passes, or when the rollback is cancelled); output that reaches a
//! result or an error has credentials in URLs and `password=`-style values masked.
//! No features.

mod command;
mod migrate;
mod smoke;

pub use command::CommandTemplate;
pub use migrate::{CommandMigrator, MigrationCommands, StatusFormat};
pub use smoke::CommandSmokeTests;
