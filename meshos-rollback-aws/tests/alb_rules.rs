//! `AlbTrafficShifter` against the ALBs people run: the canary split lives in a
//! listener rule (host-header condition, weighted forward) and the default action is a
//! fixed 404 or a redirect to HTTPS. Moto (5.2.5) serves CreateRule, DescribeRules
//! and ModifyRule, and keeps the listener's default rule in DescribeRules as AWS does;
//! DescribeRules pagination and the target-health states `draining` / `initial` are
//! covered with aws-smithy-mocks, shaped after the Elastic Load Balancing API
//! Reference (pages "DescribeRules", "Rule", "DescribeTargetHealth", "TargetHealth").

mod support;

use std::time::Duration;

use aws_sdk_elasticloadbalancingv2 as elb;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use elb::operation::describe_rules::DescribeRulesOutput;
use elb::operation::describe_target_groups::DescribeTargetGroupsOutput;
use elb::operation::describe_target_health::DescribeTargetHealthOutput;
use elb::operation::modify_listener::ModifyListenerOutput;
use elb::operation::modify_rule::ModifyRuleOutput;
use elb::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, ForwardActionConfig,
    HostHeaderConditionConfig, ProtocolEnum, RedirectActionConfig, RedirectActionStatusCodeEnum,
    Rule, RuleCondition, TargetDescription, TargetGroup, TargetGroupTuple, TargetHealth as Health,
    TargetHealthDescription, TargetHealthReasonEnum, TargetHealthStateEnum, TargetTypeEnum,
};
use meshos_rollback_aws::elbv2::RulePolicy;
use meshos_rollback_aws::{AlbTrafficShifter, AlbTrafficShifterBuilder};
use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::conformance;
use meshos_rollback_core::provider::{RouteId, TargetId, TrafficShifter, traffic_share};
use meshos_rollback_core::wait::Backoff;
use support::{Moto, unique};

// ---------------------------------------------------------------- moto fixtures

const HOST: &str = "api.meshos.example";

fn weighted(groups: &[(&str, i32)]) -> Action {
    let mut config = ForwardActionConfig::builder();
    for (arn, weight) in groups {
        config = config.target_groups(
            TargetGroupTuple::builder()
                .target_group_arn(*arn)
                .weight(*weight)
                .build(),
        );
    }
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(config.build())
        .build()
}

fn not_found() -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::FixedResponse)
        .fixed_response_config(
            FixedResponseActionConfig::builder()
                .status_code("404")
                .content_type("text/plain")
                .message_body("no route")
                .build(),
        )
        .build()
}

fn to_https() -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Redirect)
        .redirect_config(
            RedirectActionConfig::builder()
                .protocol("HTTPS")
                .port("443")
                .status_code(RedirectActionStatusCodeEnum::Http301)
                .build(),
        )
        .build()
}

fn host_is(host: &str) -> RuleCondition {
    RuleCondition::builder()
        .field("host-header")
        .host_header_config(HostHeaderConditionConfig::builder().values(host).build())
        .build()
}

/// A load balancer with a stable and a canary target group (two healthy targets
/// each) and no listener yet.
struct Alb {
    elb: elb::Client,
    lb: String,
    stable: String,
    canary: String,
}

async fn alb(moto: &Moto) -> Alb {
    let (vpc, subnets) = moto.default_subnets();
    let elb = elb::Client::new(&moto.config);
    let lb = elb
        .create_load_balancer()
        .name(unique("meshos"))
        .set_subnets(Some(subnets))
        .send()
        .await
        .unwrap();
    let lb = lb.load_balancers()[0]
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
    Alb {
        elb,
        lb,
        stable: groups[0].clone(),
        canary: groups[1].clone(),
    }
}

