//! The engine: gate, lock, journal, run regions in parallel, verify, tell people.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::checklist::{RollbackRequest, gate};
use super::comms::{self, RegionProgress};
use super::journal::{
    DataLossWindow, FileJournal, InMemoryJournal, Journal, JournalEntry, JournalEvent, PreState,
    StepOutcome, StepStates,
};
use super::plan::{self, PlannedStep, RegionPlan, RollbackPlan, RunId, Step, StepId};
use super::providers::{Providers, RegionProviders};
use super::report::{ReportBuilder, RunReport, RunStatus};
use super::spec::{PartialFailure, RestoreFrom, RollbackSpec};
use super::verify;
use crate::clock::{SharedClock, SystemClock};
use crate::memory::InMemoryLock;
use crate::model::{Region, RollbackTarget, ServiceRef, Severity};
use crate::observation::Observation;
use crate::provider::{
    EnvVar, Escalation, ImageUpdate, Lease, LockKey, Message, MessageKind, RestorePoint,
    RollbackLock, traffic_share,
};
use crate::redact::Redactor;
use crate::{Error, Result};

/// What happens as a rollback runs, for progress displays.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// The run started (or resumed).
    RunStarted {
        /// The run.
        run_id: RunId,
        /// Whether it is a resume.
        resumed: bool,
    },
    /// A step started.
    StepStarted {
        /// Region.
        region: Region,
        /// Step.
        step: StepId,
        /// What it does.
        description: String,
    },
    /// A step succeeded.
    StepSucceeded {
        /// Region.
        region: Region,
        /// Step.
        step: StepId,
        /// What it did.
        outcome: String,
        /// How long it took.
        elapsed: Duration,
    },
    /// A step failed.
    StepFailed {
        /// Region.
        region: Region,
        /// Step.
        step: StepId,
        /// The error, redacted.
        error: String,
    },
    /// A step did not run or was cut off.
    StepSkipped {
        /// Region.
        region: Region,
        /// Step.
        step: StepId,
        /// Why.
        reason: String,
    },
    /// A message went out.
    MessageSent {
        /// What kind.
        kind: MessageKind,
        /// The text.
        text: String,
    },
    /// The run ended.
    RunFinished {
        /// How.
        status: RunStatus,
    },
    /// A canary watch judged the canary.
    CanaryChecked {
        /// The canary.
        canary: ServiceRef,
        /// Which check, from 1.
        check: u32,
        /// The decision, with every rule that fired.
        decision: String,
    },
}

/// Receives progress events (a terminal display, a deploy tool's UI).
pub trait ProgressObserver: fmt::Debug + Send + Sync {
    /// Called for each event, in order within a region.
    fn on_event(&self, event: &ProgressEvent);
}

/// Cancellation and a deadline for one run.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    /// Cancel to stop the run: the step in flight is cut off and recorded as
    /// interrupted, the rest are recorded as not run.
    pub cancel: CancellationToken,
    /// Stop the run after this long.
    pub deadline: Option<Duration>,
}

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
/// let engine = Engine::builder(providers).with_clock(clock.clone()).build()?;
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
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    providers: Providers,
    journal: Arc<dyn Journal>,
    lock: Arc<dyn RollbackLock>,
    clock: SharedClock,
    secrets: BTreeMap<String, SecretString>,
    redactor: Redactor,
    observer: Option<Arc<dyn ProgressObserver>>,
    holder: String,
    lock_ttl: Duration,
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    providers: Providers,
    journal: Option<Arc<dyn Journal>>,
    journal_dir: Option<PathBuf>,
    lock: Option<Arc<dyn RollbackLock>>,
    clock: Option<SharedClock>,
    secrets: BTreeMap<String, SecretString>,
    observer: Option<Arc<dyn ProgressObserver>>,
    holder: Option<String>,
    lock_ttl: Duration,
    redactor: Option<Redactor>,
}

