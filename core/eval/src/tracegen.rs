//! Synthetic demand traces with the features real loads have, each one a parameter of a
//! [`TraceSpec`]: daily and weekly cycles of any shape, a linear trend, level shifts (holidays,
//! launches), flash crowds, outages and gaps, a random walk, and noise from Poisson counts at any
//! rate, sampled every 1 or 5 minutes (or any step that divides an hour).
//!
//! The level at step `i` (time `t = start + i · step`, `s` seconds after `start`) is the product
//!
//! ```text
//! base · daily(hour of day of t) · weekly(day of week of t) · trend(s) · Π shift_k(s)
//!      · (1 + Σ (crowd_j(s) − 1)) · exp(walk_i)
//! ```
//!
//! clamped to `[0, 1e15]`, and the value written is that level, or, with Poisson noise at
//! `counts_per_unit = k`, a Poisson count of mean `level · k` divided by `k` (so with `k = 1` the
//! values are the counts themselves, and their variance equals their mean). Outages then remove
//! the steps they cover (`missing`: the rows are absent, a gap) or set them to 0 (`zero`).
//! Hours and days of the week are those of the UTC timestamps.
//!
//! Generation is deterministic: the same spec (seed included) gives the same values, bit for bit,
//! on every platform. The noise and the random walk draw from separate streams of a small
//! self-contained generator (splitmix64), and every step draws its noise even inside an outage,
//! so adding an outage or a flash crowd leaves the other steps' noise as it was.
//!
//! [`standard_suite`] is a fixed set of named specs, documented in
//! `docs/guides/generated-traces.md`; `hoist trace generate` writes them as `timestamp,value`
//! CSV files that `hoist simulate --trace` and `hoist evaluate --traces` read.
//!
//! ```
//! use hoist_eval::tracegen::{TraceSpec, generate, to_csv};
//!
//! let spec: TraceSpec = serde_json::from_str(
//!     r#"{"name": "demo", "days": 7, "base": 100,
//!         "daily": {"harmonics": [{"order": 1, "amplitude": 0.5, "peak_hour": 14}]},
//!         "noise": {"poisson": {"counts_per_unit": 1}}, "seed": 7}"#,
//! )?;
//! let rows = generate(&spec)?;
//! assert_eq!(rows.len(), 7 * 24 * 12); // 5-minute steps by default
//! assert_eq!(rows, generate(&spec)?); // deterministic for a seed
//! assert!(to_csv(&spec, &rows).starts_with("timestamp,value\n2024-01-01T00:00:00Z,"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::f64::consts::TAU;
use std::fmt::Write as _;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use hoist_api::duration::HumanDuration;
use hoist_api::input::MAX_AMOUNT;
use hoist_sim::trace::{TRACE_HEADER, Trace};

/// The longest trace a spec may ask for, days (two years).
pub const MAX_DAYS: u32 = 730;

/// The largest `base` level.
pub const MAX_BASE: f64 = 1e12;

/// The most entries of each list of events (level shifts, flash crowds, outages).
pub const MAX_EVENTS: usize = 10_000;

/// The steps a spec may use, minutes: every divisor of an hour, so every hour starts on a step.
pub const STEP_MINUTES: [u32; 12] = [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60];

/// The names of the built-in suites ([`suite`]).
pub const SUITES: [&str; 1] = ["standard"];

/// Everything that shapes one generated trace. Every feature is optional except the length and
/// the base level; see the module documentation for how they combine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSpec {
    /// The trace's name, also its file name (`<name>.csv`): 1–64 characters of letters, digits,
    /// `-`, `_` and `.`, not starting with `.`.
    pub name: String,
    /// What the trace stands for, in a sentence.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Time of the first step (UTC, whole seconds, years 1970–2200). Default
    /// 2024-01-01T00:00:00Z, a Monday.
    #[serde(default = "default_start")]
    pub start: DateTime<Utc>,
    /// Length, days (1 to [`MAX_DAYS`]).
    pub days: u32,
    /// Step between samples, minutes: one of [`STEP_MINUTES`]. Default 5.
    #[serde(default = "default_step_minutes")]
    pub step_minutes: u32,
    /// The level every factor multiplies, in the trace's unit (0 < base ≤ 1e12).
    pub base: f64,
    /// The daily cycle (none: flat over the day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<DailyCycle>,
    /// The weekly cycle (none: every day alike).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<WeeklyCycle>,
    /// Linear trend, a share of `base` per week: the level is multiplied by
    /// `max(0, 1 + trend_per_week · weeks since start)` (−1 to 10; 0.05 is +5 % a week).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trend_per_week: f64,
    /// Level shifts: holidays (a factor below 1 for a while), launches (above 1, for good).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub level_shifts: Vec<LevelShift>,
    /// Flash crowds: the load climbs several fold within minutes and falls back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flash_crowds: Vec<FlashCrowd>,
    /// Outages: steps that are missing (a gap in the file) or zero.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outages: Vec<Outage>,
    /// A mean-reverting random walk of the log level (none: no walk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_walk: Option<RandomWalk>,
    /// Noise on each sample (default none: the values are the level itself).
    #[serde(default, skip_serializing_if = "Noise::is_none")]
    pub noise: Noise,
    /// Seed of the noise and the random walk.
    #[serde(default)]
    pub seed: u64,
}

fn default_start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_704_067_200, 0).expect("2024-01-01T00:00:00Z")
}

fn default_step_minutes() -> u32 {
    5
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// The shape of the daily cycle, a factor on the level by time of day (UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DailyCycle {
    /// A sum of cosines: `1 + Σ amplitude · cos(2π · order · (hour − peak_hour) / 24)`, with 0
    /// where the sum is negative. One harmonic of order 1 is a single smooth peak; adding order
    /// 2 makes two peaks a day; 1 to 24 harmonics.
    Harmonics(Vec<Harmonic>),
    /// 24 factors, one per hour: entry `h` is the factor at `h:00`, linearly interpolated
    /// towards the next hour's (23:00 towards 00:00). Each in [0, 1000], not all 0. The factors
    /// multiply `base` as they are (they are not normalised).
    Hourly(Vec<f64>),
}

/// One cosine of a daily cycle.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Harmonic {
    /// Cycles per day, 1 to 12 (1: a 24 h period, 2: 12 h, ...).
    pub order: u32,
    /// Amplitude as a share of the level, 0 to 10 (0.5: ±50 %).
    pub amplitude: f64,
    /// Hour of day (UTC, fractional, in [0, 24)) of one of this cosine's peaks.
    pub peak_hour: f64,
}

/// The weekly cycle, a factor on the level by day of the week (UTC), changing at midnight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WeeklyCycle {
    /// Saturdays and Sundays are multiplied by this factor (0 to 100), weekdays by 1.
    WeekendFactor(f64),
    /// Seven factors, Monday to Sunday, each in [0, 100], not all 0.
    Profile(Vec<f64>),
}

/// A change of level from `at` on, for `duration` or for good.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelShift {
    /// When the shift begins, after the trace's start (`"21d"`, `"26d9h"`).
    pub at: HumanDuration,
    /// The factor on the level while shifted, 0 to 1000 (0.5: a holiday at half load; 1.8: a
    /// launch that brings 80 % more).
    pub factor: f64,
    /// How long the shift lasts after its ramp in (none: to the end of the trace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<HumanDuration>,
    /// The factor moves linearly from 1 to `factor` over this time from `at`, and back over the
    /// same time after `duration` (default 0: a step). At most 30 days.
    #[serde(default, skip_serializing_if = "is_zero_duration")]
    pub ramp: HumanDuration,
}

fn is_zero_duration(d: &HumanDuration) -> bool {
    d.get().is_zero()
}

/// A flash crowd: the load rises linearly to `peak` times what it would have been over `onset`,
/// stays there for `hold`, then falls linearly back until `duration` after `at`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashCrowd {
    /// When the crowd begins, after the trace's start.
    pub at: HumanDuration,
    /// Time from `at` to the peak (0: a step to the peak at `at`).
    pub onset: HumanDuration,
    /// The peak as a multiple of the load without the crowd, 1 to 1000. Overlapping crowds add
    /// their excess: two 3× crowds at once make 5×.
    pub peak: f64,
    /// Time at the peak after the onset (default 0).
    #[serde(default, skip_serializing_if = "is_zero_duration")]
    pub hold: HumanDuration,
    /// The whole crowd from `at` to its end, onset and hold included (more than 0, at most 30
    /// days, at least `onset + hold`).
    pub duration: HumanDuration,
}

/// Steps with no data, or with zero demand.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// When the outage begins, after the trace's start.
    pub at: HumanDuration,
    /// How long it lasts (more than 0).
    pub duration: HumanDuration,
    /// `missing` (default): the steps are absent from the file, a gap the simulator treats as
    /// missing metrics; a missing outage may not cover the first or the last step, and missing
    /// steps may be at most half of the trace. `zero`: the steps are written as 0.
    #[serde(default)]
    pub kind: OutageKind,
}

