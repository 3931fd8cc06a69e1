//! Where the test API server is as strict as a real one (issue 11): each test names
//! the upstream kubernetes/kubernetes file or API document it follows.

mod common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use meshos_rollback_k8s::testing::{ImageFailure, TestApiServer};
use serde_json::{Value, json};

/// Polls `f` until it holds, for at most `secs`.
async fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {secs} s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn complete(server: &TestApiServer, ns: &str, image: &str) -> bool {
    let Some(d) = server.get("deployments", ns, "web") else {
        return false;
    };
    let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(-1);
    common::image_of(server, ns, "web") == image
        && n("/status/observedGeneration") >= n("/metadata/generation")
        && n("/status/updatedReplicas") == n("/spec/replicas")
        && n("/status/availableReplicas") == n("/spec/replicas")
        && n("/status/replicas") == n("/spec/replicas")
}

fn limited(ns: &str, image: &str) -> Value {
    let mut m = common::manifest(ns, "web", image, 1);
    m["spec"]["revisionHistoryLimit"] = json!(1);
    m
}

/// pkg/controller/deployment/rolling.go (`rolloutRolling`) calls `cleanupDeployment`
/// (pkg/controller/deployment/sync.go) only when `DeploymentComplete(d, &d.Status)`;
/// during a rollout that does not complete, old ReplicaSets beyond
/// `revisionHistoryLimit` stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_replica_sets_are_cleaned_up_only_once_the_rollout_is_complete() {
    let server = common::server().await;
    let ns = common::unique("cleanup");
    for image in ["web:v1", "web:v2"] {
        server.apply(limited(&ns, image)).unwrap();
        eventually(20, "rollout complete", || complete(&server, &ns, image)).await;
    }
    eventually(5, "history trimmed to 1", || {
        common::replica_sets(&server, &ns).len() == 2
    })
    .await;

    // v3 crash-loops: the rollout never completes, so v1 is not deleted even
    // though there are now two old ReplicaSets for a limit of one.
    server.fail_image("web:v3", ImageFailure::CrashLoop);
    server.apply(limited(&ns, "web:v3")).unwrap();
    eventually(5, "v3's ReplicaSet", || {
        common::replica_sets(&server, &ns).len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let images: Vec<String> = common::replica_sets(&server, &ns)
        .into_iter()
        .map(|(_, _, image)| image)
        .collect();
    assert_eq!(
        images,
        ["web:v1", "web:v2", "web:v3"],
        "no cleanup mid-rollout"
    );

    // v4 completes: now the history is trimmed, oldest revisions first.
    server.apply(limited(&ns, "web:v4")).unwrap();
    eventually(20, "v4 complete", || complete(&server, &ns, "web:v4")).await;
    eventually(5, "history trimmed after completion", || {
        common::replica_sets(&server, &ns).len() == 2
    })
    .await;
    let images: Vec<String> = common::replica_sets(&server, &ns)
        .into_iter()
        .map(|(_, _, image)| image)
        .collect();
    assert_eq!(images, ["web:v3", "web:v4"]);
}

/// pkg/registry/apps/deployment/strategy.go, `deploymentStrategy.PrepareForUpdate`:
/// a change to the spec or to the annotations bumps `metadata.generation`
/// (annotations are copied to the ReplicaSets). Labels alone do not, and neither do
/// the controller's own writes through the status subresource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_generation_counts_spec_and_annotation_changes() {
    let server = TestApiServer::builder()
        .with_tick(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let ns = common::unique("generation");
    let generation = |s: &TestApiServer| {
        s.get("deployments", &ns, "web").unwrap()["metadata"]["generation"]
            .as_i64()
            .unwrap()
    };
    let mut m = common::manifest(&ns, "web", "web:v1", 1);
    server.apply(m.clone()).unwrap();
    assert_eq!(generation(&server), 1);

    m["metadata"]["annotations"]["kubernetes.io/change-cause"] = json!("annotated");
    server.apply(m.clone()).unwrap();
    assert_eq!(
        generation(&server),
        2,
        "an annotation change bumps generation"
    );

    m["metadata"]["labels"]["team"] = json!("sre");
    server.apply(m.clone()).unwrap();
    assert_eq!(generation(&server), 2, "a label change does not");

    m["spec"]["replicas"] = json!(2);
    server.apply(m.clone()).unwrap();
    assert_eq!(generation(&server), 3, "a spec change bumps generation");

    // ReplicaSets count spec changes only (pkg/registry/apps/replicaset/strategy.go).
    let api: Api<Deployment> = Api::namespaced(server.client(), &ns);
    let mut d = api.get("web").await.unwrap();
    d.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("deployment.kubernetes.io/revision".into(), "7".into());
    let written = api
        .replace_status("web", &PostParams::default(), &d)
        .await
        .unwrap();
    assert_eq!(
        written.metadata.generation,
        Some(3),
        "a status write never bumps generation"
    );
}

/// pkg/registry/apps/deployment/strategy.go, `deploymentStatusStrategy.PrepareForUpdate`:
/// a write to `/status` keeps only the old spec and labels; the status and the rest
/// of the metadata (annotations, as the controller writes the revision) come from
/// the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_write_takes_status_and_metadata_but_keeps_spec_and_labels() {
    let server = TestApiServer::builder()
        .with_tick(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let ns = common::unique("status");
    server
        .apply(common::manifest(&ns, "web", "web:v1", 1))
        .unwrap();
    let api: Api<Deployment> = Api::namespaced(server.client(), &ns);
    let mut body = serde_json::to_value(api.get("web").await.unwrap()).unwrap();
    body["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("1");
    body["metadata"]["labels"]["team"] = json!("sre");
    body["spec"]["replicas"] = json!(5);
    body["status"] = json!({"observedGeneration": 1, "replicas": 1});
    let written = api
        .replace_status(
            "web",
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap();
    let written = serde_json::to_value(written).unwrap();
    assert_eq!(written["status"]["replicas"], json!(1), "status written");
    assert_eq!(
        written["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        json!("1"),
        "annotations written"
    );
    assert_eq!(
        written["metadata"]["labels"],
        json!({"app": "web"}),
        "labels kept"
    );
    assert_eq!(written["spec"]["replicas"], json!(1), "spec kept");
    assert_eq!(written["metadata"]["generation"], json!(1));
}

fn lease_body(ns: &str, name: &str, renew: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": renew},
    })
}

/// staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go (`Update`)
/// refuses an update without `metadata.resourceVersion` with `422 Invalid`
/// ("must be specified for an update") when the strategy's
/// `AllowUnconditionalUpdate` is false, as pkg/registry/coordination/lease/strategy.go's is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_put_without_resource_version_is_invalid() {
    let server = common::server().await;
    let ns = common::unique("lease-rv");
    let api: Api<Lease> = Api::namespaced(server.client(), &ns);
    let renew = "2026-01-01T00:00:00.000000Z";
    let lease: Lease = serde_json::from_value(lease_body(&ns, "lock", renew)).unwrap();
    let created = api.create(&PostParams::default(), &lease).await.unwrap();

    let err = api
        .replace("lock", &PostParams::default(), &lease)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(
                (s.code, s.reason.as_str()),
                (422, "Invalid"),
                "{}",
                s.message
            );
            assert!(
                s.message.contains("must be specified for an update"),
                "{}",
                s.message
            );
        }
        other => panic!("{other}"),
    }
    // With the resource version it was read at, the same write goes through.
    let mut current = created.clone();
    current.spec.as_mut().unwrap().holder_identity = Some("b".into());
    api.replace("lock", &PostParams::default(), &current)
        .await
        .unwrap();
    // Deployments still allow unconditional updates (deployment strategy.go).
    server
        .apply(common::manifest(&ns, "web", "web:v1", 1))
        .unwrap();
    let d: Api<Deployment> = Api::namespaced(server.client(), &ns);
    let mut dep = d.get("web").await.unwrap();
    dep.metadata.resource_version = None;
    d.replace("web", &PostParams::default(), &dep)
        .await
        .unwrap();
}

/// staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/micro_time.go: `MicroTime`
/// decodes with `RFC3339Micro` ("2006-01-02T15:04:05.000000Z07:00"), so a Lease's
/// `acquireTime`/`renewTime` needs exactly six fractional digits; a body that does
/// not decode is `400 BadRequest`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_times_must_be_micro_times() {
    let server = common::server().await;
    let ns = common::unique("microtime");
    let client = server.client();
    let post = |body: Value| {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let req = http::Request::post(format!(
                "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
            ))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap();
            client.request::<Value>(req).await
        }
    };
    for (i, bad) in [
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.123Z",
        "2026-01-01T00:00:00.1234567Z",
        "2026-01-01 00:00:00.123456Z",
        "",
    ]
    .into_iter()
    .enumerate()
    {
        match post(lease_body(&ns, &format!("bad-{i}"), bad)).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"), "{bad:?}")
            }
            other => panic!("{bad:?} accepted: {other:?}"),
        }
    }
    for (i, good) in [
        "2026-01-01T00:00:00.123456Z",
        "2026-01-01T02:00:00.000001+02:00",
    ]
    .into_iter()
    .enumerate()
    {
        post(lease_body(&ns, &format!("good-{i}"), good))
            .await
            .unwrap_or_else(|e| panic!("{good:?} refused: {e}"));
    }
    // A PUT is decoded the same way.
    let api: Api<Lease> = Api::namespaced(server.client(), &ns);
    let mut current = serde_json::to_value(api.get("good-0").await.unwrap()).unwrap();
    current["spec"]["acquireTime"] = json!("2026-01-01T00:00:00.5Z");
    let req = http::Request::put(format!(
        "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/good-0"
    ))
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&current).unwrap())
    .unwrap();
    match server.client().request::<Value>(req).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 400),
        other => panic!("accepted: {other:?}"),
    }
}

