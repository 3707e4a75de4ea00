//! [`Forecaster`]: per-series forecasting state for the engine's predictive policy.
//!
//! Each series (named by the caller, e.g. a group id and metric) keeps a buffer of up to
//! `max_history` of samples aggregated into buckets of `step`. [`Forecaster::forecast`] refits
//! the model when the last fit is older than `refresh_interval` and serves the cached forecast
//! otherwise. It refuses until the history spans `min_history`. Each fit also runs the quality
//! check of [`quality`](super::quality::assess): the model is refitted without the last day, which is
//! then forecast and compared with what happened; a level shift in the last hours is looked
//! for in the same comparison.
//!
//! Time is always passed in; the forecaster reads no clock and does no I/O.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::auto::ValidationCache;
use super::model::SeasonalModelConfig;
use super::quality::{self, ForecastQuality, QualityConfig};
use super::{ModelChoice, ModelKind, SeasonalNaive, Seasonality, fit_windowed, metrics};
use crate::ForecastPoint;
use crate::model::Sample;

/// How samples falling in the same bucket are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Aggregation {
    /// The mean of the samples (the bucket's average load).
    #[default]
    Mean,
    /// The largest sample (the bucket's peak load).
    Max,
}

/// Settings of a [`Forecaster`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecasterConfig {
    /// Bucket width: the model's step. Default 1 h.
    pub step: TimeDelta,
    /// The forecaster refuses to forecast until the history spans this. Default 24 h.
    pub min_history: TimeDelta,
    /// History kept and fitted on. Default 14 days.
    pub max_history: TimeDelta,
    /// How far ahead to forecast. Default 48 h.
    pub horizon: TimeDelta,
    /// A fit is reused until it is this old. Default 1 h.
    pub refresh_interval: TimeDelta,
    /// The model. Default `auto`.
    pub model: ModelKind,
    /// Settings of the seasonal model, including the upper bound's quantile.
    pub seasonal: SeasonalModelConfig,
    /// Thresholds of the quality check.
    pub quality: QualityConfig,
    /// How samples in one bucket are combined.
    pub aggregation: Aggregation,
}

impl Default for ForecasterConfig {
    fn default() -> Self {
        ForecasterConfig {
            step: TimeDelta::hours(1),
            min_history: TimeDelta::hours(24),
            max_history: TimeDelta::days(14),
            horizon: TimeDelta::hours(48),
            refresh_interval: TimeDelta::hours(1),
            model: ModelKind::Auto,
            seasonal: SeasonalModelConfig::default(),
            quality: QualityConfig::default(),
            aggregation: Aggregation::Mean,
        }
    }
}

impl ForecasterConfig {
    /// Checks the settings are consistent.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: &str| Err(crate::Error::invalid_input(format!("forecaster: {m}")));
        if self.step <= TimeDelta::zero() {
            return bad("step must be positive");
        }
        if self.min_history < self.step {
            return bad("min_history must be at least one step");
        }
        if self.max_history < self.min_history {
            return bad("max_history must be at least min_history");
        }
        if self.horizon <= TimeDelta::zero() {
            return bad("horizon must be positive");
        }
        if self.refresh_interval < TimeDelta::zero() {
            return bad("refresh_interval must not be negative");
        }
        let q = self.seasonal.upper_quantile;
        if !(q > 0.5 && q < 1.0) {
            return bad("upper_quantile must be in (0.5, 1)");
        }
        Ok(())
    }

    /// Buckets kept per series: the history the model reads (see [`super::history_for`]) and
    /// the bucket in progress.
    fn kept_steps(&self) -> i64 {
        self.steps(super::history_for(self.model, self.max_history)) as i64 + 1
    }

    fn steps(&self, span: TimeDelta) -> usize {
        let step = self.step.num_milliseconds().max(1).unsigned_abs();
        let span = span.num_milliseconds().max(0).unsigned_abs();
        usize::try_from(span.div_ceil(step)).unwrap_or(usize::MAX)
    }
}

/// One forecast value at a time, with its interval, in the unit of the series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastSample {
    /// Start of the bucket forecast.
    pub at: DateTime<Utc>,
    /// The point forecast.
    pub value: f64,
    /// Lower bound, at `1 - upper_quantile`.
    pub lower: f64,
    /// Upper bound, at `upper_quantile`.
    pub upper: f64,
}

