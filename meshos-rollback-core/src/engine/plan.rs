//! A rollback as a typed plan: ordered steps per region, checked before anything runs.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::spec::{CommsSpec, PartialFailure, RestoreFrom, VerificationSpec};
use crate::decision::RollbackPolicy;
use crate::model::{Region, RevisionId, ServiceId, ServiceRef, Versions};
use crate::provider::{
    DbInstanceId, DnsTarget, ImageRef, MigrationTarget, RouteId, SnapshotId, TargetId,
};
use crate::{Error, Result};

/// Identifies one run of a plan; the journal is keyed by it. Deserializing checks it
/// like [`RunId::new`], because it names a journal file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RunId(String);

impl TryFrom<String> for RunId {
    type Error = Error;

    fn try_from(id: String) -> Result<Self> {
        RunId::new(id)
    }
}

// By hand: `#[serde(try_from)]` cannot be combined with the `transparent` that keeps
// the serialized form a plain string.
impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        RunId::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl RunId {
    /// A new id from the time and a random suffix: `rb-20251030T101500-k3v9`.
    pub fn generate(now: Timestamp) -> Self {
        let suffix: String = (0..4)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect();
        RunId(format!("rb-{}-{suffix}", now.strftime("%Y%m%dT%H%M%S")))
    }

    /// An explicit id. Letters, digits, `-` and `_` only (it names a journal file).
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty()
            || id.len() > 128
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::invalid(
                "run id",
                format!("{id:?}: use 1-128 letters, digits, '-' and '_'"),
            ));
        }
        Ok(RunId(id))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One procedure of the playbook, fully resolved (explicit revisions, names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum Step {
    /// Set the region's weight in the weighted record set to 0 (federation exclusion),
    /// remembering the weight it had.
    ExcludeRegion {
        /// The weighted record set.
        record: String,
        /// The region's weight when the plan was made.
        weight: u32,
    },
    /// Send all of the listener's traffic to the stable target and confirm its health.
    ShiftTraffic {
        /// The listener.
        route: RouteId,
        /// The stable target group.
        stable: TargetId,
    },
    /// Point a registry tag back at the known-good image.
    RetagImage {
        /// Repository.
        repository: String,
        /// The known-good image.
        source: ImageRef,
        /// The tag to move.
        tag: String,
    },
    /// Roll the deployment back to an explicit revision.
    RollBackDeployment {
        /// The service.
        service: ServiceId,
        /// The revision running when the plan was made.
        from: RevisionId,
        /// The revision to run.
        to: RevisionId,
    },
    /// Redeploy a known-good image.
    RedeployImage {
        /// The service.
        service: ServiceId,
        /// The container; `None` for the only one.
        container: Option<String>,
        /// The image.
        image: String,
    },
    /// Wait until the service's rollout is complete.
    WaitStable {
        /// The service.
        service: ServiceId,
    },
    /// Revert schema migrations.
    RollBackSchema {
        /// What the spec asked for.
        target: MigrationTarget,
        /// The migrations that are reverted, newest first, pinned when planning: the
        /// step reverts exactly these (those still applied) and nothing else.
        migrations: Vec<String>,
    },
    /// Restore the database into a NEW instance and wait until it is available.
    RestoreDatabase {
        /// The instance restored from; never changed.
        source: DbInstanceId,
        /// The new instance.
        target: DbInstanceId,
        /// Snapshot or point in time, as the spec said.
        from: RestoreFrom,
        /// The snapshot or time, resolved when planning.
        restore: ResolvedRestore,
    },
    /// Point the service's connection string at the restored instance.
    SwitchConnection {
        /// The service.
        service: ServiceId,
        /// The restored instance.
        database: DbInstanceId,
        /// The variable, such as `DATABASE_URL`.
        env_var: String,
        /// The container; `None` for every container.
        container: Option<String>,
        /// The secret holding the connection-string template.
        template_secret: String,
    },
    /// UPSERT a DNS record to the previous endpoint and wait until it is in sync.
    PointDns {
        /// The record.
        record: String,
        /// The previous endpoint.
        target: DnsTarget,
    },
    /// Health endpoints, smoke tests, metrics held under the limits, customer reports.
    Verify {
        /// The service.
        service: ServiceId,
        /// The checks that will run (only those with a provider).
        checks: VerificationChecks,
    },
    /// Check that regions not being rolled back stay healthy.
    CheckOtherRegions {
        /// The service in each region to check.
        services: Vec<ServiceRef>,
    },
    /// Return the region to routing at the weight it had.
    ReadmitRegion {
        /// The weighted record set.
        record: String,
        /// The weight to restore (never 0).
        weight: u32,
        /// Where that weight comes from.
        weight_from: WeightSource,
    },
}

/// A restore source, resolved when planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedRestore {
    /// The snapshot, for a snapshot restore.
    pub snapshot: Option<SnapshotId>,
    /// The time the restored data is from.
    pub data_as_of: Timestamp,
    /// Whether the spec accepts data from after the incident began.
    pub accept_data_after_incident: bool,
}

