//! An in-memory [`Deployer`]: services with revision history and timed rollouts.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use secrecy::SecretString;

use crate::clock::SharedClock;
use crate::model::{Region, Revision, RevisionHistory, RevisionId, RollbackTarget, ServiceId};
use crate::provider::{
    Deployer, DeployerCapabilities, EnvVar, ImageUpdate, Instance, InstanceState, RevisionChange,
    RolloutPhase, RolloutStatus,
};
use crate::wait::{Backoff, conditions, poll_until};
use crate::{Error, Result};

/// A region's services, like an ECS cluster or a Kubernetes namespace in memory.
///
/// Every service has one container, a desired instance count, registered revisions and
/// a deployment history. A rollout takes the configured time on the shared clock;
/// rollouts to a revision marked failing never complete (a crash loop).
///
/// ```
/// # tokio_test_block_on(async {
/// use std::sync::Arc;
/// use meshos_rollback_core::clock::SystemClock;
/// use meshos_rollback_core::memory::InMemoryDeployer;
/// use meshos_rollback_core::model::{Region, Revision, RollbackTarget, ServiceId};
/// use meshos_rollback_core::provider::Deployer;
///
/// let deployer = InMemoryDeployer::new(Region::new("us-east-1")?, Arc::new(SystemClock))
///     .with_rollout_time(std::time::Duration::ZERO);
/// let api = ServiceId::ecs("meshos-us-east-1", "meshos-api");
/// deployer.add_service(&api, "app", 3, Revision::new("v2.4.9"));
/// deployer.deploy(&api, Revision::new("v2.5.0"))?;
///
/// let change = deployer.roll_back(&api, &RollbackTarget::Previous).await?;
/// assert_eq!(change.to.as_str(), "v2.4.9");
/// assert!(deployer.wait_until_stable(&api).await?.is_complete());
/// # Ok::<_, meshos_rollback_core::Error>(()) }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f) }
/// ```
#[derive(Debug)]
pub struct InMemoryDeployer {
    region: Region,
    clock: SharedClock,
    rollout_time: Mutex<Duration>,
    poll: Backoff,
    services: Mutex<HashMap<ServiceId, ServiceState>>,
}

#[derive(Debug)]
struct RevisionSpec {
    revision: Revision,
    env: BTreeMap<String, SecretString>,
}

#[derive(Debug, Clone)]
struct Deployment {
    revision: RevisionId,
    started_at: Timestamp,
    completes_at: Timestamp,
}

#[derive(Debug)]
struct ServiceState {
    container: String,
    desired: u32,
    revisions: HashMap<RevisionId, RevisionSpec>,
    failing: Vec<RevisionId>,
    /// Every deployment in order; the last one is current.
    deployments: Vec<Deployment>,
    derived: u32,
}

impl ServiceState {
    fn current(&self) -> &Deployment {
        self.deployments
            .last()
            .expect("a service always has a deployment")
    }

    fn is_failing(&self, id: &RevisionId) -> bool {
        self.failing.contains(id)
    }

    /// The revision serving at `at`: the newest deployment that completed by then.
    fn serving_at(&self, at: Timestamp) -> Option<&RevisionId> {
        self.deployments
            .iter()
            .rev()
            .find(|d| d.completes_at <= at && !self.is_failing(&d.revision))
            .map(|d| &d.revision)
    }

    fn previous_distinct(&self) -> Vec<RevisionId> {
        let current = &self.current().revision;
        let mut out: Vec<RevisionId> = Vec::new();
        for d in self.deployments.iter().rev() {
            if &d.revision != current && !out.contains(&d.revision) {
                out.push(d.revision.clone());
            }
        }
        out
    }
}

impl InMemoryDeployer {
    /// An empty region. Rollouts take 30 seconds of `clock` time by default.
    pub fn new(region: Region, clock: SharedClock) -> Self {
        InMemoryDeployer {
            region,
            clock,
            rollout_time: Mutex::new(Duration::from_secs(30)),
            poll: Backoff {
                initial: Duration::from_secs(1),
                factor: 2.0,
                max_interval: Duration::from_secs(10),
                max_checks: None,
            },
            services: Mutex::new(HashMap::new()),
        }
    }