/// A fitted forecast for one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// When it was fitted (the `now` passed in).
    pub fitted_at: DateTime<Utc>,
    /// The bucket width.
    pub step: TimeDelta,
    /// The model that made it.
    pub model: ModelKind,
    /// The periods used.
    pub seasonality: Seasonality,
    /// Buckets in the history it was fitted on.
    pub history_steps: usize,
    /// The forecast, from the bucket holding `fitted_at` to the horizon.
    pub samples: Vec<ForecastSample>,
    /// The quality check of this fit.
    pub quality: ForecastQuality,
    /// What [`ModelKind::Auto`] chose, band by band (`None` for the other models).
    #[serde(default)]
    pub choice: Option<ModelChoice>,
}

impl Forecast {
    /// The forecast as engine points from `from` on (buckets ending after `from`), with the
    /// series' unit converted to instances by `to_instances` (e.g. `|rps| rps / 500.0`).
    pub fn engine_points(
        &self,
        from: DateTime<Utc>,
        to_instances: impl Fn(f64) -> f64,
    ) -> Vec<ForecastPoint> {
        let first = self.samples.partition_point(|s| s.at + self.step <= from);
        self.samples[first..]
            .iter()
            .map(|s| ForecastPoint {
                at: s.at,
                instances: to_instances(s.value),
                upper: Some(to_instances(s.upper)),
            })
            .collect()
    }

    /// The sample whose bucket holds `at`, if within the horizon. The samples are one per
    /// step, in order, so it is the last one starting at or before `at`, if `at` is before
    /// its end.
    pub fn at(&self, at: DateTime<Utc>) -> Option<&ForecastSample> {
        let after = self.samples.partition_point(|s| s.at <= at);
        self.samples[..after]
            .last()
            .filter(|s| at < s.at + self.step)
    }
}

/// Why a forecast is not available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotReady {
    /// No sample was ever observed for the series.
    UnknownSeries,
    /// The history is shorter than `min_history`.
    InsufficientHistory {
        /// What the history spans.
        history: TimeDelta,
        /// What it must span.
        needed: TimeDelta,
    },
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::UnknownSeries => f.write_str("no history for this series"),
            NotReady::InsufficientHistory { history, needed } => write!(
                f,
                "history spans {:.1} h, the forecast needs {:.1} h",
                history.num_minutes() as f64 / 60.0,
                needed.num_minutes() as f64 / 60.0
            ),
        }
    }
}

impl std::error::Error for NotReady {}

/// A series' history, as [`Forecaster::history_snapshot`] takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistorySnapshot {
    /// The forecaster's step, milliseconds: a snapshot is restored only at the same step.
    pub step_ms: i64,
    /// Bucket number (time / step) of the first bucket.
    pub first_bucket: i64,
    /// Per bucket: the sum (or max) and the sample count.
    pub buckets: Vec<(f64, u32)>,
    /// The last sample's time.
    pub last_observed: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
struct SeriesState {
    /// Bucket number (time / step) of `buckets[0]`.
    first_bucket: i64,
    /// Per bucket: the sum (or max) and the sample count.
    buckets: Vec<(f64, u32)>,
    last_observed: Option<DateTime<Utc>>,
    forecast: Option<Forecast>,
    /// What the `auto` model's candidates forecast at past validation origins.
    validation: ValidationCache,
}

/// Per-series forecasting state: history buffers, scheduled refits, cached forecasts.
#[derive(Debug, Clone)]
pub struct Forecaster {
    config: ForecasterConfig,
    series: BTreeMap<String, SeriesState>,
}

