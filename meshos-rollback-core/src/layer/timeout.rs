//! A deadline per call, with longer ones for the waiting methods.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use super::{Layer, Operation};
use crate::{Error, Result};

/// Fails a call that takes longer than its deadline with
/// [`Error::Timeout`](crate::Error::Timeout). The waiting methods (`wait_until_stable`,
/// `wait_in_sync`, `wait_available`) usually need far longer than a plain API call: give
/// them their own deadline with [`TimeoutLayer::with_deadline_for`].
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    default: Duration,
    per_operation: HashMap<&'static str, Duration>,
}

impl TimeoutLayer {
    /// Every call gets `default`.
    pub fn new(default: Duration) -> Self {
        TimeoutLayer {
            default,
            per_operation: HashMap::new(),
        }
    }

    /// Calls of the method `name` get `deadline` instead.
    pub fn with_deadline_for(mut self, name: &'static str, deadline: Duration) -> Self {
        self.per_operation.insert(name, deadline);
        self
    }

    /// 30 s per call; 20 min for rollouts to settle; 5 min for DNS sync; 60 min for
    /// a database restore.
    pub fn standard() -> Self {
        TimeoutLayer::new(Duration::from_secs(30))
            .with_deadline_for("wait_until_stable", Duration::from_secs(20 * 60))
            .with_deadline_for("wait_in_sync", Duration::from_secs(5 * 60))
            .with_deadline_for("wait_available", Duration::from_secs(60 * 60))
    }

    /// The deadline for the method `name`.
    pub fn deadline(&self, name: &str) -> Duration {
        self.per_operation
            .get(name)
            .copied()
            .unwrap_or(self.default)
    }
}

impl Layer for TimeoutLayer {
    fn call<T, F, Fut>(&self, op: &Operation<'_>, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        let after = self.deadline(op.name);
        let operation = op.to_string();
        async move {
            match tokio::time::timeout(after, f()).await {
                Ok(out) => out,
                Err(_) => Err(Error::Timeout { operation, after }),
            }
        }
    }
}
