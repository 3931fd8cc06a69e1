//! Paths moto cannot model, with aws-smithy-mocks: responses are shaped after the AWS
//! API reference (field names, states, error codes and error bodies), and each test
//! says which reference it follows. No server is needed: these run in plain
//! `cargo test`.
//!
//! Moto freezes an ECS service at one deployment, does not implement
//! ListServiceDeployments / DescribeServiceRevisions / StopServiceDeployment, makes RDS
//! instances and Route53 changes ready at once, and never throttles.

use std::time::Duration;

use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::operation::describe_service_revisions::DescribeServiceRevisionsOutput;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::list_service_deployments::ListServiceDeploymentsOutput;
use aws_sdk_ecs::operation::stop_service_deployment::StopServiceDeploymentOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::types::{
    Deployment, DeploymentRolloutState, Service, ServiceDeploymentBrief, ServiceDeploymentStatus,
    ServiceRevision, StopServiceDeploymentStopType,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::DateTime;
use aws_smithy_types::body::SdkBody;
use meshos_rollback_aws::{
    AlbTrafficShifterBuilder, EcrImageRegistryBuilder, EcsDeployer, EcsDeployerBuilder,
    RdsRestorer, RdsRestorerBuilder, Route53DnsSwitcherBuilder,
};
use meshos_rollback_core::model::{RollbackTarget, ServiceId};
use meshos_rollback_core::provider::{
    ChangeId, DbRestorer, DbStatus, Deployer, DnsSwitcher, ImageRef, ImageRegistry, RestorePoint,
    RolloutPhase, RouteId, TrafficShifter,
};
use meshos_rollback_core::wait::Backoff;
use meshos_rollback_core::{Error, ErrorKind};

const CLUSTER: &str = "meshos-us-east-1";
const SERVICE: &str = "meshos-api";

fn td(rev: u32) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task-definition/meshos-api:{rev}")
}

fn api() -> ServiceId {
    ServiceId::ecs(CLUSTER, SERVICE)
}

fn poll() -> Backoff {
    Backoff {
        initial: Duration::from_secs(1),
        factor: 2.0,
        max_interval: Duration::from_secs(15),
        max_checks: Some(6),
    }
}

/// A deployment as DescribeServices reports it (ECS API reference, `Deployment`).
fn deployment(
    status: &str,
    rev: u32,
    running: i32,
    state: DeploymentRolloutState,
    reason: &str,
) -> Deployment {
    Deployment::builder()
        .id(format!("ecs-svc/{rev}000000000000000"))
        .status(status)
        .task_definition(td(rev))
        .desired_count(2)
        .running_count(running)
        .pending_count(2 - running)
        .rollout_state(state)
        .rollout_state_reason(reason)
        .build()
}

/// DescribeServices output: `taskDefinition` is the PRIMARY deployment's, as in ECS.
fn service(running: i32, deployments: Vec<Deployment>) -> DescribeServicesOutput {
    let primary = deployments
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .and_then(|d| d.task_definition())
        .unwrap()
        .to_owned();
    DescribeServicesOutput::builder()
        .services(
            Service::builder()
                .service_name(SERVICE)
                .status("ACTIVE")
                .task_definition(primary)
                .desired_count(2)
                .running_count(running)
                .set_deployments(Some(deployments))
                .build(),
        )
        .build()
}

/// An awsJson error answer (ECS, ECR): the code in `__type`.
fn json_error(status: u16, code: &str, message: &str) -> Response {
    Response::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(format!(r#"{{"__type":"{code}","message":"{message}"}}"#)),
    )
}

/// An XML error answer (ELBv2's awsQuery, Route53's restXml).
fn xml_error(status: u16, code: &str, message: &str) -> Response {
    Response::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>8d9b</RequestId></ErrorResponse>"
        )),
    )
}

fn ecs_deployer(client: aws_sdk_ecs::Client) -> EcsDeployer {
    EcsDeployerBuilder::from_client(client)
        .with_cluster(CLUSTER)
        .with_wait(poll())
        .build()
        .unwrap()
}

