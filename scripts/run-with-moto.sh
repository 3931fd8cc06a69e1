#!/usr/bin/env bash
# Runs a command with a local moto server (installed and started by
# scripts/setup/20-moto.sh) and MESHOS_AWS_ENDPOINT pointing at it; stops the server
# afterwards. Example:
#   scripts/run-with-moto.sh cargo run -p meshos-rollback-examples --example aws_single_region
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export ROOT
export MESHOS_TEST_PIDS=""
export MESHOS_TEST_DIR="$ROOT/.test-servers"
cleanup() {
  for pid in $MESHOS_TEST_PIDS; do kill "$pid" 2>/dev/null || true; done
  for pid in $MESHOS_TEST_PIDS; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
# shellcheck source=setup/20-moto.sh
source scripts/setup/20-moto.sh
"$@"
