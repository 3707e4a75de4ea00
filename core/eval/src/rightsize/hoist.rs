//! Hoist's own recommender: the coming hour's peak, from a few predictors of it, each with a
//! margin learnt from the VM's own past at one price for a short step, the price following a
//! target share of steps short over the VMs.
//!
//! A recommendation is held for one hour and judged on each of that hour's 5-minute steps, so
//! what it must cover is the coming hour's usage. The VPA sizes every VM from a percentile of
//! its long, decaying history with one global margin. Hoist instead, per VM and per resource:
//!
//! - **predicts** the coming hour from three bases: the last hour's peak; the daily cycle (CPU:
//!   the last two hours and yesterday from an hour before the coming hour to an hour after it;
//!   memory: the last six hours and this hour yesterday and a week ago); and the week's peak
//!   (by calendar day, the last eight days);
//! - **learns each base's margin from the VM's own errors**: every scored step adds the ratio
//!   used / base to a histogram (2 % bins, ratios 0.04 to 24; anything past is always short),
//!   weighted with a 14-day half-life. The margin is the one that minimises the expected
//!   slack of a step (a short step counts no slack: being short is never rewarded) plus the
//!   **price** of a short step times the chance of one. One price for every VM is one
//!   Lagrange multiplier: the shortfall goes where it saves the most slack, rather than an
//!   equal share per VM;
//! - **conditions on the spread of recent usage**: the histograms are kept apart by state,
//!   the last hour's peak against the week's peak (≥ 40 %, ≥ 10 %, ≥ 2 %, below), once a
//!   state has 300 steps (the VM's histogram over all states before). An on/off VM idle for
//!   the last hour is sized for its jobs' start, or not, at the price, and when busy it is
//!   sized on the busy hours alone; a flat VM gets a margin of a few per cent;
//! - takes, of the three bases, the one whose learnt size has the least expected cost.
//!
//! Before a base has 100 steps of history, the recommendation is the last hour's peak × 1.5.
//! Sizes are never below 0.025 cores and 16 MiB unless other floors are given
//! ([`HoistRecommender::with_floors`]), and are not capped at what the VM was given
//! (on the Bitbrains panel usage passes it).
//!
//! The main setting is the **target share of steps short** (%, swept from 0.1 to 5; default
//! 0.9). The price is what trades slack for short steps, but how many steps a price leaves
//! short depends on the panel and the period: on Bitbrains the price chosen for 1 % on the
//! first 46 days (14) left 0.49 % of the last 45 days' CPU steps short, half of what was
//! allowed. So the price follows the target instead, CPU's and memory's apart, shared by the
//! VMs: every hour its logarithm moves by a gain × (share short − target) / target, the
//! share being over every VM's steps of an hour, on a grid of prices from 0.5 to 284, from
//! [`DEFAULT_PRICE`]; the gain is 0.5 at first and falls as 1 / (1 + days) to 0.02, so a
//! short panel settles within days. That is integral control: over a long run the share short is the
//! target's on any panel whose target lies within the grid's reach. The VMs are played
//! together, hour by hour ([`Recommender::fleet_member`]), and the price at an hour comes
//! from hours that ended an hour or more before it, so every VM has reported them. A fixed
//! price (in steps of slack, swept from 4 to 40) remains: [`HoistRecommender::new`].
//!
//! Every choice above was made on the first 46 days of the Bitbrains panel (`hoist rightsize
//! --until 46d`), comparing slack at 1 % short: a single histogram per VM without states or
//! the week's peak (CPU ratios of on/off VMs reach 100 ×, so one margin for all hours
//! oversized them: 60.7 % CPU slack, 76.9 % memory at ≤ 1 % short), histogram half-lives of 3,
//! 7, 14 and 60 days, state thresholds, 50 to 300 steps per state, and which bases to offer.
//! The default target, 0.9 %, is the largest of the sweep's whose share short on those days is
//! at most 1 % for both resources (CPU 0.94 %, memory 0.83 %; at 1 %, CPU is 1.04 %).
//!
//! Speed: the histograms are running counts, each step added once (the half-life by weighting
//! later steps more, rather than decaying every bin); the margin is minimised once an hour per
//! base, over the bins with weight only, and kept while its histogram is unchanged (a state
//! not seen for a while) and asked for at the same prices. What is learnt does not depend on
//! the price, so a sweep follows every price or target in one play
//! ([`Recommender::with_settings`]), side by side in the minimisation; following targets, only
//! the grid prices the targets are at are minimised for. The whole Bitbrains panel, VPA and
//! Hoist rows and both sweeps, takes under 2 s in a release build.

use super::panel::Sample;
use super::{Recommendation, Recommender, Setting};

/// The smallest sizes recommended unless other floors are given
/// ([`HoistRecommender::with_floors`]): the VPA's CPU minimum (0.025 cores), and 16 MiB of
/// memory (the VPA's 250 MiB floor is for containers).
pub const MIN_CPU: f64 = 0.025;
/// See [`MIN_CPU`].
pub const MIN_MEM: f64 = 16.0 * 1024.0 * 1024.0;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// The price of a short step a fixed-price recommender is made with when none is given, and
/// the price a target's controller starts from.
pub const DEFAULT_PRICE: f64 = 14.0;

/// The share of steps short (%) the price follows when none is given.
pub const DEFAULT_TARGET: f64 = 0.9;

/// The targets (% of steps short) a frontier sweep tries.
const TARGET_SWEEP: [f64; 12] = [
    0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0,
];

