//! Crash and resume with real processes against a real peer: a rollback of two regions
//! over the AWS backends and moto is SIGKILLed at chosen points, and a new process
//! resumes it from the file journal.
//!
//! The test binary re-executes itself: [`crash_child`] is the engine process (it returns
//! at once unless [`ENV_MODE`] is set), [`crash_and_resume_in_new_processes`] the parent
//! that stages each case in its own moto account, runs a child, kills it, runs a second
//! child that resumes, and compares. The engine's promise under test (see
//! `meshos_rollback_core::engine`): resume never repeats a completed step, and the step
//! in flight at the crash is a no-op if it took effect.
//!
//! ## Where the kill lands
//!
//! The child's HTTP connector holds one request of its own choosing and never lets it
//! finish; it writes `gate-hit` first, and the parent kills the child on seeing it. So a
//! kill lands at an exact point however loaded the machine is, with no sleeps:
//!
//! - [`Gate::Line`]: the first request sent once the journal has N lines (it is not
//!   sent): "the journal reached N entries and nothing happened since".
//! - [`Gate::Http`] `before`: the n-th call of an operation is held unsent.
//! - [`Gate::Http`] `after`: the n-th call of an operation went through (moto applied
//!   it and answered) and its answer is held: the effect happened but the process dies
//!   before it can journal it.
//!
//! Regions run one at a time (`max_parallel = 1`, a current-thread runtime in the child)
//! so each case's journal at the kill is the same on every run; the parent asserts its
//! length and last entry, which makes a drifted kill point an error, not a silent pass.
//!
//! ## What is checked, per case
//!
//! 1. The resuming process ends the run `Succeeded`, and the journal shows no completed
//!    step started again after `run_resumed`.
//! 2. Moto's own request recorder (`/moto-api/recorder/*`, one JSON line per request
//!    with method, url, headers and body) shows no mutating call repeated with effect:
//!    see [`check_recording`] for the rule per call. Requests are attributed to the
//!    processes by a header the children add ([`ACTOR_HEADER`]) and to the case by the
//!    moto account header, so the parent's staging and read-back never count.
//! 3. The end state read back from moto equals that of the same scenario run once
//!    without a kill, in its own account (account ids and run ids normalised).
//!
//! Retries are disabled in every SDK configuration, so a request cut off by the kill is
//! never sent again behind the engine's back.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_ecs::config::SharedCredentialsProvider;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region as SdkRegion};
use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, KeyValuePair, NetworkMode, Secret as EcsSecret,
};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, ProtocolEnum, TargetDescription, TargetGroupTuple,
    TargetTypeEnum,
};
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType,
};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::retry::RetryConfig;
use aws_types::SdkConfig;
use meshos_rollback_aws::{AlbTrafficShifter, EcsDeployer, RdsRestorer, Route53DnsSwitcher};
use meshos_rollback_core::engine::{
    ApproverRole, ConnectionSwitch, CustomerImpact, DatabaseSpec, Engine, PreRollbackChecklist,
    Providers, RegionProviders, RegionSpec, RestoreFrom, RollbackRequest, RollbackSpec, RunId,
    RunStatus, Trigger,
};
use meshos_rollback_core::model::{Incident, Region, ServiceId, Severity};
use meshos_rollback_core::provider::{DbInstanceId, RouteId, SnapshotId, TargetId};
use meshos_rollback_core::wait::Backoff;
use secrecy::SecretString;
use support::{Moto, form};

// ---------------------------------------------------------------- the scenario

/// Regions rolled back, in plan order.
const ROLLED_BACK: [&str; 2] = ["us-east-1", "eu-west-1"];
/// Routing weights before the incident; the last region stays in routing (the engine
/// refuses to exclude every region of a weighted set).
const WEIGHTS: [(&str, u32); 3] = [
    ("us-east-1", 100),
    ("eu-west-1", 60),
    ("ap-southeast-2", 50),
];
const ZONE_DOMAIN: &str = "meshos-crash.test";
const RECORD: &str = "api.meshos-crash.test";
const SERVICE: &str = "meshos-api";
const FAMILY: &str = "meshos-api";
const SOURCE_DB: &str = "meshos-db";
const SNAPSHOT: &str = "meshos-db-pre-deploy";
const TARGET_DB: &str = "meshos-db-restored";
const TEMPLATE_SECRET: &str = "meshos-db-url";
/// The Secrets Manager secret the connection switch writes DATABASE_URL to (staged
/// empty in each region; the deployer never creates it).
const DB_URL_SECRET: &str = "meshos/db-url";
/// A piece of the connection string that must never reach a task definition.
const TEMPLATE_PASSWORD: &str = "s3cret";
const TEMPLATE: &str = "postgresql://app:s3cret@{host}:{port}/meshos";
const GOOD_IMAGE: &str = "meshos/mesh-kernel:sha-abc123";
const BAD_IMAGE: &str = "meshos/mesh-kernel:sha-def456";

fn cluster(region: &str) -> String {
    format!("meshos-{region}")
}

// ---------------------------------------------------------------- the processes

/// The child's name as a test, for `--exact`.
const CHILD_TEST: &str = "crash_child";
/// `execute` (plan, write the run id, execute) or `resume` (resume that run id).
const ENV_MODE: &str = "MESHOS_CRASH_CHILD";
/// The case directory: staged resources, run id, journal, gate marker, status.
const ENV_DIR: &str = "MESHOS_CRASH_DIR";
const ENV_ACCOUNT: &str = "MESHOS_CRASH_ACCOUNT";
/// The [`Gate`], encoded; none: run to the end.
const ENV_GATE: &str = "MESHOS_CRASH_GATE";
/// Names the process in [`ACTOR_HEADER`].
const ENV_ACTOR: &str = "MESHOS_CRASH_ACTOR";
/// Added by the children to every request, so the recording says which process sent
/// it (moto records every header).
const ACTOR_HEADER: &str = "x-meshos-crash-actor";
/// How long any child may take, and how long a held child waits to be killed.
const CHILD_BOUND: Duration = Duration::from_secs(120);
/// How often the parent looks at a child and its files.
const POLL: Duration = Duration::from_millis(10);

/// Where a child holds a request (see the module docs).
#[derive(Debug, Clone, PartialEq)]
enum Gate {
    /// The first request once the journal has this many lines, unsent.
    Line(usize),
    /// The `nth` call of `op` signed for `region` (`*`: any, for global Route53).
    Http {
        region: String,
        op: String,
        nth: usize,
        after: bool,
    },
}

impl Gate {
    fn http(region: &str, op: &str, nth: usize, after: bool) -> Self {
        Gate::Http {
            region: region.to_owned(),
            op: op.to_owned(),
            nth,
            after,
        }
    }

    fn encode(&self) -> String {
        match self {
            Gate::Line(n) => format!("line:{n}"),
            Gate::Http {
                region,
                op,
                nth,
                after,
            } => format!(
                "http:{region}:{op}:{nth}:{}",
                if *after { "after" } else { "before" }
            ),
        }
    }

    fn decode(text: &str) -> Self {
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            ["line", n] => Gate::Line(n.parse().expect("line gate count")),
            ["http", region, op, nth, phase] => {
                Gate::http(region, op, nth.parse().expect("nth"), *phase == "after")
            }
            _ => panic!("bad gate {text:?}"),
        }
    }
}

/// One kill point.
struct Case {
    name: &'static str,
    gate: Gate,
    /// What the kill interrupts, for the report.
    covers: &'static str,
    /// The journal at the kill: its length and its last entry (`type step`).
    lines: usize,
    last: &'static str,
}

