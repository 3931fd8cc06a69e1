//! What an operator asks for: which regions, which procedures, which policies.
//! Loadable from TOML, YAML or JSON.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::decision::RollbackPolicy;
use crate::model::{Region, RollbackTarget, ServiceId, ServiceRef};
use crate::provider::{
    DbInstanceId, DnsTarget, ImageRef, MigrationTarget, RestorePoint, RouteId, SnapshotId, TargetId,
};
use crate::{Error, Result};

/// A rollback request across one or more regions.
///
/// ```
/// use meshos_rollback_core::engine::RollbackSpec;
///
/// let spec = RollbackSpec::from_toml_str(r#"
///     max_parallel = 2
///     on_failure = "halt_others"
///
///     [verification]
///     health_endpoints = ["https://{region}.meshos.io/health"]
///
///     [[regions]]
///     region = "us-east-1"
///     service = { kind = "ecs", cluster = "meshos-us-east-1", service = "meshos-api" }
///     exclude_from_routing = "api.meshos.io"
/// "#).unwrap();
/// assert_eq!(spec.regions[0].region.as_str(), "us-east-1");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackSpec {
    /// The regions, each with its procedures.
    pub regions: Vec<RegionSpec>,
    /// Regions rolled back at once.
    #[serde(default = "default_parallel")]
    pub max_parallel: usize,
    /// What a failed region means for the others.
    #[serde(default)]
    pub on_failure: PartialFailure,
    /// Post-rollback verification.
    #[serde(default)]
    pub verification: VerificationSpec,
    /// Announcements, status updates, the report and the e-mail.
    #[serde(default)]
    pub comms: CommsSpec,
    /// Thresholds (canary, matrix, verification limits); the playbook's by default.
    #[serde(default)]
    pub policy: RollbackPolicy,
    /// The service in every region of the fleet, for checking that the regions not
    /// rolled back stay healthy. Empty: the other regions with providers, each checked
    /// with the rolled-back service's id.
    #[serde(default)]
    pub fleet: Vec<ServiceRef>,
    /// Per-step-kind deadlines, overriding the defaults shown in the dry run.
    #[serde(default)]
    pub deadlines: StepDeadlines,
}

/// How long each kind of step may take before it is cut off and recorded as failed
/// (nothing waits forever). `None` keeps the default, shown in the dry run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StepDeadlines {
    /// Taking a region out of routing, until INSYNC (default 10m).
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::optional")]
    pub exclude_region: Option<Duration>,
    /// A load-balancer shift with its health checks (default 10m).
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::optional")]
    pub shift_traffic: Option<Duration>,
    /// A registry retag (default 5m).
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::optional")]
    pub retag_image: Option<Duration>,
    /// Starting a rollback, a redeploy or a connection switch (default 5m).
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::optional")]
    pub deploy: Option<Duration>,
    /// Waiting for a rollout to be stable (default 30m).
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::optional")]
    pub wait_stable: Option<Duration>,
    /// A schema rollback (default 30m).
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::optional")]
    pub roll_back_schema: Option<Duration>,
    /// A database restore until the instance is available (default 2h).
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::optional")]
    pub restore_database: Option<Duration>,
    /// A DNS UPSERT until INSYNC (default 10m).
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::optional")]
    pub point_dns: Option<Duration>,
    /// Verification (default: its window plus 15m).
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::optional")]
    pub verify: Option<Duration>,
    /// The other-regions check (default 10m).
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::optional")]
    pub check_other_regions: Option<Duration>,
    /// Re-admission until INSYNC (default 10m).
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::optional")]
    pub readmit_region: Option<Duration>,
}

fn default_parallel() -> usize {
    4
}

impl RollbackSpec {
    /// A spec for these regions with the defaults: 4 at a time, continue others on
    /// failure, the playbook's thresholds.
    pub fn new(regions: Vec<RegionSpec>) -> Self {
        RollbackSpec {
            regions,
            max_parallel: default_parallel(),
            on_failure: PartialFailure::default(),
            verification: VerificationSpec::default(),
            comms: CommsSpec::default(),
            policy: RollbackPolicy::default(),
            fleet: Vec::new(),
            deadlines: StepDeadlines::default(),
        }
    }

