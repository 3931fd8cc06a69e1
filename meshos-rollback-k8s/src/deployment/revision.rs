//! A Deployment's rollout history as `kubectl rollout undo` reads it: the owned
//! ReplicaSets, their revision annotations, and the pod templates they carry.
//!
//! Pure functions over the API server's JSON, so every kubectl rule is tested on
//! fixtures without a client.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use serde_json::{Map, Value, json};

/// The annotation holding a ReplicaSet's (and its Deployment's) revision number.
pub(crate) const REVISION: &str = "deployment.kubernetes.io/revision";
/// The revision numbers a reused ReplicaSet had before its current one.
pub(crate) const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The label the deployment controller adds to a ReplicaSet's pods and selector.
pub(crate) const HASH_LABEL: &str = "pod-template-hash";

/// Annotations kubectl keeps from the Deployment instead of copying them from the
/// ReplicaSet on undo (kubectl's `annotationsToSkip`).
const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// One ReplicaSet owned by a Deployment.
#[derive(Debug, Clone)]
pub(crate) struct OwnedReplicaSet {
    pub(crate) name: String,
    /// The revision annotation: `Some(0)` when absent (as kubectl reads it), `None`
    /// when it is not a number (kubectl skips such a ReplicaSet).
    pub(crate) revision: Option<i64>,
    /// Earlier revision numbers of this ReplicaSet, oldest first.
    pub(crate) history: Vec<i64>,
    pub(crate) annotations: BTreeMap<String, String>,
    /// `spec.template` as the server sent it.
    pub(crate) template: Value,
    pub(crate) created: Option<String>,
    /// The `pod-template-hash` of its pods, when known.
    pub(crate) hash: Option<String>,
    pub(crate) available: i32,
}

impl OwnedReplicaSet {
    /// Reads a ReplicaSet.
    pub(crate) fn from_object(rs: &DynamicObject) -> Self {
        let annotations: BTreeMap<String, String> =
            rs.metadata.annotations.clone().unwrap_or_default();
        let revision = match annotations.get(REVISION) {
            None => Some(0),
            Some(v) => v.trim().parse::<i64>().ok(),
        };
        let history = annotations
            .get(REVISION_HISTORY)
            .map(|h| {
                h.split(',')
                    .filter_map(|n| n.trim().parse::<i64>().ok())
                    .collect()
            })
            .unwrap_or_default();
        let template = rs
            .data
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        let hash = rs
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HASH_LABEL))
            .cloned()
            .or_else(|| {
                template
                    .pointer("/metadata/labels/pod-template-hash")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        let available = rs
            .data
            .pointer("/status/availableReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(0) as i32;
        OwnedReplicaSet {
            name: rs.metadata.name.clone().unwrap_or_default(),
            revision,
            history,
            annotations,
            template,
            created: rs
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string()),
            hash,
            available,
        }
    }

    /// The revision number this pod template was first rolled out as.
    ///
    /// The deployment controller renumbers a ReplicaSet it reuses (an undo to
    /// revision 1 makes it revision 3, with `revision-history: 1`), so the first
    /// number is the one that stays put: it is the [`RevisionId`] this crate reports.
    ///
    /// [`RevisionId`]: meshos_rollback_core::model::RevisionId
    pub(crate) fn stable_id(&self) -> i64 {
        self.history
            .iter()
            .copied()
            .chain(self.revision)
            .min()
            .unwrap_or(0)
    }

    /// Whether `n` names this ReplicaSet, now or before it was reused.
    fn known_as(&self, n: i64) -> bool {
        self.revision == Some(n) || self.history.contains(&n)
    }

    /// The image of the template's first container.
    pub(crate) fn image(&self) -> Option<String> {
        first_image(&self.template)
    }
}

