//! What really happened, rebuilt from the journal: per-step results, the timeline, the
//! incident report, the stakeholder e-mail and the messages (playbook § Communication).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::checklist::{GateRecord, RollbackRequest, TimelineEntry};
use super::journal::{JournalEntry, JournalEvent, StepOutcome};
use super::plan::{RollbackPlan, RunId, Step, StepId, human_duration};
use crate::model::{Region, ServiceId, Versions};
use crate::provider::MessageKind;
use crate::{Error, Result};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every region rolled back and verified.
    Succeeded,
    /// Some regions succeeded, some failed.
    PartiallyFailed,
    /// Every region failed.
    Failed,
    /// A failure halted the other regions.
    Halted,
    /// Cancelled or past its deadline.
    Cancelled,
    /// No end on record: still running, or the process died (resume it).
    Incomplete,
    /// The journal could not record everything: what was done is not known to be on
    /// record. Check the state by hand, then resume.
    JournalFailed,
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::PartiallyFailed => "partially failed",
            RunStatus::Failed => "failed",
            RunStatus::Halted => "halted",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Incomplete => "incomplete",
            RunStatus::JournalFailed => "journal write failed",
        })
    }
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started.
    NotStarted,
    /// Started, no outcome on record.
    Started,
    /// Done.
    Succeeded,
    /// Failed.
    Failed,
    /// Cut off by cancellation or a deadline.
    Interrupted,
    /// Not run (an earlier step failed, or the run was halted).
    Skipped,
}

/// One step as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Its id.
    pub id: StepId,
    /// What it does.
    pub step: Step,
    /// Where it stands.
    pub status: StepStatus,
    /// When it (last) started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// Times it was started (more than one after a resume).
    pub attempts: u32,
    /// The outcome, when it succeeded (or what a failed step found).
    pub outcome: Option<StepOutcome>,
    /// The error or skip reason.
    pub note: Option<String>,
}

/// How a region ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionStatus {
    /// Every step succeeded.
    Succeeded,
    /// A step failed.
    Failed,
    /// Stopped before finishing, without a failure of its own.
    Stopped,
    /// Not finished on record.
    Incomplete,
}

/// One region as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionReport {
    /// The region.
    pub region: Region,
    /// The service.
    pub service: ServiceId,
    /// The versions.
    pub versions: Versions,
    /// How it ended.
    pub status: RegionStatus,
    /// Its steps.
    pub steps: Vec<StepReport>,
}

impl RegionReport {
    /// When the rollback itself (before verification) completed.
    pub fn rolled_back_at(&self) -> Option<Timestamp> {
        let mut last = None;
        for s in &self.steps {
            if matches!(
                s.step,
                Step::Verify { .. } | Step::CheckOtherRegions { .. } | Step::ReadmitRegion { .. }
            ) {
                continue;
            }
            if s.status != StepStatus::Succeeded {
                return None;
            }
            last = last.max(s.finished_at);
        }
        last
    }

    /// When verification passed.
    pub fn verified_at(&self) -> Option<Timestamp> {
        self.steps
            .iter()
            .find(|s| matches!(s.step, Step::Verify { .. }) && s.status == StepStatus::Succeeded)
            .and_then(|s| s.finished_at)
    }
}

/// A run as the journal records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The run.
    pub run_id: RunId,
    /// How it ended.
    pub status: RunStatus,
    /// The plan.
    pub plan: Arc<RollbackPlan>,
    /// The request (incident, trigger, prior events).
    pub request: Arc<RollbackRequest>,
    /// What the gate checked.
    pub gate: Arc<GateRecord>,
    /// When the run started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// Per region.
    pub regions: Vec<RegionReport>,
    /// Messages sent, with when.
    pub messages: Vec<(Timestamp, MessageKind, String)>,
    /// Pages, with when.
    pub escalations: Vec<(Timestamp, String)>,
    /// How often the run was resumed.
    pub resumes: u32,
    /// Pages that could not be sent, with when.
    #[serde(default)]
    pub failed_escalations: Vec<(Timestamp, String)>,
    /// Leases lost during the run, with when.
    #[serde(default)]
    pub leases_lost: Vec<(Timestamp, String)>,
    /// Journal writes that failed (only in the report the run itself returns: the
    /// journal could not hold them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journal_errors: Vec<String>,
    /// Who was told what, and when: every message, page, resolve and change event,
    /// sent or failed.
    #[serde(default)]
    pub notifications: Vec<Notification>,
    /// Each contact's thread for the incident, from its announcement.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub threads: BTreeMap<String, String>,
    /// The customer impact measured from data, when the checklist gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_impact: Option<super::checklist::CustomerImpact>,
}