fn cases() -> Vec<Case> {
    let r53 = "ChangeResourceRecordSets";
    let restore = "RestoreDBInstanceFromDBSnapshot";
    vec![
        Case {
            name: "k01-run-started",
            gate: Gate::Line(1),
            covers: "run on record, no step begun (the first pre-state read is held)",
            lines: 1,
            last: "run_started",
        },
        Case {
            name: "k02-exclusion-started",
            gate: Gate::Line(2),
            covers: "us-east-1 exclusion started with its pre-state, UPSERT not sent",
            lines: 2,
            last: "step_started us-east-1/01-exclude-region",
        },
        Case {
            name: "k03-exclusion-applied",
            gate: Gate::http("*", r53, 1, true),
            covers: "us-east-1 weight 0 applied in Route53, not journalled",
            lines: 2,
            last: "step_started us-east-1/01-exclude-region",
        },
        Case {
            name: "k04-shift-applied",
            gate: Gate::http("us-east-1", "ModifyListener", 1, true),
            covers: "us-east-1 listener moved to stable, not journalled",
            lines: 4,
            last: "step_started us-east-1/02-shift-traffic",
        },
        Case {
            name: "k05-ecs-rollback-applied",
            gate: Gate::http("us-east-1", "UpdateService", 1, true),
            covers: "us-east-1 service pointed at the good task definition, not journalled",
            lines: 6,
            last: "step_started us-east-1/03-roll-back-deployment",
        },
        Case {
            name: "k06-restore-started",
            gate: Gate::Line(10),
            covers: "us-east-1 restore started, nothing sent for it yet",
            lines: 10,
            last: "step_started us-east-1/05-restore-database",
        },
        Case {
            name: "k07-restore-applied",
            gate: Gate::http("us-east-1", restore, 1, true),
            covers: "us-east-1 NEW instance created by RDS, not journalled",
            lines: 10,
            last: "step_started us-east-1/05-restore-database",
        },
        Case {
            name: "k08-switch-registered",
            gate: Gate::http("us-east-1", "RegisterTaskDefinition", 1, true),
            covers: "us-east-1 connection switch: new revision registered, service not yet on it",
            lines: 12,
            last: "step_started us-east-1/06-switch-connection",
        },
        Case {
            name: "k09-switch-applied",
            gate: Gate::http("us-east-1", "UpdateService", 2, true),
            covers: "us-east-1 connection switch fully applied, not journalled",
            lines: 12,
            last: "step_started us-east-1/06-switch-connection",
        },
        Case {
            name: "k10-readmission-started",
            gate: Gate::Line(16),
            covers: "us-east-1 re-admission started, UPSERT not sent",
            lines: 16,
            last: "step_started us-east-1/08-readmit-region",
        },
        Case {
            name: "k11-readmission-applied",
            gate: Gate::http("*", r53, 2, true),
            covers: "us-east-1 back at weight 100 in Route53, not journalled",
            lines: 16,
            last: "step_started us-east-1/08-readmit-region",
        },
        Case {
            name: "k12-between-regions",
            gate: Gate::Line(17),
            covers: "us-east-1 complete, eu-west-1 not begun (its pre-state read is held)",
            lines: 17,
            last: "step_succeeded us-east-1/08-readmit-region",
        },
        Case {
            name: "k13-second-restore-unsent",
            gate: Gate::http("eu-west-1", restore, 1, false),
            covers: "eu-west-1 restore started and checked, RestoreDBInstanceFromDBSnapshot unsent",
            lines: 26,
            last: "step_started eu-west-1/05-restore-database",
        },
        Case {
            name: "k14-last-readmission-applied",
            gate: Gate::http("*", r53, 4, true),
            covers: "eu-west-1 back at weight 60 (the run's last change), not journalled",
            lines: 32,
            last: "step_started eu-west-1/08-readmit-region",
        },
    ]
}

// ---------------------------------------------------------------- the child

/// The engine process. Returns at once unless spawned by the parent.
#[test]
#[ignore = "needs moto server"]
fn crash_child() {
    let Ok(mode) = std::env::var(ENV_MODE) else {
        return;
    };
    // One thread: the region tasks start in plan order, so every run journals alike.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(child_main(&mode));
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// The journal file the line gate counts, known once the child has planned.
static JOURNAL: OnceLock<PathBuf> = OnceLock::new();

fn journal_path(dir: &Path, run: &str) -> PathBuf {
    dir.join("journal").join(format!("{run}.jsonl"))
}

async fn child_main(mode: &str) {
    let dir = PathBuf::from(env(ENV_DIR));
    let account = env(ENV_ACCOUNT);
    let actor = env(ENV_ACTOR);
    let gate = std::env::var(ENV_GATE).ok().map(|g| Gate::decode(&g));
    let staged = Staged::read(&dir);
    let engine = child_engine(&dir, &account, &actor, gate, &staged);
    let report = match mode {
        "execute" => {
            let plan = engine.plan(&spec(&staged)).await.expect("plan");
            eprintln!("{plan}");
            let run = plan.run_id().to_string();
            JOURNAL.set(journal_path(&dir, &run)).expect("planned once");
            write_atomic(&dir.join("run-id"), &run);
            engine.execute(plan, request()).await.expect("execute")
        }
        "resume" => {
            let run = std::fs::read_to_string(dir.join("run-id")).expect("run id");
            let run = RunId::new(run.trim()).expect("run id");
            engine.resume(&run).await.expect("resume")
        }
        other => panic!("unknown child mode {other:?}"),
    };
    eprintln!("{report}");
    write_atomic(
        &dir.join(format!("{actor}.status")),
        &format!("{:?}", report.status),
    );
}

/// Moto answers at once: poll quickly, and not for long.
fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        factor: 2.0,
        max_interval: Duration::from_millis(200),
        max_checks: Some(20),
    }
}

fn child_engine(
    dir: &Path,
    account: &str,
    actor: &str,
    gate: Option<Gate>,
    staged: &Staged,
) -> Engine {
    let endpoint = env("MESHOS_AWS_ENDPOINT");
    let http = GateHttp {
        inner: default_client(),
        account: account.to_owned(),
        actor: actor.to_owned(),
        gate: gate.map(|gate| {
            Arc::new(GateState {
                gate,
                seen: AtomicUsize::new(0),
                fired: AtomicBool::new(false),
                marker: dir.join("gate-hit"),
            })
        }),
    };
    let config = |region: &str| child_config(&endpoint, region, http.clone());
    let mut providers = Providers::new();
    for region in ROLLED_BACK {
        let c = config(region);
        let ecs = EcsDeployer::builder(&c)
            .with_cluster(cluster(region))
            .with_secret_env("DATABASE_URL", DB_URL_SECRET)
            .with_wait(quick())
            // moto serves no ListServiceDeployments: "previous" is the family's previous
            // revision, which this fixture did deploy.
            .with_family_fallback(true)
            .build()
            .expect("ecs");
        let alb = AlbTrafficShifter::builder(&c).build().expect("alb");
        let rds = RdsRestorer::builder(&c)
            .with_wait(quick())
            .build()
            .expect("rds");
        providers = providers.with_region(
            Region::new(region).expect("region"),
            RegionProviders::new(Arc::new(ecs))
                .with_traffic(Arc::new(alb))
                .with_database(Arc::new(rds)),
        );
    }
    // Route53 is global: one switcher for the zone.
    let dns = Route53DnsSwitcher::builder(&config("us-east-1"), &staged.zone)
        .with_wait(quick())
        .build()
        .expect("route53");
    Engine::builder(providers.with_dns(Arc::new(dns)))
        .with_journal_dir(dir.join("journal"))
        .with_holder("crash-resume-test")
        .with_lock_ttl(Duration::from_secs(5))
        .with_secret(TEMPLATE_SECRET, SecretString::from(TEMPLATE))
        .build()
        .expect("engine")
}

