//! Conformance of a [`Deployer`].

use secrecy::SecretString;

use super::{expect_kind, expect_ok};
use crate::ErrorKind;
use crate::model::{RevisionId, RollbackTarget, ServiceId};
use crate::provider::{Deployer, EnvVar, ImageUpdate};

/// What the caller prepared for [`run`].
#[derive(Debug, Clone)]
pub struct DeployerFixture {
    /// A service whose current revision is `newer`, with `older` as the revision a
    /// rollback "to the previous one" goes to. The suite leaves it running `newer`
    /// (when set_env and set_image are supported: a revision derived from it).
    pub service: ServiceId,
    /// The earlier revision.
    pub older: RevisionId,
    /// The current revision.
    pub newer: RevisionId,
    /// A revision id that does not exist, in the backend's format.
    pub missing_revision: RevisionId,
    /// A service that does not exist.
    pub missing_service: ServiceId,
    /// A container of the service, for set_env and set_image.
    pub container: String,
    /// An image for set_image.
    pub image: String,
}

/// Runs the deployer suite: history, rollback to previous and to an explicit
/// revision, idempotence, waiting, env and image changes, and not-found errors.
pub async fn run(deployer: &dyn Deployer, fx: &DeployerFixture) {
    let who = deployer.to_string();
    let caps = deployer.capabilities();
    assert!(
        caps.rollback_to_revision,
        "{who}: every deployer must roll back to an explicit revision"
    );

    // History: current and the rollback target.
    let history = expect_ok(deployer.revisions(&fx.service).await, "revisions");
    assert_eq!(history.current.id, fx.newer, "{who}: current revision");
    assert_eq!(
        history.rollback_target().map(|r| &r.id),
        Some(&fx.older),
        "{who}: the previous revision is the rollback target"
    );
    assert!(
        !history.previous.iter().any(|r| r.id == history.current.id),
        "{who}: previous revisions must not repeat the current one"
    );

    // Roll back to the previous revision and wait.
    let target = if caps.rollback_to_previous {
        RollbackTarget::Previous
    } else {
        RollbackTarget::Revision(fx.older.clone())
    };
    let change = expect_ok(deployer.roll_back(&fx.service, &target).await, "roll back");
    assert_eq!(change.from, fx.newer, "{who}: rollback 'from'");
    assert_eq!(change.to, fx.older, "{who}: rollback 'to'");
    assert!(
        change.changed,
        "{who}: a rollback to another revision changes the service"
    );
    let status = expect_ok(
        deployer.wait_until_stable(&fx.service).await,
        "wait until stable",
    );
    assert!(
        status.is_complete(),
        "{who}: wait_until_stable returned {status}"
    );
    assert_eq!(
        status.revision, fx.older,
        "{who}: stable revision after rollback"
    );
    let now = expect_ok(deployer.rollout_status(&fx.service).await, "rollout status");
    assert!(now.is_complete(), "{who}: status after waiting: {now}");
    let history = expect_ok(deployer.revisions(&fx.service).await, "revisions");
    assert_eq!(
        history.current.id, fx.older,
        "{who}: current after rollback"
    );

    // Repeating the rollback is a no-op.
    let again = expect_ok(
        deployer
            .roll_back(&fx.service, &RollbackTarget::Revision(fx.older.clone()))
            .await,
        "repeat rollback",
    );
    assert!(
        !again.changed,
        "{who}: rolling back to the running revision must change nothing"
    );
    assert_eq!(again.to, fx.older);

    // Roll forward again to an explicit revision.
    let forward = expect_ok(
        deployer
            .roll_back(&fx.service, &RollbackTarget::Revision(fx.newer.clone()))
            .await,
        "roll back to an explicit revision",
    );
    assert!(
        forward.changed && forward.to == fx.newer,
        "{who}: explicit revision: {forward:?}"
    );
    expect_ok(
        deployer.wait_until_stable(&fx.service).await,
        "wait after explicit rollback",
    );

    // Not found.
    expect_kind(
        deployer
            .roll_back(
                &fx.service,
                &RollbackTarget::Revision(fx.missing_revision.clone()),
            )
            .await,
        ErrorKind::NotFound,
        "rollback to a missing revision",
    );
    expect_kind(
        deployer.revisions(&fx.missing_service).await,
        ErrorKind::NotFound,
        "revisions of a missing service",
    );
    expect_kind(
        deployer.rollout_status(&fx.missing_service).await,
        ErrorKind::NotFound,
        "status of a missing service",
    );
    let current = expect_ok(deployer.revisions(&fx.service).await, "revisions")
        .current
        .id;
    assert_eq!(
        current, fx.newer,
        "{who}: a failed rollback must not change the service"
    );

    if caps.set_env {
        let var = EnvVar {
            container: Some(fx.container.clone()),
            name: "DATABASE_URL".into(),
            value: SecretString::from("postgresql://app:s3cret@restored-db.example:5432/meshos"),
        };
        let change = expect_ok(deployer.set_env(&fx.service, &var).await, "set env");
        assert!(change.changed, "{who}: a new env value changes the service");
        expect_ok(
            deployer.wait_until_stable(&fx.service).await,
            "wait after set env",
        );
        let again = expect_ok(deployer.set_env(&fx.service, &var).await, "set env again");
        assert!(
            !again.changed,
            "{who}: setting the same env value again changes nothing"
        );
        let missing = EnvVar {
            container: Some(format!("{}-missing", fx.container)),
            ..var
        };
        expect_kind(
            deployer.set_env(&fx.service, &missing).await,
            ErrorKind::NotFound,
            "set env on a missing container",
        );
    }
    if caps.set_image {
        let update = ImageUpdate {
            container: Some(fx.container.clone()),
            image: fx.image.clone(),
        };
        let change = expect_ok(deployer.set_image(&fx.service, &update).await, "set image");
        assert!(change.changed, "{who}: a new image changes the service");
        expect_ok(
            deployer.wait_until_stable(&fx.service).await,
            "wait after set image",
        );
        let history = expect_ok(deployer.revisions(&fx.service).await, "revisions");
        assert_eq!(
            history.current.image.as_deref(),
            Some(fx.image.as_str()),
            "{who}: current image after set_image"
        );
        let again = expect_ok(
            deployer.set_image(&fx.service, &update).await,
            "set image again",
        );
        assert!(
            !again.changed,
            "{who}: setting the same image again changes nothing"
        );
    }
    if caps.list_instances {
        let instances = expect_ok(deployer.instances(&fx.service).await, "instances");
        for i in &instances {
            assert!(!i.id.is_empty(), "{who}: instance without an id");
        }
    }
}
