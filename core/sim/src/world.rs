//! The simulated world: groups, instances, the event queue, demand integration, metric periods
//! and billing records. Everything here runs under one lock held by [`super::SimulatedCloud`].
//!
//! Time advances in sub-steps that end at the next tick boundary, the next instance event
//! (boot finished, spot interruption) or the target time, whichever comes first. Demand is held
//! constant over a tick; capacity is constant between events; within a sub-step the backlog
//! changes linearly and is integrated exactly, so results do not depend on how the caller
//! slices time (sleeping 1 h at once or 60 × 1 min gives the same world).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use chrono::{DateTime, Datelike, TimeDelta, TimeZone, Utc};

use super::demand::Demand;
use super::outage::{OutageKind, Window, stamp};
use super::queueing::{LATENCY_CAP_SECONDS, latency_seconds};
use super::rng::SimRng;
use super::{Billing, Quota};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    Activity, CapacityType, Instance, InstanceClass, InstanceState, MetricKind, Money, Sample,
    ScalingGroup, TimeRange,
};
use crate::provider::{CostEntry, CostGranularity, CostQuery, DisruptionBudget};

/// Metric slots in a period sample.
pub(crate) const UTILIZATION: usize = 0;
pub(crate) const REQUEST_RATE: usize = 1;
pub(crate) const QUEUE_DEPTH: usize = 2;
pub(crate) const LATENCY_P95: usize = 3;
pub(crate) const LATENCY_P99: usize = 4;
pub(crate) const ERROR_RATE: usize = 5;
pub(crate) const READY_CAPACITY: usize = 6;
pub(crate) const READY_INSTANCES: usize = 7;
const SLOTS: usize = 8;

/// The custom metric names the simulated cloud answers besides the built-in kinds.
pub(crate) const CUSTOM_READY_CAPACITY: &str = "ready_capacity";
/// See [`CUSTOM_READY_CAPACITY`].
pub(crate) const CUSTOM_READY_INSTANCES: &str = "ready_instances";

/// The slot of `kind`, if the simulated cloud produces it.
pub(crate) fn metric_slot(kind: &MetricKind) -> Option<usize> {
    Some(match kind {
        MetricKind::Utilization => UTILIZATION,
        MetricKind::RequestRate => REQUEST_RATE,
        MetricKind::QueueDepth => QUEUE_DEPTH,
        MetricKind::LatencyP95 => LATENCY_P95,
        MetricKind::LatencyP99 => LATENCY_P99,
        MetricKind::ErrorRate => ERROR_RATE,
        MetricKind::Custom(name) if name == CUSTOM_READY_CAPACITY => READY_CAPACITY,
        MetricKind::Custom(name) if name == CUSTOM_READY_INSTANCES => READY_INSTANCES,
        MetricKind::Custom(_) => return None,
    })
}

/// Fixed settings of a world.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub boot_delay: TimeDelta,
    pub metric_lag: TimeDelta,
    pub metric_period: TimeDelta,
    pub tick: TimeDelta,
    pub billing: Billing,
    pub quota: Quota,
    pub spot_interruptions_per_hour: f64,
    /// Share of desired capacity replaced per batch by an instance-class change.
    pub refresh_batch_fraction: f64,
}

/// One instance, alive or gone (kept for billing).
#[derive(Debug, Clone)]
pub(crate) struct InstanceRec {
    pub id: String,
    pub group: usize,
    pub class: usize,
    pub zone: String,
    /// Index of `zone` in the group's zones.
    zone_index: usize,
    pub capacity_type: CapacityType,
    pub launched_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// When it was chosen for scale-in and began to drain (its group has a drain).
    pub drain_started_at: Option<DateTime<Utc>>,
    pub running: bool,
    /// When it finished booting.
    pub ready_at: Option<DateTime<Utc>>,
    pub protected: bool,
    pub interrupted: bool,
    pub price_per_hour: f64,
    pub work_per_second: f64,
    pub vcpus: f64,
}

impl InstanceRec {
    pub fn state(&self) -> InstanceState {
        if self.ended_at.is_some() {
            InstanceState::Terminated
        } else if self.drain_started_at.is_some() {
            InstanceState::Terminating
        } else if self.running {
            InstanceState::Running
        } else {
            InstanceState::Pending
        }
    }
}

/// A group as resolved at build time.
#[derive(Debug, Clone)]
pub(crate) struct GroupInit {
    pub id: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub class: usize,
    pub zones: Vec<String>,
    pub capacity_type: CapacityType,
    pub work_per_instance: f64,
    pub service_time_seconds: f64,
    pub demand: Demand,
    pub demand_label: String,
    /// How long an instance chosen for scale-in drains; zero: terminated at once.
    pub drain: TimeDelta,
}

#[derive(Debug, Clone, Copy, Default)]
struct PeriodAcc {
    data_seconds: f64,
    util: f64,
    demand: f64,
    backlog: f64,
    p95: f64,
    p99: f64,
    latency_weight: f64,
    errors: f64,
    capacity: f64,
    ready: f64,
}

/// One metric period's sample: `at` is the period's end; it describes `[at - period, at)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeriodSample {
    pub at: DateTime<Utc>,
    pub values: [f64; SLOTS],
}

#[derive(Debug, Clone)]
struct Refresh {
    activity: usize,
    total: u32,
    replaced: u32,
    /// The batch being launched.
    batch: Vec<usize>,
    /// Old instances of the batch draining (the group has a drain): the batch ends when they
    /// are gone.
    retiring: Vec<usize>,
    /// Whether the batch runs on top of desired capacity (launch, then terminate old ones)
    /// rather than in place of old instances already terminated.
    surge: bool,
    /// The disruption budget asked for; `None`: batches of `refresh_batch_fraction`.
    budget: Option<DisruptionBudget>,
    /// The batch under way, in [`GroupState::replacements`].
    record: Option<usize>,
    /// Waiting for the budget's window to allow the next batch, until then.
    waiting_until: Option<DateTime<Utc>>,
}

/// One batch of an instance-class replacement: launched together, old instances retired
/// together when the batch was ready.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReplacementBatch {
    pub started_at: DateTime<Utc>,
    /// Whether the batch ran on top of desired capacity (surge) or in place.
    pub surge: bool,
    pub launched: Vec<usize>,
    pub retired: Vec<usize>,
    /// When the last old instance of the batch was gone and the new ones were ready.
    pub finished_at: Option<DateTime<Utc>>,
    pub budget: Option<DisruptionBudget>,
}

