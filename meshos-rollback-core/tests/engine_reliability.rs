//! The engine under failure: the gate, partial failure, crash and resume, locks,
//! faults, cancellation and deadlines.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use meshos_rollback_core::engine::*;
use meshos_rollback_core::layer::*;
use meshos_rollback_core::memory::InMemoryLock;
use meshos_rollback_core::model::{ServiceRef, Severity};
use meshos_rollback_core::provider::{DbInstanceId, DbRestorer, LockKey, RollbackLock};
use meshos_rollback_core::testing::fleet;
use meshos_rollback_core::{Error, ErrorKind};

#[tokio::test(start_paused = true)]
async fn a_manual_rollback_with_an_unchecked_item_does_not_start() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let engine = s.engine();
    type Unset = fn(PreRollbackChecklist) -> PreRollbackChecklist;
    let cases: [(&str, Unset); 4] = [
        ("checklist.incident_documented", |mut c| {
            c.incident_documented = None;
            c
        }),
        ("checklist.approval", |mut c| {
            c.approval = None;
            c
        }),
        ("checklist.customer_impact", |mut c| {
            c.customer_impact = None;
            c
        }),
        ("checklist.stakeholders_notified", |mut c| {
            c.stakeholders_notified = Some("  ".into());
            c
        }),
    ];
    for (item, unset) in cases {
        let plan = engine.plan(&single_region_spec(&s, &r)).await.unwrap();
        let run = plan.run_id().clone();
        let mut request = s.manual_for(&r);
        request.trigger = Trigger::Manual(unset(full_checklist()));
        let err = engine.execute(plan, request).await.unwrap_err();
        assert!(
            matches!(&err, Error::Precondition { what, .. } if what == item),
            "{item}: {err}"
        );
        assert!(err.to_string().contains("did not start"), "{err}");
        assert!(
            engine.journal().load(&run).await.unwrap().is_empty(),
            "nothing journalled"
        );
    }
    // Two missing items are both named.
    let plan = engine.plan(&single_region_spec(&s, &r)).await.unwrap();
    let mut request = s.manual_for(&r);
    request.trigger =
        Trigger::Manual(PreRollbackChecklist::new().approved_by("", ApproverRole::Manager));
    let err = engine.execute(plan, request).await.unwrap_err().to_string();
    assert!(
        err.contains("checklist.approval") && err.contains("checklist.incident_documented"),
        "{err}"
    );
    assert_eq!(s.current(&r), fleet::BAD, "nothing changed");
    assert_eq!(s.weight(&r).await, 100);
    assert!(s.world.notifier.messages().is_empty(), "no announcement");

    // A skipped backup is recorded as skipped, who approved is recorded.
    let plan = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    let gate = &report.gate;
    assert_eq!(gate.approval.as_ref().unwrap().by, "alice");
    assert_eq!(
        gate.items[5].status,
        "skipped: no time: error rate climbing"
    );
    assert_eq!(gate.items[2].status, "done: us-east-1: v2.5.0 -> v2.4.9");
}

#[tokio::test(start_paused = true)]
async fn an_automatic_rollback_needs_no_approval_but_records_why() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let engine = s.engine();
    let plan = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    let mut request = s.manual_for(&r);
    request.trigger = Trigger::Automatic { reason: " ".into() };
    let err = engine
        .execute(plan.clone(), request.clone())
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Precondition { what, .. } if what == "trigger.reason"));
    request.trigger = Trigger::Automatic {
        reason: "initiate rollback\n  - CPU 93.0% > 90.0%: initiate rollback".into(),
    };
    let report = engine.execute(plan, request).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(report.gate.kind, "automatic");
    assert!(
        report
            .gate
            .reason
            .as_deref()
            .unwrap()
            .contains("CPU 93.0% > 90.0%")
    );
    assert!(report.gate.approval.is_none());
    assert!(
        report
            .timeline()
            .iter()
            .any(|e| e.text == "Rollback initiated (automatic)")
    );
}

fn four_regions() -> Scenario {
    scenario(&["us-east-1", "us-west-2", "eu-west-1", "eu-central-1"])
}

fn spec_for(s: &Scenario, on_failure: PartialFailure, max_parallel: usize) -> RollbackSpec {
    let mut spec = quick(RollbackSpec::new(
        s.regions
            .iter()
            // Every region but one leaves routing first: excluding all of them would
            // leave an all-zero record set, which Route53 routes to all (refused).
            .map(|r| {
                let spec = RegionSpec::new(r.clone(), fleet::api(r));
                if r.as_str() == "eu-central-1" {
                    spec
                } else {
                    spec.excluding_from(fleet::API_RECORD)
                }
            })
            .collect(),
    ));
    spec.on_failure = on_failure;
    spec.max_parallel = max_parallel;
    spec
}

