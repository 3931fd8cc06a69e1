//! [`K8sDeployer`]: a [`Deployer`] for Kubernetes Deployments with kubectl's rollout
//! semantics.

mod revision;
mod secret;
mod status;
mod view;

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures::{FutureExt, Stream, StreamExt};
use jiff::Timestamp;
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, WatchEvent, WatchParams,
};
use meshos_rollback_core::model::{
    Revision, RevisionHistory, RevisionId, RollbackTarget, ServiceId,
};
use meshos_rollback_core::provider::{
    Deployer, DeployerCapabilities, EnvVar, ImageUpdate, Instance, InstanceState, RevisionChange,
    RolloutPhase, RolloutStatus,
};
use meshos_rollback_core::wait::Backoff;
use meshos_rollback_core::{Error, Result};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::error::from_kube;
use revision::{
    History, UndoRefusal, equal_ignore_hash, first_image, owned_by, undo_patch, undo_target,
};
use status::{grace_left, instance, judge};
use view::{DeploymentView, PodView};

/// The field manager named on every change this crate makes.
const FIELD_MANAGER: &str = "meshos-rollback";

/// How long a watch request may stay open before the server ends it (the server
/// may end it sooner; the waiter then opens a new one).
const WATCH_TIMEOUT_SECS: u32 = 290;

/// Rolls Kubernetes Deployments back and watches their rollouts, with the semantics
/// of `kubectl rollout undo` and `kubectl rollout status`.
///
/// * **Revisions** are the deployment controller's revision numbers, read from the
///   `deployment.kubernetes.io/revision` annotation of the Deployment's own
///   ReplicaSets. When the controller reuses a ReplicaSet (an undo to revision 1
///   makes it revision 3, remembering `revision-history: 1`), the [`RevisionId`]
///   stays the number the template was *first* rolled out as, so rolling back twice
///   to the same id is a no-op; kubectl's current number finds the same ReplicaSet.
/// * **Undo** ([`Deployer::roll_back`]) picks the target as kubectl does (the
///   second-highest revision, or the named one), refuses a paused Deployment, does
///   nothing when the template already matches (ignoring `pod-template-hash`), and
///   sends kubectl's single JSON patch of `spec.template` and `metadata.annotations`.
/// * **Status** follows `kubectl rollout status` (judged only once
///   `observedGeneration` reaches `generation`; `ProgressDeadlineExceeded` fails;
///   updated, total and available replicas), and fails fast when a new pod waits in
///   CrashLoopBackOff, ImagePullBackOff or ErrImagePull past
///   [`with_fail_fast_grace`](Self::with_fail_fast_grace).
/// * **Waiting** watches the Deployment and re-checks on every change (and every
///   [`with_recheck_interval`](Self::with_recheck_interval) for the grace), falling
///   back to polling with a [`Backoff`] when the server refuses to watch.
///
/// Where it differs from kubectl, on purpose:
///
/// * a revision number from a ReplicaSet's `revision-history` also finds it (kubectl
///   only knows the current number), so ids stay valid across renumbering;
/// * templates are compared as JSON with nulls, empty maps and empty lists dropped
///   (apimachinery's semantic equality compares typed structs; on objects the API
///   server wrote, both agree);
/// * a paused Deployment is an [`Error::Conflict`] and a missing history an
///   [`Error::NotFound`], with kubectl's messages;
/// * the fail-fast check is an addition; kubectl only appends a warning.
///
/// RBAC: `get`, `watch` and `patch` on `deployments`, `list` on `replicasets` and
/// `pods` in the Deployment's namespace.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use meshos_rollback_core::model::{RollbackTarget, ServiceId};
/// use meshos_rollback_core::provider::Deployer;
/// use meshos_rollback_k8s::K8sDeployer;
///
/// let client = kube::Client::try_default().await?;
/// let deployer = K8sDeployer::new(client, "prod-us-east-1");
/// let api = ServiceId::kubernetes("production", "meshos-api");
/// let change = deployer.roll_back(&api, &RollbackTarget::Previous).await?;
/// println!("{deployer}: revision {} -> {}", change.from, change.to);
/// let status = deployer.wait_until_stable(&api).await?;
/// println!("{status}");
/// println!("{}", deployer.verify_pods(&api).await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct K8sDeployer {
    client: Client,
    scope: String,
    dry_run: bool,
    fail_fast_grace: Duration,
    recheck: Duration,
    poll: Backoff,
    watch: bool,
    /// Variables set through a Secret: name → the Secret's base name.
    secret_env: BTreeMap<String, String>,
}

