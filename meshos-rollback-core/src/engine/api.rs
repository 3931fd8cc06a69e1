//! The engine's entry points: plan, execute, resume, report, observe.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::SignedDuration;
use secrecy::SecretString;

use super::builder::EngineBuilder;
use super::checklist::{RollbackRequest, gate};
use super::journal::{Journal, JournalEvent, StepStates};
use super::plan::{RollbackPlan, RunId, Step};
use super::planner::{self, EarlierWork, PlanInput};
use super::problem::{PlanProblem, PlanRefusal};
use super::progress::{ProgressEvent, ProgressObserver, RunControl};
use super::providers::Providers;
use super::report::{ReportBuilder, RunReport, RunStatus};
use super::runner::Run;
use super::spec::RollbackSpec;
use super::steps;
use crate::clock::SharedClock;
use crate::model::ServiceRef;
use crate::observation::Observation;
use crate::provider::{Escalation, Lease, LockKey, RollbackLock};
use crate::redact::Redactor;
use crate::{Error, Result};

/// Runs rollback plans against a set of providers.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use meshos_rollback_core::clock::TokioClock;
/// use meshos_rollback_core::engine::*;
/// use meshos_rollback_core::memory::InMemoryDeployer;
/// use meshos_rollback_core::model::*;
///
/// let clock = Arc::new(TokioClock::from_system());
/// let region = Region::new("us-east-1")?;
/// let api = ServiceId::ecs("meshos-us-east-1", "meshos-api");
/// let deployer = Arc::new(InMemoryDeployer::new(region.clone(), clock.clone()));
/// deployer.add_service(&api, "api", 3, Revision::new("v2.4.9"));
/// deployer.deploy(&api, Revision::new("v2.5.0"))?;
///
/// let providers = Providers::new().with_region(region.clone(), RegionProviders::new(deployer.clone()));
/// let engine = Engine::builder(providers).with_clock(clock.clone()).ephemeral().build()?;
/// let spec = RollbackSpec::new(vec![RegionSpec::new(region.clone(), api.clone()).without_verification()]);
/// let plan = engine.plan(&spec).await?;
/// println!("{plan}"); // the dry run
///
/// let request = RollbackRequest {
///     incident: Incident {
///         id: "INC-20251030-001".into(),
///         severity: Severity::High,
///         summary: "High error rate detected".into(),
///         started_at: clock.now(),
///         regions: vec![region],
///     },
///     trigger: Trigger::Manual(
///         PreRollbackChecklist::new()
///             .incident_documented("https://status.example/INC-20251030-001")
///             .approved_by("alice", ApproverRole::OnCallEngineer)
///             .customer_impact(CustomerImpact::new(Some(150), "elevated error rates"))
///             .stakeholders_notified("status page"),
///     ),
///     prior_events: vec![],
/// };
/// let report = engine.execute(plan, request).await?;
/// assert_eq!(report.status, RunStatus::Succeeded);
/// assert_eq!(deployer.current_revision(&api)?.as_str(), "v2.4.9");
/// # use meshos_rollback_core::clock::Clock;
/// # Ok::<_, meshos_rollback_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) providers: Providers,
    pub(super) journal: Arc<dyn Journal>,
    pub(super) lock: Arc<dyn RollbackLock>,
    pub(super) clock: SharedClock,
    pub(super) secrets: BTreeMap<String, SecretString>,
    pub(super) redactor: Redactor,
    pub(super) observer: Option<Arc<dyn ProgressObserver>>,
    pub(super) holder: String,
    pub(super) lock_ttl: Duration,
    pub(super) notify_timeout: Duration,
    /// Runs executing or resuming in this process: one run id, one run.
    pub(super) active: Mutex<HashSet<RunId>>,
    /// Incident ids this engine handed out: two runs started at once, before either
    /// is journalled, must not get the same one.
    pub(super) incident_ids: tokio::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// How many of the journal's newest runs planning reads for earlier, unfinished work.
pub const EARLIER_RUNS_READ: usize = 100;

/// Marks a run active in this process until dropped.
struct Active<'a> {
    inner: &'a Inner,
    run: RunId,
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.inner.active.lock().expect("lock").remove(&self.run);
    }
}

