//! Each playbook procedure, run by the engine on the in-memory fleet.

mod common;

use std::time::Duration;

use common::*;
use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::engine::*;
use meshos_rollback_core::memory::RestoredFrom;
use meshos_rollback_core::model::RollbackTarget;
use meshos_rollback_core::provider::*;
use meshos_rollback_core::testing::fleet;
use secrecy::ExposeSecret;

#[tokio::test(start_paused = true)]
async fn single_region_is_excluded_rolled_back_verified_and_readmitted() {
    let s = scenario(&["us-east-1", "us-west-2", "eu-west-1", "eu-central-1"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    assert_eq!(s.current(&r), fleet::BAD);
    let engine = s.engine();
    let plan = engine.plan(&single_region_spec(&s, &r)).await.unwrap();
    let kinds: Vec<&str> = plan.regions()[0]
        .steps
        .iter()
        .map(|p| p.step.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            "exclude-region",
            "roll-back-deployment",
            "wait-stable",
            "verify",
            "check-other-regions",
            "readmit-region"
        ]
    );
    assert_eq!(
        plan.regions()[0].versions.current.as_deref(),
        Some(fleet::BAD)
    );
    assert_eq!(
        plan.regions()[0].versions.target.as_deref(),
        Some(fleet::GOOD)
    );

    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    assert_eq!(s.current(&r), fleet::GOOD);
    assert_eq!(
        s.weight(&r).await,
        100,
        "re-admitted at its previous weight"
    );
    let steps = &report.region(&r).unwrap().steps;
    assert!(matches!(
        steps[0].outcome,
        Some(StepOutcome::Excluded {
            previous_weight: 100,
            ..
        })
    ));
    // The region left routing before the deployment changed.
    assert!(steps[0].finished_at <= steps[1].started_at);
    match &steps[3].outcome {
        Some(StepOutcome::Verified { outcome }) => {
            assert!(outcome.passed);
            assert_eq!(
                outcome.metric_checks, 16,
                "15 minutes checked every minute, both ends"
            );
            assert_eq!(outcome.held_for, Duration::from_secs(900));
        }
        other => panic!("{other:?}"),
    }
    match &steps[4].outcome {
        Some(StepOutcome::OtherRegionsChecked { regions }) => {
            assert_eq!(regions.len(), 3);
            assert!(
                regions[0].starts_with("us-west-2: 2/2 endpoints healthy, error rate 0.04%"),
                "{regions:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(s.world.escalator.history().is_empty(), "nothing to page");
}

#[tokio::test(start_paused = true)]
async fn a_region_whose_verification_fails_stays_out_of_routing() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    s.world
        .health
        .set_status("https://us-east-1.meshos.io/api/v1/status", 503);
    let engine = s.engine();
    let plan = engine.plan(&single_region_spec(&s, &r)).await.unwrap();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        step_statuses(&report, &r),
        vec![
            ("exclude-region".into(), StepStatus::Succeeded),
            ("roll-back-deployment".into(), StepStatus::Succeeded),
            ("wait-stable".into(), StepStatus::Succeeded),
            ("verify".into(), StepStatus::Failed),
            ("check-other-regions".into(), StepStatus::Skipped),
            ("readmit-region".into(), StepStatus::Skipped),
        ]
    );
    assert_eq!(
        s.weight(&r).await,
        0,
        "a region that did not recover stays excluded"
    );
    let verify = &report.region(&r).unwrap().steps[3];
    assert!(
        verify
            .note
            .as_deref()
            .unwrap()
            .contains("the rollback did NOT fix it: FAIL: us-east-1 /api/v1/status HTTP 503"),
        "{verify:?}"
    );
    // On-call was paged, once, for this incident and region (a re-planned run of the
    // same incident re-triggers the same page).
    let pages = s.world.escalator.open_pages();
    assert_eq!(pages.len(), 1);
    let (key, page) = pages.into_iter().next().unwrap();
    assert_eq!(key, "meshos-rollback/INC-20251030-001/us-east-1");
    assert_eq!(page.severity, meshos_rollback_core::model::Severity::High);
}

#[tokio::test(start_paused = true)]
async fn traffic_shifts_to_the_stable_target_group() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let spec = quick(RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(&r))
            .shifting_traffic(fleet::LISTENER, fleet::STABLE_TG),
    ]));
    let engine = s.engine();
    let report = engine
        .execute(engine.plan(&spec).await.unwrap(), s.manual_for(&r))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    let w = s
        .world
        .region(&r)
        .traffic
        .weights(&fleet::LISTENER.into())
        .await
        .unwrap();
    assert_eq!(traffic_share(&w, &fleet::STABLE_TG.into()), 1.0);
    match &report.region(&r).unwrap().steps[0].outcome {
        Some(StepOutcome::TrafficShifted { previous, health }) => {
            assert_eq!(
                previous,
                &vec![
                    TargetWeight::new(fleet::STABLE_TG, 90),
                    TargetWeight::new(fleet::CANARY_TG, 10)
                ]
            );
            assert!(health.all_healthy());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn traffic_is_not_shifted_to_a_target_with_no_healthy_backend() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let t = &s.world.region(&r).traffic;
    for b in ["10.0.1.10:8080", "10.0.2.10:8080"] {
        t.set_backend_health(
            &fleet::STABLE_TG.into(),
            b,
            "unhealthy",
            Some("Target.FailedHealthChecks"),
        )
        .unwrap();
    }
    let spec = quick(RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(&r))
            .shifting_traffic(fleet::LISTENER, fleet::STABLE_TG),
    ]));
    let engine = s.engine();
    let report = engine
        .execute(engine.plan(&spec).await.unwrap(), s.manual_for(&r))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let w = t.weights(&fleet::LISTENER.into()).await.unwrap();
    assert_eq!(
        traffic_share(&w, &fleet::STABLE_TG.into()),
        0.9,
        "weights untouched"
    );
    let note = report.region(&r).unwrap().steps[0].note.clone().unwrap();
    assert!(note.contains("refusing to shift all traffic"), "{note}");
}

