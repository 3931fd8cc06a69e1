//! Conformance of a [`Journal`].
//!
//! Entries use only the plan-free events (`RunResumed`, `Escalated`, `RunFinished`),
//! so the suite needs no plan. Every check works on runs of its own (random ids), so
//! the suite can share a journal with other tests.

use futures::future::join_all;
use jiff::Timestamp;

use super::{expect_kind, expect_ok};
use crate::ErrorKind;
use crate::engine::{Journal, JournalEntry, JournalEvent, RunId, RunStatus};

/// Damage no journal API can cause, done by the backend's own means: what a crash
/// mid-write or a bad disk leaves behind. The in-memory journal has none (memory
/// cannot tear, and a process that crashes loses it whole), so it skips
/// [`torn_tail`] and [`damaged_line`]; a durable backend must provide this.
pub trait JournalDamage: Send + Sync {
    /// Cuts the run's last entry short, as a crash during its write would: part of
    /// it stays stored, its end (for a line-based journal, the `\n`) does not.
    fn tear_last_line(&self, run: &RunId);

    /// Makes entry `n` (from 1) of the run unreadable, leaving the others intact.
    fn damage_line(&self, run: &RunId, n: usize);
}

/// Runs every check of the suite. `damage: None` skips the two damage checks, for a
/// journal that cannot be damaged (in memory).
pub async fn run(journal: &dyn Journal, damage: Option<&dyn JournalDamage>) {
    append_and_load(journal).await;
    runs_are_isolated(journal).await;
    seq_must_increase(journal).await;
    concurrent_appends(journal, 16).await;
    if let Some(damage) = damage {
        torn_tail(journal, damage).await;
        damaged_line(journal, damage).await;
    }
}

/// A fresh run id: `conformance-<what>-<random>`.
pub fn fresh_run(what: &str) -> RunId {
    let suffix: String = (0..8)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect();
    RunId::new(format!("conformance-{what}-{suffix}")).expect("a valid run id")
}

fn entry(run: &RunId, seq: u64, event: JournalEvent) -> JournalEntry {
    JournalEntry {
        run_id: run.clone(),
        seq,
        at: Timestamp::from_second(1_761_818_400 + i64::try_from(seq).expect("small seq"))
            .expect("a valid time"),
        event,
        fence: Vec::new(),
    }
}

fn escalated(n: usize) -> JournalEvent {
    JournalEvent::Escalated {
        dedup_key: format!("conformance/{n}"),
        summary: format!("entry {n}"),
        to: "on-call".into(),
    }
}

