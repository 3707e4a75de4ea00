//! Time, injected. The control loop never reads the system clock directly: it asks a [`Clock`],
//! which is the wall clock in production and the simulated cloud's virtual clock in simulation,
//! where sleeping advances the simulated world instead of waiting.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A source of the current time that can also wait.
#[async_trait]
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// Returns at or after `until`. A virtual clock advances its world to `until` and returns at
    /// once.
    async fn sleep_until(&self, until: DateTime<Utc>);
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, until: DateTime<Utc>) {
        let wait = (until - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
    }
}
