//! [`AlbTrafficShifter`]: move an Application Load Balancer's traffic back to the
//! stable target group (the playbook's `aws elbv2 modify-listener`), on a listener and
//! its forwarding rules or on one listener rule.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, Rule, TargetGroupTuple, TargetHealthDescription,
    TargetHealthStateEnum,
};
use aws_types::SdkConfig;
use meshos_rollback_core::provider::{
    RouteId, TargetHealth, TargetId, TargetWeight, TrafficCapabilities, TrafficShifter,
    UnhealthyBackend,
};
use meshos_rollback_core::wait::Backoff;
use meshos_rollback_core::{Error, Result};

use crate::error::{from_sdk, missing};
use crate::sdk::prepare_client;

/// The largest weight of a target group in a forward action.
pub const MAX_WEIGHT: u32 = 999;

/// What a listener shift does with the listener's rules that forward to target groups
/// other than the stable one (a canary split behind a host or path condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RulePolicy {
    /// Rewrite their forward actions too, all to the stable group; their conditions
    /// and non-forward actions are kept.
    #[default]
    Shift,
    /// Refuse the shift with [`Error::Precondition`] naming every such rule; nothing
    /// is changed. Name a rule ARN as the route to shift it alone.
    Refuse,
}

/// Builds an [`AlbTrafficShifter`].
#[derive(Debug)]
pub struct AlbTrafficShifterBuilder {
    client: aws_sdk_elasticloadbalancingv2::Client,
    rules: RulePolicy,
    health_wait: Backoff,
}

impl AlbTrafficShifterBuilder {
    /// A shifter using a client built from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(aws_sdk_elasticloadbalancingv2::Client::new(config))
    }

    /// A shifter using an existing ELBv2 client.
    pub fn from_client(client: aws_sdk_elasticloadbalancingv2::Client) -> Self {
        AlbTrafficShifterBuilder {
            client,
            rules: RulePolicy::default(),
            health_wait: default_health_wait(),
        }
    }

    /// What a listener shift does with rules forwarding elsewhere (default
    /// [`RulePolicy::Shift`]).
    pub fn with_rules(mut self, policy: RulePolicy) -> Self {
        self.rules = policy;
        self
    }

    /// How long `target_health` polls while targets are `initial` (registering, first
    /// health checks). Default: 1 s doubling to 15 s, at most 6 checks (about 30 s);
    /// an ALB's default health check (30 s interval, 5 healthy checks) needs about
    /// 150 s for a new target. `max_checks: None` waits until no target is `initial`.
    pub fn with_health_wait(mut self, wait: Backoff) -> Self {
        self.health_wait = wait;
        self
    }

    /// Checks the configuration (region, HTTP client).
    pub fn build(self) -> Result<AlbTrafficShifter> {
        let (client, region) = prepare_client!(
            "AlbTrafficShifter",
            self.client,
            aws_sdk_elasticloadbalancingv2
        );
        Ok(AlbTrafficShifter {
            client,
            region,
            rules: self.rules,
            health_wait: self.health_wait,
        })
    }
}

fn default_health_wait() -> Backoff {
    Backoff::default().with_max_checks(6)
}

