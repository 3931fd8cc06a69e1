//! Conformance suites: one per provider trait, written once, run against every backend.
//!
//! Each suite is a public async function over `&dyn Trait` plus a fixture that names
//! objects the caller has prepared (a service running two revisions, a listener with
//! two target groups, …). A suite panics with a message naming the provider and the
//! broken expectation, so it is called from a `#[tokio::test]`. The in-memory providers
//! run every suite in this crate's tests; backend crates run the same suites against
//! moto, a test API server or a local HTTP server.
//!
//! Enable with the `conformance` feature.

pub mod database;
pub mod deploy;
pub mod dns;
pub mod health;
pub mod journal;
pub mod lock;
pub mod logs;
pub mod metrics;
pub mod migrate;
pub mod notify;
pub mod registry;
pub mod reports;
pub mod traffic;

use crate::{Error, ErrorKind, Result};

/// Asserts that `result` is an error of `kind`, naming `what` on failure.
#[track_caller]
pub(crate) fn expect_kind<T: std::fmt::Debug>(
    result: Result<T>,
    kind: ErrorKind,
    what: &str,
) -> Error {
    match result {
        Err(e) if e.kind() == kind => e,
        Err(e) => panic!("{what}: expected a {kind:?} error, got {:?}: {e}", e.kind()),
        Ok(v) => panic!("{what}: expected a {kind:?} error, got Ok({v:?})"),
    }
}

/// Unwraps `result`, naming `what` on failure.
#[track_caller]
pub(crate) fn expect_ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error ({:?}): {e}", e.kind()),
    }
}