impl Alb {
    async fn listener(&self, port: i32, default: Action) -> String {
        let out = self
            .elb
            .create_listener()
            .load_balancer_arn(&self.lb)
            .protocol(ProtocolEnum::Http)
            .port(port)
            .default_actions(default)
            .send()
            .await
            .unwrap();
        out.listeners()[0].listener_arn().unwrap().to_owned()
    }

    /// The canary split: `host` goes 90 % to stable, 10 % to canary.
    async fn canary_rule(&self, listener: &str, priority: i32, host: &str) -> String {
        let out = self
            .elb
            .create_rule()
            .listener_arn(listener)
            .priority(priority)
            .conditions(host_is(host))
            .actions(weighted(&[(&self.stable, 90), (&self.canary, 10)]))
            .send()
            .await
            .unwrap();
        out.rules()[0].rule_arn().unwrap().to_owned()
    }

    async fn rules(&self, listener: &str) -> Vec<Rule> {
        self.elb
            .describe_rules()
            .listener_arn(listener)
            .send()
            .await
            .unwrap()
            .rules()
            .to_vec()
    }

    async fn default_actions(&self, listener: &str) -> Vec<Action> {
        self.elb
            .describe_listeners()
            .listener_arns(listener)
            .send()
            .await
            .unwrap()
            .listeners()[0]
            .default_actions()
            .to_vec()
    }
}

/// Whether any forward among `actions` sends traffic to `group`.
fn forwards_to(actions: &[Action], group: &str) -> bool {
    actions.iter().any(|a| {
        a.target_group_arn() == Some(group)
            || a.forward_config().is_some_and(|f| {
                f.target_groups()
                    .iter()
                    .any(|t| t.target_group_arn() == Some(group) && t.weight() != Some(0))
            })
    })
}

// ---------------------------------------------------------------- moto tests

/// Defect: the shift rewrote only the default action, replacing the fixed 404 with a
/// forward, and left the canary rule sending 10 % to the bad target group.
#[tokio::test]
#[ignore = "needs moto server"]
async fn shift_moves_the_canary_rule_and_keeps_a_fixed_response_default() {
    let moto = Moto::new("us-east-1");
    let fx = alb(&moto).await;
    let listener = fx.listener(80, not_found()).await;
    let rule = fx.canary_rule(&listener, 10, HOST).await;
    let default_before = fx.default_actions(&listener).await;
    let alb = AlbTrafficShifter::builder(&moto.config).build().unwrap();
    let stable = TargetId::new(fx.stable.as_str());

    alb.shift_all_to(&RouteId::new(listener.as_str()), &stable)
        .await
        .unwrap();

    for r in fx.rules(&listener).await {
        assert!(
            !forwards_to(r.actions(), &fx.canary),
            "no rule forwards to the canary: {r:?}"
        );
    }
    let rules = fx.rules(&listener).await;
    let moved = rules
        .iter()
        .find(|r| r.rule_arn() == Some(rule.as_str()))
        .unwrap();
    assert!(forwards_to(moved.actions(), &fx.stable), "{moved:?}");
    assert_eq!(moved.conditions().len(), 1, "{moved:?}");
    assert_eq!(
        moved.conditions()[0]
            .host_header_config()
            .map(|h| h.values().to_vec()),
        Some(vec![HOST.to_owned()]),
        "the rule's condition is kept"
    );
    assert_eq!(
        fx.default_actions(&listener).await,
        default_before,
        "the fixed-response default action is unchanged"
    );
    let w = alb.weights(&RouteId::new(listener.as_str())).await.unwrap();
    assert_eq!(traffic_share(&w, &stable), 1.0, "{w:?}");
}

