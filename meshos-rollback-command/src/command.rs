//! Running one command: argv templates, a deadline, output captured and redacted.

use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use meshos_rollback_core::redact::Redactor;
use meshos_rollback_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// A command as an argument vector, never a shell line: `["npm", "run",
/// "test:smoke", "--", "--region", "{region}"]`. Placeholders `{region}`, `{service}`
/// and `{name}` are replaced in each argument; nothing is ever passed to a shell, so a
/// value cannot inject another command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct CommandTemplate {
    argv: Vec<String>,
}

impl CommandTemplate {
    /// A template from a program and its arguments.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Result<Self> {
        let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
        match argv.first() {
            Some(p) if !p.trim().is_empty() => Ok(CommandTemplate { argv }),
            _ => Err(Error::invalid(
                "command",
                "name the program first, like [\"npm\", \"run\", \"test:smoke\"]",
            )),
        }
    }

    /// The program and arguments with placeholders replaced.
    pub(crate) fn render(&self, values: &[(&str, &str)]) -> Vec<String> {
        self.argv
            .iter()
            .map(|a| {
                values
                    .iter()
                    .fold(a.clone(), |acc, (k, v)| acc.replace(&format!("{{{k}}}"), v))
            })
            .collect()
    }
}

impl TryFrom<Vec<String>> for CommandTemplate {
    type Error = Error;
    fn try_from(argv: Vec<String>) -> Result<Self> {
        CommandTemplate::new(argv)
    }
}

impl From<CommandTemplate> for Vec<String> {
    fn from(t: CommandTemplate) -> Self {
        t.argv
    }
}

impl fmt::Display for CommandTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv.join(" "))
    }
}

/// Where and how long a command runs.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) timeout: Duration,
}

/// What a finished command printed.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) success: bool,
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Finished {
    /// The last non-empty line of stdout (or stderr), redacted and cut to 300
    /// characters: what a person reads first.
    pub(crate) fn summary(&self) -> String {
        let last = |s: &str| {
            s.lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_owned)
        };
        let line = if self.success {
            last(&self.stdout).or_else(|| last(&self.stderr))
        } else {
            last(&self.stderr).or_else(|| last(&self.stdout))
        }
        .unwrap_or_default();
        let mut line = Redactor::new().redact(&line);
        if line.chars().count() > 300 {
            line = line.chars().take(297).collect::<String>() + "...";
        }
        line
    }
}

impl Runner {
    /// Runs `argv` to completion or kills it at the deadline.
    pub(crate) async fn run(
        &self,
        provider: &(dyn fmt::Display + Sync),
        argv: &[String],
    ) -> Result<Finished> {
        let (program, args) = argv.split_first().expect("a template has a program");
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A command cut off by the deadline (or a cancelled rollback) must not
            // keep running unseen.
            .kill_on_drop(true);
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::invalid(
                "command",
                format!("{provider}: program {program:?} not found; check the command and PATH"),
            ),
            std::io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                provider: provider.to_string(),
                message: format!("cannot run {program:?}: {e}"),
                source: Some(Box::new(e)),
            },
            _ => Error::Failed {
                provider: provider.to_string(),
                message: format!("cannot start {program:?}: {e}"),
                source: Some(Box::new(e)),
            },
        })?;
        tracing::debug!(provider = %provider, %program, "running command");
        let out = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| Error::Timeout {
                operation: format!("{provider}: {program}"),
                after: self.timeout,
            })?
            .map_err(|e| Error::Failed {
                provider: provider.to_string(),
                message: format!("waiting for {program:?}: {e}"),
                source: Some(Box::new(e)),
            })?;
        Ok(Finished {
            success: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_replace_placeholders_per_argument() {
        let t = CommandTemplate::new(["npm", "run", "test:smoke", "--", "--region", "{region}"])
            .unwrap();
        assert_eq!(
            t.render(&[("region", "us-east-1; rm -rf /")]),
            vec![
                "npm",
                "run",
                "test:smoke",
                "--",
                "--region",
                "us-east-1; rm -rf /"
            ],
            "a value stays one argument: there is no shell to interpret it"
        );
        assert!(CommandTemplate::new(Vec::<String>::new()).is_err());
        let t: CommandTemplate =
            serde_json::from_str(r#"["./migrate", "down", "{name}"]"#).unwrap();
        assert_eq!(t.to_string(), "./migrate down {name}");
        assert!(serde_json::from_str::<CommandTemplate>("[]").is_err());
    }

    #[test]
    fn the_summary_is_the_last_line_redacted() {
        let f = Finished {
            success: false,
            code: Some(1),
            stdout: "12 passed\n".into(),
            stderr: "connecting to postgresql://app:hunter22@db/x\n1 failed: checkout\n\n".into(),
        };
        assert_eq!(f.summary(), "1 failed: checkout");
        let f = Finished {
            success: false,
            code: Some(1),
            stdout: String::new(),
            stderr: "cannot reach postgresql://app:hunter22@db/x".into(),
        };
        assert_eq!(f.summary(), "cannot reach postgresql://app:***@db/x");
    }
}
