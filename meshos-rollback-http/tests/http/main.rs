//! The HTTP providers against local HTTP servers that record what they receive:
//! exact payloads, status handling, timeouts, no retries, and no secret in any
//! `Debug`, `Display`, error or log line. The core conformance suites run too.
//! Needs no external server: runs in plain `cargo test`.

mod fake_slack;
mod health;
mod layered;
mod pagerduty;
mod prometheus_http;
mod recorder;
mod reports;
mod slack;
mod slack_api;
mod teams;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Every secret in these tests contains this marker, so one search finds any leak.
pub(crate) const MARKER: &str = "S3CR3T";

/// Everything logged in this test process so far, at every level, `log` records of
/// reqwest and hyper included. The first call installs the subscriber.
pub(crate) fn captured_logs() -> String {
    let buf = log_buffer();
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .try_init()
            .expect("the only subscriber of this test binary");
        buf
    })
}

/// Installs the capturing subscriber (call at the start of every test).
pub(crate) fn capture_logs() {
    log_buffer();
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A client for posting to the local fakes directly (plain HTTP; rustls on *ring*
/// only because reqwest wants a crypto provider).
pub(crate) fn plain_http_client() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}

/// Asserts that neither the error's `Display`, `Debug` nor any `source()` holds a
/// secret, and logs it the way a tracing layer would.
#[track_caller]
pub(crate) fn assert_no_secret(err: &meshos_rollback_core::Error) {
    let mut texts = vec![err.to_string(), format!("{err:?}")];
    let mut cur = std::error::Error::source(err);
    while let Some(e) = cur {
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
        cur = e.source();
    }
    for t in &texts {
        assert!(!t.contains(MARKER), "a secret leaked: {t}");
    }
    tracing::error!(error = %err, debug = ?err, "provider call failed");
}
