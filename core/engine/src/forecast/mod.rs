//! Forecasting for predictive scaling and capacity planning.
//!
//! - [`seasonality`]: finds daily and weekly cycles at a series' step.
//! - [`model`]: the seasonal model (damped trend, daily profile, weekly adjustment, AR(1)
//!   residual) with prediction intervals. It is written here rather than taken from `augurs`:
//!   it beat seasonal naive on every shared trace and fits in about 60 µs.
//! - [`naive`]: seasonal naive (same time last week, or yesterday), the baseline.
//! - [`auto`]: the default model: the seasonal model, daily seasonal naive or two medians (of
//!   those two and last week; of yesterday, last week and the week before), chosen per band of lead times by their error over the last 14 days, so the
//!   forecast is rarely worse than the simple answers and says which it used
//!   (`docs/forecast-accuracy.md` has the figures).
//! - [`metrics`]: MASE and sMAPE.
//! - [`backtest`]: accuracy on the test part of a series, every step 1 h and 24 h ahead or on
//!   rolling origins (one a day, 14 days of history, 48 h ahead), against both seasonal naives.
//! - [`quality`]: out-of-sample error on the last day and level-shift detection, so a policy
//!   knows when not to trust a forecast.
//! - [`forecaster`]: [`Forecaster`], per-series state for the engine: history buffers, scheduled
//!   refits, forecasts as [`ForecastPoint`](crate::ForecastPoint)s.
//! - [`capacity`]: capacity planning over weeks (expected peaks, growth, when max or quota is hit).
//! - [`chart`]: SVG line charts of series and intervals, for reports.
//!
//! Everything here is pure: time is passed in, no clock is read, no I/O is done. The predictive
//! policy that turns these forecasts into a vote is [`crate::predictive`]; the control loop and
//! the replay compute its forecasts outside [`decide`](fn@crate::decide), on the policy's
//! refresh schedule, so the decision stays pure.
//!
//! # How the predictive policy's settings were chosen
//!
//! The predictive policy goes beyond AWS-style predictive scaling (plan on the hourly forecast
//! alone) in three ways. Each was measured on the parts of the shared traces before their test
//! parts (copies cut at the time the test part begins) before the test parts were scored. An
//! earlier cut by rows ran 2.5 days into nasa's test part, because that trace has a gap of 3.4
//! days, and is no longer used.
//!
//! - **Level correction** ([`track_level`](crate::config::Predictive::track_level), on by
//!   default): at every evaluation the forecast is scaled by measured ÷ forecast (the median
//!   over the last [`LEVEL_NOW_WINDOW`](crate::predictive::LEVEL_NOW_WINDOW), 5 minutes), a
//!   correction whose weight halves every
//!   [`LEVEL_CORRECTION_HALF_LIFE`](crate::config::LEVEL_CORRECTION_HALF_LIFE) (6 h) ahead.
//!   The model then only has to be right in shape, so the policy can run at 95 % utilisation;
//!   a holiday or growth since the last fit is absorbed instead of forcing a fallback, and the
//!   quality check judges the error that remains: the backtest day forecast one hour ahead,
//!   each hour corrected by actual ÷ forecast of the hour before. A saturated measurement never
//!   lowers the plan. (Judging the whole backtest day unanchored made a weekend or a holiday
//!   look like a broken model; rescaling it by one median ratio still did when the level
//!   changed within the day.)
//! - **Two readings of the hourly curve**: a bucket's mean held for the whole hour (right for a
//!   load that steps at the hour, like an hourly trace) or interpolated between bucket centres
//!   (right for a smooth load). Each gets its own level ratio, and the plan uses the one whose
//!   ratios varied less over the last hour, or the larger of both when neither is clearly
//!   closer. Reading only one of them cost either under-provisioning at every hourly step or a
//!   one-hour-of-growth overshoot at every hour boundary.
//! - **Uncertainty from the recent past**: [`quantile`](crate::config::Predictive::quantile)
//!   plans for that quantile of the last hour's ratios (not the model's 48 h interval), so a
//!   noisy load gets headroom and a smooth one none. The hour restarts at a **level break**:
//!   when every ratio of the last 5 minutes lies more than 3× above or below the median of the
//!   ratios since the previous break ([`LEVEL_BREAK`](crate::predictive::LEVEL_BREAK)), the
//!   quantile is taken from where that run of measurements began. So the end of a flash crowd,
//!   or a load that stops, frees its capacity within minutes instead of after an hour, while
//!   smaller or shorter swings keep the hour's headroom. Breaks are found per measurement as it
//!   arrives (once per fitted curve), so they do not depend on how often the policy is
//!   evaluated. On the parts of the traces before the test parts it changes nothing on
//!   wikipedia, azure2019 and google2011 and costs nasa about 0.3 % at the same τ_U; a break on
//!   the median of the window instead of on every ratio fired on the per-minute noise of nasa's
//!   nights (about 1.5 % dearer there), and so did a factor of 2. (Tried and dropped: a
//!   headroom relative to the 5-minute level, `latest × quantile of the deviations from it`, in
//!   two forms. It follows every dip of a noisy load: on nasa it doubled τ_U at the same cost,
//!   or cost 12 % more at a higher τ_U, than the hour's quantile of the ratios.)
//!
//! A load with no daily or weekly cycle makes the policy abstain ("no daily or weekly cycle
//! found"), since a flat forecast adds nothing the reactive policies don't do better. A daily
//! cycle is confirmed from 48 h of history and the quality check holds the last day back, so
//! the policy acts from about the third day, not after 24 h as AWS's does.
//!
//! `examples/predictive-scaling.yml` falls back
//! ([`fallback_mase`](crate::config::Predictive::fallback_mase)) when the level-corrected
//! forecast's error over the last day is above 1.5× seasonal naive's and above 10 % sMAPE
//! ([`ACCEPTABLE_SMAPE_PERCENT`](crate::predictive::ACCEPTABLE_SMAPE_PERCENT)). At 1.0 the nasa
//! trace fell back in a third of its evaluations, running on target tracking at 0.95 alone; at
//! 1.5, on the part of nasa before its test part, it cost about 2 % less at the same τ_U, and
//! nothing changed on the other traces.

