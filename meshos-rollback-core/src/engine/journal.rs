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
    /// The leases the run held when it wrote this entry (lock and token). A journal
    /// that can fence (a shared store holding the locks too) refuses an entry whose
    /// tokens are no longer current, so a run that lost its lease cannot record
    /// progress it should not make.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fence: Vec<FenceToken>,
}

/// A lease's proof of holding, as carried by a journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceToken {
    /// The lock.
    pub lock: crate::provider::LockKey,
    /// The lease's token.
    pub token: String,
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
        /// The contact told (`incident-channel`); empty in journals older than routes.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        to: String,
        /// The notifier's thread for the incident, after an announcement (so a
        /// resumed run, in another process, posts into the same thread).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thread: Option<String>,
    },
    /// A message could not be sent (the rollback went on).
    MessageFailed {
        /// What kind.
        kind: MessageKind,
        /// The error, redacted.
        error: String,
        /// The contact that was not told.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        to: String,
    },
    /// Someone was paged.
    Escalated {
        /// The page's dedup key.
        dedup_key: String,
        /// Its summary.
        summary: String,
        /// The contact paged (`on-call`); empty in journals older than routes.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        to: String,
    },
    /// Paging failed (the rollback went on).
    EscalationFailed {
        /// The page's dedup key.
        dedup_key: String,
        /// The error, redacted.
        error: String,
        /// The contact that was not paged.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        to: String,
    },
    /// A page this run opened was resolved: the rollback succeeded and was verified.
    PageResolved {
        /// The page's dedup key.
        dedup_key: String,
        /// The contact whose pager it was.
        to: String,
    },
    /// A page could not be resolved: it stays open (a resume tries again).
    PageResolveFailed {
        /// The page's dedup key.
        dedup_key: String,
        /// The contact whose pager it is.
        to: String,
        /// The error, redacted.
        error: String,
    },
    /// A change event (rollback started or finished) reached a service's timeline.
    ChangeEventSent {
        /// Its summary.
        summary: String,
        /// The contact whose timeline it is.
        to: String,
    },
    /// A lease was lost: the run stopped at the next step boundary.
    LeaseLost {
        /// The lock.
        lock: crate::provider::LockKey,
        /// Why, redacted.
        error: String,
    },
    /// The customer impact, measured when the run ended because the checklist gave
    /// none (an automatic rollback): customer reports and failed requests since the
    /// incident began.
    ImpactMeasured {
        /// The impact, in the report's words.
        impact: super::checklist::CustomerImpact,
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
        /// Migrations this attempt reverted, newest first.
        reverted: Vec<String>,
        /// Planned migrations found already reverted (by an interrupted attempt).
        #[serde(default)]
        already_reverted: Vec<String>,
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
            StepOutcome::SchemaRolledBack {
                reverted,
                already_reverted,
                version,
            } => {
                write!(
                    f,
                    "reverted {} migration(s) [{}]",
                    reverted.len(),
                    reverted.join(", ")
                )?;
                if !already_reverted.is_empty() {
                    write!(
                        f,
                        " ({} already reverted: [{}])",
                        already_reverted.len(),
                        already_reverted.join(", ")
                    )?;
                }
                write!(
                    f,
                    "; schema version now {}",
                    version.as_deref().unwrap_or("(none)")
                )
            }
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
///
/// The append contract, the same for every implementation: an entry's `seq` must be
/// greater than the last `seq` already stored for its run (gaps are fine), otherwise
/// `append` fails with [`ErrorKind::Conflict`] and stores nothing. So two writers of
/// one run can never interleave their lines, and a stale writer (one that lost the
/// run to a resumed process) cannot overwrite or shadow what the newer one wrote.
/// Callers therefore take the next `seq` and append under one lock, so seqs arrive in
/// order. The conformance suite `conformance::journal` checks all of this.
#[async_trait]
pub trait Journal: fmt::Debug + Send + Sync {
    /// Appends an entry durably; refuses ([`ErrorKind::Conflict`]) a `seq` that is not
    /// greater than the run's last stored one.
    async fn append(&self, entry: &JournalEntry) -> Result<()>;

    /// Every entry of a run, in order of `seq`; empty if the run is unknown.
    async fn load(&self, run: &RunId) -> Result<Vec<JournalEntry>>;

    /// The runs it holds, in id order (which is start-time order for generated ids).
    async fn runs(&self) -> Result<Vec<RunId>>;
}

/// Journal entries in memory (tests, examples, benchmarks). Not durable.
#[derive(Default)]
pub struct InMemoryJournal {
    runs: Mutex<HashMap<RunId, Vec<JournalEntry>>>,
}

// Not derived: every entry of every run would end up in each panic and log line.
impl fmt::Debug for InMemoryJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("InMemoryJournal");
        // `try_lock`: formatting must never wait for (or deadlock on) an append.
        if let Ok(runs) = self.runs.try_lock() {
            d.field("runs", &runs.len());
        }
        d.finish_non_exhaustive()
    }
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
        let entries = runs.entry(entry.run_id.clone()).or_default();
        if let Some(last) = entries.last() {
            check_seq(&entry.run_id, entry.seq, last.seq, "InMemoryJournal")?;
        }
        entries.push(entry.clone());
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

    async fn runs(&self) -> Result<Vec<RunId>> {
        let mut ids: Vec<RunId> = self.runs.lock().expect("lock").keys().cloned().collect();
        ids.sort();
        Ok(ids)
    }
}

