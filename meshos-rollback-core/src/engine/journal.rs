//! The durable record of a run: every step's start and outcome, written before and
//! after it acts, so a crashed rollback resumes without repeating completed steps.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::checklist::{GateRecord, RollbackRequest};
use super::plan::{RollbackPlan, RunId, StepId};
use super::verify::VerificationOutcome;
use crate::provider::{
    ChangeId, DbEndpoint, DbInstanceId, DnsTarget, MessageKind, RevisionChange, RolloutStatus,
    TargetHealth, TargetWeight,
};
use crate::{Error, ErrorKind, Result};

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The run.
    pub run_id: RunId,
    /// Position in the run's journal, from 1.
    pub seq: u64,
    /// When it was written.
    pub at: Timestamp,
    /// What happened.
    pub event: JournalEvent,
}

/// What a journal line records. Every text is already redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum JournalEvent {
    /// The gate was passed and the run began.
    RunStarted {
        /// The plan.
        plan: Arc<RollbackPlan>,
        /// The request.
        request: Arc<RollbackRequest>,
        /// What the gate checked.
        gate: Arc<GateRecord>,
    },
    /// A run interrupted earlier was resumed.
    RunResumed,
    /// A step is about to act. `pre_state` is what it will change, read before acting.
    StepStarted {
        /// The step.
        step: StepId,
        /// The state before.
        pre_state: Option<PreState>,
    },
    /// A step finished.
    StepSucceeded {
        /// The step.
        step: StepId,
        /// What it did.
        outcome: StepOutcome,
    },
    /// A step failed.
    StepFailed {
        /// The step.
        step: StepId,
        /// The error's class.
        kind: ErrorKind,
        /// The error, redacted.
        error: String,
        /// What the step found before failing (such as a failed verification's numbers).
        detail: Option<StepOutcome>,
    },
    /// A step was cut off by cancellation or a deadline: it may or may not have taken
    /// effect; resuming re-checks it.
    StepInterrupted {
        /// The step.
        step: StepId,
        /// Why.
        reason: String,
    },
    /// A step did not run.
    StepSkipped {
        /// The step.
        step: StepId,
        /// Why.
        reason: String,
    },
    /// A message was sent to people.
    MessageSent {
        /// What kind.
        kind: MessageKind,
        /// The text, redacted.
        text: String,
    },
    /// A message could not be sent (the rollback went on).
    MessageFailed {
        /// What kind.
        kind: MessageKind,
        /// The error, redacted.
        error: String,
    },
    /// On-call was paged.
    Escalated {
        /// The page's dedup key.
        dedup_key: String,
        /// Its summary.
        summary: String,
    },
    /// The run ended.
    RunFinished {
        /// How it ended.
        status: super::report::RunStatus,
    },
}

/// State read before a step acts, so a resumed step knows what it found originally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreState {
    /// The region's routing weight before exclusion.
    RegionWeight(u32),
    /// The listener's weights before the shift.
    Weights(Vec<TargetWeight>),
    /// The DNS record before the UPSERT.
    DnsRecord(Option<DnsTarget>),
    /// The schema version and applied-migration count before the rollback.
    Schema {
        /// Newest applied migration.
        version: Option<String>,
        /// How many were applied.
        applied: usize,
    },
    /// The restore source resolved before acting (the snapshot or time).
    Restore {
        /// The snapshot, for a snapshot restore.
        snapshot: Option<String>,
        /// The time the restored data is from.
        data_as_of: Timestamp,
    },
}

/// How much data a restore gives up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataLossWindow {
    /// The time the restored data is from.
    pub data_as_of: Timestamp,
    /// When the incident began.
    pub incident_started_at: Timestamp,
    /// Good data written between the restore point and the incident's start, which the
    /// restored instance does not hold (zero when restoring to the incident start or
    /// later). Writes after the restore point stay in the untouched source.
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::required")]
    pub before_incident: Duration,
}