pub mod auto;
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

pub use auto::{Candidate, ModelChoice};
pub use forecaster::{
    Aggregation, Forecast, ForecastSample, Forecaster, ForecasterConfig, HistorySnapshot, NotReady,
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
    /// The seasonal model, daily seasonal naive or a median of it and past days, whichever
    /// erred least over the last days, chosen per band of lead times (see [`auto`]).
    Auto,
}

impl ModelKind {
    /// The name used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Seasonal => "seasonal",
            ModelKind::SeasonalNaive => "seasonal-naive",
            ModelKind::Auto => "auto",
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
            "auto" => Ok(ModelKind::Auto),
            other => Err(crate::Error::invalid_input(format!(
                "unknown forecast model `{other}` (expected `auto`, `seasonal` or `seasonal-naive`)"
            ))),
        }
    }
}

/// The history `kind` reads to fit on a window of `window`: the window itself, and for
/// [`ModelKind::Auto`] the [`auto::VALIDATION_DAYS`] days before it too.
pub fn history_for(kind: ModelKind, window: TimeDelta) -> TimeDelta {
    match kind {
        ModelKind::Auto => window + TimeDelta::days(auto::VALIDATION_DAYS as i64),
        _ => window,
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
    fit_explained(kind, history, step, config, horizon_steps).map(|(s, v, _)| (s, v))
}

/// [`fit_and_forecast`], with what [`ModelKind::Auto`] chose (`None` for the other models).
pub fn fit_explained(
    kind: ModelKind,
    history: &[Option<f64>],
    step: TimeDelta,
    config: &SeasonalModelConfig,
    horizon_steps: usize,
) -> Option<(Seasonality, Vec<ForecastValue>, Option<ModelChoice>)> {
    fit_windowed(
        kind,
        history,
        0,
        history.len(),
        step,
        config,
        horizon_steps,
        None,
    )
}

/// [`fit_explained`] on the last `window` values of `history`, whose first value is step
/// number `first_index` since the epoch. Only [`ModelKind::Auto`] reads further back: it
/// scores its candidates on the days before, each on a window as long (see [`auto`]), so give
/// it [`history_for`] of history, and the same `cache` at every fit of one series.
#[allow(clippy::too_many_arguments)]
pub fn fit_windowed(
    kind: ModelKind,
    history: &[Option<f64>],
    first_index: i64,
    window: usize,
    step: TimeDelta,
    config: &SeasonalModelConfig,
    horizon_steps: usize,
    cache: Option<&mut auto::ValidationCache>,
) -> Option<(Seasonality, Vec<ForecastValue>, Option<ModelChoice>)> {
    let recent = &history[history.len().saturating_sub(window)..];
    match kind {
        ModelKind::Auto => auto::fit_auto(
            history,
            first_index,
            window,
            step,
            config,
            horizon_steps,
            cache,
        )
        .map(|(s, v, choice)| (s, v, Some(choice))),
        ModelKind::Seasonal => {
            let history = recent;
            let seasonality = detect_seasonality(history, step);
            let fit = SeasonalFit::fit(history, step, seasonality, config)?;
            Some((fit.seasonality(), fit.forecast(horizon_steps), None))
        }
        ModelKind::SeasonalNaive => {
            let history = recent;
            history.iter().flatten().next()?;
            let naive = SeasonalNaive::for_history(step, history.len());
            let values = auto::naive_values(
                history,
                naive.period_steps,
                config.upper_quantile,
                horizon_steps,
            );
            let seasonality = Seasonality {
                daily_steps: (naive.period_steps > 1
                    && Some(naive.period_steps) == seasonality::steps_in(TimeDelta::days(1), step))
                .then_some(naive.period_steps),
                weekly_steps: (Some(naive.period_steps)
                    == seasonality::steps_in(TimeDelta::weeks(1), step))
                .then_some(naive.period_steps),
            };
            Some((seasonality, values, None))
        }
    }
}