/// What an outage does to the steps it covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageKind {
    /// The rows are absent: no data.
    #[default]
    Missing,
    /// The rows are written with the value 0.
    Zero,
}

/// A mean-reverting random walk (Ornstein–Uhlenbeck) of the log level: at every step
/// `x ← x · (1 − reversion · Δt) + sd · √Δt · N(0, 1)`, and the level is multiplied by `exp(x)`
/// (`x` kept within ±10). Starts at 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomWalk {
    /// Standard deviation of the log level's change over one hour, 0 to 2 (0.05: about 5 %).
    pub sd_per_hour: f64,
    /// Pull back towards the base level, per day, 0 to 1000 (0: a pure random walk). The walk's
    /// spread settles at about `sd_per_hour · √(12 / reversion_per_day)`.
    #[serde(default)]
    pub reversion_per_day: f64,
}

/// Noise on each sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Noise {
    /// No noise: each value is the level.
    #[default]
    None,
    /// Each value is a Poisson count of mean `level · counts_per_unit`, divided by
    /// `counts_per_unit`: requests counted per step. The fewer counts, the noisier (the
    /// coefficient of variation is `1 / √(level · counts_per_unit)`).
    Poisson {
        /// Counts per unit of the level, more than 0 and at most 1e9 (1: the values are the
        /// counts).
        counts_per_unit: f64,
    },
}

impl Noise {
    fn is_none(&self) -> bool {
        matches!(self, Noise::None)
    }
}

/// A spec that cannot be generated: the field (a path such as `flash_crowds[2].peak`) and what
/// is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct SpecError {
    /// The field, as a path into the spec.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn bad<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, SpecError> {
    Err(SpecError {
        field: field.into(),
        message: message.into(),
    })
}

/// Checks that `x` is finite and within `[lo, hi]`.
fn in_range(field: impl Into<String>, x: f64, lo: f64, hi: f64) -> Result<(), SpecError> {
    if x.is_finite() && (lo..=hi).contains(&x) {
        Ok(())
    } else {
        bad(
            field,
            format!(
                "{} must be a finite number in [{}, {}]",
                hoist_api::input::number(x),
                hoist_api::input::number(lo),
                hoist_api::input::number(hi)
            ),
        )
    }
}

const MAX_RAMP_SECONDS: u64 = 30 * 86_400;

impl TraceSpec {
    /// Steps on the trace's grid, gaps included (`days · 1440 / step_minutes`).
    pub fn steps(&self) -> usize {
        self.days as usize * 1440 / self.step_minutes.max(1) as usize
    }

    /// The step in seconds.
    pub fn step_seconds(&self) -> i64 {
        i64::from(self.step_minutes) * 60
    }

    /// The trace's length, seconds.
    fn length_seconds(&self) -> u64 {
        u64::from(self.days) * 86_400
    }