/// A [`TrafficShifter`] over ALB listeners and listener rules in one region.
///
/// Targets are target-group ARNs. A route is a listener ARN (`…:listener/app/…`) or a
/// listener-rule ARN (`…:listener-rule/app/…`); anything else is taken as a listener.
///
/// Only `forward` actions are ever rewritten, plain (`TargetGroupArn`) or weighted
/// (`ForwardConfig`), keeping their order and stickiness. Every other action — a
/// `redirect`, a `fixed-response`, the `authenticate-*` and `jwt-validation` actions
/// before a forward — is written back as read (an OIDC action read without its client
/// secret is sent with `UseExistingClientSecret`, as ModifyListener requires). A rule
/// is written with ModifyRule and its `Actions` only, so its conditions stay.
///
/// **Listener routes** cover the default action and every rule of the listener
/// (DescribeRules, all pages; the listener's default rule is its default action):
///
/// - `shift_all_to(listener, stable)` moves the default action, if it forwards, and
///   every rule that forwards any traffic to a group other than `stable`, all to
///   `stable` (with [`RulePolicy::Refuse`] such rules refuse the shift instead). This
///   includes rules that route other services through the same listener: name rule
///   ARNs as routes, or use `Refuse`, on a shared listener. A listener with nothing
///   forwarding elsewhere — a redirect or fixed-response default and no such rule — is
///   already all on `stable` for traffic: the call reads once and writes nothing.
/// - `weights(listener)` adds up, per target group, the weights of the default
///   forward (if any) and of every forwarding rule. The sum is no traffic fraction
///   (each action splits its own requests), but it gives a target a share of 1.0
///   exactly when every forward on the listener sends all its traffic there, and a
///   share above 0 when any forward sends it some: after a shift, a rule still
///   forwarding elsewhere reads below 1.0 for `stable`. A listener that forwards
///   nowhere reads as no weights at all.
/// - `set_weights(listener, w)` writes `w` into the default forward and into every
///   rule forwarding to one of `w`'s targets; it refuses a listener where nothing
///   would be written (a redirect default, no such rule) instead of replacing a
///   non-forward action.
///
/// **Rule routes** read and write that one rule (DescribeRules `RuleArns`,
/// ModifyRule); a rule that does not forward is left alone by `shift_all_to`. The
/// listener's default rule is refused as a route: name the listener.
///
/// Shifting to a target that already takes all traffic sends no change. Target groups
/// are checked to exist before anything is written, so a typo never reaches the
/// listener.
///
/// `target_health` follows DescribeTargetHealth's states: `healthy` targets are
/// healthy; `draining`, `unhealthy.draining` and `unused` targets are out of service
/// (deregistering, stopped, not registered) and neither counted nor listed; `initial`
/// targets are polled (see [`AlbTrafficShifterBuilder::with_health_wait`]) and, still
/// `initial` at the limit, listed as not healthy with `unhealthy`, `unavailable`
/// (health checks disabled) and any other state, each with its reason code and
/// description. So `all_healthy()` holds when every in-service target is healthy.
#[derive(Debug)]
pub struct AlbTrafficShifter {
    client: aws_sdk_elasticloadbalancingv2::Client,
    region: String,
    rules: RulePolicy,
    health_wait: Backoff,
}

/// A listener as a shift sees it: its default actions and its other rules.
struct ListenerView {
    default_actions: Vec<Action>,
    rules: Vec<Rule>,
}

/// A listener ARN, or a listener-rule ARN.
fn is_rule(route: &RouteId) -> bool {
    route.as_str().contains(":listener-rule/")
}

impl AlbTrafficShifter {
    /// Starts building a shifter from an SDK configuration.
    pub fn builder(config: &SdkConfig) -> AlbTrafficShifterBuilder {
        AlbTrafficShifterBuilder::new(config)
    }

