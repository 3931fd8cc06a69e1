//! [`LeaseLock`]: a [`RollbackLock`] on `coordination.k8s.io/v1` Leases, so deploy
//! tools in different pods never roll back the same service at once.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use meshos_rollback_core::provider::{Lease, LockKey, RollbackLock};
use meshos_rollback_core::{Error, Result};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::from_kube;

/// How often an operation re-reads the Lease after losing a write race to a change
/// that may not concern it (a label added by someone else).
const ATTEMPTS: u32 = 3;

/// A lock per [`LockKey`], held in a Lease object of one namespace.
///
/// * **acquire** creates the Lease, or takes it over when it is free or its holder
///   stopped renewing (`renewTime + leaseDurationSeconds` has passed). Every write
///   carries the `resourceVersion` that was read, so of two contenders exactly one
///   wins; the other gets [`Error::Conflict`] naming the winner.
/// * **renew** moves `renewTime` forward while the same acquisition still holds it.
/// * **release** clears `holderIdentity`, only if the same acquisition holds it.
///
/// The lease [`token`](Lease::token) is `leaseTransitions@acquireTime`, so a holder
/// that lost the lease and took it again later is told apart from its old self.
/// `leaseDurationSeconds` is whole seconds: a ttl is rounded up to the next second.
/// Expiry compares the writer's `renewTime` with the reader's clock, as the Lease
/// API intends: keep hosts' clocks synchronised (NTP) and ttls well above any skew.
///
/// RBAC: `get`, `create` and `update` on `leases` in the namespace.
#[derive(Clone)]
pub struct LeaseLock {
    client: Client,
    namespace: String,
}

impl fmt::Debug for LeaseLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseLock")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for LeaseLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseLock({})", self.namespace)
    }
}

fn leases() -> ApiResource {
    ApiResource {
        group: "coordination.k8s.io".into(),
        version: "v1".into(),
        api_version: "coordination.k8s.io/v1".into(),
        kind: "Lease".into(),
        plural: "leases".into(),
    }
}

/// The Lease fields the lock reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct LeaseSpecView {
    holder_identity: Option<String>,
    lease_duration_seconds: Option<i64>,
    acquire_time: Option<String>,
    renew_time: Option<String>,
    lease_transitions: Option<i64>,
}

impl LeaseSpecView {
    fn read(obj: &DynamicObject) -> Self {
        obj.data
            .get("spec")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .unwrap_or_default()
    }

    fn holder(&self) -> Option<&str> {
        self.holder_identity.as_deref().filter(|h| !h.is_empty())
    }

    fn expires_at(&self) -> Option<Timestamp> {
        let renewed: Timestamp = self.renew_time.as_deref()?.parse().ok()?;
        renewed
            .checked_add(SignedDuration::from_secs(self.lease_duration_seconds?))
            .ok()
    }

    /// Held by someone, and not expired at `now`.
    fn held_at(&self, now: Timestamp) -> bool {
        self.holder().is_some() && self.expires_at().is_some_and(|e| e > now)
    }

    fn token(&self) -> String {
        format!(
            "{}@{}",
            self.lease_transitions.unwrap_or(0),
            self.acquire_time.as_deref().unwrap_or("")
        )
    }
}

/// Kubernetes `MicroTime`: RFC 3339 with exactly six fractional digits.
fn micro_time(t: Timestamp) -> String {
    format!(
        "{}.{:06}Z",
        t.strftime("%Y-%m-%dT%H:%M:%S"),
        t.subsec_microsecond()
    )
}

