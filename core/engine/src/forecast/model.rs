//! The seasonal model: a decomposition into a damped local trend, a daily profile, a weekly
//! adjustment and an autoregressive residual, with prediction intervals from the empirical
//! residual quantiles.
//!
//! Fitting (on the logarithm of the values when they are all positive, so the daily swing scales
//! with the level):
//!
//! 1. The trend is a centred one-day moving average of the deseasonalised values.
//! 2. The daily profile is the recency-weighted mean of the detrended values per phase of the
//!    day; the weekly adjustment is the mean of what is left per phase of the week, shrunk toward
//!    zero (two weeks of history give two values per phase, too few to trust fully). Steps 1 and
//!    2 are repeated twice, as in classical decomposition; in the first pass the moving average
//!    keeps its whole window at the ends of the history (shifted inward), so that a weekly swing
//!    does not leak into the trend there.
//! 3. The slope is the Theil-Sen slope of the daily means over the last week; the level is the
//!    mean of the last day's deseasonalised values, corrected for that slope. Forecasts damp the
//!    slope day by day.
//! 4. The residual around the trend is modelled as AR(1): the current deviation decays with the
//!    horizon. The interval combines the residual's empirical quantiles (scaled by the AR(1)
//!    variance growth) with the day-to-day level drift.
//!
//! Gaps are skipped everywhere: means, profiles and correlations use the values present.
//! Everything is O(n) in the history; no allocation per forecast step beyond the output.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::seasonality::{Seasonality, steps_in};

/// Settings of the seasonal model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeasonalModelConfig {
    /// Fit on the logarithm when every value is positive (multiplicative seasonality).
    pub log_transform: bool,
    /// Half-life of the weight of past days in the daily profile, in days.
    pub profile_half_life_days: f64,
    /// Pseudo-count that shrinks the weekly adjustment toward zero (0: no shrinkage).
    pub weekly_shrinkage: f64,
    /// Fraction of the trend slope kept for each day ahead (0: flat, 1: straight line).
    pub trend_damping_per_day: f64,
    /// Days of history the slope is fitted on.
    pub trend_window_days: usize,
    /// The quantile of the upper prediction bound, in (0.5, 1); the lower bound uses `1 - q`.
    pub upper_quantile: f64,
}

impl Default for SeasonalModelConfig {
    fn default() -> Self {
        SeasonalModelConfig {
            log_transform: true,
            profile_half_life_days: 7.0,
            weekly_shrinkage: 0.0,
            trend_damping_per_day: 0.8,
            trend_window_days: 7,
            upper_quantile: 0.9,
        }
    }
}

/// One forecast value with its prediction interval, in the unit of the series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastValue {
    /// The point forecast (the median when fitted on logarithms).
    pub value: f64,
    /// Lower prediction bound, at quantile `1 - upper_quantile`.
    pub lower: f64,
    /// Upper prediction bound, at `upper_quantile`.
    pub upper: f64,
}

/// A fitted seasonal model; forecast from the end of the history it was fitted on.
#[derive(Debug, Clone, PartialEq)]
pub struct SeasonalFit {
    history_len: usize,
    seasonality: Seasonality,
    log: bool,
    daily: Vec<f64>,
    weekly: Vec<f64>,
    level: f64,
    slope_per_step: f64,
    damping_per_step: f64,
    last_residual: f64,
    last_index: usize,
    ar: f64,
    residual_sd: f64,
    drift_variance_per_step: f64,
    upper_z: f64,
    lower_z: f64,
}

