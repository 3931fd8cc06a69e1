//! An in-memory [`LogSource`]: lines recorded per service with their timestamps.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use jiff::Timestamp;

use crate::clock::SharedClock;
use crate::model::ServiceRef;
use crate::provider::{LogLine, LogSource, LogSummary, matches_terms};
use crate::{Error, Result};

/// Log lines in memory, one log per service.
///
/// Patterns are the subset every [`LogSource`] supports (see
/// [`matches_terms`]): whitespace-separated terms, each a case-sensitive substring,
/// all required; a double-quoted phrase is one term; the empty pattern matches every
/// line. CloudWatch's other syntax (`?term` alternatives, `-term` exclusions, JSON
/// and space-delimited selectors) is not modelled: such characters are matched
/// literally.
///
/// A service whose log was never created or written is `NotFound`, as a missing log
/// group is in CloudWatch Logs. Lines later than the clock's now are not read.
#[derive(Debug)]
pub struct InMemoryLogs {
    clock: SharedClock,
    logs: Mutex<HashMap<ServiceRef, Vec<LogLine>>>,
}

impl InMemoryLogs {
    /// No logs yet.
    pub fn new(clock: SharedClock) -> Self {
        InMemoryLogs {
            clock,
            logs: Mutex::new(HashMap::new()),
        }
    }

    /// Creates an empty log for `service` (a log group with no events yet).
    pub fn create_log(&self, service: &ServiceRef) {
        self.lock().entry(service.clone()).or_default();
    }

    /// Writes a line to `service`'s log, creating the log if needed.
    pub fn record(&self, service: &ServiceRef, at: Timestamp, message: impl Into<String>) {
        let mut logs = self.lock();
        let lines = logs.entry(service.clone()).or_default();
        lines.push(LogLine {
            at,
            message: message.into(),
        });
        lines.sort_by_key(|l| l.at);
    }

    /// Writes a line at the clock's now.
    pub fn record_now(&self, service: &ServiceRef, message: impl Into<String>) {
        let now = self.clock.now();
        self.record(service, now, message);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ServiceRef, Vec<LogLine>>> {
        self.logs.lock().expect("lock")
    }
}

impl fmt::Display for InMemoryLogs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemoryLogs")
    }
}

#[async_trait]
impl LogSource for InMemoryLogs {
    async fn errors(
        &self,
        service: &ServiceRef,
        since: Timestamp,
        pattern: &str,
        sample: usize,
    ) -> Result<LogSummary> {
        let now = self.clock.now();
        let logs = self.lock();
        let lines = logs
            .get(service)
            .ok_or_else(|| Error::not_found(self, format!("log of {service}")))?;
        let mut summary = LogSummary::default();
        for line in lines
            .iter()
            .filter(|l| l.at >= since && l.at <= now && matches_terms(pattern, &l.message))
        {
            summary.count += 1;
            if summary.samples.len() < sample {
                summary.samples.push(line.clone());
            }
        }
        Ok(summary)
    }
}
