//! [`EcsDeployer`]: roll ECS services back and wait for them to settle.
//!
//! The playbook's commands, as API calls:
//!
//! | Playbook | [`EcsDeployer`] |
//! |----------|-----------------|
//! | `describe-services --query services[0].deployments[1].taskDefinition` | [`Deployer::roll_back`] with [`RollbackTarget::Previous`] while a deployment is in progress |
//! | `update-service --task-definition PREV --force-new-deployment` | [`Deployer::roll_back`] (or `StopServiceDeployment` with `stopType=ROLLBACK` for an in-progress deployment, where the API offers it) |
//! | `wait services-stable` | [`Deployer::wait_until_stable`], adaptive and bounded |
//! | `kubectl set env DATABASE_URL=...` (ECS form) | [`Deployer::set_env`]: a new task-definition revision |

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentRolloutState, HealthStatus, KeyValuePair,
    ServiceDeploymentStatus, StopServiceDeploymentStopType, TaskDefinition, TaskDefinitionField,
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
use secrecy::ExposeSecret;

use crate::error::{Class, class_of, from_sdk, is_missing_operation, missing};
use crate::sdk::{prepare_client, timestamp};

/// How many earlier revisions [`Deployer::revisions`] lists.
const HISTORY_LEN: usize = 10;

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
}

impl EcsDeployerBuilder {
    /// A deployer using a client built from `config` (credentials, region, HTTP client
    /// and retry settings all come from it; none are read behind the caller's back).
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(aws_sdk_ecs::Client::new(config))
    }

    /// A deployer using an existing ECS client.
    pub fn from_client(client: aws_sdk_ecs::Client) -> Self {
        EcsDeployerBuilder {
            client,
            cluster: None,
            wait: EcsDeployer::default_wait(),
        }
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

    /// Checks the configuration: a region is required, and an HTTP client (installed
    /// here when missing and the `default-http-client` feature is on).
    pub fn build(self) -> Result<EcsDeployer> {
        let (client, region) = prepare_client!("EcsDeployer", self.client, aws_sdk_ecs);
        Ok(EcsDeployer {
            client,
            region,
            cluster: self.cluster,
            wait: self.wait,
            service_deployments_api: AtomicU8::new(API_UNKNOWN),
        })
    }
}

