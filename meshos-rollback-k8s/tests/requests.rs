//! The exact requests the backend sends, pinned with `tower_test::mock`: paths,
//! query parameters, patch types and bodies.

use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::model::{RollbackTarget, ServiceId};
use meshos_rollback_core::provider::{
    Deployer, EnvVar, ImageUpdate, LockKey, RollbackLock, RolloutPhase,
};
use meshos_rollback_k8s::{K8sDeployer, LeaseLock};
use secrecy::SecretString;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

type MockHandle = Handle<Request<Body>, Response<Body>>;

fn pair() -> (kube::Client, MockHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

/// The next request, checked for method and path; its query and body.
async fn expect(
    handle: &mut MockHandle,
    method: Method,
    path: &str,
) -> (
    Vec<(String, String)>,
    String,
    Value,
    SendResponse<Response<Body>>,
) {
    let (req, send) = handle.next_request().await.expect("a request");
    assert_eq!(req.method(), method, "{}", req.uri());
    assert_eq!(req.uri().path(), path);
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (query, content_type, body, send)
}

fn respond(send: SendResponse<Response<Body>>, code: u16, body: &Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn template(image: &str, hash: Option<&str>) -> Value {
    let mut labels = json!({"app": "meshos-api"});
    if let Some(h) = hash {
        labels["pod-template-hash"] = json!(h);
    }
    json!({"metadata": {"labels": labels},
           "spec": {"containers": [{"name": "api", "image": image, "env": [{"name": "LOG_LEVEL", "value": "info"}]}]}})
}

fn deployment(image: &str, generation: i64, status: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "meshos-api", "namespace": "production", "uid": "dep-uid",
                     "generation": generation, "resourceVersion": "100",
                     "annotations": {"deployment.kubernetes.io/revision": "2", "kubernetes.io/change-cause": "deploy v2"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "meshos-api"}}, "template": template(image, None)},
        "status": status,
    })
}

fn replica_sets() -> Value {
    let rs = |name: &str, rev: &str, image: &str, hash: &str| {
        json!({
            "metadata": {"name": name, "namespace": "production", "uid": format!("{name}-uid"),
                "creationTimestamp": format!("2025-10-30T10:0{rev}:00Z"),
                "labels": {"app": "meshos-api", "pod-template-hash": hash},
                "annotations": {"deployment.kubernetes.io/revision": rev, "kubernetes.io/change-cause": format!("deploy {image}"),
                                "deployment.kubernetes.io/desired-replicas": "3"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "meshos-api",
                                     "uid": "dep-uid", "controller": true}]},
            "spec": {"replicas": 0, "template": template(image, Some(hash))},
            "status": {"replicas": 0, "availableReplicas": 0},
        })
    };
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {"resourceVersion": "101"},
           "items": [rs("meshos-api-h1", "1", "meshos/api:v1", "h1"), rs("meshos-api-h2", "2", "meshos/api:v2", "h2")]})
}

fn complete() -> Value {
    json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3})
}

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/production/deployments/meshos-api";
const REPLICA_SETS: &str = "/apis/apps/v1/namespaces/production/replicasets";

async fn serve_snapshot(handle: &mut MockHandle, deployment: Value) {
    let (q, _, _, send) = expect(handle, Method::GET, DEPLOYMENT).await;
    assert!(q.is_empty(), "{q:?}");
    respond(send, 200, &deployment);
    let (q, _, _, send) = expect(handle, Method::GET, REPLICA_SETS).await;
    assert_eq!(param(&q, "labelSelector"), Some("app=meshos-api"));
    respond(send, 200, &replica_sets());
}

fn svc() -> ServiceId {
    ServiceId::kubernetes("production", "meshos-api")
}

