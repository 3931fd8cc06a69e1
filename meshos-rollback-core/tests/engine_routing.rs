//! Who is told what (playbook § Emergency Contacts), on tokio's paused clock: the
//! incident channel, on-call paged once per incident and region, the escalation
//! ladder (manager at 15 minutes, VP at 30), the stakeholder e-mail, pages resolved
//! after a verified rollback, change events, bad routes refused at plan time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::engine::routing::{Channel, ContactSpec};
use meshos_rollback_core::engine::*;
use meshos_rollback_core::layer::{Fault, FaultLayer, FaultPlan, FaultRule};
use meshos_rollback_core::memory::{InMemoryEscalator, InMemoryNotifier};
use meshos_rollback_core::model::ServiceRef;
use meshos_rollback_core::provider::MessageKind;
use meshos_rollback_core::testing::fleet;

/// The playbook's contacts, each an in-memory channel of its own.
struct Contacts {
    slack: Arc<InMemoryNotifier>,
    manager_dm: Arc<InMemoryNotifier>,
    email: Arc<InMemoryNotifier>,
    oncall: Arc<InMemoryEscalator>,
    vp_pager: Arc<InMemoryEscalator>,
}

impl Contacts {
    fn new() -> Self {
        Contacts {
            slack: Arc::new(InMemoryNotifier::new()),
            manager_dm: Arc::new(InMemoryNotifier::new()),
            email: Arc::new(InMemoryNotifier::new()),
            oncall: Arc::new(InMemoryEscalator::new()),
            vp_pager: Arc::new(InMemoryEscalator::new()),
        }
    }

    fn register(&self, p: Providers) -> Providers {
        p.with_channel("slack", Channel::Chat(self.slack.clone()))
            .with_channel("slack-manager", Channel::Chat(self.manager_dm.clone()))
            .with_channel("email", Channel::Chat(self.email.clone()))
            .with_channel("pagerduty", Channel::Pager(self.oncall.clone()))
            .with_channel("pagerduty-vp", Channel::Pager(self.vp_pager.clone()))
    }
}

fn contact(via: &str, mention: &[&str]) -> ContactSpec {
    ContactSpec {
        via: via.into(),
        mention: mention.iter().map(|m| (*m).to_owned()).collect(),
    }
}

/// The playbook's contacts as a spec would name them.
fn with_routes(mut spec: RollbackSpec) -> RollbackSpec {
    let c = &mut spec.comms;
    c.contacts = [
        ("incident-channel", contact("slack", &[])),
        ("on-call", contact("pagerduty", &[])),
        ("eng-manager", contact("slack-manager", &["<@UENGMGR01>"])),
        ("vp-engineering", contact("pagerduty-vp", &[])),
        (
            "customer-support",
            contact("slack", &["<!subteam^SUPPORT01>"]),
        ),
        (
            "security-incidents",
            contact("slack", &["<!subteam^SECURITY1>"]),
        ),
        ("stakeholders", contact("email", &[])),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_owned(), c))
    .collect();
    c.routes.unresolved = vec!["eng-manager".into(), "vp-engineering".into()];
    c.routes.customer_reports = vec!["customer-support".into()];
    c.routes.data_corruption = vec!["security-incidents".into(), "eng-manager".into()];
    c.routes.stakeholder_email = vec!["stakeholders".into()];
    spec
}

/// Verification held for 40 minutes, so the run outlives two rungs of the ladder.
fn long_verification(mut spec: RollbackSpec) -> RollbackSpec {
    spec.policy.verification = meshos_rollback_core::decision::VerificationLimits::builder()
        .with_window(Duration::from_secs(40 * 60), Duration::from_secs(60))
        .build()
        .unwrap();
    spec
}

fn two_region_spec(s: &Scenario) -> RollbackSpec {
    let mut spec = RollbackSpec::new(
        s.regions
            .iter()
            .map(|r| RegionSpec::new(r.clone(), fleet::api(r)))
            .collect(),
    );
    spec.on_failure = PartialFailure::ContinueOthers;
    spec
}