// ---------------------------------------------------------------- ECS rollback

/// ECS API reference: during a rolling update DescribeServices lists the new PRIMARY
/// deployment and the old ACTIVE one (`deployments[1]`); ListServiceDeployments with
/// `status=[IN_PROGRESS]` names the service deployment; StopServiceDeployment with
/// `stopType=ROLLBACK` rolls it back to its source revision.
#[tokio::test]
async fn in_progress_rollback_stops_the_deployment_with_rollback() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        service(
            1,
            vec![
                deployment(
                    "PRIMARY",
                    3,
                    0,
                    DeploymentRolloutState::InProgress,
                    "ECS deployment in progress.",
                ),
                deployment(
                    "ACTIVE",
                    2,
                    2,
                    DeploymentRolloutState::Completed,
                    "ECS deployment completed.",
                ),
            ],
        )
    });
    let list = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .match_requests(|r| r.status().contains(&ServiceDeploymentStatus::InProgress))
        .then_output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(
                    ServiceDeploymentBrief::builder()
                        .service_deployment_arn("arn:aws:ecs:us-east-1:123456789012:service-deployment/meshos-us-east-1/meshos-api/abc")
                        .status(ServiceDeploymentStatus::InProgress)
                        .build(),
                )
                .build()
        });
    let stop = mock!(aws_sdk_ecs::Client::stop_service_deployment)
        .match_requests(|r| {
            r.stop_type() == Some(&StopServiceDeploymentStopType::Rollback)
                && r.service_deployment_arn()
                    .is_some_and(|a| a.ends_with("/abc"))
        })
        .then_output(|| StopServiceDeploymentOutput::builder().build());
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .then_output(|| UpdateServiceOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&describe, &list, &stop, &update]
    );
    let ecs = ecs_deployer(client);

    let change = ecs
        .roll_back(&api(), &RollbackTarget::Previous)
        .await
        .unwrap();
    assert_eq!(change.from.as_str(), td(3));
    assert_eq!(change.to.as_str(), td(2), "deployments[1] is the target");
    assert!(change.changed);
    assert_eq!(stop.num_calls(), 1);
    assert_eq!(update.num_calls(), 0, "ECS rolls back itself");
}

/// ECS API reference: callers without `ecs:ListServiceDeployments` get
/// AccessDeniedException; the rollback then uses UpdateService (the playbook's
/// command) with the previous deployment's task definition and forceNewDeployment.
#[tokio::test]
async fn in_progress_rollback_falls_back_to_update_service() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        service(
            1,
            vec![
                deployment("PRIMARY", 3, 0, DeploymentRolloutState::InProgress, ""),
                deployment("ACTIVE", 2, 2, DeploymentRolloutState::Completed, ""),
            ],
        )
    });
    let list = mock!(aws_sdk_ecs::Client::list_service_deployments).then_http_response(|| {
        json_error(
            400,
            "AccessDeniedException",
            "not authorized to perform: ecs:ListServiceDeployments",
        )
    });
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(|r| {
            r.task_definition() == Some(td(2).as_str())
                && r.force_new_deployment() == Some(true)
                && r.cluster() == Some(CLUSTER)
                && r.service() == Some(SERVICE)
        })
        .then_output(|| UpdateServiceOutput::builder().build());
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe, &list, &update]);
    let ecs = ecs_deployer(client);
    let change = ecs
        .roll_back(&api(), &RollbackTarget::Previous)
        .await
        .unwrap();
    assert_eq!(change.to.as_str(), td(2));
    assert_eq!(update.num_calls(), 1);
    // The service-deployment API is remembered as unavailable: no second attempt.
    ecs.roll_back(&api(), &RollbackTarget::Previous)
        .await
        .unwrap();
    assert_eq!(list.num_calls(), 1);
}

