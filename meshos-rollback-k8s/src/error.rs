//! Turns kube errors into the library's [`Error`], in one place.
//!
//! The mapping follows the HTTP status of the API server's `Status` answer: the
//! classification is what the engine acts on (retry a 503, stop on a 403), and the
//! kube error stays reachable through `source()` where the core variant has one.

use std::fmt;

use meshos_rollback_core::Error;

/// Converts `err` from a request about `what` (`deployment production/meshos-api`)
/// sent by `provider`.
pub(crate) fn from_kube(provider: &dyn fmt::Display, what: &str, err: kube::Error) -> Error {
    let provider = provider.to_string();
    match err {
        kube::Error::Api(status) => from_status(provider, what, *status),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            Error::Transient {
                message: format!("{what}: the API server could not be reached: {err}"),
                provider,
                source: Some(Box::new(err)),
            }
        }
        kube::Error::Auth(_) => Error::PermissionDenied {
            message: format!("{what}: {err}"),
            provider,
            source: Some(Box::new(err)),
        },
        other => Error::Failed {
            message: format!("{what}: {other}"),
            provider,
            source: Some(Box::new(other)),
        },
    }
}

fn from_status(provider: String, what: &str, status: kube::core::Status) -> Error {
    let message = if status.message.is_empty() {
        status.reason.clone()
    } else {
        status.message.clone()
    };
    match status.code {
        404 => Error::NotFound {
            provider,
            what: what.to_owned(),
        },
        409 => Error::Conflict {
            provider,
            message: format!("{what}: {message}"),
        },
        401 | 403 => Error::PermissionDenied {
            provider,
            message: format!("{what}: {message}"),
            source: Some(Box::new(status)),
        },
        400 | 422 => Error::InvalidInput {
            field: what.to_owned(),
            message: format!("{provider}: {message}"),
        },
        // 410 Gone: a watch or list resource version was compacted; start over.
        410 | 429 | 500..=599 => Error::Transient {
            provider,
            message: format!("{what}: {} {message}", status.code),
            source: Some(Box::new(status)),
        },
        _ => Error::Failed {
            provider,
            message: format!("{what}: {} {message}", status.code),
            source: Some(Box::new(status)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshos_rollback_core::ErrorKind;
    use std::error::Error as _;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(&format!("the server says {reason}"), reason)
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn status_codes_map_to_kinds() {
        let cases = [
            (404, "NotFound", ErrorKind::NotFound),
            (409, "Conflict", ErrorKind::Conflict),
            (403, "Forbidden", ErrorKind::PermissionDenied),
            (401, "Unauthorized", ErrorKind::PermissionDenied),
            (422, "Invalid", ErrorKind::InvalidInput),
            (400, "BadRequest", ErrorKind::InvalidInput),
            (429, "TooManyRequests", ErrorKind::Transient),
            (500, "InternalError", ErrorKind::Transient),
            (503, "ServiceUnavailable", ErrorKind::Transient),
            (504, "Timeout", ErrorKind::Transient),
            (410, "Expired", ErrorKind::Transient),
            (405, "MethodNotAllowed", ErrorKind::Failed),
        ];
        for (code, reason, kind) in cases {
            let e = from_kube(&"K8sDeployer(test)", "deployment p/d", api(code, reason));
            assert_eq!(e.kind(), kind, "{code} {reason}: {e}");
        }
    }

    #[test]
    fn messages_name_provider_and_object_and_keep_the_source() {
        let e = from_kube(&"K8sDeployer(prod)", "deployment p/d", api(404, "NotFound"));
        assert_eq!(e.to_string(), "K8sDeployer(prod): deployment p/d not found");
        let e = from_kube(
            &"K8sDeployer(prod)",
            "deployment p/d",
            api(403, "Forbidden"),
        );
        assert!(e.to_string().contains("K8sDeployer(prod)"), "{e}");
        assert!(e.to_string().contains("the server says Forbidden"), "{e}");
        assert!(e.source().is_some());
        let e = from_kube(
            &"K8sDeployer(prod)",
            "deployment p/d",
            api(503, "ServiceUnavailable"),
        );
        assert!(e.is_retryable());
        assert!(e.source().is_some());
    }
}
