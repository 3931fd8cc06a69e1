//! The connection switch without plain text: a variable's value goes into an
//! immutable Secret named after its content, and the containers read it with
//! `secretKeyRef`. A Deployment's spec is readable by anyone who may `get
//! deployments`; a Secret has its own RBAC.
//!
//! The Secret's name is `<base>-<first 10 hex of SHA-256 of the value>`: writing the
//! same value again finds the Secret that is there (a resumed switch adopts it), a new
//! value makes a new Secret — and so a new pod template, which is what rolls the pods
//! (a changed Secret under the same name would not). Earlier Secrets are kept: rolling
//! back to the revision before the switch needs the value it read.

use base64::Engine as _;
use kube::api::{ApiResource, DynamicObject, PostParams};
use meshos_rollback_core::{Error, Result};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::K8sDeployer;
use crate::error::from_kube;

/// Labels every Secret this crate writes, so an operator can find (and clean) them.
const MANAGED_BY: &str = "meshos-rollback";

fn secrets() -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "Secret".into(),
        plural: "secrets".into(),
    }
}

/// The Secret's name for this value.
pub(super) fn secret_name(base: &str, value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("{base}-{hex}")
}

/// Whether `base` can be a Secret name with the hash appended (RFC 1123 subdomain,
/// 253 characters).
pub(super) fn check_base(base: &str) -> Result<()> {
    let ok = !base.is_empty()
        && base.len() <= 253 - 11
        && base
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && base.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "k8s.secret_env",
            format!(
                "{base:?} cannot name a Secret: use lower-case letters, digits, '-' and '.', starting with a letter or digit"
            ),
        ))
    }
}

impl K8sDeployer {
    /// Makes sure the Secret `name` in `ns` holds `value` under `key`: created if
    /// missing (immutable), adopted if it holds that value, a Conflict if it holds
    /// another (never overwritten).
    pub(super) async fn ensure_secret(
        &self,
        ns: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let api = self.api(ns, &secrets());
        let what = format!("secret {ns}/{name}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        let holds = |obj: &DynamicObject| {
            obj.data
                .pointer(&format!(
                    "/data/{}",
                    key.replace('~', "~0").replace('/', "~1")
                ))
                .and_then(Value::as_str)
                == Some(encoded.as_str())
        };
        if let Some(existing) = api
            .get_opt(name)
            .await
            .map_err(|e| from_kube(self, &what, e))?
        {
            return self.adopt(holds(&existing), &what);
        }
        let secret: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {"app.kubernetes.io/managed-by": MANAGED_BY},
            },
            "type": "Opaque",
            "immutable": true,
            "data": {key: encoded},
        }))
        .map_err(|e| self.malformed("a Secret", e))?;
        let params = PostParams {
            dry_run: self.dry_run,
            field_manager: Some(super::FIELD_MANAGER.to_owned()),
        };
        match api.create(&params, &secret).await {
            Ok(_) => Ok(()),
            // Created meanwhile (another attempt): adopt it if it holds the value.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = api.get(name).await.map_err(|e| from_kube(self, &what, e))?;
                self.adopt(holds(&existing), &what)
            }
            Err(e) => Err(from_kube(self, &what, e)),
        }
    }

    fn adopt(&self, holds: bool, what: &str) -> Result<()> {
        if holds {
            Ok(())
        } else {
            Err(Error::conflict(
                self,
                format!(
                    "{what} exists and holds another value under that key; it is never overwritten: delete it or choose another secret name"
                ),
            ))
        }
    }
}