/// Refuses an entry whose `seq` does not come after the run's last stored one (the
/// append contract of [`Journal`]).
fn check_seq(run: &RunId, seq: u64, last: u64, journal: &str) -> Result<()> {
    if seq > last {
        return Ok(());
    }
    Err(Error::conflict(
        journal,
        format!(
            "run {run}: entry seq {seq} does not come after the last stored seq {last}; \
             another writer appended to this run, or this one is stale"
        ),
    ))
}

/// A journal of JSON lines, one file per run (`<dir>/<run-id>.jsonl`, mode 0600 on
/// Unix), each append flushed to disk with `fsync` before it returns.
///
/// A crash during a write leaves a torn last line: `load` ignores it, and the next
/// append first cuts the file back to its last complete line, so a fragment never ends
/// up in the middle of the journal. Damage anywhere else is an error naming the file
/// and line.
///
/// One writer per run: the first append to a run takes an exclusive advisory lock
/// (`flock`) on its file and holds it until this `FileJournal` is dropped, so another
/// process appending to the same run gets a conflict instead of interleaving lines.
/// `load` takes no lock: another process can read a run's status while it is written.
pub struct FileJournal {
    dir: PathBuf,
    // Serialises appends so lines never interleave, and keeps each run this journal
    // writes open and locked.
    writers: tokio::sync::Mutex<HashMap<RunId, RunFile>>,
}

