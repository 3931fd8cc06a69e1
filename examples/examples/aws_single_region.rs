//! The playbook's single-region rollback on AWS, composed from the AWS backends:
//!
//! 1. take the region out of the weighted `api` record (Route53 weight 0, wait INSYNC),
//! 2. shift the ALB listener back to the stable target group and check its health,
//! 3. roll the ECS service back to the previous task definition and wait until stable,
//! 4. re-admit the region at its previous weight.
//!
//! It runs against a local moto server, where it first stages the incident (a cluster
//! whose service runs the bad revision, a load balancer splitting 90/10 between
//! stable and canary, a zone routing `api` to two regions). One command:
//!
//! ```text
//! scripts/run-with-moto.sh cargo run -p meshos-rollback-examples --example aws_single_region
//! ```
//!
//! The rollback itself is the engine's: plan (dry run), checklist gate, journalled
//! steps, report. It prints each step and, at the end, the HTTP requests the rollback
//! sent and its wall time. Against AWS the same code takes the region's `SdkConfig`
//! (from `aws_config`) and the real cluster, listener and zone.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, HostHeaderConditionConfig, ProtocolEnum,
    RedirectActionConfig, RedirectActionStatusCodeEnum, RuleCondition, TargetDescription,
    TargetGroupTuple, TargetTypeEnum,
};
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType,
};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::retry::RetryConfig;
use aws_types::SdkConfig;
use meshos_rollback_aws::{AlbTrafficShifter, EcsDeployer, Route53DnsSwitcher};
use meshos_rollback_core::clock::{SharedClock, SystemClock};
use meshos_rollback_core::engine::*;
use meshos_rollback_core::model::{Incident, Region as MeshRegion, ServiceId, Severity};
use meshos_rollback_core::provider::{RouteId, TargetId};
use meshos_rollback_examples::Console;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const REGION: &str = "us-east-1";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let endpoint = std::env::var("MESHOS_AWS_ENDPOINT").map_err(|_| {
        "MESHOS_AWS_ENDPOINT is not set: run this example with \
         scripts/run-with-moto.sh cargo run -p meshos-rollback-examples --example aws_single_region"
    })?;
    // A fresh moto account per run: runs never see each other's resources.
    let account = format!(
        "{:012}",
        100_000_000_000
            + SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as u64 % 800_000_000_000
    );
    let requests = Arc::new(AtomicUsize::new(0));
    let config = moto_config(&endpoint, &account, requests.clone());

    let incident = stage_incident(&config, &endpoint, &account).await?;
    println!(
        "staged in moto account {account}: {} runs {}, listener rule 90/10 stable/canary (default action: redirect), {} weighted over 2 regions",
        incident.service, incident.bad_revision, incident.record
    );

    // ---- The rollback: only backend calls from here on are counted.
    let ecs = EcsDeployer::builder(&config)
        .with_cluster(&incident.cluster)
        // moto has no ECS deployment history (ListServiceDeployments): "previous" is
        // the family's previous revision, which the staging above deployed. On a real
        // account leave this off: the history says which revision last completed.
        .with_family_fallback(true)
        .build()?;
    let alb = AlbTrafficShifter::builder(&config).build()?;
    let dns = Route53DnsSwitcher::builder(&config, &incident.zone).build()?;
    let region = MeshRegion::new(REGION)?;
    let clock: SharedClock = Arc::new(SystemClock);

    // The same engine as on the in-memory providers, now over AWS.
    let providers = Providers::new()
        .with_region(
            region.clone(),
            RegionProviders::new(Arc::new(ecs)).with_traffic(Arc::new(alb)),
        )
        .with_dns(Arc::new(dns));
    let engine = Engine::builder(providers)
        .with_clock(clock.clone())
        .with_observer(Arc::new(Console::new(clock.clone())))
        .ephemeral()
        .build()?;
    // No metrics source here: verification of metrics and health needs Prometheus and
    // the service's endpoints; the rollback steps are what this example exercises.
    let spec = RollbackSpec::new(vec![
        RegionSpec::new(region.clone(), incident.service.clone())
            .excluding_from(incident.record.clone())
            .shifting_traffic(incident.listener.clone(), incident.stable.clone())
            .without_verification(),
    ]);
    let plan = engine.plan(&spec).await?;
    println!("\n{plan}");
    let request = RollbackRequest {
        incident: Incident {
            id: "INC-AWS-001".into(),
            severity: Severity::High,
            summary: "High error rate detected".into(),
            started_at: clock.now(),
            regions: vec![region.clone()],
        },
        trigger: Trigger::Manual(
            PreRollbackChecklist::new()
                .incident_documented("moto demo")
                .approved_by("on-call", ApproverRole::OnCallEngineer)
                .customer_impact(CustomerImpact::new(None, "elevated error rates"))
                .stakeholders_notified("not needed for a demo"),
        ),
        prior_events: vec![],
    };

    // ---- The rollback: only backend calls from here on are counted.
    let before = requests.load(Ordering::SeqCst);
    let started = Instant::now();
    let report = engine.execute(plan, request).await?;
    let elapsed = started.elapsed();
    let sent = requests.load(Ordering::SeqCst) - before;
    println!("\n{report}");
    if report.status != RunStatus::Succeeded {
        return Err(format!("rollback {}", report.status).into());
    }
    let now_running = report.regions[0]
        .versions
        .target
        .clone()
        .unwrap_or_default();
    if now_running != incident.good_revision {
        return Err(format!(
            "rolled back to {now_running}, expected {}",
            incident.good_revision
        )
        .into());
    }
    check_listener(&config, &incident).await?;
    println!("single-region AWS rollback of {REGION}: {sent} requests, {elapsed:.0?} wall time");
    Ok(())
}

