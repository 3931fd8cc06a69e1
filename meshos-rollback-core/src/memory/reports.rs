//! In-memory [`CustomerReports`].

use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use jiff::Timestamp;

use crate::Result;
use crate::model::Region;
use crate::provider::CustomerReports;

/// Customer reports in memory, each with a region and a time.
#[derive(Debug, Default)]
pub struct InMemoryCustomerReports {
    reports: Mutex<Vec<(Region, Timestamp)>>,
}

impl InMemoryCustomerReports {
    /// No reports yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `count` reports about `region` at `at`.
    pub fn report(&self, region: &Region, at: Timestamp, count: u32) {
        let mut r = self.reports.lock().expect("lock");
        r.extend((0..count).map(|_| (region.clone(), at)));
    }
}

impl fmt::Display for InMemoryCustomerReports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemoryCustomerReports")
    }
}

#[async_trait]
impl CustomerReports for InMemoryCustomerReports {
    async fn count_since(&self, region: &Region, since: Timestamp) -> Result<u32> {
        let r = self.reports.lock().expect("lock");
        let n = r
            .iter()
            .filter(|(reg, at)| reg == region && *at >= since)
            .count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}
