//! [`EcsDeployer`]: roll ECS services back and wait for them to settle.
//!
//! The playbook's commands, as API calls:
//!
//! | Playbook | [`EcsDeployer`] |
//! |----------|-----------------|
//! | `describe-services --query services[0].deployments[1].taskDefinition` | [`Deployer::roll_back`] with [`RollbackTarget::Previous`] while a deployment is in progress |
//! | `update-service --task-definition PREV --force-new-deployment` | [`Deployer::roll_back`] (or `StopServiceDeployment` with `stopType=ROLLBACK` for an in-progress deployment, where the API offers it) |
//! | `wait services-stable` | [`Deployer::wait_until_stable`], adaptive and bounded |
//! | `kubectl set env DATABASE_URL=...` (ECS form) | [`Deployer::set_env`]: the value to a Secrets Manager secret ([`EcsDeployerBuilder::with_secret_env`]), a new task-definition revision whose container `secrets` entry pins that version |

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentRolloutState, HealthStatus, Secret, ServiceDeploymentStatus,
    StopServiceDeploymentStopType, TaskDefinition, TaskDefinitionField,
};
use aws_types::SdkConfig;
use meshos_rollback_core::model::{
    Revision, RevisionHistory, RevisionId, RollbackTarget, ServiceId,
};
use meshos_rollback_core::provider::{
    Deployer, DeployerCapabilities, EnvVar, ImageUpdate, Instance, InstanceState, RevisionChange,
    RolloutPhase, RolloutStatus,
};
use meshos_rollback_core::wait::{Backoff, conditions, poll_until};
use meshos_rollback_core::{Error, Result};

use crate::error::{Class, class_of, from_sdk, is_missing_operation, missing};
use crate::sdk::{prepare_client, timestamp};
use crate::secrets::SecretWriter;

/// How many earlier revisions [`Deployer::revisions`] lists.
const HISTORY_LEN: usize = 10;

/// How many pages of ListServiceDeployments (20 each) the history reads at most.
const HISTORY_PAGES: usize = 5;

/// DescribeServiceRevisions accepts at most 20 ARNs per call (ECS API reference).
const REVISIONS_PER_CALL: usize = 20;

/// Whether the ECS service-deployment API (ListServiceDeployments,
/// StopServiceDeployment) answers at this endpoint; learned on first use.
const API_UNKNOWN: u8 = 0;
const API_AVAILABLE: u8 = 1;
const API_MISSING: u8 = 2;

/// Builds an [`EcsDeployer`].
#[derive(Debug)]
pub struct EcsDeployerBuilder {
    client: aws_sdk_ecs::Client,
    cluster: Option<String>,
    wait: Backoff,
    family_fallback: bool,
    secrets: Option<aws_sdk_secretsmanager::Client>,
    secret_env: BTreeMap<String, String>,
}

impl EcsDeployerBuilder {
    /// A deployer using an ECS and a Secrets Manager client built from `config`
    /// (credentials, region, HTTP client and retry settings all come from it; none are
    /// read behind the caller's back).
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(aws_sdk_ecs::Client::new(config))
            .with_secrets_client(aws_sdk_secretsmanager::Client::new(config))
    }

    /// A deployer using an existing ECS client. Variables set through Secrets Manager
    /// ([`with_secret_env`](Self::with_secret_env)) need
    /// [`with_secrets_client`](Self::with_secrets_client) as well.
    pub fn from_client(client: aws_sdk_ecs::Client) -> Self {
        EcsDeployerBuilder {
            client,
            cluster: None,
            wait: EcsDeployer::default_wait(),
            family_fallback: false,
            secrets: None,
            secret_env: BTreeMap::new(),
        }
    }

    /// The Secrets Manager client [`Deployer::set_env`] writes values with.
    pub fn with_secrets_client(mut self, client: aws_sdk_secretsmanager::Client) -> Self {
        self.secrets = Some(client);
        self
    }

    /// Keeps the environment variable `name` in the Secrets Manager secret `secret`
    /// (its name, or its ARN for a secret of another account): [`Deployer::set_env`]
    /// writes the value as a new version of that secret and points the containers'
    /// `secrets` entry for `name` at that version. The secret must exist (it is not
    /// created), and the task execution role must be allowed
    /// `secretsmanager:GetSecretValue` on it for ECS to inject it.
    ///
    /// A variable without a secret is never written: a task definition's
    /// `environment` is plain text to everyone with `ecs:DescribeTaskDefinition`.
    pub fn with_secret_env(mut self, name: impl Into<String>, secret: impl Into<String>) -> Self {
        self.secret_env.insert(name.into(), secret.into());
        self
    }

    /// Scopes the deployer to one cluster: services of other clusters are refused as
    /// invalid input, so a plan cannot act on the wrong cluster by mistake.
    pub fn with_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = Some(cluster.into());
        self
    }

    /// Sets how [`Deployer::wait_until_stable`] polls (see [`EcsDeployer::default_wait`]).
    pub fn with_wait(mut self, wait: Backoff) -> Self {
        self.wait = wait;
        self
    }

    /// Allows the rollback target "previous" to be the task-definition family's
    /// revision below the current one when the service has no deployment history to
    /// read (ListServiceDeployments missing or denied, as on emulators). Off by
    /// default: that revision may never have been deployed. When it is used, a
    /// warning says "revision N-1 of family F, which may never have been deployed".
    pub fn with_family_fallback(mut self, enabled: bool) -> Self {
        self.family_fallback = enabled;
        self
    }

    /// Checks the configuration: a region is required, and an HTTP client (installed
    /// here when missing and the `default-http-client` feature is on).
    ///
    /// The client's own retries are turned off: retrying is the job of core's retry
    /// layer, and two retry loops stacked multiply the attempts (3 SDK attempts for
    /// each of the layer's) and hide throttling from the layer's shared budget.
    ///
    /// Variables of [`with_secret_env`](Self::with_secret_env) need a valid name, a
    /// secret, and a Secrets Manager client.
    pub fn build(self) -> Result<EcsDeployer> {
        for (name, secret) in &self.secret_env {
            if !is_env_name(name) {
                return Err(Error::invalid(
                    "secret_env",
                    format!("EcsDeployer: {name:?} is not an environment variable name"),
                ));
            }
            if secret.trim().is_empty() {
                return Err(Error::invalid(
                    "secret_env",
                    format!("EcsDeployer: the secret for {name} is empty; give its name or ARN"),
                ));
            }
        }
        let secrets = match (self.secret_env.is_empty(), self.secrets) {
            (true, _) => None,
            (false, Some(client)) => Some(SecretWriter::new("EcsDeployer", client)?),
            (false, None) => {
                return Err(Error::invalid(
                    "secrets_client",
                    "EcsDeployer: with_secret_env needs a Secrets Manager client; build from \
                     an SdkConfig (EcsDeployer::builder) or call with_secrets_client",
                ));
            }
        };
        let (client, region) = prepare_client!("EcsDeployer", self.client, aws_sdk_ecs);
        let client = aws_sdk_ecs::Client::from_conf(
            client
                .config()
                .to_builder()
                .retry_config(RetryConfig::disabled())
                .build(),
        );
        Ok(EcsDeployer {
            client,
            region,
            cluster: self.cluster,
            wait: self.wait,
            family_fallback: self.family_fallback,
            guessed: Mutex::default(),
            service_deployments_api: AtomicU8::new(API_UNKNOWN),
            targets: Mutex::new(HashMap::new()),
            secrets,
            secret_env: self.secret_env,
        })
    }
}