    /// Sets how long a rollout takes.
    pub fn with_rollout_time(self, d: Duration) -> Self {
        self.set_rollout_time(d);
        self
    }

    /// Sets how long the next rollouts take.
    pub fn set_rollout_time(&self, d: Duration) {
        *self.rollout_time.lock().expect("lock") = d;
    }

    /// The region.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Adds a service running `initial`, stable, with `desired` instances of one
    /// container named `container`.
    pub fn add_service(
        &self,
        service: &ServiceId,
        container: &str,
        desired: u32,
        initial: Revision,
    ) {
        let now = self.clock.now();
        let id = initial.id.clone();
        let mut revisions = HashMap::new();
        revisions.insert(
            id.clone(),
            RevisionSpec {
                revision: stamp(initial, now),
                env: BTreeMap::new(),
            },
        );
        self.services.lock().expect("lock").insert(
            service.clone(),
            ServiceState {
                container: container.to_owned(),
                desired,
                revisions,
                failing: Vec::new(),
                deployments: vec![Deployment {
                    revision: id,
                    started_at: now,
                    completes_at: now,
                }],
                derived: 0,
            },
        );
    }

    /// Deploys a new revision (the release that may go wrong), starting a rollout.
    pub fn deploy(&self, service: &ServiceId, revision: Revision) -> Result<()> {
        let now = self.clock.now();
        let until = self.rollout_end(now);
        self.with_service(service, |s| {
            let id = revision.id.clone();
            s.revisions.entry(id.clone()).or_insert(RevisionSpec {
                revision: stamp(revision, now),
                env: BTreeMap::new(),
            });
            s.deployments.push(Deployment {
                revision: id,
                started_at: now,
                completes_at: until,
            });
            Ok(())
        })
    }

    /// Makes rollouts to `revision` fail, like a version that crash-loops.
    pub fn mark_failing(&self, service: &ServiceId, revision: &RevisionId) -> Result<()> {
        self.with_service(service, |s| {
            s.failing.push(revision.clone());
            Ok(())
        })
    }

    /// The revision the service is meant to run.
    pub fn current_revision(&self, service: &ServiceId) -> Result<RevisionId> {
        self.with_service(service, |s| Ok(s.current().revision.clone()))
    }

    /// The revision actually serving at `at` (the newest completed rollout by then).
    pub fn serving_revision_at(&self, service: &ServiceId, at: Timestamp) -> Option<RevisionId> {
        let services = self.services.lock().expect("lock");
        services.get(service)?.serving_at(at).cloned()
    }

    /// A registered revision of the service.
    pub fn revision(&self, service: &ServiceId, id: &RevisionId) -> Option<Revision> {
        let services = self.services.lock().expect("lock");
        Some(services.get(service)?.revisions.get(id)?.revision.clone())
    }

    /// The environment of the current revision (values are secret).
    pub fn env(&self, service: &ServiceId) -> Result<BTreeMap<String, SecretString>> {
        self.with_service(service, |s| {
            let cur = s.current().revision.clone();
            Ok(s.revisions[&cur].env.clone())
        })
    }

    /// How many deployments the service has had, rollbacks included.
    pub fn deployment_count(&self, service: &ServiceId) -> Result<usize> {
        self.with_service(service, |s| Ok(s.deployments.len()))
    }

    fn rollout_end(&self, now: Timestamp) -> Timestamp {
        let d = *self.rollout_time.lock().expect("lock");
        now.saturating_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
            .unwrap_or(Timestamp::MAX)
    }

    fn with_service<T>(
        &self,
        service: &ServiceId,
        f: impl FnOnce(&mut ServiceState) -> Result<T>,
    ) -> Result<T> {
        let mut services = self.services.lock().expect("lock");
        let s = services
            .get_mut(service)
            .ok_or_else(|| Error::not_found(self, format!("service {service}")))?;
        f(s)
    }

