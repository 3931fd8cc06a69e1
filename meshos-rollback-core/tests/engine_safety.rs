//! The engine's safety invariants, each tried as an adversarial user would: never act
//! twice, never act on the wrong thing, never claim what was not checked, the journal
//! as the source of truth, nothing waits forever. Every test here failed before its
//! fix.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use meshos_rollback_core::engine::*;
use meshos_rollback_core::layer::{Fault, FaultLayer, FaultPlan, FaultRule};
use meshos_rollback_core::memory::{InMemoryDnsSwitcher, InMemoryLock};
use meshos_rollback_core::model::{Region, ServiceId, ServiceRef};
use meshos_rollback_core::provider::*;
use meshos_rollback_core::testing::fleet;
use meshos_rollback_core::{Error, ErrorKind, Result};

fn schema_spec(r: &Region) -> RollbackSpec {
    quick(RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(r))
            .with_deployment(DeploymentAction::None)
            .rolling_back_schema(MigrationTarget::LastBatch)
            .without_verification(),
    ]))
}

async fn applied(s: &Scenario, r: &Region) -> Vec<String> {
    s.world
        .region(r)
        .migrator
        .status()
        .await
        .unwrap()
        .applied
        .into_iter()
        .map(|m| m.name)
        .collect()
}

// ------------------------------------------------------------------ never act twice

#[tokio::test(start_paused = true)]
async fn a_plan_runs_once_so_last_batch_is_never_reverted_twice() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let engine = s.engine();
    let plan = engine.plan(&schema_spec(&r)).await.unwrap();
    // "last batch" is pinned to names in the plan and its dry run.
    assert!(
        plan.to_string()
            .contains("roll back schema: last batch = [20251030_add_feature_column]"),
        "{plan}"
    );
    let again = plan.clone();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    assert_eq!(applied(&s, &r).await, ["20251001_init"]);

    // Executing the same plan again is refused: it would revert the batch before.
    let err = engine.execute(again, s.manual_for(&r)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("call resume("), "{err}");
    assert_eq!(applied(&s, &r).await, ["20251001_init"], "nothing reverted");
}

#[tokio::test(start_paused = true)]
async fn a_pinned_batch_already_reverted_is_a_no_op() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let engine = s.engine();
    let plan = engine.plan(&schema_spec(&r)).await.unwrap();
    // Someone reverts the batch by hand between the plan and the run.
    s.world
        .region(&r)
        .migrator
        .roll_back(&MigrationTarget::LastBatch)
        .await
        .unwrap();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    assert_eq!(
        applied(&s, &r).await,
        ["20251001_init"],
        "init is untouched"
    );
    match &report.regions[0].steps[0].outcome {
        Some(StepOutcome::SchemaRolledBack {
            reverted,
            already_reverted,
            ..
        }) => {
            assert!(reverted.is_empty(), "{reverted:?}");
            assert_eq!(already_reverted, &["20251030_add_feature_column"]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_migration_applied_after_the_plan_stops_the_schema_step() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let engine = s.engine();
    let plan = engine.plan(&schema_spec(&r)).await.unwrap();
    s.world.region(&r).migrator.apply_batch(&["20251101_newer"]);
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let note = report.regions[0].steps[0].note.clone().unwrap();
    assert!(
        note.contains("20251101_newer was applied after the plan was made"),
        "{note}"
    );
    assert_eq!(applied(&s, &r).await.len(), 3, "nothing was reverted");
}

/// Fails the `fail_on`-th roll_back call, as a migration tool that dies mid-batch.
#[derive(Debug)]
struct FailingMigrator {
    inner: Arc<dyn SchemaMigrator>,
    calls: AtomicU32,
    fail_on: u32,
}

impl std::fmt::Display for FailingMigrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl SchemaMigrator for FailingMigrator {
    async fn status(&self) -> Result<SchemaStatus> {
        self.inner.status().await
    }
    async fn roll_back(&self, target: &MigrationTarget) -> Result<Vec<String>> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_on {
            return Err(Error::failed("migrator", "connection reset mid-batch"));
        }
        self.inner.roll_back(target).await
    }
}

#[tokio::test(start_paused = true)]
async fn resume_finishes_a_partly_reverted_batch_and_nothing_else() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let m = &s.world.region(&r).migrator;
    m.apply_batch(&["20251101_a", "20251101_b", "20251101_c"]);
    let mut providers = s.world.providers();
    providers.regions.get_mut(&r).unwrap().migrator = Some(Arc::new(FailingMigrator {
        inner: m.clone(),
        calls: AtomicU32::new(0),
        fail_on: 2,
    }));
    let engine = s.engine_with(providers);
    let plan = engine.plan(&schema_spec(&r)).await.unwrap();
    let run = plan.run_id().clone();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    // c was reverted, b failed, a is still applied.
    assert_eq!(
        applied(&s, &r).await,
        [
            "20251001_init",
            "20251030_add_feature_column",
            "20251101_a",
            "20251101_b"
        ]
    );
    let report = engine.resume(&run).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    // The rest of the pinned batch, and not one migration more.
    assert_eq!(
        applied(&s, &r).await,
        ["20251001_init", "20251030_add_feature_column"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_run_of_the_same_service_in_one_process_is_refused_before_it_starts() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let engine = s.engine();
    let first = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    let second = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    let first_id = first.run_id().clone();
    let (a, b) = tokio::join!(
        engine.execute(first, s.manual_for(&r)),
        engine.execute(second, s.manual_for(&r))
    );
    let report = a.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    let err = b.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("held by test-engine run {first_id}")),
        "names the holder and the run: {text}"
    );
}

