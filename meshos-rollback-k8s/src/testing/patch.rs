//! The patch types of `PATCH` requests: JSON patch (RFC 6902), JSON merge patch
//! (RFC 7386) and the subset of strategic merge patch that names list items by
//! their merge key.

use serde_json::{Map, Value};

/// The merge key of the lists strategic merge patch merges item by item, by field
/// name (as in the Kubernetes API's `patchMergeKey` tags). Other lists are replaced.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "hostAliases"
        | "resourceClaims" => match field {
            "hostAliases" => "ip",
            _ => "name",
        },
        "volumeMounts" | "volumeDevices" => "mountPath",
        "ports" => "containerPort",
        "conditions" => "type",
        "ownerReferences" => "uid",
        _ => return None,
    })
}

/// Why a patch could not be applied.
#[derive(Debug)]
pub(crate) enum PatchError {
    /// The body is not valid for the patch type (400).
    BadRequest(String),
    /// The patch does not apply to the object (422).
    Invalid(String),
}

/// Applies a JSON patch to `doc`.
pub(crate) fn json_patch(doc: &mut Value, body: &[u8]) -> Result<(), PatchError> {
    let patch: json_patch::Patch = serde_json::from_slice(body)
        .map_err(|e| PatchError::BadRequest(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(doc, &patch)
        .map_err(|e| PatchError::Invalid(format!("the JSON patch does not apply: {e}")))
}

/// Applies a JSON merge patch to `doc`.
pub(crate) fn merge_patch(doc: &mut Value, body: &[u8]) -> Result<(), PatchError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::BadRequest(format!("invalid merge patch: {e}")))?;
    json_patch::merge(doc, &patch);
    Ok(())
}

/// Applies a strategic merge patch to `doc`.
pub(crate) fn strategic_merge_patch(doc: &mut Value, body: &[u8]) -> Result<(), PatchError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::BadRequest(format!("invalid strategic merge patch: {e}")))?;
    if !patch.is_object() {
        return Err(PatchError::BadRequest(
            "a strategic merge patch must be an object".into(),
        ));
    }
    merge_map(doc, &patch)
}

fn merge_map(doc: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Some(patch) = patch.as_object() else {
        *doc = patch.clone();
        return Ok(());
    };
    if let Some(directive) = patch.get("$patch") {
        return match directive.as_str() {
            Some("replace") => {
                let mut replaced = patch.clone();
                replaced.remove("$patch");
                *doc = Value::Object(replaced);
                Ok(())
            }
            Some("delete") => {
                *doc = Value::Null;
                Ok(())
            }
            other => Err(PatchError::BadRequest(format!(
                "unsupported $patch directive {other:?}"
            ))),
        };
    }
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let target = doc.as_object_mut().expect("made an object");
    for (key, value) in patch {
        if key.starts_with("$setElementOrder/") {
            // Only orders items; the server keeps its own order here.
            continue;
        }
        if key.starts_with('$') {
            return Err(PatchError::BadRequest(format!(
                "the test API server does not implement the {key} directive"
            )));
        }
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(_) => {
                let slot = target.entry(key.clone()).or_insert(Value::Null);
                merge_map(slot, value)?;
                if slot.is_null() {
                    target.remove(key);
                }
            }
            Value::Array(items) => match merge_key(key) {
                Some(mk) if items.iter().all(Value::is_object) => {
                    let slot = target
                        .entry(key.clone())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    merge_list(slot, items, mk)?;
                }
                _ => {
                    target.insert(key.clone(), value.clone());
                }
            },
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
    Ok(())
}

fn merge_list(doc: &mut Value, items: &[Value], key: &str) -> Result<(), PatchError> {
    if !doc.is_array() {
        *doc = Value::Array(Vec::new());
    }
    let list = doc.as_array_mut().expect("made an array");
    for item in items {
        let Some(id) = item.get(key) else {
            return Err(PatchError::Invalid(format!(
                "a list item has no merge key {key:?}: {item}"
            )));
        };
        let position = list.iter().position(|x| x.get(key) == Some(id));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(p), true) => {
                list.remove(p);
            }
            (None, true) => {}
            (Some(p), false) => merge_map(&mut list[p], item)?,
            (None, false) => {
                let mut fresh = Value::Object(Map::new());
                merge_map(&mut fresh, item)?;
                list.push(fresh);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_and_env_by_name() {
        let mut doc = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "api", "image": "v1", "env": [{"name": "A", "value": "1"}, {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
            {"name": "sidecar", "image": "s1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "api", "env": [{"name": "DB", "value": "postgresql://x", "valueFrom": null}, {"name": "B", "value": "2"}]}
        ]}}}});
        strategic_merge_patch(&mut doc, patch.to_string().as_bytes()).unwrap();
        assert_eq!(
            doc,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "api", "image": "v1", "env": [{"name": "A", "value": "1"}, {"name": "DB", "value": "postgresql://x"}, {"name": "B", "value": "2"}]},
                {"name": "sidecar", "image": "s1"}
            ]}}}})
        );
        let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "s2"}]}}}});
        strategic_merge_patch(&mut doc, image.to_string().as_bytes()).unwrap();
        assert_eq!(
            doc.pointer("/spec/template/spec/containers/1/image"),
            Some(&json!("s2"))
        );
        let delete = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}});
        strategic_merge_patch(&mut doc, delete.to_string().as_bytes()).unwrap();
        assert_eq!(
            doc.pointer("/spec/template/spec/containers")
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let unsupported = json!({"spec": {"$retainKeys": ["a"]}});
        assert!(strategic_merge_patch(&mut doc, unsupported.to_string().as_bytes()).is_err());
    }

    #[test]
    fn json_and_merge_patches() {
        let mut doc = json!({"metadata": {"annotations": {"a": "1"}}, "spec": {"replicas": 3}});
        json_patch(
            &mut doc,
            br#"[{"op":"replace","path":"/metadata/annotations","value":{"b":"2"}}]"#,
        )
        .unwrap();
        assert_eq!(doc["metadata"]["annotations"], json!({"b": "2"}));
        assert!(matches!(
            json_patch(
                &mut doc,
                br#"[{"op":"test","path":"/spec/replicas","value":4}]"#
            ),
            Err(PatchError::Invalid(_))
        ));
        assert!(matches!(
            json_patch(&mut doc, b"{}"),
            Err(PatchError::BadRequest(_))
        ));
        merge_patch(&mut doc, br#"{"spec":{"replicas":null,"paused":true}}"#).unwrap();
        assert_eq!(doc["spec"], json!({"paused": true}));
    }
}
