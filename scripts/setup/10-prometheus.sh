# Sourced by scripts/test-all.sh (set -euo pipefail): makes Prometheus available to
# the meshos-rollback-http tests marked #[ignore = "needs prometheus"].
#
# Each of those tests writes its own data set, backfills its own TSDB with promtool
# and starts its own server on a free port, so nothing is started here. This hook
# installs the Debian package when `prometheus` or `promtool` is missing and exports
# their paths (MESHOS_PROMETHEUS_BIN, MESHOS_PROMTOOL_BIN). With MESHOS_PROMETHEUS_URL
# set, the tests use that server instead and nothing is installed.

if [ -n "${MESHOS_PROMETHEUS_URL:-}" ]; then
  echo "prometheus: using MESHOS_PROMETHEUS_URL=$MESHOS_PROMETHEUS_URL"
else
  if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    echo "prometheus: installing the Debian package"
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package enables a system service on port 9090; the tests start their own.
  fi
  MESHOS_PROMETHEUS_BIN="$(command -v prometheus)"
  MESHOS_PROMTOOL_BIN="$(command -v promtool)"
  export MESHOS_PROMETHEUS_BIN MESHOS_PROMTOOL_BIN
  echo "prometheus: $("$MESHOS_PROMETHEUS_BIN" --version 2>&1 | head -n 1)"
fi
