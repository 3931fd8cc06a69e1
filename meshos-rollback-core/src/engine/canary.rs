//! Canary auto-rollback (playbook § Automated Rollback): watch a canary against the
//! stable fleet and roll it back by itself the moment the canary policy says so.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;

use super::api::Engine;
use super::checklist::{RollbackRequest, TimelineEntry, Trigger};
use super::report::RunReport;
use super::spec::RollbackSpec;
use crate::decision::{CanaryPolicy, Decision, Outcome};
use crate::model::{Incident, ServiceRef, Severity};
use crate::observation::SignalSet;
use crate::{Error, Result};

/// How to watch a canary.
#[derive(Debug, Clone)]
pub struct CanaryWatch {
    /// The canary.
    pub canary: ServiceRef,
    /// The stable fleet it is compared with.
    pub stable: ServiceRef,
    /// The rules.
    pub policy: CanaryPolicy,
    /// The metrics window of each check (5 minutes by default).
    pub window: Duration,
    /// Time between checks (1 minute by default).
    pub interval: Duration,
    /// How long the canary must stay healthy to be promoted (30 minutes by default).
    pub duration: Duration,
    /// Consecutive checks without data before giving up as inconclusive (3).
    pub max_no_data: u32,
    /// The incident id to use if the canary is rolled back; empty: the next of the
    /// day, `INC-YYYYMMDD-NNN` ([`Engine::next_incident_id`](super::Engine::next_incident_id)).
    pub incident_id: String,
}

impl CanaryWatch {
    /// Watches `canary` against `stable` with the playbook's rules.
    pub fn new(canary: ServiceRef, stable: ServiceRef, incident_id: impl Into<String>) -> Self {
        CanaryWatch {
            canary,
            stable,
            policy: CanaryPolicy::default(),
            window: Duration::from_secs(300),
            interval: Duration::from_secs(60),
            duration: Duration::from_secs(1800),
            max_no_data: 3,
            incident_id: incident_id.into(),
        }
    }

    /// Sets the rules.
    pub fn with_policy(mut self, policy: CanaryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets how long and how often to check.
    pub fn with_schedule(mut self, duration: Duration, interval: Duration) -> Self {
        self.duration = duration;
        self.interval = interval;
        self
    }
}

/// How a canary watch ended.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum CanaryOutcome {
    /// Healthy for the whole duration: safe to promote.
    Healthy {
        /// Checks made.
        checks: u32,
    },
    /// A rule fired and the canary was rolled back.
    RolledBack {
        /// The decision that triggered it, with every rule that fired.
        decision: Decision,
        /// The rollback's report.
        report: RunReport,
    },
    /// The metrics had no data too often to judge: neither promoted nor rolled back.
    Inconclusive {
        /// The signals that were missing at the last check.
        missing: SignalSet,
        /// Checks made.
        checks: u32,
    },
}

impl fmt::Display for CanaryOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CanaryOutcome::Healthy { checks } => {
                write!(f, "canary healthy ({checks} checks): promote")
            }
            CanaryOutcome::RolledBack { decision, report } => {
                write!(f, "canary rolled back ({}): {decision}", report.status)
            }
            CanaryOutcome::Inconclusive { missing, checks } => write!(
                f,
                "canary inconclusive after {checks} checks: no data for {missing}; not promoted"
            ),
        }
    }
}

impl Engine {
    /// Watches a canary: every `interval`, the canary's metrics against the stable
    /// fleet's, judged by the canary policy. The first check that calls for a rollback
    /// plans and runs `on_breach` as an automatic rollback whose recorded reason is the
    /// decision (no checklist: the policy decided). Missing data is never read as
    /// healthy: after `max_no_data` checks in a row without it the watch ends
    /// inconclusive.
    pub async fn watch_canary(
        &self,
        watch: &CanaryWatch,
        on_breach: &RollbackSpec,
    ) -> Result<CanaryOutcome> {
        if watch.interval.is_zero() || watch.interval > watch.duration {
            return Err(Error::invalid(
                "canary watch interval",
                "must be longer than zero and not longer than the watch duration",
            ));
        }
        let started_at = self.clock().now();
        let began = tokio::time::Instant::now();
        let mut checks = 0;
        let mut no_data = 0;
        loop {
            let observation = self
                .observe_canary(&watch.canary, &watch.stable, watch.window)
                .await?;
            let decision = watch.policy.evaluate(&observation);
            checks += 1;
            self.notify_progress(|| super::progress::ProgressEvent::CanaryChecked {
                canary: watch.canary.clone(),
                check: checks,
                decision: decision.to_string(),
            });
            match decision.outcome {
                Outcome::Act { .. } if decision.requires_rollback() => {
                    let report = self
                        .roll_back_canary(watch, &decision, started_at, on_breach)
                        .await?;
                    return Ok(CanaryOutcome::RolledBack { decision, report });
                }
                Outcome::Act { .. } => no_data = 0,
                Outcome::NoData { missing, .. } => {
                    no_data += 1;
                    tracing::warn!(canary = %watch.canary, %missing, no_data, "canary check without data");
                    if no_data >= watch.max_no_data {
                        return Ok(CanaryOutcome::Inconclusive { missing, checks });
                    }
                }
            }
            if began.elapsed() >= watch.duration {
                return Ok(CanaryOutcome::Healthy { checks });
            }
            tokio::time::sleep(watch.interval.min(watch.duration - began.elapsed())).await;
        }
    }

    async fn roll_back_canary(
        &self,
        watch: &CanaryWatch,
        decision: &Decision,
        canary_started: Timestamp,
        spec: &RollbackSpec,
    ) -> Result<RunReport> {
        let now = self.clock().now();
        let headline = decision
            .findings
            .first()
            .map_or_else(|| "canary policy breached".to_owned(), |f| f.to_string());
        let plan = self.plan(spec).await?;
        let request = RollbackRequest {
            incident: Incident {
                id: watch.incident_id.clone(),
                severity: Severity::High,
                summary: format!("Canary {}: {headline}", watch.canary.service.name()),
                started_at: canary_started,
                regions: plan.regions.iter().map(|r| r.region.clone()).collect(),
            },
            trigger: Trigger::Automatic {
                reason: decision.to_string(),
            },
            prior_events: vec![
                TimelineEntry::new(
                    canary_started,
                    format!("Canary watch started on {}", watch.canary),
                ),
                TimelineEntry::new(now, format!("Canary policy: {headline}")),
                TimelineEntry::new(now, "Decision to rollback (automatic)"),
            ],
        };
        self.execute(plan, request).await
    }
}
