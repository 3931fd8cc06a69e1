//! A moto server for the tests, and SDK configurations that talk to it.
//!
//! `MESHOS_AWS_ENDPOINT` names a running server (the test command's setup hook starts
//! one). Without it the first test starts `.venv-moto/bin/moto_server` (relative to the
//! workspace root) for the whole test binary; when neither is possible the test fails
//! with a message saying how to get one. Every test gets its own moto account (the
//! `x-moto-account-id` header), so tests never share state and need no reset.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::retry::RetryConfig;
use aws_types::SdkConfig;

/// The ECS running-task count the server is started with; test services use it as
/// their desired count so they become stable.
pub(crate) const ECS_RUNNING: i32 = 2;

/// The moto server's URL.
pub(crate) fn endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| match std::env::var("MESHOS_AWS_ENDPOINT") {
            Ok(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
            _ => start_server(),
        })
        .clone()
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_owned()
}

fn start_server() -> String {
    let root = workspace_root();
    let bin = root.join(".venv-moto/bin/moto_server");
    assert!(
        bin.exists(),
        "this test needs a moto server: set MESHOS_AWS_ENDPOINT to a running one, or \
         install it with `source scripts/setup/20-moto.sh` (creates {}), or run the whole \
         suite with scripts/test-all.sh",
        bin.display()
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let log = root.join(".test-servers");
    std::fs::create_dir_all(&log).expect("log directory");
    let log = log.join(format!("moto-test-{}.log", std::process::id()));
    // A watchdog shell stops the server when this test process is gone, so a test
    // binary never leaves a server behind.
    let script = r#"MOTO_ECS_SERVICE_RUNNING="$4" "$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 & m=$!
while kill -0 "$3" 2>/dev/null && kill -0 "$m" 2>/dev/null; do sleep 1; done
kill "$m" 2>/dev/null; wait "$m""#;
    // Not waited for on purpose: the watchdog runs until this process exits.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&bin)
        .arg(port.to_string())
        .arg(&log)
        .arg(std::process::id().to_string())
        .arg(ECS_RUNNING.to_string())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if raw_get(port, "/moto-api/").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
            return url;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "moto server at {url} did not answer within 60 s; its log is {}",
        log.display()
    );
}

fn raw_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// A name no other test (or run) uses: `prefix-<hex>`.
pub(crate) fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mix = nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{prefix}-{:08x}", mix & 0xffff_ffff)
}

/// A fresh 12-digit moto account.
pub(crate) fn account() -> String {
    let u = unique("a");
    let hex = u64::from_str_radix(&u[2..], 16).unwrap();
    format!("{:012}", 100_000_000_000 + hex % 800_000_000_000)
}

/// One test's view of moto: its own account, a region, and a count of the HTTP
/// requests sent.
#[derive(Debug, Clone)]
pub(crate) struct Moto {
    pub(crate) endpoint: String,
    pub(crate) account: String,
    pub(crate) region: String,
    pub(crate) config: SdkConfig,
    requests: Arc<AtomicUsize>,
}

impl Moto {
    /// A new account in `region`. Retries are off: a failing call fails at once.
    pub(crate) fn new(region: &str) -> Self {
        Self::with_account(region, &account())
    }

    /// `region` of an existing account (several regions of one test).
    pub(crate) fn with_account(region: &str, account: &str) -> Self {
        let endpoint = endpoint();
        let requests = Arc::new(AtomicUsize::new(0));
        let http = MotoHttp {
            inner: default_client(),
            account: account.to_owned(),
            requests: requests.clone(),
        };
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(Region::new(region.to_owned()))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "static",
            )))
            .retry_config(RetryConfig::disabled())
            .http_client(SharedHttpClient::new(http))
            .build();
        Moto {
            endpoint,
            account: account.to_owned(),
            region: region.to_owned(),
            config,
            requests,
        }
    }

    /// HTTP requests sent through this configuration so far.
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The account's default-VPC id and two of its subnets (an EC2 Query call: moto
    /// checks no signatures, so no EC2 SDK is needed).
    pub(crate) fn default_subnets(&self) -> (String, Vec<String>) {
        let port: u16 = self
            .endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("endpoint port");
        let body = "Action=DescribeSubnets&Version=2016-11-15";
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to moto");
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             x-moto-account-id: {}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20250101/{}/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\r\n{body}",
            body.len(),
            self.account,
            self.region
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let values = |tag: &str| -> Vec<String> {
            out.split(&format!("<{tag}>"))
                .skip(1)
                .filter_map(|p| p.split(&format!("</{tag}>")).next())
                .map(str::to_owned)
                .collect()
        };
        let subnets = values("subnetId");
        let vpc = values("vpcId").into_iter().next().expect("a default VPC");
        assert!(subnets.len() >= 2, "moto default VPC subnets: {out}");
        (vpc, subnets.into_iter().take(2).collect())
    }
}

fn default_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Adds the moto account header and counts requests.
#[derive(Debug, Clone)]
struct MotoHttp {
    inner: SharedHttpClient,
    account: String,
    requests: Arc<AtomicUsize>,
}

impl HttpClient for MotoHttp {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(MotoConnector {
            inner: self.inner.http_connector(settings, components),
            account: self.account.clone(),
            requests: self.requests.clone(),
        })
    }
}

#[derive(Debug)]
struct MotoConnector {
    inner: SharedHttpConnector,
    account: String,
    requests: Arc<AtomicUsize>,
}

impl HttpConnector for MotoConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        request
            .headers_mut()
            .insert("x-moto-account-id", self.account.clone());
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.call(request)
    }
}

/// A form-encoded (AWS query protocol) request body as a map; empty if it is not one.
pub(crate) fn form(body: &[u8]) -> BTreeMap<String, String> {
    let Ok(text) = std::str::from_utf8(body) else {
        return BTreeMap::new();
    };
    if text.trim_start().starts_with(['{', '<']) {
        return BTreeMap::new();
    }
    text.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((percent_decode(k), percent_decode(v)))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
