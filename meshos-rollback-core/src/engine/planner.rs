//! Turns a spec into a checked plan: everything resolved (revisions, migrations,
//! snapshots, weights), every provider and capability present, every problem listed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use secrecy::SecretString;

use super::journal::StepOutcome;
use super::plan::{
    PlannedStep, RegionPlan, ResolvedRestore, RollbackPlan, RunId, Step, StepId,
    VerificationChecks, WeightSource,
};
use super::problem::{PlanProblem, PlanRefusal};
use super::providers::{Providers, RegionProviders};
use super::spec::{
    DatabaseSpec, DeploymentAction, PartialFailure, Readmit, RegionSpec, RestoreFrom, RollbackSpec,
    StepDeadlines,
};
use super::verify;
use crate::model::{Region, RollbackTarget, ServiceRef, Versions};
use crate::provider::{DnsTarget, MigrationTarget, RestorePoint};
use crate::redact::Redactor;
use crate::{Error, Result};

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

/// How long a step may run: the spec's override or a default well past its usual
/// duration, so a hung backend fails the step instead of holding the run open.
fn deadline(step: &Step, d: &StepDeadlines, verification_window: Duration) -> Duration {
    let mins = |m: u64| Duration::from_secs(m * 60);
    let (over, default) = match step {
        Step::ExcludeRegion { .. } => (d.exclude_region, mins(10)),
        Step::ShiftTraffic { .. } => (d.shift_traffic, mins(10)),
        Step::RetagImage { .. } => (d.retag_image, mins(5)),
        Step::RollBackDeployment { .. }
        | Step::RedeployImage { .. }
        | Step::SwitchConnection { .. } => (d.deploy, mins(5)),
        Step::WaitStable { .. } => (d.wait_stable, mins(30)),
        Step::RollBackSchema { .. } => (d.roll_back_schema, mins(30)),
        Step::RestoreDatabase { .. } => (d.restore_database, mins(120)),
        Step::PointDns { .. } => (d.point_dns, mins(10)),
        Step::Verify { .. } => (d.verify, verification_window + mins(15)),
        Step::CheckOtherRegions { .. } => (d.check_other_regions, mins(10)),
        Step::ReadmitRegion { .. } => (d.readmit_region, mins(10)),
    };
    over.unwrap_or(default)
}

/// What an earlier, unfinished run already did to one service in one region (from
/// the journal), so a new plan neither repeats nor compounds it.
#[derive(Debug, Clone)]
pub(super) struct EarlierWork {
    pub(super) run: RunId,
    pub(super) status: super::report::RunStatus,
    pub(super) region: Region,
    pub(super) service: crate::model::ServiceId,
    /// Its steps that succeeded, in plan order.
    pub(super) done: Vec<(super::plan::StepId, Step, super::journal::StepOutcome)>,
    /// The pages it opened and did not resolve, as (contact, dedup key).
    pub(super) open_pages: Vec<(String, String)>,
}

/// What a plan is built from.
pub(super) struct PlanInput<'a> {
    pub(super) providers: &'a Providers,
    pub(super) spec: &'a RollbackSpec,
    pub(super) secrets: &'a BTreeMap<String, SecretString>,
    pub(super) redactor: &'a Redactor,
    pub(super) run_id: RunId,
    pub(super) now: Timestamp,
    pub(super) earlier: &'a [EarlierWork],
}