/// Defect: a redirect-to-HTTPS default action was replaced by a forward.
#[tokio::test]
#[ignore = "needs moto server"]
async fn shift_keeps_a_redirect_default_action() {
    let moto = Moto::new("eu-west-1");
    let fx = alb(&moto).await;
    let stable = TargetId::new(fx.stable.as_str());
    let alb = AlbTrafficShifter::builder(&moto.config).build().unwrap();

    // With a canary rule: the rule moves, the redirect stays.
    let listener = fx.listener(80, to_https()).await;
    fx.canary_rule(&listener, 5, HOST).await;
    let before = fx.default_actions(&listener).await;
    alb.shift_all_to(&RouteId::new(listener.as_str()), &stable)
        .await
        .unwrap();
    let after = fx.default_actions(&listener).await;
    assert_eq!(after, before, "the redirect is unchanged");
    assert_eq!(after[0].r#type(), Some(&ActionTypeEnum::Redirect));

    // Without any forwarding rule nothing on the listener can reach another group:
    // the shift reads the rules once and writes nothing.
    let bare = fx.listener(8080, to_https()).await;
    let before = fx.default_actions(&bare).await;
    let sent = moto.requests();
    alb.shift_all_to(&RouteId::new(bare.as_str()), &stable)
        .await
        .unwrap();
    assert_eq!(moto.requests() - sent, 1, "one DescribeRules, no change");
    assert_eq!(fx.default_actions(&bare).await, before);
    let w = alb.weights(&RouteId::new(bare.as_str())).await.unwrap();
    assert!(w.is_empty(), "the listener forwards nowhere: {w:?}");
}

/// Defect: `weights()` read only the default action, so a listener whose canary split
/// is in a rule read as "no traffic anywhere" (and, with a forwarding default, as
/// 100 % stable while the rule still sent 10 % to the canary).
#[tokio::test]
#[ignore = "needs moto server"]
async fn weights_report_the_rules_canary_share() {
    let moto = Moto::new("us-west-2");
    let fx = alb(&moto).await;
    let stable = TargetId::new(fx.stable.as_str());
    let canary = TargetId::new(fx.canary.as_str());
    let alb = AlbTrafficShifter::builder(&moto.config).build().unwrap();

    let listener = fx.listener(80, not_found()).await;
    fx.canary_rule(&listener, 10, HOST).await;
    let w = alb.weights(&RouteId::new(listener.as_str())).await.unwrap();
    assert!(
        (traffic_share(&w, &canary) - 0.1).abs() < 1e-9,
        "the rule's 10 % canary share: {w:?}"
    );

    // A default forwarding all to stable does not hide the rule.
    let listener = fx.listener(8080, weighted(&[(&fx.stable, 1)])).await;
    fx.canary_rule(&listener, 10, HOST).await;
    let w = alb.weights(&RouteId::new(listener.as_str())).await.unwrap();
    assert!(traffic_share(&w, &stable) < 1.0, "{w:?}");
    assert!(traffic_share(&w, &canary) > 0.0, "{w:?}");
}

/// With `RulePolicy::Refuse` a listener with a rule forwarding elsewhere is refused,
/// the error names the rule, and neither the rules nor the default action change.
#[tokio::test]
#[ignore = "needs moto server"]
async fn refuse_policy_names_the_rule_and_changes_nothing() {
    let moto = Moto::new("eu-central-1");
    let fx = alb(&moto).await;
    let listener = fx
        .listener(80, weighted(&[(&fx.stable, 50), (&fx.canary, 50)]))
        .await;
    let rule = fx.canary_rule(&listener, 10, HOST).await;
    let other = fx.canary_rule(&listener, 20, "www.meshos.example").await;
    let rules_before = fx.rules(&listener).await;
    let default_before = fx.default_actions(&listener).await;
    let alb = AlbTrafficShifter::builder(&moto.config)
        .with_rules(RulePolicy::Refuse)
        .build()
        .unwrap();
    let route = RouteId::new(listener.as_str());
    let stable = TargetId::new(fx.stable.as_str());

    let err = alb.shift_all_to(&route, &stable).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Precondition, "{err}");
    let text = err.to_string();
    assert!(text.contains(&rule) && text.contains(&other), "{text}");
    let err = alb
        .set_weights(
            &route,
            &[meshos_rollback_core::provider::TargetWeight::new(
                stable.clone(),
                1,
            )],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Precondition, "{err}");

    assert_eq!(fx.rules(&listener).await, rules_before, "rules unchanged");
    assert_eq!(fx.default_actions(&listener).await, default_before);

    // A listener without such rules is shifted as usual under the same policy.
    let plain = fx
        .listener(8080, weighted(&[(&fx.stable, 50), (&fx.canary, 50)]))
        .await;
    alb.shift_all_to(&RouteId::new(plain.as_str()), &stable)
        .await
        .unwrap();
    assert!(!forwards_to(&fx.default_actions(&plain).await, &fx.canary));
}