fn spec(staged: &Staged) -> RollbackSpec {
    let regions = ROLLED_BACK
        .iter()
        .map(|r| {
            let s = &staged.regions[*r];
            RegionSpec::new(
                Region::new(*r).expect("region"),
                ServiceId::ecs(cluster(r), SERVICE),
            )
            .excluding_from(RECORD)
            .shifting_traffic(RouteId::new(&s.listener), TargetId::new(&s.stable))
            .restoring_database(DatabaseSpec {
                source: DbInstanceId::new(SOURCE_DB),
                target: DbInstanceId::new(TARGET_DB),
                from: RestoreFrom::Snapshot(SnapshotId::new(SNAPSHOT)),
                connection: Some(ConnectionSwitch {
                    env_var: "DATABASE_URL".into(),
                    container: None,
                    template_secret: TEMPLATE_SECRET.into(),
                }),
                accept_data_after_incident: false,
            })
            // Verification needs metrics and health endpoints moto does not have; the
            // state-changing steps are what this test is about.
            .without_verification()
        })
        .collect();
    let mut spec = RollbackSpec::new(regions);
    // One region at a time: a deterministic journal to kill at.
    spec.max_parallel = 1;
    spec
}

fn request() -> RollbackRequest {
    RollbackRequest {
        incident: Incident {
            id: "INC-CRASH-001".into(),
            severity: Severity::High,
            summary: "High error rate after deploying sha-def456".into(),
            // After the staged snapshot: a restore from it brings back no incident data.
            started_at: jiff::Timestamp::now(),
            regions: ROLLED_BACK
                .iter()
                .map(|r| Region::new(*r).expect("region"))
                .collect(),
        },
        trigger: Trigger::Manual(
            PreRollbackChecklist::new()
                .incident_documented("crash-resume test")
                .approved_by("on-call", ApproverRole::OnCallEngineer)
                .customer_impact(CustomerImpact::new(None, "elevated error rates"))
                .stakeholders_notified("not needed for a test"),
        ),
        prior_events: vec![],
    }
}

fn default_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// An SDK configuration for moto with retries disabled: a request cut off by the kill
/// is never silently sent again.
fn child_config(endpoint: &str, region: &str, http: GateHttp) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(SdkRegion::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "static",
        )))
        .retry_config(RetryConfig::disabled())
        .http_client(SharedHttpClient::new(http))
        .build()
}

/// Adds the moto account and actor headers, and holds the gated request.
#[derive(Debug, Clone)]
struct GateHttp {
    inner: SharedHttpClient,
    account: String,
    actor: String,
    gate: Option<Arc<GateState>>,
}

#[derive(Debug)]
struct GateState {
    gate: Gate,
    /// Matching calls seen so far (HTTP gates).
    seen: AtomicUsize,
    fired: AtomicBool,
    marker: PathBuf,
}

impl GateState {
    /// Whether to hold this request: its description, and whether to send it first.
    fn hold(&self, request: &HttpRequest) -> Option<(String, bool)> {
        if self.fired.load(Ordering::SeqCst) {
            return None;
        }
        let call = classify_sdk(request);
        let held = match &self.gate {
            Gate::Line(n) => {
                let lines = JOURNAL.get().map_or(0, |p| line_count(p));
                (lines >= *n).then(|| {
                    (
                        format!(
                            "journal at {lines} lines; held unsent: {} {}",
                            call.0, call.1
                        ),
                        false,
                    )
                })
            }
            Gate::Http {
                region,
                op,
                nth,
                after,
            } => {
                let matches = call.1 == *op && (region == "*" || call.0 == *region);
                (matches && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == *nth).then(|| {
                    let phase = if *after { "answer held" } else { "held unsent" };
                    (format!("{} {} #{nth}: {phase}", call.0, call.1), *after)
                })
            }
        };
        if held.is_some() {
            self.fired.store(true, Ordering::SeqCst);
        }
        held
    }
}

fn line_count(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|c| **c == b'\n').count())
}

/// Tells the parent where the child stopped, then waits to be killed. Bounded, so a
/// child whose parent died does not linger.
async fn held(marker: PathBuf, what: String) -> std::convert::Infallible {
    write_atomic(&marker, &what);
    tokio::time::sleep(CHILD_BOUND).await;
    eprintln!("held for {CHILD_BOUND:?} ({what}) and never killed: exiting");
    std::process::exit(86)
}

impl HttpClient for GateHttp {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(GateConnector {
            inner: self.inner.http_connector(settings, components),
            account: self.account.clone(),
            actor: self.actor.clone(),
            gate: self.gate.clone(),
        })
    }
}

#[derive(Debug)]
struct GateConnector {
    inner: SharedHttpConnector,
    account: String,
    actor: String,
    gate: Option<Arc<GateState>>,
}

impl HttpConnector for GateConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        request
            .headers_mut()
            .insert("x-moto-account-id", self.account.clone());
        request
            .headers_mut()
            .insert(ACTOR_HEADER, self.actor.clone());
        let Some(gate) = &self.gate else {
            return self.inner.call(request);
        };
        match gate.hold(&request) {
            None => self.inner.call(request),
            Some((what, false)) => {
                let marker = gate.marker.clone();
                HttpConnectorFuture::new(async move { match held(marker, what).await {} })
            }
            Some((what, true)) => {
                let marker = gate.marker.clone();
                let inner = self.inner.clone();
                HttpConnectorFuture::new(async move {
                    let answer = inner.call(request).await;
                    let status = match &answer {
                        Ok(r) => format!("HTTP {}", r.status().as_u16()),
                        Err(e) => format!("error {e}"),
                    };
                    match held(marker, format!("{what} ({status})")).await {}
                })
            }
        }
    }
}

// ---------------------------------------------------------------- AWS calls, by wire

/// The region a request is signed for and the operation it calls: the JSON target
/// (ECS), the query `Action` (ELBv2, RDS), or Route53's REST path.
fn classify(
    method: &str,
    path: &str,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
) -> (String, String) {
    let region = header("authorization")
        .and_then(|a| {
            let scope = a.split("Credential=").nth(1)?.split(',').next()?.to_owned();
            scope.split('/').nth(2).map(str::to_owned)
        })
        .unwrap_or_default();
    let op = if let Some(target) = header("x-amz-target") {
        target.rsplit('.').next().unwrap_or_default().to_owned()
    } else if let Some(action) = form(body).remove("Action") {
        action
    } else if method == "POST"
        && path.contains("/hostedzone/")
        && path.trim_end_matches('/').ends_with("/rrset")
    {
        "ChangeResourceRecordSets".to_owned()
    } else {
        format!("{method} {path}")
    };
    (region, op)
}

fn classify_sdk(request: &HttpRequest) -> (String, String) {
    let path = request
        .uri()
        .split_once("://")
        .map_or(request.uri(), |(_, rest)| {
            rest.find('/').map_or("/", |i| &rest[i..])
        });
    classify(
        request.method(),
        path,
        |name| request.headers().get(name).map(str::to_owned),
        request.body().bytes().unwrap_or_default(),
    )
}

// ---------------------------------------------------------------- staging

/// What a case's account holds, written for the children to read.
#[derive(Debug, Clone, Default)]
struct Staged {
    zone: String,
    regions: BTreeMap<String, StagedRegion>,
}

#[derive(Debug, Clone, Default)]
struct StagedRegion {
    listener: String,
    stable: String,
    canary: String,
}

impl Staged {
    fn write(&self, dir: &Path) {
        let mut text = format!("zone\t{}\n", self.zone);
        for (r, s) in &self.regions {
            text += &format!(
                "{r}.listener\t{}\n{r}.stable\t{}\n{r}.canary\t{}\n",
                s.listener, s.stable, s.canary
            );
        }
        write_atomic(&dir.join("staged.tsv"), &text);
    }

    fn read(dir: &Path) -> Self {
        let text = std::fs::read_to_string(dir.join("staged.tsv")).expect("staged.tsv");
        let mut staged = Staged::default();
        for line in text.lines() {
            let (key, value) = line.split_once('\t').expect("key\tvalue");
            if key == "zone" {
                staged.zone = value.to_owned();
                continue;
            }
            let (region, field) = key.split_once('.').expect("region.field");
            let r = staged.regions.entry(region.to_owned()).or_default();
            match field {
                "listener" => r.listener = value.to_owned(),
                "stable" => r.stable = value.to_owned(),
                "canary" => r.canary = value.to_owned(),
                other => panic!("unknown staged field {other}"),
            }
        }
        staged
    }
}