    /// Names the service in every region of the fleet.
    pub fn with_fleet(mut self, fleet: Vec<ServiceRef>) -> Self {
        self.fleet = fleet;
        self
    }

    /// Parses TOML.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::invalid("rollback spec (TOML)", e.to_string()))
    }

    /// Parses YAML.
    pub fn from_yaml_str(text: &str) -> Result<Self> {
        serde_saphyr::from_str(text)
            .map_err(|e| Error::invalid("rollback spec (YAML)", e.to_string()))
    }

    /// Reads a `.toml`, `.yaml`/`.yml` or `.json` file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(
                "rollback spec file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Self::from_toml_str(&text),
            Some("yaml" | "yml") => Self::from_yaml_str(&text),
            Some("json") => serde_json::from_str(&text)
                .map_err(|e| Error::invalid("rollback spec (JSON)", e.to_string())),
            _ => Err(Error::invalid(
                "rollback spec file",
                format!("{}: name it .toml, .yaml, .yml or .json", path.display()),
            )),
        }
    }
}

/// What a failed region means for the other regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PartialFailure {
    /// The other regions carry on; the failure is reported (and paged at high
    /// severity when an escalator is configured).
    #[default]
    ContinueOthers,
    /// The other regions stop at their next step boundary, leaving a recorded,
    /// consistent state to resume from.
    HaltOthers,
    /// Like `HaltOthers`, and on-call is paged at once at critical severity: a human
    /// must decide.
    Escalate,
}

/// One region's procedures, in playbook order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// The region.
    pub region: Region,
    /// The service to roll back.
    pub service: ServiceId,
    /// How the application is rolled back.
    #[serde(default)]
    pub deployment: DeploymentAction,
    /// The weighted DNS record set that routes to this region: the region is taken
    /// out of it (weight 0) first and re-admitted after verification.
    #[serde(default)]
    pub exclude_from_routing: Option<String>,
    /// Shift the load balancer back to the stable target.
    #[serde(default)]
    pub traffic: Option<TrafficSpec>,
    /// Roll schema migrations back (after the application).
    #[serde(default)]
    pub schema: Option<MigrationTarget>,
    /// Restore the database into a new instance and switch the connection string.
    #[serde(default)]
    pub database: Option<DatabaseSpec>,
    /// Point a DNS record at the previous endpoint (the playbook's rollback-dns.json).
    #[serde(default)]
    pub dns: Option<DnsSpec>,
    /// Run post-rollback verification.
    #[serde(default = "yes")]
    pub verify: bool,
    /// Check that the regions not being rolled back stay healthy.
    #[serde(default)]
    pub check_other_regions: bool,
    /// When an excluded region returns to routing.
    #[serde(default)]
    pub readmit: Readmit,
    /// The weight to re-admit the region at. Required when the region is already out
    /// of routing (weight 0) when planning; otherwise its weight then is used.
    #[serde(default)]
    pub readmit_weight: Option<u32>,
}

fn yes() -> bool {
    true
}

impl RegionSpec {
    /// Roll `service` in `region` back to its previous revision, then verify.
    pub fn new(region: Region, service: ServiceId) -> Self {
        RegionSpec {
            region,
            service,
            deployment: DeploymentAction::default(),
            exclude_from_routing: None,
            traffic: None,
            schema: None,
            database: None,
            dns: None,
            verify: true,
            check_other_regions: false,
            readmit: Readmit::default(),
            readmit_weight: None,
        }
    }

    /// Takes the region out of the weighted record set `record` first.
    pub fn excluding_from(mut self, record: impl Into<String>) -> Self {
        self.exclude_from_routing = Some(record.into());
        self
    }

    /// Shifts the route's traffic to the stable target.
    pub fn shifting_traffic(
        mut self,
        route: impl Into<RouteId>,
        stable: impl Into<TargetId>,
    ) -> Self {
        self.traffic = Some(TrafficSpec {
            route: route.into(),
            stable: stable.into(),
        });
        self
    }

    /// Sets how the application is rolled back.
    pub fn with_deployment(mut self, action: DeploymentAction) -> Self {
        self.deployment = action;
        self
    }