    /// Checks every field, naming the first one out of range.
    pub fn validate(&self) -> Result<(), SpecError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && !self.name.starts_with('.')
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return bad(
                "name",
                format!(
                    "{:?} must be 1-64 characters of letters, digits, '-', '_' and '.', not starting with '.'",
                    self.name
                ),
            );
        }
        if self.description.chars().count() > 2000 {
            return bad("description", "is longer than 2000 characters");
        }
        let year = self.start.year();
        if !(1970..=2200).contains(&year) || self.start.timestamp_subsec_nanos() != 0 {
            return bad(
                "start",
                format!(
                    "{} must be in the years 1970-2200, in whole seconds",
                    self.start.to_rfc3339()
                ),
            );
        }
        if !(1..=MAX_DAYS).contains(&self.days) {
            return bad("days", format!("{} must be in [1, {MAX_DAYS}]", self.days));
        }
        if !STEP_MINUTES.contains(&self.step_minutes) {
            return bad(
                "step_minutes",
                format!(
                    "{} must divide an hour: one of {STEP_MINUTES:?}",
                    self.step_minutes
                ),
            );
        }
        if self.steps() < 2 {
            return bad("days", "the trace must have at least two steps");
        }
        if !(self.base.is_finite() && self.base > 0.0 && self.base <= MAX_BASE) {
            return bad(
                "base",
                format!(
                    "{} must be a finite number in (0, {}]",
                    hoist_api::input::number(self.base),
                    hoist_api::input::number(MAX_BASE)
                ),
            );
        }
        match &self.daily {
            None => {}
            Some(DailyCycle::Harmonics(harmonics)) => {
                if !(1..=24).contains(&harmonics.len()) {
                    return bad(
                        "daily.harmonics",
                        format!("has {} harmonics; give 1 to 24", harmonics.len()),
                    );
                }
                for (i, h) in harmonics.iter().enumerate() {
                    let f = |name: &str| format!("daily.harmonics[{i}].{name}");
                    if !(1..=12).contains(&h.order) {
                        return bad(f("order"), format!("{} must be in [1, 12]", h.order));
                    }
                    in_range(f("amplitude"), h.amplitude, 0.0, 10.0)?;
                    if !(h.peak_hour.is_finite() && (0.0..24.0).contains(&h.peak_hour)) {
                        return bad(
                            f("peak_hour"),
                            format!(
                                "{} must be an hour of day in [0, 24)",
                                hoist_api::input::number(h.peak_hour)
                            ),
                        );
                    }
                }
            }
            Some(DailyCycle::Hourly(profile)) => {
                if profile.len() != 24 {
                    return bad(
                        "daily.hourly",
                        format!(
                            "has {} factors; give exactly 24, one per hour",
                            profile.len()
                        ),
                    );
                }
                for (i, &x) in profile.iter().enumerate() {
                    in_range(format!("daily.hourly[{i}]"), x, 0.0, 1000.0)?;
                }
                if profile.iter().all(|&x| x == 0.0) {
                    return bad(
                        "daily.hourly",
                        "every factor is 0: the trace would be all 0",
                    );
                }
            }
        }
        match &self.weekly {
            None => {}
            Some(WeeklyCycle::WeekendFactor(x)) => {
                in_range("weekly.weekend_factor", *x, 0.0, 100.0)?;
            }
            Some(WeeklyCycle::Profile(profile)) => {
                if profile.len() != 7 {
                    return bad(
                        "weekly.profile",
                        format!(
                            "has {} factors; give exactly 7, Monday to Sunday",
                            profile.len()
                        ),
                    );
                }
                for (i, &x) in profile.iter().enumerate() {
                    in_range(format!("weekly.profile[{i}]"), x, 0.0, 100.0)?;
                }
                if profile.iter().all(|&x| x == 0.0) {
                    return bad(
                        "weekly.profile",
                        "every factor is 0: the trace would be all 0",
                    );
                }
            }
        }
        in_range("trend_per_week", self.trend_per_week, -1.0, 10.0)?;
        let length = self.length_seconds();
        let within = |field: String, at: HumanDuration| -> Result<(), SpecError> {
            if at.get().as_secs() >= length || at.get().subsec_nanos() != 0 {
                return bad(
                    field,
                    format!(
                        "{at} must be whole seconds before the trace's end ({}d)",
                        self.days
                    ),
                );
            }
            Ok(())
        };
        for (list, n) in [
            ("level_shifts", self.level_shifts.len()),
            ("flash_crowds", self.flash_crowds.len()),
            ("outages", self.outages.len()),
        ] {
            if n > MAX_EVENTS {
                return bad(list, format!("has {n} entries; at most {MAX_EVENTS}"));
            }
        }
        for (i, shift) in self.level_shifts.iter().enumerate() {
            let f = |name: &str| format!("level_shifts[{i}].{name}");
            within(f("at"), shift.at)?;
            in_range(f("factor"), shift.factor, 0.0, 1000.0)?;
            if shift.ramp.get().as_secs() > MAX_RAMP_SECONDS {
                return bad(f("ramp"), format!("{} must be at most 30d", shift.ramp));
            }
            if let Some(d) = shift.duration
                && d.get().is_zero()
            {
                return bad(
                    f("duration"),
                    "must be more than 0; leave it out for a shift that lasts",
                );
            }
        }
        for (i, crowd) in self.flash_crowds.iter().enumerate() {
            let f = |name: &str| format!("flash_crowds[{i}].{name}");
            within(f("at"), crowd.at)?;
            in_range(f("peak"), crowd.peak, 1.0, 1000.0)?;
            let duration = crowd.duration.get();
            if duration.is_zero() || duration.as_secs() > MAX_RAMP_SECONDS {
                return bad(
                    f("duration"),
                    format!("{} must be more than 0 and at most 30d", crowd.duration),
                );
            }
            if crowd.onset.get().saturating_add(crowd.hold.get()) > duration {
                return bad(
                    f("duration"),
                    format!(
                        "{} is shorter than onset {} plus hold {}",
                        crowd.duration, crowd.onset, crowd.hold
                    ),
                );
            }
        }
        for (i, outage) in self.outages.iter().enumerate() {
            let f = |name: &str| format!("outages[{i}].{name}");
            within(f("at"), outage.at)?;
            if outage.duration.get().is_zero() {
                return bad(f("duration"), "must be more than 0");
            }
        }
        if let Some(walk) = &self.random_walk {
            in_range("random_walk.sd_per_hour", walk.sd_per_hour, 0.0, 2.0)?;
            in_range(
                "random_walk.reversion_per_day",
                walk.reversion_per_day,
                0.0,
                1000.0,
            )?;
        }
        if let Noise::Poisson { counts_per_unit } = self.noise
            && !(counts_per_unit.is_finite() && counts_per_unit > 0.0 && counts_per_unit <= 1e9)
        {
            return bad(
                "noise.poisson.counts_per_unit",
                format!(
                    "{} must be a finite number in (0, 1e9]",
                    hoist_api::input::number(counts_per_unit)
                ),
            );
        }
        // Missing outages: inside the trace (so the file's grid is the spec's) and at most half
        // of it (so the loader finds the step).
        let steps = self.steps();
        let mask = self.outage_mask();
        for (i, outage) in self.outages.iter().enumerate() {
            if outage.kind != OutageKind::Missing {
                continue;
            }
            let (first, last) = self.outage_steps(outage);
            if first == 0 || last >= steps {
                return bad(
                    format!("outages[{i}]"),
                    "a missing outage may not cover the first or the last step (the file would start or end elsewhere); use `kind: zero` or move it inside",
                );
            }
        }
        let missing = mask
            .iter()
            .filter(|m| **m == Some(OutageKind::Missing))
            .count();
        if missing * 2 > steps {
            return bad(
                "outages",
                format!("{missing} of {steps} steps are missing; at most half may be"),
            );
        }
        // The loader takes the most common time between rows as the step: consecutive rows
        // must outnumber the rows that follow any one gap length.
        let mut counts = std::collections::HashMap::<usize, usize>::new();
        let mut previous: Option<usize> = None;
        for (i, m) in mask.iter().enumerate() {
            if *m == Some(OutageKind::Missing) {
                continue;
            }
            if let Some(p) = previous {
                *counts.entry(i - p).or_default() += 1;
            }
            previous = Some(i);
        }
        let adjacent = counts.get(&1).copied().unwrap_or(0);
        if let Some((gap, n)) = counts.iter().find(|(gap, n)| **gap > 1 && **n > adjacent) {
            return bad(
                "outages",
                format!(
                    "{n} rows follow a gap of {} steps but only {adjacent} follow the row before; the file's step could not be read back",
                    gap - 1
                ),
            );
        }
        Ok(())
    }

    /// The steps `[first, last)` an outage covers: those whose start lies in `[at, at + duration)`.
    fn outage_steps(&self, outage: &Outage) -> (usize, usize) {
        let step = self.step_seconds() as u64;
        let from = outage.at.get().as_secs();
        let until = from.saturating_add(outage.duration.get().as_secs());
        let first = from.div_ceil(step);
        let last = until.div_ceil(step);
        let clamp = |x: u64| usize::try_from(x).unwrap_or(usize::MAX).min(self.steps());
        (clamp(first), clamp(last))
    }

    /// Per step, the outage covering it (a `zero` outage wins over a `missing` one).
    fn outage_mask(&self) -> Vec<Option<OutageKind>> {
        let mut mask = vec![None; self.steps()];
        for outage in &self.outages {
            let (first, last) = self.outage_steps(outage);
            for m in &mut mask[first..last] {
                if *m != Some(OutageKind::Zero) {
                    *m = Some(outage.kind);
                }
            }
        }
        mask
    }

    /// A one-line summary of the spec's features, for listings.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!(
            "{}d at {} min, base {}",
            self.days,
            self.step_minutes,
            hoist_api::input::number(self.base)
        )];
        match &self.daily {
            None => parts.push("no daily cycle".into()),
            Some(DailyCycle::Harmonics(hs)) => {
                let hs: Vec<String> = hs
                    .iter()
                    .map(|h| {
                        format!(
                            "{}/day ±{} peak {}h",
                            h.order,
                            hoist_api::input::number(h.amplitude),
                            hoist_api::input::number(h.peak_hour)
                        )
                    })
                    .collect();
                parts.push(format!("daily harmonics {}", hs.join(" + ")));
            }
            Some(DailyCycle::Hourly(p)) => {
                let lo = p.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = p.iter().copied().fold(0.0, f64::max);
                parts.push(format!(
                    "daily hourly profile {}–{}",
                    hoist_api::input::number(lo),
                    hoist_api::input::number(hi)
                ));
            }
        }
        match &self.weekly {
            None => {}
            Some(WeeklyCycle::WeekendFactor(x)) => {
                parts.push(format!("weekend ×{}", hoist_api::input::number(*x)));
            }
            Some(WeeklyCycle::Profile(p)) => {
                let p: Vec<String> = p.iter().map(|x| hoist_api::input::number(*x)).collect();
                parts.push(format!("week profile Mon–Sun {}", p.join("/")));
            }
        }
        if self.trend_per_week != 0.0 {
            parts.push(format!(
                "trend {}{}%/week",
                if self.trend_per_week > 0.0 { "+" } else { "" },
                hoist_api::input::number(self.trend_per_week * 100.0)
            ));
        }
        for s in &self.level_shifts {
            parts.push(format!(
                "shift ×{} at {}{}{}",
                hoist_api::input::number(s.factor),
                s.at,
                s.duration.map(|d| format!(" for {d}")).unwrap_or_default(),
                if s.ramp.get().is_zero() {
                    String::new()
                } else {
                    format!(" (ramp {})", s.ramp)
                }
            ));
        }
        if !self.flash_crowds.is_empty() {
            let peak = self.flash_crowds.iter().map(|c| c.peak).fold(0.0, f64::max);
            let c = &self.flash_crowds[0];
            parts.push(format!(
                "{} flash crowds up to {}× (first: onset {}, hold {}, duration {})",
                self.flash_crowds.len(),
                hoist_api::input::number(peak),
                c.onset,
                c.hold,
                c.duration
            ));
        }
        if !self.outages.is_empty() {
            let mask = self.outage_mask();
            let missing = mask
                .iter()
                .filter(|m| **m == Some(OutageKind::Missing))
                .count();
            let zero = mask
                .iter()
                .filter(|m| **m == Some(OutageKind::Zero))
                .count();
            parts.push(format!(
                "{} outages ({missing} steps missing, {zero} zero)",
                self.outages.len()
            ));
        }
        if let Some(w) = &self.random_walk {
            parts.push(format!(
                "random walk sd {}/h reversion {}/day",
                hoist_api::input::number(w.sd_per_hour),
                hoist_api::input::number(w.reversion_per_day)
            ));
        }
        match self.noise {
            Noise::None => parts.push("no noise".into()),
            Noise::Poisson { counts_per_unit } => parts.push(format!(
                "Poisson ~{} counts/step at base",
                hoist_api::input::number((self.base * counts_per_unit * 100.0).round() / 100.0)
            )),
        }
        parts.join(", ")
    }
}

/// The level's deterministic factors at `epoch` seconds (UTC), `s` seconds after the start.
struct Shape<'a> {
    spec: &'a TraceSpec,
    /// Daily factor per minute of the day (the cycle is evaluated once, on a minute grid).
    daily: Vec<f64>,
    weekly: [f64; 7],
}

