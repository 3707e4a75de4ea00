//! The predictive policy: its vote inside the pure engine, and [`PredictiveForecast`], the state
//! its callers (the control loop, the replay) keep to produce the forecast the engine reads.
//!
//! The engine never fits a model: the caller feeds the policy's load metric to a
//! [`PredictiveForecast`], asks it for the forecast at each evaluation (it refits only every
//! `refresh`) and passes the points, in instances needed, in
//! [`Observation::forecast`](super::Observation), or, when there is no usable forecast, the
//! reason in [`Observation::forecast_note`](super::Observation).
//!
//! The vote: the capacity needed over `[now, now + buffer]` is the largest forecast in that
//! window (the point forecast, or the upper bound at the configured quantile) × (1 + margin),
//! rounded up. Above the current capacity it votes to scale out to it; at or below, it does not
//! vote for a change, but a scale-in the reactive policies agree on stops at that need (the
//! forecast acts as a floor, as AWS predictive scaling's minimum capacity does).

use std::collections::VecDeque;
use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Timelike, Utc};

use super::{ForecastPoint, Observation};
use crate::config::{MaxCapacity, Predictive, PredictiveMode};
use crate::forecast::{Forecaster, ForecasterConfig, QualityConfig};
use crate::model::{MetricKind, Sample};

/// What the predictive policy says to the merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PredictiveVote {
    /// Scale out to this many.
    Out(u32),
    /// No scale-out; a scale-in stops at this many.
    Floor(u32),
    /// No vote at all.
    Abstain,
}

/// The predictive policy's vote and its explanation. `current` is the group's desired capacity,
/// `ceiling` the effective max (used for `max_capacity: raise_by_percent`). Returns the vote,
/// the raised ceiling when the policy may go above max, and the message.
pub(crate) fn vote(
    policy: &Predictive,
    observation: &Observation<'_>,
    ceiling: u32,
) -> (PredictiveVote, Option<u32>, String) {
    let current = observation.group.desired;
    let Some(points) = observation.forecast.filter(|p| !p.is_empty()) else {
        let why = observation
            .forecast_note
            .unwrap_or("no forecast was supplied");
        return (
            PredictiveVote::Abstain,
            None,
            format!("falling back to reactive: {why}"),
        );
    };
    let now = observation.now;
    let until = now + policy.buffer.as_delta();
    // The largest finite need in the window (the last of equals), by index.
    let mut largest: Option<(usize, f64)> = None;
    for (i, p) in window_points(points, now, until) {
        let v = if policy.quantile.is_some() {
            p.upper.unwrap_or(p.instances).max(p.instances)
        } else {
            p.instances
        };
        if v.is_finite() && largest.is_none_or(|(_, l)| v.total_cmp(&l).is_ge()) {
            largest = Some((i, v));
        }
    }
    let Some((at, load)) = largest.map(|(i, v)| (points[i].at, v)) else {
        return (
            PredictiveVote::Abstain,
            None,
            format!(
                "falling back to reactive: the forecast does not cover {} to {}",
                now.format("%Y-%m-%d %H:%M"),
                until.format("%H:%M")
            ),
        );
    };
    let planned = load.max(0.0) * (1.0 + policy.margin);
    let needed = ceil_instances(planned);
    let what = if policy.quantile.is_some() {
        "upper bound"
    } else {
        "forecast"
    };
    let by = at.max(now);
    // Written once, in one buffer: the vote is explained at every evaluation.
    let note = observation.forecast_note.unwrap_or_default();
    let mut message = String::with_capacity(160 + note.len());
    message.push_str(what);
    message.push_str(" needs ");
    push_fixed(&mut message, planned, 2);
    message.push_str(" instances by ");
    push_two_digits(&mut message, by.naive_utc().hour());
    message.push(':');
    push_two_digits(&mut message, by.naive_utc().minute());
    let _ = write!(message, " (buffer {}", policy.buffer);
    if policy.margin > 0.0 {
        let _ = write!(message, ", margin {:.0} %", policy.margin * 100.0);
    }
    message.push_str(") → ");
    push_u64(&mut message, u64::from(needed));
    if !note.is_empty() {
        message.push_str("; ");
        message.push_str(note);
    }
    if policy.mode == PredictiveMode::ForecastOnly {
        message.push_str("; forecast only, not acting");
        return (PredictiveVote::Abstain, None, message);
    }
    let raised = match policy.max_capacity {
        MaxCapacity::RaiseByPercent(pct) if needed > ceiling => {
            let limit = ceil_instances(f64::from(ceiling) * (1.0 + pct / 100.0));
            let raised = needed.min(limit);
            let _ = write!(
                message,
                "; max raised from {ceiling} to {raised} (at most {pct} % above)"
            );
            Some(raised)
        }
        _ => None,
    };
    if needed > current {
        (PredictiveVote::Out(needed), raised, message)
    } else {
        message.push_str("; at or below the current ");
        push_u64(&mut message, u64::from(current));
        message.push_str(": scale-in is left to the reactive policies, not below ");
        push_u64(&mut message, u64::from(needed));
        (PredictiveVote::Floor(needed), None, message)
    }
}

