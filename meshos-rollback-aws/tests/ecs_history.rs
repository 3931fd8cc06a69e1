//! EcsDeployer against the ECS states moto cannot produce (several deployments,
//! circuit-breaker rollbacks, paged service-deployment history, throttling), with
//! aws-smithy-mocks. Every response is shaped after the Amazon ECS API Reference page
//! named in the test's comment; no server is needed.

use std::time::Duration;

use aws_sdk_ecs::operation::describe_service_revisions::DescribeServiceRevisionsOutput;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::list_service_deployments::ListServiceDeploymentsOutput;
use aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
use aws_sdk_ecs::operation::stop_service_deployment::StopServiceDeploymentOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::types::{
    ContainerDefinition, Deployment, DeploymentRolloutState, Service, ServiceDeploymentBrief,
    ServiceDeploymentStatus, ServiceRevision, Tag, TaskDefinition,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::DateTime;
use aws_smithy_types::body::SdkBody;
use meshos_rollback_aws::{EcsDeployer, EcsDeployerBuilder};
use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::model::{RollbackTarget, ServiceId};
use meshos_rollback_core::provider::{Deployer, ImageUpdate, RolloutPhase};
use meshos_rollback_core::wait::Backoff;

const CLUSTER: &str = "meshos-us-east-1";
const SERVICE: &str = "meshos-api";

fn td(rev: u32) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task-definition/meshos-api:{rev}")
}

fn sr(rev: u32) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:service-revision/meshos-us-east-1/meshos-api/{rev}")
}

fn api() -> ServiceId {
    ServiceId::ecs(CLUSTER, SERVICE)
}

fn deployer(client: aws_sdk_ecs::Client) -> EcsDeployer {
    EcsDeployerBuilder::from_client(client)
        .with_cluster(CLUSTER)
        .with_wait(Backoff {
            initial: Duration::from_secs(1),
            factor: 2.0,
            max_interval: Duration::from_secs(15),
            max_checks: Some(6),
        })
        .build()
        .unwrap()
}

/// DescribeServices, `Deployment`: id, status PRIMARY/ACTIVE, taskDefinition,
/// counts, rolloutState and rolloutStateReason.
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
        .failed_tasks(if state == DeploymentRolloutState::Failed {
            4
        } else {
            0
        })
        .rollout_state(state)
        .rollout_state_reason(reason)
        .build()
}

