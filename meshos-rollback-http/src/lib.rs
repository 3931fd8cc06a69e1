//! HTTP-based providers for meshos-rollback.

mod client;
mod error;
pub mod prometheus;