/// A [`Deployer`] for ECS services (ECS deployment controller), one region.
///
/// Revisions are task-definition ARNs. Services are [`ServiceId::Ecs`].
///
/// * **Rollback target** ([`RollbackTarget::Previous`]): the task definition of the
///   last deployment that completed successfully, never a `FAILED` one nor the failed
///   side of a rollback. First that answers: an older deployment still listed by
///   DescribeServices with `rolloutState` COMPLETED (the playbook's `deployments[1]`);
///   the service's deployment history (ListServiceDeployments with status SUCCESSFUL,
///   every page up to a bound, + DescribeServiceRevisions); and only with
///   [`EcsDeployerBuilder::with_family_fallback`], the previous revision of the
///   task-definition family.
/// * **Circuit-breaker rollback**: while the deployment circuit breaker rolls the
///   service back (the PRIMARY deployment's reason says it is rolling back, or a
///   service deployment is `ROLLBACK_REQUESTED`/`ROLLBACK_IN_PROGRESS`), the failed
///   revision is "current" and the circuit breaker's target is "previous"; rolling
///   back to that target starts nothing and adopts the circuit breaker's rollback.
/// * **Roll back**: `UpdateService(taskDefinition, forceNewDeployment)`; for an
///   in-progress deployment whose source is the target, `StopServiceDeployment` with
///   `stopType=ROLLBACK` where the API offers it. The target already running changes
///   nothing.
/// * **Wait**: the `services-stable` semantics (one deployment, running = desired,
///   rollout completed). It fails when the PRIMARY deployment is `FAILED`, or the
///   deployment of the revision this deployer last moved the service to; an older
///   `FAILED` deployment still draining beside a healthy rollback is progress. Polls
///   quickly at first, backing off, for a bounded number of checks.
/// * **Retries**: none of its own (the SDK client's are turned off at `build()`);
///   wrap it in core's retry layer.
/// * **set_env**: only for variables configured with
///   [`EcsDeployerBuilder::with_secret_env`] (any other is refused as a
///   precondition, never written in plain text). Writes the value as a version of that
///   secret (`PutSecretValue`, its `ClientRequestToken` a hash of the value, so the
///   same value again adds no version), then registers a copy of the current revision
///   whose selected containers have a `secrets` entry pinned to that version
///   (`valueFrom` = `ARN:::version-id`) and no `environment` entry of that name, and
///   points the service at it. Pinning the version makes each new value a new
///   revision (so a rollout starts and a rollback to an older revision brings back
///   its value); the same value changes nothing.
/// * **set_image**: registers a new revision copied from the current one with only
///   that change, then points the service at it. Values are secret and never logged.
///
/// [`Deployer::revisions`] describes the current revision and the rollback target
/// (image, registration time); older entries carry the revision id only.
#[derive(Debug)]
pub struct EcsDeployer {
    client: aws_sdk_ecs::Client,
    region: String,
    cluster: Option<String>,
    wait: Backoff,
    family_fallback: bool,
    /// Task definitions guessed by the family fallback, noted on the revisions
    /// `revisions()` reports.
    guessed: Mutex<std::collections::HashSet<String>>,
    service_deployments_api: AtomicU8,
    /// The revision each service was last moved to by this deployer, so a wait can
    /// tell "my rollout failed and the circuit breaker undid it" from progress.
    targets: Mutex<HashMap<String, String>>,
    /// Writes `set_env` values; present when `secret_env` is not empty.
    secrets: Option<SecretWriter>,
    /// Variable name -> the secret (name or ARN) that holds it.
    secret_env: BTreeMap<String, String>,
}

impl EcsDeployer {
    /// Starts building a deployer from an SDK configuration.
    pub fn builder(config: &SdkConfig) -> EcsDeployerBuilder {
        EcsDeployerBuilder::new(config)
    }

    /// The default polling of [`Deployer::wait_until_stable`]: 2 s, doubling to 15 s,
    /// at most 60 checks (about 14 minutes; the CLI waiter checks every 15 s, 40 times).
    pub fn default_wait() -> Backoff {
        Backoff {
            initial: Duration::from_secs(2),
            factor: 2.0,
            max_interval: Duration::from_secs(15),
            max_checks: Some(60),
        }
    }

