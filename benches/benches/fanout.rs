//! Fan-out overhead of the engine: N regions rolled back in parallel on in-memory
//! providers with injected latency. For each N it prints the wall time, the critical
//! path (the slowest region's sum of injected latencies) and their ratio; the ratio
//! is the engine's overhead (journal, locks, progress, messages) on top of waiting.
//!
//! Run: `cargo bench -p meshos-rollback-benches --bench fanout`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use meshos_rollback_core::clock::{SharedClock, SystemClock};
use meshos_rollback_core::engine::*;
use meshos_rollback_core::layer::{Fault, FaultLayer, FaultPlan, FaultRule, Layered};
use meshos_rollback_core::model::{Incident, Region, Revision, Severity};
use meshos_rollback_core::provider::TrafficShifter;
use meshos_rollback_core::testing::{InMemoryWorld, fleet};

/// Injected latency of one call, different per region and per operation.
fn latency(i: usize, op: usize) -> Duration {
    Duration::from_millis(100 + ((i * 7 + op * 13) % 50) as u64)
}

const OPS: [&str; 3] = ["shift_all_to", "roll_back", "wait_until_stable"];

struct Setup {
    engine: Engine,
    plan: RollbackPlan,
    request: RollbackRequest,
}

async fn setup(n: usize) -> (Setup, Duration) {
    let clock: SharedClock = Arc::new(SystemClock);
    let regions: Vec<Region> = (0..n)
        .map(|i| Region::new(format!("region-{i:03}")).unwrap())
        .collect();
    let world = InMemoryWorld::playbook_fleet(clock.clone(), &regions);
    world.set_rollout_time(Duration::ZERO);
    // Each region's providers get their own latencies, as real regions would.
    let mut providers = world.providers();
    let mut critical = Duration::ZERO;
    for (i, r) in regions.iter().enumerate() {
        let d = &world.region(r).deployer;
        d.deploy(&fleet::api(r), Revision::new(fleet::BAD)).unwrap();
        let faults = FaultPlan::new();
        let mut path = Duration::ZERO;
        for (k, op) in OPS.iter().enumerate() {
            faults.inject(FaultRule::always(Fault::Latency(latency(i, k))).on(op));
            path += latency(i, k);
        }
        critical = critical.max(path);
        let layer = FaultLayer::new(faults);
        let rp = providers.regions.get_mut(r).unwrap();
        rp.deployer = Arc::new(Layered::new(rp.deployer.clone(), layer.clone()));
        rp.traffic = rp
            .traffic
            .take()
            .map(|t| Arc::new(Layered::new(t, layer)) as Arc<dyn TrafficShifter>);
    }
    let engine = Engine::builder(providers)
        .with_clock(clock.clone())
        .ephemeral()
        .build()
        .unwrap();
    let mut spec = RollbackSpec::new(
        regions
            .iter()
            .map(|r| {
                RegionSpec::new(r.clone(), fleet::api(r))
                    .shifting_traffic(fleet::LISTENER, fleet::STABLE_TG)
                    .without_verification()
            })
            .collect(),
    );
    spec.max_parallel = n;
    let plan = engine.plan(&spec).await.unwrap();
    let request = RollbackRequest {
        incident: Incident {
            id: "INC-BENCH".into(),
            severity: Severity::High,
            summary: "bench".into(),
            started_at: clock.now(),
            regions: regions.clone(),
        },
        trigger: Trigger::Automatic {
            reason: "bench".into(),
        },
        prior_events: vec![],
    };
    (
        Setup {
            engine,
            plan,
            request,
        },
        critical,
    )
}

fn bench(c: &mut Criterion) {
    let mut table = Vec::new();
    for (flavor, rt) in [
        ("multi-thread", tokio::runtime::Runtime::new().unwrap()),
        (
            "current-thread",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        ),
    ] {
        let mut g = c.benchmark_group(format!("fanout/{flavor}"));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(8));
        g.warm_up_time(Duration::from_secs(1));
        for n in [4usize, 16, 64, 256] {
            let walls: Arc<Mutex<Vec<Duration>>> = Arc::default();
            let mut critical = Duration::ZERO;
            g.bench_function(format!("regions_{n}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (s, crit) = rt.block_on(setup(n));
                        critical = crit;
                        let start = Instant::now();
                        let report = rt.block_on(s.engine.execute(s.plan, s.request)).unwrap();
                        let wall = start.elapsed();
                        assert_eq!(report.status, RunStatus::Succeeded);
                        walls.lock().unwrap().push(wall);
                        total += wall;
                    }
                    total
                })
            });
            let mut w = walls.lock().unwrap().clone();
            if w.is_empty() {
                continue; // filtered out on the command line
            }
            w.sort();
            table.push((flavor, n, w[w.len() / 2], critical));
        }
        g.finish();
    }
    println!("\nruntime        | regions | wall (median) | critical path | ratio");
    for (flavor, n, wall, crit) in table {
        println!(
            "{flavor:<14} | {n:>7} | {:>10.1} ms | {:>10.1} ms | {:.4}",
            wall.as_secs_f64() * 1e3,
            crit.as_secs_f64() * 1e3,
            wall.as_secs_f64() / crit.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