/// One thing told to one contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// When.
    pub at: Timestamp,
    /// The contact (`incident-channel`, `on-call`, `eng-manager`).
    pub to: String,
    /// What: `announcement`, `page`, `page resolved`, `change event`, ….
    pub what: String,
    /// The page's dedup key, for pages and their resolves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// Why it did not reach them, if it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunReport {
    /// The customer impact: as the checklist assessed it, else as measured.
    pub fn customer_impact(&self) -> Option<&super::checklist::CustomerImpact> {
        self.gate
            .customer_impact
            .as_ref()
            .or(self.measured_impact.as_ref())
    }

    /// The pages this run opened and has not resolved, as (contact, dedup key).
    pub fn open_pages(&self) -> Vec<(String, String)> {
        let mut open: Vec<(String, String)> = Vec::new();
        for n in &self.notifications {
            let (Some(key), None) = (&n.dedup_key, &n.error) else {
                continue;
            };
            let pair = (n.to.clone(), key.clone());
            match n.what.as_str() {
                "page" if !open.contains(&pair) => open.push(pair),
                "page resolved" => open.retain(|p| *p != pair),
                _ => {}
            }
        }
        open
    }
}

impl RunReport {
    /// Rebuilds the report from a run's journal entries.
    pub fn from_journal(entries: &[JournalEntry]) -> Result<Self> {
        let first = entries
            .first()
            .ok_or_else(|| Error::invalid("journal", "no entries: unknown run"))?;
        let mut builder = ReportBuilder::start(first)?;
        for e in &entries[1..] {
            builder.apply(e);
        }
        Ok(builder.finish())
    }

    /// The region's report.
    pub fn region(&self, region: &Region) -> Option<&RegionReport> {
        self.regions.iter().find(|r| &r.region == region)
    }

    /// When the incident ended: the last verification that passed, else the run's end.
    pub fn resolved_at(&self) -> Option<Timestamp> {
        if self.status == RunStatus::Succeeded {
            self.regions
                .iter()
                .filter_map(RegionReport::verified_at)
                .max()
                .or(self.finished_at)
        } else {
            None
        }
    }