fn container(image: &str, region: &str, account: &str) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name("api")
        .image(image)
        .cpu(256)
        .memory(512)
        .essential(true)
        .environment(
            KeyValuePair::builder()
                .name("LOG_LEVEL")
                .value("info")
                .build(),
        )
        .secrets(
            EcsSecret::builder()
                .name("API_KEY")
                .value_from(format!(
                    "arn:aws:secretsmanager:{region}:{account}:secret:meshos-api-key"
                ))
                .build()
                .expect("secret"),
        )
        .build()
}

/// Per rolled-back region: an ECS service on the bad revision 2 of a family whose
/// revision 1 is good, a listener sending 80/20 to stable/canary, a database with a
/// snapshot from before the incident. A zone whose weighted `api` record routes to all
/// three regions.
async fn stage(account: &str) -> Staged {
    let mut staged = Staged::default();
    let mut aliases = BTreeMap::new();
    for region in ROLLED_BACK {
        let moto = Moto::with_account(region, account);

        let ecs = aws_sdk_ecs::Client::new(&moto.config);
        ecs.create_cluster()
            .cluster_name(cluster(region))
            .send()
            .await
            .expect("create cluster");
        aws_sdk_secretsmanager::Client::new(&moto.config)
            .create_secret()
            .name(DB_URL_SECRET)
            .send()
            .await
            .expect("create secret");
        let mut arns = Vec::new();
        for image in [GOOD_IMAGE, BAD_IMAGE] {
            let out = ecs
                .register_task_definition()
                .family(FAMILY)
                .network_mode(NetworkMode::Awsvpc)
                .requires_compatibilities(Compatibility::Fargate)
                .cpu("256")
                .memory("512")
                .execution_role_arn(format!("arn:aws:iam::{account}:role/ecsTaskExecutionRole"))
                .container_definitions(container(image, region, account))
                .send()
                .await
                .expect("register task definition");
            arns.push(
                out.task_definition()
                    .and_then(|t| t.task_definition_arn())
                    .expect("arn")
                    .to_owned(),
            );
        }
        let created = ecs
            .create_service()
            .cluster(cluster(region))
            .service_name(SERVICE)
            .task_definition(&arns[1])
            .desired_count(support::ECS_RUNNING)
            .send()
            .await
            .expect("create service");
        assert_eq!(
            created.service().map(|s| s.running_count()),
            Some(support::ECS_RUNNING),
            "the moto server must run with MOTO_ECS_SERVICE_RUNNING={}",
            support::ECS_RUNNING
        );

        let (vpc, subnets) = moto.default_subnets();
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&moto.config);
        let lb = elb
            .create_load_balancer()
            .name("meshos-api")
            .set_subnets(Some(subnets))
            .send()
            .await
            .expect("create load balancer");
        let lb = lb.load_balancers()[0].clone();
        aliases.insert(
            region,
            (
                lb.dns_name().unwrap_or_default().to_owned(),
                lb.canonical_hosted_zone_id()
                    .unwrap_or("Z35SXDOTRQ7X7K")
                    .to_owned(),
            ),
        );
        let mut groups = Vec::new();
        for name in ["meshos-stable", "meshos-canary"] {
            let tg = elb
                .create_target_group()
                .name(name)
                .protocol(ProtocolEnum::Http)
                .port(8080)
                .vpc_id(&vpc)
                .target_type(TargetTypeEnum::Ip)
                .send()
                .await
                .expect("create target group");
            let arn = tg.target_groups()[0]
                .target_group_arn()
                .expect("arn")
                .to_owned();
            elb.register_targets()
                .target_group_arn(&arn)
                .targets(
                    TargetDescription::builder()
                        .id("10.0.1.10")
                        .port(8080)
                        .build(),
                )
                .send()
                .await
                .expect("register targets");
            groups.push(arn);
        }
        let tuple = |arn: &str, weight| {
            TargetGroupTuple::builder()
                .target_group_arn(arn)
                .weight(weight)
                .build()
        };
        let listener = elb
            .create_listener()
            .load_balancer_arn(lb.load_balancer_arn().expect("lb arn"))
            .protocol(ProtocolEnum::Http)
            .port(80)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .forward_config(
                        ForwardActionConfig::builder()
                            .target_groups(tuple(&groups[0], 80))
                            .target_groups(tuple(&groups[1], 20))
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("create listener");
        staged.regions.insert(
            region.to_owned(),
            StagedRegion {
                listener: listener.listeners()[0]
                    .listener_arn()
                    .expect("listener arn")
                    .to_owned(),
                stable: groups[0].clone(),
                canary: groups[1].clone(),
            },
        );

        let rds = aws_sdk_rds::Client::new(&moto.config);
        rds.create_db_instance()
            .db_instance_identifier(SOURCE_DB)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .master_username("meshos")
            .master_user_password("correct-horse-battery")
            .allocated_storage(20)
            .backup_retention_period(7)
            .send()
            .await
            .expect("create db instance");
        rds.create_db_snapshot()
            .db_instance_identifier(SOURCE_DB)
            .db_snapshot_identifier(SNAPSHOT)
            .send()
            .await
            .expect("create db snapshot");
    }

    let moto = Moto::with_account("us-east-1", account);
    let r53 = aws_sdk_route53::Client::new(&moto.config);
    let zone = r53
        .create_hosted_zone()
        .name(ZONE_DOMAIN)
        .caller_reference(support::unique("crash"))
        .send()
        .await
        .expect("create hosted zone");
    staged.zone = zone.hosted_zone().expect("zone").id().to_owned();
    let mut batch = ChangeBatch::builder();
    for (region, weight) in WEIGHTS {
        let (dns_name, zone_id) = aliases.get(region).cloned().unwrap_or_else(|| {
            (
                format!("meshos-api.{region}.elb.amazonaws.com"),
                "Z1GM3OXH4ZPM65".to_owned(),
            )
        });
        batch = batch.changes(
            Change::builder()
                .action(ChangeAction::Create)
                .resource_record_set(
                    ResourceRecordSet::builder()
                        .name(RECORD)
                        .r#type(RrType::A)
                        .set_identifier(region)
                        .weight(i64::from(weight))
                        .alias_target(
                            AliasTarget::builder()
                                .hosted_zone_id(zone_id)
                                .dns_name(dns_name)
                                .evaluate_target_health(true)
                                .build()
                                .expect("alias"),
                        )
                        .build()
                        .expect("record set"),
                )
                .build()
                .expect("change"),
        );
    }
    r53.change_resource_record_sets()
        .hosted_zone_id(&staged.zone)
        .change_batch(batch.build().expect("batch"))
        .send()
        .await
        .expect("create records");
    staged
}

// ---------------------------------------------------------------- end state