impl fmt::Debug for FileJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileJournal")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A run's journal file, open and locked by this `FileJournal`.
#[derive(Debug)]
struct RunFile {
    file: std::fs::File,
    path: PathBuf,
    /// The last `seq` in the file; `None` while it holds no complete line.
    last_seq: Option<u64>,
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
            writers: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The file of a run. Always inside the directory: a [`RunId`] holds only letters,
    /// digits, `-` and `_`, however it was made (deserializing one checks it too).
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

fn damaged(path: &Path, line: usize, what: impl fmt::Display) -> Error {
    Error::invalid(
        "journal",
        format!(
            "{} line {line}: {what}; the journal is damaged, inspect it by hand",
            path.display()
        ),
    )
}

impl RunFile {
    /// Opens (creating it, mode 0600) and locks a run's file, and repairs its tail.
    fn open(dir: &Path, path: PathBuf, run: &RunId) -> Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let (file, created) = match options.clone().create_new(true).open(&path) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                (options.open(&path).map_err(|e| io_error(&path, e))?, false)
            }
            Err(e) => return Err(io_error(&path, e)),
        };
        // flock locks belong to the open file description: held while `file` is open.
        // fs4's, not std's `File::try_lock`: that needs Rust 1.89, above our MSRV.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(Error::conflict(
                    "FileJournal",
                    format!(
                        "{}: another process is writing run {run}'s journal (its file is locked)",
                        path.display()
                    ),
                ));
            }
            Err(fs4::TryLockError::Error(e)) => return Err(io_error(&path, e)),
        }
        let empty = file.metadata().map_err(|e| io_error(&path, e))?.len() == 0;
        // A new file's name must be durable before its first line counts as written.
        // An empty file may be one whose directory sync failed earlier: sync again.
        if created || empty {
            sync_dir(dir)?;
        }
        let mut run_file = RunFile {
            file,
            path,
            last_seq: None,
        };
        run_file.repair()?;
        Ok(run_file)
    }

    /// Whether the file ends with a complete line (or is empty).
    fn ends_cleanly(&mut self) -> Result<bool> {
        use std::io::{Read, Seek, SeekFrom};
        let len = self
            .file
            .metadata()
            .map_err(|e| io_error(&self.path, e))?
            .len();
        if len == 0 {
            return Ok(true);
        }
        let mut last = [0u8; 1];
        self.file
            .seek(SeekFrom::Start(len - 1))
            .and_then(|_| self.file.read_exact(&mut last))
            .map_err(|e| io_error(&self.path, e))?;
        Ok(last[0] == b'\n')
    }

    /// Cuts a torn last line (one without its `\n`: its append never returned) and
    /// reads the last stored `seq` again.
    fn repair(&mut self) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut bytes = Vec::new();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_end(&mut bytes))
            .map_err(|e| io_error(&self.path, e))?;
        let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if keep < bytes.len() {
            tracing::warn!(
                path = %self.path.display(),
                bytes = bytes.len() - keep,
                "cutting a torn last journal line (a write interrupted by a crash) before appending"
            );
            self.file
                .set_len(keep as u64)
                .and_then(|()| self.file.sync_all())
                .map_err(|e| io_error(&self.path, e))?;
            bytes.truncate(keep);
        }
        self.last_seq = match bytes.len() {
            0 => None,
            n => {
                let body = &bytes[..n - 1];
                let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                let line = body[..start].iter().filter(|b| **b == b'\n').count() + 1;
                let last: JournalEntry = serde_json::from_slice(&body[start..])
                    .map_err(|e| damaged(&self.path, line, e))?;
                Some(last.seq)
            }
        };
        Ok(())
    }

    /// Writes one encoded line and flushes it to disk.
    fn append(&mut self, run: &RunId, seq: u64, line: &[u8]) -> Result<()> {
        if !self.ends_cleanly()? {
            self.repair()?;
        }
        if let Some(last) = self.last_seq {
            check_seq(run, seq, last, "FileJournal")?;
        }
        let written = self
            .file
            .write_all(line)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // The line may be partly on disk: the next append checks the tail.
            return Err(io_error(&self.path, e));
        }
        self.last_seq = Some(seq);
        Ok(())
    }
}

/// Makes a new directory entry durable.
fn sync_dir(#[cfg_attr(not(unix), expect(unused_variables))] dir: &Path) -> Result<()> {
    // Only Unix can open a directory to fsync it; elsewhere the file system keeps
    // directory entries durable itself (NTFS journals its metadata).
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))?;
    Ok(())
}

#[async_trait]
impl Journal for FileJournal {
    async fn append(&self, entry: &JournalEntry) -> Result<()> {
        let mut line = serde_json::to_vec(entry)
            .map_err(|e| Error::failed("FileJournal", format!("cannot encode entry: {e}")))?;
        line.push(b'\n');
        let run = entry.run_id.clone();
        let seq = entry.seq;
        let path = self.path(&run);
        let dir = self.dir.clone();
        let mut writers = self.writers.lock().await;
        let open = writers.remove(&run);
        let (open, result) = tokio::task::spawn_blocking(move || {
            let mut run_file = match open {
                Some(f) => f,
                None => match RunFile::open(&dir, path, &run) {
                    Ok(f) => f,
                    Err(e) => return (None, Err(e)),
                },
            };
            let result = run_file.append(&run, seq, &line);
            (Some((run, run_file)), result)
        })
        .await
        .map_err(|e| Error::failed("FileJournal", format!("append task failed: {e}")))?;
        if let Some((run, run_file)) = open {
            writers.insert(run, run_file);
        }
        result
    }