/// Defect: a listener-rule ARN as the route was looked up with DescribeListeners
/// (not found). Now it is read with DescribeRules and written with ModifyRule; the
/// listener's default action is not touched.
#[tokio::test]
#[ignore = "needs moto server"]
async fn a_rule_arn_is_a_route() {
    let moto = Moto::new("us-east-1");
    let fx = alb(&moto).await;
    let listener = fx.listener(80, not_found()).await;
    let rule = fx.canary_rule(&listener, 10, HOST).await;
    let alb = AlbTrafficShifter::builder(&moto.config).build().unwrap();
    let route = RouteId::new(rule.as_str());
    let stable = TargetId::new(fx.stable.as_str());
    let canary = TargetId::new(fx.canary.as_str());

    let w = alb.weights(&route).await.unwrap();
    assert!((traffic_share(&w, &canary) - 0.1).abs() < 1e-9, "{w:?}");
    alb.shift_all_to(&route, &stable).await.unwrap();
    let w = alb.weights(&route).await.unwrap();
    assert_eq!(traffic_share(&w, &stable), 1.0, "{w:?}");
    let rules = fx.rules(&listener).await;
    let moved = rules
        .iter()
        .find(|r| r.rule_arn() == Some(rule.as_str()))
        .unwrap();
    assert!(!forwards_to(moved.actions(), &fx.canary), "{moved:?}");
    assert_eq!(moved.conditions().len(), 1, "condition kept: {moved:?}");
    assert_eq!(
        fx.default_actions(&listener).await[0].r#type(),
        Some(&ActionTypeEnum::FixedResponse)
    );
}

/// The core traffic suite with a rule as the route.
#[tokio::test]
#[ignore = "needs moto server"]
async fn conformance_with_a_rule_route() {
    let moto = Moto::new("ap-southeast-1");
    let fx = alb(&moto).await;
    let listener = fx.listener(80, not_found()).await;
    let rule = fx.canary_rule(&listener, 10, HOST).await;
    let alb = AlbTrafficShifter::builder(&moto.config).build().unwrap();
    let suite = conformance::traffic::TrafficFixture {
        route: rule.as_str().into(),
        stable: fx.stable.as_str().into(),
        canary: fx.canary.as_str().into(),
        missing_route: format!("{rule}0").into(),
        missing_target: format!("{}-gone", fx.canary).into(),
    };
    conformance::traffic::run(&alb, &suite).await;
}

/// The core traffic suite on a listener whose default action and a rule both split
/// between stable and canary: both follow `set_weights` and `shift_all_to`.
#[tokio::test]
#[ignore = "needs moto server"]
async fn conformance_with_a_listener_and_a_rule() {
    let moto = Moto::new("ap-northeast-1");
    let fx = alb(&moto).await;
    let listener = fx
        .listener(80, weighted(&[(&fx.stable, 90), (&fx.canary, 10)]))
        .await;
    let rule = fx.canary_rule(&listener, 10, HOST).await;
    let alb = AlbTrafficShifter::builder(&moto.config).build().unwrap();
    let suite = conformance::traffic::TrafficFixture {
        route: listener.as_str().into(),
        stable: fx.stable.as_str().into(),
        canary: fx.canary.as_str().into(),
        missing_route: listener.replace("listener/app", "listener/app-gone").into(),
        missing_target: format!("{}-gone", fx.canary).into(),
    };
    conformance::traffic::run(&alb, &suite).await;
    let rules = fx.rules(&listener).await;
    let moved = rules
        .iter()
        .find(|r| r.rule_arn() == Some(rule.as_str()))
        .unwrap();
    assert!(!forwards_to(moved.actions(), &fx.canary), "{moved:?}");
}

