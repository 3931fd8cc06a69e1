//! The one place where AWS SDK errors become the core [`Error`].
//!
//! Every backend calls [`from_sdk`]; nothing else looks at SDK error types. The
//! classification works on the error code and HTTP status that every AWS protocol
//! carries, so one table covers ECS, ELBv2, Route53, RDS and ECR alike.

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use meshos_rollback_core::Error;

/// What an AWS error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Throttled: back off and retry.
    Throttled,
    /// A 5xx answer or a dropped connection: retry.
    Unavailable,
    /// The object does not exist.
    NotFound,
    /// The object exists already or is in a state that forbids the request.
    Conflict,
    /// The credentials may not do this.
    PermissionDenied,
    /// The request is malformed or names an invalid value.
    InvalidInput,
    /// The endpoint does not know the operation.
    Unsupported,
    /// Anything else: a permanent failure.
    Failed,
}

/// Codes that mean "slow down", across AWS services.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "EC2ThrottledException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    // Route53: another change to the same zone is still being applied.
    "PriorRequestNotComplete",
];

/// Codes that mean a server-side failure worth retrying.
const UNAVAILABLE: &[&str] = &[
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServerException",
    "RequestTimeout",
    "RequestTimeoutException",
];

const PERMISSION: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "AuthFailure",
    "NotAuthorized",
];

const UNSUPPORTED: &[&str] = &[
    "UnknownOperationException",
    "InvalidAction",
    "UnsupportedOperation",
    "UnsupportedOperationException",
    "UnsupportedFeatureException",
    "PlatformUnknownException",
];

/// Classifies an AWS error code and HTTP status. The code wins; the status decides
/// only for codes the table does not know.
pub(crate) fn classify(code: Option<&str>, status: Option<u16>) -> Class {
    if let Some(code) = code {
        // Query protocols prefix some codes with a namespace ("aws.protocols#...").
        let code = code.rsplit('#').next().unwrap_or(code);
        if THROTTLING.contains(&code) {
            return Class::Throttled;
        }
        if UNAVAILABLE.contains(&code) {
            return Class::Unavailable;
        }
        if PERMISSION.contains(&code) {
            return Class::PermissionDenied;
        }
        if UNSUPPORTED.contains(&code) {
            return Class::Unsupported;
        }
        let bare = code
            .trim_end_matches("Exception")
            .trim_end_matches("Fault")
            .trim_end_matches("Error");
        if bare.ends_with("NotFound") || bare.starts_with("NoSuch") {
            return Class::NotFound;
        }
        if bare.ends_with("AlreadyExists")
            || bare.starts_with("Duplicate")
            || bare.starts_with("Conflict")
            || bare.starts_with("ConcurrentModification")
            || bare.starts_with("ResourceInUse")
            || (bare.starts_with("Invalid") && bare.ends_with("State"))
        {
            return Class::Conflict;
        }
        if bare.starts_with("Validation")
            || bare.starts_with("InvalidParameter")
            || bare.starts_with("InvalidInput")
            || bare.starts_with("MissingParameter")
            || bare == "InvalidArgument"
            || bare == "InvalidRestore"
        {
            return Class::InvalidInput;
        }
    }
    match status {
        Some(429) => Class::Throttled,
        Some(s) if s >= 500 => Class::Unavailable,
        Some(401 | 403) => Class::PermissionDenied,
        Some(404) => Class::NotFound,
        Some(409) => Class::Conflict,
        _ => Class::Failed,
    }
}

/// The class of an SDK error, for decisions such as "fall back to another API".
pub(crate) fn class_of<E>(err: &SdkError<E, HttpResponse>) -> Class
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ConstructionFailure(_) => Class::InvalidInput,
        SdkError::TimeoutError(_) => Class::Unavailable,
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => Class::Unavailable,
        SdkError::DispatchFailure(_) => Class::Failed,
        SdkError::ResponseError(r) => {
            classify(None, Some(r.raw().status().as_u16())).min_unavailable()
        }
        SdkError::ServiceError(s) => classify(err.code(), Some(s.raw().status().as_u16())),
        _ => Class::Failed,
    }
}

