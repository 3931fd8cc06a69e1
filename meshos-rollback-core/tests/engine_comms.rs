//! What the engine tells people, and what it never tells anyone: status updates on the
//! clock, the verification window, secrets, the exact incident report.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use jiff::Timestamp;
use meshos_rollback_core::engine::*;
use meshos_rollback_core::layer::{Layered, TraceLayer};
use meshos_rollback_core::memory::InMemoryDeployer;
use meshos_rollback_core::model::*;
use meshos_rollback_core::observation::Metrics;
use meshos_rollback_core::provider::*;
use meshos_rollback_core::testing::fleet;
use meshos_rollback_core::{Error, Result};
use secrecy::{ExposeSecret, SecretString};

#[tokio::test(start_paused = true)]
async fn status_updates_go_out_every_two_minutes_while_the_rollback_runs() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let engine = s.engine();
    let plan = engine.plan(&single_region_spec(&s, &r)).await.unwrap();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    let kinds: Vec<MessageKind> = report.messages.iter().map(|(_, k, _)| *k).collect();
    assert_eq!(kinds.first(), Some(&MessageKind::Announcement));
    assert_eq!(kinds.last(), Some(&MessageKind::Resolution));
    let updates: Vec<Timestamp> = report
        .messages
        .iter()
        .filter(|(_, k, _)| *k == MessageKind::StatusUpdate)
        .map(|(at, _, _)| *at)
        .collect();
    let took = report
        .finished_at
        .unwrap()
        .duration_since(report.started_at)
        .unsigned_abs();
    assert_eq!(
        updates.len() as u64,
        took.as_secs() / 120,
        "one per full 2 minutes of {took:?}"
    );
    let mut expected = report.started_at;
    for at in &updates {
        expected = expected
            .checked_add(jiff::SignedDuration::from_secs(120))
            .unwrap();
        assert_eq!(*at, expected, "exactly every 2 minutes");
    }
    let first = &report
        .messages
        .iter()
        .find(|(_, k, _)| *k == MessageKind::StatusUpdate)
        .unwrap()
        .2;
    // Planned: 10:22. The first three steps took less than estimated, so the ETA is
    // re-estimated from them (the 15-minute verification window is not shortened).
    assert!(first.starts_with("🔄 ROLLBACK STATUS 10:02 UTC (running 2m, ETA 10:16 UTC, re-estimated from 3 finished steps)\nus-east-1: 3/6 steps, now: verify"), "{first}");
    assert!(
        report.messages[0].2.contains("ETA: 10:22 UTC"),
        "the announcement has the plan's ETA: {}",
        report.messages[0].2
    );
    let finished = report.finished_at.unwrap().strftime("%H:%M").to_string();
    assert_eq!(finished, "10:16", "and the re-estimate was right");
    // The same messages reached the channel.
    assert_eq!(s.world.notifier.messages().len(), report.messages.len());
}

