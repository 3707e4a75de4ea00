//! The predictive policy in the decision function, on constructed forecasts: it votes the
//! largest need over the buffer window, respects max (or raises it by the bounded buffer), never
//! scales in by itself, abstains in forecast-only mode, falls back with a reason when there is
//! no forecast, and merges with target tracking (the larger wins). Also the policy file checks
//! and the forecaster wrapper the callers use.

use std::path::Path;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hoist_api::MetricKind;
use hoist_api::model::Sample;
use hoist_engine::config::{GroupConfig, PolicyConfig, parse_str};
use hoist_engine::{
    Decision, DecisionMemory, Direction, ForecastPoint, GroupSnapshot, MetricWindows, Observation,
    PredictiveForecast, decide,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
}

fn policy_text(min: u32, max: u32, body: &str) -> String {
    format!(
        "providers:\n  sim:\n    simulated: {{}}\ngroups:\n  - name: web\n    provider: sim\n    min: {min}\n    max: {max}\n{body}"
    )
}

fn group(min: u32, max: u32, body: &str) -> GroupConfig {
    let text = policy_text(min, max, body);
    let doc = parse_str(Path::new("test.yaml"), &text)
        .unwrap_or_else(|e| panic!("test policy is invalid: {e}\n{text}"));
    doc.policy.groups[0].clone()
}

fn snapshot(desired: u32) -> GroupSnapshot {
    GroupSnapshot {
        id: "web".into(),
        desired,
        ready: desired,
        pending: 0,
        provider_min: 0,
        provider_max: 1000,
        instance_class: "m.large".into(),
    }
}

/// Points every 10 minutes from `t0() - 10m`, with the given instances needed.
fn points(values: &[f64]) -> Vec<ForecastPoint> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| ForecastPoint {
            at: t0() + TimeDelta::minutes(10 * i as i64 - 10),
            instances: v,
            upper: Some(v * 1.5),
        })
        .collect()
}

fn utilization(value: f64) -> MetricWindows {
    MetricWindows::from([(
        MetricKind::Utilization,
        vec![Sample {
            at: t0() - TimeDelta::seconds(30),
            value,
        }],
    )])
}

fn run(
    g: &GroupConfig,
    desired: u32,
    metrics: &MetricWindows,
    forecast: Option<&[ForecastPoint]>,
    note: Option<&str>,
) -> Decision {
    let snap = snapshot(desired);
    decide(
        g,
        &Observation {
            now: t0(),
            group: &snap,
            metrics,
            forecast,
            forecast_note: note,
            budget: None,
        },
        &DecisionMemory::new(),
    )
    .0
}

const PREDICTIVE: &str =
    "    policies:\n      - predictive: { metric: request_rate, target: 100, buffer: 20m }\n";

#[test]
fn votes_the_largest_need_within_the_buffer_window() {
    let g = group(1, 100, PREDICTIVE);
    // Buckets at -10m, 0, +10m, +20m, +30m: the window [now, now + 20m] covers 0, +10m, +20m;
    // the bucket at -10m (8.5) ended, the one at +30m (40) is beyond the buffer.
    let f = points(&[8.5, 9.2, 14.3, 12.0, 40.0]);
    let d = run(&g, 5, &MetricWindows::new(), Some(&f), None);
    assert_eq!(d.desired, 15, "{:?}", d.reasons);
    assert_eq!(d.direction, Direction::Out);
    assert_eq!(d.reasons[0].recommended, Some(15));
}

#[test]
fn margin_and_quantile_raise_the_plan() {
    let f = points(&[1.0, 10.0, 10.0, 10.0]);
    let margin = group(
        1,
        100,
        "    policies:\n      - predictive: { metric: request_rate, target: 100, buffer: 10m, margin: 0.25 }\n",
    );
    assert_eq!(
        run(&margin, 2, &MetricWindows::new(), Some(&f), None).desired,
        13
    );
    let upper = group(
        1,
        100,
        "    policies:\n      - predictive: { metric: request_rate, target: 100, buffer: 10m, quantile: 0.9 }\n",
    );
    assert_eq!(
        run(&upper, 2, &MetricWindows::new(), Some(&f), None).desired,
        15
    );
}

