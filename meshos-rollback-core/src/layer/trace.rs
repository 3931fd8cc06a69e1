//! A tracing span per provider call.

use std::future::Future;

use tracing::Instrument;

use super::{Layer, Operation};
use crate::Result;

/// Runs each call in a `provider_call` span (fields `provider`, `op`) and records its
/// outcome and duration. Spans nest under the engine's region and step spans.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

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
                Err(e) => tracing::warn!(elapsed_ms, kind = ?e.kind(), error = %e, "failed"),
            }
            out
        }
        .instrument(span)
    }
}
