//! Seasonality detection: does a series repeat every day, every week, or both, at its step?
//!
//! The test is the autocorrelation of the linearly detrended series (gaps skipped pairwise),
//! with values beyond three robust standard deviations from the median clipped first. A
//! daily period is accepted when the correlation at one day is strong and clearly above the
//! correlation at half a day (the anti-phase). A weekly period is accepted when the correlation
//! at one week is strong and clearly above the mean correlation at one to six days: a series that
//! only repeats daily correlates as well at six days as at seven. On a series that repeats daily
//! and fails that test, it is taken again on the rolling median over five hours, so that crowds
//! of an hour or two on a few days (several times the load, more than clipping takes out)
//! cannot hide the weekly cycle.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::model::quantile_select;

/// The seasonal periods found in a series, in steps of the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Seasonality {
    /// Steps per day, when the series repeats daily.
    pub daily_steps: Option<usize>,
    /// Steps per week, when the series also repeats weekly.
    pub weekly_steps: Option<usize>,
}

impl Seasonality {
    /// The longest period found (weekly before daily), in steps.
    pub fn longest_steps(&self) -> Option<usize> {
        self.weekly_steps.or(self.daily_steps)
    }

    /// The periods found, shortest first.
    pub fn periods(&self) -> Vec<usize> {
        self.daily_steps
            .into_iter()
            .chain(self.weekly_steps)
            .collect()
    }
}

/// Minimum autocorrelation at the period for it to count.
const MIN_CORRELATION: f64 = 0.3;
/// How far the daily correlation must exceed the half-day one.
const DAILY_MARGIN: f64 = 0.2;
/// How far the weekly correlation must exceed the mean of the one-to-six-day ones.
const WEEKLY_MARGIN: f64 = 0.04;
/// Values further than this many robust standard deviations from the median are clipped to
/// that distance before the correlations are taken (see [`winsorise`]).
const OUTLIER_MADS: f64 = 3.0;
/// The span of the rolling median the weekly test is taken again on when the series repeats
/// daily (see [`detect_seasonality`]): wider than a crowd of an hour or two, narrower than the
/// daily cycle's peak.
const CROWD_WINDOW: TimeDelta = TimeDelta::hours(5);
/// The most values a rolling window takes (the window narrows in time at a fine step).
const MAX_WINDOW_STEPS: usize = 61;

/// Steps in `period`, when `step` divides it exactly.
pub fn steps_in(period: TimeDelta, step: TimeDelta) -> Option<usize> {
    let step_ms = step.num_milliseconds();
    let period_ms = period.num_milliseconds();
    (step_ms > 0 && period_ms % step_ms == 0)
        .then(|| usize::try_from(period_ms / step_ms).ok())
        .flatten()
        .filter(|steps| *steps >= 2)
}

/// Detects daily and weekly periods of `values` (one per `step`, `None` for a gap). A daily
/// period needs two days of history, a weekly one ten and a half days, and a step that divides
/// it.
pub fn detect_seasonality(values: &[Option<f64>], step: TimeDelta) -> Seasonality {
    let mut found = Seasonality::default();
    let Some(day) = steps_in(TimeDelta::days(1), step) else {
        return found;
    };
    let mut detrended = detrend(values);
    winsorise(&mut detrended, OUTLIER_MADS);
    if values.len() >= 2 * day {
        let at_day = autocorrelation(&detrended, day);
        let at_half_day = autocorrelation(&detrended, day / 2);
        if at_day >= MIN_CORRELATION && at_day - at_half_day >= DAILY_MARGIN {
            found.daily_steps = Some(day);
        }
    }
    let week = 7 * day;
    // One and a half weeks: a 14-day history with its last day held back still qualifies.
    if values.len() >= week + week / 2 {
        let repeats_weekly = |series: &[Option<f64>]| {
            let at_week = autocorrelation(series, week);
            let other_days = (1..7)
                .map(|k| autocorrelation(series, k * day))
                .sum::<f64>()
                / 6.0;
            at_week >= MIN_CORRELATION && at_week - other_days >= WEEKLY_MARGIN
        };
        // Crowds of an hour or two on a few irregular days (match days, sales) can hide a
        // weekly cycle even clipped: on a series that repeats daily, the test is taken again on
        // the rolling median over [`CROWD_WINDOW`], which such crowds do not move.
        let weekly = repeats_weekly(&detrended)
            || found.daily_steps.is_some() && {
                // Detrended again rather than kept unclipped: most series never get here.
                let mut smoothed =
                    rolling_median(&detrend(values), window_steps(CROWD_WINDOW, step));
                winsorise(&mut smoothed, OUTLIER_MADS);
                repeats_weekly(&smoothed)
            };
        if weekly {
            found.weekly_steps = Some(week);
        }
    }
    found
}

