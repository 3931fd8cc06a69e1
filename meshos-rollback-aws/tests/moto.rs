//! Every core conformance suite, and the backends' own behaviour, over the real SDK
//! wire protocol against a local moto server (see `support` for how one is found).
//!
//! Moto models ECS services frozen at one deployment (stable only because the server
//! runs with `MOTO_ECS_SERVICE_RUNNING=2`), answers the ECS service-deployment API with
//! HTTP 500, and makes RDS instances available at once; those paths are covered with
//! aws-smithy-mocks in `tests/mocks.rs`.

mod support;

use std::time::Duration;

use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, KeyValuePair, NetworkMode, Tag as EcsTag,
};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, ProtocolEnum, TargetDescription, TargetGroupTuple,
    TargetTypeEnum,
};
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use meshos_rollback_aws::{
    AlbTrafficShifter, EcrImageRegistry, EcsDeployer, RdsRestorer, Route53DnsSwitcher,
};
use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::conformance;
use meshos_rollback_core::model::{Region, RevisionId, RollbackTarget, ServiceId};
use meshos_rollback_core::provider::{
    Deployer, DnsSwitcher, DnsTarget, EnvVar, ImageRef, ImageRegistry, TargetId, TrafficShifter,
};
use meshos_rollback_core::wait::Backoff;
use secrecy::SecretString;
use support::{Moto, unique};

/// Moto answers at once: poll quickly, and not for long.
fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        factor: 2.0,
        max_interval: Duration::from_millis(200),
        max_checks: Some(20),
    }
}

// ---------------------------------------------------------------- ECS

/// A cluster with a service on revision 2 of a family whose revision 1 is older.
struct EcsFixture {
    cluster: String,
    family: String,
    service: ServiceId,
    older: String,
    newer: String,
}

/// An empty Secrets Manager secret (the deployer writes versions, never creates it);
/// its ARN.
async fn db_url_secret(moto: &Moto) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(&moto.config);
    let out = sm
        .create_secret()
        .name(unique("meshos/db-url"))
        .send()
        .await
        .unwrap();
    out.arn().unwrap().to_owned()
}

fn container(image: &str, env: &[(&str, &str)]) -> ContainerDefinition {
    let mut c = ContainerDefinition::builder()
        .name("api")
        .image(image)
        .cpu(256)
        .memory(512)
        .essential(true);
    for (k, v) in env {
        c = c.environment(KeyValuePair::builder().name(*k).value(*v).build());
    }
    c.build()
}

async fn ecs_fixture(moto: &Moto) -> EcsFixture {
    let ecs = aws_sdk_ecs::Client::new(&moto.config);
    let cluster = unique("meshos");
    let family = unique("meshos-api");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .unwrap();
    let mut arns = Vec::new();
    for image in [
        "meshos/mesh-kernel:sha-abc123",
        "meshos/mesh-kernel:sha-def456",
    ] {
        let out = ecs
            .register_task_definition()
            .family(&family)
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .execution_role_arn("arn:aws:iam::123456789012:role/ecsTaskExecutionRole")
            .container_definitions(container(image, &[("LOG_LEVEL", "info")]))
            .tags(EcsTag::builder().key("team").value("sre").build())
            .send()
            .await
            .unwrap();
        arns.push(
            out.task_definition()
                .and_then(|t| t.task_definition_arn())
                .unwrap()
                .to_owned(),
        );
    }
    let name = unique("api");
    let created = ecs
        .create_service()
        .cluster(&cluster)
        .service_name(&name)
        .task_definition(&arns[1])
        .desired_count(support::ECS_RUNNING)
        .send()
        .await
        .unwrap();
    let running = created.service().map(|s| s.running_count()).unwrap_or(0);
    assert_eq!(
        running,
        support::ECS_RUNNING,
        "the moto server must run with MOTO_ECS_SERVICE_RUNNING={} (scripts/setup/20-moto.sh does)",
        support::ECS_RUNNING
    );
    EcsFixture {
        service: ServiceId::ecs(&cluster, &name),
        cluster,
        family,
        older: arns[0].clone(),
        newer: arns[1].clone(),
    }
}

