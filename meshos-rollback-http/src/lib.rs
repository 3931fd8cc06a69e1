//! HTTP-based providers for meshos-rollback.

mod client;
mod error;
pub mod health;
pub mod pagerduty;
pub mod prometheus;
pub mod reports;
pub mod slack;