// ---------------------------------------------------------------- aws-smithy-mocks

const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/meshos/50dc6c495c0c9188/f2f7dc8efc522ab2";
const STABLE: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/stable/73e2d6bc24d8a067";
const CANARY: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/canary/943f017f100becff";
const CANARY2: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/canary-eu/0f5b3c2a1d9e8f7a";

fn rule_arn(id: &str) -> String {
    format!("{}/{id}", LISTENER.replace(":listener/", ":listener-rule/"))
}

/// A `Rule` as DescribeRules returns it (API reference, "Rule": RuleArn, Priority —
/// `default` for the default rule —, Conditions, Actions with Order, IsDefault).
fn rule(id: &str, priority: &str, host: Option<&str>, mut action: Action) -> Rule {
    action.order = Some(1);
    Rule::builder()
        .rule_arn(rule_arn(id))
        .priority(priority)
        .set_conditions(host.map(|h| vec![host_is(h)]).or(Some(Vec::new())))
        .actions(action)
        .is_default(priority == "default")
        .build()
}

/// Elastic Load Balancing API Reference, "DescribeRules": a listener's rules come in
/// pages; `NextMarker` is set while more remain and goes back as `Marker`. Here the
/// first page holds the default rule (a fixed 404) and a canary rule; the second a
/// rule splitting to another canary group. Both rules are moved to stable with
/// ModifyRule (conditions are not sent, so they stay), the default is left alone.
#[tokio::test]
async fn describe_rules_is_followed_across_pages() {
    let page1 = mock!(elb::Client::describe_rules)
        .match_requests(|r| r.listener_arn() == Some(LISTENER) && r.marker().is_none())
        .then_output(|| {
            DescribeRulesOutput::builder()
                .rules(rule("0001", "default", None, not_found()))
                .rules(rule(
                    "0002",
                    "10",
                    Some(HOST),
                    weighted(&[(STABLE, 90), (CANARY, 10)]),
                ))
                .next_marker("bWFya2VyLTI=")
                .build()
        });
    let page2 = mock!(elb::Client::describe_rules)
        .match_requests(|r| r.marker() == Some("bWFya2VyLTI="))
        .then_output(|| {
            DescribeRulesOutput::builder()
                .rules(rule(
                    "0003",
                    "20",
                    Some("eu.meshos.example"),
                    weighted(&[(STABLE, 50), (CANARY2, 50)]),
                ))
                .build()
        });
    let groups = mock!(elb::Client::describe_target_groups)
        .match_requests(|r| r.target_group_arns() == [STABLE])
        .then_output(|| {
            DescribeTargetGroupsOutput::builder()
                .target_groups(TargetGroup::builder().target_group_arn(STABLE).build())
                .build()
        });
    let modify_rule = mock!(elb::Client::modify_rule)
        .match_requests(|r| {
            r.conditions().is_empty()
                && r.actions().len() == 1
                && forwards_to(r.actions(), STABLE)
                && !forwards_to(r.actions(), CANARY)
                && !forwards_to(r.actions(), CANARY2)
                && r.actions()[0].order() == Some(1)
        })
        .then_output(|| ModifyRuleOutput::builder().build());
    let modify_listener =
        mock!(elb::Client::modify_listener).then_output(|| ModifyListenerOutput::builder().build());
    let client = mock_client!(
        elb,
        RuleMode::MatchAny,
        [&page1, &page2, &groups, &modify_rule, &modify_listener],
        |c| c.retry_config(elb::config::retry::RetryConfig::disabled())
    );
    let alb = AlbTrafficShifterBuilder::from_client(client)
        .build()
        .unwrap();

    alb.shift_all_to(&RouteId::new(LISTENER), &TargetId::new(STABLE))
        .await
        .unwrap();
    assert_eq!(page1.num_calls(), 1);
    assert_eq!(page2.num_calls(), 1, "the second page is read");
    assert_eq!(modify_rule.num_calls(), 2, "both rules are moved");
    assert_eq!(modify_listener.num_calls(), 0, "the fixed 404 stays");
}

