//! In-memory implementations of every provider trait.
//!
//! They are real state machines, not stubs: revision history and timed rollouts,
//! listener weights and backend health, hosted zones with weighted records and
//! propagation, databases with snapshots and a restore window, metrics that follow
//! the serving revision. They validate input and fail like the real backends, and they
//! pass the same conformance suites (`conformance`, feature `conformance`) as the cloud backends. Time
//! comes from a [`Clock`](crate::clock::Clock), so tests run on tokio's paused clock.
//!
//! Inject latency and faults (throttling, timeouts, errors) with
//! [`FaultLayer`](crate::layer::FaultLayer), as for any provider.

mod database;
mod deploy;
mod dns;
mod health;
mod logs;
mod metrics;
mod migrate;
mod notify;
mod registry;
mod reports;
mod traffic;

pub use crate::provider::InMemoryLock;
pub use database::{InMemoryDbRestorer, RestoredFrom};
pub use deploy::InMemoryDeployer;
pub use dns::{InMemoryDnsSwitcher, MAX_REGION_WEIGHT};
pub use health::{InMemoryHealthChecker, InMemorySmokeTests};
pub use logs::InMemoryLogs;
pub use metrics::InMemoryMetrics;
pub use migrate::InMemorySchemaMigrator;
pub use notify::{InMemoryEscalator, InMemoryNotifier};
pub use registry::InMemoryImageRegistry;
pub use reports::InMemoryCustomerReports;
pub use traffic::{InMemoryTrafficShifter, MAX_TARGET_WEIGHT};
