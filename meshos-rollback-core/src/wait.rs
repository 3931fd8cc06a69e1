//! Waiting: a pure condition plus a generic poller.
//!
//! A [`Condition`] judges one observed value (met, not yet, or failed for good); it
//! is a pure function, tested without any backend. [`poll_until`] fetches values with
//! adaptive backoff until the condition is met or has failed. It adds no hidden
//! deadline: the caller, a [`Backoff`] with `max_checks`, or a timeout layer bounds it.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::{Error, Result};

/// The judgement of a [`Condition`] on one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The wait is over.
    Met,
    /// Keep waiting.
    NotYet,
    /// It will never be met; stop with this reason.
    Failed(String),
}

/// A pure test of a value, such as "the rollout is complete".
pub trait Condition<T: ?Sized>: Send + Sync {
    /// Judges one value.
    fn check(&self, value: &T) -> Verdict;
}

impl<T: ?Sized, F> Condition<T> for F
where
    F: Fn(&T) -> Verdict + Send + Sync,
{
    fn check(&self, value: &T) -> Verdict {
        self(value)
    }
}

/// Combinators for conditions.
pub trait ConditionExt<T: ?Sized>: Condition<T> + Sized {
    /// Met when both are met; failed when either fails.
    fn and<C: Condition<T>>(self, other: C) -> And<Self, C> {
        And(self, other)
    }

    /// Met when either is met; failed only when both fail.
    fn or<C: Condition<T>>(self, other: C) -> Or<Self, C> {
        Or(self, other)
    }

    /// Met when `self` is not yet met; failures stay failures.
    fn not(self) -> Not<Self> {
        Not(self)
    }
}

impl<T: ?Sized, C: Condition<T>> ConditionExt<T> for C {}

/// See [`ConditionExt::and`].
#[derive(Debug, Clone, Copy)]
pub struct And<A, B>(A, B);

impl<T: ?Sized, A: Condition<T>, B: Condition<T>> Condition<T> for And<A, B> {
    fn check(&self, value: &T) -> Verdict {
        match (self.0.check(value), self.1.check(value)) {
            (Verdict::Failed(r), _) | (_, Verdict::Failed(r)) => Verdict::Failed(r),
            (Verdict::Met, Verdict::Met) => Verdict::Met,
            _ => Verdict::NotYet,
        }
    }
}

/// See [`ConditionExt::or`].
#[derive(Debug, Clone, Copy)]
pub struct Or<A, B>(A, B);

impl<T: ?Sized, A: Condition<T>, B: Condition<T>> Condition<T> for Or<A, B> {
    fn check(&self, value: &T) -> Verdict {
        match (self.0.check(value), self.1.check(value)) {
            (Verdict::Met, _) | (_, Verdict::Met) => Verdict::Met,
            (Verdict::Failed(a), Verdict::Failed(b)) => Verdict::Failed(format!("{a}; {b}")),
            _ => Verdict::NotYet,
        }
    }
}

/// See [`ConditionExt::not`].
#[derive(Debug, Clone, Copy)]
pub struct Not<A>(A);

impl<T: ?Sized, A: Condition<T>> Condition<T> for Not<A> {
    fn check(&self, value: &T) -> Verdict {
        match self.0.check(value) {
            Verdict::Met => Verdict::NotYet,
            Verdict::NotYet => Verdict::Met,
            failed => failed,
        }
    }
}

/// How often to poll: quick at first, backing off to a ceiling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Pause before the second check.
    pub initial: Duration,
    /// Growth of the pause per check.
    pub factor: f64,
    /// The longest pause.
    pub max_interval: Duration,
    /// Give up after this many checks; `None` polls until the condition decides.
    pub max_checks: Option<u32>,
}

impl Default for Backoff {
    /// 1 s, doubling up to 15 s (the AWS CLI waiter's fixed interval), no check limit.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            factor: 2.0,
            max_interval: Duration::from_secs(15),
            max_checks: None,
        }
    }
}