// -------------------------------------------------------- never act on the wrong thing

#[tokio::test(start_paused = true)]
async fn a_region_already_out_of_routing_needs_an_explicit_readmit_weight() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    s.world
        .dns
        .set_region_weight(fleet::API_RECORD, &r, 0)
        .await
        .unwrap();
    let engine = s.engine();
    let err = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap_err();
    assert_eq!(
        err.plan_problems().unwrap(),
        [PlanProblem::NoReadmitWeight {
            region: r.clone(),
            record: fleet::API_RECORD.into(),
        }]
    );
    let mut spec = quick(single_region_spec(&s, &r));
    spec.regions[0].readmit_weight = Some(40);
    let plan = engine.plan(&spec).await.unwrap();
    assert!(
        plan.to_string()
            .contains("weight -> 40, readmit_weight in the spec"),
        "{plan}"
    );
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    assert_eq!(
        s.weight(&r).await,
        40,
        "re-admitted at a real weight, not 0"
    );
}

#[tokio::test(start_paused = true)]
async fn excluding_every_region_of_a_record_set_is_refused() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    for r in &s.regions {
        s.deploy_bad(r).await;
    }
    let spec = quick(RollbackSpec::new(
        s.regions
            .iter()
            .map(|r| RegionSpec::new(r.clone(), fleet::api(r)).excluding_from(fleet::API_RECORD))
            .collect(),
    ));
    let err = s.engine().plan(&spec).await.unwrap_err();
    assert_eq!(
        err.plan_problems().unwrap(),
        [PlanProblem::ExcludesEveryRegion {
            record: fleet::API_RECORD.into()
        }]
    );
}

fn restore_spec(r: &Region, accept: bool) -> RollbackSpec {
    quick(RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(r))
            .with_deployment(DeploymentAction::None)
            .without_verification()
            .restoring_database(DatabaseSpec {
                source: fleet::database(r),
                target: DbInstanceId::new(format!("meshos-db-{r}-restored")),
                from: RestoreFrom::LatestSnapshot,
                connection: None,
                accept_data_after_incident: accept,
            }),
    ]))
}

#[tokio::test(start_paused = true)]
async fn a_latest_snapshot_taken_after_the_incident_began_is_refused_unless_accepted() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let db = &s.world.region(&r).database;
    // A snapshot taken at 10:00; the incident began at 09:30: it holds the damage.
    db.take_snapshot(&fleet::database(&r), "during-the-incident")
        .unwrap();
    let mut request = s.manual_for(&r);
    request.incident.started_at = "2025-10-30T09:30:00Z".parse().unwrap();
    let engine = s.engine();
    let plan = engine.plan(&restore_spec(&r, false)).await.unwrap();
    assert!(
        plan.to_string()
            .contains("snapshot during-the-incident (data as of 2025-10-30T10:00:00Z)"),
        "the dry run shows what data comes back: {plan}"
    );
    let err = engine.execute(plan, request.clone()).await.unwrap_err();
    assert!(
        matches!(
            err.plan_problems().unwrap(),
            [PlanProblem::RestoreAfterIncident { .. }]
        ),
        "{err}"
    );
    let target = DbInstanceId::new(format!("meshos-db-{r}-restored"));
    assert!(db.instance(&target).await.unwrap_err().is_not_found());

    let plan = engine.plan(&restore_spec(&r, true)).await.unwrap();
    let report = engine.execute(plan, request).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
}

