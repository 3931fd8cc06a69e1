//! [`ImageRegistry`]: point a tag back at a known-good image.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::display_mock;
use crate::Result;

/// An image in a repository, by tag or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageRef {
    /// A tag, such as `sha-abc123`.
    Tag(String),
    /// A digest, such as `sha256:…`.
    Digest(String),
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Tag(t) => write!(f, ":{t}"),
            ImageRef::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// The result of a retag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retagged {
    /// The digest the tag now points at.
    pub digest: String,
    /// `false` when the tag already pointed there.
    pub changed: bool,
}

/// Moves tags in an image registry (ECR), the registry-side form of
/// `docker tag known-good latest && docker push`.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ImageRegistry: fmt::Debug + fmt::Display + Send + Sync {
    /// The digest `image` refers to in `repository`.
    async fn resolve(&self, repository: &str, image: &ImageRef) -> Result<String>;

    /// Points `tag` in `repository` at the image `source` refers to.
    async fn retag(&self, repository: &str, source: &ImageRef, tag: &str) -> Result<Retagged>;
}

display_mock!(MockImageRegistry);