    /// Restores the database.
    pub fn restoring_database(mut self, db: DatabaseSpec) -> Self {
        self.database = Some(db);
        self
    }

    /// Rolls schema migrations back.
    pub fn rolling_back_schema(mut self, target: MigrationTarget) -> Self {
        self.schema = Some(target);
        self
    }

    /// Checks the other regions after verification.
    pub fn checking_other_regions(mut self) -> Self {
        self.check_other_regions = true;
        self
    }

    /// Sets when the region returns to routing.
    pub fn with_readmit(mut self, readmit: Readmit) -> Self {
        self.readmit = readmit;
        self
    }

    /// Re-admits the region at this weight.
    pub fn readmitting_at(mut self, weight: u32) -> Self {
        self.readmit_weight = Some(weight);
        self
    }

    /// Skips verification.
    pub fn without_verification(mut self) -> Self {
        self.verify = false;
        self
    }
}

/// How the application is rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum DeploymentAction {
    /// Roll the deployment back (ECS previous task definition, `kubectl rollout undo`).
    RollBack {
        /// Where to: resolved into an explicit revision when planning.
        #[serde(default = "previous")]
        to: RollbackTarget,
    },
    /// Redeploy a known-good image, optionally retagging it in the registry first.
    RedeployImage {
        /// The container; `None` for the only one.
        #[serde(default)]
        container: Option<String>,
        /// The known-good image, such as `meshos/mesh-kernel:sha-abc123`.
        image: String,
        /// Retag it in the registry too (`docker tag … latest && docker push`).
        #[serde(default)]
        retag: Option<RetagSpec>,
    },
    /// Leave the application alone (a database-only or traffic-only rollback).
    None,
}

fn previous() -> RollbackTarget {
    RollbackTarget::Previous
}

impl Default for DeploymentAction {
    fn default() -> Self {
        DeploymentAction::RollBack {
            to: RollbackTarget::Previous,
        }
    }
}

/// A registry retag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetagSpec {
    /// Repository, such as `meshos/mesh-kernel`.
    pub repository: String,
    /// The known-good image.
    pub source: ImageRef,
    /// The tag to move, such as `latest`.
    pub tag: String,
}

/// A load-balancer shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSpec {
    /// The listener.
    pub route: RouteId,
    /// The stable target group.
    pub stable: TargetId,
}

/// A DNS record to point elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    /// The record name, such as `api.meshos.io`.
    pub record: String,
    /// The previous endpoint.
    pub target: DnsTarget,
}

/// Where restored data comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreFrom {
    /// The newest available snapshot of the source.
    LatestSnapshot,
    /// A named snapshot.
    Snapshot(SnapshotId),
    /// The source as it was at a point in time.
    PointInTime(RestorePoint),
}

/// A database restore and connection switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    /// The instance to restore from; never changed.
    pub source: DbInstanceId,
    /// The NEW instance to restore into, such as `meshos-db-us-east-1-restored`.
    pub target: DbInstanceId,
    /// Snapshot or point in time.
    pub from: RestoreFrom,
    /// The connection-string switch on the service, once the instance is available.
    #[serde(default)]
    pub connection: Option<ConnectionSwitch>,
    /// Accept restored data from after the incident began (a "latest" snapshot taken
    /// during the incident brings the damage back). Off: such a restore is refused.
    #[serde(default)]
    pub accept_data_after_incident: bool,
}

/// Points the service at the restored database (`kubectl set env … DATABASE_URL=…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSwitch {
    /// The variable, usually `DATABASE_URL`.
    #[serde(default = "database_url")]
    pub env_var: String,
    /// The container; `None` for every container.
    #[serde(default)]
    pub container: Option<String>,
    /// The name of a secret given to the engine holding the connection-string template,
    /// with `{host}` and `{port}` placeholders: `postgresql://app:PASSWORD@{host}:{port}/meshos`.
    /// The template and the rendered value are secrets: never logged or reported.
    pub template_secret: String,
}

fn database_url() -> String {
    "DATABASE_URL".into()
}

