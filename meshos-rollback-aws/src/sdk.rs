//! Checks an injected SDK configuration once, at `build()`, so a missing piece fails
//! there with a clear message instead of on every call.

use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::DateTime;
use aws_smithy_types::retry::RetryConfig;
use jiff::Timestamp;
use meshos_rollback_core::{Error, Result};

/// The HTTP client a backend must install, if any.
///
/// `Ok(None)`: the configuration has one, keep it. `Ok(Some(c))`: it has none and the
/// `default-http-client` feature supplies `c`. Without the feature a configuration
/// without a client is refused: the SDK would build fine and then fail every call.
pub(crate) fn http_client_to_install(
    backend: &str,
    existing: Option<SharedHttpClient>,
) -> Result<Option<SharedHttpClient>> {
    if existing.is_some() {
        return Ok(None);
    }
    default_http_client().map(Some).ok_or_else(|| {
        Error::invalid(
            "http_client",
            format!(
                "{backend}: the SDK configuration has no HTTP client; set one with \
                 `.http_client(..)` or enable the `default-http-client` feature of \
                 meshos-rollback-aws"
            ),
        )
    })
}

#[cfg(feature = "default-http-client")]
fn default_http_client() -> Option<SharedHttpClient> {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    Some(
        aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https(),
    )
}

#[cfg(not(feature = "default-http-client"))]
fn default_http_client() -> Option<SharedHttpClient> {
    None
}

/// The region a client is configured for; backends need it for their scope.
pub(crate) fn require_region(backend: &str, region: Option<&str>) -> Result<String> {
    region.map(str::to_owned).ok_or_else(|| {
        Error::invalid(
            "region",
            format!("{backend}: the SDK configuration has no region; set one, like us-east-1"),
        )
    })
}

/// Installs a missing HTTP client into a service client, turns the client's own
/// retries off, and reads its region. One macro for the service crates, whose
/// `Client` and `Config` types differ; every backend builds its client here.
///
/// Retries are off because core's `RetryLayer` is the one retry budget: the SDK's
/// standard mode (3 attempts) under a layer of N attempts would make 3 x N requests
/// per logical call, and throttling absorbed inside the SDK would never reach the
/// budget shared across regions.
macro_rules! prepare_client {
    ($backend:expr, $client:expr, $krate:ident) => {{
        let client: $krate::Client = $client;
        let region =
            $crate::sdk::require_region($backend, client.config().region().map(|r| r.as_ref()))?;
        let http = $crate::sdk::http_client_to_install($backend, client.config().http_client())?;
        let mut config = client
            .config()
            .to_builder()
            .retry_config($crate::sdk::client_retry_config());
        if let Some(http) = http {
            config = config.http_client(http);
        }
        ($krate::Client::from_conf(config.build()), region)
    }};
}
pub(crate) use prepare_client;

/// The retry setting of every client a backend builds: none. Retrying is the job of
/// core's `RetryLayer`, once, for retryable errors of idempotent calls, drawing on a
/// budget shared across regions.
pub(crate) fn client_retry_config() -> RetryConfig {
    RetryConfig::disabled()
}

/// An SDK timestamp as a jiff timestamp.
pub(crate) fn timestamp(t: &DateTime) -> Option<Timestamp> {
    Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok()
}

/// A jiff timestamp as an SDK timestamp.
pub(crate) fn date_time(t: Timestamp) -> DateTime {
    DateTime::from_secs_and_nanos(t.as_second(), t.subsec_nanosecond().max(0) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_http_client_is_filled_or_refused() {
        let got = http_client_to_install("EcsDeployer", None);
        if cfg!(feature = "default-http-client") {
            assert!(got.unwrap().is_some(), "the feature supplies a client");
        } else {
            let err = got.unwrap_err();
            assert!(err.to_string().contains("no HTTP client"), "{err}");
        }
        if let Some(own) = default_http_client() {
            let keep = http_client_to_install("EcsDeployer", Some(own)).unwrap();
            assert!(keep.is_none(), "a configured client is kept");
        }
    }

    #[test]
    fn timestamps_round_trip() {
        let t: Timestamp = "2025-10-30T10:00:00.25Z".parse().unwrap();
        assert_eq!(timestamp(&date_time(t)), Some(t));
    }
}
