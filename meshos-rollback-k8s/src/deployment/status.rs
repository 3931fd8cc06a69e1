//! Judging a rollout as `kubectl rollout status` does, plus the fail-fast check on
//! the new pods, and describing pods as instances. Pure functions over views.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use meshos_rollback_core::model::RevisionId;
use meshos_rollback_core::provider::{Instance, InstanceState, RolloutPhase};

use super::view::{DeploymentView, PodView};

/// Waiting reasons that fail a rollout once a new pod has sat in them past the grace.
pub(crate) const FAIL_FAST_REASONS: [&str; 3] =
    ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"];

/// Waiting reasons kubectl appends to its status line as a warning.
const WARNING_REASONS: [&str; 5] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// A rollout's phase and kubectl's words for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judgement {
    pub(crate) phase: RolloutPhase,
    pub(crate) message: String,
}

impl Judgement {
    fn in_progress(message: String) -> Self {
        Judgement {
            phase: RolloutPhase::InProgress,
            message,
        }
    }
}

/// Judges a Deployment like kubectl's `DeploymentStatusViewer`, then fails fast
/// when a pod of the new ReplicaSet has waited in CrashLoopBackOff, ImagePullBackOff
/// or ErrImagePull for `grace` or longer (measured from the pod's start time).
pub(crate) fn judge(
    d: &DeploymentView,
    new_pods: &[PodView],
    now: Timestamp,
    grace: Duration,
) -> Judgement {
    let name = &d.name;
    if d.generation > d.status.observed_generation {
        return Judgement::in_progress(with_warning(
            "Waiting for deployment spec update to be observed...".to_owned(),
            new_pods,
        ));
    }
    if d.condition("Progressing")
        .is_some_and(|c| c.reason == "ProgressDeadlineExceeded")
    {
        return Judgement {
            phase: RolloutPhase::Failed,
            message: format!("deployment {name:?} exceeded its progress deadline"),
        };
    }
    let s = &d.status;
    let waiting = if let Some(replicas) = d.spec.replicas
        && s.updated_replicas < replicas
    {
        Some(format!(
            "Waiting for deployment {name:?} rollout to finish: {} out of {replicas} new replicas have been updated...",
            s.updated_replicas
        ))
    } else if s.replicas > s.updated_replicas {
        Some(format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            s.replicas - s.updated_replicas
        ))
    } else if s.available_replicas < s.updated_replicas {
        Some(format!(
            "Waiting for deployment {name:?} rollout to finish: {} of {} updated replicas are available...",
            s.available_replicas, s.updated_replicas
        ))
    } else {
        None
    };
    let Some(waiting) = waiting else {
        return Judgement {
            phase: RolloutPhase::Complete,
            message: format!("deployment {name:?} successfully rolled out"),
        };
    };
    if let Some(stuck) = stuck_pod(new_pods, now, grace) {
        return Judgement {
            phase: RolloutPhase::Failed,
            message: format!("deployment {name:?} rollout cannot progress: {stuck}"),
        };
    }
    Judgement::in_progress(with_warning(waiting, new_pods))
}

/// The first new pod stuck in a fail-fast reason for at least `grace`, described.
fn stuck_pod(pods: &[PodView], now: Timestamp, grace: Duration) -> Option<String> {
    pods.iter().filter(|p| !p.deleting).find_map(|p| {
        let (container, reason, message) = p.waiting_for(&FAIL_FAST_REASONS).next()?;
        let since = p.since().unwrap_or(now);
        let waited = now.duration_since(since).unsigned_abs();
        (waited >= grace).then(|| {
            let mut s = format!(
                "pod {} container {container} is in {reason} after {}s (grace {}s)",
                p.name,
                waited.as_secs(),
                grace.as_secs()
            );
            if !message.is_empty() {
                s.push_str(&format!(": {message}"));
            }
            s
        })
    })
}

