#!/usr/bin/env bash
# Runs the playbook's post-rollback verification (examples/examples/prometheus_verification.rs)
# against a local Prometheus holding demo data, in one command:
#
#   scripts/prometheus-example.sh          # run the example, then stop Prometheus
#   scripts/prometheus-example.sh --keep   # ...and keep Prometheus running, e.g. for
#                                          # MESHOS_PROMETHEUS_URL=... cargo test -p meshos-rollback-http -- --include-ignored
#
# Installs the Debian package `prometheus` if needed (scripts/setup/10-prometheus.sh),
# writes the data set of the Prometheus tests (1h15m of 15 s samples ending a minute
# ago), backfills it with promtool into a fresh TSDB, starts Prometheus on a free
# port and runs the example with the data set's anchor as "now".
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
[ "${1:-}" = "--keep" ] && keep=true

# shellcheck source=setup/10-prometheus.sh
unset MESHOS_PROMETHEUS_URL
source scripts/setup/10-prometheus.sh

dir="$(mktemp -d -t meshos-prometheus-example.XXXXXX)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

# An example, as the binary the test command built (MESHOS_EXAMPLES_BIN), else by cargo.
run_example() {
  local pkg=$1 name=$2
  shift 2
  if [ -n "${MESHOS_EXAMPLES_BIN:-}" ]; then
    "$MESHOS_EXAMPLES_BIN/$name" "$@"
  else
    cargo run -q -p "$pkg" --example "$name" -- "$@"
  fi
}

echo "==> writing the demo data set"
anchor="$(run_example meshos-rollback-http prometheus_testdata "$dir/data.om")"
"$MESHOS_PROMTOOL_BIN" tsdb create-blocks-from openmetrics "$dir/data.om" "$dir/tsdb" >/dev/null
printf 'global:\n  scrape_interval: 15s\n' >"$dir/prometheus.yml"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
echo "==> starting Prometheus on $url"
"$MESHOS_PROMETHEUS_BIN" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
  --web.listen-address="127.0.0.1:$port" --log.level=warn >"$dir/prometheus.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "$url/-/ready" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/prometheus.log" >&2; exit 1; }
  sleep 0.1
done
curl -sf "$url/-/ready" >/dev/null || { echo "Prometheus did not become ready" >&2; cat "$dir/prometheus.log" >&2; exit 1; }

echo "==> cargo run -p meshos-rollback-examples --example prometheus_verification -- --at $anchor"
MESHOS_PROMETHEUS_URL="$url" run_example meshos-rollback-examples prometheus_verification --at "$anchor"

# The playbook's meshos-api exports a summary: its P95 is the playbook's query.
echo
echo "==> cargo run -p meshos-rollback-examples --example prometheus_verification -- --at $anchor --latency summary us-east-1/production/meshos-api"
MESHOS_PROMETHEUS_URL="$url" run_example meshos-rollback-examples prometheus_verification \
  --at "$anchor" --latency summary us-east-1/production/meshos-api

if $keep; then
  echo
  echo "Prometheus keeps running on $url with the test data set (Ctrl-C stops it):"
  echo "  MESHOS_PROMETHEUS_URL=$url cargo test -p meshos-rollback-http -- --include-ignored"
  wait "$pid"
fi