#[test]
fn honours_max_or_raises_it_by_the_bounded_buffer() {
    let f = points(&[0.0, 30.0, 30.0]);
    let honour = group(1, 20, PREDICTIVE);
    let d = run(&honour, 10, &MetricWindows::new(), Some(&f), None);
    assert_eq!(d.desired, 20);
    assert!(d.reasons.iter().any(|r| r.source == "guard.max"));

    let raise = group(
        1,
        20,
        "    policies:\n      - predictive: { metric: request_rate, target: 100, buffer: 20m, max_capacity: { raise_by_percent: 10 } }\n",
    );
    let d = run(&raise, 10, &MetricWindows::new(), Some(&f), None);
    assert_eq!(d.desired, 22, "{:?}", d.reasons);
    // A need within the raised max is met exactly.
    let f = points(&[0.0, 21.0]);
    assert_eq!(
        run(&raise, 10, &MetricWindows::new(), Some(&f), None).desired,
        21
    );
}

#[test]
fn never_scales_in_by_itself() {
    let g = group(1, 100, PREDICTIVE);
    let f = points(&[2.0, 3.0, 3.0, 3.0]);
    let d = run(&g, 10, &MetricWindows::new(), Some(&f), None);
    assert_eq!(d.desired, 10);
    assert_eq!(d.direction, Direction::Hold);
    assert_eq!(d.reasons[0].recommended, None);
    assert!(d.reasons[0].message.contains("reactive"), "{:?}", d.reasons);
}

#[test]
fn forecast_only_records_and_abstains() {
    let g = group(
        1,
        100,
        "    policies:\n      - predictive: { metric: request_rate, target: 100, mode: forecast_only }\n",
    );
    let f = points(&[0.0, 30.0, 30.0]);
    let d = run(&g, 5, &MetricWindows::new(), Some(&f), None);
    assert_eq!(d.desired, 5);
    assert!(
        d.reasons[0].message.contains("forecast only") && d.reasons[0].message.contains("→ 30"),
        "{:?}",
        d.reasons
    );
}

#[test]
fn without_a_forecast_it_falls_back_and_says_why() {
    let g = group(1, 100, PREDICTIVE);
    let d = run(
        &g,
        5,
        &MetricWindows::new(),
        None,
        Some("history spans 3.0 h, the forecast needs 24.0 h"),
    );
    assert_eq!(d.desired, 5);
    assert_eq!(
        d.reasons[0].message,
        "falling back to reactive: history spans 3.0 h, the forecast needs 24.0 h"
    );
    let d = run(&g, 5, &MetricWindows::new(), None, None);
    assert!(
        d.reasons[0]
            .message
            .starts_with("falling back to reactive:")
    );
}

const WITH_TT: &str = "    policies:\n      - predictive: { metric: utilization, target: 0.7, buffer: 10m }\n      - target_tracking: { metric: utilization, target: 0.7 }\n";

#[test]
fn merges_with_target_tracking_the_larger_wins() {
    let g = group(1, 100, WITH_TT);
    // Target tracking: 10 at 0.98 / 0.7 → 14. Forecast: 20.
    let f = points(&[0.0, 20.0, 20.0]);
    let d = run(&g, 10, &utilization(0.98), Some(&f), None);
    assert_eq!(d.desired, 20, "{:?}", d.reasons);
    // Forecast 12, target tracking 14: target tracking wins.
    let f = points(&[0.0, 12.0, 12.0]);
    let d = run(&g, 10, &utilization(0.98), Some(&f), None);
    assert_eq!(d.desired, 14, "{:?}", d.reasons);
    // Without a forecast, target tracking alone decides.
    let d = run(&g, 10, &utilization(0.98), None, Some("no history"));
    assert_eq!(d.desired, 14);
}

