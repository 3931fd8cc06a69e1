//! [`SmtpNotifier`]: sends the playbook's messages, the stakeholder e-mail first, as
//! plain-text mail through an SMTP submission server.
//!
//! Each [`Message`] becomes one mail from the configured sender to every configured
//! recipient (`To`, `Cc`, `Bcc`; recipients are fixed when the notifier is built, so
//! no message can redirect mail):
//!
//! - **Subject**: [`Message::subject`]; without one, `[meshos-rollback] <incident id>`
//!   for [`MessageKind::StakeholderEmail`] and the first non-empty line of the text
//!   for every other kind (announcements, status updates, resolutions, escalations,
//!   info), so an SMTP route can carry any event of the playbook.
//! - **Body**: `text/plain; charset=utf-8`, [`Message::text`] unchanged (lettre picks
//!   7bit, quoted-printable or base64). SMTP carries lines as CRLF and the mail's
//!   last line always ends with a line break: a text ending with `\n` (as the
//!   stakeholder e-mail does) arrives exactly, one without gains a final `\n`.
//! - **`X-Meshos-Incident`**: the incident id, for mail filters.
//! - **`Message-ID`**: derived from the incident id, the subject and the text
//!   (`<meshos-rollback.<sha256 prefix>@<sender's domain>>`), never random: a retried
//!   send of the same message (a retry layer, a resumed run) carries the same id, and
//!   mail systems that deduplicate on `Message-ID` show it once.
//! - [`Message::mentions`] are not used: they address people in a chat channel; mail
//!   goes only to the configured recipients.
//!
//! TLS is rustls on *ring* with the platform's trust store (plus any root given to
//! [`SmtpNotifierBuilder::with_root_certificate`]). [`SmtpTls::None`] exists for
//! loopback test servers only and is refused for any other host.
//!
//! Errors: a 4xx reply, a refused or dropped connection and a timeout are
//! [`ErrorKind::Transient`](meshos_rollback_core::ErrorKind::Transient); 530/534/535/538
//! (authentication) are `PermissionDenied`; any other 5xx (550 mailbox unavailable,
//! 554 transaction failed), TLS failures (a certificate that does not verify) and a
//! server that does not offer STARTTLS are `Failed`. Messages name the SMTP code
//! and the server's text. The password is a [`SecretString`]: it appears in no
//! `Debug`, `Display`, error or log line (lettre is built without its `tracing`
//! feature, so it logs no SMTP dialogue either).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message as Email};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use meshos_rollback_core::error::BoxError;
use meshos_rollback_core::provider::{Message, MessageKind, Notifier};
use meshos_rollback_core::{Error, Result};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::error::{error_chain, redact};

/// The default deadline of one submission (connect, greeting, TLS, AUTH, the mail).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The submission port, for [`SmtpTls::StartTls`] (RFC 6409).
pub const SUBMISSION_PORT: u16 = 587;
/// The submissions port, for [`SmtpTls::Implicit`] (RFC 8314).
pub const SUBMISSIONS_PORT: u16 = 465;
/// The port used with [`SmtpTls::None`] unless one is set.
pub const PLAIN_PORT: u16 = 25;
/// Subjects taken from a message's first line are cut to this many characters.
pub const MAX_SUBJECT_CHARS: usize = 200;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SmtpTls {
    /// Connect in clear text, then require `STARTTLS` before anything else is sent
    /// (port 587 by default). A server that does not offer it is refused, so neither
    /// the password nor the mail ever travels in clear text.
    #[default]
    StartTls,
    /// TLS from the first byte (port 465 by default).
    Implicit,
    /// No TLS at all (port 25 by default). Only for a server on the loopback
    /// interface (`localhost`, `127.0.0.0/8`, `::1`), such as a test server; `build`
    /// refuses it for any other host.
    None,
}

