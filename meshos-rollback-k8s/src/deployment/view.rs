//! The fields this crate reads from Deployments and Pods, taken from the server's
//! JSON.
//!
//! Reading raw JSON rather than k8s-openapi's structs keeps the crate working with
//! every `v1_*` feature the final build picks (k8s-openapi's `v1_37` changes the
//! optionality of `Deployment.spec` and of condition fields), and never drops
//! pod-template fields an older k8s-openapi does not know when a template is
//! copied back on undo.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::api::DynamicObject;
use serde::Deserialize;
use serde_json::Value;

/// A Deployment as `kubectl rollout` reads it.
#[derive(Debug, Clone)]
pub(crate) struct DeploymentView {
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) generation: i64,
    pub(crate) resource_version: String,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) spec: DeploymentSpecView,
    pub(crate) status: DeploymentStatusView,
    /// `spec.template` as the server sent it.
    pub(crate) template: Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct DeploymentSpecView {
    pub(crate) replicas: Option<i32>,
    pub(crate) paused: bool,
    pub(crate) selector: Option<LabelSelectorView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct LabelSelectorView {
    pub(crate) match_labels: BTreeMap<String, String>,
    pub(crate) match_expressions: Vec<SelectorRequirementView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct SelectorRequirementView {
    pub(crate) key: String,
    pub(crate) operator: String,
    pub(crate) values: Vec<String>,
}

impl LabelSelectorView {
    /// The selector in the `labelSelector` query syntax (`app=a,tier in (x,y)`).
    pub(crate) fn to_query(&self) -> String {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for e in &self.match_expressions {
            let mut values = e.values.clone();
            values.sort();
            parts.push(match e.operator.as_str() {
                "In" => format!("{} in ({})", e.key, values.join(",")),
                "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
                "Exists" => e.key.clone(),
                "DoesNotExist" => format!("!{}", e.key),
                _ => format!("{} {} ({})", e.key, e.operator, values.join(",")),
            });
        }
        parts.join(",")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct DeploymentStatusView {
    pub(crate) observed_generation: i64,
    pub(crate) replicas: i32,
    pub(crate) updated_replicas: i32,
    pub(crate) ready_replicas: i32,
    pub(crate) available_replicas: i32,
    pub(crate) conditions: Vec<ConditionView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ConditionView {
    #[serde(rename = "type")]
    pub(crate) type_: String,
    pub(crate) status: String,
    pub(crate) reason: String,
    pub(crate) message: String,
}

impl DeploymentView {
    pub(crate) fn from_object(d: &DynamicObject) -> Result<Self, serde_json::Error> {
        let spec: DeploymentSpecView = match d.data.get("spec") {
            Some(s) => serde_json::from_value(s.clone())?,
            None => DeploymentSpecView::default(),
        };
        let status: DeploymentStatusView = match d.data.get("status") {
            Some(s) if !s.is_null() => serde_json::from_value(s.clone())?,
            _ => DeploymentStatusView::default(),
        };
        Ok(DeploymentView {
            name: d.metadata.name.clone().unwrap_or_default(),
            uid: d.metadata.uid.clone().unwrap_or_default(),
            generation: d.metadata.generation.unwrap_or(0),
            resource_version: d.metadata.resource_version.clone().unwrap_or_default(),
            annotations: d.metadata.annotations.clone().unwrap_or_default(),
            spec,
            status,
            template: d
                .data
                .pointer("/spec/template")
                .cloned()
                .unwrap_or(Value::Null),
        })
    }

    /// `spec.replicas`, which the API server defaults to 1.
    pub(crate) fn desired(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }

    pub(crate) fn condition(&self, type_: &str) -> Option<&ConditionView> {
        self.status.conditions.iter().find(|c| c.type_ == type_)
    }

    /// The names of the template's containers.
    pub(crate) fn containers(&self) -> Vec<ContainerView> {
        self.template
            .pointer("/spec/containers")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default()
    }
}

/// A container of a pod template.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ContainerView {
    pub(crate) name: String,
    pub(crate) image: Option<String>,
    pub(crate) env: Vec<EnvView>,
}

/// An environment variable of a container.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct EnvView {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
    pub(crate) value_from: Option<Value>,
}

/// A pod as the verification and the fail-fast check read it.
#[derive(Debug, Clone)]
pub(crate) struct PodView {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) created: Option<Timestamp>,
    pub(crate) deleting: bool,
    pub(crate) status: PodStatusView,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct PodStatusView {
    pub(crate) phase: String,
    pub(crate) reason: String,
    pub(crate) message: String,
    pub(crate) start_time: Option<String>,
    pub(crate) conditions: Vec<ConditionView>,
    pub(crate) init_container_statuses: Vec<ContainerStatusView>,
    pub(crate) container_statuses: Vec<ContainerStatusView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ContainerStatusView {
    pub(crate) name: String,
    pub(crate) ready: bool,
    pub(crate) restart_count: i32,
    pub(crate) state: ContainerStateView,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ContainerStateView {
    pub(crate) waiting: Option<StateDetail>,
    pub(crate) running: Option<Value>,
    pub(crate) terminated: Option<StateDetail>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct StateDetail {
    pub(crate) reason: String,
    pub(crate) message: String,
    pub(crate) exit_code: Option<i32>,
}

impl PodView {
    pub(crate) fn from_object(p: &DynamicObject) -> Result<Self, serde_json::Error> {
        let status = match p.data.get("status") {
            Some(s) if !s.is_null() => serde_json::from_value(s.clone())?,
            _ => PodStatusView::default(),
        };
        Ok(PodView {
            name: p.metadata.name.clone().unwrap_or_default(),
            labels: p.metadata.labels.clone().unwrap_or_default(),
            created: p
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| t.0.to_string().parse().ok()),
            deleting: p.metadata.deletion_timestamp.is_some(),
            status,
        })
    }

    /// The pod's `Ready` condition is true.
    pub(crate) fn is_ready(&self) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    }

    /// Since when the pod has been on its node: `status.startTime`, else its
    /// creation time.
    pub(crate) fn since(&self) -> Option<Timestamp> {
        self.status
            .start_time
            .as_deref()
            .and_then(|t| t.parse().ok())
            .or(self.created)
    }

    /// Containers (init containers first) waiting for one of `reasons`:
    /// `(container, reason, message)`.
    pub(crate) fn waiting_for<'a>(
        &'a self,
        reasons: &'a [&'a str],
    ) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> + 'a {
        self.status
            .init_container_statuses
            .iter()
            .chain(&self.status.container_statuses)
            .filter_map(move |c| {
                let w = c.state.waiting.as_ref()?;
                reasons.contains(&w.reason.as_str()).then_some((
                    c.name.as_str(),
                    w.reason.as_str(),
                    w.message.as_str(),
                ))
            })
    }
}
