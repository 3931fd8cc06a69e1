//! API server answers become the core error kinds, with the provider named.

mod common;

use std::time::{Duration, Instant};

use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::model::ServiceId;
use meshos_rollback_core::provider::{Deployer, ImageUpdate, LockKey, RollbackLock};
use meshos_rollback_k8s::LeaseLock;
use meshos_rollback_k8s::testing::ImageFailure;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_become_error_kinds() {
    let server = common::server().await;
    let ns = common::unique("errors");
    let svc = common::with_history(
        &server,
        &ns,
        "meshos-api",
        &["meshos/api:v1", "meshos/api:v2"],
    )
    .await;
    let d = common::deployer(&server);
    let deployment = "/deployments/meshos-api";
    let cases = [
        ("GET", deployment, 403, ErrorKind::PermissionDenied),
        ("GET", deployment, 401, ErrorKind::PermissionDenied),
        ("GET", "/replicasets", 429, ErrorKind::Transient),
        ("GET", deployment, 503, ErrorKind::Transient),
        ("GET", deployment, 500, ErrorKind::Transient),
        ("PATCH", deployment, 409, ErrorKind::Conflict),
        ("PATCH", deployment, 422, ErrorKind::InvalidInput),
        ("PATCH", deployment, 400, ErrorKind::InvalidInput),
    ];
    for (method, path, code, kind) in cases {
        server.fail_next(method, path, code, 1);
        let started = Instant::now();
        let err = d
            .set_image(
                &svc,
                &ImageUpdate {
                    container: None,
                    image: "meshos/api:v3".into(),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{method} {code}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{code} was retried"
        );
        if kind != ErrorKind::InvalidInput {
            assert!(
                err.to_string().contains("K8sDeployer(test-cluster)"),
                "{err}"
            );
        }
        assert_eq!(err.is_retryable(), kind == ErrorKind::Transient);
    }
    let err = d
        .revisions(&ServiceId::kubernetes(&ns, "nope"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("K8sDeployer(test-cluster): deployment {ns}/nope not found")
    );
    assert_eq!(
        common::image_of(&server, &ns, "meshos-api"),
        "meshos/api:v2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_watch_is_reopened_and_other_watch_errors_end_the_wait() {
    let server = common::server().await;
    let ns = common::unique("watch-errors");
    let svc = common::with_history(&server, &ns, "meshos-api", &["meshos/api:v1"]).await;
    let d = common::deployer(&server);
    server.fail_next("GET", "watch=true", 410, 1);
    d.set_image(
        &svc,
        &ImageUpdate {
            container: None,
            image: "meshos/api:v2".into(),
        },
    )
    .await
    .unwrap();
    let status = common::within(20, d.wait_until_stable(&svc)).await.unwrap();
    assert_eq!(status.revision.as_str(), "2");
    assert!(server.requests().iter().filter(|r| r.is_watch()).count() >= 2);

    // A version that never becomes ready, so the wait is sure to reach the watch.
    server.fail_image("meshos/api:v3", ImageFailure::CrashLoop);
    d.set_image(
        &svc,
        &ImageUpdate {
            container: None,
            image: "meshos/api:v3".into(),
        },
    )
    .await
    .unwrap();
    server.fail_next("GET", "watch=true", 500, 1);
    let err = common::within(20, d.wait_until_stable(&svc))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_unreachable_server_errors() {
    let server = common::server().await;
    let ns = common::unique("lock-errors");
    let lock = LeaseLock::new(server.client(), &ns);
    let key = LockKey::new("rollback-x");
    let lease = lock
        .acquire(&key, "a", Duration::from_secs(30))
        .await
        .unwrap();
    server.fail_next("PUT", "/leases/rollback-x", 503, 1);
    let err = lock
        .renew(&lease, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(
        err.to_string().contains(&format!("LeaseLock({ns})")),
        "{err}"
    );
    server.fail_next("GET", "/leases/rollback-x", 403, 1);
    assert_eq!(
        lock.release(&lease).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    lock.release(&lease).await.unwrap();

    let client = server.client();
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let d = meshos_rollback_k8s::K8sDeployer::new(client, "gone");
    let err = d
        .rollout_status(&ServiceId::kubernetes(&ns, "meshos-api"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_survives_watches_that_keep_expiring() {
    // One event of history: every watch the waiter opens during a rollout starts
    // from a resource version the server has already forgotten.
    let server = meshos_rollback_k8s::testing::TestApiServer::builder()
        .with_pod_ready_after(Duration::from_millis(40))
        .with_tick(Duration::from_millis(10))
        .with_event_log(1)
        .start()
        .await
        .unwrap();
    let ns = common::unique("expiring");
    let svc = common::with_history(&server, &ns, "meshos-api", &["meshos/api:v1"]).await;
    let d = common::deployer(&server);
    server.clear_requests();
    d.set_image(
        &svc,
        &ImageUpdate {
            container: None,
            image: "meshos/api:v2".into(),
        },
    )
    .await
    .unwrap();
    let status = common::within(20, d.wait_until_stable(&svc)).await.unwrap();
    assert_eq!(status.revision.as_str(), "2");
    assert!(server.requests().iter().any(|r| r.is_watch()));
}