    /// Starts a rollout to `to` unless it is already current.
    fn move_to(&self, s: &mut ServiceState, to: RevisionId) -> RevisionChange {
        let from = s.current().revision.clone();
        if from == to {
            return RevisionChange {
                from,
                to,
                changed: false,
            };
        }
        let now = self.clock.now();
        s.deployments.push(Deployment {
            revision: to.clone(),
            started_at: now,
            completes_at: self.rollout_end(now),
        });
        RevisionChange {
            from,
            to,
            changed: true,
        }
    }

    /// Registers a revision derived from the current one and rolls it out.
    fn derive(
        &self,
        s: &mut ServiceState,
        edit: impl FnOnce(&mut RevisionSpec) -> bool,
    ) -> RevisionChange {
        let cur = s.current().revision.clone();
        let base = &s.revisions[&cur];
        let mut spec = RevisionSpec {
            revision: base.revision.clone(),
            env: base.env.clone(),
        };
        if !edit(&mut spec) {
            return RevisionChange {
                from: cur.clone(),
                to: cur,
                changed: false,
            };
        }
        s.derived += 1;
        let root = cur.as_str().split('+').next().unwrap_or(cur.as_str());
        let id = RevisionId::new(format!("{root}+{}", s.derived));
        spec.revision.id = id.clone();
        spec.revision.created_at = Some(self.clock.now());
        if s.is_failing(&cur) {
            s.failing.push(id.clone());
        }
        s.revisions.insert(id.clone(), spec);
        self.move_to(s, id)
    }

    fn check_container(&self, s: &ServiceState, container: Option<&str>) -> Result<()> {
        match container {
            Some(c) if c != s.container => Err(Error::not_found(
                self,
                format!("container {c:?} (the service has {:?})", s.container),
            )),
            _ => Ok(()),
        }
    }
}

fn stamp(mut r: Revision, now: Timestamp) -> Revision {
    r.created_at.get_or_insert(now);
    r
}

impl fmt::Display for InMemoryDeployer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InMemoryDeployer({})", self.region)
    }
}

#[async_trait]
impl Deployer for InMemoryDeployer {
    fn capabilities(&self) -> DeployerCapabilities {
        DeployerCapabilities::ALL
    }

    async fn revisions(&self, service: &ServiceId) -> Result<RevisionHistory> {
        let now = self.clock.now();
        self.with_service(service, |s| {
            let cur = s.current();
            Ok(RevisionHistory {
                current: s.revisions[&cur.revision].revision.clone(),
                previous: s
                    .previous_distinct()
                    .iter()
                    .map(|id| s.revisions[id].revision.clone())
                    .collect(),
                rollout_in_progress: cur.completes_at > now || s.is_failing(&cur.revision),
            })
        })
    }

    async fn roll_back(
        &self,
        service: &ServiceId,
        target: &RollbackTarget,
    ) -> Result<RevisionChange> {
        self.with_service(service, |s| {
            let to = match target {
                RollbackTarget::Previous => {
                    s.previous_distinct().into_iter().next().ok_or_else(|| {
                        Error::not_found(
                            self,
                            format!("a previous revision of {service} (it has only one)"),
                        )
                    })?
                }
                RollbackTarget::Revision(id) => {
                    if !s.revisions.contains_key(id) {
                        return Err(Error::not_found(
                            self,
                            format!("revision {id} of {service}"),
                        ));
                    }
                    id.clone()
                }
            };
            Ok(self.move_to(s, to))
        })
    }

