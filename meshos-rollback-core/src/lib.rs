//! Rollback playbooks as code: the core of meshos-rollback.
//!
//! This crate holds everything that does not talk to a cloud: the playbook's nouns
//! ([`model`], [`observation`]), its decision rules ([`decision`]), the provider traits
//! through which it acts ([`provider`]), the engine that plans, gates, runs, verifies
//! and reports a rollback ([`engine`]), cross-cutting layers ([`layer`]), in-memory
//! implementations of every trait ([`memory`]) and the conformance suites every
//! backend runs (`conformance`, feature `conformance`). It depends on no AWS SDK,
//! kube or HTTP client.
//!
//! | Provider trait | In memory | Backends in sibling crates |
//! |---|---|---|
//! | [`Deployer`](provider::Deployer) | [`InMemoryDeployer`](memory::InMemoryDeployer) | `EcsDeployer` (aws), `K8sDeployer` (k8s) |
//! | [`TrafficShifter`](provider::TrafficShifter) | [`InMemoryTrafficShifter`](memory::InMemoryTrafficShifter) | `AlbTrafficShifter` (aws) |
//! | [`DnsSwitcher`](provider::DnsSwitcher) | [`InMemoryDnsSwitcher`](memory::InMemoryDnsSwitcher) | `Route53DnsSwitcher` (aws) |
//! | [`DbRestorer`](provider::DbRestorer) | [`InMemoryDbRestorer`](memory::InMemoryDbRestorer) | `RdsRestorer` (aws) |
//! | [`MetricsSource`](provider::MetricsSource) | [`InMemoryMetrics`](memory::InMemoryMetrics) | `PrometheusMetrics` (http), `CloudWatchMetrics` (aws) |
//! | [`HealthChecker`](provider::HealthChecker) | [`InMemoryHealthChecker`](memory::InMemoryHealthChecker) | `HttpHealthChecker` (http) |
//! | [`SmokeTests`](provider::SmokeTests) | [`InMemorySmokeTests`](memory::InMemorySmokeTests) | `CommandSmokeTests` (command) |
//! | [`Notifier`](provider::Notifier) | [`InMemoryNotifier`](memory::InMemoryNotifier) | `SlackNotifier` (http) |
//! | [`Escalator`](provider::Escalator) | [`InMemoryEscalator`](memory::InMemoryEscalator) | `PagerDutyEscalator` (http) |
//! | [`SchemaMigrator`](provider::SchemaMigrator) | [`InMemorySchemaMigrator`](memory::InMemorySchemaMigrator) | `CommandMigrator` (command) |
//! | [`CustomerReports`](provider::CustomerReports) | [`InMemoryCustomerReports`](memory::InMemoryCustomerReports) | `HttpCustomerReports` (http) |
//! | [`ImageRegistry`](provider::ImageRegistry) | [`InMemoryImageRegistry`](memory::InMemoryImageRegistry) | `EcrImageRegistry` (aws) |
//! | [`RollbackLock`](provider::RollbackLock) | [`InMemoryLock`](memory::InMemoryLock) | `LeaseLock` (k8s) |
//! | [`LogSource`](provider::LogSource) | [`InMemoryLogs`](memory::InMemoryLogs) | `CloudWatchLogs` (aws) |
//!
//! | Feature | Default | Enables |
//! |---|---|---|
//! | `mocks` | no | mockall mocks of every provider trait (`MockDeployer`, …) |
//! | `conformance` | no | the conformance suites |
//! | `testing` | no | `testing`: the playbook's demo fleet in memory (`InMemoryWorld`, `fleet`) |
//!
//! Start with [`engine::Engine`]; the workspace README has a walk-through.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod decision;
pub mod engine;
pub mod error;
pub mod layer;
pub mod memory;
pub mod model;
pub mod observation;
pub mod provider;
pub mod redact;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wait;

pub use error::{Error, ErrorKind, Result};

/// The README's code runs as a doctest, so it cannot drift from the API.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