#[test]
fn a_scale_in_of_target_tracking_stops_at_the_forecast_need() {
    let g = group(1, 100, WITH_TT);
    // Target tracking alone: 20 at 0.2 / 0.7 → 6. The forecast needs 12 within the buffer.
    let f = points(&[0.0, 12.0, 12.0]);
    let d = run(&g, 20, &utilization(0.2), Some(&f), None);
    assert_eq!(d.desired, 12, "{:?}", d.reasons);
    assert_eq!(d.direction, Direction::In);
    assert!(d.reasons.iter().any(|r| r.source == "merge.forecast"));
    // With no forecast, the scale-in goes through.
    let d = run(&g, 20, &utilization(0.2), None, Some("no history"));
    assert_eq!(d.desired, 6);
}

#[test]
fn the_policy_file_checks_predictive_settings() {
    let bad = policy_text(
        1,
        10,
        "    policies:\n      - predictive: { metric: utilization, target: 1.5, history: 12h, min_history: 24h, quantile: 0.3, max_capacity: { raise_by_percent: 0 } }\n      - predictive: { metric: latency_p95, target: 0.2 }\n",
    );
    let err = parse_str(Path::new("p.yaml"), &bad)
        .unwrap_err()
        .to_string();
    for field in [
        "predictive.target",
        "predictive.history",
        "predictive.quantile",
        "raise_by_percent",
        "at most one predictive policy",
        "latency_p95 is not a load",
    ] {
        assert!(err.contains(field), "{field} missing from: {err}");
    }
    let g = group(1, 10, PREDICTIVE);
    let PolicyConfig::Predictive(p) = &g.policies[0] else {
        panic!("not predictive");
    };
    assert_eq!(p.horizon.get().as_secs(), 48 * 3600);
    assert_eq!(p.refresh.get().as_secs(), 6 * 3600);
    assert_eq!(p.fallback_mase, 1.0);
}

#[test]
fn the_forecaster_wrapper_needs_history_then_forecasts_the_cycle() {
    let g = group(1, 100, PREDICTIVE);
    let PolicyConfig::Predictive(p) = &g.policies[0] else {
        panic!("not predictive");
    };
    let mut state = PredictiveForecast::new(p).unwrap();
    let start = t0() - TimeDelta::days(10);
    // A daily cycle with a little deterministic noise (a perfect cycle has no naive error to
    // scale the quality check by).
    let load = |t: DateTime<Utc>| {
        let hour = t.timestamp() as f64 / 3600.0;
        let x = ((t.timestamp() / 3600) as f64 * 12.9898).sin() * 43_758.545;
        let noise = (x - x.floor() - 0.5) * 60.0;
        1000.0 + 600.0 * (2.0 * std::f64::consts::PI * (hour - 14.0) / 24.0).cos() + noise
    };
    // Six hours of history: not enough.
    for m in 0..360 {
        let at = start + TimeDelta::minutes(m);
        state.observe_load(at, load(at), false);
    }
    let early = state.forecast(start + TimeDelta::hours(6));
    assert!(early.points.is_none());
    assert!(early.note.unwrap().contains("needs 24.0 h"));
    for m in 360..(10 * 24 * 60) {
        let at = start + TimeDelta::minutes(m);
        state.observe_load(at, load(at), false);
    }
    let f = state.forecast(t0());
    assert!(f.refreshed);
    let points = f
        .points
        .unwrap_or_else(|| panic!("no usable forecast: {:?}", f.note));
    // In instances (load / 100): the peak at 14:00 needs about 16, the trough about 4.
    let at = |h: i64| {
        points
            .iter()
            .find(|p| p.at == t0() + TimeDelta::hours(h))
            .unwrap()
            .instances
    };
    assert!((at(2) - 16.0).abs() < 1.0, "{}", at(2));
    assert!((at(14) - 4.0).abs() < 1.0, "{}", at(14));
    // Within the refresh interval the fit is reused.
    assert!(!state.forecast(t0() + TimeDelta::minutes(5)).refreshed);
}
