//! [`TestApiServer`]: an in-process Kubernetes API server for tests and demos.
//!
//! It is not a cluster, and not a full API server: it serves the four resources a
//! rollback touches (`apps/v1` Deployments and ReplicaSets, `v1` Pods,
//! `coordination.k8s.io/v1` Leases) faithfully enough for kube-rs and kubectl-style
//! logic to run unchanged against it:
//!
//! * objects are stored as the API's JSON, with `resourceVersion`, `uid`,
//!   `creationTimestamp`, the API server's defaults, and `metadata.generation`
//!   bumped on every spec change (and, for Deployments, annotation change);
//! * `PUT` with a stale `resourceVersion` answers `409 Conflict`, a Lease `PUT`
//!   without one `422 Invalid`, a Lease time that is not a `MicroTime` (six
//!   fractional digits) `400 BadRequest`; `POST` of an
//!   existing name `409 AlreadyExists`; validation failures `422 Invalid`; every
//!   error is a `Status` object;
//! * `PATCH` accepts JSON patch, merge patch and strategic merge patch (merge keys
//!   for containers, env, volumes, ports, …); `?dryRun=All` validates and stores
//!   nothing; the `status` subresource is separate from the main resource, and a
//!   write to it keeps the spec (and a Deployment's labels) but takes the metadata;
//! * lists honour `labelSelector` and `fieldSelector` (`metadata.name`), and
//!   `?watch=true` streams events from a `resourceVersion` (`410` when too old),
//!   with periodic `BOOKMARK`s when `allowWatchBookmarks=true`;
//! * a deployment controller, a ReplicaSet controller and a kubelet run every tick:
//!   a new ReplicaSet with the next `deployment.kubernetes.io/revision` when the
//!   template changes (or the old one renumbered, with `revision-history`), rolling
//!   updates with maxSurge/maxUnavailable paced by pod readiness, status counts and
//!   the `Available`/`Progressing` conditions, and `ProgressDeadlineExceeded` after
//!   `progressDeadlineSeconds` without progress; old ReplicaSets beyond
//!   `revisionHistoryLimit` are deleted only once the rollout is complete (or the
//!   Deployment is paused). Images marked with
//!   [`TestApiServer::fail_image`] crash-loop or fail to pull and never become ready.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use meshos_rollback_k8s::testing::{TestApiServer, deployment_manifest};
//!
//! let server = TestApiServer::start().await?;
//! server.apply(deployment_manifest("production", "meshos-api", "api", "meshos/api:v1", 2))?;
//! let client = server.client(); // a kube::Client for the server, retries off
//! # drop(client);
//! # Ok(()) }
//! ```

mod controller;
mod patch;
mod select;
mod server;
mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use controller::Behaviour;
use store::{ApiError, KINDS, Store};

/// How a marked image fails in the simulated kubelet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFailure {
    /// The container starts and exits at once: `CrashLoopBackOff`, restarts counting up.
    CrashLoop,
    /// The image cannot be pulled: `ErrImagePull`, then `ImagePullBackOff`.
    ImagePull,
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `PATCH`, …
    pub method: String,
    /// The URL path.
    pub path: String,
    /// The decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The `Content-Type` header, empty when absent.
    pub content_type: String,
    /// The body as text.
    pub body: String,
}

impl RecordedRequest {
    /// The value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether it was a `?watch=true` request.
    pub fn is_watch(&self) -> bool {
        self.param("watch") == Some("true")
    }
}

#[derive(Debug)]
struct Fault {
    method: Method,
    path_contains: String,
    code: u16,
    remaining: u32,
}

#[derive(Debug)]
struct Settings {
    watch: bool,
    bookmark_interval: Duration,
    behaviour: Behaviour,
    faults: Vec<Fault>,
    requests: Vec<RecordedRequest>,
}

/// State shared by the HTTP handler, the controllers and the handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
    settings: Mutex<Settings>,
    stop: watch::Sender<bool>,
}

