//! Cross-cutting concerns as layers around any provider: retry, timeout, tracing and
//! fault injection, each written once (tower's `Layer`, OpenDAL's `layers`).
//!
//! A [`Layer`] wraps one provider call; [`Layered`] applies a layer to every method of
//! a provider trait, so `Layered::new(deployer, layer)` is again a `Deployer`.
//!
//! ## Order
//!
//! Outermost first, the recommended stack is
//! `TraceLayer` → `RetryLayer` → `TimeoutLayer` → (`FaultLayer`) → provider:
//!
//! - **Trace outermost**: one span per logical call; retries and timeouts show up
//!   inside it as events, so a log reader sees one call that took three attempts.
//! - **Retry outside timeout**: each attempt gets its own deadline, and an attempt that
//!   timed out is retried (a [`Timeout`](crate::Error::Timeout) is retryable). With the
//!   order reversed one slow attempt would use up the whole deadline.
//! - **Faults innermost**: injected faults look exactly like backend failures to the
//!   layers above, which is what fault-injection tests want to exercise.
//!
//! [`standard_stack`] builds that order.
//!
//! Only calls marked idempotent are retried. `roll_back(Previous)` is not (a lost
//! answer plus a retry would roll back twice), so the engine resolves "previous" into
//! an explicit revision before acting.

mod fault;
mod layered;
mod retry;
mod timeout;
mod trace;

use std::fmt;
use std::future::Future;

use crate::Result;

pub use fault::{Fault, FaultLayer, FaultPlan, FaultRule};
pub use layered::Layered;
pub use retry::{RetryBudget, RetryLayer, RetryPolicy};
pub use timeout::TimeoutLayer;
pub use trace::TraceLayer;

/// One call on a provider, as a layer sees it.
#[derive(Clone, Copy)]
pub struct Operation<'a> {
    /// The provider (its `Display` names backend and scope).
    pub provider: &'a (dyn fmt::Display + Sync),
    /// The trait method, such as `roll_back`.
    pub name: &'static str,
    /// Whether repeating the call is safe.
    pub idempotent: bool,
}

impl fmt::Debug for Operation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operation")
            .field("provider", &self.provider.to_string())
            .field("name", &self.name)
            .field("idempotent", &self.idempotent)
            .finish()
    }
}

impl fmt::Display for Operation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.provider, self.name)
    }
}

/// Wraps a provider call. `call` runs `f` (which starts the call afresh each time it
/// is invoked) once or more and returns the outcome.
pub trait Layer: fmt::Debug + Send + Sync {
    /// Runs the operation through this layer.
    fn call<T, F, Fut>(&self, op: &Operation<'_>, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send;
}

/// The layer that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

impl Layer for Identity {
    fn call<T, F, Fut>(&self, _op: &Operation<'_>, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        f()
    }
}

/// Two layers, `outer` around `inner`.
#[derive(Debug, Clone)]
pub struct Stack<Outer, Inner> {
    outer: Outer,
    inner: Inner,
}

impl<Outer, Inner> Stack<Outer, Inner> {
    /// `outer` around `inner`.
    pub fn new(outer: Outer, inner: Inner) -> Self {
        Stack { outer, inner }
    }
}

impl<Outer: Layer, Inner: Layer> Layer for Stack<Outer, Inner> {
    async fn call<T, F, Fut>(&self, op: &Operation<'_>, f: F) -> Result<T>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        let f = &f;
        self.outer.call(op, || self.inner.call(op, f)).await
    }
}

/// Puts `self` around another layer.
pub trait LayerExt: Layer + Sized {
    /// `self` around `inner`.
    fn around<Inner: Layer>(self, inner: Inner) -> Stack<Self, Inner> {
        Stack::new(self, inner)
    }
}

impl<L: Layer> LayerExt for L {}

/// The recommended stack: tracing around retry around a per-attempt timeout. The
/// trace layer masks with `redactor`: pass the engine's
/// ([`EngineBuilder::with_redactor`](crate::engine::EngineBuilder::with_redactor)
/// takes the same one), so secrets the engine knows never reach the logs.
pub fn standard_stack(
    retry: RetryLayer,
    timeout: TimeoutLayer,
    redactor: &crate::redact::Redactor,
) -> Stack<TraceLayer, Stack<RetryLayer, TimeoutLayer>> {
    TraceLayer::redacting(redactor.clone()).around(retry.around(timeout))
}