/// The state the rollback leaves, read back from moto, with account and run ids
/// replaced so two accounts' states compare equal.
async fn end_state(account: &str, staged: &Staged, run: &str) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    for region in ROLLED_BACK {
        let moto = Moto::with_account(region, account);
        let s = &staged.regions[region];

        let ecs = aws_sdk_ecs::Client::new(&moto.config);
        let sm = aws_sdk_secretsmanager::Client::new(&moto.config);
        let svc = ecs
            .describe_services()
            .cluster(cluster(region))
            .services(SERVICE)
            .send()
            .await
            .expect("describe services");
        let td = svc.services()[0]
            .task_definition()
            .unwrap_or_default()
            .to_owned();
        state.insert(format!("{region} ecs service runs"), short_td(&td));
        let out = ecs
            .describe_task_definition()
            .task_definition(&td)
            .send()
            .await
            .expect("describe task definition");
        let mut containers = Vec::new();
        for c in out
            .task_definition()
            .map(|t| t.container_definitions())
            .unwrap_or_default()
        {
            let mut env: Vec<String> = c
                .environment()
                .iter()
                .map(|kv| {
                    format!(
                        "{}={}",
                        kv.name().unwrap_or_default(),
                        kv.value().unwrap_or_default()
                    )
                })
                .collect();
            env.sort();
            // A pinned Secrets Manager version (`ARN:::version-id`) is shown by the
            // secret's name, the version and its value: the ARN's random suffix differs
            // between accounts, the value must not.
            let mut secrets: Vec<String> = Vec::new();
            for s in c.secrets() {
                let shown = match s.value_from().split_once(":::") {
                    Some((arn, version)) => {
                        let got = sm
                            .get_secret_value()
                            .secret_id(arn)
                            .version_id(version)
                            .send()
                            .await
                            .expect("get secret value");
                        format!(
                            "{}<-secret {} version {version} = {}",
                            s.name(),
                            got.name().unwrap_or_default(),
                            got.secret_string().unwrap_or_default()
                        )
                    }
                    None => format!("{}<-{}", s.name(), s.value_from()),
                };
                secrets.push(shown);
            }
            secrets.sort();
            containers.push(format!(
                "{} image={} env={env:?} secrets={secrets:?}",
                c.name().unwrap_or_default(),
                c.image().unwrap_or_default()
            ));
        }
        state.insert(format!("{region} ecs containers"), containers.join("; "));
        let listed = ecs
            .list_task_definitions()
            .family_prefix(FAMILY)
            .send()
            .await
            .expect("list task definitions");
        let mut revisions: Vec<String> = listed
            .task_definition_arns()
            .iter()
            .map(|a| short_td(a))
            .collect();
        revisions.sort();
        state.insert(
            format!("{region} ecs registered revisions"),
            revisions.join(", "),
        );
        let listed = sm
            .list_secret_version_ids()
            .secret_id(DB_URL_SECRET)
            .send()
            .await
            .expect("list secret versions");
        let mut versions: Vec<String> = listed
            .versions()
            .iter()
            .map(|v| {
                let mut stages = v.version_stages().to_vec();
                stages.sort();
                format!("{} {stages:?}", v.version_id().unwrap_or_default())
            })
            .collect();
        versions.sort();
        state.insert(
            format!("{region} secret {DB_URL_SECRET} versions"),
            versions.join(", "),
        );

        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&moto.config);
        let listeners = elb
            .describe_listeners()
            .listener_arns(&s.listener)
            .send()
            .await
            .expect("describe listeners");
        let name_of = |arn: &str| {
            if arn == s.stable {
                "stable".to_owned()
            } else if arn == s.canary {
                "canary".to_owned()
            } else {
                arn.to_owned()
            }
        };
        let mut weights = Vec::new();
        for a in listeners.listeners()[0].default_actions() {
            if let Some(fc) = a.forward_config() {
                for t in fc.target_groups() {
                    weights.push(format!(
                        "{}={}",
                        name_of(t.target_group_arn().unwrap_or_default()),
                        t.weight().unwrap_or(1)
                    ));
                }
            } else if let Some(arn) = a.target_group_arn() {
                weights.push(format!("{}=1", name_of(arn)));
            }
        }
        state.insert(format!("{region} listener weights"), weights.join(", "));

        let rds = aws_sdk_rds::Client::new(&moto.config);
        let dbs = rds
            .describe_db_instances()
            .send()
            .await
            .expect("describe db instances");
        let mut instances: Vec<String> = dbs
            .db_instances()
            .iter()
            .map(|d| {
                let mut tags: Vec<String> = d
                    .tag_list()
                    .iter()
                    .map(|t| {
                        format!(
                            "{}={}",
                            t.key().unwrap_or_default(),
                            t.value().unwrap_or_default()
                        )
                    })
                    .collect();
                tags.sort();
                format!(
                    "{} {} tags={tags:?}",
                    d.db_instance_identifier().unwrap_or_default(),
                    d.db_instance_status().unwrap_or_default()
                )
            })
            .collect();
        instances.sort();
        state.insert(format!("{region} rds instances"), instances.join("; "));
    }
    let moto = Moto::with_account("us-east-1", account);
    let r53 = aws_sdk_route53::Client::new(&moto.config);
    let sets = r53
        .list_resource_record_sets()
        .hosted_zone_id(&staged.zone)
        .send()
        .await
        .expect("list record sets");
    for r in sets.resource_record_sets() {
        if let (Some(id), Some(w)) = (r.set_identifier(), r.weight()) {
            state.insert(
                format!("route53 {} weight of {id}", r.name()),
                w.to_string(),
            );
        }
    }
    state
        .into_iter()
        .map(|(k, v)| (k, v.replace(account, "<account>").replace(run, "<run>")))
        .collect()
}

/// `family:revision` of a task-definition ARN.
fn short_td(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_owned()
}

// ---------------------------------------------------------------- the parent

/// One scenario run: the baseline (no kill) or a case.
struct CaseRun {
    name: String,
    covers: String,
    gate: Option<Gate>,
    account: String,
    run: String,
    state: Option<BTreeMap<String, String>>,
    /// The journal, one `seq type step` per entry, with a marker at the kill.
    journal: Vec<String>,
    failures: Vec<String>,
}

#[test]
#[ignore = "needs moto server"]
fn crash_and_resume_in_new_processes() {
    let endpoint = support::endpoint();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let root = std::env::temp_dir().join(support::unique("meshos-crash-resume"));
    std::fs::create_dir_all(&root).expect("test directory");

    let recorder = Recording::start(&endpoint);
    let baseline = run_case(&rt, &endpoint, &root, None);
    let mut runs = Vec::new();
    for case in cases() {
        runs.push(run_case(&rt, &endpoint, &root, Some(&case)));
    }
    let recorded = recorder.finish();

    let mut report = String::new();
    let mut failed = 0;
    let expected_state = baseline.state.clone();
    for run in std::iter::once(&baseline).chain(&runs) {
        let mut failures = run.failures.clone();
        let mine: Vec<&Recorded> = recorded
            .iter()
            .filter(|r| r.account == run.account)
            .collect();
        failures.extend(check_recording(&mine, run.gate.as_ref()));
        match (&run.state, &expected_state) {
            (Some(got), Some(want)) if run.name != baseline.name => {
                for key in want.keys().chain(got.keys()).collect::<BTreeSet<_>>() {
                    if want.get(key) != got.get(key) {
                        failures.push(format!(
                            "end state differs from the uninterrupted run: {key}: {:?}, uninterrupted {:?}",
                            got.get(key),
                            want.get(key)
                        ));
                    }
                }
            }
            _ => {}
        }
        let verdict = if failures.is_empty() { "ok" } else { "FAILED" };
        report += &format!("\n{verdict:6} {:32} {}\n", run.name, run.covers);
        if !failures.is_empty() {
            failed += 1;
            report += &format!("       account {}, run {}\n", run.account, run.run);
            for f in &failures {
                report += &format!("       - {f}\n");
            }
            report += "       journal:\n";
            for line in &run.journal {
                report += &format!("         {line}\n");
            }
        }
    }
    if failed == 0 {
        eprintln!("crash/resume cases:{report}");
        let _ = std::fs::remove_dir_all(&root);
    } else {
        panic!(
            "{failed} of {} scenario runs failed (files kept in {}):{report}",
            runs.len() + 1,
            root.display()
        );
    }
}