fn seqs(entries: &[JournalEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

async fn append(journal: &dyn Journal, e: &JournalEntry) {
    let who = format!("{journal:?}");
    expect_ok(
        journal.append(e).await,
        &format!("{who}: append seq {} to {}", e.seq, e.run_id),
    );
}

async fn load(journal: &dyn Journal, run: &RunId) -> Vec<JournalEntry> {
    let who = format!("{journal:?}");
    expect_ok(journal.load(run).await, &format!("{who}: load {run}"))
}

/// Entries load back exactly as appended, in order, and a gap in `seq` is fine (the
/// engine skips a seq when an append fails).
pub async fn append_and_load(journal: &dyn Journal) {
    let who = format!("{journal:?}");
    let run = fresh_run("order");
    let written = [
        entry(&run, 1, JournalEvent::RunResumed),
        entry(&run, 2, escalated(2)),
        entry(&run, 4, escalated(4)),
        entry(
            &run,
            5,
            JournalEvent::RunFinished {
                status: RunStatus::Succeeded,
            },
        ),
    ];
    for (i, e) in written.iter().enumerate() {
        append(journal, e).await;
        assert_eq!(
            load(journal, &run).await,
            written[..=i],
            "{who}: load after appending seq {} returns every entry so far, in order",
            e.seq
        );
    }
}

/// Two runs do not see each other's entries, and an unknown run loads empty.
pub async fn runs_are_isolated(journal: &dyn Journal) {
    let who = format!("{journal:?}");
    let a = fresh_run("isolated-a");
    let b = fresh_run("isolated-b");
    assert_eq!(
        load(journal, &a).await,
        [],
        "{who}: an unknown run loads empty"
    );
    let a1 = entry(&a, 1, JournalEvent::RunResumed);
    let b1 = entry(&b, 1, escalated(1));
    let a2 = entry(&a, 2, escalated(2));
    append(journal, &a1).await;
    append(journal, &b1).await;
    append(journal, &a2).await;
    assert_eq!(
        load(journal, &a).await,
        [a1, a2],
        "{who}: run {a} holds its own entries only"
    );
    assert_eq!(
        load(journal, &b).await,
        [b1],
        "{who}: run {b} holds its own entries only (the same seq in another run is fine)"
    );
    assert_eq!(
        load(journal, &fresh_run("unknown")).await,
        [],
        "{who}: an unknown run still loads empty"
    );
    let runs = journal
        .runs()
        .await
        .unwrap_or_else(|e| panic!("{who}: runs: {e}"));
    assert!(
        runs.contains(&a) && runs.contains(&b),
        "{who}: runs lists both runs: {runs:?}"
    );
    assert!(
        runs.windows(2).all(|w| w[0] < w[1]),
        "{who}: runs are listed once each, in id order: {runs:?}"
    );
}

/// An entry whose `seq` is not greater than the run's last one is refused as a
/// conflict and changes nothing: two writers can never interleave, a stale one
/// cannot overwrite.
pub async fn seq_must_increase(journal: &dyn Journal) {
    let who = format!("{journal:?}");
    let run = fresh_run("seq");
    let stored = vec![
        entry(&run, 1, JournalEvent::RunResumed),
        entry(&run, 3, escalated(3)),
    ];
    for e in &stored {
        append(journal, e).await;
    }
    for (seq, what) in [
        (3, "a duplicate seq"),
        (2, "a lower seq"),
        (1, "the first seq"),
    ] {
        expect_kind(
            journal.append(&entry(&run, seq, escalated(99))).await,
            ErrorKind::Conflict,
            &format!("{who}: appending {what} ({seq}) after seq 3"),
        );
        assert_eq!(
            load(journal, &run).await,
            stored,
            "{who}: a refused append ({what}) leaves the run unchanged"
        );
    }
    let next = entry(&run, 4, escalated(4));
    append(journal, &next).await;
    assert_eq!(
        seqs(&load(journal, &run).await),
        [1, 3, 4],
        "{who}: the next seq is accepted after refusals"
    );
}

/// `tasks` appenders per run, on two runs at once, each taking the next seq and
/// appending under the run's one lock (as the engine does): every entry lands, in
/// seq order, in its own run.
pub async fn concurrent_appends(journal: &dyn Journal, tasks: usize) {
    let who = format!("{journal:?}");
    let runs = [fresh_run("concurrent-a"), fresh_run("concurrent-b")];
    let next: [tokio::sync::Mutex<u64>; 2] = Default::default();
    let appends = (0..tasks).flat_map(|task| {
        runs.iter().zip(&next).map(move |(run, next)| async move {
            let mut seq = next.lock().await;
            *seq += 1;
            // Yield while holding the lock, so the other tasks really contend.
            tokio::task::yield_now().await;
            let result = journal.append(&entry(run, *seq, escalated(task))).await;
            (*seq, result)
        })
    });
    for (seq, result) in join_all(appends).await {
        expect_ok(result, &format!("{who}: concurrent append of seq {seq}"));
    }
    for run in &runs {
        let entries = load(journal, run).await;
        let expected: Vec<u64> = (1..=u64::try_from(tasks).expect("few tasks")).collect();
        assert_eq!(
            seqs(&entries),
            expected,
            "{who}: every concurrent append to {run} landed, in seq order"
        );
        let mut from: Vec<String> = entries
            .iter()
            .map(|e| match &e.event {
                JournalEvent::Escalated { dedup_key, .. } => dedup_key.clone(),
                other => panic!("{who}: {run} holds an entry it was not sent: {other:?}"),
            })
            .collect();
        from.sort();
        from.dedup();
        assert_eq!(
            from.len(),
            tasks,
            "{who}: {run} holds one entry from each task"
        );
    }
}

/// A torn last entry (a crash mid-write) is left out of `load`, and the appends that
/// follow (a resumed run going on from the last complete entry) load back whole: the
/// fragment never ends up in the middle.
pub async fn torn_tail(journal: &dyn Journal, damage: &dyn JournalDamage) {
    let who = format!("{journal:?}");
    let run = fresh_run("torn");
    let kept = vec![
        entry(&run, 1, JournalEvent::RunResumed),
        entry(&run, 2, escalated(2)),
    ];
    for e in &kept {
        append(journal, e).await;
    }
    append(journal, &entry(&run, 3, escalated(3))).await;
    damage.tear_last_line(&run);
    assert_eq!(
        load(journal, &run).await,
        kept,
        "{who}: a torn last entry is left out"
    );

    let mut after = kept.clone();
    after.push(entry(&run, 3, JournalEvent::RunResumed));
    after.push(entry(
        &run,
        4,
        JournalEvent::RunFinished {
            status: RunStatus::Succeeded,
        },
    ));
    for e in &after[2..] {
        append(journal, e).await;
    }
    assert_eq!(
        load(journal, &run).await,
        after,
        "{who}: appends after a torn entry load back, without the fragment"
    );
    // And again: the repaired journal stays readable on every later load.
    assert_eq!(load(journal, &run).await, after, "{who}: a second load");
}

/// A damaged entry before the last is an error of kind invalid input naming the
/// line, never silently skipped: the run's history would be wrong.
pub async fn damaged_line(journal: &dyn Journal, damage: &dyn JournalDamage) {
    let who = format!("{journal:?}");
    let run = fresh_run("damaged");
    for (seq, event) in [
        (1, JournalEvent::RunResumed),
        (2, escalated(2)),
        (3, escalated(3)),
    ] {
        append(journal, &entry(&run, seq, event)).await;
    }
    damage.damage_line(&run, 2);
    let err = expect_kind(
        journal.load(&run).await,
        ErrorKind::InvalidInput,
        &format!("{who}: load with line 2 damaged"),
    );
    assert!(
        err.to_string().contains("line 2"),
        "{who}: the error names the damaged line: {err}"
    );
}