#[tokio::test(start_paused = true)]
async fn verification_holds_the_metrics_for_the_window_and_fails_on_a_breach() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    // A service whose metrics follow a script rather than its revision.
    let checkout = ServiceId::ecs("meshos-us-east-1", "checkout");
    let d = &s.world.region(&r).deployer;
    d.set_rollout_time(Duration::ZERO);
    d.add_service(&checkout, "app", 2, Revision::new("1"));
    d.deploy(&checkout, Revision::new("2")).unwrap();
    let sref = ServiceRef::new(r.clone(), checkout.clone());
    let start = s.clock.now();
    s.world.metrics.set_baseline(&sref, fleet::healthy());
    s.world.metrics.record(&sref, start, fleet::healthy());
    let at = |secs: i64| {
        start
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap()
    };
    s.world.metrics.record(
        &sref,
        at(390),
        Metrics {
            error_rate_pct: Some(0.4),
            ..fleet::healthy()
        },
    );
    let engine = s.engine();
    let spec = RollbackSpec::new(vec![RegionSpec::new(r.clone(), checkout.clone())]);
    let report = engine
        .execute(engine.plan(&spec).await.unwrap(), s.manual_for(&r))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let verify = &report.region(&r).unwrap().steps[2];
    match &verify.outcome {
        Some(StepOutcome::Verified { outcome }) => {
            assert!(!outcome.passed);
            assert_eq!(
                outcome.metric_checks, 8,
                "checks at 0..=7 minutes, the 8th sees the breach"
            );
            assert_eq!(outcome.held_for, Duration::from_secs(360));
            assert_eq!(
                outcome.problems,
                vec![
                    "metrics over the limits after 7m: FAIL: error rate 0.400% (limit < 0.1%)"
                        .to_owned()
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        verify
            .finished_at
            .unwrap()
            .duration_since(verify.started_at.unwrap())
            .unsigned_abs(),
        Duration::from_secs(420)
    );

    // With no breach the window is held for its full 15 minutes.
    let s2 = scenario(&["us-east-1"]);
    let d2 = &s2.world.region(&r).deployer;
    d2.set_rollout_time(Duration::ZERO);
    d2.add_service(&checkout, "app", 2, Revision::new("1"));
    d2.deploy(&checkout, Revision::new("2")).unwrap();
    s2.world.metrics.set_baseline(&sref, fleet::healthy());
    s2.world
        .metrics
        .record(&sref, s2.clock.now(), fleet::healthy());
    let engine = s2.engine();
    let started = tokio::time::Instant::now();
    let report = engine
        .execute(engine.plan(&spec).await.unwrap(), s2.manual_for(&r))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    assert_eq!(started.elapsed(), Duration::from_secs(900));

    // No data at all is a failure, never a pass.
    let s3 = scenario(&["us-east-1"]);
    let d3 = &s3.world.region(&r).deployer;
    d3.add_service(&checkout, "app", 2, Revision::new("1"));
    d3.deploy(&checkout, Revision::new("2")).unwrap();
    let engine = s3.engine();
    let report = engine
        .execute(engine.plan(&spec).await.unwrap(), s3.manual_for(&r))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let note = report.region(&r).unwrap().steps[2].note.clone().unwrap();
    assert!(note.contains("no metric data for error rate"), "{note}");
}

/// A backend that quotes the value it was given in its error, as some APIs do.
#[derive(Debug)]
struct QuotingDeployer(Arc<InMemoryDeployer>);

impl std::fmt::Display for QuotingDeployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuotingDeployer")
    }
}

#[async_trait]
impl Deployer for QuotingDeployer {
    fn capabilities(&self) -> DeployerCapabilities {
        self.0.capabilities()
    }
    async fn revisions(&self, s: &ServiceId) -> Result<RevisionHistory> {
        self.0.revisions(s).await
    }
    async fn roll_back(&self, s: &ServiceId, t: &RollbackTarget) -> Result<RevisionChange> {
        self.0.roll_back(s, t).await
    }
    async fn rollout_status(&self, s: &ServiceId) -> Result<RolloutStatus> {
        self.0.rollout_status(s).await
    }
    async fn wait_until_stable(&self, s: &ServiceId) -> Result<RolloutStatus> {
        self.0.wait_until_stable(s).await
    }
    async fn set_env(&self, _s: &ServiceId, var: &EnvVar) -> Result<RevisionChange> {
        let v = var.value.expose_secret();
        let password = v
            .split(':')
            .nth(2)
            .and_then(|p| p.split('@').next())
            .unwrap_or_default();
        Err(Error::failed(
            self,
            format!(
                "container rejected {}={v}; password {password} has a forbidden character",
                var.name
            ),
        ))
    }
    async fn set_image(&self, s: &ServiceId, u: &ImageUpdate) -> Result<RevisionChange> {
        self.0.set_image(s, u).await
    }
    async fn instances(&self, s: &ServiceId) -> Result<Vec<Instance>> {
        self.0.instances(s).await
    }
}

