//! Rolling-origin accuracy evaluation: fit on the history up to each origin in the test part of
//! a series (at most `max_history` of it), forecast, and score the forecasts at fixed horizons
//! with MASE and sMAPE against seasonal naive on exactly the same targets. Also: resampling a
//! series to a coarser step.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::model::SeasonalModelConfig;
use super::{ModelKind, SeasonalNaive, Seasonality, detect_seasonality, fit_and_forecast, metrics};

/// Settings of a rolling-origin evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestConfig {
    /// The model scored against seasonal naive.
    pub model: ModelKind,
    /// Its settings.
    pub seasonal: SeasonalModelConfig,
    /// History fitted at each origin (the most recent part).
    pub max_history: TimeDelta,
    /// Origins with less present history are skipped.
    pub min_history: TimeDelta,
    /// Horizons scored.
    pub horizons: Vec<TimeDelta>,
    /// The horizon whose forecasts are kept for the chart.
    pub chart_horizon: TimeDelta,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        BacktestConfig {
            model: ModelKind::Seasonal,
            seasonal: SeasonalModelConfig::default(),
            max_history: TimeDelta::days(14),
            min_history: TimeDelta::hours(24),
            horizons: vec![TimeDelta::hours(1), TimeDelta::hours(24)],
            chart_horizon: TimeDelta::hours(24),
        }
    }
}

/// Scores of one model at one horizon.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Mean absolute scaled error (scale: in-sample seasonal-naive error of the training part).
    pub mase: Option<f64>,
    /// Symmetric MAPE, percent.
    pub smape_percent: Option<f64>,
    /// Fraction of actual values at or below the upper bound (the interval's calibration).
    pub upper_coverage: Option<f64>,
}

/// Accuracy at one horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HorizonAccuracy {
    /// The horizon.
    pub horizon: TimeDelta,
    /// The horizon in steps.
    pub horizon_steps: usize,
    /// Targets scored (present actual, both forecasts available).
    pub targets: usize,
    /// The model's scores.
    pub model: Scores,
    /// Seasonal naive's scores on the same targets.
    pub seasonal_naive: Scores,
}

/// One point of the chart: the actual value and the forecasts made `chart_horizon` earlier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChartPoint {
    /// Time.
    pub at: DateTime<Utc>,
    /// Actual value (gap: `None`).
    pub actual: Option<f64>,
    /// The model's forecast with its interval.
    pub forecast: Option<(f64, f64, f64)>,
    /// Seasonal naive's forecast.
    pub seasonal_naive: Option<f64>,
}

/// The result of [`backtest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyReport {
    /// The step of the series evaluated.
    pub step: TimeDelta,
    /// Steps in the training part.
    pub train_steps: usize,
    /// Steps in the test part.
    pub test_steps: usize,
    /// Seasonality detected on the training part.
    pub seasonality: Seasonality,
    /// Seasonal naive's period, steps.
    pub naive_period_steps: usize,
    /// The MASE denominator.
    pub mase_scale: Option<f64>,
    /// Per horizon.
    pub horizons: Vec<HorizonAccuracy>,
    /// The chart horizon's forecasts over the test part.
    pub chart: Vec<ChartPoint>,
}

