//! Why a plan cannot run: typed problems, every one listed at once, nothing changed.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{Region, ServiceId};
use crate::provider::{DbInstanceId, MigrationTarget};

/// One reason a plan is refused. Each says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "problem")]
#[non_exhaustive]
pub enum PlanProblem {
    /// The region has no providers at all.
    NoProviders {
        /// The region.
        region: Region,
    },
    /// A procedure needs a provider that is not configured.
    MissingProvider {
        /// The region (`None`: a run-wide provider).
        region: Option<Region>,
        /// The trait, such as `DnsSwitcher`.
        provider: String,
        /// What needs it.
        needed_for: String,
    },
    /// A provider cannot do what the spec asks.
    MissingCapability {
        /// The region.
        region: Region,
        /// The provider (`Display`).
        provider: String,
        /// What it cannot do.
        capability: String,
    },
    /// "Previous" could not be resolved into a revision.
    NoPreviousRevision {
        /// The region.
        region: Region,
        /// The service.
        service: ServiceId,
    },
    /// A provider could not be read while planning.
    Unreadable {
        /// The region.
        region: Option<Region>,
        /// What could not be read.
        what: String,
        /// The error, redacted.
        error: String,
    },
    /// A restore would go onto its own source.
    RestoreOntoSource {
        /// The region.
        region: Region,
        /// The instance.
        target: DbInstanceId,
    },
    /// A restore would bring back data written after the incident began.
    RestoreAfterIncident {
        /// The region.
        region: Region,
        /// The target instance.
        target: DbInstanceId,
        /// The time the restored data is from.
        data_as_of: Timestamp,
        /// When the incident began.
        incident_started_at: Timestamp,
    },
    /// A secret the plan needs was not given to the engine.
    UnknownSecret {
        /// The region.
        region: Region,
        /// The secret's name.
        name: String,
    },
    /// A schema target that names nothing to revert.
    NothingToRevert {
        /// The region.
        region: Region,
        /// The target.
        target: MigrationTarget,
    },
    /// Verification is on but no check can run.
    NothingToVerify {
        /// The region.
        region: Region,
    },
    /// The other-regions check has nothing to check with.
    CannotCheckOtherRegions {
        /// The region.
        region: Region,
        /// Why.
        reason: String,
    },
    /// Paging is asked for but no escalator is configured.
    NoEscalator {
        /// What asks for paging.
        needed_for: String,
    },
    /// The region is not in the weighted record set.
    NotInRecordSet {
        /// The region.
        region: Region,
        /// The record set.
        record: String,
    },
    /// The region is already out of routing and nothing says what weight to re-admit
    /// it at.
    NoReadmitWeight {
        /// The region.
        region: Region,
        /// The record set.
        record: String,
    },
    /// Every region of a record set would be excluded at once (Route53 treats all-zero
    /// weights as all-equal: traffic would return everywhere).
    ExcludesEveryRegion {
        /// The record set.
        record: String,
    },
    /// "Last batch" would revert a second batch: an earlier, unfinished run of this
    /// service already reverted one.
    SchemaRevertedByEarlierRun {
        /// The region.
        region: Region,
        /// The earlier run.
        run: String,
        /// What it reverted.
        reverted: Vec<String>,
    },
    /// A communication route that reaches nobody, or the wrong kind of channel.
    BadRoute {
        /// The config key (`comms.routes.unresolved`, `comms.contacts.vp.via`).
        field: String,
        /// The contact named.
        contact: String,
        /// What is wrong and what to do.
        why: String,
    },
    /// The region has no step.
    NothingToDo {
        /// The region.
        region: Region,
    },
}

fn at(region: &Option<Region>) -> String {
    region
        .as_ref()
        .map_or_else(String::new, |r| format!("{r}: "))
}

impl fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanProblem::NoProviders { region } => {
                write!(f, "{region}: no providers configured for this region")
            }
            PlanProblem::MissingProvider {
                region,
                provider,
                needed_for,
            } => write!(
                f,
                "{}{needed_for} needs a {provider}; configure one",
                at(region)
            ),
            PlanProblem::MissingCapability {
                region,
                provider,
                capability,
            } => write!(f, "{region}: {provider} cannot {capability}"),
            PlanProblem::NoPreviousRevision { region, service } => write!(
                f,
                "{region}: {service} has no previous revision to roll back to; name one explicitly"
            ),
            PlanProblem::Unreadable {
                region,
                what,
                error,
            } => {
                write!(f, "{}cannot read {what}: {error}", at(region))
            }
            PlanProblem::RestoreOntoSource { region, target } => write!(
                f,
                "{region}: the restore target {target} is the source: a restore always goes into a NEW instance; name a new target"
            ),
            PlanProblem::RestoreAfterIncident {
                region,
                target,
                data_as_of,
                incident_started_at,
            } => write!(
                f,
                "{region}: restoring {target} with data as of {data_as_of} would bring back what was written after the incident began ({incident_started_at}); pick an earlier snapshot or time, or set accept_data_after_incident"
            ),
            PlanProblem::UnknownSecret { region, name } => write!(
                f,
                "{region}: no secret named {name:?} was given to the engine; pass it with EngineBuilder::with_secret"
            ),
            PlanProblem::NothingToRevert { region, target } => write!(
                f,
                "{region}: the schema {target} names no applied migration; check the migration status"
            ),
            PlanProblem::NothingToVerify { region } => write!(
                f,
                "{region}: verification is on but nothing can be checked (no health endpoint with a HealthChecker, no smoke tests, metrics or customer reports with their providers); configure a check or turn verification off"
            ),
            PlanProblem::CannotCheckOtherRegions { region, reason } => {
                write!(f, "{region}: the other-regions check cannot run: {reason}")
            }
            PlanProblem::NoEscalator { needed_for } => write!(
                f,
                "{needed_for} pages on-call, but no Escalator is configured; add one or choose another policy"
            ),
            PlanProblem::NotInRecordSet { region, record } => write!(
                f,
                "{region}: {record} has no weighted record for this region"
            ),
            PlanProblem::NoReadmitWeight { region, record } => write!(
                f,
                "{region}: already out of {record} (weight 0), so there is no weight to re-admit it at; set readmit_weight"
            ),
            PlanProblem::ExcludesEveryRegion { record } => write!(
                f,
                "{record}: every region with traffic would be excluded at once, and an all-zero record set routes to all of them; keep at least one region in routing"
            ),
            PlanProblem::SchemaRevertedByEarlierRun {
                region,
                run,
                reverted,
            } => write!(
                f,
                "{region}: run {run} already reverted [{}] and did not finish; \"last batch\" now would revert the batch before it: resume {run}, or name the migration to revert",
                reverted.join(", ")
            ),
            PlanProblem::BadRoute {
                field,
                contact,
                why,
            } => write!(f, "{field}: contact \"{contact}\" {why}"),
            PlanProblem::NothingToDo { region } => write!(f, "{region}: nothing to do"),
        }
    }
}

/// A refused plan: every problem found, nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRefusal {
    /// The problems, in region order.
    pub problems: Vec<PlanProblem>,
}

impl fmt::Display for PlanRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the plan cannot run, nothing was changed:")?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanRefusal {}
