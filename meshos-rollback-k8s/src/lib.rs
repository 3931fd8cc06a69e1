//! Kubernetes backend for meshos-rollback: the playbook's
//! `kubectl rollout undo`, `kubectl rollout status`, `kubectl get pods` and
//! `kubectl set env` as a [`Deployer`], and a rollback lock on a Lease.
//!
//! | Type | Implements | Kubernetes objects |
//! |------|------------|--------------------|
//! | [`K8sDeployer`] | [`Deployer`] | `apps/v1` Deployments, their ReplicaSets and Pods |
//! | [`LeaseLock`] | [`RollbackLock`] | `coordination.k8s.io/v1` Leases |
//! | [`PodReport`] | (verification) | the pods of a Deployment's selector |
//!
//! Both take an injected [`kube::Client`]: this crate never reads a kubeconfig or
//! credentials on its own. A [`ServiceId::Kubernetes`] names a Deployment by
//! namespace and name; other kinds of service are refused with
//! [`Error::InvalidInput`]. Errors are the core [`Error`], classified from the API
//! server's answer (404 not found, 409 conflict, 401/403 permission denied, 400/422
//! invalid input, 410/429/5xx transient); the kube error is the `source()`.
//!
//! Revision ids are the deployment controller's revision numbers (see
//! [`K8sDeployer`] for how a reused ReplicaSet keeps its id). StatefulSets and
//! DaemonSets (ControllerRevisions) are not supported yet.
//!
//! # Features
//!
//! | Feature | Default | What it adds |
//! |---------|---------|--------------|
//! | `testing` | no | `testing::TestApiServer`: an in-process API server with a deployment controller, for tests and demos without a cluster |
//!
//! k8s-openapi needs exactly one Kubernetes version feature in the final build
//! (`k8s-openapi = { version = "0.29", features = ["v1_35"] }` in your binary); this
//! library enables none, and reads the objects it needs as JSON, so any version
//! from `v1_33` on works.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use meshos_rollback_core::model::{RollbackTarget, ServiceId};
//! use meshos_rollback_core::provider::{Deployer, LockKey, RollbackLock};
//! use meshos_rollback_k8s::{K8sDeployer, LeaseLock};
//!
//! let client = kube::Client::try_default().await?;
//! let lock = LeaseLock::new(client.clone(), "meshos-system");
//! let deployer = K8sDeployer::new(client, "prod-us-east-1")
//!     .with_fail_fast_grace(Duration::from_secs(90));
//!
//! let api = ServiceId::kubernetes("production", "meshos-api");
//! let lease = lock
//!     .acquire(&LockKey::new("rollback-prod-meshos-api"), "deploy-bot-7f9c", Duration::from_secs(60))
//!     .await?;
//! deployer.roll_back(&api, &RollbackTarget::Previous).await?; // kubectl rollout undo
//! deployer.wait_until_stable(&api).await?;                    // kubectl rollout status
//! let pods = deployer.verify_pods(&api).await?;               // kubectl get pods -l ...
//! assert!(pods.all_ready(), "{pods}");
//! lock.release(&lease).await?;
//! # Ok(()) }
//! ```
//!
//! [`Deployer`]: meshos_rollback_core::provider::Deployer
//! [`RollbackLock`]: meshos_rollback_core::provider::RollbackLock
//! [`ServiceId::Kubernetes`]: meshos_rollback_core::model::ServiceId::Kubernetes
//! [`Error`]: meshos_rollback_core::Error
//! [`Error::InvalidInput`]: meshos_rollback_core::Error::InvalidInput
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod deployment;
mod error;
pub mod lease;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use deployment::{K8sDeployer, PodReport};
pub use lease::LeaseLock;
