//! One run of a plan: regions as tasks, steps journalled before and after they act,
//! status updates, lease renewal in its own task, the deadline, the final report.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::api::Inner;
use super::checklist::RollbackRequest;
use super::comms::{self, RegionProgress};
use super::journal::{FenceToken, JournalEntry, JournalEvent, StepStates};
use super::plan::{PlannedStep, RegionPlan, RollbackPlan};
use super::progress::{ProgressEvent, RunControl};
use super::report::{ReportBuilder, RunReport, RunStatus};
use super::spec::PartialFailure;
use super::steps::{self, StepCtx, StepFailure};
use crate::model::{Region, ServiceRef, Severity};
use crate::provider::{Lease, LockKey, MessageKind};
use crate::redact::Redactor;
use crate::{Error, Result};

mod impact;
mod tell;

/// Where a region stands, cheaply: put into words only for status updates.
#[derive(Debug, Clone, Default)]
struct Progress {
    done: usize,
    current: Option<usize>,
    finished: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegionEnd {
    Succeeded,
    Failed,
    Stopped,
}

/// Why a step did not succeed.
enum StepEnd {
    /// It failed; the text is redacted.
    Failed(String),
    /// Cancellation cut it off.
    Cancelled,
}

/// One execution (or resumption) of a plan.
pub(super) struct Run {
    engine: Arc<Inner>,
    plan: Arc<RollbackPlan>,
    request: Arc<RollbackRequest>,
    /// The last seq written. Held across the journal write, so entries reach the
    /// journal in seq order (a journal refuses a seq that is not after the last).
    seq: tokio::sync::Mutex<u64>,
    states: Mutex<StepStates>,
    board: Mutex<BTreeMap<Region, Progress>>,
    /// Stops the other regions at their next step boundary (partial-failure policy).
    halt: CancellationToken,
    /// Set when a lease is lost: every region stops at its next step boundary.
    lease_lost: CancellationToken,
    control: RunControl,
    started_at: Timestamp,
    /// The report, built from each entry as it is journalled.
    report: Mutex<Option<ReportBuilder>>,
    /// The leases held, renewed by their own task; their tokens travel with the run.
    leases: Mutex<Vec<Lease>>,
    /// Journal writes that failed: the run cannot be reported as recorded.
    journal_errors: Mutex<Vec<String>>,
    /// Who is told what, resolved against the providers once.
    routing: super::routing::Routing,
}

impl Run {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        engine: Arc<Inner>,
        plan: Arc<RollbackPlan>,
        request: Arc<RollbackRequest>,
        states: StepStates,
        seq: u64,
        control: RunControl,
        report: Option<ReportBuilder>,
        leases: Vec<Lease>,
    ) -> Self {
        let board = plan
            .regions
            .iter()
            .map(|r| (r.region.clone(), Progress::default()))
            .collect();
        let comms = &plan.comms;
        let routing =
            super::routing::Routing::resolve(&comms.contacts, &comms.routes, &engine.providers);
        Run {
            routing,
            started_at: engine.clock.now(),
            engine,
            plan,
            request,
            seq: tokio::sync::Mutex::new(seq),
            states: Mutex::new(states),
            board: Mutex::new(board),
            halt: CancellationToken::new(),
            lease_lost: CancellationToken::new(),
            control,
            report: Mutex::new(report),
            leases: Mutex::new(leases),
            journal_errors: Mutex::new(Vec::new()),
        }
    }

    /// Appends to the journal, redacted with the engine's secrets, then to the live
    /// report: the report only ever shows what the journal holds. A failure is kept
    /// and makes the run's status [`RunStatus::JournalFailed`].
    pub(super) async fn append(&self, event: JournalEvent) -> Result<()> {
        let mut seq = self.seq.lock().await;
        let fence = self.fence_for(&event);
        let entry = JournalEntry {
            run_id: self.plan.run_id.clone(),
            seq: *seq + 1,
            at: self.engine.clock.now(),
            event,
            fence,
        };
        let result: Result<JournalEntry> = async {
            let entry = redact_entry(&self.engine.redactor, entry)?;
            self.engine.journal.append(&entry).await?;
            Ok(entry)
        }
        .await;
        let entry = match result {
            Ok(e) => e,
            Err(e) => {
                let text = self.redact(&e.to_string());
                tracing::error!(error = %text, "could not write to the journal");
                self.journal_errors.lock().expect("lock").push(text);
                return Err(e);
            }
        };
        *seq = entry.seq;
        let mut report = self.report.lock().expect("lock");
        match report.as_mut() {
            Some(b) => b.apply(&entry),
            None => *report = Some(ReportBuilder::start(&entry)?),
        }
        Ok(())
    }

