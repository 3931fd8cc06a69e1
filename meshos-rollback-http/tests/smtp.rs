//! [`SmtpNotifier`] against a real SMTP server: aiosmtpd, started by
//! `scripts/setup/30-smtp.sh` (`scripts/smtp_capture.py` stores every accepted mail as
//! JSON, parsed by Python's `email` package). The stakeholder e-mail is the one the
//! engine renders for a real in-memory run, `[RESOLVED]` and `[ONGOING]`.
//!
//! The server tests are `#[ignore = "needs aiosmtpd (scripts/setup/30-smtp.sh)"]`;
//! `./scripts/test-all.sh` (the README's test command) sources that hook and runs them
//! with `--include-ignored`, and they fail, never skip, when the hook's variables are
//! missing. The tests that need no server (builder checks, a refused or silent port)
//! always run.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshos_rollback_core::clock::{SharedClock, TokioClock};
use meshos_rollback_core::decision::VerificationLimits;
use meshos_rollback_core::engine::comms;
use meshos_rollback_core::engine::{
    ApproverRole, Backup, CustomerImpact, Engine, PreRollbackChecklist, RegionSpec,
    RollbackRequest, RollbackSpec, RunStatus, Trigger,
};
use meshos_rollback_core::model::{Incident, Region, Revision, Severity};
use meshos_rollback_core::provider::{Deployer, Message, MessageKind, Notifier};
use meshos_rollback_core::testing::{InMemoryWorld, fleet};
use meshos_rollback_core::{Error, ErrorKind};
use meshos_rollback_http::{SmtpNotifier, SmtpTls};
use secrecy::SecretString;
use serde_json::Value;

/// The test password contains this marker (30-smtp.sh), so one search finds any leak.
const MARKER: &str = "S3CR3T";
const NEEDS: &str = "needs aiosmtpd (scripts/setup/30-smtp.sh)";
const FROM: &str = "Mesh OS SRE <sre@meshos.io>";
const TO: [&str; 2] = [
    "stakeholders@meshos.io",
    "Support Lead <support-lead@meshos.io>",
];
const CC: &str = "oncall@meshos.io";
const BCC: &str = "exec-summary@meshos.io";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: source scripts/setup/30-smtp.sh first ({NEEDS})")
    })
}

fn password() -> String {
    let p = env("MESHOS_SMTP_PASSWORD");
    assert!(p.contains(MARKER), "the test password carries the marker");
    p
}

fn addr(var: &str) -> (String, u16) {
    let a = env(var);
    let (host, port) = a.rsplit_once(':').expect("host:port");
    (host.to_owned(), port.parse().expect("a port"))
}

/// A unique incident id per test, so tests never read each other's mail.
fn incident(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("INC-20251030-001-{test}-{nanos:x}")
}

fn notifier_with(password: &str, to: Vec<String>) -> SmtpNotifier {
    let (host, port) = addr("MESHOS_SMTP_ADDR");
    SmtpNotifier::builder(host, FROM, to)
        .with_port(port)
        .with_tls(SmtpTls::None)
        .with_credentials(env("MESHOS_SMTP_USER"), SecretString::from(password))
        .with_cc(vec![CC.into()])
        .with_bcc(vec![BCC.into()])
        .with_label("stakeholders")
        .with_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn notifier() -> SmtpNotifier {
    notifier_with(&password(), TO.iter().map(|s| s.to_string()).collect())
}

/// One mail as the server stored it.
#[derive(Debug)]
struct Captured(Value);

impl Captured {
    fn header(&self, name: &str) -> Vec<String> {
        self.0["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|h| h[1].as_str().unwrap().to_owned())
            .collect()
    }

    fn one(&self, name: &str) -> String {
        let v = self.header(name);
        assert_eq!(v.len(), 1, "exactly one {name} header: {v:?}");
        v[0].clone()
    }

    fn str(&self, field: &str) -> &str {
        self.0[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}: {}", self.0))
    }
}

/// Every mail of `incident` the server accepted, oldest first.
fn captured(incident: &str) -> Vec<Captured> {
    let dir = PathBuf::from(env("MESHOS_SMTP_CAPTURE_DIR"));
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    // `<ns>-<n>.json`: the time orders them.
    names.sort_by_key(|p| {
        let stem = p.file_stem().unwrap().to_str().unwrap().to_owned();
        let (ns, n) = stem.split_once('-').unwrap();
        (ns.parse::<u128>().unwrap(), n.parse::<u64>().unwrap())
    });
    names
        .iter()
        .map(|p| Captured(serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()))
        .filter(|c| c.header("X-Meshos-Incident") == [incident])
        .collect()
}

/// The stakeholder e-mail of a real run on the in-memory playbook fleet (one region
/// of two, 10:00 UTC): resolved, or not because health checks keep failing. Split the
/// way the engine sends it: the `Subject:` line and the body.
fn stakeholder_email(resolved: bool) -> (String, String) {
    // Paused time makes the 15-minute verification instant; SMTP then runs on a
    // separate, real-time runtime (paused time would fire its timeouts at once).
    let email = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(run_to_report(resolved))
    })
    .join()
    .expect("the in-memory run");
    let (subject, body) = email
        .split_once("\n\n")
        .expect("a subject line, then the body");
    let subject = subject.strip_prefix("Subject: ").expect("Subject: …");
    (subject.to_owned(), body.to_owned())
}

