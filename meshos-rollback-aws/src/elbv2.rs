//! [`AlbTrafficShifter`]: move an Application Load Balancer listener's traffic back to
//! the stable target group (the playbook's `aws elbv2 modify-listener`).

use std::fmt;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple, TargetHealthStateEnum,
};
use aws_types::SdkConfig;
use meshos_rollback_core::provider::{
    RouteId, TargetHealth, TargetId, TargetWeight, TrafficCapabilities, TrafficShifter,
    UnhealthyBackend,
};
use meshos_rollback_core::{Error, Result};

use crate::error::{from_sdk, missing};
use crate::sdk::prepare_client;

/// The largest weight of a target group in a forward action.
pub const MAX_WEIGHT: u32 = 999;

/// Builds an [`AlbTrafficShifter`].
#[derive(Debug)]
pub struct AlbTrafficShifterBuilder {
    client: aws_sdk_elasticloadbalancingv2::Client,
}

impl AlbTrafficShifterBuilder {
    /// A shifter using a client built from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(aws_sdk_elasticloadbalancingv2::Client::new(config))
    }

    /// A shifter using an existing ELBv2 client.
    pub fn from_client(client: aws_sdk_elasticloadbalancingv2::Client) -> Self {
        AlbTrafficShifterBuilder { client }
    }

    /// Checks the configuration (region, HTTP client).
    pub fn build(self) -> Result<AlbTrafficShifter> {
        let (client, region) = prepare_client!(
            "AlbTrafficShifter",
            self.client,
            aws_sdk_elasticloadbalancingv2
        );
        Ok(AlbTrafficShifter { client, region })
    }
}

/// A [`TrafficShifter`] over ALB listeners in one region.
///
/// Routes are listener ARNs, targets are target-group ARNs. The listener's default
/// forward action is read and written, plain (`TargetGroupArn`) or weighted
/// (`ForwardConfig`); authentication actions before it and the stickiness setting are
/// kept. Shifting to a target that already takes all traffic sends no change. Target
/// groups are checked to exist before the listener is changed, so a typo never
/// reaches the listener.
#[derive(Debug)]
pub struct AlbTrafficShifter {
    client: aws_sdk_elasticloadbalancingv2::Client,
    region: String,
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

    async fn write(&self, route: &RouteId, actions: Vec<Action>) -> Result<()> {
        self.client
            .modify_listener()
            .listener_arn(route.as_str())
            .set_default_actions(Some(actions))
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("listener {route}"), e))?;
        Ok(())
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
        Ok(forward_weights(&self.default_actions(route).await?))
    }

    async fn shift_all_to(&self, route: &RouteId, target: &TargetId) -> Result<()> {
        let actions = self.default_actions(route).await?;
        let current = forward_weights(&actions);
        let only_target = current.iter().all(|w| w.weight == 0 || &w.target == target)
            && current.iter().any(|w| w.weight > 0 && &w.target == target);
        if only_target {
            return Ok(());
        }
        self.check_targets(&[target]).await?;
        let weights = [TargetWeight::new(target.clone(), 1)];
        self.write(route, with_forward(actions, &weights)).await
    }

    async fn set_weights(&self, route: &RouteId, weights: &[TargetWeight]) -> Result<()> {
        validate(weights)?;
        let actions = self.default_actions(route).await?;
        let targets: Vec<&TargetId> = weights.iter().map(|w| &w.target).collect();
        self.check_targets(&targets).await?;
        self.write(route, with_forward(actions, weights)).await
    }

    async fn target_health(&self, target: &TargetId) -> Result<TargetHealth> {
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(target.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("target group {target}"), e))?;
        let mut health = TargetHealth {
            target: target.clone(),
            healthy: Vec::new(),
            unhealthy: Vec::new(),
        };
        for d in out.target_health_descriptions() {
            let id = match d.target() {
                Some(t) => match t.port() {
                    Some(p) => format!("{}:{p}", t.id().unwrap_or_default()),
                    None => t.id().unwrap_or_default().to_owned(),
                },
                None => continue,
            };
            let th = d.target_health();
            match th.and_then(|h| h.state()) {
                Some(TargetHealthStateEnum::Healthy) => health.healthy.push(id),
                state => health.unhealthy.push(UnhealthyBackend {
                    id,
                    state: state.map_or("unknown", |s| s.as_str()).to_owned(),
                    reason: th.and_then(|h| {
                        h.description()
                            .map(str::to_owned)
                            .or_else(|| h.reason().map(|r| r.as_str().to_owned()))
                    }),
                }),
            }
        }
        Ok(health)
    }
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

/// `actions` with the terminal action replaced by a forward to `weights`; the
/// authentication actions before it and the stickiness setting are kept.
fn with_forward(actions: Vec<Action>, weights: &[TargetWeight]) -> Vec<Action> {
    let stickiness = actions
        .iter()
        .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
        .and_then(|a| a.forward_config())
        .and_then(|f| f.target_group_stickiness_config())
        .cloned();
    let mut kept: Vec<Action> = Vec::new();
    let mut terminal_order = None;
    for a in actions {
        match a.r#type() {
            Some(
                ActionTypeEnum::AuthenticateOidc
                | ActionTypeEnum::AuthenticateCognito
                | ActionTypeEnum::JwtValidation,
            ) => kept.push(a),
            _ => terminal_order = terminal_order.or(a.order()),
        }
    }
    let order = terminal_order.or_else(|| {
        (!kept.is_empty()).then(|| kept.iter().filter_map(|a| a.order()).max().unwrap_or(0) + 1)
    });
    let groups = weights
        .iter()
        .map(|w| {
            TargetGroupTuple::builder()
                .target_group_arn(w.target.as_str())
                .weight(i32::try_from(w.weight).unwrap_or(i32::MAX))
                .build()
        })
        .collect();
    let forward = Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .set_order(order)
        .forward_config(
            ForwardActionConfig::builder()
                .set_target_groups(Some(groups))
                .set_target_group_stickiness_config(stickiness)
                .build(),
        )
        .build();
    kept.push(forward);
    kept
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
        AuthenticateOidcActionConfig, TargetGroupStickinessConfig,
    };

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
        let weighted = with_forward(
            vec![plain("tg-a")],
            &[TargetWeight::new("tg-a", 90), TargetWeight::new("tg-b", 10)],
        );
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
        let out = with_forward(vec![auth.clone(), fwd], &[TargetWeight::new("tg-a", 1)]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], auth);
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
}
