//! What the engine remembers about a group between evaluations: recent recommendations (for
//! stabilisation windows) and recent scaling events (for rate limits and cooldowns).
//!
//! [`decide`](super::decide) only reads a [`DecisionMemory`]; what an evaluation adds to it comes
//! back as a [`MemoryUpdate`], a plain value that [`DecisionMemory::apply`] applies. The caller
//! decides what happens to it: apply it at once (the control loop), persist it, replay it, or
//! hand it to another replica, which applying the same updates in the same order brings to the
//! same memory.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{Decision, Direction};

/// Per-group memory, owned by the caller of [`super::decide`]. It serialises, so it can be
/// persisted as it is, or rebuilt from the [`MemoryUpdate`]s and applied decisions that made it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionMemory {
    /// Raw recommendations per policy index: (time, instances).
    pub(crate) recommendations: Vec<VecDeque<(DateTime<Utc>, u32)>>,
    /// Applied changes: (time, signed change in desired capacity).
    pub(crate) scale_events: VecDeque<(DateTime<Utc>, i64)>,
    /// When the last scale-out was applied.
    pub(crate) last_scale_out: Option<DateTime<Utc>>,
    /// When the last change of either direction was applied.
    pub(crate) last_scale: Option<DateTime<Utc>>,
    /// Ready instances at each evaluation: (time, ready), to read a lagged sample against the
    /// capacity that produced it.
    pub(crate) ready_history: VecDeque<(DateTime<Utc>, u32)>,
}

/// The change one evaluation makes to a group's [`DecisionMemory`]: returned by
/// [`decide`](super::decide) with its decision, applied with [`DecisionMemory::apply`].
///
/// Applying the updates of a sequence of evaluations, in order, together with
/// [`DecisionMemory::record_applied`] for the decisions that were carried out, gives the memory
/// the engine needs for the next evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemoryUpdate {
    /// The evaluation's time.
    pub at: DateTime<Utc>,
    /// Ready instances seen at `at`.
    pub ready: u32,
    /// How many policies the group has: memory shaped for another number (the policy file
    /// changed) starts afresh.
    pub policies: usize,
    /// Raw recommendations made at `at`, as (policy index, instances), for the stabilisation
    /// windows of later evaluations.
    pub recommendations: Vec<(usize, u32)>,
    /// History older than this is no longer needed and is dropped. `None` when the evaluation
    /// stopped before looking at its policies.
    pub forget_before: Option<DateTime<Utc>>,
}

impl MemoryUpdate {
    /// An update that records only what every evaluation records: the time and the ready count.
    pub(crate) fn new(at: DateTime<Utc>, ready: u32, policies: usize) -> Self {
        MemoryUpdate {
            at,
            ready,
            policies,
            recommendations: Vec::new(),
            forget_before: None,
        }
    }
}

impl DecisionMemory {
    /// Empty memory for a group seen for the first time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies what one evaluation of [`decide`](super::decide) returned besides its decision.
    pub fn apply(&mut self, update: &MemoryUpdate) {
        self.note_ready(update.at, update.ready);
        if self.recommendations.len() != update.policies {
            self.recommendations = vec![VecDeque::new(); update.policies];
        }
        for &(index, instances) in &update.recommendations {
            let Some(history) = self.recommendations.get_mut(index) else {
                continue;
            };
            // A second evaluation at the same instant replaces the first rather than counting
            // twice.
            match history.back_mut() {
                Some(last) if last.0 == update.at => last.1 = instances,
                _ => history.push_back((update.at, instances)),
            }
        }
        if let Some(cutoff) = update.forget_before {
            self.forget_before(cutoff);
        }
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
        // Every event is looked at, not only the newest ones: after the clock was stepped
        // back, events recorded before the step carry later times than those after it, and
        // they still count (conservatively) against the window.
        for &(at, change) in &self.scale_events {
            if at <= cutoff {
                continue;
            }
            if change > 0 {
                added += change;
            } else {
                removed -= change;
            }
        }
        (added, removed)
    }

    /// Raw recommendations of policy `index`, for a group of `policies` policies (none when the
    /// memory was shaped for another number of policies).
    pub(crate) fn recommendations_of(
        &self,
        policies: usize,
        index: usize,
    ) -> impl Iterator<Item = (DateTime<Utc>, u32)> + '_ {
        let history = if self.recommendations.len() == policies {
            self.recommendations.get(index)
        } else {
            None
        };
        history.into_iter().flatten().copied()
    }

    /// Remembers how many instances were ready at `now`.
    fn note_ready(&mut self, now: DateTime<Utc>, ready: u32) {
        match self.ready_history.back_mut() {
            Some(last) if last.0 == now => last.1 = ready,
            _ => self.ready_history.push_back((now, ready)),
        }
    }

    /// Ready instances at `at`: the last observation at or before it, if any, counting the
    /// observation `now` (`ready_now` instances) that the current evaluation is about to note.
    pub(crate) fn ready_at(
        &self,
        at: DateTime<Utc>,
        (now, ready_now): (DateTime<Utc>, u32),
    ) -> Option<u32> {
        if at >= now {
            return Some(ready_now);
        }
        self.ready_history
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .map(|(_, ready)| *ready)
    }

    /// Drops history older than `cutoff`.
    fn forget_before(&mut self, cutoff: DateTime<Utc>) {
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
