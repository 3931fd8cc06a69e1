//! The ECS connection-string switch keeps the value in Secrets Manager, never in a task
//! definition's plain-text `environment` (readable by everyone with
//! `ecs:DescribeTaskDefinition`).
//!
//! Against moto (ECS task definitions with `secrets`; Secrets Manager `create_secret`,
//! `put_secret_value`, `get_secret_value`, `list_secret_version_ids`), and with
//! aws-smithy-mocks for an AccessDenied moto never answers.

mod support;

use std::time::Duration;

use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, KeyValuePair, NetworkMode, TaskDefinitionField,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use meshos_rollback_aws::{EcsDeployer, EcsDeployerBuilder};
use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::model::ServiceId;
use meshos_rollback_core::provider::{Deployer, EnvVar};
use meshos_rollback_core::wait::Backoff;
use secrecy::SecretString;
use support::{Moto, unique};

const URL_A: &str = "postgresql://app:s3cret-a@meshos-db-restored.example:5432/meshos";
const URL_B: &str = "postgresql://app:s3cret-b@meshos-db-restored-2.example:5432/meshos";

fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        factor: 2.0,
        max_interval: Duration::from_millis(200),
        max_checks: Some(20),
    }
}

fn url(value: &str, container: Option<&str>) -> EnvVar {
    EnvVar {
        container: container.map(str::to_owned),
        name: "DATABASE_URL".into(),
        value: SecretString::from(value),
    }
}

/// A service on a task definition with two containers; `api` has a plain
/// `DATABASE_URL` (the state the old switch left), `sidecar` has none. An empty secret.
struct Fixture {
    moto: Moto,
    service: ServiceId,
    family: String,
    secret_arn: String,
    secret_name: String,
}

async fn fixture(region: &str) -> Fixture {
    let moto = Moto::new(region);
    let ecs = aws_sdk_ecs::Client::new(&moto.config);
    let cluster = unique("meshos");
    let family = unique("meshos-api");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .unwrap();
    let container = |name: &str, env: &[(&str, &str)]| {
        let mut c = ContainerDefinition::builder()
            .name(name)
            .image("meshos/mesh-kernel:sha-abc123")
            .cpu(128)
            .memory(256)
            .essential(name == "api");
        for (k, v) in env {
            c = c.environment(KeyValuePair::builder().name(*k).value(*v).build());
        }
        c.build()
    };
    let td = ecs
        .register_task_definition()
        .family(&family)
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .execution_role_arn("arn:aws:iam::123456789012:role/ecsTaskExecutionRole")
        .container_definitions(container(
            "api",
            &[
                ("LOG_LEVEL", "info"),
                (
                    "DATABASE_URL",
                    "postgresql://app:old-plain@meshos-db:5432/meshos",
                ),
            ],
        ))
        .container_definitions(container("sidecar", &[("LOG_LEVEL", "warn")]))
        .send()
        .await
        .unwrap();
    let td = td
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap()
        .to_owned();
    let name = unique("api");
    ecs.create_service()
        .cluster(&cluster)
        .service_name(&name)
        .task_definition(&td)
        .desired_count(support::ECS_RUNNING)
        .send()
        .await
        .unwrap();
    let secret_name = unique("meshos/db-url");
    let sm = aws_sdk_secretsmanager::Client::new(&moto.config);
    let secret_arn = sm
        .create_secret()
        .name(&secret_name)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    Fixture {
        service: ServiceId::ecs(&cluster, &name),
        moto,
        family,
        secret_arn,
        secret_name,
    }
}

impl Fixture {
    fn deployer(&self, secret: Option<&str>) -> EcsDeployer {
        let mut b = EcsDeployer::builder(&self.moto.config).with_wait(quick());
        if let Some(s) = secret {
            b = b.with_secret_env("DATABASE_URL", s);
        }
        b.build().unwrap()
    }

    async fn revisions(&self) -> Vec<String> {
        let ecs = aws_sdk_ecs::Client::new(&self.moto.config);
        ecs.list_task_definitions()
            .family_prefix(&self.family)
            .send()
            .await
            .unwrap()
            .task_definition_arns()
            .to_vec()
    }

    /// Version ids of the secret.
    async fn versions(&self) -> Vec<String> {
        let sm = aws_sdk_secretsmanager::Client::new(&self.moto.config);
        let out = sm
            .list_secret_version_ids()
            .secret_id(&self.secret_arn)
            .send()
            .await
            .unwrap();
        let mut v: Vec<String> = out
            .versions()
            .iter()
            .filter_map(|v| v.version_id().map(str::to_owned))
            .collect();
        v.sort();
        v
    }