impl Engine {
    /// A builder over `providers`.
    pub fn builder(providers: Providers) -> EngineBuilder {
        EngineBuilder {
            providers,
            journal: None,
            journal_dir: None,
            lock: None,
            clock: None,
            secrets: BTreeMap::new(),
            observer: None,
            holder: None,
            lock_ttl: Duration::from_secs(300),
            redactor: None,
        }
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

    /// Builds and checks a plan: explicit revisions, every provider and capability
    /// present. Nothing is changed; print the plan for a dry run.
    pub async fn plan(&self, spec: &RollbackSpec) -> Result<RollbackPlan> {
        let now = self.inner.clock.now();
        plan::build(
            &self.inner.providers,
            spec,
            &self.inner.secrets,
            RunId::generate(now),
            now,
        )
        .await
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

    /// Runs a plan. Fails before changing anything when the checklist gate is not
    /// passed or a service is locked by another rollback; otherwise returns the report,
    /// whatever happened to the regions.
    pub async fn execute(&self, plan: RollbackPlan, request: RollbackRequest) -> Result<RunReport> {
        self.execute_with(plan, request, RunControl::default())
            .await
    }

    /// [`execute`](Self::execute) with cancellation and a deadline.
    pub async fn execute_with(
        &self,
        plan: RollbackPlan,
        request: RollbackRequest,
        control: RunControl,
    ) -> Result<RunReport> {
        let gate = gate(&request, &plan)?;
        let leases = self.lock_all(&plan).await?;
        // Shared, not copied: the journal entry and the report hold the same plan.
        let (plan, request) = (Arc::new(plan), Arc::new(request));
        let run = Run::new(
            self.inner.clone(),
            plan.clone(),
            request.clone(),
            StepStates::default(),
            0,
            control,
            None,
        );
        let started = run
            .append(JournalEvent::RunStarted {
                plan: plan.clone(),
                request: request.clone(),
                gate: Arc::new(gate),
            })
            .await;
        if let Err(e) = started {
            self.unlock_all(&leases).await;
            return Err(e);
        }
        Arc::new(run).go(leases, false).await
    }

    /// Resumes an interrupted run from its journal: completed steps are not repeated;
    /// the step that was in flight is re-checked (it is a no-op if it took effect).
    pub async fn resume(&self, run_id: &RunId) -> Result<RunReport> {
        self.resume_with(run_id, RunControl::default()).await
    }

    /// [`resume`](Self::resume) with cancellation and a deadline.
    pub async fn resume_with(&self, run_id: &RunId, control: RunControl) -> Result<RunReport> {
        let entries = self.inner.journal.load(run_id).await?;
        let unknown = || Error::not_found("journal", format!("run {run_id} (no journal entries)"));
        let mut builder = ReportBuilder::start(entries.first().ok_or_else(unknown)?)?;
        for e in &entries[1..] {
            builder.apply(e);
        }
        if builder.current().status == RunStatus::Succeeded {
            return Ok(builder.finish());
        }
        let JournalEvent::RunStarted { plan, request, .. } = &entries[0].event else {
            unreachable!("from_journal checked the first entry")
        };
        let leases = self.lock_all(plan).await?;
        let seq = entries.iter().map(|e| e.seq).max().unwrap_or(0);
        let run = Run::new(
            self.inner.clone(),
            plan.clone(),
            request.clone(),
            StepStates::from_entries(&entries),
            seq,
            control,
            Some(builder),
        );
        if let Err(e) = run.append(JournalEvent::RunResumed).await {
            self.unlock_all(&leases).await;
            return Err(e);
        }
        Arc::new(run).go(leases, true).await
    }

    /// The report of a run, rebuilt from its journal.
    pub async fn report(&self, run_id: &RunId) -> Result<RunReport> {
        let entries = self.inner.journal.load(run_id).await?;
        RunReport::from_journal(&entries)
            .map_err(|_| Error::not_found("journal", format!("run {run_id}")))
    }

    /// Locks every service of the plan, all at once: against a distributed lock,
    /// one call after another would cost hundreds of round trips. On any failure the
    /// locks taken are released and the first error is returned.
    async fn lock_all(&self, plan: &RollbackPlan) -> Result<Vec<Lease>> {
        let inner = &self.inner;
        let results = futures::future::join_all(plan.regions.iter().map(|r| async move {
            let key = LockKey::for_service(&ServiceRef::new(r.region.clone(), r.service.clone()));
            inner
                .lock
                .acquire(&key, &inner.holder, inner.lock_ttl)
                .await
        }))
        .await;
        let mut leases = Vec::with_capacity(results.len());
        let mut first_error = None;
        for r in results {
            match r {
                Ok(l) => leases.push(l),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(leases),
            Some(e) => {
                self.unlock_all(&leases).await;
                Err(e)
            }
        }
    }

    async fn unlock_all(&self, leases: &[Lease]) {
        for l in leases {
            if let Err(e) = self.inner.lock.release(l).await {
                tracing::warn!(lock = %l.key, error = %e, "could not release the rollback lock; it expires on its own");
            }
        }
    }
}

impl EngineBuilder {
    /// Keeps the journal here (default: in memory, lost with the process).
    pub fn with_journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Keeps a durable [`FileJournal`] in `dir`.
    pub fn with_journal_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.journal_dir = Some(dir.into());
        self
    }

    /// Uses this lock (default: in-process).
    pub fn with_lock(mut self, lock: Arc<dyn RollbackLock>) -> Self {
        self.lock = Some(lock);
        self
    }

    /// Uses this clock (default: the system clock).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Gives the engine a secret, such as a connection-string template, by name.
    pub fn with_secret(mut self, name: impl Into<String>, value: SecretString) -> Self {
        self.secrets.insert(name.into(), value);
        self
    }

    /// Reports progress to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn ProgressObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Names this process in locks (default: host name and process id).
    pub fn with_holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = Some(holder.into());
        self
    }

    /// Masks secrets with `redactor` (share it with the tracing layer).
    pub fn with_redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = Some(redactor);
        self
    }

    /// How long a lock lasts unless renewed (renewed every third of it while running).
    pub fn with_lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Result<Engine> {
        if self.lock_ttl < Duration::from_secs(3) {
            return Err(Error::invalid("lock_ttl", "must be at least 3 seconds"));
        }
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let journal: Arc<dyn Journal> = match (self.journal, self.journal_dir) {
            (Some(j), _) => j,
            (None, Some(dir)) => Arc::new(FileJournal::new(dir)?),
            (None, None) => Arc::new(InMemoryJournal::new()),
        };
        let holder = self.holder.unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "meshos-rollback".into());
            format!("{host}-{}", std::process::id())
        });
        Ok(Engine {
            inner: Arc::new(Inner {
                lock: self
                    .lock
                    .unwrap_or_else(|| Arc::new(InMemoryLock::new(clock.clone()))),
                providers: self.providers,
                journal,
                clock,
                redactor: {
                    let r = self.redactor.unwrap_or_default();
                    for s in self.secrets.values() {
                        r.register(s);
                    }
                    r
                },
                secrets: self.secrets,
                observer: self.observer,
                holder,
                lock_ttl: self.lock_ttl,
            }),
        })
    }
}

