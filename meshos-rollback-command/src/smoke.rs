//! [`CommandSmokeTests`]: the playbook's `npm run test:smoke -- --region us-east-1`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use meshos_rollback_core::Result;
use meshos_rollback_core::model::ServiceRef;
use meshos_rollback_core::provider::{SmokeTestResult, SmokeTests};

use crate::command::{CommandTemplate, Runner};

/// Runs a smoke-test command per region: exit status 0 passes; the summary is the
/// last line it printed. A command that cannot start or runs past its deadline is an
/// error, not a failed suite.
///
/// ```
/// use meshos_rollback_command::{CommandSmokeTests, CommandTemplate};
///
/// let smoke = CommandSmokeTests::new(CommandTemplate::new(
///     ["npm", "run", "test:smoke", "--", "--region", "{region}"],
/// ).unwrap())
/// .in_dir("/srv/meshos")
/// .with_timeout(std::time::Duration::from_secs(600))
/// .with_output_limit(64 * 1024);
/// assert_eq!(smoke.to_string(), "CommandSmokeTests(npm run test:smoke -- --region {region})");
/// ```
#[derive(Debug, Clone)]
pub struct CommandSmokeTests {
    command: CommandTemplate,
    runner: Runner,
}

impl CommandSmokeTests {
    /// Smoke tests run by `command` (placeholders `{region}`, `{service}`), with a
    /// 10-minute deadline.
    pub fn new(command: CommandTemplate) -> Self {
        CommandSmokeTests {
            command,
            runner: Runner::new(Duration::from_secs(600)),
        }
    }

    /// Runs the command in `dir`.
    pub fn in_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runner.dir = Some(dir.into());
        self
    }

    /// Sets the deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.runner.timeout = timeout;
        self
    }

    /// Keeps at most the last `bytes` of stdout and of stderr (default 1 MiB each);
    /// the rest is read and dropped, and the summary says how much.
    pub fn with_output_limit(mut self, bytes: usize) -> Self {
        self.runner.output_limit = bytes;
        self
    }
}

impl fmt::Display for CommandSmokeTests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandSmokeTests({})", self.command)
    }
}

#[async_trait]
impl SmokeTests for CommandSmokeTests {
    async fn run(&self, service: &ServiceRef) -> Result<SmokeTestResult> {
        let argv = self.command.render(&[
            ("region", service.region.as_str()),
            ("service", service.service.name()),
        ]);
        let done = self.runner.run(self, &argv).await?;
        let mut summary = done.summary();
        if !done.success {
            let code = done
                .code
                .map_or_else(|| "a signal".to_owned(), |c| format!("exit status {c}"));
            summary = if summary.is_empty() {
                code
            } else {
                format!("{code}: {summary}")
            };
        }
        Ok(SmokeTestResult {
            passed: done.success,
            summary,
        })
    }
}