impl Class {
    /// An unparseable answer is never more specific than "unavailable" or "failed".
    fn min_unavailable(self) -> Class {
        match self {
            Class::Throttled | Class::Unavailable => self,
            _ => Class::Failed,
        }
    }
}

/// Whether the endpoint answered in a way that says it does not offer the operation
/// at all: an unknown-operation code, or an error page that is no AWS error (what a
/// partial emulator answers for an unimplemented call).
pub(crate) fn is_missing_operation<E>(err: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) if err.code().is_none() => true,
        _ => class_of(err) == Class::Unsupported,
    }
}

/// Converts an SDK error into the core error. `provider` is the backend's `Display`;
/// `what` names the object acted on (`listener arn:...`), used as the not-found
/// subject and as the context of every other message.
pub(crate) fn from_sdk<E>(
    provider: &dyn fmt::Display,
    what: impl fmt::Display,
    err: SdkError<E, HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let class = class_of(&err);
    let detail = describe(&err);
    let provider = provider.to_string();
    match class {
        Class::Throttled | Class::Unavailable => Error::Transient {
            provider,
            message: format!("{what}: {detail}"),
            source: Some(Box::new(err)),
        },
        Class::NotFound => Error::NotFound {
            provider,
            what: format!("{what} ({detail})"),
        },
        Class::Conflict => Error::Conflict {
            provider,
            message: format!("{what}: {detail}"),
        },
        Class::PermissionDenied => Error::PermissionDenied {
            provider,
            message: format!("{what}: {detail}"),
            source: Some(Box::new(err)),
        },
        Class::InvalidInput => Error::InvalidInput {
            field: what.to_string(),
            message: format!("{provider}: {detail}"),
        },
        Class::Unsupported => Error::Unsupported {
            provider,
            operation: format!("{what} ({detail})"),
        },
        Class::Failed => Error::Failed {
            provider,
            message: format!("{what}: {detail}"),
            source: Some(Box::new(err)),
        },
    }
}

/// `Code: message`, or the SDK's own words when the answer carried no AWS error.
fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (err.code(), err.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_owned(),
        _ => {
            // Walk the source chain: the top-level Display of an SdkError is terse
            // ("dispatch failure", "service error").
            let mut text = err.to_string();
            let mut cause = std::error::Error::source(err);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            if let SdkError::ResponseError(r) = err {
                text.push_str(&format!(" (HTTP {})", r.raw().status().as_u16()));
            }
            text
        }
    }
}