/// When a region excluded from routing is re-admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Readmit {
    /// Only once its verification passed (the region stays out if it fails).
    #[default]
    AfterVerification,
    /// Right after the rollback steps, without waiting for verification.
    Immediately,
    /// Never: an operator re-admits it by hand.
    Never,
}

/// How to verify a region after its rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerificationSpec {
    /// Health endpoints, with `{region}` replaced by the region name.
    pub health_endpoints: Vec<String>,
    /// Run the smoke-test hook when one is configured.
    pub smoke_tests: bool,
    /// Hold the metrics under the verification limits for the window.
    pub metrics: bool,
    /// Check customer reports over the matrix's window at the end.
    pub customer_reports: bool,
}

impl Default for VerificationSpec {
    /// The playbook's endpoints (`/health`, `/api/v1/status` on `{region}.meshos.io`),
    /// smoke tests, metrics, customer reports.
    fn default() -> Self {
        VerificationSpec {
            health_endpoints: vec![
                "https://{region}.meshos.io/health".into(),
                "https://{region}.meshos.io/api/v1/status".into(),
            ],
            smoke_tests: true,
            metrics: true,
            customer_reports: true,
        }
    }
}

/// How the rollback talks to people (playbook § Communication).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommsSpec {
    /// How often to post a status update while the rollback runs.
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::required")]
    pub status_interval: Duration,
    /// The support contact in the stakeholder e-mail.
    pub support_contact: String,
    /// When the post-mortem is promised, in the e-mail.
    pub postmortem_within: String,
    /// The step of the escalation ladder: still unresolved after this, the first
    /// contact of `routes.unresolved` is told, after twice this the second, and so on.
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::required")]
    pub escalate_after: Duration,
    /// The people and channels, by name (playbook § Emergency Contacts).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub contacts: BTreeMap<String, super::routing::ContactSpec>,
    /// Who is told of what.
    pub routes: super::routing::RoutesSpec,
}

impl Default for CommsSpec {
    /// Status every 2 minutes; `support@meshos.io`; post-mortem within 48 hours;
    /// escalation every 15 minutes; the default routes.
    fn default() -> Self {
        CommsSpec {
            status_interval: Duration::from_secs(120),
            support_contact: "support@meshos.io".into(),
            postmortem_within: "48 hours".into(),
            escalate_after: Duration::from_secs(15 * 60),
            contacts: BTreeMap::new(),
            routes: super::routing::RoutesSpec::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_spec_with_every_procedure() {
        let spec = RollbackSpec::from_yaml_str(
            r#"
on_failure: escalate
regions:
  - region: us-east-1
    service: { kind: kubernetes, namespace: production, deployment: meshos-api }
    deployment: { action: roll_back, to: { revision: "7" } }
    exclude_from_routing: api.meshos.io
    traffic: { route: "arn:listener", stable: "arn:tg-stable" }
    schema: last_batch
    database:
      source: meshos-db-us-east-1
      target: meshos-db-us-east-1-restored
      from: { point_in_time: { at: "2025-10-30T10:00:00Z" } }
      connection: { template_secret: meshos-db-url }
    check_other_regions: true
"#,
        )
        .unwrap();
        assert_eq!(spec.on_failure, PartialFailure::Escalate);
        let r = &spec.regions[0];
        assert_eq!(
            r.deployment,
            DeploymentAction::RollBack {
                to: RollbackTarget::Revision("7".into())
            }
        );
        let db = r.database.as_ref().unwrap();
        assert_eq!(db.connection.as_ref().unwrap().env_var, "DATABASE_URL");
        assert!(matches!(
            db.from,
            RestoreFrom::PointInTime(RestorePoint::At(_))
        ));
        assert_eq!(r.schema, Some(MigrationTarget::LastBatch));
        assert!(r.verify);
    }

    #[test]
    fn unknown_fields_and_bad_regions_are_errors() {
        let e = RollbackSpec::from_toml_str(
            "[[regions]]\nregion = \"US\"\nservice = { kind = \"custom\", id = \"x\" }",
        )
        .unwrap_err();
        assert!(e.to_string().contains("region"), "{e}");
        let e = RollbackSpec::from_toml_str("regionz = []").unwrap_err();
        assert!(e.to_string().contains("regionz"), "{e}");
    }
}