    async fn default_actions(&self, route: &RouteId) -> Result<Vec<Action>> {
        let out = self
            .client
            .describe_listeners()
            .listener_arns(route.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("listener {route}"), e))?;
        let listener = out
            .listeners()
            .first()
            .ok_or_else(|| missing(self, format!("listener {route}")))?;
        Ok(listener.default_actions().to_vec())
    }

    /// Every rule of a listener, the default rule included, across all pages.
    async fn listener_rules(&self, route: &RouteId) -> Result<Vec<Rule>> {
        let mut rules = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_rules()
                .listener_arn(route.as_str())
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| from_sdk(self, format!("rules of listener {route}"), e))?;
            rules.extend_from_slice(out.rules());
            match out.next_marker().filter(|m| !m.is_empty()) {
                Some(next) if marker.as_deref() == Some(next) => {
                    return Err(Error::failed(
                        self,
                        format!("rules of listener {route}: DescribeRules repeats marker {next}"),
                    ));
                }
                Some(next) => marker = Some(next.to_owned()),
                None => return Ok(rules),
            }
        }
    }

    /// The listener's default actions and other rules. `describe_listener` reads the
    /// default actions with DescribeListeners; otherwise they come from the default
    /// rule of the DescribeRules listing (one call for both on a listener with one
    /// page of rules), with DescribeListeners only when no default rule is listed.
    async fn listener(&self, route: &RouteId, describe_listener: bool) -> Result<ListenerView> {
        let listed = if describe_listener {
            Some(self.default_actions(route).await?)
        } else {
            None
        };
        let (defaults, rules): (Vec<Rule>, Vec<Rule>) = self
            .listener_rules(route)
            .await?
            .into_iter()
            .partition(|r| r.is_default() == Some(true));
        let default_actions = match (listed, defaults.into_iter().next()) {
            (Some(actions), _) => actions,
            (None, Some(rule)) => rule.actions().to_vec(),
            (None, None) => self.default_actions(route).await?,
        };
        Ok(ListenerView {
            default_actions,
            rules,
        })
    }

    async fn rule(&self, route: &RouteId) -> Result<Rule> {
        let out = self
            .client
            .describe_rules()
            .rule_arns(route.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("rule {route}"), e))?;
        out.rules()
            .iter()
            .find(|r| r.rule_arn() == Some(route.as_str()))
            .cloned()
            .ok_or_else(|| missing(self, format!("rule {route}")))
    }

    /// A rule route to write: the default rule is the listener's, not a rule's.
    async fn writable_rule(&self, route: &RouteId) -> Result<Rule> {
        let rule = self.rule(route).await?;
        if rule.is_default() == Some(true) {
            return Err(Error::invalid(
                "route",
                format!(
                    "{self}: {route} is a listener's default rule; name the listener ARN \
                     to change its default action"
                ),
            ));
        }
        Ok(rule)
    }

    async fn check_targets(&self, targets: &[&TargetId]) -> Result<()> {
        let arns: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        let out = self
            .client
            .describe_target_groups()
            .set_target_group_arns(Some(arns.clone()))
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("target groups {}", arns.join(", ")), e))?;
        for arn in &arns {
            if !out
                .target_groups()
                .iter()
                .any(|g| g.target_group_arn() == Some(arn.as_str()))
            {
                return Err(missing(self, format!("target group {arn}")));
            }
        }
        Ok(())
    }

    async fn write_listener(&self, route: &RouteId, actions: Vec<Action>) -> Result<()> {
        self.client
            .modify_listener()
            .listener_arn(route.as_str())
            .set_default_actions(Some(actions))
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("listener {route}"), e))?;
        Ok(())
    }

    /// Sends only the actions: ModifyRule keeps the conditions it is not given.
    async fn write_rule(&self, arn: &str, actions: Vec<Action>) -> Result<()> {
        self.client
            .modify_rule()
            .rule_arn(arn)
            .set_actions(Some(actions))
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("rule {arn}"), e))?;
        Ok(())
    }

    /// The refusal under [`RulePolicy::Refuse`], naming every rule.
    fn refuse(&self, route: &RouteId, why: &str, rules: &[(&str, Vec<Action>)]) -> Error {
        let arns: Vec<&str> = rules.iter().map(|(arn, _)| *arn).collect();
        Error::precondition(
            format!("{self}: rules of listener {route}"),
            format!(
                "{} rule(s) {why}: {}; nothing was changed (RulePolicy::Refuse). Shift each \
                 rule by naming its ARN as the route, or build the shifter with \
                 RulePolicy::Shift",
                arns.len(),
                arns.join(", ")
            ),
        )
    }

    async fn describe_health(&self, target: &TargetId) -> Result<Vec<TargetHealthDescription>> {
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(target.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("target group {target}"), e))?;
        Ok(out.target_health_descriptions().to_vec())
    }
}

impl fmt::Display for AlbTrafficShifter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AlbTrafficShifter({})", self.region)
    }
}

#[async_trait]
impl TrafficShifter for AlbTrafficShifter {
    fn capabilities(&self) -> TrafficCapabilities {
        TrafficCapabilities {
            weighted: true,
            target_health: true,
        }
    }

