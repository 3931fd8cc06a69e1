//! The playbook's nouns: regions, services, revisions and incidents.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A deployment region, such as `us-east-1`.
///
/// Lower-case ASCII letters, digits and `-`, 1 to 63 characters, so it can be used in
/// DNS names, lock keys and file names without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    /// Checks and wraps a region name.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if valid {
            Ok(Region(name))
        } else {
            Err(Error::invalid(
                "region",
                format!(
                    "{name:?} is not a region name: use 1-63 lower-case letters, digits and '-', like us-east-1"
                ),
            ))
        }
    }

    /// The region name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Region {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Region::new(s)
    }
}

impl TryFrom<String> for Region {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Region::new(s)
    }
}

impl From<Region> for String {
    fn from(r: Region) -> String {
        r.0
    }
}

/// The service a rollback acts on, in the terms of the backend that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServiceId {
    /// An ECS service in a cluster.
    Ecs {
        /// Cluster name, for example `meshos-us-east-1`.
        cluster: String,
        /// Service name, for example `meshos-api`.
        service: String,
    },
    /// A Kubernetes Deployment in a namespace.
    Kubernetes {
        /// Namespace, for example `production`.
        namespace: String,
        /// Deployment name, for example `meshos-api`.
        deployment: String,
    },
    /// Any other backend's own identifier.
    Custom {
        /// The backend's identifier.
        id: String,
    },
}

impl ServiceId {
    /// An ECS service.
    pub fn ecs(cluster: impl Into<String>, service: impl Into<String>) -> Self {
        ServiceId::Ecs {
            cluster: cluster.into(),
            service: service.into(),
        }
    }

    /// A Kubernetes Deployment.
    pub fn kubernetes(namespace: impl Into<String>, deployment: impl Into<String>) -> Self {
        ServiceId::Kubernetes {
            namespace: namespace.into(),
            deployment: deployment.into(),
        }
    }

    /// A custom backend's service.
    pub fn custom(id: impl Into<String>) -> Self {
        ServiceId::Custom { id: id.into() }
    }

    /// The short name of the service (ECS service, Deployment or custom id).
    pub fn name(&self) -> &str {
        match self {
            ServiceId::Ecs { service, .. } => service,
            ServiceId::Kubernetes { deployment, .. } => deployment,
            ServiceId::Custom { id } => id,
        }
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceId::Ecs { cluster, service } => write!(f, "ecs:{cluster}/{service}"),
            ServiceId::Kubernetes {
                namespace,
                deployment,
            } => write!(f, "k8s:{namespace}/{deployment}"),
            ServiceId::Custom { id } => write!(f, "custom:{id}"),
        }
    }
}

/// A service in a region: the unit a rollback, a lock and a metric query refer to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceRef {
    /// Where it runs.
    pub region: Region,
    /// What it is.
    pub service: ServiceId,
}

impl ServiceRef {
    /// A service in a region.
    pub fn new(region: Region, service: ServiceId) -> Self {
        ServiceRef { region, service }
    }
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.region, self.service)
    }
}

/// A backend's name for one revision of a service: an ECS task-definition ARN, a
/// Kubernetes rollout revision number, a release tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RevisionId(String);

impl RevisionId {
    /// Wraps a backend's revision name.
    pub fn new(id: impl Into<String>) -> Self {
        RevisionId(id.into())
    }

    /// The backend's revision name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RevisionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RevisionId {
    fn from(s: &str) -> Self {
        RevisionId(s.to_owned())
    }
}

impl From<String> for RevisionId {
    fn from(s: String) -> Self {
        RevisionId(s)
    }
}

/// One revision of a service as the backend knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// The backend's name for it.
    pub id: RevisionId,
    /// The main container image, when the backend knows one.
    pub image: Option<String>,
    /// When the revision was created, when known.
    pub created_at: Option<Timestamp>,
    /// What the operator should know about it, such as "it may never have been
    /// deployed" for a guessed previous revision; the plan shows it as a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Revision {
    /// A revision with just an id.
    pub fn new(id: impl Into<RevisionId>) -> Self {
        Revision {
            id: id.into(),
            image: None,
            created_at: None,
            note: None,
        }
    }

    /// Adds a note for the operator.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Sets the image.
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }
}

/// Which revisions a service has run, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionHistory {
    /// The revision the service is meant to run now (the newest deployment).
    pub current: Revision,
    /// Earlier revisions the service ran, newest first, without `current`.
    pub previous: Vec<Revision>,
    /// Whether a rollout to `current` is still under way.
    pub rollout_in_progress: bool,
}

impl RevisionHistory {
    /// The revision a rollback "to the previous one" goes to.
    pub fn rollback_target(&self) -> Option<&Revision> {
        self.previous.first()
    }

    /// Whether `id` is the current revision or one of the previous ones.
    pub fn contains(&self, id: &RevisionId) -> bool {
        self.current.id == *id || self.previous.iter().any(|r| r.id == *id)
    }
}

/// Where a rollback goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackTarget {
    /// The revision before the current one (`kubectl rollout undo`, ECS `deployments[1]`).
    Previous,
    /// A named revision (`kubectl rollout undo --to-revision`).
    Revision(RevisionId),
}

impl fmt::Display for RollbackTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RollbackTarget::Previous => f.write_str("previous revision"),
            RollbackTarget::Revision(id) => write!(f, "revision {id}"),
        }
    }
}

/// The three versions the checklist asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    /// The version running now (the bad one).
    pub current: Option<String>,
    /// The version to roll back to.
    pub target: Option<String>,
    /// The last version known to be good, if different from the target.
    pub last_known_good: Option<String>,
}

/// How bad an incident is, in the incident report's words.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    #[default]
    High,
    /// Critical.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        })
    }
}

/// The incident a rollback answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Identifier, such as `INC-20251030-001`.
    pub id: String,
    /// Severity.
    pub severity: Severity,
    /// One line: what is wrong, such as `High error rate detected`.
    pub summary: String,
    /// When the problem began (the deployment that caused it, or the first alert).
    pub started_at: Timestamp,
    /// The regions affected.
    pub regions: Vec<Region>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_are_checked() {
        assert_eq!(Region::new("us-east-1").unwrap().as_str(), "us-east-1");
        for bad in ["", "US-EAST-1", "us east", "-us", "us-", "us_east"] {
            let err = Region::new(bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid region"), "{err}");
        }
        let r: Region = serde_json::from_str("\"eu-west-1\"").unwrap();
        assert_eq!(r.to_string(), "eu-west-1");
        assert!(serde_json::from_str::<Region>("\"EU\"").is_err());
    }

    #[test]
    fn service_ids_display_backend_and_scope() {
        assert_eq!(
            ServiceId::ecs("meshos-us-east-1", "meshos-api").to_string(),
            "ecs:meshos-us-east-1/meshos-api"
        );
        assert_eq!(
            ServiceId::kubernetes("production", "meshos-api").to_string(),
            "k8s:production/meshos-api"
        );
        let s: ServiceId =
            serde_json::from_str(r#"{"kind":"kubernetes","namespace":"p","deployment":"d"}"#)
                .unwrap();
        assert_eq!(s, ServiceId::kubernetes("p", "d"));
    }

    #[test]
    fn rollback_target_is_newest_previous() {
        let h = RevisionHistory {
            current: Revision::new("3"),
            previous: vec![Revision::new("2"), Revision::new("1")],
            rollout_in_progress: false,
        };
        assert_eq!(h.rollback_target().unwrap().id.as_str(), "2");
        assert!(h.contains(&"1".into()));
        assert!(!h.contains(&"9".into()));
    }
}