/// Builds an [`SmtpNotifier`].
#[derive(Clone)]
pub struct SmtpNotifierBuilder {
    host: String,
    port: Option<u16>,
    tls: SmtpTls,
    from: String,
    to: Vec<String>,
    cc: Vec<String>,
    bcc: Vec<String>,
    credentials: Option<(String, SecretString)>,
    root_certificates: Vec<Vec<u8>>,
    timeout: Duration,
    label: Option<String>,
}

impl fmt::Debug for SmtpNotifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpNotifierBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("password", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl SmtpNotifierBuilder {
    /// Connects to this port instead of the one [`SmtpTls`] implies.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Sets how the connection is protected (default [`SmtpTls::StartTls`]).
    pub fn with_tls(mut self, tls: SmtpTls) -> Self {
        self.tls = tls;
        self
    }

    /// Authenticates with `AUTH PLAIN` or `AUTH LOGIN`, whichever the server offers.
    pub fn with_credentials(mut self, user: impl Into<String>, password: SecretString) -> Self {
        self.credentials = Some((user.into(), password));
        self
    }

    /// Also trusts this PEM root certificate (a private CA, a test server's
    /// self-signed certificate), on top of the platform's trust store.
    pub fn with_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Sets the deadline of one submission: connecting, the server's greeting, TLS,
    /// AUTH and the mail together (default [`DEFAULT_TIMEOUT`]). Retries are a core
    /// layer's job, not this notifier's.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Names the route in `Display` (`SMTP(stakeholders)`); by default the host is shown.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds `Cc` recipients.
    pub fn with_cc(mut self, cc: Vec<String>) -> Self {
        self.cc.extend(cc);
        self
    }

    /// Adds `Bcc` recipients: they receive the mail, no header names them.
    pub fn with_bcc(mut self, bcc: Vec<String>) -> Self {
        self.bcc.extend(bcc);
        self
    }

    /// Checks the host, every address and the TLS settings, and builds the notifier.
    pub fn build(self) -> Result<SmtpNotifier> {
        let host = self.host.trim().to_owned();
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(Error::invalid(
                "smtp.host",
                format!("{:?} is not a host name or IP address", self.host),
            ));
        }
        if self.timeout.is_zero() {
            return Err(Error::invalid("smtp.timeout", "must be longer than zero"));
        }
        if self.tls == SmtpTls::None && !is_loopback(&host) {
            return Err(Error::invalid(
                "smtp.tls",
                format!(
                    "SmtpTls::None would send the mail (and any password) to {host} in clear \
                     text; it is only allowed for a loopback test server (localhost, \
                     127.0.0.0/8, ::1): use SmtpTls::StartTls or SmtpTls::Implicit"
                ),
            ));
        }
        let from = mailbox("smtp.from", &self.from)?;
        if self.to.is_empty() {
            return Err(Error::invalid(
                "smtp.to",
                "no recipient: give at least one address",
            ));
        }
        let to = mailboxes("smtp.to", &self.to)?;
        let cc = mailboxes("smtp.cc", &self.cc)?;
        let bcc = mailboxes("smtp.bcc", &self.bcc)?;
        if let Some((user, password)) = &self.credentials
            && (user.is_empty() || password.expose_secret().is_empty())
        {
            return Err(Error::invalid(
                "smtp.credentials",
                "the user name and the password must not be empty",
            ));
        }
        let port = self.port.unwrap_or(match self.tls {
            SmtpTls::StartTls => SUBMISSION_PORT,
            SmtpTls::Implicit => SUBMISSIONS_PORT,
            SmtpTls::None => PLAIN_PORT,
        });
        let shown = format!("SMTP({})", self.label.as_deref().unwrap_or(&host));
        let tls = match self.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => {
                Tls::Required(tls_parameters(&host, &self.root_certificates, &shown)?)
            }
            SmtpTls::Implicit => {
                Tls::Wrapper(tls_parameters(&host, &self.root_certificates, &shown)?)
            }
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let Some((user, password)) = &self.credentials {
            transport = transport.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(SmtpNotifier {
            transport: transport.build(),
            password: self.credentials.map(|(_, p)| p),
            host,
            port,
            tls: self.tls,
            shown,
            from,
            to,
            cc,
            bcc,
            timeout: self.timeout,
        })
    }
}

/// Whether `host` is certainly the loopback interface.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn mailbox(field: &str, text: &str) -> Result<Mailbox> {
    text.parse::<Mailbox>().map_err(|e| {
        Error::invalid(
            field,
            format!(
                "{text:?} is not an e-mail address ({e}): write `name@example.com` or \
                 `Display Name <name@example.com>`"
            ),
        )
    })
}

