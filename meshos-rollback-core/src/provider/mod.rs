//! The provider traits: how a playbook acts on the world.
//!
//! Each trait has one job and is small enough to implement in an afternoon. Every
//! trait is dyn-compatible (`Arc<dyn Deployer>`), `Send + Sync + Debug`, and
//! `Display`s its backend and scope (`EcsDeployer(us-east-1/meshos-us-east-1)`), so
//! every log line and error says where it came from.
//!
//! | Trait | Job | Playbook section |
//! |-------|-----|------------------|
//! | [`Deployer`] | revisions, roll back, wait until stable, set env/image, instances | Application Rollback |
//! | [`TrafficShifter`] | listener weights, shift to the stable target, target health | Load Balancer Rollback |
//! | [`DnsSwitcher`] | point a record, wait for sync, per-region routing weights | DNS Rollback, Single Region |
//! | [`DbRestorer`] | snapshots, restore to a new instance, point in time | Database Rollback |
//! | [`MetricsSource`] | error rate, P95, CPU, memory, request rate, baseline | Metrics Verification |
//! | [`LogSource`] | count and sample error lines in a window | Metrics Verification (`aws logs tail`) |
//! | [`HealthChecker`] | probe health endpoints | Health Checks |
//! | [`SmokeTests`] | run a smoke-test suite | Health Checks |
//! | [`Notifier`] | post announcements and status updates | Communication |
//! | [`Escalator`] | page on-call, resolve the page | Emergency Contacts |
//! | [`SchemaMigrator`] | migration status, roll migrations back | Schema Rollback |
//! | [`CustomerReports`] | count customer reports | Customer Impact |
//! | [`ImageRegistry`] | retag a known-good image | Container Image Rollback |
//! | [`RollbackLock`] | one rollback per service and region at a time | (engine) |
//!
//! Implementations never retry, time out or log on their own: those are layers
//! ([`crate::layer`]) written once around any provider. Waiting methods
//! (`wait_until_stable`, …) wait with no hidden deadline; a timeout layer or the caller
//! bounds them.

mod database;
mod deploy;
mod dns;
mod health;
mod lock;
mod logs;
mod metrics;
mod migrate;
mod notify;
mod registry;
mod reports;
mod traffic;

pub use database::*;
pub use deploy::*;
pub use dns::*;
pub use health::*;
pub use lock::*;
pub use logs::*;
pub use metrics::*;
pub use migrate::*;
pub use notify::*;
pub use registry::*;
pub use reports::*;
pub use traffic::*;

/// Implements `Display` for a mockall mock, which the provider traits require.
macro_rules! display_mock {
    ($($mock:ident),* $(,)?) => {
        $(
            #[cfg(feature = "mocks")]
            impl std::fmt::Display for $mock {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(stringify!($mock))
                }
            }
        )*
    };
}
pub(crate) use display_mock;

/// Declares a string identifier newtype.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps the backend's identifier.
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// The backend's identifier.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }
    };
}
pub(crate) use string_id;