impl<'a> Shape<'a> {
    fn new(spec: &'a TraceSpec) -> Shape<'a> {
        let daily = (0..1440)
            .map(|minute| daily_factor(spec.daily.as_ref(), f64::from(minute) / 60.0))
            .collect();
        let weekly = match &spec.weekly {
            None => [1.0; 7],
            Some(WeeklyCycle::WeekendFactor(x)) => [1.0, 1.0, 1.0, 1.0, 1.0, *x, *x],
            Some(WeeklyCycle::Profile(p)) => {
                let mut w = [1.0; 7];
                for (w, p) in w.iter_mut().zip(p) {
                    *w = *p;
                }
                w
            }
        };
        Shape {
            spec,
            daily,
            weekly,
        }
    }

    /// Every factor but the random walk, at `epoch` seconds (UTC), `s` seconds after the start.
    fn level(&self, epoch: i64, s: f64) -> f64 {
        let spec = self.spec;
        let second_of_day = epoch.rem_euclid(86_400);
        // 1970-01-01 was a Thursday: day 0 is weekday 3 counted from Monday.
        let weekday = (epoch.div_euclid(86_400) + 3).rem_euclid(7) as usize;
        let mut level =
            spec.base * self.daily[(second_of_day / 60) as usize] * self.weekly[weekday];
        level *= (1.0 + spec.trend_per_week * s / 604_800.0).max(0.0);
        for shift in &spec.level_shifts {
            level *= 1.0 + (shift.factor - 1.0) * shift_share(shift, s);
        }
        let excess: f64 = spec
            .flash_crowds
            .iter()
            .map(|c| crowd_multiple(c, s) - 1.0)
            .sum();
        level * (1.0 + excess)
    }
}

/// The daily factor at `hour` (fractional hour of day).
fn daily_factor(daily: Option<&DailyCycle>, hour: f64) -> f64 {
    match daily {
        None => 1.0,
        Some(DailyCycle::Harmonics(hs)) => {
            let sum: f64 = hs
                .iter()
                .map(|h| {
                    h.amplitude * (TAU * f64::from(h.order) * (hour - h.peak_hour) / 24.0).cos()
                })
                .sum();
            (1.0 + sum).max(0.0)
        }
        Some(DailyCycle::Hourly(p)) => {
            let i = (hour.floor() as usize).min(23);
            let f = hour - i as f64;
            p[i] * (1.0 - f) + p[(i + 1) % 24] * f
        }
    }
}

/// How far a level shift has moved at `s` seconds: 0 before, 1 while fully shifted.
fn shift_share(shift: &LevelShift, s: f64) -> f64 {
    let at = shift.at.get().as_secs_f64();
    let ramp = shift.ramp.get().as_secs_f64();
    if s < at {
        return 0.0;
    }
    let up = if ramp > 0.0 {
        ((s - at) / ramp).min(1.0)
    } else {
        1.0
    };
    let Some(duration) = shift.duration else {
        return up;
    };
    let end = at + ramp + duration.get().as_secs_f64();
    if s < end {
        up
    } else if ramp > 0.0 && s < end + ramp {
        1.0 - (s - end) / ramp
    } else {
        0.0
    }
}

/// A flash crowd's multiple at `s` seconds (1 outside it).
fn crowd_multiple(crowd: &FlashCrowd, s: f64) -> f64 {
    let tau = s - crowd.at.get().as_secs_f64();
    let onset = crowd.onset.get().as_secs_f64();
    let hold = crowd.hold.get().as_secs_f64();
    let duration = crowd.duration.get().as_secs_f64();
    let rise = crowd.peak - 1.0;
    if tau < 0.0 || tau >= duration {
        1.0
    } else if tau < onset {
        1.0 + rise * tau / onset
    } else if tau < onset + hold {
        crowd.peak
    } else {
        let fall = duration - onset - hold;
        1.0 + rise * (1.0 - (tau - onset - hold) / fall)
    }
}

/// splitmix64: a small, fast generator with a 64-bit state, good enough for noise and fully
/// reproducible.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64, stream: u64) -> SplitMix64 {
        let mut g = SplitMix64(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        g.next_u64();
        g
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box–Muller, one of the pair).
    fn normal(&mut self) -> f64 {
        let u = self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (TAU * v).cos()
    }

    /// A Poisson count of mean `lambda`: multiplication of uniforms below 10, Hörmann's
    /// transformed rejection (PTRS) up to 1e8, a normal approximation beyond (where it is exact
    /// to well under one part in 10^4).
    fn poisson(&mut self, lambda: f64) -> f64 {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0.0;
        }
        if lambda < 10.0 {
            let limit = (-lambda).exp();
            let mut k = 0.0;
            let mut p = self.uniform();
            while p > limit {
                k += 1.0;
                p *= self.uniform();
            }
            return k;
        }
        if lambda > 1e8 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0);
        }
        let slam = lambda.sqrt();
        let loglam = lambda.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let invalpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            if v.ln() + invalpha.ln() - (a / (us * us) + b).ln()
                <= -lambda + k * loglam - ln_factorial(k)
            {
                return k;
            }
        }
    }
}

/// `ln(k!)` for a whole `k ≥ 0`: exact sums below 20, Stirling's series beyond.
fn ln_factorial(k: f64) -> f64 {
    if k < 20.0 {
        let mut sum = 0.0;
        let mut i = 2.0;
        while i <= k {
            sum += f64::ln(i);
            i += 1.0;
        }
        return sum;
    }
    let k2 = k * k;
    k * k.ln() - k + 0.5 * (TAU * k).ln() + 1.0 / (12.0 * k) - 1.0 / (360.0 * k2 * k)
        + 1.0 / (1260.0 * k2 * k2 * k)
}

/// The trace of `spec` on its grid: one value per step, `None` for missing outages.
pub fn generate_values(spec: &TraceSpec) -> Result<Vec<Option<f64>>, SpecError> {
    spec.validate()?;
    let steps = spec.steps();
    let step = spec.step_seconds();
    let start = spec.start.timestamp();
    let shape = Shape::new(spec);
    let mask = spec.outage_mask();
    let mut noise_rng = SplitMix64::new(spec.seed, 1);
    let mut walk_rng = SplitMix64::new(spec.seed, 2);
    let step_hours = step as f64 / 3600.0;
    let mut walk = 0.0f64;
    let mut values = Vec::with_capacity(steps);
    for (i, outage) in mask.iter().enumerate() {
        let offset = i as i64 * step;
        let mut level = shape.level(start + offset, offset as f64);
        if let Some(w) = &spec.random_walk {
            level *= walk.exp();
            let keep = (1.0 - w.reversion_per_day * step_hours / 24.0).clamp(0.0, 1.0);
            walk = (walk * keep + w.sd_per_hour * step_hours.sqrt() * walk_rng.normal())
                .clamp(-10.0, 10.0);
        }
        let level = if level.is_finite() {
            level.clamp(0.0, MAX_AMOUNT)
        } else {
            MAX_AMOUNT
        };
        let value = match spec.noise {
            Noise::None => level,
            Noise::Poisson { counts_per_unit } => {
                let lambda = level * counts_per_unit;
                let count = noise_rng.poisson(lambda.min(MAX_AMOUNT));
                if lambda > MAX_AMOUNT {
                    // Noise of one part in 3·10^7 or less: the level itself.
                    level
                } else {
                    (count / counts_per_unit).min(MAX_AMOUNT)
                }
            }
        };
        values.push(match outage {
            None => Some(value),
            Some(OutageKind::Zero) => Some(0.0),
            Some(OutageKind::Missing) => None,
        });
    }
    Ok(values)
}

/// The samples of `spec`: `(time, value)` for every step that is not missing, in time order.
/// Deterministic for a spec (seed included).
pub fn generate(spec: &TraceSpec) -> Result<Vec<(DateTime<Utc>, f64)>, SpecError> {
    let values = generate_values(spec)?;
    let step = TimeDelta::seconds(spec.step_seconds());
    Ok(values
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (spec.start + step * i as i32, v)))
        .collect())
}

/// The spec's trace as the simulator holds it (the same as loading its CSV file).
pub fn generate_trace(spec: &TraceSpec) -> Result<Trace, SpecError> {
    Ok(Trace {
        name: spec.name.clone(),
        step: TimeDelta::seconds(spec.step_seconds()),
        start: spec.start,
        values: generate_values(spec)?,
    })
}

/// Decimal places that keep about seven significant digits at the spec's level.
fn decimals(spec: &TraceSpec) -> usize {
    if matches!(spec.noise, Noise::Poisson { counts_per_unit } if counts_per_unit == 1.0) {
        return 0;
    }
    (6 - spec.base.log10().floor() as i64).clamp(0, 12) as usize
}

/// `samples` as a `timestamp,value` CSV file (RFC 3339 UTC timestamps), the format
/// `hoist simulate --trace` and `hoist evaluate --traces` read. Values keep about seven
/// significant digits at the spec's base level (whole counts for Poisson noise at one count
/// per unit).
pub fn to_csv(spec: &TraceSpec, samples: &[(DateTime<Utc>, f64)]) -> String {
    let places = decimals(spec);
    let mut out = String::with_capacity(samples.len() * 32 + 16);
    out.push_str(TRACE_HEADER);
    out.push('\n');
    for (at, value) in samples {
        let _ = write!(
            out,
            "{},",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let text = format!("{value:.places$}");
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            &text
        };
        out.push_str(text);
        out.push('\n');
    }
    out
}

/// A built-in suite by name (see [`SUITES`]).
pub fn suite(name: &str) -> Option<Vec<TraceSpec>> {
    match name {
        "standard" => Some(standard_suite()),
        _ => None,
    }
}

fn hours(h: u64) -> HumanDuration {
    HumanDuration::from_secs(h * 3600)
}

fn minutes(m: u64) -> HumanDuration {
    HumanDuration::from_secs(m * 60)
}

/// `day` days and `minute` minutes after the start.
fn day_at(day: u64, minute: u64) -> HumanDuration {
    HumanDuration::from_secs(day * 86_400 + minute * 60)
}

fn harmonic(order: u32, amplitude: f64, peak_hour: f64) -> Harmonic {
    Harmonic {
        order,
        amplitude,
        peak_hour,
    }
}

