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
    // Every container got it; the secret reference was replaced, other vars kept.
    assert_eq!(
        env_of(&server, &ns, 0),
        vec![
            json!({"name": "LOG_LEVEL", "value": "info"}),
            json!({"name": "DATABASE_URL", "value": SECRET})
        ]
    );
    assert_eq!(
        env_of(&server, &ns, 1),
        vec![json!({"name": "DATABASE_URL", "value": SECRET})]
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