#[tokio::test(start_paused = true)]
async fn known_good_image_is_retagged_and_redeployed() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let spec = quick(RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(&r)).with_deployment(
            DeploymentAction::RedeployImage {
                container: Some("api".into()),
                image: "meshos/mesh-kernel:sha-abc123".into(),
                retag: Some(RetagSpec {
                    repository: "meshos/mesh-kernel".into(),
                    source: ImageRef::Tag("sha-abc123".into()),
                    tag: "latest".into(),
                }),
            },
        ),
    ]));
    let engine = s.engine();
    let plan = engine.plan(&spec).await.unwrap();
    let kinds: Vec<&str> = plan.regions()[0]
        .steps
        .iter()
        .map(|p| p.step.kind())
        .collect();
    assert_eq!(
        kinds,
        ["retag-image", "redeploy-image", "wait-stable", "verify"]
    );
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    let latest = s
        .world
        .registry
        .resolve("meshos/mesh-kernel", &ImageRef::Tag("latest".into()))
        .await
        .unwrap();
    assert_eq!(latest, "sha256:0a1b2c3d");
    let h = s
        .world
        .region(&r)
        .deployer
        .revisions(&fleet::api(&r))
        .await
        .unwrap();
    assert_eq!(
        h.current.image.as_deref(),
        Some("meshos/mesh-kernel:sha-abc123")
    );
}

