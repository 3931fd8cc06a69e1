//! Conformance of a [`RollbackLock`].

use std::time::Duration;

use super::{expect_kind, expect_ok};
use crate::ErrorKind;
use crate::provider::{LockKey, RollbackLock};

/// Runs the lock suite on a fresh `key`: exclusion with the holder named, renew,
/// release, two concurrent contenders, and recovery after a holder stops renewing.
/// The suite sleeps a little over `ttl` (on tokio's clock) to let a lease expire, so
/// backends with real time should pass a short `ttl` (Kubernetes: 1-2 s).
pub async fn run(lock: &dyn RollbackLock, key: &LockKey, ttl: Duration) {
    let who = lock.to_string();
    let a = expect_ok(lock.acquire(key, "holder-a", ttl).await, "acquire");
    assert_eq!(a.holder, "holder-a");
    let err = expect_kind(
        lock.acquire(key, "holder-b", ttl).await,
        ErrorKind::Conflict,
        "acquire a held lock",
    );
    assert!(
        err.to_string().contains("holder-a"),
        "{who}: the conflict names the holder: {err}"
    );
    let renewed = expect_ok(lock.renew(&a, ttl).await, "renew");
    assert!(renewed.expires_at >= a.expires_at, "{who}: renew extends");
    expect_ok(lock.release(&renewed).await, "release");

    // Two contenders at once: exactly one wins.
    let (x, y) = tokio::join!(
        lock.acquire(key, "holder-x", ttl),
        lock.acquire(key, "holder-y", ttl)
    );
    assert!(
        x.is_ok() != y.is_ok(),
        "{who}: exactly one of two contenders wins: {x:?} {y:?}"
    );
    let winner = x.or(y).expect("one winner");

    // The winner dies without releasing: after its ttl another holder gets the lock.
    tokio::time::sleep(ttl + ttl / 2 + Duration::from_millis(200)).await;
    let c = expect_ok(
        lock.acquire(key, "holder-c", ttl).await,
        "acquire after expiry",
    );
    expect_kind(
        lock.renew(&winner, ttl).await,
        ErrorKind::Conflict,
        "renew a lost lease",
    );
    // Releasing a lost lease must not release the new holder's.
    expect_ok(lock.release(&winner).await, "release a lost lease");
    expect_kind(
        lock.acquire(key, "holder-d", ttl).await,
        ErrorKind::Conflict,
        "the new holder keeps the lock",
    );
    expect_ok(lock.release(&c).await, "release");
    let d = expect_ok(
        lock.acquire(key, "holder-d", ttl).await,
        "acquire after release",
    );
    expect_ok(lock.release(&d).await, "release");
}
