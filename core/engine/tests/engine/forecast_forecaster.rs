//! The `Forecaster`: minimum history, scheduled refits, overlapping observations, engine points,
//! and the quality check (recent error and level shifts).

use std::f64::consts::TAU;

use chrono::{DateTime, TimeDelta, Utc};
use hoist_api::Sample;
use hoist_engine::forecast::{Forecaster, ForecasterConfig, NotReady};

fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_704_067_200, 0).unwrap() // Monday 2024-01-01 00:00
}

/// Hourly load with a daily cycle and a weekend dip, deterministic wiggle as noise.
fn load(hour: usize) -> f64 {
    let day = 40.0 * (hour as f64 * TAU / 24.0).sin();
    let weekend = if (hour / 24) % 7 >= 5 { -30.0 } else { 0.0 };
    // Deterministic pseudo-random noise (a multiplicative hash), uniform in [-5, 5).
    let wiggle = 10.0 * ((hour as u64).wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0 - 5.0;
    200.0 + day + weekend + wiggle
}

/// Four samples per hour (every 15 minutes) from `from_hour` to `until_hour`.
fn samples(from_hour: usize, until_hour: usize, value: impl Fn(usize) -> f64) -> Vec<Sample> {
    (from_hour * 4..until_hour * 4)
        .map(|q| Sample {
            at: t0() + TimeDelta::minutes(15 * q as i64),
            value: value(q / 4),
        })
        .collect()
}

#[test]
fn refuses_until_min_history_then_forecasts_the_horizon() {
    let mut forecaster = Forecaster::new(ForecasterConfig::default()).unwrap();
    assert_eq!(
        forecaster.forecast("web", t0()).unwrap_err(),
        NotReady::UnknownSeries
    );
    forecaster.observe("web", &samples(0, 20, load));
    let now = t0() + TimeDelta::hours(20);
    match forecaster.forecast("web", now) {
        Err(NotReady::InsufficientHistory { history, needed }) => {
            assert_eq!(history, TimeDelta::hours(20));
            assert_eq!(needed, TimeDelta::hours(24));
        }
        other => panic!("expected insufficient history, got {other:?}"),
    }
    forecaster.observe("web", &samples(20, 24, load));
    let now = t0() + TimeDelta::hours(24);
    let forecast = forecaster.forecast("web", now).unwrap();
    assert_eq!(forecast.history_steps, 24);
    // From the bucket holding `now` to 48 h ahead.
    assert_eq!(forecast.samples.first().unwrap().at, now);
    assert_eq!(
        forecast.samples.last().unwrap().at,
        now + TimeDelta::hours(48)
    );
    let points = forecaster
        .forecast_points("web", now, |v| v / 10.0)
        .unwrap();
    assert_eq!(points.len(), 49);
    assert!(
        points
            .iter()
            .all(|p| p.upper.unwrap() >= p.instances && p.instances > 0.0)
    );
}

#[test]
fn refits_on_schedule_not_every_call_and_keeps_max_history() {
    let config = ForecasterConfig {
        refresh_interval: TimeDelta::hours(2),
        ..ForecasterConfig::default()
    };
    let mut forecaster = Forecaster::new(config).unwrap();
    forecaster.observe("web", &samples(0, 21 * 24, load));
    let now = t0() + TimeDelta::days(21);
    let first = forecaster.forecast("web", now).unwrap().clone();
    assert_eq!(
        first.history_steps,
        14 * 24,
        "history is capped at max_history"
    );
    assert_eq!(first.seasonality.periods(), vec![24, 168]);
    // More data an hour later: still the cached fit.
    forecaster.observe("web", &samples(21 * 24, 21 * 24 + 1, |_| 10_000.0));
    let later = now + TimeDelta::hours(1);
    assert_eq!(forecaster.forecast("web", later).unwrap().fitted_at, now);
    // Two hours later: refitted.
    let refit_at = now + TimeDelta::hours(2);
    assert_eq!(
        forecaster.forecast("web", refit_at).unwrap().fitted_at,
        refit_at
    );
}

#[test]
fn overlapping_windows_are_not_counted_twice() {
    let mut once = Forecaster::new(ForecasterConfig::default()).unwrap();
    let mut overlapping = Forecaster::new(ForecasterConfig::default()).unwrap();
    once.observe("s", &samples(0, 48, load));
    // Windows of 6 h, every hour: each sample is passed six times.
    for end in 6..=48 {
        overlapping.observe("s", &samples(end - 6, end, load));
    }
    let now = t0() + TimeDelta::hours(48);
    assert_eq!(
        once.forecast("s", now).unwrap().samples,
        overlapping.forecast("s", now).unwrap().samples
    );
}

#[test]
fn accurate_forecast_is_usable() {
    let mut forecaster = Forecaster::new(ForecasterConfig::default()).unwrap();
    forecaster.observe("web", &samples(0, 21 * 24, load));
    let forecast = forecaster
        .forecast("web", t0() + TimeDelta::days(21))
        .unwrap();
    let quality = &forecast.quality;
    let mase = quality.recent_mase.expect("a day can be held back");
    assert!(mase < 1.2, "recent MASE {mase}");
    assert_eq!(quality.level_shift, None);
    assert!(quality.is_usable(), "{:?}", quality.fallback_reason);
}

#[test]
fn level_shift_is_detected_and_explained() {
    let mut forecaster = Forecaster::new(ForecasterConfig::default()).unwrap();
    let shift_at = 21 * 24 - 8;
    // The load doubles 8 hours before `now` (a holiday ending, a migration).
    forecaster.observe(
        "web",
        &samples(0, 21 * 24, |h| {
            if h >= shift_at {
                2.0 * load(h)
            } else {
                load(h)
            }
        }),
    );
    let forecast = forecaster
        .forecast("web", t0() + TimeDelta::days(21))
        .unwrap();
    let shift = forecast.quality.level_shift.expect("a level shift");
    assert!(
        (shift.relative_change - 1.0).abs() < 0.2,
        "relative change {}",
        shift.relative_change
    );
    let reason = forecast.quality.fallback_reason.as_deref().unwrap();
    assert!(reason.contains("level shift"), "{reason}");
    assert!(!forecast.quality.is_usable());

    // A single spike in the window is not a shift.
    let mut forecaster = Forecaster::new(ForecasterConfig::default()).unwrap();
    forecaster.observe(
        "web",
        &samples(0, 21 * 24, |h| {
            if h == 21 * 24 - 3 {
                5.0 * load(h)
            } else {
                load(h)
            }
        }),
    );
    let forecast = forecaster
        .forecast("web", t0() + TimeDelta::days(21))
        .unwrap();
    assert_eq!(forecast.quality.level_shift, None);
}

#[test]
fn gaps_in_observations_are_tolerated() {
    let mut forecaster = Forecaster::new(ForecasterConfig::default()).unwrap();
    // 10 days with a 30 h outage and NaN samples.
    let mut observed = samples(0, 10 * 24, load);
    observed
        .retain(|s| !(s.at >= t0() + TimeDelta::hours(100) && s.at < t0() + TimeDelta::hours(130)));
    for s in observed.iter_mut().step_by(9) {
        s.value = f64::NAN;
    }
    forecaster.observe("web", &observed);
    let forecast = forecaster
        .forecast("web", t0() + TimeDelta::days(10))
        .unwrap();
    assert!(
        forecast
            .samples
            .iter()
            .all(|s| s.value.is_finite() && s.upper >= s.value)
    );
    let next_day: f64 = forecast.samples[..24]
        .iter()
        .enumerate()
        .map(|(h, s)| (s.value - load(10 * 24 + h)).abs())
        .sum::<f64>()
        / 24.0;
    assert!(next_day < 15.0, "mean error over the next day {next_day}");
}

#[test]
fn invalid_settings_are_refused() {
    let config = ForecasterConfig {
        min_history: TimeDelta::days(20),
        ..ForecasterConfig::default()
    };
    assert!(Forecaster::new(config).is_err());
    let mut config = ForecasterConfig::default();
    config.seasonal.upper_quantile = 1.5;
    assert!(Forecaster::new(config).is_err());
}