/// The prices a target's controller moves between: `PRICE_GRID` prices from `GRID_LO`, each
/// `GRID_STEP` (in natural logarithm, about 14.5 %) above the one before: 0.5 to 284 (three
/// lanes of 16 in the minimisation).
const PRICE_GRID: usize = 48;
const GRID_LO: f64 = 0.5;
const GRID_STEP: f64 = 0.135;
/// How far the price's logarithm moves per hour for a share of steps short off the target,
/// relative to the target: `GAIN × (share − target) / target`. Set without tuning: offline
/// replays of the Bitbrains panel's hourly outcomes at 0.005, 0.01, 0.02 and 0.05 put the
/// share short within 0.07 points of each other at targets of 0.6, 0.8, 0.9 and 1 %, on
/// either part of the panel.
const GAIN: f64 = 0.02;
/// The gain over the first hours, falling as 1 / (1 + days folded) to [`GAIN`] (after 24
/// days), so that a short panel settles from [`DEFAULT_PRICE`] within days. Chosen on generated
/// panels (1 to 200 VMs, 7 to 60 days, 1- and 5-minute steps), by how near 0.9 % their share
/// short came at a target of 0.9 %: with 0, 0.1, 0.2, 0.5 and 1, CPU 0.62–0.99 %, 0.49–0.97 %,
/// 0.69–0.87 %, 0.80–0.98 % and 0.84–1.15 %, memory 0.46–0.84 %, 0.70–0.90 %, 0.58–0.86 %,
/// 0.81–0.88 % and 0.82–0.89 %. On the first 46 days of the Bitbrains panel the default target
/// stays the largest within 1 % (CPU 0.94 % at 0.9 %, 1.04 % at 1 %).
const GAIN_START: f64 = 0.5;

fn price_grid() -> Vec<f64> {
    (0..PRICE_GRID)
        .map(|k| GRID_LO * (GRID_STEP * k as f64).exp())
        .collect()
}

/// The prices a frontier sweep tries.
const PRICE_SWEEP: [f64; 14] = [
    4.0, 6.0, 8.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 18.0, 20.0, 25.0, 40.0,
];

/// Half-life of the histograms' weights, hours.
const HALF_LIFE_HOURS: f64 = 14.0 * 24.0;
/// Steps a base needs before its histogram is used.
const MIN_STEPS: f64 = 100.0;
/// Steps a state needs before its own histogram is used.
const STATE_STEPS: f64 = 300.0;
/// The margin before a base has `MIN_STEPS`.
const COLD_MARGIN: f64 = 1.5;
/// The states: the last hour's peak against the week's peak, at least each of these.
const STATE_EDGES: [f64; 3] = [0.4, 0.1, 0.02];
const STATES: usize = STATE_EDGES.len() + 1;

/// Histogram bins of ln(used / base): `BINS` bins of `BIN_W` from ln 0.04; the last holds
/// everything past.
const BINS: usize = 320;
const LOG_LO: f64 = -3.218_875_824_868_200_7; // ln 0.04
const BIN_W: f64 = 0.02;
/// Words of a histogram's bitmap of bins with weight.
const WORDS: usize = BINS.div_ceil(64);
/// The bins' upper edges (the multipliers tried) and their inverses.
fn edges() -> &'static ([f64; BINS], [f64; BINS]) {
    static EDGES: std::sync::OnceLock<([f64; BINS], [f64; BINS])> = std::sync::OnceLock::new();
    EDGES.get_or_init(|| {
        let e: [f64; BINS] = std::array::from_fn(|k| (LOG_LO + (k + 1) as f64 * BIN_W).exp());
        (e, e.map(|x| 1.0 / x))
    })
}

/// The bin of a ratio whose natural logarithm is `ln_ratio` (−∞ for 0).
fn bin(ln_ratio: f64) -> usize {
    let k = (ln_ratio - LOG_LO) / BIN_W;
    // Below the range (and −∞, and NaN) is the first bin; `as` saturates past the range.
    if k >= 0.0 {
        (k as usize).min(BINS - 1)
    } else {
        0
    }
}

/// A weighted histogram of a base's ratios used / base.
#[derive(Debug, Clone)]
struct Hist {
    /// Weight per bin.
    w: [f64; BINS],
    /// Weight × ratio per bin.
    wr: [f64; BINS],
    /// The bins with weight, a bit each: the expected cost is only minimised over them.
    filled: [u64; WORDS],
    total: f64,
    steps: f64,
    /// `best` at the prices of `best_at` since the last `add` (empty when stale).
    best: Vec<(f64, f64)>,
    best_at: Vec<f64>,
}

