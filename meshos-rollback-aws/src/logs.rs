//! [`CloudWatchLogs`]: a service's error lines from CloudWatch Logs, the playbook's
//! `aws logs tail /aws/ecs/meshos-api --since 30m`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_types::SdkConfig;
use jiff::Timestamp;
use meshos_rollback_core::clock::{SharedClock, SystemClock};
use meshos_rollback_core::model::ServiceRef;
use meshos_rollback_core::provider::{LogLine, LogSource, LogSummary};
use meshos_rollback_core::{Error, Result};

use crate::error::from_sdk;
use crate::sdk::prepare_client;

/// `FilterLogEvents` pages read per call at most; past it the summary is marked
/// `truncated` and its count is a lower bound.
pub const MAX_PAGES: usize = 20;

/// Builds a [`CloudWatchLogs`].
#[derive(Debug)]
pub struct CloudWatchLogsBuilder {
    clients: Vec<aws_sdk_cloudwatchlogs::Client>,
    groups: BTreeMap<ServiceRef, String>,
    clock: Option<SharedClock>,
    max_pages: usize,
}

impl CloudWatchLogsBuilder {
    /// A source for the region of `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(aws_sdk_cloudwatchlogs::Client::new(config))
    }

    /// A source using an existing CloudWatch Logs client.
    pub fn from_client(client: aws_sdk_cloudwatchlogs::Client) -> Self {
        CloudWatchLogsBuilder {
            clients: vec![client],
            groups: BTreeMap::new(),
            clock: None,
            max_pages: MAX_PAGES,
        }
    }

    /// Also reads the region of `config` (log groups are regional).
    pub fn with_region_config(self, config: &SdkConfig) -> Self {
        self.with_region_client(aws_sdk_cloudwatchlogs::Client::new(config))
    }

    /// Also reads the region of `client`.
    pub fn with_region_client(mut self, client: aws_sdk_cloudwatchlogs::Client) -> Self {
        self.clients.push(client);
        self
    }

    /// Names the log group of `service`, such as `/aws/ecs/meshos-api`.
    pub fn with_log_group(mut self, service: ServiceRef, group: impl Into<String>) -> Self {
        self.groups.insert(service, group.into());
        self
    }

    /// Sets the clock that says what "now" is, the end of every window (default: the
    /// system clock).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Sets how many pages one call reads at most (default [`MAX_PAGES`]).
    pub fn with_max_pages(mut self, pages: usize) -> Self {
        self.max_pages = pages;
        self
    }

    /// Checks the configuration (regions, HTTP clients, log group names).
    pub fn build(self) -> Result<CloudWatchLogs> {
        let mut clients = BTreeMap::new();
        for client in self.clients {
            let (client, region) =
                prepare_client!("CloudWatchLogs", client, aws_sdk_cloudwatchlogs);
            if clients.insert(region.clone(), client).is_some() {
                return Err(Error::invalid(
                    "cloudwatchlogs.region",
                    format!("CloudWatchLogs: region {region} is configured twice"),
                ));
            }
        }
        if self.max_pages == 0 {
            return Err(Error::invalid(
                "cloudwatchlogs.max_pages",
                "must be at least one",
            ));
        }
        for (service, group) in &self.groups {
            // CloudWatch Logs: 1–512 characters of [.-_/#A-Za-z0-9].
            let valid = !group.is_empty()
                && group.len() <= 512
                && group
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/#".contains(c));
            if !valid {
                return Err(Error::invalid(
                    "cloudwatchlogs.log_group",
                    format!("CloudWatchLogs: {group:?} (for {service}) is not a log group name"),
                ));
            }
            if !clients.contains_key(service.region.as_str()) {
                return Err(Error::invalid(
                    "cloudwatchlogs.log_group",
                    format!(
                        "CloudWatchLogs: {service} is in a region without a client; add one with `with_region_config`"
                    ),
                ));
            }
        }
        let shown = format!(
            "CloudWatchLogs({})",
            clients.keys().cloned().collect::<Vec<_>>().join(",")
        );
        Ok(CloudWatchLogs {
            clients,
            groups: self.groups,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            max_pages: self.max_pages,
            shown,
        })
    }
}

/// A [`LogSource`] over CloudWatch Logs.
///
/// [`LogSource::errors`] calls `FilterLogEvents` on the service's log group from
/// `since` to now with the pattern as the filter pattern (CloudWatch's full syntax;
/// the empty pattern sends none and matches every event), following `nextToken` for
/// at most [`MAX_PAGES`] pages (`with_max_pages`); a result cut there is marked
/// `truncated`. Samples are the oldest matching events. A missing log group is
/// `NotFound`; a service without a configured log group is `NotFound` too.
///
/// `Display` is `CloudWatchLogs(<regions>)`.
#[derive(Debug)]
pub struct CloudWatchLogs {
    clients: BTreeMap<String, aws_sdk_cloudwatchlogs::Client>,
    groups: BTreeMap<ServiceRef, String>,
    clock: SharedClock,
    max_pages: usize,
    shown: String,
}

impl fmt::Display for CloudWatchLogs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl CloudWatchLogs {
    /// Starts building a source for the region of `config`.
    pub fn builder(config: &SdkConfig) -> CloudWatchLogsBuilder {
        CloudWatchLogsBuilder::new(config)
    }
}

#[async_trait]
impl LogSource for CloudWatchLogs {
    async fn errors(
        &self,
        service: &ServiceRef,
        since: Timestamp,
        pattern: &str,
        sample: usize,
    ) -> Result<LogSummary> {
        let group = self
            .groups
            .get(service)
            .ok_or_else(|| Error::not_found(self, format!("the log group of {service}")))?;
        let client = self
            .clients
            .get(service.region.as_str())
            .ok_or_else(|| Error::not_found(self, format!("a client for {}", service.region)))?;
        let (start, end) = (since.as_millisecond(), self.clock.now().as_millisecond());
        let mut summary = LogSummary::default();
        if start > end {
            return Ok(summary);
        }
        let pattern = pattern.trim();
        let mut token: Option<String> = None;
        for page in 0..self.max_pages {
            let previous = token.take();
            let out = client
                .filter_log_events()
                .log_group_name(group)
                .start_time(start)
                .end_time(end)
                .set_filter_pattern((!pattern.is_empty()).then(|| pattern.to_owned()))
                .set_next_token(previous.clone())
                .send()
                .await
                .map_err(|e| from_sdk(self, format!("log events of {group}"), e))?;
            for event in out.events() {
                summary.count += 1;
                if sample > 0 {
                    let at = event
                        .timestamp()
                        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
                        .unwrap_or(since);
                    summary.samples.push(LogLine {
                        at,
                        message: event.message().unwrap_or_default().to_owned(),
                    });
                }
            }
            // Events of several streams may interleave: keep the oldest.
            summary.samples.sort_by_key(|l| l.at);
            summary.samples.truncate(sample);
            match out.next_token() {
                // A repeated token would loop: stop as if at the end.
                Some(t) if !t.is_empty() && Some(t) != previous.as_deref() => {
                    token = Some(t.to_owned());
                    if page + 1 == self.max_pages {
                        summary.truncated = true;
                    }
                }
                _ => break,
            }
        }
        Ok(summary)
    }
}