fn run_case(
    rt: &tokio::runtime::Runtime,
    endpoint: &str,
    root: &Path,
    case: Option<&Case>,
) -> CaseRun {
    let account = support::account();
    let name = case.map_or("baseline", |c| c.name);
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("case directory");
    let mut run = CaseRun {
        name: name.to_owned(),
        covers: case
            .map_or("uninterrupted run (the reference end state)", |c| c.covers)
            .to_owned(),
        gate: case.map(|c| c.gate.clone()),
        account: account.clone(),
        run: String::new(),
        state: None,
        journal: Vec::new(),
        failures: Vec::new(),
    };
    let staged = rt.block_on(stage(&account));
    staged.write(&dir);

    let result = drive(endpoint, &dir, &account, case, &mut run);
    if let Err(e) = result {
        run.failures.push(e);
    }
    if let Ok(id) = std::fs::read_to_string(dir.join("run-id")) {
        run.run = id.trim().to_owned();
        if run.journal.is_empty() {
            run.journal = describe_journal(&journal_path(&dir, &run.run));
        }
        if run.failures.is_empty() {
            run.state = Some(rt.block_on(end_state(&account, &staged, &run.run)));
        }
    }
    run
}

/// Runs the children of one scenario; an error ends the scenario.
fn drive(
    endpoint: &str,
    dir: &Path,
    account: &str,
    case: Option<&Case>,
    run: &mut CaseRun,
) -> Result<(), String> {
    let Some(case) = case else {
        let child = spawn_child(endpoint, dir, account, "execute", "baseline", None)?;
        wait_success(child, dir, "baseline")?;
        return Ok(());
    };
    let mut child = spawn_child(
        endpoint,
        dir,
        account,
        "execute",
        "execute",
        Some(&case.gate),
    )?;
    let held = wait_for_gate(&mut child, dir)?;
    let run_id = std::fs::read_to_string(dir.join("run-id"))
        .map_err(|e| format!("no run id written before the gate: {e}"))?;
    let journal = journal_path(dir, run_id.trim());
    // The child is held at the gate: the journal cannot change until the kill.
    let at_kill = describe_journal(&journal);
    // SIGKILL on Unix: no destructor, no flush, no journal entry of its own.
    child
        .kill()
        .map_err(|e| format!("cannot kill the child: {e}"))?;
    let killed = child
        .wait()
        .map_err(|e| format!("cannot reap the child: {e}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if killed.signal() != Some(9) {
            return Err(format!(
                "the execute child was not SIGKILLed: it ended {killed}"
            ));
        }
    }

    if matches!(case.gate, Gate::Http { after: true, .. }) && !held.ends_with("(HTTP 200)") {
        return Err(format!("the held call did not succeed in moto: {held}"));
    }
    let last = at_kill
        .last()
        .map(|l| l.split_once(' ').map_or("", |(_, r)| r).to_owned());
    if at_kill.len() != case.lines || last.as_deref() != Some(case.last) {
        run.journal = at_kill;
        return Err(format!(
            "the kill did not land where the case says: {} journal lines, last {last:?}; expected {}, {:?} (gate: {held})",
            run.journal.len(),
            case.lines,
            case.last
        ));
    }

    let child = spawn_child(endpoint, dir, account, "resume", "resume", None)?;
    let resumed = wait_success(child, dir, "resume");
    let mut entries = describe_journal(&journal);
    if entries.len() >= at_kill.len() {
        entries.insert(at_kill.len(), format!("---- SIGKILL ({held})"));
    }
    run.journal = entries;
    resumed?;
    check_journal(&journal)
}