impl Hist {
    fn new() -> Hist {
        Hist {
            w: [0.0; BINS],
            wr: [0.0; BINS],
            filled: [0; WORDS],
            total: 0.0,
            steps: 0.0,
            best: Vec::new(),
            best_at: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.w.fill(0.0);
        self.wr.fill(0.0);
        self.filled = [0; WORDS];
        self.total = 0.0;
        self.steps = 0.0;
        self.best.clear();
    }

    /// Adds the ratio `ratio` (whose logarithm is `ln_ratio`) with `weight`.
    fn add(&mut self, ratio: f64, ln_ratio: f64, weight: f64) {
        let k = bin(ln_ratio);
        self.w[k] += weight;
        self.wr[k] += ratio * weight;
        self.filled[k / 64] |= 1 << (k % 64);
        self.total += weight;
        self.steps += 1.0;
        self.best.clear();
    }

    /// Per price of `prices`, the multiplier (a bin's upper edge) minimising a step's
    /// expected slack (0 when short) plus the price × its chance of being short, with that
    /// expected cost per step; empty when the histogram has no weight. The answer is kept
    /// until the next `add`, for as long as the same prices are asked for.
    fn best(&mut self, prices: &[f64]) -> &[(f64, f64)] {
        if (self.best.is_empty() || self.best_at != prices) && self.total > 0.0 {
            self.minimise(prices);
            self.best_at.clear();
            self.best_at.extend_from_slice(prices);
        }
        &self.best
    }

    fn minimise(&mut self, prices: &[f64]) {
        self.best.clear();
        // A sweep's prices side by side (in lanes the compiler can vectorise), one pass of
        // the bins per 16.
        if let [price] = prices {
            self.scan::<1>(&[*price]);
        } else {
            for chunk in prices.chunks(16) {
                if chunk.len() <= 4 {
                    self.scan::<4>(chunk);
                } else {
                    self.scan::<16>(chunk);
                }
            }
        }
        for best in &mut self.best {
            best.0 /= self.total;
        }
    }

    /// `minimise` for up to `N` prices: appends (cost, multiplier) per price to `best`.
    fn scan<const N: usize>(&mut self, prices: &[f64]) {
        let (edges, inverse) = edges();
        let mut price = [0.0; N];
        price[..prices.len()].copy_from_slice(prices);
        let mut least = [f64::INFINITY; N];
        let mut at = [0.0; N];
        let (mut w, mut wr) = (0.0, 0.0);
        // The cost at bin k is w − wr / edge + price × (total − w), with w and wr summed up to
        // k: past a bin with weight it only grows until the next one (the edge grows, w and wr
        // stay), so only the first bin and those with weight are tried, in order (the first
        // of equal costs is kept). The last bin holds every ratio past the range: always
        // short, never tried.
        for (word, &bits) in self.filled.iter().enumerate() {
            let mut bits = bits;
            if word == 0 {
                bits |= 1;
            }
            if word == WORDS - 1 {
                bits &= u64::MAX >> (63 - (BINS - 1) % 64) >> 1;
            }
            while bits != 0 {
                let k = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                w += self.w[k];
                wr += self.wr[k];
                let slack = w - wr * inverse[k];
                let short = self.total - w;
                let k = k as f64;
                for j in 0..N {
                    let cost = slack + price[j] * short;
                    let better = cost < least[j];
                    least[j] = if better { cost } else { least[j] };
                    at[j] = if better { k } else { at[j] };
                }
            }
        }
        self.best.extend(
            least
                .iter()
                .zip(at)
                .take(prices.len())
                .map(|(&cost, k)| (cost, edges[k as usize])),
        );
    }
}

/// The bases: windows relative to the hour, the largest peak among them (`WEEK` is the
/// week's peak, kept by calendar day).
const LAST_HOUR: &[(i64, i64)] = &[(-HOUR, 0)];
const CPU_DAILY: &[(i64, i64)] = &[(-2 * HOUR, 0), (-DAY - HOUR, -DAY + 2 * HOUR)];
const MEM_DAILY: &[(i64, i64)] = &[
    (-6 * HOUR, 0),
    (-DAY, -DAY + HOUR),
    (-7 * DAY, -7 * DAY + HOUR),
];
const WEEK: &[(i64, i64)] = &[];

fn state(last_hour: f64, week: f64) -> usize {
    let r = last_hour / week.max(1e-12);
    STATE_EDGES
        .iter()
        .position(|&e| r >= e)
        .unwrap_or(STATES - 1)
}

/// One base of one resource: its histograms (one per state, then all states) and the base
/// it predicted for the hour being played.
#[derive(Debug, Clone)]
struct Track {
    windows: &'static [(i64, i64)],
    hists: Vec<Hist>,
    /// The base predicted for the hour being played, and its logarithm.
    pending: Option<(f64, f64)>,
}

/// One resource of the VM being followed.
#[derive(Debug, Clone)]
struct Resource {
    memory: bool,
    /// The smallest size recommended (cores or bytes).
    floor: f64,
    tracks: Vec<Track>,
    /// The state of the hour being played.
    pending_state: usize,
    /// Peak per calendar day (day, peak), the last eight days.
    days: Vec<(i64, f64)>,
    /// Scratch: per price, the least expected cost of a base.
    costs: Vec<f64>,
}

impl Resource {
    fn new(memory: bool, floor: f64) -> Resource {
        let daily = if memory { MEM_DAILY } else { CPU_DAILY };
        Resource {
            memory,
            floor,
            tracks: [LAST_HOUR, daily, WEEK]
                .into_iter()
                .map(|windows| Track {
                    windows,
                    hists: vec![Hist::new(); STATES + 1],
                    pending: None,
                })
                .collect(),
            pending_state: 0,
            days: Vec::new(),
            costs: Vec::new(),
        }
    }

    fn clear(&mut self) {
        for t in &mut self.tracks {
            t.hists.iter_mut().for_each(Hist::clear);
            t.pending = None;
        }
        self.days.clear();
    }

    fn value(&self, s: &Sample) -> f64 {
        if self.memory { s.mem } else { s.cpu }
    }

    /// A step of the hour being played: learnt against each base predicted for it when
    /// `weight` > 0.
    fn observe(&mut self, s: &Sample, weight: f64) {
        let used = self.value(s);
        let day = s.at.div_euclid(DAY);
        match self.days.last_mut() {
            Some((d, p)) if *d == day => *p = p.max(used),
            _ => {
                self.days.push((day, used));
                if self.days.len() > 8 {
                    self.days.remove(0);
                }
            }
        }
        if weight <= 0.0 {
            return;
        }
        let st = self.pending_state;
        let ln_used = used.ln();
        for t in &mut self.tracks {
            if let Some((b, ln_b)) = t.pending {
                let (ratio, ln_ratio) = (used / b, ln_used - ln_b);
                t.hists[st].add(ratio, ln_ratio, weight);
                t.hists[STATES].add(ratio, ln_ratio, weight);
            }
        }
    }

    /// The peak of the samples in the windows around `at`.
    fn peak(&self, past: &[Sample], at: i64, windows: &[(i64, i64)]) -> Option<f64> {
        let mut peak: Option<f64> = None;
        for &(from, until) in windows {
            let start = past.partition_point(|s| s.at < at + from);
            let end = past.partition_point(|s| s.at < at + until);
            for s in &past[start..end.max(start)] {
                let v = self.value(s);
                peak = Some(peak.map_or(v, |p| p.max(v)));
            }
        }
        peak
    }

