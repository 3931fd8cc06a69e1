//! The HTTP side of the test API server: routing, the verbs, watches and faults.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::select::{FieldSelector, LabelSelector};
use super::store::{ApiError, Event, KINDS, Kind};
use super::{RecordedRequest, Shared};

/// What a path names.
struct Target {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn route(path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => {
            return Err(ApiError::new(
                404,
                "the server could not find the requested resource",
            ));
        }
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        rest => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_owned()), None),
        [plural, name, sub] => (*plural, Some((*name).to_owned()), Some(*sub)),
        _ => {
            return Err(ApiError::new(
                404,
                "the server could not find the requested resource",
            ));
        }
    };
    let kind = KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
        .copied()
        .ok_or_else(|| ApiError::new(404, "the server could not find the requested resource"))?;
    let status = match sub {
        None => false,
        Some("status") if kind.status => true,
        Some(_) => {
            return Err(ApiError::new(
                404,
                "the server could not find the requested resource",
            ));
        }
    };
    if name.is_some() && namespace.is_none() {
        return Err(ApiError::new(
            404,
            "the server could not find the requested resource",
        ));
    }
    Ok(Target {
        kind,
        namespace,
        name,
        status,
    })
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("a valid response")
}

fn error_response(e: &ApiError) -> Response {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.status(),
    )
}