/// The image of a pod template's first container.
pub(crate) fn first_image(template: &Value) -> Option<String> {
    template
        .pointer("/spec/containers/0/image")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The ReplicaSets controlled by the Deployment with `uid`, in list order
/// (kubectl's `GetAllReplicaSets` filters the selector's list the same way).
pub(crate) fn owned_by(uid: &str, list: &[DynamicObject]) -> Vec<OwnedReplicaSet> {
    list.iter()
        .filter(|rs| {
            rs.metadata.owner_references.as_ref().is_some_and(|refs| {
                refs.iter()
                    .any(|r| r.controller == Some(true) && r.uid == uid)
            })
        })
        .map(OwnedReplicaSet::from_object)
        .collect()
}

/// The Deployment's history: its new ReplicaSet (the one whose template matches the
/// Deployment's), and the others.
#[derive(Debug, Clone)]
pub(crate) struct History {
    /// Old ReplicaSets in list order.
    pub(crate) old: Vec<OwnedReplicaSet>,
    pub(crate) new: Option<OwnedReplicaSet>,
}

impl History {
    /// Splits `owned` like the deployment controller's `FindNewReplicaSet`: the
    /// oldest ReplicaSet whose template equals `template` (ignoring the hash label).
    pub(crate) fn split(template: &Value, owned: Vec<OwnedReplicaSet>) -> Self {
        let mut by_age: Vec<usize> = (0..owned.len()).collect();
        by_age.sort_by(|&a, &b| {
            (&owned[a].created, &owned[a].name).cmp(&(&owned[b].created, &owned[b].name))
        });
        let new_index = by_age
            .into_iter()
            .find(|&i| equal_ignore_hash(&owned[i].template, template));
        let mut old = Vec::with_capacity(owned.len());
        let mut new = None;
        for (i, rs) in owned.into_iter().enumerate() {
            if Some(i) == new_index {
                new = Some(rs);
            } else {
                old.push(rs);
            }
        }
        History { old, new }
    }

    /// Every ReplicaSet in kubectl's order: the old ones, then the new one.
    pub(crate) fn all(&self) -> impl Iterator<Item = &OwnedReplicaSet> {
        self.old.iter().chain(self.new.as_ref())
    }

    /// The revision number the controller gives the next new template: one past
    /// the highest, as `MaxRevision(oldRSs) + 1`.
    pub(crate) fn next_revision(&self) -> i64 {
        self.all().filter_map(|rs| rs.revision).max().unwrap_or(0) + 1
    }

    /// Finds the ReplicaSet whose template equals `template`, or `None`.
    pub(crate) fn matching(&self, template: &Value) -> Option<&OwnedReplicaSet> {
        let mut candidates: Vec<&OwnedReplicaSet> = self
            .all()
            .filter(|rs| equal_ignore_hash(&rs.template, template))
            .collect();
        candidates.sort_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)));
        candidates.into_iter().next()
    }

    /// The id of the revision a Deployment with `template` runs or is about to run:
    /// the matching ReplicaSet's, or the number the controller will assign.
    pub(crate) fn id_for(&self, template: &Value) -> i64 {
        self.matching(template)
            .map(OwnedReplicaSet::stable_id)
            .unwrap_or_else(|| self.next_revision())
    }

    /// Every ReplicaSet except the one matching `template`, newest revision first.
    pub(crate) fn previous(&self, template: &Value) -> Vec<&OwnedReplicaSet> {
        let current = self.matching(template).map(|rs| rs.name.clone());
        let mut out: Vec<&OwnedReplicaSet> = self
            .all()
            .filter(|rs| Some(&rs.name) != current.as_ref())
            .collect();
        out.sort_by(|a, b| b.revision.cmp(&a.revision).then(a.name.cmp(&b.name)));
        out
    }
}

/// Why kubectl refuses an undo before looking at the Deployment's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UndoRefusal {
    /// `--to-revision` names no ReplicaSet.
    RevisionNotFound(i64),
    /// Fewer than two revisions: nothing to go back to.
    NoHistory,
}

/// Picks the ReplicaSet an undo restores, as kubectl's `deploymentRevision`:
/// `to_revision == 0` is the second-highest revision; otherwise the ReplicaSet with
/// that revision number. Beyond kubectl, a number from a ReplicaSet's
/// `revision-history` also finds it, so a [`RevisionId`] stays valid after the
/// controller renumbers its ReplicaSet.
///
/// [`RevisionId`]: meshos_rollback_core::model::RevisionId
pub(crate) fn undo_target(
    history: &History,
    to_revision: i64,
) -> Result<&OwnedReplicaSet, UndoRefusal> {
    if to_revision < 0 {
        return Err(UndoRefusal::RevisionNotFound(to_revision));
    }
    let mut latest: Option<(i64, &OwnedReplicaSet)> = None;
    let mut previous: Option<(i64, &OwnedReplicaSet)> = None;
    for rs in history.all() {
        let Some(v) = rs.revision else { continue };
        if to_revision == 0 {
            if latest.is_none_or(|(l, _)| l < v) {
                previous = latest;
                latest = Some((v, rs));
            } else if previous.is_none_or(|(p, _)| p < v) {
                previous = Some((v, rs));
            }
        } else if v == to_revision {
            return Ok(rs);
        }
    }
    if to_revision > 0 {
        return history
            .all()
            .find(|rs| rs.known_as(to_revision))
            .ok_or(UndoRefusal::RevisionNotFound(to_revision));
    }
    previous.map(|(_, rs)| rs).ok_or(UndoRefusal::NoHistory)
}

