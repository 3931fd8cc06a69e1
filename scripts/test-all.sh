#!/usr/bin/env bash
# Sets up and runs every test of the workspace on a fresh machine.
#
# 1. Each scripts/setup/*.sh is sourced in order: it installs what its tests need
#    (moto from PyPI, Prometheus from Debian, ...), may start a server, and exports
#    the variables the tests read (MESHOS_AWS_ENDPOINT, ...). It registers PIDs to
#    stop in MESHOS_TEST_PIDS.
# 2. Format, lints and docs are checked; core is checked to pull in no AWS SDK,
#    kube or HTTP client crate.
# 3. Every test runs, including the ones marked #[ignore = "needs ..."]: a missing
#    server is a failure here, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# A clean clone gains nothing from incremental compilation, and its cache doubles the
# size of target/ (CI's disk is finite). A developer may still set CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export ROOT
export MESHOS_TEST_PIDS=""
export MESHOS_TEST_DIR="$ROOT/.test-servers"
mkdir -p "$MESHOS_TEST_DIR"

cleanup() {
  for pid in $MESHOS_TEST_PIDS; do kill "$pid" 2>/dev/null || true; done
  for pid in $MESHOS_TEST_PIDS; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }

for hook in scripts/setup/*.sh; do
  [ -e "$hook" ] || continue
  step "setup: $hook"
  # shellcheck source=/dev/null
  source "$hook"
done

step "cargo fmt --check"
cargo fmt --all -- --check

step "core depends on no AWS SDK, kube or HTTP client crate"
forbidden='^(aws-|kube|k8s-openapi|reqwest|hyper|http|axum|tower|ureq|isahc|surf)'
if cargo tree -p meshos-rollback-core -e normal --prefix none --all-features | awk '{print $1}' | grep -E "$forbidden"; then
  echo "meshos-rollback-core must not depend on the crates above" >&2
  exit 1
fi

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo doc (default features and all features)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features

step "cargo test (every test, servers included)"
cargo test --workspace --all-features --all-targets -- --include-ignored
cargo test --workspace --all-features --doc

step "examples run (in-memory, Kubernetes test server, moto)"
# Built once with the tests' features and run as binaries: `cargo run -p …` would
# resolve features per package and build a second copy of the tree.
cargo build -q --workspace --all-features --examples
MESHOS_EXAMPLES_BIN="$(cargo metadata --no-deps --format-version 1 \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/examples"
export MESHOS_EXAMPLES_BIN
for ex in $(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "meshos-rollback-examples":
        for t in p["targets"]:
            # prometheus_* needs its demo data set: run below through its script.
            if "example" in t["kind"] and not t["name"].startswith("prometheus_"):
                print(t["name"])'); do
  echo "--- example $ex"
  "$MESHOS_EXAMPLES_BIN/$ex" >"$MESHOS_TEST_DIR/example-$ex.log" 2>&1 \
    || { cat "$MESHOS_TEST_DIR/example-$ex.log"; exit 1; }
done
echo "--- example prometheus_verification"
scripts/prometheus-example.sh >"$MESHOS_TEST_DIR/example-prometheus.log" 2>&1 \
  || { cat "$MESHOS_TEST_DIR/example-prometheus.log"; exit 1; }

step "all tests passed"