fn mailboxes(field: &str, texts: &[String]) -> Result<Vec<Mailbox>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| mailbox(&format!("{field}[{i}]"), t))
        .collect()
}

fn tls_parameters(host: &str, roots: &[Vec<u8>], shown: &str) -> Result<TlsParameters> {
    let mut builder = TlsParameters::builder(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    );
    for (i, pem) in roots.iter().enumerate() {
        // lettre takes a PEM without any certificate in it as an empty list.
        let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
        match certs {
            Ok(c) if !c.is_empty() => {}
            Ok(_) => {
                return Err(Error::invalid(
                    format!("smtp.root_certificate[{i}]"),
                    "no `-----BEGIN CERTIFICATE-----` block: give the CA certificate in PEM",
                ));
            }
            Err(e) => {
                return Err(Error::invalid(
                    format!("smtp.root_certificate[{i}]"),
                    format!("not a PEM certificate: {e}"),
                ));
            }
        }
        let cert = Certificate::from_pem(pem).map_err(|e| {
            Error::invalid(
                format!("smtp.root_certificate[{i}]"),
                format!("not a PEM certificate: {e}"),
            )
        })?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build_rustls().map_err(|e| Error::Failed {
        provider: shown.to_owned(),
        message: format!("cannot set up TLS: {e}"),
        source: Some(Box::new(e)),
    })
}

/// A [`Notifier`] that sends mail through an SMTP server.
///
/// `Display` is `SMTP(<label or host>)`; `Debug` shows the server and the addresses,
/// never the password.
pub struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    password: Option<SecretString>,
    host: String,
    port: u16,
    tls: SmtpTls,
    shown: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    bcc: Vec<Mailbox>,
    timeout: Duration,
}

impl SmtpNotifier {
    /// A builder for mail from `from` to `to` through the server at `host`; the
    /// addresses are checked by [`build`](SmtpNotifierBuilder::build). Credentials
    /// come from the caller: this crate reads no environment or file on its own.
    pub fn builder(
        host: impl Into<String>,
        from: impl Into<String>,
        to: Vec<String>,
    ) -> SmtpNotifierBuilder {
        SmtpNotifierBuilder {
            host: host.into(),
            port: None,
            tls: SmtpTls::default(),
            from: from.into(),
            to,
            cc: Vec::new(),
            bcc: Vec::new(),
            credentials: None,
            root_certificates: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            label: None,
        }
    }

    /// The mail that `send` would submit for `message`, as it goes on the wire
    /// (headers and body; `Bcc` is not among the headers).
    pub fn render(&self, message: &Message) -> Result<Vec<u8>> {
        Ok(self.email(message)?.formatted())
    }

