//! The journal conformance suite, run against the in-memory and the file journal.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use meshos_rollback_core::Result;
use meshos_rollback_core::conformance::journal::{self, JournalDamage};
use meshos_rollback_core::engine::{FileJournal, InMemoryJournal, Journal, JournalEntry, RunId};

#[tokio::test]
async fn in_memory_journal() {
    // No damage checks: memory cannot tear, and a crash loses it whole.
    journal::run(&InMemoryJournal::new(), None).await;
}

#[tokio::test]
async fn file_journal() {
    let dir = tempfile::tempdir().unwrap();
    let file = FileJournal::new(dir.path()).unwrap();
    let damage = FileDamage(dir.path().to_owned());
    journal::run(&file, Some(&damage)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_journal_under_many_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    journal::concurrent_appends(&FileJournal::new(dir.path()).unwrap(), 64).await;
}

#[tokio::test]
async fn file_journal_restarted_after_each_crash() {
    let dir = tempfile::tempdir().unwrap();
    let restartable = Restartable {
        damage: FileDamage(dir.path().to_owned()),
        current: Mutex::new(Arc::new(FileJournal::new(dir.path()).unwrap())),
    };
    journal::run(&restartable, Some(&restartable)).await;
}

/// A [`FileJournal`] whose crash the suite can stage: tearing a line drops the journal
/// (the crashed process, releasing its locks) and opens a new one on the same
/// directory (the restarted process), which must repair the tail itself.
#[derive(Debug)]
struct Restartable {
    damage: FileDamage,
    current: Mutex<Arc<FileJournal>>,
}

impl Restartable {
    fn current(&self) -> Arc<FileJournal> {
        self.current.lock().unwrap().clone()
    }
}

#[async_trait]
impl Journal for Restartable {
    async fn append(&self, entry: &JournalEntry) -> Result<()> {
        self.current().append(entry).await
    }

    async fn load(&self, run: &RunId) -> Result<Vec<JournalEntry>> {
        self.current().load(run).await
    }

    async fn runs(&self) -> Result<Vec<RunId>> {
        self.current().runs().await
    }
}

impl JournalDamage for Restartable {
    fn tear_last_line(&self, run: &RunId) {
        let mut current = self.current.lock().unwrap();
        *current = Arc::new(FileJournal::new(&self.damage.0).unwrap());
        self.damage.tear_last_line(run);
    }

    fn damage_line(&self, run: &RunId, n: usize) {
        self.damage.damage_line(run, n);
    }
}

/// Damages a [`FileJournal`]'s files in `.0` the way a crash or a bad disk would.
#[derive(Debug)]
struct FileDamage(PathBuf);

impl FileDamage {
    fn path(&self, run: &RunId) -> PathBuf {
        self.0.join(format!("{run}.jsonl"))
    }
}

impl JournalDamage for FileDamage {
    fn tear_last_line(&self, run: &RunId) {
        let path = self.path(run);
        let text = std::fs::read_to_string(&path).unwrap();
        let body = text.strip_suffix('\n').expect("a complete last line");
        let start = body.rfind('\n').map_or(0, |i| i + 1);
        let cut = start + (body.len() - start) / 2;
        // In place (same file, same lock holder), as a write cut off mid-way leaves it.
        std::fs::write(&path, &text[..cut]).unwrap();
    }

    fn damage_line(&self, run: &RunId, n: usize) {
        let path = self.path(run);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i + 1 == n {
                    // A flipped block: valid UTF-8, not JSON.
                    l.replacen('{', "#", 1)
                } else {
                    l.to_owned()
                }
            })
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
}