    fn names<'a>(&self, service: &'a ServiceId) -> Result<(&'a str, &'a str)> {
        match service {
            ServiceId::Ecs { cluster, service } => {
                if let Some(scope) = &self.cluster
                    && scope != cluster
                {
                    return Err(Error::invalid(
                        "service.cluster",
                        format!("{self} manages cluster {scope}, not {cluster}"),
                    ));
                }
                Ok((cluster, service))
            }
            other => Err(Error::invalid(
                "service",
                format!("{self} manages ECS services, not {other}"),
            )),
        }
    }

    /// DescribeServices, as our own snapshot. A missing or inactive service is
    /// not found (the services-stable waiter fails on MISSING/DRAINING/INACTIVE).
    async fn describe(&self, service: &ServiceId) -> Result<ServiceState> {
        let (cluster, name) = self.names(service)?;
        let out = self
            .client
            .describe_services()
            .cluster(cluster)
            .services(name)
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("service {service}"), e))?;
        let Some(svc) = out.services().first() else {
            let reason = out
                .failures()
                .first()
                .and_then(|f| f.reason())
                .unwrap_or("MISSING");
            return Err(missing(self, format!("service {service} ({reason})")));
        };
        let status = svc.status().unwrap_or("ACTIVE");
        if status != "ACTIVE" {
            return Err(missing(self, format!("service {service} (it is {status})")));
        }
        let task_definition = svc.task_definition().unwrap_or_default().to_owned();
        if task_definition.is_empty() {
            return Err(Error::failed(
                self,
                format!("service {service} has no task definition"),
            ));
        }
        Ok(ServiceState {
            task_definition,
            desired: count(svc.desired_count()),
            running: count(svc.running_count()),
            deployments: svc
                .deployments()
                .iter()
                .map(|d| DeploymentState {
                    id: d.id().unwrap_or_default().to_owned(),
                    status: d.status().unwrap_or_default().to_owned(),
                    task_definition: d.task_definition().unwrap_or_default().to_owned(),
                    desired: count(d.desired_count()),
                    running: count(d.running_count()),
                    failed_tasks: count(d.failed_tasks()),
                    rollout: d.rollout_state().map(|r| match r {
                        DeploymentRolloutState::Completed => Rollout::Completed,
                        DeploymentRolloutState::Failed => Rollout::Failed,
                        _ => Rollout::InProgress,
                    }),
                    reason: d.rollout_state_reason().map(str::to_owned),
                })
                .collect(),
        })
    }

    /// DescribeTaskDefinition; a task definition that does not exist is not found
    /// (ECS answers ClientException "Unable to describe task definition").
    async fn task_definition(
        &self,
        id: &str,
    ) -> Result<(TaskDefinition, Vec<aws_sdk_ecs::types::Tag>)> {
        let out = self
            .client
            .describe_task_definition()
            .task_definition(id)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| {
                if e.code() == Some("ClientException") {
                    missing(
                        self,
                        format!("task definition {id} ({})", e.message().unwrap_or("")),
                    )
                } else {
                    from_sdk(self, format!("task definition {id}"), e)
                }
            })?;
        let tags = out.tags().to_vec();
        let td = out
            .task_definition
            .ok_or_else(|| missing(self, format!("task definition {id}")))?;
        Ok((td, tags))
    }

    /// The full ARN of a task definition given as ARN, `family:revision` or `family`.
    async fn arn_of(&self, id: &str) -> Result<String> {
        if is_task_definition_arn(id) {
            return Ok(id.to_owned());
        }
        let (td, _) = self.task_definition(id).await?;
        td.task_definition_arn
            .ok_or_else(|| Error::failed(self, format!("task definition {id} has no ARN")))
    }

    async fn revision(&self, arn: &str) -> Result<Revision> {
        let (td, _) = self.task_definition(arn).await?;
        Ok(Revision {
            note: None,
            id: RevisionId::new(td.task_definition_arn().unwrap_or(arn)),
            image: td
                .container_definitions()
                .first()
                .and_then(|c| c.image())
                .map(str::to_owned),
            created_at: td.registered_at().and_then(timestamp),
        })
    }

    /// Whether a failed ListServiceDeployments means "this API is not here": then it
    /// is remembered and not asked again. Throttling is an error to retry instead.
    fn note_missing<E: ProvideErrorMetadata>(
        &self,
        e: &aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    ) {
        if is_missing_operation(e)
            || matches!(class_of(e), Class::PermissionDenied | Class::Unsupported)
        {
            self.service_deployments_api
                .store(API_MISSING, Ordering::Relaxed);
        }
    }

    /// Task definitions of service revisions, in the order of `arns` (unknown ones
    /// left out). DescribeServiceRevisions takes 20 ARNs per call.
    async fn task_definitions_of_revisions(
        &self,
        what: &str,
        arns: &[String],
    ) -> Result<Vec<(String, String)>> {
        let mut found: Vec<(String, String)> = Vec::new();
        for chunk in arns.chunks(REVISIONS_PER_CALL) {
            let revs = self
                .client
                .describe_service_revisions()
                .set_service_revision_arns(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| from_sdk(self, format!("service revisions of {what}"), e))?;
            for r in revs.service_revisions() {
                if let (Some(arn), Some(td)) = (r.service_revision_arn(), r.task_definition()) {
                    found.push((arn.to_owned(), td.to_owned()));
                }
            }
        }
        Ok(arns
            .iter()
            .filter_map(|a| found.iter().find(|(r, _)| r == a).cloned())
            .collect())
    }

    /// Task definitions of the service's successful deployments, newest first, from
    /// the service-deployment history; `None` when that API is not available here
    /// (older endpoints, emulators, IAM policies without `ecs:ListServiceDeployments`).
    ///
    /// Only SUCCESSFUL service deployments count: a ROLLBACK_SUCCESSFUL or
    /// ROLLBACK_FAILED one has the failed revision as its `targetServiceRevision`
    /// (ECS API reference, ServiceDeployment). Every page is read (`nextToken`), up to
    /// [`HISTORY_PAGES`].
    async fn deployment_history(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<Vec<String>>> {
        if self.service_deployments_api.load(Ordering::Relaxed) == API_MISSING {
            return Ok(None);
        }
        let mut briefs = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..HISTORY_PAGES {
            let listed = self
                .client
                .list_service_deployments()
                .cluster(cluster)
                .service(service)
                .status(ServiceDeploymentStatus::Successful)
                .max_results(20)
                .set_next_token(next.take())
                .send()
                .await;
            let out = match listed {
                Ok(out) => out,
                Err(e) if class_of(&e) == Class::Throttled => {
                    return Err(from_sdk(
                        self,
                        format!("deployments of {cluster}/{service}"),
                        e,
                    ));
                }
                // A later page failing leaves the pages read so far.
                Err(e) if briefs.is_empty() => {
                    self.note_missing(&e);
                    return Ok(None);
                }
                Err(e) => {
                    return Err(from_sdk(
                        self,
                        format!("deployments of {cluster}/{service}"),
                        e,
                    ));
                }
            };
            self.service_deployments_api
                .store(API_AVAILABLE, Ordering::Relaxed);
            briefs.extend(out.service_deployments().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
        // The filter asks for SUCCESSFUL only; an endpoint that ignores it must not
        // slip a failed or rolled-back deployment in.
        briefs.retain(|b| {
            b.status()
                .is_none_or(|s| *s == ServiceDeploymentStatus::Successful)
        });
        // The last to complete first.
        briefs.sort_by_key(|b| {
            std::cmp::Reverse(
                b.finished_at()
                    .or(b.started_at())
                    .or(b.created_at())
                    .and_then(timestamp),
            )
        });
        let arns: Vec<String> = briefs
            .iter()
            .filter_map(|b| b.target_service_revision_arn().map(str::to_owned))
            .collect();
        if arns.is_empty() {
            return Ok(None);
        }
        let tds = self
            .task_definitions_of_revisions(&format!("{cluster}/{service}"), &arns)
            .await?;
        let mut out: Vec<String> = Vec::new();
        for (_, td) in tds {
            if !out.contains(&td) {
                out.push(td);
            }
        }
        Ok(Some(out))
    }

    /// Revisions of the current one's family below it, newest first.
    async fn family_history(&self, current: &str) -> Result<Vec<String>> {
        let Some((family, current_rev)) = family_revision(current) else {
            return Ok(Vec::new());
        };
        let mut found: Vec<(u32, String)> = Vec::new();
        let mut next: Option<String> = None;
        // ListTaskDefinitions returns up to 100 per page, newest first when sorted.
        for _ in 0..5 {
            let out = self
                .client
                .list_task_definitions()
                .family_prefix(family)
                .sort(aws_sdk_ecs::types::SortOrder::Desc)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| from_sdk(self, format!("task definitions of family {family}"), e))?;
            for arn in out.task_definition_arns() {
                // familyPrefix matches "meshos-api-worker" too: keep the exact family.
                if let Some((f, rev)) = family_revision(arn)
                    && f == family
                    && rev < current_rev
                {
                    found.push((rev, arn.clone()));
                }
            }
            next = out.next_token().map(str::to_owned);
            if next.is_none() || found.len() >= HISTORY_LEN {
                break;
            }
        }
        found.sort_by_key(|(rev, _)| std::cmp::Reverse(*rev));
        if let Some((rev, arn)) = found.first() {
            tracing::warn!(
                deployer = %self,
                revision = %arn,
                "no deployment history to read: the rollback target is revision {rev} of family {family}, which may never have been deployed"
            );
        }
        Ok(found.into_iter().map(|(_, arn)| arn).collect())
    }

    /// Earlier task definitions, newest first, without those in `skip`: older
    /// deployments DescribeServices still lists that completed (never a FAILED one,
    /// nor one that never finished), then the history that answers.
    async fn previous(
        &self,
        service: &ServiceId,
        view: &View,
        skip: &[&str],
        enough: usize,
    ) -> Result<Vec<String>> {
        let (cluster, name) = self.names(service)?;
        let mut out: Vec<String> = Vec::new();
        let push = |out: &mut Vec<String>, arn: String| {
            if !skip.iter().any(|s| same_td(s, &arn)) && !out.iter().any(|o| same_td(o, &arn)) {
                out.push(arn);
            }
        };
        if let Some(rb) = &view.rollback {
            push(&mut out, rb.target.clone());
        }
        for d in
            view.state.deployments.iter().filter(|d| {
                d.status != "PRIMARY" && d.rollout.is_none_or(|r| r == Rollout::Completed)
            })
        {
            if !d.task_definition.is_empty() {
                let arn = self.arn_of(&d.task_definition).await?;
                push(&mut out, arn);
            }
        }
        if out.len() >= enough {
            return Ok(out);
        }
        let history = match self.deployment_history(cluster, name).await? {
            Some(h) if h.iter().any(|a| !skip.iter().any(|s| same_td(s, a))) => h,
            _ if self.family_fallback => {
                let guessed = self.family_history(&view.current).await?;
                self.guessed
                    .lock()
                    .expect("lock")
                    .extend(guessed.iter().cloned());
                guessed
            }
            _ => Vec::new(),
        };
        for arn in history {
            push(&mut out, arn);
        }
        Ok(out)
    }

    /// DescribeServices, and when a deployment is under way, the in-flight service
    /// deployments (if the API answers): is the circuit breaker rolling back, and
    /// which service deployment could be stopped with a rollback.
    async fn view(&self, service: &ServiceId) -> Result<View> {
        let (cluster, name) = self.names(service)?;
        let state = self.describe(service).await?;
        let current = self.arn_of(&state.task_definition).await?;
        let primary = state.deployments.iter().find(|d| d.status == "PRIMARY");
        let settled = state.deployments.len() <= 1
            && primary.is_none_or(|p| p.rollout.is_none_or(|r| r == Rollout::Completed));
        // ECS names the rollback in the new PRIMARY's reason ("ECS deployment circuit
        // breaker: rolling back to deploymentId ecs-svc/...").
        let reason_says_rollback = primary.and_then(|p| p.reason.as_deref()).is_some_and(|r| {
            let r = r.to_ascii_lowercase();
            r.contains("rolling back") || r.contains("rollback")
        }) && primary
            .is_some_and(|p| p.rollout != Some(Rollout::Completed));
        let mut in_flight = None;
        let mut rolled_back_from: Option<String> = None;
        let mut sd_rollback = false;
        if !settled && self.service_deployments_api.load(Ordering::Relaxed) != API_MISSING {
            let listed = self
                .client
                .list_service_deployments()
                .cluster(cluster)
                .service(name)
                .status(ServiceDeploymentStatus::InProgress)
                .status(ServiceDeploymentStatus::Pending)
                .status(ServiceDeploymentStatus::RollbackRequested)
                .status(ServiceDeploymentStatus::RollbackInProgress)
                .send()
                .await;
            match listed {
                Ok(out) => {
                    self.service_deployments_api
                        .store(API_AVAILABLE, Ordering::Relaxed);
                    for b in out.service_deployments() {
                        match b.status() {
                            Some(
                                ServiceDeploymentStatus::RollbackInProgress
                                | ServiceDeploymentStatus::RollbackRequested,
                            ) => {
                                sd_rollback = true;
                                // Its target revision is the one that failed.
                                if let Some(sr) = b.target_service_revision_arn() {
                                    rolled_back_from = self
                                        .task_definitions_of_revisions(
                                            &format!("{cluster}/{name}"),
                                            &[sr.to_owned()],
                                        )
                                        .await?
                                        .into_iter()
                                        .next()
                                        .map(|(_, td)| td);
                                }
                            }
                            _ => {
                                if in_flight.is_none() {
                                    in_flight = b.service_deployment_arn().map(str::to_owned);
                                }
                            }
                        }
                    }
                }
                Err(e) if class_of(&e) == Class::Throttled => {
                    return Err(from_sdk(
                        self,
                        format!("deployments of {cluster}/{name}"),
                        e,
                    ));
                }
                Err(e) => self.note_missing(&e),
            }
        }
        let rollback = if sd_rollback || reason_says_rollback {
            let failed = match rolled_back_from {
                Some(td) => Some(td),
                None => match state
                    .deployments
                    .iter()
                    .find(|d| d.status != "PRIMARY" && d.rollout == Some(Rollout::Failed))
                {
                    Some(d) => Some(self.arn_of(&d.task_definition).await?),
                    None => None,
                },
            };
            Some(CircuitBreakerRollback {
                failed: failed.filter(|f| !same_td(f, &current)),
                target: current.clone(),
            })
        } else {
            None
        };
        Ok(View {
            state,
            current,
            rollback,
            in_flight,
        })
    }

    /// Remembers the revision a change moved the service to, for the wait.
    fn remember(&self, service: &ServiceId, change: &RevisionChange) {
        if let Ok(mut t) = self.targets.lock() {
            t.insert(service.to_string(), change.to.to_string());
        }
    }

    fn target_of(&self, service: &ServiceId) -> Option<String> {
        self.targets
            .lock()
            .ok()
            .and_then(|t| t.get(&service.to_string()).cloned())
    }

    /// No rollback target: say why, and what the family fallback would pick.
    fn no_previous(&self, service: &ServiceId, current: &str) -> Error {
        let hint = match (self.family_fallback, family_revision(current)) {
            (false, Some((family, rev))) if rev > 1 => format!(
                "; revision {} of family {family} may never have been deployed, so it is used only with with_family_fallback(true)",
                rev - 1
            ),
            _ => String::new(),
        };
        missing(
            self,
            format!(
                "a previous revision of {service} (no earlier deployment completed successfully, or the deployment history is unavailable{hint})"
            ),
        )
    }

    /// Registers a copy of the current task definition changed by `edit` (which says
    /// whether it changed anything) and points the service at it.
    async fn derive(
        &self,
        service: &ServiceId,
        edit: impl FnOnce(&mut Vec<ContainerDefinition>) -> Result<bool>,
    ) -> Result<RevisionChange> {
        let base = self.base(service).await?;
        let mut containers = base.td.container_definitions.clone().unwrap_or_default();
        if !edit(&mut containers)? {
            return Ok(base.unchanged());
        }
        self.commit(service, base, containers).await
    }

    /// The service's current task definition, to derive a revision from.
    async fn base(&self, service: &ServiceId) -> Result<Base> {
        let state = self.describe(service).await?;
        let current = self.arn_of(&state.task_definition).await?;
        let (td, tags) = self.task_definition(&current).await?;
        Ok(Base { current, td, tags })
    }

    /// Registers `base` with `containers` (or adopts an equal copy registered by an
    /// interrupted attempt) and points the service at it.
    async fn commit(
        &self,
        service: &ServiceId,
        base: Base,
        containers: Vec<ContainerDefinition>,
    ) -> Result<RevisionChange> {
        let (cluster, name) = self.names(service)?;
        let Base { current, td, tags } = base;
        // Idempotent across a crash: an interrupted attempt may have registered this
        // very copy and died before UpdateService. The family's latest ACTIVE revision
        // (DescribeTaskDefinition with the family alone), when newer than the running
        // one and equal to the edited copy, is that copy: point the service at it
        // instead of registering another.
        let adopted = match td.family() {
            Some(family) => {
                let (latest, _) = self.task_definition(family).await?;
                let newer = latest.revision() > td.revision();
                (newer && latest.container_definitions.as_deref() == Some(containers.as_slice()))
                    .then_some(latest.task_definition_arn)
                    .flatten()
            }
            None => None,
        };
        let new_arn = match adopted {
            Some(arn) => {
                tracing::info!(provider = %self, %arn, "adopting the revision an interrupted attempt registered");
                arn
            }
            None => self.register_copy(&current, &td, tags, containers).await?,
        };
        self.client
            .update_service()
            .cluster(cluster)
            .service(name)
            .task_definition(&new_arn)
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("service {service}"), e))?;
        let change = RevisionChange {
            from: RevisionId::new(current),
            to: RevisionId::new(new_arn),
            changed: true,
        };
        self.remember(service, &change);
        Ok(change)
    }

    /// Registers a faithful copy of `td` with `containers`, returning its ARN.
    async fn register_copy(
        &self,
        current: &str,
        td: &TaskDefinition,
        tags: Vec<aws_sdk_ecs::types::Tag>,
        containers: Vec<ContainerDefinition>,
    ) -> Result<String> {
        let tag_count = tags.len();
        // A faithful copy: every field RegisterTaskDefinition accepts, as described.
        let registered = self
            .client
            .register_task_definition()
            .set_family(td.family.clone())
            .set_task_role_arn(td.task_role_arn.clone())
            .set_execution_role_arn(td.execution_role_arn.clone())
            .set_network_mode(td.network_mode.clone())
            .set_container_definitions(Some(containers))
            .set_volumes(td.volumes.clone())
            .set_placement_constraints(td.placement_constraints.clone())
            .set_requires_compatibilities(td.requires_compatibilities.clone())
            .set_cpu(td.cpu.clone())
            .set_memory(td.memory.clone())
            .set_tags((!tags.is_empty()).then_some(tags))
            .set_pid_mode(td.pid_mode.clone())
            .set_ipc_mode(td.ipc_mode.clone())
            .set_proxy_configuration(td.proxy_configuration.clone())
            .set_inference_accelerators(td.inference_accelerators.clone())
            .set_ephemeral_storage(td.ephemeral_storage.clone())
            .set_runtime_platform(td.runtime_platform.clone())
            .set_enable_fault_injection(td.enable_fault_injection)
            .send()
            .await
            .map_err(|e| {
                // Tagging on creation is authorized separately (ECS Developer Guide,
                // "Grant permission to tag resources on creation"): without
                // ecs:TagResource the whole registration is AccessDenied.
                let what = if tag_count > 0 && class_of(&e) == Class::PermissionDenied {
                    format!(
                        "new revision of {current} with the {tag_count} tag(s) copied from it \
                         (registering a tagged task definition needs ecs:TagResource as well \
                         as ecs:RegisterTaskDefinition)"
                    )
                } else {
                    format!("new revision of {current}")
                };
                from_sdk(self, what, e)
            })?;
        Ok(registered
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .ok_or_else(|| Error::failed(self, "RegisterTaskDefinition returned no ARN"))?
            .to_owned())
    }

    /// The containers `container` names: that one, or all when `None`.
    fn selected(
        &self,
        container: Option<&str>,
        containers: &[ContainerDefinition],
    ) -> Result<Vec<usize>> {
        match container {
            Some(c) => Ok(vec![
                containers
                    .iter()
                    .position(|d| d.name() == Some(c))
                    .ok_or_else(|| self.container_missing(c, containers))?,
            ]),
            None if containers.is_empty() => {
                Err(Error::failed(self, "the task definition has no container"))
            }
            None => Ok((0..containers.len()).collect()),
        }
    }

    fn container_missing(&self, name: &str, containers: &[ContainerDefinition]) -> Error {
        let names: Vec<&str> = containers.iter().filter_map(|c| c.name()).collect();
        missing(
            self,
            format!("container {name:?} (the task definition has {names:?})"),
        )
    }
}