/// DescribeServices output: the service's `taskDefinition` is the PRIMARY's.
fn service(deployments: Vec<Deployment>) -> DescribeServicesOutput {
    let primary = deployments
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .and_then(|d| d.task_definition())
        .unwrap()
        .to_owned();
    let running = deployments.iter().map(|d| d.running_count()).sum();
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

/// ListServiceDeployments, `ServiceDeploymentBrief`.
fn brief(rev: u32, status: ServiceDeploymentStatus, finished: i64) -> ServiceDeploymentBrief {
    ServiceDeploymentBrief::builder()
        .service_deployment_arn(format!(
            "arn:aws:ecs:us-east-1:123456789012:service-deployment/meshos-us-east-1/meshos-api/sd{rev}"
        ))
        .target_service_revision_arn(sr(rev))
        .status(status)
        .started_at(DateTime::from_secs(finished - 300))
        .finished_at(DateTime::from_secs(finished))
        .build()
}

/// DescribeServiceRevisions: every service revision `sr(n)` runs task definition n.
fn service_revisions() -> Rule {
    mock!(aws_sdk_ecs::Client::describe_service_revisions).then_compute_output(|req| {
        let mut out = DescribeServiceRevisionsOutput::builder();
        for arn in req.service_revision_arns() {
            let rev: u32 = arn.rsplit('/').next().unwrap().parse().unwrap();
            out = out.service_revisions(
                ServiceRevision::builder()
                    .service_revision_arn(arn)
                    .task_definition(td(rev))
                    .build(),
            );
        }
        out.build()
    })
}

/// DescribeTaskDefinition: any revision of the family, with one tag.
fn task_definitions() -> Rule {
    mock!(aws_sdk_ecs::Client::describe_task_definition).then_compute_output(|req| {
        let id = req.task_definition().unwrap().to_owned();
        DescribeTaskDefinitionOutput::builder()
            .task_definition(
                TaskDefinition::builder()
                    .task_definition_arn(&id)
                    .family("meshos-api")
                    .container_definitions(
                        ContainerDefinition::builder()
                            .name("api")
                            .image(format!(
                                "meshos/mesh-kernel:{}",
                                id.rsplit(':').next().unwrap()
                            ))
                            .build(),
                    )
                    .build(),
            )
            .tags(Tag::builder().key("team").value("mesh").build())
            .build()
    })
}

fn is_successful_history(
    r: &aws_sdk_ecs::operation::list_service_deployments::ListServiceDeploymentsInput,
) -> bool {
    r.status() == [ServiceDeploymentStatus::Successful]
}

fn json_error(status: u16, code: &str, message: &str) -> Response {
    Response::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(format!(r#"{{"__type":"{code}","message":"{message}"}}"#)),
    )
}

// ------------------------------------------------------------ 1. the rollback target

/// ListServiceDeployments (ECS API Reference): results are paged with `nextToken`
/// (maxResults 20). The newest SUCCESSFUL deployment (revision 5, the current one) is
/// on page 1, the one before (revision 3) only on page 2; revision 4 was registered
/// and failed, so it is in the family but in no SUCCESSFUL deployment. Old code read
/// page 1 only, found nothing but the current revision and took the family's 4.
#[tokio::test]
async fn history_follows_next_token_to_the_last_successful_deployment() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        service(vec![deployment(
            "PRIMARY",
            5,
            2,
            DeploymentRolloutState::Completed,
            "ECS deployment ecs-svc/5000000000000000 completed.",
        )])
    });
    let page1 = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .match_requests(|r| is_successful_history(r) && r.next_token().is_none())
        .then_output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(brief(5, ServiceDeploymentStatus::Successful, 5_000))
                .next_token("page-2")
                .build()
        });
    let page2 = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .match_requests(|r| is_successful_history(r) && r.next_token() == Some("page-2"))
        .then_output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(brief(2, ServiceDeploymentStatus::Successful, 2_000))
                .service_deployments(brief(3, ServiceDeploymentStatus::Successful, 3_000))
                .build()
        });
    let family = mock!(aws_sdk_ecs::Client::list_task_definitions).then_output(|| {
        ListTaskDefinitionsOutput::builder()
            .task_definition_arns(td(5))
            .task_definition_arns(td(4))
            .task_definition_arns(td(3))
            .build()
    });
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(|r| r.task_definition() == Some(td(3).as_str()))
        .then_output(|| UpdateServiceOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [
            &describe,
            &page1,
            &page2,
            &service_revisions(),
            &task_definitions(),
            &family,
            &update
        ]
    );
    let ecs = EcsDeployerBuilder::from_client(client)
        .with_cluster(CLUSTER)
        .with_family_fallback(true)
        .build()
        .unwrap();
    let history = ecs.revisions(&api()).await.unwrap();
    assert_eq!(history.current.id.as_str(), td(5));
    let ids: Vec<&str> = history.previous.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [td(3), td(2)],
        "newest finished first, never the failed 4"
    );
    let change = ecs
        .roll_back(&api(), &RollbackTarget::Previous)
        .await
        .unwrap();
    assert_eq!(change.to.as_str(), td(3));
    assert_eq!(update.num_calls(), 1);
    assert_eq!(page2.num_calls(), 2, "page 2 read each time");
    assert_eq!(family.num_calls(), 0, "history answered: no family guess");
}

