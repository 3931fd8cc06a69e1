//! The one error type of the library, classified so the engine can act on it.

use std::time::Duration;

/// A boxed error from a backend, kept as the `source()` of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while deciding, planning or carrying out a rollback.
///
/// `provider` fields hold the provider's `Display` (for example
/// `EcsDeployer(us-east-1/meshos-us-east-1)`), so every message says where it came from.
/// Backends convert their own errors into this type in one place; SDK error types
/// are only reachable through [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The named object does not exist.
    #[error("{provider}: {what} not found")]
    NotFound {
        /// Provider that answered.
        provider: String,
        /// What was looked for, for example `revision 7 of ecs:prod/meshos-api`.
        what: String,
    },
    /// The request conflicts with the current state (for example the target
    /// database identifier already exists, or a rollback of this service is running).
    #[error("{provider}: conflict: {message}")]
    Conflict {
        /// Provider that answered.
        provider: String,
        /// What conflicts, and what to do about it.
        message: String,
    },
    /// The backend cannot do this at all.
    #[error("{provider}: {operation} is not supported by this backend")]
    Unsupported {
        /// Provider that answered.
        provider: String,
        /// The operation that was asked for.
        operation: String,
    },
    /// A caller passed a value that can never work; `field` names it.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The field or argument, as a dotted path (`canary.cpu_pct_above`).
        field: String,
        /// Why it is invalid.
        message: String,
    },
    /// The credentials in use may not do this.
    #[error("{provider}: permission denied: {message}")]
    PermissionDenied {
        /// Provider that answered.
        provider: String,
        /// The backend's message.
        message: String,
        /// The backend error.
        #[source]
        source: Option<BoxError>,
    },
    /// A passing failure: throttling, a 5xx answer, a dropped connection.
    /// Retrying the same idempotent request may succeed.
    #[error("{provider}: temporarily unavailable: {message}")]
    Transient {
        /// Provider that answered.
        provider: String,
        /// The backend's message.
        message: String,
        /// The backend error.
        #[source]
        source: Option<BoxError>,
    },
    /// An operation did not finish in time.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// The operation, with the provider that ran it.
        operation: String,
        /// The limit that was exceeded.
        after: Duration,
    },
    /// A permanent failure reported by the backend (a failed rollout, a rejected request).
    #[error("{provider}: {message}")]
    Failed {
        /// Provider that answered.
        provider: String,
        /// What failed.
        message: String,
        /// The backend error.
        #[source]
        source: Option<BoxError>,
    },
    /// A precondition of the playbook does not hold (an unchecked checklist item,
    /// an impossible plan); nothing was changed.
    #[error("precondition not met: {what}: {message}")]
    Precondition {
        /// The precondition, for example `checklist.approval`.
        what: String,
        /// Why it does not hold and what to do.
        message: String,
    },
    /// The plan cannot run; every problem is listed and nothing was changed.
    #[error("precondition not met: plan: {0}")]
    PlanRefused(Box<crate::engine::PlanRefusal>),
    /// The work was cancelled or ran past its deadline; what was done is recorded.
    #[error("cancelled: {message}")]
    Cancelled {
        /// Why, and where it stopped.
        message: String,
    },
}

/// The classification of an [`Error`], for decisions such as "retry this?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::Conflict`].
    Conflict,
    /// See [`Error::Unsupported`].
    Unsupported,
    /// See [`Error::InvalidInput`].
    InvalidInput,
    /// See [`Error::PermissionDenied`].
    PermissionDenied,
    /// See [`Error::Transient`].
    Transient,
    /// See [`Error::Timeout`].
    Timeout,
    /// See [`Error::Failed`].
    Failed,
    /// See [`Error::Precondition`].
    Precondition,
    /// See [`Error::Cancelled`].
    Cancelled,
}

/// When the backend said to try again (HTTP `Retry-After`, a throttling answer's
/// delay). Put it as the `source` of an [`Error::Transient`]: the retry layer then
/// waits at least that long before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl std::fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "retry after {:?}", self.0)
    }
}