#[tokio::test(start_paused = true)]
async fn secrets_never_reach_the_journal_messages_reports_or_logs() {
    let logs = Captured::default();
    let _guard = logs.install();

    let dir = tempfile::tempdir().unwrap();
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let password = "Sup3r-S3cret-Pa55";
    let template = format!("postgresql://meshos:{password}@{{host}}:{{port}}/meshos");
    let rendered = format!(
        "postgresql://meshos:{password}@meshos-db-us-east-1-restored.us-east-1.db.in-memory:5432/meshos"
    );
    let redactor = meshos_rollback_core::redact::Redactor::new();
    let deployer: Arc<dyn Deployer> = Arc::new(Layered::new(
        Arc::new(QuotingDeployer(s.world.region(&r).deployer.clone())) as Arc<dyn Deployer>,
        TraceLayer::redacting(redactor.clone()),
    ));
    let mut providers = s.world.providers();
    providers.regions.get_mut(&r).unwrap().deployer = deployer;
    let engine = Engine::builder(providers)
        .with_clock(s.clock.clone())
        .with_journal_dir(dir.path())
        .with_redactor(redactor)
        .with_secret("meshos-db-url", SecretString::from(template.clone()))
        .build()
        .unwrap();
    let spec = quick(RollbackSpec::new(vec![
        RegionSpec::new(r.clone(), fleet::api(&r))
            .with_deployment(DeploymentAction::None)
            .restoring_database(DatabaseSpec {
                accept_data_after_incident: false,
                source: fleet::database(&r),
                target: DbInstanceId::new("meshos-db-us-east-1-restored"),
                from: RestoreFrom::LatestSnapshot,
                connection: Some(ConnectionSwitch {
                    env_var: "DATABASE_URL".into(),
                    container: None,
                    template_secret: "meshos-db-url".into(),
                }),
            }),
    ]));
    let plan = engine.plan(&spec).await.unwrap();
    let dry_run = plan.to_string();
    let report = engine.execute(plan, s.manual_for(&r)).await.unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let failure = report.region(&r).unwrap().steps[1].note.clone().unwrap();
    assert!(
        failure.contains("container rejected DATABASE_URL=***;"),
        "{failure}"
    );
    assert!(
        failure.contains("password *** has a forbidden character"),
        "{failure}"
    );

    let journal =
        std::fs::read_to_string(dir.path().join(format!("{}.jsonl", report.run_id))).unwrap();
    let messages: Vec<String> = s
        .world
        .notifier
        .messages()
        .into_iter()
        .map(|m| m.text)
        .collect();
    let pages: Vec<String> = s
        .world
        .escalator
        .open_pages()
        .values()
        .map(|p| format!("{p:?}"))
        .collect();
    let log_text = logs.text();
    assert!(
        log_text.contains("container rejected"),
        "the failure was logged"
    );
    for (what, text) in [
        ("dry run", dry_run),
        ("journal", journal),
        ("report", report.to_string()),
        ("incident report", report.incident_report()),
        ("e-mail", report.stakeholder_email()),
        ("messages", messages.join("\n")),
        ("pages", pages.join("\n")),
        ("logs", log_text),
    ] {
        assert!(
            !text.contains(password),
            "{what} leaks the password:\n{text}"
        );
        assert!(
            !text.contains(&rendered),
            "{what} leaks the connection string"
        );
        assert!(!text.contains(&template), "{what} leaks the template");
    }
}