/// DescribeServices (ECS API Reference, `Deployment.rolloutState`): a deployment the
/// circuit breaker stopped (without rollback) stays listed as ACTIVE with rolloutState
/// FAILED when a newer one starts. Here revision 4 is being deployed over a FAILED 3,
/// with the COMPLETED 2 still running: the target is 2. Old code took
/// `deployments[1]` whatever its state: the FAILED 3.
#[tokio::test]
async fn a_failed_deployment_is_never_the_rollback_target() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        service(vec![
            deployment(
                "PRIMARY",
                4,
                0,
                DeploymentRolloutState::InProgress,
                "ECS deployment ecs-svc/4000000000000000 in progress.",
            ),
            deployment(
                "ACTIVE",
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
                "ECS deployment ecs-svc/2000000000000000 completed.",
            ),
        ])
    });
    let in_flight = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .match_requests(|r| r.status().contains(&ServiceDeploymentStatus::InProgress))
        .then_output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(brief(4, ServiceDeploymentStatus::InProgress, 4_000))
                .build()
        });
    let history = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .match_requests(is_successful_history)
        .then_output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(brief(2, ServiceDeploymentStatus::Successful, 2_000))
                .service_deployments(brief(1, ServiceDeploymentStatus::Successful, 1_000))
                .build()
        });
    let stop = mock!(aws_sdk_ecs::Client::stop_service_deployment)
        .then_output(|| StopServiceDeploymentOutput::builder().build());
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .then_output(|| UpdateServiceOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [
            &describe,
            &in_flight,
            &history,
            &service_revisions(),
            &task_definitions(),
            &stop,
            &update
        ]
    );
    let ecs = deployer(client);
    let revisions = ecs.revisions(&api()).await.unwrap();
    assert_eq!(revisions.current.id.as_str(), td(4));
    assert_eq!(revisions.rollback_target().unwrap().id.as_str(), td(2));
    assert!(!revisions.previous.iter().any(|r| r.id.as_str() == td(3)));
    let change = ecs
        .roll_back(&api(), &RollbackTarget::Previous)
        .await
        .unwrap();
    assert_eq!(change.to.as_str(), td(2));
    // One action toward 2 (StopServiceDeployment or UpdateService), none toward 3.
    assert_eq!(stop.num_calls() + update.num_calls(), 1);
}

// ------------------------------------------------------------ 2. circuit-breaker rollback

/// The circuit breaker rolling back, as DescribeServices shows it (ECS API Reference,
/// DescribeServices / `Deployment`): the new PRIMARY runs the last completed revision 2
/// with rolloutState IN_PROGRESS and reason "ECS deployment circuit breaker: rolling
/// back to deploymentId ...", the failed revision 3 is ACTIVE and FAILED; and
/// ListServiceDeployments shows the service deployment ROLLBACK_IN_PROGRESS whose
/// `targetServiceRevision` is the failed revision (ServiceDeployment). Old code took
/// `deployments[1]`, the FAILED 3, and deployed it again with UpdateService.
fn rolling_back() -> DescribeServicesOutput {
    service(vec![
        deployment(
            "PRIMARY",
            2,
            1,
            DeploymentRolloutState::InProgress,
            "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/2000000000000000.",
        ),
        deployment(
            "ACTIVE",
            3,
            0,
            DeploymentRolloutState::Failed,
            "ECS deployment circuit breaker: tasks failed to start.",
        ),
    ])
}

#[tokio::test]
async fn the_circuit_breakers_rollback_is_adopted_not_repeated() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(rolling_back);
    let in_flight = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .match_requests(|r| {
            r.status()
                .contains(&ServiceDeploymentStatus::RollbackInProgress)
        })
        .then_output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(brief(3, ServiceDeploymentStatus::RollbackInProgress, 3_000))
                .build()
        });
    let history = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .match_requests(is_successful_history)
        .then_output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(brief(2, ServiceDeploymentStatus::Successful, 2_000))
                .service_deployments(brief(1, ServiceDeploymentStatus::Successful, 1_000))
                .build()
        });
    let stop = mock!(aws_sdk_ecs::Client::stop_service_deployment)
        .then_output(|| StopServiceDeploymentOutput::builder().build());
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .then_output(|| UpdateServiceOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [
            &describe,
            &in_flight,
            &history,
            &service_revisions(),
            &task_definitions(),
            &stop,
            &update
        ]
    );
    let ecs = deployer(client);

    let revisions = ecs.revisions(&api()).await.unwrap();
    assert_eq!(
        revisions.current.id.as_str(),
        td(3),
        "the failed one is undone"
    );
    assert_eq!(revisions.rollback_target().unwrap().id.as_str(), td(2));
    assert!(revisions.rollout_in_progress);

    for target in [
        RollbackTarget::Previous,
        RollbackTarget::Revision(td(2).into()),
        RollbackTarget::Revision("meshos-api:2".into()),
    ] {
        let change = ecs.roll_back(&api(), &target).await.unwrap();
        assert_eq!(change.from.as_str(), td(3), "{target}");
        assert_eq!(change.to.as_str(), td(2), "{target}");
    }
    assert_eq!(update.num_calls(), 0, "no second deployment");
    assert_eq!(stop.num_calls(), 0);
}