    /// The size for the hour from `at` at each of `prices`, into `sizes`; sets the bases and
    /// state it is learnt by. False (and `sizes` untouched) without a sample before `at`.
    fn recommend(&mut self, at: i64, past: &[Sample], prices: &[f64], sizes: &mut [f64]) -> bool {
        let floor = self.floor;
        // The last hour's peak; after a gap, the last twelve samples'.
        let Some(last_hour) = self.peak(past, at, LAST_HOUR).or_else(|| {
            past[past.len().saturating_sub(12)..]
                .iter()
                .map(|s| self.value(s))
                .reduce(f64::max)
        }) else {
            return false;
        };
        let day = at.div_euclid(DAY);
        let week = self
            .days
            .iter()
            .filter(|(d, _)| *d > day - 8)
            .map(|(_, p)| *p)
            .fold(last_hour, f64::max)
            .max(floor);
        let st = state(last_hour.max(floor), week);
        self.pending_state = st;
        // Per price, the least expected cost of a base so far (the first of equal ones kept).
        let mut costs = std::mem::take(&mut self.costs);
        costs.clear();
        costs.resize(prices.len(), f64::INFINITY);
        let mut learnt = false;
        for i in 0..self.tracks.len() {
            let windows = self.tracks[i].windows;
            let b = if windows.is_empty() {
                week
            } else if windows == LAST_HOUR {
                last_hour.max(floor)
            } else {
                self.peak(past, at, windows).unwrap_or(last_hour).max(floor)
            };
            let t = &mut self.tracks[i];
            t.pending = Some((b, b.ln()));
            let h = if t.hists[st].steps >= STATE_STEPS {
                &mut t.hists[st]
            } else {
                &mut t.hists[STATES]
            };
            if h.steps < MIN_STEPS {
                continue;
            }
            for ((&(cost, m), least), size) in
                h.best(prices).iter().zip(&mut costs).zip(&mut *sizes)
            {
                if !learnt || cost < *least {
                    (*least, *size) = (cost, b * m);
                }
            }
            learnt |= h.total > 0.0;
        }
        self.costs = costs;
        for size in sizes.iter_mut() {
            if !learnt {
                *size = last_hour * COLD_MARGIN;
            }
            *size = size.max(floor);
        }
        true
    }
}

/// What the VMs of a fleet share when the price follows a target share of short steps: per
/// target and per resource (CPU, memory), the price's logarithm, and the steps and short
/// steps each VM reported per hour, not yet folded into it.
#[derive(Debug)]
struct Fleet {
    /// The targets, fractions of steps short.
    targets: Vec<f64>,
    /// Per target: the logarithm of CPU's and memory's price.
    ln_price: Vec<[f64; 2]>,
    /// Per hour played: per target and resource, (steps, short steps) over the VMs.
    reported: std::collections::BTreeMap<i64, Vec<[(f64, f64); 2]>>,
    /// Hours folded so far.
    folded: f64,
}

impl Fleet {
    fn new(targets: &[f64]) -> Fleet {
        Fleet {
            targets: targets.to_vec(),
            ln_price: vec![[DEFAULT_PRICE.ln(); 2]; targets.len()],
            reported: std::collections::BTreeMap::new(),
            folded: 0.0,
        }
    }

    /// A VM's outcome for the hour from `hour`: per target and resource, (steps, short).
    fn report(&mut self, hour: i64, outcome: &[[(f64, f64); 2]]) {
        let sums = self
            .reported
            .entry(hour)
            .or_insert_with(|| vec![[(0.0, 0.0); 2]; self.targets.len()]);
        for (sum, o) in sums.iter_mut().zip(outcome) {
            for r in 0..2 {
                sum[r].0 += o[r].0;
                sum[r].1 += o[r].1;
            }
        }
    }

    /// Per target, the grid index of CPU's and memory's price for the hour from `at`. The
    /// hours that ended an hour or more before `at` are folded in first: played together, every
    /// VM has reported them (a VM reports an hour when it is asked for the next), so the price
    /// at an hour is the same whichever VM asks first.
    fn indices(&mut self, at: i64) -> Vec<[usize; 2]> {
        while let Some(entry) = self.reported.first_entry() {
            if *entry.key() > at - 2 * HOUR {
                break;
            }
            let sums = entry.remove();
            let gain = GAIN.max(GAIN_START / (1.0 + self.folded / 24.0));
            self.folded += 1.0;
            for ((ln, sum), &target) in self.ln_price.iter_mut().zip(&sums).zip(&self.targets) {
                for r in 0..2 {
                    let (steps, short) = sum[r];
                    if steps > 0.0 {
                        let off = (short / steps - target) / target;
                        ln[r] = (ln[r] + gain * off).clamp(
                            GRID_LO.ln(),
                            GRID_LO.ln() + GRID_STEP * (PRICE_GRID - 1) as f64,
                        );
                    }
                }
            }
        }
        self.ln_price
            .iter()
            .map(|ln| {
                ln.map(|l| {
                    (((l - GRID_LO.ln()) / GRID_STEP).round().max(0.0) as usize).min(PRICE_GRID - 1)
                })
            })
            .collect()
    }
}

/// How the price of a short step is set.
#[derive(Debug, Clone)]
enum Pricing {
    /// Fixed: the recommender's prices are the ones given.
    Fixed,
    /// Following targets: the recommender's prices are the grid, and per target a fleet-wide
    /// price (shared by every member) picks the size from it.
    Targets {
        /// The targets, % of steps short.
        targets: Vec<f64>,
        fleet: std::sync::Arc<std::sync::Mutex<Fleet>>,
        /// Per target, the size held for the hour being played.
        held: Vec<Recommendation>,
    },
}

/// Hoist's recommender (see the module docs).
#[derive(Debug, Clone)]
pub struct HoistRecommender {
    /// The prices of a short step it sizes at: one, or a sweep's (see
    /// [`Recommender::with_settings`]), the first being its main setting; or, following
    /// targets, the grid the targets' prices move on.
    prices: Vec<f64>,
    pricing: Pricing,
    has_memory: bool,
    cpu: Resource,
    mem: Resource,
    /// The smallest CPU (cores) and memory (bytes) recommended.
    floors: (f64, f64),
    /// The sizes at each price from the last call.
    cpu_sizes: Vec<f64>,
    mem_sizes: Vec<f64>,
    /// Samples of the VM seen by the previous call.
    seen: usize,
    /// The previous call's hour.
    last_at: Option<i64>,
    /// The VM's first call (the weights grow from it).
    first_at: Option<i64>,
}

impl HoistRecommender {
    /// With `price` the price of a short step, in steps of slack (at least 0.1;
    /// [`DEFAULT_PRICE`] is the one chosen on Bitbrains).
    pub fn new(price: f64, has_memory: bool) -> Self {
        HoistRecommender::with_prices(&[price], has_memory, (MIN_CPU, MIN_MEM))
    }