/// The points whose bucket overlaps `[now, until]`, with their indexes: points from the last one
/// at or before `now` up to the last one at or before `until`.
fn window_points(
    points: &[ForecastPoint],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> impl Iterator<Item = (usize, &ForecastPoint)> {
    let first = points.iter().rposition(|p| p.at <= now).unwrap_or(0);
    points
        .iter()
        .enumerate()
        .skip(first)
        .filter(move |(_, p)| p.at <= until)
}

/// An instance count from a forecast load, checked: see [`crate::decide::checked_ceil`]. A
/// load too large to count (an overflow to +∞) is the most instances there can be; a load
/// that is not a number is none (the caller filters such points out before).
fn ceil_instances(value: f64) -> u32 {
    crate::decide::checked_ceil(value).unwrap_or(0)
}

/// The forecaster settings of a predictive policy: hourly buckets of the mean load, the
/// policy's history, horizon and refresh, its quantile for the upper bound and its MASE limit.
pub fn forecaster_config(policy: &Predictive) -> ForecasterConfig {
    let defaults = ForecasterConfig::default();
    let mut seasonal = defaults.seasonal;
    if let Some(q) = policy.quantile {
        seasonal.upper_quantile = q;
    }
    ForecasterConfig {
        min_history: policy.min_history.as_delta(),
        max_history: policy.history.as_delta(),
        horizon: policy.horizon.as_delta(),
        refresh_interval: policy.refresh.as_delta(),
        seasonal,
        // The MASE limit is applied by [`PredictiveForecast`] together with the sMAPE floor.
        quality: QualityConfig {
            max_recent_mase: f64::INFINITY,
            ..defaults.quality
        },
        ..defaults
    }
}

/// The forecast of one predictive policy at one evaluation, ready for an [`Observation`].
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastInput {
    /// Instances needed, when the forecast is usable: from the current bucket to the horizon,
    /// or, when the policy tracks the level, the level-corrected plan from now through the
    /// policy's buffer (one point a minute), which is all the vote reads.
    pub points: Option<Vec<ForecastPoint>>,
    /// Why there are no points (short history, poor recent accuracy, a level shift).
    pub note: Option<String>,
    /// Whether the model was refitted at this evaluation.
    pub refreshed: bool,
    /// The model's points (without the level correction) from now to the horizon, even when
    /// the quality check rejected them (for charts and events): given when the model was
    /// refitted or the plan is made of them (no level correction); empty otherwise, since
    /// they change only at a refit (see [`PredictiveForecast::cached_at`] in between).
    pub all_points: Vec<ForecastPoint>,
    /// The level correction applied to `points` (measured ÷ forecast), when tracking the level.
    pub level_ratio: Option<LevelRatio>,
}

/// The forecasting state of one group's predictive policy, owned by the caller of the engine.
#[derive(Debug, Clone)]
pub struct PredictiveForecast {
    policy: Predictive,
    forecaster: Forecaster,
    last_fit: Option<DateTime<Utc>>,
    /// The forecast curve, in load units: the current fit's buckets, preceded by the last
    /// buckets of the fit before it (so a measurement taken just before a refit can still be
    /// compared with what was forecast for it).
    curve: Vec<CurvePoint>,
    /// The measured loads of the last [`LEVEL_WINDOW`], oldest first.
    recent: VecDeque<Measured>,
    /// The level corrections (per [`Shape`]) at the latest measurement that was not saturated.
    last_clear_ratio: [Option<f64>; 2],
    /// Per [`Shape`], where the last level break began (see [`LEVEL_BREAK`]): the upper
    /// bound's quantile is taken over the ratios since then only.
    level_break: [Option<DateTime<Utc>>; 2],
    /// What the current fit's model used (the `auto` model's choice), for the reasons.
    model_note: String,
    /// Per [`Shape`], the ratios of the measurements in `recent` since its last level break,
    /// kept sorted as measurements come and go (valid while `since_valid`), so the quantile and
    /// the spread are read without sorting at every evaluation.
    since_break: [SinceBreak; 2],
    since_valid: bool,
    /// Scratch space for the ratios before a window (kept to save an allocation per
    /// measurement).
    scratch: Vec<u64>,
    /// Scratch space for the ratios of the newest window.
    window_scratch: Vec<u64>,
    /// The level-correction note's fixed tail (" at the 0.9 quantile of the last hour").
    quantile_note: String,
    /// The level correction's weight at each near point (see
    /// [`planned_points`](Self::planned_points)), and what they were computed for: the latest
    /// measurement's age at `now`, the spacing and the span in milliseconds. Between evaluations
    /// a fixed interval apart these stay the same, so the weights are kept.
    near_weights: Vec<f64>,
    near_weights_key: Option<(i64, i64, i64)>,
    /// Bumped at every new curve (every ratio is then computed again).
    curve_generation: u64,
    /// Per [`Shape`], the median ratio of the [`LEVEL_NOW_WINDOW`] ending at a measurement, as
    /// the break check found it: (the measurement's time, the curve's generation, the median).
    window_median: [Option<(DateTime<Utc>, u64, f64)>; 2],
}

/// A sorted multiset of positive ratios (as `f64::to_bits`, whose order is theirs) with the
/// sum and the sum of squares of their logarithms.
#[derive(Debug, Clone, Default)]
struct SinceBreak {
    bits: Vec<u64>,
    log_sum: f64,
    log_squares: f64,
}

impl SinceBreak {
    fn clear(&mut self) {
        self.bits.clear();
        self.log_sum = 0.0;
        self.log_squares = 0.0;
    }

    fn insert(&mut self, ratio: f64, log: f64) {
        let bits = ratio.to_bits();
        let at = self.bits.partition_point(|b| *b < bits);
        self.bits.insert(at, bits);
        self.log_sum += log;
        self.log_squares += log * log;
    }

    /// Removes one `ratio`; `false` when it is not there.
    fn remove(&mut self, ratio: f64, log: f64) -> bool {
        let bits = ratio.to_bits();
        let at = self.bits.partition_point(|b| *b < bits);
        if self.bits.get(at) != Some(&bits) {
            return false;
        }
        self.bits.remove(at);
        self.log_sum -= log;
        self.log_squares -= log * log;
        true
    }

    /// The sample standard deviation of the logarithms (0 for fewer than two).
    fn log_spread(&self) -> f64 {
        let n = self.bits.len() as f64;
        if n < 2.0 {
            return 0.0;
        }
        let mean = self.log_sum / n;
        ((self.log_squares - n * mean * mean) / (n - 1.0))
            .max(0.0)
            .sqrt()
    }
}

/// [`quantile_of_positive`] of bits already sorted.
fn quantile_of_sorted_bits(bits: &[u64], q: f64) -> f64 {
    match bits.len() {
        0 => 0.0,
        1 => f64::from_bits(bits[0]),
        n => {
            let (below, fraction) = quantile_rank(n, q);
            let low = f64::from_bits(bits[below]);
            low + fraction * (f64::from_bits(bits[(below + 1).min(n - 1)]) - low)
        }
    }
}

/// [`quantile_of_sorted_bits`] of `bits` less the values at `removed` (ascending positions).
fn quantile_of_sorted_bits_except(bits: &[u64], removed: &[u64], q: f64) -> f64 {
    // The value at rank `j` of what is left: each removed position at or below it moves it up.
    let nth = |j: usize| {
        let mut at = j;
        for p in removed {
            if *p as usize <= at {
                at += 1;
            } else {
                break;
            }
        }
        f64::from_bits(bits[at])
    };
    match bits.len() - removed.len() {
        0 => 0.0,
        1 => nth(0),
        n => {
            let (below, fraction) = quantile_rank(n, q);
            let low = nth(below);
            low + fraction * (nth((below + 1).min(n - 1)) - low)
        }
    }
}

/// Where the `q` quantile of `n > 1` sorted values lies: the index below it and the fraction
/// of the way to the next, as [`quantile_sorted`](crate::forecast::model) interpolates.
fn quantile_rank(n: usize, q: f64) -> (usize, f64) {
    let position = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let below = position.floor() as usize;
    (below, position - below as f64)
}

/// How the forecast's buckets are read between their starts. A bucket holds the mean load over
/// its span: a load that steps at bucket boundaries (an hourly series) is the bucket's value
/// throughout; a load that changes smoothly is better read by interpolating between bucket
/// centres. The plan uses the reading whose level ratios varied less
/// over the last [`LEVEL_WINDOW`], or the larger of the two when neither is clearly closer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Bucket,
    Interpolated,
}

/// The level correction of a forecast: measured ÷ forecast, with the forecast read bucket by
/// bucket (`latest`, `upper`) and interpolated between bucket centres (`*_interpolated`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelRatio {
    /// Now: the median over the last [`LEVEL_NOW_WINDOW`].
    pub latest: f64,
    /// The larger of `latest` and the policy's quantile (default
    /// [`DEFAULT_LEVEL_QUANTILE`]) of the ratios over the last [`LEVEL_WINDOW`]: the
    /// correction for the upper bound, which covers the load's short-term swings.
    pub upper: f64,
    /// `latest` against the interpolated forecast.
    pub latest_interpolated: f64,
    /// `upper` against the interpolated forecast.
    pub upper_interpolated: f64,
    /// The reading of the curve the plan uses; `None`: the larger of both.
    reading: Option<Shape>,
}

