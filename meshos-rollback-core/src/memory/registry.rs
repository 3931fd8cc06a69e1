//! An in-memory [`ImageRegistry`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::provider::{ImageRef, ImageRegistry, Retagged};
use crate::{Error, Result};

/// Repositories of tags pointing at digests.
#[derive(Debug, Default)]
pub struct InMemoryImageRegistry {
    repos: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl InMemoryImageRegistry {
    /// No repositories yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pushes an image: `tag` in `repository` points at `digest`.
    pub fn push(&self, repository: &str, tag: &str, digest: &str) {
        self.repos
            .lock()
            .expect("lock")
            .entry(repository.to_owned())
            .or_default()
            .insert(tag.to_owned(), digest.to_owned());
    }

    fn resolve_in(
        &self,
        tags: &BTreeMap<String, String>,
        repository: &str,
        image: &ImageRef,
    ) -> Result<String> {
        match image {
            ImageRef::Tag(t) => tags
                .get(t)
                .cloned()
                .ok_or_else(|| Error::not_found(self, format!("image {repository}:{t}"))),
            ImageRef::Digest(d) => {
                if tags.values().any(|v| v == d) {
                    Ok(d.clone())
                } else {
                    Err(Error::not_found(self, format!("image {repository}@{d}")))
                }
            }
        }
    }
}

impl fmt::Display for InMemoryImageRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemoryImageRegistry")
    }
}

#[async_trait]
impl ImageRegistry for InMemoryImageRegistry {
    async fn resolve(&self, repository: &str, image: &ImageRef) -> Result<String> {
        let repos = self.repos.lock().expect("lock");
        let tags = repos
            .get(repository)
            .ok_or_else(|| Error::not_found(self, format!("repository {repository}")))?;
        self.resolve_in(tags, repository, image)
    }

    async fn retag(&self, repository: &str, source: &ImageRef, tag: &str) -> Result<Retagged> {
        if tag.is_empty() || tag.len() > 128 || tag.contains([':', '@', '/']) {
            return Err(Error::invalid(
                "tag",
                format!("{tag:?} is not a valid image tag"),
            ));
        }
        let mut repos = self.repos.lock().expect("lock");
        let tags = repos
            .get_mut(repository)
            .ok_or_else(|| Error::not_found(&*self, format!("repository {repository}")))?;
        let digest = self.resolve_in(tags, repository, source)?;
        let changed = tags.get(tag) != Some(&digest);
        tags.insert(tag.to_owned(), digest.clone());
        Ok(Retagged { digest, changed })
    }
}