    async fn load(&self, run: &RunId) -> Result<Vec<JournalEntry>> {
        let path = self.path(run);
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&path, e)),
        };
        // Only lines ending in `\n` were ever acknowledged; the rest is a torn write.
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        if complete.len() < text.len() {
            tracing::warn!(path = %path.display(), "ignoring a torn last journal line");
        }
        let mut out: Vec<JournalEntry> = Vec::new();
        for (i, line) in complete.lines().enumerate() {
            let entry: JournalEntry =
                serde_json::from_str(line).map_err(|e| damaged(&path, i + 1, e))?;
            if &entry.run_id != run {
                return Err(damaged(
                    &path,
                    i + 1,
                    format!("an entry of run {}, not {run}", entry.run_id),
                ));
            }
            if let Some(prev) = out.last().map(|p| p.seq)
                && entry.seq <= prev
            {
                return Err(damaged(
                    &path,
                    i + 1,
                    format!("seq {} does not come after seq {prev}", entry.seq),
                ));
            }
            out.push(entry);
        }
        Ok(out)
    }

    async fn runs(&self) -> Result<Vec<RunId>> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<RunId>> {
            let mut ids = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(|e| io_error(&dir, e))? {
                let entry = entry.map_err(|e| io_error(&dir, e))?;
                let name = entry.file_name();
                // Only `<run id>.jsonl` files are runs; anything else is left alone.
                if let Some(id) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".jsonl"))
                    .and_then(|n| RunId::new(n).ok())
                {
                    ids.push(id);
                }
            }
            ids.sort();
            Ok(ids)
        })
        .await
        .map_err(|e| Error::failed("FileJournal", format!("listing task failed: {e}")))?
    }
}

/// The journal's view of one region, rebuilt from entries (for resuming).
#[derive(Debug, Default, Clone)]
pub(crate) struct StepStates {
    pub(crate) succeeded: HashMap<StepId, StepOutcome>,
    pub(crate) pre_state: HashMap<StepId, PreState>,
}

