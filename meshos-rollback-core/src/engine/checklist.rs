//! The pre-rollback checklist (playbook § Pre-Rollback Checklist) as a gate.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::plan::RollbackPlan;
use crate::model::Incident;
use crate::{Error, Result};

/// Who may approve a manual rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApproverRole {
    /// The on-call engineer.
    OnCallEngineer,
    /// An engineering manager.
    Manager,
}

impl fmt::Display for ApproverRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApproverRole::OnCallEngineer => "on-call engineer",
            ApproverRole::Manager => "manager",
        })
    }
}

/// A recorded approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved, such as `alice (PagerDuty #mesh-os-oncall)`.
    pub by: String,
    /// In which role.
    pub role: ApproverRole,
}

/// Whether the current state was backed up ("if time permits").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backup {
    /// Captured; where to find it.
    Captured(String),
    /// Skipped; why.
    Skipped(String),
}

/// The customer impact as assessed, rendered as the report and e-mail templates say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerImpact {
    /// About how many customers were affected, when known.
    pub customers: Option<u32>,
    /// What they experienced, such as `elevated error rates`.
    pub effect: String,
}

impl CustomerImpact {
    /// About `customers` customers experienced `effect`.
    pub fn new(customers: Option<u32>, effect: impl Into<String>) -> Self {
        CustomerImpact {
            customers,
            effect: effect.into(),
        }
    }

    /// The e-mail's form: `Approximately 150 customers may have experienced elevated error rates.`
    pub fn for_email(&self) -> String {
        match self.customers {
            Some(n) => format!(
                "Approximately {n} customers may have experienced {}.",
                self.effect
            ),
            None => format!("Customers may have experienced {}.", self.effect),
        }
    }
}

impl fmt::Display for CustomerImpact {
    /// The report's form: `~150 customers experienced elevated error rates`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.customers {
            Some(n) => write!(f, "~{n} customers experienced {}", self.effect),
            None => write!(f, "customers experienced {}", self.effect),
        }
    }
}

/// The checklist of a manual rollback. Every item but the backup is required.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreRollbackChecklist {
    /// Where the incident is confirmed and documented (ticket, doc link).
    pub incident_documented: Option<String>,
    /// Who approved the rollback.
    pub approval: Option<Approval>,
    /// The customer impact as assessed.
    pub customer_impact: Option<CustomerImpact>,
    /// How stakeholders were told, such as `status page + #customer-support, 10:12 UTC`.
    pub stakeholders_notified: Option<String>,
    /// The backup of the current state, if time permitted.
    pub backup: Option<Backup>,
}

impl PreRollbackChecklist {
    /// An empty checklist.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ticks "incident confirmed and documented".
    pub fn incident_documented(mut self, where_: impl Into<String>) -> Self {
        self.incident_documented = Some(where_.into());
        self
    }

    /// Ticks "rollback approved".
    pub fn approved_by(mut self, who: impl Into<String>, role: ApproverRole) -> Self {
        self.approval = Some(Approval {
            by: who.into(),
            role,
        });
        self
    }

    /// Ticks "customer impact assessed".
    pub fn customer_impact(mut self, impact: CustomerImpact) -> Self {
        self.customer_impact = Some(impact);
        self
    }

    /// Ticks "communication sent to stakeholders".
    pub fn stakeholders_notified(mut self, how: impl Into<String>) -> Self {
        self.stakeholders_notified = Some(how.into());
        self
    }

    /// Records the backup.
    pub fn backup(mut self, backup: Backup) -> Self {
        self.backup = Some(backup);
        self
    }
}

/// Why a rollback runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A person started it; the checklist gates it.
    Manual(PreRollbackChecklist),
    /// The canary policy or decision matrix started it; no approval needed, but the
    /// reason (the decision with its findings) is recorded.
    Automatic {
        /// The decision, as text with every finding.
        reason: String,
    },
}

/// A rollback to run: the incident it answers and why it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// The incident.
    pub incident: Incident,
    /// Manual (with checklist) or automatic (with its reason).
    pub trigger: Trigger,
    /// Events before the rollback for the report's timeline, such as
    /// `Deployment v2.5.0 completed` and `Alert triggered - error rate 5%`.
    pub prior_events: Vec<TimelineEntry>,
}

/// A line of the incident timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When.
    pub at: Timestamp,
    /// What happened.
    pub text: String,
}

impl TimelineEntry {
    /// A timeline line.
    pub fn new(at: Timestamp, text: impl Into<String>) -> Self {
        TimelineEntry {
            at,
            text: text.into(),
        }
    }
}

/// The state of one checklist item when the gate was passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The item, in the playbook's words.
    pub item: String,
    /// `done: …`, `skipped: …` or `not required: …`.
    pub status: String,
}