    fn email(&self, message: &Message) -> Result<Email> {
        if message.text.trim().is_empty() {
            return Err(Error::invalid("message.text", "must not be empty"));
        }
        if message.incident_id.trim().is_empty() {
            return Err(Error::invalid("message.incident_id", "must not be empty"));
        }
        let subject = subject(message);
        let mut builder = Email::builder()
            .from(self.from.clone())
            .subject(subject.clone())
            .message_id(Some(message_id(
                &message.incident_id,
                &subject,
                &message.text,
                &self.from,
            )))
            .header(ContentType::TEXT_PLAIN);
        for m in &self.to {
            builder = builder.to(m.clone());
        }
        for m in &self.cc {
            builder = builder.cc(m.clone());
        }
        for m in &self.bcc {
            builder = builder.bcc(m.clone());
        }
        let name = HeaderName::new_from_ascii_str("X-Meshos-Incident");
        builder = builder.raw_header(HeaderValue::new(name, one_line(&message.incident_id)));
        // lettre ends the DATA with CRLF . CRLF after the body, and the first CRLF of
        // that ends the body's last line: one final line break is left to it, so a
        // text that ends with `\n` arrives exactly.
        let text = message.text.strip_suffix('\n').unwrap_or(&message.text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        builder.body(text.to_owned()).map_err(|e| {
            Error::invalid(
                "message",
                format!("{}: cannot build the mail: {e}", self.shown),
            )
        })
    }
}

/// The subject of the mail for `message` (see the module docs).
fn subject(message: &Message) -> String {
    if let Some(s) = message.subject.as_deref().map(one_line)
        && !s.is_empty()
    {
        return s;
    }
    if message.kind == MessageKind::StakeholderEmail {
        return format!("[meshos-rollback] {}", one_line(&message.incident_id));
    }
    let first = message
        .text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let first = one_line(first);
    if first.chars().count() <= MAX_SUBJECT_CHARS {
        return first;
    }
    let mut cut: String = first.chars().take(MAX_SUBJECT_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Control characters (a CR or LF would start a new header) become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `<meshos-rollback.<32 hex digits>@<domain of the sender>>`, from a SHA-256 of
/// the incident id, the subject and the text (each length-prefixed, so no two
/// different triples hash the same input).
fn message_id(incident: &str, subject: &str, text: &str, from: &Mailbox) -> String {
    let mut h = Sha256::new();
    for part in [incident, subject, text] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("<meshos-rollback.{hex}@{}>", from.email.domain())
}

impl fmt::Debug for SmtpNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpNotifier")
            .field("shown", &self.shown)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from.to_string())
            .field(
                "to",
                &self.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
            )
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for SmtpNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Whether a rustls error (a certificate that does not verify, a handshake refused)
/// is in the chain; lettre reports those as connection errors. `io::Error::source`
/// skips the error it wraps, so that one is looked at with `get_ref`.
fn is_rustls(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<rustls::Error>()
            || e.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// SMTP reply codes that say the credentials are missing or wrong (RFC 4954 § 6).
const AUTH_CODES: [u16; 4] = [530, 534, 535, 538];

/// Converts a failed submission to an [`Error`]; the password is redacted from
/// every message kept, and lettre's error is kept as `source()` only when nothing in
/// its chain holds the password.
fn from_smtp(
    shown: &str,
    operation: &str,
    timeout: Duration,
    err: lettre::transport::smtp::Error,
    secrets: &[&str],
) -> Error {
    let chain = error_chain(&err);
    let cause = redact(&chain, secrets);
    let code = err.status().and_then(|c| c.to_string().parse::<u16>().ok());
    let timed_out = err.is_timeout();
    let tls = err.is_tls() || is_rustls(&err);
    let failed = tls || err.is_client();
    let source: Option<BoxError> = (cause == chain).then(|| Box::new(err) as BoxError);
    let provider = shown.to_owned();
    if let Some(code) = code {
        let message = format!("{operation}: SMTP {code}: {cause}");
        return if (400..500).contains(&code) {
            Error::Transient {
                provider,
                message,
                source,
            }
        } else if AUTH_CODES.contains(&code) {
            Error::PermissionDenied {
                provider,
                message,
                source,
            }
        } else {
            Error::Failed {
                provider,
                message,
                source,
            }
        };
    }
    if timed_out {
        return Error::Transient {
            provider,
            message: format!("{operation}: no answer within the {timeout:?} timeout: {cause}"),
            source,
        };
    }
    let message = if tls {
        format!("{operation}: TLS: {cause}")
    } else {
        format!("{operation}: {cause}")
    };
    if failed {
        // A certificate that does not verify, no common AUTH mechanism: not passing.
        return Error::Failed {
            provider,
            message,
            source,
        };
    }
    // Refused, reset or dropped connections, a garbled answer: passing.
    Error::Transient {
        provider,
        message,
        source,
    }
}

#[async_trait]
impl Notifier for SmtpNotifier {
    async fn send(&self, message: &Message) -> Result<()> {
        let email = self.email(message)?;
        let operation = format!("send {:?} mail of {}", message.kind, message.incident_id);
        let secrets: Vec<&str> = self.password.iter().map(|p| p.expose_secret()).collect();
        // lettre bounds the connect and each command, not the wait for the greeting:
        // one deadline covers the whole submission.
        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(from_smtp(
                &self.shown,
                &operation,
                self.timeout,
                e,
                &secrets,
            )),
            Err(_) => Err(Error::Transient {
                provider: self.shown.clone(),
                message: format!(
                    "{operation}: no answer within the {:?} timeout",
                    self.timeout
                ),
                source: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshos_rollback_core::ErrorKind;

    fn builder() -> SmtpNotifierBuilder {
        SmtpNotifier::builder(
            "smtp.example.com",
            "Mesh OS SRE <sre@meshos.io>",
            vec!["stakeholders@meshos.io".into()],
        )
    }

    fn invalid_field(b: SmtpNotifierBuilder) -> (String, String) {
        match b.build().unwrap_err() {
            Error::InvalidInput { field, message } => (field, message),
            other => panic!("not InvalidInput: {other}"),
        }
    }

    #[test]
    fn every_address_is_checked_and_named() {
        let (field, message) = invalid_field(SmtpNotifier::builder(
            "smtp.example.com",
            "not an address",
            vec!["a@meshos.io".into()],
        ));
        assert_eq!(field, "smtp.from");
        assert!(message.contains("name@example.com"), "{message}");
        let (field, _) = invalid_field(SmtpNotifier::builder(
            "smtp.example.com",
            "sre@meshos.io",
            vec!["a@meshos.io".into(), "b@meshos.io".into(), "c@".into()],
        ));
        assert_eq!(field, "smtp.to[2]");
        let (field, _) = invalid_field(builder().with_cc(vec!["x y".into()]));
        assert_eq!(field, "smtp.cc[0]");
        let (field, _) = invalid_field(builder().with_bcc(vec!["ok@meshos.io".into(), "@".into()]));
        assert_eq!(field, "smtp.bcc[1]");
        let (field, _) = invalid_field(SmtpNotifier::builder("smtp.example.com", "a@b.c", vec![]));
        assert_eq!(field, "smtp.to");
        let (field, _) = invalid_field(builder().with_timeout(Duration::ZERO));
        assert_eq!(field, "smtp.timeout");
        let (field, _) = invalid_field(SmtpNotifier::builder(" ", "a@b.c", vec!["d@e.f".into()]));
        assert_eq!(field, "smtp.host");
    }

    #[test]
    fn clear_text_is_only_for_loopback() {
        let (field, message) = invalid_field(builder().with_tls(SmtpTls::None));
        assert_eq!(field, "smtp.tls");
        assert!(message.contains("clear text"), "{message}");
        assert!(message.contains("loopback"), "{message}");
        for host in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"] {
            let n = SmtpNotifier::builder(host, "a@b.c", vec!["d@e.f".into()])
                .with_tls(SmtpTls::None)
                .build()
                .unwrap();
            assert_eq!(n.port, PLAIN_PORT, "{host}");
        }
        for host in ["10.0.0.1", "smtp.localhost.example.com", "0.0.0.0"] {
            let e = SmtpNotifier::builder(host, "a@b.c", vec!["d@e.f".into()])
                .with_tls(SmtpTls::None)
                .build()
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{host}");
        }
    }

    #[test]
    fn ports_follow_the_tls_mode_and_display_names_the_route() {
        let n = builder().build().unwrap();
        assert_eq!(n.port, SUBMISSION_PORT);
        assert_eq!(n.to_string(), "SMTP(smtp.example.com)");
        let n = builder()
            .with_tls(SmtpTls::Implicit)
            .with_label("stakeholders")
            .build()
            .unwrap();
        assert_eq!(n.port, SUBMISSIONS_PORT);
        assert_eq!(n.to_string(), "SMTP(stakeholders)");
        let n = builder().with_port(2525).build().unwrap();
        assert_eq!(n.port, 2525);
    }

    #[test]
    fn the_password_is_in_no_debug_or_display() {
        let b = builder().with_credentials("sre", SecretString::from("pw-S3CR3T-pw"));
        assert!(!format!("{b:?}").contains("S3CR3T"));
        let n = b.build().unwrap();
        assert!(!format!("{n:?}").contains("S3CR3T"), "{n:?}");
        assert!(!n.to_string().contains("S3CR3T"));
        let e = builder()
            .with_credentials("sre", SecretString::from(""))
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn a_bad_root_certificate_is_named() {
        let (field, _) = invalid_field(builder().with_root_certificate("not pem"));
        assert_eq!(field, "smtp.root_certificate[0]");
    }

    #[test]
    fn subjects_and_message_ids() {
        let m = Message::new(MessageKind::StakeholderEmail, "INC-1", "body");
        assert_eq!(subject(&m), "[meshos-rollback] INC-1");
        let m = m.with_subject("[RESOLVED] x\r\nBcc: evil@example.com");
        assert_eq!(subject(&m), "[RESOLVED] x  Bcc: evil@example.com");
        let m = Message::new(
            MessageKind::Announcement,
            "INC-1",
            "\n🔄 ROLLBACK IN PROGRESS\nRegion: us-east-1",
        );
        assert_eq!(subject(&m), "🔄 ROLLBACK IN PROGRESS");
        let long = Message::new(MessageKind::Info, "INC-1", "x".repeat(500));
        assert_eq!(subject(&long).chars().count(), MAX_SUBJECT_CHARS);

        let from: Mailbox = "sre@meshos.io".parse().unwrap();
        let a = message_id("INC-1", "s", "t", &from);
        assert_eq!(a, message_id("INC-1", "s", "t", &from));
        assert!(
            a.starts_with("<meshos-rollback.") && a.ends_with("@meshos.io>"),
            "{a}"
        );
        assert_eq!(a.len(), "<meshos-rollback.@meshos.io>".len() + 32);
        assert_ne!(a, message_id("INC-1", "s", "t2", &from));
        assert_ne!(a, message_id("INC-1", "s2", "t", &from));
        assert_ne!(a, message_id("INC-2", "s", "t", &from));
        assert_ne!(
            message_id("ab", "c", "t", &from),
            message_id("a", "bc", "t", &from)
        );
    }

    #[test]
    fn rendered_mail_has_the_headers_and_never_a_bcc() {
        let n = builder()
            .with_bcc(vec!["hidden@meshos.io".into()])
            .build()
            .unwrap();
        let m = Message::new(
            MessageKind::StakeholderEmail,
            "INC-20251030-001",
            "Hello\nworld",
        )
        .with_subject("[ONGOING] Service Incident - Region us-east-1");
        let raw = String::from_utf8(n.render(&m).unwrap()).unwrap();
        assert!(
            raw.contains("Subject: [ONGOING] Service Incident - Region us-east-1\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains("X-Meshos-Incident: INC-20251030-001\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains("Content-Type: text/plain; charset=utf-8\r\n"),
            "{raw}"
        );
        assert!(!raw.contains("hidden@meshos.io"), "{raw}");
        let e = n
            .render(&Message::new(MessageKind::Info, "INC-1", " \n"))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
