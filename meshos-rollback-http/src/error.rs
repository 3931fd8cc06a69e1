//! Maps HTTP outcomes to the core [`Error`], in one place, without leaking secrets.
//!
//! reqwest errors carry the request URL (a Slack webhook URL is a credential), so every
//! error is stripped of it with `without_url` before it is kept as a `source()`, and
//! every excerpt of a response body is passed through [`redact`] first.

use std::time::Duration;

use meshos_rollback_core::Error;
use reqwest::StatusCode;

/// The longest excerpt of a response body kept in an error message or health detail.
pub(crate) const EXCERPT_CHARS: usize = 200;

/// What a failed request was doing, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    /// The provider's `Display`, such as `Prometheus(http://127.0.0.1:9090)`.
    pub(crate) provider: &'a str,
    /// The operation, such as `error_rate_pct query for us-east-1/custom:meshos-api`.
    pub(crate) operation: &'a str,
    /// The input a 400/422 answer blames, such as `prometheus.templates.error_rate_pct`.
    pub(crate) input: &'a str,
    /// The per-request timeout in force, for the message of a timeout.
    pub(crate) timeout: Duration,
}

/// Converts a failed send (connect, timeout, body) to an [`Error`]. The URL is removed
/// first; `secrets` are redacted from every message kept.
pub(crate) fn from_reqwest(ctx: &Context<'_>, err: reqwest::Error, secrets: &[&str]) -> Error {
    let err = err.without_url();
    let cause = redact(&error_chain(&err), secrets);
    let provider = ctx.provider.to_owned();
    if err.is_timeout() {
        return Error::Transient {
            provider,
            message: format!(
                "{}: no answer within the {:?} request timeout",
                ctx.operation, ctx.timeout
            ),
            source: Some(Box::new(err)),
        };
    }
    if err.is_connect() || err.is_request() || err.is_body() {
        return Error::Transient {
            provider,
            message: format!("{}: {cause}", ctx.operation),
            source: Some(Box::new(err)),
        };
    }
    Error::Failed {
        provider,
        message: format!("{}: {cause}", ctx.operation),
        source: Some(Box::new(err)),
    }
}

/// Converts a non-success HTTP answer to an [`Error`]: 429 and 5xx are transient,
/// 404/410 not found, 401/403 permission denied, 400/422 invalid input, anything else
/// a failure. `detail` is what the server said (already redacted by the caller or here).
pub(crate) fn from_status(
    ctx: &Context<'_>,
    status: StatusCode,
    detail: &str,
    secrets: &[&str],
) -> Error {
    let detail = redact(detail, secrets);
    let message = if detail.is_empty() {
        format!("{}: HTTP {status}", ctx.operation)
    } else {
        format!("{}: HTTP {status}: {detail}", ctx.operation)
    };
    let provider = ctx.provider.to_owned();
    match status.as_u16() {
        429 | 500..=599 => Error::Transient {
            provider,
            message,
            source: None,
        },
        404 | 410 => Error::NotFound {
            provider,
            what: message,
        },
        401 | 403 => Error::PermissionDenied {
            provider,
            message,
            source: None,
        },
        400 | 422 => Error::InvalidInput {
            field: ctx.input.to_owned(),
            message: format!("{provider}: {message}"),
        },
        _ => Error::Failed {
            provider,
            message,
            source: None,
        },
    }
}

/// An answer that arrived but cannot be understood (not JSON, wrong shape).
pub(crate) fn bad_answer(ctx: &Context<'_>, what: impl std::fmt::Display) -> Error {
    Error::failed(
        ctx.provider,
        format!("{}: unexpected answer: {what}", ctx.operation),
    )
}

/// The error and its causes on one line, `: `-separated, without repeats.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// Replaces every occurrence of a non-empty secret with `[redacted]`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "[redacted]");
    }
    out
}

/// The start of a body, on one line, at most [`EXCERPT_CHARS`] characters.
pub(crate) fn excerpt(body: &str) -> String {
    let one_line: String = body
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out: String = one_line.chars().take(EXCERPT_CHARS).collect();
    if one_line.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshos_rollback_core::ErrorKind;

    fn ctx() -> Context<'static> {
        Context {
            provider: "Test(http://x)",
            operation: "post",
            input: "test.input",
            timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn statuses_are_classified() {
        let kind =
            |code: u16| from_status(&ctx(), StatusCode::from_u16(code).unwrap(), "", &[]).kind();
        assert_eq!(kind(429), ErrorKind::Transient);
        assert_eq!(kind(500), ErrorKind::Transient);
        assert_eq!(kind(503), ErrorKind::Transient);
        assert_eq!(kind(404), ErrorKind::NotFound);
        assert_eq!(kind(410), ErrorKind::NotFound);
        assert_eq!(kind(401), ErrorKind::PermissionDenied);
        assert_eq!(kind(403), ErrorKind::PermissionDenied);
        assert_eq!(kind(400), ErrorKind::InvalidInput);
        assert_eq!(kind(422), ErrorKind::InvalidInput);
        assert_eq!(kind(418), ErrorKind::Failed);
    }

    #[test]
    fn messages_name_provider_operation_and_detail_without_secrets() {
        let e = from_status(
            &ctx(),
            StatusCode::BAD_REQUEST,
            "bad key s3cr3t",
            &["s3cr3t"],
        );
        assert_eq!(
            e.to_string(),
            "invalid test.input: Test(http://x): post: HTTP 400 Bad Request: bad key [redacted]"
        );
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt("  ok\n"), "ok");
        assert_eq!(excerpt("a\nb"), "a b");
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 1);
    }
}