#[tokio::test(start_paused = true)]
async fn dns_record_points_back_at_the_previous_load_balancer() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let current = DnsTarget::Alias {
        hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
        dns_name: "meshos-new.elb.amazonaws.com".into(),
        evaluate_target_health: true,
    };
    let previous = DnsTarget::Alias {
        hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
        dns_name: "meshos-previous.elb.amazonaws.com".into(),
        evaluate_target_health: true,
    };
    s.world
        .dns
        .add_record("api-direct.meshos.io", current.clone());
    let mut region_spec =
        RegionSpec::new(r.clone(), fleet::api(&r)).with_deployment(DeploymentAction::None);
    region_spec.dns = Some(DnsSpec {
        record: "api-direct.meshos.io".into(),
        target: previous.clone(),
    });
    let spec = quick(RollbackSpec::new(vec![region_spec]));
    let engine = s.engine();
    let report = engine
        .execute(engine.plan(&spec).await.unwrap(), s.manual_for(&r))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    assert_eq!(
        s.world.dns.record("api-direct.meshos.io").await.unwrap(),
        Some(previous)
    );
    match &report.region(&r).unwrap().steps[0].outcome {
        Some(StepOutcome::DnsPointed {
            previous: Some(was),
            ..
        }) => assert_eq!(was, &current),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn schema_rollback_reverts_the_last_batch_after_the_application() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let spec = quick(RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(&r)).rolling_back_schema(MigrationTarget::LastBatch),
    ]));
    let engine = s.engine();
    let plan = engine.plan(&spec).await.unwrap();
    let kinds: Vec<&str> = plan.regions()[0]
        .steps
        .iter()
        .map(|p| p.step.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            "roll-back-deployment",
            "wait-stable",
            "roll-back-schema",
            "verify"
        ]
    );
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    let status = s.world.region(&r).migrator.status().await.unwrap();
    assert_eq!(status.version(), Some("20251001_init"));
}

/// An engine holding the connection-string template `url` as secret `meshos-db-url`.
fn engine_with_db_url(s: &Scenario, url: &str) -> Engine {
    Engine::builder(s.world.providers())
        .with_clock(s.clock.clone())
        .with_secret("meshos-db-url", url.to_owned().into())
        .ephemeral()
        .build()
        .unwrap()
}

/// Restores the region's database from its latest snapshot, switching the connection.
async fn restore_latest_snapshot(
    s: &Scenario,
    r: &meshos_rollback_core::model::Region,
) -> RunReport {
    let engine = engine_with_db_url(s, "postgresql://app:pw-1234@{host}:{port}/meshos");
    let plan = engine
        .plan(&db_spec(r, RestoreFrom::LatestSnapshot))
        .await
        .unwrap();
    engine.execute(plan, s.manual_for(r)).await.unwrap()
}

fn db_spec(r: &meshos_rollback_core::model::Region, from: RestoreFrom) -> RollbackSpec {
    quick(RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(r))
            .with_deployment(DeploymentAction::None)
            .restoring_database(DatabaseSpec {
                accept_data_after_incident: false,
                source: fleet::database(r),
                target: DbInstanceId::new(format!("meshos-db-{r}-restored")),
                from,
                connection: Some(ConnectionSwitch {
                    env_var: "DATABASE_URL".into(),
                    container: Some("api".into()),
                    template_secret: "meshos-db-url".into(),
                }),
            }),
    ]))
}