impl fmt::Debug for K8sDeployer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("K8sDeployer")
            .field("scope", &self.scope)
            .field("dry_run", &self.dry_run)
            .field("fail_fast_grace", &self.fail_fast_grace)
            .field("recheck", &self.recheck)
            .field("poll", &self.poll)
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for K8sDeployer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "K8sDeployer({})", self.scope)
    }
}

fn deployments() -> ApiResource {
    ApiResource {
        group: "apps".into(),
        version: "v1".into(),
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        plural: "deployments".into(),
    }
}

fn replica_sets() -> ApiResource {
    ApiResource {
        group: "apps".into(),
        version: "v1".into(),
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        plural: "replicasets".into(),
    }
}

fn pods() -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "Pod".into(),
        plural: "pods".into(),
    }
}

/// A Deployment and its ReplicaSets, read together.
struct Snapshot {
    deployment: DeploymentView,
    history: History,
}

impl Snapshot {
    fn current_id(&self) -> RevisionId {
        RevisionId::new(self.history.id_for(&self.deployment.template).to_string())
    }
}

/// One look at a rollout, for the waiter.
struct Observation {
    status: RolloutStatus,
    resource_version: String,
    until_grace: Option<Duration>,
}

type WatchStream = Pin<Box<dyn Stream<Item = kube::Result<WatchEvent<DynamicObject>>> + Send>>;

impl K8sDeployer {
    /// A deployer using `client`; `scope` names the cluster or context in
    /// `Display` and errors (`K8sDeployer(prod-us-east-1)`).
    pub fn new(client: Client, scope: impl Into<String>) -> Self {
        K8sDeployer {
            client,
            scope: scope.into(),
            dry_run: false,
            fail_fast_grace: Duration::from_secs(120),
            recheck: Duration::from_secs(5),
            poll: Backoff {
                initial: Duration::from_secs(1),
                factor: 2.0,
                max_interval: Duration::from_secs(10),
                max_checks: None,
            },
            watch: true,
            secret_env: BTreeMap::new(),
        }
    }

    /// `set_env` of `env` (the playbook's `DATABASE_URL` switch) writes the value
    /// into an immutable Secret `<secret>-<hash of the value>` in the Deployment's
    /// namespace, key `env`, and points the containers at it with `secretKeyRef`.
    /// Without this, `set_env` is refused: a plain value in the spec is readable by
    /// anyone who may read the Deployment. The Secret is created with the deployer's
    /// own credentials (`create`/`get` on `secrets` in that namespace).
    pub fn with_secret_env(
        mut self,
        env: impl Into<String>,
        secret: impl Into<String>,
    ) -> Result<Self> {
        let secret = secret.into();
        secret::check_base(&secret)?;
        self.secret_env.insert(env.into(), secret);
        Ok(self)
    }

    /// Sends every change as a server-side dry run (`?dryRun=All`, kubectl's
    /// `--dry-run=server`): the server validates and admits it but stores nothing.
    /// A change that would be made reports `changed: true`.
    pub fn with_server_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// How long a new pod may wait in CrashLoopBackOff, ImagePullBackOff or
    /// ErrImagePull before the rollout counts as failed (default 120 s), counted
    /// from the pod's start. Zero fails on first sight.
    pub fn with_fail_fast_grace(mut self, grace: Duration) -> Self {
        self.fail_fast_grace = grace;
        self
    }

    /// While watching, how often the rollout is re-checked when nothing changes, so
    /// the fail-fast grace can run out (default 5 s).
    pub fn with_recheck_interval(mut self, every: Duration) -> Self {
        self.recheck = every.max(Duration::from_millis(10));
        self
    }

