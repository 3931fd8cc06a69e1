//! Running one command: argv templates, a deadline, output captured (bounded) and
//! redacted.

use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use meshos_rollback_core::redact::Redactor;
use meshos_rollback_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::capture::{Captured, read_tail};
use crate::group::Running;

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

/// What a command may keep of each output stream unless told otherwise.
pub(crate) const DEFAULT_OUTPUT_LIMIT: usize = 1024 * 1024;

/// Where and how long a command runs, and how much of its output is kept.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) timeout: Duration,
    /// Bytes kept per stream (the tail).
    pub(crate) output_limit: usize,
}

/// What a finished command printed.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) success: bool,
    pub(crate) code: Option<i32>,
    pub(crate) stdout: Captured,
    pub(crate) stderr: Captured,
}

impl Finished {
    /// The last non-empty line of stdout (or stderr), redacted and cut to 300
    /// characters: what a person reads first. Says so when output was dropped.
    pub(crate) fn summary(&self) -> String {
        let last = |s: &str| {
            s.lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_owned)
        };
        let line = if self.success {
            last(&self.stdout.text).or_else(|| last(&self.stderr.text))
        } else {
            last(&self.stderr.text).or_else(|| last(&self.stdout.text))
        }
        .unwrap_or_default();
        let mut line = Redactor::new().redact(&line);
        if line.chars().count() > 300 {
            line = line.chars().take(297).collect::<String>() + "...";
        }
        match self.truncation() {
            Some(note) if line.is_empty() => note,
            Some(note) => format!("{line} ({note})"),
            None => line,
        }
    }

    /// `output truncated: …` when the output limit dropped bytes.
    fn truncation(&self) -> Option<String> {
        let dropped: Vec<String> = [("stdout", &self.stdout), ("stderr", &self.stderr)]
            .into_iter()
            .filter(|(_, c)| c.dropped > 0)
            .map(|(name, c)| format!("{} bytes of {name}", c.dropped))
            .collect();
        (!dropped.is_empty()).then(|| {
            format!(
                "output truncated: the first {} dropped",
                dropped.join(" and ")
            )
        })
    }
}

impl Runner {
    /// Runs in the current directory with the default output limit.
    pub(crate) fn new(timeout: Duration) -> Self {
        Runner {
            dir: None,
            timeout,
            output_limit: DEFAULT_OUTPUT_LIMIT,
        }
    }

    /// Runs `argv` to completion, or kills its process group at the deadline or when
    /// the returned future is dropped.
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
            .stderr(Stdio::piped());
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        let mut running = Running::spawn(&mut cmd).map_err(|e| match e.kind() {
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
        let stdout = running.child().stdout.take().expect("stdout is piped");
        let stderr = running.child().stderr.take().expect("stderr is piped");
        let limit = self.output_limit;
        // Done when the command exited and both pipes closed: a grandchild still
        // holding them is still part of the command.
        let outcome = tokio::time::timeout(self.timeout, async {
            tokio::try_join!(
                running.child().wait(),
                read_tail(stdout, limit),
                read_tail(stderr, limit)
            )
        })
        .await;
        match outcome {
            Ok(Ok((status, stdout, stderr))) => {
                running.finished();
                Ok(Finished {
                    success: status.success(),
                    code: status.code(),
                    stdout,
                    stderr,
                })
            }
            // Dropping `running` kills the group.
            Ok(Err(e)) => Err(Error::Failed {
                provider: provider.to_string(),
                message: format!("waiting for {program:?}: {e}"),
                source: Some(Box::new(e)),
            }),
            Err(_) => {
                running.kill().await;
                Err(Error::Timeout {
                    operation: format!("{provider}: {program}"),
                    after: self.timeout,
                })
            }
        }
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
            stdout: Captured::default(),
            stderr: "cannot reach postgresql://app:hunter22@db/x".into(),
        };
        assert_eq!(f.summary(), "cannot reach postgresql://app:***@db/x");
    }

    #[test]
    fn the_summary_says_how_much_output_was_dropped() {
        let kept = |text: &str, dropped| Captured {
            text: text.into(),
            dropped,
        };
        let f = Finished {
            success: true,
            code: Some(0),
            stdout: kept("12 passed\n", 4096),
            stderr: Captured::default(),
        };
        assert_eq!(
            f.summary(),
            "12 passed (output truncated: the first 4096 bytes of stdout dropped)"
        );
        let f = Finished {
            success: false,
            code: None,
            stdout: kept("", 10),
            stderr: kept("", 20),
        };
        assert_eq!(
            f.summary(),
            "output truncated: the first 10 bytes of stdout and 20 bytes of stderr dropped"
        );
    }
}
