//! [`CustomerReports`]: how many customers are complaining.

use std::fmt;

use async_trait::async_trait;
use jiff::Timestamp;

use super::display_mock;
use crate::Result;
use crate::model::Region;

/// Counts customer reports (`check-customer-issues --since "30 minutes ago"`).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait CustomerReports: fmt::Debug + fmt::Display + Send + Sync {
    /// Reports about `region` received at or after `since`.
    async fn count_since(&self, region: &Region, since: Timestamp) -> Result<u32>;
}

display_mock!(MockCustomerReports);
