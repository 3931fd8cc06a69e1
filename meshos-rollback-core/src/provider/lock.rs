//! [`RollbackLock`]: at most one rollback per service and region at a time.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::display_mock;
use crate::clock::SharedClock;
use crate::model::ServiceRef;
use crate::{Error, Result};

/// The name of a lock: one per service and region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LockKey(String);

impl LockKey {
    /// The lock for rolling back `service`. Safe as a Kubernetes object name:
    /// lower-case letters, digits and `-`, at most 63 characters.
    pub fn for_service(service: &ServiceRef) -> Self {
        let raw = format!("rollback-{}-{}", service.region, service.service);
        let mut name: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        if name.len() > 63 {
            // Keep it unique when cut: a hash of the whole name replaces the tail.
            let hash = fnv1a(raw.as_bytes());
            name.truncate(63 - 17);
            name.push_str(&format!("-{hash:016x}"));
        }
        LockKey(name.trim_end_matches('-').to_owned())
    }

    /// A lock with an explicit name.
    pub fn new(name: impl Into<String>) -> Self {
        LockKey(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A held lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The lock.
    pub key: LockKey,
    /// Who holds it (a process or pod identity).
    pub holder: String,
    /// Proof of holding, checked on renew and release (a resource version, a counter).
    pub token: String,
    /// When it lapses unless renewed.
    pub expires_at: Timestamp,
}

/// A lock with expiry, so a crashed holder does not block rollbacks forever.
///
/// `acquire` on a lock held by someone else, and not expired, is a
/// [`Conflict`](crate::Error::Conflict) naming the holder.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RollbackLock: fmt::Debug + fmt::Display + Send + Sync {
    /// Takes the lock for `ttl`, if free or expired.
    async fn acquire(&self, key: &LockKey, holder: &str, ttl: Duration) -> Result<Lease>;

    /// Extends a held lease by its ttl. Fails with `Conflict` if it was lost.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease>;

    /// Gives the lock up. Releasing a lease that was lost is a no-op.
    async fn release(&self, lease: &Lease) -> Result<()>;
}

display_mock!(MockRollbackLock);

/// The in-process lock, the engine's default: locks held in this process, with
/// expiry on the shared clock. Enough when one process runs every rollback; use a
/// distributed lock (a Kubernetes Lease) otherwise. Also exported as
/// `memory::InMemoryLock`.
#[derive(Debug)]
pub struct InMemoryLock {
    clock: SharedClock,
    state: Mutex<(HashMap<LockKey, Lease>, u64)>,
}

impl InMemoryLock {
    /// No locks held.
    pub fn new(clock: SharedClock) -> Self {
        InMemoryLock {
            clock,
            state: Mutex::new((HashMap::new(), 0)),
        }
    }

    fn expiry(&self, ttl: Duration) -> Result<Timestamp> {
        let ttl = SignedDuration::try_from(ttl).map_err(|_| Error::invalid("ttl", "too long"))?;
        self.clock
            .now()
            .checked_add(ttl)
            .map_err(|_| Error::invalid("ttl", "too long"))
    }
}

impl fmt::Display for InMemoryLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemoryLock")
    }
}

#[async_trait]
impl RollbackLock for InMemoryLock {
    async fn acquire(&self, key: &LockKey, holder: &str, ttl: Duration) -> Result<Lease> {
        if ttl.is_zero() {
            return Err(Error::invalid("ttl", "must be longer than zero"));
        }
        let expires_at = self.expiry(ttl)?;
        let now = self.clock.now();
        let mut st = self.state.lock().expect("lock");
        if let Some(held) = st.0.get(key)
            && held.expires_at > now
            && held.holder != holder
        {
            return Err(Error::conflict(
                self,
                format!(
                    "{key} is held by {} until {}; wait for that rollback to finish",
                    held.holder, held.expires_at
                ),
            ));
        }
        st.1 += 1;
        let lease = Lease {
            key: key.clone(),
            holder: holder.to_owned(),
            token: st.1.to_string(),
            expires_at,
        };
        st.0.insert(key.clone(), lease.clone());
        Ok(lease)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let expires_at = self.expiry(ttl)?;
        let now = self.clock.now();
        let mut st = self.state.lock().expect("lock");
        match st.0.get_mut(&lease.key) {
            Some(held) if held.token == lease.token && held.expires_at > now => {
                held.expires_at = expires_at;
                Ok(held.clone())
            }
            _ => Err(Error::conflict(
                self,
                format!(
                    "the lease on {} was lost (expired or taken over)",
                    lease.key
                ),
            )),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let mut st = self.state.lock().expect("lock");
        if st
            .0
            .get(&lease.key)
            .is_some_and(|held| held.token == lease.token)
        {
            st.0.remove(&lease.key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Region, ServiceId};

    #[test]
    fn lock_keys_are_object_names() {
        let s = ServiceRef::new(
            Region::new("us-east-1").unwrap(),
            ServiceId::ecs("meshos-us-east-1", "meshos-api"),
        );
        assert_eq!(
            LockKey::for_service(&s).as_str(),
            "rollback-us-east-1-ecs-meshos-us-east-1-meshos-api"
        );
        let long = ServiceRef::new(
            Region::new("eu-central-1").unwrap(),
            ServiceId::kubernetes("a-very-long-namespace-name", "a-very-long-deployment-name"),
        );
        let other = ServiceRef::new(
            Region::new("eu-central-1").unwrap(),
            ServiceId::kubernetes("a-very-long-namespace-name", "a-very-long-deployment-nameX"),
        );
        let k = LockKey::for_service(&long);
        assert!(k.as_str().len() <= 63, "{k}");
        assert_ne!(k, LockKey::for_service(&other));
    }
}