/// Evaluates `config.model` against seasonal naive on `values[train_steps..]`, with origins
/// rolling one step at a time. `start` is the time of `values[0]`.
pub fn backtest(
    values: &[Option<f64>],
    start: DateTime<Utc>,
    step: TimeDelta,
    train_steps: usize,
    config: &BacktestConfig,
) -> AccuracyReport {
    let n = values.len();
    let train_steps = train_steps.min(n);
    let steps = |span: TimeDelta| {
        let s = step.num_milliseconds().max(1);
        usize::try_from((span.num_milliseconds().max(0) + s - 1) / s).unwrap_or(usize::MAX)
    };
    let horizon_steps: Vec<usize> = config.horizons.iter().map(|h| steps(*h).max(1)).collect();
    let chart_steps = steps(config.chart_horizon).max(1);
    let longest = horizon_steps
        .iter()
        .copied()
        .chain([chart_steps])
        .max()
        .unwrap_or(1);
    let max_history = steps(config.max_history).max(1);
    let min_history = steps(config.min_history).max(1);
    let train = &values[..train_steps];
    let naive_for_train = SeasonalNaive::for_history(step, train.len());
    let mase_scale = metrics::seasonal_naive_scale(train, naive_for_train.period_steps);

    // forecasts[k][t - train_steps] = (model value, upper, lower, naive) for horizon k at target t.
    type Slot = Option<(f64, f64, f64, f64)>;
    let test_steps = n - train_steps;
    let mut by_horizon: Vec<Vec<Slot>> = vec![vec![None; test_steps]; horizon_steps.len()];
    let mut chart: Vec<Slot> = vec![None; test_steps];
    let first_origin = train_steps.saturating_sub(longest);
    for origin in first_origin..n.saturating_sub(1) {
        let from = (origin + 1).saturating_sub(max_history);
        let history = &values[from..=origin];
        let Some(first_present) = history.iter().position(Option::is_some) else {
            continue;
        };
        let history = &history[first_present..];
        if history.len() < min_history {
            continue;
        }
        let reach = longest.min(n - 1 - origin);
        let Some((_, forecast)) =
            fit_and_forecast(config.model, history, step, &config.seasonal, reach)
        else {
            continue;
        };
        let naive = SeasonalNaive::for_history(step, history.len());
        let record = |h: usize, slot: &mut Slot| {
            let f = forecast[h - 1];
            let nv = naive
                .forecast_at(history, history.len() - 1, h)
                .unwrap_or(f64::NAN);
            *slot = Some((f.value, f.upper, f.lower, nv));
        };
        for (k, h) in horizon_steps.iter().enumerate() {
            let target = origin + h;
            if *h <= reach && target >= train_steps {
                record(*h, &mut by_horizon[k][target - train_steps]);
            }
        }
        let target = origin + chart_steps;
        if chart_steps <= reach && target >= train_steps {
            record(chart_steps, &mut chart[target - train_steps]);
        }
    }

    let test = &values[train_steps..];
    let horizons = horizon_steps
        .iter()
        .zip(&config.horizons)
        .zip(&by_horizon)
        .map(|((h, horizon), slots)| {
            let mut actual = Vec::new();
            let mut model = Vec::new();
            let mut naive = Vec::new();
            let mut covered = 0usize;
            for (a, slot) in test.iter().zip(slots) {
                if let (Some(a), Some((v, upper, _, nv))) = (a, slot)
                    && nv.is_finite()
                {
                    actual.push(Some(*a));
                    model.push(Some(*v));
                    naive.push(Some(*nv));
                    covered += usize::from(*a <= *upper);
                }
            }
            let targets = actual.len();
            let scores = |forecast: &[Option<f64>], coverage: Option<f64>| Scores {
                mase: mase_scale.and_then(|s| metrics::mase(&actual, forecast, s)),
                smape_percent: metrics::smape_percent(&actual, forecast),
                upper_coverage: coverage,
            };
            HorizonAccuracy {
                horizon: *horizon,
                horizon_steps: *h,
                targets,
                model: scores(
                    &model,
                    (targets > 0).then(|| covered as f64 / targets as f64),
                ),
                seasonal_naive: scores(&naive, None),
            }
        })
        .collect();
    let step_ms = step.num_milliseconds();
    let chart = test
        .iter()
        .zip(&chart)
        .enumerate()
        .map(|(i, (a, slot))| ChartPoint {
            at: start + TimeDelta::milliseconds(step_ms * (train_steps + i) as i64),
            actual: *a,
            forecast: slot.map(|(v, upper, lower, _)| (v, lower, upper)),
            seasonal_naive: slot.map(|s| s.3).filter(|v| v.is_finite()),
        })
        .collect();
    AccuracyReport {
        step,
        train_steps,
        test_steps,
        seasonality: detect_seasonality(train, step),
        naive_period_steps: naive_for_train.period_steps,
        mase_scale,
        horizons,
        chart,
    }
}

/// Resamples a series on a grid of `step` (from `start`) to `new_step`, a multiple of `step`:
/// each new value is the mean of the values present in its bucket (a bucket with none is a gap).
/// Buckets are aligned to multiples of `new_step` since the Unix epoch. Returns the new start
/// and values; `None` when `new_step` is not a positive multiple of `step`.
pub fn resample(
    start: DateTime<Utc>,
    step: TimeDelta,
    values: &[Option<f64>],
    new_step: TimeDelta,
) -> Option<(DateTime<Utc>, Vec<Option<f64>>)> {
    let (step_ms, new_ms) = (step.num_milliseconds(), new_step.num_milliseconds());
    if step_ms <= 0 || new_ms <= 0 || new_ms % step_ms != 0 {
        return None;
    }
    let first = start.timestamp_millis().div_euclid(new_ms);
    let mut sums: Vec<(f64, u32)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let bucket = (start.timestamp_millis() + step_ms * i as i64).div_euclid(new_ms) - first;
        let bucket = usize::try_from(bucket).ok()?;
        if bucket >= sums.len() {
            sums.resize(bucket + 1, (0.0, 0));
        }
        if let Some(v) = v.filter(|v| v.is_finite()) {
            sums[bucket].0 += v;
            sums[bucket].1 += 1;
        }
    }
    let new_start = DateTime::from_timestamp_millis(first * new_ms)?;
    Some((
        new_start,
        sums.into_iter()
            .map(|(s, c)| (c > 0).then(|| s / f64::from(c)))
            .collect(),
    ))
}
