//! A world several simulated providers share (`world: NAME`): one virtual clock that advances
//! them in lockstep, and the demands their groups share by name.
//!
//! Every [`SimulatedCloud`](crate::SimulatedCloud) belongs to a [`SimWorld`]; one built alone
//! has a private world of its own. A member is a provider's own world (catalog, prices, boot
//! delay, quota, billing, failure windows, groups) under the provider's name.
//!
//! Locks are always taken in one order: the shared state, then a member's world. A member's own
//! operations take only its world's lock and never call back into the shared world while they
//! hold it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use crate::clock::Clock;
use crate::demand::Demand;
use crate::error::{Error, Result};
use crate::world::World;

/// The clock and the shared demands of simulated providers that run together. Every provider
/// built by one [`SimulatedFactory`](crate::SimulatedFactory) with the same `world:` joins the
/// same `SimWorld`; library users make one with [`SimWorld::new`] and give it to
/// [`SimulatedCloudBuilder::world`](crate::SimulatedCloudBuilder::world).
///
/// As a [`Clock`], it advances every member in lockstep: one tick (the smallest tick among the
/// members) at a time when any group has a shared demand, each member straight to the target
/// otherwise (a member's world does not depend on how time is sliced). A member lives as long
/// as a handle to its provider does; a member whose handles are all dropped leaves the world,
/// with the shared demands it defined.
pub struct SimWorld {
    name: String,
    /// A world made for one provider built alone (messages then speak of the provider).
    private: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The world's start and current time, once a member has joined.
    times: Option<(DateTime<Utc>, DateTime<Utc>)>,
    members: BTreeMap<String, Member>,
    demands: BTreeMap<String, SharedDemand>,
    /// Shared demands named by a group but defined by no member, already warned about.
    warned: BTreeSet<String>,
    /// When the current split of the shared demands was made (a step's start or a failure
    /// window's edge); `None`: to be made.
    split_at: Option<DateTime<Utc>>,
}

struct Member {
    world: Weak<Mutex<World>>,
    /// Whether the provider follows the wall clock (`clock: wall`).
    wall: bool,
    /// Whether any of its groups has a shared demand.
    shares: bool,
    tick: TimeDelta,
}

struct SharedDemand {
    defined_by: String,
    demand: Demand,
    /// The value of the last step evaluated: (step index, value).
    cache: Option<(i64, Option<f64>)>,
}

/// What a provider brings when it joins a world.
pub(crate) struct Joining {
    /// The provider's name (the member it replaces, if any).
    pub member: String,
    pub start: DateTime<Utc>,
    pub wall: bool,
    /// The shared demands it defines, resolved.
    pub demands: Vec<(String, Demand)>,
}

