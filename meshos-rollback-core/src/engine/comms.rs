//! The messages of playbook § Communication, rendered from the plan and live progress.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::report::{RunReport, RunStatus, hhmm, took};
use crate::decision::{Action, Decision};
use crate::model::{Incident, Region, Severity};
use crate::provider::Escalation;

/// The "ROLLBACK IN PROGRESS" announcement, exactly as the playbook writes it.
///
/// ```
/// use meshos_rollback_core::engine::comms::announcement;
/// use meshos_rollback_core::model::Region;
/// use std::time::Duration;
///
/// let text = announcement(
///     &[Region::new("us-east-1").unwrap()],
///     "High error rate detected",
///     "2025-10-30T10:15:00Z".parse().unwrap(),
///     Duration::from_secs(300),
///     Duration::from_secs(120),
/// );
/// assert_eq!(text, "🔄 ROLLBACK IN PROGRESS\nRegion: us-east-1\nReason: High error rate detected\n\
///                   Started: 10:15 UTC\nETA: 10:20 UTC\nStatus updates every 2 minutes");
/// ```
pub fn announcement(
    regions: &[Region],
    reason: &str,
    started: Timestamp,
    estimate: Duration,
    status_interval: Duration,
) -> String {
    let names: Vec<&str> = regions.iter().map(Region::as_str).collect();
    format!(
        "🔄 ROLLBACK IN PROGRESS\n{}: {}\nReason: {reason}\nStarted: {}\nETA: {}\nStatus updates every {}",
        if names.len() == 1 {
            "Region"
        } else {
            "Regions"
        },
        names.join(", "),
        hhmm(started),
        hhmm(eta(started, estimate)),
        every(status_interval)
    )
}

fn eta(started: Timestamp, estimate: Duration) -> Timestamp {
    started
        .checked_add(SignedDuration::try_from(estimate).unwrap_or(SignedDuration::ZERO))
        .unwrap_or(started)
}

fn every(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        60 => "minute".into(),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// Where one region stands, for status updates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionProgress {
    /// Steps finished.
    pub done: usize,
    /// Steps in all.
    pub total: usize,
    /// The step running now.
    pub current: Option<String>,
    /// Set when the region finished: `done`, `FAILED: …`, `stopped`.
    pub finished: Option<String>,
}

/// The ETA, re-estimated from the steps that finished: how long they took against
/// their estimates scales what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reestimate {
    /// The new ETA.
    pub eta: Timestamp,
    /// How many finished steps it was measured from.
    pub from_steps: usize,
}

/// Re-estimates the ETA from the run so far: each finished step's measured duration
/// against its estimate (verification aside: it lasts its window) gives one scale for
/// the run (clamped to ¼–4×, so one odd step
/// cannot swing it wildly); each region's remaining steps, so scaled (less what the
/// running step has already taken), are summed; regions run in waves of
/// `max_parallel`, as the plan's own estimate assumes. `None` before any step finished.
pub fn reestimate(report: &RunReport, now: Timestamp) -> Option<Reestimate> {
    let plan = &report.plan;
    let estimate_of = |r: &Region, id: &super::plan::StepId| {
        plan.regions
            .iter()
            .find(|p| &p.region == r)
            .and_then(|p| p.steps.iter().find(|s| &s.id == id))
            .map(|s| s.estimate)
    };
    let (mut measured, mut estimated, mut from_steps) = (0.0f64, 0.0f64, 0usize);
    for r in &report.regions {
        for st in &r.steps {
            // Verification holds for its window however fast the rest went: it is
            // neither a measure of the scale nor scaled.
            if matches!(st.step, super::plan::Step::Verify { .. }) {
                continue;
            }
            if let (super::report::StepStatus::Succeeded, Some(a), Some(b), Some(e)) = (
                st.status,
                st.started_at,
                st.finished_at,
                estimate_of(&r.region, &st.id),
            ) {
                measured += b.duration_since(a).as_secs_f64().max(0.0);
                estimated += e.as_secs_f64();
                from_steps += 1;
            }
        }
    }
    if from_steps == 0 || estimated <= 0.0 {
        return None;
    }
    let scale = (measured / estimated).clamp(0.25, 4.0);
    let mut left: Vec<Duration> = report
        .regions
        .iter()
        .map(|r| {
            let secs: f64 = r
                .steps
                .iter()
                .map(|st| {
                    use super::report::StepStatus as S;
                    let fixed = matches!(st.step, super::plan::Step::Verify { .. });
                    let e = estimate_of(&r.region, &st.id).map_or(0.0, |d| d.as_secs_f64())
                        * if fixed { 1.0 } else { scale };
                    match (st.status, st.started_at) {
                        (S::NotStarted, _) => e,
                        (S::Started, Some(a)) => (e - now.duration_since(a).as_secs_f64()).max(0.0),
                        (S::Started, None) => e,
                        _ => 0.0,
                    }
                })
                .sum();
            Duration::from_secs_f64(secs)
        })
        .collect();
    left.sort_unstable_by(|a, b| b.cmp(a));
    let remaining: Duration = left
        .chunks(plan.max_parallel.max(1))
        .map(|wave| wave[0])
        .sum();
    Some(Reestimate {
        eta: eta(now, remaining),
        from_steps,
    })
}