#[derive(Debug, Clone)]
struct ActivityRec {
    activity: Activity,
    /// Instances launched: settled once running or gone.
    launched: Vec<usize>,
    /// Instances draining: settled once terminated.
    drained: Vec<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct GroupState {
    pub id: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub class: usize,
    /// vCPUs of the class `work_per_instance` refers to.
    base_vcpus: f64,
    pub zones: Vec<String>,
    pub capacity_type: CapacityType,
    pub work_per_instance: f64,
    service_time_seconds: f64,
    demand: Demand,
    demand_label: String,
    demand_cache: Option<(i64, Option<f64>)>,
    /// This group's share of its shared demand (a [`Demand::Shared`]), set by the world before
    /// every step; `None`: a gap.
    shared_input: Option<f64>,
    /// Indices of active (pending or running) instances, in launch order.
    pub active: Vec<usize>,
    /// How long an instance chosen for scale-in drains; zero: terminated at once.
    drain: TimeDelta,
    /// Indices of draining instances (chosen for scale-in, not yet terminated), in the order
    /// their drains began.
    draining: Vec<usize>,
    ready_capacity: f64,
    ready_count: u32,
    backlog: f64,
    acc: PeriodAcc,
    pub samples: Vec<PeriodSample>,
    activities: Vec<ActivityRec>,
    refresh: Option<Refresh>,
    /// Every replacement batch, oldest first (a disruption budget's window counts over them).
    pub replacements: Vec<ReplacementBatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EventKind {
    Ready,
    Interrupt,
    /// The end of a drain: the instance is terminated.
    DrainEnd,
}

type Event = Reverse<(DateTime<Utc>, u64, EventKind, usize)>;

/// The whole simulated world.
#[derive(Debug)]
pub(crate) struct World {
    pub now: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub settings: Settings,
    pub catalog: Vec<InstanceClass>,
    pub groups: Vec<GroupState>,
    pub instances: Vec<InstanceRec>,
    events: BinaryHeap<Event>,
    event_seq: u64,
    rng: SimRng,
    next_activity: u64,
    /// Failure windows (`outages:`), in the order given.
    windows: Vec<Window>,
}

fn secs(d: TimeDelta) -> f64 {
    d.num_nanoseconds()
        .map_or(d.num_seconds() as f64, |ns| ns as f64 / 1e9)
}

impl World {
    /// A world that started at `start` (ticks, metric periods and failure windows count from
    /// it) and begins now, at `now` (not before `start`): its initial instances are running
    /// from `now`. `now` is later than `start` for a provider joining a shared world that has
    /// already run.
    pub fn new(
        settings: Settings,
        catalog: Vec<InstanceClass>,
        groups: Vec<GroupInit>,
        windows: Vec<Window>,
        seed: u64,
        (start, now): (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<World> {
        let mut world = World {
            now: now.max(start),
            start,
            settings,
            catalog,
            groups: Vec::with_capacity(groups.len()),
            instances: Vec::new(),
            events: BinaryHeap::new(),
            event_seq: 0,
            rng: SimRng::new(seed),
            next_activity: 1,
            windows,
        };
        for g in groups {
            let base_vcpus = world.catalog[g.class].vcpus;
            world.groups.push(GroupState {
                id: g.id,
                min: g.min,
                max: g.max,
                desired: g.desired,
                class: g.class,
                base_vcpus,
                zones: g.zones,
                capacity_type: g.capacity_type,
                work_per_instance: g.work_per_instance,
                service_time_seconds: g.service_time_seconds,
                demand: g.demand,
                demand_label: g.demand_label,
                demand_cache: None,
                shared_input: None,
                active: Vec::new(),
                drain: g.drain,
                draining: Vec::new(),
                ready_capacity: 0.0,
                ready_count: 0,
                backlog: 0.0,
                acc: PeriodAcc::default(),
                samples: Vec::new(),
                activities: Vec::new(),
                refresh: None,
                replacements: Vec::new(),
            });
        }
        // Initial instances are already running at the start.
        for gi in 0..world.groups.len() {
            let (n, class) = (world.groups[gi].desired, world.groups[gi].class);
            world.check_quota(n, f64::from(n) * world.catalog[class].vcpus)?;
            let launched = world.launch(gi, n, class, TimeDelta::zero());
            for idx in launched {
                world.mark_ready(idx);
            }
        }
        world.process_due_events();
        Ok(world)
    }

    // ----- lookups -----

    pub fn group_index(&self, id: &str) -> Result<usize> {
        self.groups
            .binary_search_by(|g| g.id.as_str().cmp(id))
            .map_err(|_| Error::not_found(format!("no simulated group named {id:?}")))
    }

    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.catalog.iter().position(|c| c.name == name)
    }

    /// The hourly price of `class` in `zone` as `capacity_type`, if offered there.
    pub fn offering_price(
        &self,
        class: usize,
        zone: &str,
        capacity_type: CapacityType,
    ) -> Option<f64> {
        self.catalog[class]
            .offerings
            .iter()
            .find(|o| o.zone == zone && o.capacity_type == capacity_type)
            .map(|o| o.price.per_hour())
    }

    /// Demand of group `gi` at the current time (held over the current tick).
    pub fn current_demand(&mut self, gi: usize) -> Option<f64> {
        if matches!(self.groups[gi].demand, Demand::Shared(_)) {
            return self.groups[gi].shared_input;
        }
        let index = self.tick_index(self.now);
        let at = self.tick_start(index);
        self.groups[gi].demand.at(at, index)
    }

    // ----- time -----

    fn tick_index(&self, t: DateTime<Utc>) -> i64 {
        let tick = self
            .settings
            .tick
            .num_nanoseconds()
            .unwrap_or(i64::MAX)
            .max(1);
        (t - self.start)
            .num_nanoseconds()
            .map_or(i64::MAX, |off| off.div_euclid(tick))
    }

    fn tick_start(&self, index: i64) -> DateTime<Utc> {
        let tick = self.settings.tick.num_nanoseconds().unwrap_or(i64::MAX);
        self.start + TimeDelta::nanoseconds(tick.saturating_mul(index))
    }

    fn is_period_boundary(&self, t: DateTime<Utc>) -> bool {
        let period = self
            .settings
            .metric_period
            .num_nanoseconds()
            .unwrap_or(i64::MAX);
        (t - self.start)
            .num_nanoseconds()
            .is_some_and(|off| off > 0 && off % period == 0)
    }

    /// Advances the world to `t` (no-op when `t` is not in the future).
    pub fn advance_to(&mut self, t: DateTime<Utc>) {
        loop {
            self.process_due_events();
            self.resume_waiting_refreshes();
            if self.now >= t {
                break;
            }
            let index = self.tick_index(self.now);
            let next_tick = self.tick_start(index + 1);
            let mut next = t.min(next_tick);
            if let Some(wake) = self.next_refresh_wake() {
                next = next.min(wake.max(self.now));
            }
            if let Some(Reverse((at, ..))) = self.events.peek() {
                next = next.min(*at);
            }
            if let Some(edge) = self.next_window_edge(self.now) {
                next = next.min(edge);
            }
            let tick_start = self.tick_start(index);
            let dt = secs(next - self.now);
            for gi in 0..self.groups.len() {
                let serving = self.serving_capacity(gi);
                self.integrate(gi, index, tick_start, dt, serving);
            }
            self.now = next;
            if self.is_period_boundary(next) {
                self.close_period(next);
            }
            if self.windows.iter().any(|w| w.until == next) {
                self.after_windows(next);
            }
        }
    }

    // ----- failure windows and shared demand -----

    /// The tick (how long demand is held).
    pub fn tick(&self) -> TimeDelta {
        self.settings.tick
    }

    /// The end of the latest window of `kind` covering group `gi` now, if one does.
    fn window_until(&self, gi: usize, kind: OutageKind) -> Option<DateTime<Utc>> {
        self.windows
            .iter()
            .filter(|w| w.kind == kind && w.covers(gi, self.now))
            .map(|w| w.until)
            .max()
    }

    /// When the outage of group `gi` ends, while it is in one.
    pub fn outage_until(&self, gi: usize) -> Option<DateTime<Utc>> {
        self.window_until(gi, OutageKind::Outage)
    }

    /// When the stockout of group `gi` ends, while it is in one.
    pub fn stockout_until(&self, gi: usize) -> Option<DateTime<Utc>> {
        self.window_until(gi, OutageKind::Stockout)
    }

    /// Why no instance may be launched in group `gi` now (an outage or a stockout), for an
    /// activity's text.
    fn launch_blocked(&self, gi: usize) -> Option<String> {
        [OutageKind::Outage, OutageKind::Stockout]
            .into_iter()
            .find_map(|kind| {
                self.window_until(gi, kind)
                    .map(|until| format!("simulated {} until {}", kind.as_str(), stamp(until)))
            })
    }

    /// The first window edge (start or end) after `after`.
    pub fn next_window_edge(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.windows
            .iter()
            .flat_map(|w| [w.from, w.until])
            .filter(|&t| t > after)
            .min()
    }

    /// The last window edge (start or end) at or before `t`.
    pub fn last_window_edge(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.windows
            .iter()
            .flat_map(|w| [w.from, w.until])
            .filter(|&e| e <= t)
            .max()
    }

    /// The capacity group `gi` serves now, work units per second: its ready capacity, zero in
    /// an outage.
    pub fn serving_capacity(&self, gi: usize) -> f64 {
        if self.outage_until(gi).is_some() {
            0.0
        } else {
            self.groups[gi].ready_capacity
        }
    }

    /// The groups with a shared demand, with its name.
    pub fn shared_groups(&self) -> impl Iterator<Item = (usize, &str)> {
        self.groups
            .iter()
            .enumerate()
            .filter_map(|(gi, g)| match &g.demand {
                Demand::Shared(name) => Some((gi, name.as_str())),
                _ => None,
            })
    }

    /// Sets group `gi`'s share of its shared demand until the next call.
    pub fn set_shared_input(&mut self, gi: usize, input: Option<f64>) {
        self.groups[gi].shared_input = input;
    }

    /// At the end of a failure window (`at`): every group it covered and no other window blocks
    /// gets back to its desired capacity (instances lost to spot interruptions meanwhile) and
    /// resumes a paused instance refresh.
    fn after_windows(&mut self, at: DateTime<Utc>) {
        for gi in 0..self.groups.len() {
            let ended = self.windows.iter().any(|w| w.until == at && w.affects(gi));
            if !ended || self.launch_blocked(gi).is_some() {
                continue;
            }
            let missing = self.groups[gi]
                .desired
                .saturating_sub(self.managed_count(gi));
            if missing > 0 {
                let class = self.groups[gi].class;
                let name = self.catalog[class].name.clone();
                match self.check_quota(missing, f64::from(missing) * self.catalog[class].vcpus) {
                    Ok(()) => {
                        let launched = self.launch(gi, missing, class, self.settings.boot_delay);
                        let text = format!(
                            "Launching {missing} instance(s) of {name} after the simulated failure window ended"
                        );
                        self.record_activity(gi, text, launched, false);
                    }
                    Err(e) => {
                        let text = format!(
                            "No replacement of {missing} instance(s) after the simulated failure window: {}",
                            e.message()
                        );
                        self.record_activity(gi, text, Vec::new(), true);
                    }
                }
            }
            let paused = self.groups[gi].refresh.as_ref().is_some_and(|r| {
                r.batch
                    .iter()
                    .all(|&i| self.instances[i].ended_at.is_some())
            });
            if paused {
                self.start_refresh_batch(gi);
            }
        }
    }

    fn process_due_events(&mut self) {
        while let Some(Reverse((at, _, kind, idx))) = self.events.peek().copied() {
            if at > self.now {
                break;
            }
            self.events.pop();
            if self.instances[idx].ended_at.is_some() {
                continue;
            }
            match kind {
                EventKind::Ready => {
                    self.mark_ready(idx);
                    let g = self.instances[idx].group;
                    self.progress_refresh(g);
                }
                EventKind::Interrupt => {
                    self.interrupt(idx);
                    let g = self.instances[idx].group;
                    self.progress_refresh(g);
                }
                EventKind::DrainEnd => {
                    self.terminate(idx);
                    let g = self.instances[idx].group;
                    self.progress_refresh(g);
                }
            }
        }
    }

    fn push_event(&mut self, at: DateTime<Utc>, kind: EventKind, idx: usize) {
        self.event_seq += 1;
        self.events.push(Reverse((at, self.event_seq, kind, idx)));
    }

    /// Integrates group `gi` over `dt` seconds from `self.now`, inside tick `index`.
    /// `serving` is the capacity the group serves over the sub-step (its ready capacity, zero
    /// in an outage).
    fn integrate(
        &mut self,
        gi: usize,
        index: i64,
        tick_start: DateTime<Utc>,
        dt: f64,
        serving: f64,
    ) {
        let g = &mut self.groups[gi];
        let demand = match g.demand_cache {
            _ if matches!(g.demand, Demand::Shared(_)) => g.shared_input,
            Some((i, d)) if i == index => d,
            _ => {
                let d = g.demand.at(tick_start, index);
                g.demand_cache = Some((index, d));
                d
            }
        };
        let Some(d) = demand else {
            return; // a gap: no data, the backlog is left as it was
        };
        let c = serving;
        let q0 = g.backlog;
        let net = d - c;
        // Time the servers are saturated (serving the backlog or more demand than they hold),
        // the backlog at the end, and the integral of the backlog.
        let (busy, q1, backlog_area) = if net >= 0.0 {
            let q1 = q0 + net * dt;
            (if c > 0.0 { dt } else { 0.0 }, q1, (q0 + q1) / 2.0 * dt)
        } else {
            let drain = q0 / -net;
            if drain >= dt {
                let q1 = q0 + net * dt;
                (dt, q1, (q0 + q1) / 2.0 * dt)
            } else {
                (drain, 0.0, q0 * drain / 2.0)
            }
        };
        let util_area = if c > 0.0 {
            busy + (dt - busy) * (d / c).min(1.0)
        } else if d > 0.0 || q0 > 0.0 {
            dt
        } else {
            0.0
        };
        let (p95, p99) = if c > 0.0 {
            let backlog_s = backlog_area / dt.max(1e-12) / c;
            (
                latency_seconds(0.95, d / c, g.service_time_seconds, backlog_s),
                latency_seconds(0.99, d / c, g.service_time_seconds, backlog_s),
            )
        } else if d > 0.0 {
            (LATENCY_CAP_SECONDS, LATENCY_CAP_SECONDS)
        } else {
            let idle = latency_seconds(0.95, 0.0, g.service_time_seconds, 0.0);
            (
                idle,
                latency_seconds(0.99, 0.0, g.service_time_seconds, 0.0),
            )
        };
        // Latency is request-weighted; the tiny floor keeps idle periods defined.
        let w = (d + 1e-9) * dt;
        let acc = &mut g.acc;
        acc.data_seconds += dt;
        acc.util += util_area;
        acc.demand += d * dt;
        acc.backlog += backlog_area;
        acc.p95 += p95 * w;
        acc.p99 += p99 * w;
        acc.latency_weight += w;
        acc.errors += (d - c).max(0.0) * dt;
        acc.capacity += c * dt;
        acc.ready += f64::from(g.ready_count) * dt;
        g.backlog = q1.max(0.0);
    }

    fn close_period(&mut self, at: DateTime<Utc>) {
        for g in &mut self.groups {
            let a = std::mem::take(&mut g.acc);
            if a.data_seconds <= 0.0 {
                continue;
            }
            let t = a.data_seconds;
            let mut values = [0.0; SLOTS];
            values[UTILIZATION] = a.util / t;
            values[REQUEST_RATE] = a.demand / t;
            values[QUEUE_DEPTH] = a.backlog / t;
            values[LATENCY_P95] = a.p95 / a.latency_weight;
            values[LATENCY_P99] = a.p99 / a.latency_weight;
            values[ERROR_RATE] = if a.demand > 0.0 {
                a.errors / a.demand
            } else {
                0.0
            };
            values[READY_CAPACITY] = a.capacity / t;
            values[READY_INSTANCES] = a.ready / t;
            g.samples.push(PeriodSample { at, values });
        }
    }

    // ----- instances -----

    fn work_per_second(&self, gi: usize, class: usize) -> f64 {
        let g = &self.groups[gi];
        g.work_per_instance * self.catalog[class].vcpus / g.base_vcpus
    }

    /// Fails with `QuotaExceeded` when `extra_instances` more instances with `extra_vcpus`
    /// more vCPUs would exceed the account quota.
    pub fn check_quota(&self, extra_instances: u32, extra_vcpus: f64) -> Result<()> {
        let quota = self.settings.quota;
        if quota.max_instances.is_none() && quota.max_vcpus.is_none() {
            return Ok(());
        }
        // Draining instances still run, and count.
        let active = self
            .groups
            .iter()
            .map(|g| g.active.len() + g.draining.len())
            .sum::<usize>() as u64;
        let vcpus: f64 = self
            .groups
            .iter()
            .flat_map(|g| g.active.iter().chain(&g.draining))
            .map(|&i| self.instances[i].vcpus)
            .sum();
        if let Some(max) = quota.max_instances
            && active + u64::from(extra_instances) > u64::from(max)
        {
            return Err(Error::new(
                ErrorKind::QuotaExceeded,
                format!(
                    "instance quota of {max} exceeded: {active} running or pending, {extra_instances} more asked for"
                ),
            ));
        }
        if let Some(max) = quota.max_vcpus
            && vcpus + extra_vcpus > max + 1e-9
        {
            return Err(Error::new(
                ErrorKind::QuotaExceeded,
                format!(
                    "vCPU quota of {max} exceeded: {vcpus} vCPUs in use, {extra_vcpus} more asked for"
                ),
            ));
        }
        Ok(())
    }

    /// Launches `n` instances of `class` in group `gi` at `now` (quota already checked);
    /// they become ready after `boot_delay`.
    fn launch(&mut self, gi: usize, n: u32, class: usize, boot_delay: TimeDelta) -> Vec<usize> {
        let mut out = Vec::with_capacity(n as usize);
        let mut per_zone = vec![0usize; self.groups[gi].zones.len()];
        for &i in &self.groups[gi].active {
            if let Some(c) = per_zone.get_mut(self.instances[i].zone_index) {
                *c += 1;
            }
        }
        for _ in 0..n {
            let g = &self.groups[gi];
            // The zone with the fewest active instances, the first on a tie.
            let zone_index = (0..per_zone.len())
                .min_by_key(|&z| per_zone[z])
                .unwrap_or(0);
            if let Some(c) = per_zone.get_mut(zone_index) {
                *c += 1;
            }
            let zone = g.zones.get(zone_index).cloned().unwrap_or_default();
            let capacity_type = g.capacity_type;
            let price = self
                .offering_price(class, &zone, capacity_type)
                .or_else(|| {
                    self.catalog[class]
                        .cheapest(capacity_type)
                        .map(|o| o.price.per_hour())
                })
                .unwrap_or(0.0);
            let idx = self.instances.len();
            self.instances.push(InstanceRec {
                id: format!("i-{:08}", idx + 1),
                group: gi,
                class,
                zone,
                zone_index,
                capacity_type,
                launched_at: self.now,
                ended_at: None,
                drain_started_at: None,
                running: false,
                ready_at: None,
                protected: false,
                interrupted: false,
                price_per_hour: price,
                work_per_second: self.work_per_second(gi, class),
                vcpus: self.catalog[class].vcpus,
            });
            self.groups[gi].active.push(idx);
            if boot_delay > TimeDelta::zero() {
                self.push_event(self.now + boot_delay, EventKind::Ready, idx);
            } else {
                // No boot delay: it serves at once.
                self.mark_ready(idx);
            }
            let rate = self.settings.spot_interruptions_per_hour;
            if capacity_type == CapacityType::Spot && rate > 0.0 {
                let hours = self.rng.exponential(rate);
                let at = self.now + TimeDelta::milliseconds((hours * 3_600_000.0) as i64);
                self.push_event(at, EventKind::Interrupt, idx);
            }
            out.push(idx);
        }
        out
    }

    fn mark_ready(&mut self, idx: usize) {
        let inst = &mut self.instances[idx];
        if inst.running || inst.ended_at.is_some() || inst.drain_started_at.is_some() {
            return;
        }
        inst.running = true;
        inst.ready_at = Some(self.now);
        let g = &mut self.groups[inst.group];
        g.ready_capacity += inst.work_per_second;
        g.ready_count += 1;
    }

    fn terminate(&mut self, idx: usize) {
        let now = self.now;
        let inst = &mut self.instances[idx];
        if inst.ended_at.is_some() {
            return;
        }
        inst.ended_at = Some(now);
        let g = &mut self.groups[inst.group];
        if inst.drain_started_at.is_some() {
            // Its capacity left when the drain began.
            g.draining.retain(|&i| i != idx);
            return;
        }
        if inst.running {
            remove_capacity(g, inst.work_per_second);
        }
        g.active.retain(|&i| i != idx);
    }

    /// Removes instance `idx` chosen for scale-in: with a drain, a running instance leaves the
    /// group's capacity now and is terminated when the drain ends; otherwise (no drain, or still
    /// booting, so holding no work) it is terminated at once. Returns whether it drains.
    fn retire(&mut self, idx: usize) -> bool {
        let now = self.now;
        let inst = &mut self.instances[idx];
        let g = &mut self.groups[inst.group];
        if inst.ended_at.is_some() || inst.drain_started_at.is_some() {
            return false;
        }
        if g.drain <= TimeDelta::zero() || !inst.running {
            self.terminate(idx);
            return false;
        }
        inst.drain_started_at = Some(now);
        remove_capacity(g, inst.work_per_second);
        g.active.retain(|&i| i != idx);
        g.draining.push(idx);
        let end = now + g.drain;
        self.push_event(end, EventKind::DrainEnd, idx);
        true
    }

    /// What an activity that removes `terminated` at once and drains `drained` says.
    fn removal_text(&self, gi: usize, terminated: &[usize], drained: &[usize]) -> String {
        let ids = |list: &[usize]| {
            list.iter()
                .map(|&i| self.instances[i].id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let drain =
            crate::duration::format_duration(self.groups[gi].drain.to_std().unwrap_or_default());
        match (terminated.is_empty(), drained.is_empty()) {
            (_, true) => format!(
                "Terminating {} instance(s) ({})",
                terminated.len(),
                ids(terminated)
            ),
            (true, false) => format!(
                "Draining {} instance(s) ({}) for {drain} before terminating them",
                drained.len(),
                ids(drained)
            ),
            (false, false) => format!(
                "Terminating {} booting instance(s) ({}) and draining {} ({}) for {drain} before terminating them",
                terminated.len(),
                ids(terminated),
                drained.len(),
                ids(drained)
            ),
        }
    }

    fn interrupt(&mut self, idx: usize) {
        let gi = self.instances[idx].group;
        self.instances[idx].interrupted = true;
        let id = self.instances[idx].id.clone();
        self.terminate(idx);
        let g = &self.groups[gi];
        let class = g.class;
        let managed = self.managed_count(gi);
        let mut description = format!("Spot interruption of {id}");
        let mut launched = Vec::new();
        if managed < g.desired
            && let Some(why) = self.launch_blocked(gi)
        {
            description.push_str(&format!("; no replacement: {why}"));
        } else if managed < g.desired {
            match self.check_quota(1, self.catalog[class].vcpus) {
                Ok(()) => {
                    launched = self.launch(gi, 1, class, self.settings.boot_delay);
                    description.push_str("; launching a replacement");
                }
                Err(e) => description.push_str(&format!("; no replacement: {}", e.message())),
            }
        }
        self.record_activity(gi, description, launched, true);
    }

    /// Active instances that count toward desired capacity (refresh surge excluded).
    pub fn managed_count(&self, gi: usize) -> u32 {
        let g = &self.groups[gi];
        let surge = g.refresh.as_ref().filter(|r| r.surge).map_or(0, |r| {
            r.batch
                .iter()
                .filter(|&&i| self.instances[i].ended_at.is_none())
                .count()
        });
        (g.active.len() - surge) as u32
    }

    fn record_activity(
        &mut self,
        gi: usize,
        description: String,
        launched: Vec<usize>,
        done: bool,
    ) -> usize {
        let id = format!("sim-activity-{}", self.next_activity);
        self.next_activity += 1;
        let g = &mut self.groups[gi];
        g.activities.push(ActivityRec {
            activity: Activity {
                id,
                description,
                started_at: self.now,
                progress_percent: Some(if done && launched.is_empty() { 100 } else { 0 }),
                done: done && launched.is_empty(),
            },
            launched,
            drained: Vec::new(),
        });
        g.activities.len() - 1
    }

    /// Makes activity `a` of group `gi` wait for the drains of `drained` to end.
    fn wait_for_drains(&mut self, gi: usize, a: usize, drained: Vec<usize>) {
        if drained.is_empty() {
            return;
        }
        let rec = &mut self.groups[gi].activities[a];
        rec.activity.done = false;
        rec.activity.progress_percent = Some(0);
        rec.drained = drained;
    }

    // ----- operations -----

    pub fn set_desired(&mut self, gi: usize, desired: u32) -> Result<()> {
        let g = &self.groups[gi];
        hoist_api::checks::desired_within_bounds(&g.id, desired, g.min, g.max)?;
        let managed = self.managed_count(gi);
        let class = g.class;
        if desired > managed {
            let n = desired - managed;
            self.check_quota(n, f64::from(n) * self.catalog[class].vcpus)?;
            let launched = self.launch(gi, n, class, self.settings.boot_delay);
            let text = format!(
                "Launching {n} instance(s) of {}: desired {managed} -> {desired}",
                self.catalog[class].name
            );
            self.record_activity(gi, text, launched, false);
        } else if desired < managed {
            let surge: Vec<usize> = self.groups[gi]
                .refresh
                .as_ref()
                .filter(|r| r.surge)
                .map_or(Vec::new(), |r| r.batch.clone());
            let victims: Vec<usize> = self.groups[gi]
                .active
                .iter()
                .rev()
                .copied()
                .filter(|i| !self.instances[*i].protected && !surge.contains(i))
                .take((managed - desired) as usize)
                .collect();
            let (mut terminated, mut drained) = (Vec::new(), Vec::new());
            for i in victims {
                if self.retire(i) {
                    drained.push(i);
                } else {
                    terminated.push(i);
                }
            }
            let text = format!(
                "{}: desired {managed} -> {desired}",
                self.removal_text(gi, &terminated, &drained)
            );
            let a = self.record_activity(gi, text, Vec::new(), true);
            self.wait_for_drains(gi, a, drained);
        }
        self.groups[gi].desired = desired;
        Ok(())
    }

    pub fn remove_instances(&mut self, gi: usize, ids: &[String], decrement: bool) -> Result<()> {
        let mut victims = Vec::with_capacity(ids.len());
        for id in ids {
            let found = self.groups[gi]
                .active
                .iter()
                .copied()
                .find(|&i| &self.instances[i].id == id);
            match found {
                Some(i) if !victims.contains(&i) => victims.push(i),
                Some(_) => {
                    return Err(Error::invalid_input(format!(
                        "instance {id} is listed twice"
                    )));
                }
                None => {
                    return Err(Error::not_found(format!(
                        "instance {id} is not an active instance of group {}",
                        self.groups[gi].id
                    )));
                }
            }
        }
        let n = victims.len() as u32;
        let g = &self.groups[gi];
        let class = g.class;
        if decrement {
            hoist_api::checks::removal_within_bounds(&g.id, n, g.desired, g.min)?;
        }
        let mut drained = Vec::new();
        for &i in &victims {
            if self.retire(i) {
                drained.push(i);
            }
        }
        let mut text = format!("Removing {}", ids.join(", "));
        if !drained.is_empty() {
            let terminated: Vec<usize> = victims
                .iter()
                .copied()
                .filter(|i| !drained.contains(i))
                .collect();
            text = format!(
                "Removing {}: {}",
                ids.join(", "),
                self.removal_text(gi, &terminated, &drained)
            );
        }
        let mut launched = Vec::new();
        if decrement {
            self.groups[gi].desired -= n;
            text.push_str(&format!(
                "; desired capacity lowered to {}",
                self.groups[gi].desired
            ));
        } else {
            let missing = self.groups[gi]
                .desired
                .saturating_sub(self.managed_count(gi));
            let allowed = match self.launch_blocked(gi) {
                Some(why) if missing > 0 => Err(Error::new(ErrorKind::CapacityUnavailable, why)),
                _ => self.check_quota(missing, f64::from(missing) * self.catalog[class].vcpus),
            };
            match allowed {
                Ok(()) => {
                    launched = self.launch(gi, missing, class, self.settings.boot_delay);
                    text.push_str(&format!("; launching {missing} replacement(s)"));
                }
                Err(e) => text.push_str(&format!("; no replacements: {}", e.message())),
            }
        }
        let a = self.record_activity(gi, text, launched, true);
        self.wait_for_drains(gi, a, drained);
        self.progress_refresh(gi);
        Ok(())
    }

    pub fn set_protection(&mut self, gi: usize, id: &str, protected: bool) -> Result<()> {
        let found = self.groups[gi]
            .active
            .iter()
            .copied()
            .find(|&i| self.instances[i].id == id);
        match found {
            Some(i) => {
                self.instances[i].protected = protected;
                Ok(())
            }
            None => Err(Error::not_found(format!(
                "instance {id} is not an active instance of group {}",
                self.groups[gi].id
            ))),
        }
    }

    pub fn set_instance_class(
        &mut self,
        gi: usize,
        name: &str,
        budget: Option<DisruptionBudget>,
    ) -> Result<Option<Activity>> {
        let class = self
            .class_index(name)
            .ok_or_else(|| Error::not_found(format!("no instance class named {name:?}")))?;
        let g = &self.groups[gi];
        if !g
            .zones
            .iter()
            .any(|z| self.offering_price(class, z, g.capacity_type).is_some())
        {
            return Err(Error::invalid_input(format!(
                "instance class {name} is not offered as {:?} in the zones of group {}",
                g.capacity_type, g.id
            )));
        }
        if class == g.class {
            // The same class again: a replacement under way keeps going, under the budget
            // asked for now.
            if let (Some(b), Some(r)) = (budget, &mut self.groups[gi].refresh) {
                r.budget = Some(b);
            }
            return Ok(None);
        }
        let old_name = self.catalog[g.class].name.clone();
        self.groups[gi].class = class;
        let old = self.groups[gi]
            .active
            .iter()
            .filter(|&&i| self.instances[i].class != class)
            .count() as u32;
        if old == 0 {
            return Ok(None);
        }
        // A replacement under way is superseded: its batch in flight finishes as part of this
        // one (its new instances are of the old target class, replaced in turn).
        let previous = self.groups[gi].refresh.take();
        if let Some(r) = &previous {
            let a = &mut self.groups[gi].activities[r.activity].activity;
            a.done = true;
        }
        // Replace the old instances in batches: launch a batch of the new class, and when it
        // is ready, retire as many old instances (oldest first; they drain when the group has
        // a drain). The next batch starts when the last one is done, within the budget.
        let mut text = format!("Replacing {old} instance(s) of {old_name} with {name}");
        if let Some(b) = budget {
            text.push_str(&format!(" ({b})"));
        }
        let activity = self.record_activity(gi, text, Vec::new(), false);
        self.groups[gi].refresh = Some(Refresh {
            activity,
            total: old,
            replaced: 0,
            batch: previous.as_ref().map_or_else(Vec::new, |r| r.batch.clone()),
            retiring: previous
                .as_ref()
                .map_or_else(Vec::new, |r| r.retiring.clone()),
            surge: previous.as_ref().is_none_or(|r| r.surge),
            budget,
            record: previous.as_ref().and_then(|r| r.record),
            waiting_until: None,
        });
        if previous.is_some_and(|r| r.record.is_some()) {
            // The batch in flight finishes first.
            self.progress_refresh(gi);
        } else {
            self.start_refresh_batch(gi);
        }
        Ok(Some(self.groups[gi].activities[activity].activity.clone()))
    }

    fn refresh_remaining(&self, gi: usize) -> Vec<usize> {
        let g = &self.groups[gi];
        g.active
            .iter()
            .copied()
            .filter(|&i| self.instances[i].class != g.class)
            .collect()
    }

    /// How many replacements group `gi` may start now under `budget`, and when a window
    /// allows more when it allows none.
    fn window_allowance(
        &self,
        gi: usize,
        budget: &DisruptionBudget,
    ) -> (u32, Option<DateTime<Utc>>) {
        let Some(per_window) = budget.per_window else {
            return (u32::MAX, None);
        };
        let window = TimeDelta::from_std(budget.window).unwrap_or(TimeDelta::MAX);
        // Replacements start at their batch's start; a window is `(t - window, t]`.
        let recent: Vec<(DateTime<Utc>, u32)> = self.groups[gi]
            .replacements
            .iter()
            .filter(|b| b.started_at > self.now - window)
            .map(|b| (b.started_at, b.launched.len().max(b.retired.len()) as u32))
            .collect();
        let used: u32 = recent.iter().map(|(_, n)| n).sum();
        if used < per_window {
            return (per_window - used, None);
        }
        // Enough has aged out once the oldest batches whose sizes cover the excess are out.
        let mut freed = 0;
        for (at, n) in &recent {
            freed += n;
            if used - freed < per_window {
                return (0, Some(*at + window));
            }
        }
        (0, None)
    }

    fn start_refresh_batch(&mut self, gi: usize) {
        let remaining = self.refresh_remaining(gi);
        let g = &self.groups[gi];
        let Some(r) = &g.refresh else { return };
        let activity = r.activity;
        let budget = r.budget;
        if remaining.is_empty() {
            let a = &mut self.groups[gi].activities[activity].activity;
            a.progress_percent = Some(100);
            a.done = true;
            self.groups[gi].refresh = None;
            return;
        }
        if self.launch_blocked(gi).is_some() {
            // Paused until the failure window ends (see `after_windows`).
            if let Some(r) = &mut self.groups[gi].refresh {
                r.batch.clear();
            }
            return;
        }
        let g = &self.groups[gi];
        let class = g.class;
        let (cap, wait) = match &budget {
            Some(b) => {
                let (allowed, wait) = self.window_allowance(gi, b);
                (b.max_unavailable.min(allowed), wait)
            }
            None => (
                ((f64::from(g.desired) * self.settings.refresh_batch_fraction).ceil() as u32)
                    .max(1),
                None,
            ),
        };
        if cap == 0 {
            // The window's replacements are used up: wait until it allows more (checked at
            // every step of the clock, see `advance_to`).
            if let Some(r) = &mut self.groups[gi].refresh {
                r.batch.clear();
                r.waiting_until = wait;
            }
            return;
        }
        let size = cap.min(remaining.len() as u32);
        let surge = self
            .check_quota(size, f64::from(size) * self.catalog[class].vcpus)
            .is_ok();
        let mut retired = Vec::new();
        if !surge {
            // No room to launch before terminating: replace in place, oldest first.
            for &i in remaining.iter().take(size as usize) {
                self.terminate(i);
                retired.push(i);
            }
        }
        let batch = self.launch(gi, size, class, self.settings.boot_delay);
        let record = self.groups[gi].replacements.len();
        self.groups[gi].replacements.push(ReplacementBatch {
            started_at: self.now,
            surge,
            launched: batch.clone(),
            retired,
            finished_at: None,
            budget,
        });
        if let Some(r) = &mut self.groups[gi].refresh {
            r.batch = batch;
            r.surge = surge;
            r.record = Some(record);
            r.waiting_until = None;
            if !surge {
                r.replaced += size;
            }
        }
        self.update_refresh_progress(gi);
        // A batch of instances that boot at once is ready already.
        self.progress_refresh(gi);
    }

    /// Starts the next batch of a refresh waiting for its budget's window, once it allows.
    fn resume_waiting_refreshes(&mut self) {
        for gi in 0..self.groups.len() {
            let due = self.groups[gi]
                .refresh
                .as_ref()
                .and_then(|r| r.waiting_until)
                .is_some_and(|at| at <= self.now);
            if due {
                self.start_refresh_batch(gi);
            }
        }
    }

    /// When a refresh waiting for its budget's window may go on, the earliest.
    fn next_refresh_wake(&self) -> Option<DateTime<Utc>> {
        self.groups
            .iter()
            .filter_map(|g| g.refresh.as_ref().and_then(|r| r.waiting_until))
            .min()
    }

    fn update_refresh_progress(&mut self, gi: usize) {
        let g = &mut self.groups[gi];
        if let Some(r) = &g.refresh {
            let pct = (u64::from(r.replaced.min(r.total)) * 100 / u64::from(r.total.max(1))) as u8;
            g.activities[r.activity].activity.progress_percent = Some(pct);
        }
    }

    fn progress_refresh(&mut self, gi: usize) {
        let Some(r) = &self.groups[gi].refresh else {
            return;
        };
        if r.waiting_until.is_some() {
            return;
        }
        let batch: Vec<usize> = r
            .batch
            .iter()
            .copied()
            .filter(|&i| self.instances[i].ended_at.is_none())
            .collect();
        if batch.iter().any(|&i| !self.instances[i].running) {
            return;
        }
        if !r.retiring.is_empty() {
            if r.retiring
                .iter()
                .any(|&i| self.instances[i].ended_at.is_none())
            {
                return;
            }
            // The batch's old instances have drained: it is done.
            self.finish_batch(gi);
            self.start_refresh_batch(gi);
            return;
        }
        let old = self.refresh_remaining(gi);
        let k = if r.surge {
            batch.len().min(old.len())
        } else {
            0
        };
        let record = r.record;
        let mut retiring = Vec::new();
        for &i in old.iter().take(k) {
            if self.retire(i) {
                retiring.push(i);
            }
        }
        if let Some(record) = record {
            self.groups[gi].replacements[record]
                .retired
                .extend(old.iter().take(k).copied());
        }
        if let Some(r) = &mut self.groups[gi].refresh {
            r.replaced += k as u32;
            r.retiring = retiring;
        }
        self.update_refresh_progress(gi);
        if self.groups[gi]
            .refresh
            .as_ref()
            .is_some_and(|r| !r.retiring.is_empty())
        {
            // Wait for the drains (see `process_due_events`).
            return;
        }
        self.finish_batch(gi);
        self.start_refresh_batch(gi);
    }

    /// Closes the batch under way of group `gi`'s refresh.
    fn finish_batch(&mut self, gi: usize) {
        let now = self.now;
        let g = &mut self.groups[gi];
        if let Some(r) = &mut g.refresh {
            r.batch.clear();
            r.retiring.clear();
            if let Some(record) = r.record.take() {
                g.replacements[record].finished_at = Some(now);
            }
        }
    }

    // ----- views -----

    pub fn group_view(&self, gi: usize) -> ScalingGroup {
        let g = &self.groups[gi];
        let mut tags = BTreeMap::new();
        tags.insert("hoist.sim/demand".to_owned(), g.demand_label.clone());
        tags.insert(
            "hoist.sim/work_per_instance".to_owned(),
            g.work_per_instance.to_string(),
        );
        ScalingGroup {
            id: g.id.clone(),
            min_size: g.min,
            max_size: g.max,
            desired_capacity: g.desired,
            instance_class: self.catalog[g.class].name.clone(),
            zones: g.zones.clone(),
            instances: {
                let mut listed: Vec<usize> = g.active.iter().chain(&g.draining).copied().collect();
                // Launch order, draining instances among the others.
                listed.sort_unstable();
                listed
            }
            .iter()
            .map(|&i| {
                let r = &self.instances[i];
                Instance {
                    id: r.id.clone(),
                    instance_class: self.catalog[r.class].name.clone(),
                    zone: r.zone.clone(),
                    capacity_type: r.capacity_type,
                    state: r.state(),
                    launched_at: r.launched_at,
                    protected_from_scale_in: r.protected,
                }
            })
            .collect(),
            tags,
        }
    }

    /// Activities of group `gi`, newest first (at most 100).
    pub fn activities(&self, gi: usize) -> Vec<Activity> {
        let g = &self.groups[gi];
        g.activities
            .iter()
            .rev()
            .take(100)
            .map(|rec| {
                let mut a = rec.activity.clone();
                if !rec.launched.is_empty() || !rec.drained.is_empty() {
                    let total = rec.launched.len() + rec.drained.len();
                    let launched = rec.launched.iter().filter(|&&i| {
                        let r = &self.instances[i];
                        r.running || r.ended_at.is_some()
                    });
                    let drained = rec
                        .drained
                        .iter()
                        .filter(|&&i| self.instances[i].ended_at.is_some());
                    let settled = launched.count() + drained.count();
                    a.progress_percent = Some((settled * 100 / total) as u8);
                    a.done = settled == total;
                }
                a
            })
            .collect()
    }

    /// Samples of slot `slot` of group `gi` with `at` in `range` that are visible now (older
    /// than the metric lag), resampled to `step_seconds` when that is longer than the period.
    pub fn samples(
        &self,
        gi: usize,
        slot: usize,
        range: TimeRange,
        step_seconds: u32,
    ) -> Vec<Sample> {
        let visible_until = self.now - self.settings.metric_lag;
        let end = range.end.min(visible_until + TimeDelta::nanoseconds(1));
        let samples = &self.groups[gi].samples;
        let lo = samples.partition_point(|s| s.at < range.start);
        let hi = samples.partition_point(|s| s.at < end);
        let native = samples[lo..hi.max(lo)].iter().map(|s| Sample {
            at: s.at,
            value: s.values[slot],
        });
        let step = TimeDelta::seconds(i64::from(step_seconds));
        if step <= self.settings.metric_period {
            return native.collect();
        }
        // Average into buckets of `step` from the range start, stamped at the bucket's last sample.
        let step_ns = step.num_nanoseconds().unwrap_or(i64::MAX);
        let mut out: Vec<Sample> = Vec::new();
        let mut current: Option<(i64, f64, usize, DateTime<Utc>)> = None;
        for s in native {
            let bucket = (s.at - range.start).num_nanoseconds().unwrap_or(0) / step_ns;
            match &mut current {
                Some((b, sum, n, at)) if *b == bucket => {
                    *sum += s.value;
                    *n += 1;
                    *at = s.at;
                }
                _ => {
                    if let Some((_, sum, n, at)) = current.take() {
                        out.push(Sample {
                            at,
                            value: sum / n as f64,
                        });
                    }
                    current = Some((bucket, s.value, 1, s.at));
                }
            }
        }
        if let Some((_, sum, n, at)) = current {
            out.push(Sample {
                at,
                value: sum / n as f64,
            });
        }
        out
    }

    // ----- billing -----

    fn cost_key(&self, group_by: Option<&str>, inst: &InstanceRec) -> Result<Option<String>> {
        Ok(match group_by {
            None => None,
            Some("group") => Some(self.groups[inst.group].id.clone()),
            Some("service") => Some("compute".to_owned()),
            Some("instance_class") => Some(self.catalog[inst.class].name.clone()),
            Some("zone") => Some(inst.zone.clone()),
            Some("capacity_type") => Some(
                match inst.capacity_type {
                    CapacityType::OnDemand => "on_demand",
                    CapacityType::Spot => "spot",
                    CapacityType::Reserved => "reserved",
                }
                .to_owned(),
            ),
            Some(other) => {
                return Err(Error::invalid_input(format!(
                    "cannot group simulated costs by {other:?}: use group, service, instance_class, zone or capacity_type"
                )));
            }
        })
    }

    /// The cost of instance `inst` billed within `[a, b)`, USD.
    fn billed_in(&self, inst: &InstanceRec, a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
        let launch = inst.launched_at;
        let end = inst.ended_at.unwrap_or(self.now);
        let per_second = inst.price_per_hour / 3_600.0;
        match self.settings.billing {
            Billing::PerSecond { minimum } => {
                // Continuous accrual while alive, plus the rest of the minimum charge as a lump
                // at termination.
                let lo = launch.max(a);
                let hi = end.min(b);
                let mut cost = if hi > lo {
                    secs(hi - lo) * per_second
                } else {
                    0.0
                };
                if let Some(ended) = inst.ended_at {
                    let lived = secs(ended - launch);
                    let minimum = minimum.as_secs_f64();
                    if lived < minimum && a <= ended && ended < b {
                        cost += (minimum - lived) * per_second;
                    }
                }
                cost
            }
            Billing::PerHour => {
                // A full hour charged at the start of every started hour.
                let lived = secs(end - launch);
                let started = if inst.ended_at.is_some() {
                    (lived / 3_600.0).ceil().max(1.0) as i64
                } else {
                    (lived / 3_600.0).floor() as i64 + 1
                };
                (0..started)
                    .map(|k| launch + TimeDelta::hours(k))
                    .filter(|t| a <= *t && *t < b)
                    .count() as f64
                    * inst.price_per_hour
            }
        }
    }

    pub fn cost(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        let buckets = buckets(query.range, query.granularity)?;
        let mut totals: BTreeMap<(usize, Option<String>), f64> = BTreeMap::new();
        if query.group_by.is_none() {
            for b in 0..buckets.len() {
                totals.insert((b, None), 0.0);
            }
        }
        for inst in &self.instances {
            let key = self.cost_key(query.group_by.as_deref(), inst)?;
            let live_end = inst.ended_at.unwrap_or(self.now) + TimeDelta::hours(1);
            for (b, (a, e)) in buckets.iter().enumerate() {
                if *e <= inst.launched_at || *a > live_end {
                    continue;
                }
                let c = self.billed_in(inst, *a, *e);
                if c > 0.0 {
                    *totals.entry((b, key.clone())).or_default() += c;
                }
            }
        }
        Ok(totals
            .into_iter()
            .map(|((b, key), amount)| CostEntry {
                start: buckets[b].0,
                end: buckets[b].1,
                key,
                amount: Money::usd_f64(amount),
                estimated: false,
            })
            .collect())
    }

    pub fn forecast(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        let from = query.range.start.max(self.now);
        if from >= query.range.end {
            return Ok(Vec::new());
        }
        let buckets = buckets(
            TimeRange {
                start: from,
                end: query.range.end,
            },
            query.granularity,
        )?;
        let mut rates: BTreeMap<Option<String>, f64> = BTreeMap::new();
        if query.group_by.is_none() {
            rates.insert(None, 0.0);
        }
        for g in &self.groups {
            for &i in &g.active {
                let inst = &self.instances[i];
                let key = self.cost_key(query.group_by.as_deref(), inst)?;
                *rates.entry(key).or_default() += inst.price_per_hour;
            }
        }
        let mut out = Vec::new();
        for (a, e) in &buckets {
            let hours = secs(*e - *a) / 3_600.0;
            for (key, rate) in &rates {
                out.push(CostEntry {
                    start: *a,
                    end: *e,
                    key: key.clone(),
                    amount: Money::usd_f64(rate * hours),
                    estimated: true,
                });
            }
        }
        Ok(out)
    }
}

/// Takes a running instance's `work_per_second` out of group `g`'s ready capacity.
fn remove_capacity(g: &mut GroupState, work_per_second: f64) {
    g.ready_capacity = (g.ready_capacity - work_per_second).max(0.0);
    g.ready_count -= 1;
    if g.ready_count == 0 {
        g.ready_capacity = 0.0;
    }
}

/// Calendar buckets (UTC) covering `range`, clipped to it.
fn buckets(
    range: TimeRange,
    granularity: CostGranularity,
) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    if range.end <= range.start {
        return Ok(Vec::new());
    }
    let floor = |t: DateTime<Utc>| -> DateTime<Utc> {
        let (y, m, d, h) = (t.year(), t.month(), t.day(), chrono::Timelike::hour(&t));
        let r = match granularity {
            CostGranularity::Hourly => Utc.with_ymd_and_hms(y, m, d, h, 0, 0),
            CostGranularity::Daily => Utc.with_ymd_and_hms(y, m, d, 0, 0, 0),
            CostGranularity::Monthly => Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0),
        };
        r.single().unwrap_or(t)
    };
    let next = |t: DateTime<Utc>| -> DateTime<Utc> {
        match granularity {
            CostGranularity::Hourly => t + TimeDelta::hours(1),
            CostGranularity::Daily => t + TimeDelta::days(1),
            CostGranularity::Monthly => {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
                    .single()
                    .unwrap_or(t + TimeDelta::days(31))
            }
        }
    };
    let mut out = Vec::new();
    let mut a = floor(range.start);
    while a < range.end {
        let b = next(a);
        out.push((a.max(range.start), b.min(range.end)));
        a = b;
        if out.len() > 1_000_000 {
            return Err(Error::invalid_input(
                "cost query asks for more than a million rows; use a coarser granularity",
            ));
        }
    }
    Ok(out)
}