    async fn rollout_status(&self, service: &ServiceId) -> Result<RolloutStatus> {
        let now = self.clock.now();
        self.with_service(service, |s| {
            let cur = s.current().clone();
            let desired = s.desired;
            let total = (cur.completes_at - cur.started_at).as_secs_f64();
            let done = (now - cur.started_at).as_secs_f64();
            let progress = if total <= 0.0 {
                1.0
            } else {
                (done / total).clamp(0.0, 1.0)
            };
            let updated = (f64::from(desired) * progress).round() as u32;
            let status = if s.is_failing(&cur.revision) {
                let failed = now >= cur.completes_at;
                RolloutStatus {
                    revision: cur.revision.clone(),
                    phase: if failed {
                        RolloutPhase::Failed
                    } else {
                        RolloutPhase::InProgress
                    },
                    desired,
                    updated,
                    ready: 0,
                    message: if failed {
                        "new instances crash-loop: progress deadline exceeded".into()
                    } else {
                        format!("{updated} of {desired} updated instances started, none ready")
                    },
                }
            } else if now >= cur.completes_at {
                RolloutStatus {
                    revision: cur.revision.clone(),
                    phase: RolloutPhase::Complete,
                    desired,
                    updated: desired,
                    ready: desired,
                    message: String::new(),
                }
            } else {
                RolloutStatus {
                    revision: cur.revision.clone(),
                    phase: RolloutPhase::InProgress,
                    desired,
                    updated,
                    ready: updated,
                    message: format!("{updated} of {desired} updated instances are ready"),
                }
            };
            Ok(status)
        })
    }

    async fn wait_until_stable(&self, service: &ServiceId) -> Result<RolloutStatus> {
        let what = format!("{self}: rollout of {service}");
        poll_until(
            &what,
            || self.rollout_status(service),
            &conditions::rollout_complete,
            &self.poll,
        )
        .await
    }

    async fn set_env(&self, service: &ServiceId, var: &EnvVar) -> Result<RevisionChange> {
        use secrecy::ExposeSecret;
        if var.name.is_empty() || var.name.contains('=') {
            return Err(Error::invalid(
                "env.name",
                format!("{:?} is not an environment variable name", var.name),
            ));
        }
        self.with_service(service, |s| {
            self.check_container(s, var.container.as_deref())?;
            Ok(self.derive(s, |spec| {
                let same = spec
                    .env
                    .get(&var.name)
                    .is_some_and(|v| v.expose_secret() == var.value.expose_secret());
                if !same {
                    spec.env.insert(var.name.clone(), var.value.clone());
                }
                !same
            }))
        })
    }

    async fn set_image(&self, service: &ServiceId, update: &ImageUpdate) -> Result<RevisionChange> {
        if update.image.trim().is_empty() {
            return Err(Error::invalid("image", "must not be empty"));
        }
        self.with_service(service, |s| {
            self.check_container(s, update.container.as_deref())?;
            Ok(self.derive(s, |spec| {
                let same = spec.revision.image.as_deref() == Some(update.image.as_str());
                spec.revision.image = Some(update.image.clone());
                !same
            }))
        })
    }

    async fn instances(&self, service: &ServiceId) -> Result<Vec<Instance>> {
        let status = self.rollout_status(service).await?;
        let now = self.clock.now();
        self.with_service(service, |s| {
            let old = s.serving_at(now).cloned();
            let mut out = Vec::new();
            for i in 0..s.desired {
                let on_new = i < status.updated;
                let (revision, state, ready, detail) = if on_new {
                    if s.is_failing(&status.revision) {
                        (
                            Some(status.revision.clone()),
                            InstanceState::Failed,
                            false,
                            Some("CrashLoopBackOff".to_owned()),
                        )
                    } else {
                        (
                            Some(status.revision.clone()),
                            InstanceState::Running,
                            i < status.ready,
                            (i >= status.ready).then(|| "starting".to_owned()),
                        )
                    }
                } else {
                    (old.clone(), InstanceState::Running, true, None)
                };
                out.push(Instance {
                    id: format!("{}-{}-{i}", self.region, service.name()),
                    revision,
                    state,
                    ready,
                    detail,
                });
            }
            Ok(out)
        })
    }
}