impl Backoff {
    /// The pause after check number `n` (0-based).
    pub fn interval(&self, n: u32) -> Duration {
        let exp = self.factor.max(1.0).powi(n.min(64) as i32);
        let secs = (self.initial.as_secs_f64() * exp).min(self.max_interval.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// Sets the check limit.
    pub fn with_max_checks(mut self, n: u32) -> Self {
        self.max_checks = Some(n);
        self
    }
}

/// Fetches values until `condition` is met (returning the last value) or has failed
/// (an [`Error::Failed`] with the reason). Fetch errors end the wait; wrap the
/// provider in a retry layer to ride out passing ones. `what` names the wait in
/// errors, with the provider: `EcsDeployer(us-east-1/prod): rollout of meshos-api`.
pub async fn poll_until<T, F, Fut, C>(
    what: &(dyn fmt::Display + Sync),
    mut fetch: F,
    condition: &C,
    backoff: &Backoff,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
    C: Condition<T> + ?Sized,
{
    let started = tokio::time::Instant::now();
    let mut n: u32 = 0;
    loop {
        let value = fetch().await?;
        match condition.check(&value) {
            Verdict::Met => return Ok(value),
            Verdict::Failed(reason) => {
                return Err(Error::Failed {
                    provider: what.to_string(),
                    message: reason,
                    source: None,
                });
            }
            Verdict::NotYet => {}
        }
        n += 1;
        if backoff.max_checks.is_some_and(|max| n >= max) {
            return Err(Error::Timeout {
                operation: format!("{what} (still not done after {n} checks)"),
                after: started.elapsed(),
            });
        }
        tokio::time::sleep(backoff.interval(n - 1)).await;
    }
}

/// Ready-made conditions for the provider types.
pub mod conditions {
    use super::Verdict;
    use crate::provider::{ChangeStatus, DbInstance, DbStatus, RolloutPhase, RolloutStatus};

    /// The rollout completed; a failed rollout fails the wait.
    pub fn rollout_complete(status: &RolloutStatus) -> Verdict {
        match status.phase {
            RolloutPhase::Complete => Verdict::Met,
            RolloutPhase::InProgress => Verdict::NotYet,
            RolloutPhase::Failed => Verdict::Failed(format!(
                "rollout of revision {} failed: {}",
                status.revision, status.message
            )),
        }
    }

    /// The instance is available; a failed instance fails the wait.
    pub fn db_available(instance: &DbInstance) -> Verdict {
        match &instance.status {
            DbStatus::Available => Verdict::Met,
            DbStatus::Failed => Verdict::Failed(format!("database {} failed", instance.id)),
            _ => Verdict::NotYet,
        }
    }

    /// The DNS change is live.
    pub fn change_in_sync(status: &ChangeStatus) -> Verdict {
        match status {
            ChangeStatus::InSync => Verdict::Met,
            ChangeStatus::Pending => Verdict::NotYet,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{RolloutPhase, RolloutStatus};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn status(phase: RolloutPhase, ready: u32) -> RolloutStatus {
        RolloutStatus {
            revision: "7".into(),
            phase,
            desired: 3,
            updated: 3,
            ready,
            message: String::new(),
        }
    }

    #[test]
    fn combinators() {
        let ready = |s: &RolloutStatus| {
            if s.ready == s.desired {
                Verdict::Met
            } else {
                Verdict::NotYet
            }
        };
        let both = conditions::rollout_complete.and(ready);
        assert_eq!(both.check(&status(RolloutPhase::Complete, 3)), Verdict::Met);
        assert_eq!(
            both.check(&status(RolloutPhase::Complete, 2)),
            Verdict::NotYet
        );
        assert!(matches!(
            both.check(&status(RolloutPhase::Failed, 3)),
            Verdict::Failed(_)
        ));
        let either = conditions::rollout_complete.or(ready);
        assert_eq!(
            either.check(&status(RolloutPhase::InProgress, 3)),
            Verdict::Met
        );
        let not = conditions::rollout_complete.not();
        assert_eq!(
            not.check(&status(RolloutPhase::InProgress, 0)),
            Verdict::Met
        );
        assert!(matches!(
            not.check(&status(RolloutPhase::Failed, 0)),
            Verdict::Failed(_)
        ));
    }

    #[test]
    fn backoff_grows_to_ceiling() {
        let b = Backoff::default();
        let got: Vec<u64> = (0..6).map(|n| b.interval(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 15, 15]);
    }

    #[tokio::test(start_paused = true)]
    async fn polls_until_met_with_backoff() {
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let out = poll_until(
            &"test rollout",
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                Ok(status(
                    if n >= 3 {
                        RolloutPhase::Complete
                    } else {
                        RolloutPhase::InProgress
                    },
                    3,
                ))
            },
            &conditions::rollout_complete,
            &Backoff::default(),
        )
        .await
        .unwrap();
        assert!(out.is_complete());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Pauses 1 + 2 + 4 seconds.
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn failure_and_check_limit_end_the_wait() {
        let err = poll_until(
            &"p",
            || async { Ok(status(RolloutPhase::Failed, 0)) },
            &conditions::rollout_complete,
            &Backoff::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Failed { .. }), "{err}");
        let err = poll_until(
            &"p",
            || async { Ok(status(RolloutPhase::InProgress, 0)) },
            &conditions::rollout_complete,
            &Backoff::default().with_max_checks(3),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("still not done after 3 checks"),
            "{err}"
        );
    }
}
