//! Helpers shared by the integration tests: a test API server, unique names, and
//! Deployments with a rollout history.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use meshos_rollback_core::model::ServiceId;
use meshos_rollback_core::provider::Deployer;
use meshos_rollback_core::wait::Backoff;
use meshos_rollback_k8s::K8sDeployer;
use meshos_rollback_k8s::testing::{TestApiServer, deployment_manifest};
use serde_json::{Value, json};

/// A fresh server with quick pods and controllers.
pub async fn server() -> TestApiServer {
    TestApiServer::builder()
        .with_pod_ready_after(Duration::from_millis(40))
        .with_tick(Duration::from_millis(10))
        .start()
        .await
        .expect("test API server")
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{:x}",
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 0xfffff
    )
}

/// A deployer that re-checks quickly.
pub fn deployer(server: &TestApiServer) -> K8sDeployer {
    K8sDeployer::new(server.client(), "test-cluster")
        .with_recheck_interval(Duration::from_millis(50))
        .with_poll_backoff(Backoff {
            initial: Duration::from_millis(20),
            factor: 1.5,
            max_interval: Duration::from_millis(100),
            max_checks: None,
        })
        .with_secret_env("DATABASE_URL", "meshos-db-url")
        .unwrap()
}

/// The manifest of revision `image`, with a change-cause like `kubectl annotate`.
pub fn manifest(ns: &str, name: &str, image: &str, replicas: i32) -> Value {
    let mut m = deployment_manifest(ns, name, "api", image, replicas);
    m["metadata"]["annotations"] = json!({"kubernetes.io/change-cause": format!("deploy {image}")});
    m
}

/// A Deployment that rolled out each image in turn (revisions 1, 2, …), stable.
pub async fn with_history(
    server: &TestApiServer,
    ns: &str,
    name: &str,
    images: &[&str],
) -> ServiceId {
    let d = deployer(server);
    let svc = ServiceId::kubernetes(ns, name);
    for image in images {
        server.apply(manifest(ns, name, image, 3)).expect("apply");
        tokio::time::timeout(Duration::from_secs(20), d.wait_until_stable(&svc))
            .await
            .expect("rollout within 20 s")
            .expect("stable");
    }
    svc
}

/// The Deployment's first container image.
pub fn image_of(server: &TestApiServer, ns: &str, name: &str) -> String {
    server
        .get("deployments", ns, name)
        .and_then(|d| d.pointer("/spec/template/spec/containers/0/image").cloned())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `(revision, revision-history, image)` of every ReplicaSet, sorted by revision.
pub fn replica_sets(server: &TestApiServer, ns: &str) -> Vec<(i64, String, String)> {
    let mut out: Vec<(i64, String, String)> = server
        .list("replicasets", ns)
        .iter()
        .map(|rs| {
            let a = &rs["metadata"]["annotations"];
            (
                a["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0),
                a["deployment.kubernetes.io/revision-history"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                rs.pointer("/spec/template/spec/containers/0/image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Bounds a wait in a test.
pub async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("did not finish within {secs} s"))
}
