//! Writes a secret value to AWS Secrets Manager as a version that a task definition
//! can pin, so a value never has to appear in plain text where ECS shows it.
//!
//! The version id is the write's `ClientRequestToken`, derived from a hash of the
//! secret and the value (never the value itself): writing the same value again, as a
//! resumed run does after a crash, finds that version and adds none (Secrets Manager
//! API reference, PutSecretValue, `ClientRequestToken`: a request whose token names
//! an existing version with the same value is ignored; moto 5.2.5 does the same).

use std::fmt;

use aws_sdk_secretsmanager::config::retry::RetryConfig;
use meshos_rollback_core::{Error, Result};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::error::{Class, class_of, from_sdk};
use crate::sdk::prepare_client;

/// A Secrets Manager client for one backend, retries off (core's retry layer retries).
#[derive(Debug, Clone)]
pub(crate) struct SecretWriter {
    client: aws_sdk_secretsmanager::Client,
}

/// One version of a secret: what a container's `secrets[].valueFrom` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretVersion {
    /// The secret's full ARN (with the six random characters Secrets Manager adds).
    pub(crate) arn: String,
    /// The version id (our request token).
    pub(crate) version_id: String,
}

impl SecretVersion {
    /// The `valueFrom` of an ECS container secret pinned to this version:
    /// `arn:…:secret:name-AbCdEf:json-key:version-stage:version-id` with the JSON key
    /// and stage left empty (ECS Developer Guide, "Pass Secrets Manager secrets
    /// programmatically"; a version needs the full ARN and, on Fargate, platform
    /// version 1.4.0 or later).
    pub(crate) fn value_from(&self) -> String {
        format!("{}:::{}", self.arn, self.version_id)
    }
}

/// The request token (and so the version id) for writing `value` to `secret`: a
/// SHA-256 of both, domain-separated, as a UUID-shaped 32-hex-digit string (the form
/// Secrets Manager uses, 32 to 64 characters allowed). It identifies a value without
/// revealing it, as far as the value holds a real secret (a generated password).
pub(crate) fn version_token(secret: &str, value: &SecretString) -> String {
    let mut h = Sha256::new();
    h.update(b"meshos-rollback secret version v1\0");
    h.update(secret.as_bytes());
    h.update(b"\0");
    h.update(value.expose_secret().as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl SecretWriter {
    /// Checks the client like the backends' own (region, HTTP client) and turns its
    /// retries off.
    pub(crate) fn new(backend: &str, client: aws_sdk_secretsmanager::Client) -> Result<Self> {
        let (client, _region) = prepare_client!(backend, client, aws_sdk_secretsmanager);
        let client = aws_sdk_secretsmanager::Client::from_conf(
            client
                .config()
                .to_builder()
                .retry_config(RetryConfig::disabled())
                .build(),
        );
        Ok(SecretWriter { client })
    }

    /// Makes `value` a version of the existing secret `secret` (name or ARN) and
    /// returns it; the same value again returns the same version and adds none.
    ///
    /// A missing secret is not created: creating one decides its KMS key and resource
    /// policy, and the task execution role must be allowed to read it before a task
    /// can start with it, so it is set up beforehand, not in the middle of a rollback.
    pub(crate) async fn put(
        &self,
        provider: &(dyn fmt::Display + Sync),
        secret: &str,
        value: &SecretString,
    ) -> Result<SecretVersion> {
        let token = version_token(secret, value);
        let out = self
            .client
            .put_secret_value()
            .secret_id(secret)
            .secret_string(value.expose_secret())
            .client_request_token(&token)
            .send()
            .await
            .map_err(|e| {
                let what = match class_of(&e) {
                    Class::PermissionDenied => format!(
                        "secret {secret} (writing it needs secretsmanager:PutSecretValue on \
                         it, and kms:GenerateDataKey on its key when that is a customer \
                         managed key)"
                    ),
                    Class::NotFound => format!(
                        "secret {secret} (create it first, with no value, and let the task \
                         execution role read it: secretsmanager:GetSecretValue)"
                    ),
                    _ => format!("secret {secret}"),
                };
                from_sdk(provider, what, e)
            })?;
        let arn = out
            .arn()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                Error::failed(
                    provider,
                    format!("PutSecretValue of {secret} returned no ARN"),
                )
            })?
            .to_owned();
        Ok(SecretVersion {
            arn,
            version_id: out.version_id().unwrap_or(&token).to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_stable_uuid_shaped_and_hides_the_value() {
        let v = SecretString::from("postgresql://app:s3cret@db.example:5432/meshos");
        let t = version_token("meshos/db-url", &v);
        assert_eq!(t, version_token("meshos/db-url", &v), "deterministic");
        assert_eq!(t.len(), 36);
        assert_eq!(t.matches('-').count(), 4);
        assert!(!t.contains("s3cret"));
        assert_ne!(t, version_token("meshos/other", &v), "per secret");
        let w = SecretString::from("postgresql://app:s3cret@db2.example:5432/meshos");
        assert_ne!(t, version_token("meshos/db-url", &w), "per value");
    }

    #[test]
    fn value_from_pins_the_version() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:meshos/db-url-AbCdEf";
        let v = SecretVersion {
            arn: arn.into(),
            version_id: "1234".into(),
        };
        assert_eq!(v.value_from(), format!("{arn}:::1234"));
    }
}
