//! The core conformance suites (deployer and lock) against the test API server.

mod common;

use std::time::Duration;

use meshos_rollback_core::conformance;
use meshos_rollback_core::model::{Region, ServiceId, ServiceRef};
use meshos_rollback_core::provider::LockKey;
use meshos_rollback_k8s::LeaseLock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployer_conformance() {
    let server = common::server().await;
    let ns = common::unique("conformance");
    let svc = common::with_history(
        &server,
        &ns,
        "meshos-api",
        &[
            "meshos/mesh-kernel:sha-abc123",
            "meshos/mesh-kernel:sha-def456",
        ],
    )
    .await;
    let d = common::deployer(&server);
    let fx = conformance::deploy::DeployerFixture {
        service: svc,
        older: "1".into(),
        newer: "2".into(),
        missing_revision: "99".into(),
        missing_service: ServiceId::kubernetes(&ns, "nope"),
        container: "api".into(),
        image: "meshos/mesh-kernel:sha-abc123".into(),
    };
    common::within(120, conformance::deploy::run(&d, &fx)).await;

    // What the suite did, as the controller recorded it: undo to 1 renumbered v1's
    // ReplicaSet to 3, the explicit rollback to 2 renumbered v2's to 4, and set_env
    // and set_image made two new templates (5, 6).
    let abc = "meshos/mesh-kernel:sha-abc123".to_owned();
    let def = "meshos/mesh-kernel:sha-def456".to_owned();
    assert_eq!(
        common::replica_sets(&server, &ns),
        vec![
            (3, "1".to_owned(), abc.clone()),
            (4, "2".to_owned(), def.clone()),
            (5, String::new(), def),
            (6, String::new(), abc),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_conformance() {
    let server = common::server().await;
    let ns = common::unique("locks");
    let lock = LeaseLock::new(server.client(), &ns);
    let key = LockKey::for_service(&ServiceRef::new(
        Region::new("us-east-1").unwrap(),
        ServiceId::kubernetes("production", "meshos-api"),
    ));
    common::within(
        60,
        conformance::lock::run(&lock, &key, Duration::from_secs(1)),
    )
    .await;
    let lease = server
        .get("leases", &ns, key.as_str())
        .expect("the Lease object");
    assert!(
        lease.pointer("/spec/holderIdentity").is_none(),
        "released: {lease}"
    );
    assert!(
        lease["spec"]["leaseTransitions"].as_i64().unwrap() >= 4,
        "{lease}"
    );
}