#[tokio::test(start_paused = true)]
async fn point_in_time_restore_goes_to_a_new_instance_and_switches_the_connection() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    tokio::time::sleep(Duration::from_secs(3600)).await; // 11:00: the incident began at 10:30.
    let incident_start: jiff::Timestamp = "2025-10-30T10:30:00Z".parse().unwrap();
    let restore_to: jiff::Timestamp = "2025-10-30T10:00:00Z".parse().unwrap();
    let source_before = s
        .world
        .region(&r)
        .database
        .instance(&fleet::database(&r))
        .await
        .unwrap();
    let engine = engine_with_db_url(&s, "postgresql://app:Tr0ub4dor@{host}:{port}/meshos");
    let plan = engine
        .plan(&db_spec(
            &r,
            RestoreFrom::PointInTime(RestorePoint::At(restore_to)),
        ))
        .await
        .unwrap();
    let kinds: Vec<&str> = plan.regions()[0]
        .steps
        .iter()
        .map(|p| p.step.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            "restore-database",
            "switch-connection",
            "wait-stable",
            "verify"
        ]
    );
    let mut request = s.manual_for(&r);
    request.incident.started_at = incident_start;
    let started = tokio::time::Instant::now();
    let report = engine.execute(plan, request).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    assert!(
        started.elapsed() >= Duration::from_secs(300),
        "the restore took its 5 minutes"
    );

    let target = DbInstanceId::new("meshos-db-us-east-1-restored");
    let db = &s.world.region(&r).database;
    assert_eq!(
        db.restored_from(&target),
        Some(RestoredFrom::PointInTime(fleet::database(&r), restore_to))
    );
    assert_eq!(
        db.instance(&fleet::database(&r)).await.unwrap(),
        source_before,
        "source untouched"
    );
    let env = s.world.region(&r).deployer.env(&fleet::api(&r)).unwrap();
    assert_eq!(
        env["DATABASE_URL"].expose_secret(),
        "postgresql://app:Tr0ub4dor@meshos-db-us-east-1-restored.us-east-1.db.in-memory:5432/meshos"
    );
    match &report.region(&r).unwrap().steps[0].outcome {
        Some(StepOutcome::DatabaseRestored {
            data_loss, adopted, ..
        }) => {
            assert_eq!(data_loss.data_as_of, restore_to);
            assert_eq!(data_loss.before_incident, Duration::from_secs(1800));
            assert!(!adopted);
        }
        other => panic!("{other:?}"),
    }
    assert!(report.incident_report().contains("Database restored into new instance meshos-db-us-east-1-restored in us-east-1: data as of 2025-10-30T10:00:00Z, 30m before the incident began"));
}