/// A status update while the rollback runs: the planned ETA until a step has
/// finished, then the ETA re-estimated from the steps' measured durations.
pub fn status_update(
    now: Timestamp,
    started: Timestamp,
    estimate: Duration,
    reestimate: Option<Reestimate>,
    regions: &BTreeMap<Region, RegionProgress>,
) -> String {
    let eta_text = match reestimate {
        Some(r) => format!(
            "ETA {}, re-estimated from {} finished step{}",
            hhmm(r.eta),
            r.from_steps,
            if r.from_steps == 1 { "" } else { "s" }
        ),
        None => format!("ETA {}, as planned", hhmm(eta(started, estimate))),
    };
    let mut s = format!(
        "🔄 ROLLBACK STATUS {} (running {}, {eta_text})",
        hhmm(now),
        took(now.duration_since(started).unsigned_abs()),
    );
    for (region, p) in regions {
        let _ = write!(s, "\n{region}: {}/{} steps", p.done, p.total);
        match (&p.finished, &p.current) {
            (Some(f), _) => {
                let _ = write!(s, ", {f}");
            }
            (None, Some(c)) => {
                let _ = write!(s, ", now: {c}");
            }
            (None, None) => s.push_str(", waiting to start"),
        }
    }
    s
}

/// The message when the run ends.
pub fn resolution(report: &RunReport) -> String {
    let (icon, title) = match report.status {
        RunStatus::Succeeded => ("✅", "ROLLBACK COMPLETE"),
        RunStatus::PartiallyFailed => ("⚠️", "ROLLBACK PARTIALLY FAILED"),
        RunStatus::Failed => ("❌", "ROLLBACK FAILED"),
        RunStatus::Halted => ("⛔", "ROLLBACK HALTED"),
        RunStatus::Cancelled => ("⏹", "ROLLBACK CANCELLED"),
        RunStatus::Incomplete => ("…", "ROLLBACK INCOMPLETE"),
        RunStatus::JournalFailed => ("❗", "ROLLBACK NOT FULLY RECORDED"),
    };
    let names: Vec<&str> = report.regions.iter().map(|r| r.region.as_str()).collect();
    let mut s = format!(
        "{icon} {title}\n{}: {}",
        if names.len() == 1 {
            "Region"
        } else {
            "Regions"
        },
        names.join(", ")
    );
    for r in &report.regions {
        let verdict = r
            .steps
            .iter()
            .rev()
            .find_map(|st| match &st.outcome {
                Some(super::journal::StepOutcome::Verified { outcome }) => Some(outcome.headline()),
                _ => None,
            })
            .or_else(|| {
                r.steps
                    .iter()
                    .find(|st| st.status == super::report::StepStatus::Failed)
                    .map(|st| {
                        format!(
                            "step \"{}\" failed: {}",
                            st.step,
                            st.note.as_deref().unwrap_or("")
                        )
                    })
            })
            .unwrap_or_else(|| format!("{:?}", r.status).to_lowercase());
        let _ = write!(s, "\n{}: {verdict}", r.region);
    }
    if let Some(end) = report.finished_at {
        let _ = write!(
            s,
            "\nFinished: {} (took {})",
            hhmm(end),
            took(end.duration_since(report.started_at).unsigned_abs())
        );
    }
    if report.status != RunStatus::Succeeded {
        let _ = write!(
            s,
            "\nRun {} can be resumed once the cause is fixed",
            report.run_id
        );
    }
    s
}

/// The page for a decision that says "stop all deployments, escalate" (or any decision
/// worth a human), with every finding in the details.
pub fn escalation_for_decision(
    incident: &Incident,
    region: &Region,
    decision: &Decision,
) -> Escalation {
    let severity = if decision.at_least() >= Action::StopAndEscalate {
        Severity::Critical
    } else {
        incident.severity
    };
    let mut details = BTreeMap::new();
    for (i, f) in decision.findings.iter().enumerate() {
        details.insert(format!("finding_{}", i + 1), f.to_string());
    }
    details.insert("incident".into(), incident.id.clone());
    Escalation {
        dedup_key: format!("meshos-rollback/{}/{region}", incident.id),
        summary: format!("{region}: {} ({})", decision.at_least(), incident.summary),
        severity,
        source: format!("meshos-rollback/{region}"),
        details,
    }
}