#[tokio::test(start_paused = true)]
async fn the_four_playbook_regions_roll_back_in_parallel_within_the_bound() {
    let s = four_regions();
    for r in &s.regions {
        s.deploy_bad(r).await;
    }
    let engine = s.engine();
    let plan = engine
        .plan(&spec_for(&s, PartialFailure::ContinueOthers, 2))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let report = engine.execute(plan, s.manual(&s.regions)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    // One region: exclusion sync 10 s, rollout 30 s (+ polling), 60 s window, re-admission
    // sync 10 s. Two waves of two regions.
    let one = started.elapsed() / 2;
    assert!(
        one >= Duration::from_secs(110) && one <= Duration::from_secs(130),
        "{:?}",
        started.elapsed()
    );
    for r in &s.regions {
        assert_eq!(s.current(r), fleet::GOOD);
        assert_eq!(s.weight(r).await, 100);
    }
    // Never more than two regions in flight: count overlapping region runs.
    let mut spans: Vec<(jiff::Timestamp, jiff::Timestamp)> = report
        .regions
        .iter()
        .map(|r| {
            (
                r.steps[0].started_at.unwrap(),
                r.steps.last().unwrap().finished_at.unwrap(),
            )
        })
        .collect();
    spans.sort();
    for (i, a) in spans.iter().enumerate() {
        let overlapping = spans
            .iter()
            .enumerate()
            .filter(|(j, b)| *j != i && b.0 < a.1 && a.0 < b.1)
            .count();
        assert!(overlapping <= 1, "{spans:?}");
    }
}

/// us-west-2's deployer refuses every rollback.
fn failing_us_west_2(s: &Scenario) -> Engine {
    let plan = FaultPlan::new();
    plan.inject(
        FaultRule::always(Fault::Error(ErrorKind::PermissionDenied))
            .on("roll_back")
            .on_provider("InMemoryDeployer(us-west-2)"),
    );
    s.engine_with(s.world.layered_providers(FaultLayer::new(plan)))
}

#[tokio::test(start_paused = true)]
async fn continue_others_lets_the_healthy_regions_finish() {
    let s = four_regions();
    for r in &s.regions {
        s.deploy_bad(r).await;
    }
    let engine = failing_us_west_2(&s);
    let plan = engine
        .plan(&spec_for(&s, PartialFailure::ContinueOthers, 4))
        .await
        .unwrap();
    let report = engine.execute(plan, s.manual(&s.regions)).await.unwrap();
    assert_eq!(report.status, RunStatus::PartiallyFailed);
    for r in &s.regions {
        let status = report.region(r).unwrap().status;
        if r.as_str() == "us-west-2" {
            assert_eq!(status, RegionStatus::Failed);
            assert_eq!(s.current(r), fleet::BAD);
            assert_eq!(
                s.weight(r).await,
                0,
                "excluded and left out: it is still broken"
            );
        } else {
            assert_eq!(status, RegionStatus::Succeeded, "{r}");
            assert_eq!(s.current(r), fleet::GOOD);
        }
    }
    let pages = s.world.escalator.open_pages();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages.values().next().unwrap().severity, Severity::High);
    let text = report.to_string();
    assert!(
        text.contains("[FAILED ] roll back ecs:meshos-us-west-2/meshos-api"),
        "{text}"
    );
    assert!(text.contains("permission denied"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn halt_others_stops_the_other_regions_at_a_step_boundary() {
    for (policy, severity) in [
        (PartialFailure::HaltOthers, Severity::High),
        (PartialFailure::Escalate, Severity::Critical),
    ] {
        let s = four_regions();
        for r in &s.regions {
            s.deploy_bad(r).await;
        }
        let engine = failing_us_west_2(&s);
        let plan = engine.plan(&spec_for(&s, policy, 4)).await.unwrap();
        let report = engine.execute(plan, s.manual(&s.regions)).await.unwrap();
        assert_eq!(report.status, RunStatus::Halted, "{policy:?}");
        for r in &s.regions {
            let region = report.region(r).unwrap();
            if r.as_str() == "us-west-2" {
                assert_eq!(region.status, RegionStatus::Failed);
                continue;
            }
            // The others were excluded and their rollback was in flight; they stop at the
            // next boundary with a consistent, recorded state.
            assert_eq!(region.status, RegionStatus::Stopped, "{r}");
            let last_done = region
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::Succeeded)
                .count();
            assert!(last_done >= 1, "{r}: {region:?}");
            for st in region
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::Skipped)
            {
                assert_eq!(
                    st.note.as_deref(),
                    Some("not run: halted after a failure in another region")
                );
            }
        }
        let pages = s.world.escalator.open_pages();
        assert_eq!(
            pages.values().next().unwrap().severity,
            severity,
            "{policy:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried_and_timeouts_fail_the_step() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let faults = FaultPlan::new();
    faults.inject(
        FaultRule::always(Fault::Error(ErrorKind::Transient))
            .on("roll_back")
            .times(2),
    );
    faults.inject(
        FaultRule::always(Fault::Error(ErrorKind::Transient))
            .on("set_region_weight")
            .times(1),
    );
    let layer = RetryLayer::new(
        RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        },
        RetryBudget::new(10, 0.1),
    )
    .around(TimeoutLayer::standard().around(FaultLayer::new(faults.clone())));
    let engine = s.engine_with(s.world.layered_providers(layer));
    let plan = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    assert_eq!(faults.injected().len(), 3);

    // A rollout that never settles hits the wait deadline.
    let s = scenario(&["us-east-1", "us-west-2"]);
    s.deploy_bad(&r).await;
    let faults = FaultPlan::new();
    faults.inject(FaultRule::always(Fault::Hang).on("wait_until_stable"));
    let layer = TimeoutLayer::standard()
        .with_deadline_for("wait_until_stable", Duration::from_secs(600))
        .around(FaultLayer::new(faults));
    let engine = s.engine_with(s.world.layered_providers(layer));
    let plan = engine
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let wait = &report.region(&r).unwrap().steps[2];
    assert_eq!(wait.status, StepStatus::Failed);
    assert!(
        wait.note
            .as_deref()
            .unwrap()
            .contains("wait_until_stable timed out after 600s"),
        "{wait:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(600));
}

#[tokio::test(start_paused = true)]
async fn a_second_rollback_of_the_same_service_is_refused_while_one_runs() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let lock: Arc<dyn RollbackLock> = Arc::new(InMemoryLock::new(s.clock.clone()));
    let mk = |holder: &str| {
        Engine::builder(s.world.providers())
            .with_clock(s.clock.clone())
            .with_lock(lock.clone())
            .with_holder(holder)
            .ephemeral()
            .build()
            .unwrap()
    };
    let (a, b) = (mk("deploy-tool-a"), mk("deploy-tool-b"));
    let plan_a = a.plan(&quick(single_region_spec(&s, &r))).await.unwrap();
    let plan_b = b.plan(&quick(single_region_spec(&s, &r))).await.unwrap();
    let first = a.execute(plan_a, s.manual_for(&r));
    let second = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        b.execute(plan_b, s.manual_for(&r)).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.unwrap().status, RunStatus::Succeeded);
    let err = second.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("held by deploy-tool-a"), "{err}");
    // Released when the first run ended: the next one may take it.
    let key = LockKey::for_service(&ServiceRef::new(r.clone(), fleet::api(&r)));
    let lease = lock
        .acquire(&key, "deploy-tool-b", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(lease.holder, "deploy-tool-b");
}

#[tokio::test(start_paused = true)]
async fn a_crashed_rollback_resumes_without_repeating_completed_steps() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let deployments_before = s
        .world
        .region(&r)
        .deployer
        .deployment_count(&fleet::api(&r))
        .unwrap();

    // First process: the rollout wait hangs, and the process dies mid-step.
    let faults = FaultPlan::new();
    faults.inject(
        FaultRule::always(Fault::Hang)
            .on("wait_until_stable")
            .times(1),
    );
    let first = Engine::builder(s.world.layered_providers(FaultLayer::new(faults)))
        .with_clock(s.clock.clone())
        .with_journal_dir(dir.path())
        .build()
        .unwrap();
    let plan = first
        .plan(&quick(single_region_spec(&s, &r)))
        .await
        .unwrap();
    let run_id = plan.run_id().clone();
    let crashed = tokio::time::timeout(
        Duration::from_secs(120),
        first.execute(plan, s.manual_for(&r)),
    )
    .await;
    assert!(crashed.is_err(), "the first process was killed mid-run");
    drop(first);
    assert_eq!(s.weight(&r).await, 0, "excluded before the crash");

    // Second process, same journal directory.
    let second = Engine::builder(s.world.providers())
        .with_clock(s.clock.clone())
        .with_journal_dir(dir.path())
        .build()
        .unwrap();
    let interrupted = second.report(&run_id).await.unwrap();
    assert_eq!(interrupted.status, RunStatus::Incomplete);
    let report = second.resume(&run_id).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    assert_eq!(report.resumes, 1);
    let attempts: Vec<(String, u32)> = report.regions[0]
        .steps
        .iter()
        .map(|s| (s.step.kind().to_owned(), s.attempts))
        .collect();
    assert_eq!(
        attempts,
        vec![
            ("exclude-region".into(), 1),
            ("roll-back-deployment".into(), 1),
            ("wait-stable".into(), 2),
            ("verify".into(), 1),
            ("check-other-regions".into(), 1),
            ("readmit-region".into(), 1),
        ]
    );
    assert_eq!(
        s.world
            .region(&r)
            .deployer
            .deployment_count(&fleet::api(&r))
            .unwrap(),
        deployments_before + 1,
        "rolled back exactly once"
    );
    assert_eq!(s.current(&r), fleet::GOOD);
    // Re-admitted at the weight recorded before the crash, not the 0 it found after.
    assert_eq!(s.weight(&r).await, 100);
    // Resuming a finished run changes nothing.
    let again = second.resume(&run_id).await.unwrap();
    assert_eq!(again, second.report(&run_id).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_restore_interrupted_after_it_started_adopts_its_instance_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    let spec = quick(RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(&r))
            .with_deployment(DeploymentAction::None)
            .restoring_database(DatabaseSpec {
                accept_data_after_incident: false,
                source: fleet::database(&r),
                target: DbInstanceId::new("meshos-db-us-east-1-restored"),
                from: RestoreFrom::LatestSnapshot,
                connection: None,
            }),
    ]));
    let faults = FaultPlan::new();
    faults.inject(FaultRule::always(Fault::Hang).on("wait_available").times(1));
    let first = Engine::builder(s.world.layered_providers(FaultLayer::new(faults)))
        .with_clock(s.clock.clone())
        .with_journal_dir(dir.path())
        .build()
        .unwrap();
    let plan = first.plan(&spec).await.unwrap();
    let run_id = plan.run_id().clone();
    let control = RunControl {
        deadline: Some(Duration::from_secs(60)),
        ..RunControl::default()
    };
    let report = first
        .execute_with(plan, s.manual_for(&r), control)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Cancelled);
    let step = &report.regions[0].steps[0];
    assert_eq!(step.status, StepStatus::Interrupted);
    assert!(
        step.note
            .as_deref()
            .unwrap()
            .contains("may or may not have taken effect")
    );

    // The first process is gone (its journal's file lock with it).
    drop(first);
    let second = Engine::builder(s.world.providers())
        .with_clock(s.clock.clone())
        .with_journal_dir(dir.path())
        .build()
        .unwrap();
    let report = second.resume(&run_id).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    match &report.regions[0].steps[0].outcome {
        Some(StepOutcome::DatabaseRestored { adopted, .. }) => assert!(*adopted),
        other => panic!("{other:?}"),
    }
    let db = &s.world.region(&r).database;
    let ids: Vec<String> = db.instance_ids().iter().map(ToString::to_string).collect();
    assert_eq!(
        ids,
        vec!["meshos-db-us-east-1", "meshos-db-us-east-1-restored"],
        "exactly one restore"
    );
    assert!(
        db.instance(&fleet::database(&r)).await.is_ok(),
        "source kept"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deadline_leaves_a_recorded_consistent_state() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let engine = s.engine();
    // Full 15-minute verification, but only 5 minutes allowed.
    let plan = engine.plan(&single_region_spec(&s, &r)).await.unwrap();
    let control = RunControl {
        deadline: Some(Duration::from_secs(300)),
        ..RunControl::default()
    };
    let report = engine
        .execute_with(plan, s.manual_for(&r), control)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(
        step_statuses(&report, &r),
        vec![
            ("exclude-region".into(), StepStatus::Succeeded),
            ("roll-back-deployment".into(), StepStatus::Succeeded),
            ("wait-stable".into(), StepStatus::Succeeded),
            ("verify".into(), StepStatus::Interrupted),
            ("check-other-regions".into(), StepStatus::Skipped),
            ("readmit-region".into(), StepStatus::Skipped),
        ]
    );
    assert_eq!(
        s.weight(&r).await,
        0,
        "not re-admitted without verification"
    );
    let text = report.to_string();
    assert!(text.contains("[CUT    ] verify"), "{text}");
    assert!(
        text.contains("[skipped] re-admit the region to routing"),
        "{text}"
    );
    let last = s.world.notifier.messages().pop().unwrap();
    assert!(
        last.text.starts_with("⏹ ROLLBACK CANCELLED"),
        "{}",
        last.text
    );
    assert!(last.text.contains("can be resumed"), "{}", last.text);
}