    /// The polling pace when the server cannot watch (default 1 s doubling to 10 s).
    /// Its `max_checks`, if set, bounds the wait with [`Error::Timeout`], counting
    /// every look at the rollout, watching or polling.
    pub fn with_poll_backoff(mut self, backoff: Backoff) -> Self {
        self.poll = backoff;
        self
    }

    /// Whether `wait_until_stable` may watch (default `true`); `false` always polls.
    pub fn with_watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// The Deployment's pods (`kubectl get pods -l <selector>`), each running and
    /// ready or with the reason it is not.
    pub async fn verify_pods(&self, service: &ServiceId) -> Result<PodReport> {
        Ok(PodReport {
            service: service.clone(),
            pods: self.instances(service).await?,
        })
    }

    fn target<'a>(&self, service: &'a ServiceId) -> Result<(&'a str, &'a str)> {
        match service {
            ServiceId::Kubernetes {
                namespace,
                deployment,
            } if !namespace.is_empty() && !deployment.is_empty() => Ok((namespace, deployment)),
            ServiceId::Kubernetes { .. } => Err(Error::invalid(
                "service",
                format!("{self}: {service} needs a namespace and a Deployment name"),
            )),
            other => Err(Error::invalid(
                "service",
                format!("{self} runs Kubernetes Deployments (ServiceId::Kubernetes), not {other}"),
            )),
        }
    }

    fn api(&self, ns: &str, resource: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, resource)
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            dry_run: self.dry_run,
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        }
    }

    fn malformed(&self, what: &str, e: serde_json::Error) -> Error {
        Error::Failed {
            provider: self.to_string(),
            message: format!("{what}: unexpected object from the API server: {e}"),
            source: Some(Box::new(e)),
        }
    }

    async fn get_deployment(&self, ns: &str, name: &str) -> Result<DeploymentView> {
        let what = format!("deployment {ns}/{name}");
        let obj = self
            .api(ns, &deployments())
            .get(name)
            .await
            .map_err(|e| from_kube(self, &what, e))?;
        DeploymentView::from_object(&obj).map_err(|e| self.malformed(&what, e))
    }

    fn selector(&self, d: &DeploymentView, ns: &str) -> Result<String> {
        let query = d
            .spec
            .selector
            .as_ref()
            .map(|s| s.to_query())
            .unwrap_or_default();
        if query.is_empty() {
            return Err(Error::failed(
                self,
                format!("deployment {ns}/{} has an empty selector", d.name),
            ));
        }
        Ok(query)
    }

    async fn snapshot(&self, ns: &str, name: &str) -> Result<Snapshot> {
        let deployment = self.get_deployment(ns, name).await?;
        let selector = self.selector(&deployment, ns)?;
        let list = self
            .api(ns, &replica_sets())
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| from_kube(self, &format!("replica sets of deployment {ns}/{name}"), e))?;
        let owned = owned_by(&deployment.uid, &list.items);
        let history = History::split(&deployment.template, owned);
        Ok(Snapshot {
            deployment,
            history,
        })
    }

    async fn list_pods(&self, ns: &str, selector: &str) -> Result<Vec<PodView>> {
        let what = format!("pods {selector} in {ns}");
        let list = self
            .api(ns, &pods())
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| from_kube(self, &what, e))?;
        list.items
            .iter()
            .map(|p| PodView::from_object(p).map_err(|e| self.malformed(&what, e)))
            .collect()
    }

    /// Reads the rollout, with the Deployment's resource version and how long until
    /// a stuck new pod reaches the fail-fast grace.
    async fn observe(&self, ns: &str, name: &str) -> Result<Observation> {
        let snap = self.snapshot(ns, name).await?;
        let d = &snap.deployment;
        let now = Timestamp::now();
        let mut verdict = judge(d, &[], now, self.fail_fast_grace);
        let mut until_grace = None;
        let new_rs = snap.history.new.as_ref();
        if verdict.phase == RolloutPhase::InProgress
            && d.status.observed_generation >= d.generation
            && let Some(hash) = new_rs.and_then(|rs| rs.hash.as_ref())
        {
            let selector = format!("{},{}={hash}", self.selector(d, ns)?, revision::HASH_LABEL);
            let new_pods = self.list_pods(ns, &selector).await?;
            let now = Timestamp::now();
            verdict = judge(d, &new_pods, now, self.fail_fast_grace);
            until_grace = grace_left(&new_pods, now, self.fail_fast_grace);
        }
        let updated = d.status.updated_replicas.max(0) as u32;
        let ready = match verdict.phase {
            RolloutPhase::Complete => d.status.available_replicas,
            _ => new_rs.map_or(0, |rs| rs.available),
        }
        .clamp(0, d.status.updated_replicas.max(0)) as u32;
        Ok(Observation {
            status: RolloutStatus {
                revision: snap.current_id(),
                phase: verdict.phase,
                desired: d.desired().max(0) as u32,
                updated,
                ready,
                message: verdict.message,
            },
            resource_version: d.resource_version.clone(),
            until_grace,
        })
    }

    async fn open_watch(&self, ns: &str, name: &str, rv: &str) -> kube::Result<WatchStream> {
        let wp = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(WATCH_TIMEOUT_SECS);
        let stream = self.api(ns, &deployments()).watch(&wp, rv).await?;
        Ok(stream.boxed())
    }

    /// Applies `edit` to a copy of the template and, when it changed anything, sends
    /// `patch` as a strategic merge patch.
    async fn change_template(
        &self,
        ns: &str,
        name: &str,
        snap: &Snapshot,
        edited: Option<(Value, Value)>,
    ) -> Result<RevisionChange> {
        let from = snap.current_id();
        let Some((new_template, patch)) = edited else {
            return Ok(RevisionChange {
                to: from.clone(),
                from,
                changed: false,
            });
        };
        self.api(ns, &deployments())
            .patch(name, &self.patch_params(), &Patch::Strategic(patch))
            .await
            .map_err(|e| from_kube(self, &format!("deployment {ns}/{name}"), e))?;
        Ok(RevisionChange {
            from,
            to: RevisionId::new(snap.history.id_for(&new_template).to_string()),
            changed: true,
        })
    }

    fn container_not_found(&self, ns: &str, d: &DeploymentView, container: &str) -> Error {
        let names: Vec<String> = d.containers().into_iter().map(|c| c.name).collect();
        Error::not_found(
            self,
            format!(
                "container {container:?} in deployment {ns}/{} (it has {names:?})",
                d.name
            ),
        )
    }
}