    async fn weights(&self, route: &RouteId) -> Result<Vec<TargetWeight>> {
        if is_rule(route) {
            return Ok(forward_weights(self.rule(route).await?.actions()));
        }
        let view = self.listener(route, true).await?;
        let all = std::iter::once(view.default_actions.as_slice())
            .chain(view.rules.iter().map(|r| r.actions()))
            .flat_map(forward_weights);
        Ok(merge(all))
    }

    async fn shift_all_to(&self, route: &RouteId, target: &TargetId) -> Result<()> {
        let weights = [TargetWeight::new(target.clone(), 1)];
        if is_rule(route) {
            let rule = self.writable_rule(route).await?;
            if !sends_elsewhere(rule.actions(), target) {
                return Ok(());
            }
            let Some(actions) = rewrite_forward(rule.actions(), &weights) else {
                return Ok(());
            };
            self.check_targets(&[target]).await?;
            return self.write_rule(route.as_str(), actions).await;
        }
        let view = self.listener(route, false).await?;
        let rules: Vec<(&str, Vec<Action>)> = view
            .rules
            .iter()
            .filter(|r| sends_elsewhere(r.actions(), target))
            .filter_map(|r| Some((r.rule_arn()?, rewrite_forward(r.actions(), &weights)?)))
            .collect();
        if self.rules == RulePolicy::Refuse && !rules.is_empty() {
            return Err(self.refuse(
                route,
                &format!("forward to target groups other than {target}"),
                &rules,
            ));
        }
        let default = sends_elsewhere(&view.default_actions, target)
            .then(|| rewrite_forward(&view.default_actions, &weights))
            .flatten();
        if default.is_none() && rules.is_empty() {
            return Ok(());
        }
        self.check_targets(&[target]).await?;
        if let Some(actions) = default {
            self.write_listener(route, actions).await?;
        }
        for (arn, actions) in rules {
            self.write_rule(arn, actions).await?;
        }
        Ok(())
    }

    async fn set_weights(&self, route: &RouteId, weights: &[TargetWeight]) -> Result<()> {
        validate(weights)?;
        let targets: Vec<&TargetId> = weights.iter().map(|w| &w.target).collect();
        if is_rule(route) {
            let rule = self.writable_rule(route).await?;
            let actions = rewrite_forward(rule.actions(), weights).ok_or_else(|| {
                Error::precondition(
                    format!("{self}: rule {route}"),
                    format!(
                        "the rule does not forward ({}); its actions are kept",
                        action_types(rule.actions())
                    ),
                )
            })?;
            self.check_targets(&targets).await?;
            return self.write_rule(route.as_str(), actions).await;
        }
        let view = self.listener(route, false).await?;
        let rules: Vec<(&str, Vec<Action>)> = view
            .rules
            .iter()
            .filter(|r| {
                forward_weights(r.actions())
                    .iter()
                    .any(|w| targets.contains(&&w.target))
            })
            .filter_map(|r| Some((r.rule_arn()?, rewrite_forward(r.actions(), weights)?)))
            .collect();
        if self.rules == RulePolicy::Refuse && !rules.is_empty() {
            return Err(self.refuse(route, "forward to the target groups weighted", &rules));
        }
        let default = rewrite_forward(&view.default_actions, weights);
        if default.is_none() && rules.is_empty() {
            return Err(Error::precondition(
                format!("{self}: listener {route}"),
                format!(
                    "nothing on the listener forwards to these target groups: its default \
                     action ({}) is kept and no rule forwards to them; name a rule ARN",
                    action_types(&view.default_actions)
                ),
            ));
        }
        self.check_targets(&targets).await?;
        if let Some(actions) = default {
            self.write_listener(route, actions).await?;
        }
        for (arn, actions) in rules {
            self.write_rule(arn, actions).await?;
        }
        Ok(())
    }

    async fn target_health(&self, target: &TargetId) -> Result<TargetHealth> {
        let mut checks: u32 = 0;
        let described = loop {
            let described = self.describe_health(target).await?;
            checks += 1;
            let initial = described
                .iter()
                .any(|d| state_of(d) == Some(&TargetHealthStateEnum::Initial));
            if !initial || self.health_wait.max_checks.is_some_and(|max| checks >= max) {
                break described;
            }
            tokio::time::sleep(self.health_wait.interval(checks - 1)).await;
        };
        Ok(health_of(target, &described))
    }
}

