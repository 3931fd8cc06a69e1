//! The deployment controller, the ReplicaSet controller and a kubelet, played on
//! the store every tick: new ReplicaSets with the next revision, rolling updates
//! paced by pod readiness, status and conditions, and the progress deadline.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::ImageFailure;
use super::store::{DEPLOYMENTS, PODS, REPLICA_SETS, Store, now_rfc3339, suffix};

const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const HASH: &str = "pod-template-hash";

/// Deployment annotations the controller does not copy to ReplicaSets.
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// How the simulated cluster behaves.
#[derive(Debug, Clone)]
pub(crate) struct Behaviour {
    pub(crate) pod_ready_after: Duration,
    pub(crate) failing_images: HashMap<String, ImageFailure>,
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn revision(rs: &Value) -> i64 {
    s(
        rs,
        "/metadata/annotations/deployment.kubernetes.io~1revision",
    )
    .parse()
    .unwrap_or(0)
}

fn owned_by(store: &Store, kind: super::store::Kind, ns: &str, uid: &str) -> Vec<Value> {
    let mut out: Vec<Value> = store
        .list(&kind, Some(ns), &Default::default(), &Default::default())
        .into_iter()
        .filter(|o| {
            o.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r["uid"] == json!(uid) && r["controller"] == json!(true))
                })
        })
        .collect();
    out.sort_by(|a, b| {
        (s(a, "/metadata/creationTimestamp"), s(a, "/metadata/name"))
            .cmp(&(s(b, "/metadata/creationTimestamp"), s(b, "/metadata/name")))
    });
    out
}

fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove(HASH);
    }
    t
}

/// Canonical JSON (sorted keys) for hashing.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", json!(k), canonical(&m[k])))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// The `pod-template-hash` of a template: FNV-1a, written in the API server's safe
/// alphabet like the controller's `ComputeHash`.
fn template_hash(template: &Value) -> String {
    let h = canonical(&without_hash(template))
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|d| ALPHABET[usize::from(d - b'0')] as char)
        .collect()
}

/// Resolves an int-or-percent against `total`, rounding up (surge) or down.
fn int_or_percent(v: Option<&Value>, total: i64, default: &str, round_up: bool) -> i64 {
    let v = v.cloned().unwrap_or_else(|| json!(default));
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(p) => {
            let pct: f64 = p.trim_end_matches('%').parse().unwrap_or(0.0);
            let x = pct * total as f64 / 100.0;
            (if round_up { x.ceil() } else { x.floor() }) as i64
        }
        _ => 0,
    }
}

fn annotations_mut(obj: &mut Value) -> &mut Map<String, Value> {
    let meta = obj
        .as_object_mut()
        .expect("object")
        .entry("metadata")
        .or_insert_with(|| json!({}));
    meta.as_object_mut()
        .expect("metadata object")
        .entry("annotations")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("annotations object")
}

/// Copies the Deployment's annotations onto a ReplicaSet (`copyDeploymentAnnotationsToReplicaSet`).
fn copy_annotations(d: &Value, rs: &mut Value) {
    let from: Map<String, Value> = d
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let to = annotations_mut(rs);
    for (k, v) in from {
        if !NOT_COPIED.contains(&k.as_str()) {
            to.insert(k, v);
        }
    }
}

/// One pass of every controller over the store.
pub(crate) fn reconcile(store: &mut Store, b: &Behaviour, now: Instant) {
    let deployments = store.list(&DEPLOYMENTS, None, &Default::default(), &Default::default());
    let mut created_new = HashMap::new();
    for d in &deployments {
        let created = sync_deployment(store, d);
        created_new.insert(s(d, "/metadata/uid").to_owned(), created);
    }
    for rs in store.list(
        &REPLICA_SETS,
        None,
        &Default::default(),
        &Default::default(),
    ) {
        sync_replica_set(store, &rs, now);
    }
    for pod in store.list(&PODS, None, &Default::default(), &Default::default()) {
        kubelet(store, &pod, b, now);
    }
    for rs in store.list(
        &REPLICA_SETS,
        None,
        &Default::default(),
        &Default::default(),
    ) {
        replica_set_status(store, &rs, now);
    }
    for d in store.list(&DEPLOYMENTS, None, &Default::default(), &Default::default()) {
        let found = created_new.get(s(&d, "/metadata/uid")).copied().flatten();
        deployment_status(store, &d, found);
    }
}

/// What happened to the new ReplicaSet in this pass, for the Progressing condition.
#[derive(Debug, Clone, Copy)]
enum NewReplicaSet {
    Created,
    Found,
}