/// The failed deployment may already have drained from DescribeServices while the
/// rollback runs; ListServiceDeployments still shows ROLLBACK_IN_PROGRESS with the
/// failed `targetServiceRevision` (ECS API Reference, ServiceDeployment). Old code
/// took the history's revision before 2 (revision 1) and rolled back too far.
#[tokio::test]
async fn a_rollback_in_progress_is_seen_in_service_deployments() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        service(vec![deployment(
            "PRIMARY",
            2,
            1,
            DeploymentRolloutState::InProgress,
            "ECS deployment ecs-svc/2000000000000000 in progress.",
        )])
    });
    let in_flight = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .match_requests(|r| r.status().contains(&ServiceDeploymentStatus::InProgress))
        .then_output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(brief(3, ServiceDeploymentStatus::RollbackInProgress, 3_000))
                .build()
        });
    let history = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .match_requests(is_successful_history)
        .then_output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(brief(2, ServiceDeploymentStatus::Successful, 2_000))
                .service_deployments(brief(1, ServiceDeploymentStatus::Successful, 1_000))
                .build()
        });
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .then_output(|| UpdateServiceOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [
            &describe,
            &in_flight,
            &history,
            &service_revisions(),
            &task_definitions(),
            &update
        ]
    );
    let ecs = deployer(client);
    let change = ecs
        .roll_back(&api(), &RollbackTarget::Previous)
        .await
        .unwrap();
    assert_eq!(
        (change.from.as_str(), change.to.as_str()),
        (td(3).as_str(), td(2).as_str())
    );
    assert_eq!(update.num_calls(), 0);
}

// ------------------------------------------------------------ 4. waiting

/// DescribeServices during and after a circuit-breaker rollback: the FAILED revision 3
/// drains beside the PRIMARY rollback, which then completes alone. That is progress;
/// old code failed the wait at the first check.
#[tokio::test(start_paused = true)]
async fn an_old_failed_deployment_draining_is_progress() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(rolling_back)
        .times(2)
        .output(|| {
            service(vec![deployment(
                "PRIMARY",
                2,
                2,
                DeploymentRolloutState::Completed,
                "ECS deployment ecs-svc/2000000000000000 completed.",
            )])
        })
        .build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe]);
    let ecs = deployer(client);
    let during = ecs.rollout_status(&api()).await.unwrap();
    assert_eq!(during.phase, RolloutPhase::InProgress, "{during}");
    assert!(during.message.contains("draining"), "{during}");
    let status = ecs.wait_until_stable(&api()).await.unwrap();
    assert_eq!(status.phase, RolloutPhase::Complete);
    assert_eq!(status.revision.as_str(), td(2));
    assert_eq!(describe.num_calls(), 3);
}

/// A FAILED PRIMARY (circuit breaker without rollback: the deployment stays PRIMARY,
/// DescribeServices `rolloutState` FAILED) fails the wait at once.
#[tokio::test(start_paused = true)]
async fn a_failed_primary_fails_the_wait() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        service(vec![
            deployment(
                "PRIMARY",
                3,
                0,
                DeploymentRolloutState::Failed,
                "ECS deployment circuit breaker: tasks failed to start.",
            ),
            deployment("ACTIVE", 2, 2, DeploymentRolloutState::Completed, ""),
        ])
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe]);
    let err = deployer(client)
        .wait_until_stable(&api())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
    assert!(err.to_string().contains("circuit breaker"), "{err}");
    assert_eq!(describe.num_calls(), 1);
}

// ------------------------------------------------------------ 3. family fallback

