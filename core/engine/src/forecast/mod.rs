//! Forecasting for predictive scaling and capacity planning.
//!
//! - [`seasonality`]: finds daily and weekly cycles at a series' step.
//! - [`model`]: the seasonal model (damped trend, daily profile, weekly adjustment, AR(1)
//!   residual) with prediction intervals.
//! - [`naive`]: seasonal naive (same time last week, or yesterday), the baseline.
//! - [`metrics`]: MASE and sMAPE.
//! - [`quality`]: out-of-sample error on the last day and level-shift detection, so a policy
//!   knows when not to trust a forecast.
//! - [`forecaster`]: [`Forecaster`], per-series state for the engine: history buffers, scheduled
//!   refits, forecasts as [`ForecastPoint`](crate::ForecastPoint)s.
//! - [`capacity`]: capacity planning over weeks (expected peaks, growth, when max or quota is hit).
//! - [`chart`]: SVG line charts of series and intervals, for reports.
//!
//! Everything here is pure: time is passed in, no clock is read, no I/O is done.

pub mod backtest;
pub mod capacity;
pub mod chart;
pub mod forecaster;
pub mod metrics;
pub mod model;
pub mod naive;
pub mod quality;
pub mod seasonality;

use std::fmt;
use std::str::FromStr;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

pub use forecaster::{
    Aggregation, Forecast, ForecastSample, Forecaster, ForecasterConfig, NotReady,
};
pub use model::{ForecastValue, SeasonalFit, SeasonalModelConfig};
pub use naive::SeasonalNaive;
pub use quality::{ForecastQuality, LevelShift, QualityConfig};
pub use seasonality::{Seasonality, detect_seasonality};

/// Which forecasting model to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// The seasonal model of [`model`], with detected daily and weekly periods.
    #[default]
    Seasonal,
    /// Seasonal naive: the same time last week (or yesterday when the history is shorter).
    SeasonalNaive,
}

impl ModelKind {
    /// The name used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Seasonal => "seasonal",
            ModelKind::SeasonalNaive => "seasonal-naive",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelKind {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "seasonal" => Ok(ModelKind::Seasonal),
            "seasonal-naive" | "naive" => Ok(ModelKind::SeasonalNaive),
            other => Err(crate::Error::invalid_input(format!(
                "unknown forecast model `{other}` (expected `seasonal` or `seasonal-naive`)"
            ))),
        }
    }
}

/// Fits `kind` to `history` (one value per `step`, `None` for a gap) and forecasts the
/// `horizon_steps` values after it. `None` when the history holds no value.
///
/// Seasonal naive gets its interval from the empirical quantiles of its in-sample errors.
pub fn fit_and_forecast(
    kind: ModelKind,
    history: &[Option<f64>],
    step: TimeDelta,
    config: &SeasonalModelConfig,
    horizon_steps: usize,
) -> Option<(Seasonality, Vec<ForecastValue>)> {
    match kind {
        ModelKind::Seasonal => {
            let seasonality = detect_seasonality(history, step);
            let fit = SeasonalFit::fit(history, step, seasonality, config)?;
            Some((fit.seasonality(), fit.forecast(horizon_steps)))
        }
        ModelKind::SeasonalNaive => {
            history.iter().flatten().next()?;
            let naive = SeasonalNaive::for_history(step, history.len());
            let mut errors: Vec<f64> = history
                .iter()
                .skip(naive.period_steps)
                .zip(history)
                .filter_map(|(now, before)| Some((*now)? - (*before)?))
                .collect();
            errors.sort_by(f64::total_cmp);
            let q = config.upper_quantile.clamp(0.5, 0.9999);
            let upper = model::quantile_sorted(&errors, q).max(0.0);
            let lower = model::quantile_sorted(&errors, 1.0 - q).min(0.0);
            let values = naive
                .forecast(history, horizon_steps)
                .into_iter()
                .map(|v| {
                    let value = v.unwrap_or(0.0);
                    ForecastValue {
                        value,
                        lower: value + lower,
                        upper: value + upper,
                    }
                })
                .collect();
            let seasonality = Seasonality {
                daily_steps: (naive.period_steps > 1
                    && Some(naive.period_steps) == seasonality::steps_in(TimeDelta::days(1), step))
                .then_some(naive.period_steps),
                weekly_steps: (Some(naive.period_steps)
                    == seasonality::steps_in(TimeDelta::weeks(1), step))
                .then_some(naive.period_steps),
            };
            Some((seasonality, values))
        }
    }
}