/// ECS API reference: ListServiceDeployments (status SUCCESSFUL) lists the service's
/// completed deployments with their target service revision; DescribeServiceRevisions
/// names each revision's task definition. Here revision 2 was registered but never
/// deployed, so the history says 1 where the family would say 2.
#[tokio::test]
async fn history_comes_from_service_deployments() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        service(
            2,
            vec![deployment(
                "PRIMARY",
                3,
                2,
                DeploymentRolloutState::Completed,
                "",
            )],
        )
    });
    let list = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .match_requests(|r| r.status() == [ServiceDeploymentStatus::Successful])
        .then_output(|| {
            let brief = |rev: u32, started: i64| {
                ServiceDeploymentBrief::builder()
                    .service_deployment_arn(format!("sd-{rev}"))
                    .target_service_revision_arn(format!("sr-{rev}"))
                    .status(ServiceDeploymentStatus::Successful)
                    .started_at(DateTime::from_secs(started))
                    .build()
            };
            // Deliberately not newest first: the backend orders by start time.
            ListServiceDeploymentsOutput::builder()
                .service_deployments(brief(1, 1_000))
                .service_deployments(brief(3, 3_000))
                .build()
        });
    let revisions = mock!(aws_sdk_ecs::Client::describe_service_revisions).then_output(|| {
        DescribeServiceRevisionsOutput::builder()
            .service_revisions(
                ServiceRevision::builder()
                    .service_revision_arn("sr-3")
                    .task_definition(td(3))
                    .build(),
            )
            .service_revisions(
                ServiceRevision::builder()
                    .service_revision_arn("sr-1")
                    .task_definition(td(1))
                    .build(),
            )
            .build()
    });
    let family = mock!(aws_sdk_ecs::Client::list_task_definitions).then_output(|| {
        aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput::builder().build()
    });
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(|r| r.task_definition() == Some(td(1).as_str()))
        .then_output(|| UpdateServiceOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&describe, &list, &revisions, &family, &update]
    );
    let ecs = ecs_deployer(client);
    let change = ecs
        .roll_back(&api(), &RollbackTarget::Previous)
        .await
        .unwrap();
    assert_eq!(change.to.as_str(), td(1));
    assert_eq!(update.num_calls(), 1);
    assert_eq!(family.num_calls(), 0, "the family is only a fallback");
}

/// A throttled history lookup is an error to retry, not a reason to guess another
/// rollback target.
#[tokio::test]
async fn throttled_history_is_not_a_fallback() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        service(
            2,
            vec![deployment(
                "PRIMARY",
                3,
                2,
                DeploymentRolloutState::Completed,
                "",
            )],
        )
    });
    let list = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .then_http_response(|| json_error(400, "ThrottlingException", "Rate exceeded"));
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .then_output(|| UpdateServiceOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&describe, &list, &update],
        |c| c.retry_config(RetryConfig::disabled())
    );
    let err = ecs_deployer(client)
        .roll_back(&api(), &RollbackTarget::Previous)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("Rate exceeded"), "{err}");
    assert_eq!(update.num_calls(), 0);
}

// ---------------------------------------------------------------- ECS waiting

/// ECS API reference and the CLI's services-stable waiter: stable is one deployment
/// with runningCount = desiredCount (and rolloutState COMPLETED).
#[tokio::test(start_paused = true)]
async fn wait_follows_the_rollout_with_backoff() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| {
            service(
                2,
                vec![
                    deployment(
                        "PRIMARY",
                        2,
                        0,
                        DeploymentRolloutState::InProgress,
                        "ECS deployment ecs-svc/2 in progress.",
                    ),
                    deployment("ACTIVE", 3, 2, DeploymentRolloutState::Completed, ""),
                ],
            )
        })
        .output(|| {
            service(
                1,
                vec![deployment(
                    "PRIMARY",
                    2,
                    1,
                    DeploymentRolloutState::InProgress,
                    "",
                )],
            )
        })
        .output(|| {
            service(
                2,
                vec![deployment(
                    "PRIMARY",
                    2,
                    2,
                    DeploymentRolloutState::Completed,
                    "ECS deployment ecs-svc/2 completed.",
                )],
            )
        })
        .build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe]);
    let ecs = ecs_deployer(client);
    let start = tokio::time::Instant::now();
    let status = ecs.wait_until_stable(&api()).await.unwrap();
    assert_eq!(status.phase, RolloutPhase::Complete);
    assert_eq!(status.revision.as_str(), td(2));
    assert_eq!((status.desired, status.ready), (2, 2));
    assert_eq!(describe.num_calls(), 3);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1 + 2),
        "quick first, then backing off"
    );
}

