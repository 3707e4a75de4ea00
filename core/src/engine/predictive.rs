//! The predictive policy: its vote inside the pure engine, and [`PredictiveForecast`], the state
//! its callers (the control loop, the replay) keep to produce the forecast the engine reads.
//!
//! The engine never fits a model: the caller feeds the policy's load metric to a
//! [`PredictiveForecast`], asks it for the forecast at each evaluation (it refits only every
//! `refresh`) and passes the points, in instances needed, in
//! [`Observation::forecast`](super::Observation), or, when there is no usable forecast, the
//! reason in [`Observation::forecast_note`](super::Observation).
//!
//! The vote: the capacity needed over `[now, now + buffer]` is the largest forecast in that
//! window (the point forecast, or the upper bound at the configured quantile) × (1 + margin),
//! rounded up. Above the current capacity it votes to scale out to it; at or below, it does not
//! vote for a change, but a scale-in the reactive policies agree on stops at that need (the
//! forecast acts as a floor, as AWS predictive scaling's minimum capacity does).

use chrono::{DateTime, TimeDelta, Utc};

use super::{ForecastPoint, Observation};
use crate::config::{MaxCapacity, Predictive, PredictiveMode};
use crate::forecast::{Forecaster, ForecasterConfig, QualityConfig};
use crate::model::{MetricKind, Sample};

/// What the predictive policy says to the merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PredictiveVote {
    /// Scale out to this many.
    Out(u32),
    /// No scale-out; a scale-in stops at this many.
    Floor(u32),
    /// No vote at all.
    Abstain,
}

/// The predictive policy's vote and its explanation. `current` is the group's desired capacity,
/// `ceiling` the effective max (used for `max_capacity: raise_by_percent`). Returns the vote,
/// the raised ceiling when the policy may go above max, and the message.
pub(crate) fn vote(
    policy: &Predictive,
    observation: &Observation<'_>,
    ceiling: u32,
) -> (PredictiveVote, Option<u32>, String) {
    let current = observation.group.desired;
    let Some(points) = observation.forecast.filter(|p| !p.is_empty()) else {
        let why = observation
            .forecast_note
            .unwrap_or("no forecast was supplied");
        return (
            PredictiveVote::Abstain,
            None,
            format!("falling back to reactive: {why}"),
        );
    };
    let now = observation.now;
    let until = now + policy.buffer.as_delta();
    let window = window_points(points, now, until);
    let Some((at, load)) = window
        .iter()
        .map(|p| {
            let v = if policy.quantile.is_some() {
                p.upper.unwrap_or(p.instances).max(p.instances)
            } else {
                p.instances
            };
            (p.at, v)
        })
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(&b.1))
    else {
        return (
            PredictiveVote::Abstain,
            None,
            format!(
                "falling back to reactive: the forecast does not cover {} to {}",
                now.format("%Y-%m-%d %H:%M"),
                until.format("%H:%M")
            ),
        );
    };
    let planned = load.max(0.0) * (1.0 + policy.margin);
    let needed = ceil_instances(planned);
    let what = if policy.quantile.is_some() {
        "upper bound"
    } else {
        "forecast"
    };
    let mut message = format!(
        "{what} needs {planned:.2} instances by {} (buffer {}",
        at.max(now).format("%H:%M"),
        policy.buffer
    );
    if policy.margin > 0.0 {
        message.push_str(&format!(", margin {:.0} %", policy.margin * 100.0));
    }
    message.push_str(&format!(") → {needed}"));
    if policy.mode == PredictiveMode::ForecastOnly {
        message.push_str("; forecast only, not acting");
        return (PredictiveVote::Abstain, None, message);
    }
    let raised = match policy.max_capacity {
        MaxCapacity::RaiseByPercent(pct) if needed > ceiling => {
            let limit = ceil_instances(f64::from(ceiling) * (1.0 + pct / 100.0));
            let raised = needed.min(limit);
            message.push_str(&format!(
                "; max raised from {ceiling} to {raised} (at most {pct} % above)"
            ));
            Some(raised)
        }
        _ => None,
    };
    if needed > current {
        (PredictiveVote::Out(needed), raised, message)
    } else {
        message.push_str(&format!(
            "; at or below the current {current}: scale-in is left to the reactive policies, not below {needed}"
        ));
        (PredictiveVote::Floor(needed), None, message)
    }
}

/// The points whose bucket overlaps `[now, until]`: points from the last one at or before `now`
/// up to the last one at or before `until`.
fn window_points(
    points: &[ForecastPoint],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<ForecastPoint> {
    let first = points.iter().rposition(|p| p.at <= now).unwrap_or(0);
    points[first..]
        .iter()
        .filter(|p| p.at <= until)
        .copied()
        .collect()
}

fn ceil_instances(value: f64) -> u32 {
    let v = (value - value.abs() * 1e-9).ceil();
    if v <= 0.0 {
        0
    } else if v >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        v as u32
    }
}