impl fmt::Display for DataLossWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "data as of {}, {} before the incident began ({}); later writes remain only in the untouched source",
            self.data_as_of,
            super::plan::human_duration(self.before_incident),
            self.incident_started_at
        )
    }
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StepOutcome {
    /// The region left routing.
    Excluded {
        /// Its weight before; re-admission restores it.
        previous_weight: u32,
        /// The DNS change.
        change: ChangeId,
    },
    /// Traffic moved to the stable target.
    TrafficShifted {
        /// The weights before.
        previous: Vec<TargetWeight>,
        /// The stable target's health after the shift.
        health: TargetHealth,
    },
    /// A tag moved.
    Retagged {
        /// The digest it points at.
        digest: String,
        /// Whether it moved.
        changed: bool,
    },
    /// The deployment changed revision (or already ran the target).
    Deployed {
        /// The change.
        change: RevisionChange,
    },
    /// The rollout settled.
    Stable {
        /// The final status.
        status: RolloutStatus,
    },
    /// Migrations were reverted.
    SchemaRolledBack {
        /// Reverted migrations, newest first.
        reverted: Vec<String>,
        /// The schema version now.
        version: Option<String>,
    },
    /// The database was restored into a new instance.
    DatabaseRestored {
        /// The new instance.
        instance: DbInstanceId,
        /// Its endpoint.
        endpoint: Option<DbEndpoint>,
        /// The snapshot used, if any.
        snapshot: Option<String>,
        /// The data-loss window.
        data_loss: DataLossWindow,
        /// Whether an instance left by an interrupted attempt of this step was adopted.
        adopted: bool,
    },
    /// The connection string now points at the restored instance.
    ConnectionSwitched {
        /// The instance.
        database: DbInstanceId,
        /// The deployment change it caused.
        change: RevisionChange,
    },
    /// A DNS record points elsewhere.
    DnsPointed {
        /// Where it pointed before.
        previous: Option<DnsTarget>,
        /// The change.
        change: ChangeId,
    },
    /// Verification ran.
    Verified {
        /// Its result.
        outcome: VerificationOutcome,
    },
    /// The other regions were checked.
    OtherRegionsChecked {
        /// One line per region.
        regions: Vec<String>,
    },
    /// The region is back in routing.
    Readmitted {
        /// Its weight now.
        weight: u32,
    },
}

impl fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepOutcome::Excluded {
                previous_weight, ..
            } => {
                write!(f, "excluded from routing (weight was {previous_weight})")
            }
            StepOutcome::TrafficShifted { previous, health } => {
                let before: Vec<String> = previous
                    .iter()
                    .map(|w| format!("{}={}", w.target, w.weight))
                    .collect();
                write!(
                    f,
                    "all traffic on stable (was {}); {health}",
                    before.join(", ")
                )
            }
            StepOutcome::Retagged { digest, changed } => {
                write!(
                    f,
                    "tag -> {digest}{}",
                    if *changed { "" } else { " (already)" }
                )
            }
            StepOutcome::Deployed { change } => {
                if change.changed {
                    write!(f, "now meant to run {} (was {})", change.to, change.from)
                } else {
                    write!(f, "already at {} (no change)", change.to)
                }
            }
            StepOutcome::Stable { status } => write!(f, "stable: {status}"),
            StepOutcome::SchemaRolledBack { reverted, version } => write!(
                f,
                "reverted {} migration(s) [{}]; schema version now {}",
                reverted.len(),
                reverted.join(", "),
                version.as_deref().unwrap_or("(none)")
            ),
            StepOutcome::DatabaseRestored {
                instance,
                endpoint,
                data_loss,
                adopted,
                ..
            } => {
                write!(f, "restored into {instance}")?;
                if let Some(e) = endpoint {
                    write!(f, " at {e}")?;
                }
                if *adopted {
                    f.write_str(" (adopted from the interrupted attempt)")?;
                }
                write!(f, "; {data_loss}")
            }
            StepOutcome::ConnectionSwitched { database, change } => {
                write!(
                    f,
                    "connection string -> {database} (revision {})",
                    change.to
                )
            }
            StepOutcome::DnsPointed { previous, change } => write!(
                f,
                "record updated (was {}), change {change} in sync",
                previous
                    .as_ref()
                    .map_or_else(|| "absent".to_owned(), ToString::to_string)
            ),
            StepOutcome::Verified { outcome } => write!(f, "{}", outcome.headline()),
            StepOutcome::OtherRegionsChecked { regions } => write!(f, "{}", regions.join("; ")),
            StepOutcome::Readmitted { weight } => write!(f, "back in routing at weight {weight}"),
        }
    }
}

/// Where journal entries are kept. Implementations make `append` durable before
/// returning: the engine acts only after the start of a step is on record.
#[async_trait]
pub trait Journal: fmt::Debug + Send + Sync {
    /// Appends an entry durably.
    async fn append(&self, entry: &JournalEntry) -> Result<()>;

