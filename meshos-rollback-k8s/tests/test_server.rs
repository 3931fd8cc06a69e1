//! The test API server itself, driven through kube's typed APIs: what it stores
//! must deserialize into k8s-openapi's types and behave like the API server for the
//! calls kube-rs makes.

mod common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

fn deployment(ns: &str, image: &str) -> Deployment {
    serde_json::from_value(common::manifest(ns, "web", image, 2)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_objects_round_trip_with_server_bookkeeping() {
    // Controllers that never run, so only this test writes: the resource versions
    // below are deterministic (with the controller, its status writes would make
    // `current` stale too, as on a real cluster).
    let server = meshos_rollback_k8s::testing::TestApiServer::builder()
        .with_tick(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let ns = common::unique("typed");
    let api: Api<Deployment> = Api::namespaced(server.client(), &ns);
    let created = api
        .create(&PostParams::default(), &deployment(&ns, "nginx:1.27"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let spec = created.spec.as_ref().unwrap();
    assert_eq!(spec.revision_history_limit, Some(10), "defaulted");
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let c = &spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let dup = api
        .create(&PostParams::default(), &deployment(&ns, "nginx:1.27"))
        .await
        .unwrap_err();
    assert!(
        matches!(dup, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{dup}"
    );

    // A stale resourceVersion conflicts; a current one bumps generation on spec change.
    let mut stale = created.clone();
    let current = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "sre"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        current.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    stale.spec.as_mut().unwrap().replicas = Some(5);
    let err = api
        .replace("web", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err}"
    );
    let mut fresh = current.clone();
    fresh.spec.as_mut().unwrap().replicas = Some(5);
    let replaced = api
        .replace("web", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));

    // Dry runs store nothing; invalid objects are 422 with a Status body.
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut other = deployment(&ns, "nginx:1.27");
    other.metadata.name = Some("dry".into());
    api.create(&dry, &other).await.unwrap();
    assert!(api.get_opt("dry").await.unwrap().is_none());
    let mut invalid = deployment(&ns, "nginx:1.27");
    invalid.metadata.name = Some("invalid".into());
    invalid.spec.as_mut().unwrap().selector.match_labels =
        Some([("app".to_owned(), "other".to_owned())].into());
    let err = api
        .create(&PostParams::default(), &invalid)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422 && s.reason == "Invalid"),
        "{err}"
    );
    let err = api
        .patch("web", &PatchParams::apply("x"), &Patch::Apply(json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 415),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_produce_valid_replica_sets_pods_and_status() {
    let server = common::server().await;
    let ns = common::unique("controller");
    let deployments: Api<Deployment> = Api::namespaced(server.client(), &ns);
    deployments
        .create(&PostParams::default(), &deployment(&ns, "nginx:1.27"))
        .await
        .unwrap();
    let d = common::deployer(&server);
    let svc = meshos_rollback_core::model::ServiceId::kubernetes(&ns, "web");
    use meshos_rollback_core::provider::Deployer;
    common::within(20, d.wait_until_stable(&svc)).await.unwrap();

    let dep = deployments.get("web").await.unwrap();
    let status = dep.status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.available_replicas
        ),
        (Some(2), Some(2), Some(2))
    );
    let progressing = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    assert_eq!(
        dep.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );

    let rss: Api<ReplicaSet> = Api::namespaced(server.client(), &ns);
    let list = rss
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let rs = &list.items[0];
    let hash = &rs.metadata.labels.as_ref().unwrap()["pod-template-hash"];
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        rs.metadata.owner_references.as_ref().unwrap()[0].controller,
        Some(true)
    );
    assert_eq!(
        rs.spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()["pod-template-hash"],
        *hash
    );

    let pods: Api<Pod> = Api::namespaced(server.client(), &ns);
    let selected = pods
        .list(&ListParams::default().labels(&format!("app=web,pod-template-hash={hash}")))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 2);
    for p in &selected.items {
        let s = p.status.as_ref().unwrap();
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert!(s.container_statuses.as_ref().unwrap()[0].ready);
    }
    assert!(
        pods.list(&ListParams::default().labels("app=web,pod-template-hash notin (x)"))
            .await
            .unwrap()
            .items
            .len()
            == 2
    );
    assert!(
        pods.list(&ListParams::default().labels("app=other"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_replay_from_a_resource_version_and_stream_changes() {
    let server = common::server().await;
    let ns = common::unique("watching");
    let leases: Api<Lease> = Api::namespaced(server.client(), &ns);
    let lease = |name: &str| -> Lease {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"holderIdentity": "a"}}))
            .unwrap()
    };
    let first = leases
        .create(&PostParams::default(), &lease("one"))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    leases
        .create(&PostParams::default(), &lease("two"))
        .await
        .unwrap();

    let wp = WatchParams::default()
        .fields("metadata.name=two")
        .timeout(5);
    let mut stream = leases.watch(&wp, &rv).await.unwrap().boxed();
    // "two" was created after `rv`: replayed. "one" is filtered out.
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Added(l)) => assert_eq!(l.metadata.name.as_deref(), Some("two")),
        other => panic!("{other:?}"),
    }
    leases.delete("two", &Default::default()).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Deleted(l)) => assert_eq!(l.metadata.name.as_deref(), Some("two")),
        other => panic!("{other:?}"),
    }

    // Without a resource version: the current objects, as ADDED.
    let all = leases
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap();
    let names: Vec<String> = all
        .take_while(|e| futures::future::ready(e.is_ok()))
        .filter_map(|e| async move {
            match e {
                Ok(WatchEvent::Added(l)) => l.metadata.name,
                _ => None,
            }
        })
        .collect()
        .await;
    assert_eq!(names, ["one"]);

    server.set_watch_enabled(false);
    let err = leases
        .watch(&WatchParams::default(), "0")
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 405),
        "{err}"
    );
}