/// Reads a `MicroTime` back, so the lease's times are what the server stores.
fn parse_micro(s: &str) -> Timestamp {
    s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

impl LeaseLock {
    /// A lock keeping its Leases in `namespace`.
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        LeaseLock {
            client,
            namespace: namespace.into(),
        }
    }

    fn api(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &leases())
    }

    fn what(&self, key: &LockKey) -> String {
        format!("lease {}/{key}", self.namespace)
    }

    fn lease_seconds(ttl: Duration) -> Result<i64> {
        if ttl.is_zero() {
            return Err(Error::invalid("ttl", "must be longer than zero"));
        }
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        i32::try_from(secs)
            .map(i64::from)
            .map_err(|_| Error::invalid("ttl", format!("{secs} s does not fit a Lease")))
    }

    async fn read(&self, key: &LockKey) -> Result<Option<DynamicObject>> {
        self.api()
            .get_opt(key.as_str())
            .await
            .map_err(|e| from_kube(self, &self.what(key), e))
    }

    fn held_by_other(&self, key: &LockKey, spec: &LeaseSpecView) -> Error {
        Error::conflict(
            self,
            format!(
                "{} is held by {} until {}; wait for that rollback to finish",
                self.what(key),
                spec.holder().unwrap_or("?"),
                spec.expires_at()
                    .map_or_else(|| "unknown".to_owned(), |t| t.to_string())
            ),
        )
    }

    fn lost(&self, lease: &Lease) -> Error {
        Error::conflict(
            self,
            format!(
                "the lease {} of {} was lost (expired or taken over)",
                self.what(&lease.key),
                lease.holder
            ),
        )
    }

    /// Writes `obj` back with the resource version it was read at; `Ok(None)` when
    /// someone else wrote first.
    async fn replace(&self, key: &LockKey, obj: &DynamicObject) -> Result<Option<DynamicObject>> {
        match self
            .api()
            .replace(key.as_str(), &PostParams::default(), obj)
            .await
        {
            Ok(o) => Ok(Some(o)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(e) => Err(from_kube(self, &self.what(key), e)),
        }
    }

    fn lease_from(&self, key: &LockKey, obj: &DynamicObject) -> Lease {
        let spec = LeaseSpecView::read(obj);
        Lease {
            key: key.clone(),
            holder: spec.holder().unwrap_or_default().to_owned(),
            token: spec.token(),
            expires_at: spec.expires_at().unwrap_or(Timestamp::UNIX_EPOCH),
        }
    }
}

fn set_spec(obj: &mut DynamicObject, spec: Value) {
    if let Some(map) = obj.data.as_object_mut() {
        map.insert("spec".into(), spec);
    } else {
        obj.data = json!({ "spec": spec });
    }
}

