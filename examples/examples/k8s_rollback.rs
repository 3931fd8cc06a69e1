//! The playbook's Kubernetes rollback, as code:
//!
//! ```text
//! kubectl rollout undo deployment/meshos-api -n production
//! kubectl rollout status deployment/meshos-api -n production
//! kubectl get pods -n production -l app=meshos-api
//! ```
//!
//! By default it runs against the embedded test API server (no cluster needed): it
//! deploys v2.4.9, then a v2.5.0 that crash-loops, sees the rollout fail fast, and
//! rolls back under a Lease lock.
//!
//! ```text
//! cargo run -p meshos-rollback-examples --example k8s_rollback
//! ```
//!
//! Against a real cluster (the kubeconfig from `KUBECONFIG` or `~/.kube/config`, or
//! the in-cluster service account), on an existing Deployment:
//!
//! ```text
//! cargo run -p meshos-rollback-examples --example k8s_rollback -- \
//!     --cluster --namespace production --deployment meshos-api [--to-revision 41] [--dry-run]
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use meshos_rollback_core::model::{RollbackTarget, ServiceId};
use meshos_rollback_core::provider::{Deployer, LockKey, RollbackLock};
use meshos_rollback_k8s::testing::{ImageFailure, TestApiServer, deployment_manifest};
use meshos_rollback_k8s::{K8sDeployer, LeaseLock};

/// Roll a Kubernetes Deployment back as the playbook says.
#[derive(Debug, Parser)]
struct Args {
    /// Use the real cluster of the current kubeconfig instead of the test server.
    #[arg(long)]
    cluster: bool,
    /// The Deployment's namespace.
    #[arg(long, default_value = "production")]
    namespace: String,
    /// The Deployment.
    #[arg(long, default_value = "meshos-api")]
    deployment: String,
    /// Roll back to this revision instead of the previous one (`--to-revision`).
    #[arg(long)]
    to_revision: Option<String>,
    /// Send the undo as a server-side dry run and stop there.
    #[arg(long)]
    dry_run: bool,
    /// Namespace of the rollback Lease (default: the Deployment's).
    #[arg(long)]
    lock_namespace: Option<String>,
    /// Fail the rollout when new pods crash-loop for this many seconds.
    #[arg(long, default_value_t = 60)]
    fail_fast_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rollback failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let service = ServiceId::kubernetes(&args.namespace, &args.deployment);
    // Kept alive for the whole run when the test server is used.
    let mut _server = None;
    let (client, scope, grace) = if args.cluster {
        let client = kube::Client::try_default().await?;
        (
            client,
            "kubeconfig".to_owned(),
            Duration::from_secs(args.fail_fast_secs),
        )
    } else {
        let server = TestApiServer::start().await?;
        let client = server.client();
        stage_incident(&server, &args.namespace, &args.deployment, &client).await?;
        _server = Some(server);
        (client, "test-api-server".to_owned(), Duration::from_secs(1))
    };
    let deployer = K8sDeployer::new(client.clone(), scope)
        .with_fail_fast_grace(grace)
        .with_server_dry_run(args.dry_run);
    let lock = LeaseLock::new(
        client,
        args.lock_namespace.as_deref().unwrap_or(&args.namespace),
    );

    let history = deployer.revisions(&service).await?;
    println!(
        "{deployer}: {service} runs revision {} ({})",
        history.current.id,
        history.current.image.as_deref().unwrap_or("?")
    );
    for r in &history.previous {
        println!(
            "  earlier revision {} ({})",
            r.id,
            r.image.as_deref().unwrap_or("?")
        );
    }

    let holder = format!("k8s-rollback-example-{}", std::process::id());
    let key = LockKey::new(format!("rollback-{}-{}", args.namespace, args.deployment));
    let lease = lock
        .acquire(&key, &holder, Duration::from_secs(120))
        .await?;
    println!(
        "{lock}: holding {key} as {holder} until {}",
        lease.expires_at
    );
    let result = roll_back(&deployer, &service, &args).await;
    lock.release(&lease).await?;
    println!("{lock}: released {key}");
    result
}

async fn roll_back(
    deployer: &K8sDeployer,
    service: &ServiceId,
    args: &Args,
) -> Result<(), Box<dyn std::error::Error>> {
    let target = match &args.to_revision {
        Some(r) => RollbackTarget::Revision(r.as_str().into()),
        None => RollbackTarget::Previous,
    };
    println!(
        "$ kubectl rollout undo deployment/{} -n {}",
        args.deployment, args.namespace
    );
    let change = deployer.roll_back(service, &target).await?;
    if !change.changed {
        println!(
            "skipped rollback (current template already matches revision {})",
            change.to
        );
    } else if args.dry_run {
        println!(
            "would roll back from revision {} to {} (server dry run)",
            change.from, change.to
        );
        return Ok(());
    } else {
        println!("rolled back from revision {} to {}", change.from, change.to);
    }

    println!(
        "$ kubectl rollout status deployment/{} -n {}",
        args.deployment, args.namespace
    );
    let status = deployer.wait_until_stable(service).await?;
    println!("{}", status.message);

    let app = args.deployment.as_str();
    println!("$ kubectl get pods -n {} -l app={app}", args.namespace);
    let pods = deployer.verify_pods(service).await?;
    for p in &pods.pods {
        println!(
            "  {:<40} revision {:<4} {:?}{}",
            p.id,
            p.revision.as_ref().map_or("?", |r| r.as_str()),
            p.state,
            if p.ready { ", ready" } else { ", not ready" }
        );
    }
    println!("{pods}");
    if !pods.all_ready() {
        return Err(format!("not every pod of {service} is running and ready").into());
    }
    Ok(())
}

/// On the test server: v2.4.9 rolled out, then a v2.5.0 that crash-loops.
async fn stage_incident(
    server: &TestApiServer,
    namespace: &str,
    name: &str,
    client: &kube::Client,
) -> Result<(), Box<dyn std::error::Error>> {
    const GOOD: &str = "meshos/mesh-kernel:sha-abc123";
    const BAD: &str = "meshos/mesh-kernel:sha-def456";
    server.fail_image(BAD, ImageFailure::CrashLoop);
    let watcher = K8sDeployer::new(client.clone(), "test-api-server")
        .with_fail_fast_grace(Duration::from_secs(1))
        .with_recheck_interval(Duration::from_millis(250));
    let service = ServiceId::kubernetes(namespace, name);
    let mut manifest = deployment_manifest(namespace, name, "api", GOOD, 3);
    manifest["metadata"]["annotations"] =
        serde_json::json!({"kubernetes.io/change-cause": "deploy v2.4.9"});
    server.apply(manifest.clone())?;
    watcher.wait_until_stable(&service).await?;
    println!("(test server) deployed v2.4.9 as {GOOD}");
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = BAD.into();
    manifest["metadata"]["annotations"]["kubernetes.io/change-cause"] = "deploy v2.5.0".into();
    server.apply(manifest)?;
    match watcher.wait_until_stable(&service).await {
        Err(e) => println!("(test server) deployed v2.5.0 as {BAD}: {e}"),
        Ok(s) => return Err(format!("the broken version rolled out: {s}").into()),
    }
    Ok(())
}
