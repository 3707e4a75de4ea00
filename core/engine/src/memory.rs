//! What the engine remembers about a group between evaluations: recent recommendations (for
//! stabilisation windows) and recent scaling events (for rate limits and cooldowns).

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};
use croner::Cron;

use super::{Decision, Direction};

/// Per-group memory, owned by the caller of [`super::decide`].
#[derive(Debug, Clone, Default)]
pub struct DecisionMemory {
    /// Raw recommendations per policy index: (time, instances).
    pub(crate) recommendations: Vec<VecDeque<(DateTime<Utc>, u32)>>,
    /// Applied changes: (time, signed change in desired capacity).
    pub(crate) scale_events: VecDeque<(DateTime<Utc>, i64)>,
    /// When the last scale-out was applied.
    pub(crate) last_scale_out: Option<DateTime<Utc>>,
    /// When the last change of either direction was applied.
    pub(crate) last_scale: Option<DateTime<Utc>>,
    /// Parsed cron expressions per policy index.
    pub(crate) crons: Vec<Option<Cron>>,
    /// Ready instances at each evaluation: (time, ready), to read a lagged sample against the
    /// capacity that produced it.
    pub(crate) ready_history: VecDeque<(DateTime<Utc>, u32)>,
}

impl DecisionMemory {
    /// Empty memory for a group seen for the first time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `decision` was applied by the provider, so cooldowns and rate limits count
    /// it. A decision that was only planned, or failed, is not recorded.
    pub fn record_applied(&mut self, decision: &Decision) {
        if decision.direction == Direction::Hold || decision.desired == decision.current {
            return;
        }
        let change = i64::from(decision.desired) - i64::from(decision.current);
        self.scale_events.push_back((decision.at, change));
        self.last_scale = Some(decision.at);
        if change > 0 {
            self.last_scale_out = Some(decision.at);
        }
    }

    /// Net instances added (positive) and removed (negative) in `(now − period, now]`.
    pub(crate) fn changes_since(&self, now: DateTime<Utc>, period: TimeDelta) -> (i64, i64) {
        let cutoff = now - period;
        let mut added = 0;
        let mut removed = 0;
        for &(at, change) in self.scale_events.iter().rev() {
            if at <= cutoff {
                break;
            }
            if change > 0 {
                added += change;
            } else {
                removed -= change;
            }
        }
        (added, removed)
    }

    /// Remembers how many instances were ready at `now`.
    pub(crate) fn note_ready(&mut self, now: DateTime<Utc>, ready: u32) {
        match self.ready_history.back_mut() {
            Some(last) if last.0 == now => last.1 = ready,
            _ => self.ready_history.push_back((now, ready)),
        }
    }

    /// Ready instances at `at`: the last observation at or before it, if any.
    pub(crate) fn ready_at(&self, at: DateTime<Utc>) -> Option<u32> {
        self.ready_history
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .map(|(_, ready)| *ready)
    }

    /// Drops history older than `keep`.
    pub(crate) fn prune(&mut self, now: DateTime<Utc>, keep: TimeDelta) {
        let cutoff = now - keep;
        for history in &mut self.recommendations {
            while history.front().is_some_and(|(at, _)| *at < cutoff) {
                history.pop_front();
            }
        }
        while self
            .scale_events
            .front()
            .is_some_and(|(at, _)| *at < cutoff)
        {
            self.scale_events.pop_front();
        }
        // Keep one entry at or before the cutoff so lookups inside the window still resolve.
        while self.ready_history.len() > 1 && self.ready_history[1].0 <= cutoff {
            self.ready_history.pop_front();
        }
    }
}