/// The strategic merge patch that sets fields of named containers.
fn containers_patch(containers: Vec<Value>) -> Value {
    json!({"spec": {"template": {"spec": {"containers": containers}}}})
}

#[async_trait]
impl Deployer for K8sDeployer {
    /// `set_env` only with a variable configured to go through a Secret.
    fn capabilities(&self) -> DeployerCapabilities {
        DeployerCapabilities {
            set_env: !self.secret_env.is_empty(),
            ..DeployerCapabilities::ALL
        }
    }

    async fn revisions(&self, service: &ServiceId) -> Result<RevisionHistory> {
        let (ns, name) = self.target(service)?;
        let snap = self.snapshot(ns, name).await?;
        let template = &snap.deployment.template;
        let created = |c: &Option<String>| c.as_deref().and_then(|t| t.parse().ok());
        let current = Revision {
            note: None,
            id: snap.current_id(),
            image: first_image(template),
            created_at: snap
                .history
                .matching(template)
                .and_then(|rs| created(&rs.created)),
        };
        let previous = snap
            .history
            .previous(template)
            .into_iter()
            .map(|rs| Revision {
                note: None,
                id: RevisionId::new(rs.stable_id().to_string()),
                image: rs.image(),
                created_at: created(&rs.created),
            })
            .collect();
        let verdict = judge(
            &snap.deployment,
            &[],
            Timestamp::now(),
            self.fail_fast_grace,
        );
        Ok(RevisionHistory {
            current,
            previous,
            rollout_in_progress: verdict.phase != RolloutPhase::Complete,
        })
    }