fn sync_deployment(store: &mut Store, d: &Value) -> Option<NewReplicaSet> {
    let ns = s(d, "/metadata/namespace").to_owned();
    let name = s(d, "/metadata/name").to_owned();
    let uid = s(d, "/metadata/uid").to_owned();
    let template = d.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    let desired = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let paused = d
        .pointer("/spec/paused")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let rss = owned_by(store, REPLICA_SETS, &ns, &uid);
    let new_index = rss
        .iter()
        .position(|rs| without_hash(&rs["spec"]["template"]) == without_hash(&template));
    let max_old = rss
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_index)
        .map(|(_, rs)| revision(rs))
        .max()
        .unwrap_or(0);
    let next = max_old + 1;
    if paused {
        // `sync` cleans up a paused Deployment (pkg/controller/deployment/sync.go).
        clean_up(store, d, new_index.map(|i| &rss[i]));
        return None;
    }
    let (surge, _) = bounds(d, desired);
    let mut outcome = None;
    let new_rs = match new_index {
        None => {
            let hash = template_hash(&template);
            let mut t = template.clone();
            t["metadata"]["labels"][HASH] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"][HASH] = json!(hash);
            let mut rs = json!({
                "metadata": {
                    "name": format!("{name}-{hash}"),
                    "namespace": ns,
                    "labels": t["metadata"]["labels"].clone(),
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid,
                        "controller": true, "blockOwnerDeletion": true
                    }],
                },
                "spec": {
                    "replicas": 0,
                    "minReadySeconds": d["spec"].get("minReadySeconds").cloned().unwrap_or(json!(0)),
                    "selector": selector,
                    "template": t,
                },
            });
            copy_annotations(d, &mut rs);
            let a = annotations_mut(&mut rs);
            a.insert(REVISION.into(), json!(next.to_string()));
            a.insert(DESIRED.into(), json!(desired.to_string()));
            a.insert(MAX_REPLICAS.into(), json!((desired + surge).to_string()));
            outcome = Some(NewReplicaSet::Created);
            store.put(REPLICA_SETS, rs)
        }
        Some(i) => {
            let mut rs = rss[i].clone();
            let old = revision(&rs);
            copy_annotations(d, &mut rs);
            let a = annotations_mut(&mut rs);
            if old < next {
                if old > 0 {
                    let history = a
                        .get(REVISION_HISTORY)
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let joined = if history.is_empty() {
                        old.to_string()
                    } else {
                        format!("{history},{old}")
                    };
                    a.insert(REVISION_HISTORY.into(), json!(joined));
                }
                a.insert(REVISION.into(), json!(next.to_string()));
                outcome = Some(NewReplicaSet::Found);
            }
            a.insert(DESIRED.into(), json!(desired.to_string()));
            a.insert(MAX_REPLICAS.into(), json!((desired + surge).to_string()));
            store.put(REPLICA_SETS, rs)
        }
    };
    // The Deployment carries its new ReplicaSet's revision.
    let rev = s(
        &new_rs,
        "/metadata/annotations/deployment.kubernetes.io~1revision",
    )
    .to_owned();
    if s(
        d,
        "/metadata/annotations/deployment.kubernetes.io~1revision",
    ) != rev
    {
        let mut updated = store
            .get(&DEPLOYMENTS, &ns, &name)
            .cloned()
            .unwrap_or_else(|| d.clone());
        annotations_mut(&mut updated).insert(REVISION.into(), json!(rev));
        store.put(DEPLOYMENTS, updated);
    }
    scale(store, d, &new_rs);
    // `rolloutRolling` cleans up only once the rollout is complete
    // (pkg/controller/deployment/rolling.go).
    if rollout_complete(d) {
        clean_up(store, d, Some(&new_rs));
    }
    outcome
}

