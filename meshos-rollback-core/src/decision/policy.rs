//! All decision settings in one file: TOML, YAML or JSON.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{CanaryPolicy, DecisionMatrix, VerificationLimits};
use crate::{Error, Result};

/// The canary policy, decision matrix and verification limits, as one configuration.
/// Every section is optional and defaults to the playbook's numbers.
///
/// ```
/// use meshos_rollback_core::decision::RollbackPolicy;
///
/// let policy = RollbackPolicy::from_toml_str(r#"
///     [canary]
///     cpu_above_pct = 85.0
///
///     [verification]
///     window = "30m"
/// "#).unwrap();
/// assert_eq!(policy.canary.cpu_above_pct(), 85.0);
/// assert_eq!(policy.canary.memory_above_pct(), 90.0);
/// assert_eq!(policy.verification.window().as_secs(), 1800);
///
/// let err = RollbackPolicy::from_toml_str("[canary]\ncpu_above_pct = 120.0").unwrap_err();
/// assert!(err.to_string().contains("canary.cpu_above_pct"));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RollbackPolicy {
    /// Canary auto-rollback rules.
    pub canary: CanaryPolicy,
    /// Rollback decision matrix.
    pub matrix: DecisionMatrix,
    /// Post-rollback verification limits.
    pub verification: VerificationLimits,
}

impl RollbackPolicy {
    /// Parses TOML.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::invalid("policy (TOML)", e.to_string()))
    }

    /// Parses YAML.
    pub fn from_yaml_str(text: &str) -> Result<Self> {
        serde_saphyr::from_str(text).map_err(|e| Error::invalid("policy (YAML)", e.to_string()))
    }

    /// Parses JSON.
    pub fn from_json_str(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::invalid("policy (JSON)", e.to_string()))
    }

    /// Reads a file, choosing the format by extension (`.toml`, `.yaml`/`.yml`, `.json`).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(
                "policy file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let parsed = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Self::from_toml_str(&text),
            Some("yaml" | "yml") => Self::from_yaml_str(&text),
            Some("json") => Self::from_json_str(&text),
            _ => {
                return Err(Error::invalid(
                    "policy file",
                    format!(
                        "{}: unknown format; name it .toml, .yaml, .yml or .json",
                        path.display()
                    ),
                ));
            }
        };
        parsed.map_err(|e| match e {
            Error::InvalidInput { field, message } => Error::InvalidInput {
                field: format!("{field} in {}", path.display()),
                message,
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Action;
    use std::time::Duration;

    #[test]
    fn empty_config_is_the_playbook() {
        assert_eq!(
            RollbackPolicy::from_toml_str("").unwrap(),
            RollbackPolicy::default()
        );
        assert_eq!(
            RollbackPolicy::from_json_str("{}").unwrap(),
            RollbackPolicy::default()
        );
    }

    #[test]
    fn yaml_and_toml_and_json_agree() {
        let toml = r#"
[matrix]
error_rate_monitor_above_pct = 2.0
customer_reports_window = "10m"
data_corruption_action = "stop_and_escalate"
[verification]
window = "30m"
check_interval = "30s"
"#;
        let yaml = r#"
matrix:
  error_rate_monitor_above_pct: 2.0
  customer_reports_window: 10m
  data_corruption_action: stop_and_escalate
verification:
  window: 30m
  check_interval: 30s
"#;
        let a = RollbackPolicy::from_toml_str(toml).unwrap();
        let b = RollbackPolicy::from_yaml_str(yaml).unwrap();
        assert_eq!(a, b);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(RollbackPolicy::from_json_str(&json).unwrap(), a);
        assert_eq!(a.matrix.settings().error_rate_monitor_above_pct, 2.0);
        assert_eq!(a.matrix.customer_reports_window(), Duration::from_secs(600));
        assert_eq!(
            a.matrix.settings().data_corruption_action,
            Action::StopAndEscalate
        );
        assert_eq!(a.verification.check_interval(), Duration::from_secs(30));
    }

    #[test]
    fn bad_values_are_rejected_with_the_field_named() {
        for (text, field) in [
            (
                "[matrix]\nerror_rate_monitor_above_pct = 7.0",
                "matrix.error_rate_monitor_above_pct",
            ),
            (
                "[canary]\nmemory_above_pct = -3.0",
                "canary.memory_above_pct",
            ),
            (
                "[verification]\ncpu_below_pct = 101.0",
                "verification.cpu_below_pct",
            ),
            ("[canary]\ncpu_abve_pct = 80.0", "cpu_abve_pct"),
            ("[canary]\ncpu_above_pct = nan", "canary.cpu_above_pct"),
        ] {
            let err = RollbackPolicy::from_toml_str(text).unwrap_err().to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
        let err = RollbackPolicy::from_yaml_str("canary:\n  cpu_above_pct: .nan\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("canary.cpu_above_pct"), "{err}");
    }

    #[test]
    fn files_are_read_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("policy.yaml");
        std::fs::write(&p, "canary:\n  cpu_above_pct: 80\n").unwrap();
        assert_eq!(
            RollbackPolicy::from_path(&p)
                .unwrap()
                .canary
                .cpu_above_pct(),
            80.0
        );
        let p = dir.path().join("policy.ini");
        std::fs::write(&p, "").unwrap();
        assert!(
            RollbackPolicy::from_path(&p)
                .unwrap_err()
                .to_string()
                .contains("unknown format")
        );
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "[canary]\ncpu_above_pct = 300.0\n").unwrap();
        let err = RollbackPolicy::from_path(&p).unwrap_err().to_string();
        assert!(err.contains("bad.toml"), "{err}");
    }
}
