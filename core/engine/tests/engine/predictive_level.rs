//! The predictive policy's level correction: the forecast is scaled by the load measured in the
//! last minutes, so a load that drops below the cycle (a holiday) is planned at its new level; a
//! saturated measurement never lowers the plan; a load that steps at the hour is planned at the
//! next hour's level before the hour; a series without a cycle falls back to reactive.

use std::path::Path;

use chrono::{DateTime, TimeDelta, TimeZone, Timelike, Utc};
use hoist_api::model::Sample;
use hoist_engine::config::{PolicyConfig, Predictive, parse_str};
use hoist_engine::{ForecastInput, PredictiveForecast};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 12, 12, 0, 0).unwrap()
}

fn predictive(body: &str) -> Predictive {
    let text = format!(
        "providers:\n  sim:\n    simulated: {{}}\ngroups:\n  - name: web\n    provider: sim\n    min: 1\n    max: 1000\n    policies:\n      - predictive: {{ {body} }}\n"
    );
    let doc = parse_str(Path::new("test.yaml"), &text).unwrap();
    match &doc.policy.groups[0].policies[0] {
        PolicyConfig::Predictive(p) => p.clone(),
        other => panic!("not predictive: {other:?}"),
    }
}

/// Deterministic noise in [-0.5, 0.5).
fn noise(i: i64) -> f64 {
    let x = (i as f64 * 12.9898).sin() * 43_758.545;
    x - x.floor() - 0.5
}

/// A daily cycle peaking at 14:00, with ±2 % noise per hour.
fn cycle(t: DateTime<Utc>) -> f64 {
    let hour = t.timestamp() as f64 / 3600.0;
    let base = 1000.0 + 600.0 * (2.0 * std::f64::consts::PI * (hour - 14.0) / 24.0).cos();
    base * (1.0 + 0.04 * noise(t.timestamp() / 3600))
}

/// Feeds one sample a minute from `from` (inclusive) to `until` (exclusive).
fn feed(
    state: &mut PredictiveForecast,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    load: impl Fn(DateTime<Utc>) -> f64,
) {
    let mut at = from;
    while at < until {
        state.observe_load(at, load(at), false);
        at += TimeDelta::minutes(1);
    }
}

fn usable(input: &ForecastInput) -> &[hoist_engine::ForecastPoint] {
    input
        .points
        .as_deref()
        .unwrap_or_else(|| panic!("no usable forecast: {:?}", input.note))
}

/// The plan at `now`: instances needed at the first point.
fn now_point(input: &ForecastInput) -> f64 {
    usable(input)[0].instances
}

#[test]
fn a_drop_below_the_cycle_is_planned_at_the_new_level() {
    let holiday = |t: DateTime<Utc>| {
        if t >= t0() - TimeDelta::hours(3) {
            0.7 * cycle(t)
        } else {
            cycle(t)
        }
    };
    let start = t0() - TimeDelta::days(10);
    let mut tracking = PredictiveForecast::new(&predictive(
        "metric: request_rate, target: 100, buffer: 10m",
    ))
    .unwrap();
    let mut plain = PredictiveForecast::new(&predictive(
        "metric: request_rate, target: 100, buffer: 10m, track_level: false",
    ))
    .unwrap();
    // Fitted before the drop, as a scheduled refit would have been.
    feed(&mut tracking, start, t0() - TimeDelta::hours(4), holiday);
    feed(&mut plain, start, t0() - TimeDelta::hours(4), holiday);
    tracking.forecast(t0() - TimeDelta::hours(4));
    plain.forecast(t0() - TimeDelta::hours(4));
    feed(&mut tracking, t0() - TimeDelta::hours(4), t0(), holiday);
    feed(&mut plain, t0() - TimeDelta::hours(4), t0(), holiday);

    let tracked = tracking.forecast(t0());
    assert!(!tracked.refreshed, "the fit is reused within its refresh");
    let ratio = tracked.level_ratio.expect("a level correction");
    assert!((ratio.latest - 0.7).abs() < 0.05, "{ratio:?}");
    let expected = 0.7 * cycle(t0()) / 100.0;
    let got = now_point(&tracked);
    assert!(
        (got - expected).abs() < 0.06 * expected,
        "planned {got:.2} instances, the load needs {expected:.2}"
    );
    assert!(
        tracked
            .note
            .as_deref()
            .unwrap_or("")
            .contains("level corrected"),
        "{:?}",
        tracked.note
    );

    // Without the correction the plan stays at the old level, about 1 / 0.7 too high.
    let untracked = plain.forecast(t0());
    assert!(untracked.level_ratio.is_none());
    let high = now_point(&untracked);
    assert!(high > 1.3 * expected, "{high:.2} vs {expected:.2}");
}

