//! Failure windows of a simulated provider (`outages:`): an outage (the API is down and the
//! instances stop serving) or a stockout (no new capacity), for a while after the world's start.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::GroupId;

/// What a failure window does (`kind:` of an entry of `outages:`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutageKind {
    /// The provider's API is down and its instances stop serving: every scaling and metrics call
    /// for an affected group fails with [`ErrorKind::Transient`](hoist_api::ErrorKind) (HTTP 503),
    /// and the group's serving capacity is zero (its instances stay and are billed). Catalog and
    /// billing calls keep working. No instance is launched (no spot replacement, no refresh
    /// batch) until the window ends.
    #[default]
    Outage,
    /// No new capacity: raising desired capacity above the group's active instances fails with
    /// [`ErrorKind::CapacityUnavailable`](hoist_api::ErrorKind), lowering it works, and spot
    /// replacements and refresh batches wait for the window's end. Existing instances serve.
    Stockout,
}

impl OutageKind {
    /// `outage` or `stockout`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutageKind::Outage => "outage",
            OutageKind::Stockout => "stockout",
        }
    }
}

/// One failure window of a simulated provider, relative to the world's start. Build it with
/// [`SimOutage::outage`] or [`SimOutage::stockout`] and give it to
/// [`SimulatedCloudBuilder::outage`](crate::SimulatedCloudBuilder::outage).
#[derive(Debug, Clone, PartialEq)]
pub struct SimOutage {
    /// When the window opens, after the world's start.
    pub after: Duration,
    /// How long it lasts; more than zero.
    pub duration: Duration,
    /// What fails.
    pub kind: OutageKind,
    /// The groups it affects; empty: every group of the provider.
    pub groups: Vec<GroupId>,
}

impl SimOutage {
    /// An outage of every group from `after` the start for `duration`.
    pub fn outage(after: Duration, duration: Duration) -> Self {
        SimOutage {
            after,
            duration,
            kind: OutageKind::Outage,
            groups: Vec::new(),
        }
    }

    /// A stockout of every group from `after` the start for `duration`.
    pub fn stockout(after: Duration, duration: Duration) -> Self {
        SimOutage {
            kind: OutageKind::Stockout,
            ..SimOutage::outage(after, duration)
        }
    }

    /// The same window limited to `groups`.
    pub fn for_groups<I, G>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = G>,
        G: Into<GroupId>,
    {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }
}

/// A window resolved against a world: absolute times and group indices.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub kind: OutageKind,
    /// Indices of the affected groups; `None`: all.
    pub groups: Option<Vec<usize>>,
}

impl Window {
    /// Whether the window covers group `gi` at `t`.
    pub fn covers(&self, gi: usize, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.until && self.groups.as_ref().is_none_or(|g| g.contains(&gi))
    }

    /// Whether the window ever affects group `gi`.
    pub fn affects(&self, gi: usize) -> bool {
        self.groups.as_ref().is_none_or(|g| g.contains(&gi))
    }
}

/// A time as error messages show it: `2026-01-05T08:00:00Z`.
pub(crate) fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