/// The forecaster settings of a predictive policy: hourly buckets of the mean load, the
/// policy's history, horizon and refresh, its quantile for the upper bound and its MASE limit.
pub fn forecaster_config(policy: &Predictive) -> ForecasterConfig {
    let defaults = ForecasterConfig::default();
    let mut seasonal = defaults.seasonal;
    if let Some(q) = policy.quantile {
        seasonal.upper_quantile = q;
    }
    ForecasterConfig {
        min_history: policy.min_history.as_delta(),
        max_history: policy.history.as_delta(),
        horizon: policy.horizon.as_delta(),
        refresh_interval: policy.refresh.as_delta(),
        seasonal,
        // The MASE limit is applied by [`PredictiveForecast`] together with the sMAPE floor.
        quality: QualityConfig {
            max_recent_mase: f64::INFINITY,
            ..defaults.quality
        },
        ..defaults
    }
}

/// The forecast of one predictive policy at one evaluation, ready for an [`Observation`].
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastInput {
    /// Instances needed from the current bucket to the horizon, when the forecast is usable.
    pub points: Option<Vec<ForecastPoint>>,
    /// Why there are no points (short history, poor recent accuracy, a level shift).
    pub note: Option<String>,
    /// Whether the model was refitted at this evaluation.
    pub refreshed: bool,
    /// The points even when the quality check rejected them (for charts and events).
    pub all_points: Vec<ForecastPoint>,
}

/// The forecasting state of one group's predictive policy, owned by the caller of the engine.
#[derive(Debug, Clone)]
pub struct PredictiveForecast {
    policy: Predictive,
    forecaster: Forecaster,
    last_fit: Option<DateTime<Utc>>,
}

const SERIES: &str = "load";

/// A forecast whose sMAPE over the last day is below this (percent) is used even when its MASE is
/// above the policy's `fallback_mase`: on a smooth cycle seasonal naive is nearly exact, so the
/// MASE of an accurate forecast is large while its error is a few percent.
pub const ACCEPTABLE_SMAPE_PERCENT: f64 = 10.0;

impl PredictiveForecast {
    /// The state for `policy`.
    pub fn new(policy: &Predictive) -> crate::Result<Self> {
        Ok(PredictiveForecast {
            policy: policy.clone(),
            forecaster: Forecaster::new(forecaster_config(policy))?,
            last_fit: None,
        })
    }

    /// The policy.
    pub fn policy(&self) -> &Predictive {
        &self.policy
    }

    /// The forecaster (for its cached forecast and settings).
    pub fn forecaster(&self) -> &Forecaster {
        &self.forecaster
    }

    /// Adds samples of the policy's metric. For `utilization` each value is first turned into a
    /// load by `ready_at(sample time)` (busy instances = utilisation × ready instances).
    pub fn observe(&mut self, samples: &[Sample], ready_at: impl Fn(DateTime<Utc>) -> f64) {
        if self.policy.metric == MetricKind::Utilization {
            let loads: Vec<Sample> = samples
                .iter()
                .map(|s| Sample {
                    at: s.at,
                    value: s.value * ready_at(s.at),
                })
                .collect();
            self.forecaster.observe(SERIES, &loads);
        } else {
            self.forecaster.observe(SERIES, samples);
        }
    }

    /// Adds one load value (already in the policy's load unit) at `at`.
    pub fn observe_load(&mut self, at: DateTime<Utc>, load: f64) {
        self.forecaster
            .observe(SERIES, &[Sample { at, value: load }]);
    }

    /// The forecast at `now` (refitted when the last fit is older than `refresh`), in instances
    /// needed (load / target).
    pub fn forecast(&mut self, now: DateTime<Utc>) -> ForecastInput {
        let target = self.policy.target;
        match self.forecaster.forecast(SERIES, now) {
            Err(not_ready) => ForecastInput {
                points: None,
                note: Some(not_ready.to_string()),
                refreshed: false,
                all_points: Vec::new(),
            },
            Ok(forecast) => {
                let refreshed = self.last_fit != Some(forecast.fitted_at);
                self.last_fit = Some(forecast.fitted_at);
                let all_points = forecast.engine_points(now, |load| load / target);
                let quality = &forecast.quality;
                let too_wrong = match (quality.recent_mase, quality.recent_smape_percent) {
                    (Some(mase), smape)
                        if mase > self.policy.fallback_mase
                            && smape.is_none_or(|s| s > ACCEPTABLE_SMAPE_PERCENT) =>
                    {
                        Some(format!(
                            "forecast error too high over the last day: MASE {mase:.2} (limit {:.2}), sMAPE {:.1} % (limit {ACCEPTABLE_SMAPE_PERCENT} %)",
                            self.policy.fallback_mase,
                            smape.unwrap_or(f64::NAN)
                        ))
                    }
                    _ => None,
                };
                match quality.fallback_reason.clone().or(too_wrong) {
                    Some(why) => ForecastInput {
                        points: None,
                        note: Some(format!("the forecast is not trusted: {why}")),
                        refreshed,
                        all_points,
                    },
                    None => ForecastInput {
                        points: Some(all_points.clone()),
                        note: None,
                        refreshed,
                        all_points,
                    },
                }
            }
        }
    }

    /// The forecast instances needed at `at` from the last fit, without refitting.
    pub fn cached_at(&self, at: DateTime<Utc>) -> Option<f64> {
        let f = self.forecaster.cached(SERIES)?;
        let s = f.at(at)?;
        Some(s.value / self.policy.target)
    }

    /// How far back the caller should fetch history on its first evaluation.
    pub fn history_span(&self) -> TimeDelta {
        self.policy.history.as_delta()
    }
}
