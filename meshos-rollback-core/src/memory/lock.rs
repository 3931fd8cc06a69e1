//! An in-process [`RollbackLock`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use crate::clock::SharedClock;
use crate::provider::{Lease, LockKey, RollbackLock};
use crate::{Error, Result};

/// Locks held in this process, with expiry on the shared clock. Enough when one
/// process runs every rollback; use a distributed lock (a Kubernetes Lease) otherwise.
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
