//! Wall-clock time that tests can control.
//!
//! Timelines and reports need real times ("10:15 UTC"), while tests run on tokio's
//! paused clock. [`TokioClock`] gives both: wall-clock time that advances with tokio's
//! clock, so a paused test sees 15 virtual minutes pass as 15 minutes of timestamps.

use std::fmt;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

/// A source of the current time.
pub trait Clock: fmt::Debug + Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Wall-clock time that follows tokio's clock from an anchor. Under
/// `tokio::time::pause()` it advances only as virtual time does.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    anchor: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `anchor` now and advances with tokio's clock.
    pub fn starting_at(anchor: Timestamp) -> Self {
        TokioClock {
            anchor,
            start: tokio::time::Instant::now(),
        }
    }

    /// A clock that reads the system time now and advances with tokio's clock.
    pub fn from_system() -> Self {
        Self::starting_at(Timestamp::now())
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.start);
        let elapsed = SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::MAX);
        self.anchor
            .saturating_add(elapsed)
            .unwrap_or(Timestamp::MAX)
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let anchor: Timestamp = "2025-10-30T10:00:00Z".parse().unwrap();
        let clock = TokioClock::starting_at(anchor);
        assert_eq!(clock.now(), anchor);
        tokio::time::sleep(Duration::from_secs(15 * 60)).await;
        assert_eq!(clock.now().to_string(), "2025-10-30T10:15:00Z");
    }
}