/// Every request lands here.
pub(crate) async fn handle(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let watch = param("watch").is_some_and(|w| w == "true" || w == "1");
    shared.record(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: query.clone(),
        content_type: content_type.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let target_text = match uri.query() {
        Some(q) => format!("{}?{}", uri.path(), q),
        None => uri.path().to_owned(),
    };
    if let Some(fault) = shared.take_fault(&method, &target_text) {
        return error_response(&fault);
    }
    let target = match route(uri.path()) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let dry_run = match param("dryRun") {
        None => false,
        Some("All") => true,
        Some(other) => {
            return error_response(&ApiError::new(
                400,
                format!("unsupported dryRun value {other:?}"),
            ));
        }
    };
    let labels = match LabelSelector::parse(param("labelSelector").unwrap_or("")) {
        Ok(l) => l,
        Err(e) => return error_response(&ApiError::new(400, e)),
    };
    let fields = match FieldSelector::parse(param("fieldSelector").unwrap_or("")) {
        Ok(f) => f,
        Err(e) => return error_response(&ApiError::new(400, e)),
    };
    let ns = target.namespace.clone().unwrap_or_default();
    let kind = target.kind;
    let result = match (&method, &target.name) {
        (&Method::GET, None) if watch => {
            if !shared.watch_enabled() {
                return error_response(&ApiError::new(
                    405,
                    "watch is disabled on this test API server",
                ));
            }
            let timeout = param("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .unwrap_or(1800);
            // Bookmarks only for those who ask (`allowWatchBookmarks` in the watch
            // list options, staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go).
            let bookmarks =
                (param("allowWatchBookmarks") == Some("true")).then(|| shared.bookmark_interval());
            return watch_response(
                &shared,
                target,
                labels,
                fields,
                param("resourceVersion"),
                timeout,
                bookmarks,
            );
        }
        (&Method::GET, None) => {
            let store = shared.store.lock().expect("store");
            let items = store.list(&kind, target.namespace.as_deref(), &labels, &fields);
            let items: Vec<Value> = items
                .into_iter()
                .map(|mut o| {
                    // Items of a list carry no kind, as from the real server.
                    if let Some(m) = o.as_object_mut() {
                        m.remove("kind");
                        m.remove("apiVersion");
                    }
                    o
                })
                .collect();
            Ok((
                StatusCode::OK,
                json!({
                    "apiVersion": kind.api_version(),
                    "kind": format!("{}List", kind.kind),
                    "metadata": {"resourceVersion": store.resource_version().to_string()},
                    "items": items,
                }),
            ))
        }
        (&Method::GET, Some(name)) => {
            let store = shared.store.lock().expect("store");
            store
                .get(&kind, &ns, name)
                .cloned()
                .map(|o| (StatusCode::OK, o))
                .ok_or_else(|| ApiError::not_found(&kind, name))
        }
        (&Method::POST, None) if target.namespace.is_some() => {
            match serde_json::from_slice::<Value>(&body) {
                Ok(obj) => {
                    let mut store = shared.store.lock().expect("store");
                    store
                        .create(kind, &ns, obj, dry_run)
                        .map(|o| (StatusCode::CREATED, o))
                }
                Err(e) => Err(ApiError::new(400, format!("invalid JSON: {e}"))),
            }
        }
        (&Method::PUT, Some(name)) => match serde_json::from_slice::<Value>(&body) {
            Ok(obj) => {
                let mut store = shared.store.lock().expect("store");
                store
                    .update(kind, &ns, name, obj, target.status, dry_run)
                    .map(|o| (StatusCode::OK, o))
            }
            Err(e) => Err(ApiError::new(400, format!("invalid JSON: {e}"))),
        },
        (&Method::PATCH, Some(name)) => {
            let mut store = shared.store.lock().expect("store");
            store
                .patch(
                    kind,
                    &ns,
                    name,
                    &content_type,
                    &body,
                    target.status,
                    dry_run,
                )
                .map(|o| (StatusCode::OK, o))
        }
        (&Method::DELETE, Some(name)) => {
            let mut store = shared.store.lock().expect("store");
            store
                .delete(kind, &ns, name, dry_run)
                .map(|o| (StatusCode::OK, o))
        }
        _ => Err(ApiError::new(
            405,
            format!("{method} is not allowed on {}", uri.path()),
        )),
    };
    match result {
        Ok((code, body)) => json_response(code, &body),
        Err(e) => error_response(&e),
    }
}

fn matches(e: &Event, target: &Target, labels: &LabelSelector, fields: &FieldSelector) -> bool {
    e.kind == target.kind
        && target
            .namespace
            .as_ref()
            .is_none_or(|ns| ns == &e.namespace)
        && labels.matches(&e.object)
        && fields.matches(&e.object)
}

/// A `?watch=true` stream: newline-delimited events after `resourceVersion` (or
/// every current object as `ADDED` when none is given), then live changes, until
/// `timeoutSeconds` or the server stops.
/// The state of a watch's live part.
struct Live {
    rx: tokio::sync::broadcast::Receiver<Event>,
    target: Target,
    labels: LabelSelector,
    fields: FieldSelector,
    /// The newest resource version this watch has seen, sent or filtered out.
    seen: u64,
    done: bool,
    /// How often to send a bookmark, and when the next one is due.
    bookmarks: Option<(Duration, tokio::time::Instant)>,
}

/// A `BOOKMARK` event: an object of the watched kind with only its type and
/// `metadata.resourceVersion` set, saying every change up to that version has been
/// sent (the watch cache's bookmarks, staging/src/k8s.io/apiserver/pkg/storage/cacher;
/// "Watch bookmarks" in the API concepts documentation).
fn bookmark_line(kind: &Kind, rv: u64) -> String {
    let object = json!({
        "kind": kind.kind,
        "apiVersion": kind.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
    });
    format!("{}\n", json!({"type": "BOOKMARK", "object": object}))
}

#[allow(clippy::too_many_arguments)]
fn watch_response(
    shared: &Arc<Shared>,
    target: Target,
    labels: LabelSelector,
    fields: FieldSelector,
    rv: Option<&str>,
    timeout_secs: u64,
    bookmarks: Option<Duration>,
) -> Response {
    let store = shared.store.lock().expect("store");
    let since: Option<u64> = match rv {
        None | Some("") | Some("0") => None,
        Some(v) => match v.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                return error_response(&ApiError::new(
                    400,
                    format!("invalid resourceVersion {v:?}"),
                ));
            }
        },
    };
    let mut backlog: Vec<String> = Vec::new();
    match since {
        Some(n) if n < store.oldest_watchable() => {
            let gone = ApiError::new(
                410,
                format!(
                    "too old resource version: {n} ({})",
                    store.oldest_watchable()
                ),
            );
            backlog.push(format!(
                "{}\n",
                json!({"type": "ERROR", "object": gone.status()})
            ));
            let body = Body::from(backlog.concat());
            return Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .expect("a valid response");
        }
        Some(n) => backlog.extend(
            store
                .events_after(n)
                .filter(|e| matches(e, &target, &labels, &fields))
                .map(Event::line),
        ),
        None => {
            for object in store.list(&target.kind, target.namespace.as_deref(), &labels, &fields) {
                backlog.push(format!("{}\n", json!({"type": "ADDED", "object": object})));
            }
        }
    }
    let receiver = store.subscribe();
    let last_rv = store.resource_version();
    drop(store);
    let backlog = futures::stream::iter(backlog.into_iter().map(Ok::<_, std::io::Error>));
    let state = Live {
        rx: receiver,
        target,
        labels,
        fields,
        seen: last_rv,
        done: false,
        bookmarks: bookmarks.map(|every| (every, tokio::time::Instant::now() + every)),
    };
    let live = futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let next_bookmark = st.bookmarks.map(|(_, at)| at);
            let received = tokio::select! {
                r = st.rx.recv() => Some(r),
                _ = async {
                    match next_bookmark {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => None,
            };
            match received {
                None => {
                    if let Some((every, at)) = st.bookmarks.as_mut() {
                        *at = tokio::time::Instant::now() + *every;
                    }
                    let line = bookmark_line(&st.target.kind, st.seen);
                    return Some((Ok(line), st));
                }
                Some(Ok(e)) => {
                    let new = e.rv > st.seen;
                    st.seen = st.seen.max(e.rv);
                    if new && matches(&e, &st.target, &st.labels, &st.fields) {
                        return Some((Ok(e.line()), st));
                    }
                }
                Some(Err(RecvError::Lagged(_))) => {
                    let gone = ApiError::new(410, "the watch fell behind; start a new one");
                    let line = format!("{}\n", json!({"type": "ERROR", "object": gone.status()}));
                    st.done = true;
                    return Some((Ok(line), st));
                }
                Some(Err(RecvError::Closed)) => return None,
            }
        }
    });
    let deadline = tokio::time::sleep(Duration::from_secs(timeout_secs));
    let stopped = shared.stopped();
    let stream = backlog.chain(live).take_until(async move {
        tokio::select! {
            _ = deadline => {},
            _ = stopped => {},
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("a valid response")
}