#[async_trait]
impl RollbackLock for LeaseLock {
    async fn acquire(&self, key: &LockKey, holder: &str, ttl: Duration) -> Result<Lease> {
        let secs = Self::lease_seconds(ttl)?;
        if holder.is_empty() {
            return Err(Error::invalid("holder", "must not be empty"));
        }
        for _ in 0..ATTEMPTS {
            let now = parse_micro(&micro_time(Timestamp::now()));
            let stamp = micro_time(now);
            match self.read(key).await? {
                None => {
                    let mut obj = DynamicObject::new(key.as_str(), &leases());
                    obj.metadata.namespace = Some(self.namespace.clone());
                    obj.metadata.labels = Some(
                        [(
                            "app.kubernetes.io/managed-by".to_owned(),
                            "meshos-rollback".to_owned(),
                        )]
                        .into(),
                    );
                    set_spec(
                        &mut obj,
                        json!({
                            "holderIdentity": holder,
                            "leaseDurationSeconds": secs,
                            "acquireTime": stamp,
                            "renewTime": stamp,
                            "leaseTransitions": 1,
                        }),
                    );
                    match self.api().create(&PostParams::default(), &obj).await {
                        Ok(created) => return Ok(self.lease_from(key, &created)),
                        // Another contender created it first: look again.
                        Err(kube::Error::Api(s)) if s.code == 409 => continue,
                        Err(e) => return Err(from_kube(self, &self.what(key), e)),
                    }
                }
                Some(mut obj) => {
                    let spec = LeaseSpecView::read(&obj);
                    if spec.held_at(now) && spec.holder() != Some(holder) {
                        return Err(self.held_by_other(key, &spec));
                    }
                    set_spec(
                        &mut obj,
                        json!({
                            "holderIdentity": holder,
                            "leaseDurationSeconds": secs,
                            "acquireTime": stamp,
                            "renewTime": stamp,
                            "leaseTransitions": spec.lease_transitions.unwrap_or(0) + 1,
                        }),
                    );
                    if let Some(taken) = self.replace(key, &obj).await? {
                        return Ok(self.lease_from(key, &taken));
                    }
                }
            }
        }
        // Lost every race: whoever won holds it now.
        match self.read(key).await? {
            Some(obj) => Err(self.held_by_other(key, &LeaseSpecView::read(&obj))),
            None => Err(Error::conflict(
                self,
                format!("{} keeps changing; try again", self.what(key)),
            )),
        }
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let secs = Self::lease_seconds(ttl)?;
        for _ in 0..ATTEMPTS {
            let now = parse_micro(&micro_time(Timestamp::now()));
            let Some(mut obj) = self.read(&lease.key).await? else {
                return Err(self.lost(lease));
            };
            let spec = LeaseSpecView::read(&obj);
            if spec.holder() != Some(lease.holder.as_str())
                || spec.token() != lease.token
                || !spec.held_at(now)
            {
                return Err(self.lost(lease));
            }
            if let Some(s) = obj.data.get_mut("spec").and_then(Value::as_object_mut) {
                s.insert("renewTime".into(), json!(micro_time(now)));
                s.insert("leaseDurationSeconds".into(), json!(secs));
            }
            if let Some(renewed) = self.replace(&lease.key, &obj).await? {
                return Ok(self.lease_from(&lease.key, &renewed));
            }
        }
        Err(self.lost(lease))
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        for _ in 0..ATTEMPTS {
            let Some(mut obj) = self.read(&lease.key).await? else {
                return Ok(());
            };
            let spec = LeaseSpecView::read(&obj);
            if spec.holder() != Some(lease.holder.as_str()) || spec.token() != lease.token {
                // Lost already: the new holder keeps it.
                return Ok(());
            }
            if let Some(s) = obj.data.get_mut("spec").and_then(Value::as_object_mut) {
                s.remove("holderIdentity");
            }
            if self.replace(&lease.key, &obj).await?.is_some() {
                return Ok(());
            }
        }
        Err(Error::conflict(
            self,
            format!(
                "{} keeps changing; could not release it",
                self.what(&lease.key)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_has_six_digits() {
        let t: Timestamp = "2025-10-30T10:00:00.1234567Z".parse().unwrap();
        assert_eq!(micro_time(t), "2025-10-30T10:00:00.123456Z");
        let t: Timestamp = "2025-10-30T10:00:00Z".parse().unwrap();
        assert_eq!(micro_time(t), "2025-10-30T10:00:00.000000Z");
    }

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(
            LeaseLock::lease_seconds(Duration::from_millis(1500)).unwrap(),
            2
        );
        assert_eq!(
            LeaseLock::lease_seconds(Duration::from_secs(30)).unwrap(),
            30
        );
        assert!(LeaseLock::lease_seconds(Duration::ZERO).is_err());
        assert!(LeaseLock::lease_seconds(Duration::from_secs(u64::MAX)).is_err());
    }

    #[test]
    fn expiry_and_tokens() {
        let spec = LeaseSpecView {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(10),
            acquire_time: Some("2025-10-30T10:00:00.000000Z".into()),
            renew_time: Some("2025-10-30T10:00:05.000000Z".into()),
            lease_transitions: Some(3),
        };
        assert!(spec.held_at("2025-10-30T10:00:14Z".parse().unwrap()));
        assert!(!spec.held_at("2025-10-30T10:00:15Z".parse().unwrap()));
        assert_eq!(spec.token(), "3@2025-10-30T10:00:00.000000Z");
        let released = LeaseSpecView {
            holder_identity: None,
            ..spec
        };
        assert!(!released.held_at("2025-10-30T10:00:06Z".parse().unwrap()));
    }
}