impl Shared {
    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().expect("settings")
    }

    pub(crate) fn record(&self, r: RecordedRequest) {
        self.settings().requests.push(r);
    }

    pub(crate) fn watch_enabled(&self) -> bool {
        self.settings().watch
    }

    pub(crate) fn bookmark_interval(&self) -> Duration {
        self.settings().bookmark_interval
    }

    pub(crate) fn take_fault(&self, method: &Method, path: &str) -> Option<ApiError> {
        let mut s = self.settings();
        let fault = s
            .faults
            .iter_mut()
            .find(|f| f.remaining > 0 && f.method == *method && path.contains(&f.path_contains))?;
        fault.remaining -= 1;
        let code = fault.code;
        Some(ApiError::new(
            code,
            format!("injected fault: {code} for {method} {path}"),
        ))
    }

    /// Resolves once the server is stopping.
    pub(crate) fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// Settings for [`TestApiServer`].
#[derive(Debug, Clone)]
pub struct TestApiServerBuilder {
    pod_ready_after: Duration,
    tick: Duration,
    watch: bool,
    event_log: usize,
    bookmark_interval: Duration,
}

impl Default for TestApiServerBuilder {
    fn default() -> Self {
        TestApiServerBuilder {
            pod_ready_after: Duration::from_millis(100),
            tick: Duration::from_millis(20),
            watch: true,
            event_log: store::LOG_SIZE,
            bookmark_interval: Duration::from_secs(60),
        }
    }
}

impl TestApiServerBuilder {
    /// How long a new pod takes to become ready (default 100 ms); paces rollouts.
    pub fn with_pod_ready_after(mut self, d: Duration) -> Self {
        self.pod_ready_after = d;
        self
    }

    /// How often the controllers run (default 20 ms).
    pub fn with_tick(mut self, d: Duration) -> Self {
        self.tick = d.max(Duration::from_millis(1));
        self
    }

    /// Whether `?watch=true` is served (default `true`); when not, watches answer
    /// `405 Method Not Allowed`.
    pub fn with_watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// How many events the server keeps for watches (default 4096). A watch from a
    /// resource version older than the log gets a `410 Expired` event, as after
    /// etcd compaction: a small log makes watches expire all the time.
    pub fn with_event_log(mut self, events: usize) -> Self {
        self.event_log = events.max(1);
        self
    }

    /// How often a watch that asked for `allowWatchBookmarks=true` gets a `BOOKMARK`
    /// event (default 60 s, about the API server's watch cache's pace): an object of
    /// the watched kind carrying only `metadata.resourceVersion`.
    pub fn with_bookmark_interval(mut self, d: Duration) -> Self {
        self.bookmark_interval = d.max(Duration::from_millis(1));
        self
    }

    /// Binds `127.0.0.1` on a free port and starts serving and reconciling.
    pub async fn start(self) -> std::io::Result<TestApiServer> {
        let (tx, _) = broadcast::channel(4096);
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(tx, self.event_log)),
            settings: Mutex::new(Settings {
                watch: self.watch,
                bookmark_interval: self.bookmark_interval,
                behaviour: Behaviour {
                    pod_ready_after: self.pod_ready_after,
                    failing_images: HashMap::new(),
                },
                faults: Vec::new(),
                requests: Vec::new(),
            }),
            stop,
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let stopped = shared.stopped();
        let serve = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await;
        });
        let controller_shared = shared.clone();
        let tick = self.tick;
        let controllers = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let behaviour = controller_shared.settings().behaviour.clone();
                let mut store = controller_shared.store.lock().expect("store");
                controller::reconcile(&mut store, &behaviour, Instant::now());
            }
        });
        Ok(TestApiServer {
            shared,
            addr,
            tasks: vec![serve, controllers],
        })
    }
}

/// A Kubernetes API server on `127.0.0.1` with a deployment controller; see the
/// [module docs](self). Stops when dropped.
#[derive(Debug)]
pub struct TestApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        let _ = self.shared.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn kind(plural: &str) -> Result<store::Kind, String> {
    KINDS
        .iter()
        .find(|k| k.plural == plural)
        .copied()
        .ok_or_else(|| format!("the test API server does not serve {plural:?}"))
}

impl TestApiServer {
    /// A server with the default settings.
    pub async fn start() -> std::io::Result<Self> {
        Self::builder().start().await
    }

    /// Settings for a server.
    pub fn builder() -> TestApiServerBuilder {
        TestApiServerBuilder::default()
    }