impl fmt::Display for EcsDeployer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cluster {
            Some(c) => write!(f, "EcsDeployer({}/{c})", self.region),
            None => write!(f, "EcsDeployer({})", self.region),
        }
    }
}

#[async_trait]
impl Deployer for EcsDeployer {
    /// `set_env` only with a variable configured for Secrets Manager.
    fn capabilities(&self) -> DeployerCapabilities {
        DeployerCapabilities {
            set_env: !self.secret_env.is_empty(),
            ..DeployerCapabilities::ALL
        }
    }

    async fn revisions(&self, service: &ServiceId) -> Result<RevisionHistory> {
        let view = self.view(service).await?;
        // During a circuit-breaker rollback the failed revision is the one being
        // undone ("current"), and the circuit breaker's target comes first.
        let current_arn = view
            .rollback
            .as_ref()
            .and_then(|rb| rb.failed.clone())
            .unwrap_or_else(|| view.current.clone());
        let current = self.revision(&current_arn).await?;
        let previous = self
            .previous(service, &view, &[current_arn.as_str()], HISTORY_LEN)
            .await?;
        let mut revisions = Vec::with_capacity(previous.len());
        for (i, arn) in previous.into_iter().take(HISTORY_LEN).enumerate() {
            // The rollback target is described; older entries keep just their id.
            let guessed = self.guessed.lock().expect("lock").contains(&arn);
            let mut revision = if i == 0 {
                self.revision(&arn).await?
            } else {
                Revision::new(arn.as_str())
            };
            if guessed {
                revision = revision.with_note(format!(
                    "{arn} is the family's previous revision (no deployment history to read), which may never have been deployed"
                ));
            }
            revisions.push(revision);
        }
        Ok(RevisionHistory {
            current,
            previous: revisions,
            rollout_in_progress: view.rollback.is_some()
                || rollout_of(&view.state, &view.current, None).phase != RolloutPhase::Complete,
        })
    }

