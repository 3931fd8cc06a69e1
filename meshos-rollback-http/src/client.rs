//! The HTTP client every provider uses unless the caller injects one.

use std::sync::Arc;

use meshos_rollback_core::{Error, Result};
use rustls_platform_verifier::BuilderVerifierExt;

/// The largest response body read, in bytes; the rest is ignored. Health pages and
/// webhook answers are short; Prometheus answers for one series per query are too.
pub(crate) const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A client with rustls on *ring* and the platform's trust store, that neither
/// follows redirects (a redirect could carry a routing key elsewhere, and `curl -f`
/// does not follow them either) nor retries (retrying is a core layer's job).
pub(crate) fn default_client(provider: &str) -> Result<reqwest::Client> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|b| b.with_platform_verifier())
    .map_err(|e| Error::Failed {
        provider: provider.to_owned(),
        message: format!("cannot set up TLS: {e}"),
        source: Some(Box::new(e)),
    })?
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .build()
        .map_err(|e| Error::Failed {
            provider: provider.to_owned(),
            message: format!("cannot build the HTTP client: {e}"),
            source: Some(Box::new(e.without_url())),
        })
}

/// Reads at most [`MAX_BODY_BYTES`] of a response body as (lossy) UTF-8.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
) -> std::result::Result<String, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The `Retry-After` header of a throttled or unavailable answer (seconds or an
/// HTTP date), for the error message; [`with_retry_after`] hands the delay to the
/// core retry layer, which decides when to try again.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if value.is_empty() || value.len() > 64 {
        return None;
    }
    Some(value.to_owned())
}

/// A transient error with the server's `Retry-After` (in seconds) as its source, so
/// the core retry layer waits at least that long; an HTTP date or any other error is
/// left as it is.
pub(crate) fn with_retry_after(
    error: meshos_rollback_core::Error,
    wait: Option<&str>,
) -> meshos_rollback_core::Error {
    match (error, wait.and_then(|w| w.parse::<u64>().ok())) {
        (
            meshos_rollback_core::Error::Transient {
                provider,
                message,
                source: None,
            },
            Some(secs),
        ) => meshos_rollback_core::Error::Transient {
            provider,
            message,
            source: Some(Box::new(meshos_rollback_core::error::RetryAfter(
                std::time::Duration::from_secs(secs),
            ))),
        },
        (e, _) => e,
    }
}

/// The URL without credentials, query or fragment, and without a trailing `/`:
/// what `Display` shows of an endpoint.
pub(crate) fn display_url(url: &url::Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path().trim_end_matches('/'));
    shown
}

/// Parses an absolute `http(s)` URL with a host.
pub(crate) fn parse_http_url(field: &str, text: &str) -> Result<url::Url> {
    let url = url::Url::parse(text)
        .map_err(|e| Error::invalid(field, format!("not an absolute URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid(
            field,
            format!("scheme {:?} is not http or https", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid(field, "the URL has no host"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_url_hides_credentials_and_query() {
        let u = url::Url::parse("https://user:pw@prom.example:9443/prometheus/?token=x").unwrap();
        assert_eq!(display_url(&u), "https://prom.example:9443/prometheus");
        let u = url::Url::parse("http://127.0.0.1:9090/").unwrap();
        assert_eq!(display_url(&u), "http://127.0.0.1:9090");
    }

    #[test]
    fn only_absolute_http_urls_parse() {
        assert!(parse_http_url("f", "http://127.0.0.1:1/health").is_ok());
        for bad in ["not a url", "ftp://host/x", "/health", "http://"] {
            let e = parse_http_url("f", bad).unwrap_err();
            assert_eq!(
                e.kind(),
                meshos_rollback_core::ErrorKind::InvalidInput,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_default_client_builds_without_a_process_wide_crypto_provider() {
        default_client("Test").unwrap();
    }
}