/// "Watch bookmarks" in the Kubernetes API concepts documentation
/// (kubernetes.io/docs/reference/using-api/api-concepts/#watch-bookmarks) and the
/// watch cache (staging/src/k8s.io/apiserver/pkg/storage/cacher): with
/// `allowWatchBookmarks=true` the server sends `BOOKMARK` events whose object has
/// only `metadata.resourceVersion`; without it, none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_send_bookmarks_only_when_asked() {
    let server = TestApiServer::builder()
        .with_bookmark_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let ns = common::unique("bookmarks");
    let api: Api<Lease> = Api::namespaced(server.client(), &ns);
    let lease: Lease =
        serde_json::from_value(lease_body(&ns, "one", "2026-01-01T00:00:00.000000Z")).unwrap();
    let created = api.create(&PostParams::default(), &lease).await.unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();

    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    let event = common::within(5, stream.try_next()).await.unwrap();
    match event {
        Some(WatchEvent::Bookmark(b)) => {
            assert_eq!(b.types.kind, "Lease");
            assert!(b.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse().unwrap());
        }
        other => panic!("{other:?}"),
    }
    // Raw: the bookmark's object has no name, only the resource version.
    let req = http::Request::get(format!(
        "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases?watch=true&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion={rv}"
    ))
    .body(Vec::new())
    .unwrap();
    let text = server.client().request_text(req).await.unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "BOOKMARK");
    assert_eq!(
        first["object"]["metadata"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["resourceVersion"]
    );

    // Not asked: only real changes.
    let quiet = api
        .watch(&WatchParams::default().disable_bookmarks().timeout(1), &rv)
        .await
        .unwrap();
    let events: Vec<_> = quiet.collect().await;
    assert!(events.is_empty(), "{events:?}");
}