#[test]
fn a_saturated_measurement_never_lowers_the_plan_below_the_forecast() {
    let p = predictive("metric: utilization, target: 0.9, buffer: 10m");
    let mut state = PredictiveForecast::new(&p).unwrap();
    let start = t0() - TimeDelta::days(10);
    // Utilisation 0.5 on 2 × busy instances: busy = cycle / 100.
    let mut at = start;
    while at < t0() - TimeDelta::minutes(10) {
        let busy = cycle(at) / 100.0;
        state.observe(&[Sample { at, value: 0.5 }], |_| 2.0 * busy);
        at += TimeDelta::minutes(1);
    }
    let before = state.forecast(t0() - TimeDelta::minutes(10));
    let planned_before = now_point(&before);
    // Ten minutes at 100 % on a third of the capacity needed: the load behind it is unknown.
    while at < t0() {
        let busy = cycle(at) / 100.0;
        state.observe(&[Sample { at, value: 1.0 }], |_| busy / 3.0);
        at += TimeDelta::minutes(1);
    }
    let after = state.forecast(t0());
    let ratio = after.level_ratio.expect("a level correction");
    assert!(ratio.latest >= 1.0, "{ratio:?}");
    let forecast_only = cycle(t0()) / 100.0 / 0.9;
    assert!(
        now_point(&after) >= 0.97 * forecast_only,
        "planned {:.2}, the forecast alone needs {forecast_only:.2} (before saturation {planned_before:.2})",
        now_point(&after)
    );
}

#[test]
fn a_load_that_steps_at_the_hour_is_planned_at_the_next_hour_before_the_hour() {
    // Constant within each hour (an hourly trace), with a cycle across hours.
    let stepped = |t: DateTime<Utc>| {
        let hour_start = t - TimeDelta::minutes(i64::from(t.minute()));
        cycle(hour_start + TimeDelta::minutes(30))
    };
    let p = predictive("metric: request_rate, target: 100, buffer: 10m");
    let mut state = PredictiveForecast::new(&p).unwrap();
    // 07:55, on the morning ramp: each hour is well above the one before.
    let now = Utc.with_ymd_and_hms(2026, 3, 12, 7, 55, 0).unwrap();
    feed(&mut state, now - TimeDelta::days(10), now, stepped);
    let input = state.forecast(now);
    let window_max = usable(&input)
        .iter()
        .filter(|p| p.at <= now + TimeDelta::minutes(10))
        .map(|p| p.instances)
        .fold(0.0, f64::max);
    let next_hour = stepped(now + TimeDelta::minutes(10)) / 100.0;
    let this_hour = stepped(now) / 100.0;
    assert!(next_hour > 1.05 * this_hour, "the test needs a ramp");
    assert!(
        window_max >= 0.97 * next_hour,
        "planned {window_max:.2} before 08:00, 08:00 needs {next_hour:.2} (07:00 needed {this_hour:.2})"
    );
}

