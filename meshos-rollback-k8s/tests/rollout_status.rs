//! `rollout_status` and `wait_until_stable` give `kubectl rollout status`'s
//! verdicts plus the fail-fast case; `set_env`, `set_image` and `verify_pods`
//! against the test API server.

mod common;

use std::time::{Duration, Instant};

use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::model::{RollbackTarget, ServiceId};
use meshos_rollback_core::provider::{Deployer, ImageUpdate, InstanceState, RolloutPhase};
use meshos_rollback_core::wait::Backoff;
use meshos_rollback_k8s::testing::{ImageFailure, TestApiServer};
use serde_json::json;

const V1: &str = "meshos/api:v2.4.9";
const V2: &str = "meshos/api:v2.5.0";
const BROKEN: &str = "meshos/api:v2.5.0-broken";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_wait_for_the_observed_generation() {
    // Controllers that never get to run: the test writes the status itself.
    let server = TestApiServer::builder()
        .with_tick(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let ns = common::unique("status");
    let svc = ServiceId::kubernetes(&ns, "meshos-api");
    let d = common::deployer(&server);
    server
        .apply(common::manifest(&ns, "meshos-api", V1, 3))
        .unwrap();
    let s = d.rollout_status(&svc).await.unwrap();
    assert_eq!(s.phase, RolloutPhase::InProgress);
    assert_eq!(
        s.message,
        "Waiting for deployment spec update to be observed..."
    );

    let done = json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
        "availableReplicas": 3, "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]});
    server
        .put_status("deployments", &ns, "meshos-api", done.clone())
        .unwrap();
    let s = d.rollout_status(&svc).await.unwrap();
    assert_eq!(
        (s.phase, s.desired, s.updated, s.ready),
        (RolloutPhase::Complete, 3, 3, 3)
    );
    assert_eq!(
        s.message,
        "deployment \"meshos-api\" successfully rolled out"
    );

    // A new template: generation 2, the status still describes generation 1.
    server
        .apply(common::manifest(&ns, "meshos-api", V2, 3))
        .unwrap();
    let s = d.rollout_status(&svc).await.unwrap();
    assert_eq!(
        s.phase,
        RolloutPhase::InProgress,
        "a stale complete status is not complete"
    );

    let mut progressing = done.clone();
    progressing["observedGeneration"] = json!(2);
    progressing["replicas"] = json!(4);
    progressing["updatedReplicas"] = json!(1);
    server
        .put_status("deployments", &ns, "meshos-api", progressing.clone())
        .unwrap();
    let s = d.rollout_status(&svc).await.unwrap();
    assert_eq!(
        s.message,
        "Waiting for deployment \"meshos-api\" rollout to finish: 1 out of 3 new replicas have been updated..."
    );

    progressing["conditions"] =
        json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
    server
        .put_status("deployments", &ns, "meshos-api", progressing)
        .unwrap();
    let s = d.rollout_status(&svc).await.unwrap();
    assert_eq!(s.phase, RolloutPhase::Failed);
    assert_eq!(
        s.message,
        "deployment \"meshos-api\" exceeded its progress deadline"
    );
    let err = d.wait_until_stable(&svc).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(
        err.to_string().contains("exceeded its progress deadline"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_watches_the_deployment() {
    let server = common::server().await;
    let ns = common::unique("watch");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1]).await;
    let d = common::deployer(&server);
    server.clear_requests();
    let change = d
        .set_image(
            &svc,
            &ImageUpdate {
                container: None,
                image: V2.into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (change.from.as_str(), change.to.as_str(), change.changed),
        ("1", "2", true)
    );
    let status = common::within(20, d.wait_until_stable(&svc)).await.unwrap();
    assert_eq!(
        (status.revision.as_str(), status.phase),
        ("2", RolloutPhase::Complete)
    );
    assert_eq!((status.desired, status.updated, status.ready), (3, 3, 3));

    let requests = server.requests();
    let watches: Vec<_> = requests.iter().filter(|r| r.is_watch()).collect();
    assert!(!watches.is_empty(), "no watch request");
    for w in &watches {
        assert_eq!(w.path, format!("/apis/apps/v1/namespaces/{ns}/deployments"));
        assert_eq!(w.param("fieldSelector"), Some("metadata.name=meshos-api"));
        assert!(
            w.param("resourceVersion")
                .is_some_and(|rv| rv.parse::<u64>().is_ok()),
            "{w:?}"
        );
    }
    // Woken by events, not a fixed poll: a handful of reads for a whole rollout.
    let reads = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/deployments/meshos-api"))
        .count();
    assert!(reads < 40, "{reads} reads of the deployment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_polls_when_the_server_cannot_watch() {
    let server = TestApiServer::builder()
        .with_pod_ready_after(Duration::from_millis(40))
        .with_tick(Duration::from_millis(10))
        .with_watch(false)
        .start()
        .await
        .unwrap();
    let ns = common::unique("poll");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1]).await;
    let d = common::deployer(&server);
    server.clear_requests();
    d.set_image(
        &svc,
        &ImageUpdate {
            container: Some("api".into()),
            image: V2.into(),
        },
    )
    .await
    .unwrap();
    let status = common::within(20, d.wait_until_stable(&svc)).await.unwrap();
    assert_eq!(status.revision.as_str(), "2");
    let requests = server.requests();
    assert_eq!(
        requests.iter().filter(|r| r.is_watch()).count(),
        1,
        "one refused watch, then polling"
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/deployments/meshos-api"))
            .count()
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_checks_bounds_a_watched_wait_too() {
    // Pods that take an hour to be ready: the rollout stays in progress while the
    // watch sees nothing; only max_checks ends the wait.
    let server = TestApiServer::builder()
        .with_pod_ready_after(Duration::from_secs(3600))
        .with_tick(Duration::from_millis(10))
        .start()
        .await
        .unwrap();
    let ns = common::unique("bounded");
    let svc = ServiceId::kubernetes(&ns, "meshos-api");
    server
        .apply(common::manifest(&ns, "meshos-api", V1, 3))
        .unwrap();
    let d = common::deployer(&server).with_poll_backoff(Backoff {
        initial: Duration::from_millis(20),
        factor: 1.5,
        max_interval: Duration::from_millis(100),
        max_checks: Some(3),
    });
    let err = common::within(20, d.wait_until_stable(&svc))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        err.to_string().contains("still not done after 3 checks"),
        "{err}"
    );
    assert!(
        server.requests().iter().any(|r| r.is_watch()),
        "it was watching, not polling"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_version_fails_fast_and_rolls_back() {
    let server = common::server().await;
    server.fail_image(BROKEN, ImageFailure::CrashLoop);
    let ns = common::unique("crash");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1]).await;
    let d = common::deployer(&server).with_fail_fast_grace(Duration::ZERO);
    server
        .apply(common::manifest(&ns, "meshos-api", BROKEN, 3))
        .unwrap();
    let started = Instant::now();
    let err = common::within(20, d.wait_until_stable(&svc))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
    assert!(err.to_string().contains("CrashLoopBackOff"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failed fast, not at the 600 s deadline"
    );

    // The old pods keep serving; the new ones are reported with their reason.
    let report = d.verify_pods(&svc).await.unwrap();
    assert!(!report.all_ready(), "{report}");
    assert!(report.ready().count() >= 2, "{report}");
    let failing: Vec<_> = report.not_ready().collect();
    assert!(!failing.is_empty());
    for p in &failing {
        assert_eq!(
            p.revision.as_ref().map(|r| r.as_str()),
            Some("2"),
            "{report}"
        );
        if p.state == InstanceState::Failed {
            assert!(
                p.detail
                    .as_deref()
                    .unwrap_or("")
                    .contains("CrashLoopBackOff"),
                "{report}"
            );
        }
    }
    assert!(report.to_string().contains("CrashLoopBackOff"), "{report}");

    let change = d.roll_back(&svc, &RollbackTarget::Previous).await.unwrap();
    assert_eq!((change.from.as_str(), change.to.as_str()), ("2", "1"));
    let status = common::within(20, d.wait_until_stable(&svc)).await.unwrap();
    assert_eq!(status.revision.as_str(), "1");
    let report = d.verify_pods(&svc).await.unwrap();
    assert!(report.all_ready(), "{report}");
    assert_eq!(report.pods.len(), 3, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiter_wakes_up_when_the_grace_runs_out() {
    let server = common::server().await;
    server.fail_image(BROKEN, ImageFailure::CrashLoop);
    let ns = common::unique("grace");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1]).await;
    // Nothing changes on the Deployment once the new pods crash-loop, and the
    // periodic re-check is far away: only the grace can end the wait in time.
    let d = meshos_rollback_k8s::K8sDeployer::new(server.client(), "test")
        .with_recheck_interval(Duration::from_secs(60))
        .with_fail_fast_grace(Duration::from_secs(2));
    server
        .apply(common::manifest(&ns, "meshos-api", BROKEN, 3))
        .unwrap();
    let started = Instant::now();
    let err = common::within(30, d.wait_until_stable(&svc))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CrashLoopBackOff"), "{err}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "the grace was not waited for: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "woke up late: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpullable_image_fails_fast() {
    let server = common::server().await;
    server.fail_image(BROKEN, ImageFailure::ImagePull);
    let ns = common::unique("pull");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1]).await;
    let d = common::deployer(&server).with_fail_fast_grace(Duration::ZERO);
    d.set_image(
        &svc,
        &ImageUpdate {
            container: None,
            image: BROKEN.into(),
        },
    )
    .await
    .unwrap();
    let err = common::within(20, d.wait_until_stable(&svc))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("ErrImagePull") || msg.contains("ImagePullBackOff"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_deadline_fails_the_rollout_when_the_grace_is_long() {
    let server = common::server().await;
    server.fail_image(BROKEN, ImageFailure::CrashLoop);
    let ns = common::unique("deadline");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1]).await;
    let d = common::deployer(&server).with_fail_fast_grace(Duration::from_secs(3600));
    let mut m = common::manifest(&ns, "meshos-api", BROKEN, 3);
    m["spec"]["progressDeadlineSeconds"] = json!(1);
    server.apply(m).unwrap();

    // While in progress it keeps waiting, with kubectl's warning in the status.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), d.wait_until_stable(&svc))
            .await
            .is_err()
    );
    let err = common::within(20, d.wait_until_stable(&svc))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("exceeded its progress deadline"),
        "{err}"
    );
    let dep = server.get("deployments", &ns, "meshos-api").unwrap();
    let progressing = dep["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .cloned()
        .unwrap();
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
    assert_eq!(progressing["status"], "False");
    let s = d.rollout_status(&svc).await.unwrap();
    assert_eq!(s.phase, RolloutPhase::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_image_back_to_an_old_image_reuses_its_revision() {
    let server = common::server().await;
    let ns = common::unique("image");
    let svc = common::with_history(&server, &ns, "meshos-api", &[V1, V2]).await;
    let d = common::deployer(&server);
    let update = ImageUpdate {
        container: Some("api".into()),
        image: V1.into(),
    };
    let change = d.set_image(&svc, &update).await.unwrap();
    assert_eq!(
        (change.from.as_str(), change.to.as_str(), change.changed),
        ("2", "1", true)
    );
    let status = common::within(20, d.wait_until_stable(&svc)).await.unwrap();
    assert_eq!(status.revision.as_str(), "1");
    assert!(!d.set_image(&svc, &update).await.unwrap().changed);
    let err = d
        .set_image(
            &svc,
            &ImageUpdate {
                container: Some("sidecar".into()),
                image: V2.into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = d
        .set_image(
            &svc,
            &ImageUpdate {
                container: None,
                image: " ".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}