    /// The same, never recommending less than `cpu` cores and `mem` bytes (by default
    /// [`MIN_CPU`] and [`MIN_MEM`]); a floor that is not a positive number keeps its default.
    pub fn with_floors(self, cpu: f64, mem: f64) -> Self {
        let keep = |x: f64, default: f64| if x.is_finite() && x > 0.0 { x } else { default };
        let values = match &self.pricing {
            Pricing::Fixed => self.prices.clone(),
            Pricing::Targets { targets, .. } => targets.clone(),
        };
        HoistRecommender {
            floors: (keep(cpu, MIN_CPU), keep(mem, MIN_MEM)),
            ..self
        }
        .at(&values)
    }

    /// Following every price of `prices` at once (at least one): what is learnt does not
    /// depend on the price, only the size chosen from it.
    fn with_prices(prices: &[f64], has_memory: bool, floors: (f64, f64)) -> Self {
        let mut prices: Vec<f64> = prices
            .iter()
            .map(|&p| {
                if p.is_finite() {
                    p.max(0.1)
                } else {
                    DEFAULT_PRICE
                }
            })
            .collect();
        if prices.is_empty() {
            prices.push(DEFAULT_PRICE);
        }
        HoistRecommender {
            cpu_sizes: vec![0.0; prices.len()],
            mem_sizes: vec![0.0; prices.len()],
            prices,
            pricing: Pricing::Fixed,
            has_memory,
            cpu: Resource::new(false, floors.0),
            mem: Resource::new(true, floors.1),
            floors,
            seen: 0,
            last_at: None,
            first_at: None,
        }
    }

    /// With the price of a short step following `target`, the share of steps short (%) it
    /// keeps the VMs at: each hour the price (CPU's and memory's apart) moves by the share of
    /// the VMs' steps that were short, on a grid from 0.5 to 284, starting from [`DEFAULT_PRICE`].
    /// The VMs share it: play them together ([`Recommender::fleet_member`]). A target that is
    /// not a number above 0 is [`DEFAULT_TARGET`].
    pub fn with_target(target: f64, has_memory: bool) -> Self {
        HoistRecommender::with_prices(&[DEFAULT_PRICE], has_memory, (MIN_CPU, MIN_MEM))
            .following(&[target])
    }

    /// The same sizes learnt, the price following each of `targets` (%) instead.
    fn following(self, targets: &[f64]) -> Self {
        let mut targets: Vec<f64> = targets
            .iter()
            .map(|&t| {
                if t.is_finite() && t > 0.0 {
                    t.min(100.0)
                } else {
                    DEFAULT_TARGET
                }
            })
            .collect();
        if targets.is_empty() {
            targets.push(DEFAULT_TARGET);
        }
        let grid = price_grid();
        let fractions: Vec<f64> = targets.iter().map(|t| t / 100.0).collect();
        HoistRecommender {
            cpu_sizes: vec![0.0; grid.len()],
            mem_sizes: vec![0.0; grid.len()],
            prices: grid,
            pricing: Pricing::Targets {
                fleet: std::sync::Arc::new(std::sync::Mutex::new(Fleet::new(&fractions))),
                held: Vec::new(),
                targets,
            },
            ..self
        }
    }

    /// Per target, the steps played and those short, CPU's and memory's, of the hour the
    /// previous call sized, against the sizes held for it; empty when not following targets
    /// or nothing was held.
    fn outcome(&self, hour: &[Sample]) -> Vec<[(f64, f64); 2]> {
        let Pricing::Targets { held, .. } = &self.pricing else {
            return Vec::new();
        };
        held.iter()
            .map(|size| {
                let mut o = [(0.0, 0.0); 2];
                for s in hour {
                    o[0].0 += 1.0;
                    o[0].1 += f64::from(u8::from(s.cpu > size.cpu));
                    if self.has_memory {
                        o[1].0 += 1.0;
                        o[1].1 += f64::from(u8::from(s.mem > size.mem));
                    }
                }
                o
            })
            .collect()
    }