impl StepStates {
    pub(crate) fn from_entries(entries: &[JournalEntry]) -> Self {
        let mut s = StepStates::default();
        for e in entries {
            match &e.event {
                JournalEvent::StepStarted {
                    step,
                    pre_state: Some(p),
                } => {
                    // Keep the first reading: it is the state before any attempt.
                    s.pre_state.entry(step.clone()).or_insert_with(|| p.clone());
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

#[cfg(test)]
mod file_journal_tests {
    use super::*;

    fn entry(run: &RunId, seq: u64) -> JournalEntry {
        JournalEntry {
            run_id: run.clone(),
            seq,
            at: Timestamp::UNIX_EPOCH,
            event: JournalEvent::RunResumed,
            fence: Vec::new(),
        }
    }

    fn line(e: &JournalEntry) -> String {
        format!("{}\n", serde_json::to_string(e).unwrap())
    }

    fn seqs(entries: &[JournalEntry]) -> Vec<u64> {
        entries.iter().map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn an_append_after_a_crash_mid_write_cuts_the_torn_line_first() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunId::new("torn").unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        let path = journal.path(&run);
        let torn = line(&entry(&run, 3));
        std::fs::write(
            &path,
            format!(
                "{}{}{}",
                line(&entry(&run, 1)),
                line(&entry(&run, 2)),
                &torn[..torn.len() / 2]
            ),
        )
        .unwrap();
        assert_eq!(seqs(&journal.load(&run).await.unwrap()), [1, 2]);

        // The restarted engine goes on from the last complete entry.
        journal.append(&entry(&run, 3)).await.unwrap();
        assert_eq!(seqs(&journal.load(&run).await.unwrap()), [1, 2, 3]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, line(&entry(&run, 1)) + &line(&entry(&run, 2)) + &torn);
    }

    #[tokio::test]
    async fn a_tail_torn_while_the_file_is_open_is_cut_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunId::new("torn-open").unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        journal.append(&entry(&run, 1)).await.unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(journal.path(&run))
            .unwrap();
        f.write_all(br#"{"run_id":"torn-op"#).unwrap();
        journal.append(&entry(&run, 2)).await.unwrap();
        assert_eq!(seqs(&journal.load(&run).await.unwrap()), [1, 2]);
    }

    #[tokio::test]
    async fn a_torn_line_alone_leaves_an_empty_journal_to_append_to() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunId::new("torn-first").unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        std::fs::write(journal.path(&run), br#"{"run_id":"#).unwrap();
        journal.append(&entry(&run, 1)).await.unwrap();
        assert_eq!(seqs(&journal.load(&run).await.unwrap()), [1]);
    }

    #[tokio::test]
    async fn a_second_writer_of_a_run_is_refused_while_the_first_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunId::new("locked").unwrap();
        let first = FileJournal::new(dir.path()).unwrap();
        let second = FileJournal::new(dir.path()).unwrap();
        first.append(&entry(&run, 1)).await.unwrap();

        let err = second.append(&entry(&run, 2)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert!(
            err.to_string()
                .contains("another process is writing run locked's journal"),
            "{err}"
        );
        // Reading needs no lock: status works from another process.
        assert_eq!(seqs(&second.load(&run).await.unwrap()), [1]);
        // The first keeps writing; other runs are not affected.
        first.append(&entry(&run, 2)).await.unwrap();
        let other = RunId::new("other").unwrap();
        second.append(&entry(&other, 1)).await.unwrap();

        drop(first);
        second.append(&entry(&run, 3)).await.unwrap();
        assert_eq!(seqs(&second.load(&run).await.unwrap()), [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_seq_that_does_not_come_after_the_last_is_refused_by_both_journals() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileJournal::new(dir.path()).unwrap();
        let memory = InMemoryJournal::new();
        let run = RunId::new("seqs").unwrap();
        for journal in [&file as &dyn Journal, &memory] {
            journal.append(&entry(&run, 1)).await.unwrap();
            journal.append(&entry(&run, 3)).await.unwrap();
            for stale in [3, 2] {
                let err = journal.append(&entry(&run, stale)).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Conflict, "{journal:?}: {err}");
            }
            assert_eq!(seqs(&journal.load(&run).await.unwrap()), [1, 3]);
        }
    }

    #[tokio::test]
    async fn a_restarted_writer_refuses_a_seq_already_on_file() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunId::new("restart").unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        journal.append(&entry(&run, 1)).await.unwrap();
        journal.append(&entry(&run, 2)).await.unwrap();
        drop(journal);
        let journal = FileJournal::new(dir.path()).unwrap();
        let err = journal.append(&entry(&run, 2)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        journal.append(&entry(&run, 3)).await.unwrap();
    }

    #[tokio::test]
    async fn load_refuses_an_entry_of_another_run_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunId::new("mine").unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        let theirs = RunId::new("theirs").unwrap();
        std::fs::write(
            journal.path(&run),
            line(&entry(&run, 1)) + &line(&entry(&theirs, 2)),
        )
        .unwrap();
        let err = journal.load(&run).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let text = err.to_string();
        assert!(text.contains("mine.jsonl line 2"), "{text}");
        assert!(text.contains("run theirs"), "{text}");
    }

    #[tokio::test]
    async fn load_refuses_a_seq_that_does_not_increase_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunId::new("replayed").unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        std::fs::write(
            journal.path(&run),
            line(&entry(&run, 1)) + &line(&entry(&run, 2)) + &line(&entry(&run, 2)),
        )
        .unwrap();
        let err = journal.load(&run).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let text = err.to_string();
        assert!(text.contains("replayed.jsonl line 3"), "{text}");
        assert!(text.contains("seq 2 does not come after seq 2"), "{text}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn journal_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let run = RunId::new("private").unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        journal.append(&entry(&run, 1)).await.unwrap();
        let mode = std::fs::metadata(journal.path(&run))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    #[test]
    fn a_directory_that_cannot_be_synced_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = sync_dir(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn run_ids_cannot_name_a_path_outside_the_journal_directory() {
        for bad in ["../x", "a/b", "..", "/etc/passwd", "a\\b", ""] {
            assert!(RunId::new(bad).is_err(), "{bad:?} accepted");
            let json = serde_json::to_string(bad).unwrap();
            assert!(
                serde_json::from_str::<RunId>(&json).is_err(),
                "{bad:?} accepted when deserialized"
            );
            let mut e = serde_json::to_value(entry(&RunId::new("ok").unwrap(), 1)).unwrap();
            e["run_id"] = serde_json::Value::from(bad);
            assert!(
                serde_json::from_value::<JournalEntry>(e).is_err(),
                "{bad:?}"
            );
        }
        let ok: RunId = serde_json::from_str("\"rb-20251030T101500-k3v9\"").unwrap();
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            "\"rb-20251030T101500-k3v9\""
        );
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        let generated = RunId::generate(Timestamp::now());
        assert_eq!(journal.path(&generated).parent(), Some(dir.path()));
    }
}
