//! One module per kind of step: what it reads before acting (its pre-state), what it
//! does, and why repeating it (on resume) never acts twice.

mod database;
mod deploy;
mod routing;
mod schema;
mod traffic;
mod verify;

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;

use super::checklist::RollbackRequest;
use super::journal::{PreState, StepOutcome};
use super::plan::{PlannedStep, RollbackPlan, RunId, Step, StepId};
use super::providers::{Providers, RegionProviders};
use crate::clock::Clock;
use crate::model::Region;
use crate::redact::Redactor;
use crate::{Error, Result};

/// What a step may read while it runs.
pub(super) struct StepCtx<'a> {
    pub(super) providers: &'a Providers,
    pub(super) region: &'a Region,
    pub(super) plan: &'a RollbackPlan,
    pub(super) request: &'a RollbackRequest,
    pub(super) secrets: &'a BTreeMap<String, SecretString>,
    pub(super) redactor: &'a Redactor,
    pub(super) clock: &'a dyn Clock,
    pub(super) run_id: &'a RunId,
    pub(super) step_id: &'a StepId,
    /// The outcomes of this region's steps that already succeeded, in plan order.
    pub(super) done: Vec<(Step, StepOutcome)>,
}

impl StepCtx<'_> {
    fn region_providers(&self) -> Result<&RegionProviders> {
        self.providers.regions.get(self.region).ok_or_else(|| {
            Error::precondition(
                format!("providers.{}", self.region),
                "no providers for this region any more",
            )
        })
    }

    fn missing(&self, what: &str) -> Error {
        Error::precondition(
            format!("providers.{what}"),
            format!("no {what} provider for {}", self.region),
        )
    }

    /// The outcome of an earlier step of this region that matches.
    fn outcome_of(&self, matches: impl Fn(&Step) -> bool) -> Option<&StepOutcome> {
        self.done
            .iter()
            .find(|(s, _)| matches(s))
            .map(|(_, outcome)| outcome)
    }
}

/// A failed step, with what it found.
pub(super) struct StepFailure {
    pub(super) error: Error,
    pub(super) detail: Option<StepOutcome>,
}

impl From<Error> for StepFailure {
    fn from(error: Error) -> Self {
        StepFailure {
            error,
            detail: None,
        }
    }
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

/// Reads what a step will change, before it acts.
pub(super) async fn pre_state(ctx: &StepCtx<'_>, step: &Step) -> Result<Option<PreState>> {
    match step {
        Step::ExcludeRegion { record, .. } => routing::exclude_pre_state(ctx, record).await,
        Step::PointDns { record, .. } => routing::point_pre_state(ctx, record).await,
        Step::ShiftTraffic { route, .. } => traffic::pre_state(ctx, route).await,
        Step::RollBackSchema { .. } => schema::pre_state(ctx).await,
        _ => Ok(None),
    }
}

/// Carries a step out. Every arm is idempotent: a repeat after a crash (with the
/// pre-state the first attempt recorded) finds the work done and changes nothing.
pub(super) async fn apply(
    ctx: &StepCtx<'_>,
    step: &Step,
    pre: Option<&PreState>,
) -> std::result::Result<StepOutcome, StepFailure> {
    match step {
        Step::ExcludeRegion { record, .. } => routing::exclude(ctx, record, pre).await,
        Step::ReadmitRegion { record, weight, .. } => routing::readmit(ctx, record, *weight).await,
        Step::PointDns { record, target } => routing::point(ctx, record, target, pre).await,
        Step::ShiftTraffic { route, stable } => traffic::shift(ctx, route, stable, pre).await,
        Step::RetagImage {
            repository,
            source,
            tag,
        } => deploy::retag(ctx, repository, source, tag).await,
        Step::RollBackDeployment { service, to, .. } => deploy::roll_back(ctx, service, to).await,
        Step::RedeployImage {
            service,
            container,
            image,
        } => deploy::redeploy(ctx, service, container.as_deref(), image).await,
        Step::WaitStable { service } => deploy::wait_stable(ctx, service).await,
        Step::SwitchConnection {
            service,
            database,
            env_var,
            container,
            template_secret,
        } => {
            deploy::switch_connection(
                ctx,
                service,
                database,
                env_var,
                container.as_deref(),
                template_secret,
            )
            .await
        }
        Step::RollBackSchema { migrations, .. } => schema::roll_back(ctx, migrations).await,
        Step::RestoreDatabase {
            source,
            target,
            restore,
            ..
        } => database::restore(ctx, source, target, restore).await,
        Step::Verify { service, checks } => verify::verify(ctx, service, checks).await,
        Step::CheckOtherRegions { services } => verify::check_others(ctx, services).await,
    }
}

/// The provider a step runs against now (`Display`), to compare with the one it was
/// planned against: a resume must act on the same world (account, region, context).
pub(super) fn provider_now(providers: &Providers, region: &Region, ps: &PlannedStep) -> String {
    fn label<T: fmt::Display + ?Sized>(p: Option<&std::sync::Arc<T>>) -> String {
        p.map_or_else(|| "none".to_owned(), |p| p.to_string())
    }
    let rp = providers.regions.get(region);
    match &ps.step {
        Step::ExcludeRegion { .. } | Step::ReadmitRegion { .. } | Step::PointDns { .. } => {
            label(providers.dns.as_ref())
        }
        Step::ShiftTraffic { .. } => label(rp.and_then(|r| r.traffic.as_ref())),
        Step::RetagImage { .. } => label(providers.registry.as_ref()),
        Step::RollBackDeployment { .. }
        | Step::RedeployImage { .. }
        | Step::WaitStable { .. }
        | Step::SwitchConnection { .. } => label(rp.map(|r| &r.deployer)),
        Step::RollBackSchema { .. } => label(rp.and_then(|r| r.migrator.as_ref())),
        Step::RestoreDatabase { .. } => label(rp.and_then(|r| r.database.as_ref())),
        Step::Verify { .. } | Step::CheckOtherRegions { .. } => "engine".to_owned(),
    }
}