#[tokio::test(start_paused = true)]
async fn an_instance_another_run_created_is_never_adopted() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let db = &s.world.region(&r).database;
    let snap = db.snapshots(&fleet::database(&r)).await.unwrap()[0]
        .id
        .clone();
    let target = DbInstanceId::new(format!("meshos-db-{r}-restored"));
    let theirs = ResourceTags::from([
        (CREATED_BY_RUN.to_owned(), "rb-other-run".to_owned()),
        (
            CREATED_BY_STEP.to_owned(),
            "us-east-1/01-restore-database".to_owned(),
        ),
    ]);
    db.restore_snapshot(&snap, &target, &theirs).await.unwrap();
    let engine = s.engine();
    let plan = engine.plan(&restore_spec(&r, true)).await.unwrap();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let note = report.regions[0].steps[0].note.clone().unwrap();
    assert!(note.contains("created by run rb-other-run"), "{note}");
}

#[tokio::test(start_paused = true)]
async fn resume_against_other_providers_is_refused() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(s.world.providers())
        .with_clock(s.clock.clone())
        .with_journal_dir(dir.path())
        .build()
        .unwrap();
    let plan = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    let run = plan.run_id().clone();
    let control = RunControl::default();
    control.cancel.cancel();
    let report = engine
        .execute_with(plan, s.manual_for(&r), control)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Cancelled);
    drop(engine);

    // Another hosted zone: the same names, a different world.
    let mut other = s.world.providers();
    other.dns = Some(Arc::new(InMemoryDnsSwitcher::new(
        "Z0STAGING",
        s.clock.clone(),
    )));
    let engine = Engine::builder(other)
        .with_clock(s.clock.clone())
        .with_journal_dir(dir.path())
        .build()
        .unwrap();
    let err = engine.resume(&run).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Precondition, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("planned against InMemoryDnsSwitcher(Z0MESHOSIO), the engine now has InMemoryDnsSwitcher(Z0STAGING)"),
        "{text}"
    );
    assert_eq!(s.weight(&r).await, 100, "nothing was done");
}

// ------------------------------------------------------- never claim what was not checked

#[tokio::test(start_paused = true)]
async fn verification_with_nothing_to_check_is_refused_and_names_only_real_checks() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let mut providers = s.world.providers();
    providers.health = None;
    providers.metrics = None;
    providers.smoke = None;
    providers.reports = None;
    let spec = quick(RollbackSpec::new(vec![RegionSpec::new(
        r.clone(),
        fleet::api(&r),
    )]));
    let err = s
        .engine_with(providers.clone())
        .plan(&spec)
        .await
        .unwrap_err();
    assert_eq!(
        err.plan_problems().unwrap(),
        [PlanProblem::NothingToVerify { region: r.clone() }]
    );
    // With only a health checker, the step says so, and nothing more.
    providers.health = s.world.providers().health;
    let plan = s.engine_with(providers).plan(&spec).await.unwrap();
    assert!(
        plan.to_string()
            .contains("verify: 2 health endpoint(s)  [engine"),
        "{plan}"
    );
}

#[tokio::test(start_paused = true)]
async fn another_region_without_metrics_is_inconclusive_not_healthy() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let west = region("us-west-2");
    // A service the metrics source knows nothing about.
    let unknown = ServiceRef::new(west, ServiceId::ecs("meshos-us-west-2", "unmeasured"));
    let spec = quick(single_region_spec(&s, &r))
        .with_fleet(vec![ServiceRef::new(r.clone(), fleet::api(&r)), unknown]);
    let engine = s.engine();
    let plan = engine.plan(&spec).await.unwrap();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Failed, "{report}");
    let step = report.regions[0]
        .steps
        .iter()
        .find(|s| s.step.kind() == "check-other-regions")
        .unwrap();
    assert_eq!(step.status, StepStatus::Failed);
    let note = step.note.clone().unwrap();
    assert!(note.contains("no error-rate data"), "{note}");
    assert_eq!(s.weight(&r).await, 0, "not re-admitted on a guess");
}

