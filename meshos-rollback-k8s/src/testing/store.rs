//! The object store behind the test API server: Kubernetes JSON objects with
//! resource versions, generations, defaults, validation and a watch event log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::patch::{self, PatchError};
use super::select::{FieldSelector, LabelSelector};

/// A resource type the server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) kind: &'static str,
    /// Whether `metadata.generation` counts spec changes.
    pub(crate) generation: bool,
    /// Whether `status` is a subresource (kept on main-resource writes).
    pub(crate) status: bool,
    /// Whether a `PUT` without `metadata.resourceVersion` is accepted (the
    /// registry strategy's `AllowUnconditionalUpdate`).
    pub(crate) unconditional_update: bool,
}

impl Kind {
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, as the server names a resource in messages.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

pub(crate) const DEPLOYMENTS: Kind = Kind {
    group: "apps",
    version: "v1",
    plural: "deployments",
    kind: "Deployment",
    unconditional_update: true,
    generation: true,
    status: true,
};
pub(crate) const REPLICA_SETS: Kind = Kind {
    group: "apps",
    version: "v1",
    plural: "replicasets",
    kind: "ReplicaSet",
    unconditional_update: true,
    generation: true,
    status: true,
};
pub(crate) const PODS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "pods",
    kind: "Pod",
    unconditional_update: true,
    generation: false,
    status: true,
};
pub(crate) const LEASES: Kind = Kind {
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    kind: "Lease",
    unconditional_update: false,
    generation: false,
    status: false,
};

pub(crate) const SECRETS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "secrets",
    kind: "Secret",
    unconditional_update: true,
    generation: false,
    status: false,
};

pub(crate) const KINDS: [Kind; 5] = [DEPLOYMENTS, REPLICA_SETS, PODS, LEASES, SECRETS];

/// An error answer, sent as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(code: u16, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason_for(code),
            message: message.into(),
        }
    }

    pub(crate) fn not_found(kind: &Kind, name: &str) -> Self {
        ApiError::new(404, format!("{} {name:?} not found", kind.qualified()))
    }

    pub(crate) fn status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

/// The `reason` the API server gives with an HTTP status.
pub(crate) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// One change, as a watch sends it.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) rv: u64,
    pub(crate) kind: Kind,
    pub(crate) namespace: String,
    pub(crate) type_: &'static str,
    pub(crate) object: Value,
}

impl Event {
    pub(crate) fn line(&self) -> String {
        let mut line = json!({"type": self.type_, "object": self.object}).to_string();
        line.push('\n');
        line
    }
}

/// How many events the log keeps by default; a watch from an older resource
/// version gets `410 Gone`, as after etcd compaction.
pub(crate) const LOG_SIZE: usize = 4096;