#[test]
fn a_series_without_a_cycle_falls_back_to_reactive_and_says_why() {
    let p = predictive("metric: request_rate, target: 100, buffer: 10m");
    let mut state = PredictiveForecast::new(&p).unwrap();
    let flat = |t: DateTime<Utc>| 1000.0 * (1.0 + 0.5 * noise(t.timestamp() / 60));
    feed(&mut state, t0() - TimeDelta::days(10), t0(), flat);
    let input = state.forecast(t0());
    assert!(input.points.is_none(), "{:?}", input.points);
    let note = input.note.unwrap_or_default();
    assert!(note.contains("no daily or weekly cycle"), "{note}");
}

/// The upper bound the plan uses at `now`.
fn now_upper(input: &ForecastInput) -> f64 {
    usable(input)[0].upper.expect("an upper bound")
}

/// A policy planning for the 90th percentile, fitted two hours before `t0()` on ten days of
/// `load`, then fed `load` up to `until` without a refit.
fn fitted_and_fed(
    load: impl Fn(DateTime<Utc>) -> f64 + Copy,
    until: DateTime<Utc>,
) -> PredictiveForecast {
    let p = predictive("metric: request_rate, target: 100, buffer: 10m, quantile: 0.9");
    let mut state = PredictiveForecast::new(&p).unwrap();
    let fit_at = t0() - TimeDelta::hours(2);
    feed(&mut state, t0() - TimeDelta::days(10), fit_at, load);
    state.forecast(fit_at);
    feed(&mut state, fit_at, until, load);
    state
}

/// The cycle × `factor` from 40 to 15 minutes before `t0()`.
fn burst(factor: f64) -> impl Fn(DateTime<Utc>) -> f64 + Copy {
    move |t| {
        let during = t >= t0() - TimeDelta::minutes(40) && t < t0() - TimeDelta::minutes(15);
        if during { factor * cycle(t) } else { cycle(t) }
    }
}

#[test]
fn the_upper_bound_follows_a_flash_crowd_and_lets_go_once_it_ends() {
    let load = burst(3.5);
    let mut state = fitted_and_fed(load, t0() - TimeDelta::minutes(20));
    let normal = cycle(t0()) / 100.0;

    // Twenty minutes into the crowd, the plan covers it.
    let during = state.forecast(t0() - TimeDelta::minutes(20));
    assert!(
        now_upper(&during) >= 3.0 * normal,
        "planned {:.2} during the crowd, the normal load needs {normal:.2}",
        now_upper(&during)
    );

    // Fifteen minutes after it ended, most of the last hour was still the crowd: an hour's
    // quantile would keep planning for it, but the level fell by more than the break factor.
    feed(&mut state, t0() - TimeDelta::minutes(20), t0(), load);
    let upper = now_upper(&state.forecast(t0()));
    assert!(
        upper < 1.3 * normal,
        "planned {upper:.2} after the crowd, the load needs {normal:.2}"
    );
    assert!(
        upper >= 0.95 * normal,
        "planned {upper:.2}, needs {normal:.2}"
    );
}

#[test]
fn a_swing_smaller_than_a_break_keeps_the_hours_headroom() {
    // Twenty-five minutes at 1.5 × the cycle, then back: a swing, not a break. The plan keeps
    // the hour's upper quantile, so a load that swings like this again is covered.
    let mut state = fitted_and_fed(burst(1.5), t0());
    let normal = cycle(t0()) / 100.0;
    let upper = now_upper(&state.forecast(t0()));
    assert!(
        upper >= 1.4 * normal,
        "planned {upper:.2}; the hour swung to {:.2}",
        1.5 * normal
    );
}

#[test]
fn a_load_that_stops_lowers_the_upper_bound_within_minutes() {
    // The service stops receiving traffic (an outage upstream): after a few minutes of zero
    // load the plan no longer holds the hour's headroom.
    let stop = t0() - TimeDelta::minutes(6);
    let mut state = fitted_and_fed(move |t| if t >= stop { 0.0 } else { cycle(t) }, t0());
    let normal = cycle(t0()) / 100.0;
    let upper = now_upper(&state.forecast(t0()));
    assert!(
        upper <= 0.3 * normal,
        "planned {upper:.2} six minutes into an outage; the cycle needs {normal:.2}"
    );
}