async fn run_to_report(resolved: bool) -> String {
    {
        let clock: SharedClock = Arc::new(TokioClock::starting_at(
            "2025-10-30T10:00:00Z".parse().unwrap(),
        ));
        let r = Region::new("us-east-1").unwrap();
        let regions = [r.clone(), Region::new("us-west-2").unwrap()];
        let world = InMemoryWorld::playbook_fleet(clock.clone(), &regions);
        let d = &world.region(&r).deployer;
        d.deploy(
            &fleet::api(&r),
            Revision::new(fleet::BAD).with_image(fleet::BAD_IMAGE),
        )
        .unwrap();
        d.wait_until_stable(&fleet::api(&r)).await.unwrap();
        let mut spec = RollbackSpec::new(vec![
            RegionSpec::new(r.clone(), fleet::api(&r))
                .excluding_from(fleet::API_RECORD)
                .checking_other_regions(),
        ])
        .with_fleet(world.fleet_services());
        if !resolved {
            world
                .health
                .set_status("https://us-east-1.meshos.io/health", 502);
            spec.policy.verification = VerificationLimits::builder()
                .with_window(Duration::from_secs(60), Duration::from_secs(30))
                .build()
                .unwrap();
        }
        let engine = Engine::builder(world.providers())
            .with_clock(clock.clone())
            .ephemeral()
            .build()
            .unwrap();
        let plan = engine.plan(&spec).await.unwrap();
        let request = RollbackRequest {
            incident: Incident {
                id: "INC-20251030-001".into(),
                severity: Severity::High,
                summary: "High error rate detected".into(),
                started_at: clock.now(),
                regions: vec![r.clone()],
            },
            trigger: Trigger::Manual(
                PreRollbackChecklist::new()
                    .incident_documented("https://incidents.meshos.io/INC-20251030-001")
                    .approved_by("alice", ApproverRole::OnCallEngineer)
                    .customer_impact(CustomerImpact::new(Some(150), "elevated error rates"))
                    .stakeholders_notified("status page and #customer-support at 10:07 UTC")
                    .backup(Backup::Skipped("no time: error rate climbing".into())),
            ),
            prior_events: vec![],
        };
        let report = engine.execute(plan, request).await.unwrap();
        let want = if resolved {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        assert_eq!(report.status, want);
        report.stakeholder_email()
    }
}

#[track_caller]
fn assert_no_secret(err: &Error, password: &str) {
    let mut texts = vec![err.to_string(), format!("{err:?}")];
    let mut cur = std::error::Error::source(err);
    while let Some(e) = cur {
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
        cur = e.source();
    }
    for t in &texts {
        assert!(
            !t.contains(password) && !t.contains(MARKER),
            "a secret leaked: {t}"
        );
    }
}

#[tokio::test]
#[ignore = "needs aiosmtpd (scripts/setup/30-smtp.sh)"]
async fn the_stakeholder_email_arrives_exactly() {
    let password = password();
    let n = notifier();
    let (resolved_subject, resolved_body) = stakeholder_email(true);
    let (ongoing_subject, ongoing_body) = stakeholder_email(false);
    // The playbook's template, as the engine renders it (core's engine_comms test pins it).
    assert_eq!(
        resolved_subject,
        "[RESOLVED] Service Incident - Region us-east-1"
    );
    assert!(
        resolved_body
            .starts_with("We experienced a service disruption in the us-east-1 region from 10:00-"),
        "{resolved_body}"
    );
    assert_eq!(
        ongoing_subject,
        "[ONGOING] Service Incident - Region us-east-1"
    );
    assert!(
        ongoing_body.contains("has not yet restored normal operation"),
        "{ongoing_body}"
    );

    for (subject, body) in [
        (&resolved_subject, &resolved_body),
        (&ongoing_subject, &ongoing_body),
    ] {
        let id = incident("stakeholder");
        let message = Message::new(MessageKind::StakeholderEmail, id.as_str(), body.as_str())
            .with_subject(subject.as_str());
        n.send(&message).await.unwrap();
        let got = captured(&id);
        assert_eq!(got.len(), 1, "one mail per send");
        let mail = &got[0];
        // The envelope: every recipient, Bcc included; the sender without its name.
        assert_eq!(mail.str("mail_from"), "sre@meshos.io");
        assert_eq!(
            mail.0["rcpt_tos"],
            serde_json::json!(["stakeholders@meshos.io", "support-lead@meshos.io", CC, BCC])
        );
        assert_eq!(mail.str("auth_login"), env("MESHOS_SMTP_USER"));
        assert_eq!(mail.0["tls"], false);
        // The headers.
        assert_eq!(mail.one("Subject"), *subject);
        assert_eq!(mail.one("From"), FROM);
        assert_eq!(
            mail.one("To"),
            "stakeholders@meshos.io, Support Lead <support-lead@meshos.io>"
        );
        assert_eq!(mail.one("Cc"), CC);
        assert!(mail.header("Bcc").is_empty(), "Bcc is not a header");
        assert_eq!(mail.one("X-Meshos-Incident"), id);
        assert_eq!(mail.str("content_type"), "text/plain");
        assert_eq!(mail.str("charset"), "utf-8");
        let message_id = mail.one("Message-ID");
        assert!(
            message_id.starts_with("<meshos-rollback.") && message_id.ends_with("@meshos.io>"),
            "{message_id}"
        );
        assert!(!mail.one("Date").is_empty(), "a Date header");
        // The body, exactly (decoded by Python's email package; CRLF back to LF).
        assert_eq!(mail.str("body"), body.as_str());
        assert!(!mail.str("raw").contains(&password));
        assert!(!mail.str("raw").contains(MARKER));

        // A retried send is the same mail to a deduplicating mail system.
        n.send(&message).await.unwrap();
        let got = captured(&id);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].one("Message-ID"), message_id);
        assert_eq!(got[1].str("body"), body.as_str());
    }
    // Another message of the same incident has another Message-ID.
    let id = incident("distinct");
    n.send(
        &Message::new(
            MessageKind::StakeholderEmail,
            id.as_str(),
            resolved_body.as_str(),
        )
        .with_subject(resolved_subject.as_str()),
    )
    .await
    .unwrap();
    n.send(
        &Message::new(
            MessageKind::StakeholderEmail,
            id.as_str(),
            ongoing_body.as_str(),
        )
        .with_subject(ongoing_subject.as_str()),
    )
    .await
    .unwrap();
    let got = captured(&id);
    assert_ne!(got[0].one("Message-ID"), got[1].one("Message-ID"));
}