    /// Learns from the steps since the previous call and sizes the hour from `at` at every
    /// price, into `cpu_sizes` and `mem_sizes`; false when it cannot tell yet.
    fn play(&mut self, at: i64, past: &[Sample]) -> bool {
        let first = *self.first_at.get_or_insert(at);
        // Later steps weigh more: a half-life without decaying every bin every hour.
        let weight = 2f64.powf((at - first) as f64 / HOUR as f64 / HALF_LIFE_HOURS);
        // The steps since the previous call are the hour it sized: learn from them.
        let new = &past[self.seen.min(past.len())..];
        for s in new {
            let played = self
                .last_at
                .is_some_and(|last| s.at >= last && s.at < last + HOUR);
            let w = if played { weight } else { 0.0 };
            self.cpu.observe(s, w);
            if self.has_memory {
                self.mem.observe(s, w);
            }
        }
        if let (Some(last), Pricing::Targets { fleet, .. }) = (self.last_at, &self.pricing) {
            let hour = &new[new.partition_point(|s| s.at < last)..];
            let hour = &hour[..hour.partition_point(|s| s.at < last + HOUR)];
            let outcome = self.outcome(hour);
            if !hour.is_empty()
                && !outcome.is_empty()
                && let Ok(mut fleet) = fleet.lock()
            {
                fleet.report(last, &outcome);
            }
        }
        self.seen = past.len();
        self.last_at = Some(at);
        let has_memory = self.has_memory;
        let Pricing::Targets { fleet, held, .. } = &mut self.pricing else {
            let sized = self
                .cpu
                .recommend(at, past, &self.prices, &mut self.cpu_sizes)
                && (!has_memory
                    || self
                        .mem
                        .recommend(at, past, &self.prices, &mut self.mem_sizes));
            if !has_memory {
                self.mem_sizes.fill(0.0);
            }
            return sized;
        };
        // Following targets: sized only at the grid's prices the targets are at now.
        held.clear();
        let Ok(indices) = fleet.lock().map(|mut f| f.indices(at)) else {
            return false;
        };
        let at_grid = |r: usize| {
            let mut ks: Vec<usize> = indices.iter().map(|i| i[r]).collect();
            ks.sort_unstable();
            ks.dedup();
            ks
        };
        let (cpu_ks, mem_ks) = (at_grid(0), at_grid(1));
        let prices = |ks: &[usize]| ks.iter().map(|&k| self.prices[k]).collect::<Vec<f64>>();
        let (cpu_prices, mem_prices) = (prices(&cpu_ks), prices(&mem_ks));
        let sized = self.cpu.recommend(
            at,
            past,
            &cpu_prices,
            &mut self.cpu_sizes[..cpu_prices.len()],
        ) && (!has_memory
            || self.mem.recommend(
                at,
                past,
                &mem_prices,
                &mut self.mem_sizes[..mem_prices.len()],
            ));
        if sized {
            held.extend(indices.iter().map(|&[c, m]| Recommendation {
                cpu: self.cpu_sizes[cpu_ks.partition_point(|&k| k < c)],
                mem: if has_memory {
                    self.mem_sizes[mem_ks.partition_point(|&k| k < m)]
                } else {
                    0.0
                },
            }));
        }
        !held.is_empty()
    }

    /// The size at the `i`th setting after a call to `play` that sized the hour.
    fn size(&self, i: usize) -> Option<Recommendation> {
        match &self.pricing {
            Pricing::Fixed => (i < self.prices.len()).then(|| Recommendation {
                cpu: self.cpu_sizes[i],
                mem: self.mem_sizes[i],
            }),
            Pricing::Targets { held, .. } => held.get(i).copied(),
        }
    }

    /// The main setting's value: the first price, or the first target.
    fn setting(&self) -> f64 {
        match &self.pricing {
            Pricing::Fixed => self.prices[0],
            Pricing::Targets { targets, .. } => targets[0],
        }
    }

    /// A fresh recommender like this one at `values` of its main setting.
    fn at(&self, values: &[f64]) -> HoistRecommender {
        match &self.pricing {
            Pricing::Fixed => HoistRecommender::with_prices(values, self.has_memory, self.floors),
            Pricing::Targets { .. } => {
                HoistRecommender::with_prices(&[DEFAULT_PRICE], self.has_memory, self.floors)
                    .following(values)
            }
        }
    }
}

impl Recommender for HoistRecommender {
    fn name(&self) -> String {
        "hoist".into()
    }

    fn describe(&self) -> String {
        let pricing = match &self.pricing {
            Pricing::Fixed => format!("short step priced at {} steps of slack", self.prices[0]),
            Pricing::Targets { targets, .. } => format!(
                "the price of a short step following {} % of steps short over the VMs",
                targets[0]
            ),
        };
        format!(
            "per VM, the last hour's, the daily cycle's or the week's peak × a margin learnt from the VM's own past, by state; {pricing}{}",
            if self.floors == (MIN_CPU, MIN_MEM) {
                String::new()
            } else {
                format!(
                    "; floors {} cores, {} MiB",
                    self.floors.0,
                    self.floors.1 / (1024.0 * 1024.0)
                )
            }
        )
    }

    fn main_setting(&self) -> Option<Setting> {
        Some(match &self.pricing {
            Pricing::Fixed => Setting {
                name: "price of a short step".into(),
                value: self.setting(),
                sweep: PRICE_SWEEP.to_vec(),
            },
            Pricing::Targets { .. } => Setting {
                name: "target % of steps short".into(),
                value: self.setting(),
                sweep: TARGET_SWEEP.to_vec(),
            },
        })
    }

    fn with_setting(&self, value: f64) -> Box<dyn Recommender> {
        Box::new(self.at(&[value]))
    }

    fn with_settings(&self, values: &[f64]) -> Option<Box<dyn Recommender>> {
        Some(Box::new(self.at(values)))
    }

    fn fleet_member(&self) -> Option<Box<dyn Recommender>> {
        let Pricing::Targets { .. } = self.pricing else {
            return None;
        };
        let mut member = self.clone();
        member.start();
        Some(Box::new(member))
    }

    fn start(&mut self) {
        self.cpu.clear();
        self.mem.clear();
        self.seen = 0;
        self.last_at = None;
        self.first_at = None;
        if let Pricing::Targets { held, .. } = &mut self.pricing {
            held.clear();
        }
    }

    fn recommend(&mut self, at: i64, past: &[Sample]) -> Option<Recommendation> {
        if self.play(at, past) {
            self.size(0)
        } else {
            None
        }
    }