    /// The base URL, such as `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A `kube::Client` for this server, with kube's default retries turned off (a
    /// retried 503 would look like a hang).
    pub fn client(&self) -> kube::Client {
        let mut config = kube::Config::new(self.url().parse().expect("a valid URL"));
        config.default_retry = false;
        kube::Client::try_from(config).expect("a client for a plain HTTP URL")
    }

    /// Creates `obj`, or replaces the object of that name (keeping its status), as
    /// `kubectl apply` of a full manifest would. Returns the stored object.
    pub fn apply(&self, obj: Value) -> Result<Value, String> {
        let plural = match obj.get("kind").and_then(Value::as_str) {
            Some("Deployment") => "deployments",
            Some("ReplicaSet") => "replicasets",
            Some("Pod") => "pods",
            Some("Lease") => "leases",
            Some("Secret") => "secrets",
            other => return Err(format!("the test API server does not serve kind {other:?}")),
        };
        let k = kind(plural)?;
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let mut store = self.shared.store.lock().expect("store");
        let result = if let Some(current) = store.get(&k, &ns, &name) {
            // Written at the current resource version, so kinds that refuse an
            // unconditional update (Leases) take it too.
            let rv = current["metadata"]["resourceVersion"].clone();
            let mut obj = obj;
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("resourceVersion".into(), rv);
            }
            store.update(k, &ns, &name, obj, false, false)
        } else {
            store.create(k, &ns, obj, false)
        };
        result.map_err(|e| format!("{} {}", e.code, e.message))
    }

    /// Writes an object's `status` through the status subresource, as its controller
    /// would (the server's own controllers may overwrite it on their next tick).
    pub fn put_status(
        &self,
        plural: &str,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> Result<Value, String> {
        let k = kind(plural)?;
        let mut store = self.shared.store.lock().expect("store");
        // A status `PUT` writes metadata too, so send the object as it is.
        let mut obj = store
            .get(&k, namespace, name)
            .cloned()
            .ok_or_else(|| format!("404 {} {name:?} not found", k.qualified()))?;
        obj["status"] = status;
        store
            .update(k, namespace, name, obj, true, false)
            .map_err(|e| format!("{} {}", e.code, e.message))
    }

    /// The stored object, if any (`plural` is `deployments`, `replicasets`, `pods` or
    /// `leases`).
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let k = kind(plural).ok()?;
        self.shared
            .store
            .lock()
            .expect("store")
            .get(&k, namespace, name)
            .cloned()
    }

    /// Every stored object of `plural` in `namespace`, sorted by name.
    pub fn list(&self, plural: &str, namespace: &str) -> Vec<Value> {
        let Ok(k) = kind(plural) else {
            return Vec::new();
        };
        self.shared.store.lock().expect("store").list(
            &k,
            Some(namespace),
            &Default::default(),
            &Default::default(),
        )
    }

    /// Makes pods running `image` fail as `failure` from now on.
    pub fn fail_image(&self, image: &str, failure: ImageFailure) {
        self.shared
            .settings()
            .behaviour
            .failing_images
            .insert(image.to_owned(), failure);
    }

    /// Turns `?watch=true` on or off (off answers `405`).
    pub fn set_watch_enabled(&self, on: bool) {
        self.shared.settings().watch = on;
    }

    /// Answers the next `times` requests with `method` whose path and query
    /// (`/apis/apps/v1/namespaces/p/deployments?watch=true&…`, not URL-decoded)
    /// contain `path_contains` with HTTP `code` and a `Status` body.
    pub fn fail_next(&self, method: &str, path_contains: &str, code: u16, times: u32) {
        self.shared.settings().faults.push(Fault {
            method: method.parse().expect("an HTTP method"),
            path_contains: path_contains.to_owned(),
            code,
            remaining: times,
        });
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.settings().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.settings().requests.clear();
    }
}

/// A Deployment manifest: `replicas` pods of one container, selected by
/// `app: <name>`, with kubectl's defaults left to the server.
pub fn deployment_manifest(
    namespace: &str,
    name: &str,
    container: &str,
    image: &str,
    replicas: i32,
) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": container, "image": image}]}
            }
        }
    })
}
