//! The main job: a bad version reaches the canary in us-east-1. The canary watch
//! checks it against the stable fleet every minute; as soon as its metrics breach, the
//! canary policy says why and the rollback runs by itself: traffic shifts back to the
//! stable target group, the canary rolls back, verification holds the metrics under
//! the limits for 15 minutes, the other regions are checked. The timeline, incident
//! report and stakeholder e-mail are printed at the end; the incident id, the customer
//! impact and each status update's ETA come from data (the journal, the customer
//! reports and metrics, the steps' measured durations).
//!
//! Everything runs on the in-memory providers with a simulated clock starting at
//! 10:00 UTC, so the 15-minute verification window passes instantly.
//!
//! Run: `cargo run -p meshos-rollback-examples --example canary_rollback`

use std::sync::Arc;

use meshos_rollback_core::clock::{SharedClock, TokioClock};
use meshos_rollback_core::engine::*;
use meshos_rollback_core::model::{Region, Revision, ServiceRef};
use meshos_rollback_core::testing::{InMemoryWorld, fleet};
use meshos_rollback_examples::{Console, section};

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock: SharedClock = Arc::new(TokioClock::starting_at("2025-10-30T10:00:00Z".parse()?));
    let console = Arc::new(Console::new(clock.clone()));
    let regions: Vec<Region> = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1"]
        .into_iter()
        .map(Region::new)
        .collect::<Result<_, _>>()?;
    let us_east = regions[0].clone();
    let world = InMemoryWorld::playbook_fleet(clock.clone(), &regions);
    let engine = Engine::builder(world.providers())
        .with_clock(clock.clone())
        .with_observer(console.clone())
        .ephemeral()
        .build()?;

    // 10:00 — v2.5.0 goes to the canary in us-east-1 (its rollout takes 30 s).
    let canary = ServiceRef::new(us_east.clone(), fleet::canary(&us_east));
    let stable = ServiceRef::new(us_east.clone(), fleet::api(&us_east));
    world.region(&us_east).deployer.deploy(
        &canary.service,
        Revision::new(fleet::BAD).with_image(fleet::BAD_IMAGE),
    )?;
    console.line(&format!("deploying {} to the canary {canary}", fleet::BAD));

    // What to do if the canary breaches: the playbook's canary rollback.
    let on_breach = RollbackSpec::new(vec![
        RegionSpec::new(us_east.clone(), canary.service.clone())
            .shifting_traffic(fleet::LISTENER, fleet::STABLE_TG)
            .checking_other_regions(),
    ])
    .with_fleet(world.fleet_services());
    section(
        "Dry run of the canary rollback",
        &engine.plan(&on_breach).await?.to_string(),
    );

    // 10:02 — customers notice: 150 reports so far. Nobody assessed the impact (the
    // rollback is automatic), so the engine measures it from these reports and the
    // metrics.
    world
        .reports
        .report(&us_east, "2025-10-30T10:02:00Z".parse()?, 150);

    section("Canary watch (checks every minute for 30 minutes)", "");
    // No incident id: the next of the day is taken from the journal (INC-20251030-001).
    let watch = CanaryWatch::new(canary.clone(), stable, "");
    let outcome = engine.watch_canary(&watch, &on_breach).await?;
    let CanaryOutcome::RolledBack { decision, report } = outcome else {
        println!("{outcome}");
        return Ok(());
    };
    section("Why (canary policy)", &decision.to_string());
    section("What was done", &report.to_string());
    section("Incident report", &report.incident_report());
    section("Stakeholder e-mail", &report.stakeholder_email());
    let serving = world
        .region(&us_east)
        .deployer
        .current_revision(&canary.service)?;
    println!(
        "\ncanary now runs {serving}; run {} {}",
        report.run_id, report.status
    );
    if report.status != RunStatus::Succeeded {
        return Err(format!("rollback {}", report.status).into());
    }
    Ok(())
}