#[tokio::test]
#[ignore = "needs aiosmtpd (scripts/setup/30-smtp.sh)"]
async fn other_events_are_mailed_with_their_first_line_as_subject() {
    let n = notifier();
    let id = incident("announce");
    let started: jiff::Timestamp = "2025-10-30T10:15:00Z".parse().unwrap();
    let announcement = comms::announcement(
        &[Region::new("us-east-1").unwrap()],
        "High error rate detected",
        started,
        Duration::from_secs(300),
        Duration::from_secs(120),
    );
    n.send(&Message::new(
        MessageKind::Announcement,
        id.as_str(),
        announcement.as_str(),
    ))
    .await
    .unwrap();
    let no_subject = incident("nosubject");
    n.send(&Message::new(
        MessageKind::StakeholderEmail,
        no_subject.as_str(),
        "Body only.",
    ))
    .await
    .unwrap();
    let got = captured(&id);
    assert_eq!(got.len(), 1);
    // Non-ASCII (the emoji) is encoded on the wire and arrives intact.
    assert_eq!(got[0].one("Subject"), "🔄 ROLLBACK IN PROGRESS");
    // The mail ends with a line break (see the module docs of `smtp`).
    assert_eq!(got[0].str("body"), format!("{announcement}\n"));
    assert_eq!(got[0].str("charset"), "utf-8");
    let got = captured(&no_subject);
    assert_eq!(
        got[0].one("Subject"),
        format!("[meshos-rollback] {no_subject}")
    );
}