/// A [`Deployer`] for ECS services (ECS deployment controller), one region.
///
/// Revisions are task-definition ARNs. Services are [`ServiceId::Ecs`].
///
/// * **Rollback target** ([`RollbackTarget::Previous`]), first that answers: the
///   previous deployment's task definition while a deployment is in progress (the
///   playbook's `deployments[1]`); the service's deployment history
///   (ListServiceDeployments + DescribeServiceRevisions); the previous revision of the
///   task-definition family.
/// * **Roll back**: `UpdateService(taskDefinition, forceNewDeployment)`; for an
///   in-progress deployment whose source is the target, `StopServiceDeployment` with
///   `stopType=ROLLBACK` where the API offers it. The target already running changes
///   nothing.
/// * **Wait**: the `services-stable` semantics (one deployment, running = desired,
///   rollout completed); a `FAILED` rollout fails the wait. Polls quickly at first,
///   backing off, for a bounded number of checks.
/// * **set_env / set_image**: registers a new revision copied from the current one
///   with only that change, then points the service at it. Values are secret and
///   never logged.
///
/// [`Deployer::revisions`] describes the current revision and the rollback target
/// (image, registration time); older entries carry the revision id only.
#[derive(Debug)]
pub struct EcsDeployer {
    client: aws_sdk_ecs::Client,
    region: String,
    cluster: Option<String>,
    wait: Backoff,
    service_deployments_api: AtomicU8,
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
            id: RevisionId::new(td.task_definition_arn().unwrap_or(arn)),
            image: td
                .container_definitions()
                .first()
                .and_then(|c| c.image())
                .map(str::to_owned),
            created_at: td.registered_at().and_then(timestamp),
        })
    }

    /// Task definitions of the service's successful deployments, newest first, from
    /// the service-deployment history; `None` when that API is not available here
    /// (older endpoints, emulators, IAM policies without `ecs:ListServiceDeployments`).
    async fn deployment_history(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<Vec<String>>> {
        if self.service_deployments_api.load(Ordering::Relaxed) == API_MISSING {
            return Ok(None);
        }
        let listed = self
            .client
            .list_service_deployments()
            .cluster(cluster)
            .service(service)
            .status(ServiceDeploymentStatus::Successful)
            .max_results(20)
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
            Err(e) => {
                if is_missing_operation(&e)
                    || matches!(class_of(&e), Class::PermissionDenied | Class::Unsupported)
                {
                    self.service_deployments_api
                        .store(API_MISSING, Ordering::Relaxed);
                }
                return Ok(None);
            }
        };
        self.service_deployments_api
            .store(API_AVAILABLE, Ordering::Relaxed);
        let mut briefs: Vec<_> = out.service_deployments().to_vec();
        briefs.sort_by_key(|b| {
            std::cmp::Reverse(b.started_at().or(b.created_at()).and_then(timestamp))
        });
        let arns: Vec<String> = briefs
            .iter()
            .filter_map(|b| b.target_service_revision_arn().map(str::to_owned))
            .collect();
        if arns.is_empty() {
            return Ok(None);
        }
        let revs = self
            .client
            .describe_service_revisions()
            .set_service_revision_arns(Some(arns.clone()))
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("service revisions of {cluster}/{service}"), e))?;
        let mut out = Vec::new();
        for arn in &arns {
            if let Some(td) = revs
                .service_revisions()
                .iter()
                .find(|r| r.service_revision_arn() == Some(arn.as_str()))
                .and_then(|r| r.task_definition())
                && !out.iter().any(|o: &String| o == td)
            {
                out.push(td.to_owned());
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
        Ok(found.into_iter().map(|(_, arn)| arn).collect())
    }

    /// Earlier task definitions, newest first, without `current`: in-progress
    /// deployments first, then the history that answers.
    async fn previous(
        &self,
        service: &ServiceId,
        state: &ServiceState,
        current: &str,
        enough: usize,
    ) -> Result<Vec<String>> {
        let (cluster, name) = self.names(service)?;
        let mut out: Vec<String> = Vec::new();
        let push = |out: &mut Vec<String>, arn: String| {
            if arn != current && !out.contains(&arn) {
                out.push(arn);
            }
        };
        for d in state.deployments.iter().filter(|d| d.status != "PRIMARY") {
            if !d.task_definition.is_empty() {
                let arn = self.arn_of(&d.task_definition).await?;
                push(&mut out, arn);
            }
        }
        if out.len() >= enough {
            return Ok(out);
        }
        let history = match self.deployment_history(cluster, name).await? {
            Some(h) if h.iter().any(|a| a != current) => h,
            _ => self.family_history(current).await?,
        };
        for arn in history {
            push(&mut out, arn);
        }
        Ok(out)
    }

    /// The in-progress service deployment's ARN, if the API answers.
    async fn in_progress_deployment(&self, cluster: &str, service: &str) -> Option<String> {
        if self.service_deployments_api.load(Ordering::Relaxed) == API_MISSING {
            return None;
        }
        let out = self
            .client
            .list_service_deployments()
            .cluster(cluster)
            .service(service)
            .status(ServiceDeploymentStatus::InProgress)
            .status(ServiceDeploymentStatus::Pending)
            .send()
            .await;
        match out {
            Ok(out) => {
                self.service_deployments_api
                    .store(API_AVAILABLE, Ordering::Relaxed);
                out.service_deployments()
                    .first()
                    .and_then(|d| d.service_deployment_arn())
                    .map(str::to_owned)
            }
            Err(e) => {
                if is_missing_operation(&e)
                    || matches!(class_of(&e), Class::PermissionDenied | Class::Unsupported)
                {
                    self.service_deployments_api
                        .store(API_MISSING, Ordering::Relaxed);
                }
                None
            }
        }
    }

    /// Registers a copy of the current task definition changed by `edit` (which says
    /// whether it changed anything) and points the service at it.
    async fn derive(
        &self,
        service: &ServiceId,
        edit: impl FnOnce(&mut Vec<ContainerDefinition>) -> Result<bool>,
    ) -> Result<RevisionChange> {
        let (cluster, name) = self.names(service)?;
        let state = self.describe(service).await?;
        let current = self.arn_of(&state.task_definition).await?;
        let (td, tags) = self.task_definition(&current).await?;
        let mut containers = td.container_definitions.clone().unwrap_or_default();
        if !edit(&mut containers)? {
            return Ok(RevisionChange {
                from: RevisionId::new(&current),
                to: RevisionId::new(&current),
                changed: false,
            });
        }
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
            .map_err(|e| from_sdk(self, format!("new revision of {current}"), e))?;
        let new_arn = registered
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .ok_or_else(|| Error::failed(self, "RegisterTaskDefinition returned no ARN"))?
            .to_owned();
        self.client
            .update_service()
            .cluster(cluster)
            .service(name)
            .task_definition(&new_arn)
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("service {service}"), e))?;
        Ok(RevisionChange {
            from: RevisionId::new(current),
            to: RevisionId::new(new_arn),
            changed: true,
        })
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
    fn capabilities(&self) -> DeployerCapabilities {
        DeployerCapabilities::ALL
    }

    async fn revisions(&self, service: &ServiceId) -> Result<RevisionHistory> {
        let state = self.describe(service).await?;
        let current_arn = self.arn_of(&state.task_definition).await?;
        let current = self.revision(&current_arn).await?;
        let previous = self
            .previous(service, &state, &current_arn, HISTORY_LEN)
            .await?;
        let mut revisions = Vec::with_capacity(previous.len());
        for (i, arn) in previous.into_iter().take(HISTORY_LEN).enumerate() {
            // The rollback target is described; older entries keep just their id.
            revisions.push(if i == 0 {
                self.revision(&arn).await?
            } else {
                Revision::new(arn)
            });
        }
        Ok(RevisionHistory {
            current,
            previous: revisions,
            rollout_in_progress: rollout_of(&state, &current_arn).phase != RolloutPhase::Complete,
        })
    }

    async fn roll_back(
        &self,
        service: &ServiceId,
        target: &RollbackTarget,
    ) -> Result<RevisionChange> {
        let (cluster, name) = self.names(service)?;
        let state = self.describe(service).await?;
        let current = self.arn_of(&state.task_definition).await?;
        let to = match target {
            RollbackTarget::Previous => self
                .previous(service, &state, &current, 1)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    missing(
                        self,
                        format!("a previous revision of {service} (it has only one)"),
                    )
                })?,
            RollbackTarget::Revision(id) if id.as_str() == current => current.clone(),
            // Describing proves the revision exists before the service is touched.
            RollbackTarget::Revision(id) => {
                let (td, _) = self.task_definition(id.as_str()).await?;
                td.task_definition_arn.unwrap_or_else(|| id.to_string())
            }
        };
        let change = RevisionChange {
            from: RevisionId::new(&current),
            to: RevisionId::new(&to),
            changed: to != current,
        };
        if !change.changed {
            return Ok(change);
        }
        // An in-progress deployment whose source is the target: let ECS roll it back.
        let source = state
            .deployments
            .iter()
            .find(|d| d.status != "PRIMARY")
            .map(|d| d.task_definition.as_str());
        if state.deployments.len() > 1
            && source == Some(to.as_str())
            && let Some(arn) = self.in_progress_deployment(cluster, name).await
        {
            let stopped = self
                .client
                .stop_service_deployment()
                .service_deployment_arn(&arn)
                .stop_type(StopServiceDeploymentStopType::Rollback)
                .send()
                .await;
            match stopped {
                Ok(_) => return Ok(change),
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
        Ok(change)
    }

    async fn rollout_status(&self, service: &ServiceId) -> Result<RolloutStatus> {
        let state = self.describe(service).await?;
        let current = self.arn_of(&state.task_definition).await?;
        Ok(rollout_of(&state, &current))
    }

    async fn wait_until_stable(&self, service: &ServiceId) -> Result<RolloutStatus> {
        let what = format!("{self}: rollout of {service}");
        poll_until(
            &what,
            || self.rollout_status(service),
            &conditions::rollout_complete,
            &self.wait,
        )
        .await
    }

    async fn set_env(&self, service: &ServiceId, var: &EnvVar) -> Result<RevisionChange> {
        if var.name.is_empty() || var.name.contains('=') {
            return Err(Error::invalid(
                "env.name",
                format!("{:?} is not an environment variable name", var.name),
            ));
        }
        self.derive(service, |containers| {
            let selected: Vec<usize> = match &var.container {
                Some(c) => vec![
                    containers
                        .iter()
                        .position(|d| d.name() == Some(c.as_str()))
                        .ok_or_else(|| self.container_missing(c, containers))?,
                ],
                None => (0..containers.len()).collect(),
            };
            let mut changed = false;
            for i in selected {
                let c = &mut containers[i];
                if c.secrets().iter().any(|s| s.name() == var.name) {
                    return Err(Error::conflict(
                        self,
                        format!(
                            "{} of container {:?} comes from a secret (valueFrom); change the secret instead",
                            var.name,
                            c.name().unwrap_or_default()
                        ),
                    ));
                }
                let value = var.value.expose_secret();
                let env = c.environment.get_or_insert_with(Vec::new);
                match env.iter_mut().find(|kv| kv.name() == Some(var.name.as_str())) {
                    Some(kv) if kv.value() == Some(value) => {}
                    Some(kv) => {
                        kv.value = Some(value.to_owned());
                        changed = true;
                    }
                    None => {
                        env.push(KeyValuePair::builder().name(&var.name).value(value).build());
                        changed = true;
                    }
                }
            }
            Ok(changed)
        })
        .await
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
/// predate rollout states); a FAILED deployment anywhere fails it.
fn rollout_of(state: &ServiceState, current: &str) -> RolloutStatus {
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
    if let Some(failed) = state
        .deployments
        .iter()
        .find(|d| d.rollout == Some(Rollout::Failed))
    {
        return RolloutStatus {
            phase: RolloutPhase::Failed,
            message: format!(
                "deployment {} of {} failed ({} failed tasks): {}",
                failed.id,
                failed.task_definition,
                failed.failed_tasks,
                failed.reason.as_deref().unwrap_or("no reason given")
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
    let message = match primary.and_then(|p| p.reason.clone()) {
        Some(reason) => format!("{} deployments; {reason}", state.deployments.len()),
        None => format!(
            "{} deployments; {} of {} tasks running",
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
        assert_eq!(rollout_of(&s, "td:2").phase, RolloutPhase::Complete);
        // Two deployments: the old one still drains.
        let s = state(
            vec![
                dep("PRIMARY", "td:2", 3, Some(Rollout::InProgress)),
                dep("ACTIVE", "td:1", 1, Some(Rollout::Completed)),
            ],
            4,
        );
        let st = rollout_of(&s, "td:2");
        assert_eq!(st.phase, RolloutPhase::InProgress);
        assert!(st.message.starts_with("2 deployments"), "{}", st.message);
        // Running short of desired.
        let s = state(vec![dep("PRIMARY", "td:2", 2, Some(Rollout::Completed))], 2);
        assert_eq!(rollout_of(&s, "td:2").phase, RolloutPhase::InProgress);
        // No rollout state reported (older services): counts decide.
        let s = state(vec![dep("PRIMARY", "td:2", 3, None)], 3);
        assert_eq!(rollout_of(&s, "td:2").phase, RolloutPhase::Complete);
    }

    #[test]
    fn failed_rollout_anywhere_fails() {
        let mut failed = dep("ACTIVE", "td:2", 0, Some(Rollout::Failed));
        failed.reason = Some("ECS deployment circuit breaker: tasks failed to start.".into());
        failed.failed_tasks = 4;
        let s = state(
            vec![dep("PRIMARY", "td:1", 1, Some(Rollout::InProgress)), failed],
            1,
        );
        let st = rollout_of(&s, "td:1");
        assert_eq!(st.phase, RolloutPhase::Failed);
        assert!(st.message.contains("circuit breaker"), "{}", st.message);
        assert!(st.message.contains("4 failed tasks"), "{}", st.message);
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