/// Where a re-admission weight comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightSource {
    /// The region's weight when the plan was made.
    WhenPlanned,
    /// `readmit_weight` in the spec.
    Spec,
    /// The weight the region had before an earlier, unfinished run excluded it.
    EarlierRun(RunId),
}

/// The verification checks of a region, as they will run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VerificationChecks {
    /// Health endpoints probed (empty without a health checker).
    pub health_endpoints: Vec<String>,
    /// Smoke tests run.
    pub smoke_tests: bool,
    /// Metrics held under the limits for the window.
    pub metrics: bool,
    /// Customer reports counted.
    pub customer_reports: bool,
    /// Error log lines counted and sampled as evidence (never a pass or a failure by
    /// themselves, so [`is_empty`](Self::is_empty) ignores them).
    #[serde(default)]
    pub logs: bool,
}

impl VerificationChecks {
    /// Whether no check would run.
    pub fn is_empty(&self) -> bool {
        self.health_endpoints.is_empty()
            && !self.smoke_tests
            && !self.metrics
            && !self.customer_reports
    }
}

impl fmt::Display for VerificationChecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.health_endpoints.is_empty() {
            parts.push(format!(
                "{} health endpoint(s)",
                self.health_endpoints.len()
            ));
        }
        if self.smoke_tests {
            parts.push("smoke tests".to_owned());
        }
        if self.metrics {
            parts.push("metrics under limits".to_owned());
        }
        if self.customer_reports {
            parts.push("customer reports".to_owned());
        }
        if self.logs {
            parts.push("error logs".to_owned());
        }
        f.write_str(&parts.join(", "))
    }
}