/// The provider-specific not-found error for an object the API reported missing
/// without an error (an empty list, a `failures` entry).
pub(crate) fn missing(provider: &dyn fmt::Display, what: impl fmt::Display) -> Error {
    Error::not_found(provider, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshos_rollback_core::ErrorKind;

    #[test]
    fn codes_classify_across_services() {
        let cases = [
            ("ThrottlingException", 400, Class::Throttled),
            ("Throttling", 400, Class::Throttled),
            ("PriorRequestNotComplete", 400, Class::Throttled),
            ("TooManyRequestsException", 429, Class::Throttled),
            ("ServerException", 500, Class::Unavailable),
            ("InternalFailure", 500, Class::Unavailable),
            ("ServiceNotFoundException", 400, Class::NotFound),
            ("ClusterNotFoundException", 400, Class::NotFound),
            ("ListenerNotFound", 400, Class::NotFound),
            ("TargetGroupNotFound", 400, Class::NotFound),
            ("DBInstanceNotFound", 404, Class::NotFound),
            ("DBSnapshotNotFoundFault", 404, Class::NotFound),
            ("NoSuchHostedZone", 404, Class::NotFound),
            ("NoSuchChange", 404, Class::NotFound),
            ("RepositoryNotFoundException", 400, Class::NotFound),
            ("ImageNotFoundException", 400, Class::NotFound),
            ("DBInstanceAlreadyExists", 400, Class::Conflict),
            ("DBInstanceAlreadyExistsFault", 400, Class::Conflict),
            ("ImageAlreadyExistsException", 400, Class::Conflict),
            ("InvalidDBInstanceState", 400, Class::Conflict),
            ("InvalidDBInstanceStateFault", 400, Class::Conflict),
            ("ConflictException", 409, Class::Conflict),
            ("AccessDeniedException", 400, Class::PermissionDenied),
            ("AccessDenied", 403, Class::PermissionDenied),
            ("ExpiredTokenException", 400, Class::PermissionDenied),
            ("ValidationError", 400, Class::InvalidInput),
            ("ValidationException", 400, Class::InvalidInput),
            ("InvalidParameterException", 400, Class::InvalidInput),
            ("InvalidParameterValue", 400, Class::InvalidInput),
            ("InvalidParameterCombination", 400, Class::InvalidInput),
            ("InvalidInput", 400, Class::InvalidInput),
            ("UnknownOperationException", 400, Class::Unsupported),
            ("aws.protocols#ThrottlingException", 400, Class::Throttled),
            ("SomethingElse", 400, Class::Failed),
        ];
        for (code, status, want) in cases {
            assert_eq!(classify(Some(code), Some(status)), want, "{code}");
        }
    }

    #[test]
    fn status_decides_for_unknown_codes() {
        assert_eq!(classify(None, Some(503)), Class::Unavailable);
        assert_eq!(classify(None, Some(502)), Class::Unavailable);
        assert_eq!(classify(None, Some(429)), Class::Throttled);
        assert_eq!(classify(None, Some(403)), Class::PermissionDenied);
        assert_eq!(classify(None, Some(404)), Class::NotFound);
        assert_eq!(classify(None, Some(409)), Class::Conflict);
        assert_eq!(classify(None, Some(400)), Class::Failed);
        assert_eq!(classify(Some("Weird"), Some(500)), Class::Unavailable);
    }

    type EcsError = aws_sdk_ecs::operation::describe_services::DescribeServicesError;

    fn service_error(code: &str, status: u16) -> SdkError<EcsError, HttpResponse> {
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("the message")
            .build();
        SdkError::service_error(
            EcsError::generic(meta),
            HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn mapping_keeps_provider_subject_and_source() {
        let p = "EcsDeployer(us-east-1/prod)";
        let e = from_sdk(&p, "service api", service_error("ThrottlingException", 400));
        assert_eq!(e.kind(), ErrorKind::Transient);
        assert!(e.is_retryable());
        assert!(std::error::Error::source(&e).is_some(), "source kept");
        assert_eq!(
            e.to_string(),
            "EcsDeployer(us-east-1/prod): temporarily unavailable: service api: ThrottlingException: the message"
        );

        let e = from_sdk(&p, "service api", service_error("ServerException", 500));
        assert!(e.is_retryable(), "{e}");

        let e = from_sdk(
            &p,
            "service api",
            service_error("ServiceNotFoundException", 400),
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "EcsDeployer(us-east-1/prod): service api (ServiceNotFoundException: the message) not found"
        );

        let e = from_sdk(&p, "x", service_error("AccessDeniedException", 400));
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        let e = from_sdk(&p, "x", service_error("DBInstanceAlreadyExists", 400));
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let e = from_sdk(&p, "weights", service_error("ValidationError", 400));
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().starts_with("invalid weights: "), "{e}");
        let e = from_sdk(&p, "x", service_error("Odd", 400));
        assert_eq!(e.kind(), ErrorKind::Failed);
        assert!(!e.is_retryable());
    }

    #[test]
    fn transport_failures_are_retryable() {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let err: SdkError<EcsError, HttpResponse> = SdkError::dispatch_failure(ConnectorError::io(
            Box::new(std::io::Error::other("connection refused")),
        ));
        let e = from_sdk(&"p", "x", err);
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("connection refused"), "{e}");

        let err: SdkError<EcsError, HttpResponse> = SdkError::response_error(
            std::io::Error::other("not JSON"),
            HttpResponse::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(500).unwrap(),
                aws_smithy_types::body::SdkBody::from("<html>oops</html>"),
            ),
        );
        assert!(is_missing_operation(&err));
        let e = from_sdk(&"p", "x", err);
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("HTTP 500"), "{e}");
    }
}
