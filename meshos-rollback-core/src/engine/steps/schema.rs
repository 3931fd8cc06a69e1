//! The schema rollback: revert exactly the migrations pinned when planning.
//!
//! Idempotency: the plan names the migrations ("last batch" resolved to names), and the
//! step reverts, newest first, only those still applied, one by name. A repeat after
//! they are all reverted is a no-op; a resume after a partial revert finishes the rest.
//! It never asks the migrator for "the last batch" at run time, which after a first
//! attempt would be the batch before and a second, unplanned revert (data loss).

use super::{StepCtx, StepFailure};
use crate::Error;
use crate::engine::journal::{PreState, StepOutcome};
use crate::provider::MigrationTarget;

pub(super) async fn pre_state(ctx: &StepCtx<'_>) -> crate::Result<Option<PreState>> {
    let m = ctx
        .region_providers()?
        .migrator
        .as_ref()
        .ok_or_else(|| ctx.missing("migrator"))?;
    let s = m.status().await?;
    Ok(Some(PreState::Schema {
        version: s.version().map(str::to_owned),
        applied: s.applied.len(),
    }))
}

pub(super) async fn roll_back(
    ctx: &StepCtx<'_>,
    migrations: &[String],
) -> std::result::Result<StepOutcome, StepFailure> {
    let m = ctx
        .region_providers()?
        .migrator
        .as_ref()
        .ok_or_else(|| ctx.missing("migrator"))?;
    let status = m.status().await?;
    let still: Vec<&String> = migrations.iter().filter(|n| status.is_applied(n)).collect();
    // Reverting a migration with a newer one applied on top breaks the newer one:
    // the pinned migrations still applied must be the newest ones.
    let newest: Vec<&str> = status
        .applied
        .iter()
        .rev()
        .take(still.len())
        .map(|a| a.name.as_str())
        .collect();
    if let Some(newer) = newest.iter().find(|n| !still.iter().any(|s| s == *n)) {
        return Err(Error::conflict(
            m,
            format!(
                "migration {newer} was applied after the plan was made, on top of [{}]; nothing was reverted: make a new plan",
                migrations.join(", ")
            ),
        )
        .into());
    }
    let already_reverted: Vec<String> = migrations
        .iter()
        .filter(|n| !status.is_applied(n))
        .cloned()
        .collect();
    let mut reverted = Vec::with_capacity(still.len());
    for name in still {
        let partial = |reverted: &Vec<String>| StepOutcome::SchemaRolledBack {
            reverted: reverted.clone(),
            already_reverted: already_reverted.clone(),
            version: None,
        };
        match m.roll_back(&MigrationTarget::Named(name.clone())).await {
            Ok(names) if names.len() == 1 && &names[0] == name => reverted.push(name.clone()),
            Ok(names) => {
                reverted.extend(names.iter().cloned());
                return Err(StepFailure {
                    error: Error::failed(
                        m,
                        format!(
                            "asked to revert {name}, the migrator reverted [{}]; stop and check the schema by hand",
                            names.join(", ")
                        ),
                    ),
                    detail: Some(partial(&reverted)),
                });
            }
            Err(e) => {
                return Err(StepFailure {
                    error: e,
                    detail: Some(partial(&reverted)),
                });
            }
        }
    }
    let after = m.status().await?;
    Ok(StepOutcome::SchemaRolledBack {
        reverted,
        already_reverted,
        version: after.version().map(str::to_owned),
    })
}