type Key = (&'static str, String, String);

/// Every object, the resource version counter and the event log.
#[derive(Debug)]
pub(crate) struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    uid: u64,
    log: VecDeque<Event>,
    log_size: usize,
    tx: broadcast::Sender<Event>,
    /// When the controller created each pod, and when it became ready.
    pub(crate) pod_times: HashMap<String, (Instant, Option<Instant>)>,
}

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Store {
    pub(crate) fn new(tx: broadcast::Sender<Event>, log_size: usize) -> Self {
        Store {
            objects: BTreeMap::new(),
            rv: 1,
            uid: 0,
            log: VecDeque::new(),
            log_size: log_size.max(1),
            tx,
            pod_times: HashMap::new(),
        }
    }

    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The oldest resource version a watch can start from.
    pub(crate) fn oldest_watchable(&self) -> u64 {
        self.log.front().map_or(self.rv, |e| e.rv - 1)
    }

    pub(crate) fn events_after(&self, rv: u64) -> impl Iterator<Item = &Event> {
        self.log.iter().filter(move |e| e.rv > rv)
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    pub(crate) fn get(&self, kind: &Kind, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(kind.plural, ns.to_owned(), name.to_owned()))
    }

    /// Objects of `kind` in `ns` (every namespace when `None`), sorted by namespace
    /// and name like the real server's list.
    pub(crate) fn list(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((plural, n, _), v)| {
                *plural == kind.plural
                    && ns.is_none_or(|ns| ns == n)
                    && labels.matches(v)
                    && fields.matches(v)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn emit(&mut self, kind: Kind, ns: &str, type_: &'static str, object: Value) {
        let event = Event {
            rv: self.rv,
            kind,
            namespace: ns.to_owned(),
            type_,
            object,
        };
        self.log.push_back(event.clone());
        if self.log.len() > self.log_size {
            self.log.pop_front();
        }
        // No receivers is fine: nobody watches.
        let _ = self.tx.send(event);
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// `POST`: a new object.
    pub(crate) fn create(
        &mut self,
        kind: Kind,
        ns: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::new(400, "the body must be a JSON object"));
        }
        decode_micro_times(&kind, &obj)?;
        let meta = obj
            .as_object_mut()
            .expect("object")
            .entry("metadata")
            .or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            if m.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
                && let Some(prefix) = m.get("generateName").and_then(Value::as_str)
            {
                let name = format!("{prefix}{}", suffix(self.uid + 1));
                m.insert("name".into(), json!(name));
            }
            m.insert("namespace".into(), json!(ns));
        }
        let name = name_of(&obj).to_owned();
        if name.is_empty() {
            return Err(ApiError::new(
                422,
                format!("{} is invalid: metadata.name: Required value", kind.kind),
            ));
        }
        if self.get(&kind, ns, &name).is_some() {
            return Err(ApiError::new(
                409,
                format!("{} {name:?} already exists", kind.qualified()),
            )
            .with_reason("AlreadyExists"));
        }
        if kind.status {
            // Status is the controllers' to write, through the status subresource.
            obj.as_object_mut().expect("object").remove("status");
        }
        default_object(&kind, &mut obj);
        validate(&kind, &obj)?;
        self.uid += 1;
        let uid = format!("00000000-0000-4000-8000-{:012}", self.uid);
        let rv = if dry_run {
            self.rv.to_string()
        } else {
            self.next_rv()
        };
        let m = obj["metadata"].as_object_mut().expect("metadata");
        m.insert("uid".into(), json!(uid));
        m.insert("resourceVersion".into(), json!(rv));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if kind.generation {
            m.insert("generation".into(), json!(1));
        }
        obj["apiVersion"] = json!(kind.api_version());
        obj["kind"] = json!(kind.kind);
        if !dry_run {
            self.objects
                .insert((kind.plural, ns.to_owned(), name), obj.clone());
            self.emit(kind, ns, "ADDED", obj.clone());
        }
        Ok(obj)
    }

    /// `PUT`: replaces an object; a `metadata.resourceVersion` in the body must be
    /// the current one. `status` writes only the status; otherwise a kind with a
    /// status subresource keeps its status.
    pub(crate) fn update(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        mut obj: Value,
        status: bool,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let Some(old) = self.get(&kind, ns, name).cloned() else {
            return Err(ApiError::not_found(&kind, name));
        };
        if !obj.is_object() {
            return Err(ApiError::new(400, "the body must be a JSON object"));
        }
        decode_micro_times(&kind, &obj)?;
        let body_name = name_of(&obj);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::new(
                400,
                format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                ),
            ));
        }
        let expected = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let current = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if expected.is_empty() && !kind.unconditional_update {
            // The generic registry's Update refuses an unconditional update when the
            // strategy disallows it, as the Lease strategy does
            // (staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go,
            // pkg/registry/coordination/lease/strategy.go).
            return Err(ApiError::new(
                422,
                format!(
                    "{} {name:?} is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                    kind.qualified()
                ),
            ));
        }
        if !expected.is_empty() && expected != current {
            return Err(ApiError::new(
                409,
                format!(
                    "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
                    kind.qualified()
                ),
            ));
        }
        if status {
            // The status strategies take the body whole, metadata included, and put
            // back only what the status subresource may not change: the spec, and for
            // Deployments the labels (pkg/registry/apps/deployment/strategy.go and
            // pkg/registry/apps/replicaset/strategy.go, `PrepareForUpdate` of the
            // status strategy). Identity and generation stay the server's below.
            keep(&mut obj, &old, "spec");
            if kind.plural == "deployments" {
                let labels = old.pointer("/metadata/labels").cloned();
                let meta = obj
                    .as_object_mut()
                    .expect("object")
                    .entry("metadata")
                    .or_insert_with(|| json!({}));
                match (labels, meta.as_object_mut()) {
                    (Some(l), Some(m)) => {
                        m.insert("labels".into(), l);
                    }
                    (None, Some(m)) => {
                        m.remove("labels");
                    }
                    _ => {}
                }
            }
        } else {
            if kind.status {
                match old.get("status") {
                    Some(s) => obj["status"] = s.clone(),
                    None => {
                        obj.as_object_mut().expect("object").remove("status");
                    }
                }
            }
            default_object(&kind, &mut obj);
            validate(&kind, &obj)?;
        }
        self.store_update(kind, ns, name, &old, obj, status, dry_run)
    }

    /// `PATCH`: applies a patch of `content_type` and writes the result like `PUT`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        content_type: &str,
        body: &[u8],
        status: bool,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let Some(mut doc) = self.get(&kind, ns, name).cloned() else {
            return Err(ApiError::not_found(&kind, name));
        };
        let media = content_type.split(';').next().unwrap_or("").trim();
        let applied = match media {
            "application/json-patch+json" => patch::json_patch(&mut doc, body),
            "application/merge-patch+json" => patch::merge_patch(&mut doc, body),
            "application/strategic-merge-patch+json" => {
                patch::strategic_merge_patch(&mut doc, body)
            }
            other => {
                return Err(ApiError::new(
                    415,
                    format!("the test API server does not accept patches of type {other:?}"),
                ));
            }
        };
        applied.map_err(|e| match e {
            PatchError::BadRequest(m) => ApiError::new(400, m),
            PatchError::Invalid(m) => ApiError::new(422, m),
        })?;
        self.update(kind, ns, name, doc, status, dry_run)
    }

    /// `DELETE`.
    pub(crate) fn delete(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = (kind.plural, ns.to_owned(), name.to_owned());
        let Some(mut obj) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(&kind, name));
        };
        if dry_run {
            return Ok(obj);
        }
        self.objects.remove(&key);
        obj["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.emit(kind, ns, "DELETED", obj.clone());
        Ok(obj)
    }

    #[allow(clippy::too_many_arguments)]
    fn store_update(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        old: &Value,
        mut obj: Value,
        status: bool,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        // An immutable Secret keeps its data and stays immutable
        // (pkg/apis/core/validation/validation.go, ValidateSecretUpdate).
        if kind.plural == "secrets" && old.get("immutable") == Some(&json!(true)) {
            if obj.get("data") != old.get("data") {
                return Err(invalid(
                    &kind,
                    &obj,
                    "data",
                    "field is immutable when `immutable` is set",
                ));
            }
            if obj.get("immutable") != Some(&json!(true)) {
                return Err(invalid(
                    &kind,
                    &obj,
                    "immutable",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        // Identity and bookkeeping stay the server's.
        {
            let meta = obj
                .as_object_mut()
                .expect("object")
                .entry("metadata")
                .or_insert_with(|| json!({}));
            for field in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
            ] {
                match old["metadata"].get(field) {
                    Some(v) => {
                        meta[field] = v.clone();
                    }
                    None => {
                        meta.as_object_mut().map(|m| m.remove(field));
                    }
                }
            }
        }
        // Spec changes bump the generation; for Deployments annotation changes do
        // too, because the controller copies them to the ReplicaSets
        // (pkg/registry/apps/deployment/strategy.go, `PrepareForUpdate`). A status
        // write never does.
        let annotations_changed = kind.plural == "deployments"
            && old.pointer("/metadata/annotations") != obj.pointer("/metadata/annotations");
        if kind.generation && !status && (old.get("spec") != obj.get("spec") || annotations_changed)
        {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            obj["metadata"]["generation"] = json!(g + 1);
        }
        obj["apiVersion"] = json!(kind.api_version());
        obj["kind"] = json!(kind.kind);
        let mut same = obj.clone();
        same["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if same == *old {
            // A no-op write keeps the resource version, as the real server does.
            return Ok(old.clone());
        }
        if dry_run {
            obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
            return Ok(obj);
        }
        obj["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.objects
            .insert((kind.plural, ns.to_owned(), name.to_owned()), obj.clone());
        self.emit(kind, ns, "MODIFIED", obj.clone());
        Ok(obj)
    }

    /// A write by a controller: creates or replaces without preconditions.
    pub(crate) fn put(&mut self, kind: Kind, obj: Value) -> Value {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let name = name_of(&obj).to_owned();
        match self.get(&kind, &ns, &name).cloned() {
            None => {
                let status = obj.get("status").cloned();
                let created = self
                    .create(kind, &ns, obj, false)
                    .expect("controllers create valid objects");
                match status {
                    Some(status) => {
                        let mut next = created.clone();
                        next["status"] = status;
                        self.store_update(kind, &ns, &name, &created, next, true, false)
                            .expect("controllers write valid objects")
                    }
                    None => created,
                }
            }
            // The deployment controller writes a Deployment (its revision annotation
            // and status) only through `UpdateStatus`
            // (pkg/controller/deployment/sync.go), so those writes bump no generation.
            Some(old) => self
                .store_update(kind, &ns, &name, &old, obj, kind == DEPLOYMENTS, false)
                .expect("controllers write valid objects"),
        }
    }

    /// A deletion by a controller.
    pub(crate) fn remove(&mut self, kind: Kind, ns: &str, name: &str) {
        let _ = self.delete(kind, ns, name, false);
    }
}

impl ApiError {
    pub(crate) fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = reason;
        self
    }
}

/// Five characters from the API server's name alphabet.
pub(crate) fn suffix(n: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
    (0..5)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Puts `old`'s top-level `field` back into `obj` (or removes it when `old` has none).
fn keep(obj: &mut Value, old: &Value, field: &str) {
    if let Some(o) = obj.as_object_mut() {
        match old.get(field) {
            Some(v) => {
                o.insert(field.to_owned(), v.clone());
            }
            None => {
                o.remove(field);
            }
        }
    }
}

fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if !obj.contains_key(key) {
        obj.insert(key.to_owned(), value);
    }
}

/// The API server's defaults for the fields these kinds use, so templates compare
/// the way they do against a real server.
fn default_object(kind: &Kind, obj: &mut Value) {
    match kind.plural {
        "deployments" => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
                set_default(
                    spec,
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                );
                if let Some(t) = spec.get_mut("template") {
                    default_pod_template(t);
                }
            }
        }
        "replicasets" => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(spec, "replicas", json!(1));
                if let Some(t) = spec.get_mut("template") {
                    default_pod_template(t);
                }
            }
        }
        "pods" => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec);
            }
        }
        _ => {}
    }
}