    async fn roll_back(
        &self,
        service: &ServiceId,
        target: &RollbackTarget,
    ) -> Result<RevisionChange> {
        let (ns, name) = self.target(service)?;
        let to_revision = match target {
            RollbackTarget::Previous => 0,
            RollbackTarget::Revision(id) => id.as_str().trim().parse::<i64>().map_err(|_| {
                Error::invalid(
                    "revision",
                    format!("{self}: {id:?} is not a Deployment revision number"),
                )
            })?,
        };
        let snap = self.snapshot(ns, name).await?;
        let d = &snap.deployment;
        let rs = undo_target(&snap.history, to_revision).map_err(|refusal| match refusal {
            UndoRefusal::RevisionNotFound(n) => Error::not_found(
                self,
                format!("revision {n} of deployment {ns}/{name} (unable to find specified revision {n} in history)"),
            ),
            UndoRefusal::NoHistory => Error::not_found(
                self,
                format!("a previous revision of deployment {ns}/{name} (no rollout history found)"),
            ),
        })?;
        if d.spec.paused {
            return Err(Error::conflict(
                self,
                format!(
                    "deployment {ns}/{name} is paused: you cannot roll back a paused deployment; \
                     resume it first with 'kubectl rollout resume deployment/{name} -n {ns}' and try again"
                ),
            ));
        }
        let from = snap.current_id();
        let to = RevisionId::new(rs.stable_id().to_string());
        if equal_ignore_hash(&rs.template, &d.template) {
            return Ok(RevisionChange {
                from,
                to,
                changed: false,
            });
        }
        let patch: json_patch::Patch = serde_json::from_value(undo_patch(rs, &d.annotations))
            .map_err(|e| self.malformed("undo patch", e))?;
        self.api(ns, &deployments())
            .patch(name, &self.patch_params(), &Patch::<()>::Json(patch))
            .await
            .map_err(|e| from_kube(self, &format!("deployment {ns}/{name}"), e))?;
        tracing::info!(provider = %self, deployment = %format!("{ns}/{name}"), %from, %to, dry_run = self.dry_run, "rolled back");
        Ok(RevisionChange {
            from,
            to,
            changed: true,
        })
    }

    async fn rollout_status(&self, service: &ServiceId) -> Result<RolloutStatus> {
        let (ns, name) = self.target(service)?;
        Ok(self.observe(ns, name).await?.status)
    }