/// Steps in a rolling window of `span` at `step`: odd (so it is centred), at least 1 and at
/// most [`MAX_WINDOW_STEPS`].
fn window_steps(span: TimeDelta, step: TimeDelta) -> usize {
    let step_ms = step.num_milliseconds().max(1);
    let steps = usize::try_from(span.num_milliseconds() / step_ms).unwrap_or(1);
    (steps.clamp(1, MAX_WINDOW_STEPS) - 1) / 2 * 2 + 1
}

/// The median of the present values in a centred window of `width` (odd) values, cut at the
/// ends; `None` where the window holds none.
fn rolling_median(values: &[Option<f64>], width: usize) -> Vec<Option<f64>> {
    let half = width / 2;
    let mut window = Vec::with_capacity(width);
    (0..values.len())
        .map(|t| {
            window.clear();
            let from = t.saturating_sub(half);
            let until = (t + half + 1).min(values.len());
            window.extend(values[from..until].iter().flatten().copied());
            (!window.is_empty()).then(|| quantile_select(&mut window, 0.5))
        })
        .collect()
}

/// Clips the present values to the median ± `k` robust standard deviations (1.4826 × the
/// median absolute deviation), so a few extreme values (a flash crowd) cannot dominate the
/// autocorrelations: one 5× crowd of an hour and a half in two weeks was enough to hide a
/// weekly cycle. Values all alike (no deviation) are left as they are.
fn winsorise(values: &mut [Option<f64>], k: f64) {
    let mut present: Vec<f64> = values.iter().flatten().copied().collect();
    if present.is_empty() {
        return;
    }
    let median = quantile_select(&mut present, 0.5);
    for v in &mut present {
        *v = (*v - median).abs();
    }
    let spread = 1.4826 * quantile_select(&mut present, 0.5);
    if spread > 0.0 && spread.is_finite() {
        for v in values.iter_mut().flatten() {
            *v = v.clamp(median - k * spread, median + k * spread);
        }
    }
}

/// Removes the least-squares line through the present values.
fn detrend(values: &[Option<f64>]) -> Vec<Option<f64>> {
    let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (t, v) in values.iter().enumerate() {
        if let Some(y) = v.filter(|y| y.is_finite()) {
            let x = t as f64;
            n += 1.0;
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
        }
    }
    let denominator = n * sxx - sx * sx;
    let slope = if n >= 2.0 && denominator != 0.0 {
        (n * sxy - sx * sy) / denominator
    } else {
        0.0
    };
    let intercept = if n > 0.0 { (sy - slope * sx) / n } else { 0.0 };
    values
        .iter()
        .enumerate()
        .map(|(t, v)| {
            v.filter(|y| y.is_finite())
                .map(|y| y - intercept - slope * t as f64)
        })
        .collect()
}

/// The autocorrelation at `lag` over the pairs where both values are present (each pair's
/// values centred on the pairs' means), 0 when fewer than 3 pairs or no variance.
pub fn autocorrelation(values: &[Option<f64>], lag: usize) -> f64 {
    if lag == 0 || lag >= values.len() {
        return 0.0;
    }
    let pairs = || {
        values[lag..]
            .iter()
            .zip(values)
            .filter_map(|(a, b)| Some(((*a)?, (*b)?)))
    };
    let (mut n, mut sa, mut sb) = (0.0, 0.0, 0.0);
    for (a, b) in pairs() {
        n += 1.0;
        sa += a;
        sb += b;
    }
    if n < 3.0 {
        return 0.0;
    }
    let (ma, mb) = (sa / n, sb / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (a, b) in pairs() {
        cov += (a - ma) * (b - mb);
        va += (a - ma) * (a - ma);
        vb += (b - mb) * (b - mb);
    }
    if va <= 0.0 || vb <= 0.0 {
        return 0.0;
    }
    cov / (va * vb).sqrt()
}