/// After the rollback no rule or default action forwards to the canary group, and the
/// redirect default action is unchanged (read back from the load balancer).
async fn check_listener(config: &SdkConfig, incident: &Staged) -> Result<(), BoxError> {
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(config);
    let rules = elb
        .describe_rules()
        .listener_arn(incident.listener.as_str())
        .send()
        .await?;
    for rule in rules.rules() {
        for action in rule.actions() {
            let forwards_elsewhere = action
                .forward_config()
                .map(|f| {
                    f.target_groups().iter().any(|g| {
                        g.target_group_arn() != Some(incident.stable.as_str())
                            && g.weight().unwrap_or(1) > 0
                    })
                })
                .unwrap_or(false);
            if forwards_elsewhere {
                return Err(format!(
                    "rule {} still forwards to a group other than stable: {action:?}",
                    rule.rule_arn().unwrap_or("?")
                )
                .into());
            }
            if rule.is_default() == Some(true) && action.r#type() != Some(&ActionTypeEnum::Redirect)
            {
                return Err(format!("the default action was replaced: {action:?}").into());
            }
        }
    }
    println!(
        "listener {}: the canary rule forwards 100% to stable; the redirect default is unchanged",
        incident.listener
    );
    Ok(())
}

/// What `stage_incident` created.
struct Staged {
    cluster: String,
    service: ServiceId,
    good_revision: String,
    bad_revision: String,
    listener: RouteId,
    stable: TargetId,
    zone: String,
    record: String,
}

