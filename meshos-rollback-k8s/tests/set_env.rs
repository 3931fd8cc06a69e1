//! `set_env` rolls the playbook's `DATABASE_URL` switch out once and never logs the
//! value. Alone in its test binary: the log capture is a thread-local subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::model::ServiceId;
use meshos_rollback_core::provider::{Deployer, EnvVar};
use meshos_rollback_k8s::testing::TestApiServer;
use secrecy::SecretString;
use serde_json::{Value, json};

const V1: &str = "meshos/api:v2.4.9";

/// Collects everything written by a tracing subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `<base>-<first 10 hex of sha256(value)>`, as the deployer names it.
fn secret_for(value: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(value.as_bytes());
    let hex: String = d.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("meshos-db-url-{hex}")
}

fn env_of(server: &TestApiServer, ns: &str, container: usize) -> Vec<Value> {
    server
        .get("deployments", ns, "meshos-api")
        .unwrap()
        .pointer(&format!("/spec/template/spec/containers/{container}/env"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "current_thread")]
async fn set_env_rolls_out_once_and_never_logs_the_value() {
    const SECRET: &str = "postgresql://app:hunter2-s3cret@restored-db.internal:5432/meshos";
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = common::server().await;
    let ns = common::unique("env");
    let mut m = common::manifest(&ns, "meshos-api", V1, 2);
    m["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "api", "image": V1, "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}
        ]},
        {"name": "worker", "image": V1}
    ]);
    server.apply(m).unwrap();
    let svc = ServiceId::kubernetes(&ns, "meshos-api");
    let d = common::deployer(&server);
    common::within(20, d.wait_until_stable(&svc)).await.unwrap();

    let var = EnvVar {
        container: None,
        name: "DATABASE_URL".into(),
        value: SecretString::from(SECRET),
    };
    let change = d.set_env(&svc, &var).await.unwrap();
    assert_eq!(
        (change.from.as_str(), change.to.as_str(), change.changed),
        ("1", "2", true)
    );
    let status = common::within(20, d.wait_until_stable(&svc)).await.unwrap();
    assert_eq!(status.revision, change.to);
    // Every container reads it from a Secret named after the value; the old
    // reference was replaced by the new one, never by a plain value; other vars kept.
    let secret = secret_for(SECRET);
    let reference = json!({"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": secret, "key": "DATABASE_URL"}}});
    assert_eq!(
        env_of(&server, &ns, 0),
        vec![
            json!({"name": "LOG_LEVEL", "value": "info"}),
            reference.clone()
        ]
    );
    assert_eq!(env_of(&server, &ns, 1), vec![reference]);
    let deployment = server.get("deployments", &ns, "meshos-api").unwrap();
    assert!(
        !deployment.to_string().contains("hunter2"),
        "no plain value in the spec"
    );
    let stored = server.get("secrets", &ns, &secret).expect("the Secret");
    assert_eq!(stored["immutable"], json!(true));
    assert_eq!(stored["type"], json!("Opaque"));
    assert_eq!(
        stored["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        json!("meshos-rollback")
    );
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(stored["data"]["DATABASE_URL"].as_str().unwrap())
            .unwrap(),
        SECRET.as_bytes()
    );
    let patch = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(patch.content_type, "application/strategic-merge-patch+json");

    let again = d.set_env(&svc, &var).await.unwrap();
    assert!(!again.changed);
    assert_eq!(again.to, change.to);
    let one = EnvVar {
        container: Some("worker".into()),
        ..var.clone()
    };
    assert!(!d.set_env(&svc, &one).await.unwrap().changed);
    let missing = EnvVar {
        container: Some("nope".into()),
        ..var.clone()
    };
    let err = d.set_env(&svc, &missing).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("[\"api\", \"worker\"]"), "{err}");
    let bad = EnvVar {
        name: "A=B".into(),
        ..var.clone()
    };
    assert_eq!(
        d.set_env(&svc, &bad).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("meshos-api") || logged.contains("kube"),
        "the capture works: {logged:.300}"
    );
    assert!(!logged.contains("hunter2"), "the secret was logged");
    assert!(!format!("{var:?} {change:?}").contains("hunter2"));
}

#[tokio::test(flavor = "current_thread")]
async fn without_a_secret_the_switch_is_refused_and_a_foreign_secret_is_never_overwritten() {
    const VALUE: &str = "postgresql://app:pw@db:5432/meshos";
    let server = common::server().await;
    let ns = common::unique("env-refused");
    server
        .apply(common::manifest(&ns, "meshos-api", V1, 1))
        .unwrap();
    let svc = ServiceId::kubernetes(&ns, "meshos-api");
    let var = EnvVar {
        container: None,
        name: "DATABASE_URL".into(),
        value: SecretString::from(VALUE),
    };
    // No Secret named for the variable: refused, nothing written.
    let plain = meshos_rollback_k8s::K8sDeployer::new(server.client(), "test-cluster");
    let err = plain.set_env(&svc, &var).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Precondition, "{err}");
    assert!(
        err.to_string().contains("with_secret_env(\"DATABASE_URL\""),
        "{err}"
    );
    assert!(!err.to_string().contains("pw@db"), "{err}");
    assert!(
        server.requests().iter().all(|r| r.method == "GET"),
        "nothing written"
    );

    // A Secret of that name holding something else is someone else's: a Conflict.
    let name = secret_for(VALUE);
    server
        .apply(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "data": {"DATABASE_URL": "b3RoZXI="}}))
        .unwrap();
    let d = common::deployer(&server);
    let err = d.set_env(&svc, &var).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("never overwritten"), "{err}");
    let env = env_of(&server, &ns, 0);
    assert!(env.is_empty(), "the pods were not pointed at it: {env:?}");
    assert!(
        meshos_rollback_k8s::K8sDeployer::new(server.client(), "x")
            .with_secret_env("DATABASE_URL", "Not A Name")
            .is_err()
    );
}

/// The test server is as strict as the API server about Secrets: `data` is base64
/// ([]byte in core/v1 Secret, API reference), and an immutable Secret's data cannot
/// change (pkg/apis/core/validation/validation.go, ValidateSecretUpdate).
#[tokio::test(flavor = "current_thread")]
async fn the_test_server_refuses_bad_base64_and_changes_to_an_immutable_secret() {
    let server = common::server().await;
    let ns = common::unique("secret-strict");
    let err = server
        .apply(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "bad", "namespace": ns},
            "data": {"k": "not base64!"}}))
        .unwrap_err();
    assert!(err.contains("illegal base64"), "{err}");
    server
        .apply(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "fixed", "namespace": ns},
            "immutable": true, "data": {"k": "djE="}}))
        .unwrap();
    let err = server
        .apply(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "fixed", "namespace": ns},
            "immutable": true, "data": {"k": "djI="}}))
        .unwrap_err();
    assert!(err.contains("field is immutable"), "{err}");
}