#[tokio::test]
#[ignore = "needs moto server"]
async fn ecs_deployer_conformance() {
    let moto = Moto::new("us-east-1");
    let fx = ecs_fixture(&moto).await;
    let secret = db_url_secret(&moto).await;
    let deployer = EcsDeployer::builder(&moto.config)
        .with_cluster(&fx.cluster)
        .with_secret_env("DATABASE_URL", &secret)
        .with_wait(quick())
        // moto serves no ListServiceDeployments: "previous" is the family's previous
        // revision, which this fixture did deploy.
        .with_family_fallback(true)
        .build()
        .unwrap();
    assert_eq!(
        deployer.to_string(),
        format!("EcsDeployer(us-east-1/{})", fx.cluster)
    );
    let suite = conformance::deploy::DeployerFixture {
        service: fx.service.clone(),
        older: fx.older.as_str().into(),
        newer: fx.newer.as_str().into(),
        missing_revision: format!("{}:99", fx.older.rsplit_once(':').unwrap().0).into(),
        missing_service: ServiceId::ecs(&fx.cluster, "no-such-service"),
        container: "api".into(),
        image: "meshos/mesh-kernel:sha-abc123".into(),
    };
    conformance::deploy::run(&deployer, &suite).await;
}

#[tokio::test]
#[ignore = "needs moto server"]
async fn ecs_set_env_registers_a_faithful_copy_with_the_value_in_secrets_manager() {
    let moto = Moto::new("eu-west-1");
    let fx = ecs_fixture(&moto).await;
    let secret_arn = db_url_secret(&moto).await;
    let secret_name = secret_arn.rsplit_once(":secret:").unwrap().1;
    // Configured by name (the ARN works too); the name without the random suffix.
    let secret_name = &secret_name[..secret_name.len() - 7];
    let deployer = EcsDeployer::builder(&moto.config)
        .with_secret_env("DATABASE_URL", secret_name)
        .with_wait(quick())
        // moto serves no ListServiceDeployments: "previous" is the family's previous
        // revision, which this fixture did deploy.
        .with_family_fallback(true)
        .build()
        .unwrap();
    let secret = "postgresql://app:s3cret@meshos-db-restored.example:5432/meshos";
    let var = EnvVar {
        container: None,
        name: "DATABASE_URL".into(),
        value: SecretString::from(secret),
    };
    let change = deployer.set_env(&fx.service, &var).await.unwrap();
    assert!(change.changed);
    assert_eq!(change.from.as_str(), fx.newer);
    assert!(
        change.to.as_str().ends_with(&format!("{}:3", fx.family)),
        "{change:?}"
    );
    assert!(
        !format!("{change:?} {var:?}").contains("s3cret"),
        "the value never shows in Debug output"
    );

    let ecs = aws_sdk_ecs::Client::new(&moto.config);
    let out = ecs
        .describe_task_definition()
        .task_definition(change.to.as_str())
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    // The defect: the connection string was in the task definition's environment,
    // readable by everyone with ecs:DescribeTaskDefinition.
    assert!(
        !format!("{out:?}").contains(secret) && !format!("{out:?}").contains("s3cret"),
        "no plain value anywhere in DescribeTaskDefinition: {out:?}"
    );
    let td = out.task_definition().unwrap();
    assert_eq!(td.cpu(), Some("256"));
    assert_eq!(td.memory(), Some("512"));
    assert_eq!(td.network_mode(), Some(&NetworkMode::Awsvpc));
    assert_eq!(td.requires_compatibilities(), &[Compatibility::Fargate]);
    assert_eq!(
        td.execution_role_arn(),
        Some("arn:aws:iam::123456789012:role/ecsTaskExecutionRole")
    );
    assert_eq!(out.tags().len(), 1, "tags copied: {:?}", out.tags());
    let c = &td.container_definitions()[0];
    assert_eq!(c.image(), Some("meshos/mesh-kernel:sha-def456"));
    let env: Vec<&str> = c.environment().iter().filter_map(|kv| kv.name()).collect();
    assert_eq!(env, ["LOG_LEVEL"], "no DATABASE_URL in environment");
    let secrets: Vec<(&str, &str)> = c
        .secrets()
        .iter()
        .map(|s| (s.name(), s.value_from()))
        .collect();
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    assert_eq!(secrets[0].0, "DATABASE_URL");
    // valueFrom pins the version: ARN:json-key:version-stage:version-id.
    let (arn, version) = secrets[0].1.split_once(":::").unwrap();
    assert_eq!(arn, secret_arn);
    let sm = aws_sdk_secretsmanager::Client::new(&moto.config);
    let got = sm
        .get_secret_value()
        .secret_id(arn)
        .version_id(version)
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some(secret));

    // The service runs the new revision; the old one is the rollback target.
    let history = deployer.revisions(&fx.service).await.unwrap();
    assert_eq!(history.current.id, change.to);
    assert_eq!(history.previous[0].id.as_str(), fx.newer);
    assert_eq!(history.previous[1].id.as_str(), fx.older);
    assert_eq!(
        history.previous[0].image.as_deref(),
        Some("meshos/mesh-kernel:sha-def456")
    );
}

