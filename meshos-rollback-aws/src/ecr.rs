//! [`EcrImageRegistry`]: point a tag back at a known-good image, the registry-side
//! form of the playbook's `docker tag known-good latest && docker push`.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::types::{Image, ImageFailure, ImageFailureCode, ImageIdentifier};
use aws_types::SdkConfig;
use meshos_rollback_core::provider::{ImageRef, ImageRegistry, Retagged};
use meshos_rollback_core::{Error, Result};

use crate::error::{from_sdk, missing};
use crate::sdk::prepare_client;

/// Manifest types asked for, so the manifest is returned exactly as it was pushed.
const MEDIA_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

/// Builds an [`EcrImageRegistry`].
#[derive(Debug)]
pub struct EcrImageRegistryBuilder {
    client: aws_sdk_ecr::Client,
    registry_id: Option<String>,
}

impl EcrImageRegistryBuilder {
    /// A registry using a client built from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(aws_sdk_ecr::Client::new(config))
    }

    /// A registry using an existing ECR client.
    pub fn from_client(client: aws_sdk_ecr::Client) -> Self {
        EcrImageRegistryBuilder {
            client,
            registry_id: None,
        }
    }

    /// Uses the registry of another account (default: the caller's own).
    pub fn with_registry_id(mut self, account: impl Into<String>) -> Self {
        self.registry_id = Some(account.into());
        self
    }

    /// Checks the configuration (region, HTTP client).
    pub fn build(self) -> Result<EcrImageRegistry> {
        let (client, region) = prepare_client!("EcrImageRegistry", self.client, aws_sdk_ecr);
        Ok(EcrImageRegistry {
            client,
            region,
            registry_id: self.registry_id,
        })
    }
}

/// An [`ImageRegistry`] over the ECR repositories of one region.
///
/// [`ImageRegistry::retag`] reads the source manifest and the tag's current image
/// (`BatchGetImage`, one image each), and `PutImage`s the manifest unchanged (with its
/// media type) under the tag only when the tag points elsewhere. PutImage's
/// `ImageAlreadyExistsException` (the tag already names that manifest: a concurrent
/// retag won) counts as done only after the tag is read again and points at the
/// wanted digest; if it points elsewhere the retag is a [`Conflict`](Error::Conflict).
/// In a repository with immutable tags (`ImageTagAlreadyExistsException`) moving an
/// existing tag is a [`Conflict`](Error::Conflict) naming the tag and the setting.
#[derive(Debug)]
pub struct EcrImageRegistry {
    client: aws_sdk_ecr::Client,
    region: String,
    registry_id: Option<String>,
}

impl EcrImageRegistry {
    /// Starts building a registry from an SDK configuration.
    pub fn builder(config: &SdkConfig) -> EcrImageRegistryBuilder {
        EcrImageRegistryBuilder::new(config)
    }

    /// One image by tag or digest; `None` when the registry reports it missing. One
    /// id per call: the answer's `imageId` need not echo the tag asked for (an image
    /// with several tags may come back under another), so answers are never matched
    /// to requests by tag.
    async fn image(&self, repository: &str, image: &ImageRef) -> Result<Option<Image>> {
        let out = self
            .client
            .batch_get_image()
            .set_registry_id(self.registry_id.clone())
            .repository_name(repository)
            .image_ids(identifier(image))
            .set_accepted_media_types(Some(MEDIA_TYPES.iter().map(|s| s.to_string()).collect()))
            .send()
            .await
            .map_err(|e| from_sdk(self, format!("repository {repository}"), e))?;
        if let Some(img) = out.images().first() {
            return Ok(Some(img.clone()));
        }
        match out.failures().first() {
            Some(f) if f.failure_code() == Some(&ImageFailureCode::ImageNotFound) => Ok(None),
            Some(f) => Err(self.failure(repository, image, f)),
            None => Ok(None),
        }
    }

    /// The repository's `imageTagMutability`, for an error message; `None` when it
    /// cannot be read (no `ecr:DescribeRepositories` permission, say).
    async fn tag_mutability(&self, repository: &str) -> Option<String> {
        let out = self
            .client
            .describe_repositories()
            .set_registry_id(self.registry_id.clone())
            .repository_names(repository)
            .send()
            .await
            .ok()?;
        let repo = out.repositories().first()?;
        repo.image_tag_mutability().map(|m| m.as_str().to_owned())
    }

    /// A tag that immutability forbids moving, with the setting that says so.
    fn immutable(
        &self,
        repository: &str,
        tag: &str,
        on: &str,
        wanted: &str,
        setting: &str,
    ) -> Error {
        Error::conflict(
            self,
            format!(
                "tag {repository}:{tag} is on {on} and cannot be moved to {wanted}: \
                 repository {repository} keeps it immutable (imageTagMutability \
                 {setting}); roll back under a new tag, or make this tag mutable \
                 (PutImageTagMutability)"
            ),
        )
    }