/// How long until the first new pod that is not ready could be judged stuck, so a
/// waiter can look again right then. A pod that is still starting counts too: it can
/// start crash-looping without any change to the Deployment (nothing the watch would
/// see), and its grace runs from the pod's start either way. Pods already past the
/// grace without being stuck are left to the regular re-check.
pub(crate) fn grace_left(pods: &[PodView], now: Timestamp, grace: Duration) -> Option<Duration> {
    pods.iter()
        .filter(|p| {
            !p.deleting && (!p.is_ready() || p.waiting_for(&FAIL_FAST_REASONS).next().is_some())
        })
        .filter_map(|p| {
            let waited = now.duration_since(p.since().unwrap_or(now)).unsigned_abs();
            let stuck = p.waiting_for(&FAIL_FAST_REASONS).next().is_some();
            // A stuck pod is due at once when past its grace; one that is merely not
            // ready yet only until its grace would be over.
            (stuck || waited < grace).then(|| grace.saturating_sub(waited))
        })
        .min()
}

/// Ours, not kubectl's (`kubectl rollout status` prints only the deployment's own
/// counts): the first pod that is unschedulable or waits for a known bad reason is
/// named after the status line, so the operator sees why the rollout is stuck.
fn with_warning(base: String, pods: &[PodView]) -> String {
    for p in pods {
        if let Some(c) = p.status.conditions.iter().find(|c| {
            c.type_ == "PodScheduled" && c.status == "False" && c.reason == "Unschedulable"
        }) {
            return format!("{base} (Warning: {})", c.message);
        }
        if let Some((_, reason, message)) = p.waiting_for(&WARNING_REASONS).next() {
            return format!("{base} (Warning: {reason} - {message})");
        }
    }
    base
}

/// Describes a pod as an [`Instance`]; `revisions` maps `pod-template-hash` values to
/// revision ids.
pub(crate) fn instance(p: &PodView, revisions: &BTreeMap<String, RevisionId>) -> Instance {
    let revision = p
        .labels
        .get(super::revision::HASH_LABEL)
        .and_then(|h| revisions.get(h))
        .cloned();
    let ready = p.is_ready() && !p.deleting;
    let failing = p.waiting_for(&WARNING_REASONS).next();
    let state = if p.deleting {
        InstanceState::Stopped
    } else if failing.is_some() || p.status.phase == "Failed" {
        InstanceState::Failed
    } else {
        match p.status.phase.as_str() {
            "Running" => InstanceState::Running,
            "Succeeded" => InstanceState::Stopped,
            _ => InstanceState::Pending,
        }
    };
    let detail = if state == InstanceState::Running && ready {
        None
    } else {
        Some(not_ready_reason(p, failing))
    };
    Instance {
        id: p.name.clone(),
        revision,
        state,
        ready,
        detail,
    }
}

fn not_ready_reason(p: &PodView, failing: Option<(&str, &str, &str)>) -> String {
    if p.deleting {
        return "terminating".to_owned();
    }
    if let Some((container, reason, message)) = failing {
        let restarts = p
            .status
            .container_statuses
            .iter()
            .find(|c| c.name == container)
            .map_or(0, |c| c.restart_count);
        let mut s = format!("container {container}: {reason}");
        if !message.is_empty() {
            s.push_str(&format!(" ({message})"));
        }
        if restarts > 0 {
            s.push_str(&format!(", {restarts} restarts"));
        }
        return s;
    }
    if let Some(c) = p
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    {
        return format!(
            "{}: {}: {}",
            or_unknown(&p.status.phase),
            c.reason,
            c.message
        );
    }
    if let Some(w) = p
        .status
        .container_statuses
        .iter()
        .find_map(|c| c.state.waiting.as_ref())
    {
        return format!("{}: {}", or_unknown(&p.status.phase), w.reason);
    }
    if let Some(t) = p
        .status
        .container_statuses
        .iter()
        .find_map(|c| c.state.terminated.as_ref())
    {
        return format!(
            "terminated: {} (exit code {})",
            t.reason,
            t.exit_code.unwrap_or(0)
        );
    }
    if !p.status.reason.is_empty() {
        return format!("{}: {}", or_unknown(&p.status.phase), p.status.reason);
    }
    match p.status.conditions.iter().find(|c| c.type_ == "Ready") {
        Some(c) if c.status != "True" && !c.message.is_empty() => {
            format!("not ready: {}", c.message)
        }
        _ if p.status.phase == "Running" => "not ready".to_owned(),
        _ => or_unknown(&p.status.phase).to_owned(),
    }
}