impl Engine {
    /// A builder over `providers`.
    pub fn builder(providers: Providers) -> EngineBuilder {
        EngineBuilder::new(providers)
    }

    /// The redactor that masks secrets in journal entries, messages and reports; share
    /// it with [`TraceLayer::redacting`](crate::layer::TraceLayer::redacting).
    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// The providers.
    pub fn providers(&self) -> &Providers {
        &self.inner.providers
    }

    /// The journal.
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.inner.journal
    }

    /// Builds and checks a plan: explicit revisions, migrations, snapshots and weights,
    /// every provider and capability present. Nothing is changed; print the plan for a
    /// dry run. A refused plan is [`Error::PlanRefused`] with every problem.
    ///
    /// The journal's unfinished runs of the same services are read first: the dry run
    /// shows what they already did, a region they left out of routing is re-admitted
    /// at the weight it had before, and "last batch" is refused where one of them
    /// already reverted a batch (it would revert a second).
    pub async fn plan(&self, spec: &RollbackSpec) -> Result<RollbackPlan> {
        let now = self.inner.clock.now();
        let earlier = self.earlier_work(spec).await?;
        planner::build(PlanInput {
            providers: &self.inner.providers,
            spec,
            secrets: &self.inner.secrets,
            redactor: &self.inner.redactor,
            run_id: RunId::generate(now),
            now,
            earlier: &earlier,
        })
        .await
    }

    /// What the journal's unfinished runs did to the spec's services, oldest first.
    /// Only the newest [`EARLIER_RUNS_READ`] runs are read, so planning stays quick in
    /// a journal that has grown for years.
    async fn earlier_work(&self, spec: &RollbackSpec) -> Result<Vec<EarlierWork>> {
        let runs = self.inner.journal.runs().await?;
        let mut out = Vec::new();
        for run in runs.iter().rev().take(EARLIER_RUNS_READ) {
            let report = match self.inner.journal.load(run).await {
                Ok(entries) => match RunReport::from_journal(&entries) {
                    Ok(r) => r,
                    Err(_) => continue,
                },
                Err(e) => {
                    // Another run's damaged journal must not block this rollback.
                    tracing::warn!(%run, error = %e, "cannot read an earlier run's journal");
                    continue;
                }
            };
            if report.status == RunStatus::Succeeded {
                continue;
            }
            for region in &report.regions {
                if !spec
                    .regions
                    .iter()
                    .any(|r| r.region == region.region && r.service == region.service)
                {
                    continue;
                }
                out.push(EarlierWork {
                    open_pages: report.open_pages(),
                    run: run.clone(),
                    status: report.status,
                    region: region.region.clone(),
                    service: region.service.clone(),
                    done: region
                        .steps
                        .iter()
                        .filter(|s| s.status == super::report::StepStatus::Succeeded)
                        .filter_map(|s| {
                            s.outcome.clone().map(|o| (s.id.clone(), s.step.clone(), o))
                        })
                        .collect(),
                });
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Reads what a decision needs for a service: metrics now and baseline (over the
    /// canary-policy window), and customer reports in the matrix's window. SLA violation
    /// and data corruption are not metrics: the caller sets them.
    pub async fn observe(
        &self,
        service: &ServiceRef,
        window: Duration,
        policy: &crate::decision::RollbackPolicy,
    ) -> Result<Observation> {
        let metrics = self.inner.providers.metrics.as_ref().ok_or_else(|| {
            Error::precondition(
                "providers.metrics",
                "observing a service needs a MetricsSource",
            )
        })?;
        let current = metrics.observe(service, window).await?;
        let baseline = metrics.baseline(service, window).await?;
        let mut obs = Observation::new(current, baseline);
        if let Some(reports) = &self.inner.providers.reports {
            let w = policy.matrix.customer_reports_window();
            let since = self
                .inner
                .clock
                .now()
                .checked_sub(SignedDuration::try_from(w).unwrap_or(SignedDuration::ZERO))
                .unwrap_or(self.inner.clock.now());
            obs.customer_reports = Some(reports.count_since(&service.region, since).await?);
        }
        Ok(obs)
    }

    /// Reads a canary against the stable fleet for the canary policy: the canary's
    /// metrics as `current`, the stable service's as `baseline`.
    pub async fn observe_canary(
        &self,
        canary: &ServiceRef,
        stable: &ServiceRef,
        window: Duration,
    ) -> Result<Observation> {
        let metrics = self.inner.providers.metrics.as_ref().ok_or_else(|| {
            Error::precondition("providers.metrics", "canary analysis needs a MetricsSource")
        })?;
        let current = metrics.observe(canary, window).await?;
        let baseline = metrics.observe(stable, window).await?;
        Ok(Observation::new(current, baseline))
    }

    /// The engine's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// Tells the progress observer, if there is one.
    pub(crate) fn notify_progress(&self, event: impl FnOnce() -> ProgressEvent) {
        if let Some(o) = &self.inner.observer {
            o.on_event(&event());
        }
    }

    /// Pages on-call (if an escalator is configured) and records nothing else: for
    /// decisions outside a run, such as "stop all deployments, escalate".
    pub async fn escalate(&self, escalation: &Escalation) -> Result<bool> {
        match &self.inner.providers.escalator {
            Some(e) => e.trigger(escalation).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Tells the routes of `comms` about a decision, outside a run: data corruption
    /// to `routes.data_corruption` at once, customer reports to
    /// `routes.customer_reports`, anything at "initiate rollback" or worse to
    /// `routes.region_failed`. Returns who was told and whether it reached them.
    pub async fn tell_decision(
        &self,
        comms: &super::spec::CommsSpec,
        incident: &crate::model::Incident,
        region: &crate::model::Region,
        decision: &crate::decision::Decision,
    ) -> Vec<super::routing::Told> {
        super::routing::tell_decision(
            &self.inner.providers,
            &self.inner.redactor,
            comms,
            incident,
            region,
            decision,
            self.inner.notify_timeout,
        )
        .await
    }

    /// A person has taken over: acknowledges every page the run opened and has not
    /// resolved (PagerDuty stops escalating them), through the pager that opened it.
    /// Returns who was acknowledged and whether it reached them. Not journalled: the
    /// run may be another engine's, still writing its journal.
    pub async fn acknowledge_pages(&self, run_id: &RunId) -> Result<Vec<super::routing::Told>> {
        let report = self.report(run_id).await?;
        let comms = report.plan.comms();
        let routing =
            super::routing::Routing::resolve(&comms.contacts, &comms.routes, &self.inner.providers);
        let mut told = Vec::new();
        for (to, key) in report.open_pages() {
            let result = match routing.pager(&to) {
                Some(pager) => {
                    tokio::time::timeout(self.inner.notify_timeout, pager.acknowledge(&key))
                        .await
                        .unwrap_or_else(|_| {
                            Err(Error::Timeout {
                                operation: format!("{pager}: acknowledge"),
                                after: self.inner.notify_timeout,
                            })
                        })
                }
                None => Err(Error::not_found(
                    "engine",
                    format!("no pager for contact {to}: acknowledge {key} by hand"),
                )),
            };
            told.push(super::routing::Told { to, result });
        }
        Ok(told)
    }

    /// The next incident id of today, `INC-YYYYMMDD-NNN` (UTC), counted from the
    /// incidents of the journal's newest [`EARLIER_RUNS_READ`] runs. Two engines that
    /// share no journal can hand out the same number.
    pub async fn next_incident_id(&self) -> Result<String> {
        let issued = self.inner.incident_ids.lock().await;
        self.next_incident_id_after(&issued).await
    }

    /// Takes the next incident id for a run: held until this engine is dropped, so a
    /// run started at the same time gets the one after.
    async fn take_incident_id(&self) -> Result<String> {
        let mut issued = self.inner.incident_ids.lock().await;
        let id = self.next_incident_id_after(&issued).await?;
        issued.insert(id.clone());
        Ok(id)
    }

    async fn next_incident_id_after(
        &self,
        issued: &std::collections::BTreeSet<String>,
    ) -> Result<String> {
        let day = self.inner.clock.now().strftime("%Y%m%d").to_string();
        let prefix = format!("INC-{day}-");
        let number = |id: &str| id.strip_prefix(&prefix).and_then(|n| n.parse::<u32>().ok());
        let mut highest = issued.iter().filter_map(|id| number(id)).max().unwrap_or(0);
        let runs = self.inner.journal.runs().await?;
        for run in runs.iter().rev().take(EARLIER_RUNS_READ) {
            let entries = match self.inner.journal.load(run).await {
                Ok(e) => e,
                Err(e) => {
                    // A damaged run must not stop a rollback; the id may then repeat
                    // one in that run, which the warning says.
                    tracing::warn!(%run, error = %e, "cannot read a run's incident id; the next id may repeat it");
                    continue;
                }
            };
            let Some(JournalEvent::RunStarted { request, .. }) = entries.first().map(|e| &e.event)
            else {
                continue;
            };
            if let Some(n) = number(&request.incident.id) {
                highest = highest.max(n);
            }
        }
        Ok(format!("{prefix}{:03}", highest + 1))
    }

    /// Runs a plan. Fails before changing anything when the checklist gate is not
    /// passed, the plan's run already has a journal (use [`resume`](Self::resume)), a
    /// restore would bring back data from after the incident began, or a service is
    /// locked by another run; otherwise returns the report, whatever happened to the
    /// regions.
    pub async fn execute(&self, plan: RollbackPlan, request: RollbackRequest) -> Result<RunReport> {
        self.execute_with(plan, request, RunControl::default())
            .await
    }

    /// [`execute`](Self::execute) with cancellation and a deadline.
    pub async fn execute_with(
        &self,
        plan: RollbackPlan,
        mut request: RollbackRequest,
        control: RunControl,
    ) -> Result<RunReport> {
        let _active = self.activate(&plan.run_id)?;
        if request.incident.id.trim().is_empty() {
            // No id given: the next of today's, from the journal.
            request.incident.id = self.take_incident_id().await?;
        }
        if !self.inner.journal.load(&plan.run_id).await?.is_empty() {
            return Err(Error::conflict(
                "engine",
                format!(
                    "run {} is already in the journal: a plan runs once; call resume({}) to continue it, or make a new plan",
                    plan.run_id, plan.run_id
                ),
            ));
        }
        let gate = gate(&request, &plan)?;
        check_restores(&plan, &request)?;
        let leases = self.lock_all(&plan).await?;
        // Shared, not copied: the journal entry and the report hold the same plan.
        let (plan, request) = (Arc::new(plan), Arc::new(request));
        let run = Arc::new(Run::new(
            self.inner.clone(),
            plan.clone(),
            request.clone(),
            StepStates::default(),
            0,
            control,
            None,
            leases,
        ));
        let started = run
            .append(JournalEvent::RunStarted {
                plan: plan.clone(),
                request: request.clone(),
                gate: Arc::new(gate),
            })
            .await;
        if let Err(e) = started {
            run.release_leases().await;
            return Err(e);
        }
        run.go(false).await
    }

    /// Resumes an interrupted run from its journal: completed steps are not repeated;
    /// the step that was in flight is re-checked (it is a no-op if it took effect).
    /// Refused when the providers are not the ones the plan was made against.
    pub async fn resume(&self, run_id: &RunId) -> Result<RunReport> {
        self.resume_with(run_id, RunControl::default()).await
    }

    /// [`resume`](Self::resume) with cancellation and a deadline.
    pub async fn resume_with(&self, run_id: &RunId, control: RunControl) -> Result<RunReport> {
        let _active = self.activate(run_id)?;
        let entries = self.inner.journal.load(run_id).await?;
        let unknown = || Error::not_found("journal", format!("run {run_id} (no journal entries)"));
        let mut builder = ReportBuilder::start(entries.first().ok_or_else(unknown)?)?;
        for e in &entries[1..] {
            builder.apply(e);
        }
        let JournalEvent::RunStarted { plan, request, .. } = &entries[0].event else {
            unreachable!("ReportBuilder::start checked the first entry")
        };
        let seq = entries.iter().map(|e| e.seq).max().unwrap_or(0);
        // A run that succeeded acts on nothing again: only what it had to tell after
        // finishing is done, if a crash cut that off; it needs no lock.
        let finished = builder.current().status == RunStatus::Succeeded;
        let leases = if finished {
            Vec::new()
        } else {
            self.check_same_world(plan)?;
            self.lock_all(plan).await?
        };
        let run = Arc::new(Run::new(
            self.inner.clone(),
            plan.clone(),
            request.clone(),
            StepStates::from_entries(&entries),
            seq,
            control,
            Some(builder),
            leases,
        ));
        if finished {
            return run.finish_comms().await;
        }
        if let Err(e) = run.append(JournalEvent::RunResumed).await {
            run.release_leases().await;
            return Err(e);
        }
        run.go(true).await
    }

    /// The report of a run, rebuilt from its journal.
    pub async fn report(&self, run_id: &RunId) -> Result<RunReport> {
        let entries = self.inner.journal.load(run_id).await?;
        RunReport::from_journal(&entries)
            .map_err(|_| Error::not_found("journal", format!("run {run_id}")))
    }

    fn activate(&self, run: &RunId) -> Result<Active<'_>> {
        if !self.inner.active.lock().expect("lock").insert(run.clone()) {
            return Err(Error::conflict(
                "engine",
                format!("run {run} is already running in this process; wait for it to end"),
            ));
        }
        Ok(Active {
            inner: &self.inner,
            run: run.clone(),
        })
    }

    /// A resumed step must act on the world it was planned against: the providers'
    /// identities (`Display`: account, region, context) must be the ones in the plan.
    fn check_same_world(&self, plan: &RollbackPlan) -> Result<()> {
        let mismatches: Vec<String> = plan
            .steps()
            .filter_map(|(region, ps)| {
                let now = steps::provider_now(&self.inner.providers, region, ps);
                (now != ps.provider).then(|| {
                    format!(
                        "{}: planned against {}, the engine now has {now}",
                        ps.id, ps.provider
                    )
                })
            })
            .collect();
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(Error::precondition(
                "resume",
                format!(
                    "run {} would act on a different world than it was planned against; resume it with the same providers (account, region, context):\n  - {}",
                    plan.run_id,
                    mismatches.join("\n  - ")
                ),
            ))
        }
    }

    /// Locks every service of the plan, all at once: against a distributed lock,
    /// one call after another would cost hundreds of round trips. The holder names
    /// this process and the run, so a second run in the same process is refused like
    /// any other. On any failure the locks taken are released and every error is
    /// returned.
    async fn lock_all(&self, plan: &RollbackPlan) -> Result<Vec<Lease>> {
        let inner = &self.inner;
        let holder = format!("{} run {}", inner.holder, plan.run_id);
        let results = futures::future::join_all(plan.regions.iter().map(|r| {
            let holder = &holder;
            async move {
                let key =
                    LockKey::for_service(&ServiceRef::new(r.region.clone(), r.service.clone()));
                inner.lock.acquire(&key, holder, inner.lock_ttl).await
            }
        }))
        .await;
        let mut leases = Vec::with_capacity(results.len());
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(l) => leases.push(l),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            return Ok(leases);
        }
        for l in &leases {
            if let Err(e) = inner.lock.release(l).await {
                tracing::warn!(lock = %l.key, error = %e, "could not release the rollback lock; it expires on its own");
            }
        }
        if errors.len() == 1 {
            return Err(errors.remove(0));
        }
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        Err(Error::conflict(
            inner.lock.as_ref(),
            format!("{} services are locked: {}", errors.len(), text.join("; ")),
        ))
    }
}

/// A restore that would bring back data written after the incident began is refused
/// unless the spec accepts it: a "latest" snapshot taken during the incident restores
/// the damage.
fn check_restores(plan: &RollbackPlan, request: &RollbackRequest) -> Result<()> {
    let started = request.incident.started_at;
    let problems: Vec<PlanProblem> = plan
        .steps()
        .filter_map(|(region, ps)| match &ps.step {
            Step::RestoreDatabase {
                target, restore, ..
            } if restore.data_as_of > started && !restore.accept_data_after_incident => {
                Some(PlanProblem::RestoreAfterIncident {
                    region: region.clone(),
                    target: target.clone(),
                    data_as_of: restore.data_as_of,
                    incident_started_at: started,
                })
            }
            _ => None,
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::PlanRefused(Box::new(PlanRefusal { problems })))
    }
}

/// The run future must be `Send`, so callers can spawn it.
#[allow(dead_code)]
fn assert_execute_is_send(e: &Engine, p: RollbackPlan, r: RollbackRequest) -> impl Send + '_ {
    e.execute(p, r)
}