    async fn roll_back(
        &self,
        service: &ServiceId,
        target: &RollbackTarget,
    ) -> Result<RevisionChange> {
        let (cluster, name) = self.names(service)?;
        let view = self.view(service).await?;
        let current = view.current.clone();
        let failed = view.rollback.as_ref().and_then(|rb| rb.failed.clone());
        let to = match target {
            RollbackTarget::Previous => {
                // Skip what is being undone: the current revision, or during a
                // circuit-breaker rollback the failed one (the current is then the
                // answer).
                let skip = match &failed {
                    Some(f) => [f.as_str()],
                    None if view.rollback.is_some() => [""],
                    None => [current.as_str()],
                };
                self.previous(service, &view, &skip, 1)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| self.no_previous(service, &current))?
            }
            RollbackTarget::Revision(id) if same_td(id.as_str(), &current) => current.clone(),
            // Describing proves the revision exists before the service is touched.
            RollbackTarget::Revision(id) => {
                let (td, _) = self.task_definition(id.as_str()).await?;
                td.task_definition_arn.unwrap_or_else(|| id.to_string())
            }
        };
        // The circuit breaker already rolls back to the target: adopt its rollback
        // instead of starting another deployment.
        if let Some(rb) = &view.rollback
            && same_td(&to, &rb.target)
        {
            let change = RevisionChange {
                from: RevisionId::new(failed.as_deref().unwrap_or(&current)),
                to: RevisionId::new(&rb.target),
                changed: failed.is_some(),
            };
            self.remember(service, &change);
            return Ok(change);
        }
        let change = RevisionChange {
            from: RevisionId::new(failed.as_deref().unwrap_or(&current)),
            to: RevisionId::new(&to),
            changed: to != current,
        };
        if !change.changed {
            return Ok(change);
        }
        // An in-progress deployment whose source is the target: let ECS roll it back.
        let source = view
            .state
            .deployments
            .iter()
            .find(|d| d.status != "PRIMARY" && d.rollout != Some(Rollout::Failed))
            .map(|d| d.task_definition.as_str());
        if view.rollback.is_none()
            && view.state.deployments.len() > 1
            && source.is_some_and(|s| same_td(s, &to))
            && let Some(arn) = &view.in_flight
        {
            let stopped = self
                .client
                .stop_service_deployment()
                .service_deployment_arn(arn)
                .stop_type(StopServiceDeploymentStopType::Rollback)
                .send()
                .await;
            match stopped {
                Ok(_) => {
                    self.remember(service, &change);
                    return Ok(change);
                }
                Err(e) if class_of(&e) == Class::Throttled => {
                    return Err(from_sdk(self, format!("deployment {arn}"), e));
                }
                // Not stoppable (finished meanwhile, not supported): update instead.
                Err(_) => {}
            }
        }
        self.client
            .update_service()
            .cluster(cluster)
            .service(name)
            .task_definition(&to)
            .force_new_deployment(true)
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("service {service}"), e))?;
        self.remember(service, &change);
        Ok(change)
    }

    async fn rollout_status(&self, service: &ServiceId) -> Result<RolloutStatus> {
        let state = self.describe(service).await?;
        let current = self.arn_of(&state.task_definition).await?;
        let target = self.target_of(service);
        Ok(rollout_of(&state, &current, target.as_deref()))
    }

    async fn wait_until_stable(&self, service: &ServiceId) -> Result<RolloutStatus> {
        let what = format!("{self}: rollout of {service}");
        let status = poll_until(
            &what,
            || self.rollout_status(service),
            &conditions::rollout_complete,
            &self.wait,
        )
        .await?;
        if let Ok(mut t) = self.targets.lock() {
            t.remove(&service.to_string());
        }
        Ok(status)
    }

    async fn set_env(&self, service: &ServiceId, var: &EnvVar) -> Result<RevisionChange> {
        if !is_env_name(&var.name) {
            return Err(Error::invalid(
                "env.name",
                format!("{:?} is not an environment variable name", var.name),
            ));
        }
        // Refused before anything is read or written: the alternative is the value in
        // plain text in the task definition.
        let (Some(secret), Some(writer)) = (self.secret_env.get(&var.name), &self.secrets) else {
            return Err(Error::precondition(
                format!("{self}: environment variable {}", var.name),
                format!(
                    "no Secrets Manager secret is configured for it, and a task \
                     definition's environment is readable by everyone with \
                     ecs:DescribeTaskDefinition; configure one with \
                     EcsDeployerBuilder::with_secret_env({:?}, \"<secret name or ARN>\")",
                    var.name
                ),
            ));
        };
        let base = self.base(service).await?;
        let mut containers = base.td.container_definitions.clone().unwrap_or_default();
        // A missing container is refused before the secret gets a version.
        let selected = self.selected(var.container.as_deref(), &containers)?;
        let version = writer.put(self, secret, &var.value).await?;
        let value_from = version.value_from();
        let mut changed = false;
        for i in selected {
            let c = &mut containers[i];
            // ECS refuses a name in both environment and secrets.
            if let Some(env) = c.environment.as_mut() {
                let before = env.len();
                env.retain(|kv| kv.name() != Some(var.name.as_str()));
                changed |= env.len() != before;
            }
            let secrets = c.secrets.get_or_insert_with(Vec::new);
            match secrets.iter_mut().find(|s| s.name() == var.name) {
                Some(s) if s.value_from() == value_from => {}
                Some(s) => {
                    s.value_from = value_from.clone();
                    changed = true;
                }
                None => {
                    secrets.push(
                        Secret::builder()
                            .name(&var.name)
                            .value_from(&value_from)
                            .build()
                            .map_err(|e| Error::failed(self, format!("container secret: {e}")))?,
                    );
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(base.unchanged());
        }
        self.commit(service, base, containers).await
    }

    async fn set_image(&self, service: &ServiceId, update: &ImageUpdate) -> Result<RevisionChange> {
        if update.image.trim().is_empty() {
            return Err(Error::invalid("image", "must not be empty"));
        }
        self.derive(service, |containers| {
            let i = match &update.container {
                Some(c) => containers
                    .iter()
                    .position(|d| d.name() == Some(c.as_str()))
                    .ok_or_else(|| self.container_missing(c, containers))?,
                None if containers.is_empty() => {
                    return Err(Error::failed(self, "the task definition has no container"));
                }
                None => 0,
            };
            let c = &mut containers[i];
            if c.image() == Some(update.image.as_str()) {
                return Ok(false);
            }
            c.image = Some(update.image.clone());
            Ok(true)
        })
        .await
    }

    async fn instances(&self, service: &ServiceId) -> Result<Vec<Instance>> {
        let (cluster, name) = self.names(service)?;
        let mut arns = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .client
                .list_tasks()
                .cluster(cluster)
                .service_name(name)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| from_sdk(self, format!("tasks of {service}"), e))?;
            arns.extend(out.task_arns().iter().cloned());
            match out.next_token() {
                Some(t) => next = Some(t.to_owned()),
                None => break,
            }
        }
        let mut instances = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(100) {
            let out = self
                .client
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| from_sdk(self, format!("tasks of {service}"), e))?;
            for t in out.tasks() {
                instances.push(instance_of(
                    t.task_arn().unwrap_or_default(),
                    t.task_definition_arn(),
                    t.last_status().unwrap_or_default(),
                    t.health_status(),
                    t.stopped_reason(),
                ));
            }
        }
        Ok(instances)
    }
}