fn spawn_child(
    endpoint: &str,
    dir: &Path,
    account: &str,
    mode: &str,
    actor: &str,
    gate: Option<&Gate>,
) -> Result<Child, String> {
    let out = std::fs::File::create(dir.join(format!("{actor}.log")))
        .map_err(|e| format!("log file: {e}"))?;
    let err = out.try_clone().map_err(|e| format!("log file: {e}"))?;
    let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    cmd.args(["--exact", CHILD_TEST, "--include-ignored", "--nocapture"])
        .env(ENV_MODE, mode)
        .env(ENV_DIR, dir)
        .env(ENV_ACCOUNT, account)
        .env(ENV_ACTOR, actor)
        .env("MESHOS_AWS_ENDPOINT", endpoint)
        .env_remove(ENV_GATE)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some(g) = gate {
        cmd.env(ENV_GATE, g.encode());
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start the {actor} child: {e}"))
}

fn log_tail(dir: &Path, actor: &str) -> String {
    let text = std::fs::read_to_string(dir.join(format!("{actor}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Waits (bounded) for the child to reach its gate; what it held.
fn wait_for_gate(child: &mut Child, dir: &Path) -> Result<String, String> {
    let marker = dir.join("gate-hit");
    let deadline = Instant::now() + CHILD_BOUND;
    loop {
        if let Ok(text) = std::fs::read_to_string(&marker) {
            return Ok(text);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the execute child ended ({status}) without reaching its gate:\n{}",
                log_tail(dir, "execute")
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the execute child did not reach its gate within {CHILD_BOUND:?}:\n{}",
                log_tail(dir, "execute")
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// Waits (bounded) for the child to exit; it must exit 0 with the run `Succeeded`.
fn wait_success(mut child: Child, dir: &Path, actor: &str) -> Result<(), String> {
    let deadline = Instant::now() + CHILD_BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the {actor} child did not exit within {CHILD_BOUND:?}:\n{}",
                log_tail(dir, actor)
            ));
        }
        std::thread::sleep(POLL);
    };
    let run = std::fs::read_to_string(dir.join(format!("{actor}.status"))).unwrap_or_default();
    if !status.success() || run != format!("{:?}", RunStatus::Succeeded) {
        return Err(format!(
            "the {actor} child ended {status} with run status {run:?}, not Succeeded:\n{}",
            log_tail(dir, actor)
        ));
    }
    Ok(())
}

/// `seq type step` per journal entry.
fn describe_journal(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| match Json::parse(line) {
            Ok(entry) => {
                let event = entry.get("event");
                let kind = event.and_then(|e| e.get("type")).and_then(Json::as_str);
                let step = event.and_then(|e| e.get("step")).and_then(Json::as_str);
                let seq = entry.get("seq").map(Json::to_text).unwrap_or_default();
                let mut out = format!("{seq} {}", kind.unwrap_or("?"));
                if let Some(s) = step {
                    out += &format!(" {s}");
                }
                if let Some(status) = event.and_then(|e| e.get("status")).and_then(Json::as_str) {
                    out += &format!(" ({status})");
                }
                out
            }
            Err(e) => format!("? unreadable line: {e}"),
        })
        .collect()
}

/// The engine's own record: no step that succeeded before the crash starts again
/// after `run_resumed`, and the run ends `succeeded`.
fn check_journal(path: &Path) -> Result<(), String> {
    let entries = describe_journal(path);
    let resumed = entries
        .iter()
        .position(|e| e.ends_with(" run_resumed"))
        .ok_or("the journal has no run_resumed entry")?;
    let done: BTreeSet<&str> = entries[..resumed]
        .iter()
        .filter_map(|e| e.split_once(" step_succeeded ").map(|(_, s)| s))
        .collect();
    for e in &entries[resumed..] {
        if let Some((_, step)) = e.split_once(" step_started ")
            && done.contains(step)
        {
            return Err(format!(
                "resume started {step} again, which had succeeded before the crash"
            ));
        }
    }
    match entries.last() {
        Some(e) if e.ends_with("run_finished (succeeded)") => Ok(()),
        other => Err(format!("the journal does not end succeeded: {other:?}")),
    }
}

/// Writes a file whole or not at all, so a reader never sees half of it.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

// ---------------------------------------------------------------- moto's recorder

/// Moto's request recorder, on for the whole test: every request to the server (all
/// accounts) is appended as a JSON line `{headers, method, url, body, body_encoded}`.
/// Stopped and emptied when dropped, so a failing test leaves it off.
struct Recording {
    endpoint: String,
    /// A server started by `support` records into the test's working directory:
    /// remove that file at the end. (A shared server's file is only emptied.)
    local_file: Option<PathBuf>,
}

/// One recorded request of a child process.
#[derive(Debug)]
struct Recorded {
    account: String,
    actor: String,
    region: String,
    op: String,
    body: Vec<u8>,
}

impl Recording {
    fn start(endpoint: &str) -> Self {
        let ours = std::env::var("MESHOS_AWS_ENDPOINT").map_or(true, |e| e.is_empty());
        let r = Recording {
            endpoint: endpoint.to_owned(),
            local_file: ours.then(|| PathBuf::from("moto_recording")),
        };
        moto_api(endpoint, "POST", "/moto-api/recorder/reset-recording");
        moto_api(endpoint, "POST", "/moto-api/recorder/start-recording");
        r
    }

    /// Stops recording and returns what the children sent.
    fn finish(self) -> Vec<Recorded> {
        moto_api(&self.endpoint, "POST", "/moto-api/recorder/stop-recording");
        let text = moto_api(
            &self.endpoint,
            "GET",
            "/moto-api/recorder/download-recording",
        );
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let entry =
                Json::parse(line).unwrap_or_else(|e| panic!("recording line {line:?}: {e}"));
            let headers: BTreeMap<String, String> = match entry.get("headers") {
                Some(Json::Obj(h)) => h
                    .iter()
                    .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_owned())))
                    .collect(),
                _ => BTreeMap::new(),
            };
            let Some(actor) = headers.get(ACTOR_HEADER).cloned() else {
                continue; // the parent's staging and reads, or other tests
            };
            let body = entry.get("body").and_then(Json::as_str).unwrap_or_default();
            let body = if entry.get("body_encoded") == Some(&Json::Bool(true)) {
                aws_smithy_types::base64::decode(body).expect("base64 body")
            } else {
                body.as_bytes().to_vec()
            };
            let method = entry
                .get("method")
                .and_then(Json::as_str)
                .unwrap_or_default();
            let url = entry.get("url").and_then(Json::as_str).unwrap_or_default();
            let path = url
                .split_once("://")
                .map_or(url, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
            let path = path.split('?').next().unwrap_or(path);
            let (region, op) = classify(method, path, |h| headers.get(h).cloned(), &body);
            out.push(Recorded {
                account: headers
                    .get("x-moto-account-id")
                    .cloned()
                    .unwrap_or_default(),
                actor,
                region,
                op,
                body,
            });
        }
        out
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        moto_api(&self.endpoint, "POST", "/moto-api/recorder/stop-recording");
        moto_api(&self.endpoint, "POST", "/moto-api/recorder/reset-recording");
        if let Some(f) = &self.local_file {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// A moto-api call over plain HTTP; the body of a 200 answer.
fn moto_api(endpoint: &str, method: &str, path: &str) -> String {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut body = raw[split + 4..].to_vec();
    assert!(
        head.starts_with("http/1.1 200") || head.starts_with("http/1.0 200"),
        "{method} {path}: {head}"
    );
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    String::from_utf8_lossy(&body).into_owned()
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
}

// ---------------------------------------------------------------- the recorder rules

/// No mutating call repeated with effect, from moto's record of what the two processes
/// of a case (or the baseline's one) sent. "With effect" differs per call:
///
/// - **RestoreDBInstanceFromDBSnapshot / RestoreDBInstanceToPointInTime**: exactly one
///   per region and target instance. A restore is never a no-op: a second one either
///   fails (DBInstanceAlreadyExists) or, under another name, makes a second copy. The
///   resumed step must find the first attempt's instance by its run/step tags and adopt
///   it.
/// - **RegisterTaskDefinition**: exactly one per region and family (the connection
///   switch's). Every registration makes a new revision, identical or not, so no
///   repeat is ever without effect.
/// - **UpdateService**: per service, the task definitions it was pointed at, in order,
///   with an immediate repeat of the same request collapsed only when it does not set
///   `forceNewDeployment` (pointing a service at the definition it already runs changes
///   nothing; forcing starts a new deployment and replaces every task). The collapsed
///   list must be exactly the rollback then the switch: `meshos-api:1` (forced, the
///   playbook's `--force-new-deployment`), then `meshos-api:3`.
/// - **ModifyListener**: per listener, immediate repeats of an identical request
///   collapse (it writes absolute weights, so writing them again changes nothing); what
///   is left must be exactly one call, forwarding only to the stable target group.
/// - **ChangeResourceRecordSets**: per weighted record (set identifier), immediate
///   repeats of an identical change collapse (an UPSERT of the record as it already is
///   changes nothing); what is left must be exactly the exclusion then the re-admission
///   at the weight from before (`0`, then `100` or `60`), and nothing for the region
///   left in routing.
///
/// Also, for a case: the execute process sent the gated call exactly as the gate says
/// (`after`: the n-th went out; `before`: it did not), which proves where the kill fell.
fn check_recording(reqs: &[&Recorded], gate: Option<&Gate>) -> Vec<String> {
    let mut failures = Vec::new();
    let mutating = [
        "UpdateService",
        "RegisterTaskDefinition",
        "ModifyListener",
        "ChangeResourceRecordSets",
        "RestoreDBInstanceFromDBSnapshot",
        "RestoreDBInstanceToPointInTime",
        "PutSecretValue",
    ];
    let calls: Vec<&Recorded> = reqs
        .iter()
        .copied()
        .filter(|r| mutating.contains(&r.op.as_str()))
        .collect();
    let by_actor = |r: &Recorded| format!("{}:{}", r.actor, r.op);

    for region in ROLLED_BACK {
        let here: Vec<&Recorded> = calls
            .iter()
            .copied()
            .filter(|r| r.region == region)
            .collect();

        let restores: Vec<String> = here
            .iter()
            .filter(|r| r.op.starts_with("RestoreDBInstance"))
            .map(|r| {
                let f = form(&r.body);
                let target = f
                    .get("DBInstanceIdentifier")
                    .or(f.get("TargetDBInstanceIdentifier"))
                    .cloned()
                    .unwrap_or_default();
                format!("{} into {target}", by_actor(r))
            })
            .collect();
        if restores.len() != 1 || !restores[0].ends_with(&format!(" into {TARGET_DB}")) {
            failures.push(format!(
                "{region}: expected exactly one restore into {TARGET_DB}, moto saw {restores:?}"
            ));
        }

        let registered: Vec<String> = here
            .iter()
            .filter(|r| r.op == "RegisterTaskDefinition")
            .map(|r| {
                let body = Json::parse(&String::from_utf8_lossy(&r.body)).unwrap_or(Json::Null);
                let family = body
                    .get("family")
                    .and_then(Json::as_str)
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&r.body);
                let has_url = text.contains("\"DATABASE_URL\"");
                // The connection string goes to Secrets Manager, never in plain text.
                let plain = text.contains(TEMPLATE_PASSWORD);
                format!(
                    "{} family {family} DATABASE_URL={has_url} plain={plain}",
                    by_actor(r)
                )
            })
            .collect();
        if registered.len() != 1
            || !registered[0].ends_with(&format!("family {FAMILY} DATABASE_URL=true plain=false"))
        {
            failures.push(format!(
                "{region}: expected exactly one RegisterTaskDefinition (the connection switch, the value not in it), moto saw {registered:?}"
            ));
        }

        // Written again on resume, but always as the same version (the request token),
        // so the secret never gains a second version.
        let puts: BTreeSet<String> = here
            .iter()
            .filter(|r| r.op == "PutSecretValue")
            .map(|r| {
                let body = Json::parse(&String::from_utf8_lossy(&r.body)).unwrap_or(Json::Null);
                let field = |k: &str| {
                    body.get(k)
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                format!(
                    "{} token {}",
                    field("SecretId"),
                    field("ClientRequestToken")
                )
            })
            .collect();
        if puts.len() != 1
            || !puts.iter().all(|p| {
                p.starts_with(&format!("{DB_URL_SECRET} token "))
                    && p.len() > DB_URL_SECRET.len() + 7
            })
        {
            failures.push(format!(
                "{region}: expected every PutSecretValue to write {DB_URL_SECRET} with one request token, moto saw {puts:?}"
            ));
        }

        // (task definition, forced), consecutive unforced identical requests collapsed.
        let mut updates: Vec<(String, bool, String)> = Vec::new();
        let mut raw_updates = Vec::new();
        for r in here.iter().filter(|r| r.op == "UpdateService") {
            let body = Json::parse(&String::from_utf8_lossy(&r.body)).unwrap_or(Json::Null);
            let td = short_td(
                body.get("taskDefinition")
                    .and_then(Json::as_str)
                    .unwrap_or_default(),
            );
            let forced = body.get("forceNewDeployment") == Some(&Json::Bool(true));
            raw_updates.push(format!(
                "{} -> {td}{}",
                by_actor(r),
                if forced { " (forced)" } else { "" }
            ));
            let body = String::from_utf8_lossy(&r.body).into_owned();
            if let Some(last) = updates.last()
                && !forced
                && last.2 == body
            {
                continue;
            }
            updates.push((td, forced, body));
        }
        let got: Vec<(String, bool)> = updates.into_iter().map(|(t, f, _)| (t, f)).collect();
        let want = vec![
            (format!("{FAMILY}:1"), true),
            (format!("{FAMILY}:3"), false),
        ];
        if got != want {
            failures.push(format!(
                "{region}: UpdateService calls {raw_updates:?}; expected the rollback to {FAMILY}:1 (forced) then the switch to {FAMILY}:3, each once"
            ));
        }

        let mut modifies: Vec<&Recorded> = Vec::new();
        for r in here.iter().copied().filter(|r| r.op == "ModifyListener") {
            if modifies.last().is_some_and(|l| l.body == r.body) {
                continue;
            }
            modifies.push(r);
        }
        let raw: Vec<String> = here
            .iter()
            .filter(|r| r.op == "ModifyListener")
            .map(|r| by_actor(r))
            .collect();
        let only_stable = modifies.first().is_some_and(|r| {
            let f = form(&r.body);
            let groups: BTreeSet<&String> = f
                .iter()
                .filter(|(k, _)| k.ends_with("TargetGroupArn"))
                .map(|(_, v)| v)
                .collect();
            groups.len() == 1
                && groups
                    .iter()
                    .all(|g| g.contains("targetgroup/meshos-stable/"))
        });
        if modifies.len() != 1 || !only_stable {
            failures.push(format!(
                "{region}: expected one distinct ModifyListener forwarding only to meshos-stable, moto saw {raw:?}"
            ));
        }
    }

    let mut per_set: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for r in calls.iter().filter(|r| r.op == "ChangeResourceRecordSets") {
        let xml = String::from_utf8_lossy(&r.body).into_owned();
        for change in xml.split("<Change>").skip(1) {
            let change = change.split("</Change>").next().unwrap_or_default();
            let set = xml_value(change, "SetIdentifier").unwrap_or_default();
            let weight = xml_value(change, "Weight").unwrap_or_default();
            let action = xml_value(change, "Action").unwrap_or_default();
            per_set.entry(set).or_default().push((
                format!("{}:{action} weight {weight}", r.actor),
                change.to_owned(),
            ));
        }
    }
    for (region, before) in WEIGHTS {
        let changes = per_set.remove(region).unwrap_or_default();
        let mut collapsed: Vec<&(String, String)> = Vec::new();
        for c in &changes {
            if collapsed.last().is_some_and(|l| l.1 == c.1) {
                continue;
            }
            collapsed.push(c);
        }
        let weights: Vec<String> = collapsed
            .iter()
            .map(|c| c.0.rsplit(' ').next().unwrap_or_default().to_owned())
            .collect();
        let upserts = collapsed.iter().all(|c| c.0.contains(":UPSERT "));
        let want: Vec<String> = if ROLLED_BACK.contains(&region) {
            vec!["0".into(), before.to_string()]
        } else {
            Vec::new()
        };
        if weights != want || !upserts {
            let raw: Vec<&String> = changes.iter().map(|c| &c.0).collect();
            failures.push(format!(
                "route53 {region}: changes {raw:?}; expected {want:?} (exclusion, re-admission), each once"
            ));
        }
    }
    for (set, changes) in per_set {
        failures.push(format!(
            "route53: unexpected changes to {set:?}: {changes:?}"
        ));
    }

    if let Some(Gate::Http {
        region,
        op,
        nth,
        after,
    }) = gate
    {
        let sent = reqs
            .iter()
            .filter(|r| {
                r.actor == "execute" && r.op == *op && (region == "*" || r.region == *region)
            })
            .count();
        let want = if *after { *nth } else { nth - 1 };
        if sent != want {
            failures.push(format!(
                "the execute process sent {op} ({region}) {sent} times before the kill; the gate says {want}"
            ));
        }
    }
    failures
}

fn xml_value(text: &str, tag: &str) -> Option<String> {
    let start = text.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = text[start..].find(&format!("</{tag}>"))? + start;
    Some(text[start..end].to_owned())
}

// ---------------------------------------------------------------- a little JSON

/// Just enough JSON to read moto's recording, the SDK's request bodies and the journal
/// (this crate does not depend on serde_json).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing text at {}", p.i));
        }
        Ok(v)
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    fn to_text(&self) -> String {
        match self {
            Json::Num(n) => n.clone(),
            Json::Str(s) => s.clone(),
            other => format!("{other:?}"),
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", c as char, self.i))
        }
    }

    fn literal(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(format!("bad literal at {}", self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    fields.push((k, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(fields));
                        }
                        _ => return Err(format!("expected , or }} at {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return Err(format!("expected , or ] at {}", self.i)),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len() && b"+-.eE0123456789".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                if start == self.i {
                    return Err(format!("unexpected byte at {start}"));
                }
                Ok(Json::Num(
                    String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                ))
            }
            None => Err("unexpected end".into()),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("bad \\u escape at {}", self.i))?;
        self.i += 4;
        Ok(h)
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return Err(format!("expected a string at {}", self.i));
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("unterminated escape")?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi)
                                && self.s[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                            } else {
                                hi
                            };
                            char::from_u32(code).unwrap_or('\u{FFFD}')
                        }
                        other => return Err(format!("bad escape \\{}", other as char)),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
    }
}