    /// The incident timeline: the events before the rollback, then what the engine did,
    /// at the times the journal recorded.
    pub fn timeline(&self) -> Vec<TimelineEntry> {
        let mut t: Vec<TimelineEntry> = self.request.prior_events.clone();
        let how = match (&self.gate.approval, &self.gate.reason) {
            (Some(a), _) => format!(
                "Rollback initiated (manual, approved by {} as {})",
                a.by, a.role
            ),
            (None, Some(_)) => "Rollback initiated (automatic)".to_owned(),
            _ => "Rollback initiated".to_owned(),
        };
        t.push(TimelineEntry::new(self.started_at, how));
        let many = self.regions.len() > 1;
        let suffix = |r: &RegionReport| {
            if many {
                format!(" in {}", r.region)
            } else {
                String::new()
            }
        };
        for r in &self.regions {
            if let Some(at) = r.rolled_back_at() {
                t.push(TimelineEntry::new(
                    at,
                    format!("Rollback completed{}", suffix(r)),
                ));
            }
            for s in &r.steps {
                match (&s.step, s.status) {
                    (Step::Verify { .. }, StepStatus::Succeeded) => {
                        t.push(TimelineEntry::new(
                            s.finished_at.unwrap_or(self.started_at),
                            format!("Health checks passing{}", suffix(r)),
                        ));
                    }
                    (_, StepStatus::Failed) => t.push(TimelineEntry::new(
                        s.finished_at.unwrap_or(self.started_at),
                        format!(
                            "Step failed{}: {} ({})",
                            suffix(r),
                            s.step,
                            s.note.as_deref().unwrap_or("")
                        ),
                    )),
                    _ => {}
                }
            }
        }
        let mut pages = self.escalations.iter();
        for n in &self.notifications {
            // Status updates every two minutes would drown the timeline; they are in
            // `messages`.
            // Change events are on the service's own timeline already.
            let line = match (n.what.as_str(), &n.error) {
                ("status update" | "change event", _) => continue,
                ("page", None) => {
                    let summary = pages.next().map_or("", |(_, s)| s.as_str());
                    format!("Escalated to {}: {summary}", n.to)
                }
                (what, None) => format!("{} sent to {}", capitalised(what), n.to),
                (what, Some(e)) => format!("{} to {} FAILED: {e}", capitalised(what), n.to),
            };
            t.push(TimelineEntry::new(n.at, line));
        }
        if let Some(at) = self.finished_at
            && self.status != RunStatus::Succeeded
        {
            t.push(TimelineEntry::new(
                at,
                format!("Rollback ended: {}", self.status),
            ));
        }
        t.sort_by_key(|e| e.at);
        t
    }