/// Where a region stands, cheaply: put into words only for status updates.
#[derive(Debug, Clone, Default)]
struct Progress {
    done: usize,
    current: Option<usize>,
    finished: Option<String>,
}

/// A failed step, with what it found.
struct StepFailure {
    error: Error,
    detail: Option<StepOutcome>,
}

impl From<Error> for StepFailure {
    fn from(error: Error) -> Self {
        StepFailure {
            error,
            detail: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegionEnd {
    Succeeded,
    Failed,
    Stopped,
}

/// One execution (or resumption) of a plan.
struct Run {
    engine: Arc<Inner>,
    plan: Arc<RollbackPlan>,
    request: Arc<RollbackRequest>,
    seq: AtomicU64,
    states: Mutex<StepStates>,
    /// Steps started by an earlier attempt of this run.
    started_before: HashSet<StepId>,
    board: Mutex<BTreeMap<Region, Progress>>,
    /// Stops the other regions at their next step boundary (partial-failure policy).
    halt: CancellationToken,
    control: RunControl,
    started_at: Timestamp,
    /// The report, built from each entry as it is journalled.
    report: Mutex<Option<ReportBuilder>>,
}

impl Run {
    fn new(
        engine: Arc<Inner>,
        plan: Arc<RollbackPlan>,
        request: Arc<RollbackRequest>,
        states: StepStates,
        seq: u64,
        control: RunControl,
        report: Option<ReportBuilder>,
    ) -> Self {
        let board = plan
            .regions
            .iter()
            .map(|r| (r.region.clone(), Progress::default()))
            .collect();
        Run {
            started_at: engine.clock.now(),
            engine,
            plan,
            request,
            seq: AtomicU64::new(seq),
            started_before: states.started.clone(),
            states: Mutex::new(states),
            board: Mutex::new(board),
            halt: CancellationToken::new(),
            control,
            report: Mutex::new(report),
        }
    }

    /// Appends to the journal, then to the live report: the report only ever shows
    /// what the journal holds.
    async fn append(&self, event: JournalEvent) -> Result<()> {
        let entry = JournalEntry {
            run_id: self.plan.run_id.clone(),
            seq: self.seq.fetch_add(1, Ordering::SeqCst) + 1,
            at: self.engine.clock.now(),
            event,
        };
        self.engine.journal.append(&entry).await?;
        let mut report = self.report.lock().expect("lock");
        match report.as_mut() {
            Some(b) => b.apply(&entry),
            None => *report = Some(ReportBuilder::start(&entry)?),
        }
        Ok(())
    }

    /// Builds the event only when someone listens.
    fn emit(&self, event: impl FnOnce() -> ProgressEvent) {
        if let Some(o) = &self.engine.observer {
            o.on_event(&event());
        }
    }

    fn redact(&self, text: &str) -> String {
        self.engine.redactor.redact(text)
    }

    /// Posts a message and records it.
    async fn say(&self, kind: MessageKind, text: String) {
        let text = self.redact(&text);
        let Some(n) = &self.engine.providers.notifier else {
            self.emit(|| ProgressEvent::MessageSent { kind, text });
            return;
        };
        let message = Message {
            kind,
            incident_id: self.request.incident.id.clone(),
            text,
        };
        let event = match n.send(&message).await {
            Ok(()) => {
                self.emit(|| ProgressEvent::MessageSent {
                    kind,
                    text: message.text.clone(),
                });
                JournalEvent::MessageSent {
                    kind,
                    text: message.text,
                }
            }
            Err(e) => {
                let error = self.redact(&e.to_string());
                tracing::warn!(%error, "could not post a message; the rollback goes on");
                JournalEvent::MessageFailed { kind, error }
            }
        };
        if let Err(e) = self.append(event).await {
            tracing::warn!(error = %e, "could not journal a message");
        }
    }

    async fn page(&self, region: &Region, summary: String, severity: Severity) {
        let Some(esc) = &self.engine.providers.escalator else {
            return;
        };
        let summary = self.redact(&summary);
        let escalation = Escalation {
            dedup_key: format!("meshos-rollback/{}/{region}", self.plan.run_id),
            summary: summary.clone(),
            severity,
            source: format!("meshos-rollback/{region}"),
            details: BTreeMap::from([
                ("incident".to_owned(), self.request.incident.id.clone()),
                ("run".to_owned(), self.plan.run_id.to_string()),
            ]),
        };
        match esc.trigger(&escalation).await {
            Ok(()) => {
                let _ = self
                    .append(JournalEvent::Escalated {
                        dedup_key: escalation.dedup_key,
                        summary,
                    })
                    .await;
            }
            Err(e) => {
                tracing::error!(error = %self.redact(&e.to_string()), "could not page on-call")
            }
        }
    }

    /// Runs every region, with status updates, lock renewal and the deadline alongside.
    async fn go(self: Arc<Self>, leases: Vec<Lease>, resumed: bool) -> Result<RunReport> {
        let run_id = self.plan.run_id.clone();
        self.emit(|| ProgressEvent::RunStarted {
            run_id: run_id.clone(),
            resumed,
        });
        let estimate = self.plan.estimate();
        let regions: Vec<Region> = self.plan.regions.iter().map(|r| r.region.clone()).collect();
        let text = if resumed {
            format!(
                "🔁 ROLLBACK RESUMED\nRun: {run_id}\nReason: {}",
                self.request.incident.summary
            )
        } else {
            comms::announcement(
                &regions,
                &self.request.incident.summary,
                self.started_at,
                estimate,
                self.plan.comms.status_interval,
            )
        };
        // The announcement goes out while the first steps start: a slow chat API
        // must not delay the rollback itself.
        let announce = self.say(MessageKind::Announcement, text);

        // One task per region, so hundreds of regions spread over the runtime's
        // threads; the semaphore keeps at most `max_parallel` running, in plan order.
        // Dropping the run (a crash) aborts them all.
        let slots = Arc::new(tokio::sync::Semaphore::new(self.plan.max_parallel.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..self.plan.regions.len() {
            let run = self.clone();
            let slots = slots.clone();
            let span = tracing::info_span!("region", region = %self.plan.regions[index].region, run = %run_id);
            tasks.spawn(
                async move {
                    let _slot = slots
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    run.run_region(&run.plan.regions[index]).await
                }
                .instrument(span),
            );
        }
        let all = async {
            let mut ends = Vec::with_capacity(self.plan.regions.len());
            while let Some(end) = tasks.join_next().await {
                // A panicking region is a failed region, not a lost run.
                ends.push(end.unwrap_or(RegionEnd::Failed));
            }
            ends
        };
        let ends = tokio::select! {
            (_, ends) = async { tokio::join!(announce, all) } => ends,
            never = self.background(&leases, estimate) => match never {},
        };

        let cancelled = self.control.cancel.is_cancelled();
        let failed = ends.iter().filter(|e| **e == RegionEnd::Failed).count();
        let status = if ends.iter().all(|e| *e == RegionEnd::Succeeded) {
            RunStatus::Succeeded
        } else if cancelled {
            RunStatus::Cancelled
        } else if failed == ends.len() {
            RunStatus::Failed
        } else if self.halt.is_cancelled() && ends.contains(&RegionEnd::Stopped) {
            RunStatus::Halted
        } else {
            RunStatus::PartiallyFailed
        };
        self.append(JournalEvent::RunFinished { status }).await?;
        let resolution = self.with_report(comms::resolution)?;
        self.say(MessageKind::Resolution, resolution).await;
        self.emit(|| ProgressEvent::RunFinished { status });
        for l in &leases {
            if let Err(e) = self.engine.lock.release(l).await {
                tracing::warn!(lock = %l.key, error = %e, "could not release the rollback lock; it expires on its own");
            }
        }
        let builder = self.report.lock().expect("lock").take();
        builder
            .map(ReportBuilder::finish)
            .ok_or_else(|| Error::failed("journal", "the run was never recorded as started"))
    }

    /// Reads the report as the journal records it so far.
    fn with_report<T>(&self, f: impl FnOnce(&RunReport) -> T) -> Result<T> {
        self.report
            .lock()
            .expect("lock")
            .as_mut()
            .map(|b| f(b.current()))
            .ok_or_else(|| Error::failed("journal", "the run was never recorded as started"))
    }

    /// Status updates, lock renewal and the deadline. Never returns.
    async fn background(&self, leases: &[Lease], estimate: Duration) -> std::convert::Infallible {
        let status_every = self.plan.comms.status_interval.max(Duration::from_secs(1));
        let renew_every = self.engine.lock_ttl / 3;
        let start = tokio::time::Instant::now();
        let mut status = tokio::time::interval_at(start + status_every, status_every);
        let mut renew = tokio::time::interval_at(start + renew_every, renew_every);
        let mut leases = leases.to_vec();
        let deadline = async {
            match self.control.deadline {
                Some(d) => {
                    tokio::time::sleep(d).await;
                    tracing::warn!("deadline of {d:?} reached: cancelling the rollback");
                    self.control.cancel.cancel();
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(deadline);
        let mut deadline_done = false;
        loop {
            tokio::select! {
                _ = status.tick() => {
                    let board = self.status_board();
                    let text = comms::status_update(self.engine.clock.now(), self.started_at, estimate, &board);
                    self.say(MessageKind::StatusUpdate, text).await;
                }
                _ = renew.tick() => {
                    for lease in leases.iter_mut() {
                        match self.engine.lock.renew(lease, self.engine.lock_ttl).await {
                            Ok(l) => *lease = l,
                            Err(e) => {
                                tracing::error!(lock = %lease.key, error = %e, "lost the rollback lock: stopping at the next step");
                                self.control.cancel.cancel();
                            }
                        }
                    }
                }
                _ = &mut deadline, if !deadline_done => { deadline_done = true; }
            }
        }
    }

    /// The progress board in words, for a status update.
    fn status_board(&self) -> BTreeMap<Region, RegionProgress> {
        let board = self.board.lock().expect("lock");
        self.plan
            .regions
            .iter()
            .map(|r| {
                let p = board.get(&r.region).cloned().unwrap_or_default();
                let progress = RegionProgress {
                    done: p.done,
                    total: r.steps.len(),
                    current: p.current.map(|i| r.steps[i].step.to_string()),
                    finished: p.finished,
                };
                (r.region.clone(), progress)
            })
            .collect()
    }

    fn progress(&self, region: &Region, f: impl FnOnce(&mut Progress)) {
        if let Some(p) = self.board.lock().expect("lock").get_mut(region) {
            f(p);
        }
    }

    async fn skip_rest(&self, rp: &RegionPlan, from: usize, reason: &str) {
        for ps in &rp.steps[from..] {
            if self
                .states
                .lock()
                .expect("lock")
                .succeeded
                .contains_key(&ps.id)
            {
                continue;
            }
            let _ = self
                .append(JournalEvent::StepSkipped {
                    step: ps.id.clone(),
                    reason: reason.to_owned(),
                })
                .await;
            self.emit(|| ProgressEvent::StepSkipped {
                region: rp.region.clone(),
                step: ps.id.clone(),
                reason: reason.to_owned(),
            });
        }
    }

    async fn run_region(&self, rp: &RegionPlan) -> RegionEnd {
        for (i, ps) in rp.steps.iter().enumerate() {
            if self
                .states
                .lock()
                .expect("lock")
                .succeeded
                .contains_key(&ps.id)
            {
                self.progress(&rp.region, |p| p.done += 1);
                continue;
            }
            if self.control.cancel.is_cancelled() {
                self.skip_rest(rp, i, "not run: the rollback was cancelled")
                    .await;
                self.progress(&rp.region, |p| p.finished = Some("cancelled".into()));
                return RegionEnd::Stopped;
            }
            if self.halt.is_cancelled() {
                self.skip_rest(rp, i, "not run: halted after a failure in another region")
                    .await;
                self.progress(&rp.region, |p| p.finished = Some("halted".into()));
                return RegionEnd::Stopped;
            }
            let span = tracing::info_span!("step", step = %ps.id, provider = %ps.provider);
            match self.run_step(rp, ps).instrument(span).await {
                Ok(()) => self.progress(&rp.region, |p| {
                    p.done += 1;
                    p.current = None;
                }),
                Err(Some(failure)) => {
                    let reason = format!("not run: step {} failed", ps.id);
                    self.skip_rest(rp, i + 1, &reason).await;
                    self.progress(&rp.region, |p| {
                        p.finished = Some(format!("FAILED at {}", ps.step.kind()))
                    });
                    let severity = match self.plan.on_failure {
                        PartialFailure::Escalate => Severity::Critical,
                        _ => Severity::High,
                    };
                    if self.plan.on_failure != PartialFailure::ContinueOthers {
                        self.halt.cancel();
                    }
                    self.say(
                        MessageKind::Info,
                        format!("⚠️ {}: step \"{}\" failed: {failure}", rp.region, ps.step),
                    )
                    .await;
                    self.page(
                        &rp.region,
                        format!(
                            "Rollback step failed in {}: {}: {failure}",
                            rp.region, ps.step
                        ),
                        severity,
                    )
                    .await;
                    return RegionEnd::Failed;
                }
                Err(None) => {
                    self.skip_rest(rp, i + 1, "not run: the rollback was cancelled")
                        .await;
                    self.progress(&rp.region, |p| p.finished = Some("cancelled".into()));
                    return RegionEnd::Stopped;
                }
            }
        }
        self.progress(&rp.region, |p| p.finished = Some("done".into()));
        RegionEnd::Succeeded
    }

    /// Runs one step with its journal entries. `Err(None)`: cut off by cancellation;
    /// `Err(Some(text))`: failed.
    async fn run_step(
        &self,
        rp: &RegionPlan,
        ps: &PlannedStep,
    ) -> std::result::Result<(), Option<String>> {
        let region = &rp.region;
        let index = rp.steps.iter().position(|s| s.id == ps.id);
        self.progress(region, |p| p.current = index);
        self.emit(|| ProgressEvent::StepStarted {
            region: region.clone(),
            step: ps.id.clone(),
            description: ps.step.to_string(),
        });
        let earlier = self
            .states
            .lock()
            .expect("lock")
            .pre_state
            .get(&ps.id)
            .cloned();
        let pre_state = match earlier {
            Some(p) => Some(p),
            None => match self.read_pre_state(rp, ps).await {
                Ok(p) => p,
                Err(e) => return Err(Some(self.fail(rp, ps, StepFailure::from(e)).await)),
            },
        };
        // On record before acting: a crash after this line leaves a resumable trace.
        if let Err(e) = self
            .append(JournalEvent::StepStarted {
                step: ps.id.clone(),
                pre_state: pre_state.clone(),
            })
            .await
        {
            let e = Error::failed(
                "journal",
                format!(
                    "cannot record the start of {}: {e}; nothing was done",
                    ps.id
                ),
            );
            return Err(Some(self.fail(rp, ps, e.into()).await));
        }
        if let Some(p) = &pre_state {
            self.states
                .lock()
                .expect("lock")
                .pre_state
                .insert(ps.id.clone(), p.clone());
        }
        let started = tokio::time::Instant::now();
        let result = tokio::select! {
            r = self.exec(rp, ps, pre_state.as_ref()) => Some(r),
            _ = self.control.cancel.cancelled() => None,
        };
        match result {
            Some(Ok(outcome)) => {
                if let Err(e) = self
                    .append(JournalEvent::StepSucceeded {
                        step: ps.id.clone(),
                        outcome: outcome.clone(),
                    })
                    .await
                {
                    // It took effect but is not on record: resuming re-checks it.
                    return Err(Some(format!(
                        "done, but the journal could not record it: {e}"
                    )));
                }
                self.emit(|| ProgressEvent::StepSucceeded {
                    region: region.clone(),
                    step: ps.id.clone(),
                    outcome: self.redact(&outcome.to_string()),
                    elapsed: started.elapsed(),
                });
                self.states
                    .lock()
                    .expect("lock")
                    .succeeded
                    .insert(ps.id.clone(), outcome);
                Ok(())
            }
            Some(Err(failure)) => Err(Some(self.fail(rp, ps, failure).await)),
            None => {
                let reason = "interrupted by cancellation or the deadline: it may or may not have taken effect; resume re-checks it".to_owned();
                let _ = self
                    .append(JournalEvent::StepInterrupted {
                        step: ps.id.clone(),
                        reason: reason.clone(),
                    })
                    .await;
                self.emit(|| ProgressEvent::StepSkipped {
                    region: region.clone(),
                    step: ps.id.clone(),
                    reason,
                });
                Err(None)
            }
        }
    }

    async fn fail(&self, rp: &RegionPlan, ps: &PlannedStep, failure: StepFailure) -> String {
        let text = self.redact(&format!(
            "{} (hint: {})",
            failure.error,
            failure.error.hint()
        ));
        let _ = self
            .append(JournalEvent::StepFailed {
                step: ps.id.clone(),
                kind: failure.error.kind(),
                error: text.clone(),
                detail: failure.detail,
            })
            .await;
        self.emit(|| ProgressEvent::StepFailed {
            region: rp.region.clone(),
            step: ps.id.clone(),
            error: text.clone(),
        });
        text
    }

    fn region_providers(&self, region: &Region) -> Result<&RegionProviders> {
        self.engine.providers.regions.get(region).ok_or_else(|| {
            Error::precondition(
                format!("providers.{region}"),
                "no providers for this region any more",
            )
        })
    }

    fn outcome(&self, id: impl Fn(&Step) -> bool, rp: &RegionPlan) -> Option<StepOutcome> {
        let states = self.states.lock().expect("lock");
        rp.steps
            .iter()
            .filter(|s| id(&s.step))
            .find_map(|s| states.succeeded.get(&s.id).cloned())
    }

    /// Reads what a step will change, before it acts.
    async fn read_pre_state(&self, rp: &RegionPlan, ps: &PlannedStep) -> Result<Option<PreState>> {
        let p = &self.engine.providers;
        let region = &rp.region;
        Ok(match &ps.step {
            Step::ExcludeRegion { record } => {
                let dns = p
                    .dns
                    .as_ref()
                    .ok_or_else(|| Error::precondition("providers.dns", "missing"))?;
                let weights = dns.region_weights(record).await?;
                let w = weights
                    .iter()
                    .find(|w| &w.region == region)
                    .ok_or_else(|| {
                        Error::not_found(dns, format!("a weighted record for {region} in {record}"))
                    })?;
                Some(PreState::RegionWeight(w.weight))
            }
            Step::ShiftTraffic { route, .. } => {
                let t = self
                    .region_providers(region)?
                    .traffic
                    .as_ref()
                    .ok_or_else(|| Error::precondition("providers.traffic", "missing"))?;
                Some(PreState::Weights(t.weights(route).await?))
            }
            Step::PointDns { record, .. } => {
                let dns = p
                    .dns
                    .as_ref()
                    .ok_or_else(|| Error::precondition("providers.dns", "missing"))?;
                Some(PreState::DnsRecord(dns.record(record).await?))
            }
            Step::RollBackSchema { .. } => {
                let m = self
                    .region_providers(region)?
                    .migrator
                    .as_ref()
                    .ok_or_else(|| Error::precondition("providers.migrator", "missing"))?;
                let s = m.status().await?;
                Some(PreState::Schema {
                    version: s.version().map(str::to_owned),
                    applied: s.applied.len(),
                })
            }
            Step::RestoreDatabase { source, from, .. } => {
                let db = self
                    .region_providers(region)?
                    .database
                    .as_ref()
                    .ok_or_else(|| Error::precondition("providers.database", "missing"))?;
                match from {
                    RestoreFrom::LatestSnapshot => {
                        let snap = db
                            .snapshots(source)
                            .await?
                            .into_iter()
                            .find(|s| s.available)
                            .ok_or_else(|| {
                                Error::not_found(db, format!("an available snapshot of {source}"))
                            })?;
                        Some(PreState::Restore {
                            snapshot: Some(snap.id.to_string()),
                            data_as_of: snap.created_at,
                        })
                    }
                    RestoreFrom::Snapshot(id) => {
                        let snap = db
                            .snapshots(source)
                            .await?
                            .into_iter()
                            .find(|s| &s.id == id)
                            .ok_or_else(|| {
                                Error::not_found(db, format!("snapshot {id} of {source}"))
                            })?;
                        Some(PreState::Restore {
                            snapshot: Some(snap.id.to_string()),
                            data_as_of: snap.created_at,
                        })
                    }
                    RestoreFrom::PointInTime(point) => {
                        let window = db.restore_window(source).await?;
                        let at = match point {
                            RestorePoint::Latest => window.latest,
                            RestorePoint::At(t) => {
                                if !window.contains(*t) {
                                    return Err(Error::invalid(
                                        "restore time",
                                        format!(
                                            "{t} is outside the restorable window of {source} ({} to {}); pick a time inside it",
                                            window.earliest, window.latest
                                        ),
                                    ));
                                }
                                *t
                            }
                        };
                        Some(PreState::Restore {
                            snapshot: None,
                            data_as_of: at,
                        })
                    }
                }
            }
            _ => None,
        })
    }

    async fn exec(
        &self,
        rp: &RegionPlan,
        ps: &PlannedStep,
        pre: Option<&PreState>,
    ) -> std::result::Result<StepOutcome, StepFailure> {
        let p = &self.engine.providers;
        let region = &rp.region;
        let rps = self.region_providers(region)?;
        let missing = |what: &str| {
            Error::precondition(
                format!("providers.{what}"),
                format!("no {what} provider for {region}"),
            )
        };
        match &ps.step {
            Step::ExcludeRegion { record } => {
                let dns = p.dns.as_ref().ok_or_else(|| missing("dns"))?;
                let Some(PreState::RegionWeight(previous_weight)) = pre else {
                    return Err(Error::precondition(
                        "pre_state",
                        "the weight before exclusion was not recorded",
                    )
                    .into());
                };
                let change = dns.set_region_weight(record, region, 0).await?;
                dns.wait_in_sync(&change).await?;
                Ok(StepOutcome::Excluded {
                    previous_weight: *previous_weight,
                    change,
                })
            }
            Step::ShiftTraffic { route, stable } => {
                let t = rps.traffic.as_ref().ok_or_else(|| missing("traffic"))?;
                let before = t.target_health(stable).await?;
                if before.healthy.is_empty() {
                    return Err(Error::failed(
                        t,
                        format!("refusing to shift all traffic to {stable}: it has no healthy backend ({before})"),
                    )
                    .into());
                }
                t.shift_all_to(route, stable).await?;
                let weights = t.weights(route).await?;
                if traffic_share(&weights, stable) < 1.0 {
                    return Err(Error::failed(
                        t,
                        format!(
                            "after the shift {stable} gets only part of the traffic: {weights:?}"
                        ),
                    )
                    .into());
                }
                let health = t.target_health(stable).await?;
                let outcome = StepOutcome::TrafficShifted {
                    previous: match pre {
                        Some(PreState::Weights(w)) => w.clone(),
                        _ => Vec::new(),
                    },
                    health: health.clone(),
                };
                if !health.all_healthy() {
                    return Err(StepFailure {
                        error: Error::failed(
                            t,
                            format!(
                                "traffic is on {stable}, but not every backend is healthy: {health}"
                            ),
                        ),
                        detail: Some(outcome),
                    });
                }
                Ok(outcome)
            }
            Step::RetagImage {
                repository,
                source,
                tag,
            } => {
                let reg = p.registry.as_ref().ok_or_else(|| missing("registry"))?;
                let r = reg.retag(repository, source, tag).await?;
                Ok(StepOutcome::Retagged {
                    digest: r.digest,
                    changed: r.changed,
                })
            }
            Step::RollBackDeployment { service, to, .. } => {
                // Always an explicit revision: repeating it is a no-op.
                let change = rps
                    .deployer
                    .roll_back(service, &RollbackTarget::Revision(to.clone()))
                    .await?;
                Ok(StepOutcome::Deployed { change })
            }
            Step::RedeployImage {
                service,
                container,
                image,
            } => {
                let change = rps
                    .deployer
                    .set_image(
                        service,
                        &ImageUpdate {
                            container: container.clone(),
                            image: image.clone(),
                        },
                    )
                    .await?;
                Ok(StepOutcome::Deployed { change })
            }
            Step::WaitStable { service } => {
                let status = rps.deployer.wait_until_stable(service).await?;
                Ok(StepOutcome::Stable { status })
            }
            Step::RollBackSchema { target } => {
                let m = rps.migrator.as_ref().ok_or_else(|| missing("migrator"))?;
                let now = m.status().await?;
                // A resumed step whose rollback already happened must not revert again.
                if let Some(PreState::Schema { version, applied }) = pre
                    && self.started_before.contains(&ps.id)
                    && (now.version() != version.as_deref() || now.applied.len() != *applied)
                {
                    return Ok(StepOutcome::SchemaRolledBack {
                        reverted: vec![format!(
                            "(reverted by the interrupted attempt; {} migration(s) fewer)",
                            applied - now.applied.len().min(*applied)
                        )],
                        version: now.version().map(str::to_owned),
                    });
                }
                let reverted = m.roll_back(target).await?;
                let after = m.status().await?;
                Ok(StepOutcome::SchemaRolledBack {
                    reverted,
                    version: after.version().map(str::to_owned),
                })
            }
            Step::RestoreDatabase { source, target, .. } => {
                let db = rps.database.as_ref().ok_or_else(|| missing("database"))?;
                let Some(PreState::Restore {
                    snapshot,
                    data_as_of,
                }) = pre
                else {
                    return Err(Error::precondition(
                        "pre_state",
                        "the restore source was not resolved",
                    )
                    .into());
                };
                let adopted = match db.instance(target).await {
                    Ok(_) if self.started_before.contains(&ps.id) => true,
                    Ok(_) => {
                        return Err(Error::conflict(
                            db,
                            format!("{target} already exists and was not created by this run; choose a new target identifier (nothing is overwritten)"),
                        )
                        .into());
                    }
                    Err(e) if e.is_not_found() => false,
                    Err(e) => return Err(e.into()),
                };
                if !adopted {
                    match snapshot {
                        Some(id) => db.restore_snapshot(&id.as_str().into(), target).await?,
                        None => {
                            db.restore_to_point_in_time(
                                source,
                                target,
                                &RestorePoint::At(*data_as_of),
                            )
                            .await?
                        }
                    };
                }
                let ready = db.wait_available(target).await?;
                let incident_started_at = self.request.incident.started_at;
                let before_incident = if *data_as_of < incident_started_at {
                    incident_started_at
                        .duration_since(*data_as_of)
                        .unsigned_abs()
                } else {
                    Duration::ZERO
                };
                Ok(StepOutcome::DatabaseRestored {
                    instance: target.clone(),
                    endpoint: ready.endpoint,
                    snapshot: snapshot.clone(),
                    data_loss: DataLossWindow {
                        data_as_of: *data_as_of,
                        incident_started_at,
                        before_incident,
                    },
                    adopted,
                })
            }
            Step::SwitchConnection {
                service,
                database,
                env_var,
                container,
                template_secret,
            } => {
                let template = self.engine.secrets.get(template_secret).ok_or_else(|| {
                    Error::precondition(
                        format!("secrets.{template_secret}"),
                        "the connection-string template was not given to the engine",
                    )
                })?;
                let endpoint = match self.outcome(
                    |s| matches!(s, Step::RestoreDatabase { target, .. } if target == database),
                    rp,
                ) {
                    Some(StepOutcome::DatabaseRestored {
                        endpoint: Some(e), ..
                    }) => e,
                    _ => {
                        let db = rps.database.as_ref().ok_or_else(|| missing("database"))?;
                        db.instance(database).await?.endpoint.ok_or_else(|| {
                            Error::failed(
                                db,
                                format!(
                                    "{database} has no endpoint yet; wait until it is available"
                                ),
                            )
                        })?
                    }
                };
                let value = SecretString::from(
                    template
                        .expose_secret()
                        .replace("{host}", &endpoint.host)
                        .replace("{port}", &endpoint.port.to_string()),
                );
                self.engine.redactor.register(&value);
                let change = rps
                    .deployer
                    .set_env(
                        service,
                        &EnvVar {
                            container: container.clone(),
                            name: env_var.clone(),
                            value,
                        },
                    )
                    .await?;
                Ok(StepOutcome::ConnectionSwitched {
                    database: database.clone(),
                    change,
                })
            }
            Step::PointDns { record, target } => {
                let dns = p.dns.as_ref().ok_or_else(|| missing("dns"))?;
                let change = dns.point_record(record, target).await?;
                dns.wait_in_sync(&change).await?;
                Ok(StepOutcome::DnsPointed {
                    previous: match pre {
                        Some(PreState::DnsRecord(r)) => r.clone(),
                        _ => None,
                    },
                    change,
                })
            }
            Step::Verify { service } => {
                let sref = ServiceRef::new(region.clone(), service.clone());
                let outcome = verify::verify(
                    p,
                    &self.plan.verification,
                    &self.plan.policy,
                    self.engine.clock.as_ref(),
                    &sref,
                )
                .await?;
                if outcome.passed {
                    Ok(StepOutcome::Verified { outcome })
                } else {
                    Err(StepFailure {
                        error: Error::failed(format!("verification of {sref}"), outcome.headline()),
                        detail: Some(StepOutcome::Verified { outcome }),
                    })
                }
            }
            Step::CheckOtherRegions { services } => {
                let (lines, problems) =
                    verify::check_others(p, &self.plan.verification, &self.plan.policy, services)
                        .await?;
                let outcome = StepOutcome::OtherRegionsChecked { regions: lines };
                if problems.is_empty() {
                    Ok(outcome)
                } else {
                    Err(StepFailure {
                        error: Error::failed("other regions", problems.join("; ")),
                        detail: Some(outcome),
                    })
                }
            }
            Step::ReadmitRegion { record } => {
                let dns = p.dns.as_ref().ok_or_else(|| missing("dns"))?;
                let weight = match self.outcome(
                    |s| matches!(s, Step::ExcludeRegion { record: r } if r == record),
                    rp,
                ) {
                    Some(StepOutcome::Excluded {
                        previous_weight, ..
                    }) => previous_weight,
                    _ => {
                        return Err(Error::precondition(
                            "readmit",
                            format!("{region} was not excluded by this run, so there is no weight to restore"),
                        )
                        .into());
                    }
                };
                let change = dns.set_region_weight(record, region, weight).await?;
                dns.wait_in_sync(&change).await?;
                Ok(StepOutcome::Readmitted { weight })
            }
        }
    }
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

/// The run future must be `Send`, so callers can spawn it.
#[allow(dead_code)]
fn assert_execute_is_send(e: &Engine, p: RollbackPlan, r: RollbackRequest) -> impl Send + '_ {
    e.execute(p, r)
}