/// Both regions on the bad version; us-west-2's deployer refuses every rollback
/// until the fault plan is cleared; the playbook's contacts registered.
async fn us_west_2_failing() -> (Scenario, Contacts, Arc<FaultPlan>, Engine) {
    let s = scenario(&["us-east-1", "us-west-2"]);
    for r in &s.regions {
        s.deploy_bad(r).await;
    }
    let contacts = Contacts::new();
    let faults = FaultPlan::new();
    faults.inject(
        FaultRule::always(Fault::Error(ErrorKind::PermissionDenied))
            .on("roll_back")
            .on_provider("InMemoryDeployer(us-west-2)"),
    );
    let engine = s
        .engine_with(contacts.register(s.world.layered_providers(FaultLayer::new(faults.clone()))));
    (s, contacts, faults, engine)
}

#[tokio::test(start_paused = true)]
async fn a_failed_region_pages_on_call_once_and_the_ladder_reaches_the_manager_then_the_vp() {
    let (s, contacts, _faults, engine) = us_west_2_failing().await;
    let spec = with_routes(long_verification(two_region_spec(&s)));
    let started = s.clock.now();
    let report = engine
        .execute(engine.plan(&spec).await.unwrap(), s.manual(&s.regions))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::PartiallyFailed, "{report}");

    // The incident channel: the announcement first, status updates, the failure, the
    // outcome last; all of one incident (a threading notifier keeps them together).
    let channel = contacts.slack.messages();
    assert_eq!(channel[0].kind, MessageKind::Announcement);
    assert_eq!(channel.last().unwrap().kind, MessageKind::Resolution);
    assert!(
        channel
            .iter()
            .filter(|m| m.kind == MessageKind::StatusUpdate)
            .count()
            >= 19,
        "a status update every 2 minutes for 40 minutes"
    );
    assert!(channel.iter().all(|m| m.incident_id == "INC-20251030-001"));
    assert!(channel.iter().all(|m| m.mentions.is_empty()));
    // The default notifier and escalator are not routed any more.
    assert!(s.world.notifier.messages().is_empty());
    assert!(s.world.escalator.history().is_empty());

    // On-call: one page, keyed by incident and region.
    let key = "meshos-rollback/INC-20251030-001/us-west-2";
    assert_eq!(
        contacts
            .oncall
            .open_pages()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        vec![key.to_owned()]
    );
    assert_eq!(
        contacts.oncall.history(),
        vec![("trigger".to_owned(), key.to_owned())]
    );

    // The ladder: the manager by a mention at 15 minutes, the VP paged at 30.
    let to_manager = contacts.manager_dm.messages();
    assert_eq!(to_manager.len(), 1, "{to_manager:?}");
    assert_eq!(to_manager[0].kind, MessageKind::Escalation);
    assert_eq!(to_manager[0].mentions, vec!["<@UENGMGR01>".to_owned()]);
    assert!(
        to_manager[0]
            .text
            .contains("still unresolved after 15 minutes"),
        "{}",
        to_manager[0].text
    );
    let vp = contacts.vp_pager.open_pages();
    assert_eq!(vp.len(), 1);
    let (vp_key, vp_page) = vp.into_iter().next().unwrap();
    assert_eq!(
        vp_key,
        "meshos-rollback/INC-20251030-001/unresolved/vp-engineering"
    );
    assert!(vp_page.summary.contains("after 30 minutes"), "{vp_page:?}");

    // When each was told, from the journal.
    let at = |to: &str, what: &str| {
        report
            .notifications
            .iter()
            .find(|n| n.to == to && n.what == what)
            .unwrap_or_else(|| panic!("{to} {what}: {:?}", report.notifications))
            .at
    };
    let minutes = |t: jiff::Timestamp| (t - started).as_secs() / 60;
    assert_eq!(minutes(at("eng-manager", "escalation")), 15);
    assert_eq!(minutes(at("vp-engineering", "page")), 30);

    // The incident report's timeline names each of them.
    let timeline: Vec<String> = report.timeline().into_iter().map(|e| e.text).collect();
    for line in [
        "Announcement sent to incident-channel",
        "Escalation sent to eng-manager",
        "Stakeholder e-mail sent to stakeholders",
    ] {
        assert!(timeline.iter().any(|t| t == line), "{line}: {timeline:#?}");
    }
    assert!(
        timeline
            .iter()
            .any(|t| t.starts_with("Escalated to on-call: Rollback step failed in us-west-2")),
        "{timeline:#?}"
    );
    assert!(
        timeline
            .iter()
            .any(|t| t.starts_with("Escalated to vp-engineering: Rollback for INC-20251030-001 still unresolved after 30 minutes")),
        "{timeline:#?}"
    );

    // Not resolved: the e-mail says ONGOING, and no page was resolved.
    let mail = contacts.email.messages();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].kind, MessageKind::StakeholderEmail);
    let subject = mail[0].subject.as_deref().unwrap();
    assert!(subject.starts_with("[ONGOING] "), "{subject}");
    assert!(
        !mail[0].text.starts_with("Subject:"),
        "the subject is not in the body"
    );
    assert!(report.open_pages().len() == 2);

    // Each pager's timeline shows the rollback start and end as change events.
    for pager in [&contacts.oncall, &contacts.vp_pager] {
        let changes: Vec<String> = pager
            .change_events()
            .into_iter()
            .map(|c| c.summary)
            .collect();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(
            changes[0].starts_with("Rollback started of us-east-1, us-west-2"),
            "{changes:?}"
        );
        assert!(
            changes[1].starts_with("Rollback finished (partially failed)"),
            "{changes:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_second_run_for_the_same_incident_re_triggers_the_same_page() {
    let (s, contacts, faults, engine) = us_west_2_failing().await;
    let spec = with_routes(quick(two_region_spec(&s)));
    for _ in 0..2 {
        let plan = engine.plan(&spec).await.unwrap();
        let report = engine.execute(plan, s.manual(&s.regions)).await.unwrap();
        assert_ne!(report.status, RunStatus::Succeeded);
    }
    // PagerDuty deduplicates on the key: two triggers, one incident.
    let key = "meshos-rollback/INC-20251030-001/us-west-2".to_owned();
    assert_eq!(contacts.oncall.open_pages().len(), 1);
    assert_eq!(
        contacts.oncall.history(),
        vec![
            ("trigger".to_owned(), key.clone()),
            ("trigger".to_owned(), key.clone())
        ]
    );
    // Fixed: a third, re-planned run succeeds and resolves the page the first two
    // opened, though it opened none itself.
    faults.clear();
    let plan = engine.plan(&spec).await.unwrap();
    let report = engine.execute(plan, s.manual(&s.regions)).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    assert!(contacts.oncall.open_pages().is_empty());
    assert_eq!(
        contacts.oncall.history().last().unwrap(),
        &("resolve".to_owned(), key)
    );
}

#[tokio::test(start_paused = true)]
async fn a_verified_rollback_resolves_the_pages_it_opened_and_mails_resolved() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let contacts = Contacts::new();
    let engine = s.engine_with(contacts.register(s.world.providers()));
    let mut spec = with_routes(long_verification(single_region_spec(&s, &r)));
    // The ladder's first rung is on-call itself.
    spec.comms.routes.unresolved = vec!["on-call".into()];
    let report = engine
        .execute(engine.plan(&spec).await.unwrap(), s.manual_for(&r))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    let key = "meshos-rollback/INC-20251030-001/unresolved/on-call".to_owned();
    assert_eq!(
        contacts.oncall.history(),
        vec![
            ("trigger".to_owned(), key.clone()),
            ("resolve".to_owned(), key.clone())
        ],
        "paged at 15 minutes, resolved once verified"
    );
    assert!(contacts.oncall.open_pages().is_empty());
    assert!(report.open_pages().is_empty());
    assert!(
        report
            .notifications
            .iter()
            .any(|n| n.what == "page resolved" && n.dedup_key.as_deref() == Some(key.as_str()))
    );
    let mail = contacts.email.messages();
    assert!(
        mail[0]
            .subject
            .as_deref()
            .unwrap()
            .starts_with("[RESOLVED] Service Incident - Region us-east-1"),
        "{:?}",
        mail[0].subject
    );
    assert!(
        mail[0]
            .text
            .starts_with("We experienced a service disruption in the us-east-1 region")
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_that_succeeds_resolves_the_page_of_its_failed_attempt() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let contacts = Contacts::new();
    let faults = FaultPlan::new();
    faults.inject(
        FaultRule::always(Fault::Error(ErrorKind::PermissionDenied))
            .on("roll_back")
            .on_provider("InMemoryDeployer(us-east-1)"),
    );
    let engine = s
        .engine_with(contacts.register(s.world.layered_providers(FaultLayer::new(faults.clone()))));
    let spec = with_routes(quick(RollbackSpec::new(vec![RegionSpec::new(
        r.clone(),
        fleet::api(&r),
    )])));
    let first = engine
        .execute(engine.plan(&spec).await.unwrap(), s.manual_for(&r))
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Failed);
    assert_eq!(contacts.oncall.open_pages().len(), 1);
    // On-call fixes the permissions and resumes.
    faults.clear();
    let resumed = engine.resume(&first.run_id).await.unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{resumed}");
    assert!(
        contacts.oncall.open_pages().is_empty(),
        "the page is resolved"
    );
    assert_eq!(
        contacts.oncall.history().last().unwrap(),
        &(
            "resolve".to_owned(),
            "meshos-rollback/INC-20251030-001/us-east-1".to_owned()
        )
    );
}