/// What the gate checked, kept in the journal and the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRecord {
    /// `manual` or `automatic`.
    pub kind: String,
    /// Who approved a manual rollback.
    pub approval: Option<Approval>,
    /// Why an automatic rollback went ahead.
    pub reason: Option<String>,
    /// Every checklist item.
    pub items: Vec<ItemRecord>,
    /// The customer impact as assessed.
    pub customer_impact: Option<CustomerImpact>,
}

fn done(item: &str, detail: impl fmt::Display) -> ItemRecord {
    ItemRecord {
        item: item.into(),
        status: format!("done: {detail}"),
    }
}

fn filled(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Passes the gate or names every unchecked item. Versions come from the plan.
pub(crate) fn gate(request: &RollbackRequest, plan: &RollbackPlan) -> Result<GateRecord> {
    let versions_known = plan.regions.iter().all(|r| {
        r.versions.target.is_some()
            || r.steps.iter().all(|s| {
                !matches!(
                    s.step,
                    super::plan::Step::RollBackDeployment { .. }
                        | super::plan::Step::RedeployImage { .. }
                )
            })
    });
    let versions: Vec<String> = plan
        .regions
        .iter()
        .map(|r| {
            format!(
                "{}: {} -> {}",
                r.region,
                r.versions.current.as_deref().unwrap_or("?"),
                r.versions
                    .target
                    .as_deref()
                    .unwrap_or("(no application change)")
            )
        })
        .collect();
    let incident = &request.incident;
    match &request.trigger {
        Trigger::Automatic { reason } => {
            if reason.trim().is_empty() {
                return Err(Error::precondition(
                    "trigger.reason",
                    "an automatic rollback must record why it went ahead (the decision and its findings)",
                ));
            }
            let nr = |item: &str| ItemRecord {
                item: item.into(),
                status: "not required: automatic canary rollback".into(),
            };
            Ok(GateRecord {
                kind: "automatic".into(),
                approval: None,
                reason: Some(reason.clone()),
                items: vec![
                    done("Incident confirmed and documented", &incident.id),
                    nr("Rollback decision approved"),
                    done("Current and target versions known", versions.join("; ")),
                    nr("Customer impact assessed"),
                    nr("Communication sent to stakeholders"),
                    nr("Backup of current state captured"),
                ],
                customer_impact: None,
            })
        }
        Trigger::Manual(c) => {
            let mut missing: Vec<(&str, &str)> = Vec::new();
            if filled(&c.incident_documented).is_none() {
                missing.push((
                    "checklist.incident_documented",
                    "confirm the incident and say where it is documented",
                ));
            }
            if c.approval.as_ref().is_none_or(|a| a.by.trim().is_empty()) {
                missing.push((
                    "checklist.approval",
                    "approval by an on-call engineer or manager is required: record who approved",
                ));
            }
            if !versions_known {
                missing.push((
                    "checklist.versions",
                    "the current and target versions must be known",
                ));
            }
            if c.customer_impact
                .as_ref()
                .is_none_or(|i| i.effect.trim().is_empty())
            {
                missing.push(("checklist.customer_impact", "assess the customer impact"));
            }
            if filled(&c.stakeholders_notified).is_none() {
                missing.push((
                    "checklist.stakeholders_notified",
                    "send the communication to stakeholders and record how",
                ));
            }
            if let Some((first, _)) = missing.first() {
                let what = if missing.len() == 1 {
                    (*first).to_owned()
                } else {
                    "checklist".to_owned()
                };
                let list: Vec<String> = missing.iter().map(|(k, m)| format!("{k}: {m}")).collect();
                return Err(Error::precondition(
                    what,
                    format!(
                        "the manual rollback did not start; unchecked: {}",
                        list.join("; ")
                    ),
                ));
            }
            let approval = c.approval.clone().expect("checked above");
            Ok(GateRecord {
                kind: "manual".into(),
                approval: Some(approval.clone()),
                reason: None,
                items: vec![
                    done(
                        "Incident confirmed and documented",
                        format!(
                            "{} ({})",
                            incident.id,
                            c.incident_documented.as_deref().unwrap_or_default()
                        ),
                    ),
                    done(
                        "Rollback decision approved",
                        format!("{} ({})", approval.by, approval.role),
                    ),
                    done("Current and target versions known", versions.join("; ")),
                    done(
                        "Customer impact assessed",
                        c.customer_impact
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                    ),
                    done(
                        "Communication sent to stakeholders",
                        c.stakeholders_notified.as_deref().unwrap_or_default(),
                    ),
                    match &c.backup {
                        Some(Backup::Captured(r)) => done("Backup of current state captured", r),
                        Some(Backup::Skipped(why)) => ItemRecord {
                            item: "Backup of current state captured".into(),
                            status: format!("skipped: {why}"),
                        },
                        None => ItemRecord {
                            item: "Backup of current state captured".into(),
                            status: "skipped: not captured (optional, if time permits)".into(),
                        },
                    },
                ],
                customer_impact: c.customer_impact.clone(),
            })
        }
    }
}
