//! A tracing span per provider call.

use std::future::Future;

use tracing::Instrument;

use super::{Layer, Operation};
use crate::Result;
use crate::redact::Redactor;

/// Runs each call in a `provider_call` span (fields `provider`, `op`) and records its
/// outcome and duration. Spans nest under the engine's region and step spans. Error
/// messages are redacted: give it the engine's [`Redactor`] so registered secrets are
/// masked too (credentials in URLs always are).
#[derive(Debug, Clone, Default)]
pub struct TraceLayer {
    redactor: Redactor,
}

impl TraceLayer {
    /// A tracing layer masking with `redactor`.
    pub fn redacting(redactor: Redactor) -> Self {
        TraceLayer { redactor }
    }
}

impl Layer for TraceLayer {
    fn call<T, F, Fut>(&self, op: &Operation<'_>, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        let span = tracing::debug_span!("provider_call", provider = %op.provider, op = op.name);
        async move {
            let started = tokio::time::Instant::now();
            let out = f().await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            match &out {
                Ok(_) => tracing::debug!(elapsed_ms, "ok"),
                Err(e) => {
                    let error = self.redactor.redact(&e.to_string());
                    tracing::warn!(elapsed_ms, kind = ?e.kind(), error, "failed")
                }
            }
            out
        }
        .instrument(span)
    }
}
