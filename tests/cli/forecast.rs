//! `hoist forecast` and `hoist capacity` on small generated traces: tables, JSON, reports
//! (SVG + Markdown), and exit code 2 with a clear message for bad input.

use std::f64::consts::TAU;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, TimeDelta, Utc};

fn hoist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .output()
        .expect("run hoist")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A trace of `days` days at `step_minutes`, with a daily cycle, a weekend dip, a trend of
/// `growth_per_week` (fraction) and a few missing rows.
fn write_trace(path: &Path, days: usize, step_minutes: i64, growth_per_week: f64) {
    let start = DateTime::<Utc>::from_timestamp(1_704_067_200, 0).unwrap();
    let steps = days * 24 * 60 / step_minutes as usize;
    let mut csv = String::from("timestamp,value\n");
    for i in 0..steps {
        if i % 97 == 13 {
            continue; // a gap
        }
        let at = start + TimeDelta::minutes(step_minutes * i as i64);
        let hours = i as f64 * step_minutes as f64 / 60.0;
        let weekend = if (hours as usize / 24) % 7 >= 5 {
            0.7
        } else {
            1.0
        };
        let growth = 1.0 + growth_per_week * hours / 168.0;
        let noise = ((i as u64).wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0 - 0.5;
        let value =
            growth * weekend * (1000.0 + 400.0 * (hours * TAU / 24.0).sin()) + 300.0 * noise;
        let _ = writeln!(
            csv,
            "{},{value:.3}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    std::fs::write(path, csv).unwrap();
}

#[test]
fn forecast_reports_accuracy_against_seasonal_naive() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("demo.csv");
    write_trace(&trace, 35, 15, 0.0);
    let report = dir.path().join("report");
    let out = hoist(&[
        "forecast",
        "--trace",
        trace.to_str().unwrap(),
        "--output",
        "json",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        json["step_seconds"], 3600,
        "15-minute trace resampled to hourly"
    );
    assert_eq!(json["naive_period_steps"], 168);
    let horizons = json["horizons"].as_array().unwrap();
    assert_eq!(horizons.len(), 2);
    for h in horizons {
        assert!(h["targets"].as_u64().unwrap() > 100);
        let model = h["model"]["mase"].as_f64().unwrap();
        let naive = h["seasonal_naive"]["mase"].as_f64().unwrap();
        assert!(model < naive, "model {model} vs naive {naive}");
        assert!(h["model"]["smape_percent"].as_f64().unwrap() > 0.0);
    }
    let svg = std::fs::read_to_string(report.join("forecast.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("seasonal naive") && svg.contains("<path"));
    let md = std::fs::read_to_string(report.join("forecast.md")).unwrap();
    assert!(md.contains("| 24 h |") && md.contains("forecast.svg"));

    // The Markdown table on stdout, with an explicit test window and the naive model.
    let out = hoist(&[
        "forecast",
        "--trace",
        trace.to_str().unwrap(),
        "--from",
        "2024-01-25T00:00:00Z",
        "--until",
        "2024-02-01T00:00:00Z",
        "--model",
        "seasonal-naive",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("| 1 h | 168 |"), "{text}");
}

#[test]
fn forecast_on_rolling_origins_scores_the_model_and_both_seasonal_naives() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("demo.csv");
    // Five weeks with a weekend dip and growth: last week is too low, yesterday is wrong
    // on Mondays and Saturdays.
    write_trace(&trace, 35, 60, 0.1);
    let out = hoist(&[
        "forecast",
        "--trace",
        trace.to_str().unwrap(),
        "--rolling",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["protocol"], "rolling-origin");
    assert_eq!(json["model"], "auto");
    assert_eq!(json["every_hours"], 24.0);
    assert_eq!(json["horizon_hours"], 48.0);
    assert_eq!(json["history_days"], 14.0);
    // Test part: the last 30 % (10.5 days); an origin a day, each with 48 h after it.
    let origins = json["origins"].as_u64().unwrap();
    assert!((8..=10).contains(&origins), "{origins} origins");
    let model = json["model_scores"]["mase_mean"].as_f64().unwrap();
    let daily = json["daily_naive"]["mase_mean"].as_f64().unwrap();
    let weekly = json["weekly_naive"]["mase_mean"].as_f64().unwrap();
    // Here the model errs about 3 % more than weekly seasonal naive (1.008 against 0.974):
    // the week after the first fortnight has few validation days behind it. Far from the
    // wrong naive, close to the right one.
    assert!(
        model < 0.5 * daily.max(weekly),
        "auto {model}, daily {daily}, weekly {weekly}"
    );
    assert!(
        model <= 1.1 * daily.min(weekly),
        "auto {model}, daily {daily}, weekly {weekly}"
    );
    let chosen = json["chosen"].as_object().unwrap();
    assert!(!chosen.is_empty());

    // The default protocol reports both naives and what `auto` used at each horizon.
    let out = hoist(&["forecast", "--trace", trace.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("MASE daily naive | MASE weekly naive"),
        "{text}"
    );
    assert!(text.contains("`auto` 24 h ahead used:"), "{text}");

    // Too short a trace for a 14-day window: a clear error.
    let short = dir.path().join("short.csv");
    write_trace(&short, 10, 60, 0.0);
    let out = hoist(&["forecast", "--trace", short.to_str().unwrap(), "--rolling"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no origin to score"),
        "{}",
        stderr(&out)
    );
    // --every without --rolling is refused.
    let out = hoist(&[
        "forecast",
        "--trace",
        trace.to_str().unwrap(),
        "--every",
        "12h",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn forecast_rejects_bad_input_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("short.csv");
    write_trace(&trace, 3, 60, 0.0);
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "timestamp,value\n2024-01-01T00:00:00Z,1\n2024-01-01T01:00:00Z,oops\n",
    )
    .unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["forecast", "--trace", "/does/not/exist.csv"],
            "exist.csv",
        ),
        (
            vec!["forecast", "--trace", bad.to_str().unwrap()],
            "bad.csv:3",
        ),
        (
            vec![
                "forecast",
                "--trace",
                trace.to_str().unwrap(),
                "--quantile",
                "1.2",
            ],
            "--quantile",
        ),
        (
            vec![
                "forecast",
                "--trace",
                trace.to_str().unwrap(),
                "--train-fraction",
                "0.999",
            ],
            "split",
        ),
        (
            vec![
                "forecast",
                "--trace",
                trace.to_str().unwrap(),
                "--model",
                "prophet",
            ],
            "prophet",
        ),
        (
            vec![
                "forecast",
                "--trace",
                trace.to_str().unwrap(),
                "--step",
                "90m",
            ],
            "multiple",
        ),
    ];
    for (args, needle) in cases {
        let out = hoist(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn capacity_plans_weeks_ahead_and_finds_the_max() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("group.csv");
    write_trace(&trace, 28, 60, 0.05);
    let report = dir.path().join("report");
    let out = hoist(&[
        "capacity",
        trace.to_str().unwrap(),
        "--work-per-instance",
        "20",
        "--max",
        "90",
        "--quota",
        "5000",
        "--weeks",
        "3",
        "--output",
        "json",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let plan = &json["plan"];
    assert_eq!(plan["days"].as_array().unwrap().len(), 21);
    let relative = plan["trend"]["relative_per_week"].as_f64().unwrap();
    assert!(
        (0.03..0.07).contains(&relative),
        "growth {relative} per week"
    );
    // Peak now ~1400 * 1.2 = 1680 → 84 instances; at +5 %/week the max of 90 comes within weeks.
    assert!(plan["reaches_max_on"].is_string(), "{plan}");
    assert!(plan["reaches_quota_on"].is_null());
    let instances = plan["peak_instances"].as_u64().unwrap();
    assert!((80..130).contains(&instances), "{instances}");
    assert!(
        std::fs::read_to_string(report.join("capacity.svg"))
            .unwrap()
            .contains("max (90 instances)")
    );
    assert!(
        std::fs::read_to_string(report.join("capacity.md"))
            .unwrap()
            .contains("| day |")
    );

    // Markdown, with --trace and --peak-instances.
    let out = hoist(&[
        "capacity",
        "--trace",
        trace.to_str().unwrap(),
        "--peak-instances",
        "50",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("# Capacity plan: group"));
}

#[test]
fn capacity_rejects_bad_input_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("tiny.csv");
    write_trace(&trace, 2, 60, 0.0);
    let path = trace.to_str().unwrap();
    for (args, needle) in [
        (vec!["capacity", path], "at least 3 days"),
        (vec!["capacity", path, "--max", "10"], "--work-per-instance"),
        (
            vec!["capacity", path, "--work-per-instance=-1"],
            "must be in [1e-6",
        ),
        (vec!["capacity", "/does/not/exist.csv"], "exist.csv"),
    ] {
        let out = hoist(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}