#[tokio::test(start_paused = true)]
async fn paging_without_an_escalator_is_refused_and_a_failed_page_is_journalled() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let mut spec = quick(single_region_spec(&s, &r));
    spec.on_failure = PartialFailure::Escalate;
    let mut providers = s.world.providers();
    providers.escalator = None;
    let err = s.engine_with(providers).plan(&spec).await.unwrap_err();
    assert_eq!(
        err.plan_problems().unwrap(),
        [PlanProblem::NoEscalator {
            needed_for: "on_failure = \"escalate\" (comms.routes.region_failed)".into()
        }]
    );

    let faults = FaultPlan::new();
    faults.inject(FaultRule::always(Fault::Error(ErrorKind::PermissionDenied)).on("roll_back"));
    faults.inject(FaultRule::always(Fault::Error(ErrorKind::Transient)).on("trigger"));
    let engine = s.engine_with(s.world.layered_providers(FaultLayer::new(faults)));
    let plan = engine.plan(&spec).await.unwrap();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.failed_escalations.len(), 1, "{report:?}");
    let journalled = engine.report(&report.run_id).await.unwrap();
    assert_eq!(journalled.failed_escalations.len(), 1);
}

// ------------------------------------------------------ the journal is the source of truth

#[test]
fn an_engine_needs_an_explicit_journal() {
    let s = scenario(&["us-east-1"]);
    let err = Engine::builder(s.world.providers()).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let text = err.to_string();
    assert!(
        text.contains("with_journal_dir(..)") && text.contains("ephemeral()"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn secrets_never_reach_the_journal() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(s.world.providers())
        .with_clock(s.clock.clone())
        .with_journal_dir(dir.path())
        .with_secret("pager-token", "s3cr3t-t0ken".to_owned().into())
        .with_secret("quoted", r#"pa"ss\w0rd"#.to_owned().into())
        .build()
        .unwrap();
    let plan = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    let run = plan.run_id().clone();
    let mut request = s.manual_for(&r);
    // An operator pastes a token into the incident summary, and a password with a
    // quote and a backslash (escaped in the journal's JSON).
    request.incident.summary =
        r#"5xx after deploy; token s3cr3t-t0ken rotated; pa"ss\w0rd too"#.into();
    engine.execute(plan, request).await.unwrap();
    let text = std::fs::read_to_string(dir.path().join(format!("{run}.jsonl"))).unwrap();
    assert!(
        text.contains("token *** rotated") || text.contains("token [REDACTED] rotated"),
        "masked in the request"
    );
    assert!(
        !text.contains("s3cr3t-t0ken"),
        "the secret is in the journal"
    );
    assert!(
        !text.contains("w0rd"),
        "the quoted secret is in the journal"
    );
}

/// A journal whose writes of messages fail (a full disk when the status update lands).
#[derive(Debug, Default)]
struct MessagesFail(InMemoryJournal);

#[async_trait]
impl Journal for MessagesFail {
    async fn append(&self, entry: &JournalEntry) -> Result<()> {
        if matches!(entry.event, JournalEvent::MessageSent { .. }) {
            return Err(Error::failed("journal", "no space left on device"));
        }
        self.0.append(entry).await
    }
    async fn load(&self, run: &RunId) -> Result<Vec<JournalEntry>> {
        self.0.load(run).await
    }
    async fn runs(&self) -> Result<Vec<RunId>> {
        self.0.runs().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_journal_write_is_an_error_of_the_run() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let engine = Engine::builder(s.world.providers())
        .with_clock(s.clock.clone())
        .with_journal(Arc::new(MessagesFail::default()))
        .build()
        .unwrap();
    let plan = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::JournalFailed, "{report}");
    assert!(
        report.journal_errors[0].contains("no space left on device"),
        "{:?}",
        report.journal_errors
    );
}

// ---------------------------------------------------------------- nothing waits forever

#[tokio::test(start_paused = true)]
async fn a_hung_step_fails_at_its_deadline() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let faults = FaultPlan::new();
    faults.inject(FaultRule::always(Fault::Hang).on("wait_until_stable"));
    let engine = s.engine_with(s.world.layered_providers(FaultLayer::new(faults)));
    let mut spec = quick(single_region_spec(&s, &r));
    spec.deadlines.wait_stable = Some(Duration::from_secs(90));
    let plan = engine.plan(&spec).await.unwrap();
    assert!(plan.to_string().contains("deadline 1m 30s"), "{plan}");
    let started = tokio::time::Instant::now();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    assert!(started.elapsed() < Duration::from_secs(300));
    let step = &report.regions[0].steps[2];
    assert_eq!(step.step.kind(), "wait-stable");
    assert!(
        step.note
            .as_deref()
            .unwrap()
            .contains("timed out after 90s"),
        "{step:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_notifier_cannot_hold_the_run_open() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let faults = FaultPlan::new();
    faults.inject(FaultRule::always(Fault::Hang).on("send"));
    let engine = s.engine_with(s.world.layered_providers(FaultLayer::new(faults)));
    let plan = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    let report = tokio::time::timeout(
        Duration::from_secs(3600),
        engine.execute(plan, s.manual_for(&r)),
    )
    .await
    .expect("the run ends although every message hangs")
    .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
}

/// A lock whose renewals fail: `transient` times with a passing error, then lost.
#[derive(Debug)]
struct FlakyLock {
    inner: InMemoryLock,
    transient: AtomicU32,
    lost: bool,
    renewals: std::sync::Mutex<Vec<tokio::time::Instant>>,
}

impl std::fmt::Display for FlakyLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlakyLock")
    }
}

#[async_trait]
impl RollbackLock for FlakyLock {
    async fn acquire(&self, key: &LockKey, holder: &str, ttl: Duration) -> Result<Lease> {
        self.inner.acquire(key, holder, ttl).await
    }
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        self.renewals
            .lock()
            .unwrap()
            .push(tokio::time::Instant::now());
        if self
            .transient
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::transient("lock", "connection reset"));
        }
        if self.lost {
            return Err(Error::conflict("lock", "the lease was taken over"));
        }
        self.inner.renew(lease, ttl).await
    }
    async fn release(&self, lease: &Lease) -> Result<()> {
        self.inner.release(lease).await
    }
}