fn default_pod_template(template: &mut Value) {
    if let Some(t) = template.as_object_mut() {
        set_default(t, "metadata", json!({}));
        if let Some(spec) = t.get_mut("spec") {
            default_pod_spec(spec);
        }
    }
}

fn default_pod_spec(spec: &mut Value) {
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["initContainers", "containers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                let tag_latest = !image.contains('@')
                    && image
                        .rsplit('/')
                        .next()
                        .is_none_or(|last| !last.contains(':') || last.ends_with(":latest"));
                set_default(
                    c,
                    "imagePullPolicy",
                    json!(if tag_latest { "Always" } else { "IfNotPresent" }),
                );
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                set_default(c, "resources", json!({}));
            }
        }
    }
}

/// Go's layout for `metav1.MicroTime` (`RFC3339Micro` in
/// staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/micro_time.go).
const RFC3339_MICRO: &str = "2006-01-02T15:04:05.000000Z07:00";

/// Whether `t` parses with [`RFC3339_MICRO`]: exactly six fractional digits, then
/// `Z` or a `±hh:mm` offset.
pub(crate) fn is_micro_time(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() < 27 {
        return false;
    }
    let shape = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..26);
    let zone = match &b[26..] {
        [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    };
    // Go also rejects an out-of-range month, day or hour.
    shape && zone && t.parse::<jiff::Timestamp>().is_ok()
}