impl std::error::Error for RetryAfter {}

impl Error {
    /// The delay the backend asked for, if the error (or a source of it) carries a
    /// [`RetryAfter`].
    pub fn retry_after(&self) -> Option<Duration> {
        let mut source: Option<&(dyn std::error::Error + 'static)> =
            std::error::Error::source(self);
        while let Some(e) = source {
            if let Some(r) = e.downcast_ref::<RetryAfter>() {
                return Some(r.0);
            }
            source = e.source();
        }
        None
    }

    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Error::Transient { .. } => ErrorKind::Transient,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Failed { .. } => ErrorKind::Failed,
            Error::Precondition { .. } | Error::PlanRefused(_) => ErrorKind::Precondition,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
        }
    }

    /// Whether repeating the same idempotent request may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Transient | ErrorKind::Timeout)
    }

    /// The problems of a refused plan, for callers that act on them.
    pub fn plan_problems(&self) -> Option<&[crate::engine::PlanProblem]> {
        match self {
            Error::PlanRefused(r) => Some(&r.problems),
            _ => None,
        }
    }

    /// Whether the error says an object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// What an operator should do next, for the error's class.
    pub fn hint(&self) -> &'static str {
        match self.kind() {
            ErrorKind::NotFound => "check the name, the region and the account or context in use",
            ErrorKind::Conflict => {
                "look at the current state; another operation may be running or the name is taken"
            }
            ErrorKind::Unsupported => {
                "use a backend that supports this step, or drop it from the plan"
            }
            ErrorKind::InvalidInput => "fix the named field in the configuration or the call",
            ErrorKind::PermissionDenied => "grant the IAM policy or RBAC role this step needs",
            ErrorKind::Transient => {
                "retried automatically within the retry budget; if it persists, check the backend's health"
            }
            ErrorKind::Timeout => {
                "raise the timeout or check why the backend is slow; the step may still complete"
            }
            ErrorKind::Failed => "inspect the backend; the journal records what was done",
            ErrorKind::Precondition => "complete the named precondition, then start again",
            ErrorKind::Cancelled => "resume from the journal to finish the remaining steps",
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(provider: impl ToString, what: impl Into<String>) -> Self {
        Error::NotFound {
            provider: provider.to_string(),
            what: what.into(),
        }
    }

    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(provider: impl ToString, message: impl Into<String>) -> Self {
        Error::Conflict {
            provider: provider.to_string(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(provider: impl ToString, operation: impl Into<String>) -> Self {
        Error::Unsupported {
            provider: provider.to_string(),
            operation: operation.into(),
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Transient`] without a source.
    pub fn transient(provider: impl ToString, message: impl Into<String>) -> Self {
        Error::Transient {
            provider: provider.to_string(),
            message: message.into(),
            source: None,
        }
    }

    /// Shorthand for [`Error::Failed`] without a source.
    pub fn failed(provider: impl ToString, message: impl Into<String>) -> Self {
        Error::Failed {
            provider: provider.to_string(),
            message: message.into(),
            source: None,
        }
    }

    /// Shorthand for [`Error::Precondition`].
    pub fn precondition(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Precondition {
            what: what.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_drives_retry() {
        assert!(Error::transient("p", "throttled").is_retryable());
        assert!(
            Error::Timeout {
                operation: "x".into(),
                after: Duration::from_secs(1)
            }
            .is_retryable()
        );
        assert!(!Error::not_found("p", "x").is_retryable());
        assert!(!Error::failed("p", "x").is_retryable());
        assert!(Error::not_found("p", "x").is_not_found());
    }

    #[test]
    fn display_names_provider_and_field() {
        let e = Error::not_found("EcsDeployer(us-east-1/prod)", "revision 7");
        assert_eq!(
            e.to_string(),
            "EcsDeployer(us-east-1/prod): revision 7 not found"
        );
        let e = Error::invalid("canary.cpu_pct_above", "must be at most 100, got 120");
        assert_eq!(
            e.to_string(),
            "invalid canary.cpu_pct_above: must be at most 100, got 120"
        );
    }
}