    fn target_versions(&self) -> String {
        let mut by_version: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for r in &self.regions {
            if let Some(v) = &r.versions.target {
                by_version
                    .entry(v.clone())
                    .or_default()
                    .push(r.region.as_str());
            }
        }
        match by_version.len() {
            0 => "the previous stable state".to_owned(),
            1 => by_version.into_keys().next().expect("one"),
            _ => by_version
                .into_iter()
                .map(|(v, rs)| format!("{v} ({})", rs.join(", ")))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The Resolution section's text.
    pub fn resolution(&self) -> String {
        let procedure = if self.gate.kind == "automatic" {
            "automated"
        } else {
            "manual"
        };
        let mut text = match self.status {
            RunStatus::Succeeded => format!(
                "Rolled back to {} using {procedure} rollback procedure.",
                self.target_versions()
            ),
            _ => format!(
                "Rollback to {} using {procedure} rollback procedure did not complete ({}).",
                self.target_versions(),
                self.status
            ),
        };
        for r in &self.regions {
            for s in &r.steps {
                if let Some(StepOutcome::DatabaseRestored {
                    instance,
                    data_loss,
                    ..
                }) = &s.outcome
                    && s.status == StepStatus::Succeeded
                {
                    text.push_str(&format!(
                        "\n\nDatabase restored into new instance {instance} in {}: {data_loss}.",
                        r.region
                    ));
                }
                if let Some(StepOutcome::ConnectionSwitched { database, .. }) = &s.outcome {
                    text.push_str(&format!(" The connection string now points at {database}."));
                }
                if s.status == StepStatus::Failed {
                    text.push_str(&format!(
                        "\n\n{}: step \"{}\" failed: {}",
                        r.region,
                        s.step,
                        s.note.as_deref().unwrap_or("")
                    ));
                }
            }
        }
        if self.status != RunStatus::Succeeded {
            text.push_str(&format!(
                "\n\nThe run journal {} records what was and was not done; resume it after fixing the cause.",
                self.run_id
            ));
        }
        text
    }

    /// The incident report in the playbook's template, filled from what really happened.
    pub fn incident_report(&self) -> String {
        let i = &self.request.incident;
        let regions: Vec<&str> = i.regions.iter().map(Region::as_str).collect();
        // Not resolved means ongoing, whatever the run did.
        let duration = match self.resolved_at() {
            Some(end) => format!(
                "{} - {} ({})",
                hhmm(i.started_at),
                hhmm(end),
                minutes(minute_of(end) - minute_of(i.started_at))
            ),
            None => format!("{} - ongoing", hhmm(i.started_at)),
        };
        let impact = self
            .customer_impact()
            .map_or_else(|| "Not yet assessed".to_owned(), |c| c.to_string());
        let mut s = String::new();
        s.push_str("## Incident Summary\n\n");
        s.push_str(&format!("- **Incident ID**: {}\n", i.id));
        s.push_str(&format!("- **Severity**: {}\n", i.severity));
        s.push_str(&format!(
            "- **Affected Region(s)**: {}\n",
            regions.join(", ")
        ));
        s.push_str(&format!("- **Duration**: {duration}\n"));
        s.push_str(&format!("- **Customer Impact**: {impact}\n\n"));
        s.push_str("## Timeline\n\n");
        for e in self.timeline() {
            s.push_str(&format!("- {}: {}\n", hhmm(e.at), e.text));
        }
        s.push_str("\n## Root Cause\n\n[To be completed after investigation]\n\n");
        s.push_str("## Resolution\n\n");
        s.push_str(&self.resolution());
        s.push_str("\n\n## Follow-up Actions\n\n");
        for item in [
            "Complete root cause analysis",
            "Fix identified bug",
            "Add additional test coverage",
            "Update deployment procedures",
            "Schedule post-mortem meeting",
        ] {
            s.push_str(&format!("- [ ] {item}\n"));
        }
        s
    }

    /// The stakeholder e-mail in the playbook's template; honest about a rollback that
    /// did not (yet) resolve the incident.
    pub fn stakeholder_email(&self) -> String {
        let i = &self.request.incident;
        let comms = &self.plan.comms;
        let regions: Vec<&str> = i.regions.iter().map(Region::as_str).collect();
        let (region_word, region_list) = if regions.len() == 1 {
            ("Region", regions[0].to_owned())
        } else {
            ("Regions", regions.join(", "))
        };
        let impact = self.customer_impact().map_or_else(
            || "We are still assessing the impact on customers.".to_owned(),
            |c| c.for_email(),
        );
        let where_ = if regions.len() == 1 {
            format!("the {} region", regions[0])
        } else {
            format!("the {} regions", regions.join(", "))
        };
        match self.resolved_at() {
            Some(end) => format!(
                "Subject: [RESOLVED] Service Incident - {region_word} {region_list}\n\n\
                 We experienced a service disruption in {where_} from {}-{} UTC.\n\n\
                 Impact: {impact}\n\n\
                 Resolution: We rolled back to the previous stable version and all systems are now operating normally.\n\n\
                 We are conducting a thorough investigation and will provide a detailed post-mortem within {}.\n\n\
                 If you experienced any issues, please contact {}.\n",
                hm(i.started_at),
                hm(end),
                comms.postmortem_within,
                comms.support_contact
            ),
            None => format!(
                "Subject: [ONGOING] Service Incident - {region_word} {region_list}\n\n\
                 We are experiencing a service disruption in {where_} since {} UTC.\n\n\
                 Impact: {impact}\n\n\
                 Status: We are rolling back to the previous stable version; the rollback has not yet restored normal operation and our engineers are working on it.\n\n\
                 We will send an update as soon as service is restored, and a detailed post-mortem within {}.\n\n\
                 If you experienced any issues, please contact {}.\n",
                hm(i.started_at),
                comms.postmortem_within,
                comms.support_contact
            ),
        }
    }
}

impl fmt::Display for RunReport {
    /// What was and was not done, region by region.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Run {}: {}", self.run_id, self.status)?;
        for r in &self.regions {
            writeln!(f, "{} ({}): {:?}", r.region, r.service, r.status)?;
            for s in &r.steps {
                let mark = match s.status {
                    StepStatus::Succeeded => "done   ",
                    StepStatus::Failed => "FAILED ",
                    StepStatus::Interrupted => "CUT    ",
                    StepStatus::Skipped => "skipped",
                    StepStatus::Started => "started",
                    StepStatus::NotStarted => "not run",
                };
                write!(f, "  [{mark}] {}", s.step)?;
                if let Some(o) = &s.outcome
                    && s.status == StepStatus::Succeeded
                {
                    write!(f, " -> {o}")?;
                }
                if let Some(n) = &s.note {
                    write!(f, " ({n})")?;
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

/// Builds a [`RunReport`] one journal entry at a time: from a whole journal, or live
/// while a run appends, so the report at the end costs nothing to produce.
#[derive(Debug, Clone)]
pub(crate) struct ReportBuilder {
    report: RunReport,
    /// Where each step sits in `report.regions`.
    index: std::collections::HashMap<StepId, (usize, usize)>,
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// A message kind in the words of the timeline.
fn kind_word(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Announcement => "announcement",
        MessageKind::StatusUpdate => "status update",
        MessageKind::Resolution => "resolution",
        MessageKind::Info => "message",
        MessageKind::StakeholderEmail => "stakeholder e-mail",
        MessageKind::Escalation => "escalation",
    }
}

impl ReportBuilder {
    /// Starts from the run's first entry, which must be `RunStarted`.
    pub(crate) fn start(first: &JournalEntry) -> Result<Self> {
        let JournalEvent::RunStarted {
            plan,
            request,
            gate,
        } = &first.event
        else {
            return Err(Error::invalid(
                "journal",
                "the first entry is not RunStarted",
            ));
        };
        let mut index = std::collections::HashMap::new();
        let regions = plan
            .regions
            .iter()
            .enumerate()
            .map(|(ri, r)| RegionReport {
                region: r.region.clone(),
                service: r.service.clone(),
                versions: r.versions.clone(),
                status: RegionStatus::Incomplete,
                steps: r
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(si, s)| {
                        index.insert(s.id.clone(), (ri, si));
                        StepReport {
                            id: s.id.clone(),
                            step: s.step.clone(),
                            status: StepStatus::NotStarted,
                            started_at: None,
                            finished_at: None,
                            attempts: 0,
                            outcome: None,
                            note: None,
                        }
                    })
                    .collect(),
            })
            .collect();
        Ok(ReportBuilder {
            report: RunReport {
                run_id: first.run_id.clone(),
                status: RunStatus::Incomplete,
                plan: plan.clone(),
                request: request.clone(),
                gate: gate.clone(),
                started_at: first.at,
                finished_at: None,
                regions,
                messages: Vec::new(),
                escalations: Vec::new(),
                resumes: 0,
                failed_escalations: Vec::new(),
                notifications: Vec::new(),
                measured_impact: None,
                threads: BTreeMap::new(),
                leases_lost: Vec::new(),
                journal_errors: Vec::new(),
            },
            index,
        })
    }

    fn step(&mut self, id: &StepId) -> Option<&mut StepReport> {
        let (r, s) = *self.index.get(id)?;
        Some(&mut self.report.regions[r].steps[s])
    }

    /// Applies one later entry.
    pub(crate) fn apply(&mut self, e: &JournalEntry) {
        let at = e.at;
        match &e.event {
            JournalEvent::RunStarted { .. } => {}
            JournalEvent::RunResumed => self.report.resumes += 1,
            JournalEvent::StepStarted { step, .. } => {
                if let Some(s) = self.step(step) {
                    s.status = StepStatus::Started;
                    s.started_at = Some(at);
                    s.attempts += 1;
                }
            }
            JournalEvent::StepSucceeded { step, outcome } => {
                if let Some(s) = self.step(step) {
                    s.status = StepStatus::Succeeded;
                    s.finished_at = Some(at);
                    s.outcome = Some(outcome.clone());
                    s.note = None;
                }
            }
            JournalEvent::StepFailed {
                step,
                error,
                detail,
                ..
            } => {
                if let Some(s) = self.step(step) {
                    s.status = StepStatus::Failed;
                    s.finished_at = Some(at);
                    s.outcome = detail.clone();
                    s.note = Some(error.clone());
                }
            }
            JournalEvent::StepInterrupted { step, reason } => {
                if let Some(s) = self.step(step) {
                    s.status = StepStatus::Interrupted;
                    s.finished_at = Some(at);
                    s.note = Some(reason.clone());
                }
            }
            JournalEvent::StepSkipped { step, reason } => {
                if let Some(s) = self.step(step) {
                    s.status = StepStatus::Skipped;
                    s.note = Some(reason.clone());
                }
            }
            JournalEvent::MessageSent {
                kind,
                text,
                to,
                thread,
            } => {
                self.report.messages.push((at, *kind, text.clone()));
                if let Some(t) = thread {
                    self.report.threads.insert(to.clone(), t.clone());
                }
                self.told(at, to, kind_word(*kind), None, None);
            }
            JournalEvent::MessageFailed { kind, error, to } => {
                self.told(at, to, kind_word(*kind), None, Some(error));
            }
            JournalEvent::Escalated {
                summary,
                dedup_key,
                to,
            } => {
                self.report.escalations.push((at, summary.clone()));
                self.told(at, to, "page", Some(dedup_key), None);
            }
            JournalEvent::EscalationFailed {
                error,
                dedup_key,
                to,
            } => {
                self.report.failed_escalations.push((at, error.clone()));
                self.told(at, to, "page", Some(dedup_key), Some(error));
            }
            JournalEvent::PageResolved { dedup_key, to } => {
                self.told(at, to, "page resolved", Some(dedup_key), None);
            }
            JournalEvent::PageResolveFailed {
                dedup_key,
                to,
                error,
            } => {
                self.told(at, to, "page resolve", Some(dedup_key), Some(error));
            }
            JournalEvent::ChangeEventSent { to, .. } => {
                self.told(at, to, "change event", None, None);
            }
            JournalEvent::LeaseLost { lock, error } => self
                .report
                .leases_lost
                .push((at, format!("{lock}: {error}"))),
            JournalEvent::ImpactMeasured { impact } => {
                self.report.measured_impact = Some(impact.clone());
            }
            JournalEvent::RunFinished { status } => {
                self.report.status = *status;
                self.report.finished_at = Some(at);
            }
        }
    }

    /// Records one thing told to one contact.
    fn told(
        &mut self,
        at: Timestamp,
        to: &str,
        what: &str,
        dedup_key: Option<&String>,
        error: Option<&String>,
    ) {
        // Journals older than routes name nobody: they told the one channel or pager.
        let to = match (to.is_empty(), dedup_key.is_some()) {
            (false, _) => to.to_owned(),
            (true, true) => super::routing::ON_CALL.to_owned(),
            (true, false) => super::routing::INCIDENT_CHANNEL.to_owned(),
        };
        self.report.notifications.push(Notification {
            at,
            to,
            what: what.to_owned(),
            dedup_key: dedup_key.cloned(),
            error: error.cloned(),
        });
    }

    /// The report as it stands, with each region's status worked out.
    pub(crate) fn current(&mut self) -> &RunReport {
        self.settle();
        &self.report
    }

    /// The report, with each region's status worked out.
    pub(crate) fn finish(mut self) -> RunReport {
        self.settle();
        self.report
    }

    fn settle(&mut self) {
        let finished = self.report.finished_at.is_some();
        for r in &mut self.report.regions {
            r.status = if r.steps.iter().all(|s| s.status == StepStatus::Succeeded) {
                RegionStatus::Succeeded
            } else if r.steps.iter().any(|s| s.status == StepStatus::Failed) {
                RegionStatus::Failed
            } else if finished {
                RegionStatus::Stopped
            } else {
                RegionStatus::Incomplete
            };
        }
    }
}

/// `10:15 UTC`.
pub(crate) fn hhmm(t: Timestamp) -> String {
    format!("{} UTC", hm(t))
}

/// `10:15`.
pub(crate) fn hm(t: Timestamp) -> String {
    t.strftime("%H:%M").to_string()
}

/// Whole minutes since the epoch: durations agree with the `HH:MM` times shown.
fn minute_of(t: Timestamp) -> i64 {
    t.as_second().div_euclid(60)
}

fn minutes(m: i64) -> String {
    if m == 1 {
        "1 minute".into()
    } else {
        format!("{m} minutes")
    }
}

/// Human-readable duration, re-exported for the engine's messages.
pub(crate) fn took(d: std::time::Duration) -> String {
    human_duration(d)
}
