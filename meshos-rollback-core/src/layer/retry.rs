//! Retry of retryable errors on idempotent calls, with a budget shared across regions.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Layer, Operation};
use crate::Result;
use crate::wait::Backoff;

/// How often and how fast to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Pause before each retry.
    pub backoff: Backoff,
    /// Randomise each pause between half and all of it, so regions retrying the same
    /// throttled API do not retry in lockstep.
    pub jitter: bool,
    /// The longest `Retry-After` honoured: a backend asking for more is not retried
    /// (the error goes back to the caller) rather than holding the rollback.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts; 200 ms doubling up to 5 s; jitter on; `Retry-After` honoured up
    /// to a minute.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            backoff: Backoff {
                initial: Duration::from_millis(200),
                factor: 2.0,
                max_interval: Duration::from_secs(5),
                max_checks: None,
            },
            jitter: true,
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Retries allowed across every provider sharing it: a rollback of 64 regions against
/// a throttled API should not multiply its load by the attempt count. Each retry
/// withdraws one token; each success deposits a fraction of one, up to the cap
/// (tower's retry budget, in tokens instead of time).
#[derive(Debug)]
pub struct RetryBudget {
    millitokens: AtomicU64,
    max_millitokens: u64,
    deposit_millitokens: u64,
}

impl RetryBudget {
    /// A budget of `tokens` retries, refilled by `deposit` tokens per success
    /// (for example 0.1: ten successes earn one retry), never above `tokens`.
    pub fn new(tokens: u32, deposit: f64) -> Arc<Self> {
        let max = u64::from(tokens) * 1000;
        Arc::new(RetryBudget {
            millitokens: AtomicU64::new(max),
            max_millitokens: max,
            deposit_millitokens: (deposit.clamp(0.0, 1000.0) * 1000.0) as u64,
        })
    }

    /// Takes one retry from the budget, if there is one.
    pub fn withdraw(&self) -> bool {
        self.millitokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| m.checked_sub(1000))
            .is_ok()
    }

    /// Credits a success.
    pub fn deposit(&self) {
        let _ = self
            .millitokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                Some((m + self.deposit_millitokens).min(self.max_millitokens))
            });
    }

    /// Whole retries left.
    pub fn remaining(&self) -> u32 {
        u32::try_from(self.millitokens.load(Ordering::Acquire) / 1000).unwrap_or(u32::MAX)
    }
}

/// Retries calls that failed with a retryable error, if the call is idempotent and
/// the shared budget allows.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: RetryPolicy,
    budget: Arc<RetryBudget>,
}

impl RetryLayer {
    /// A retry layer drawing on `budget` (share one budget across regions).
    pub fn new(policy: RetryPolicy, budget: Arc<RetryBudget>) -> Self {
        RetryLayer { policy, budget }
    }

    /// The shared budget.
    pub fn budget(&self) -> &Arc<RetryBudget> {
        &self.budget
    }

    fn pause(&self, retry: u32) -> Duration {
        let base = self.policy.backoff.interval(retry);
        if self.policy.jitter {
            base.mul_f64(0.5 + fastrand::f64() * 0.5)
        } else {
            base
        }
    }
}

impl Layer for RetryLayer {
    async fn call<T, F, Fut>(&self, op: &Operation<'_>, f: F) -> Result<T>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        let mut attempt = 1;
        loop {
            match f().await {
                Ok(v) => {
                    self.budget.deposit();
                    return Ok(v);
                }
                Err(e) => {
                    let asked = e.retry_after();
                    let retry = e.is_retryable()
                        && op.idempotent
                        && attempt < self.policy.max_attempts
                        && asked.is_none_or(|a| a <= self.policy.max_retry_after)
                        && self.budget.withdraw();
                    if !retry {
                        return Err(e);
                    }
                    // The backend's own delay, when it named one, is the least we wait.
                    let pause = self.pause(attempt - 1).max(asked.unwrap_or_default());
                    // The kind only: provider messages may quote secrets.
                    tracing::warn!(
                        provider = %op.provider, op = op.name, attempt, kind = ?e.kind(),
                        "retrying in {pause:?}"
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
            }
        }
    }
}