impl Step {
    /// A short slug for step ids.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::ExcludeRegion { .. } => "exclude-region",
            Step::ShiftTraffic { .. } => "shift-traffic",
            Step::RetagImage { .. } => "retag-image",
            Step::RollBackDeployment { .. } => "roll-back-deployment",
            Step::RedeployImage { .. } => "redeploy-image",
            Step::WaitStable { .. } => "wait-stable",
            Step::RollBackSchema { .. } => "roll-back-schema",
            Step::RestoreDatabase { .. } => "restore-database",
            Step::SwitchConnection { .. } => "switch-connection",
            Step::PointDns { .. } => "point-dns",
            Step::Verify { .. } => "verify",
            Step::CheckOtherRegions { .. } => "check-other-regions",
            Step::ReadmitRegion { .. } => "readmit-region",
        }
    }

    /// Whether the step changes anything (as opposed to waiting or checking).
    pub fn changes_state(&self) -> bool {
        !matches!(
            self,
            Step::WaitStable { .. } | Step::Verify { .. } | Step::CheckOtherRegions { .. }
        )
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::ExcludeRegion { record, weight } => {
                write!(
                    f,
                    "take the region out of routing ({record} weight {weight} -> 0)"
                )
            }
            Step::ShiftTraffic { route, stable } => {
                write!(
                    f,
                    "shift 100% of {route} to stable target {stable}, confirm its health"
                )
            }
            Step::RetagImage {
                repository,
                source,
                tag,
            } => write!(f, "retag {repository}{source} as :{tag}"),
            Step::RollBackDeployment { service, from, to } => {
                if from == to {
                    write!(f, "roll back {service}: already at {to} (no-op)")
                } else {
                    write!(f, "roll back {service}: {from} -> {to}")
                }
            }
            Step::RedeployImage { service, image, .. } => {
                write!(f, "redeploy {service} with known-good image {image}")
            }
            Step::WaitStable { service } => write!(f, "wait until {service} is stable"),
            Step::RollBackSchema { target, migrations } => write!(
                f,
                "roll back schema: {target} = [{}]",
                migrations.join(", ")
            ),
            Step::RestoreDatabase {
                source,
                target,
                restore,
                ..
            } => {
                let from = match &restore.snapshot {
                    Some(s) => format!("snapshot {s} (data as of {})", restore.data_as_of),
                    None => format!("its state at {}", restore.data_as_of),
                };
                write!(
                    f,
                    "restore {source} from {from} into NEW instance {target} (source untouched)"
                )
            }
            Step::SwitchConnection {
                service,
                database,
                env_var,
                ..
            } => write!(
                f,
                "set {env_var} of {service} to {database} (value redacted)"
            ),
            Step::PointDns { record, target } => {
                write!(f, "UPSERT {record} -> {target}, wait for INSYNC")
            }
            Step::Verify { checks, .. } => write!(f, "verify: {checks}"),
            Step::CheckOtherRegions { services } => {
                let names: Vec<&str> = services.iter().map(|s| s.region.as_str()).collect();
                write!(
                    f,
                    "check that other regions stay healthy: {}",
                    names.join(", ")
                )
            }
            Step::ReadmitRegion {
                record,
                weight,
                weight_from,
            } => {
                let from = match weight_from {
                    WeightSource::WhenPlanned => "its weight when planned".to_owned(),
                    WeightSource::Spec => "readmit_weight in the spec".to_owned(),
                    WeightSource::EarlierRun(run) => {
                        format!("its weight before run {run} excluded it")
                    }
                };
                write!(
                    f,
                    "re-admit the region to routing ({record} weight -> {weight}, {from})"
                )
            }
        }
    }
}

/// Identifies a step within a plan: `us-east-1/03-roll-back-deployment`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepId(String);

impl StepId {
    pub(super) fn new(region: &Region, index: usize, step: &Step) -> Self {
        StepId(format!("{region}/{:02}-{}", index + 1, step.kind()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A step with its id, the provider that will carry it out, and a time estimate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// Its id.
    pub id: StepId,
    /// What it does.
    pub step: Step,
    /// The provider that carries it out (`Display` of the provider).
    pub provider: String,
    /// How long it usually takes, for the ETA.
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::required")]
    pub estimate: Duration,
    /// How long it may take before it is cut off and recorded as failed.
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::required")]
    pub deadline: Duration,
}

/// One region's steps, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionPlan {
    /// The region.
    pub region: Region,
    /// The service rolled back.
    pub service: ServiceId,
    /// The versions involved (known when the plan was made).
    pub versions: Versions,
    /// The steps, in order.
    pub steps: Vec<PlannedStep>,
}

impl RegionPlan {
    /// The sum of the step estimates.
    pub fn estimate(&self) -> Duration {
        self.steps.iter().map(|s| s.estimate).sum()
    }
}

/// A checked rollback plan. Print it for a dry run; hand it to
/// [`Engine::execute`](super::Engine::execute) to run it.
///
/// A plan comes only from [`Engine::plan`](super::Engine::plan) (or, on resume, from
/// the journal): its fields are private, so what `execute` runs is what was checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackPlan {
    pub(super) run_id: RunId,
    pub(super) created_at: Timestamp,
    pub(super) regions: Vec<RegionPlan>,
    pub(super) max_parallel: usize,
    pub(super) on_failure: PartialFailure,
    pub(super) verification: VerificationSpec,
    pub(super) comms: CommsSpec,
    pub(super) policy: RollbackPolicy,
    pub(super) warnings: Vec<String>,
    /// What earlier runs of these services already did (from the journal).
    #[serde(default)]
    pub(super) earlier_runs: Vec<String>,
    /// Pages earlier, unfinished runs of these services opened and never resolved, as
    /// (contact, dedup key): a verified rollback of the same incident resolves them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) earlier_pages: Vec<(String, String)>,
}

impl RollbackPlan {
    /// The run this plan belongs to.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// When it was made.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// The regions, each with its steps.
    pub fn regions(&self) -> &[RegionPlan] {
        &self.regions
    }