#[tokio::test]
#[ignore = "needs moto server"]
async fn ecs_errors_over_the_wire() {
    let moto = Moto::new("us-west-2");
    let fx = ecs_fixture(&moto).await;
    let deployer = EcsDeployer::builder(&moto.config).build().unwrap();
    let err = deployer
        .rollout_status(&ServiceId::ecs("no-such-cluster", "api"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = deployer
        .roll_back(
            &fx.service,
            &RollbackTarget::Revision(RevisionId::new("never-registered:1")),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = deployer
        .revisions(&ServiceId::kubernetes("production", "meshos-api"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let scoped = EcsDeployer::builder(&moto.config)
        .with_cluster("another-cluster")
        .build()
        .unwrap();
    let err = scoped.revisions(&fx.service).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

// ---------------------------------------------------------------- ELBv2

struct AlbFixture {
    listener: String,
    stable: String,
    canary: String,
}

async fn alb_fixture(moto: &Moto) -> AlbFixture {
    let (vpc, subnets) = moto.default_subnets();
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&moto.config);
    let lb = elb
        .create_load_balancer()
        .name(unique("meshos"))
        .set_subnets(Some(subnets))
        .send()
        .await
        .unwrap();
    let lb_arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_owned();
    let mut groups = Vec::new();
    for name in ["stable", "canary"] {
        let tg = elb
            .create_target_group()
            .name(unique(name))
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .vpc_id(&vpc)
            .target_type(TargetTypeEnum::Ip)
            .send()
            .await
            .unwrap();
        let arn = tg.target_groups()[0].target_group_arn().unwrap().to_owned();
        elb.register_targets()
            .target_group_arn(&arn)
            .targets(
                TargetDescription::builder()
                    .id("10.0.1.10")
                    .port(8080)
                    .build(),
            )
            .targets(
                TargetDescription::builder()
                    .id("10.0.1.11")
                    .port(8080)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        groups.push(arn);
    }
    let weighted = Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(
            ForwardActionConfig::builder()
                .target_groups(
                    TargetGroupTuple::builder()
                        .target_group_arn(&groups[0])
                        .weight(90)
                        .build(),
                )
                .target_groups(
                    TargetGroupTuple::builder()
                        .target_group_arn(&groups[1])
                        .weight(10)
                        .build(),
                )
                .build(),
        )
        .build();
    let listener = elb
        .create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(weighted)
        .send()
        .await
        .unwrap();
    AlbFixture {
        listener: listener.listeners()[0].listener_arn().unwrap().to_owned(),
        stable: groups[0].clone(),
        canary: groups[1].clone(),
    }
}

#[tokio::test]
#[ignore = "needs moto server"]
async fn alb_traffic_shifter_conformance() {
    let moto = Moto::new("us-east-1");
    let fx = alb_fixture(&moto).await;
    let alb = AlbTrafficShifter::builder(&moto.config).build().unwrap();
    assert_eq!(alb.to_string(), "AlbTrafficShifter(us-east-1)");
    let suite = conformance::traffic::TrafficFixture {
        route: fx.listener.as_str().into(),
        stable: fx.stable.as_str().into(),
        canary: fx.canary.as_str().into(),
        missing_route: fx
            .listener
            .replace("listener/app", "listener/app-gone")
            .into(),
        missing_target: format!("{}-gone", fx.canary).into(),
    };
    conformance::traffic::run(&alb, &suite).await;
}

#[tokio::test]
#[ignore = "needs moto server"]
async fn alb_shift_is_a_no_op_when_done_and_reads_health() {
    let moto = Moto::new("eu-central-1");
    let fx = alb_fixture(&moto).await;
    let alb = AlbTrafficShifter::builder(&moto.config).build().unwrap();
    let route = fx.listener.as_str().into();
    let stable: TargetId = fx.stable.as_str().into();
    alb.shift_all_to(&route, &stable).await.unwrap();
    let before = moto.requests();
    alb.shift_all_to(&route, &stable).await.unwrap();
    assert_eq!(
        moto.requests() - before,
        1,
        "a repeated shift reads the listener and changes nothing"
    );
    let health = alb.target_health(&stable).await.unwrap();
    assert_eq!(health.healthy, vec!["10.0.1.10:8080", "10.0.1.11:8080"]);
    assert!(health.all_healthy(), "{health}");
}

// ---------------------------------------------------------------- Route53

fn alias(name: &str) -> DnsTarget {
    DnsTarget::Alias {
        hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
        dns_name: name.into(),
        evaluate_target_health: true,
    }
}

/// A zone with the weighted set `api.<zone>`: us-east-1 at 100, eu-west-1 at 50.
async fn zone_fixture(moto: &Moto) -> (String, String) {
    let r53 = aws_sdk_route53::Client::new(&moto.config);
    let domain = format!("{}.test", unique("meshos"));
    let zone = r53
        .create_hosted_zone()
        .name(&domain)
        .caller_reference(unique("ref"))
        .send()
        .await
        .unwrap();
    let zone_id = zone.hosted_zone().unwrap().id().to_owned();
    let weighted = format!("api.{domain}");
    let mut batch = ChangeBatch::builder();
    for (region, weight, lb) in [
        ("us-east-1", 100, "use1-alb.elb.amazonaws.com"),
        ("eu-west-1", 50, "euw1-alb.elb.amazonaws.com"),
    ] {
        batch = batch.changes(
            Change::builder()
                .action(ChangeAction::Create)
                .resource_record_set(
                    ResourceRecordSet::builder()
                        .name(&weighted)
                        .r#type(RrType::A)
                        .set_identifier(region)
                        .weight(weight)
                        .alias_target(
                            AliasTarget::builder()
                                .hosted_zone_id("Z35SXDOTRQ7X7K")
                                .dns_name(lb)
                                .evaluate_target_health(true)
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        );
    }
    // A record set that is no region: it must not be listed or touched.
    batch = batch.changes(
        Change::builder()
            .action(ChangeAction::Create)
            .resource_record_set(
                ResourceRecordSet::builder()
                    .name(&weighted)
                    .r#type(RrType::A)
                    .set_identifier("Blue Green")
                    .weight(0)
                    .ttl(60)
                    .resource_records(
                        ResourceRecord::builder()
                            .value("192.0.2.1")
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap(),
    );
    r53.change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(batch.build().unwrap())
        .send()
        .await
        .unwrap();
    (zone_id, domain)
}

#[tokio::test]
#[ignore = "needs moto server"]
async fn route53_dns_switcher_conformance() {
    let moto = Moto::new("us-east-1");
    let (zone, domain) = zone_fixture(&moto).await;
    let dns = Route53DnsSwitcher::builder(&moto.config, &zone)
        .with_wait(quick())
        .build()
        .unwrap();
    assert_eq!(
        dns.to_string(),
        format!(
            "Route53DnsSwitcher({})",
            zone.trim_start_matches("/hostedzone/")
        )
    );
    let suite = conformance::dns::DnsFixture {
        record: format!("rollback.{domain}"),
        missing_record: format!("nothing.{domain}"),
        targets: [
            alias("new-alb-1.us-east-1.elb.amazonaws.com"),
            alias("previous-alb-2.us-east-1.elb.amazonaws.com"),
        ],
        weighted: format!("api.{domain}."),
        regions: [
            (Region::new("us-east-1").unwrap(), 100),
            (Region::new("eu-west-1").unwrap(), 50),
        ],
        missing_region: Region::new("ap-south-1").unwrap(),
    };
    conformance::dns::run(&dns, &suite).await;
}

#[tokio::test]
#[ignore = "needs moto server"]
async fn route53_exclusion_keeps_the_target_and_other_sets() {
    let moto = Moto::new("us-east-1");
    let (zone, domain) = zone_fixture(&moto).await;
    let dns = Route53DnsSwitcher::builder(&moto.config, &zone)
        .with_wait(quick())
        .build()
        .unwrap();
    let name = format!("api.{domain}");
    let use1 = Region::new("us-east-1").unwrap();
    let change = dns.set_region_weight(&name, &use1, 0).await.unwrap();
    dns.wait_in_sync(&change).await.unwrap();
    let weights = dns.region_weights(&name).await.unwrap();
    assert_eq!(weights.len(), 2, "only region sets are listed: {weights:?}");

    let r53 = aws_sdk_route53::Client::new(&moto.config);
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap();
    let sets: Vec<_> = out
        .resource_record_sets()
        .iter()
        .filter(|r| r.set_identifier().is_some())
        .collect();
    let excluded = sets
        .iter()
        .find(|r| r.set_identifier() == Some("us-east-1"))
        .unwrap();
    assert_eq!(excluded.weight(), Some(0));
    assert_eq!(
        excluded
            .alias_target()
            .map(|a| a.dns_name().trim_end_matches('.')),
        Some("use1-alb.elb.amazonaws.com"),
        "exclusion keeps the region's target for re-admission"
    );
    let other = sets
        .iter()
        .find(|r| r.set_identifier() == Some("Blue Green"))
        .unwrap();
    assert_eq!(other.resource_records()[0].value(), "192.0.2.1");

    let err = Route53DnsSwitcher::builder(&moto.config, "Z0000000NOSUCHZONE")
        .build()
        .unwrap()
        .region_weights(&name)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

// ---------------------------------------------------------------- RDS

#[tokio::test]
#[ignore = "needs moto server"]
async fn rds_restorer_conformance() {
    let moto = Moto::new("us-east-1");
    let rds = aws_sdk_rds::Client::new(&moto.config);
    let source = unique("meshos-db");
    rds.create_db_instance()
        .db_instance_identifier(&source)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .master_username("meshos")
        .master_user_password("correct-horse-battery")
        .allocated_storage(20)
        .backup_retention_period(7)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    rds.create_db_snapshot()
        .db_instance_identifier(&source)
        .db_snapshot_identifier(format!("{source}-before-deploy"))
        .send()
        .await
        .unwrap();
    let restorer = RdsRestorer::builder(&moto.config)
        .with_wait(quick())
        .build()
        .unwrap();
    assert_eq!(restorer.to_string(), "RdsRestorer(us-east-1)");
    let snaps = restorer.snapshots(&source.as_str().into()).await.unwrap();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    assert_eq!(
        snaps[0].id.as_str(),
        format!("{source}-before-deploy"),
        "the manual snapshot is the newest"
    );
    let suite = conformance::database::DbFixture {
        source: source.as_str().into(),
        target_prefix: format!("{source}-restored"),
        missing: unique("meshos-db-nowhere").as_str().into(),
    };
    conformance::database::run(&restorer, &suite).await;
}

use meshos_rollback_core::provider::DbRestorer;

// ---------------------------------------------------------------- ECR

fn manifest(layer: char) -> String {
    let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1470,"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2811478,"digest":"{}"}}]}}"#,
        digest('c'),
        digest(layer)
    )
}

async fn ecr_fixture(moto: &Moto) -> String {
    let ecr = aws_sdk_ecr::Client::new(&moto.config);
    let repo = format!("meshos/{}", unique("mesh-kernel"));
    ecr.create_repository()
        .repository_name(&repo)
        .send()
        .await
        .unwrap();
    for (tag, layer) in [("sha-abc123", 'a'), ("sha-def456", 'b')] {
        ecr.put_image()
            .repository_name(&repo)
            .image_manifest(manifest(layer))
            .image_manifest_media_type("application/vnd.docker.distribution.manifest.v2+json")
            .image_tag(tag)
            .send()
            .await
            .unwrap();
    }
    repo
}

#[tokio::test]
#[ignore = "needs moto server"]
async fn ecr_image_registry_conformance() {
    let moto = Moto::new("us-east-1");
    let repo = ecr_fixture(&moto).await;
    let registry = EcrImageRegistry::builder(&moto.config).build().unwrap();
    assert_eq!(registry.to_string(), "EcrImageRegistry(us-east-1)");
    let suite = conformance::registry::RegistryFixture {
        repository: repo,
        good: "sha-abc123".into(),
        bad: "sha-def456".into(),
    };
    conformance::registry::run(&registry, &suite).await;
}

#[tokio::test]
#[ignore = "needs moto server"]
async fn ecr_retag_keeps_the_manifest_and_skips_a_done_retag() {
    let moto = Moto::new("us-east-1");
    let repo = ecr_fixture(&moto).await;
    let registry = EcrImageRegistry::builder(&moto.config).build().unwrap();
    let good = ImageRef::Tag("sha-abc123".into());
    let moved = registry.retag(&repo, &good, "latest").await.unwrap();
    assert!(moved.changed);
    let before = moto.requests();
    let again = registry.retag(&repo, &good, "latest").await.unwrap();
    assert!(!again.changed);
    assert_eq!(
        moto.requests() - before,
        2,
        "a BatchGetImage each for the source and the tag, no PutImage"
    );

    let ecr = aws_sdk_ecr::Client::new(&moto.config);
    let out = ecr
        .batch_get_image()
        .repository_name(&repo)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag("latest")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.images()[0].image_manifest(),
        Some(manifest('a').as_str())
    );
}

// ---------------------------------------------------------------- configuration

#[tokio::test]
#[ignore = "needs moto server"]
async fn a_config_without_http_client_gets_one() {
    let moto = Moto::new("us-east-1");
    let fx = ecs_fixture(&moto).await;
    // The same account and endpoint, but no HTTP client of the caller's: with the
    // default-http-client feature the backend installs one and calls go through.
    let mut bare = moto.config.to_builder();
    bare.set_http_client(None);
    let bare = bare.build();
    assert!(bare.http_client().is_none());
    let deployer = EcsDeployer::builder(&bare).build().unwrap();
    // Without the account header this is moto's default account: the fixture's
    // cluster is not there, which proves the request was sent and answered.
    let err = deployer.rollout_status(&fx.service).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}
