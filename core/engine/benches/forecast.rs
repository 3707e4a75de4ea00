//! Forecast speed: fitting and forecasting 14 days of hourly history for one series (target:
//! under 5 ms in a release build), and refreshing 10,000 series through a `Forecaster` (target:
//! under 60 s on a 2-core machine), measured in full once and printed.

use std::f64::consts::TAU;
use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use hoist_engine::forecast::{
    Forecaster, ForecasterConfig, ModelKind, SeasonalModelConfig, fit_and_forecast,
};

fn series(hours: usize, seed: u64) -> Vec<Option<f64>> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..hours)
        .map(|t| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            let weekend = if (t / 24) % 7 >= 5 { 0.7 } else { 1.0 };
            Some(weekend * (1000.0 + 400.0 * (t as f64 * TAU / 24.0).sin()) + 100.0 * noise)
        })
        .collect()
}

fn one_series(c: &mut Criterion) {
    let history = series(14 * 24, 1);
    let config = SeasonalModelConfig::default();
    c.bench_function("fit+forecast 14 d hourly, 48 h horizon", |b| {
        b.iter(|| {
            fit_and_forecast(
                ModelKind::Seasonal,
                black_box(&history),
                TimeDelta::hours(1),
                &config,
                49,
            )
        })
    });
    let start = DateTime::<Utc>::from_timestamp(1_704_067_200, 0).unwrap();
    let now = start + TimeDelta::days(14);
    c.bench_function("Forecaster refit with quality check, 14 d hourly", |b| {
        let mut forecaster = Forecaster::new(ForecasterConfig {
            refresh_interval: TimeDelta::zero(),
            ..ForecasterConfig::default()
        })
        .unwrap();
        forecaster.load_history("s", start, &history);
        b.iter(|| {
            forecaster
                .forecast("s", now)
                .map(|f| f.samples.len())
                .unwrap_or(0)
        })
    });
}

/// Refreshes 10,000 series once (all of them, not a sample), single-threaded, and prints the
/// time. Criterion is not used: one full pass is the measurement.
fn ten_thousand_series(_c: &mut Criterion) {
    let count = 10_000;
    let start = DateTime::<Utc>::from_timestamp(1_704_067_200, 0).unwrap();
    let now = start + TimeDelta::days(14);
    let mut forecaster = Forecaster::new(ForecasterConfig::default()).unwrap();
    for i in 0..count {
        forecaster.load_history(&format!("group-{i}"), start, &series(14 * 24, i as u64));
    }
    let began = Instant::now();
    let mut usable = 0usize;
    for i in 0..count {
        if forecaster
            .forecast(&format!("group-{i}"), now)
            .is_ok_and(|f| f.quality.is_usable())
        {
            usable += 1;
        }
    }
    let elapsed = began.elapsed();
    println!(
        "refresh {count} series (14 d hourly, 48 h horizon, with quality check): {:.2} s, {:.3} ms per series, {usable} usable",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / count as f64
    );
}

criterion_group!(benches, one_series, ten_thousand_series);
criterion_main!(benches);