    /// Regions rolled back at once.
    pub fn max_parallel(&self) -> usize {
        self.max_parallel
    }

    /// What a failed region means for the others.
    pub fn on_failure(&self) -> PartialFailure {
        self.on_failure
    }

    /// Verification settings.
    pub fn verification(&self) -> &VerificationSpec {
        &self.verification
    }

    /// Communication settings.
    pub fn comms(&self) -> &CommsSpec {
        &self.comms
    }

    /// Thresholds.
    pub fn policy(&self) -> &RollbackPolicy {
        &self.policy
    }

    /// Things the operator should know that do not stop the plan.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What earlier, unfinished runs of the same services already did.
    pub fn earlier_runs(&self) -> &[String] {
        &self.earlier_runs
    }

    /// The expected duration: the slowest region's estimate (regions run in parallel,
    /// `max_parallel` at a time).
    pub fn estimate(&self) -> Duration {
        let mut per_region: Vec<Duration> = self.regions.iter().map(RegionPlan::estimate).collect();
        per_region.sort_unstable_by(|a, b| b.cmp(a));
        // Greedy: waves of max_parallel; the slowest of each wave.
        per_region
            .chunks(self.max_parallel.max(1))
            .map(|wave| wave[0])
            .sum()
    }

    /// Every step, with its region.
    pub fn steps(&self) -> impl Iterator<Item = (&Region, &PlannedStep)> {
        self.regions
            .iter()
            .flat_map(|r| r.steps.iter().map(move |s| (&r.region, s)))
    }

    /// The step with this id.
    pub fn step(&self, id: &StepId) -> Option<&PlannedStep> {
        self.steps().map(|(_, s)| s).find(|s| &s.id == id)
    }
}

impl fmt::Display for RollbackPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let regions: Vec<&str> = self.regions.iter().map(|r| r.region.as_str()).collect();
        writeln!(
            f,
            "Rollback plan {} ({} region(s): {})",
            self.run_id,
            regions.len(),
            regions.join(", ")
        )?;
        writeln!(
            f,
            "  at most {} region(s) at a time; on failure: {}; estimated {}",
            self.max_parallel,
            match self.on_failure {
                PartialFailure::ContinueOthers => "continue the other regions",
                PartialFailure::HaltOthers => "halt the other regions",
                PartialFailure::Escalate => "halt the other regions and page on-call",
            },
            human_duration(self.estimate())
        )?;
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        for e in &self.earlier_runs {
            writeln!(f, "  earlier run: {e}")?;
        }
        for r in &self.regions {
            writeln!(f, "{} ({}):", r.region, r.service)?;
            for (i, s) in r.steps.iter().enumerate() {
                writeln!(
                    f,
                    "  {:>2}. {}  [{}; deadline {}]",
                    i + 1,
                    s.step,
                    s.provider,
                    human_duration(s.deadline)
                )?;
            }
        }
        Ok(())
    }
}

/// `4m`, `1h 5m`, `45s`.
pub(crate) fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}
