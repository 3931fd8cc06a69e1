//! A real Prometheus for one test: data set written, backfilled with promtool into
//! the test's own TSDB, server started on a free port, stopped on drop. Or, with
//! `MESHOS_PROMETHEUS_URL`, an existing server that already holds the data set.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::dataset;

/// A Prometheus serving the data set, and the data set's anchor.
#[derive(Debug)]
pub(crate) struct Prometheus {
    /// Base URL, such as `http://127.0.0.1:41234`.
    pub(crate) url: String,
    /// The data set's anchor, Unix seconds.
    pub(crate) anchor: i64,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `name` from `$env_var`, else from `PATH`; a failure says how to get it.
fn binary(env_var: &str, name: &str) -> PathBuf {
    let from_env = std::env::var_os(env_var).map(PathBuf::from);
    let found = match from_env {
        Some(p) => p.is_file().then_some(p),
        None => std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        }),
    };
    found
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found in PATH (or ${env_var}). These tests need a real Prometheus: \
                 install the Debian package (`apt-get install -y --no-install-recommends prometheus`, \
                 which scripts/setup/10-prometheus.sh does), or point MESHOS_PROMETHEUS_URL at a \
                 server that holds the data set of `cargo run -p meshos-rollback-http --example prometheus_testdata`"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Starts (or finds) the Prometheus for one test.
pub(crate) async fn start() -> Prometheus {
    if let Ok(url) = std::env::var("MESHOS_PROMETHEUS_URL") {
        let url = url.trim_end_matches('/').to_owned();
        let anchor = existing_anchor(&url).await;
        return Prometheus {
            url,
            anchor,
            child: None,
            _dir: None,
        };
    }
    let prometheus = binary("MESHOS_PROMETHEUS_BIN", "prometheus");
    let promtool = binary("MESHOS_PROMTOOL_BIN", "promtool");
    let dir = tempfile::Builder::new()
        .prefix("meshos-prometheus-")
        .tempdir()
        .expect("temp dir");
    let anchor = dataset::anchor_now();
    let data = dir.path().join("data.om");
    std::fs::write(&data, dataset::openmetrics(anchor)).expect("write OpenMetrics");
    let tsdb = dir.path().join("tsdb");
    backfill(&promtool, &data, &tsdb);
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").expect("write config");

    // The port can be taken between probing and binding: try a few.
    let mut last_log = String::new();
    for _ in 0..3 {
        let port = free_port();
        let log_path = dir.path().join(format!("prometheus-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut child = Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", prometheus.display()));
        let url = format!("http://127.0.0.1:{port}");
        if wait_ready(&url, &mut child).await {
            return Prometheus {
                url,
                anchor,
                child: Some(child),
                _dir: Some(dir),
            };
        }
        let _ = child.kill();
        let _ = child.wait();
        last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    }
    panic!("Prometheus did not become ready; its log:\n{last_log}");
}

fn backfill(promtool: &Path, data: &Path, tsdb: &Path) {
    let out = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(data)
        .arg(tsdb)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    assert!(
        out.status.success(),
        "promtool backfill failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn wait_ready(url: &str, child: &mut Child) -> bool {
    let http = reqwest_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(r) = http.get(format!("{url}/-/ready")).send().await
            && r.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A plain-HTTP client for the harness (reqwest is built without a default crypto
/// provider, so even an HTTP-only client gets an explicit TLS config).
pub(crate) fn reqwest_client() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// Reads the anchor of the data set an existing server holds.
async fn existing_anchor(url: &str) -> i64 {
    let query = format!("max(max_over_time({}[14d]))", dataset::ANCHOR_SERIES);
    let mut api =
        reqwest::Url::parse(&format!("{url}/api/v1/query")).expect("MESHOS_PROMETHEUS_URL");
    api.query_pairs_mut().append_pair("query", &query);
    let body: serde_json::Value = reqwest_client()
        .get(api)
        .send()
        .await
        .unwrap_or_else(|e| panic!("MESHOS_PROMETHEUS_URL={url}: {e}"))
        .json()
        .await
        .expect("a Prometheus answer");
    let value = body["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or_else(|| {
            panic!(
                "MESHOS_PROMETHEUS_URL={url} holds no `{}` series: load the data set of \
                 `cargo run -p meshos-rollback-http --example prometheus_testdata` (see the crate README)",
                dataset::ANCHOR_SERIES
            )
        });
    value.parse::<f64>().expect("anchor") as i64
}