#[tokio::test]
#[ignore = "needs aiosmtpd (scripts/setup/30-smtp.sh)"]
async fn a_wrong_password_is_permission_denied_and_never_shown() {
    let wrong = format!("wrong-{MARKER}-password");
    let n = notifier_with(&wrong, vec![TO[0].into()]);
    let id = incident("wrongpw");
    let e = n
        .send(&Message::new(
            MessageKind::StakeholderEmail,
            id.as_str(),
            "x",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("SMTP 535"), "{e}");
    assert!(e.to_string().contains("SMTP(stakeholders)"), "{e}");
    assert_no_secret(&e, &wrong);
    assert!(!format!("{n:?}").contains(MARKER));
    assert!(captured(&id).is_empty(), "nothing was accepted");
}

#[tokio::test]
#[ignore = "needs aiosmtpd (scripts/setup/30-smtp.sh)"]
async fn a_refused_recipient_names_the_550() {
    let n = notifier_with(&password(), vec![TO[0].into(), "bounce@meshos.io".into()]);
    let id = incident("bounce");
    let e = n
        .send(&Message::new(
            MessageKind::StakeholderEmail,
            id.as_str(),
            "x",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(!e.is_retryable());
    let text = e.to_string();
    assert!(text.contains("SMTP 550"), "{text}");
    assert!(text.contains("mailbox unavailable"), "{text}");
    assert_no_secret(&e, &password());
    assert!(captured(&id).is_empty(), "no partial delivery");
}

#[tokio::test]
#[ignore = "needs aiosmtpd (scripts/setup/30-smtp.sh)"]
async fn starttls_with_a_private_root() {
    let (host, port) = addr("MESHOS_SMTP_STARTTLS_ADDR");
    let ca = std::fs::read(env("MESHOS_SMTP_CA_PEM")).unwrap();
    let build = |root: Option<&[u8]>| {
        let mut b = SmtpNotifier::builder(host.clone(), FROM, vec![TO[0].into()])
            .with_port(port)
            .with_credentials(env("MESHOS_SMTP_USER"), SecretString::from(password()))
            .with_timeout(Duration::from_secs(5));
        if let Some(pem) = root {
            b = b.with_root_certificate(pem);
        }
        b.build().unwrap()
    };
    let id = incident("starttls");
    build(Some(&ca))
        .send(&Message::new(
            MessageKind::StakeholderEmail,
            id.as_str(),
            "über TLS",
        ))
        .await
        .unwrap();
    let got = captured(&id);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0["tls"], true);
    assert_eq!(got[0].str("body"), "über TLS\n");

    // Without the root the certificate does not verify: refused, and not passing.
    let id = incident("untrusted");
    let e = build(None)
        .send(&Message::new(
            MessageKind::StakeholderEmail,
            id.as_str(),
            "x",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(e.to_string().contains("TLS: "), "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    assert_no_secret(&e, &password());
    assert!(captured(&id).is_empty());

    // A server that does not offer STARTTLS (the plain one) gets neither the
    // password nor the mail.
    let (host, port) = addr("MESHOS_SMTP_ADDR");
    let id = incident("nostarttls");
    let e = SmtpNotifier::builder(host, FROM, vec![TO[0].into()])
        .with_port(port)
        .with_credentials(env("MESHOS_SMTP_USER"), SecretString::from(password()))
        .build()
        .unwrap()
        .send(&Message::new(
            MessageKind::StakeholderEmail,
            id.as_str(),
            "x",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(e.to_string().to_lowercase().contains("starttls"), "{e}");
    assert!(captured(&id).is_empty());
}

fn loopback_notifier(port: u16, timeout: Duration) -> SmtpNotifier {
    SmtpNotifier::builder("127.0.0.1", FROM, vec![TO[0].into()])
        .with_port(port)
        .with_tls(SmtpTls::None)
        .with_credentials("sre", SecretString::from(format!("pw-{MARKER}")))
        .with_timeout(timeout)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let e = loopback_notifier(port, Duration::from_secs(2))
        .send(&Message::new(MessageKind::StakeholderEmail, "INC-1", "x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(e.to_string().contains("SMTP(127.0.0.1)"), "{e}");
    assert_no_secret(&e, MARKER);
}

#[tokio::test]
async fn a_server_that_never_greets_times_out_as_transient() {
    // Accepts the connection and says nothing: lettre waits for the 220 greeting.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let e = loopback_notifier(port, timeout)
        .send(&Message::new(MessageKind::StakeholderEmail, "INC-1", "x"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(
        e.to_string().contains("no answer within the 500ms timeout"),
        "{e}"
    );
    assert!(took >= timeout && took < timeout * 4, "{took:?}");
    assert_no_secret(&e, MARKER);
    drop(listener);
}

#[test]
fn the_builder_refuses_bad_settings_before_any_connection() {
    let e = SmtpNotifier::builder(
        "smtp.meshos.io",
        FROM,
        vec!["a@meshos.io".into(), "nope".into()],
    )
    .build()
    .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput { field, .. } if field == "smtp.to[1]"),
        "{e}"
    );
    let e = SmtpNotifier::builder("smtp.meshos.io", FROM, vec!["a@meshos.io".into()])
        .with_tls(SmtpTls::None)
        .build()
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput { field, .. } if field == "smtp.tls"),
        "{e}"
    );
    let n = SmtpNotifier::builder("smtp.meshos.io", FROM, vec!["a@meshos.io".into()])
        .with_credentials("sre", SecretString::from(format!("pw-{MARKER}")))
        .build()
        .unwrap();
    assert_eq!(n.to_string(), "SMTP(smtp.meshos.io)");
    assert!(!format!("{n:?}").contains(MARKER));
}