#[tokio::test]
async fn undo_sends_kubectls_json_patch() {
    for dry_run in [false, true] {
        let (client, mut handle) = pair();
        let d = K8sDeployer::new(client, "mock").with_server_dry_run(dry_run);
        let server = tokio::spawn(async move {
            serve_snapshot(&mut handle, deployment("meshos/api:v2", 3, complete())).await;
            let (q, content_type, body, send) =
                expect(&mut handle, Method::PATCH, DEPLOYMENT).await;
            assert_eq!(content_type, "application/json-patch+json");
            assert_eq!(param(&q, "fieldManager"), Some("meshos-rollback"));
            assert_eq!(param(&q, "dryRun"), dry_run.then_some("All"));
            assert_eq!(
                body,
                json!([
                    {"op": "replace", "path": "/spec/template", "value": template("meshos/api:v1", None)},
                    {"op": "replace", "path": "/metadata/annotations", "value": {
                        "deployment.kubernetes.io/revision": "2",
                        "kubernetes.io/change-cause": "deploy meshos/api:v1",
                    }},
                ])
            );
            respond(send, 200, &deployment("meshos/api:v1", 4, complete()));
        });
        let change = d
            .roll_back(&svc(), &RollbackTarget::Previous)
            .await
            .unwrap();
        assert_eq!(
            (change.from.as_str(), change.to.as_str(), change.changed),
            ("2", "1", true)
        );
        server.await.unwrap();
    }
}

#[tokio::test]
async fn set_env_and_set_image_send_strategic_merge_patches() {
    let (client, mut handle) = pair();
    let d = K8sDeployer::new(client, "mock")
        .with_secret_env("DATABASE_URL", "meshos-db-url")
        .unwrap();
    // The Secret's name carries a hash of its value (sha256("postgresql://…")[..5]).
    let secret = "meshos-db-url-c801da886f";
    let secret_path = format!("/api/v1/namespaces/production/secrets/{secret}");
    let server = tokio::spawn(async move {
        serve_snapshot(&mut handle, deployment("meshos/api:v2", 3, complete())).await;
        // The Secret first: read (absent), then created immutable, base64 data.
        let (_, _, _, send) = expect(&mut handle, Method::GET, &secret_path).await;
        respond(
            send,
            404,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "secrets not found"}),
        );
        let (_, _, body, send) = expect(
            &mut handle,
            Method::POST,
            "/api/v1/namespaces/production/secrets",
        )
        .await;
        assert_eq!(body["immutable"], json!(true));
        assert_eq!(body["metadata"]["name"], json!(secret));
        assert_eq!(
            body["data"],
            json!({"DATABASE_URL": "cG9zdGdyZXNxbDovL3Jlc3RvcmVkLWRiOjU0MzIvbWVzaG9z"})
        );
        respond(send, 201, &body);
        let (q, content_type, body, send) = expect(&mut handle, Method::PATCH, DEPLOYMENT).await;
        assert_eq!(content_type, "application/strategic-merge-patch+json");
        assert_eq!(param(&q, "dryRun"), None);
        assert_eq!(
            body,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "api", "env": [{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": secret, "key": "DATABASE_URL"}}}]}
            ]}}}})
        );
        assert!(!body.to_string().contains("restored-db"), "no plain value");
        respond(send, 200, &deployment("meshos/api:v2", 4, complete()));

        serve_snapshot(&mut handle, deployment("meshos/api:v2", 3, complete())).await;
        let (_, content_type, body, send) = expect(&mut handle, Method::PATCH, DEPLOYMENT).await;
        assert_eq!(content_type, "application/strategic-merge-patch+json");
        assert_eq!(
            body,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "meshos/api:v3"}]}}}})
        );
        respond(send, 200, &deployment("meshos/api:v3", 4, complete()));
    });
    let var = EnvVar {
        container: Some("api".into()),
        name: "DATABASE_URL".into(),
        value: SecretString::from("postgresql://restored-db:5432/meshos"),
    };
    let change = d.set_env(&svc(), &var).await.unwrap();
    assert_eq!(
        (change.from.as_str(), change.to.as_str(), change.changed),
        ("2", "3", true)
    );
    let change = d
        .set_image(
            &svc(),
            &ImageUpdate {
                container: None,
                image: "meshos/api:v3".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(change.to.as_str(), "3");
    server.await.unwrap();
}

#[tokio::test]
async fn waiting_watches_from_the_resource_version_it_read() {
    let (client, mut handle) = pair();
    let d = K8sDeployer::new(client, "mock").with_recheck_interval(Duration::from_secs(30));
    let server = tokio::spawn(async move {
        let progressing = json!({"observedGeneration": 3, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3});
        serve_snapshot(&mut handle, deployment("meshos/api:v2", 3, progressing)).await;
        let (q, _, _, send) = expect(
            &mut handle,
            Method::GET,
            "/api/v1/namespaces/production/pods",
        )
        .await;
        assert_eq!(
            param(&q, "labelSelector"),
            Some("app=meshos-api,pod-template-hash=h2")
        );
        respond(
            send,
            200,
            &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}),
        );
        let (q, _, _, send) = expect(
            &mut handle,
            Method::GET,
            "/apis/apps/v1/namespaces/production/deployments",
        )
        .await;
        assert_eq!(param(&q, "watch"), Some("true"));
        assert_eq!(param(&q, "fieldSelector"), Some("metadata.name=meshos-api"));
        assert_eq!(param(&q, "resourceVersion"), Some("100"));
        assert_eq!(param(&q, "timeoutSeconds"), Some("290"));
        let event =
            json!({"type": "MODIFIED", "object": deployment("meshos/api:v2", 3, complete())});
        respond(send, 200, &event);
        serve_snapshot(&mut handle, deployment("meshos/api:v2", 3, complete())).await;
    });
    let status = d.wait_until_stable(&svc()).await.unwrap();
    assert_eq!(
        (status.phase, status.revision.as_str()),
        (RolloutPhase::Complete, "2")
    );
    server.await.unwrap();
}