    fn failure(&self, repository: &str, image: &ImageRef, f: &ImageFailure) -> Error {
        let reason = f.failure_reason().unwrap_or("no reason given");
        match f.failure_code() {
            Some(ImageFailureCode::ImageTagDoesNotMatchDigest) => {
                missing(self, format!("image {repository}{image}"))
            }
            Some(
                ImageFailureCode::InvalidImageDigest
                | ImageFailureCode::InvalidImageTag
                | ImageFailureCode::MissingDigestAndTag,
            ) => Error::invalid("image", format!("{repository}{image}: {reason}")),
            code => Error::failed(
                self,
                format!(
                    "image {repository}{image}: {}: {reason}",
                    code.map_or("unknown failure", |c| c.as_str())
                ),
            ),
        }
    }
}

impl fmt::Display for EcrImageRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.registry_id {
            Some(id) => write!(f, "EcrImageRegistry({}/{id})", self.region),
            None => write!(f, "EcrImageRegistry({})", self.region),
        }
    }
}

#[async_trait]
impl ImageRegistry for EcrImageRegistry {
    async fn resolve(&self, repository: &str, image: &ImageRef) -> Result<String> {
        let src = self
            .image(repository, image)
            .await?
            .ok_or_else(|| missing(self, format!("image {repository}{image}")))?;
        digest_of(&src)
            .ok_or_else(|| Error::failed(self, format!("image {repository}{image} has no digest")))
    }

    async fn retag(&self, repository: &str, source: &ImageRef, tag: &str) -> Result<Retagged> {
        check_tag(tag)?;
        let src = self
            .image(repository, source)
            .await?
            .ok_or_else(|| missing(self, format!("image {repository}{source}")))?;
        let digest = digest_of(&src).ok_or_else(|| {
            Error::failed(self, format!("image {repository}{source} has no digest"))
        })?;
        let current = self
            .image(repository, &ImageRef::Tag(tag.to_owned()))
            .await?
            .as_ref()
            .and_then(digest_of);
        if current.as_deref() == Some(digest.as_str()) {
            return Ok(Retagged {
                digest,
                changed: false,
            });
        }
        let manifest = src.image_manifest().ok_or_else(|| {
            Error::failed(
                self,
                format!("image {repository}{source} came without a manifest"),
            )
        })?;
        let put = self
            .client
            .put_image()
            .set_registry_id(self.registry_id.clone())
            .repository_name(repository)
            .image_manifest(manifest)
            .set_image_manifest_media_type(src.image_manifest_media_type().map(str::to_owned))
            .image_tag(tag)
            .image_digest(&digest)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Retagged {
                digest,
                changed: true,
            }),
            // PutImage's answer when the tag already names this manifest: a
            // concurrent retag got there first. Success only if the tag still points
            // at the wanted digest when read again; otherwise another writer moved
            // (or deleted) it in between, and declaring victory would be a lie.
            Err(e) if e.code() == Some("ImageAlreadyExistsException") => {
                let now = self
                    .image(repository, &ImageRef::Tag(tag.to_owned()))
                    .await?
                    .as_ref()
                    .and_then(digest_of);
                if now.as_deref() == Some(digest.as_str()) {
                    return Ok(Retagged {
                        digest,
                        changed: false,
                    });
                }
                let now = now.as_deref().unwrap_or("no image");
                // Some endpoints (moto) answer an immutable tag this way too.
                match self.tag_mutability(repository).await {
                    Some(m) if m != "MUTABLE" => {
                        Err(self.immutable(repository, tag, now, &digest, &m))
                    }
                    _ => Err(Error::conflict(
                        self,
                        format!(
                            "tag {repository}:{tag}: PutImage answered \
                             ImageAlreadyExistsException for {digest}, but the tag points \
                             at {now}: another writer moved it in between"
                        ),
                    )),
                }
            }
            // Immutable tags: ECR refuses to move an existing tag at all.
            // The answer itself says the repository is configured for immutability:
            // no need to ask which variant.
            Err(e) if e.code() == Some("ImageTagAlreadyExistsException") => {
                let now = current.as_deref().unwrap_or("another image");
                Err(self.immutable(
                    repository,
                    tag,
                    now,
                    &digest,
                    "IMMUTABLE, or an exclusion filter of *_WITH_EXCLUSION",
                ))
            }
            Err(e) => Err(from_sdk(self, format!("tag {repository}:{tag}"), e)),
        }
    }
}

fn identifier(image: &ImageRef) -> ImageIdentifier {
    match image {
        ImageRef::Tag(t) => ImageIdentifier::builder().image_tag(t).build(),
        ImageRef::Digest(d) => ImageIdentifier::builder().image_digest(d).build(),
    }
}

fn digest_of(i: &Image) -> Option<String> {
    i.image_id()?.image_digest().map(str::to_owned)
}

/// Docker's tag grammar: a word character, then up to 127 word characters, `.`, `-`.
fn check_tag(tag: &str) -> Result<()> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.starts_with(word)
        && tag.chars().all(|c| word(c) || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "tag",
            format!(
                "{tag:?} is not a valid image tag (letters, digits, '_', '.', '-'; at most 128)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_checked() {
        for ok in ["latest", "sha-abc123", "v2.4.9", "_x"] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", "bad:tag", "a/b", "-x", ".x", &"x".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }
}