    /// The lease tokens an entry carries: a step's entries carry its region's lease
    /// (so each entry stays small however many regions run), run-wide entries every
    /// lease.
    fn fence_for(&self, event: &JournalEvent) -> Vec<FenceToken> {
        let step = match event {
            JournalEvent::StepStarted { step, .. }
            | JournalEvent::StepSucceeded { step, .. }
            | JournalEvent::StepFailed { step, .. }
            | JournalEvent::StepInterrupted { step, .. }
            | JournalEvent::StepSkipped { step, .. } => Some(step),
            _ => None,
        };
        let key = step.and_then(|id| {
            let region = id.as_str().split('/').next()?;
            let rp = self
                .plan
                .regions
                .iter()
                .find(|r| r.region.as_str() == region)?;
            Some(LockKey::for_service(&ServiceRef::new(
                rp.region.clone(),
                rp.service.clone(),
            )))
        });
        self.leases
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| key.as_ref().is_none_or(|k| *k == l.key))
            .map(|l| FenceToken {
                lock: l.key.clone(),
                token: l.token.clone(),
            })
            .collect()
    }

    /// Appends where the caller goes on either way; the failure is kept by `append`
    /// and decides the run's status.
    async fn record(&self, event: JournalEvent) {
        if self.append(event).await.is_err() {
            tracing::warn!("the run goes on, but its journal is incomplete");
        }
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

    /// Runs every region, then releases the leases, whatever happened.
    pub(super) async fn go(self: Arc<Self>, resumed: bool) -> Result<RunReport> {
        let result = self.clone().run_all(resumed).await;
        self.release_leases().await;
        result
    }

    pub(super) async fn release_leases(&self) {
        let leases = std::mem::take(&mut *self.leases.lock().expect("lock"));
        for l in &leases {
            if let Err(e) = self.engine.lock.release(l).await {
                tracing::warn!(lock = %l.key, error = %e, "could not release the rollback lock; it expires on its own");
            }
        }
    }

    /// Runs every region, with status updates, lease renewal and the deadline alongside.
    async fn run_all(self: Arc<Self>, resumed: bool) -> Result<RunReport> {
        let run_id = self.plan.run_id.clone();
        self.emit(|| ProgressEvent::RunStarted {
            run_id: run_id.clone(),
            resumed,
        });
        let estimate = self.plan.estimate();
        let regions: Vec<Region> = self.plan.regions.iter().map(|r| r.region.clone()).collect();
        if resumed {
            self.continue_threads();
        }
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
        // The announcement and the change event go out while the first steps start:
        // a slow chat API must not delay the rollback itself.
        let change = format!(
            "Rollback {} of {} ({}): {}",
            if resumed { "resumed" } else { "started" },
            regions
                .iter()
                .map(Region::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            self.request.incident.id,
            self.request.incident.summary
        );
        let announce = async {
            tokio::join!(
                self.say(MessageKind::Announcement, text),
                self.change_event(change)
            )
        };

        // Renewal in a task of its own, so a slow status update never delays it;
        // aborted when the run ends.
        let renewal = AbortOnDrop(tokio::spawn(self.clone().renew_leases()));

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
            never = self.background(estimate) => match never {},
        };
        drop(renewal);

        let cancelled = self.control.cancel.is_cancelled();
        let failed = ends.iter().filter(|e| **e == RegionEnd::Failed).count();
        let mut status = if ends.iter().all(|e| *e == RegionEnd::Succeeded) {
            RunStatus::Succeeded
        } else if cancelled {
            RunStatus::Cancelled
        } else if failed == ends.len() {
            RunStatus::Failed
        } else if (self.halt.is_cancelled() || self.lease_lost.is_cancelled())
            && ends.contains(&RegionEnd::Stopped)
        {
            RunStatus::Halted
        } else {
            RunStatus::PartiallyFailed
        };
        if !self.journal_errors.lock().expect("lock").is_empty() {
            status = RunStatus::JournalFailed;
        }
        if self.lease_lost.is_cancelled() && status != RunStatus::Succeeded {
            // Nobody else knows the run stopped: no region failed to say so.
            self.run_halted_by_lost_lease().await;
        }
        self.measure_impact().await;
        self.record(JournalEvent::RunFinished { status }).await;
        let resolution = self.with_report(comms::resolution)?;
        self.say(MessageKind::Resolution, resolution).await;
        if status == RunStatus::Succeeded {
            // Every step succeeded, verification included: the pages are answered.
            self.resolve_pages().await;
        }
        self.change_event(format!(
            "Rollback finished ({status}) for {}",
            self.request.incident.id
        ))
        .await;
        self.email_stakeholders().await;
        self.emit(|| ProgressEvent::RunFinished { status });
        let builder = self.report.lock().expect("lock").take();
        let mut report = builder
            .map(ReportBuilder::finish)
            .ok_or_else(|| Error::failed("journal", "the run was never recorded as started"))?;
        let errors = self.journal_errors.lock().expect("lock").clone();
        if !errors.is_empty() {
            // The journal could not say so itself.
            report.status = RunStatus::JournalFailed;
            report.journal_errors = errors;
        }
        Ok(report)
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

    /// Status updates and the deadline. Never returns.
    async fn background(&self, estimate: Duration) -> std::convert::Infallible {
        let status_every = self.plan.comms.status_interval.max(Duration::from_secs(1));
        let start = tokio::time::Instant::now();
        let mut status = tokio::time::interval_at(start + status_every, status_every);
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
        // The escalation ladder, in a future of its own: one rung per `escalate_after`
        // since the incident began, while the run goes on.
        let ladder = self.ladder();
        tokio::pin!(ladder);
        let mut ladder_done = false;
        loop {
            tokio::select! {
                _ = &mut ladder, if !ladder_done => { ladder_done = true; }
                _ = status.tick() => {
                    let board = self.status_board();
                    let now = self.engine.clock.now();
                    let re = self.with_report(|r| comms::reestimate(r, now)).ok().flatten();
                    let text = comms::status_update(now, self.started_at, estimate, re, &board);
                    self.say(MessageKind::StatusUpdate, text).await;
                }
                _ = &mut deadline, if !deadline_done => { deadline_done = true; }
            }
        }
    }

    /// Rung k (from 0) of `routes.unresolved` is due `(k + 1) × escalate_after` after
    /// the incident began; a rung whose contact was already told (before a resume)
    /// is not told again; overdue rungs are told at once, in order.
    async fn ladder(&self) {
        let every = self.plan.comms.escalate_after.max(Duration::from_secs(60));
        let rungs = self
            .routing
            .targets(super::routing::CommsEvent::Unresolved)
            .len();
        for rung in 0..rungs {
            if self.rung_told(rung) {
                continue;
            }
            let after = every * (rung as u32 + 1);
            let due = self.request.incident.started_at.checked_add(
                jiff::SignedDuration::try_from(after).unwrap_or(jiff::SignedDuration::MAX),
            );
            let wait = due.map_or(Duration::ZERO, |due| {
                due.duration_since(self.engine.clock.now())
                    .try_into()
                    .unwrap_or(Duration::ZERO)
            });
            tokio::time::sleep(wait).await;
            self.escalate_unresolved(rung, after.as_secs() / 60).await;
        }
    }

    /// Whether rung `rung`'s contact has been told already (journalled, no error).
    fn rung_told(&self, rung: usize) -> bool {
        let Some(t) = self
            .routing
            .targets(super::routing::CommsEvent::Unresolved)
            .get(rung)
        else {
            return true;
        };
        let key = format!(
            "meshos-rollback/{}/unresolved/{}",
            self.request.incident.id, t.name
        );
        self.with_report(|r| {
            r.notifications.iter().any(|n| {
                n.to == t.name
                    && n.error.is_none()
                    && (n.dedup_key.as_deref() == Some(key.as_str())
                        || (n.what == "escalation" && n.dedup_key.is_none()))
            })
        })
        .unwrap_or(false)
    }

    /// Renews every lease each third of its ttl. A transient error is retried until
    /// the lease would really expire; a lost lease stops the run at the next step
    /// boundary, with a journal entry that says so.
    async fn renew_leases(self: Arc<Self>) {
        let ttl = self.engine.lock_ttl;
        let every = ttl / 3;
        let retry = Duration::from_secs(1).min(every);
        let mut wait = every;
        loop {
            tokio::time::sleep(wait).await;
            wait = every;
            let leases = self.leases.lock().expect("lock").clone();
            for (i, lease) in leases.iter().enumerate() {
                match self.engine.lock.renew(lease, ttl).await {
                    Ok(l) => {
                        if let Some(slot) = self.leases.lock().expect("lock").get_mut(i) {
                            *slot = l;
                        }
                    }
                    Err(e) => {
                        let error = self.redact(&e.to_string());
                        let margin = jiff::SignedDuration::try_from(retry * 2)
                            .unwrap_or(jiff::SignedDuration::ZERO);
                        let time_left = lease
                            .expires_at
                            .checked_sub(margin)
                            .is_ok_and(|t| self.engine.clock.now() < t);
                        if e.is_retryable() && time_left {
                            tracing::warn!(lock = %lease.key, %error, "could not renew the rollback lock; retrying before it expires");
                            wait = retry;
                            continue;
                        }
                        tracing::error!(lock = %lease.key, %error, "lost the rollback lock: stopping at the next step");
                        self.lease_lost.cancel();
                        self.record(JournalEvent::LeaseLost {
                            lock: lease.key.clone(),
                            error,
                        })
                        .await;
                        return;
                    }
                }
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

    fn succeeded(&self, ps: &PlannedStep) -> bool {
        self.states
            .lock()
            .expect("lock")
            .succeeded
            .contains_key(&ps.id)
    }

    async fn skip_rest(&self, rp: &RegionPlan, from: usize, reason: &str) {
        for ps in &rp.steps[from..] {
            if self.succeeded(ps) {
                continue;
            }
            self.record(JournalEvent::StepSkipped {
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

    /// Why the region must stop before its next step, if it must.
    fn stop_reason(&self) -> Option<(&'static str, &'static str)> {
        if self.control.cancel.is_cancelled() {
            Some(("not run: the rollback was cancelled", "cancelled"))
        } else if self.lease_lost.is_cancelled() {
            Some((
                "not run: the rollback lock was lost (another run may hold it); check, then resume",
                "stopped: lock lost",
            ))
        } else if self.halt.is_cancelled() {
            Some((
                "not run: halted after a failure in another region",
                "halted",
            ))
        } else {
            None
        }
    }

    async fn run_region(&self, rp: &RegionPlan) -> RegionEnd {
        for (i, ps) in rp.steps.iter().enumerate() {
            if self.succeeded(ps) {
                self.progress(&rp.region, |p| p.done += 1);
                continue;
            }
            if let Some((reason, finished)) = self.stop_reason() {
                self.skip_rest(rp, i, reason).await;
                self.progress(&rp.region, |p| p.finished = Some(finished.into()));
                return RegionEnd::Stopped;
            }
            let span = tracing::info_span!("step", step = %ps.id, provider = %ps.provider);
            match self.run_step(rp, ps).instrument(span).await {
                Ok(()) => self.progress(&rp.region, |p| {
                    p.done += 1;
                    p.current = None;
                }),
                Err(StepEnd::Failed(failure)) => {
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
                    self.region_failed(
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
                Err(StepEnd::Cancelled) => {
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

    fn ctx<'a>(&'a self, rp: &'a RegionPlan, ps: &'a PlannedStep) -> StepCtx<'a> {
        let states = self.states.lock().expect("lock");
        let done = rp
            .steps
            .iter()
            .filter_map(|s| {
                states
                    .succeeded
                    .get(&s.id)
                    .map(|o| (s.step.clone(), o.clone()))
            })
            .collect();
        StepCtx {
            providers: &self.engine.providers,
            region: &rp.region,
            plan: &self.plan,
            request: &self.request,
            secrets: &self.engine.secrets,
            redactor: &self.engine.redactor,
            clock: self.engine.clock.as_ref(),
            run_id: &self.plan.run_id,
            step_id: &ps.id,
            done,
        }
    }

    /// Runs one step with its journal entries, within its deadline.
    async fn run_step(
        &self,
        rp: &RegionPlan,
        ps: &PlannedStep,
    ) -> std::result::Result<(), StepEnd> {
        let region = &rp.region;
        let index = rp.steps.iter().position(|s| s.id == ps.id);
        self.progress(region, |p| p.current = index);
        self.emit(|| ProgressEvent::StepStarted {
            region: region.clone(),
            step: ps.id.clone(),
            description: ps.step.to_string(),
        });
        let ctx = self.ctx(rp, ps);
        // The first attempt's reading is the state before any attempt.
        let earlier = self
            .states
            .lock()
            .expect("lock")
            .pre_state
            .get(&ps.id)
            .cloned();
        let pre_state = match earlier {
            Some(p) => Some(p),
            None => match steps::pre_state(&ctx, &ps.step).await {
                Ok(p) => p,
                Err(e) => return Err(self.fail(rp, ps, StepFailure::from(e)).await),
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
            return Err(self.fail(rp, ps, e.into()).await);
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
            r = tokio::time::timeout(ps.deadline, steps::apply(&ctx, &ps.step, pre_state.as_ref())) => Some(r),
            _ = self.control.cancel.cancelled() => None,
        };
        match result {
            Some(Ok(Ok(outcome))) => {
                if let Err(e) = self
                    .append(JournalEvent::StepSucceeded {
                        step: ps.id.clone(),
                        outcome: outcome.clone(),
                    })
                    .await
                {
                    // It took effect but is not on record: resuming re-checks it.
                    return Err(StepEnd::Failed(self.redact(&format!(
                        "done, but the journal could not record it: {e}"
                    ))));
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
            Some(Ok(Err(failure))) => Err(self.fail(rp, ps, failure).await),
            Some(Err(_elapsed)) => {
                let e = Error::Timeout {
                    operation: format!(
                        "step {} ({}); it may still complete in the backend: check, then resume",
                        ps.id, ps.provider
                    ),
                    after: ps.deadline,
                };
                Err(self.fail(rp, ps, e.into()).await)
            }
            None => {
                let reason = "interrupted by cancellation or the deadline: it may or may not have taken effect; resume re-checks it".to_owned();
                self.record(JournalEvent::StepInterrupted {
                    step: ps.id.clone(),
                    reason: reason.clone(),
                })
                .await;
                self.emit(|| ProgressEvent::StepSkipped {
                    region: region.clone(),
                    step: ps.id.clone(),
                    reason,
                });
                Err(StepEnd::Cancelled)
            }
        }
    }

    async fn fail(&self, rp: &RegionPlan, ps: &PlannedStep, failure: StepFailure) -> StepEnd {
        let text = self.redact(&format!(
            "{} (hint: {})",
            failure.error,
            failure.error.hint()
        ));
        let reports = match &failure.detail {
            Some(super::journal::StepOutcome::Verified { outcome }) => outcome.customer_reports,
            _ => None,
        };
        self.record(JournalEvent::StepFailed {
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
        let limit = self
            .plan
            .policy()
            .matrix
            .settings()
            .customer_reports_investigate_above;
        if let Some(n) = reports.filter(|n| *n > limit) {
            self.customers_reporting(&rp.region, n, limit).await;
        }
        StepEnd::Failed(text)
    }
}

/// Masks the engine's secrets in every string of an entry (outcomes, details, the
/// plan and the request), so nothing secret is ever written to the journal.
fn redact_entry(redactor: &Redactor, entry: JournalEntry) -> Result<JournalEntry> {
    fn walk(r: &Redactor, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                let masked = r.redact(s);
                if masked != *s {
                    *s = masked;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| walk(r, v)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|v| walk(r, v)),
            _ => {}
        }
    }
    let encode = |e: serde_json::Error| Error::Failed {
        provider: "journal".into(),
        message: format!("cannot redact an entry: {e}"),
        source: Some(Box::new(e)),
    };
    // The event holds every text; ids, times and lease tokens need no masking. Most
    // entries hold no secret: one pass over their JSON says so, and only an entry
    // that has one is taken apart string by string.
    // (Only without escapes: a secret holding a quote or a backslash is escaped in
    // JSON text and is found only in the strings themselves.)
    let text = serde_json::to_string(&entry.event).map_err(encode)?;
    if !text.contains('\\') && redactor.redact(&text) == text {
        return Ok(entry);
    }
    let mut v = serde_json::to_value(&entry.event).map_err(encode)?;
    walk(redactor, &mut v);
    Ok(JournalEntry {
        event: serde_json::from_value(v).map_err(encode)?,
        ..entry
    })
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