fn or_unknown(phase: &str) -> &str {
    if phase.is_empty() { "Unknown" } else { phase }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::DynamicObject;
    use serde_json::{Value, json};

    fn deployment(generation: i64, status: Value) -> DeploymentView {
        let d: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "meshos-api", "namespace": "production", "generation": generation, "uid": "u"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "meshos-api"}}, "template": {}},
            "status": status,
        }))
        .unwrap();
        DeploymentView::from_object(&d).unwrap()
    }

    fn pod(name: &str, started: &str, status: Value) -> PodView {
        let mut status = status;
        status["startTime"] = json!(started);
        let p: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "meshos-api", "pod-template-hash": "abc"},
                         "creationTimestamp": started},
            "status": status,
        }))
        .unwrap();
        PodView::from_object(&p).unwrap()
    }

    fn crash_looping(name: &str, started: &str) -> PodView {
        pod(
            name,
            started,
            json!({
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "api", "ready": false, "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=api"}}}]
            }),
        )
    }

    fn now() -> Timestamp {
        "2025-10-30T10:10:00Z".parse().unwrap()
    }

    const GRACE: Duration = Duration::from_secs(60);

    #[test]
    fn kubectl_verdicts() {
        let cases = [
            (
                2,
                json!({"observedGeneration": 1}),
                RolloutPhase::InProgress,
                "Waiting for deployment spec update to be observed...",
            ),
            (
                2,
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3}),
                RolloutPhase::InProgress,
                "Waiting for deployment \"meshos-api\" rollout to finish: 1 out of 3 new replicas have been updated...",
            ),
            (
                2,
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
                RolloutPhase::InProgress,
                "Waiting for deployment \"meshos-api\" rollout to finish: 1 old replicas are pending termination...",
            ),
            (
                2,
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
                RolloutPhase::InProgress,
                "Waiting for deployment \"meshos-api\" rollout to finish: 2 of 3 updated replicas are available...",
            ),
            (
                2,
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
                RolloutPhase::Complete,
                "deployment \"meshos-api\" successfully rolled out",
            ),
            (
                2,
                json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
                RolloutPhase::Complete,
                "deployment \"meshos-api\" successfully rolled out",
            ),
            (
                2,
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
                       "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
                RolloutPhase::Failed,
                "deployment \"meshos-api\" exceeded its progress deadline",
            ),
        ];
        for (generation, status, phase, message) in cases {
            let j = judge(&deployment(generation, status.clone()), &[], now(), GRACE);
            assert_eq!(
                j,
                Judgement {
                    phase,
                    message: message.to_owned()
                },
                "{status}"
            );
        }
    }

    #[test]
    fn a_stale_complete_status_is_not_complete() {
        // Right after a patch the status still describes the previous rollout, which
        // kube's is_deployment_completed would accept.
        let stale = json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]});
        assert_eq!(
            judge(&deployment(2, stale), &[], now(), GRACE).phase,
            RolloutPhase::InProgress
        );
    }

    #[test]
    fn fail_fast_after_the_grace_only() {
        let status = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3});
        let young = crash_looping("meshos-api-abc-1", "2025-10-30T10:09:30Z");
        let j = judge(&deployment(2, status.clone()), &[young], now(), GRACE);
        assert_eq!(j.phase, RolloutPhase::InProgress);
        assert!(
            j.message.ends_with(
                "(Warning: CrashLoopBackOff - back-off 40s restarting failed container=api)"
            ),
            "{}",
            j.message
        );

        let old = crash_looping("meshos-api-abc-2", "2025-10-30T10:08:00Z");
        let j = judge(
            &deployment(2, status.clone()),
            std::slice::from_ref(&old),
            now(),
            GRACE,
        );
        assert_eq!(j.phase, RolloutPhase::Failed);
        assert!(
            j.message
                .contains("pod meshos-api-abc-2 container api is in CrashLoopBackOff after 120s"),
            "{}",
            j.message
        );

        let pulling = pod(
            "meshos-api-abc-3",
            "2025-10-30T10:00:00Z",
            json!({"phase": "Pending",
            "containerStatuses": [{"name": "api", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}),
        );
        let j = judge(&deployment(2, status.clone()), &[pulling], now(), GRACE);
        assert_eq!(j.phase, RolloutPhase::Failed);
        assert!(j.message.contains("ImagePullBackOff"), "{}", j.message);

        let init = pod(
            "meshos-api-abc-4",
            "2025-10-30T10:00:00Z",
            json!({"phase": "Pending",
            "initContainerStatuses": [{"name": "migrate", "state": {"waiting": {"reason": "ErrImagePull"}}}]}),
        );
        assert_eq!(
            judge(&deployment(2, status.clone()), &[init], now(), GRACE).phase,
            RolloutPhase::Failed
        );

        // A zero grace fails on the first sight; a complete rollout is complete.
        let young = crash_looping("meshos-api-abc-5", "2025-10-30T10:10:00Z");
        assert_eq!(
            judge(
                &deployment(2, status),
                std::slice::from_ref(&young),
                now(),
                Duration::ZERO
            )
            .phase,
            RolloutPhase::Failed
        );
        let done = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3});
        assert_eq!(
            judge(&deployment(2, done), &[old], now(), GRACE).phase,
            RolloutPhase::Complete
        );
    }

    #[test]
    fn the_grace_left_is_the_soonest_stuck_pod() {
        let pods = [
            crash_looping("a", "2025-10-30T10:09:30Z"),
            crash_looping("b", "2025-10-30T10:09:50Z"),
        ];
        assert_eq!(
            grace_left(&pods, now(), GRACE),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            grace_left(&pods, now(), Duration::from_secs(10)),
            Some(Duration::ZERO)
        );
        let fine = pod("c", "2025-10-30T10:00:00Z", json!({"phase": "Running"}));
        assert_eq!(grace_left(&[fine], now(), GRACE), None);
        // Still starting: it may crash-loop without the Deployment changing, so the
        // waiter looks again when its grace would be over.
        let starting = pod(
            "d",
            "2025-10-30T10:09:40Z",
            json!({"phase": "Pending", "startTime": "2025-10-30T10:09:40Z"}),
        );
        assert_eq!(
            grace_left(std::slice::from_ref(&starting), now(), GRACE),
            Some(GRACE - Duration::from_secs(20))
        );
        let ready = pod(
            "e",
            "2025-10-30T10:09:40Z",
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
        );
        assert_eq!(grace_left(&[ready], now(), GRACE), None);
    }

    #[test]
    fn pods_become_instances_with_reasons() {
        let revisions = BTreeMap::from([("abc".to_owned(), RevisionId::new("4"))]);
        let ok = pod(
            "ok",
            "2025-10-30T10:00:00Z",
            json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "api", "ready": true, "state": {"running": {}}}]}),
        );
        let i = instance(&ok, &revisions);
        assert_eq!(
            (i.state, i.ready, i.detail.as_deref()),
            (InstanceState::Running, true, None)
        );
        assert_eq!(i.revision, Some(RevisionId::new("4")));

        let i = instance(&crash_looping("bad", "2025-10-30T10:00:00Z"), &revisions);
        assert_eq!((i.state, i.ready), (InstanceState::Failed, false));
        assert_eq!(
            i.detail.as_deref(),
            Some(
                "container api: CrashLoopBackOff (back-off 40s restarting failed container=api), 4 restarts"
            )
        );

        let unschedulable = pod(
            "pending",
            "2025-10-30T10:00:00Z",
            json!({"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]}),
        );
        let i = instance(&unschedulable, &revisions);
        assert_eq!(i.state, InstanceState::Pending);
        assert_eq!(
            i.detail.as_deref(),
            Some("Pending: Unschedulable: 0/3 nodes are available")
        );

        let unready = pod(
            "unready",
            "2025-10-30T10:00:00Z",
            json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False", "message": "containers with unready status: [api]"}],
            "containerStatuses": [{"name": "api", "ready": false, "state": {"running": {}}}]}),
        );
        let i = instance(&unready, &revisions);
        assert_eq!((i.state, i.ready), (InstanceState::Running, false));
        assert_eq!(
            i.detail.as_deref(),
            Some("not ready: containers with unready status: [api]")
        );
    }
}
