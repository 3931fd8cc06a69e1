//! Rollback playbooks as code.
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
pub mod wait;

pub use error::{Error, ErrorKind, Result};