/// A revision to derive a new one from: its ARN, description and tags.
struct Base {
    current: String,
    td: TaskDefinition,
    tags: Vec<aws_sdk_ecs::types::Tag>,
}

impl Base {
    fn unchanged(&self) -> RevisionChange {
        RevisionChange {
            from: RevisionId::new(&self.current),
            to: RevisionId::new(&self.current),
            changed: false,
        }
    }
}

/// A name ECS can take as an environment variable (not empty, no `=`).
fn is_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=')
}

/// A service as the rollback logic sees it.
#[derive(Debug, Clone)]
struct View {
    state: ServiceState,
    /// The full ARN of the service's task definition (the PRIMARY deployment's).
    current: String,
    /// The deployment circuit breaker (or a rollback request) is rolling back.
    rollback: Option<CircuitBreakerRollback>,
    /// The IN_PROGRESS or PENDING service deployment, when the API names one.
    in_flight: Option<String>,
}

/// A rollback ECS runs itself: `target` is the PRIMARY deployment's task definition
/// (the last one that completed), `failed` the one rolled back from, when known.
#[derive(Debug, Clone)]
struct CircuitBreakerRollback {
    failed: Option<String>,
    target: String,
}

/// What DescribeServices says, in the terms the rollout logic needs.
#[derive(Debug, Clone)]
struct ServiceState {
    task_definition: String,
    desired: u32,
    running: u32,
    deployments: Vec<DeploymentState>,
}