fn flaky(s: &Scenario, transient: u32, lost: bool) -> Arc<FlakyLock> {
    Arc::new(FlakyLock {
        inner: InMemoryLock::new(s.clock.clone()),
        transient: AtomicU32::new(transient),
        lost,
        renewals: std::sync::Mutex::new(Vec::new()),
    })
}

#[tokio::test(start_paused = true)]
async fn a_lost_lease_stops_the_run_at_the_next_step_boundary() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let lock = flaky(&s, 0, true);
    let engine = Engine::builder(s.world.providers())
        .with_clock(s.clock.clone())
        .with_lock(lock.clone())
        .with_lock_ttl(Duration::from_secs(30))
        .ephemeral()
        .build()
        .unwrap();
    let plan = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Halted, "{report}");
    assert_eq!(report.leases_lost.len(), 1, "journalled: {report:?}");
    let skipped: Vec<&StepReport> = report.regions[0]
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Skipped)
        .collect();
    assert!(!skipped.is_empty(), "{report}");
    assert!(
        skipped[0]
            .note
            .as_deref()
            .unwrap()
            .contains("the rollback lock was lost")
    );
    // No step was cut off half-way: each one before the loss finished.
    assert!(
        report.regions[0]
            .steps
            .iter()
            .all(|s| matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped)),
        "{report}"
    );
    // Nobody else would know the run stopped: on-call is paged.
    let pages = s.world.escalator.open_pages();
    let page = pages
        .get("meshos-rollback/INC-20251030-001/lock-lost")
        .unwrap_or_else(|| panic!("{pages:?}"));
    assert!(page.summary.contains("its lock was lost"), "{page:?}");
}

#[tokio::test(start_paused = true)]
async fn renewal_rides_out_transient_errors_and_never_waits_for_a_slow_notifier() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let lock = flaky(&s, 2, false);
    // Every message takes 5 minutes; the run holds verification for 15.
    let faults = FaultPlan::new();
    faults.inject(FaultRule::always(Fault::Latency(Duration::from_secs(300))).on("send"));
    let engine = Engine::builder(s.world.layered_providers(FaultLayer::new(faults)))
        .with_clock(s.clock.clone())
        .with_lock(lock.clone())
        .with_lock_ttl(Duration::from_secs(30))
        .with_notify_timeout(Duration::from_secs(600))
        .ephemeral()
        .build()
        .unwrap();
    let plan = engine.plan(&single_region_spec(&s, &r)).await.unwrap();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    let renewals = lock.renewals.lock().unwrap().clone();
    assert!(renewals.len() > 30, "{}", renewals.len());
    let longest = renewals.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        longest <= Duration::from_secs(11),
        "a renewal waited {longest:?}"
    );
}

// ------------------------------------------------------- a new plan after a failed run