    fn recommend_all(&mut self, at: i64, past: &[Sample], out: &mut [Option<Recommendation>]) {
        let sized = self.play(at, past);
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = if sized { self.size(i) } else { None };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::score::SweepPoint;
    use super::*;

    fn sample(at: i64, cpu: f64, mem: f64) -> Sample {
        Sample {
            at,
            cpu,
            cpu_given: 4.0,
            mem,
            mem_given: 8e9,
        }
    }

    /// Plays `r` over `samples` the way the scorer does, returning each hour's size.
    fn play(r: &mut HoistRecommender, samples: &[Sample]) -> Vec<(i64, Option<Recommendation>)> {
        r.start();
        let mut out = Vec::new();
        let mut i = 0;
        while i < samples.len() {
            let h = samples[i].at.div_euclid(HOUR) * HOUR;
            let mut j = i;
            while j < samples.len() && samples[j].at < h + HOUR {
                j += 1;
            }
            out.push((h, r.recommend(h, &samples[..i])));
            i = j;
        }
        out
    }

    const DAY0: i64 = 1_700_006_400; // a UTC midnight

    #[test]
    fn a_cold_start_is_the_last_hours_peak_with_half_again_by_hand() {
        // Nothing before: no size. Then one hour at 1 core and 1 GB, 2 cores at 00:30:
        // 2 × 1.5 = 3 cores, 1.5 GB.
        let mut r = HoistRecommender::new(DEFAULT_PRICE, true);
        assert!(r.recommend(DAY0, &[]).is_none());
        let past: Vec<Sample> = (0..12)
            .map(|i| sample(DAY0 + 300 * i, if i == 6 { 2.0 } else { 1.0 }, 1e9))
            .collect();
        let rec = r.recommend(DAY0 + HOUR, &past).unwrap();
        assert!((rec.cpu - 3.0).abs() < 1e-9, "{rec:?}");
        assert!((rec.mem - 1.5e9).abs() < 1.0, "{rec:?}");
        // Idle: the floors.
        let mut r = HoistRecommender::new(DEFAULT_PRICE, true);
        r.start();
        let idle = [sample(DAY0, 0.0, 0.0)];
        let rec = r.recommend(DAY0 + 300, &idle).unwrap();
        assert_eq!((rec.cpu, rec.mem), (MIN_CPU, MIN_MEM));
    }

    #[test]
    fn the_floors_given_hold_at_every_price_of_a_sweep() {
        // Two days at 0.0002 cores and 2 MiB: the sizes are at the floors, the defaults or
        // those given, at the row's price and at each price of a sweep made from it.
        let idle: Vec<Sample> = (0..2 * 288)
            .map(|i| sample(DAY0 + 300 * i, 0.0002, 2.0 * 1024.0 * 1024.0))
            .collect();
        let sizes = |r: &mut dyn Recommender| {
            r.start();
            let mut out = [None, None];
            r.recommend_all(DAY0 + 2 * DAY, &idle, &mut out);
            out.map(Option::unwrap)
        };
        let default = HoistRecommender::new(DEFAULT_PRICE, true);
        let row = default.clone().recommend(DAY0 + 2 * DAY, &idle).unwrap();
        assert_eq!((row.cpu, row.mem), (MIN_CPU, MIN_MEM));
        // Not positive numbers: the defaults are kept.
        let kept = HoistRecommender::new(DEFAULT_PRICE, true).with_floors(0.0, f64::NAN);
        assert_eq!(kept.floors, (MIN_CPU, MIN_MEM));
        let low = default.with_floors(0.001, 1024.0 * 1024.0);
        let mut sweep = low.with_settings(&[4.0, 40.0]).unwrap();
        for rec in sizes(sweep.as_mut()) {
            assert_eq!(rec.cpu, 0.001, "{rec:?}");
            // Nothing learnt in one call: the last hour's 2 MiB × 1.5, over the 1 MiB floor.
            assert!((rec.mem - 3.0 * 1024.0 * 1024.0).abs() < 1e-6, "{rec:?}");
        }
        let one = low.with_setting(40.0);
        assert!(one.describe().contains("floors 0.001 cores, 1 MiB"));
    }

    #[test]
    fn a_flat_vm_gets_a_margin_of_one_bin() {
        // Three days at exactly 2 cores and 3 GB: every ratio is 1, so the margin is the edge
        // of 1's bin, less than 2 % over.
        let samples: Vec<Sample> = (0..3 * 288)
            .map(|i| sample(DAY0 + 300 * i, 2.0, 3e9))
            .collect();
        let mut r = HoistRecommender::new(DEFAULT_PRICE, true);
        let sizes = play(&mut r, &samples);
        let (_, last) = sizes.last().unwrap();
        let last = last.unwrap();
        assert!(last.cpu >= 2.0 && last.cpu < 2.0 * 1.021, "{last:?}");
        assert!(last.mem >= 3e9 && last.mem < 3e9 * 1.021, "{last:?}");
    }

    /// Scores `swept` at every value of its main setting in one play, and checks each
    /// value's score is exactly that of `alone(value)`; returns the sweep.
    fn sweep_matches_alone(
        panel: &super::super::panel::Panel,
        swept: &HoistRecommender,
        alone: impl Fn(f64) -> HoistRecommender,
    ) -> Vec<SweepPoint> {
        use super::super::score::{ScoreOptions, score_recommender, sweep};
        let opts = ScoreOptions::default();
        let points = sweep(panel, swept, &opts, 1);
        let values = swept.main_setting().unwrap().sweep;
        assert_eq!(points.len(), values.len());
        for point in &points {
            let one = score_recommender(panel, Box::new(alone(point.value)), &opts);
            assert_eq!(point.score, one, "at {}", point.value);
        }
        points
    }

    #[test]
    fn a_sweep_played_at_once_matches_each_price_alone() {
        // Two noisy VMs with daily jobs, 20 days: the sweep followed in one play gives, at
        // every price, exactly the score of the recommender at that price alone.
        let points = sweep_matches_alone(
            &noisy_panel(2, 20),
            &HoistRecommender::new(DEFAULT_PRICE, true),
            |price| HoistRecommender::new(price, true),
        );
        assert_eq!(points.len(), PRICE_SWEEP.len());
        // The prices matter: the dearest short step is short least often.
        let short = |p: &SweepPoint| p.score.cpu.shortfall;
        assert!(short(&points[0]) > short(points.last().unwrap()));
    }

    /// `vms` noisy VMs of `days` days: a base load with 5-minute noise, an hourly job on
    /// some, and rare bursts, so that every price leaves some steps short.
    fn noisy_panel(vms: i64, days: i64) -> super::super::panel::Panel {
        use super::super::panel::{Columns, Panel, PanelFormat, VmSeries};
        let mut seed: u64 = 11;
        let mut noise = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let vms = (0..vms)
            .map(|v| VmSeries {
                vm: format!("vm-{v}"),
                samples: (0..days * 288)
                    .map(|i| {
                        let t = DAY0 + 300 * i;
                        let hour = (t - DAY0).rem_euclid(DAY) / HOUR;
                        let job = if v % 2 == 0 && hour == 3 + v {
                            3.0
                        } else {
                            0.0
                        };
                        let burst = if noise() < 0.02 {
                            1.0 + 3.0 * noise()
                        } else {
                            0.0
                        };
                        let cpu = 0.2 + 0.4 * noise() + job + burst;
                        sample(
                            t,
                            cpu,
                            1e9 * (1.0 + 0.5 * noise() + job / 4.0 + burst / 8.0),
                        )
                    })
                    .collect(),
            })
            .collect();
        Panel {
            name: "noisy".into(),
            format: PanelFormat::Generic,
            columns: Columns {
                cpu_given: true,
                memory: true,
                mem_given: true,
            },
            vms,
            step_seconds: 300,
            rows: 0,
            off_rows: 0,
        }
    }

    #[test]
    fn the_share_of_steps_short_follows_the_target_over_the_vms() {
        // Six noisy VMs, 40 days, the first 10 not scored (the price is still finding its
        // level): at each target the share short over the VMs is near it, CPU and memory
        // alike, while one fixed price leaves whatever share the panel gives.
        use super::super::score::{ScoreOptions, score_recommender};
        let panel = noisy_panel(6, 40);
        let opts = ScoreOptions {
            from: Some(DAY0 + 10 * DAY),
            ..ScoreOptions::default()
        };
        let mut shares = Vec::new();
        for target in [0.5, 2.0, 5.0] {
            let s = score_recommender(
                &panel,
                Box::new(HoistRecommender::with_target(target, true)),
                &opts,
            );
            for short in [s.cpu.shortfall, s.memory.as_ref().unwrap().shortfall] {
                let share = short * 100.0;
                assert!(
                    (share - target).abs() <= 0.2 * target,
                    "target {target} %: {share} %"
                );
            }
            shares.push(s.cpu.shortfall);
        }
        let fixed = score_recommender(
            &panel,
            Box::new(HoistRecommender::new(DEFAULT_PRICE, true)),
            &opts,
        );
        assert!(
            shares
                .iter()
                .all(|s| (s - fixed.cpu.shortfall).abs() > 0.002),
            "{shares:?} {}",
            fixed.cpu.shortfall
        );
    }

    #[test]
    fn a_fleet_price_moves_only_on_hours_every_vm_has_reported() {
        // An hour all short is reported (twice: two VMs); asked for the hour after it, the
        // price has not moved (a VM reports an hour when asked for the next, so not every VM
        // may have yet); asked an hour later, it has risen, CPU only.
        let mut fleet = Fleet::new(&[0.01]);
        let start = fleet.indices(DAY0);
        fleet.report(DAY0, &[[(12.0, 12.0), (12.0, 0.0)]]);
        fleet.report(DAY0, &[[(12.0, 12.0), (12.0, 0.0)]]);
        assert_eq!(fleet.indices(DAY0 + HOUR), start);
        let moved = fleet.indices(DAY0 + 2 * HOUR);
        assert!(moved[0][0] > start[0][0], "{start:?} {moved:?}");
        assert!(moved[0][1] <= start[0][1], "{start:?} {moved:?}");
        // Hours on target leave it; a long run with none short takes it to the grid's floor.
        fleet.report(DAY0 + HOUR, &[[(100.0, 1.0), (100.0, 1.0)]]);
        assert_eq!(fleet.indices(DAY0 + 3 * HOUR), moved);
        for h in 3..400 {
            fleet.report(DAY0 + h * HOUR, &[[(12.0, 0.0), (12.0, 0.0)]]);
        }
        assert_eq!(fleet.indices(DAY0 + 500 * HOUR), vec![[0, 0]]);
    }

    #[test]
    fn a_target_sweep_played_at_once_matches_each_target_alone() {
        let points = sweep_matches_alone(
            &noisy_panel(3, 12),
            &HoistRecommender::with_target(DEFAULT_TARGET, true),
            |target| HoistRecommender::with_target(target, true),
        );
        assert_eq!(points.len(), TARGET_SWEEP.len());
        // The targets matter: the lowest is short least often.
        let short = |p: &SweepPoint| p.score.cpu.shortfall;
        assert!(short(&points[0]) < short(points.last().unwrap()));
    }

    #[test]
    fn a_daily_job_is_foreseen_and_the_idle_hours_stay_small() {
        // An on/off VM: idle at 0.05 cores, a 1-hour job at 8 cores from 05:30 each day. The
        // daily base (yesterday from 04:00 to 07:00) sees the job coming: the 05:00 hour is
        // sized for it, the 14:00 hour stays near idle.
        let samples: Vec<Sample> = (0..20 * 288)
            .map(|i| {
                let t = DAY0 + 300 * i;
                let minute = (t - DAY0).rem_euclid(DAY) / 60;
                let busy = (330..390).contains(&minute);
                sample(t, if busy { 8.0 } else { 0.05 }, 1e9)
            })
            .collect();
        let mut r = HoistRecommender::new(DEFAULT_PRICE, true);
        let sizes = play(&mut r, &samples);
        let at = |hour: i64| {
            sizes
                .iter()
                .find(|(h, _)| *h == DAY0 + 19 * DAY + hour * HOUR)
                .and_then(|(_, r)| *r)
                .unwrap()
                .cpu
        };
        assert!(at(5) >= 8.0 && at(5) < 8.5, "{}", at(5));
        assert!(at(14) < 0.1, "{}", at(14));
    }
}
