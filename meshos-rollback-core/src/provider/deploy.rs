//! [`Deployer`]: roll a service back to an earlier revision and watch it settle.

use std::fmt;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::display_mock;
use crate::Result;
use crate::model::{RevisionHistory, RevisionId, RollbackTarget, ServiceId};

/// What a [`Deployer`] can do; checked before a plan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeployerCapabilities {
    /// `roll_back(Previous)` works.
    pub rollback_to_previous: bool,
    /// `roll_back(Revision(..))` works.
    pub rollback_to_revision: bool,
    /// `set_env` works.
    pub set_env: bool,
    /// `set_image` works.
    pub set_image: bool,
    /// `instances` works.
    pub list_instances: bool,
}

impl DeployerCapabilities {
    /// Every capability.
    pub const ALL: DeployerCapabilities = DeployerCapabilities {
        rollback_to_previous: true,
        rollback_to_revision: true,
        set_env: true,
        set_image: true,
        list_instances: true,
    };
}

/// The result of a change that moves a service to a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionChange {
    /// The revision the service was meant to run before.
    pub from: RevisionId,
    /// The revision it is meant to run now.
    pub to: RevisionId,
    /// `false` when the service already ran `to` and nothing was changed.
    pub changed: bool,
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutPhase {
    /// Still replacing instances.
    InProgress,
    /// Every instance runs the revision and is ready.
    Complete,
    /// The rollout cannot complete (failed deployment, crash loop, deadline exceeded).
    Failed,
}

/// A snapshot of a service's rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStatus {
    /// The revision being rolled out (or rolled out).
    pub revision: RevisionId,
    /// Where the rollout stands.
    pub phase: RolloutPhase,
    /// Instances wanted.
    pub desired: u32,
    /// Instances running `revision`.
    pub updated: u32,
    /// Instances of `revision` ready to serve.
    pub ready: u32,
    /// The backend's own words, such as `Waiting for rollout to finish: 1 of 3 updated
    /// replicas are available...`.
    pub message: String,
}

impl RolloutStatus {
    /// Whether the rollout is complete.
    pub fn is_complete(&self) -> bool {
        self.phase == RolloutPhase::Complete
    }
}

impl fmt::Display for RolloutStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "revision {} {:?}: {}/{} updated, {}/{} ready",
            self.revision, self.phase, self.updated, self.desired, self.ready, self.desired
        )?;
        if !self.message.is_empty() {
            write!(f, " ({})", self.message)?;
        }
        Ok(())
    }
}

/// An environment variable to set on a service (the playbook's `DATABASE_URL` switch).
/// The value is secret: it never reaches a log or a report.
#[derive(Debug, Clone)]
pub struct EnvVar {
    /// The container to set it on; `None` means every container.
    pub container: Option<String>,
    /// The variable name.
    pub name: String,
    /// The value.
    pub value: SecretString,
}

/// A new image for a service's container (redeploy a known-good image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageUpdate {
    /// The container; `None` means the service's only (or first) container.
    pub container: Option<String>,
    /// The image reference, such as `meshos/mesh-kernel:sha-abc123` or a digest.
    pub image: String,
}

/// The state of one running instance (an ECS task, a pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Being scheduled or started.
    Pending,
    /// Running.
    Running,
    /// Stopped or terminating.
    Stopped,
    /// Failed (crash loop, image pull error, exited with an error).
    Failed,
}

/// One running instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The backend's id (task ARN, pod name).
    pub id: String,
    /// The revision it runs, when known.
    pub revision: Option<RevisionId>,
    /// Its state.
    pub state: InstanceState,
    /// Whether it passes its readiness or health checks.
    pub ready: bool,
    /// Why it is not running and ready, when it is not.
    pub detail: Option<String>,
}

/// Rolls a service back and watches the rollout (ECS service, Kubernetes Deployment).
///
/// Methods that change the service return a [`RevisionChange`] whose `changed` is
/// `false` when the service already runs the target, so repeating a step is a no-op.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Deployer: fmt::Debug + fmt::Display + Send + Sync {
    /// What this deployer can do.
    fn capabilities(&self) -> DeployerCapabilities;

    /// The current revision and the earlier ones, newest first.
    async fn revisions(&self, service: &ServiceId) -> Result<RevisionHistory>;

    /// Starts a rollout back to `target`. Rolling back to the revision the service
    /// already runs changes nothing. `Previous` is resolved by the backend, so prefer
    /// an explicit revision for anything that may be repeated.
    async fn roll_back(
        &self,
        service: &ServiceId,
        target: &RollbackTarget,
    ) -> Result<RevisionChange>;

    /// Where the service's latest rollout stands now.
    async fn rollout_status(&self, service: &ServiceId) -> Result<RolloutStatus>;

    /// Waits until the latest rollout completes, returning its final status, or fails
    /// with [`Error::Failed`](crate::Error::Failed) when it cannot complete. No
    /// deadline of its own: bound it with a timeout layer or the caller's timeout.
    async fn wait_until_stable(&self, service: &ServiceId) -> Result<RolloutStatus>;

    /// Sets an environment variable, starting a rollout when the value changes.
    async fn set_env(&self, service: &ServiceId, var: &EnvVar) -> Result<RevisionChange>;

    /// Sets a container's image, starting a rollout when it changes.
    async fn set_image(&self, service: &ServiceId, update: &ImageUpdate) -> Result<RevisionChange>;

    /// The service's instances and their state.
    async fn instances(&self, service: &ServiceId) -> Result<Vec<Instance>>;
}

display_mock!(MockDeployer);