/// Builds and checks a plan. Resolves "previous revision", "last batch", "latest
/// snapshot" and re-admission weights into explicit values and refuses an impossible
/// plan before any step runs, listing every problem at once.
pub(super) async fn build(input: PlanInput<'_>) -> Result<RollbackPlan> {
    let PlanInput {
        providers,
        spec,
        secrets,
        redactor,
        run_id,
        now,
        earlier,
    } = input;
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
    let mut p = Planner {
        providers,
        spec,
        secrets,
        redactor,
        earlier,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let comms = &spec.comms;
    p.problems.extend(super::routing::check(
        &comms.contacts,
        &comms.routes,
        providers,
    ));
    let routing = super::routing::Routing::resolve(&comms.contacts, &comms.routes, providers);
    let pages_on_failure = routing
        .targets(super::routing::CommsEvent::RegionFailed)
        .iter()
        .any(|t| matches!(t.channel, super::routing::Channel::Pager(_)));
    if spec.on_failure == PartialFailure::Escalate && !pages_on_failure {
        p.problems.push(PlanProblem::NoEscalator {
            needed_for: "on_failure = \"escalate\" (comms.routes.region_failed)".into(),
        });
    }
    p.check_exclusions().await;
    let window = spec.policy.verification.window();
    let mut regions = Vec::new();
    for r in &spec.regions {
        let Some(rp) = providers.regions.get(&r.region) else {
            p.problems.push(PlanProblem::NoProviders {
                region: r.region.clone(),
            });
            continue;
        };
        let before = p.problems.len();
        let (steps, versions) = p.region(r, rp).await;
        // "Nothing to do" only when nothing else explains it.
        if steps.is_empty() && p.problems.len() == before {
            p.problems.push(PlanProblem::NothingToDo {
                region: r.region.clone(),
            });
        }
        let region = &r.region;
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
                    deadline: deadline(&step, &spec.deadlines, window),
                    step,
                    provider,
                })
                .collect(),
        });
    }
    if !p.problems.is_empty() {
        return Err(Error::PlanRefused(Box::new(PlanRefusal {
            problems: p.problems,
        })));
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
        warnings: p.warnings,
        earlier_runs: describe_earlier(earlier, spec),
        earlier_pages: {
            let mut pages: Vec<(String, String)> =
                earlier.iter().flat_map(|e| e.open_pages.clone()).collect();
            pages.sort();
            pages.dedup();
            pages
        },
    })
}

/// One line per earlier, unfinished run of a service in the spec: what it did.
fn describe_earlier(earlier: &[EarlierWork], spec: &RollbackSpec) -> Vec<String> {
    earlier
        .iter()
        .filter(|w| {
            spec.regions
                .iter()
                .any(|r| r.region == w.region && r.service == w.service)
        })
        .map(|w| {
            let done: Vec<String> = w
                .done
                .iter()
                .map(|(id, _, outcome)| format!("{id}: {outcome}"))
                .collect();
            if done.is_empty() {
                format!(
                    "{} ({}) in {}: no step completed",
                    w.run, w.status, w.region
                )
            } else {
                format!(
                    "{} ({}) in {} already did: {}",
                    w.run,
                    w.status,
                    w.region,
                    done.join("; ")
                )
            }
        })
        .collect()
}

struct Planner<'a> {
    providers: &'a Providers,
    spec: &'a RollbackSpec,
    secrets: &'a BTreeMap<String, SecretString>,
    redactor: &'a Redactor,
    earlier: &'a [EarlierWork],
    problems: Vec<PlanProblem>,
    warnings: Vec<String>,
}

fn missing(region: &Region, provider: &str, needed_for: &str) -> PlanProblem {
    PlanProblem::MissingProvider {
        region: Some(region.clone()),
        provider: provider.into(),
        needed_for: needed_for.into(),
    }
}