    /// `(environment names, secrets (name, valueFrom))` per container of `td`, and the
    /// whole DescribeTaskDefinition answer as Debug text.
    async fn containers(
        &self,
        td: &str,
    ) -> (Vec<(String, Vec<String>, Vec<(String, String)>)>, String) {
        let ecs = aws_sdk_ecs::Client::new(&self.moto.config);
        let out = ecs
            .describe_task_definition()
            .task_definition(td)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .unwrap();
        let cs = out
            .task_definition()
            .unwrap()
            .container_definitions()
            .iter()
            .map(|c| {
                (
                    c.name().unwrap_or_default().to_owned(),
                    c.environment()
                        .iter()
                        .filter_map(|kv| kv.name().map(str::to_owned))
                        .collect(),
                    c.secrets()
                        .iter()
                        .map(|s| (s.name().to_owned(), s.value_from().to_owned()))
                        .collect(),
                )
            })
            .collect();
        (cs, format!("{out:?}"))
    }

    async fn secret_value(&self, value_from: &str) -> String {
        let (arn, version) = value_from.split_once(":::").expect("a pinned version");
        assert_eq!(
            arn, self.secret_arn,
            "valueFrom names the configured secret"
        );
        let sm = aws_sdk_secretsmanager::Client::new(&self.moto.config);
        sm.get_secret_value()
            .secret_id(arn)
            .version_id(version)
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap()
            .to_owned()
    }
}

/// The defect: the switch wrote the connection string into `environment`. Now the
/// value is a secret version, the plain entry of the same name is gone (ECS refuses a
/// name in both), and nothing in DescribeTaskDefinition shows the value.
#[tokio::test]
#[ignore = "needs moto server"]
async fn set_env_writes_the_secret_and_removes_the_plain_entry() {
    let fx = fixture("us-west-2").await;
    let deployer = fx.deployer(Some(&fx.secret_name));
    let change = deployer
        .set_env(&fx.service, &url(URL_A, None))
        .await
        .unwrap();
    assert!(change.changed);
    let (containers, debug) = fx.containers(change.to.as_str()).await;
    assert!(
        !debug.contains(URL_A) && !debug.contains("s3cret") && !debug.contains("old-plain"),
        "no plain value in DescribeTaskDefinition: {debug}"
    );
    for (name, env, secrets) in &containers {
        assert!(!env.contains(&"DATABASE_URL".to_owned()), "{name}: {env:?}");
        assert!(env.contains(&"LOG_LEVEL".to_owned()), "{name}: {env:?}");
        assert_eq!(secrets.len(), 1, "{name}: {secrets:?}");
        assert_eq!(secrets[0].0, "DATABASE_URL");
        assert_eq!(fx.secret_value(&secrets[0].1).await, URL_A);
    }
    assert_eq!(fx.versions().await.len(), 1);
}

/// Only the named container changes.
#[tokio::test]
#[ignore = "needs moto server"]
async fn set_env_changes_only_the_named_container() {
    let fx = fixture("us-west-2").await;
    // Configured by ARN this time.
    let deployer = fx.deployer(Some(&fx.secret_arn));
    let change = deployer
        .set_env(&fx.service, &url(URL_A, Some("sidecar")))
        .await
        .unwrap();
    assert!(change.changed);
    let (containers, _) = fx.containers(change.to.as_str()).await;
    let api = containers.iter().find(|c| c.0 == "api").unwrap();
    let sidecar = containers.iter().find(|c| c.0 == "sidecar").unwrap();
    assert!(api.1.contains(&"DATABASE_URL".to_owned()), "api untouched");
    assert!(api.2.is_empty(), "api untouched: {:?}", api.2);
    assert_eq!(sidecar.2.len(), 1);
    assert_eq!(fx.secret_value(&sidecar.2[0].1).await, URL_A);
}