/// ECS API reference: with the deployment circuit breaker a failed deployment gets
/// rolloutState FAILED; when that is the PRIMARY deployment (no rollback under way)
/// the wait fails at once. (A FAILED deployment draining beside a rollback is progress:
/// tests/ecs_history.rs.)
#[tokio::test(start_paused = true)]
async fn failed_rollout_fails_the_wait() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        service(
            3,
            vec![
                deployment(
                    "PRIMARY",
                    3,
                    0,
                    DeploymentRolloutState::Failed,
                    "ECS deployment circuit breaker: tasks failed to start.",
                ),
                deployment(
                    "ACTIVE",
                    2,
                    2,
                    DeploymentRolloutState::Completed,
                    "ECS deployment ecs-svc/2 completed.",
                ),
            ],
        )
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe]);
    let err = ecs_deployer(client)
        .wait_until_stable(&api())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err}");
    assert!(err.to_string().contains("circuit breaker"), "{err}");
    assert_eq!(describe.num_calls(), 1);
}

/// A rollout that never settles ends after the configured number of checks.
#[tokio::test(start_paused = true)]
async fn wait_is_bounded() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        service(
            1,
            vec![deployment(
                "PRIMARY",
                2,
                1,
                DeploymentRolloutState::InProgress,
                "",
            )],
        )
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe]);
    let err = ecs_deployer(client)
        .wait_until_stable(&api())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("after 6 checks"), "{err}");
    assert_eq!(describe.num_calls(), 6);
}

/// ECS API reference, common errors: ServerException (HTTP 500) and throttling are
/// retryable; ClusterNotFoundException is not found.
#[tokio::test]
async fn ecs_error_mapping_over_the_protocol() {
    let cases = [
        (
            json_error(500, "ServerException", "internal"),
            ErrorKind::Transient,
        ),
        (
            Response::new(StatusCode::try_from(503).unwrap(), SdkBody::empty()),
            ErrorKind::Transient,
        ),
        (
            json_error(400, "ThrottlingException", "Rate exceeded"),
            ErrorKind::Transient,
        ),
        (
            json_error(400, "ClusterNotFoundException", "Cluster not found."),
            ErrorKind::NotFound,
        ),
        (
            json_error(400, "AccessDeniedException", "no"),
            ErrorKind::PermissionDenied,
        ),
        (
            json_error(400, "InvalidParameterException", "bad"),
            ErrorKind::InvalidInput,
        ),
    ];
    for (response, kind) in cases {
        let response = std::sync::Mutex::new(Some(response));
        let describe = mock!(aws_sdk_ecs::Client::describe_services)
            .then_http_response(move || response.lock().unwrap().take().unwrap());
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe], |c| c
            .retry_config(RetryConfig::disabled()));
        let err = ecs_deployer(client)
            .rollout_status(&api())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert_eq!(err.is_retryable(), kind == ErrorKind::Transient);
        assert!(
            err.to_string()
                .starts_with("EcsDeployer(us-east-1/meshos-us-east-1)")
                || kind == ErrorKind::InvalidInput,
            "{err}"
        );
    }
}

// ---------------------------------------------------------------- ELBv2 and Route53

