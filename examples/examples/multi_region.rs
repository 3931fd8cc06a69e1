//! Multi-region rollback (playbook § Multi-Region Rollback): the four regions in
//! parallel, from a YAML spec (`examples/specs/four-regions.yaml`). eu-west-1's
//! deployer is throttled twice; the retry layer (with a budget shared by every region)
//! rides it out.
//!
//! Run: `cargo run -p meshos-rollback-examples --example multi_region`

use std::sync::Arc;

use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::clock::{SharedClock, TokioClock};
use meshos_rollback_core::engine::*;
use meshos_rollback_core::layer::*;
use meshos_rollback_core::model::{Incident, Region, Revision, Severity};
use meshos_rollback_core::provider::Deployer;
use meshos_rollback_core::redact::Redactor;
use meshos_rollback_core::testing::{InMemoryWorld, fleet};
use meshos_rollback_examples::{Console, section};

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock: SharedClock = Arc::new(TokioClock::starting_at("2025-10-30T10:00:00Z".parse()?));
    let console = Arc::new(Console::new(clock.clone()));
    let spec = RollbackSpec::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/specs/four-regions.yaml"
    ))?;
    let regions: Vec<Region> = spec.regions.iter().map(|r| r.region.clone()).collect();
    let world = InMemoryWorld::playbook_fleet(clock.clone(), &regions);
    for r in &regions {
        let d = &world.region(r).deployer;
        d.deploy(
            &fleet::api(r),
            Revision::new(fleet::BAD).with_image(fleet::BAD_IMAGE),
        )?;
    }
    for r in &regions {
        world
            .region(r)
            .deployer
            .wait_until_stable(&fleet::api(r))
            .await?;
    }
    console.line(&format!("{} is live in all four regions", fleet::BAD));

    // Every provider behind the standard layers; eu-west-1 is throttled twice.
    let faults = FaultPlan::new();
    faults.inject(
        FaultRule::always(Fault::Error(ErrorKind::Transient))
            .on("roll_back")
            .on_provider("eu-west-1")
            .times(2),
    );
    // One redactor for the engine and the trace layer: what the engine masks, the
    // logs mask too.
    let redactor = Redactor::new();
    let layer = standard_stack(
        RetryLayer::new(RetryPolicy::default(), RetryBudget::new(20, 0.1)),
        TimeoutLayer::standard(),
        &redactor,
    )
    .around(FaultLayer::new(faults.clone()));
    let engine = Engine::builder(world.layered_providers(layer))
        .with_clock(clock.clone())
        .with_redactor(redactor)
        .with_observer(console.clone())
        .ephemeral()
        .build()?;
    let plan = engine.plan(&spec).await?;
    section("Dry run", &plan.to_string());
    let request = RollbackRequest {
        incident: Incident {
            id: "INC-20251030-003".into(),
            severity: Severity::Critical,
            summary: "v2.5.0 breaks checkout in every region".into(),
            started_at: clock.now(),
            regions: regions.clone(),
        },
        trigger: Trigger::Manual(
            PreRollbackChecklist::new()
                .incident_documented("https://incidents.meshos.io/INC-20251030-003")
                .approved_by("carol", ApproverRole::Manager)
                .customer_impact(CustomerImpact::new(Some(1200), "failed checkouts"))
                .stakeholders_notified("status page, e-mail to enterprise customers"),
        ),
        prior_events: vec![],
    };
    section("Rollback", "");
    let started = tokio::time::Instant::now();
    let report = engine.execute(plan, request).await?;
    section("What was done", &report.to_string());
    println!(
        "{} regions in {} s of simulated time; {} throttled call(s) retried",
        report.regions.len(),
        started.elapsed().as_secs(),
        faults.injected().len()
    );
    section("Stakeholder e-mail", &report.stakeholder_email());
    if report.status != RunStatus::Succeeded {
        return Err(format!("rollback {}", report.status).into());
    }
    Ok(())
}