    /// Every entry of a run, in order; empty if the run is unknown.
    async fn load(&self, run: &RunId) -> Result<Vec<JournalEntry>>;
}

/// Journal entries in memory (tests, examples, benchmarks). Not durable.
#[derive(Debug, Default)]
pub struct InMemoryJournal {
    runs: Mutex<HashMap<RunId, Vec<JournalEntry>>>,
}

impl InMemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Journal for InMemoryJournal {
    async fn append(&self, entry: &JournalEntry) -> Result<()> {
        let mut runs = self.runs.lock().expect("lock");
        match runs.get_mut(&entry.run_id) {
            Some(entries) => entries.push(entry.clone()),
            None => {
                runs.insert(entry.run_id.clone(), vec![entry.clone()]);
            }
        }
        Ok(())
    }

    async fn load(&self, run: &RunId) -> Result<Vec<JournalEntry>> {
        Ok(self
            .runs
            .lock()
            .expect("lock")
            .get(run)
            .cloned()
            .unwrap_or_default())
    }
}

/// A journal of JSON lines, one file per run (`<dir>/<run-id>.jsonl`), each append
/// flushed to disk with `fsync` before it returns. A torn last line (a crash during a
/// write) is ignored on load; damage anywhere else is an error.
#[derive(Debug)]
pub struct FileJournal {
    dir: PathBuf,
    // Serialises appends so lines never interleave.
    write: tokio::sync::Mutex<()>,
}

impl FileJournal {
    /// A journal in `dir`, created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::invalid(
                "journal directory",
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
        Ok(FileJournal {
            dir,
            write: tokio::sync::Mutex::new(()),
        })
    }

    /// The file of a run.
    pub fn path(&self, run: &RunId) -> PathBuf {
        self.dir.join(format!("{run}.jsonl"))
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Failed {
        provider: "FileJournal".into(),
        message: format!("{}: {e}", path.display()),
        source: Some(Box::new(e)),
    }
}

#[async_trait]
impl Journal for FileJournal {
    async fn append(&self, entry: &JournalEntry) -> Result<()> {
        let mut line = serde_json::to_vec(entry)
            .map_err(|e| Error::failed("FileJournal", format!("cannot encode entry: {e}")))?;
        line.push(b'\n');
        let path = self.path(&entry.run_id);
        let dir = self.dir.clone();
        let _guard = self.write.lock().await;
        tokio::task::spawn_blocking(move || -> Result<()> {
            let created = !path.exists();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            f.write_all(&line).map_err(|e| io_error(&path, e))?;
            f.sync_data().map_err(|e| io_error(&path, e))?;
            if created {
                // Make the new file's directory entry durable too.
                if let Ok(d) = std::fs::File::open(&dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::failed("FileJournal", format!("append task failed: {e}")))?
    }

    async fn load(&self, run: &RunId) -> Result<Vec<JournalEntry>> {
        let path = self.path(run);
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&path, e)),
        };
        let complete = text.ends_with('\n');
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str::<JournalEntry>(line) {
                Ok(e) => out.push(e),
                Err(_) if i + 1 == lines.len() && !complete => {
                    tracing::warn!(path = %path.display(), "ignoring a torn last journal line");
                }
                Err(e) => {
                    return Err(Error::invalid(
                        "journal",
                        format!(
                            "{} line {}: {e}; the journal is damaged, inspect it by hand",
                            path.display(),
                            i + 1
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// The journal's view of one region, rebuilt from entries (for resuming).
#[derive(Debug, Default, Clone)]
pub(crate) struct StepStates {
    pub(crate) succeeded: HashMap<StepId, StepOutcome>,
    pub(crate) pre_state: HashMap<StepId, PreState>,
    pub(crate) started: std::collections::HashSet<StepId>,
}

impl StepStates {
    pub(crate) fn from_entries(entries: &[JournalEntry]) -> Self {
        let mut s = StepStates::default();
        for e in entries {
            match &e.event {
                JournalEvent::StepStarted { step, pre_state } => {
                    s.started.insert(step.clone());
                    if let Some(p) = pre_state {
                        // Keep the first reading: it is the state before any attempt.
                        s.pre_state.entry(step.clone()).or_insert_with(|| p.clone());
                    }
                }
                JournalEvent::StepSucceeded { step, outcome } => {
                    s.succeeded.insert(step.clone(), outcome.clone());
                }
                _ => {}
            }
        }
        s
    }
}
