//! Single-region rollback (playbook § Region-Specific Rollback): us-east-1 is taken out
//! of routing, rolled back, verified, the other regions are checked, and us-east-1 is
//! re-admitted at its previous weight. A manual rollback, so the pre-rollback
//! checklist gates it.
//!
//! Run: `cargo run -p meshos-rollback-examples --example single_region`

use std::sync::Arc;

use meshos_rollback_core::clock::{SharedClock, TokioClock};
use meshos_rollback_core::engine::*;
use meshos_rollback_core::model::{Incident, Region, Revision, Severity};
use meshos_rollback_core::provider::{Deployer, DnsSwitcher};
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
    let world = InMemoryWorld::playbook_fleet(clock.clone(), &regions);
    let us_east = regions[0].clone();
    let api = fleet::api(&us_east);
    let deployer = world.region(&us_east).deployer.clone();
    deployer.deploy(&api, Revision::new(fleet::BAD).with_image(fleet::BAD_IMAGE))?;
    deployer.wait_until_stable(&api).await?;
    console.line(&format!("{} is live in us-east-1 and failing", fleet::BAD));
    let incident_start = clock.now();

    let engine = Engine::builder(world.providers())
        .with_clock(clock.clone())
        .with_observer(console.clone())
        .ephemeral()
        .build()?;
    let spec = RollbackSpec::new(vec![
        RegionSpec::new(us_east.clone(), api.clone())
            .excluding_from(fleet::API_RECORD)
            .checking_other_regions(),
    ])
    .with_fleet(world.fleet_services());
    let plan = engine.plan(&spec).await?;
    section("Dry run", &plan.to_string());

    let request = RollbackRequest {
        incident: Incident {
            id: "INC-20251030-002".into(),
            severity: Severity::High,
            summary: "Elevated 5xx in us-east-1 after v2.5.0".into(),
            started_at: incident_start,
            regions: vec![us_east.clone()],
        },
        trigger: Trigger::Manual(
            PreRollbackChecklist::new()
                .incident_documented("https://incidents.meshos.io/INC-20251030-002")
                .approved_by(
                    "bob (PagerDuty #mesh-os-oncall)",
                    ApproverRole::OnCallEngineer,
                )
                .customer_impact(CustomerImpact::new(Some(40), "failed API calls"))
                .stakeholders_notified("status page + #customer-support")
                .backup(Backup::Skipped("stateless service".into())),
        ),
        prior_events: vec![TimelineEntry::new(
            incident_start,
            "Deployment v2.5.0 completed",
        )],
    };
    section("Rollback", "");
    let report = engine.execute(plan, request).await?;
    let weights = world.dns.region_weights(fleet::API_RECORD).await?;
    let routing: Vec<String> = weights
        .iter()
        .map(|w| format!("{}={}", w.region, w.weight))
        .collect();
    section("What was done", &report.to_string());
    println!("routing weights now: {}", routing.join(", "));
    section("Incident report", &report.incident_report());
    if report.status != RunStatus::Succeeded {
        return Err(format!("rollback {}", report.status).into());
    }
    Ok(())
}
