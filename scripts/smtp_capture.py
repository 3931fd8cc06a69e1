#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) on loopback that stores every mail it accepts as JSON.

Started by scripts/setup/30-smtp.sh for meshos-rollback-http/tests/smtp.rs.

Behaviour, each following aiosmtpd 1.4 (https://aiosmtpd.aio-libs.org/en/latest/):
- AUTH PLAIN and LOGIN with one fixed user and password (`authenticator=`, see
  "Authentication" in aiosmtpd's SMTP docs); a wrong password gets aiosmtpd's
  `535 5.7.8 Authentication credentials invalid`. AUTH is required before MAIL
  (`auth_required=True`; unauthenticated clients get `530 5.7.0`).
- On the plain port AUTH is allowed without TLS (`auth_require_tls=False`): loopback
  only. On the STARTTLS port (`tls_context=`, `require_starttls=True`) nothing but
  EHLO/STARTTLS/QUIT is accepted before TLS, and AUTH needs TLS.
- `RCPT TO:<bounce@...>` is refused with `550 5.1.1 mailbox unavailable` (the
  `handle_RCPT` hook, "Handler hooks" in aiosmtpd's handlers docs).
- Each accepted mail is written to <capture dir>/<ns>-<n>.json: envelope sender and
  recipients, the AUTH login, whether TLS was on, the raw message, and the message
  parsed by Python's `email` package (policy.default: RFC 2047 headers and
  quoted-printable/base64 bodies decoded), so tests compare plain text. SMTP carries
  lines as CRLF (RFC 5321 § 2.3.8); `body` has them turned back into `\n`.
"""

import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os
import signal
import ssl
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

_counter = itertools.count(1)


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.login == self.user and auth_data.password == self.password
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


class Capture:
    def __init__(self, directory):
        self.directory = directory

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("bounce@"):
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else None
        if text is not None:
            text = text.replace("\r\n", "\n")
        login = session.auth_data
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_login": login.decode() if isinstance(login, bytes) else login,
            "tls": session.ssl is not None,
            "raw": raw.decode("utf-8", "replace"),
            "headers": [[k, str(v)] for k, v in msg.items()],
            "content_type": msg.get_content_type(),
            "charset": msg.get_content_charset(),
            "transfer_encoding": msg.get("Content-Transfer-Encoding"),
            "body": text,
        }
        name = f"{time.time_ns()}-{next(_counter)}.json"
        tmp = os.path.join(self.directory, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False, indent=1)
        os.replace(tmp, os.path.join(self.directory, name))
        return "250 2.0.0 Message accepted for delivery"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--starttls-port", type=int)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--capture-dir", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password-env", default="MESHOS_SMTP_PASSWORD",
                   help="environment variable holding the password (never on the command line)")
    args = p.parse_args()
    password = os.environ[args.password_env]
    os.makedirs(args.capture_dir, exist_ok=True)
    handler = Capture(args.capture_dir)
    auth = Authenticator(args.user, password)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def plain():
        return SMTP(handler, hostname="smtp.test", authenticator=auth,
                    auth_required=True, auth_require_tls=False, loop=loop)

    servers = [loop.run_until_complete(loop.create_server(plain, args.host, args.port))]
    if args.starttls_port:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)

        def starttls():
            return SMTP(handler, hostname="smtp.test", authenticator=auth,
                        auth_required=True, auth_require_tls=True,
                        tls_context=ctx, require_starttls=True, loop=loop)

        servers.append(loop.run_until_complete(
            loop.create_server(starttls, args.host, args.starttls_port)))
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    print(f"smtp_capture listening on {args.host}:{args.port}"
          + (f" and STARTTLS {args.host}:{args.starttls_port}" if args.starttls_port else ""),
          flush=True)
    try:
        loop.run_forever()
    finally:
        for s in servers:
            s.close()


if __name__ == "__main__":
    main()