#[tokio::test]
async fn lease_acquire_creates_a_lease_and_names_the_winner_on_a_race() {
    let (client, mut handle) = pair();
    let lock = LeaseLock::new(client, "meshos-system");
    let path = "/apis/coordination.k8s.io/v1/namespaces/meshos-system/leases";
    let server = tokio::spawn(async move {
        let (_, _, _, send) =
            expect(&mut handle, Method::GET, &format!("{path}/rollback-api")).await;
        respond(
            send,
            404,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404, "message": "leases.coordination.k8s.io \"rollback-api\" not found"}),
        );
        let (_, content_type, body, send) = expect(&mut handle, Method::POST, path).await;
        assert_eq!(content_type, "application/json");
        assert_eq!(body["metadata"]["name"], "rollback-api");
        assert_eq!(body["spec"]["holderIdentity"], "deploy-bot");
        assert_eq!(body["spec"]["leaseDurationSeconds"], 30);
        assert_eq!(body["spec"]["leaseTransitions"], 1);
        let acquired = body["spec"]["acquireTime"].as_str().unwrap();
        assert_eq!(acquired, body["spec"]["renewTime"].as_str().unwrap());
        assert_eq!(
            acquired.len(),
            "2025-10-30T10:00:00.000000Z".len(),
            "MicroTime: {acquired}"
        );
        // Someone else created it first.
        respond(
            send,
            409,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "AlreadyExists", "code": 409, "message": "leases.coordination.k8s.io \"rollback-api\" already exists"}),
        );
        let (_, _, _, send) =
            expect(&mut handle, Method::GET, &format!("{path}/rollback-api")).await;
        let mut winner = body.clone();
        winner["spec"]["holderIdentity"] = json!("other-bot");
        winner["metadata"]["resourceVersion"] = json!("7");
        respond(send, 200, &winner);
    });
    let err = lock
        .acquire(
            &LockKey::new("rollback-api"),
            "deploy-bot",
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("other-bot"), "{err}");
    server.await.unwrap();
}