    async fn wait_until_stable(&self, service: &ServiceId) -> Result<RolloutStatus> {
        let (ns, name) = self.target(service)?;
        let mut watch: Option<WatchStream> = None;
        let mut can_watch = self.watch;
        let mut watch_failures: u32 = 0;
        let mut polls: u32 = 0;
        let mut checks: u32 = 0;
        let started = tokio::time::Instant::now();
        loop {
            let Observation {
                status,
                resource_version: rv,
                until_grace,
            } = self.observe(ns, name).await?;
            checks += 1;
            match status.phase {
                RolloutPhase::Complete => return Ok(status),
                RolloutPhase::Failed => {
                    return Err(Error::failed(
                        self,
                        format!(
                            "rollout of deployment {ns}/{name} to revision {} failed: {}",
                            status.revision, status.message
                        ),
                    ));
                }
                RolloutPhase::InProgress => {
                    tracing::debug!(provider = %self, deployment = %format!("{ns}/{name}"), message = %status.message, "waiting");
                }
            }
            // Watching or polling, `max_checks` bounds how often the rollout is looked
            // at: nothing waits forever.
            if let Some(max) = self.poll.max_checks
                && checks >= max
            {
                return Err(Error::Timeout {
                    operation: format!(
                        "{self}: rollout of deployment {ns}/{name} (still not done after {checks} checks: {})",
                        status.message
                    ),
                    after: started.elapsed(),
                });
            }
            if can_watch && watch.is_none() {
                match self.open_watch(ns, name, &rv).await {
                    Ok(s) => watch = Some(s),
                    // The resource version was compacted: read again, watch again.
                    Err(kube::Error::Api(s)) if s.code == 410 && watch_failures < 3 => {
                        watch_failures += 1;
                        continue;
                    }
                    Err(kube::Error::Api(s)) if matches!(s.code, 403 | 404 | 405 | 410 | 501) => {
                        tracing::debug!(provider = %self, code = s.code, "cannot watch deployments; polling instead");
                        can_watch = false;
                    }
                    Err(e) => {
                        return Err(from_kube(
                            self,
                            &format!("watch of deployment {ns}/{name}"),
                            e,
                        ));
                    }
                }
            }
            let Some(stream) = watch.as_mut() else {
                let pause = self.poll.interval(polls);
                let pause =
                    until_grace.map_or(pause, |left| pause.min(left + Duration::from_millis(100)));
                tokio::time::sleep(pause).await;
                polls += 1;
                continue;
            };
            // Look again at the latest when a stuck pod's grace runs out.
            let recheck = until_grace.map_or(self.recheck, |left| {
                self.recheck.min(left + Duration::from_millis(100))
            });
            match tokio::time::timeout(recheck, stream.next()).await {
                // Nothing changed: re-check for the fail-fast grace.
                Err(_) => {}
                Ok(Some(Ok(WatchEvent::Error(e)))) => {
                    // 410 Gone and friends: start a new watch from a fresh read,
                    // backing off, and poll if it keeps failing.
                    tracing::debug!(provider = %self, code = e.code, reason = %e.reason, "watch ended");
                    watch = None;
                    watch_failures += 1;
                    if watch_failures >= 3 {
                        can_watch = false;
                    } else {
                        tokio::time::sleep(self.poll.interval(watch_failures - 1)).await;
                    }
                }
                Ok(Some(Ok(_))) => {
                    watch_failures = 0;
                    // One look covers a burst of changes: drain what already arrived.
                    loop {
                        match stream.next().now_or_never() {
                            Some(Some(Ok(WatchEvent::Error(_)) | Err(_)) | None) => {
                                watch = None;
                                break;
                            }
                            Some(Some(Ok(_))) => {}
                            None => break,
                        }
                    }
                }
                // The server closed the watch (its timeout): open a new one.
                Ok(None) => watch = None,
                Ok(Some(Err(e))) => {
                    watch = None;
                    watch_failures += 1;
                    tracing::debug!(provider = %self, error = %e, "watch broke");
                    if watch_failures >= 3 {
                        can_watch = false;
                    } else {
                        tokio::time::sleep(self.poll.interval(watch_failures - 1)).await;
                    }
                }
            }
        }
    }

    async fn set_env(&self, service: &ServiceId, var: &EnvVar) -> Result<RevisionChange> {
        let (ns, name) = self.target(service)?;
        if var.name.is_empty() || var.name.contains('=') {
            return Err(Error::invalid(
                "env.name",
                format!("{:?} is not an environment variable name", var.name),
            ));
        }
        let snap = self.snapshot(ns, name).await?;
        let d = &snap.deployment;
        let containers = d.containers();
        if let Some(c) = &var.container
            && !containers.iter().any(|x| &x.name == c)
        {
            return Err(self.container_not_found(ns, d, c));
        }
        // Never a plain value in the spec: the value goes into a Secret of its own.
        let Some(base) = self.secret_env.get(&var.name) else {
            return Err(Error::precondition(
                "k8s.secret_env",
                format!(
                    "setting {} would put its value in the Deployment's spec as plain text; name a Secret for it with K8sDeployer::with_secret_env({:?}, \"<secret name>\")",
                    var.name, var.name
                ),
            ));
        };
        let value = var.value.expose_secret();
        let secret = secret::secret_name(base, value);
        let reference = json!({"secretKeyRef": {"name": secret, "key": var.name}});
        let mut new_template = d.template.clone();
        let mut patches = Vec::new();
        for (i, c) in containers.iter().enumerate() {
            if var.container.as_ref().is_some_and(|n| n != &c.name) {
                continue;
            }
            let existing = c.env.iter().position(|e| e.name == var.name);
            if let Some(e) = existing.map(|p| &c.env[p])
                && e.value.is_none()
                && e.value_from.as_ref() == Some(&reference)
            {
                continue;
            }
            let mut entry = json!({"name": var.name, "valueFrom": reference});
            if existing.is_some_and(|p| c.env[p].value.is_some()) {
                // A strategic merge patch deletes a key set to null.
                entry["value"] = Value::Null;
            }
            patches.push(json!({"name": c.name, "env": [entry]}));
            if let Some(env) = new_template
                .pointer_mut(&format!("/spec/containers/{i}"))
                .and_then(Value::as_object_mut)
            {
                let list = env.entry("env").or_insert_with(|| json!([]));
                let item = json!({"name": var.name, "valueFrom": reference});
                match (list.as_array_mut(), existing) {
                    (Some(l), Some(p)) if p < l.len() => l[p] = item,
                    (Some(l), _) => l.push(item),
                    (None, _) => *list = json!([item]),
                }
            }
        }
        if !patches.is_empty() {
            // The Secret first: pods must never start pointing at one that is not there.
            self.ensure_secret(ns, &secret, &var.name, value).await?;
        }
        let edited = (!patches.is_empty()).then(|| (new_template, containers_patch(patches)));
        self.change_template(ns, name, &snap, edited).await
    }