fn state_of(d: &TargetHealthDescription) -> Option<&TargetHealthStateEnum> {
    d.target_health().and_then(|h| h.state())
}

/// Sorts DescribeTargetHealth's answer: out-of-service targets (draining, unused)
/// are left out, every in-service one that is not healthy is listed with its reason.
fn health_of(target: &TargetId, described: &[TargetHealthDescription]) -> TargetHealth {
    let mut health = TargetHealth {
        target: target.clone(),
        healthy: Vec::new(),
        unhealthy: Vec::new(),
    };
    for d in described {
        let id = match d.target() {
            Some(t) => match t.port() {
                Some(p) => format!("{}:{p}", t.id().unwrap_or_default()),
                None => t.id().unwrap_or_default().to_owned(),
            },
            None => continue,
        };
        let th = d.target_health();
        match state_of(d) {
            Some(TargetHealthStateEnum::Healthy) => health.healthy.push(id),
            Some(
                TargetHealthStateEnum::Draining
                | TargetHealthStateEnum::UnhealthyDraining
                | TargetHealthStateEnum::Unused,
            ) => {}
            state => {
                let code = th.and_then(|h| h.reason()).map(|r| r.as_str());
                let text = th.and_then(|h| h.description());
                health.unhealthy.push(UnhealthyBackend {
                    id,
                    state: state.map_or("unknown", |s| s.as_str()).to_owned(),
                    reason: match (code, text) {
                        (Some(c), Some(t)) => Some(format!("{c}: {t}")),
                        (c, t) => c.or(t).map(str::to_owned),
                    },
                })
            }
        }
    }
    health
}

/// The weights of the forward action among `actions`: a weighted `ForwardConfig`, or
/// a plain `TargetGroupArn` (weight 1). No forward action: no weights.
fn forward_weights(actions: &[Action]) -> Vec<TargetWeight> {
    let Some(forward) = actions
        .iter()
        .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
    else {
        return Vec::new();
    };
    if let Some(groups) = forward.forward_config().map(|f| f.target_groups())
        && !groups.is_empty()
    {
        return groups
            .iter()
            .filter_map(|g| {
                let arn = g.target_group_arn()?;
                // The API leaves out the weight of a lone target group: it takes all.
                let weight = g.weight().map_or(1, |w| u32::try_from(w).unwrap_or(0));
                Some(TargetWeight::new(arn, weight))
            })
            .collect();
    }
    forward
        .target_group_arn()
        .map(|arn| vec![TargetWeight::new(arn, 1)])
        .unwrap_or_default()
}

/// Weights summed per target, in the order targets first appear.
fn merge(weights: impl IntoIterator<Item = TargetWeight>) -> Vec<TargetWeight> {
    let mut out: Vec<TargetWeight> = Vec::new();
    for w in weights {
        match out.iter_mut().find(|o| o.target == w.target) {
            Some(o) => o.weight = o.weight.saturating_add(w.weight),
            None => out.push(w),
        }
    }
    out
}