impl Planner<'_> {
    /// What this region's service's earlier, unfinished runs did, newest first.
    fn earlier_for<'b>(&'b self, r: &'b RegionSpec) -> impl Iterator<Item = &'b EarlierWork> {
        self.earlier
            .iter()
            .rev()
            .filter(move |w| w.region == r.region && w.service == r.service)
    }

    /// An earlier run's "last batch" revert: planning "last batch" again would revert
    /// the batch before it.
    fn earlier_schema_revert(
        &self,
        r: &RegionSpec,
        target: &MigrationTarget,
    ) -> Option<(RunId, Vec<String>)> {
        if *target != MigrationTarget::LastBatch {
            return None;
        }
        self.earlier_for(r).find_map(|w| {
            w.done
                .iter()
                .find_map(|(_, step, outcome)| match (step, outcome) {
                    (
                        Step::RollBackSchema { .. },
                        StepOutcome::SchemaRolledBack { reverted, .. },
                    ) if !reverted.is_empty() => Some((w.run.clone(), reverted.clone())),
                    _ => None,
                })
        })
    }

    /// The revision an earlier, unfinished run rolled this region's service back to.
    fn earlier_rollback(&self, r: &RegionSpec) -> Option<(RunId, crate::model::RevisionId)> {
        self.earlier_for(r).find_map(|w| {
            w.done.iter().find_map(|(_, step, _)| match step {
                Step::RollBackDeployment { service, to, .. } if *service == r.service => {
                    Some((w.run.clone(), to.clone()))
                }
                _ => None,
            })
        })
    }

    /// The weight a region had before an earlier, unfinished run excluded it.
    fn weight_before_earlier_exclusion(
        &self,
        r: &RegionSpec,
        record: &str,
    ) -> Option<(u32, RunId)> {
        self.earlier_for(r).find_map(|w| {
            w.done
                .iter()
                .find_map(|(_, step, outcome)| match (step, outcome) {
                    (
                        Step::ExcludeRegion { record: rec, .. },
                        StepOutcome::Excluded {
                            previous_weight, ..
                        },
                    ) if rec == record && *previous_weight > 0 => {
                        Some((*previous_weight, w.run.clone()))
                    }
                    _ => None,
                })
        })
    }

    fn unreadable(&mut self, region: &Region, what: String, e: &Error) {
        self.problems.push(PlanProblem::Unreadable {
            region: Some(region.clone()),
            what,
            error: self.redactor.redact(&e.to_string()),
        });
    }

    /// A record set whose every region with traffic would be excluded at once is
    /// refused: Route53 treats an all-zero set as all-equal, sending traffic back to
    /// every excluded region.
    async fn check_exclusions(&mut self) {
        let Some(dns) = &self.providers.dns else {
            return;
        };
        let mut by_record: BTreeMap<&str, BTreeSet<&Region>> = BTreeMap::new();
        for r in &self.spec.regions {
            if let Some(record) = &r.exclude_from_routing {
                by_record.entry(record).or_default().insert(&r.region);
            }
        }
        for (record, excluded) in by_record {
            // Unreadable weights are reported per region below.
            let Ok(weights) = dns.region_weights(record).await else {
                continue;
            };
            let left = weights
                .iter()
                .any(|w| w.weight > 0 && !excluded.contains(&w.region));
            if !left && !weights.is_empty() {
                self.problems.push(PlanProblem::ExcludesEveryRegion {
                    record: record.to_owned(),
                });
            }
        }
    }

    async fn region(
        &mut self,
        r: &RegionSpec,
        rp: &RegionProviders,
    ) -> (Vec<(Step, String)>, Versions) {
        let region = &r.region;
        let mut steps: Vec<(Step, String)> = Vec::new();
        let mut versions = Versions::default();
        let mut readmit = None;

        if let Some(record) = &r.exclude_from_routing
            && let Some((exclude, back)) = self.exclusion(r, record).await
        {
            steps.push(exclude);
            readmit = back;
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
                None => self
                    .problems
                    .push(missing(region, "TrafficShifter", "shifting traffic")),
            }
        }
        self.deployment(r, rp, &mut steps, &mut versions).await;
        if let Some(target) = &r.schema {
            match &rp.migrator {
                Some(m) => match m.status().await {
                    Ok(status) => {
                        let migrations = match target {
                            MigrationTarget::LastBatch => {
                                let last = status.applied.iter().map(|m| m.batch).max();
                                let mut names: Vec<String> = status
                                    .applied
                                    .iter()
                                    .filter(|m| Some(m.batch) == last)
                                    .map(|m| m.name.clone())
                                    .collect();
                                names.reverse();
                                names
                            }
                            MigrationTarget::Named(n) => {
                                if !status.is_applied(n) {
                                    self.warnings.push(format!(
                                        "{region}: migration {n} is not applied; the schema step will change nothing"
                                    ));
                                }
                                vec![n.clone()]
                            }
                        };
                        let compounding = self.earlier_schema_revert(r, target);
                        if let Some((run, reverted)) = compounding {
                            self.problems.push(PlanProblem::SchemaRevertedByEarlierRun {
                                region: region.clone(),
                                run: run.to_string(),
                                reverted,
                            });
                        } else if migrations.is_empty() {
                            self.problems.push(PlanProblem::NothingToRevert {
                                region: region.clone(),
                                target: target.clone(),
                            });
                        } else {
                            steps.push((
                                Step::RollBackSchema {
                                    target: target.clone(),
                                    migrations,
                                },
                                m.to_string(),
                            ));
                        }
                    }
                    Err(e) => self.unreadable(region, format!("the migration status ({m})"), &e),
                },
                None => self
                    .problems
                    .push(missing(region, "SchemaMigrator", "a schema rollback")),
            }
        }
        if let Some(db) = &r.database {
            self.database(r, rp, db, &mut steps).await;
        }
        if let Some(d) = &r.dns {
            match &self.providers.dns {
                Some(dns) => {
                    if matches!(d.target, DnsTarget::Alias { .. })
                        && !dns.capabilities().alias_records
                    {
                        self.problems.push(PlanProblem::MissingCapability {
                            region: region.clone(),
                            provider: dns.to_string(),
                            capability: "write alias records".into(),
                        });
                    }
                    steps.push((
                        Step::PointDns {
                            record: d.record.clone(),
                            target: d.target.clone(),
                        },
                        dns.to_string(),
                    ));
                }
                None => self
                    .problems
                    .push(missing(region, "DnsSwitcher", "pointing DNS")),
            }
        }
        let readmit = readmit.filter(|_| r.readmit != Readmit::Never);
        if r.readmit == Readmit::Immediately
            && let Some(s) = &readmit
        {
            steps.push(s.clone());
        }
        if r.verify {
            let checks = self.verification_checks(region);
            if checks.is_empty() {
                self.problems.push(PlanProblem::NothingToVerify {
                    region: region.clone(),
                });
            } else {
                steps.push((
                    Step::Verify {
                        service: r.service.clone(),
                        checks,
                    },
                    "engine".into(),
                ));
            }
        }
        if r.check_other_regions {
            self.other_regions(r, &mut steps);
        }
        if r.readmit == Readmit::AfterVerification
            && let Some(s) = readmit
        {
            steps.push(s);
        }
        (steps, versions)
    }

    /// The exclusion step, and the re-admission that undoes it with an explicit,
    /// non-zero weight.
    async fn exclusion(
        &mut self,
        r: &RegionSpec,
        record: &str,
    ) -> Option<((Step, String), Option<(Step, String)>)> {
        let region = &r.region;
        let dns = match &self.providers.dns {
            Some(dns) if dns.capabilities().weighted_routing => dns,
            Some(dns) => {
                self.problems.push(PlanProblem::MissingCapability {
                    region: region.clone(),
                    provider: dns.to_string(),
                    capability: "set per-region routing weights".into(),
                });
                return None;
            }
            None => {
                self.problems.push(missing(
                    region,
                    "DnsSwitcher",
                    "excluding the region from routing",
                ));
                return None;
            }
        };
        let weights = match dns.region_weights(record).await {
            Ok(w) => w,
            Err(e) => {
                self.unreadable(region, format!("the weights of {record}"), &e);
                return None;
            }
        };
        let Some(now) = weights
            .iter()
            .find(|w| &w.region == region)
            .map(|w| w.weight)
        else {
            self.problems.push(PlanProblem::NotInRecordSet {
                region: region.clone(),
                record: record.to_owned(),
            });
            return None;
        };
        let back = match (r.readmit_weight, now) {
            (Some(0), _) => {
                self.problems.push(PlanProblem::NoReadmitWeight {
                    region: region.clone(),
                    record: record.to_owned(),
                });
                None
            }
            (Some(w), _) => Some((w, WeightSource::Spec)),
            (None, 0) if r.readmit != Readmit::Never => {
                match self.weight_before_earlier_exclusion(r, record) {
                    Some((w, run)) => Some((w, WeightSource::EarlierRun(run))),
                    None => {
                        self.problems.push(PlanProblem::NoReadmitWeight {
                            region: region.clone(),
                            record: record.to_owned(),
                        });
                        None
                    }
                }
            }
            (None, 0) => None,
            (None, w) => Some((w, WeightSource::WhenPlanned)),
        };
        let label = dns.to_string();
        Some((
            (
                Step::ExcludeRegion {
                    record: record.to_owned(),
                    weight: now,
                },
                label.clone(),
            ),
            back.map(|(weight, weight_from)| {
                (
                    Step::ReadmitRegion {
                        record: record.to_owned(),
                        weight,
                        weight_from,
                    },
                    label,
                )
            }),
        ))
    }

    async fn deployment(
        &mut self,
        r: &RegionSpec,
        rp: &RegionProviders,
        steps: &mut Vec<(Step, String)>,
        versions: &mut Versions,
    ) {
        let region = &r.region;
        let deployer = &rp.deployer;
        let caps = deployer.capabilities();
        match &r.deployment {
            DeploymentAction::RollBack { to } => {
                if !caps.rollback_to_revision {
                    self.problems.push(PlanProblem::MissingCapability {
                        region: region.clone(),
                        provider: deployer.to_string(),
                        capability: "roll back to an explicit revision".into(),
                    });
                    return;
                }
                let history = match deployer.revisions(&r.service).await {
                    Ok(h) => h,
                    Err(e) => {
                        self.unreadable(region, format!("the revisions of {}", r.service), &e);
                        return;
                    }
                };
                let earlier = self.earlier_rollback(r);
                let target = match to {
                    // After an unfinished run rolled back, "previous" is the bad version:
                    // keep the earlier run's target instead.
                    RollbackTarget::Previous if earlier.is_some() => {
                        let (run, done_to) = earlier.expect("checked");
                        self.warnings.push(format!(
                            "{region}: run {run} already rolled {} back to {done_to}; this plan keeps {done_to} (\"previous\" now would be {})",
                            r.service,
                            history
                                .rollback_target()
                                .map_or_else(|| "nothing".to_owned(), |rev| rev.id.to_string())
                        ));
                        Some(done_to)
                    }
                    RollbackTarget::Previous => history.rollback_target().map(|rev| {
                        if let Some(note) = &rev.note {
                            self.warnings.push(format!("{region}: {note}"));
                        }
                        rev.id.clone()
                    }),
                    RollbackTarget::Revision(id) => {
                        if !history.contains(id) {
                            self.warnings.push(format!(
                                "{region}: revision {id} is not in the recent history of {}; {deployer} will check it exists",
                                r.service
                            ));
                        }
                        Some(id.clone())
                    }
                };
                let Some(to) = target else {
                    self.problems.push(PlanProblem::NoPreviousRevision {
                        region: region.clone(),
                        service: r.service.clone(),
                    });
                    return;
                };
                versions.current = Some(history.current.id.to_string());
                versions.target = Some(to.to_string());
                if history.current.id == to {
                    self.warnings.push(format!(
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
                steps.push((
                    Step::WaitStable {
                        service: r.service.clone(),
                    },
                    deployer.to_string(),
                ));
            }
            DeploymentAction::RedeployImage {
                container,
                image,
                retag,
            } => {
                if let Some(rt) = retag {
                    match &self.providers.registry {
                        Some(reg) => steps.push((
                            Step::RetagImage {
                                repository: rt.repository.clone(),
                                source: rt.source.clone(),
                                tag: rt.tag.clone(),
                            },
                            reg.to_string(),
                        )),
                        None => self.problems.push(missing(
                            region,
                            "ImageRegistry",
                            "retagging an image",
                        )),
                    }
                }
                if !caps.set_image {
                    self.problems.push(PlanProblem::MissingCapability {
                        region: region.clone(),
                        provider: deployer.to_string(),
                        capability: "set images".into(),
                    });
                    return;
                }
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
            }
            DeploymentAction::None => {}
        }
    }

    async fn database(
        &mut self,
        r: &RegionSpec,
        rp: &RegionProviders,
        db: &DatabaseSpec,
        steps: &mut Vec<(Step, String)>,
    ) {
        let region = &r.region;
        // RDS compares identifiers case-insensitively: `DB-1` is `db-1`.
        if db.source.as_str().eq_ignore_ascii_case(db.target.as_str()) {
            self.problems.push(PlanProblem::RestoreOntoSource {
                region: region.clone(),
                target: db.target.clone(),
            });
        }
        match &rp.database {
            Some(restorer) => {
                let c = restorer.capabilities();
                let ok = match db.from {
                    RestoreFrom::PointInTime(_) => c.point_in_time_restore,
                    _ => c.snapshot_restore,
                };
                if !ok {
                    self.problems.push(PlanProblem::MissingCapability {
                        region: region.clone(),
                        provider: restorer.to_string(),
                        capability: format!("restore that way ({:?})", db.from),
                    });
                }
                if let Some(restore) = self.resolve_restore(region, restorer.as_ref(), db).await {
                    steps.push((
                        Step::RestoreDatabase {
                            source: db.source.clone(),
                            target: db.target.clone(),
                            from: db.from.clone(),
                            restore,
                        },
                        restorer.to_string(),
                    ));
                }
            }
            None => self
                .problems
                .push(missing(region, "DbRestorer", "a database restore")),
        }
        if let Some(conn) = &db.connection {
            let deployer = &rp.deployer;
            if !deployer.capabilities().set_env {
                self.problems.push(PlanProblem::MissingCapability {
                    region: region.clone(),
                    provider: deployer.to_string(),
                    capability: "set environment variables".into(),
                });
            }
            if !self.secrets.contains_key(&conn.template_secret) {
                self.problems.push(PlanProblem::UnknownSecret {
                    region: region.clone(),
                    name: conn.template_secret.clone(),
                });
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

    /// Pins the restore source: the snapshot "latest" means now, or the time a point in
    /// time means, so the dry run shows what data comes back.
    async fn resolve_restore(
        &mut self,
        region: &Region,
        db: &dyn crate::provider::DbRestorer,
        spec: &DatabaseSpec,
    ) -> Option<ResolvedRestore> {
        let source = &spec.source;
        let resolved = |snapshot, data_as_of| ResolvedRestore {
            snapshot,
            data_as_of,
            accept_data_after_incident: spec.accept_data_after_incident,
        };
        match &spec.from {
            RestoreFrom::LatestSnapshot | RestoreFrom::Snapshot(_) => {
                let snaps = match db.snapshots(source).await {
                    Ok(s) => s,
                    Err(e) => {
                        self.unreadable(region, format!("the snapshots of {source}"), &e);
                        return None;
                    }
                };
                let found = match &spec.from {
                    RestoreFrom::Snapshot(id) => snaps.into_iter().find(|s| &s.id == id),
                    _ => snaps.into_iter().find(|s| s.available),
                };
                match found {
                    Some(s) => Some(resolved(Some(s.id), s.created_at)),
                    None => {
                        self.unreadable(
                            region,
                            format!("a usable snapshot of {source} ({:?})", spec.from),
                            &Error::not_found(db, "no such available snapshot"),
                        );
                        None
                    }
                }
            }
            RestoreFrom::PointInTime(point) => {
                let window = match db.restore_window(source).await {
                    Ok(w) => w,
                    Err(e) => {
                        self.unreadable(region, format!("the restore window of {source}"), &e);
                        return None;
                    }
                };
                let at = match point {
                    RestorePoint::Latest => window.latest,
                    RestorePoint::At(t) if window.contains(*t) => *t,
                    RestorePoint::At(t) => {
                        self.unreadable(
                            region,
                            format!("a restore time of {source}"),
                            &Error::invalid(
                                "restore time",
                                format!(
                                    "{t} is outside the restorable window ({} to {}); pick a time inside it",
                                    window.earliest, window.latest
                                ),
                            ),
                        );
                        return None;
                    }
                };
                Some(resolved(None, at))
            }
        }
    }

    /// Only the checks that can really run; an empty list refuses the plan.
    fn verification_checks(&mut self, region: &Region) -> VerificationChecks {
        let v = &self.spec.verification;
        let p = self.providers;
        let endpoints = verify::endpoints(v, region);
        if !endpoints.is_empty() && p.health.is_none() {
            self.warnings.push(format!(
                "{region}: health endpoints are configured but no HealthChecker; they are not probed"
            ));
        }
        if v.metrics && p.metrics.is_none() {
            self.warnings.push(format!(
                "{region}: no MetricsSource; metrics are not verified"
            ));
        }
        if v.smoke_tests && p.smoke.is_none() {
            self.warnings.push(format!(
                "{region}: no smoke-test hook configured; smoke tests are not run"
            ));
        }
        if v.customer_reports && p.reports.is_none() {
            self.warnings.push(format!(
                "{region}: no customer-report source configured; reports are not counted"
            ));
        }
        VerificationChecks {
            health_endpoints: if p.health.is_some() {
                endpoints.into_iter().map(|e| e.url).collect()
            } else {
                Vec::new()
            },
            smoke_tests: v.smoke_tests && p.smoke.is_some(),
            metrics: v.metrics && p.metrics.is_some(),
            customer_reports: v.customer_reports && p.reports.is_some(),
            logs: p.logs.is_some(),
        }
    }

    fn other_regions(&mut self, r: &RegionSpec, steps: &mut Vec<(Step, String)>) {
        let region = &r.region;
        let rolling: BTreeSet<&Region> = self.spec.regions.iter().map(|s| &s.region).collect();
        let others: Vec<ServiceRef> = if self.spec.fleet.is_empty() {
            self.providers
                .regions
                .keys()
                .filter(|k| !rolling.contains(k))
                .map(|k| ServiceRef::new(k.clone(), r.service.clone()))
                .collect()
        } else {
            self.spec
                .fleet
                .iter()
                .filter(|s| !rolling.contains(&s.region))
                .cloned()
                .collect()
        };
        if others.is_empty() {
            self.warnings
                .push(format!("{region}: no other regions to check"));
            return;
        }
        if self.providers.health.is_none() || self.spec.verification.health_endpoints.is_empty() {
            self.problems.push(PlanProblem::CannotCheckOtherRegions {
                region: region.clone(),
                reason: "it probes the other regions' health endpoints: configure a HealthChecker and health_endpoints".into(),
            });
            return;
        }
        steps.push((
            Step::CheckOtherRegions { services: others },
            "engine".into(),
        ));
    }
}

impl fmt::Debug for Planner<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Planner")
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}
