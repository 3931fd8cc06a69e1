//! `LeaseLock` on the test API server: contention, expiry, and what it writes.

mod common;

use std::time::Duration;

use futures::future::join_all;
use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::provider::{LockKey, RollbackLock};
use meshos_rollback_k8s::LeaseLock;
use serde_json::{Value, json};

fn spec(server: &meshos_rollback_k8s::testing::TestApiServer, ns: &str, key: &LockKey) -> Value {
    server.get("leases", ns, key.as_str()).expect("lease")["spec"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_contenders_exactly_one_wins_every_round() {
    let server = common::server().await;
    let ns = common::unique("contend");
    let key = LockKey::new("rollback-us-east-1-k8s-production-meshos-api");
    // Separate clients, as separate deploy tools would have.
    let locks: Vec<LeaseLock> = (0..4)
        .map(|_| LeaseLock::new(server.client(), &ns))
        .collect();
    let ttl = Duration::from_secs(30);
    for round in 0..6 {
        let results = join_all(
            locks
                .iter()
                .enumerate()
                .map(|(i, l)| l.acquire(&key, HOLDERS[i], ttl)),
        )
        .await;
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let winner = winners[0];
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
            assert!(e.to_string().contains(&winner.holder), "{e}");
        }
        assert_eq!(
            spec(&server, &ns, &key)["holderIdentity"],
            json!(winner.holder)
        );
        locks[round % 4].release(winner).await.unwrap();
        assert!(
            spec(&server, &ns, &key).get("holderIdentity").is_none(),
            "round {round} released"
        );
    }
}

const HOLDERS: [&str; 4] = [
    "deploy-bot-a",
    "deploy-bot-b",
    "deploy-bot-c",
    "deploy-bot-d",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_different_holders_never_both_win() {
    let server = common::server().await;
    let ns = common::unique("pair");
    let a = LeaseLock::new(server.client(), &ns);
    let b = LeaseLock::new(server.client(), &ns);
    let key = LockKey::new("rollback-eu-west-1-meshos-api");
    for round in 0..10 {
        let (x, y) = tokio::join!(
            a.acquire(&key, "deploy-bot-1", Duration::from_secs(30)),
            b.acquire(&key, "deploy-bot-2", Duration::from_secs(30))
        );
        assert!(x.is_ok() != y.is_ok(), "round {round}: {x:?} {y:?}");
        let (winner, loser) = if let Ok(l) = &x {
            (l, y.unwrap_err())
        } else {
            (y.as_ref().unwrap(), x.unwrap_err())
        };
        assert!(loser.to_string().contains(&winner.holder), "{loser}");
        assert_eq!(
            spec(&server, &ns, &key)["holderIdentity"],
            json!(winner.holder)
        );
        a.release(winner).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_is_taken_over_after_its_lease_duration() {
    let server = common::server().await;
    let ns = common::unique("expiry");
    let lock = LeaseLock::new(server.client(), &ns);
    let key = LockKey::new("rollback-ap-south-1-meshos-api");
    let dead = lock
        .acquire(&key, "crashed-pod", Duration::from_millis(1200))
        .await
        .unwrap();
    assert_eq!(
        spec(&server, &ns, &key)["leaseDurationSeconds"],
        2,
        "rounded up to whole seconds"
    );
    let err = lock
        .acquire(&key, "survivor", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("crashed-pod"), "{err}");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let survivor = lock
        .acquire(&key, "survivor", Duration::from_secs(5))
        .await
        .unwrap();
    let s = spec(&server, &ns, &key);
    assert_eq!(s["holderIdentity"], "survivor");
    assert_eq!(s["leaseTransitions"], 2);
    assert_ne!(survivor.token, dead.token);
    assert_eq!(
        lock.renew(&dead, Duration::from_secs(5))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    lock.release(&dead).await.unwrap();
    assert_eq!(spec(&server, &ns, &key)["holderIdentity"], "survivor");

    // Renewing moves renewTime on the server and extends the expiry.
    let before = s["renewTime"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let renewed = lock.renew(&survivor, Duration::from_secs(5)).await.unwrap();
    assert!(renewed.expires_at > survivor.expires_at);
    assert_ne!(
        spec(&server, &ns, &key)["renewTime"].as_str().unwrap(),
        before
    );
    lock.release(&renewed).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_by_another_tool_blocks_and_writes_are_conditional() {
    let server = common::server().await;
    let ns = common::unique("foreign");
    let now = jiff::Timestamp::now();
    server
        .apply(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "rollback-us-west-2-meshos-api", "namespace": ns},
            "spec": {"holderIdentity": "argo-rollouts-7d9f", "leaseDurationSeconds": 60,
                     "renewTime": format!("{}.000000Z", now.strftime("%Y-%m-%dT%H:%M:%S")),
                     "leaseTransitions": 7}
        }))
        .unwrap();
    let lock = LeaseLock::new(server.client(), &ns);
    let key = LockKey::new("rollback-us-west-2-meshos-api");
    let err = lock
        .acquire(&key, "meshos", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("argo-rollouts-7d9f"), "{err}");
    assert_eq!(lock.to_string(), format!("LeaseLock({ns})"));

    // Once it is released, taking it is a PUT conditioned on the resource version read.
    let mut released = server.get("leases", &ns, key.as_str()).unwrap();
    released["spec"]
        .as_object_mut()
        .unwrap()
        .remove("holderIdentity");
    server.apply(released).unwrap();
    let rv =
        server.get("leases", &ns, key.as_str()).unwrap()["metadata"]["resourceVersion"].clone();
    server.clear_requests();
    let lease = lock
        .acquire(&key, "meshos", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(lease.token.split('@').next(), Some("8"));
    let put = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .expect("a PUT");
    let body: Value = serde_json::from_str(&put.body).unwrap();
    assert_eq!(body["metadata"]["resourceVersion"], rv);
    assert_eq!(body["spec"]["holderIdentity"], "meshos");

    assert_eq!(
        lock.acquire(&key, "x", Duration::ZERO)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
}
