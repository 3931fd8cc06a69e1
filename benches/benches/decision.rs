//! Evaluations per second of the canary policy and the decision matrix.
//!
//! Run: `cargo bench -p meshos-rollback-benches --bench decision`
//! Criterion reports throughput in elements (evaluations) per second on one core.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meshos_rollback_core::decision::{CanaryPolicy, DecisionMatrix, VerificationLimits};
use meshos_rollback_core::observation::{Metrics, Observation};

/// A spread of observations: healthy, breaching, missing data, so branch prediction
/// cannot learn one path.
fn observations() -> Vec<Observation> {
    (0..1024)
        .map(|i| {
            let f = f64::from(i);
            let current = Metrics {
                error_rate_pct: if i % 17 == 0 {
                    None
                } else {
                    Some((f * 0.37) % 9.0)
                },
                p95_latency_ms: Some(80.0 + (f * 7.3) % 400.0),
                cpu_pct: Some((f * 3.1) % 100.0),
                memory_pct: if i % 23 == 0 {
                    Some(f64::NAN)
                } else {
                    Some((f * 5.7) % 100.0)
                },
                request_rate_rps: Some(500.0 + (f * 11.0) % 1000.0),
            };
            let baseline = Metrics::new(0.2, 120.0, 40.0, 50.0, 1000.0);
            Observation::new(current, baseline)
                .with_customer_reports(i % 30)
                .with_sla_violation(i % 41 == 0)
                .with_data_corruption(i % 97 == 0)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let obs = observations();
    let canary = CanaryPolicy::default();
    let matrix = DecisionMatrix::default();
    let limits = VerificationLimits::default();

    let mut g = c.benchmark_group("evaluate");
    g.throughput(Throughput::Elements(obs.len() as u64));
    g.bench_function("canary_policy", |b| {
        b.iter(|| {
            for o in &obs {
                black_box(canary.evaluate(black_box(o)));
            }
        })
    });
    g.bench_function("decision_matrix", |b| {
        b.iter(|| {
            for o in &obs {
                black_box(matrix.evaluate(black_box(o)));
            }
        })
    });
    g.bench_function("verification_limits", |b| {
        b.iter(|| {
            for o in &obs {
                black_box(limits.check(black_box(o)));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
