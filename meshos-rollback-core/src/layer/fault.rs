//! Fault injection: latency, errors, throttling and hangs, for tests and drills.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Layer, Operation};
use crate::{Error, ErrorKind, Result};

/// What to inject.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Wait this long, then make the call.
    Latency(Duration),
    /// Fail without calling, with an error of this kind.
    Error(ErrorKind),
    /// Never answer (the caller's timeout decides).
    Hang,
}

/// When to inject a fault.
#[derive(Debug, Clone)]
pub struct FaultRule {
    operation: Option<&'static str>,
    provider_contains: Option<String>,
    fault: Fault,
    remaining: Option<u32>,
}

impl FaultRule {
    /// Injects `fault` on every call.
    pub fn always(fault: Fault) -> Self {
        FaultRule {
            operation: None,
            provider_contains: None,
            fault,
            remaining: None,
        }
    }

    /// Only on calls of the method `name`.
    pub fn on(mut self, name: &'static str) -> Self {
        self.operation = Some(name);
        self
    }

    /// Only on providers whose `Display` contains `text` (such as a region name).
    pub fn on_provider(mut self, text: impl Into<String>) -> Self {
        self.provider_contains = Some(text.into());
        self
    }

    /// Only the first `n` matching calls.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, op: &Operation<'_>, provider: &str) -> bool {
        self.remaining != Some(0)
            && self.operation.is_none_or(|n| n == op.name)
            && self
                .provider_contains
                .as_deref()
                .is_none_or(|t| provider.contains(t))
    }
}

/// The faults to inject, shared by every [`FaultLayer`] made from it.
#[derive(Debug, Default)]
pub struct FaultPlan {
    rules: Mutex<Vec<FaultRule>>,
    injected: Mutex<Vec<String>>,
}

impl FaultPlan {
    /// No faults.
    pub fn new() -> Arc<Self> {
        Arc::new(FaultPlan::default())
    }

    /// Adds a rule; the first matching rule applies.
    pub fn inject(&self, rule: FaultRule) {
        self.rules.lock().expect("lock").push(rule);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().expect("lock").clear();
    }

    /// The calls that failed or hung by injection (`provider: op`), in order. Added
    /// latency is not recorded.
    pub fn injected(&self) -> Vec<String> {
        self.injected.lock().expect("lock").clone()
    }

    fn take(&self, op: &Operation<'_>) -> Option<Fault> {
        let mut rules = self.rules.lock().expect("lock");
        // Formatting the provider costs an allocation: only when a rule needs it.
        let provider = if rules.iter().any(|r| r.provider_contains.is_some()) {
            op.provider.to_string()
        } else {
            String::new()
        };
        let rule = rules.iter_mut().find(|r| r.matches(op, &provider))?;
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        let fault = rule.fault.clone();
        drop(rules);
        if !matches!(fault, Fault::Latency(_)) {
            self.injected.lock().expect("lock").push(op.to_string());
        }
        Some(fault)
    }
}

/// Injects the faults of a [`FaultPlan`]; put it innermost, next to the provider.
#[derive(Debug, Clone)]
pub struct FaultLayer {
    plan: Arc<FaultPlan>,
}

impl FaultLayer {
    /// A layer injecting `plan`'s faults.
    pub fn new(plan: Arc<FaultPlan>) -> Self {
        FaultLayer { plan }
    }
}

fn injected_error(kind: ErrorKind, op: &Operation<'_>) -> Error {
    let provider = op.provider.to_string();
    let message = format!("injected fault in {}", op.name);
    match kind {
        ErrorKind::NotFound => Error::NotFound {
            provider,
            what: message,
        },
        ErrorKind::Conflict => Error::Conflict { provider, message },
        ErrorKind::Unsupported => Error::Unsupported {
            provider,
            operation: op.name.to_owned(),
        },
        ErrorKind::InvalidInput => Error::InvalidInput {
            field: op.name.to_owned(),
            message,
        },
        ErrorKind::PermissionDenied => Error::PermissionDenied {
            provider,
            message,
            source: None,
        },
        ErrorKind::Transient => Error::Transient {
            provider,
            message: format!("{message}: throttled (rate exceeded)"),
            source: None,
        },
        ErrorKind::Timeout => Error::Timeout {
            operation: op.to_string(),
            after: Duration::ZERO,
        },
        ErrorKind::Precondition => Error::Precondition {
            what: op.name.to_owned(),
            message,
        },
        ErrorKind::Cancelled => Error::Cancelled { message },
        ErrorKind::Failed => Error::Failed {
            provider,
            message,
            source: None,
        },
    }
}

impl Layer for FaultLayer {
    fn call<T, F, Fut>(&self, op: &Operation<'_>, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        let fault = self.plan.take(op);
        let err = match &fault {
            Some(Fault::Error(kind)) => Some(injected_error(*kind, op)),
            _ => None,
        };
        async move {
            match fault {
                None => f().await,
                Some(Fault::Latency(d)) => {
                    tokio::time::sleep(d).await;
                    f().await
                }
                Some(Fault::Error(_)) => Err(err.expect("error built above")),
                Some(Fault::Hang) => std::future::pending().await,
            }
        }
    }
}
