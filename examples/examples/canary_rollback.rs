//! The main job: a bad version reaches the canary in one region, its metrics breach,
//! the canary policy says why, traffic shifts back to stable, the canary rolls back,
//! verification holds the metrics under the limits for 15 minutes, the other regions
//! are checked, and the timeline, incident report and e-mail are printed.
//!
//! Everything runs on the in-memory providers with a simulated clock starting at
//! 10:00 UTC, so the 15-minute verification window passes instantly.
//!
//! Run: `cargo run -p meshos-rollback-examples --example canary_rollback`

use std::sync::Arc;
use std::time::Duration;

use meshos_rollback_core::clock::{SharedClock, TokioClock};
use meshos_rollback_core::engine::*;
use meshos_rollback_core::memory::{InMemoryWorld, fleet};
use meshos_rollback_core::model::{Incident, Region, Revision, ServiceRef, Severity};
use meshos_rollback_core::provider::Deployer;
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
        .build()?;

    // 10:00 — v2.5.0 goes to the canary in us-east-1.
    let canary = ServiceRef::new(us_east.clone(), fleet::canary(&us_east));
    let stable = ServiceRef::new(us_east.clone(), fleet::api(&us_east));
    world.region(&us_east).deployer.deploy(
        &canary.service,
        Revision::new(fleet::BAD).with_image("meshos/mesh-kernel:sha-def456"),
    )?;
    console.line(&format!("deploying {} to the canary {canary}", fleet::BAD));
    world
        .region(&us_east)
        .deployer
        .wait_until_stable(&canary.service)
        .await?;
    let deployed_at = clock.now();
    console.line(&format!(
        "Deployment {} completed on the canary",
        fleet::BAD
    ));

    // 10:05 — canary analysis: the canary against the stable fleet.
    tokio::time::sleep(Duration::from_secs(270)).await;
    let policy = meshos_rollback_core::decision::RollbackPolicy::default();
    let observation = engine
        .observe_canary(&canary, &stable, Duration::from_secs(300))
        .await?;
    let decision = policy.canary.evaluate(&observation);
    let decided_at = clock.now();
    section("Canary decision", &decision.to_string());
    if !decision.requires_rollback() {
        println!("canary healthy: nothing to do");
        return Ok(());
    }

    // The playbook: shift traffic back, roll the canary back, verify, check the others.
    let spec = RollbackSpec::new(vec![
        RegionSpec::new(us_east.clone(), canary.service.clone())
            .shifting_traffic(fleet::LISTENER, fleet::STABLE_TG)
            .checking_other_regions(),
    ])
    .with_fleet(world.fleet_services());
    let plan = engine.plan(&spec).await?;
    section("Dry run", &plan.to_string());

    let request = RollbackRequest {
        incident: Incident {
            id: "INC-20251030-001".into(),
            severity: Severity::High,
            summary: "High error rate detected".into(),
            started_at: deployed_at,
            regions: vec![us_east.clone()],
        },
        trigger: Trigger::Automatic {
            reason: decision.to_string(),
        },
        prior_events: vec![
            TimelineEntry::new(deployed_at, format!("Deployment {} completed", fleet::BAD)),
            TimelineEntry::new(
                decided_at,
                format!(
                    "Alert triggered - error rate {:.1}%",
                    observation.current.error_rate_pct.unwrap_or(f64::NAN)
                ),
            ),
            TimelineEntry::new(decided_at, "Decision to rollback (canary policy)"),
        ],
    };
    section("Rollback", "");
    let report = engine.execute(plan, request).await?;

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
