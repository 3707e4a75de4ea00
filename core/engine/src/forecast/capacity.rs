//! Capacity planning: from a group's history, the expected daily peaks over the coming weeks,
//! the growth trend, the instances needed per day, and when the group reaches its maximum or its
//! quota at that trend.
//!
//! The model works on daily peaks (the largest value of each UTC day with at least half its
//! steps present). With two weeks or more, each weekday gets a factor (the median peak of that
//! weekday over the median of all peaks), so quiet weekends do not read as a decline. The trend is
//! the Theil-Sen slope of the weekday-adjusted peaks: robust to a few exceptional days. The
//! upper bound of each future day uses the empirical quantile of the ratio of actual to fitted
//! peaks.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::model::{quantile_sorted, theil_sen};

/// Settings of a capacity plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CapacityConfig {
    /// Work one instance serves, in the unit of the series (e.g. requests per hour); `None`
    /// plans only the load, not instances.
    pub work_per_instance: Option<f64>,
    /// The group's maximum size, instances.
    pub max_instances: Option<u32>,
    /// The account's quota for the group, instances.
    pub quota_instances: Option<u32>,
    /// Weeks ahead to plan.
    pub weeks: u32,
    /// Quantile of the upper peak (e.g. 0.9).
    pub quantile: f64,
    /// How far past the plan to look for the day the trend reaches max or quota, in days.
    pub search_days: u32,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            work_per_instance: None,
            max_instances: None,
            quota_instances: None,
            weeks: 4,
            quantile: 0.9,
            search_days: 3 * 365,
        }
    }
}

/// One day of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlannedDay {
    /// The day (UTC).
    pub date: NaiveDate,
    /// The expected peak load.
    pub expected_peak: f64,
    /// The peak at the configured quantile.
    pub upper_peak: f64,
    /// Instances needed to serve the upper peak, when `work_per_instance` is known.
    pub instances: Option<u32>,
}

/// The growth trend of daily peaks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Change of the (weekday-adjusted) daily peak per week, in the unit of the series.
    pub per_week: f64,
    /// The same as a fraction of the current peak level (0.02 = +2 % per week).
    pub relative_per_week: f64,
}

/// A capacity plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityPlan {
    /// The observed daily peaks, oldest first.
    pub history: Vec<(NaiveDate, f64)>,
    /// The largest observed value.
    pub observed_peak: f64,
    /// The trend.
    pub trend: Trend,
    /// Weekday factors, Monday first (1.0 each when the history is shorter than two weeks).
    pub weekday_factors: [f64; 7],
    /// The plan, one entry per day.
    pub days: Vec<PlannedDay>,
    /// The largest expected peak over the plan.
    pub expected_peak: f64,
    /// The largest upper peak over the plan.
    pub upper_peak: f64,
    /// The most instances needed on any day of the plan.
    pub peak_instances: Option<u32>,
    /// The first day needing more than the group's maximum, at this trend (within the search).
    pub reaches_max_on: Option<NaiveDate>,
    /// The first day needing more than the quota, at this trend (within the search).
    pub reaches_quota_on: Option<NaiveDate>,
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    /// Fewer than three complete days of history.
    #[error("capacity planning needs at least 3 days with data, the history has {0}")]
    TooShort(usize),
    /// The history has fewer than one value a day.
    #[error(
        "the step is longer than a day, so there are no daily peaks to plan from; capacity planning needs at least one value a day"
    )]
    StepTooLong,
    /// A setting is out of range.
    #[error("invalid capacity setting: {0}")]
    Invalid(&'static str),
}

/// The most recent days of peaks the trend and weekday factors are fitted on.
pub const FIT_DAYS: usize = 365;