/// A reading whose ratios over the last [`LEVEL_WINDOW`] spread this much less (relatively)
/// than the other's is the one the load follows.
const CLEARLY_CLOSER: f64 = 0.2;

/// The logarithm of a ratio whose spread [`SinceBreak::log_spread`] measures.
fn ratio_log(ratio: f64) -> f64 {
    ratio.max(f64::MIN_POSITIVE).ln()
}

/// The `q` quantile of positive finite numbers given as their bit patterns (`f64::to_bits`,
/// whose order is the numbers' order for positive values): the value
/// [`quantile_sorted`](crate::forecast::model) gives, found by selection on integers, which is
/// several times faster than on floats. The level ratios are clamped to
/// `[1 / MAX_LEVEL_RATIO, MAX_LEVEL_RATIO]`, so always positive.
fn quantile_of_positive(bits: &mut [u64], q: f64) -> f64 {
    match bits.len() {
        0 => 0.0,
        1 => f64::from_bits(bits[0]),
        n if n <= 16 => {
            // A window of a few measurements: sorting them outright is quickest.
            for i in 1..n {
                let mut j = i;
                while j > 0 && bits[j - 1] > bits[j] {
                    bits.swap(j - 1, j);
                    j -= 1;
                }
            }
            quantile_of_sorted_bits(bits, q)
        }
        n => {
            let (below, fraction) = quantile_rank(n, q);
            let (_, at, rest) = bits.select_nth_unstable(below);
            let low = f64::from_bits(*at);
            let high = rest.iter().min().map_or(low, |b| f64::from_bits(*b));
            low + fraction * (high - low)
        }
    }
}

/// Appends `value` with `decimals` decimals (at most 6), as `{:.N}` writes it (but for a tie in
/// the last digit), through integer arithmetic rather than the formatting machinery: the policy
/// writes figures at every evaluation. Values too large for that fall back to `{:.N}`.
fn push_fixed(out: &mut String, value: f64, decimals: usize) {
    let decimals = decimals.min(6);
    let unit = 10u64.pow(decimals as u32);
    let scaled = (value * unit as f64).round();
    if !scaled.is_finite() || scaled.abs() >= 1e15 || decimals == 0 {
        let _ = write!(out, "{value:.decimals$}");
        return;
    }
    let t = scaled as i64;
    if t < 0 {
        out.push('-');
    }
    let t = t.unsigned_abs();
    push_u64(out, t / unit);
    out.push('.');
    let fraction = t % unit;
    // Leading zeros of the fraction: `fraction` has fewer digits than `decimals`.
    let mut width = 1;
    while width < decimals && fraction >= 10u64.pow(width as u32) {
        width += 1;
    }
    for _ in width..decimals {
        out.push('0');
    }
    push_u64(out, fraction);
}

/// The times `start` + k × `spacing` (k = 1, 2, ...) while they fall on `start`'s UTC day,
/// made from the time of day rather than by the checked date arithmetic of `DateTime + TimeDelta`
/// (the plan's points are made at every evaluation); `None` from the first that would not, or at
/// once when `spacing` is not whole seconds or `start` is in a leap second. The caller adds
/// `spacing` itself then: the times are the same either way.
struct SameDay {
    date: chrono::NaiveDate,
    seconds: i64,
    nanos: u32,
    spacing: Option<i64>,
}

impl SameDay {
    fn new(start: DateTime<Utc>, spacing: TimeDelta) -> Self {
        let naive = start.naive_utc();
        let whole = spacing.subsec_nanos() == 0 && spacing.num_seconds() > 0;
        SameDay {
            date: naive.date(),
            seconds: i64::from(naive.num_seconds_from_midnight()),
            nanos: naive.nanosecond(),
            spacing: (whole && naive.nanosecond() < 1_000_000_000).then(|| spacing.num_seconds()),
        }
    }
}

impl Iterator for SameDay {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        let spacing = self.spacing?;
        self.seconds += spacing;
        let seconds = u32::try_from(self.seconds).ok().filter(|s| *s < 86_400);
        let time = seconds
            .and_then(|s| chrono::NaiveTime::from_num_seconds_from_midnight_opt(s, self.nanos));
        if time.is_none() {
            self.spacing = None;
        }
        time.map(|t| chrono::NaiveDateTime::new(self.date, t).and_utc())
    }
}

/// Appends `n` in decimal.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[start..].iter().map(|&d| char::from(d)));
}