#[tokio::test(start_paused = true)]
async fn snapshot_restore_uses_the_newest_snapshot() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let report = restore_latest_snapshot(&s, &r).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    match &report.region(&r).unwrap().steps[0].outcome {
        Some(StepOutcome::DatabaseRestored {
            snapshot,
            data_loss,
            ..
        }) => {
            assert_eq!(
                snapshot.as_deref(),
                Some("meshos-db-us-east-1-before-v2-5-0")
            );
            assert_eq!(data_loss.data_as_of.to_string(), "2025-10-30T09:00:00Z");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_restore_never_overwrites_an_existing_instance() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    s.world
        .region(&r)
        .database
        .add_instance("meshos-db-us-east-1-restored", s.clock.now());
    let report = restore_latest_snapshot(&s, &r).await;
    assert_eq!(report.status, RunStatus::Failed);
    let step = &report.region(&r).unwrap().steps[0];
    assert!(
        step.note
            .as_deref()
            .unwrap()
            .contains("already exists and was created not by a rollback run"),
        "{step:?}"
    );
    // The connection string was not switched.
    assert!(
        s.world
            .region(&r)
            .deployer
            .env(&fleet::api(&r))
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn impossible_plans_are_refused_before_anything_runs() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    // No load balancer, no DNS: every problem is listed at once.
    let providers = Providers::new().with_region(
        r.clone(),
        RegionProviders::new(s.world.region(&r).deployer.clone()),
    );
    let engine = s.engine_with(providers);
    let spec = RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(&r))
            .excluding_from(fleet::API_RECORD)
            .shifting_traffic(fleet::LISTENER, fleet::STABLE_TG),
    ]);
    let err = engine.plan(&spec).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Precondition);
    let missing = |provider: &str| PlanProblem::MissingProvider {
        region: Some(r.clone()),
        provider: provider.into(),
        needed_for: match provider {
            "DnsSwitcher" => "excluding the region from routing".into(),
            _ => "shifting traffic".into(),
        },
    };
    assert_eq!(
        err.plan_problems().unwrap(),
        [
            missing("DnsSwitcher"),
            missing("TrafficShifter"),
            PlanProblem::NoPreviousRevision {
                region: r.clone(),
                service: fleet::api(&r),
            },
            // Verification is on, but with no provider nothing could be checked.
            PlanProblem::NothingToVerify { region: r.clone() },
        ],
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("us-east-1: excluding the region from routing needs a DnsSwitcher"),
        "{err}"
    );

    let full = s.engine();
    let twice = RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(&r)),
        RegionSpec::new(r.clone(), fleet::api(&r)),
    ]);
    assert_eq!(
        full.plan(&twice).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    let mut onto_source = db_spec(&r, RestoreFrom::LatestSnapshot);
    onto_source.regions[0].database.as_mut().unwrap().target = fleet::database(&r);
    let err = full.plan(&onto_source).await.unwrap_err();
    let problems = err.plan_problems().unwrap();
    assert!(
        problems.contains(&PlanProblem::RestoreOntoSource {
            region: r.clone(),
            target: fleet::database(&r),
        }),
        "{err}"
    );
    assert!(
        problems.contains(&PlanProblem::UnknownSecret {
            region: r.clone(),
            name: "meshos-db-url".into(),
        }),
        "{err}"
    );
    // RDS compares identifiers case-insensitively: the upper-case name is the source.
    onto_source.regions[0].database.as_mut().unwrap().target =
        fleet::database(&r).as_str().to_ascii_uppercase().into();
    let err = full.plan(&onto_source).await.unwrap_err();
    assert!(
        err.plan_problems()
            .unwrap()
            .iter()
            .any(|p| matches!(p, PlanProblem::RestoreOntoSource { .. })),
        "{err}"
    );

    // A service with a single revision has nothing to roll back to.
    let fresh = RollbackSpec::new(vec![RegionSpec::new(r.clone(), fleet::api(&r))]);
    let err = full.plan(&fresh).await.unwrap_err();
    assert_eq!(
        err.plan_problems().unwrap(),
        [PlanProblem::NoPreviousRevision {
            region: r.clone(),
            service: fleet::api(&r),
        }],
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_dry_run_lists_every_step_with_its_provider() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let plan = s.engine().plan(&single_region_spec(&s, &r)).await.unwrap();
    let text = plan.to_string();
    for line in [
        "1. take the region out of routing (api.meshos.io weight 100 -> 0)  [InMemoryDnsSwitcher(Z0MESHOSIO); deadline 10m]",
        "2. roll back ecs:meshos-us-east-1/meshos-api: v2.5.0 -> v2.4.9  [InMemoryDeployer(us-east-1); deadline 5m]",
        "3. wait until ecs:meshos-us-east-1/meshos-api is stable  [InMemoryDeployer(us-east-1); deadline 30m]",
        "4. verify: 2 health endpoint(s), smoke tests, metrics under limits, customer reports  [engine; deadline 30m]",
        "5. check that other regions stay healthy: us-west-2  [engine; deadline 10m]",
        "6. re-admit the region to routing (api.meshos.io weight -> 100, its weight when planned)  [InMemoryDnsSwitcher(Z0MESHOSIO); deadline 10m]",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // Planning changed nothing.
    assert_eq!(s.current(&r), fleet::BAD);
    assert_eq!(s.weight(&r).await, 100);
}

#[tokio::test(start_paused = true)]
async fn an_explicit_revision_outside_the_history_is_a_warning_not_a_surprise() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let spec = RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(&r)).with_deployment(DeploymentAction::RollBack {
            to: RollbackTarget::Revision("v1.0.0".into()),
        }),
    ]);
    let plan = s.engine().plan(&spec).await.unwrap();
    assert!(
        plan.warnings()[0].contains("revision v1.0.0 is not in the recent history"),
        "{:?}",
        plan.warnings()
    );
}