#[test]
fn the_little_json_reads_what_moto_records() {
    let line = r#"{"headers": {"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.UpdateService", "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-1/ecs/aws4_request, SignedHeaders=host"}, "method": "POST", "url": "http://127.0.0.1:5000/", "body": "eyJhIjoiXHUwMGU5XG4ifQ==", "body_encoded": true, "n": -1.5e3, "x": [null, false, {}]}"#;
    let v = Json::parse(line).unwrap();
    assert_eq!(v.get("method").and_then(Json::as_str), Some("POST"));
    assert_eq!(v.get("n"), Some(&Json::Num("-1.5e3".into())));
    let body = aws_smithy_types::base64::decode(v.get("body").unwrap().as_str().unwrap()).unwrap();
    let inner = Json::parse(std::str::from_utf8(&body).unwrap()).unwrap();
    assert_eq!(inner.get("a").and_then(Json::as_str), Some("é\n"));
    let headers = match v.get("headers") {
        Some(Json::Obj(h)) => h
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_owned()))
            .collect::<BTreeMap<_, _>>(),
        _ => panic!(),
    };
    let (region, op) = classify("POST", "/", |h| headers.get(h).cloned(), &body);
    assert_eq!(
        (region.as_str(), op.as_str()),
        ("eu-west-1", "UpdateService")
    );
    let (_, op) = classify(
        "POST",
        "/2013-04-01/hostedzone/Z1/rrset/",
        |_| None,
        b"<x/>",
    );
    assert_eq!(op, "ChangeResourceRecordSets");
    let f = form(b"Action=ModifyListener&ListenerArn=arn%3Aaws%3Ax%2Fy&A=b+c");
    assert_eq!(f["Action"], "ModifyListener");
    assert_eq!(f["ListenerArn"], "arn:aws:x/y");
    assert_eq!(f["A"], "b c");
    assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
}