/// Without a deployment history (ListServiceDeployments denied: AccessDeniedException,
/// ECS API Reference common errors), "previous" is not guessed from the family
/// (revision 2 might never have run) unless `with_family_fallback(true)` says so.
#[tokio::test]
async fn the_family_fallback_is_off_by_default() {
    let make = || {
        let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
            service(vec![deployment(
                "PRIMARY",
                3,
                2,
                DeploymentRolloutState::Completed,
                "",
            )])
        });
        let denied =
            mock!(aws_sdk_ecs::Client::list_service_deployments).then_http_response(|| {
                json_error(
                    400,
                    "AccessDeniedException",
                    "User is not authorized to perform: ecs:ListServiceDeployments",
                )
            });
        let family = mock!(aws_sdk_ecs::Client::list_task_definitions).then_output(|| {
            ListTaskDefinitionsOutput::builder()
                .task_definition_arns(td(3))
                .task_definition_arns(td(2))
                .task_definition_arns(td(1))
                .build()
        });
        let update = mock!(aws_sdk_ecs::Client::update_service)
            .then_output(|| UpdateServiceOutput::builder().build());
        let client = mock_client!(
            aws_sdk_ecs,
            RuleMode::MatchAny,
            [&describe, &denied, &family, &task_definitions(), &update]
        );
        (client, family, update)
    };

    let (client, family, update) = make();
    let ecs = deployer(client);
    let err = ecs
        .roll_back(&api(), &RollbackTarget::Previous)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let text = err.to_string();
    assert!(text.contains("with_family_fallback(true)"), "{text}");
    assert!(
        text.contains("revision 2 of family meshos-api may never have been deployed"),
        "{text}"
    );
    assert_eq!((family.num_calls(), update.num_calls()), (0, 0));
    let history = ecs.revisions(&api()).await.unwrap();
    assert!(history.rollback_target().is_none(), "{history:?}");

    let (client, family, update) = make();
    let ecs = EcsDeployerBuilder::from_client(client)
        .with_cluster(CLUSTER)
        .with_family_fallback(true)
        .build()
        .unwrap();
    let change = ecs
        .roll_back(&api(), &RollbackTarget::Previous)
        .await
        .unwrap();
    assert_eq!(change.to.as_str(), td(2));
    assert_eq!((family.num_calls(), update.num_calls()), (1, 1));
    // The guess travels with the revision, so the plan shows it as a warning.
    let history = ecs.revisions(&api()).await.unwrap();
    let target = history.rollback_target().expect("the guessed revision");
    assert!(
        target
            .note
            .as_deref()
            .is_some_and(|n| n.contains("which may never have been deployed")),
        "{target:?}"
    );
}

// ------------------------------------------------------------ 5. tags need ecs:TagResource

/// RegisterTaskDefinition (ECS API Reference) with `tags`: tagging on creation needs
/// `ecs:TagResource` besides `ecs:RegisterTaskDefinition`, else AccessDeniedException.
/// The error must say which permission; old code passed on a terse AWS message only.
#[tokio::test]
async fn a_denied_tagged_registration_names_ecs_tag_resource() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        service(vec![deployment(
            "PRIMARY",
            3,
            2,
            DeploymentRolloutState::Completed,
            "",
        )])
    });
    let register = mock!(aws_sdk_ecs::Client::register_task_definition)
        .match_requests(|r| !r.tags().is_empty())
        .then_http_response(|| json_error(400, "AccessDeniedException", "Access denied"));
    let untagged = mock!(aws_sdk_ecs::Client::register_task_definition)
        .then_output(|| RegisterTaskDefinitionOutput::builder().build());
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .then_output(|| UpdateServiceOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [
            &describe,
            &task_definitions(),
            &register,
            &untagged,
            &update
        ]
    );
    let err = deployer(client)
        .set_image(
            &api(),
            &ImageUpdate {
                container: None,
                image: "meshos/mesh-kernel:sha-abc123".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    let text = err.to_string();
    assert!(text.contains("ecs:TagResource"), "{text}");
    assert!(text.contains("1 tag(s) copied"), "{text}");
    assert_eq!(register.num_calls(), 1);
    assert_eq!(untagged.num_calls(), 0, "tags are never dropped silently");
    assert_eq!(update.num_calls(), 0);
}

// ------------------------------------------------------------ 6. retries in one place

/// ECS API Reference common errors: ThrottlingException (HTTP 400) is retryable, and
/// the SDK's standard retry mode would try 3 times. The backend makes one attempt and
/// leaves retrying to core's retry layer. The client here keeps the SDK default.
#[tokio::test(start_paused = true)]
async fn a_throttled_call_is_attempted_once() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .then_http_response(|| json_error(400, "ThrottlingException", "Rate exceeded"));
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe], |c| c
        .retry_config(aws_sdk_ecs::config::retry::RetryConfig::standard()));
    let err = deployer(client).rollout_status(&api()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.is_retryable());
    assert_eq!(describe.num_calls(), 1, "one attempt, no SDK retries");
}
