//! Shared set-up of the engine tests: the playbook fleet on tokio's paused clock.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use meshos_rollback_core::clock::{SharedClock, TokioClock};
use meshos_rollback_core::engine::*;
use meshos_rollback_core::model::{Incident, Region, Revision, ServiceRef, Severity};
use meshos_rollback_core::provider::Deployer;
use meshos_rollback_core::testing::{InMemoryWorld, fleet};

pub struct Scenario {
    pub clock: SharedClock,
    pub world: InMemoryWorld,
    pub regions: Vec<Region>,
}

pub fn region(name: &str) -> Region {
    Region::new(name).unwrap()
}

/// The playbook's fleet in `names`, at 10:00 UTC on 2025-10-30.
pub fn scenario(names: &[&str]) -> Scenario {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(
        "2025-10-30T10:00:00Z".parse().unwrap(),
    ));
    let regions: Vec<Region> = names.iter().map(|n| region(n)).collect();
    let world = InMemoryWorld::playbook_fleet(clock.clone(), &regions);
    Scenario {
        clock,
        world,
        regions,
    }
}

impl Scenario {
    /// Deploys the bad version to meshos-api in `region` and waits for it.
    pub async fn deploy_bad(&self, region: &Region) {
        let d = &self.world.region(region).deployer;
        d.deploy(
            &fleet::api(region),
            Revision::new(fleet::BAD).with_image(fleet::BAD_IMAGE),
        )
        .unwrap();
        d.wait_until_stable(&fleet::api(region)).await.unwrap();
    }

    pub fn engine(&self) -> Engine {
        self.engine_with(self.world.providers())
    }

    pub fn engine_with(&self, providers: Providers) -> Engine {
        Engine::builder(providers)
            .with_clock(self.clock.clone())
            .with_holder("test-engine")
            .ephemeral()
            .build()
            .unwrap()
    }

    pub fn fleet(&self) -> Vec<ServiceRef> {
        self.regions
            .iter()
            .map(|r| ServiceRef::new(r.clone(), fleet::api(r)))
            .collect()
    }

    /// A manual request for one region with every checklist item ticked.
    pub fn manual_for(&self, region: &Region) -> RollbackRequest {
        self.manual(std::slice::from_ref(region))
    }

    /// A manual request with every checklist item ticked.
    pub fn manual(&self, regions: &[Region]) -> RollbackRequest {
        RollbackRequest {
            incident: self.incident(regions),
            trigger: Trigger::Manual(full_checklist()),
            prior_events: vec![],
        }
    }

    pub fn incident(&self, regions: &[Region]) -> Incident {
        Incident {
            id: "INC-20251030-001".into(),
            severity: Severity::High,
            summary: "High error rate detected".into(),
            started_at: self.clock.now(),
            regions: regions.to_vec(),
        }
    }

    pub fn current(&self, region: &Region) -> String {
        self.world
            .region(region)
            .deployer
            .current_revision(&fleet::api(region))
            .unwrap()
            .to_string()
    }

    pub async fn weight(&self, region: &Region) -> u32 {
        use meshos_rollback_core::provider::DnsSwitcher;
        self.world
            .dns
            .region_weights(fleet::API_RECORD)
            .await
            .unwrap()
            .into_iter()
            .find(|w| &w.region == region)
            .unwrap()
            .weight
    }
}

/// Captures log output for assertions on what reached the logs.
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Installs a DEBUG subscriber writing here, for the current thread.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

pub fn full_checklist() -> PreRollbackChecklist {
    PreRollbackChecklist::new()
        .incident_documented("https://incidents.meshos.io/INC-20251030-001")
        .approved_by("alice", ApproverRole::OnCallEngineer)
        .customer_impact(CustomerImpact::new(Some(150), "elevated error rates"))
        .stakeholders_notified("status page and #customer-support at 10:07 UTC")
        .backup(Backup::Skipped("no time: error rate climbing".into()))
}

/// The single-region playbook: exclude, roll back, verify, check others, re-admit.
pub fn single_region_spec(s: &Scenario, region: &Region) -> RollbackSpec {
    RollbackSpec::new(vec![
        RegionSpec::new(region.clone(), fleet::api(region))
            .excluding_from(fleet::API_RECORD)
            .checking_other_regions(),
    ])
    .with_fleet(s.fleet())
}

/// Verification without the 15-minute window, for tests about something else.
pub fn quick(mut spec: RollbackSpec) -> RollbackSpec {
    spec.policy.verification = meshos_rollback_core::decision::VerificationLimits::builder()
        .with_window(Duration::from_secs(60), Duration::from_secs(30))
        .build()
        .unwrap();
    spec
}

pub fn step_statuses(report: &RunReport, region: &Region) -> Vec<(String, StepStatus)> {
    report
        .region(region)
        .unwrap()
        .steps
        .iter()
        .map(|s| (s.step.kind().to_owned(), s.status))
        .collect()
}
