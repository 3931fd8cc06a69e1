//! Database rollback (playbook § Database Rollback): restore us-east-1's database from
//! its latest snapshot, and eu-west-1's to a point in time, each into a NEW instance,
//! then switch DATABASE_URL to it. The sources are never touched; the data-loss window
//! is recorded; the connection string never appears in any output.
//!
//! Run: `cargo run -p meshos-rollback-examples --example database_restore`

use std::sync::Arc;

use meshos_rollback_core::clock::{SharedClock, TokioClock};
use meshos_rollback_core::engine::*;
use meshos_rollback_core::model::{Incident, Region, Severity};
use meshos_rollback_core::provider::{DbInstanceId, DbRestorer, RestorePoint};
use meshos_rollback_core::testing::{InMemoryWorld, fleet};
use meshos_rollback_examples::{Console, section};
use secrecy::{ExposeSecret, SecretString};

fn restore(region: &Region, from: RestoreFrom) -> RegionSpec {
    RegionSpec::new(region.clone(), fleet::api(region))
        .with_deployment(DeploymentAction::None)
        .restoring_database(DatabaseSpec {
            accept_data_after_incident: false,
            source: fleet::database(region),
            target: DbInstanceId::new(format!("meshos-db-{region}-restored")),
            from,
            connection: Some(ConnectionSwitch {
                env_var: "DATABASE_URL".into(),
                container: None,
                template_secret: "meshos-db-url".into(),
            }),
        })
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock: SharedClock = Arc::new(TokioClock::starting_at("2025-10-30T10:30:00Z".parse()?));
    let console = Arc::new(Console::new(clock.clone()));
    let regions = [Region::new("us-east-1")?, Region::new("eu-west-1")?];
    let world = InMemoryWorld::playbook_fleet(clock.clone(), &regions);
    // The password would come from a secret store; it is a secret from here on.
    let template =
        SecretString::from("postgresql://meshos:correct-horse-battery@{host}:{port}/meshos");
    let engine = Engine::builder(world.providers())
        .with_clock(clock.clone())
        .with_observer(console.clone())
        .with_secret("meshos-db-url", template)
        .ephemeral()
        .build()?;
    let corruption_began = "2025-10-30T10:12:00Z".parse()?;
    let spec = RollbackSpec::new(vec![
        restore(&regions[0], RestoreFrom::LatestSnapshot),
        restore(
            &regions[1],
            RestoreFrom::PointInTime(RestorePoint::At("2025-10-30T10:10:00Z".parse()?)),
        ),
    ]);
    let plan = engine.plan(&spec).await?;
    section("Dry run", &plan.to_string());
    let request = RollbackRequest {
        incident: Incident {
            id: "INC-20251030-004".into(),
            severity: Severity::Critical,
            summary: "Data corruption after migration 20251030_add_feature_column".into(),
            started_at: corruption_began,
            regions: regions.to_vec(),
        },
        trigger: Trigger::Manual(
            PreRollbackChecklist::new()
                .incident_documented("https://incidents.meshos.io/INC-20251030-004")
                .approved_by("dana", ApproverRole::Manager)
                .customer_impact(CustomerImpact::new(None, "wrong balances"))
                .stakeholders_notified("status page")
                .backup(Backup::Captured(
                    "manual snapshot meshos-db-*-pre-restore".into(),
                )),
        ),
        prior_events: vec![TimelineEntry::new(
            corruption_began,
            "Data corruption detected",
        )],
    };
    section("Restore", "");
    let report = engine.execute(plan, request).await?;
    section("What was done", &report.to_string());
    for r in &regions {
        let db = &world.region(r).database;
        let source = db.instance(&fleet::database(r)).await?;
        let env = world.region(r).deployer.env(&fleet::api(r))?;
        let url = env
            .get("DATABASE_URL")
            .map(|v| engine.redactor().redact(v.expose_secret()));
        println!(
            "{r}: source {} still {:?}; DATABASE_URL = {}",
            source.id,
            source.status,
            url.as_deref().unwrap_or("(unset)")
        );
    }
    section("Incident report", &report.incident_report());
    if report.status != RunStatus::Succeeded {
        return Err(format!("restore {}", report.status).into());
    }
    Ok(())
}