/// A cluster whose service runs the bad revision (good one registered before it), an
/// ALB listener sending 90/10 to stable/canary, and `api.meshos.io` weighted across two
/// regions, the us-east-1 record aliasing the ALB.
async fn stage_incident(
    config: &SdkConfig,
    endpoint: &str,
    account: &str,
) -> Result<Staged, BoxError> {
    let ecs = aws_sdk_ecs::Client::new(config);
    let cluster = format!("meshos-{REGION}");
    ecs.create_cluster().cluster_name(&cluster).send().await?;
    let mut revisions = Vec::new();
    for tag in ["sha-abc123", "sha-def456"] {
        let out = ecs
            .register_task_definition()
            .family("meshos-api")
            .container_definitions(
                aws_sdk_ecs::types::ContainerDefinition::builder()
                    .name("api")
                    .image(format!("meshos/mesh-kernel:{tag}"))
                    .memory(512)
                    .build(),
            )
            .send()
            .await?;
        let arn = out
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .ok_or("no task definition ARN")?;
        revisions.push(arn.to_owned());
    }
    ecs.create_service()
        .cluster(&cluster)
        .service_name("meshos-api")
        .task_definition(&revisions[1])
        .desired_count(2)
        .send()
        .await?;

    let (vpc, subnets) = default_subnets(endpoint, account)?;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(config);
    let lb = elb
        .create_load_balancer()
        .name("meshos-api")
        .set_subnets(Some(subnets))
        .send()
        .await?;
    let lb = lb
        .load_balancers()
        .first()
        .ok_or("no load balancer")?
        .clone();
    let mut groups = Vec::new();
    for name in ["meshos-api-stable", "meshos-api-canary"] {
        let tg = elb
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .vpc_id(&vpc)
            .target_type(TargetTypeEnum::Ip)
            .send()
            .await?;
        let arn = tg
            .target_groups()
            .first()
            .and_then(|g| g.target_group_arn())
            .ok_or("no target group")?
            .to_owned();
        elb.register_targets()
            .target_group_arn(&arn)
            .targets(
                TargetDescription::builder()
                    .id("10.0.1.10")
                    .port(8080)
                    .build(),
            )
            .send()
            .await?;
        groups.push(arn);
    }
    let forward = Action::builder()
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
    // As on most real ALBs: the listener's default action is a redirect, and the canary
    // split lives in a listener rule for the API's host name.
    let redirect = Action::builder()
        .r#type(ActionTypeEnum::Redirect)
        .redirect_config(
            RedirectActionConfig::builder()
                .protocol("HTTPS")
                .port("443")
                .status_code(RedirectActionStatusCodeEnum::Http301)
                .build(),
        )
        .build();
    let listener = elb
        .create_listener()
        .load_balancer_arn(lb.load_balancer_arn().unwrap_or_default())
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(redirect)
        .send()
        .await?;
    let listener = listener
        .listeners()
        .first()
        .and_then(|l| l.listener_arn())
        .ok_or("no listener")?
        .to_owned();
    elb.create_rule()
        .listener_arn(&listener)
        .priority(10)
        .conditions(
            RuleCondition::builder()
                .field("host-header")
                .host_header_config(
                    HostHeaderConditionConfig::builder()
                        .values("api.meshos.io")
                        .build(),
                )
                .build(),
        )
        .actions(forward)
        .send()
        .await?;

    let r53 = aws_sdk_route53::Client::new(config);
    let zone = r53
        .create_hosted_zone()
        .name("meshos.io")
        .caller_reference(format!("meshos-{account}"))
        .send()
        .await?;
    let zone = zone.hosted_zone().ok_or("no zone")?.id().to_owned();
    let record = "api.meshos.io".to_owned();
    let mut batch = ChangeBatch::builder();
    for (region, dns_name, zone_id) in [
        (
            REGION,
            lb.dns_name().unwrap_or_default(),
            lb.canonical_hosted_zone_id().unwrap_or("Z35SXDOTRQ7X7K"),
        ),
        (
            "eu-west-1",
            "meshos-api-euw1.eu-west-1.elb.amazonaws.com",
            "Z32O12XQLNTSW2",
        ),
    ] {
        batch = batch.changes(
            Change::builder()
                .action(ChangeAction::Upsert)
                .resource_record_set(
                    ResourceRecordSet::builder()
                        .name(&record)
                        .r#type(RrType::A)
                        .set_identifier(region)
                        .weight(100)
                        .alias_target(
                            AliasTarget::builder()
                                .hosted_zone_id(zone_id)
                                .dns_name(dns_name)
                                .evaluate_target_health(true)
                                .build()?,
                        )
                        .build()?,
                )
                .build()?,
        );
    }
    r53.change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(batch.build()?)
        .send()
        .await?;

    Ok(Staged {
        service: ServiceId::ecs(&cluster, "meshos-api"),
        cluster,
        good_revision: revisions[0].clone(),
        bad_revision: revisions[1].clone(),
        listener: RouteId::new(listener),
        stable: TargetId::new(groups[0].clone()),
        zone,
        record,
    })
}

/// An SDK configuration for moto: static test credentials, no retries, and an HTTP
/// client that adds the moto account header and counts requests.
fn moto_config(endpoint: &str, account: &str, requests: Arc<AtomicUsize>) -> SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let inner = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "static",
        )))
        .retry_config(RetryConfig::disabled())
        .http_client(SharedHttpClient::new(Counted {
            inner,
            account: account.to_owned(),
            requests,
        }))
        .build()
}

#[derive(Debug, Clone)]
struct Counted {
    inner: SharedHttpClient,
    account: String,
    requests: Arc<AtomicUsize>,
}

impl HttpClient for Counted {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(CountedConnector {
            inner: self.inner.http_connector(settings, components),
            account: self.account.clone(),
            requests: self.requests.clone(),
        })
    }
}

#[derive(Debug)]
struct CountedConnector {
    inner: SharedHttpConnector,
    account: String,
    requests: Arc<AtomicUsize>,
}

impl HttpConnector for CountedConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        request
            .headers_mut()
            .insert("x-moto-account-id", self.account.clone());
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.call(request)
    }
}

/// The default VPC and two subnets of the moto account, by a raw EC2 Query call
/// (moto checks no signatures; this spares the example the large EC2 SDK).
fn default_subnets(endpoint: &str, account: &str) -> Result<(String, Vec<String>), BoxError> {
    let port: u16 = endpoint
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .parse()?;
    let body = "Action=DescribeSubnets&Version=2016-11-15";
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         x-moto-account-id: {account}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20250101/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let values = |tag: &str| -> Vec<String> {
        out.split(&format!("<{tag}>"))
            .skip(1)
            .filter_map(|p| p.split(&format!("</{tag}>")).next())
            .map(str::to_owned)
            .collect()
    };
    let vpc = values("vpcId")
        .into_iter()
        .next()
        .ok_or("no default VPC in moto")?;
    Ok((vpc, values("subnetId").into_iter().take(2).collect()))
}