impl SeasonalFit {
    /// Fits the model to `values` (one per `step`, `None` for a gap) with the periods in
    /// `seasonality`. `None` when no value is present.
    pub fn fit(
        values: &[Option<f64>],
        step: TimeDelta,
        seasonality: Seasonality,
        config: &SeasonalModelConfig,
    ) -> Option<SeasonalFit> {
        let n = values.len();
        let clean: Vec<Option<f64>> = values.iter().map(|v| v.filter(|x| x.is_finite())).collect();
        let last_index = clean.iter().rposition(Option::is_some)?;
        let log = config.log_transform && clean.iter().flatten().all(|v| *v > 0.0);
        let z: Vec<Option<f64>> = if log {
            clean.iter().map(|v| v.map(f64::ln)).collect()
        } else {
            clean
        };
        let day = steps_in(TimeDelta::days(1), step);
        let window = day.unwrap_or(1).clamp(1, n);
        let daily_steps = seasonality.daily_steps.filter(|p| *p <= n);
        let weekly_steps = seasonality
            .weekly_steps
            .filter(|p| *p <= n && daily_steps.is_some_and(|d| p % d == 0));
        let seasonality = Seasonality {
            daily_steps,
            weekly_steps,
        };

        // 1-2: decomposition.
        let mut daily = vec![0.0; daily_steps.unwrap_or(0)];
        let mut weekly = vec![0.0; weekly_steps.unwrap_or(0)];
        let seasonal_at = |t: usize, daily: &[f64], weekly: &[f64]| {
            let d = if daily.is_empty() {
                0.0
            } else {
                daily[t % daily.len()]
            };
            let w = if weekly.is_empty() {
                0.0
            } else {
                weekly[t % weekly.len()]
            };
            d + w
        };
        let day_len = day.unwrap_or(n.max(1)) as f64;
        let decay = 0.5f64.powf(1.0 / (config.profile_half_life_days.max(1e-3) * day_len));
        let mut trend = vec![None; n];
        for pass in 0..2 {
            let deseasonalised: Vec<Option<f64>> = z
                .iter()
                .enumerate()
                .map(|(t, v)| v.map(|v| v - seasonal_at(t, &daily, &weekly)))
                .collect();
            // The trend window spans the longest period, so the moving average removes every
            // seasonal component and leaves it to the profiles. Near the ends a centred window
            // does not fit: the first pass, whose values still hold the whole seasonal swing,
            // keeps the window whole (so it still spans every phase once) and shifts it inward;
            // a window cut short there would take in, say, three weekdays and no weekend, and
            // that bias would pass into the profiles. The second pass reads deseasonalised
            // values, where a shortened window follows the trend to the ends without that bias.
            let width = weekly_steps.or(daily_steps).unwrap_or(window);
            trend = if pass == 0 {
                centred_mean_whole(&deseasonalised, width)
            } else {
                centred_mean(&deseasonalised, width)
            };
            if let Some(p) = daily_steps {
                let mut sum = vec![0.0; p];
                let mut weight = vec![0.0; p];
                let mut w = 1.0;
                for t in (0..n).rev() {
                    if let (Some(v), Some(tr)) = (z[t], trend[t]) {
                        sum[t % p] += w * (v - tr);
                        weight[t % p] += w;
                    }
                    w *= decay;
                }
                for k in 0..p {
                    daily[k] = if weight[k] > 0.0 {
                        sum[k] / weight[k]
                    } else {
                        0.0
                    };
                }
                centre(&mut daily);
            }
            if let Some(p) = weekly_steps {
                let mut sum = vec![0.0; p];
                let mut count = vec![0.0; p];
                for t in 0..n {
                    if let (Some(v), Some(tr)) = (z[t], trend[t]) {
                        sum[t % p] += v - tr - daily[t % daily.len()];
                        count[t % p] += 1.0;
                    }
                }
                for k in 0..p {
                    weekly[k] = sum[k] / (count[k] + config.weekly_shrinkage.max(0.0)).max(1e-12);
                }
                centre(&mut weekly);
            }
        }
        let deseasonalised: Vec<Option<f64>> = z
            .iter()
            .enumerate()
            .map(|(t, v)| v.map(|v| v - seasonal_at(t, &daily, &weekly)))
            .collect();
        trend = if daily_steps.is_some() {
            centred_mean(&deseasonalised, window)
        } else {
            trend
        };

        // 3: slope and level.
        let block_means: Vec<f64> = match day {
            Some(day) if day <= n => {
                let blocks = (n / day).min(config.trend_window_days.max(2));
                (0..blocks)
                    .rev()
                    .filter_map(|k| {
                        let end = n - k * day;
                        mean_if_half_present(&deseasonalised[end - day..end])
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let slope_per_day = theil_sen(&block_means);
        let slope_per_step = day.map_or(0.0, |d| slope_per_day / d as f64);
        let level_from = n.saturating_sub(window);
        let level = deseasonalised[level_from..]
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| v + slope_per_step * (n - 1 - (level_from + i)) as f64))
            .fold((0.0, 0.0), |(s, c), v| (s + v, c + 1.0));
        let level = if level.1 > 0.0 {
            level.0 / level.1
        } else {
            deseasonalised[last_index].unwrap_or(0.0) + slope_per_step * (n - 1 - last_index) as f64
        };

        // 4: residual dynamics and interval.
        let residuals: Vec<Option<f64>> = deseasonalised
            .iter()
            .zip(&trend)
            .map(|(d, t)| Some((*d)? - (*t)?))
            .collect();
        let present: Vec<f64> = residuals.iter().flatten().copied().collect();
        // The weekly adjustment is fitted on the same few values per phase (about one per
        // week of history); the in-sample residuals understate the error by the degrees of
        // freedom it used, and its own estimation error adds to every forecast:
        // var = s² (1 + 1/k) / (1 - 1/k) for k values per phase.
        let inflation = weekly_steps.map_or(1.0, |p| {
            let k = (present.len() as f64 / p as f64).max(1.5);
            ((1.0 + 1.0 / k) / (1.0 - 1.0 / k)).sqrt()
        });
        let raw_sd = standard_deviation(&present);
        let residual_sd = raw_sd * inflation;
        let ar = lag_one_correlation(&residuals).clamp(0.0, 0.98);
        let (upper_z, lower_z) = if raw_sd > 0.0 {
            let mut standardised: Vec<f64> = present.iter().map(|r| r / raw_sd).collect();
            let q = config.upper_quantile.clamp(0.5, 0.9999);
            (
                quantile_select(&mut standardised, q).max(0.0),
                quantile_select(&mut standardised, 1.0 - q).min(0.0),
            )
        } else {
            (0.0, 0.0)
        };
        let drift_variance_per_step = match day {
            Some(day) if block_means.len() >= 3 => {
                let changes: Vec<f64> = block_means
                    .windows(2)
                    .map(|w| w[1] - w[0] - slope_per_day)
                    .collect();
                let noise_in_mean = residual_sd * residual_sd / day as f64;
                (mean_square(&changes) - 2.0 * noise_in_mean).max(0.0) / day as f64
            }
            _ => 0.0,
        };
        let last_residual = deseasonalised[last_index].unwrap_or(level)
            - (level - slope_per_step * (n - 1 - last_index) as f64);
        let damping_per_step = config
            .trend_damping_per_day
            .clamp(0.0, 1.0)
            .powf(1.0 / day_len);
        Some(SeasonalFit {
            history_len: n,
            seasonality,
            log,
            daily,
            weekly,
            level,
            slope_per_step,
            damping_per_step,
            last_residual,
            last_index,
            ar,
            residual_sd,
            drift_variance_per_step,
            upper_z,
            lower_z,
        })
    }

    /// The periods the model uses.
    pub fn seasonality(&self) -> Seasonality {
        self.seasonality
    }

    /// Whether the model was fitted on logarithms (multiplicative seasonality).
    pub fn is_multiplicative(&self) -> bool {
        self.log
    }

    /// The trend slope per step at the end of the history, in the fitted scale (log units per
    /// step when multiplicative).
    pub fn slope_per_step(&self) -> f64 {
        self.slope_per_step
    }

    /// Forecasts the `horizon_steps` values after the end of the history.
    pub fn forecast(&self, horizon_steps: usize) -> Vec<ForecastValue> {
        (1..=horizon_steps).map(|h| self.forecast_one(h)).collect()
    }

    /// The forecast `horizon_steps` (at least 1) after the end of the history.
    pub fn forecast_one(&self, horizon_steps: usize) -> ForecastValue {
        let h = horizon_steps.max(1);
        let index = self.history_len - 1 + h;
        let phi = self.damping_per_step;
        let trend_steps = if phi >= 1.0 {
            h as f64
        } else {
            phi * (1.0 - phi.powi(h as i32)) / (1.0 - phi)
        };
        let seasonal = self
            .daily
            .get(index % self.daily.len().max(1))
            .copied()
            .unwrap_or(0.0)
            + self
                .weekly
                .get(index % self.weekly.len().max(1))
                .copied()
                .unwrap_or(0.0);
        let since_last = (index - self.last_index) as i32;
        let decay = self.ar.powi(since_last);
        let mean =
            self.level + self.slope_per_step * trend_steps + seasonal + decay * self.last_residual;
        let variance = self.residual_sd * self.residual_sd * (1.0 - decay * decay)
            + self.drift_variance_per_step * h as f64;
        let sd = variance.max(0.0).sqrt();
        let (value, upper, lower) = (mean, mean + self.upper_z * sd, mean + self.lower_z * sd);
        if self.log {
            ForecastValue {
                value: value.exp(),
                lower: lower.exp(),
                upper: upper.exp(),
            }
        } else {
            ForecastValue {
                value,
                lower,
                upper,
            }
        }
    }
}

/// The mean over a centred window of `width` values (clipped at the ends), gaps skipped.
fn centred_mean(values: &[Option<f64>], width: usize) -> Vec<Option<f64>> {
    let n = values.len();
    let (sum, count) = prefix_sums(values);
    let before = width / 2;
    let after = width - before;
    (0..n)
        .map(|t| {
            let from = t.saturating_sub(before);
            let until = (t + after).min(n);
            let c = count[until] - count[from];
            (c > 0).then(|| (sum[until] - sum[from]) / c as f64)
        })
        .collect()
}

/// The mean over a window of `width` values centred where it fits and shifted inward at the
/// ends (so it always spans `width` values, when there are as many), gaps skipped.
fn centred_mean_whole(values: &[Option<f64>], width: usize) -> Vec<Option<f64>> {
    let n = values.len();
    let (sum, count) = prefix_sums(values);
    let before = width / 2;
    (0..n)
        .map(|t| {
            let from = t.saturating_sub(before).min(n.saturating_sub(width));
            let until = (from + width).min(n);
            let c = count[until] - count[from];
            (c > 0).then(|| (sum[until] - sum[from]) / c as f64)
        })
        .collect()
}

/// Running sums of the values present and their count: `sum[t]` and `count[t]` over the first
/// `t` values.
fn prefix_sums(values: &[Option<f64>]) -> (Vec<f64>, Vec<usize>) {
    let n = values.len();
    let mut sum = vec![0.0; n + 1];
    let mut count = vec![0usize; n + 1];
    for (t, v) in values.iter().enumerate() {
        sum[t + 1] = sum[t] + v.unwrap_or(0.0);
        count[t + 1] = count[t] + usize::from(v.is_some());
    }
    (sum, count)
}

fn centre(values: &mut [f64]) {
    if values.is_empty() {
        return;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter_mut().for_each(|v| *v -= mean);
}

fn mean_if_half_present(values: &[Option<f64>]) -> Option<f64> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    (present.len() * 2 >= values.len() && !present.is_empty())
        .then(|| present.iter().sum::<f64>() / present.len() as f64)
}

/// The median of pairwise slopes (per index), 0 for fewer than two points.
pub(crate) fn theil_sen(points: &[f64]) -> f64 {
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for i in 0..points.len() {
        for j in i + 1..points.len() {
            slopes.push((points[j] - points[i]) / (j - i) as f64);
        }
    }
    if slopes.is_empty() {
        return 0.0;
    }
    slopes.sort_by(f64::total_cmp);
    quantile_sorted(&slopes, 0.5)
}

/// [`quantile_sorted`] of `values` in any order, found by selection rather than a sort (the
/// values are reordered).
pub(crate) fn quantile_select(values: &mut [f64], q: f64) -> f64 {
    match values.len() {
        0 => 0.0,
        1 => values[0],
        n => {
            let position = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let below = position.floor() as usize;
            let fraction = position - below as f64;
            let (_, at, rest) = values.select_nth_unstable_by(below, f64::total_cmp);
            let low = *at;
            let high = rest.iter().copied().min_by(f64::total_cmp).unwrap_or(low);
            low + fraction * (high - low)
        }
    }
}

/// Linear-interpolated quantile of sorted values; 0 when empty.
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let position = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let below = position.floor() as usize;
            let above = (below + 1).min(n - 1);
            let fraction = position - below as f64;
            sorted[below] + fraction * (sorted[above] - sorted[below])
        }
    }
}