/// The defect: a variable without a configured secret was written in plain text. Now
/// it is refused as a precondition naming the builder call; nothing is registered and
/// no secret is written.
#[tokio::test]
#[ignore = "needs moto server"]
async fn set_env_without_a_configured_secret_is_refused() {
    let fx = fixture("ca-central-1").await;
    let before = fx.revisions().await;
    for deployer in [
        fx.deployer(None),
        EcsDeployer::builder(&fx.moto.config)
            .with_secret_env("REPLICA_URL", &fx.secret_name)
            .build()
            .unwrap(),
    ] {
        let err = deployer
            .set_env(&fx.service, &url(URL_A, None))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Precondition, "{err}");
        assert!(err.to_string().contains("with_secret_env"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
    assert_eq!(fx.revisions().await, before, "nothing registered");
    assert!(fx.versions().await.is_empty(), "no secret version");
    // The planner learns it up front.
    assert!(!fx.deployer(None).capabilities().set_env);
    assert!(fx.deployer(Some(&fx.secret_name)).capabilities().set_env);
}

/// The same value again (a resumed run) is a no-op: no revision, no secret version.
/// A new value is a new version and a new revision (the version is pinned, so the
/// tasks restart with it); the first value again goes back to its version.
#[tokio::test]
#[ignore = "needs moto server"]
async fn set_env_is_idempotent_and_a_new_value_is_a_new_revision() {
    let fx = fixture("ap-northeast-1").await;
    let deployer = fx.deployer(Some(&fx.secret_name));
    let first = deployer
        .set_env(&fx.service, &url(URL_A, None))
        .await
        .unwrap();
    assert!(first.changed);
    let revisions = fx.revisions().await;
    let versions = fx.versions().await;
    assert_eq!(versions.len(), 1);

    let again = deployer
        .set_env(&fx.service, &url(URL_A, None))
        .await
        .unwrap();
    assert!(!again.changed, "{again:?}");
    assert_eq!(again.to, first.to);
    assert_eq!(fx.revisions().await, revisions, "no new revision");
    assert_eq!(fx.versions().await, versions, "no new secret version");

    let second = deployer
        .set_env(&fx.service, &url(URL_B, None))
        .await
        .unwrap();
    assert!(second.changed);
    assert_ne!(second.to, first.to);
    assert_eq!(fx.versions().await.len(), 2);
    let (containers, debug) = fx.containers(second.to.as_str()).await;
    assert!(!debug.contains(URL_B), "{debug}");
    assert_eq!(fx.secret_value(&containers[0].2[0].1).await, URL_B);
    // The earlier revision still reads the earlier value: a rollback restores it.
    let (containers, _) = fx.containers(first.to.as_str()).await;
    assert_eq!(fx.secret_value(&containers[0].2[0].1).await, URL_A);
}

/// A missing container is refused before the secret is written; a missing secret is
/// not created and says what to do.
#[tokio::test]
#[ignore = "needs moto server"]
async fn set_env_refuses_a_missing_container_or_secret() {
    let fx = fixture("sa-east-1").await;
    let before = fx.revisions().await;
    let deployer = fx.deployer(Some(&fx.secret_name));
    let err = deployer
        .set_env(&fx.service, &url(URL_A, Some("worker")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(fx.versions().await.is_empty(), "no secret version");

    let deployer = fx.deployer(Some("meshos/no-such-secret"));
    let err = deployer
        .set_env(&fx.service, &url(URL_A, None))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("meshos/no-such-secret"), "{err}");
    assert!(err.to_string().contains("create it first"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert_eq!(fx.revisions().await, before, "nothing registered");
}

// ---------------------------------------------------------------- without a server

/// A builder from an ECS client alone has no Secrets Manager client: a variable kept
/// in a secret is refused at build(), not at the first switch.
#[test]
fn a_secret_env_without_a_secrets_client_is_refused_at_build() {
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, []);
    let err = EcsDeployerBuilder::from_client(ecs.clone())
        .with_secret_env("DATABASE_URL", "meshos/db-url")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("with_secrets_client"), "{err}");
    let sm = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, []);
    let err = EcsDeployerBuilder::from_client(ecs.clone())
        .with_secrets_client(sm.clone())
        .with_secret_env("DATABASE_URL", " ")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    EcsDeployerBuilder::from_client(ecs)
        .with_secrets_client(sm)
        .with_secret_env("DATABASE_URL", "meshos/db-url")
        .build()
        .unwrap();
}

/// Secrets Manager API reference, PutSecretValue errors: AccessDeniedException (HTTP
/// 400, awsJson `__type`). The error names the permission, not just "denied".
#[tokio::test]
async fn access_denied_on_put_secret_value_names_the_permission() {
    use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
    use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
    use aws_sdk_ecs::types::{Service, TaskDefinition};
    let td = "arn:aws:ecs:us-east-1:123456789012:task-definition/meshos-api:4";
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(move || {
        DescribeServicesOutput::builder()
            .services(
                Service::builder()
                    .service_name("meshos-api")
                    .status("ACTIVE")
                    .task_definition(td)
                    .build(),
            )
            .build()
    });
    let task_definition =
        mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(move || {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    TaskDefinition::builder()
                        .task_definition_arn(td)
                        .family("meshos-api")
                        .revision(4)
                        .container_definitions(
                            ContainerDefinition::builder()
                                .name("api")
                                .image("meshos/mesh-kernel:sha-abc123")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    // Nothing may be registered after a failed secret write.
    let register = mock!(aws_sdk_ecs::Client::register_task_definition).then_output(|| {
        aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput::builder()
            .build()
    });
    let ecs = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&describe, &task_definition, &register]
    );
    let put = mock!(aws_sdk_secretsmanager::Client::put_secret_value).then_http_response(|| {
        Response::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(
                r#"{"__type":"AccessDeniedException","message":"User: arn:aws:sts::123456789012:assumed-role/rollback is not authorized to perform this operation"}"#,
            ),
        )
    });
    let sm = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&put]);
    let deployer = EcsDeployerBuilder::from_client(ecs)
        .with_secrets_client(sm)
        .with_secret_env("DATABASE_URL", "meshos/db-url")
        .build()
        .unwrap();
    let err = deployer
        .set_env(
            &ServiceId::ecs("meshos-us-east-1", "meshos-api"),
            &url(URL_A, None),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    let text = err.to_string();
    assert!(text.contains("secretsmanager:PutSecretValue"), "{text}");
    assert!(text.contains("secret meshos/db-url"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert_eq!(put.num_calls(), 1);
    assert_eq!(register.num_calls(), 0);
}