/// Appends `n` (below 100) with two digits.
fn push_two_digits(out: &mut String, n: u32) {
    out.push(char::from(b'0' + (n / 10 % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// The level correction now is the median of the ratios measured over this span.
pub const LEVEL_NOW_WINDOW: TimeDelta = TimeDelta::minutes(5);

/// Measurements kept for the level correction's quantile.
pub const LEVEL_WINDOW: TimeDelta = TimeDelta::hours(1);

/// Every ratio over a [`LEVEL_NOW_WINDOW`] this many times above or below the median of the
/// ratios since the last break is a break itself (a flash crowd beginning or ending, an outage,
/// a failover): the ratios before it no longer say how high the load may swing, so the upper
/// bound's quantile restarts where the new level began. Smaller or shorter moves are swings,
/// which the quantile over the hour covers.
pub const LEVEL_BREAK: f64 = 3.0;

/// The quantile of the level ratios used for the upper bound when the policy sets none.
pub const DEFAULT_LEVEL_QUANTILE: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq)]
struct CurvePoint {
    /// The bucket's start, milliseconds since the Unix epoch.
    at: i64,
    value: f64,
    upper: f64,
}

/// What a [`PredictiveForecast`] has learnt, as [`PredictiveForecast::snapshot`] takes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PredictiveSnapshot {
    /// The forecaster's history of the policy's load.
    pub history: crate::forecast::HistorySnapshot,
    /// The recent measured loads behind the level correction.
    recent: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Measured {
    at: DateTime<Utc>,
    load: f64,
    /// The measurement was capped (utilisation at 100 %): the real load may be higher.
    saturated: bool,
    /// Measured ÷ forecast per [`Shape`], computed once per curve (`None`: not yet).
    ratios: Option<[Option<f64>; 2]>,
    /// The natural logarithms of `ratios` (0 where there is none), computed with them.
    #[serde(skip)]
    logs: [f64; 2],
}

/// Utilisation at or above this is taken as saturated: the load behind it may be higher.
const SATURATED_UTILIZATION: f64 = 0.99;

/// Spacing of the points the level-corrected forecast gives for the policy's buffer.
const NEAR_POINT_SPACING: TimeDelta = TimeDelta::minutes(1);

/// At most this many near points (the spacing widens for a long buffer).
const MAX_NEAR_POINTS: i64 = 120;

/// The level correction is kept within [1 / this, this].
const MAX_LEVEL_RATIO: f64 = 4.0;

const SERIES: &str = "load";

/// A forecast whose sMAPE over the last day is below this (percent) is used even when its MASE is
/// above the policy's `fallback_mase`: on a smooth cycle seasonal naive is nearly exact, so the
/// MASE of an accurate forecast is large while its error is a few percent.
pub const ACCEPTABLE_SMAPE_PERCENT: f64 = 10.0;

impl PredictiveForecast {
    /// The state for `policy`.
    pub fn new(policy: &Predictive) -> crate::Result<Self> {
        Ok(PredictiveForecast {
            policy: policy.clone(),
            forecaster: Forecaster::new(forecaster_config(policy))?,
            last_fit: None,
            curve: Vec::new(),
            recent: VecDeque::new(),
            last_clear_ratio: [None; 2],
            level_break: [None; 2],
            model_note: String::new(),
            since_break: Default::default(),
            since_valid: false,
            scratch: Vec::new(),
            window_scratch: Vec::new(),
            quantile_note: format!(
                " at the {} quantile of the last hour",
                policy.quantile.unwrap_or(DEFAULT_LEVEL_QUANTILE)
            ),
            near_weights: Vec::new(),
            near_weights_key: None,
            curve_generation: 0,
            window_median: [None; 2],
        })
    }

    /// What this state has learnt (the forecaster's history and the recent measured loads),
    /// to keep across a restart; [`PredictiveForecast::restore`] gives it back.
    pub fn snapshot(&self) -> Option<PredictiveSnapshot> {
        Some(PredictiveSnapshot {
            history: self.forecaster.history_snapshot(SERIES)?,
            recent: serde_json::to_value(&self.recent).ok()?,
        })
    }

    /// Restores what [`PredictiveForecast::snapshot`] took, refitting at the next forecast.
    /// `false` (and nothing changed) when the snapshot does not fit this policy's forecaster.
    pub fn restore(&mut self, snapshot: &PredictiveSnapshot) -> bool {
        let Ok(recent) = serde_json::from_value::<VecDeque<Measured>>(snapshot.recent.clone())
        else {
            return false;
        };
        if !self.forecaster.restore_history(SERIES, &snapshot.history) {
            return false;
        }
        self.recent = recent;
        self.last_fit = None;
        self.curve.clear();
        self.curve_generation += 1;
        true
    }

    /// The policy.
    pub fn policy(&self) -> &Predictive {
        &self.policy
    }

    /// The forecaster (for its cached forecast and settings).
    pub fn forecaster(&self) -> &Forecaster {
        &self.forecaster
    }

    /// Adds samples of the policy's metric. For `utilization` each value is first turned into a
    /// load by `ready_at(sample time)` (busy instances = utilisation × ready instances).
    pub fn observe(&mut self, samples: &[Sample], ready_at: impl Fn(DateTime<Utc>) -> f64) {
        if self.policy.metric == MetricKind::Utilization {
            let loads: Vec<Sample> = samples
                .iter()
                .map(|s| Sample {
                    at: s.at,
                    value: s.value * ready_at(s.at),
                })
                .collect();
            self.forecaster.observe(SERIES, &loads);
            for (s, l) in samples.iter().zip(&loads) {
                self.measured(l.at, l.value, s.value >= SATURATED_UTILIZATION);
            }
        } else {
            self.forecaster.observe(SERIES, samples);
            for s in samples {
                self.measured(s.at, s.value, false);
            }
        }
    }

    /// Adds one load value (already in the policy's load unit) at `at`; `saturated` when it was
    /// measured at full utilisation, so the real load may be higher.
    pub fn observe_load(&mut self, at: DateTime<Utc>, load: f64, saturated: bool) {
        self.forecaster
            .observe(SERIES, &[Sample { at, value: load }]);
        if load.is_finite() {
            self.measured(at, load, saturated);
        }
    }

    fn measured(&mut self, at: DateTime<Utc>, load: f64, saturated: bool) {
        if !load.is_finite() || self.recent.back().is_some_and(|m| m.at >= at) {
            return;
        }
        self.recent.push_back(Measured {
            at,
            load,
            saturated,
            ratios: None,
            logs: [0.0; 2],
        });
        let oldest = at - LEVEL_WINDOW;
        while let Some(gone) = self.recent.front().copied().filter(|m| m.at < oldest) {
            self.recent.pop_front();
            if !self.since_valid {
                continue;
            }
            for k in 0..2 {
                if let Some(r) = gone.ratios.and_then(|r| r[k])
                    && self.level_break[k].is_none_or(|b| gone.at >= b)
                    && !self.since_break[k].remove(r, gone.logs[k])
                {
                    self.since_valid = false;
                }
            }
        }
    }

    /// Rebuilds the since-break sets of [`Shape`] `k` from the measurements before index
    /// `until`.
    fn rebuild_since(&mut self, k: usize, until: usize) {
        let since = self.level_break[k];
        let set = &mut self.since_break[k];
        set.clear();
        for x in self.recent.range(..until) {
            if let Some(r) = x.ratios.and_then(|r| r[k])
                && since.is_none_or(|b| x.at >= b)
            {
                set.bits.push(r.to_bits());
                set.log_sum += x.logs[k];
                set.log_squares += x.logs[k] * x.logs[k];
            }
        }
        set.bits.sort_unstable();
    }

    /// Adds measurement `i`'s ratios to the since-break sets it belongs to.
    fn insert_since(&mut self, i: usize) {
        let x = self.recent[i];
        for k in 0..2 {
            if let Some(r) = x.ratios.and_then(|r| r[k])
                && self.level_break[k].is_none_or(|b| x.at >= b)
            {
                self.since_break[k].insert(r, x.logs[k]);
            }
        }
    }

    /// Computes the ratios (measured ÷ forecast, per [`Shape`]) of the measurements that have
    /// none yet, once per measurement and curve, and returns the index of the first it computed
    /// (the length of `recent` when none was missing). They are computed in order, so the
    /// missing ones are the newest.
    fn compute_ratios(&mut self) -> usize {
        let computed = self
            .recent
            .iter()
            .rposition(|x| x.ratios.is_some())
            .map_or(0, |i| i + 1);
        for i in computed..self.recent.len() {
            let x = self.recent[i];
            let at = x.at.timestamp_millis();
            let after = self.curve.partition_point(|p| p.at <= at);
            let ratio = |shape| {
                let forecast = self.curve_before(after, at, shape)?.max(0.0);
                (forecast > f64::EPSILON).then(|| {
                    (x.load.max(0.0) / forecast).clamp(1.0 / MAX_LEVEL_RATIO, MAX_LEVEL_RATIO)
                })
            };
            let ratios = [ratio(Shape::Bucket), ratio(Shape::Interpolated)];
            self.recent[i].ratios = Some(ratios);
            self.recent[i].logs = ratios.map(|r| r.map_or(0.0, ratio_log));
        }
        computed
    }

    /// The level correction now, when the policy tracks the level and both the measurements and
    /// the forecast are known: measured ÷ forecast, the median over the last
    /// [`LEVEL_NOW_WINDOW`], for each of the two readings of the curve (see [`Shape`]). A
    /// saturated latest measurement only says the load is at least what was measured, so then
    /// the correction is the larger of it, the last one measured clear of saturation, and 1
    /// (never below the forecast).
    fn update_level_ratio(&mut self) -> Option<LevelRatio> {
        if !self.policy.track_level {
            return None;
        }
        let q = self.policy.quantile.unwrap_or(DEFAULT_LEVEL_QUANTILE);
        let computed = self.compute_ratios();
        if computed < self.recent.len() {
            if computed == 0 {
                // All ratios were recomputed (a new curve): the breaks are found again, each
                // measurement checked against those before it, which then join the sets.
                self.level_break = [None; 2];
                self.since_break[0].clear();
                self.since_break[1].clear();
                for i in 0..self.recent.len() {
                    self.find_level_break_incremental(i);
                    self.insert_since(i);
                }
                self.since_valid = true;
            } else if !self.since_valid {
                for i in computed..self.recent.len() {
                    self.find_level_break(i);
                }
                let len = self.recent.len();
                self.rebuild_since(0, len);
                self.rebuild_since(1, len);
                self.since_valid = true;
            } else {
                for i in computed..self.recent.len() {
                    self.find_level_break_incremental(i);
                    self.insert_since(i);
                }
            }
        }
        if !self.since_valid {
            // An expired measurement was not found where it should have been: start again.
            let len = self.recent.len();
            self.rebuild_since(0, len);
            self.rebuild_since(1, len);
            self.since_valid = true;
        }
        let m = *self.recent.back()?;
        let window_start = m.at - LEVEL_NOW_WINDOW;
        let mut pairs = [(0.0, 0.0); 2];
        let mut spreads = [0.0; 2];
        let mut now = std::mem::take(&mut self.window_scratch);
        for k in 0..2 {
            let ratio_of = |x: &Measured| x.ratios.and_then(|r| r[k]);
            ratio_of(&m)?;
            // The median of the last few minutes: one noisy period does not move the plan.
            // Found already when the break was checked for this measurement on this curve.
            let median = match self.window_median[k] {
                Some((at, generation, median))
                    if at == m.at && generation == self.curve_generation =>
                {
                    median
                }
                _ => {
                    now.clear();
                    now.extend(
                        self.recent
                            .iter()
                            .rev()
                            .take_while(|x| x.at > window_start)
                            .filter_map(ratio_of)
                            .map(f64::to_bits),
                    );
                    quantile_of_positive(&mut now, 0.5)
                }
            };
            let latest = if m.saturated {
                median.max(self.last_clear_ratio[k].unwrap_or(1.0)).max(1.0)
            } else {
                self.last_clear_ratio[k] = Some(median);
                median
            };
            // Every ratio since the last break (within the hour).
            let since = &self.since_break[k];
            let upper = quantile_of_sorted_bits(&since.bits, q).max(latest);
            pairs[k] = (latest, upper);
            spreads[k] = since.log_spread();
        }
        self.window_scratch = now;
        // The reading the recent load follows more closely (its ratios vary less) is used; when
        // neither is clearly closer, the plan takes the larger of the two.
        let reading = if spreads[0] < (1.0 - CLEARLY_CLOSER) * spreads[1] {
            Some(Shape::Bucket)
        } else if spreads[1] < (1.0 - CLEARLY_CLOSER) * spreads[0] {
            Some(Shape::Interpolated)
        } else {
            None
        };
        Some(LevelRatio {
            latest: pairs[0].0,
            upper: pairs[0].1,
            latest_interpolated: pairs[1].0,
            upper_interpolated: pairs[1].1,
            reading,
        })
    }

    /// Whether the level broke at measurement `i`, per [`Shape`] (see [`LEVEL_BREAK`]): the
    /// ratios of the [`LEVEL_NOW_WINDOW`] ending there all lie beyond the break factor from
    /// the median of the ratios since the last break (before the window). The break starts
    /// where that run of ratios began. Measurements are taken in order, once per curve, so
    /// the breaks depend on the measurements alone, not on when the policy was evaluated.
    fn find_level_break(&mut self, i: usize) {
        let m = self.recent[i];
        if m.saturated {
            return;
        }
        let window_start = m.at - LEVEL_NOW_WINDOW;
        let mut level: Vec<u64> = Vec::with_capacity(i + 1);
        let mut before: Vec<u64> = Vec::with_capacity(i + 1);
        for k in 0..2 {
            let ratio_of = |x: &Measured| x.ratios.and_then(|r| r[k]);
            let since = self.level_break[k];
            level.clear();
            before.clear();
            for x in self.recent.range(..=i) {
                let Some(r) = ratio_of(x) else { continue };
                if x.at > window_start {
                    level.push(r.to_bits());
                } else if since.is_none_or(|b| x.at >= b) {
                    before.push(r.to_bits());
                }
            }
            // Too little before the window to call anything a break.
            if before.len() < level.len() {
                continue;
            }
            let level_now = quantile_of_positive(&mut level, 0.5);
            let typical = quantile_of_positive(&mut before, 0.5);
            if let Some(start) = self.break_start(i, k, level_now, typical) {
                self.level_break[k] = Some(start);
            }
        }
    }

    /// [`find_level_break`](Self::find_level_break) for the newest measurement `i`, when the
    /// since-break sets hold exactly the ratios of the measurements before it: the ratios
    /// before the window are those sets less the window's, so nothing is sorted.
    fn find_level_break_incremental(&mut self, i: usize) {
        if self.recent[i].saturated {
            return;
        }
        let mut level = std::mem::take(&mut self.window_scratch);
        let mut removed = std::mem::take(&mut self.scratch);
        for k in 0..2 {
            let Some((level_now, typical)) =
                self.level_against_before(i, k, &mut level, &mut removed)
            else {
                continue;
            };
            self.window_median[k] = Some((self.recent[i].at, self.curve_generation, level_now));
            if let Some(start) = self.break_start(i, k, level_now, typical) {
                self.level_break[k] = Some(start);
                self.rebuild_since(k, i);
            }
        }
        self.scratch = removed;
        self.window_scratch = level;
    }

    /// For the newest measurement `i`, when the since-break set of [`Shape`] `k` holds exactly
    /// the ratios of the measurements before it: the median ratio of the [`LEVEL_NOW_WINDOW`]
    /// ending there and the median of those since the break before the window (the set less
    /// the window's own ratios, read in place rather than copied); `None` when fewer ratios lie
    /// before the window than in it. `level` and `removed` are scratch space.
    fn level_against_before(
        &self,
        i: usize,
        k: usize,
        level: &mut Vec<u64>,
        removed: &mut Vec<u64>,
    ) -> Option<(f64, f64)> {
        let m = self.recent[i];
        let window_start = m.at - LEVEL_NOW_WINDOW;
        let since = self.level_break[k];
        let bits = &self.since_break[k].bits;
        level.clear();
        removed.clear();
        for x in self
            .recent
            .range(..=i)
            .rev()
            .take_while(|x| x.at > window_start)
        {
            let Some(r) = x.ratios.and_then(|r| r[k]) else {
                continue;
            };
            let r = r.to_bits();
            level.push(r);
            if x.at < m.at && since.is_none_or(|b| x.at >= b) {
                // One copy each: the next copy of a value already taken.
                let first = bits.partition_point(|b| *b < r);
                let taken = removed.iter().filter(|p| bits[**p as usize] == r).count();
                if bits.get(first + taken) == Some(&r) {
                    removed.push((first + taken) as u64);
                }
            }
        }
        if bits.len() - removed.len() < level.len() {
            return None;
        }
        removed.sort_unstable();
        Some((
            quantile_of_positive(level, 0.5),
            quantile_of_sorted_bits_except(bits, removed, 0.5),
        ))
    }

    /// Where a level break of [`Shape`] `k` ending at measurement `i` began, when the ratios of
    /// the window ending there (median `level_now`) all lie beyond [`LEVEL_BREAK`] from
    /// `typical` and span the window; `None` when there is no break.
    fn break_start(
        &self,
        i: usize,
        k: usize,
        level_now: f64,
        typical: f64,
    ) -> Option<DateTime<Utc>> {
        let m = self.recent[i];
        if typical <= 0.0 {
            return None;
        }
        let new_side: fn(f64, f64) -> bool = if level_now > typical * LEVEL_BREAK {
            |r, typical| r > typical * LEVEL_BREAK
        } else if level_now * LEVEL_BREAK < typical {
            |r, typical| r * LEVEL_BREAK < typical
        } else {
            return None;
        };
        let ratio_of = |x: &Measured| x.ratios.and_then(|r| r[k]);
        // A break is sustained: every measurement of the window is at the new level (the
        // median alone crosses on a noisy load's quiet hours). It began with the run of
        // measurements at the new level that ends here.
        let start = self
            .recent
            .range(..=i)
            .rev()
            .take_while(|x| ratio_of(x).is_none_or(|r| new_side(r, typical)))
            .last()
            .map_or(m.at, |x| x.at);
        // Spanning the window, to within one measurement period.
        (m.at - start >= LEVEL_NOW_WINDOW - NEAR_POINT_SPACING).then_some(start)
    }

    /// The forecast load at `at` milliseconds since the Unix epoch, read as `shape`, given
    /// `after`, the index of the first curve point past `at`.
    fn curve_before(&self, after: usize, at: i64, shape: Shape) -> Option<f64> {
        let step = self.forecaster.config().step.num_milliseconds();
        let i = after.checked_sub(1)?;
        let here = self.curve[i];
        if at >= here.at + step {
            return None;
        }
        if shape == Shape::Bucket {
            return Some(here.value);
        }
        let centre = here.at + step / 2;
        let other = if at < centre {
            i.checked_sub(1).map(|j| self.curve[j])
        } else {
            self.curve.get(i + 1).copied()
        };
        let Some(other) = other.filter(|o| (o.at - here.at).abs() == step) else {
            return Some(here.value);
        };
        let w = ((at - centre) as f64 / step as f64).abs();
        Some(here.value + (other.value - here.value) * w)
    }

    /// Replaces the curve with a new fit, keeping the two buckets of the old one just before it.
    fn set_curve(&mut self, fitted: Vec<CurvePoint>) {
        let first = fitted.first().map(|p| p.at);
        let mut kept: Vec<CurvePoint> = self
            .curve
            .iter()
            .filter(|p| first.is_some_and(|f| p.at < f))
            .copied()
            .collect();
        let drop = kept.len().saturating_sub(2);
        kept.drain(..drop);
        kept.extend(fitted);
        self.curve = kept;
        for m in &mut self.recent {
            m.ratios = None;
        }
        self.since_valid = false;
        self.curve_generation += 1;
    }

    /// The spacing of the near points: [`NEAR_POINT_SPACING`], wider for a buffer longer than
    /// [`MAX_NEAR_POINTS`] of them.
    fn near_spacing(&self) -> TimeDelta {
        NEAR_POINT_SPACING.max(self.policy.buffer.as_delta() / MAX_NEAR_POINTS as i32)
    }

    /// Sets `near_weights` for the near points from `now` through the buffer: the level
    /// correction's weight 2^(−age ÷ half-life), the age counted in whole seconds from the latest
    /// measurement. Kept while the measurement's age at `now`, the spacing and the span are
    /// those they were computed for.
    fn set_near_weights(&mut self, now: DateTime<Utc>) {
        let now_ms = now.timestamp_millis();
        let measured_ms = self.recent.back().map_or(now, |m| m.at).timestamp_millis();
        let spacing_ms = self.near_spacing().num_milliseconds().max(1);
        let span_ms = self.policy.buffer.as_delta().num_milliseconds();
        let key = (now_ms - measured_ms, spacing_ms, span_ms);
        if self.near_weights_key == Some(key) {
            return;
        }
        let half_life = crate::config::LEVEL_CORRECTION_HALF_LIFE.num_seconds() as f64;
        self.near_weights.clear();
        let mut at_ms = now_ms;
        while at_ms <= now_ms + span_ms {
            let age = ((at_ms - measured_ms) / 1000).max(0) as f64;
            self.near_weights.push((-age / half_life).exp2());
            at_ms += spacing_ms;
        }
        self.near_weights_key = Some(key);
    }

    /// The points the engine plans on: one per [`NEAR_POINT_SPACING`] from `now` through the
    /// buffer (the vote reads no further; the model's points to the horizon are in
    /// [`ForecastInput::all_points`]). Each is the reading of the curve ([`Shape`])
    /// the recent load follows, or the larger of both when neither is clearly closer, each ×
    /// its own level correction, whose weight halves every
    /// [`LEVEL_CORRECTION_HALF_LIFE`](crate::config::LEVEL_CORRECTION_HALF_LIFE) after the
    /// measurement.
    fn planned_points(&self, now: DateTime<Utc>, ratio: LevelRatio) -> Vec<ForecastPoint> {
        let target = self.policy.target;
        // r^weight as exp(weight × ln r), with the logarithms taken once, and only those of
        // the reading used (`plan` reads no other).
        let (bucket_read, lerp_read) = match ratio.reading {
            Some(Shape::Bucket) => (true, false),
            Some(Shape::Interpolated) => (false, true),
            None => (true, true),
        };
        let ln_if = |read: bool, r: f64| if read { r.ln() } else { 0.0 };
        let logs = [
            ln_if(bucket_read, ratio.latest),
            ln_if(lerp_read, ratio.latest_interpolated),
            ln_if(bucket_read, ratio.upper),
            ln_if(lerp_read, ratio.upper_interpolated),
        ];
        let point = |at: DateTime<Utc>, at_ms: i64, after: usize, weight: f64| {
            let bucket = self.curve_before(after, at_ms, Shape::Bucket)?;
            let lerp = self
                .curve_before(after, at_ms, Shape::Interpolated)
                .unwrap_or(bucket);
            let plan = |ln_bucket: f64, ln_lerp: f64| {
                let b = || bucket * (ln_bucket * weight).exp();
                let l = || lerp * (ln_lerp * weight).exp();
                match ratio.reading {
                    Some(Shape::Bucket) => b() / target,
                    Some(Shape::Interpolated) => l() / target,
                    None => b().max(l()) / target,
                }
            };
            Some(ForecastPoint {
                at,
                instances: plan(logs[0], logs[1]),
                upper: Some(plan(logs[2], logs[3])),
            })
        };
        let spacing = self.near_spacing();
        let mut points = Vec::with_capacity(self.near_weights.len());
        let mut at = now;
        let mut at_ms = now.timestamp_millis();
        // The first curve point past `at`, followed forward as `at` advances.
        let mut after = self.curve.partition_point(|p| p.at <= at_ms);
        let mut later = SameDay::new(now, spacing);
        for &weight in &self.near_weights {
            while self.curve.get(after).is_some_and(|p| p.at <= at_ms) {
                after += 1;
            }
            points.extend(point(at, at_ms, after, weight));
            at = later.next().unwrap_or_else(|| at + spacing);
            at_ms += spacing.num_milliseconds().max(1);
        }
        points
    }

    /// The forecast at `now` (refitted when the last fit is older than `refresh`), in instances
    /// needed (load / target).
    pub fn forecast(&mut self, now: DateTime<Utc>) -> ForecastInput {
        let target = self.policy.target;
        match self.forecaster.forecast(SERIES, now) {
            Err(not_ready) => ForecastInput {
                points: None,
                note: Some(not_ready.to_string()),
                refreshed: false,
                level_ratio: None,
                all_points: Vec::new(),
            },
            Ok(forecast) => {
                let refreshed = self.last_fit != Some(forecast.fitted_at);
                self.last_fit = Some(forecast.fitted_at);
                let new_curve = (refreshed || self.curve.is_empty()).then(|| {
                    forecast
                        .samples
                        .iter()
                        .map(|s| CurvePoint {
                            at: s.at.timestamp_millis(),
                            value: s.value,
                            upper: s.upper,
                        })
                        .collect::<Vec<_>>()
                });
                if let Some(curve) = new_curve {
                    self.model_note = match &forecast.choice {
                        Some(choice) => format!("forecast: {}", choice.describe(forecast.step)),
                        None => format!("forecast: {}", forecast.model),
                    };
                    self.set_curve(curve);
                }
                let ratio = self.update_level_ratio();
                if ratio.is_some() {
                    self.set_near_weights(now);
                }
                // Borrowed again: the forecaster keeps the forecast it has just made.
                let Some(forecast) = self.forecaster.cached(SERIES) else {
                    return ForecastInput {
                        points: None,
                        note: Some("the forecaster kept no forecast".to_owned()),
                        refreshed,
                        level_ratio: ratio,
                        all_points: Vec::new(),
                    };
                };
                let all_points = if refreshed || ratio.is_none() {
                    forecast.engine_points(now, |load| load / target)
                } else {
                    Vec::new()
                };
                let quality = &forecast.quality;
                // A policy that tracks the level is exposed only to the forecast's error in
                // shape: a level shift is what its correction absorbs.
                let (mase, smape, what) = if self.policy.track_level {
                    (
                        quality.shape_mase,
                        quality.shape_smape_percent,
                        "forecast error one hour ahead with its level corrected",
                    )
                } else {
                    (
                        quality.recent_mase,
                        quality.recent_smape_percent,
                        "forecast error",
                    )
                };
                let too_wrong = match (mase, smape) {
                    (Some(mase), smape)
                        if mase > self.policy.fallback_mase
                            && smape.is_none_or(|s| s > ACCEPTABLE_SMAPE_PERCENT) =>
                    {
                        Some(format!(
                            "{what} too high over the last day: MASE {mase:.2} (limit {:.2}), sMAPE {:.1} % (limit {ACCEPTABLE_SMAPE_PERCENT} %)",
                            self.policy.fallback_mase,
                            smape.unwrap_or(f64::NAN)
                        ))
                    }
                    _ => None,
                };
                let model_reason = if self.policy.track_level {
                    None
                } else {
                    quality.fallback_reason.clone()
                };
                // Without a cycle there is nothing to provision ahead of: the forecast is a
                // level, which the reactive policies follow better.
                let day = TimeDelta::days(1);
                let history = forecast.step * forecast.history_steps as i32;
                let no_cycle = (forecast.seasonality.daily_steps.is_none()
                    && forecast.seasonality.weekly_steps.is_none())
                .then(|| {
                    if history < day * 2 {
                        format!(
                            "history spans {:.1} h: a daily cycle is confirmed from 48 h of history on",
                            history.num_minutes() as f64 / 60.0
                        )
                    } else {
                        "no daily or weekly cycle found in the history".to_owned()
                    }
                });
                match no_cycle.or(model_reason).or(too_wrong) {
                    Some(why) => ForecastInput {
                        points: None,
                        note: Some(format!("the forecast is not trusted: {why}")),
                        refreshed,
                        level_ratio: ratio,
                        all_points,
                    },
                    None => ForecastInput {
                        points: Some(match ratio {
                            Some(r) => self.planned_points(now, r),
                            None => all_points.clone(),
                        }),
                        note: ratio.map(|r| {
                            let mut note = String::with_capacity(160 + self.model_note.len());
                            note.push_str("level corrected by measured ÷ forecast: ×");
                            push_fixed(&mut note, r.latest, 3);
                            note.push_str(" now, ×");
                            push_fixed(&mut note, r.upper, 3);
                            note.push_str(&self.quantile_note);
                            if let Some(shift) = quality.level_shift {
                                note.push_str(&format!(
                                    " (a level shift of {:+.0} % was detected at the last fit)",
                                    shift.relative_change * 100.0
                                ));
                            }
                            note.push_str("; ");
                            note.push_str(&self.model_note);
                            note
                        }),
                        refreshed,
                        level_ratio: ratio,
                        all_points,
                    },
                }
            }
        }
    }

    /// The forecast instances needed at `at` from the last fit, without refitting.
    pub fn cached_at(&self, at: DateTime<Utc>) -> Option<f64> {
        let f = self.forecaster.cached(SERIES)?;
        let s = f.at(at)?;
        Some(s.value / self.policy.target)
    }

    /// How far back the caller should fetch history on its first evaluation.
    pub fn history_span(&self) -> TimeDelta {
        self.policy.history.as_delta()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_writes_what_the_float_format_writes() {
        // Away from a tie in the last digit (`{:.N}` rounds the exact binary value half to even,
        // `push_fixed` its product with 10^N half away from zero).
        for v in [
            0.0,
            1.0,
            0.9996,
            1.2346,
            12.5,
            1e9 + 0.25,
            3.0e20,
            0.001,
            7.1251,
            0.37,
        ] {
            for (decimals, expected) in [(3, format!("{v:.3}")), (2, format!("{v:.2}"))] {
                let mut written = String::new();
                push_fixed(&mut written, v, decimals);
                assert_eq!(written, expected, "{v}");
                if v >= 0.01 {
                    let mut written = String::new();
                    push_fixed(&mut written, -v, decimals);
                    assert_eq!(written, format!("{:.*}", decimals, -v), "{}", -v);
                }
            }
        }
    }

    #[test]
    fn same_day_times_are_those_the_date_arithmetic_gives() {
        let start = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 12, 23, 51, 30).unwrap();
        for (start, spacing) in [
            (start, TimeDelta::minutes(1)),
            (start + TimeDelta::milliseconds(250), TimeDelta::minutes(3)),
            (start, TimeDelta::milliseconds(61_500)),
        ] {
            let mut later = SameDay::new(start, spacing);
            let mut at = start;
            let mut fast = 0;
            for _ in 0..20 {
                let next = at + spacing;
                match later.next() {
                    Some(t) => {
                        assert_eq!(t, next, "from {start} by {spacing}");
                        fast += 1;
                    }
                    None => assert!(later.next().is_none(), "none stays none"),
                }
                at = next;
            }
            // Whole seconds: every time before midnight was made the fast way; else none was.
            let before_midnight = (8 * 60 + 30) / spacing.num_seconds().max(1);
            let expected = if spacing.subsec_nanos() == 0 {
                before_midnight
            } else {
                0
            };
            assert_eq!(fast, expected, "by {spacing}");
        }
    }

    #[test]
    fn the_since_break_set_follows_inserts_and_removals() {
        let mut set = SinceBreak::default();
        let ratios = [1.2, 0.8, 1.2, 3.5, 0.3, 1.0];
        for r in ratios {
            set.insert(r, ratio_log(r));
        }
        assert!(set.remove(1.2, ratio_log(1.2)));
        assert!(!set.remove(2.0, ratio_log(2.0)));
        let left = [0.8, 1.2, 3.5, 0.3, 1.0];
        let mut sorted = left.to_vec();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(
            set.bits
                .iter()
                .map(|b| f64::from_bits(*b))
                .collect::<Vec<_>>(),
            sorted
        );
        let logs: Vec<f64> = left.iter().map(|r| ratio_log(*r)).collect();
        let mean = logs.iter().sum::<f64>() / 5.0;
        let sd = (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
        assert!((set.log_spread() - sd).abs() < 1e-12);
        assert_eq!(
            quantile_of_sorted_bits(&set.bits, 0.9),
            crate::forecast::model::quantile_sorted(&sorted, 0.9)
        );
    }

    #[test]
    fn the_incremental_break_check_agrees_with_the_full_one() {
        let text = "providers:\n  sim:\n    simulated: {}\ngroups:\n  - name: web\n    provider: sim\n    min: 1\n    max: 1000\n    policies:\n      - predictive: { metric: utilization, target: 0.8, track_level: true }\n";
        let doc = crate::config::parse_str(std::path::Path::new("t.yaml"), text).unwrap();
        let crate::config::PolicyConfig::Predictive(policy) = &doc.policy.groups[0].policies[0]
        else {
            panic!("not predictive");
        };
        let mut state = PredictiveForecast::new(policy).unwrap();
        let t0 = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 12, 0, 0, 0).unwrap();
        let step = state.forecaster.config().step.num_milliseconds();
        state.set_curve(
            (0..1000)
                .map(|k| CurvePoint {
                    at: t0.timestamp_millis() + k * step,
                    value: 100.0 + (k % 7) as f64,
                    upper: 120.0,
                })
                .collect(),
        );
        let (mut breaks, mut recomputed_breaks) = (0, 0);
        for minute in 0..600i64 {
            let at = t0 + TimeDelta::minutes(minute);
            // Noise, a flash crowd four times the level, then a drop to a fifth.
            let level = match minute {
                200..260 => 4.0,
                400.. => 0.2,
                _ => 1.0,
            };
            let wobble = 1.0 + 0.1 * ((minute * 7919) % 13) as f64 / 13.0;
            state.measured(at, 100.0 * level * wobble, false);
            let mut full = state.clone();
            full.since_valid = false;
            // Nothing kept from the incremental check: every median is found again.
            full.window_median = [None; 2];
            let before = state.level_break;
            let incremental = state.update_level_ratio();
            assert_eq!(incremental, full.update_level_ratio(), "minute {minute}");
            assert_eq!(state.level_break, full.level_break, "minute {minute}");
            for k in 0..2 {
                assert_eq!(state.since_break[k].bits, full.since_break[k].bits);
            }
            if state.level_break != before {
                breaks += 1;
            }
            // A new curve recomputes every ratio: the breaks found again one measurement after
            // another, incrementally, are those the full check finds for each.
            let curve = state.curve.clone();
            let mut again = state.clone();
            again.set_curve(curve.clone());
            again.update_level_ratio();
            let mut full = state.clone();
            full.set_curve(curve);
            assert_eq!(full.compute_ratios(), 0);
            full.level_break = [None; 2];
            for i in 0..full.recent.len() {
                full.find_level_break(i);
            }
            assert_eq!(again.level_break, full.level_break, "minute {minute}");
            if again.level_break != [None; 2] {
                recomputed_breaks += 1;
            }
            for k in 0..2 {
                full.rebuild_since(k, full.recent.len());
                assert_eq!(again.since_break[k].bits, full.since_break[k].bits);
            }
            // The medians read in place are those of the ratios themselves.
            let i = state.recent.len() - 1;
            let window_start = at - LEVEL_NOW_WINDOW;
            for k in 0..2 {
                let (mut level, mut earlier) = (Vec::new(), Vec::new());
                for x in state.recent.range(..=i) {
                    let Some(r) = x.ratios.and_then(|r| r[k]) else {
                        continue;
                    };
                    if x.at > window_start {
                        level.push(r.to_bits());
                    } else if state.level_break[k].is_none_or(|b| x.at >= b) {
                        earlier.push(r.to_bits());
                    }
                }
                let expected = (earlier.len() >= level.len()).then(|| {
                    (
                        quantile_of_positive(&mut level, 0.5),
                        quantile_of_positive(&mut earlier, 0.5),
                    )
                });
                // The set holds the ratios before `i`: take `i`'s out to ask about it.
                let mut probe = state.clone();
                probe.rebuild_since(k, i);
                let got = probe.level_against_before(i, k, &mut Vec::new(), &mut Vec::new());
                assert_eq!(got, expected, "minute {minute}, shape {k}");
            }
        }
        assert!(breaks > 0, "no break was found: the test checks nothing");
        assert!(
            recomputed_breaks > 0,
            "no break was found again on a new curve: the test checks nothing"
        );
    }

    #[test]
    fn the_quantile_less_some_positions_matches_the_quantile_of_what_is_left() {
        let sorted: Vec<u64> = [0.25, 0.5, 1.0, 1.0, 1.5, 2.0, 3.0, 4.0]
            .iter()
            .map(|v: &f64| v.to_bits())
            .collect();
        for removed in [
            vec![],
            vec![0],
            vec![2],
            vec![2, 3],
            vec![0, 1, 7],
            vec![3, 4, 5, 6],
            vec![0, 1, 2, 3, 4, 5, 6],
            vec![0, 1, 2, 3, 4, 5, 6, 7],
        ] {
            let left: Vec<u64> = sorted
                .iter()
                .enumerate()
                .filter(|(i, _)| !removed.contains(&(*i as u64)))
                .map(|(_, b)| *b)
                .collect();
            for q in [0.0, 0.3, 0.5, 0.9, 1.0] {
                assert_eq!(
                    quantile_of_sorted_bits_except(&sorted, &removed, q),
                    quantile_of_sorted_bits(&left, q),
                    "removed {removed:?}, q {q}"
                );
            }
        }
    }

    #[test]
    fn the_quantile_of_positive_numbers_matches_the_sorted_one() {
        // Short slices are sorted outright, longer ones selected: both paths.
        let values: Vec<f64> = (0..40)
            .map(|i| ((i * 37) % 23) as f64 * 0.25 + 0.1)
            .collect();
        for n in [2, 3, 7, 16, 17, 40] {
            let mut sorted = values[..n].to_vec();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.1, 0.5, 0.9, 0.95, 1.0] {
                let mut bits: Vec<u64> = values[..n].iter().map(|v| v.to_bits()).collect();
                assert_eq!(
                    quantile_of_positive(&mut bits, q),
                    crate::forecast::model::quantile_sorted(&sorted, q),
                    "n {n}, q {q}"
                );
            }
        }
    }
}