/// The API server decodes a Lease's `acquireTime` and `renewTime` as `MicroTime`,
/// whose `UnmarshalJSON` accepts `null` or a string in [`RFC3339_MICRO`] and
/// nothing else; a body it cannot decode is a `400 BadRequest`.
fn decode_micro_times(kind: &Kind, obj: &Value) -> Result<(), ApiError> {
    if kind.plural != "leases" {
        return Ok(());
    }
    for field in ["acquireTime", "renewTime"] {
        let Some(v) = obj.get("spec").and_then(|s| s.get(field)) else {
            continue;
        };
        let ok = match v {
            Value::Null => true,
            Value::String(t) => is_micro_time(t),
            _ => false,
        };
        if !ok {
            return Err(ApiError::new(
                400,
                format!(
                    "Lease in version \"v1\" cannot be handled as a Lease: spec.{field}: parsing time {v} as \"{RFC3339_MICRO}\": cannot parse as a MicroTime"
                ),
            ));
        }
    }
    Ok(())
}

fn invalid(kind: &Kind, obj: &Value, field: &str, message: &str) -> ApiError {
    ApiError::new(
        422,
        format!(
            "{} {:?} is invalid: {field}: {message}",
            kind.kind,
            name_of(obj)
        ),
    )
}

/// The validation rules a rollback can trip over.
fn validate(kind: &Kind, obj: &Value) -> Result<(), ApiError> {
    let template_spec_path = match kind.plural {
        "deployments" | "replicasets" => "/spec/template/spec",
        "pods" => "/spec",
        "leases" => {
            if let Some(d) = obj
                .pointer("/spec/leaseDurationSeconds")
                .and_then(Value::as_i64)
                && d <= 0
            {
                return Err(invalid(
                    kind,
                    obj,
                    "spec.leaseDurationSeconds",
                    "must be greater than 0",
                ));
            }
            return Ok(());
        }
        "secrets" => {
            // `data` is []byte: JSON carries it base64-encoded, and anything else is
            // refused when decoding (core/v1 Secret in the API reference).
            use base64::Engine as _;
            for (k, v) in obj
                .get("data")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let decoded = v
                    .as_str()
                    .map(|t| base64::engine::general_purpose::STANDARD.decode(t));
                if !matches!(decoded, Some(Ok(_))) {
                    return Err(ApiError::new(
                        400,
                        format!(
                            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data.{k}"
                        ),
                    ));
                }
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    if kind.plural != "pods" {
        let selector = obj
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or(Value::Null);
        let labels = obj
            .pointer("/spec/template/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        let match_labels = selector.get("matchLabels").and_then(Value::as_object);
        if match_labels.is_none_or(|m| m.is_empty()) && selector.get("matchExpressions").is_none() {
            return Err(invalid(kind, obj, "spec.selector", "Required value"));
        }
        for (k, v) in match_labels.into_iter().flatten() {
            if labels.get(k) != Some(v) {
                return Err(invalid(
                    kind,
                    obj,
                    "spec.template.metadata.labels",
                    "Invalid value: `selector` does not match template `labels`",
                ));
            }
        }
        if obj
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .is_some_and(|r| r < 0)
        {
            return Err(invalid(
                kind,
                obj,
                "spec.replicas",
                "must be greater than or equal to 0",
            ));
        }
    }
    let containers = obj
        .pointer(&format!("{template_spec_path}/containers"))
        .and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        return Err(invalid(
            kind,
            obj,
            "spec.template.spec.containers",
            "Required value",
        ));
    };
    for (i, c) in containers.iter().enumerate() {
        if c.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            return Err(invalid(
                kind,
                obj,
                &format!("spec.template.spec.containers[{i}].name"),
                "Required value",
            ));
        }
        if c.get("image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .is_empty()
        {
            return Err(invalid(
                kind,
                obj,
                &format!("spec.template.spec.containers[{i}].image"),
                "Required value",
            ));
        }
        for (j, e) in c
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if e.get("value").is_some() && e.get("valueFrom").is_some() {
                return Err(invalid(
                    kind,
                    obj,
                    &format!("spec.template.spec.containers[{i}].env[{j}].valueFrom"),
                    "Invalid value: may not be specified when `value` is not empty",
                ));
            }
        }
    }
    Ok(())
}