    async fn set_image(&self, service: &ServiceId, update: &ImageUpdate) -> Result<RevisionChange> {
        let (ns, name) = self.target(service)?;
        if update.image.trim().is_empty() {
            return Err(Error::invalid("image", "must not be empty"));
        }
        let snap = self.snapshot(ns, name).await?;
        let d = &snap.deployment;
        let containers = d.containers();
        let index = match &update.container {
            Some(c) => containers
                .iter()
                .position(|x| &x.name == c)
                .ok_or_else(|| self.container_not_found(ns, d, c))?,
            None if containers.is_empty() => {
                return Err(Error::failed(
                    self,
                    format!("deployment {ns}/{name} has no containers"),
                ));
            }
            None => 0,
        };
        let c = &containers[index];
        let edited = (c.image.as_deref() != Some(update.image.as_str())).then(|| {
            let mut t = d.template.clone();
            if let Some(image) = t.pointer_mut(&format!("/spec/containers/{index}/image")) {
                *image = json!(update.image);
            } else if let Some(obj) = t
                .pointer_mut(&format!("/spec/containers/{index}"))
                .and_then(Value::as_object_mut)
            {
                obj.insert("image".into(), json!(update.image));
            }
            (
                t,
                containers_patch(vec![json!({"name": c.name, "image": update.image})]),
            )
        });
        self.change_template(ns, name, &snap, edited).await
    }

    async fn instances(&self, service: &ServiceId) -> Result<Vec<Instance>> {
        let (ns, name) = self.target(service)?;
        let snap = self.snapshot(ns, name).await?;
        let selector = self.selector(&snap.deployment, ns)?;
        let pods = self.list_pods(ns, &selector).await?;
        let revisions: BTreeMap<String, RevisionId> = snap
            .history
            .all()
            .filter_map(|rs| {
                Some((
                    rs.hash.clone()?,
                    RevisionId::new(rs.stable_id().to_string()),
                ))
            })
            .collect();
        Ok(pods.iter().map(|p| instance(p, &revisions)).collect())
    }
}

/// The pods of a Deployment and whether each runs and is ready: the playbook's
/// `kubectl get pods -l app=meshos-api`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodReport {
    /// The Deployment.
    pub service: ServiceId,
    /// Every pod of its selector.
    pub pods: Vec<Instance>,
}

impl PodReport {
    /// Pods that are running and ready.
    pub fn ready(&self) -> impl Iterator<Item = &Instance> {
        self.pods.iter().filter(|p| is_up(p))
    }

    /// Pods that are not running and ready, each with its `detail`.
    pub fn not_ready(&self) -> impl Iterator<Item = &Instance> {
        self.pods.iter().filter(|p| !is_up(p))
    }

    /// At least one pod, and every pod running and ready.
    pub fn all_ready(&self) -> bool {
        !self.pods.is_empty() && self.pods.iter().all(is_up)
    }
}

fn is_up(i: &Instance) -> bool {
    i.state == InstanceState::Running && i.ready
}

impl fmt::Display for PodReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}/{} pods running and ready",
            self.service,
            self.ready().count(),
            self.pods.len()
        )?;
        for p in self.not_ready() {
            write!(
                f,
                "\n  {} ({:?}): {}",
                p.id,
                p.state,
                p.detail.as_deref().unwrap_or("not ready")
            )?;
        }
        Ok(())
    }
}
