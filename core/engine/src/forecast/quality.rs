//! Forecast quality: how well the model did out of sample on the most recent day, and whether the
//! level of the series shifted recently. The predictive policy falls back to reactive scaling when
//! either says the forecast cannot be trusted, and gives the reason.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::metrics;

/// Thresholds of the quality check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QualityConfig {
    /// The most recent span held back: the model is fitted without it, forecasts it, and the
    /// error is measured against what happened.
    pub backtest: TimeDelta,
    /// Above this out-of-sample MASE over the backtest span the forecast is not used.
    pub max_recent_mase: f64,
    /// The most recent span in which a level shift is looked for.
    pub level_shift_window: TimeDelta,
    /// A shift must exceed this many in-sample seasonal-naive errors (the MASE scale).
    pub level_shift_min_scales: f64,
    /// And this fraction of the forecast level (0.2 = 20 %).
    pub level_shift_min_relative: f64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            backtest: TimeDelta::hours(24),
            max_recent_mase: 2.0,
            level_shift_window: TimeDelta::hours(6),
            level_shift_min_scales: 3.0,
            level_shift_min_relative: 0.2,
        }
    }
}

/// A detected level shift: the series moved away from what the model expected, and stayed away.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LevelShift {
    /// Median of `(actual - forecast) / forecast` over the window: +0.3 is 30 % above.
    pub relative_change: f64,
    /// The same median error in units of the in-sample seasonal-naive error.
    pub scales: f64,
}

/// The result of the quality check of one fit.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ForecastQuality {
    /// MASE of the forecasts of the backtest span (fitted without it) against the actual values.
    /// `None` when the history is too short to hold a span back or the scale is undefined.
    pub recent_mase: Option<f64>,
    /// sMAPE (percent) over the same span.
    pub recent_smape_percent: Option<f64>,
    /// MASE over the same span of the forecast corrected, step by step, by actual ÷ forecast of
    /// the step before: the error in shape one step ahead, which is what a policy that corrects
    /// the forecast's level by the measured load is exposed to.
    pub shape_mase: Option<f64>,
    /// sMAPE (percent) of the corrected forecast.
    pub shape_smape_percent: Option<f64>,
    /// A level shift in the most recent window, when one is detected.
    pub level_shift: Option<LevelShift>,
    /// Why the forecast should not be used, or `None` when it may be.
    pub fallback_reason: Option<String>,
}

impl ForecastQuality {
    /// Whether the forecast may be acted on.
    pub fn is_usable(&self) -> bool {
        self.fallback_reason.is_none()
    }
}

/// Assesses a backtest: `actual` and `forecast` over the held-back span, `scale` the in-sample
/// seasonal-naive error of the history before it, `window_steps` the level-shift window.
pub fn assess(
    actual: &[Option<f64>],
    forecast: &[Option<f64>],
    scale: Option<f64>,
    window_steps: usize,
    config: &QualityConfig,
) -> ForecastQuality {
    let recent_mase = scale.and_then(|s| metrics::mase(actual, forecast, s));
    let recent_smape_percent = metrics::smape_percent(actual, forecast);
    // Each step's forecast × (actual ÷ forecast) of the step before: the forecast corrected by
    // the last measured level, one step ahead.
    let corrected: Vec<Option<f64>> = (0..forecast.len().min(actual.len()))
        .map(|i| {
            let f = forecast[i]?;
            let (a0, f0) = (actual[i.checked_sub(1)?]?, forecast[i - 1]?);
            (f0.abs() > f64::EPSILON).then(|| f * a0 / f0)
        })
        .collect();
    let shape_mase = scale.and_then(|s| metrics::mase(actual, &corrected, s));
    let shape_smape_percent = metrics::smape_percent(actual, &corrected);
    let level_shift =
        scale.and_then(|s| detect_level_shift(actual, forecast, s, window_steps, config));
    let fallback_reason = if let Some(shift) = level_shift {
        Some(format!(
            "level shift: the last {} h are {:+.0} % from the forecast ({:.1} seasonal-naive errors)",
            config.level_shift_window.num_minutes() as f64 / 60.0,
            shift.relative_change * 100.0,
            shift.scales
        ))
    } else {
        recent_mase
            .filter(|m| *m > config.max_recent_mase)
            .map(|m| {
                format!(
                    "forecast error too high: MASE {m:.2} over the last {} h (limit {:.2})",
                    config.backtest.num_minutes() as f64 / 60.0,
                    config.max_recent_mase
                )
            })
    };
    ForecastQuality {
        recent_mase,
        recent_smape_percent,
        shape_mase,
        shape_smape_percent,
        level_shift,
        fallback_reason,
    }
}

/// Looks for a level shift in the last `window_steps` of `actual` against `forecast`: the median
/// error must exceed both thresholds of `config`, and at least 80 % of the errors in the window
/// must have its sign (a shift persists; a spike does not).
pub fn detect_level_shift(
    actual: &[Option<f64>],
    forecast: &[Option<f64>],
    scale: f64,
    window_steps: usize,
    config: &QualityConfig,
) -> Option<LevelShift> {
    let from = actual.len().saturating_sub(window_steps.max(1));
    let pairs: Vec<(f64, f64)> = actual[from..]
        .iter()
        .zip(&forecast[from.min(forecast.len())..])
        .filter_map(|(a, f)| Some(((*a)?, (*f)?)))
        .collect();
    if pairs.len() * 2 < window_steps.max(1) || pairs.is_empty() || scale <= 0.0 {
        return None;
    }
    let mut errors: Vec<f64> = pairs.iter().map(|(a, f)| a - f).collect();
    let mut relative: Vec<f64> = pairs
        .iter()
        .map(|(a, f)| (a - f) / f.abs().max(1e-12))
        .collect();
    errors.sort_by(f64::total_cmp);
    relative.sort_by(f64::total_cmp);
    let median = super::model::quantile_sorted(&errors, 0.5);
    let relative_change = super::model::quantile_sorted(&relative, 0.5);
    let same_sign = errors
        .iter()
        .filter(|e| e.signum() == median.signum())
        .count();
    let scales = median.abs() / scale;
    (scales >= config.level_shift_min_scales
        && relative_change.abs() >= config.level_shift_min_relative
        && same_sign * 5 >= errors.len() * 4)
        .then_some(LevelShift {
            relative_change,
            scales,
        })
}