/// `actions` forward some traffic to a target group other than `target` (or forward
/// nothing at all although they forward).
fn sends_elsewhere(actions: &[Action], target: &TargetId) -> bool {
    let weights = forward_weights(actions);
    let forwards = actions
        .iter()
        .any(|a| a.r#type() == Some(&ActionTypeEnum::Forward));
    let only_target = weights.iter().all(|w| w.weight == 0 || &w.target == target)
        && weights.iter().any(|w| w.weight > 0 && &w.target == target);
    forwards && !only_target
}

fn action_types(actions: &[Action]) -> String {
    let types: Vec<&str> = actions
        .iter()
        .map(|a| a.r#type().map_or("unknown", |t| t.as_str()))
        .collect();
    if types.is_empty() {
        "none".to_owned()
    } else {
        types.join(", ")
    }
}

/// `actions` with each forward action replaced by a forward to `weights`, keeping
/// its order and stickiness; every other action is kept. `None` when nothing
/// forwards: a redirect or fixed response is never turned into a forward.
fn rewrite_forward(actions: &[Action], weights: &[TargetWeight]) -> Option<Vec<Action>> {
    if !actions
        .iter()
        .any(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
    {
        return None;
    }
    let groups: Vec<TargetGroupTuple> = weights
        .iter()
        .map(|w| {
            TargetGroupTuple::builder()
                .target_group_arn(w.target.as_str())
                .weight(i32::try_from(w.weight).unwrap_or(i32::MAX))
                .build()
        })
        .collect();
    Some(
        actions
            .iter()
            .map(|a| match a.r#type() {
                Some(ActionTypeEnum::Forward) => Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .set_order(a.order())
                    .forward_config(
                        ForwardActionConfig::builder()
                            .set_target_groups(Some(groups.clone()))
                            .set_target_group_stickiness_config(
                                a.forward_config()
                                    .and_then(|f| f.target_group_stickiness_config())
                                    .cloned(),
                            )
                            .build(),
                    )
                    .build(),
                _ => keep_secret(a.clone()),
            })
            .collect(),
    )
}

/// Describe calls never return an OIDC client secret; written back without one,
/// ModifyListener/ModifyRule need `UseExistingClientSecret` to keep it.
fn keep_secret(mut action: Action) -> Action {
    if let Some(oidc) = action.authenticate_oidc_config.as_mut()
        && oidc.client_secret.is_none()
    {
        oidc.use_existing_client_secret = Some(true);
    }
    action
}

fn validate(weights: &[TargetWeight]) -> Result<()> {
    if weights.is_empty() {
        return Err(Error::invalid("weights", "at least one target is needed"));
    }
    for (i, w) in weights.iter().enumerate() {
        if w.weight > MAX_WEIGHT {
            return Err(Error::invalid(
                format!("weights[{i}].weight"),
                format!("{} is above the ALB maximum {MAX_WEIGHT}", w.weight),
            ));
        }
        if weights[..i].iter().any(|o| o.target == w.target) {
            return Err(Error::invalid(
                format!("weights[{i}].target"),
                format!("{} is listed twice", w.target),
            ));
        }
    }
    if weights.iter().all(|w| w.weight == 0) {
        return Err(Error::invalid(
            "weights",
            "all weights are zero: the listener would drop all traffic",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{
        AuthenticateOidcActionConfig, RedirectActionConfig, RedirectActionStatusCodeEnum,
        TargetDescription, TargetGroupStickinessConfig, TargetHealth as SdkTargetHealth,
        TargetHealthReasonEnum,
    };
    use meshos_rollback_core::provider::traffic_share;

    fn plain(arn: &str) -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(arn)
            .build()
    }

    #[test]
    fn reads_plain_and_weighted_forwards() {
        assert_eq!(
            forward_weights(&[plain("tg-a")]),
            vec![TargetWeight::new("tg-a", 1)]
        );
        let weighted = rewrite_forward(
            &[plain("tg-a")],
            &[TargetWeight::new("tg-a", 90), TargetWeight::new("tg-b", 10)],
        )
        .unwrap();
        assert_eq!(
            forward_weights(&weighted),
            vec![TargetWeight::new("tg-a", 90), TargetWeight::new("tg-b", 10)]
        );
        let fixed = Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .build();
        assert!(forward_weights(&[fixed]).is_empty());
    }

    #[test]
    fn rewrite_keeps_authentication_and_stickiness() {
        let auth = Action::builder()
            .r#type(ActionTypeEnum::AuthenticateOidc)
            .order(1)
            .authenticate_oidc_config(
                AuthenticateOidcActionConfig::builder()
                    .issuer("https://idp")
                    .build(),
            )
            .build();
        let fwd = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .order(2)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn("tg-a")
                            .weight(50)
                            .build(),
                    )
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn("tg-b")
                            .weight(50)
                            .build(),
                    )
                    .target_group_stickiness_config(
                        TargetGroupStickinessConfig::builder()
                            .enabled(true)
                            .duration_seconds(60)
                            .build(),
                    )
                    .build(),
            )
            .build();
        let out = rewrite_forward(&[auth.clone(), fwd], &[TargetWeight::new("tg-a", 1)]).unwrap();
        assert_eq!(out.len(), 2);
        let mut kept = auth;
        kept.authenticate_oidc_config
            .as_mut()
            .unwrap()
            .use_existing_client_secret = Some(true);
        assert_eq!(
            out[0], kept,
            "the secret Describe left out is kept, nothing else"
        );
        assert_eq!(out[1].order(), Some(2));
        let fc = out[1].forward_config().unwrap();
        assert_eq!(fc.target_groups().len(), 1);
        assert_eq!(
            fc.target_group_stickiness_config()
                .and_then(|s| s.duration_seconds()),
            Some(60)
        );
    }

    #[test]
    fn weights_are_validated() {
        let zero = [TargetWeight::new("a", 0), TargetWeight::new("b", 0)];
        assert!(
            validate(&zero)
                .unwrap_err()
                .to_string()
                .contains("all weights are zero")
        );
        assert!(validate(&[TargetWeight::new("a", 1000)]).is_err());
        assert!(validate(&[TargetWeight::new("a", 1), TargetWeight::new("a", 2)]).is_err());
        assert!(validate(&[]).is_err());
        assert!(validate(&[TargetWeight::new("a", 999), TargetWeight::new("b", 0)]).is_ok());
    }

    #[test]
    fn non_forward_actions_are_never_rewritten() {
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
        let fixed = Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .build();
        let w = [TargetWeight::new("tg-a", 1)];
        assert_eq!(rewrite_forward(std::slice::from_ref(&redirect), &w), None);
        assert_eq!(rewrite_forward(&[fixed], &w), None);
        let stable: TargetId = "tg-a".into();
        assert!(
            !sends_elsewhere(&[redirect], &stable),
            "a redirect forwards nowhere"
        );
        assert!(!sends_elsewhere(&[plain("tg-a")], &stable));
        assert!(sends_elsewhere(&[plain("tg-b")], &stable));
        let split = rewrite_forward(
            &[plain("tg-a")],
            &[TargetWeight::new("tg-a", 1), TargetWeight::new("tg-b", 0)],
        )
        .unwrap();
        assert!(
            !sends_elsewhere(&split, &stable),
            "a zero weight sends nothing"
        );
    }

    #[test]
    fn listener_weights_add_up_per_target() {
        let merged = merge([
            TargetWeight::new("stable", 1),
            TargetWeight::new("stable", 90),
            TargetWeight::new("canary", 10),
        ]);
        assert_eq!(
            merged,
            vec![
                TargetWeight::new("stable", 91),
                TargetWeight::new("canary", 10)
            ]
        );
        assert!(traffic_share(&merged, &"stable".into()) < 1.0);
    }

    #[test]
    fn health_sorts_states() {
        let d = |ip: &str, state: TargetHealthStateEnum| {
            TargetHealthDescription::builder()
                .target(TargetDescription::builder().id(ip).port(80).build())
                .target_health(
                    SdkTargetHealth::builder()
                        .state(state)
                        .reason(TargetHealthReasonEnum::FailedHealthChecks)
                        .build(),
                )
                .build()
        };
        let h = health_of(
            &"tg".into(),
            &[
                d("a", TargetHealthStateEnum::Healthy),
                d("b", TargetHealthStateEnum::Draining),
                d("c", TargetHealthStateEnum::UnhealthyDraining),
                d("d", TargetHealthStateEnum::Unused),
                d("e", TargetHealthStateEnum::Unavailable),
            ],
        );
        assert_eq!(h.healthy, vec!["a:80"]);
        assert_eq!(h.unhealthy.len(), 1);
        assert_eq!(h.unhealthy[0].state, "unavailable");
        assert_eq!(
            h.unhealthy[0].reason.as_deref(),
            Some("Target.FailedHealthChecks")
        );
    }
}
