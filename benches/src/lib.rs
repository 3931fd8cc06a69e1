//! Criterion benchmarks; see the `benches/` directory.