/// Plans capacity from `values` (one per `step` from `start`, `None` for gaps).
pub fn plan(
    values: &[Option<f64>],
    start: DateTime<Utc>,
    step: TimeDelta,
    config: &CapacityConfig,
) -> Result<CapacityPlan, CapacityError> {
    if config
        .work_per_instance
        .is_some_and(|w| !(w > 0.0 && w.is_finite()))
    {
        return Err(CapacityError::Invalid("work per instance must be positive"));
    }
    if !(config.quantile > 0.5 && config.quantile < 1.0) {
        return Err(CapacityError::Invalid("quantile must be in (0.5, 1)"));
    }
    if step <= TimeDelta::zero() {
        return Err(CapacityError::Invalid("step must be positive"));
    }
    if step > TimeDelta::days(1) {
        return Err(CapacityError::StepTooLong);
    }
    let all_history = daily_peaks(values, start, step);
    if all_history.len() < 3 {
        return Err(CapacityError::TooShort(all_history.len()));
    }
    // The trend and the weekday factors are fitted on the last year of days: the plan looks
    // weeks ahead, and the slope estimate is quadratic in the days it is fitted on.
    let history = &all_history[all_history.len().saturating_sub(FIT_DAYS)..];
    let observed_peak = values.iter().flatten().copied().fold(f64::MIN, f64::max);

    let first_day = history[0].0;
    let index = |d: NaiveDate| (d - first_day).num_days() as f64;
    // Weekday factors on peaks detrended by a first slope, so growth within a week is not
    // mistaken for a weekday effect.
    let raw: Vec<(f64, f64)> = history.iter().map(|(d, p)| (index(*d), *p)).collect();
    let first_slope = theil_sen_xy(&raw);
    let detrended: Vec<(NaiveDate, f64)> = history
        .iter()
        .map(|(d, p)| (*d, p - first_slope * index(*d)))
        .collect();
    let weekday_factors = weekday_factors(&detrended);
    let factor = |d: NaiveDate| weekday_factors[d.weekday().num_days_from_monday() as usize];
    // Theil-Sen on the adjusted peaks, by day index (gaps between days respected).
    let adjusted: Vec<(f64, f64)> = history
        .iter()
        .map(|(d, p)| (index(*d), p / factor(*d)))
        .collect();
    let slope_per_day = theil_sen_xy(&adjusted);
    let last_day = history[history.len() - 1].0;
    let recent: Vec<f64> = adjusted
        .iter()
        .rev()
        .take(7)
        .map(|(x, y)| y + slope_per_day * (index(last_day) - x))
        .collect();
    let level = median(recent);
    let fitted = |d: NaiveDate| {
        ((level + slope_per_day * (index(d) - index(last_day))) * factor(d)).max(0.0)
    };
    // The spread of actual around fitted peaks, over the last four weeks (older days sit
    // against a line extrapolated far back).
    let mut ratios: Vec<f64> = history
        .iter()
        .rev()
        .take(28)
        .filter_map(|(d, p)| {
            let f = fitted(*d);
            (f > 0.0).then(|| p / f)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let upper_ratio = quantile_sorted(&ratios, config.quantile).max(1.0);
    let trend = Trend {
        per_week: slope_per_day * 7.0,
        relative_per_week: if level > 0.0 {
            slope_per_day * 7.0 / level
        } else {
            0.0
        },
    };

    let instances = |peak: f64| {
        config
            .work_per_instance
            .map(|w| (peak / w).ceil().clamp(0.0, f64::from(u32::MAX)) as u32)
    };
    let plan_days = config.weeks as usize * 7;
    let search_days = plan_days.max(config.search_days as usize);
    let mut days = Vec::with_capacity(plan_days);
    let (mut reaches_max_on, mut reaches_quota_on) = (None, None);
    for k in 1..=search_days {
        let Some(date) = last_day.checked_add_days(chrono::Days::new(k as u64)) else {
            break;
        };
        let expected_peak = fitted(date);
        let upper_peak = expected_peak * upper_ratio;
        let needed = instances(upper_peak);
        if let Some(n) = needed {
            if reaches_max_on.is_none() && config.max_instances.is_some_and(|m| n > m) {
                reaches_max_on = Some(date);
            }
            if reaches_quota_on.is_none() && config.quota_instances.is_some_and(|q| n > q) {
                reaches_quota_on = Some(date);
            }
        }
        if k <= plan_days {
            days.push(PlannedDay {
                date,
                expected_peak,
                upper_peak,
                instances: needed,
            });
        } else if reaches_max_on.is_some() == config.max_instances.is_some()
            && reaches_quota_on.is_some() == config.quota_instances.is_some()
        {
            break;
        }
    }
    let expected_peak = days.iter().map(|d| d.expected_peak).fold(0.0, f64::max);
    let upper_peak = days.iter().map(|d| d.upper_peak).fold(0.0, f64::max);
    let peak_instances = days.iter().filter_map(|d| d.instances).max();
    Ok(CapacityPlan {
        history: all_history,
        observed_peak,
        trend,
        weekday_factors,
        days,
        expected_peak,
        upper_peak,
        peak_instances,
        reaches_max_on,
        reaches_quota_on,
    })
}

/// The largest value of each UTC day that has at least half of its steps present.
pub fn daily_peaks(
    values: &[Option<f64>],
    start: DateTime<Utc>,
    step: TimeDelta,
) -> Vec<(NaiveDate, f64)> {
    let steps_per_day =
        (TimeDelta::days(1).num_milliseconds() / step.num_milliseconds().max(1)).max(1) as usize;
    let mut days: Vec<(NaiveDate, f64, usize)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v.filter(|v| v.is_finite()) else {
            continue;
        };
        let date = (start + step * i as i32).date_naive();
        match days.last_mut() {
            Some((d, peak, count)) if *d == date => {
                *peak = peak.max(v);
                *count += 1;
            }
            _ => days.push((date, v, 1)),
        }
    }
    days.into_iter()
        .filter(|(_, _, count)| count * 2 >= steps_per_day)
        .map(|(d, p, _)| (d, p))
        .collect()
}

fn weekday_factors(history: &[(NaiveDate, f64)]) -> [f64; 7] {
    let mut factors = [1.0; 7];
    if history.len() < 14 {
        return factors;
    }
    let overall = median(history.iter().map(|(_, p)| *p).collect());
    if overall <= 0.0 {
        return factors;
    }
    for (weekday, factor) in factors.iter_mut().enumerate() {
        let peaks: Vec<f64> = history
            .iter()
            .filter(|(d, _)| d.weekday().num_days_from_monday() as usize == weekday)
            .map(|(_, p)| *p)
            .collect();
        if peaks.len() >= 2 {
            *factor = (median(peaks) / overall).max(1e-6);
        }
    }
    factors
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    quantile_sorted(&values, 0.5)
}

fn theil_sen_xy(points: &[(f64, f64)]) -> f64 {
    if points.windows(2).all(|w| w[1].0 - w[0].0 == 1.0) {
        let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
        return theil_sen(&ys);
    }
    let mut slopes = Vec::new();
    for i in 0..points.len() {
        for j in i + 1..points.len() {
            let dx = points[j].0 - points[i].0;
            if dx > 0.0 {
                slopes.push((points[j].1 - points[i].1) / dx);
            }
        }
    }
    median(slopes)
}
