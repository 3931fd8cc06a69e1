//! `roll_back` picks the revision `kubectl rollout undo` picks, and changes the
//! Deployment the way kubectl does, against the test API server.

mod common;

use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::model::{RollbackTarget, ServiceId};
use meshos_rollback_core::provider::Deployer;
use meshos_rollback_k8s::K8sDeployer;
use serde_json::{Value, json};

const V1: &str = "meshos/api:v2.4.8";
const V2: &str = "meshos/api:v2.4.9";
const V3: &str = "meshos/api:v2.5.0";

fn generation(server: &meshos_rollback_k8s::testing::TestApiServer, ns: &str) -> i64 {
    server.get("deployments", ns, "meshos-api").unwrap()["metadata"]["generation"]
        .as_i64()
        .unwrap()
}

fn patches(server: &meshos_rollback_k8s::testing::TestApiServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_is_the_second_highest_revision_and_undo_toggles() {
    let server = common::server().await;
    let ns = common::unique("undo-prev");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1, V2, V3]).await;
    let d = common::deployer(&server);

    let change = d.roll_back(&svc, &RollbackTarget::Previous).await.unwrap();
    assert_eq!(
        (change.from.as_str(), change.to.as_str(), change.changed),
        ("3", "2", true)
    );
    assert_eq!(common::image_of(&server, &ns, "meshos-api"), V2);
    let status = common::within(20, d.wait_until_stable(&svc)).await.unwrap();
    assert_eq!(status.revision.as_str(), "2");
    // The controller reused v2's ReplicaSet as revision 4, as in a real cluster.
    assert_eq!(
        common::replica_sets(&server, &ns),
        vec![
            (1, String::new(), V1.to_owned()),
            (3, String::new(), V3.to_owned()),
            (4, "2".to_owned(), V2.to_owned()),
        ]
    );
    let dep = server.get("deployments", &ns, "meshos-api").unwrap();
    assert_eq!(
        dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "4"
    );

    // A second undo goes back to the highest remaining revision, v3: kubectl's toggle.
    let again = d.roll_back(&svc, &RollbackTarget::Previous).await.unwrap();
    assert_eq!((again.from.as_str(), again.to.as_str()), ("2", "3"));
    assert_eq!(common::image_of(&server, &ns, "meshos-api"), V3);
    common::within(20, d.wait_until_stable(&svc)).await.unwrap();
    let history = d.revisions(&svc).await.unwrap();
    assert_eq!(history.current.id.as_str(), "3");
    assert_eq!(history.current.image.as_deref(), Some(V3));
    let previous: Vec<&str> = history.previous.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(previous, ["2", "1"]);
    assert!(!history.rollout_in_progress);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_revision_by_first_or_current_number() {
    let server = common::server().await;
    let ns = common::unique("undo-to");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1, V2, V3]).await;
    let d = common::deployer(&server);

    let change = d
        .roll_back(&svc, &RollbackTarget::Revision("1".into()))
        .await
        .unwrap();
    assert_eq!(
        (change.from.as_str(), change.to.as_str(), change.changed),
        ("3", "1", true)
    );
    assert_eq!(common::image_of(&server, &ns, "meshos-api"), V1);
    common::within(20, d.wait_until_stable(&svc)).await.unwrap();
    // v1 is now revision 4 to kubectl (`--to-revision=4`) and still "1" here.
    assert!(common::replica_sets(&server, &ns).contains(&(4, "1".to_owned(), V1.to_owned())));
    for id in ["1", "4"] {
        let same = d
            .roll_back(&svc, &RollbackTarget::Revision(id.into()))
            .await
            .unwrap();
        assert_eq!(
            (same.to.as_str(), same.changed),
            ("1", false),
            "--to-revision={id}"
        );
    }
    let back = d
        .roll_back(&svc, &RollbackTarget::Revision("3".into()))
        .await
        .unwrap();
    assert_eq!(
        (back.from.as_str(), back.to.as_str(), back.changed),
        ("1", "3", true)
    );
    assert_eq!(common::image_of(&server, &ns, "meshos-api"), V3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_matching_template_sends_no_patch() {
    let server = common::server().await;
    let ns = common::unique("undo-same");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1, V2]).await;
    let d = common::deployer(&server);
    let before = generation(&server, &ns);
    server.clear_requests();
    let change = d
        .roll_back(&svc, &RollbackTarget::Revision("2".into()))
        .await
        .unwrap();
    assert_eq!(
        (change.from.as_str(), change.to.as_str(), change.changed),
        ("2", "2", false)
    );
    assert_eq!(patches(&server), 0);
    assert_eq!(generation(&server, &ns), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_deployment_is_refused_unchanged() {
    let server = common::server().await;
    let ns = common::unique("undo-paused");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1, V2]).await;
    let mut paused = common::manifest(&ns, "meshos-api", V2, 3);
    paused["spec"]["paused"] = json!(true);
    server.apply(paused).unwrap();
    let d = common::deployer(&server);
    let before = generation(&server, &ns);
    server.clear_requests();
    let err = d
        .roll_back(&svc, &RollbackTarget::Previous)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("paused"), "{msg}");
    assert!(
        msg.contains("kubectl rollout resume deployment/meshos-api"),
        "{msg}"
    );
    assert_eq!(patches(&server), 0);
    assert_eq!(generation(&server, &ns), before);
    assert_eq!(common::image_of(&server, &ns, "meshos-api"), V2);

    // As in kubectl, a missing revision is reported before the pause.
    let err = d
        .roll_back(&svc, &RollbackTarget::Revision("9".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_history_and_missing_revisions_are_clear_errors() {
    let server = common::server().await;
    let ns = common::unique("undo-none");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1]).await;
    let d = common::deployer(&server);
    let err = d
        .roll_back(&svc, &RollbackTarget::Previous)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string().contains("no rollout history found"),
        "{err}"
    );
    let err = d
        .roll_back(&svc, &RollbackTarget::Revision("7".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string()
            .contains("unable to find specified revision 7 in history"),
        "{err}"
    );
    for bad in ["v1", "-1x", ""] {
        let err = d
            .roll_back(&svc, &RollbackTarget::Revision(bad.into()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}: {err}");
    }
    let err = d
        .roll_back(
            &ServiceId::kubernetes(&ns, "nope"),
            &RollbackTarget::Previous,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = d
        .roll_back(&ServiceId::ecs("c", "s"), &RollbackTarget::Previous)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(patches(&server), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_restores_template_and_annotations_like_kubectl() {
    let server = common::server().await;
    let ns = common::unique("undo-annotations");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1, V2]).await;
    // A kubectl-applied Deployment carries last-applied-configuration, which undo keeps.
    let mut applied = common::manifest(&ns, "meshos-api", V2, 3);
    applied["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!("{\"v\":2}");
    server.apply(applied).unwrap();
    let d = common::deployer(&server);
    common::within(20, d.wait_until_stable(&svc)).await.unwrap();
    d.roll_back(&svc, &RollbackTarget::Previous).await.unwrap();
    let dep = server.get("deployments", &ns, "meshos-api").unwrap();
    let a = &dep["metadata"]["annotations"];
    assert_eq!(
        a["kubernetes.io/change-cause"],
        json!(format!("deploy {V1}"))
    );
    assert_eq!(
        a["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"v\":2}"
    );
    assert!(
        a.get("deployment.kubernetes.io/desired-replicas").is_none(),
        "{a}"
    );
    let labels = &dep["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels, &json!({"app": "meshos-api"}), "hash label removed");

    let patch = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .expect("one patch");
    assert_eq!(patch.content_type, "application/json-patch+json");
    let body: Value = serde_json::from_str(&patch.body).unwrap();
    let paths: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/spec/template", "/metadata/annotations"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_dry_run_changes_nothing() {
    let server = common::server().await;
    let ns = common::unique("undo-dry");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1, V2]).await;
    let d: K8sDeployer = common::deployer(&server).with_server_dry_run(true);
    let before = generation(&server, &ns);
    server.clear_requests();
    let change = d.roll_back(&svc, &RollbackTarget::Previous).await.unwrap();
    assert_eq!((change.to.as_str(), change.changed), ("1", true));
    let patch = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .expect("a patch");
    assert_eq!(patch.param("dryRun"), Some("All"));
    assert_eq!(generation(&server, &ns), before);
    assert_eq!(common::image_of(&server, &ns, "meshos-api"), V2);
    // Dry runs are validated: a patch the server would reject fails here too.
    server.fail_next("PATCH", "/deployments/meshos-api", 422, 1);
    let err = d
        .roll_back(&svc, &RollbackTarget::Previous)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_sets_of_others_are_ignored() {
    let server = common::server().await;
    let ns = common::unique("undo-foreign");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1, V2]).await;
    // Same labels, higher revision, but controlled by someone else.
    let mut foreign = server.list("replicasets", &ns)[0].clone();
    foreign["metadata"] = json!({
        "name": "meshos-api-imposter",
        "namespace": ns,
        "labels": {"app": "meshos-api", "pod-template-hash": "imposter"},
        "annotations": {"deployment.kubernetes.io/revision": "99"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "other",
                             "uid": "not-the-deployment", "controller": true}],
    });
    foreign["spec"]["replicas"] = json!(0);
    foreign["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil/image:1");
    foreign["kind"] = json!("ReplicaSet");
    server.apply(foreign).unwrap();
    let d = common::deployer(&server);
    let change = d.roll_back(&svc, &RollbackTarget::Previous).await.unwrap();
    assert_eq!(change.to.as_str(), "1");
    assert_eq!(common::image_of(&server, &ns, "meshos-api"), V1);
    let err = d
        .roll_back(&svc, &RollbackTarget::Revision("99".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}
