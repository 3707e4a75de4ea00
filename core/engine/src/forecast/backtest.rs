//! Rolling-origin accuracy evaluation: fit on the history up to each origin in the test part of
//! a series (at most `max_history` of it), forecast, and score the forecasts at fixed horizons
//! with MASE and sMAPE against seasonal naive on exactly the same targets. Also: resampling a
//! series to a coarser step.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::auto::ValidationCache;
use super::model::SeasonalModelConfig;
use super::seasonality::steps_in;
use super::{
    Candidate, ModelKind, SeasonalNaive, Seasonality, detect_seasonality, fit_windowed, metrics,
};

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
    /// Seasonal naive's scores on the same targets (weekly when the history holds a week at
    /// the origin, else daily: the MASE reference).
    pub seasonal_naive: Scores,
    /// Daily seasonal naive (the same time yesterday) on the same targets.
    pub daily_naive: Scores,
    /// Weekly seasonal naive (the same time last week; the last value while the history is
    /// shorter than a week) on the same targets.
    pub weekly_naive: Scores,
    /// For [`ModelKind::Auto`]: how many of the scored forecasts used each candidate.
    #[serde(default)]
    pub chosen: Vec<(Candidate, usize)>,
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
    let read_history = steps(super::history_for(config.model, config.max_history)).max(1);
    let min_history = steps(config.min_history).max(1);
    let train = &values[..train_steps];
    let naive_for_train = SeasonalNaive::for_history(step, train.len());
    let mase_scale = metrics::seasonal_naive_scale(train, naive_for_train.period_steps);

    let daily = SeasonalNaive {
        period_steps: steps_in(TimeDelta::days(1), step).unwrap_or(1),
    };
    let weekly = SeasonalNaive {
        period_steps: steps_in(TimeDelta::weeks(1), step).unwrap_or(daily.period_steps),
    };
    // forecasts[k][t - train_steps] for horizon k at target t.
    #[derive(Clone, Copy)]
    struct Made {
        value: f64,
        upper: f64,
        lower: f64,
        naive: f64,
        daily: f64,
        weekly: f64,
        chosen: Option<Candidate>,
    }
    type Slot = Option<Made>;
    let test_steps = n - train_steps;
    let mut by_horizon: Vec<Vec<Slot>> = vec![vec![None; test_steps]; horizon_steps.len()];
    let mut chart: Vec<Slot> = vec![None; test_steps];
    let first_origin = train_steps.saturating_sub(longest);
    let mut cache = ValidationCache::default();
    for origin in first_origin..n.saturating_sub(1) {
        let from = (origin + 1).saturating_sub(read_history);
        let history = &values[from..=origin];
        let Some(first_present) = history.iter().position(Option::is_some) else {
            continue;
        };
        let history = &history[first_present..];
        if history.len().min(max_history) < min_history {
            continue;
        }
        let reach = longest.min(n - 1 - origin);
        let Some((_, forecast, choice)) = fit_windowed(
            config.model,
            history,
            (from + first_present) as i64,
            max_history,
            step,
            &config.seasonal,
            reach,
            Some(&mut cache),
        ) else {
            continue;
        };
        // The baselines see the window the model was fitted on.
        let history = &history[history.len().saturating_sub(max_history)..];
        let naive = SeasonalNaive::for_history(step, history.len());
        let record = |h: usize, slot: &mut Slot| {
            let f = forecast[h - 1];
            let at = |n: &SeasonalNaive| {
                n.forecast_at(history, history.len() - 1, h)
                    .unwrap_or(f64::NAN)
            };
            *slot = Some(Made {
                value: f.value,
                upper: f.upper,
                lower: f.lower,
                naive: at(&naive),
                daily: at(&daily),
                weekly: at(&weekly),
                chosen: choice.as_ref().and_then(|c| c.model_at(h)),
            });
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
            let mut daily = Vec::new();
            let mut weekly = Vec::new();
            let mut chosen: std::collections::BTreeMap<Candidate, usize> = Default::default();
            let mut covered = 0usize;
            for (a, slot) in test.iter().zip(slots) {
                if let (Some(a), Some(m)) = (a, slot)
                    && m.naive.is_finite()
                    && m.daily.is_finite()
                    && m.weekly.is_finite()
                {
                    actual.push(Some(*a));
                    model.push(Some(m.value));
                    naive.push(Some(m.naive));
                    daily.push(Some(m.daily));
                    weekly.push(Some(m.weekly));
                    covered += usize::from(*a <= m.upper);
                    if let Some(c) = m.chosen {
                        *chosen.entry(c).or_default() += 1;
                    }
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
                daily_naive: scores(&daily, None),
                weekly_naive: scores(&weekly, None),
                chosen: chosen.into_iter().collect(),
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
            forecast: slot.map(|m| (m.value, m.lower, m.upper)),
            seasonal_naive: slot.map(|m| m.naive).filter(|v| v.is_finite()),
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

/// Settings of [`rolling_origin`]: the protocol forecasting libraries are usually compared on
/// (statsmodels, Prophet's `cross_validation`): an origin every `every` over the test part,
/// a fit on the `history` before it, a forecast `horizon` ahead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollingConfig {
    /// The model scored.
    pub model: ModelKind,
    /// Its settings.
    pub seasonal: SeasonalModelConfig,
    /// Spacing of the origins. Default 24 h.
    pub every: TimeDelta,
    /// The fit window before each origin. Default 14 days.
    pub history: TimeDelta,
    /// How far each forecast reaches. Default 48 h.
    pub horizon: TimeDelta,
}

impl Default for RollingConfig {
    fn default() -> Self {
        RollingConfig {
            model: ModelKind::Auto,
            seasonal: SeasonalModelConfig::default(),
            every: TimeDelta::hours(24),
            history: TimeDelta::days(14),
            horizon: TimeDelta::hours(48),
        }
    }
}

/// One forecaster's scores over the origins of [`rolling_origin`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RollingScores {
    /// The mean over the origins of each origin's MASE (its forecast's mean absolute error over
    /// the horizon ÷ the fit window's in-sample weekly seasonal-naive error).
    pub mase_mean: Option<f64>,
    /// Their median.
    pub mase_median: Option<f64>,
    /// sMAPE (percent) over every scored value of every origin.
    pub smape_percent: Option<f64>,
}

/// The result of [`rolling_origin`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollingReport {
    /// Origins scored (a full fit window and a full horizon of the series after it, and a
    /// defined MASE scale).
    pub origins: usize,
    /// Origins skipped: too little history before them, a horizon running past the series, or
    /// a fit window whose weekly seasonal-naive error is zero or undefined.
    pub skipped: usize,
    /// The model.
    pub model: RollingScores,
    /// Daily seasonal naive.
    pub daily_naive: RollingScores,
    /// Weekly seasonal naive.
    pub weekly_naive: RollingScores,
    /// For [`ModelKind::Auto`]: how many scored forecast values used each candidate.
    pub chosen: Vec<(Candidate, usize)>,
}

/// Scores `config.model`, daily and weekly seasonal naive on rolling origins: the first at
/// `test_from` (an index into `values`, one value per `step`), then one every `config.every`,
/// each fitted on the `config.history` before it and forecasting `config.horizon` after it.
/// MASE is scaled per origin by the fit window's in-sample weekly seasonal-naive error, so
/// the figures compare with other libraries run the same way.
pub fn rolling_origin(
    values: &[Option<f64>],
    step: TimeDelta,
    test_from: usize,
    config: &RollingConfig,
) -> RollingReport {
    let steps = |span: TimeDelta| {
        let s = step.num_milliseconds().max(1);
        usize::try_from((span.num_milliseconds().max(0) + s - 1) / s).unwrap_or(usize::MAX)
    };
    let every = steps(config.every).max(1);
    let history = steps(config.history).max(1);
    let read_history = steps(super::history_for(config.model, config.history)).max(1);
    let horizon = steps(config.horizon).max(1);
    let day = steps_in(TimeDelta::days(1), step).unwrap_or(1);
    let week = steps_in(TimeDelta::weeks(1), step).unwrap_or(day);
    let n = values.len();
    let mut per_origin: [Vec<f64>; 3] = Default::default();
    // Per forecaster: every scored actual value and its forecast.
    type Pairs = (Vec<Option<f64>>, Vec<Option<f64>>);
    let mut pooled: [Pairs; 3] = Default::default();
    let mut chosen: std::collections::BTreeMap<Candidate, usize> = Default::default();
    let (mut origins, mut skipped) = (0, 0);
    let mut cache = ValidationCache::default();
    let mut origin = test_from;
    while origin < n {
        let scored = (|| {
            if origin < history || origin + horizon > n {
                return None;
            }
            let window = &values[origin - history..origin];
            let scale = metrics::seasonal_naive_scale(window, week)?;
            let read_from = origin.saturating_sub(read_history);
            let (_, forecast, choice) = fit_windowed(
                config.model,
                &values[read_from..origin],
                read_from as i64,
                history,
                step,
                &config.seasonal,
                horizon,
                Some(&mut cache),
            )?;
            let actual = &values[origin..origin + horizon];
            let model: Vec<Option<f64>> = forecast
                .iter()
                .map(|f| Some(f.value).filter(|v| v.is_finite()))
                .collect();
            let daily = SeasonalNaive { period_steps: day }.forecast(window, horizon);
            let weekly = SeasonalNaive { period_steps: week }.forecast(window, horizon);
            let forecasts = [model, daily, weekly];
            let errors: Vec<f64> = forecasts
                .iter()
                .map(|f| metrics::mase(actual, f, scale))
                .collect::<Option<_>>()?;
            for (k, f) in forecasts.into_iter().enumerate() {
                per_origin[k].push(errors[k]);
                pooled[k].0.extend_from_slice(actual);
                pooled[k].1.extend(f);
            }
            if let Some(choice) = choice {
                for (lead, a) in actual.iter().enumerate() {
                    if let (Some(_), Some(c)) = (a, choice.model_at(lead + 1)) {
                        *chosen.entry(c).or_default() += 1;
                    }
                }
            }
            Some(())
        })();
        match scored {
            Some(()) => origins += 1,
            None => skipped += 1,
        }
        origin += every;
    }
    let scores = |k: usize| {
        let mut mases = per_origin[k].clone();
        mases.sort_by(f64::total_cmp);
        RollingScores {
            mase_mean: (!mases.is_empty()).then(|| mases.iter().sum::<f64>() / mases.len() as f64),
            mase_median: (!mases.is_empty()).then(|| super::model::quantile_sorted(&mases, 0.5)),
            smape_percent: metrics::smape_percent(&pooled[k].0, &pooled[k].1),
        }
    };
    RollingReport {
        origins,
        skipped,
        model: scores(0),
        daily_naive: scores(1),
        weekly_naive: scores(2),
        chosen: chosen.into_iter().collect(),
    }
}