impl Forecaster {
    /// A forecaster with `config` (checked with [`ForecasterConfig::validate`]).
    pub fn new(config: ForecasterConfig) -> crate::Result<Self> {
        config.validate()?;
        Ok(Forecaster {
            config,
            series: BTreeMap::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ForecasterConfig {
        &self.config
    }

    /// How many series are tracked.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no series is tracked.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Forgets a series.
    pub fn remove(&mut self, series: &str) {
        self.series.remove(series);
    }

    /// Adds samples to a series' history. Samples at or before the latest sample already
    /// observed are ignored, so overlapping metric windows may be passed on every evaluation.
    /// NaN and infinite values are ignored (a gap).
    pub fn observe(&mut self, series: &str, samples: &[Sample]) {
        let step_ms = self.config.step.num_milliseconds();
        let keep = self.config.kept_steps();
        let aggregation = self.config.aggregation;
        // Looked up before inserting: a series observed every evaluation allocates no key.
        if !self.series.contains_key(series) {
            self.series
                .insert(series.to_owned(), SeriesState::default());
        }
        let Some(state) = self.series.get_mut(series) else {
            return;
        };
        for sample in samples {
            if state.last_observed.is_some_and(|last| sample.at <= last) {
                continue;
            }
            state.last_observed = Some(sample.at);
            if !sample.value.is_finite() {
                continue;
            }
            add(
                state,
                sample.at.timestamp_millis().div_euclid(step_ms),
                sample.value,
                aggregation,
            );
        }
        trim(state, keep);
    }

    /// Replaces a series' history with `values`, one per step from `start` (`None` for a gap),
    /// e.g. a backfill from a metrics source or a trace. `start` is rounded down to a step.
    pub fn load_history(&mut self, series: &str, start: DateTime<Utc>, values: &[Option<f64>]) {
        let step_ms = self.config.step.num_milliseconds();
        let keep = self.config.kept_steps();
        let first_bucket = start.timestamp_millis().div_euclid(step_ms);
        let state = self.series.entry(series.to_owned()).or_default();
        state.first_bucket = first_bucket;
        state.buckets = values
            .iter()
            .map(|v| match v.filter(|x| x.is_finite()) {
                Some(x) => (x, 1),
                None => (0.0, 0),
            })
            .collect();
        state.last_observed =
            DateTime::from_timestamp_millis((first_bucket + values.len() as i64) * step_ms - 1);
        state.forecast = None;
        trim(state, keep);
    }

    /// A series' history as it is held (buckets, counts and the last sample's time), to be
    /// kept across a restart and given back with [`Forecaster::restore_history`]. `None` for a
    /// series never observed.
    pub fn history_snapshot(&self, series: &str) -> Option<HistorySnapshot> {
        let state = self.series.get(series)?;
        Some(HistorySnapshot {
            step_ms: self.config.step.num_milliseconds(),
            first_bucket: state.first_bucket,
            buckets: state.buckets.clone(),
            last_observed: state.last_observed,
        })
    }

    /// Replaces a series' history with one taken by [`Forecaster::history_snapshot`]. A
    /// snapshot taken at another step, or holding non-finite sums, is refused (`false`) and the
    /// history is left as it was. The forecast is refitted at the next
    /// [`Forecaster::forecast`].
    pub fn restore_history(&mut self, series: &str, snapshot: &HistorySnapshot) -> bool {
        if snapshot.step_ms != self.config.step.num_milliseconds()
            || snapshot.buckets.iter().any(|(v, _)| !v.is_finite())
        {
            return false;
        }
        let keep = self.config.kept_steps();
        let state = self.series.entry(series.to_owned()).or_default();
        state.first_bucket = snapshot.first_bucket;
        state.buckets = snapshot.buckets.clone();
        state.last_observed = snapshot.last_observed;
        state.forecast = None;
        trim(state, keep);
        true
    }

    /// The last forecast of a series, without refitting.
    pub fn cached(&self, series: &str) -> Option<&Forecast> {
        self.series.get(series)?.forecast.as_ref()
    }

    /// The forecast of a series at `now`: the cached one while it is younger than
    /// `refresh_interval`, else a new fit on the complete buckets before `now`.
    pub fn forecast(&mut self, series: &str, now: DateTime<Utc>) -> Result<&Forecast, NotReady> {
        let config = self.config;
        let state = self.series.get_mut(series).ok_or(NotReady::UnknownSeries)?;
        let fresh = state
            .forecast
            .as_ref()
            .is_some_and(|f| now >= f.fitted_at && now - f.fitted_at < config.refresh_interval);
        if !fresh {
            let forecast = fit(&config, state, now)?;
            state.forecast = Some(forecast);
        }
        state.forecast.as_ref().ok_or(NotReady::UnknownSeries)
    }

    /// [`forecast`](Self::forecast) as engine points from `now`, converted to instances by
    /// `to_instances`.
    pub fn forecast_points(
        &mut self,
        series: &str,
        now: DateTime<Utc>,
        to_instances: impl Fn(f64) -> f64,
    ) -> Result<Vec<ForecastPoint>, NotReady> {
        Ok(self.forecast(series, now)?.engine_points(now, to_instances))
    }
}

fn add(state: &mut SeriesState, bucket: i64, value: f64, aggregation: Aggregation) {
    if state.buckets.is_empty() {
        state.first_bucket = bucket;
    }
    if bucket < state.first_bucket {
        let missing = (state.first_bucket - bucket) as usize;
        state
            .buckets
            .splice(0..0, std::iter::repeat_n((0.0, 0), missing));
        state.first_bucket = bucket;
    }
    let index = (bucket - state.first_bucket) as usize;
    if index >= state.buckets.len() {
        state.buckets.resize(index + 1, (0.0, 0));
    }
    let (acc, count) = &mut state.buckets[index];
    *acc = match (aggregation, *count) {
        (_, 0) => value,
        (Aggregation::Mean, _) => *acc + value,
        (Aggregation::Max, _) => acc.max(value),
    };
    *count += 1;
}

fn trim(state: &mut SeriesState, keep: i64) {
    let excess = state.buckets.len() as i64 - keep;
    if excess > 0 {
        state.buckets.drain(..excess as usize);
        state.first_bucket += excess;
    }
}

fn fit(
    config: &ForecasterConfig,
    state: &mut SeriesState,
    now: DateTime<Utc>,
) -> Result<Forecast, NotReady> {
    let step_ms = config.step.num_milliseconds();
    let now_bucket = now.timestamp_millis().div_euclid(step_ms);
    let window = config.steps(config.max_history);
    let read = config.steps(super::history_for(config.model, config.max_history)) as i64;
    let from = state.first_bucket.max(now_bucket - read);
    let until = now_bucket.min(state.first_bucket + state.buckets.len() as i64);
    let values: Vec<Option<f64>> = (from..now_bucket)
        .map(|b| {
            if b >= until {
                return None;
            }
            let (acc, count) = state.buckets[(b - state.first_bucket) as usize];
            match (count, config.aggregation) {
                (0, _) => None,
                (_, Aggregation::Mean) => Some(acc / f64::from(count)),
                (_, Aggregation::Max) => Some(acc),
            }
        })
        .collect();
    let first_present = values.iter().position(Option::is_some);
    let history = first_present.map_or(TimeDelta::zero(), |i| {
        config.step * (values.len() - i) as i32
    });
    if history < config.min_history {
        return Err(NotReady::InsufficientHistory {
            history,
            needed: config.min_history,
        });
    }
    let first_index = from + first_present.unwrap_or(0) as i64;
    let values = &values[first_present.unwrap_or(0)..];
    let horizon_steps = config.steps(config.horizon) + 1;
    let (seasonality, forecast, choice) = fit_windowed(
        config.model,
        values,
        first_index,
        window,
        config.step,
        &config.seasonal,
        horizon_steps,
        Some(&mut state.validation),
    )
    .ok_or(NotReady::UnknownSeries)?;
    let samples = forecast
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            Some(ForecastSample {
                at: DateTime::from_timestamp_millis((now_bucket + i as i64) * step_ms)?,
                value: f.value,
                lower: f.lower,
                upper: f.upper,
            })
        })
        .collect();
    Ok(Forecast {
        fitted_at: now,
        step: config.step,
        model: config.model,
        seasonality,
        history_steps: values.len().min(window),
        samples,
        quality: backtest(config, values, first_index, window, &mut state.validation),
        choice,
    })
}

/// Refits without the last `quality.backtest` and compares its forecast with what happened.
fn backtest(
    config: &ForecasterConfig,
    values: &[Option<f64>],
    first_index: i64,
    window: usize,
    cache: &mut ValidationCache,
) -> ForecastQuality {
    let held = config.steps(config.quality.backtest);
    let min_steps = config.steps(config.min_history);
    if held == 0 || values.len() < held + min_steps {
        return ForecastQuality::default();
    }
    let (train, test) = values.split_at(values.len() - held);
    // Only the points are compared: the `auto` model takes its candidates' forecasts from the
    // validation an earlier fit made at the same end of history.
    let fitted = match config.model {
        ModelKind::Auto => super::auto::fit_auto_with(
            train,
            first_index,
            window,
            config.step,
            &config.seasonal,
            held,
            Some(cache),
            false,
        )
        .map(|(_, forecast, _)| forecast),
        _ => fit_windowed(
            config.model,
            train,
            first_index,
            window,
            config.step,
            &config.seasonal,
            held,
            Some(cache),
        )
        .map(|(_, forecast, _)| forecast),
    };
    let Some(forecast) = fitted else {
        return ForecastQuality::default();
    };
    let forecast: Vec<Option<f64>> = forecast.iter().map(|f| Some(f.value)).collect();
    // The MASE scale from the window the model was fitted on.
    let train = &train[train.len().saturating_sub(window)..];
    let naive = SeasonalNaive::for_history(config.step, train.len());
    let scale = metrics::seasonal_naive_scale(train, naive.period_steps);
    quality::assess(
        test,
        &forecast,
        scale,
        config.steps(config.quality.level_shift_window),
        &config.quality,
    )
}
