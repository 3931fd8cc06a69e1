# Setup hook for the AWS backend's tests (sourced by scripts/test-all.sh under
# `set -euo pipefail`; scripts/run-with-moto.sh sources it too).
#
# Installs the pinned moto server into $ROOT/.venv-moto (once), starts it on a free
# loopback port, waits until it answers, registers its PID in MESHOS_TEST_PIDS and
# exports MESHOS_AWS_ENDPOINT for the tests and the aws_* examples.
# MOTO_ECS_SERVICE_RUNNING=2: moto reports 2 running tasks and a COMPLETED rollout for
# every ECS service, so services created with desiredCount 2 become stable.

_moto_version=5.2.5
_moto_root=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
_moto_venv="$_moto_root/.venv-moto"
_moto_dir=${MESHOS_TEST_DIR:-$_moto_root/.test-servers}
mkdir -p "$_moto_dir"

if ! "$_moto_venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('moto') != '$_moto_version')" 2>/dev/null \
  || [ ! -x "$_moto_venv/bin/moto_server" ]; then
  echo "installing moto[server]==$_moto_version into $_moto_venv"
  python3 -m venv "$_moto_venv"
  "$_moto_venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$_moto_version"
fi

_moto_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
MOTO_RECORDER_FILEPATH="$_moto_dir/moto_recording" MOTO_ECS_SERVICE_RUNNING=2 "$_moto_venv/bin/moto_server" -H 127.0.0.1 -p "$_moto_port" \
  >"$_moto_dir/moto.log" 2>&1 &
_moto_pid=$!
MESHOS_TEST_PIDS="${MESHOS_TEST_PIDS:-} $_moto_pid"
export MESHOS_TEST_PIDS

_moto_ready=""
for _ in $(seq 1 150); do
  if ! kill -0 "$_moto_pid" 2>/dev/null; then
    echo "moto_server exited at start; its log ($_moto_dir/moto.log):" >&2
    cat "$_moto_dir/moto.log" >&2
    false
  fi
  if python3 -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$_moto_port/moto-api/', timeout=1)" 2>/dev/null; then
    _moto_ready=1
    break
  fi
  sleep 0.2
done
if [ -z "$_moto_ready" ]; then
  echo "moto_server did not answer on port $_moto_port within 30 s; log: $_moto_dir/moto.log" >&2
  false
fi
export MESHOS_AWS_ENDPOINT="http://127.0.0.1:$_moto_port"
echo "moto $_moto_version (pid $_moto_pid) at $MESHOS_AWS_ENDPOINT"
unset _moto_version _moto_root _moto_venv _moto_dir _moto_port _moto_pid _moto_ready