/// The same two pages under `RulePolicy::Refuse`: both rule ARNs, one from each page,
/// are named, and nothing is written.
#[tokio::test]
async fn refusal_names_rules_from_every_page() {
    let page1 = mock!(elb::Client::describe_rules)
        .match_requests(|r| r.marker().is_none())
        .then_output(|| {
            DescribeRulesOutput::builder()
                .rules(rule("0001", "default", None, not_found()))
                .rules(rule(
                    "0002",
                    "10",
                    Some(HOST),
                    weighted(&[(STABLE, 90), (CANARY, 10)]),
                ))
                .next_marker("bWFya2VyLTI=")
                .build()
        });
    let page2 = mock!(elb::Client::describe_rules)
        .match_requests(|r| r.marker() == Some("bWFya2VyLTI="))
        .then_output(|| {
            DescribeRulesOutput::builder()
                .rules(rule("0003", "20", None, weighted(&[(CANARY2, 1)])))
                .build()
        });
    let modify_rule =
        mock!(elb::Client::modify_rule).then_output(|| ModifyRuleOutput::builder().build());
    let client = mock_client!(elb, RuleMode::MatchAny, [&page1, &page2, &modify_rule]);
    let alb = AlbTrafficShifterBuilder::from_client(client)
        .with_rules(RulePolicy::Refuse)
        .build()
        .unwrap();
    let err = alb
        .shift_all_to(&RouteId::new(LISTENER), &TargetId::new(STABLE))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Precondition, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&rule_arn("0002")) && text.contains(&rule_arn("0003")),
        "{text}"
    );
    assert!(
        !text.contains(&rule_arn("0001")),
        "the default rule is not named: {text}"
    );
    assert_eq!(modify_rule.num_calls(), 0);
}

/// A target as DescribeTargetHealth returns it (API reference, "TargetHealth": State,
/// Reason, Description).
fn target(
    ip: &str,
    state: TargetHealthStateEnum,
    reason: Option<(TargetHealthReasonEnum, &str)>,
) -> TargetHealthDescription {
    let mut health = Health::builder().state(state);
    if let Some((code, description)) = reason {
        health = health.reason(code).description(description);
    }
    TargetHealthDescription::builder()
        .target(TargetDescription::builder().id(ip).port(8080).build())
        .health_check_port("8080")
        .target_health(health.build())
        .build()
}

fn health(targets: Vec<TargetHealthDescription>) -> DescribeTargetHealthOutput {
    DescribeTargetHealthOutput::builder()
        .set_target_health_descriptions(Some(targets))
        .build()
}

