//! The database restore: into a NEW instance, tagged with the run and step.
//!
//! Idempotency: the new instance carries this run's id and this step's id as tags. On
//! a repeat, an existing target is adopted (waited for, not restored again) only when
//! its tags say this run and step created it; any other existing instance is refused,
//! exactly as on the first attempt, so a restore can never land on (or resolve to)
//! someone else's database, the source included.

use std::time::Duration;

use super::{StepCtx, StepFailure};
use crate::Error;
use crate::engine::journal::{DataLossWindow, StepOutcome};
use crate::engine::plan::ResolvedRestore;
use crate::provider::{CREATED_BY_RUN, CREATED_BY_STEP, DbInstanceId, ResourceTags, RestorePoint};

/// The tags that mark an instance as created by this step of this run.
pub(crate) fn tags(run: &str, step: &str) -> ResourceTags {
    ResourceTags::from([
        (CREATED_BY_RUN.to_owned(), run.to_owned()),
        (CREATED_BY_STEP.to_owned(), step.to_owned()),
    ])
}

pub(super) async fn restore(
    ctx: &StepCtx<'_>,
    source: &DbInstanceId,
    target: &DbInstanceId,
    restore: &ResolvedRestore,
) -> std::result::Result<StepOutcome, StepFailure> {
    let db = ctx
        .region_providers()?
        .database
        .as_ref()
        .ok_or_else(|| ctx.missing("database"))?;
    let ours = tags(ctx.run_id.as_str(), ctx.step_id.as_str());
    let adopted = match db.instance(target).await {
        Ok(existing) => {
            let created_here = ours.iter().all(|(k, v)| existing.tags.get(k) == Some(v));
            if !created_here {
                let by = existing.tags.get(CREATED_BY_RUN).map_or_else(
                    || "not by a rollback run".to_owned(),
                    |r| format!("by run {r}"),
                );
                return Err(Error::conflict(
                    db,
                    format!(
                        "{target} already exists and was created {by}, not by this step of run {}; choose a new target identifier (nothing is overwritten)",
                        ctx.run_id
                    ),
                )
                .into());
            }
            true
        }
        Err(e) if e.is_not_found() => false,
        Err(e) => return Err(e.into()),
    };
    if !adopted {
        match &restore.snapshot {
            Some(id) => db.restore_snapshot(id, target, &ours).await?,
            None => {
                db.restore_to_point_in_time(
                    source,
                    target,
                    &RestorePoint::At(restore.data_as_of),
                    &ours,
                )
                .await?
            }
        };
    }
    let ready = db.wait_available(target).await?;
    let incident_started_at = ctx.request.incident.started_at;
    let data_as_of = restore.data_as_of;
    let before_incident = if data_as_of < incident_started_at {
        incident_started_at
            .duration_since(data_as_of)
            .unsigned_abs()
    } else {
        Duration::ZERO
    };
    Ok(StepOutcome::DatabaseRestored {
        instance: target.clone(),
        endpoint: ready.endpoint,
        snapshot: restore.snapshot.as_ref().map(ToString::to_string),
        data_loss: DataLossWindow {
            data_as_of,
            incident_started_at,
            before_incident,
        },
        adopted,
    })
}