/// A run of `spec` whose verification fails (a health endpoint answers 503).
async fn failed_run(s: &Scenario, engine: &Engine, spec: &RollbackSpec, r: &Region) -> RunId {
    let url = format!("https://{r}.meshos.io/health");
    s.world.health.set_status(&url, 503);
    let plan = engine.plan(spec).await.unwrap();
    let run = plan.run_id().clone();
    let report = engine.execute(plan, s.manual_for(r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Failed, "{report}");
    s.world.health.set_status(&url, 200);
    run
}

#[tokio::test(start_paused = true)]
async fn a_new_plan_after_a_failed_run_never_reverts_a_second_batch() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let engine = s.engine();
    let spec = quick(RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(&r))
            .with_deployment(DeploymentAction::None)
            .rolling_back_schema(MigrationTarget::LastBatch),
    ]));
    let first = failed_run(&s, &engine, &spec, &r).await;
    assert_eq!(applied(&s, &r).await, ["20251001_init"]);

    let err = engine.plan(&spec).await.unwrap_err();
    assert_eq!(
        err.plan_problems().unwrap(),
        [PlanProblem::SchemaRevertedByEarlierRun {
            region: r.clone(),
            run: first.to_string(),
            reverted: vec!["20251030_add_feature_column".into()],
        }],
        "{err}"
    );
    // Naming the migration is explicit; the dry run still shows what the earlier
    // run did.
    let mut named = spec.clone();
    named.regions[0].schema = Some(MigrationTarget::Named("20251030_add_feature_column".into()));
    let plan = engine.plan(&named).await.unwrap();
    let text = plan.to_string();
    assert!(
        text.contains(&format!(
            "earlier run: {first} (failed) in us-east-1 already did: us-east-1/01-roll-back-schema: reverted 1 migration(s) [20251030_add_feature_column]"
        )),
        "{text}"
    );
    assert_eq!(
        applied(&s, &r).await,
        ["20251001_init"],
        "planning changed nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_region_left_out_by_a_failed_run_is_readmitted_at_its_weight_before() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let engine = s.engine();
    let spec = quick(single_region_spec(&s, &r));
    let first = failed_run(&s, &engine, &spec, &r).await;
    assert_eq!(s.weight(&r).await, 0, "verification failed: left out");

    let plan = engine.plan(&spec).await.unwrap();
    let text = plan.to_string();
    assert!(
        text.contains(&format!(
            "weight -> 100, its weight before run {first} excluded it"
        )),
        "{text}"
    );
    // "Previous" is now the bad version: the plan keeps the earlier run's target.
    assert!(
        text.contains("roll back ecs:meshos-us-east-1/meshos-api: already at v2.4.9 (no-op)"),
        "{text}"
    );
    assert!(
        plan.warnings().iter().any(|w| w.contains(&format!(
            "run {first} already rolled ecs:meshos-us-east-1/meshos-api back to v2.4.9"
        ))),
        "{:?}",
        plan.warnings()
    );
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    assert_eq!(s.weight(&r).await, 100);
}

#[tokio::test(start_paused = true)]
async fn every_entry_carries_the_runs_lease_tokens_for_fencing() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let engine = s.engine();
    let plan = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    let run = plan.run_id().clone();
    engine.execute(plan, s.manual_for(&r)).await.unwrap();
    let entries = engine.journal().load(&run).await.unwrap();
    let key = LockKey::for_service(&ServiceRef::new(r.clone(), fleet::api(&r)));
    for e in &entries {
        assert_eq!(e.fence.len(), 1, "{e:?}");
        assert_eq!(e.fence[0].lock, key);
        assert!(!e.fence[0].token.is_empty());
    }
    // The lease was released at the end: the next run takes it at once.
    let plan = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    engine.execute(plan, s.manual_for(&r)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_redeploy_of_a_tag_this_run_moved_is_pinned_by_digest() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    // Retag the known-good image as `latest`, then redeploy `latest`: an unchanged
    // `:latest` would start no new tasks, so the redeploy names the digest.
    let spec = quick(RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(&r))
            .with_deployment(DeploymentAction::RedeployImage {
                container: Some("api".into()),
                image: "meshos/mesh-kernel:latest".into(),
                retag: Some(RetagSpec {
                    repository: "meshos/mesh-kernel".into(),
                    source: ImageRef::Tag("sha-abc123".into()),
                    tag: "latest".into(),
                }),
            })
            .without_verification(),
    ]));
    let engine = s.engine();
    let plan = engine.plan(&spec).await.unwrap();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    let h = s
        .world
        .region(&r)
        .deployer
        .revisions(&fleet::api(&r))
        .await
        .unwrap();
    assert_eq!(
        h.current.image.as_deref(),
        Some("meshos/mesh-kernel@sha256:0a1b2c3d")
    );
}