/// DescribeTargetHealth ("TargetHealth" in the API reference): `initial` while
/// registration or the first health checks run (`Elb.RegistrationInProgress`,
/// `Elb.InitialHealthChecking`), `draining` while a target is deregistered
/// (`Target.DeregistrationInProgress`). A new target is waited for until it is
/// healthy; a draining one is out of service and does not fail the check.
#[tokio::test(start_paused = true)]
async fn health_waits_for_initial_and_ignores_draining() {
    let describe = mock!(elb::Client::describe_target_health)
        .match_requests(|r| r.target_group_arn() == Some(STABLE))
        .sequence()
        .output(|| {
            health(vec![
                target("10.0.1.10", TargetHealthStateEnum::Healthy, None),
                target(
                    "10.0.1.11",
                    TargetHealthStateEnum::Draining,
                    Some((
                        TargetHealthReasonEnum::DeregistrationInProgress,
                        "Target deregistration is in progress",
                    )),
                ),
                target(
                    "10.0.1.12",
                    TargetHealthStateEnum::Initial,
                    Some((
                        TargetHealthReasonEnum::RegistrationInProgress,
                        "Target registration is in progress",
                    )),
                ),
            ])
        })
        .output(|| {
            health(vec![
                target("10.0.1.10", TargetHealthStateEnum::Healthy, None),
                target(
                    "10.0.1.11",
                    TargetHealthStateEnum::Draining,
                    Some((
                        TargetHealthReasonEnum::DeregistrationInProgress,
                        "Target deregistration is in progress",
                    )),
                ),
                target("10.0.1.12", TargetHealthStateEnum::Healthy, None),
            ])
        })
        .build();
    let client = mock_client!(elb, RuleMode::MatchAny, [&describe]);
    let alb = AlbTrafficShifterBuilder::from_client(client)
        .build()
        .unwrap();
    let h = alb.target_health(&TargetId::new(STABLE)).await.unwrap();
    assert_eq!(
        describe.num_calls(),
        2,
        "polled until the new target is healthy"
    );
    assert_eq!(h.healthy, vec!["10.0.1.10:8080", "10.0.1.12:8080"]);
    assert!(h.unhealthy.is_empty(), "{h}");
    assert!(
        h.all_healthy(),
        "draining targets do not fail the check: {h}"
    );
}

/// A target still `initial` after the caller's check limit is reported as not
/// healthy, with its state and reason; an `unhealthy` one likewise; `unused` targets
/// (not registered, stopped) are out of service and not counted.
#[tokio::test(start_paused = true)]
async fn health_wait_is_bounded_and_reports_the_rest() {
    let describe = mock!(elb::Client::describe_target_health).then_output(|| {
        health(vec![
            target("10.0.1.10", TargetHealthStateEnum::Healthy, None),
            target(
                "10.0.1.12",
                TargetHealthStateEnum::Initial,
                Some((
                    TargetHealthReasonEnum::InitialHealthChecking,
                    "Initial health checks in progress",
                )),
            ),
            target(
                "10.0.1.13",
                TargetHealthStateEnum::Unhealthy,
                Some((
                    TargetHealthReasonEnum::ResponseCodeMismatch,
                    "Health checks failed with these codes: [502]",
                )),
            ),
            target(
                "10.0.1.14",
                TargetHealthStateEnum::Unused,
                Some((
                    TargetHealthReasonEnum::InvalidState,
                    "Target is in the stopped state",
                )),
            ),
        ])
    });
    let client = mock_client!(elb, RuleMode::MatchAny, [&describe]);
    let alb = AlbTrafficShifterBuilder::from_client(client)
        .with_health_wait(Backoff {
            initial: Duration::from_secs(5),
            factor: 1.0,
            max_interval: Duration::from_secs(5),
            max_checks: Some(3),
        })
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let h = alb.target_health(&TargetId::new(STABLE)).await.unwrap();
    assert_eq!(describe.num_calls(), 3, "the caller's limit");
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(h.healthy, vec!["10.0.1.10:8080"]);
    let states: Vec<(&str, &str)> = h
        .unhealthy
        .iter()
        .map(|u| (u.id.as_str(), u.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("10.0.1.12:8080", "initial"),
            ("10.0.1.13:8080", "unhealthy")
        ]
    );
    let reason = h.unhealthy[1].reason.as_deref().unwrap();
    assert!(
        reason.contains("Target.ResponseCodeMismatch") && reason.contains("[502]"),
        "{reason}"
    );
    assert!(!h.all_healthy());
}