/// Elastic Load Balancing API reference, common errors (awsQuery XML): Throttling is
/// retryable, AccessDenied is a permission error, ListenerNotFound is not found.
#[tokio::test]
async fn elbv2_error_mapping_over_the_protocol() {
    use aws_sdk_elasticloadbalancingv2 as elb;
    for (code, status, kind) in [
        ("Throttling", 400, ErrorKind::Transient),
        ("AccessDenied", 403, ErrorKind::PermissionDenied),
        ("ListenerNotFound", 400, ErrorKind::NotFound),
    ] {
        let rule = mock!(elb::Client::describe_listeners)
            .then_http_response(move || xml_error(status, code, "message"));
        let client = mock_client!(elb, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(elb::config::retry::RetryConfig::disabled()));
        let alb = AlbTrafficShifterBuilder::from_client(client)
            .build()
            .unwrap();
        let err = alb
            .weights(&RouteId::new("arn:listener"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{code}: {err}");
    }
}

/// Route53 API reference: GetChange answers PENDING until the change reaches every
/// name server, then INSYNC; an unknown id is NoSuchChange.
#[tokio::test(start_paused = true)]
async fn route53_waits_for_insync() {
    use aws_sdk_route53 as r53;
    use r53::types::{ChangeInfo, ChangeStatus};
    let info = |status: ChangeStatus| {
        r53::operation::get_change::GetChangeOutput::builder()
            .change_info(
                ChangeInfo::builder()
                    .id("/change/C2682N5HXP0BZ4")
                    .status(status)
                    .submitted_at(DateTime::from_secs(1_761_818_400))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let get = mock!(r53::Client::get_change)
        .match_requests(|r| r.id() == Some("C2682N5HXP0BZ4"))
        .sequence()
        .output(move || info(ChangeStatus::Pending))
        .times(2)
        .output(move || info(ChangeStatus::Insync))
        .build();
    let missing = mock!(r53::Client::get_change)
        .match_requests(|r| r.id() == Some("CNOSUCH"))
        .then_http_response(|| {
            xml_error(
                404,
                "NoSuchChange",
                "A change with the specified change ID does not exist.",
            )
        });
    let client = mock_client!(r53, RuleMode::MatchAny, [&get, &missing], |c| c
        .retry_config(r53::config::retry::RetryConfig::disabled()));
    let dns = Route53DnsSwitcherBuilder::from_client(client, "/hostedzone/Z0MESHOS")
        .build()
        .unwrap();
    assert_eq!(dns.to_string(), "Route53DnsSwitcher(Z0MESHOS)");
    let start = tokio::time::Instant::now();
    dns.wait_in_sync(&ChangeId::new("C2682N5HXP0BZ4"))
        .await
        .unwrap();
    assert_eq!(get.num_calls(), 3);
    assert_eq!(start.elapsed(), Duration::from_secs(1 + 2));
    let err = dns
        .change_status(&ChangeId::new("CNOSUCH"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

// ---------------------------------------------------------------- RDS

fn rds_instance(id: &str, status: &str) -> aws_sdk_rds::types::DbInstance {
    let mut b = aws_sdk_rds::types::DbInstance::builder()
        .db_instance_identifier(id)
        .db_instance_status(status)
        .backup_retention_period(7)
        .instance_create_time(DateTime::from_secs(1_760_000_000))
        .latest_restorable_time(DateTime::from_secs(1_761_818_100));
    if status == "available" {
        b = b.endpoint(
            aws_sdk_rds::types::Endpoint::builder()
                .address(format!("{id}.c9akciq32.us-east-1.rds.amazonaws.com"))
                .port(5432)
                .build(),
        );
    }
    b.build()
}

fn described(
    i: aws_sdk_rds::types::DbInstance,
) -> aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput {
    aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput::builder()
        .db_instances(i)
        .build()
}

fn rds(client: aws_sdk_rds::Client) -> RdsRestorer {
    RdsRestorerBuilder::from_client(client)
        .with_wait(Backoff {
            initial: Duration::from_secs(10),
            factor: 2.0,
            max_interval: Duration::from_secs(30),
            max_checks: Some(10),
        })
        .build()
        .unwrap()
}

/// RDS User Guide, DB instance status: a restore goes creating → backing-up →
/// available; the endpoint appears once it is available.
#[tokio::test(start_paused = true)]
async fn rds_waits_through_creating_and_backing_up() {
    let id = "meshos-db-us-east-1-restored";
    let describe = mock!(aws_sdk_rds::Client::describe_db_instances)
        .sequence()
        .output(move || described(rds_instance(id, "creating")))
        .times(2)
        .output(move || described(rds_instance(id, "backing-up")))
        .output(move || described(rds_instance(id, "available")))
        .build();
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe]);
    let start = tokio::time::Instant::now();
    let ready = rds(client).wait_available(&id.into()).await.unwrap();
    assert_eq!(ready.status, DbStatus::Available);
    assert_eq!(ready.endpoint.unwrap().port, 5432);
    assert_eq!(describe.num_calls(), 4);
    assert_eq!(start.elapsed(), Duration::from_secs(10 + 20 + 30));
}

/// RDS User Guide: `incompatible-restore` means the restore cannot finish.
#[tokio::test(start_paused = true)]
async fn rds_failed_restore_fails_the_wait() {
    let id = "meshos-db-us-east-1-restored";
    let describe = mock!(aws_sdk_rds::Client::describe_db_instances)
        .then_output(move || described(rds_instance(id, "incompatible-restore")));
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe]);
    let err = rds(client).wait_available(&id.into()).await.unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err}");
}

/// RDS API reference: DescribeDBInstanceAutomatedBackups gives the RestoreWindow
/// (EarliestTime, LatestTime); a time outside it is refused before any restore call,
/// a time inside is sent as RestoreTime with the source's placement.
#[tokio::test]
async fn pitr_is_checked_against_rds_restore_window() {
    use aws_sdk_rds::types::{DbInstanceAutomatedBackup, RestoreWindow};
    let source = "meshos-db-us-east-1";
    let earliest = 1_761_300_000;
    let describe = mock!(aws_sdk_rds::Client::describe_db_instances).then_output(move || {
        let mut i = rds_instance(source, "available");
        i.vpc_security_groups = Some(vec![
            aws_sdk_rds::types::VpcSecurityGroupMembership::builder()
                .vpc_security_group_id("sg-0db")
                .status("active")
                .build(),
        ]);
        described(i)
    });
    let backups = mock!(aws_sdk_rds::Client::describe_db_instance_automated_backups).then_output(move || {
        aws_sdk_rds::operation::describe_db_instance_automated_backups::DescribeDbInstanceAutomatedBackupsOutput::builder()
            .db_instance_automated_backups(
                DbInstanceAutomatedBackup::builder()
                    .db_instance_identifier(source)
                    .status("active")
                    .restore_window(
                        RestoreWindow::builder()
                            .earliest_time(DateTime::from_secs(earliest))
                            .latest_time(DateTime::from_secs(1_761_818_100))
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let restore = mock!(aws_sdk_rds::Client::restore_db_instance_to_point_in_time)
        .match_requests(move |r| {
            r.restore_time() == Some(&DateTime::from_secs(earliest + 3600))
                && r.vpc_security_group_ids() == ["sg-0db"]
                && r.source_db_instance_identifier() == Some(source)
        })
        .then_output(|| {
            aws_sdk_rds::operation::restore_db_instance_to_point_in_time::RestoreDbInstanceToPointInTimeOutput::builder()
                .db_instance(rds_instance("meshos-db-us-east-1-restored", "creating"))
                .build()
        });
    let client = mock_client!(
        aws_sdk_rds,
        RuleMode::MatchAny,
        [&describe, &backups, &restore]
    );
    let db = rds(client);
    let at = |secs: i64| RestorePoint::At(jiff::Timestamp::from_second(secs).unwrap());
    let err = db
        .restore_to_point_in_time(
            &source.into(),
            &"meshos-db-restored".into(),
            &at(earliest - 60),
            &Default::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(
        restore.num_calls(),
        0,
        "nothing is created for a refused time"
    );
    let started = db
        .restore_to_point_in_time(
            &source.into(),
            &"meshos-db-restored".into(),
            &at(earliest + 3600),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(started.status, DbStatus::Creating);
    assert_eq!(restore.num_calls(), 1);
}

// ---------------------------------------------------------------- ECR

/// ECR API reference: PutImage answers ImageTagAlreadyExistsException when the
/// repository's tags are immutable. (ImageAlreadyExistsException, a concurrent retag
/// that won, is success only once the tag reads back at the digest:
/// tests/dns_ecr_retry.rs.)
#[tokio::test]
async fn ecr_put_image_races_and_immutable_tags() {
    use aws_sdk_ecr as ecr;
    use ecr::types::{Image, ImageFailure, ImageFailureCode, ImageIdentifier};
    let asks = |tag: &'static str| {
        move |r: &ecr::operation::batch_get_image::BatchGetImageInput| {
            r.image_ids().first().and_then(|i| i.image_tag()) == Some(tag)
        }
    };
    let source = mock!(ecr::Client::batch_get_image)
        .match_requests(asks("sha-abc123"))
        .then_output(|| {
            ecr::operation::batch_get_image::BatchGetImageOutput::builder()
                .images(
                    Image::builder()
                        .image_id(
                            ImageIdentifier::builder()
                                .image_tag("sha-abc123")
                                .image_digest("sha256:aaaa")
                                .build(),
                        )
                        .image_manifest("{}")
                        .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
                        .build(),
                )
                .build()
        });
    let latest = mock!(ecr::Client::batch_get_image)
        .match_requests(asks("latest"))
        .then_output(|| {
            ecr::operation::batch_get_image::BatchGetImageOutput::builder()
                .failures(
                    ImageFailure::builder()
                        .image_id(ImageIdentifier::builder().image_tag("latest").build())
                        .failure_code(ImageFailureCode::ImageNotFound)
                        .failure_reason("Requested image not found")
                        .build(),
                )
                .build()
        });
    for (code, outcome) in [(
        "ImageTagAlreadyExistsException",
        Err::<bool, _>(ErrorKind::Conflict),
    )] {
        let put = mock!(ecr::Client::put_image)
            .match_requests(|r| {
                r.image_manifest_media_type() == Some("application/vnd.oci.image.manifest.v1+json")
                    && r.image_digest() == Some("sha256:aaaa")
            })
            .then_http_response(move || json_error(400, code, "exists"));
        let client = mock_client!(ecr, RuleMode::MatchAny, [&source, &latest, &put], |c| c
            .retry_config(ecr::config::retry::RetryConfig::disabled()));
        let registry = EcrImageRegistryBuilder::from_client(client)
            .build()
            .unwrap();
        let got = registry
            .retag(
                "meshos/mesh-kernel",
                &ImageRef::Tag("sha-abc123".into()),
                "latest",
            )
            .await
            .map(|r| r.changed)
            .map_err(|e| e.kind());
        assert_eq!(got, outcome, "{code}");
        assert_eq!(put.num_calls(), 1);
    }
}

#[test]
fn displays_name_backend_and_scope() {
    let ecs = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        Vec::<&aws_smithy_mocks::Rule>::new()
    );
    let d = EcsDeployerBuilder::from_client(ecs).build().unwrap();
    assert_eq!(d.to_string(), "EcsDeployer(us-east-1)");
    let ecr = mock_client!(
        aws_sdk_ecr,
        RuleMode::MatchAny,
        Vec::<&aws_smithy_mocks::Rule>::new()
    );
    let r = EcrImageRegistryBuilder::from_client(ecr)
        .with_registry_id("123456789012")
        .build()
        .unwrap();
    assert_eq!(r.to_string(), "EcrImageRegistry(us-east-1/123456789012)");
}
