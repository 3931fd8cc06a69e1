//! A rollback as a typed plan: ordered steps per region, checked before anything runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::providers::Providers;
use super::spec::{
    CommsSpec, DeploymentAction, PartialFailure, Readmit, RestoreFrom, RollbackSpec,
    VerificationSpec,
};
use crate::decision::RollbackPolicy;
use crate::model::{Region, RevisionId, RollbackTarget, ServiceId, ServiceRef, Versions};
use crate::provider::{DbInstanceId, DnsTarget, ImageRef, MigrationTarget, RouteId, TargetId};
use crate::{Error, Result};

/// Identifies one run of a plan; the journal is keyed by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

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
        /// What to revert.
        target: MigrationTarget,
    },
    /// Restore the database into a NEW instance and wait until it is available.
    RestoreDatabase {
        /// The instance restored from; never changed.
        source: DbInstanceId,
        /// The new instance.
        target: DbInstanceId,
        /// Snapshot or point in time.
        from: RestoreFrom,
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
    },
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
            Step::ExcludeRegion { record } => {
                write!(f, "take the region out of routing ({record} weight -> 0)")
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
            Step::RollBackSchema { target } => write!(f, "roll back schema: {target}"),
            Step::RestoreDatabase {
                source,
                target,
                from,
            } => {
                let from = match from {
                    RestoreFrom::LatestSnapshot => "its latest snapshot".to_owned(),
                    RestoreFrom::Snapshot(s) => format!("snapshot {s}"),
                    RestoreFrom::PointInTime(p) => format!("{p}"),
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
            Step::Verify { .. } => f.write_str(
                "verify: health endpoints, smoke tests, metrics under limits, customer reports",
            ),
            Step::CheckOtherRegions { services } => {
                let names: Vec<&str> = services.iter().map(|s| s.region.as_str()).collect();
                write!(
                    f,
                    "check that other regions stay healthy: {}",
                    names.join(", ")
                )
            }
            Step::ReadmitRegion { record } => {
                write!(
                    f,
                    "re-admit the region to routing ({record} weight -> its previous value)"
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
    fn new(region: &Region, index: usize, step: &Step) -> Self {
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackPlan {
    /// The run this plan belongs to.
    pub run_id: RunId,
    /// When it was made.
    pub created_at: Timestamp,
    /// The regions, each with its steps.
    pub regions: Vec<RegionPlan>,
    /// Regions rolled back at once.
    pub max_parallel: usize,
    /// What a failed region means for the others.
    pub on_failure: PartialFailure,
    /// Verification settings.
    pub verification: VerificationSpec,
    /// Communication settings.
    pub comms: CommsSpec,
    /// Thresholds.
    pub policy: RollbackPolicy,
    /// Things the operator should know that do not stop the plan.
    pub warnings: Vec<String>,
}

impl RollbackPlan {
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
        for r in &self.regions {
            writeln!(f, "{} ({}):", r.region, r.service)?;
            for (i, s) in r.steps.iter().enumerate() {
                writeln!(f, "  {:>2}. {}  [{}]", i + 1, s.step, s.provider)?;
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

/// Typical step durations, for the ETA.
fn estimate(step: &Step, verification_window: Duration) -> Duration {
    let mins = |m: u64| Duration::from_secs(m * 60);
    match step {
        Step::ExcludeRegion { .. } | Step::ReadmitRegion { .. } | Step::PointDns { .. } => mins(1),
        Step::ShiftTraffic { .. } | Step::RetagImage { .. } => Duration::from_secs(30),
        Step::RollBackDeployment { .. }
        | Step::RedeployImage { .. }
        | Step::RollBackSchema { .. }
        | Step::SwitchConnection { .. }
        | Step::CheckOtherRegions { .. } => Duration::from_secs(30),
        Step::WaitStable { .. } => mins(4),
        Step::RestoreDatabase { .. } => mins(20),
        Step::Verify { .. } => verification_window,
    }
}

/// Builds and checks a plan. Resolves "previous revision" into explicit revisions
/// and refuses an impossible plan (missing provider or capability, duplicate region,
/// restore onto the source, unknown secret) before any step runs, listing every
/// problem at once.
pub(crate) async fn build(
    providers: &Providers,
    spec: &RollbackSpec,
    secrets: &BTreeMap<String, SecretString>,
    run_id: RunId,
    now: Timestamp,
) -> Result<RollbackPlan> {
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    if spec.regions.is_empty() {
        return Err(Error::invalid(
            "regions",
            "name at least one region to roll back",
        ));
    }
    if spec.max_parallel == 0 {
        return Err(Error::invalid("max_parallel", "must be at least 1"));
    }
    let mut seen = BTreeSet::new();
    for r in &spec.regions {
        if !seen.insert(&r.region) {
            return Err(Error::invalid(
                "regions",
                format!(
                    "{} is listed twice: one rollback per service and region at a time",
                    r.region
                ),
            ));
        }
    }
    let window = spec.policy.verification.window();
    let mut regions = Vec::new();
    for r in &spec.regions {
        let region = &r.region;
        let Some(rp) = providers.regions.get(region) else {
            problems.push(format!("{region}: no providers configured for this region"));
            continue;
        };
        let deployer = &rp.deployer;
        let caps = deployer.capabilities();
        let mut steps: Vec<(Step, String)> = Vec::new();
        let mut versions = Versions::default();

        if let Some(record) = &r.exclude_from_routing {
            match &providers.dns {
                Some(dns) if dns.capabilities().weighted_routing => steps.push((
                    Step::ExcludeRegion {
                        record: record.clone(),
                    },
                    dns.to_string(),
                )),
                Some(dns) => problems.push(format!(
                    "{region}: {dns} cannot set per-region routing weights"
                )),
                None => problems.push(format!(
                    "{region}: excluding the region from routing needs a DnsSwitcher"
                )),
            }
        }
        if let Some(t) = &r.traffic {
            match &rp.traffic {
                Some(shifter) => steps.push((
                    Step::ShiftTraffic {
                        route: t.route.clone(),
                        stable: t.stable.clone(),
                    },
                    shifter.to_string(),
                )),
                None => problems.push(format!(
                    "{region}: shifting traffic needs a TrafficShifter for the region"
                )),
            }
        }
        match &r.deployment {
            DeploymentAction::RollBack { to } => {
                if !caps.rollback_to_revision {
                    problems.push(format!(
                        "{region}: {deployer} cannot roll back to an explicit revision"
                    ));
                } else {
                    match deployer.revisions(&r.service).await {
                        Ok(history) => {
                            let target = match to {
                                RollbackTarget::Previous => {
                                    history.rollback_target().map(|rev| rev.id.clone())
                                }
                                RollbackTarget::Revision(id) => {
                                    if !history.contains(id) {
                                        warnings.push(format!(
                                            "{region}: revision {id} is not in the recent history of {}; {deployer} will check it exists",
                                            r.service
                                        ));
                                    }
                                    Some(id.clone())
                                }
                            };
                            match target {
                                Some(to) => {
                                    versions.current = Some(history.current.id.to_string());
                                    versions.target = Some(to.to_string());
                                    if history.current.id == to {
                                        warnings.push(format!(
                                            "{region}: {} already runs {to}; the rollback step will change nothing",
                                            r.service
                                        ));
                                    }
                                    steps.push((
                                        Step::RollBackDeployment {
                                            service: r.service.clone(),
                                            from: history.current.id.clone(),
                                            to,
                                        },
                                        deployer.to_string(),
                                    ));
                                    steps.push((Step::WaitStable { service: r.service.clone() }, deployer.to_string()));
                                }
                                None => problems.push(format!(
                                    "{region}: {} has no previous revision to roll back to; name one explicitly",
                                    r.service
                                )),
                            }
                        }
                        Err(e) => problems.push(format!(
                            "{region}: cannot read the revisions of {}: {e}",
                            r.service
                        )),
                    }
                }
            }
            DeploymentAction::RedeployImage {
                container,
                image,
                retag,
            } => {
                if let Some(rt) = retag {
                    match &providers.registry {
                        Some(reg) => steps.push((
                            Step::RetagImage {
                                repository: rt.repository.clone(),
                                source: rt.source.clone(),
                                tag: rt.tag.clone(),
                            },
                            reg.to_string(),
                        )),
                        None => problems.push(format!(
                            "{region}: retagging an image needs an ImageRegistry"
                        )),
                    }
                }
                if caps.set_image {
                    if let Ok(h) = deployer.revisions(&r.service).await {
                        versions.current = h.current.image.or(Some(h.current.id.to_string()));
                    }
                    versions.target = Some(image.clone());
                    steps.push((
                        Step::RedeployImage {
                            service: r.service.clone(),
                            container: container.clone(),
                            image: image.clone(),
                        },
                        deployer.to_string(),
                    ));
                    steps.push((
                        Step::WaitStable {
                            service: r.service.clone(),
                        },
                        deployer.to_string(),
                    ));
                } else {
                    problems.push(format!("{region}: {deployer} cannot set images"));
                }
            }
            DeploymentAction::None => {}
        }
        if let Some(target) = &r.schema {
            match &rp.migrator {
                Some(m) => steps.push((
                    Step::RollBackSchema {
                        target: target.clone(),
                    },
                    m.to_string(),
                )),
                None => problems.push(format!(
                    "{region}: a schema rollback needs a SchemaMigrator for the region"
                )),
            }
        }
        if let Some(db) = &r.database {
            if db.source == db.target {
                problems.push(format!(
                    "{region}: the restore target {} is the source: a restore always goes into a NEW instance",
                    db.target
                ));
            }
            match &rp.database {
                Some(restorer) => {
                    let c = restorer.capabilities();
                    let ok = match db.from {
                        RestoreFrom::PointInTime(_) => c.point_in_time_restore,
                        _ => c.snapshot_restore,
                    };
                    if !ok {
                        problems.push(format!(
                            "{region}: {restorer} cannot restore that way ({:?})",
                            db.from
                        ));
                    }
                    steps.push((
                        Step::RestoreDatabase {
                            source: db.source.clone(),
                            target: db.target.clone(),
                            from: db.from.clone(),
                        },
                        restorer.to_string(),
                    ));
                }
                None => problems.push(format!(
                    "{region}: a database restore needs a DbRestorer for the region"
                )),
            }
            if let Some(conn) = &db.connection {
                if !caps.set_env {
                    problems.push(format!(
                        "{region}: {deployer} cannot set environment variables"
                    ));
                }
                if !secrets.contains_key(&conn.template_secret) {
                    problems.push(format!(
                        "{region}: no secret named {:?} was given to the engine for the connection string",
                        conn.template_secret
                    ));
                }
                steps.push((
                    Step::SwitchConnection {
                        service: r.service.clone(),
                        database: db.target.clone(),
                        env_var: conn.env_var.clone(),
                        container: conn.container.clone(),
                        template_secret: conn.template_secret.clone(),
                    },
                    deployer.to_string(),
                ));
                steps.push((
                    Step::WaitStable {
                        service: r.service.clone(),
                    },
                    deployer.to_string(),
                ));
            }
        }
        if let Some(d) = &r.dns {
            match &providers.dns {
                Some(dns) => {
                    if matches!(d.target, DnsTarget::Alias { .. })
                        && !dns.capabilities().alias_records
                    {
                        problems.push(format!("{region}: {dns} cannot write alias records"));
                    }
                    steps.push((
                        Step::PointDns {
                            record: d.record.clone(),
                            target: d.target.clone(),
                        },
                        dns.to_string(),
                    ));
                }
                None => problems.push(format!("{region}: pointing DNS needs a DnsSwitcher")),
            }
        }
        let readmit_step = r
            .exclude_from_routing
            .as_ref()
            .filter(|_| r.readmit != Readmit::Never)
            .map(|record| Step::ReadmitRegion {
                record: record.clone(),
            });
        if r.readmit == Readmit::Immediately
            && let Some(s) = &readmit_step
        {
            steps.push((s.clone(), label(&providers.dns)));
        }
        if r.verify {
            let v = &spec.verification;
            if !v.health_endpoints.is_empty() && providers.health.is_none() {
                problems.push(format!(
                    "{region}: health endpoints are configured but no HealthChecker"
                ));
            }
            if v.metrics && providers.metrics.is_none() {
                problems.push(format!(
                    "{region}: metrics verification needs a MetricsSource"
                ));
            }
            if v.smoke_tests && providers.smoke.is_none() {
                warnings.push(format!(
                    "{region}: no smoke-test hook configured; smoke tests are skipped"
                ));
            }
            if v.customer_reports && providers.reports.is_none() {
                warnings.push(format!(
                    "{region}: no customer-report source configured; that check is skipped"
                ));
            }
            steps.push((
                Step::Verify {
                    service: r.service.clone(),
                },
                "engine".into(),
            ));
        }
        if r.check_other_regions {
            let rolling: BTreeSet<&Region> = spec.regions.iter().map(|s| &s.region).collect();
            let others: Vec<ServiceRef> = if spec.fleet.is_empty() {
                providers
                    .regions
                    .keys()
                    .filter(|k| !rolling.contains(k))
                    .map(|k| ServiceRef::new(k.clone(), r.service.clone()))
                    .collect()
            } else {
                spec.fleet
                    .iter()
                    .filter(|s| !rolling.contains(&s.region))
                    .cloned()
                    .collect()
            };
            if others.is_empty() {
                warnings.push(format!("{region}: no other regions to check"));
            } else {
                steps.push((
                    Step::CheckOtherRegions { services: others },
                    "engine".into(),
                ));
            }
        }
        if r.readmit == Readmit::AfterVerification
            && let Some(s) = readmit_step
        {
            steps.push((s, label(&providers.dns)));
        }
        if steps.is_empty() {
            problems.push(format!("{region}: nothing to do"));
        }
        regions.push(RegionPlan {
            region: region.clone(),
            service: r.service.clone(),
            versions,
            steps: steps
                .into_iter()
                .enumerate()
                .map(|(i, (step, provider))| PlannedStep {
                    id: StepId::new(region, i, &step),
                    estimate: estimate(&step, window),
                    step,
                    provider,
                })
                .collect(),
        });
    }
    if !problems.is_empty() {
        return Err(Error::precondition(
            "plan",
            format!(
                "the plan cannot run, nothing was changed:\n  - {}",
                problems.join("\n  - ")
            ),
        ));
    }
    Ok(RollbackPlan {
        run_id,
        created_at: now,
        regions,
        max_parallel: spec.max_parallel,
        on_failure: spec.on_failure,
        verification: spec.verification.clone(),
        comms: spec.comms.clone(),
        policy: spec.policy,
        warnings,
    })
}

fn label<T: fmt::Display + ?Sized>(p: &Option<std::sync::Arc<T>>) -> String {
    p.as_ref()
        .map_or_else(|| "none".to_owned(), |p| p.to_string())
}
