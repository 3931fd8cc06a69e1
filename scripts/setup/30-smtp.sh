# Setup hook for the SMTP notifier's tests (sourced by scripts/test-all.sh under
# `set -euo pipefail`, like 20-moto.sh).
#
# Installs the pinned aiosmtpd into $ROOT/.venv-smtp (once), makes a throw-away CA
# and a server certificate for 127.0.0.1 with openssl, starts scripts/smtp_capture.py
# on two free loopback ports (plain with AUTH, and STARTTLS with AUTH), waits until
# both greet with 220, registers its PID in MESHOS_TEST_PIDS and exports:
#   MESHOS_SMTP_ADDR           host:port of the plain server (AUTH without TLS)
#   MESHOS_SMTP_STARTTLS_ADDR  host:port of the STARTTLS server
#   MESHOS_SMTP_CA_PEM         the CA certificate (PEM file) that signed its certificate
#   MESHOS_SMTP_CAPTURE_DIR    one JSON file per accepted mail
#   MESHOS_SMTP_USER, MESHOS_SMTP_PASSWORD  the only accepted credentials

_smtp_version=1.4.6
_smtp_root=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
_smtp_venv="$_smtp_root/.venv-smtp"
_smtp_dir=${MESHOS_TEST_DIR:-$_smtp_root/.test-servers}/smtp
mkdir -p "$_smtp_dir"

if ! "$_smtp_venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('aiosmtpd') != '$_smtp_version')" 2>/dev/null; then
  echo "installing aiosmtpd==$_smtp_version into $_smtp_venv"
  python3 -m venv "$_smtp_venv"
  "$_smtp_venv/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==$_smtp_version"
fi

# A CA and a leaf certificate for 127.0.0.1 (webpki refuses a CA certificate used as
# the server's own, so the self-signed one is only the root).
_smtp_tls="$_smtp_dir/tls"
mkdir -p "$_smtp_tls"
if [ ! -s "$_smtp_tls/server.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=meshos-rollback test CA" \
    -keyout "$_smtp_tls/ca.key" -out "$_smtp_tls/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    >"$_smtp_tls/openssl.log" 2>&1 \
    || { echo "openssl could not make the test CA:" >&2; cat "$_smtp_tls/openssl.log" >&2; false; }
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$_smtp_tls/server.key" -out "$_smtp_tls/server.csr" >>"$_smtp_tls/openssl.log" 2>&1 \
    || { echo "openssl could not make the server key:" >&2; cat "$_smtp_tls/openssl.log" >&2; false; }
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
    >"$_smtp_tls/server.ext"
  openssl x509 -req -in "$_smtp_tls/server.csr" -CA "$_smtp_tls/ca.pem" -CAkey "$_smtp_tls/ca.key" \
    -CAcreateserial -days 30 -extfile "$_smtp_tls/server.ext" -out "$_smtp_tls/server.pem" \
    >>"$_smtp_tls/openssl.log" 2>&1 \
    || { echo "openssl could not sign the server certificate:" >&2; cat "$_smtp_tls/openssl.log" >&2; false; }
fi

_smtp_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
_smtp_tls_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
export MESHOS_SMTP_USER="meshos-sre"
export MESHOS_SMTP_PASSWORD="pw-S3CR3T-$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
export MESHOS_SMTP_CAPTURE_DIR="$_smtp_dir/captured"
rm -rf "$MESHOS_SMTP_CAPTURE_DIR"
mkdir -p "$MESHOS_SMTP_CAPTURE_DIR"

"$_smtp_venv/bin/python" "$_smtp_root/scripts/smtp_capture.py" --host 127.0.0.1 \
  --port "$_smtp_port" --starttls-port "$_smtp_tls_port" \
  --cert "$_smtp_tls/server.pem" --key "$_smtp_tls/server.key" \
  --capture-dir "$MESHOS_SMTP_CAPTURE_DIR" --user "$MESHOS_SMTP_USER" \
  >"$_smtp_dir/smtp.log" 2>&1 &
_smtp_pid=$!
MESHOS_TEST_PIDS="${MESHOS_TEST_PIDS:-} $_smtp_pid"
export MESHOS_TEST_PIDS

_smtp_ready=""
for _ in $(seq 1 150); do
  if ! kill -0 "$_smtp_pid" 2>/dev/null; then
    echo "smtp_capture.py exited at start; its log ($_smtp_dir/smtp.log):" >&2
    cat "$_smtp_dir/smtp.log" >&2
    false
  fi
  if python3 -c "
import smtplib, sys
for port in ($_smtp_port, $_smtp_tls_port):
    s = smtplib.SMTP('127.0.0.1', port, timeout=1)
    s.quit()
" 2>/dev/null; then
    _smtp_ready=1
    break
  fi
  sleep 0.2
done
if [ -z "$_smtp_ready" ]; then
  echo "smtp_capture.py did not greet on ports $_smtp_port/$_smtp_tls_port within 30 s; log: $_smtp_dir/smtp.log" >&2
  cat "$_smtp_dir/smtp.log" >&2
  false
fi
export MESHOS_SMTP_ADDR="127.0.0.1:$_smtp_port"
export MESHOS_SMTP_STARTTLS_ADDR="127.0.0.1:$_smtp_tls_port"
export MESHOS_SMTP_CA_PEM="$_smtp_tls/ca.pem"
echo "aiosmtpd $_smtp_version (pid $_smtp_pid) at $MESHOS_SMTP_ADDR, STARTTLS at $MESHOS_SMTP_STARTTLS_ADDR"
unset _smtp_version _smtp_root _smtp_venv _smtp_dir _smtp_tls _smtp_port _smtp_tls_port _smtp_pid _smtp_ready