#[tokio::test(start_paused = true)]
async fn the_incident_report_and_email_follow_the_playbook_templates_exactly() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    let t = |hm: &str| -> Timestamp { format!("2025-10-30T{hm}:00Z").parse().unwrap() };
    s.deploy_bad(&r).await;
    // 10:08: decision to roll back; the run starts at 10:10.
    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_secs(600 - 35)).await;
    assert_eq!(s.clock.now().strftime("%H:%M:%S").to_string(), "10:10:00");
    let engine = s.engine();
    let plan = engine.plan(&single_region_spec(&s, &r)).await.unwrap();
    let request = RollbackRequest {
        incident: Incident {
            id: "INC-20251030-001".into(),
            severity: Severity::High,
            summary: "High error rate detected".into(),
            started_at: t("10:00"),
            regions: vec![r.clone()],
        },
        trigger: Trigger::Manual(full_checklist()),
        prior_events: vec![
            TimelineEntry::new(t("10:00"), "Deployment v2.5.0 completed"),
            TimelineEntry::new(t("10:05"), "Alert triggered - error rate 5%"),
            TimelineEntry::new(t("10:08"), "Decision to rollback"),
        ],
    };
    let report = engine.execute(plan, request).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(
        report.incident_report(),
        "## Incident Summary

- **Incident ID**: INC-20251030-001
- **Severity**: High
- **Affected Region(s)**: us-east-1
- **Duration**: 10:00 UTC - 10:25 UTC (25 minutes)
- **Customer Impact**: ~150 customers experienced elevated error rates

## Timeline

- 10:00 UTC: Deployment v2.5.0 completed
- 10:05 UTC: Alert triggered - error rate 5%
- 10:08 UTC: Decision to rollback
- 10:10 UTC: Rollback initiated (manual, approved by alice as on-call engineer)
- 10:10 UTC: Announcement sent to incident-channel
- 10:10 UTC: Rollback completed
- 10:25 UTC: Health checks passing
- 10:26 UTC: Resolution sent to incident-channel

## Root Cause

[To be completed after investigation]

## Resolution

Rolled back to v2.4.9 using manual rollback procedure.

## Follow-up Actions

- [ ] Complete root cause analysis
- [ ] Fix identified bug
- [ ] Add additional test coverage
- [ ] Update deployment procedures
- [ ] Schedule post-mortem meeting
"
    );
    assert_eq!(
        report.stakeholder_email(),
        "Subject: [RESOLVED] Service Incident - Region us-east-1

We experienced a service disruption in the us-east-1 region from 10:00-10:25 UTC.

Impact: Approximately 150 customers may have experienced elevated error rates.

Resolution: We rolled back to the previous stable version and all systems are now operating normally.

We are conducting a thorough investigation and will provide a detailed post-mortem within 48 hours.

If you experienced any issues, please contact support@meshos.io.
"
    );
    let announcement = &s.world.notifier.messages()[0].text;
    assert_eq!(
        announcement,
        "🔄 ROLLBACK IN PROGRESS\nRegion: us-east-1\nReason: High error rate detected\nStarted: 10:10 UTC\nETA: 10:32 UTC\nStatus updates every 2 minutes"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unresolved_incident_gets_an_honest_email() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    s.world
        .health
        .set_status("https://us-east-1.meshos.io/health", 502);
    let engine = s.engine();
    let report = engine
        .execute(
            engine
                .plan(&quick(single_region_spec(&s, &r)))
                .await
                .unwrap(),
            s.manual_for(&r),
        )
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let email = report.stakeholder_email();
    assert!(
        email.starts_with("Subject: [ONGOING] Service Incident - Region us-east-1"),
        "{email}"
    );
    assert!(
        email.contains("has not yet restored normal operation"),
        "{email}"
    );
    assert!(!email.contains("operating normally"), "{email}");
    let incident = report.incident_report();
    assert!(
        incident.contains("- **Duration**: 10:00 UTC - ongoing\n"),
        "{incident}"
    );
    assert!(incident.contains("did not complete (failed)"), "{incident}");
    let resolution = s.world.notifier.messages().last().unwrap().text.clone();
    assert!(
        resolution.starts_with(
            "❌ ROLLBACK FAILED\nRegion: us-east-1\nus-east-1: the rollback did NOT fix it"
        ),
        "{resolution}"
    );
}

#[tokio::test(start_paused = true)]
async fn data_corruption_pages_on_call_at_critical_severity_with_every_finding() {
    use meshos_rollback_core::decision::{Action, DecisionMatrix};
    use meshos_rollback_core::engine::comms::escalation_for_decision;

    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let engine = s.engine();
    let policy = meshos_rollback_core::decision::RollbackPolicy::default();
    let observation = engine
        .observe(
            &ServiceRef::new(r.clone(), fleet::api(&r)),
            Duration::from_secs(300),
            &policy,
        )
        .await
        .unwrap()
        .with_sla_violation(false)
        .with_data_corruption(true);
    let decision = DecisionMatrix::default().evaluate(&observation);
    assert_eq!(decision.action(), Some(Action::StopAndEscalate));
    let incident = s.incident(std::slice::from_ref(&r));
    let page = escalation_for_decision(&incident, &r, &decision);
    assert!(
        engine.escalate(&page).await.unwrap(),
        "an escalator is configured"
    );
    let open = s.world.escalator.open_pages();
    let sent = &open["meshos-rollback/INC-20251030-001/us-east-1"];
    assert_eq!(sent.severity, Severity::Critical);
    assert_eq!(
        sent.summary,
        "us-east-1: stop all deployments, escalate (High error rate detected)"
    );
    let findings: Vec<&String> = sent
        .details
        .iter()
        .filter(|(k, _)| k.starts_with("finding_"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        findings,
        vec![
            "error rate 6.20% > 1.00%: monitor closely",
            "error rate 6.20% > 5.00%: initiate rollback",
            "P95 latency 410 ms > 240 ms (2.0 x baseline 120 ms): monitor closely",
            "P95 latency 410 ms > 360 ms (3.0 x baseline 120 ms): initiate rollback",
            "data corruption detected: stop all deployments, escalate",
        ]
    );
}