fn standard_deviation(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

fn mean_square(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().map(|v| v * v).sum::<f64>() / values.len() as f64
}

fn lag_one_correlation(values: &[Option<f64>]) -> f64 {
    super::seasonality::autocorrelation(values, 1)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::{SeasonalFit, SeasonalModelConfig, quantile_select, quantile_sorted};
    use crate::forecast::seasonality::Seasonality;

    /// A load with a daily swing and weekends at half the weekday level, hourly.
    fn weekly_load(hour: usize) -> f64 {
        let day_phase = (hour % 24) as f64 / 24.0 * std::f64::consts::TAU;
        let weekend = matches!((hour / 24) % 7, 5 | 6);
        1000.0 * (1.0 + 0.5 * day_phase.sin()) * if weekend { 0.5 } else { 1.0 }
    }

    #[test]
    fn a_weekly_swing_is_forecast_a_day_ahead_from_any_day_of_the_week() {
        // Fitted on two weeks ending on each day of the week in turn: the day ahead is
        // forecast within 1 % (a trend window cut short at the end of the history took in the
        // weekend unevenly and put the forecast off by several per cent).
        let seasonality = Seasonality {
            daily_steps: Some(24),
            weekly_steps: Some(168),
        };
        let config = SeasonalModelConfig::default();
        for end_day in 14..21 {
            let end = end_day * 24 + 13;
            let history: Vec<Option<f64>> =
                (end - 336..end).map(|h| Some(weekly_load(h))).collect();
            let fit =
                SeasonalFit::fit(&history, TimeDelta::hours(1), seasonality, &config).expect("fit");
            let forecast = fit.forecast(24);
            let worst = forecast
                .iter()
                .enumerate()
                .map(|(i, f)| (f.value / weekly_load(end + i) - 1.0).abs())
                .fold(0.0, f64::max);
            assert!(
                worst < 0.01,
                "history ending on day {end_day}: off by {worst:.3}"
            );
        }
    }

    #[test]
    fn selecting_a_quantile_gives_what_sorting_gives() {
        let values = [3.5, -1.0, 0.0, -0.0, 2.25, 7.0, -4.5, 2.25, 1e-9];
        for n in 0..=values.len() {
            let mut sorted = values[..n].to_vec();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.05, 0.25, 0.5, 0.9, 0.95, 1.0] {
                let mut any_order = values[..n].to_vec();
                assert_eq!(
                    quantile_select(&mut any_order, q).to_bits(),
                    quantile_sorted(&sorted, q).to_bits(),
                    "n {n}, q {q}"
                );
            }
        }
    }
}