fn poisson(counts_per_unit: f64) -> Noise {
    Noise::Poisson { counts_per_unit }
}

/// The days of the standard suite's traces: five whole weeks, so train/test splits can hold
/// whole weeks.
const SUITE_DAYS: u32 = 35;

/// The standard suite: 19 named traces, five weeks each from Monday 2024-01-01, covering the
/// features real loads have one or a few at a time (documented with their parameters in
/// `docs/guides/generated-traces.md`):
///
/// - daily cycles of four shapes (`daily-single-peak`, `daily-double-peak`, `business-hours`,
///   `night-batch`) and a weekly profile (`weekly-profile`);
/// - a trend on a cycle (`trend-growth`), a holiday week (`holiday-week`) and a launch
///   (`launch`);
/// - flash crowds of 2× for hours (`flash-2x-hours`), 5× for about an hour (`flash-5x`) and
///   10× for minutes (`flash-10x-minutes`), and a 1-minute trace with match-day crowds
///   (`matchday-1min`);
/// - gaps and zero outages (`outages-gaps`);
/// - Poisson noise at about 5 counts a step (`poisson-low`) and 200,000 (`poisson-high`),
///   noise with no cycle (`noise-only`), a random walk with no cycle (`random-walk`);
/// - a daily cycle under a wandering level, weeks alike (`isp-daily`), where yesterday is a
///   better guide than last week;
/// - 1-minute sampling (`daily-1min`, `matchday-1min`).
pub fn standard_suite() -> Vec<TraceSpec> {
    let spec = |name: &str, description: &str, base: f64, seed: u64| TraceSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        start: default_start(),
        days: SUITE_DAYS,
        step_minutes: 5,
        base,
        daily: None,
        weekly: None,
        trend_per_week: 0.0,
        level_shifts: Vec::new(),
        flash_crowds: Vec::new(),
        outages: Vec::new(),
        random_walk: None,
        noise: poisson(1.0),
        seed,
    };
    let single = || DailyCycle::Harmonics(vec![harmonic(1, 0.6, 15.0)]);
    let crowds = |days: &[(u64, u64)], onset: u64, hold: u64, duration: u64, peak: f64| {
        days.iter()
            .map(|&(day, minute)| FlashCrowd {
                at: day_at(day, minute),
                onset: minutes(onset),
                peak,
                hold: minutes(hold),
                duration: minutes(duration),
            })
            .collect::<Vec<_>>()
    };

    vec![
        TraceSpec {
            daily: Some(single()),
            ..spec(
                "daily-single-peak",
                "One smooth daily peak at 15:00 (peak/mean 1.6, trough 0.4), every day alike.",
                1000.0,
                101,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Harmonics(vec![
                harmonic(1, 0.2, 15.0),
                harmonic(2, 0.4, 9.5),
            ])),
            weekly: Some(WeeklyCycle::WeekendFactor(0.8)),
            ..spec(
                "daily-double-peak",
                "Two peaks a day (mid-morning and evening) with a lull between; weekends at 80 %.",
                1000.0,
                102,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Hourly(vec![
                0.15, 0.12, 0.1, 0.1, 0.1, 0.12, 0.2, 0.5, 1.1, 1.6, 1.7, 1.7, 1.5, 1.6, 1.7, 1.7,
                1.6, 1.3, 0.8, 0.5, 0.35, 0.28, 0.22, 0.18,
            ])),
            weekly: Some(WeeklyCycle::WeekendFactor(0.25)),
            ..spec(
                "business-hours",
                "Office hours: a plateau from 09:00 to 17:00 with a lunch dip, more than ten times the night; weekends at 25 %.",
                800.0,
                103,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Hourly(vec![
                0.5, 2.6, 3.0, 3.0, 2.2, 0.5, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.9, 0.9, 0.9, 0.9,
                0.85, 0.8, 0.8, 0.75, 0.7, 0.6, 0.5, 0.5,
            ])),
            ..spec(
                "night-batch",
                "A nightly batch from 01:00 to 04:00 at three times the daytime load, which is mild and flat.",
                1000.0,
                104,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Harmonics(vec![harmonic(1, 0.45, 13.0)])),
            weekly: Some(WeeklyCycle::Profile(vec![
                1.0, 1.08, 1.1, 1.05, 0.9, 0.5, 0.42,
            ])),
            ..spec(
                "weekly-profile",
                "A daily peak at 13:00 on a weekly profile: busiest mid-week, Friday lighter, weekends under half.",
                2000.0,
                105,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Harmonics(vec![harmonic(1, 0.5, 16.0)])),
            weekly: Some(WeeklyCycle::WeekendFactor(0.75)),
            trend_per_week: 0.06,
            ..spec(
                "trend-growth",
                "A daily cycle growing 6 % of the first week's level every week (1.3× by the last).",
                1500.0,
                106,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Harmonics(vec![harmonic(1, 0.5, 14.0)])),
            weekly: Some(WeeklyCycle::WeekendFactor(0.7)),
            level_shifts: vec![LevelShift {
                at: HumanDuration::from_secs(21 * 86_400),
                factor: 0.55,
                duration: Some(HumanDuration::from_secs(7 * 86_400)),
                ramp: HumanDuration::default(),
            }],
            ..spec(
                "holiday-week",
                "Week 4 (days 21-28) is a holiday at 55 % of the usual load; week 5 is back to normal.",
                1200.0,
                107,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Harmonics(vec![harmonic(1, 0.5, 15.0)])),
            weekly: Some(WeeklyCycle::WeekendFactor(0.75)),
            level_shifts: vec![LevelShift {
                at: day_at(29, 9 * 60),
                factor: 1.8,
                duration: None,
                ramp: hours(4),
            }],
            ..spec(
                "launch",
                "A launch on day 29 at 09:00 (a Tuesday) brings 80 % more load for good, ramping up over 4 h.",
                1000.0,
                108,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Harmonics(vec![harmonic(1, 0.5, 15.0)])),
            weekly: Some(WeeklyCycle::WeekendFactor(0.75)),
            flash_crowds: crowds(
                &[
                    (4, 780),
                    (10, 600),
                    (17, 840),
                    (22, 720),
                    (29, 900),
                    (33, 660),
                ],
                30,
                120,
                240,
                2.0,
            ),
            ..spec(
                "flash-2x-hours",
                "Six 2× crowds lasting 4 h (30 min onset, 2 h at the peak, 1.5 h decline) on irregular days.",
                1000.0,
                109,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Harmonics(vec![harmonic(1, 0.5, 15.0)])),
            weekly: Some(WeeklyCycle::WeekendFactor(0.75)),
            flash_crowds: crowds(
                &[
                    (2, 1140),
                    (9, 1230),
                    (15, 660),
                    (20, 1080),
                    (26, 870),
                    (31, 1200),
                ],
                10,
                20,
                90,
                5.0,
            ),
            ..spec(
                "flash-5x",
                "Six 5× crowds of 90 min (10 min onset, 20 min at the peak) on irregular days.",
                1000.0,
                110,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Harmonics(vec![harmonic(1, 0.5, 15.0)])),
            weekly: Some(WeeklyCycle::WeekendFactor(0.75)),
            flash_crowds: crowds(
                &[
                    (3, 900),
                    (3, 1050),
                    (3, 1200),
                    (12, 1020),
                    (12, 1170),
                    (19, 840),
                    (19, 990),
                    (19, 1140),
                    (23, 1080),
                    (23, 1230),
                    (30, 960),
                    (30, 1110),
                    (30, 1260),
                ],
                5,
                5,
                30,
                10.0,
            ),
            ..spec(
                "flash-10x-minutes",
                "10× crowds of 30 min (5 min onset, 5 min at the peak), two or three on each of five irregular event days.",
                1000.0,
                111,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Harmonics(vec![harmonic(1, 0.5, 14.0)])),
            weekly: Some(WeeklyCycle::WeekendFactor(0.6)),
            outages: vec![
                Outage {
                    at: day_at(5, 600),
                    duration: hours(2),
                    kind: OutageKind::Missing,
                },
                Outage {
                    at: day_at(8, 660),
                    duration: minutes(45),
                    kind: OutageKind::Zero,
                },
                Outage {
                    at: day_at(12, 1200),
                    duration: hours(26),
                    kind: OutageKind::Missing,
                },
                Outage {
                    at: day_at(19, 180),
                    duration: minutes(15),
                    kind: OutageKind::Missing,
                },
                Outage {
                    at: day_at(27, 840),
                    duration: hours(6),
                    kind: OutageKind::Missing,
                },
                Outage {
                    at: day_at(30, 960),
                    duration: minutes(20),
                    kind: OutageKind::Zero,
                },
            ],
            ..spec(
                "outages-gaps",
                "A daily and weekly cycle with four gaps (15 min to 26 h, no rows) and two outages that report 0 (45 and 20 min).",
                1000.0,
                112,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Harmonics(vec![harmonic(1, 0.7, 15.0)])),
            weekly: Some(WeeklyCycle::WeekendFactor(0.8)),
            ..spec(
                "poisson-low",
                "Counts of about 5 a step (1.5 at night, 8.5 at the peak): the cycle is there but each sample is mostly noise.",
                5.0,
                113,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Harmonics(vec![
                harmonic(1, 0.3, 14.0),
                harmonic(2, 0.15, 10.0),
            ])),
            weekly: Some(WeeklyCycle::WeekendFactor(0.85)),
            ..spec(
                "poisson-high",
                "Counts of about 200,000 a step: a smooth cycle with a morning shoulder, 0.2 % noise.",
                200_000.0,
                114,
            )
        },
        TraceSpec {
            ..spec(
                "noise-only",
                "Poisson counts of mean 40 a step, no cycle, no trend: nothing to forecast.",
                40.0,
                115,
            )
        },
        TraceSpec {
            random_walk: Some(RandomWalk {
                sd_per_hour: 0.05,
                reversion_per_day: 0.3,
            }),
            ..spec(
                "random-walk",
                "No cycle: the level wanders (log random walk, 5 % an hour, pulled back 30 % a day, spread about ±30 %), with Poisson counts of about 1000.",
                1000.0,
                116,
            )
        },
        TraceSpec {
            step_minutes: 1,
            daily: Some(DailyCycle::Harmonics(vec![
                harmonic(1, 0.5, 14.0),
                harmonic(2, 0.1, 11.0),
            ])),
            weekly: Some(WeeklyCycle::WeekendFactor(0.7)),
            ..spec(
                "daily-1min",
                "1-minute sampling of a daily cycle with a weekend dip, counts of about 300 a minute.",
                300.0,
                117,
            )
        },
        TraceSpec {
            step_minutes: 1,
            daily: Some(DailyCycle::Harmonics(vec![harmonic(1, 0.6, 13.0)])),
            weekly: Some(WeeklyCycle::WeekendFactor(0.8)),
            flash_crowds: crowds(
                &[
                    (5, 1110),
                    (5, 1200),
                    (9, 1140),
                    (16, 930),
                    (16, 1020),
                    (16, 1170),
                    (20, 1200),
                    (26, 1080),
                    (26, 1170),
                    (29, 1140),
                    (33, 960),
                    (33, 1050),
                ],
                3,
                10,
                45,
                8.0,
            ),
            ..spec(
                "matchday-1min",
                "1-minute web traffic with match days: 8× crowds (3 min onset, 10 min at the peak, 45 min in all), one to three on each of seven irregular days.",
                100.0,
                118,
            )
        },
        TraceSpec {
            daily: Some(DailyCycle::Harmonics(vec![
                harmonic(1, 0.55, 21.0),
                harmonic(2, 0.15, 11.0),
            ])),
            random_walk: Some(RandomWalk {
                sd_per_hour: 0.02,
                reversion_per_day: 0.05,
            }),
            ..spec(
                "isp-daily",
                "Network traffic: a strong, smooth daily cycle peaking at 21:00, weeks alike, under a slowly wandering level (2 % an hour, pulled back 5 % a day), counts of about 3000.",
                3000.0,
                119,
            )
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const REF_LOW: [f64; 8] = [2.0, 4.0, 7.0, 4.0, 4.0, 2.0, 6.0, 6.0];
    const REF_MID: [f64; 8] = [92.0, 92.0, 94.0, 105.0, 99.0, 104.0, 100.0, 104.0];
    const REF_WALK: [f64; 8] = [92.0, 96.0, 132.0, 139.0, 110.0, 130.0, 113.0, 104.0];

    fn plain(name: &str) -> TraceSpec {
        TraceSpec {
            name: name.to_owned(),
            description: String::new(),
            start: default_start(),
            days: 7,
            step_minutes: 5,
            base: 100.0,
            daily: None,
            weekly: None,
            trend_per_week: 0.0,
            level_shifts: Vec::new(),
            flash_crowds: Vec::new(),
            outages: Vec::new(),
            random_walk: None,
            noise: Noise::None,
            seed: 1,
        }
    }

    fn values(spec: &TraceSpec) -> Vec<f64> {
        generate_values(spec)
            .unwrap()
            .into_iter()
            .map(|v| v.unwrap())
            .collect()
    }

    fn autocorrelation(x: &[f64], lag: usize) -> f64 {
        let n = x.len();
        let mean = x.iter().sum::<f64>() / n as f64;
        let var: f64 = x.iter().map(|v| (v - mean).powi(2)).sum();
        let cov: f64 = (0..n - lag)
            .map(|i| (x[i] - mean) * (x[i + lag] - mean))
            .sum();
        cov / var
    }

    fn mean_var(x: &[f64]) -> (f64, f64) {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
        for spec in standard_suite() {
            let a = generate(&spec).unwrap();
            let b = generate(&spec).unwrap();
            assert_eq!(a, b, "{}", spec.name);
            let other = TraceSpec {
                seed: spec.seed + 1000,
                ..spec.clone()
            };
            assert_ne!(a, generate(&other).unwrap(), "{}", spec.name);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_values_as_a_fixed_reference() {
        // Pins the generator: a change that moves every trace must be deliberate.
        let counts = |base: f64, walk: bool| {
            let spec = TraceSpec {
                base,
                random_walk: walk.then_some(RandomWalk {
                    sd_per_hour: 0.5,
                    reversion_per_day: 1.0,
                }),
                noise: Noise::Poisson {
                    counts_per_unit: 1.0,
                },
                seed: 42,
                ..plain("ref")
            };
            values(&spec)[..8].to_vec()
        };
        assert_eq!(counts(5.0, false), REF_LOW);
        assert_eq!(counts(100.0, false), REF_MID);
        assert_eq!(counts(100.0, true), REF_WALK);
    }

    #[test]
    fn a_daily_cycle_correlates_at_one_day_not_at_half_a_day() {
        let spec = standard_suite()
            .into_iter()
            .find(|s| s.name == "daily-single-peak")
            .unwrap();
        let v = values(&spec);
        let day = 24 * 60 / spec.step_minutes as usize;
        let at_day = autocorrelation(&v, day);
        let at_half = autocorrelation(&v, day / 2);
        assert!(at_day > 0.9, "{at_day}");
        assert!(at_half < 0.0, "{at_half}");
        // The peak is at 15:00 (1.6 × base) and the trough at 03:00 (0.4 × base).
        let hour = |h: usize| {
            let at: Vec<f64> = v.iter().skip(h * 12).step_by(day).copied().collect();
            at.iter().sum::<f64>() / at.len() as f64
        };
        assert!((hour(15) / 1600.0 - 1.0).abs() < 0.01, "{}", hour(15));
        assert!((hour(3) / 400.0 - 1.0).abs() < 0.02, "{}", hour(3));
    }

    #[test]
    fn a_weekly_cycle_lowers_weekends_and_a_trend_raises_the_level() {
        let spec = TraceSpec {
            days: 28,
            weekly: Some(WeeklyCycle::WeekendFactor(0.5)),
            trend_per_week: 0.1,
            ..plain("weekly")
        };
        let v = values(&spec);
        let day = 288;
        let day_mean = |d: usize| v[d * day..(d + 1) * day].iter().sum::<f64>() / day as f64;
        // 2024-01-01 is a Monday: days 5 and 6 are the weekend.
        assert!((day_mean(5) / day_mean(4) - 0.5).abs() < 0.01);
        assert!((day_mean(7) / day_mean(0) - 1.1).abs() < 0.01);
        assert!(day_mean(21) > day_mean(0) * 1.29);
    }

    #[test]
    fn an_hourly_profile_is_interpolated_between_hours() {
        let mut profile = vec![1.0; 24];
        profile[10] = 3.0;
        let spec = TraceSpec {
            daily: Some(DailyCycle::Hourly(profile)),
            ..plain("hourly")
        };
        let v = values(&spec);
        assert!((v[10 * 12] - 300.0).abs() < 1e-9);
        assert!((v[9 * 12 + 6] - 200.0).abs() < 1e-9, "{}", v[9 * 12 + 6]);
        assert!((v[12 * 12] - 100.0).abs() < 1e-9);
    }

    #[test]
    fn poisson_noise_has_variance_equal_to_its_mean() {
        for (rate, counts_per_unit) in [(5.0, 1.0), (40.0, 1.0), (1000.0, 1.0), (500.0, 0.1)] {
            let spec = TraceSpec {
                days: 35,
                base: rate,
                noise: Noise::Poisson { counts_per_unit },
                seed: 9,
                ..plain("noise")
            };
            let counts: Vec<f64> = values(&spec)
                .into_iter()
                .map(|v| v * counts_per_unit)
                .collect();
            assert!(
                counts
                    .iter()
                    .all(|c| (c - c.round()).abs() < 1e-6 && *c >= 0.0)
            );
            let expected = rate * counts_per_unit;
            let (mean, var) = mean_var(&counts);
            assert!(
                (mean / expected - 1.0).abs() < 0.03,
                "rate {rate}: mean {mean}"
            );
            assert!(
                (var / mean - 1.0).abs() < 0.08,
                "rate {rate}: variance {var} against mean {mean}"
            );
        }
    }

    #[test]
    fn poisson_counts_at_very_high_rates_stay_close_and_finite() {
        let mut g = SplitMix64::new(3, 1);
        for lambda in [1e6, 1e9, 1e14] {
            let (mean, var) = mean_var(&(0..4000).map(|_| g.poisson(lambda)).collect::<Vec<_>>());
            assert!((mean / lambda - 1.0).abs() < 1e-3, "{lambda}: {mean}");
            assert!((var / lambda - 1.0).abs() < 0.15, "{lambda}: {var}");
        }
        assert_eq!(g.poisson(0.0), 0.0);
        assert_eq!(g.poisson(f64::NAN), 0.0);
    }

    #[test]
    fn ln_factorial_matches_the_sum_of_logs() {
        let mut sum = 0.0;
        for k in 1..200 {
            sum += f64::ln(k as f64);
            let got = ln_factorial(k as f64);
            assert!(
                (got - sum).abs() < 1e-9 * sum.max(1.0),
                "{k}: {got} vs {sum}"
            );
        }
    }

    #[test]
    fn a_flash_crowd_reaches_its_multiple_within_its_onset_and_ends() {
        let spec = TraceSpec {
            flash_crowds: vec![FlashCrowd {
                at: day_at(2, 600),
                onset: minutes(10),
                peak: 5.0,
                hold: minutes(20),
                duration: minutes(60),
            }],
            ..plain("crowd")
        };
        let v = values(&spec);
        let at = (2 * 1440 + 600) / 5;
        assert_eq!(v[at - 1], 100.0);
        assert_eq!(v[at], 100.0, "the crowd starts from the level at `at`");
        assert!(v[at + 1] > 250.0 && v[at + 1] < 500.0, "{}", v[at + 1]);
        assert_eq!(v[at + 2], 500.0, "the peak after the 10 min onset");
        assert_eq!(v[at + 6], 500.0, "held for 20 min");
        assert!(v[at + 8] < 500.0 && v[at + 8] > 100.0);
        assert_eq!(v[at + 12], 100.0, "over after 60 min");
        assert_eq!(v.iter().copied().fold(0.0, f64::max), 500.0);

        // With noise, the peak is reached within the onset too.
        let noisy = TraceSpec {
            base: 1000.0,
            noise: Noise::Poisson {
                counts_per_unit: 1.0,
            },
            ..spec.clone()
        };
        let v = values(&noisy);
        assert!(v[at + 2] > 4500.0, "{}", v[at + 2]);
    }

    #[test]
    fn overlapping_crowds_add_their_excess() {
        let crowd = FlashCrowd {
            at: hours(10),
            onset: HumanDuration::default(),
            peak: 3.0,
            hold: hours(1),
            duration: hours(1),
        };
        let spec = TraceSpec {
            flash_crowds: vec![crowd, crowd],
            ..plain("overlap")
        };
        assert_eq!(values(&spec)[10 * 12 + 3], 500.0);
    }

    #[test]
    fn level_shifts_ramp_hold_and_come_back() {
        let spec = TraceSpec {
            level_shifts: vec![LevelShift {
                at: day_at(1, 0),
                factor: 0.5,
                duration: Some(day_at(1, 0)),
                ramp: hours(2),
            }],
            ..plain("shift")
        };
        let v = values(&spec);
        assert_eq!(v[288 - 1], 100.0);
        assert!((v[288 + 12] - 75.0).abs() < 1e-9, "halfway up the ramp");
        assert!((v[288 + 24 + 100] - 50.0).abs() < 1e-9);
        assert!((v[2 * 288 + 24 + 12] - 75.0).abs() < 1e-9, "halfway back");
        assert_eq!(v[3 * 288], 100.0);
    }

    #[test]
    fn missing_outages_are_absent_rows_and_zero_outages_are_zero() {
        let spec = TraceSpec {
            outages: vec![
                Outage {
                    at: hours(10),
                    duration: hours(2),
                    kind: OutageKind::Missing,
                },
                Outage {
                    at: hours(30),
                    duration: minutes(30),
                    kind: OutageKind::Zero,
                },
            ],
            noise: Noise::Poisson {
                counts_per_unit: 1.0,
            },
            ..plain("gaps")
        };
        let rows = generate(&spec).unwrap();
        assert_eq!(rows.len(), spec.steps() - 24);
        let gap_from = spec.start + TimeDelta::hours(10);
        let gap_until = spec.start + TimeDelta::hours(12);
        assert!(rows.iter().all(|(t, _)| *t < gap_from || *t >= gap_until));
        let trace = generate_trace(&spec).unwrap();
        assert_eq!(trace.gaps(), 24);
        assert!(trace.values[120..144].iter().all(Option::is_none));
        assert!(trace.values[360..366].iter().all(|v| *v == Some(0.0)));
        assert!(trace.values[366].unwrap() > 50.0);

        // The noise of the other steps does not move when an outage is added.
        let without = TraceSpec {
            outages: Vec::new(),
            ..spec.clone()
        };
        let other = generate_trace(&without).unwrap();
        assert_eq!(trace.values[..120], other.values[..120]);
        assert_eq!(trace.values[144..360], other.values[144..360]);
        assert_eq!(trace.values[366..], other.values[366..]);
    }

    #[test]
    fn the_csv_reads_back_as_the_same_trace() {
        for spec in standard_suite() {
            let rows = generate(&spec).unwrap();
            let csv = to_csv(&spec, &rows);
            let loaded = hoist_sim::trace::parse_trace(&spec.name, &csv).unwrap();
            let trace = generate_trace(&spec).unwrap();
            assert_eq!(loaded.step, trace.step, "{}", spec.name);
            assert_eq!(loaded.start, trace.start, "{}", spec.name);
            assert_eq!(loaded.len(), trace.len(), "{}", spec.name);
            for (a, b) in loaded.values.iter().zip(&trace.values) {
                match (a, b) {
                    (Some(a), Some(b)) => {
                        assert!((a - b).abs() <= 1e-6 * spec.base, "{}", spec.name)
                    }
                    (None, None) => {}
                    _ => panic!("{}: gap mismatch", spec.name),
                }
            }
        }
    }

    #[test]
    fn the_standard_suite_covers_the_features() {
        let suite = standard_suite();
        assert!(suite.len() >= 12);
        let mut names: Vec<&str> = suite.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), suite.len(), "names are unique");
        for spec in &suite {
            spec.validate().unwrap();
            assert!(spec.days >= 28, "{}", spec.name);
            assert!(!spec.description.is_empty(), "{}", spec.name);
        }
        let any = |f: &dyn Fn(&TraceSpec) -> bool| suite.iter().any(f);
        assert!(any(&|s| s.step_minutes == 1));
        assert!(any(&|s| matches!(s.daily, Some(DailyCycle::Hourly(_)))));
        assert!(any(&|s| matches!(s.weekly, Some(WeeklyCycle::Profile(_)))));
        assert!(any(&|s| s.trend_per_week > 0.0));
        assert!(any(&|s| s
            .level_shifts
            .iter()
            .any(|l| l.duration.is_some())));
        assert!(any(&|s| s
            .level_shifts
            .iter()
            .any(|l| l.duration.is_none())));
        for peak in [2.0, 5.0, 10.0] {
            assert!(any(&|s| s.flash_crowds.iter().any(|c| c.peak == peak)));
        }
        assert!(any(&|s| s
            .outages
            .iter()
            .any(|o| o.kind == OutageKind::Zero)));
        assert!(any(&|s| s
            .outages
            .iter()
            .any(|o| o.kind == OutageKind::Missing)));
        assert!(any(&|s| s.daily.is_none() && s.random_walk.is_some()));
        assert!(any(&|s| s.daily.is_none() && s.random_walk.is_none()));
        assert!(any(&|s| s.base <= 5.0 && s.noise == poisson(1.0)));
        assert!(any(&|s| s.base >= 1e5));
        assert_eq!(super::suite("standard").unwrap(), suite);
        assert!(super::suite("other").is_none());
    }

    #[test]
    fn specs_round_trip_through_json_and_refuse_unknown_fields() {
        for spec in standard_suite() {
            let json = serde_json::to_string(&spec).unwrap();
            let back: TraceSpec = serde_json::from_str(&json).unwrap();
            assert_eq!(back, spec);
        }
        let e = serde_json::from_str::<TraceSpec>(
            r#"{"name": "x", "days": 7, "base": 1, "amplitude": 2}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("amplitude"), "{e}");
        let e = serde_json::from_str::<TraceSpec>(
            r#"{"name": "x", "days": 7, "base": 1, "flash_crowds": [{"at": "1d", "onset": "5", "peak": 2, "duration": "1h"}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("missing unit"), "{e}");
    }

    #[test]
    fn bad_specs_are_refused_naming_the_field() {
        let crowd = FlashCrowd {
            at: hours(1),
            onset: minutes(10),
            peak: 2.0,
            hold: minutes(10),
            duration: hours(1),
        };
        let shift = LevelShift {
            at: hours(1),
            factor: 2.0,
            duration: None,
            ramp: HumanDuration::default(),
        };
        let gap = Outage {
            at: hours(1),
            duration: hours(1),
            kind: OutageKind::Missing,
        };
        let daily = |d: DailyCycle| Some(d);
        type Edit = Box<dyn Fn(&mut TraceSpec)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("name", Box::new(|s| s.name = "a/b".into())),
            ("name", Box::new(|s| s.name = String::new())),
            ("name", Box::new(|s| s.name = ".hidden".into())),
            ("days", Box::new(|s| s.days = 0)),
            ("days", Box::new(|s| s.days = 100_000)),
            ("step_minutes", Box::new(|s| s.step_minutes = 7)),
            ("step_minutes", Box::new(|s| s.step_minutes = 0)),
            ("base", Box::new(|s| s.base = f64::NAN)),
            ("base", Box::new(|s| s.base = -1.0)),
            ("base", Box::new(|s| s.base = 0.0)),
            ("base", Box::new(|s| s.base = 1e300)),
            (
                "start",
                Box::new(|s| s.start = DateTime::from_timestamp(-86_400, 0).unwrap()),
            ),
            (
                "daily.hourly",
                Box::new(move |s| s.daily = daily(DailyCycle::Hourly(vec![1.0; 23]))),
            ),
            (
                "daily.hourly",
                Box::new(move |s| s.daily = daily(DailyCycle::Hourly(vec![0.0; 24]))),
            ),
            (
                "daily.hourly[3]",
                Box::new(move |s| {
                    let mut p = vec![1.0; 24];
                    p[3] = -1.0;
                    s.daily = daily(DailyCycle::Hourly(p));
                }),
            ),
            (
                "daily.harmonics",
                Box::new(move |s| s.daily = daily(DailyCycle::Harmonics(Vec::new()))),
            ),
            (
                "daily.harmonics[0].amplitude",
                Box::new(move |s| {
                    s.daily = daily(DailyCycle::Harmonics(vec![harmonic(1, f64::INFINITY, 3.0)]))
                }),
            ),
            (
                "daily.harmonics[1].peak_hour",
                Box::new(move |s| {
                    s.daily = daily(DailyCycle::Harmonics(vec![
                        harmonic(1, 0.5, 3.0),
                        harmonic(2, 0.5, 24.0),
                    ]))
                }),
            ),
            (
                "daily.harmonics[0].order",
                Box::new(move |s| {
                    s.daily = daily(DailyCycle::Harmonics(vec![harmonic(0, 0.5, 3.0)]))
                }),
            ),
            (
                "weekly.profile",
                Box::new(|s| s.weekly = Some(WeeklyCycle::Profile(vec![1.0; 6]))),
            ),
            (
                "weekly.weekend_factor",
                Box::new(|s| s.weekly = Some(WeeklyCycle::WeekendFactor(-0.5))),
            ),
            ("trend_per_week", Box::new(|s| s.trend_per_week = 1e9)),
            (
                "flash_crowds[1].peak",
                Box::new(move |s| s.flash_crowds = vec![crowd, FlashCrowd { peak: 0.5, ..crowd }]),
            ),
            (
                "flash_crowds[0].duration",
                Box::new(move |s| {
                    s.flash_crowds = vec![FlashCrowd {
                        duration: minutes(15),
                        ..crowd
                    }]
                }),
            ),
            (
                "flash_crowds[0].duration",
                Box::new(move |s| {
                    s.flash_crowds = vec![FlashCrowd {
                        onset: HumanDuration::default(),
                        hold: HumanDuration::default(),
                        duration: day_at(40, 0),
                        ..crowd
                    }]
                }),
            ),
            (
                "flash_crowds[0].at",
                Box::new(move |s| {
                    s.flash_crowds = vec![FlashCrowd {
                        at: day_at(8, 0),
                        ..crowd
                    }]
                }),
            ),
            (
                "flash_crowds",
                Box::new(move |s| s.flash_crowds = vec![crowd; MAX_EVENTS + 1]),
            ),
            (
                "level_shifts[0].factor",
                Box::new(move |s| {
                    s.level_shifts = vec![LevelShift {
                        factor: f64::NAN,
                        ..shift
                    }]
                }),
            ),
            (
                "level_shifts[0].ramp",
                Box::new(move |s| {
                    s.level_shifts = vec![LevelShift {
                        ramp: day_at(31, 0),
                        ..shift
                    }]
                }),
            ),
            (
                "level_shifts[0].duration",
                Box::new(move |s| {
                    s.level_shifts = vec![LevelShift {
                        duration: Some(HumanDuration::default()),
                        ..shift
                    }]
                }),
            ),
            // A gap at the first step, or past the last, would move the file's grid.
            (
                "outages[0]",
                Box::new(move |s| {
                    s.outages = vec![Outage {
                        at: hours(0),
                        ..gap
                    }]
                }),
            ),
            (
                "outages[0]",
                Box::new(move |s| {
                    s.outages = vec![Outage {
                        duration: day_at(7, 0),
                        ..gap
                    }]
                }),
            ),
            (
                "outages",
                Box::new(move |s| {
                    s.outages = vec![Outage {
                        duration: day_at(5, 0),
                        ..gap
                    }]
                }),
            ),
            // Every other step missing: the file's step would read back as 10 minutes.
            (
                "outages",
                Box::new(move |s| {
                    s.outages = (1..1000)
                        .map(|i| Outage {
                            at: minutes(10 * i + 5),
                            duration: minutes(5),
                            ..gap
                        })
                        .collect()
                }),
            ),
            (
                "outages[0].duration",
                Box::new(move |s| {
                    s.outages = vec![Outage {
                        duration: HumanDuration::default(),
                        ..gap
                    }]
                }),
            ),
            (
                "random_walk.sd_per_hour",
                Box::new(|s| {
                    s.random_walk = Some(RandomWalk {
                        sd_per_hour: 100.0,
                        reversion_per_day: 0.0,
                    })
                }),
            ),
            (
                "random_walk.reversion_per_day",
                Box::new(|s| {
                    s.random_walk = Some(RandomWalk {
                        sd_per_hour: 0.1,
                        reversion_per_day: -1.0,
                    })
                }),
            ),
            (
                "noise.poisson.counts_per_unit",
                Box::new(|s| s.noise = poisson(f64::INFINITY)),
            ),
            (
                "noise.poisson.counts_per_unit",
                Box::new(|s| s.noise = poisson(0.0)),
            ),
            (
                "noise.poisson.counts_per_unit",
                Box::new(|s| s.noise = poisson(-3.0)),
            ),
        ];
        for (field, edit) in cases {
            let mut spec = plain("x");
            edit(&mut spec);
            let e = generate(&spec).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(
                e.to_string().starts_with(&format!("field `{field}`: ")),
                "{e}"
            );
        }
        plain("x").validate().unwrap();
    }

    #[test]
    fn extreme_but_valid_specs_stay_finite_and_bounded() {
        let spec = TraceSpec {
            days: 2,
            base: MAX_BASE,
            daily: Some(DailyCycle::Harmonics(vec![harmonic(1, 10.0, 0.0); 24])),
            weekly: Some(WeeklyCycle::WeekendFactor(100.0)),
            trend_per_week: 10.0,
            level_shifts: vec![LevelShift {
                at: hours(1),
                factor: 1000.0,
                duration: None,
                ramp: HumanDuration::default(),
            }],
            flash_crowds: vec![FlashCrowd {
                at: hours(2),
                onset: HumanDuration::default(),
                peak: 1000.0,
                hold: HumanDuration::default(),
                duration: hours(3),
            }],
            random_walk: Some(RandomWalk {
                sd_per_hour: 2.0,
                reversion_per_day: 0.0,
            }),
            noise: Noise::Poisson {
                counts_per_unit: 1e9,
            },
            ..plain("extreme")
        };
        let v = values(&spec);
        assert!(
            v.iter()
                .all(|x| x.is_finite() && (0.0..=MAX_AMOUNT).contains(x))
        );
        let csv = to_csv(&spec, &generate(&spec).unwrap());
        hoist_sim::trace::parse_trace("extreme", &csv).unwrap();
        // The longest trace at the shortest step is generated without trouble.
        let long = TraceSpec {
            days: MAX_DAYS,
            step_minutes: 60,
            ..plain("long")
        };
        assert_eq!(values(&long).len(), MAX_DAYS as usize * 24);
    }
}
