//! Conformance of an [`ImageRegistry`].

use super::{expect_kind, expect_ok};
use crate::ErrorKind;
use crate::provider::{ImageRef, ImageRegistry};

/// What the caller prepared for [`run`].
#[derive(Debug, Clone)]
pub struct RegistryFixture {
    /// A repository holding two different images, tagged `good` and `bad`.
    pub repository: String,
    /// The known-good image's tag.
    pub good: String,
    /// The other image's tag; the suite moves `latest` from it to `good`.
    pub bad: String,
}

/// Runs the registry suite: resolve tags, retag the known-good image as `latest`
/// (twice: the second is a no-op), and refuse a missing image or a bad tag.
pub async fn run(registry: &dyn ImageRegistry, fx: &RegistryFixture) {
    let who = registry.to_string();
    let good = expect_ok(
        registry
            .resolve(&fx.repository, &ImageRef::Tag(fx.good.clone()))
            .await,
        "resolve good",
    );
    let bad = expect_ok(
        registry
            .resolve(&fx.repository, &ImageRef::Tag(fx.bad.clone()))
            .await,
        "resolve bad",
    );
    assert_ne!(good, bad, "{who}: the fixture needs two different images");
    let by_digest = expect_ok(
        registry
            .resolve(&fx.repository, &ImageRef::Digest(good.clone()))
            .await,
        "resolve digest",
    );
    assert_eq!(by_digest, good);

    expect_ok(
        registry
            .retag(&fx.repository, &ImageRef::Tag(fx.bad.clone()), "latest")
            .await,
        "tag bad as latest",
    );
    let moved = expect_ok(
        registry
            .retag(&fx.repository, &ImageRef::Digest(good.clone()), "latest")
            .await,
        "retag",
    );
    assert!(moved.changed && moved.digest == good, "{who}: {moved:?}");
    let latest = expect_ok(
        registry
            .resolve(&fx.repository, &ImageRef::Tag("latest".into()))
            .await,
        "resolve latest",
    );
    assert_eq!(latest, good, "{who}: latest points at the known-good image");
    let again = expect_ok(
        registry
            .retag(&fx.repository, &ImageRef::Tag(fx.good.clone()), "latest")
            .await,
        "retag again",
    );
    assert!(
        !again.changed,
        "{who}: retagging to the same image changes nothing"
    );

    expect_kind(
        registry
            .retag(
                &fx.repository,
                &ImageRef::Tag("no-such-tag".into()),
                "latest",
            )
            .await,
        ErrorKind::NotFound,
        "retag a missing image",
    );
    expect_kind(
        registry
            .resolve(
                "no-such-repository-for-conformance",
                &ImageRef::Tag("x".into()),
            )
            .await,
        ErrorKind::NotFound,
        "a missing repository",
    );
    expect_kind(
        registry
            .retag(&fx.repository, &ImageRef::Tag(fx.good.clone()), "bad:tag")
            .await,
        ErrorKind::InvalidInput,
        "an invalid tag",
    );
}
