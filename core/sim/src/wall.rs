//! The simulated cloud on the wall clock (`simulated: { clock: wall }`): its world starts at the
//! moment it is built and, before every provider call, catches up with the wall clock, so
//! `hoist run` drives it in real time like a real cloud, under the same layers. This is what
//! live reload, leader election and graceful shutdown are exercised against when no cloud is at
//! hand.

use std::sync::Arc;

use chrono::Utc;
use hoist_api::Result;
use hoist_api::layers::{BoxFuture, Call, Intercept, Layer, Layered};
use hoist_api::provider::{BillingProvider, InstanceCatalog, MetricsSource, ScalingProvider};

use crate::SimulatedCloud;

/// Advances a simulated cloud to the wall clock's time before each call it wraps.
#[derive(Debug, Clone)]
pub struct FollowWallClock {
    cloud: SimulatedCloud,
}

impl FollowWallClock {
    /// Makes `cloud` follow the wall clock.
    pub fn new(cloud: SimulatedCloud) -> Self {
        FollowWallClock { cloud }
    }
}

impl Intercept for FollowWallClock {
    fn label(&self) -> &'static str {
        "WallClock"
    }

    fn around<'a, T, F>(&'a self, _call: Call<'a>, mut attempt: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> BoxFuture<'a, Result<T>> + Send + 'a,
    {
        let now = Utc::now();
        if now > self.cloud.now() {
            self.cloud.advance_to(now);
        }
        attempt()
    }
}

impl Layer for FollowWallClock {
    fn layer_scaling(&self, inner: Arc<dyn ScalingProvider>) -> Arc<dyn ScalingProvider> {
        Arc::new(Layered::scaling(self.clone(), inner))
    }

    fn layer_catalog(
        &self,
        provider: &str,
        inner: Arc<dyn InstanceCatalog>,
    ) -> Arc<dyn InstanceCatalog> {
        Arc::new(Layered::catalog(self.clone(), provider, inner))
    }

    fn layer_billing(
        &self,
        provider: &str,
        inner: Arc<dyn BillingProvider>,
    ) -> Arc<dyn BillingProvider> {
        Arc::new(Layered::billing(self.clone(), provider, inner))
    }

    fn layer_metrics(
        &self,
        provider: &str,
        inner: Arc<dyn MetricsSource>,
    ) -> Arc<dyn MetricsSource> {
        Arc::new(Layered::metrics(self.clone(), provider, inner))
    }
}