impl fmt::Debug for SimWorld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("SimWorld")
            .field("name", &self.name)
            .field("times", &state.times)
            .field("members", &state.members.keys().collect::<Vec<_>>())
            .field("shared_demands", &state.demands.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn lock_world(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimWorld {
    /// An empty world named `name`; it starts when its first provider joins.
    pub fn new(name: impl Into<String>) -> Arc<SimWorld> {
        Arc::new(SimWorld {
            name: name.into(),
            private: false,
            state: Mutex::new(State::default()),
        })
    }

    /// The private world of a provider built alone.
    pub(crate) fn private(member: &str) -> Arc<SimWorld> {
        Arc::new(SimWorld {
            name: member.to_owned(),
            private: true,
            state: Mutex::new(State::default()),
        })
    }

    /// The world's name (`world:`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The world's clock: this world itself, so every member's clock is the same `Arc`.
    pub fn clock(self: &Arc<Self>) -> Arc<dyn Clock> {
        Arc::clone(self) as Arc<dyn Clock>
    }

    /// When the world started, once a provider has joined.
    pub fn start(&self) -> Option<DateTime<Utc>> {
        self.lock().times.map(|(start, _)| start)
    }

    /// The names of the providers in the world, sorted.
    pub fn members(&self) -> Vec<String> {
        let mut state = self.lock();
        state.prune();
        state.members.keys().cloned().collect()
    }

    /// The names of the shared demands the world's providers define, sorted.
    pub fn shared_demands(&self) -> Vec<String> {
        let mut state = self.lock();
        state.prune();
        state.demands.keys().cloned().collect()
    }

    /// The current virtual time ([`default_start`](crate::default_start) before any provider
    /// joined).
    pub fn now(&self) -> DateTime<Utc> {
        self.lock()
            .times
            .map_or_else(crate::default_start, |(_, now)| now)
    }

    /// Advances every member to `until` (nothing happens if it is not in the future).
    pub fn advance_to(&self, until: DateTime<Utc>) {
        let mut state = self.lock();
        self.advance_locked(&mut state, until);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How the world is named in messages.
    fn describe(&self) -> String {
        if self.private {
            format!("simulated provider {}", self.name)
        } else {
            format!("world {}", self.name)
        }
    }

    /// Adds a provider to the world, or replaces the member of the same name. `make` builds its
    /// world given the world's current time (the member starts there). Checks, before anything
    /// changes: the start equals the other members', they all follow the same clock, and no
    /// other member defines one of its shared demands.
    pub(crate) fn join(
        &self,
        joining: Joining,
        make: impl FnOnce(DateTime<Utc>) -> Result<World>,
    ) -> Result<Arc<Mutex<World>>> {
        let mut state = self.lock();
        state.prune();
        let member = joining.member.as_str();
        let others: Vec<(&String, &Member)> = state
            .members
            .iter()
            .filter(|(name, _)| name.as_str() != member)
            .collect();
        let now = match (others.first(), state.times) {
            (Some((other, m)), Some((start, now))) => {
                if joining.wall != m.wall {
                    let clock = |wall: bool| if wall { "wall" } else { "virtual" };
                    return Err(Error::config_field(
                        "clock",
                        format!(
                            "simulated provider {member} runs on the {} clock but provider {other} of {} on the {} clock; the providers of a world share one clock",
                            clock(joining.wall),
                            self.describe(),
                            clock(m.wall)
                        ),
                    ));
                }
                if joining.start != start {
                    return Err(Error::config_field(
                        "start",
                        format!(
                            "simulated provider {member} starts at {} but provider {other} of {} starts at {}; the providers of a world share one clock, so give them the same `start` (a default start comes from the first group's trace, else 2024-01-01T00:00:00Z)",
                            crate::outage::stamp(joining.start),
                            self.describe(),
                            crate::outage::stamp(start)
                        ),
                    ));
                }
                now
            }
            // Alone in the world (or replacing its only member): the world starts afresh.
            _ => joining.start,
        };
        for (name, _) in &joining.demands {
            if let Some(existing) = state.demands.get(name)
                && existing.defined_by != member
                && state.members.contains_key(&existing.defined_by)
            {
                return Err(Error::config_field(
                    format!("shared_demands.{name}"),
                    format!(
                        "shared demand {name} is already defined by simulated provider {} of {}; define it in one provider of the world only",
                        existing.defined_by,
                        self.describe()
                    ),
                ));
            }
        }
        let tick_and_shares = |w: &World| (w.tick(), w.shared_groups().next().is_some());
        let world = make(now)?;
        let (tick, shares) = tick_and_shares(&world);
        let world = Arc::new(Mutex::new(world));
        let fresh = others.is_empty();
        if fresh {
            state.times = Some((joining.start, now));
            state.warned.clear();
        }
        state.split_at = None;
        state.members.insert(
            member.to_owned(),
            Member {
                world: Arc::downgrade(&world),
                wall: joining.wall,
                shares,
                tick,
            },
        );
        state.demands.retain(|_, d| d.defined_by != member);
        for (name, demand) in joining.demands {
            state.demands.insert(
                name,
                SharedDemand {
                    defined_by: member.to_owned(),
                    demand,
                    cache: None,
                },
            );
        }
        Ok(world)
    }

    /// Makes sure every shared group has its share for the current time (for a reading
    /// between steps).
    pub(crate) fn refresh_shares(&self) {
        let mut state = self.lock();
        let members = state.live();
        let Some((start, now)) = state.times else {
            return;
        };
        if !state.members.values().any(|m| m.shares) {
            return;
        }
        let step = state.step();
        // A reading must not change the world: the split is made again when time moves on.
        self.split(&mut state, &members, start, now, step, false);
    }

    /// Splits the shared demands for the time `now` when it starts a new segment: a step, or
    /// the part of a step after a failure window's edge. Within a segment the split made at its
    /// start holds, so the result does not depend on how a caller slices time. `commit`: the
    /// split is the segment's (else it is made again at the next call).
    fn split(
        &self,
        state: &mut State,
        members: &[(String, Arc<Mutex<World>>)],
        start: DateTime<Utc>,
        now: DateTime<Utc>,
        step: TimeDelta,
        commit: bool,
    ) {
        let index = step_index(start, now, step);
        let tick_start = step_start(start, index, step);
        let mut segment = tick_start;
        for (_, world) in members {
            if let Some(edge) = lock_world(world).last_window_edge(now)
                && edge > segment
            {
                segment = edge;
            }
        }
        if state.split_at != Some(segment) {
            self.set_shares(state, members, index, tick_start);
            if commit {
                state.split_at = Some(segment);
            }
        }
    }

    fn advance_locked(&self, state: &mut State, until: DateTime<Utc>) {
        let members = state.live();
        let Some((start, mut now)) = state.times else {
            return;
        };
        if until <= now {
            return;
        }
        if !state.members.values().any(|m| m.shares) {
            for (_, world) in &members {
                lock_world(world).advance_to(until);
            }
            state.times = Some((start, until));
            return;
        }
        let step = state.step();
        while now < until {
            let index = step_index(start, now, step);
            let mut next = until.min(step_start(start, index + 1, step));
            for (_, world) in &members {
                if let Some(edge) = lock_world(world).next_window_edge(now) {
                    next = next.min(edge);
                }
            }
            if next <= now {
                // Cannot happen (the next step starts after now); never loop forever.
                next = until;
            }
            self.split(state, &members, start, now, step, true);
            for (_, world) in &members {
                lock_world(world).advance_to(next);
            }
            now = next;
        }
        state.times = Some((start, until));
    }

    /// Splits every shared demand among the groups that share it, by serving capacity now, for
    /// the step `index` starting at `at`.
    fn set_shares(
        &self,
        state: &mut State,
        members: &[(String, Arc<Mutex<World>>)],
        index: i64,
        at: DateTime<Utc>,
    ) {
        // (demand name) -> [(member, group, serving capacity)], in member then group order.
        let mut sharing: BTreeMap<String, Vec<(usize, usize, f64)>> = BTreeMap::new();
        for (m, (_, world)) in members.iter().enumerate() {
            let w = lock_world(world);
            for (gi, name) in w.shared_groups() {
                sharing
                    .entry(name.to_owned())
                    .or_default()
                    .push((m, gi, w.serving_capacity(gi)));
            }
        }
        let mut inputs: Vec<Vec<(usize, Option<f64>)>> = vec![Vec::new(); members.len()];
        for (name, groups) in &sharing {
            let value = match state.demands.get_mut(name) {
                Some(shared) => shared.value(index, at),
                None => {
                    if state.warned.insert(name.clone()) {
                        let users: Vec<String> = groups
                            .iter()
                            .filter_map(|&(m, gi, _)| {
                                let w = lock_world(&members[m].1);
                                w.groups
                                    .get(gi)
                                    .map(|g| format!("{}/{}", members[m].0, g.id))
                            })
                            .collect();
                        tracing::warn!(
                            world = %self.name,
                            shared_demand = %name,
                            groups = %users.join(", "),
                            "shared demand {name} is named by {} but defined by no simulated provider of {} (`shared_demands:`); these groups get no demand (a gap: no metric samples)",
                            users.join(", "),
                            self.describe()
                        );
                    }
                    None
                }
            };
            let total: f64 = groups.iter().map(|g| g.2).sum();
            let n = groups.len() as f64;
            for &(m, gi, capacity) in groups {
                let share = value.map(|d| {
                    if total > 0.0 {
                        d * capacity / total
                    } else {
                        d / n
                    }
                });
                inputs[m].push((gi, share));
            }
        }
        for ((_, world), inputs) in members.iter().zip(inputs) {
            if inputs.is_empty() {
                continue;
            }
            let mut w = lock_world(world);
            for (gi, share) in inputs {
                w.set_shared_input(gi, share);
            }
        }
    }
}

impl State {
    /// Drops the members whose providers are gone, and the shared demands they defined.
    fn prune(&mut self) {
        self.members.retain(|_, m| m.world.strong_count() > 0);
        let members = &self.members;
        self.demands
            .retain(|_, d| members.contains_key(&d.defined_by));
    }

    /// The live members, in name order.
    fn live(&mut self) -> Vec<(String, Arc<Mutex<World>>)> {
        self.prune();
        self.members
            .iter()
            .filter_map(|(name, m)| m.world.upgrade().map(|w| (name.clone(), w)))
            .collect()
    }

    /// The lockstep step: the smallest tick among the members.
    fn step(&self) -> TimeDelta {
        self.members
            .values()
            .map(|m| m.tick)
            .min()
            .unwrap_or(TimeDelta::seconds(10))
            .max(TimeDelta::milliseconds(1))
    }
}

impl SharedDemand {
    fn value(&mut self, index: i64, at: DateTime<Utc>) -> Option<f64> {
        match self.cache {
            Some((i, v)) if i == index => v,
            _ => {
                let v = self.demand.at(at, index);
                self.cache = Some((index, v));
                v
            }
        }
    }
}

fn step_index(start: DateTime<Utc>, t: DateTime<Utc>, step: TimeDelta) -> i64 {
    let step = step.num_nanoseconds().unwrap_or(i64::MAX).max(1);
    (t - start)
        .num_nanoseconds()
        .map_or(i64::MAX / 2, |off| off.div_euclid(step))
}

fn step_start(start: DateTime<Utc>, index: i64, step: TimeDelta) -> DateTime<Utc> {
    let step = step.num_nanoseconds().unwrap_or(i64::MAX);
    start
        .checked_add_signed(TimeDelta::nanoseconds(step.saturating_mul(index)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[async_trait]
impl Clock for SimWorld {
    fn now(&self) -> DateTime<Utc> {
        SimWorld::now(self)
    }

    async fn sleep_until(&self, until: DateTime<Utc>) {
        self.advance_to(until);
    }
}
