//! What a run tells the outside as it goes: progress events, and how to stop it.

use std::fmt;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::plan::{RunId, StepId};
use super::report::RunStatus;
use crate::model::{Region, ServiceRef};
use crate::provider::MessageKind;

/// What happens as a rollback runs, for progress displays.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// The run started (or resumed).
    RunStarted {
        /// The run.
        run_id: RunId,
        /// Whether it is a resume.
        resumed: bool,
    },
    /// A step started.
    StepStarted {
        /// Region.
        region: Region,
        /// Step.
        step: StepId,
        /// What it does.
        description: String,
    },
    /// A step succeeded.
    StepSucceeded {
        /// Region.
        region: Region,
        /// Step.
        step: StepId,
        /// What it did.
        outcome: String,
        /// How long it took.
        elapsed: Duration,
    },
    /// A step failed.
    StepFailed {
        /// Region.
        region: Region,
        /// Step.
        step: StepId,
        /// The error, redacted.
        error: String,
    },
    /// A step did not run or was cut off.
    StepSkipped {
        /// Region.
        region: Region,
        /// Step.
        step: StepId,
        /// Why.
        reason: String,
    },
    /// A message went out.
    MessageSent {
        /// What kind.
        kind: MessageKind,
        /// The text.
        text: String,
    },
    /// The run ended.
    RunFinished {
        /// How.
        status: RunStatus,
    },
    /// A canary watch judged the canary.
    CanaryChecked {
        /// The canary.
        canary: ServiceRef,
        /// Which check, from 1.
        check: u32,
        /// The decision, with every rule that fired.
        decision: String,
    },
}

/// Receives progress events (a terminal display, a deploy tool's UI).
pub trait ProgressObserver: fmt::Debug + Send + Sync {
    /// Called for each event, in order within a region.
    fn on_event(&self, event: &ProgressEvent);
}

/// Cancellation and a deadline for one run.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    /// Cancel to stop the run: the step in flight is cut off and recorded as
    /// interrupted, the rest are recorded as not run.
    pub cancel: CancellationToken,
    /// Stop the run after this long.
    pub deadline: Option<Duration>,
}
