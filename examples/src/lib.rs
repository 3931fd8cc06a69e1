//! Shared pieces of the runnable examples: a console progress display.

use meshos_rollback_core::clock::SharedClock;
use meshos_rollback_core::engine::{ProgressEvent, ProgressObserver};

/// Prints progress as the rollback runs, stamped with the (simulated) wall clock.
#[derive(Debug)]
pub struct Console {
    clock: SharedClock,
}

impl Console {
    /// A console display reading `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Console { clock }
    }

    /// Prints a line stamped with the clock.
    pub fn line(&self, text: &str) {
        let t = self.clock.now().strftime("%H:%M:%S");
        let mut lines = text.lines();
        if let Some(first) = lines.next() {
            println!("[{t}] {first}");
        }
        for l in lines {
            println!("           {l}");
        }
    }
}

impl ProgressObserver for Console {
    fn on_event(&self, event: &ProgressEvent) {
        match event {
            ProgressEvent::RunStarted { run_id, resumed } => self.line(&format!(
                "{} run {run_id}",
                if *resumed { "resuming" } else { "starting" }
            )),
            ProgressEvent::StepStarted {
                region,
                description,
                ..
            } => self.line(&format!("{region:<13} ▶ {description}")),
            ProgressEvent::StepSucceeded {
                region,
                outcome,
                elapsed,
                ..
            } => self.line(&format!(
                "{region:<13} ✓ {outcome} ({}s)",
                elapsed.as_secs()
            )),
            ProgressEvent::StepFailed { region, error, .. } => {
                self.line(&format!("{region:<13} ✗ {error}"))
            }
            ProgressEvent::StepSkipped {
                region,
                step,
                reason,
            } => self.line(&format!("{region:<13} - {step}: {reason}")),
            ProgressEvent::MessageSent { text, .. } => {
                let indented = text.replace('\n', "\n    ");
                self.line(&format!("💬 message:\n    {indented}"))
            }
            ProgressEvent::RunFinished { status } => self.line(&format!("run finished: {status}")),
            ProgressEvent::CanaryChecked {
                canary,
                check,
                decision,
            } => self.line(&format!("canary check {check} of {canary}: {decision}")),
            other => self.line(&format!("{other:?}")),
        }
    }
}

/// Prints a titled section.
pub fn section(title: &str, body: &str) {
    println!("\n===== {title} =====\n{body}");
}