#[derive(Debug, Clone)]
struct DeploymentState {
    id: String,
    status: String,
    task_definition: String,
    desired: u32,
    running: u32,
    failed_tasks: u32,
    rollout: Option<Rollout>,
    reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rollout {
    InProgress,
    Completed,
    Failed,
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// The services-stable test, with failure: exactly one deployment, running = desired
/// (service and deployment), rollout completed (or not reported, for services that
/// predate rollout states).
///
/// It fails when the PRIMARY deployment is FAILED, or the deployment of `target` (the
/// revision this deployer last moved the service to) is: then the circuit breaker is
/// undoing that change. Any other FAILED deployment is an old one draining beside a
/// healthy (rollback) deployment: progress, reported in the message.
fn rollout_of(state: &ServiceState, current: &str, target: Option<&str>) -> RolloutStatus {
    let primary = state.deployments.iter().find(|d| d.status == "PRIMARY");
    let updated = primary.map_or(state.running, |p| p.running);
    let base = RolloutStatus {
        revision: RevisionId::new(current),
        phase: RolloutPhase::InProgress,
        desired: state.desired,
        updated,
        ready: updated,
        message: String::new(),
    };
    let failed = |d: &DeploymentState| d.rollout == Some(Rollout::Failed);
    let ours = |d: &DeploymentState| target.is_some_and(|t| same_td(t, &d.task_definition));
    if let Some(f) = state
        .deployments
        .iter()
        .find(|d| failed(d) && (d.status == "PRIMARY" || ours(d)))
    {
        let undone = if f.status == "PRIMARY" {
            String::new()
        } else {
            format!("; the service is rolled back to {current}")
        };
        return RolloutStatus {
            phase: RolloutPhase::Failed,
            message: format!(
                "deployment {} of {} failed ({} failed tasks): {}{undone}",
                f.id,
                f.task_definition,
                f.failed_tasks,
                f.reason.as_deref().unwrap_or("no reason given")
            ),
            ..base
        };
    }
    let one = state.deployments.len() <= 1;
    let counts = state.running == state.desired && primary.is_none_or(|p| p.running == p.desired);
    let completed = primary.is_none_or(|p| p.rollout.is_none_or(|r| r == Rollout::Completed));
    if one && counts && completed {
        return RolloutStatus {
            phase: RolloutPhase::Complete,
            ..base
        };
    }
    let draining = state
        .deployments
        .iter()
        .filter(|d| failed(d))
        .map(|d| {
            format!(
                "; failed deployment {} of {} draining",
                d.id, d.task_definition
            )
        })
        .collect::<String>();
    let message = match primary.and_then(|p| p.reason.clone()) {
        Some(reason) => format!(
            "{} deployments; {reason}{draining}",
            state.deployments.len()
        ),
        None => format!(
            "{} deployments; {} of {} tasks running{draining}",
            state.deployments.len(),
            state.running,
            state.desired
        ),
    };
    RolloutStatus { message, ..base }
}

fn instance_of(
    arn: &str,
    task_definition: Option<&str>,
    last_status: &str,
    health: Option<&HealthStatus>,
    stopped_reason: Option<&str>,
) -> Instance {
    let state = match last_status {
        "RUNNING" => InstanceState::Running,
        "PROVISIONING" | "PENDING" | "ACTIVATING" => InstanceState::Pending,
        _ if stopped_reason.is_some_and(|r| !r.is_empty() && r.contains("rror")) => {
            InstanceState::Failed
        }
        _ => InstanceState::Stopped,
    };
    let unhealthy = health == Some(&HealthStatus::Unhealthy);
    let ready = state == InstanceState::Running && !unhealthy;
    let detail = if ready {
        None
    } else if let Some(r) = stopped_reason.filter(|r| !r.is_empty()) {
        Some(r.to_owned())
    } else if unhealthy {
        Some("container health check UNHEALTHY".to_owned())
    } else {
        Some(format!("last status {last_status}"))
    };
    Instance {
        id: arn.to_owned(),
        revision: task_definition.map(RevisionId::new),
        state,
        ready,
        detail,
    }
}

/// Whether two task-definition references name the same revision (ARN or
/// `family:revision`; emulators echo the form they were given).
fn same_td(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (family_revision(a), family_revision(b)),
            (Some(x), Some(y)) if x == y
        )
}

fn is_task_definition_arn(id: &str) -> bool {
    id.starts_with("arn:") && id.contains(":task-definition/")
}

/// `(family, revision)` of a task-definition ARN or `family:revision`.
fn family_revision(id: &str) -> Option<(&str, u32)> {
    let tail = id.rsplit_once(":task-definition/").map_or(id, |(_, t)| t);
    let (family, rev) = tail.rsplit_once(':')?;
    Some((family, rev.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(status: &str, td: &str, running: u32, rollout: Option<Rollout>) -> DeploymentState {
        DeploymentState {
            id: format!("ecs-svc/{td}"),
            status: status.into(),
            task_definition: td.into(),
            desired: 3,
            running,
            failed_tasks: 0,
            rollout,
            reason: None,
        }
    }

    fn state(deployments: Vec<DeploymentState>, running: u32) -> ServiceState {
        ServiceState {
            task_definition: "td:2".into(),
            desired: 3,
            running,
            deployments,
        }
    }

    #[test]
    fn stable_needs_one_completed_deployment_at_full_count() {
        let s = state(vec![dep("PRIMARY", "td:2", 3, Some(Rollout::Completed))], 3);
        assert_eq!(rollout_of(&s, "td:2", None).phase, RolloutPhase::Complete);
        // Two deployments: the old one still drains.
        let s = state(
            vec![
                dep("PRIMARY", "td:2", 3, Some(Rollout::InProgress)),
                dep("ACTIVE", "td:1", 1, Some(Rollout::Completed)),
            ],
            4,
        );
        let st = rollout_of(&s, "td:2", None);
        assert_eq!(st.phase, RolloutPhase::InProgress);
        assert!(st.message.starts_with("2 deployments"), "{}", st.message);
        // Running short of desired.
        let s = state(vec![dep("PRIMARY", "td:2", 2, Some(Rollout::Completed))], 2);
        assert_eq!(rollout_of(&s, "td:2", None).phase, RolloutPhase::InProgress);
        // No rollout state reported (older services): counts decide.
        let s = state(vec![dep("PRIMARY", "td:2", 3, None)], 3);
        assert_eq!(rollout_of(&s, "td:2", None).phase, RolloutPhase::Complete);
    }

    #[test]
    fn only_the_primary_or_our_target_failing_fails() {
        let mut failed = dep("ACTIVE", "td:2", 0, Some(Rollout::Failed));
        failed.reason = Some("ECS deployment circuit breaker: tasks failed to start.".into());
        failed.failed_tasks = 4;
        let s = state(
            vec![
                dep("PRIMARY", "td:1", 1, Some(Rollout::InProgress)),
                failed.clone(),
            ],
            1,
        );
        // The circuit breaker rolls back to td:1: the failed td:2 drains; progress.
        let st = rollout_of(&s, "td:1", None);
        assert_eq!(st.phase, RolloutPhase::InProgress, "{st}");
        assert!(st.message.contains("draining"), "{}", st.message);
        let st = rollout_of(&s, "td:1", Some("td:1"));
        assert_eq!(st.phase, RolloutPhase::InProgress, "{st}");
        // But if this deployer moved the service to td:2, its rollout failed.
        let st = rollout_of(&s, "td:1", Some("td:2"));
        assert_eq!(st.phase, RolloutPhase::Failed);
        assert!(st.message.contains("circuit breaker"), "{}", st.message);
        assert!(st.message.contains("4 failed tasks"), "{}", st.message);
        assert!(st.message.contains("rolled back to td:1"), "{}", st.message);
        // A FAILED PRIMARY (circuit breaker without rollback) fails.
        let mut primary = failed;
        primary.status = "PRIMARY".into();
        let s = state(
            vec![primary, dep("ACTIVE", "td:1", 1, Some(Rollout::Completed))],
            1,
        );
        assert_eq!(rollout_of(&s, "td:2", None).phase, RolloutPhase::Failed);
    }

    #[test]
    fn same_revision_in_either_form() {
        assert!(same_td(
            "arn:aws:ecs:us-east-1:1:task-definition/a:3",
            "a:3"
        ));
        assert!(!same_td("a:3", "a:4"));
        assert!(!same_td("a:3", "ab:3"));
    }

    #[test]
    fn family_and_revision_parse() {
        assert_eq!(
            family_revision("arn:aws:ecs:us-east-1:123456789012:task-definition/meshos-api:7"),
            Some(("meshos-api", 7))
        );
        assert_eq!(family_revision("meshos-api:12"), Some(("meshos-api", 12)));
        assert_eq!(family_revision("meshos-api"), None);
        assert!(is_task_definition_arn(
            "arn:aws:ecs:us-east-1:1:task-definition/a:1"
        ));
        assert!(!is_task_definition_arn("a:1"));
    }

    #[test]
    fn task_states_map_to_instances() {
        let i = instance_of(
            "t1",
            Some("td:1"),
            "RUNNING",
            Some(&HealthStatus::Healthy),
            None,
        );
        assert!(i.ready && i.state == InstanceState::Running && i.detail.is_none());
        let i = instance_of("t2", None, "RUNNING", Some(&HealthStatus::Unhealthy), None);
        assert!(!i.ready);
        assert_eq!(
            i.detail.as_deref(),
            Some("container health check UNHEALTHY")
        );
        let i = instance_of("t3", None, "PENDING", None, None);
        assert_eq!(i.state, InstanceState::Pending);
        let i = instance_of(
            "t4",
            None,
            "STOPPED",
            None,
            Some("CannotPullContainerError: pull image manifest has been retried"),
        );
        assert_eq!(i.state, InstanceState::Failed);
        let i = instance_of(
            "t5",
            None,
            "STOPPED",
            None,
            Some("Scaling activity initiated"),
        );
        assert_eq!(i.state, InstanceState::Stopped);
    }
}