/// `(maxSurge, maxUnavailable)` of a RollingUpdate Deployment.
fn bounds(d: &Value, desired: i64) -> (i64, i64) {
    let ru = d.pointer("/spec/strategy/rollingUpdate");
    let surge = int_or_percent(ru.and_then(|r| r.get("maxSurge")), desired, "25%", true);
    let mut unavailable = int_or_percent(
        ru.and_then(|r| r.get("maxUnavailable")),
        desired,
        "25%",
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

fn set_replicas(store: &mut Store, rs: &Value, n: i64) {
    if i(rs, "/spec/replicas") != n {
        let mut next = rs.clone();
        next["spec"]["replicas"] = json!(n);
        store.put(REPLICA_SETS, next);
    }
}

/// A rolling update (or a recreate), one step per pass.
fn scale(store: &mut Store, d: &Value, new_rs: &Value) {
    let ns = s(d, "/metadata/namespace");
    let desired = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let rss = owned_by(store, REPLICA_SETS, ns, s(d, "/metadata/uid"));
    let new_name = s(new_rs, "/metadata/name");
    let (new, old): (Vec<Value>, Vec<Value>) = rss
        .into_iter()
        .partition(|rs| s(rs, "/metadata/name") == new_name);
    let Some(new) = new.into_iter().next() else {
        return;
    };
    if s(d, "/spec/strategy/type") == "Recreate" {
        let old_running: i64 = old
            .iter()
            .map(|rs| i(rs, "/spec/replicas") + i(rs, "/status/replicas"))
            .sum();
        for rs in &old {
            set_replicas(store, rs, 0);
        }
        if old_running == 0 {
            set_replicas(store, &new, desired);
        }
        return;
    }
    let (surge, unavailable) = bounds(d, desired);
    let mut new_replicas = i(&new, "/spec/replicas");
    let old_total: i64 = old.iter().map(|rs| i(rs, "/spec/replicas")).sum();
    if new_replicas > desired {
        new_replicas = desired;
    } else if new_replicas < desired {
        let room = desired + surge - (old_total + new_replicas);
        if room > 0 {
            new_replicas += room.min(desired - new_replicas);
        }
    }
    set_replicas(store, &new, new_replicas);

    let all_pods = old_total + new_replicas;
    let min_available = desired - unavailable;
    let new_unavailable = new_replicas - i(&new, "/status/availableReplicas");
    let mut budget = all_pods - min_available - new_unavailable;
    if budget <= 0 {
        return;
    }
    let mut old: Vec<Value> = old
        .into_iter()
        .filter(|rs| i(rs, "/spec/replicas") > 0)
        .collect();
    // Unhealthy old replicas go first.
    for rs in old.iter_mut() {
        let replicas = i(rs, "/spec/replicas");
        let unhealthy = (replicas - i(rs, "/status/availableReplicas"))
            .max(0)
            .min(budget);
        if unhealthy > 0 {
            set_replicas(store, rs, replicas - unhealthy);
            rs["spec"]["replicas"] = json!(replicas - unhealthy);
            budget -= unhealthy;
        }
    }
    let available: i64 = old
        .iter()
        .map(|rs| i(rs, "/status/availableReplicas").min(i(rs, "/spec/replicas")))
        .sum::<i64>()
        + i(&new, "/status/availableReplicas");
    let mut down = (available - min_available).min(budget);
    for rs in &old {
        if down <= 0 {
            break;
        }
        let replicas = i(rs, "/spec/replicas");
        let step = replicas.min(down);
        if step > 0 {
            set_replicas(store, rs, replicas - step);
            down -= step;
        }
    }
}

/// Whether the rollout is complete by the status stored before this pass, as
/// `DeploymentComplete(d, &d.Status)` in pkg/controller/deployment/util: every
/// replica updated and available, and the current generation observed.
fn rollout_complete(d: &Value) -> bool {
    let desired = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    i(d, "/status/updatedReplicas") == desired
        && i(d, "/status/replicas") == desired
        && i(d, "/status/availableReplicas") == desired
        && i(d, "/status/observedGeneration") >= i(d, "/metadata/generation")
}

/// Deletes the oldest ReplicaSets beyond `revisionHistoryLimit`, as
/// `cleanupDeployment` in pkg/controller/deployment/sync.go: the excess is counted
/// over every old ReplicaSet, the oldest revisions go first, and one that still
/// has replicas or an unobserved generation is skipped, not replaced by a newer one.
/// The caller runs it only when the rollout is complete or the Deployment is paused.
fn clean_up(store: &mut Store, d: &Value, new_rs: Option<&Value>) {
    let limit = d
        .pointer("/spec/revisionHistoryLimit")
        .and_then(Value::as_i64)
        .unwrap_or(10);
    let ns = s(d, "/metadata/namespace");
    let new_name = new_rs.map(|rs| s(rs, "/metadata/name"));
    let mut old: Vec<Value> = owned_by(store, REPLICA_SETS, ns, s(d, "/metadata/uid"))
        .into_iter()
        .filter(|rs| Some(s(rs, "/metadata/name")) != new_name)
        .collect();
    let extra = old.len() as i64 - limit;
    if extra <= 0 {
        return;
    }
    old.sort_by_key(revision);
    for rs in old.iter().take(extra as usize) {
        let idle = i(rs, "/spec/replicas") == 0
            && i(rs, "/status/replicas") == 0
            && i(rs, "/metadata/generation") <= i(rs, "/status/observedGeneration");
        if idle {
            store.remove(REPLICA_SETS, ns, s(rs, "/metadata/name"));
        }
    }
}

fn sync_replica_set(store: &mut Store, rs: &Value, now: Instant) {
    let ns = s(rs, "/metadata/namespace").to_owned();
    let rs_name = s(rs, "/metadata/name").to_owned();
    let want = i(rs, "/spec/replicas");
    let mut pods = owned_by(store, PODS, &ns, s(rs, "/metadata/uid"));
    let have = pods.len() as i64;
    if have < want {
        for _ in have..want {
            let mut n = store.resource_version();
            let name = loop {
                let candidate = format!("{rs_name}-{}", suffix(n));
                if store.get(&PODS, &ns, &candidate).is_none() {
                    break candidate;
                }
                n += 1;
            };
            let mut spec = rs["spec"]["template"]["spec"].clone();
            spec["nodeName"] = json!("node-1");
            let pod = store.put(
                PODS,
                json!({
                    "metadata": {
                        "name": name,
                        "namespace": ns,
                        "labels": rs["spec"]["template"]["metadata"]["labels"].clone(),
                        "ownerReferences": [{
                            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                            "uid": rs["metadata"]["uid"].clone(), "controller": true, "blockOwnerDeletion": true
                        }],
                    },
                    "spec": spec,
                    "status": {
                        "phase": "Pending",
                        "conditions": [{"type": "PodScheduled", "status": "True"}],
                        "startTime": now_rfc3339(),
                    },
                }),
            );
            store
                .pod_times
                .insert(s(&pod, "/metadata/uid").to_owned(), (now, None));
        }
    } else if have > want {
        // Not-ready pods first, then the newest.
        pods.sort_by_key(|p| {
            (
                is_ready(p),
                std::cmp::Reverse(s(p, "/metadata/creationTimestamp").to_owned()),
            )
        });
        for p in pods.iter().take((have - want) as usize) {
            store.pod_times.remove(s(p, "/metadata/uid"));
            store.remove(PODS, &ns, s(p, "/metadata/name"));
        }
    }
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Builds one container's status from its spec.
type ContainerStatusFn<'a> = Box<dyn Fn(&Value) -> Value + 'a>;

/// Plays the kubelet: containers start after `pod_ready_after`, unless their image
/// crash-loops or cannot be pulled.
fn kubelet(store: &mut Store, pod: &Value, b: &Behaviour, now: Instant) {
    let uid = s(pod, "/metadata/uid").to_owned();
    let (born, ready_since) = *store.pod_times.entry(uid.clone()).or_insert((now, None));
    let age = now.saturating_duration_since(born);
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let failure = containers.iter().find_map(|c| {
        b.failing_images
            .get(c["image"].as_str().unwrap_or(""))
            .copied()
    });
    let started = age >= b.pod_ready_after;
    let mut status = pod.get("status").cloned().unwrap_or_else(|| json!({}));
    if status.get("startTime").is_none() {
        status["startTime"] = json!(now_rfc3339());
    }
    let mut ready_time = ready_since;
    let (phase, ready, container_status): (&str, bool, ContainerStatusFn<'_>) = match (
        started, failure,
    ) {
        (false, _) => (
            "Pending",
            false,
            Box::new(|c: &Value| {
                json!({"name": c["name"], "image": c["image"], "ready": false, "restartCount": 0,
                "started": false, "state": {"waiting": {"reason": "ContainerCreating"}}})
            }),
        ),
        (true, None) => {
            ready_time.get_or_insert(now);
            let since = status["startTime"].clone();
            (
                "Running",
                true,
                Box::new(move |c: &Value| {
                    json!({"name": c["name"], "image": c["image"], "ready": true, "restartCount": 0,
                    "started": true, "state": {"running": {"startedAt": since}}})
                }),
            )
        }
        (true, Some(ImageFailure::CrashLoop)) => {
            let restarts = 1
                + (age - b.pod_ready_after).as_millis()
                    / (b.pod_ready_after.as_millis().max(1) * 4);
            let pod_name = s(pod, "/metadata/name").to_owned();
            (
                "Running",
                false,
                Box::new(move |c: &Value| {
                    let crashing = b.failing_images.get(c["image"].as_str().unwrap_or(""))
                        == Some(&ImageFailure::CrashLoop);
                    if crashing {
                        json!({"name": c["name"], "image": c["image"], "ready": false, "restartCount": restarts as i64,
                            "started": false,
                            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
                            "state": {"waiting": {"reason": "CrashLoopBackOff",
                                "message": format!("back-off 10s restarting failed container={} pod={pod_name}", c["name"].as_str().unwrap_or(""))}}})
                    } else {
                        json!({"name": c["name"], "image": c["image"], "ready": true, "restartCount": 0,
                            "started": true, "state": {"running": {}}})
                    }
                }),
            )
        }
        (true, Some(ImageFailure::ImagePull)) => {
            let backoff = age >= b.pod_ready_after * 2;
            (
                "Pending",
                false,
                Box::new(move |c: &Value| {
                    let image = c["image"].as_str().unwrap_or("");
                    if b.failing_images.get(image) == Some(&ImageFailure::ImagePull) {
                        let (reason, message) = if backoff {
                            (
                                "ImagePullBackOff",
                                format!("Back-off pulling image {image:?}"),
                            )
                        } else {
                            (
                                "ErrImagePull",
                                format!("failed to pull and unpack image {image:?}: not found"),
                            )
                        };
                        json!({"name": c["name"], "image": image, "ready": false, "restartCount": 0, "started": false,
                            "state": {"waiting": {"reason": reason, "message": message}}})
                    } else {
                        json!({"name": c["name"], "image": image, "ready": false, "restartCount": 0, "started": false,
                            "state": {"waiting": {"reason": "PodInitializing"}}})
                    }
                }),
            )
        }
    };
    status["phase"] = json!(phase);
    status["containerStatuses"] = Value::Array(containers.iter().map(&container_status).collect());
    let flag = |b: bool| if b { "True" } else { "False" };
    let unready: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let mut ready_cond = json!({"type": "Ready", "status": flag(ready)});
    if !ready {
        ready_cond["reason"] = json!("ContainersNotReady");
        ready_cond["message"] = json!(format!(
            "containers with unready status: [{}]",
            unready.join(" ")
        ));
    }
    status["conditions"] = json!([
        {"type": "PodScheduled", "status": "True"},
        {"type": "Initialized", "status": "True"},
        {"type": "ContainersReady", "status": flag(ready)},
        ready_cond,
    ]);
    if !ready {
        ready_time = None;
    }
    store.pod_times.insert(uid, (born, ready_time));
    if pod.get("status") != Some(&status) {
        let mut next = pod.clone();
        next["status"] = status;
        store.put(PODS, next);
    }
}

fn replica_set_status(store: &mut Store, rs: &Value, now: Instant) {
    let pods = owned_by(
        store,
        PODS,
        s(rs, "/metadata/namespace"),
        s(rs, "/metadata/uid"),
    );
    let min_ready = Duration::from_secs(i(rs, "/spec/minReadySeconds").max(0) as u64);
    let ready = pods.iter().filter(|p| is_ready(p)).count();
    let available = pods
        .iter()
        .filter(|p| {
            store
                .pod_times
                .get(s(p, "/metadata/uid"))
                .and_then(|(_, r)| *r)
                .is_some_and(|r| now.saturating_duration_since(r) >= min_ready)
                && is_ready(p)
        })
        .count();
    let status = json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": pods.len(),
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": i(rs, "/metadata/generation"),
    });
    if rs.get("status") != Some(&status) {
        let mut next = rs.clone();
        next["status"] = status;
        store.put(REPLICA_SETS, next);
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    old: Option<&Value>,
    now: &str,
    update: bool,
) -> Value {
    let transition = match old {
        Some(o) if o["status"] == json!(status) => o["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let last_update = match old {
        Some(o) if !update && o["status"] == json!(status) && o["reason"] == json!(reason) => {
            o["lastUpdateTime"].clone()
        }
        _ => json!(now),
    };
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastUpdateTime": last_update, "lastTransitionTime": transition})
}

fn deployment_status(store: &mut Store, d: &Value, new_event: Option<NewReplicaSet>) {
    let ns = s(d, "/metadata/namespace");
    let desired = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let template = without_hash(&d["spec"]["template"]);
    let rss = owned_by(store, REPLICA_SETS, ns, s(d, "/metadata/uid"));
    let new = rss
        .iter()
        .find(|rs| without_hash(&rs["spec"]["template"]) == template);
    let sum = |p: &str| rss.iter().map(|rs| i(rs, p)).sum::<i64>();
    let replicas = sum("/status/replicas");
    let updated = new.map_or(0, |rs| i(rs, "/status/replicas"));
    let ready = sum("/status/readyReplicas");
    let available = sum("/status/availableReplicas");
    let old_status = d.get("status").cloned().unwrap_or(json!({}));
    let old_conditions: Vec<Value> = old_status["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let old_cond = |t: &str| old_conditions.iter().find(|c| c["type"] == json!(t));
    let now = now_rfc3339();
    let (_, max_unavailable) = bounds(d, desired);
    let new_name = new
        .map(|rs| s(rs, "/metadata/name").to_owned())
        .unwrap_or_default();

    let available_cond = if available >= desired - max_unavailable {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            old_cond("Available"),
            &now,
            false,
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            old_cond("Available"),
            &now,
            false,
        )
    };
    let old_progressing = old_cond("Progressing");
    let paused = d
        .pointer("/spec/paused")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let complete =
        new.is_some() && updated == desired && replicas == updated && available >= updated;
    let progressed = i(&old_status, "/updatedReplicas") < updated
        || i(&old_status, "/readyReplicas") < ready
        || i(&old_status, "/availableReplicas") < available
        || i(&old_status, "/replicas") - i(&old_status, "/updatedReplicas") > replicas - updated;
    let deadline = d
        .pointer("/spec/progressDeadlineSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(600);
    let timed_out = old_progressing.is_some_and(|c| {
        c["reason"] == "ProgressDeadlineExceeded"
            || (c["reason"] != "NewReplicaSetAvailable"
                && c["lastUpdateTime"]
                    .as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .is_some_and(|t| jiff::Timestamp::now().duration_since(t).as_secs() > deadline))
    });
    let progressing = if paused {
        condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            old_progressing,
            &now,
            false,
        )
    } else if old_progressing.is_some_and(|c| c["reason"] == "DeploymentPaused") {
        condition(
            "Progressing",
            "True",
            "DeploymentResumed",
            "Deployment is resumed".into(),
            old_progressing,
            &now,
            true,
        )
    } else if let Some(event) = new_event {
        let (reason, message) = match event {
            NewReplicaSet::Created => (
                "NewReplicaSetCreated",
                format!("Created new replica set {new_name:?}"),
            ),
            NewReplicaSet::Found => (
                "FoundNewReplicaSet",
                format!("Found new replica set {new_name:?}"),
            ),
        };
        condition(
            "Progressing",
            "True",
            reason,
            message,
            old_progressing,
            &now,
            true,
        )
    } else if complete {
        condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet {new_name:?} has successfully progressed."),
            old_progressing,
            &now,
            false,
        )
    } else if progressed {
        condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet {new_name:?} is progressing."),
            old_progressing,
            &now,
            true,
        )
    } else if timed_out {
        condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet {new_name:?} has timed out progressing."),
            old_progressing,
            &now,
            false,
        )
    } else {
        old_progressing.cloned().unwrap_or_else(|| {
            condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet {new_name:?} is progressing."),
                None,
                &now,
                true,
            )
        })
    };
    let status = json!({
        "observedGeneration": i(d, "/metadata/generation"),
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (desired - available).max(0),
        "conditions": [available_cond, progressing],
    });
    if d.get("status") != Some(&status) {
        let mut next = store
            .get(&DEPLOYMENTS, ns, s(d, "/metadata/name"))
            .cloned()
            .unwrap_or_else(|| d.clone());
        next["status"] = status;
        store.put(DEPLOYMENTS, next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_ignore_the_hash_label_and_key_order() {
        let a = json!({"metadata": {"labels": {"app": "x", "pod-template-hash": "zz"}}, "spec": {"b": 1, "a": 2}});
        let b = json!({"spec": {"a": 2, "b": 1}, "metadata": {"labels": {"app": "x"}}});
        assert_eq!(template_hash(&a), template_hash(&b));
        assert_ne!(template_hash(&a), template_hash(&json!({"spec": {}})));
        assert!(
            template_hash(&a)
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
    }

    #[test]
    fn surge_and_unavailable_round_like_the_controller() {
        let d = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
        assert_eq!(bounds(&d, 3), (1, 0));
        assert_eq!(bounds(&d, 4), (1, 1));
        let zero =
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}});
        assert_eq!(bounds(&zero, 3), (0, 1));
    }
}
