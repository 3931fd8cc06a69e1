//! Application steps: retag an image, roll back to a revision, redeploy an image, wait
//! for the rollout, switch the connection string.
//!
//! Idempotency: each sets an explicit value (the planned revision, image, variable), so
//! a repeat finds it set and the deployer reports "no change"; waiting and retagging to
//! the same digest are no-ops by nature.

use secrecy::{ExposeSecret, SecretString};

use super::{StepCtx, StepFailure};
use crate::Error;
use crate::engine::journal::StepOutcome;
use crate::engine::plan::Step;
use crate::model::{RevisionId, RollbackTarget, ServiceId};
use crate::provider::{DbInstanceId, EnvVar, ImageRef, ImageUpdate};

type StepResult = std::result::Result<StepOutcome, StepFailure>;

pub(super) async fn retag(
    ctx: &StepCtx<'_>,
    repository: &str,
    source: &ImageRef,
    tag: &str,
) -> StepResult {
    let reg = ctx
        .providers
        .registry
        .as_ref()
        .ok_or_else(|| ctx.missing("registry"))?;
    let r = reg.retag(repository, source, tag).await?;
    Ok(StepOutcome::Retagged {
        digest: r.digest,
        changed: r.changed,
    })
}

/// Always to the explicit revision resolved when planning: repeating it is a no-op.
pub(super) async fn roll_back(
    ctx: &StepCtx<'_>,
    service: &ServiceId,
    to: &RevisionId,
) -> StepResult {
    let change = ctx
        .region_providers()?
        .deployer
        .roll_back(service, &RollbackTarget::Revision(to.clone()))
        .await?;
    Ok(StepOutcome::Deployed { change })
}

/// Redeploys `image`. When this run retagged that very tag first (retag `latest`,
/// then redeploy `latest`), the image is pinned by the digest the retag reported:
/// an unchanged `:latest` in a task definition or pod template starts no new tasks,
/// and a tag can move again under a running rollback.
pub(super) async fn redeploy(
    ctx: &StepCtx<'_>,
    service: &ServiceId,
    container: Option<&str>,
    image: &str,
) -> StepResult {
    let image = pinned(ctx, image);
    let change = ctx
        .region_providers()?
        .deployer
        .set_image(
            service,
            &ImageUpdate {
                container: container.map(str::to_owned),
                image,
            },
        )
        .await?;
    Ok(StepOutcome::Deployed { change })
}

/// `repo:tag` as `repo@digest` when a retag step of this region moved `tag` to
/// `digest`; any other image as it is.
fn pinned(ctx: &StepCtx<'_>, image: &str) -> String {
    let Some((repo, tag)) = image
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/') && !image.contains('@'))
    else {
        return image.to_owned();
    };
    let digest = ctx
        .done
        .iter()
        .find_map(|(step, outcome)| match (step, outcome) {
            (
                Step::RetagImage {
                    repository, tag: t, ..
                },
                StepOutcome::Retagged { digest, .. },
            ) if t == tag && (repo == repository || repo.ends_with(&format!("/{repository}"))) => {
                Some(digest.clone())
            }
            _ => None,
        });
    match digest {
        Some(d) => format!("{repo}@{d}"),
        None => image.to_owned(),
    }
}

pub(super) async fn wait_stable(ctx: &StepCtx<'_>, service: &ServiceId) -> StepResult {
    let status = ctx
        .region_providers()?
        .deployer
        .wait_until_stable(service)
        .await?;
    Ok(StepOutcome::Stable { status })
}

pub(super) async fn switch_connection(
    ctx: &StepCtx<'_>,
    service: &ServiceId,
    database: &DbInstanceId,
    env_var: &str,
    container: Option<&str>,
    template_secret: &str,
) -> StepResult {
    let rps = ctx.region_providers()?;
    let template = ctx.secrets.get(template_secret).ok_or_else(|| {
        Error::precondition(
            format!("secrets.{template_secret}"),
            "the connection-string template was not given to the engine",
        )
    })?;
    let restored =
        ctx.outcome_of(|s| matches!(s, Step::RestoreDatabase { target, .. } if target == database));
    let endpoint = match restored {
        Some(StepOutcome::DatabaseRestored {
            endpoint: Some(e), ..
        }) => e.clone(),
        _ => {
            let db = rps
                .database
                .as_ref()
                .ok_or_else(|| ctx.missing("database"))?;
            db.instance(database).await?.endpoint.ok_or_else(|| {
                Error::failed(
                    db,
                    format!("{database} has no endpoint yet; wait until it is available"),
                )
            })?
        }
    };
    let value = SecretString::from(
        template
            .expose_secret()
            .replace("{host}", &endpoint.host)
            .replace("{port}", &endpoint.port.to_string()),
    );
    ctx.redactor.register(&value);
    let change = rps
        .deployer
        .set_env(
            service,
            &EnvVar {
                container: container.map(str::to_owned),
                name: env_var.to_owned(),
                value,
            },
        )
        .await?;
    Ok(StepOutcome::ConnectionSwitched {
        database: database.clone(),
        change,
    })
}
