//! The playbook engine: plan, gate, act, verify, tell — across regions, safely.
//!
//! 1. A [`RollbackSpec`] (from code or a TOML/YAML file) says which regions and which
//!    procedures. [`Engine::plan`] turns it into a [`RollbackPlan`]: ordered, typed steps
//!    per region with everything resolved (revisions, migrations, snapshots, weights)
//!    and a deadline each, checked against the providers' capabilities and the
//!    journal's unfinished runs. Print it for a dry run; an impossible plan is refused
//!    with every [`PlanProblem`] before anything changes.
//! 2. [`Engine::execute`] passes the [pre-rollback checklist](PreRollbackChecklist)
//!    gate (manual rollbacks) or records why an automatic one went ahead, locks each
//!    service and region for this run, announces the rollback, and runs the regions in
//!    parallel (at most `max_parallel`), steps in order within a region.
//! 3. Every step's start (with the state it is about to change) and outcome go to the
//!    [`Journal`] before and after it acts; [`Engine::resume`] continues an interrupted
//!    run without repeating completed steps, and every step kind (one module each in
//!    `steps/`) is idempotent, so the one in flight at a crash is a no-op when it
//!    already took effect.
//! 4. Verification holds the metrics under the limits for the window, probes health
//!    endpoints, runs smoke tests and counts customer reports, and says plainly whether
//!    the rollback fixed things.
//! 5. Status updates go out every 2 minutes; failures page on-call; the
//!    [`RunReport`] renders the incident report and stakeholder e-mail from the journal.
//!
//! [`Engine::watch_canary`] is the canary auto-rollback: it checks a canary against
//! the stable fleet every minute and runs the rollback by itself when the canary
//! policy says so.
//!
//! Retry, timeouts and tracing of provider calls are [layers](crate::layer) around the
//! providers, not part of the engine; the engine adds `region` and `step` spans.

mod api;
mod builder;
mod canary;
mod checklist;
pub mod comms;
mod journal;
mod plan;
mod planner;
mod problem;
mod progress;
mod providers;
mod report;
pub mod routing;
mod runner;
mod spec;
mod steps;
mod verify;

pub use api::{EARLIER_RUNS_READ, Engine};
pub use builder::EngineBuilder;
pub use canary::{CanaryOutcome, CanaryWatch};
pub use checklist::{
    Approval, ApproverRole, Backup, CustomerImpact, GateRecord, ItemRecord, PreRollbackChecklist,
    RollbackRequest, TimelineEntry, Trigger,
};
pub use journal::{
    DataLossWindow, FenceToken, FileJournal, InMemoryJournal, Journal, JournalEntry, JournalEvent,
    PreState, StepOutcome,
};
pub use plan::{
    PlannedStep, RegionPlan, ResolvedRestore, RollbackPlan, RunId, Step, StepId,
    VerificationChecks, WeightSource,
};
pub use problem::{PlanProblem, PlanRefusal};
pub use progress::{ProgressEvent, ProgressObserver, RunControl};
pub use providers::{Providers, RegionProviders};
pub use report::{
    Notification, RegionReport, RegionStatus, RunReport, RunStatus, StepReport, StepStatus,
};
pub use spec::{
    CommsSpec, ConnectionSwitch, DatabaseSpec, DeploymentAction, DnsSpec, PartialFailure, Readmit,
    RegionSpec, RestoreFrom, RetagSpec, RollbackSpec, StepDeadlines, TrafficSpec, VerificationSpec,
};
pub use verify::VerificationOutcome;