#[tokio::test(start_paused = true)]
async fn customers_still_reporting_after_the_rollback_reach_customer_support() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    // Nine reports in the last five minutes: above the playbook's 5.
    s.world.reports.report(&r, s.clock.now(), 9);
    let contacts = Contacts::new();
    let engine = s.engine_with(contacts.register(s.world.providers()));
    let spec = with_routes(quick(single_region_spec(&s, &r)));
    let report = engine
        .execute(engine.plan(&spec).await.unwrap(), s.manual_for(&r))
        .await
        .unwrap();
    assert_ne!(report.status, RunStatus::Succeeded);
    let told: Vec<_> = contacts
        .slack
        .messages()
        .into_iter()
        .filter(|m| m.mentions == vec!["<!subteam^SUPPORT01>".to_owned()])
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].text.contains("9 report(s), investigate above 5"),
        "{}",
        told[0].text
    );
}

#[tokio::test(start_paused = true)]
async fn data_corruption_reaches_security_and_the_manager_at_once() {
    use meshos_rollback_core::decision::DecisionMatrix;
    use meshos_rollback_core::observation::{Metrics, Observation};
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let contacts = Contacts::new();
    let engine = s.engine_with(contacts.register(s.world.providers()));
    let spec = with_routes(single_region_spec(&s, &r));
    let healthy = Metrics::new(0.1, 120.0, 40.0, 50.0, 200.0);
    let obs = Observation::new(healthy, healthy)
        .with_customer_reports(0)
        .with_sla_violation(false)
        .with_data_corruption(true);
    let decision = DecisionMatrix::default().evaluate(&obs);
    let told = engine
        .tell_decision(
            &spec.comms,
            &s.incident(std::slice::from_ref(&r)),
            &r,
            &decision,
        )
        .await;
    let names: Vec<&str> = told.iter().map(|t| t.to.as_str()).collect();
    assert_eq!(names, ["security-incidents", "eng-manager", "on-call"]);
    assert!(told.iter().all(|t| t.result.is_ok()));
    let security = contacts.slack.messages();
    assert_eq!(
        security[0].mentions,
        vec!["<!subteam^SECURITY1>".to_owned()]
    );
    assert!(
        security[0].text.contains("data corruption detected"),
        "{}",
        security[0].text
    );
    assert_eq!(
        contacts.manager_dm.messages()[0].mentions,
        vec!["<@UENGMGR01>".to_owned()]
    );
    // "Stop all deployments, escalate": on-call is paged as well.
    assert_eq!(contacts.oncall.open_pages().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn routes_that_reach_nobody_or_page_a_chat_message_are_refused_at_plan_time() {
    let s = scenario(&["us-east-1"]);
    let r = s.regions[0].clone();
    let contacts = Contacts::new();
    let engine = s.engine_with(contacts.register(s.world.providers()));
    let mut spec = with_routes(single_region_spec(&s, &r));
    spec.comms.routes.unresolved.push("cto".into());
    spec.comms
        .contacts
        .insert("vp-engineering".into(), contact("opsgenie", &[]));
    spec.comms.routes.status_update = vec!["on-call".into()];
    let err = engine.plan(&spec).await.unwrap_err();
    let problems = err.plan_problems().unwrap();
    let routes: Vec<(String, String)> = problems
        .iter()
        .filter_map(|p| match p {
            PlanProblem::BadRoute { field, contact, .. } => Some((field.clone(), contact.clone())),
            _ => None,
        })
        .collect();
    for expected in [
        ("comms.routes.unresolved", "cto"),
        ("comms.contacts.vp-engineering.via", "vp-engineering"),
        ("comms.routes.status_update", "on-call"),
    ] {
        assert!(
            routes.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {routes:?}"
        );
    }
    let text = err.to_string();
    assert!(text.contains("add it under comms.contacts"), "{text}");
    assert!(
        text.contains("Providers::with_channel(\"opsgenie\""),
        "{text}"
    );
    assert!(
        text.contains("route it to a chat or e-mail contact"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn routes_read_from_toml() {
    let spec = RollbackSpec::from_toml_str(
        r#"
[[regions]]
region = "us-east-1"
service = { kind = "ecs", cluster = "meshos-us-east-1", service = "meshos-api" }

[comms]
escalate_after = "10m"

[comms.contacts]
incident-channel = { via = "slack" }
eng-manager = { via = "slack", mention = ["<@UENGMGR01>"] }

[comms.routes]
unresolved = ["eng-manager"]
"#,
    )
    .unwrap();
    assert_eq!(spec.comms.escalate_after, Duration::from_secs(600));
    assert_eq!(spec.comms.routes.unresolved, vec!["eng-manager".to_owned()]);
    assert_eq!(
        spec.comms.routes.region_failed,
        vec!["on-call".to_owned()],
        "defaults kept"
    );
    assert_eq!(
        spec.comms.contacts["eng-manager"].mention,
        vec!["<@UENGMGR01>".to_owned()]
    );
    let err = RollbackSpec::from_toml_str(
        "[[regions]]\nregion = \"us-east-1\"\nservice = { kind = \"custom\", id = \"x\" }\n[comms.routes]\nunresolvd = []\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("unresolvd"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn an_incident_without_an_id_gets_the_next_of_the_day_from_the_journal() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    let engine = s.engine();
    assert_eq!(engine.next_incident_id().await.unwrap(), "INC-20251030-001");
    let spec = quick(single_region_spec(&s, &r));
    for expected in ["INC-20251030-001", "INC-20251030-002"] {
        s.deploy_bad(&r).await;
        let mut request = s.manual_for(&r);
        request.incident.id = String::new();
        let report = engine
            .execute(engine.plan(&spec).await.unwrap(), request)
            .await
            .unwrap();
        assert_eq!(report.request.incident.id, expected);
        assert!(
            s.world
                .notifier
                .messages()
                .iter()
                .all(|m| m.incident_id.starts_with("INC-20251030-"))
        );
    }
    // A given id is kept, and counts.
    let mut request = s.manual_for(&r);
    request.incident.id = "INC-20251030-007".into();
    s.deploy_bad(&r).await;
    engine
        .execute(engine.plan(&spec).await.unwrap(), request)
        .await
        .unwrap();
    assert_eq!(engine.next_incident_id().await.unwrap(), "INC-20251030-008");
}

#[tokio::test(start_paused = true)]
async fn an_automatic_run_measures_the_customer_impact_from_data() {
    use meshos_rollback_core::provider::MetricsSource;
    for reports in [150u32, 40] {
        let s = scenario(&["us-east-1", "us-west-2"]);
        let r = s.regions[0].clone();
        s.deploy_bad(&r).await;
        s.world.reports.report(&r, s.clock.now(), reports);
        let engine = s.engine();
        // No assessment in an automatic run: the engine measures it.
        let mut request = s.manual_for(&r);
        request.trigger = Trigger::Automatic {
            reason: "initiate rollback\n  - error rate 5.0% > 1.0%".into(),
        };
        let spec = quick(single_region_spec(&s, &r));
        let report = engine
            .execute(engine.plan(&spec).await.unwrap(), request)
            .await
            .unwrap();
        let impact = report.measured_impact.clone().expect("measured");
        assert_eq!(impact.customers, Some(reports));
        // The failed requests are the metrics source's error rate × request rate over
        // the time since the incident began, read now.
        let since = report.request.incident.started_at;
        let window = report
            .finished_at
            .unwrap()
            .duration_since(since)
            .unsigned_abs();
        let m = s
            .world
            .metrics
            .observe(&ServiceRef::new(r.clone(), fleet::api(&r)), window)
            .await
            .unwrap();
        let failed = (m.request_rate_rps.unwrap()
            * window.as_secs_f64()
            * m.error_rate_pct.unwrap()
            / 100.0)
            .round() as u64;
        let line = format!(
            "- **Customer Impact**: ~{reports} customers experienced elevated error rates (~{failed} failed requests since 10:00 UTC, {:.2}% of requests)",
            m.error_rate_pct.unwrap()
        );
        assert!(
            report.incident_report().contains(&line),
            "{line}\n{}",
            report.incident_report()
        );
        assert!(
            report.stakeholder_email().contains(&format!(
                "Approximately {reports} customers may have experienced elevated error rates"
            )),
            "{}",
            report.stakeholder_email()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_person_taking_over_acknowledges_the_runs_open_pages() {
    let (s, contacts, _faults, engine) = us_west_2_failing().await;
    let spec = with_routes(quick(two_region_spec(&s)));
    let report = engine
        .execute(engine.plan(&spec).await.unwrap(), s.manual(&s.regions))
        .await
        .unwrap();
    let key = "meshos-rollback/INC-20251030-001/us-west-2".to_owned();
    let told = engine.acknowledge_pages(&report.run_id).await.unwrap();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].to, "on-call");
    assert!(told[0].result.is_ok());
    assert_eq!(contacts.oncall.acknowledged(), vec![key.clone()]);
    assert_eq!(
        contacts.oncall.history().last().unwrap(),
        &("acknowledge".to_owned(), key)
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_keeps_its_place_on_the_ladder() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let contacts = Contacts::new();
    let engine = s.engine_with(contacts.register(s.world.providers()));
    let spec = with_routes(long_verification(single_region_spec(&s, &r)));
    let request = s.manual_for(&r);
    let incident_start = request.incident.started_at;
    // The deadline stops the first attempt at 20 minutes: the manager has been told.
    let control = RunControl {
        deadline: Some(Duration::from_secs(20 * 60)),
        ..RunControl::default()
    };
    let first = engine
        .execute_with(engine.plan(&spec).await.unwrap(), request, control)
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Cancelled, "{first}");
    assert_eq!(contacts.manager_dm.messages().len(), 1);
    assert!(contacts.vp_pager.open_pages().is_empty());
    let resumed = engine.resume(&first.run_id).await.unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{resumed}");
    assert_eq!(
        contacts.manager_dm.messages().len(),
        1,
        "the manager is not told a second time after the resume"
    );
    // The VP's rung is 30 minutes after the incident began, not after the resume.
    let vp = resumed
        .notifications
        .iter()
        .find(|n| n.to == "vp-engineering" && n.what == "page")
        .unwrap();
    assert_eq!((vp.at - incident_start).as_secs() / 60, 30);
    // Verified: the VP's page is resolved.
    assert!(contacts.vp_pager.open_pages().is_empty());
}

#[tokio::test(start_paused = true)]
async fn two_runs_started_at_once_get_different_incident_ids() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    for r in &s.regions {
        s.deploy_bad(r).await;
    }
    let engine = s.engine();
    let run = |r: &meshos_rollback_core::model::Region| {
        let (engine, spec) = (engine.clone(), quick(single_region_spec(&s, r)));
        let mut request = s.manual_for(r);
        request.incident.id = String::new();
        async move {
            let plan = engine.plan(&spec).await.unwrap();
            engine.execute(plan, request).await.unwrap()
        }
    };
    let (a, b) = tokio::join!(run(&s.regions[0]), run(&s.regions[1]));
    let mut ids = vec![a.request.incident.id.clone(), b.request.incident.id.clone()];
    ids.sort();
    assert_eq!(ids, ["INC-20251030-001", "INC-20251030-002"]);
}

/// A pager whose first `resolve` never answers, as a process killed in the middle of
/// it would leave things; later calls go through.
#[derive(Debug)]
struct FirstResolveHangs {
    inner: Arc<InMemoryEscalator>,
    hung: std::sync::atomic::AtomicBool,
    reached: Arc<tokio::sync::Notify>,
}

impl std::fmt::Display for FirstResolveHangs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FirstResolveHangs")
    }
}

#[async_trait::async_trait]
impl meshos_rollback_core::provider::Escalator for FirstResolveHangs {
    async fn trigger(
        &self,
        e: &meshos_rollback_core::provider::Escalation,
    ) -> meshos_rollback_core::Result<()> {
        self.inner.trigger(e).await
    }
    async fn resolve(&self, key: &str) -> meshos_rollback_core::Result<()> {
        if !self.hung.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.reached.notify_one();
            std::future::pending::<()>().await;
        }
        self.inner.resolve(key).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_crash_after_the_run_finished_leaves_its_page_and_email_to_the_resume() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let contacts = Contacts::new();
    let reached = Arc::new(tokio::sync::Notify::new());
    let pager = Arc::new(FirstResolveHangs {
        inner: contacts.oncall.clone(),
        hung: false.into(),
        reached: reached.clone(),
    });
    let providers = contacts
        .register(s.world.providers())
        .with_channel("pagerduty", Channel::Pager(pager));
    let engine = Engine::builder(providers)
        .with_clock(s.clock.clone())
        .with_notify_timeout(Duration::from_secs(24 * 3600))
        .ephemeral()
        .build()
        .unwrap();
    let mut spec = with_routes(long_verification(single_region_spec(&s, &r)));
    spec.comms.routes.unresolved = vec!["on-call".into()];
    let plan = engine.plan(&spec).await.unwrap();
    let run_id = plan.run_id().clone();
    let request = s.manual_for(&r);
    let task = tokio::spawn({
        let engine = engine.clone();
        async move { engine.execute(plan, request).await }
    });
    // The run finished and is resolving its page: the process dies there.
    reached.notified().await;
    task.abort();
    let _ = task.await;
    let before = engine.report(&run_id).await.unwrap();
    assert_eq!(before.status, RunStatus::Succeeded);
    assert_eq!(before.open_pages().len(), 1, "the page is still open");
    assert!(contacts.email.messages().is_empty(), "no e-mail yet");

    let after = engine.resume(&run_id).await.unwrap();
    assert_eq!(after.status, RunStatus::Succeeded);
    assert!(after.open_pages().is_empty());
    assert!(
        contacts.oncall.open_pages().is_empty(),
        "resolved by the resume"
    );
    assert_eq!(contacts.email.messages().len(), 1, "the e-mail, once");
    // A second resume has nothing left to tell.
    engine.resume(&run_id).await.unwrap();
    assert_eq!(contacts.email.messages().len(), 1);
    assert_eq!(
        contacts
            .oncall
            .history()
            .iter()
            .filter(|(a, _)| a == "resolve")
            .count(),
        1
    );
}

/// A notifier that threads as Slack does: the thread is known after the announcement.
#[derive(Debug, Default)]
struct Threading {
    inner: InMemoryNotifier,
    thread: std::sync::Mutex<Option<String>>,
    continued: std::sync::Mutex<Vec<(String, String)>>,
}

impl std::fmt::Display for Threading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Threading")
    }
}

#[async_trait::async_trait]
impl meshos_rollback_core::provider::Notifier for Threading {
    async fn send(
        &self,
        m: &meshos_rollback_core::provider::Message,
    ) -> meshos_rollback_core::Result<()> {
        {
            let mut thread = self.thread.lock().unwrap();
            if m.kind == MessageKind::Announcement && thread.is_none() {
                *thread = Some(format!("ts-of-{}", m.incident_id));
            }
        }
        self.inner.send(m).await
    }
    fn thread(&self, _: &str) -> Option<String> {
        self.thread.lock().unwrap().clone()
    }
    fn continue_thread(&self, incident: &str, thread: &str) {
        self.continued
            .lock()
            .unwrap()
            .push((incident.to_owned(), thread.to_owned()));
        *self.thread.lock().unwrap() = Some(thread.to_owned());
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_resumed_by_another_process_continues_the_announcements_thread() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
    let engine_with = |n: Arc<Threading>| {
        Engine::builder(s.world.providers().with_channel("slack", Channel::Chat(n)))
            .with_clock(s.clock.clone())
            .with_journal(journal.clone())
            .build()
            .unwrap()
    };
    let mut spec = long_verification(single_region_spec(&s, &r));
    spec.comms
        .contacts
        .insert("incident-channel".into(), contact("slack", &[]));
    let first_notifier = Arc::new(Threading::default());
    let first = engine_with(first_notifier.clone());
    let control = RunControl {
        deadline: Some(Duration::from_secs(5 * 60)),
        ..RunControl::default()
    };
    let report = first
        .execute_with(first.plan(&spec).await.unwrap(), s.manual_for(&r), control)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(
        report.threads.get("incident-channel").map(String::as_str),
        Some("ts-of-INC-20251030-001"),
        "journalled with the announcement"
    );
    // Another process: a new engine and a new notifier over the same journal.
    let second_notifier = Arc::new(Threading::default());
    let second = engine_with(second_notifier.clone());
    let resumed = second.resume(&report.run_id).await.unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{resumed}");
    assert_eq!(
        *second_notifier.continued.lock().unwrap(),
        vec![(
            "INC-20251030-001".to_owned(),
            "ts-of-INC-20251030-001".to_owned()
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn a_resolve_that_fails_leaves_the_page_open_for_the_resume() {
    let s = scenario(&["us-east-1", "us-west-2"]);
    let r = s.regions[0].clone();
    s.deploy_bad(&r).await;
    let contacts = Contacts::new();
    let faults = FaultPlan::new();
    faults.inject(
        FaultRule::always(Fault::Error(ErrorKind::Transient))
            .on("resolve")
            .times(1),
    );
    let layered = Arc::new(meshos_rollback_core::layer::Layered::new(
        contacts.oncall.clone() as Arc<dyn meshos_rollback_core::provider::Escalator>,
        FaultLayer::new(faults),
    ));
    let providers = contacts
        .register(s.world.providers())
        .with_channel("pagerduty", Channel::Pager(layered));
    let engine = s.engine_with(providers);
    let mut spec = with_routes(long_verification(single_region_spec(&s, &r)));
    spec.comms.routes.unresolved = vec!["on-call".into()];
    let report = engine
        .execute(engine.plan(&spec).await.unwrap(), s.manual_for(&r))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report}");
    let key = "meshos-rollback/INC-20251030-001/unresolved/on-call".to_owned();
    assert_eq!(
        report.open_pages(),
        vec![("on-call".to_owned(), key.clone())]
    );
    assert_eq!(contacts.oncall.open_pages().len(), 1, "still open");
    let timeline: Vec<String> = report.timeline().into_iter().map(|e| e.text).collect();
    assert!(
        timeline
            .iter()
            .any(|t| t.starts_with("Page resolve to on-call FAILED:")),
        "{timeline:#?}"
    );
    assert!(
        report.failed_escalations.is_empty(),
        "a failed resolve is not a failed page"
    );
    let resumed = engine.resume(&report.run_id).await.unwrap();
    assert!(resumed.open_pages().is_empty());
    assert!(contacts.oncall.open_pages().is_empty());
}