/// The one JSON patch kubectl sends for an undo: replace `spec.template` with the
/// ReplicaSet's (without the hash label) and `metadata.annotations` with the
/// Deployment's bookkeeping annotations plus the ReplicaSet's others.
pub(crate) fn undo_patch(
    target: &OwnedReplicaSet,
    deployment_annotations: &BTreeMap<String, String>,
) -> Value {
    let mut template = target.template.clone();
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    let mut annotations = Map::new();
    for key in ANNOTATIONS_TO_SKIP {
        if let Some(v) = deployment_annotations.get(key) {
            annotations.insert(key.to_owned(), Value::String(v.clone()));
        }
    }
    for (k, v) in &target.annotations {
        if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
            annotations.insert(k.clone(), Value::String(v.clone()));
        }
    }
    json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ])
}

/// kubectl's `equalIgnoreHash`: two pod templates are equal when they differ at
/// most in the `pod-template-hash` label. Like apimachinery's semantic equality,
/// a missing map or list equals an empty one.
pub(crate) fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    normalize(without_hash(a)) == normalize(without_hash(b))
}

fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    t
}

/// Drops nulls, empty objects and empty lists, which Go's omitempty and nil-vs-empty
/// semantics make indistinguishable.
fn normalize(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, normalize(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        other => other,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str, hash: Option<&str>) -> Value {
        let mut labels = json!({"app": "meshos-api"});
        if let Some(h) = hash {
            labels["pod-template-hash"] = json!(h);
        }
        json!({
            "metadata": {"labels": labels, "creationTimestamp": null},
            "spec": {"containers": [{"name": "api", "image": image, "resources": {}}]}
        })
    }

    fn rs(name: &str, revision: Option<&str>, history: Option<&str>, image: &str) -> DynamicObject {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = revision {
            annotations.insert(REVISION.into(), json!(r));
        }
        if let Some(h) = history {
            annotations.insert(REVISION_HISTORY.into(), json!(h));
        }
        annotations.insert(
            "kubernetes.io/change-cause".into(),
            json!(format!("deploy {image}")),
        );
        annotations.insert(
            "deployment.kubernetes.io/desired-replicas".into(),
            json!("3"),
        );
        serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": "production",
                "creationTimestamp": format!("2025-10-30T10:0{}:00Z", name.len() % 10),
                "labels": {"app": "meshos-api", "pod-template-hash": name},
                "annotations": annotations,
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "Deployment", "name": "meshos-api",
                    "uid": "d-uid", "controller": true
                }]
            },
            "spec": {"template": template(image, Some(name))}
        }))
        .unwrap()
    }

    fn history(current_image: &str, list: &[DynamicObject]) -> History {
        History::split(&template(current_image, None), owned_by("d-uid", list))
    }

    #[test]
    fn only_controlled_replica_sets_count() {
        let mut foreign = rs("other", Some("9"), None, "x");
        foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "someone-else".into();
        let mut not_controller = rs("adopted", Some("8"), None, "y");
        not_controller.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        let owned = owned_by(
            "d-uid",
            &[foreign, not_controller, rs("a", Some("1"), None, "v1")],
        );
        assert_eq!(owned.len(), 1);
        assert_eq!(owned[0].name, "a");
    }

    #[test]
    fn previous_is_the_second_highest_revision() {
        let list = [
            rs("a", Some("1"), None, "v1"),
            rs("c", Some("3"), None, "v3"),
            rs("b", Some("2"), None, "v2"),
        ];
        let h = history("v3", &list);
        assert_eq!(h.new.as_ref().unwrap().name, "c");
        assert_eq!(undo_target(&h, 0).unwrap().name, "b");
        assert_eq!(undo_target(&h, 1).unwrap().name, "a");
        assert_eq!(
            undo_target(&h, 7).unwrap_err(),
            UndoRefusal::RevisionNotFound(7)
        );
        assert_eq!(
            undo_target(&h, -1).unwrap_err(),
            UndoRefusal::RevisionNotFound(-1)
        );
        assert_eq!(h.next_revision(), 4);
        assert_eq!(h.id_for(&template("v3", None)), 3);
        assert_eq!(h.id_for(&template("v4", None)), 4);
        let prev: Vec<_> = h
            .previous(&template("v3", None))
            .iter()
            .map(|r| r.name.clone())
            .collect();
        assert_eq!(prev, ["b", "a"]);
    }

    #[test]
    fn previous_is_by_revision_even_when_the_template_is_not_yet_observed() {
        // The template was edited back to v1 but the controller has not acted yet:
        // kubectl still picks the second-highest revision.
        let list = [
            rs("a", Some("1"), None, "v1"),
            rs("b", Some("2"), None, "v2"),
            rs("c", Some("3"), None, "v3"),
        ];
        let h = history("v9", &list);
        assert!(h.new.is_none());
        assert_eq!(undo_target(&h, 0).unwrap().name, "b");
    }

    #[test]
    fn renumbered_replica_sets_keep_their_first_revision_as_id() {
        // v1 (1) -> v2 (2) -> undo: v1's ReplicaSet becomes 3 with history 1.
        let list = [
            rs("a", Some("3"), Some("1"), "v1"),
            rs("b", Some("2"), None, "v2"),
        ];
        let h = history("v1", &list);
        let a = h.new.as_ref().unwrap();
        assert_eq!(a.stable_id(), 1);
        // kubectl's numbers work, and so does the first one.
        assert_eq!(undo_target(&h, 3).unwrap().name, "a");
        assert_eq!(undo_target(&h, 1).unwrap().name, "a");
        assert_eq!(undo_target(&h, 0).unwrap().name, "b");
        assert_eq!(h.next_revision(), 4);
        let many = [
            rs("a", Some("7"), Some("1,3,5"), "v1"),
            rs("b", Some("6"), Some("2,4"), "v2"),
        ];
        let h = history("v1", &many);
        assert_eq!(h.new.as_ref().unwrap().stable_id(), 1);
        assert_eq!(undo_target(&h, 4).unwrap().name, "b");
    }

    #[test]
    fn no_history_and_unparseable_revisions() {
        let h = history("v1", &[rs("a", Some("1"), None, "v1")]);
        assert_eq!(undo_target(&h, 0).unwrap_err(), UndoRefusal::NoHistory);
        let h = history("v1", &[]);
        assert_eq!(undo_target(&h, 0).unwrap_err(), UndoRefusal::NoHistory);
        // An unparseable revision is skipped; a missing one reads as 0, as in kubectl.
        let h = history(
            "v2",
            &[
                rs("a", Some("x"), None, "v1"),
                rs("b", Some("2"), None, "v2"),
            ],
        );
        assert_eq!(undo_target(&h, 0).unwrap_err(), UndoRefusal::NoHistory);
        let h = history(
            "v2",
            &[rs("a", None, None, "v1"), rs("b", Some("2"), None, "v2")],
        );
        assert_eq!(undo_target(&h, 0).unwrap().name, "a");
    }

    #[test]
    fn equality_ignores_the_hash_label_and_empty_fields() {
        assert!(equal_ignore_hash(
            &template("v1", Some("abc")),
            &template("v1", None)
        ));
        assert!(!equal_ignore_hash(
            &template("v1", None),
            &template("v2", None)
        ));
        let mut with_empty = template("v1", None);
        with_empty["spec"]["volumes"] = json!([]);
        with_empty["metadata"]["annotations"] = json!({});
        assert!(equal_ignore_hash(&with_empty, &template("v1", Some("zz"))));
        let mut other_label = template("v1", None);
        other_label["metadata"]["labels"]["track"] = json!("canary");
        assert!(!equal_ignore_hash(&other_label, &template("v1", None)));
    }

    #[test]
    fn the_undo_patch_is_kubectls() {
        let target = OwnedReplicaSet::from_object(&rs("a", Some("1"), Some(""), "v1"));
        let deployment_annotations = BTreeMap::from([
            (REVISION.to_owned(), "2".to_owned()),
            (
                "kubernetes.io/change-cause".to_owned(),
                "deploy v2".to_owned(),
            ),
            (
                "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                "{}".to_owned(),
            ),
        ]);
        let patch = undo_patch(&target, &deployment_annotations);
        assert_eq!(
            patch,
            json!([
                {"op": "replace", "path": "/spec/template", "value": template("v1", None)},
                {"op": "replace", "path": "/metadata/annotations", "value": {
                    "deployment.kubernetes.io/revision": "2",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "kubernetes.io/change-cause": "deploy v1",
                }},
            ])
        );
    }
}
