//! Writes the Prometheus test data set (the one `tests/prometheus` checks against) as
//! an OpenMetrics file, anchored at the start of the previous minute, and prints the
//! anchor (Unix seconds). Backfill it with
//! `promtool tsdb create-blocks-from openmetrics FILE TSDB_DIR`; the demo script
//! `scripts/prometheus-example.sh` does all of it.
//!
//! ```text
//! cargo run -p meshos-rollback-http --example prometheus_testdata -- data.om
//! ```

#[path = "../tests/prometheus/dataset.rs"]
mod dataset;

fn main() {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: prometheus_testdata OUTPUT.om");
        std::process::exit(2);
    };
    let anchor = dataset::anchor_now();
    if let Err(e) = std::fs::write(&out, dataset::openmetrics(anchor)) {
        eprintln!("cannot write {}: {e}", out.to_string_lossy());
        std::process::exit(1);
    }
    println!("{anchor}");
}
