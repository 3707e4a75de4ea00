//! `hoist simulate` and `hoist evaluate` as a user runs them, on traces the tests write.

use std::path::Path;
use std::process::Command;

fn hoist() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
}

/// A policy file for one simulated group `web` with these policies (YAML list items).
fn policy_file(dir: &Path, policies: &str) -> std::path::PathBuf {
    let path = dir.join("web.yaml");
    std::fs::write(
        &path,
        format!(
            "providers:\n  sim:\n    simulated: {{}}\nrun:\n  interval: 1m\ngroups:\n  - name: web\n    provider: sim\n    min: 2\n    max: 300\n    policies:\n{policies}"
        ),
    )
    .unwrap();
    path
}

/// `hoist simulate --trace TRACE --policy POLICY --output json`, which must succeed.
fn simulate_json(trace: &Path, policy: impl AsRef<std::ffi::OsStr>) -> serde_json::Value {
    let out = hoist()
        .args(["simulate", "--trace"])
        .arg(trace)
        .arg("--policy")
        .arg(policy)
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn write_trace(dir: &Path, name: &str, minutes: usize) -> std::path::PathBuf {
    let mut text = String::from("timestamp,value\n");
    for i in 0..minutes {
        let v = 50.0 + 40.0 * ((i as f64) / 60.0).sin() + if i % 97 == 0 { 30.0 } else { 0.0 };
        let h = i / 60;
        let m = i % 60;
        text.push_str(&format!(
            "2024-01-{:02}T{:02}:{m:02}:00Z,{v}\n",
            1 + h / 24,
            h % 24
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_builtin_prints_the_json_keys() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write_trace(dir.path(), "wave.csv", 600);
    for policy in [
        "o1",
        "o2",
        "static-peak",
        "static-mean",
        "hpa",
        "target-tracking",
    ] {
        let v = simulate_json(&trace, policy);
        for key in [
            "theta_u",
            "theta_o",
            "tau_u",
            "tau_o",
            "jitter",
            "under_instance_hours",
            "over_instance_hours",
            "cost",
            "cost_ratio_o1",
            "cost_ratio_o2",
            "actions",
        ] {
            assert!(v[key].is_number(), "{policy}: {key} missing");
        }
        assert_eq!(v["parameters"]["peak_instances"], 100);
        assert_eq!(v["parameters"]["boot_delay_seconds"], 120);
        match policy {
            "o1" => {
                assert_eq!(v["tau_u"], 0.0);
                assert_eq!(v["cost_ratio_o1"], 1.0);
            }
            "o2" | "static-peak" => {
                assert_eq!(v["tau_u"], 0.0);
                assert!(v["cost_ratio_o1"].as_f64().unwrap() >= 1.0);
            }
            _ => {}
        }
    }
}

#[test]
fn bad_input_exits_2_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "timestamp,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:01:00Z,abc\n",
    )
    .unwrap();
    let out = hoist()
        .args(["simulate", "--trace"])
        .arg(&bad)
        .args(["--policy", "hpa"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv:3"), "{err}");
    let good = write_trace(dir.path(), "ok.csv", 30);
    let out = hoist()
        .args(["simulate", "--trace"])
        .arg(&good)
        .args(["--policy", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = hoist()
        .args(["simulate", "--trace"])
        .arg(&good)
        .args(["--policy", "hpa", "--target", "1.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn report_writes_a_chart_a_summary_and_the_series() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write_trace(dir.path(), "wave.csv", 300);
    let report = dir.path().join("report");
    let out = hoist()
        .args(["simulate", "--trace"])
        .arg(&trace)
        .args(["--policy", "target-tracking", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(report.join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline") && svg.contains("instances"));
    let md = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(md.contains("hoist simulate --trace") && md.contains("cost ratio to O1"));
    // The series behind the chart: one row per scored step, in order, with the demand in
    // instances and what the controller had ready and asked for.
    let csv = std::fs::read_to_string(report.join("series.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("timestamp,demand,needed,ready,desired,forecast")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 300);
    assert_eq!(rows[0][0], "2024-01-01T00:00:00Z");
    assert_eq!(rows[299][0], "2024-01-01T04:59:00Z");
    for row in &rows {
        assert_eq!(row.len(), 6, "{row:?}");
        let demand: f64 = row[1].parse().unwrap();
        let needed: u32 = row[2].parse().unwrap();
        let ready: u32 = row[3].parse().unwrap();
        let desired: u32 = row[4].parse().unwrap();
        assert_eq!(needed, demand.ceil() as u32, "{row:?}");
        assert!(ready <= desired, "{row:?}");
        assert_eq!(row[5], "", "target tracking has no forecast: {row:?}");
    }
    // Target tracking follows the wave: what it asks for changes over the five hours.
    let asked: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[4]).collect();
    assert!(asked.len() > 3, "{asked:?}");
}

#[test]
fn a_policy_file_goes_through_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write_trace(dir.path(), "wave.csv", 600);
    let policy = policy_file(
        dir.path(),
        "      - target_tracking: { metric: utilization, target: 0.6 }\n",
    );
    let v = simulate_json(&trace, &policy);
    assert!(v["actions"].as_u64().unwrap() > 0, "the engine scaled: {v}");
}

#[test]
fn evaluate_writes_tables_and_frontier_charts() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir(&traces).unwrap();
    write_trace(&traces, "a.csv", 400);
    write_trace(&traces, "b.csv", 300);
    std::fs::write(
        traces.join("panel.csv"),
        "timestamp,vm,cores\n2024-01-01T00:00:00Z,1,2\n",
    )
    .unwrap();
    let md = dir.path().join("out.md");
    let json = dir.path().join("out.json");
    let out = hoist()
        .args(["evaluate", "--traces"])
        .arg(&traces)
        .arg("--markdown")
        .arg(&md)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(
        text.contains("### a") && text.contains("### b") && text.contains("Skipped `panel.csv`")
    );
    assert!(dir.path().join("out-charts/a-frontier.svg").exists());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["traces"].as_array().unwrap().len(), 2);
}

#[test]
fn a_predictive_policy_says_what_its_forecast_was() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write_trace(dir.path(), "wave.csv", 600);
    let policy = policy_file(
        dir.path(),
        "      - predictive: { metric: utilization, target: 0.7 }\n      - target_tracking: { metric: utilization, target: 0.7 }\n",
    );
    let v = simulate_json(&trace, &policy);
    let uses = v["forecast_use"].as_array().unwrap();
    let total: u64 = uses
        .iter()
        .map(|u| u["evaluations"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 600, "{uses:?}");
    // Ten hours of history: never enough for a forecast.
    assert!(
        uses.iter()
            .all(|u| u["what"].as_str().unwrap().starts_with("fell back: ")),
        "{uses:?}"
    );

    let out = hoist()
        .args(["simulate", "--trace"])
        .arg(&trace)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Predictive policy over 600 scored evaluations:"),
        "{text}"
    );
    // A baseline has no forecast to account for.
    let v = simulate_json(&trace, "hpa");
    assert_eq!(v["forecast_use"], serde_json::json!([]));
}

#[test]
fn a_budget_holds_in_a_replay_and_its_spend_is_the_bill() {
    let dir = tempfile::tempdir().unwrap();
    // Four days of minutes; the budget is a day long, at 85 % of what the HPA spends.
    let trace = write_trace(dir.path(), "t.csv", 4 * 24 * 60);
    let policy = policy_file(
        dir.path(),
        "      - target_tracking: { metric: utilization, target: 0.7 }\n",
    );
    let out = hoist()
        .args(["simulate", "--trace"])
        .arg(&trace)
        .arg("--policy")
        .arg(&policy)
        .args([
            "--warmup",
            "0s",
            "--budget",
            "85%",
            "--budget-period",
            "daily",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let budget = &v["budget"];
    let periods = budget["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 4, "{budget}");
    let spent: f64 = periods.iter().map(|p| p["spent"].as_f64().unwrap()).sum();
    let cost = v["cost"].as_f64().unwrap();
    assert!(
        (spent - cost).abs() < 1e-6 * cost.max(1.0),
        "{spent} against {cost}"
    );
    for p in periods {
        let (b, s) = (p["budget"].as_f64().unwrap(), p["spent"].as_f64().unwrap());
        assert!(b > 0.0 && s > 0.0, "{p}");
        assert_eq!(p["held"].as_bool().unwrap(), s <= b + 0.01, "{p}");
    }
    // The budget cut the bill: against the same replay without it, and to within a few per
    // cent of the budgets in all (daily budgets on a load with a six-hour cycle and spikes can
    // end a day a few per cent over: the forecast has no daily shape to follow).
    let out = hoist()
        .args(["simulate", "--trace"])
        .arg(&trace)
        .arg("--policy")
        .arg(&policy)
        .args(["--warmup", "0s", "--output", "json"])
        .output()
        .unwrap();
    let plain: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let unbudgeted = plain["cost"].as_f64().unwrap();
    let budgets: f64 = periods.iter().map(|p| p["budget"].as_f64().unwrap()).sum();
    assert!(
        cost < 0.95 * unbudgeted,
        "{cost} with the budget, {unbudgeted} without"
    );
    assert!(
        cost < 1.05 * budgets,
        "{cost} spent against {budgets} budgeted"
    );

    // Without a policy file there is nothing for a budget to steer.
    let out = hoist()
        .args(["simulate", "--trace"])
        .arg(&trace)
        .args(["--policy", "hpa", "--budget", "85%"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policy file"));
}

/// Like with like: without bounds on the command line, the baselines and oracles run under the
/// policy group's `min` and `max`; with them, every controller (the policy too) runs under
/// them; policy files with different bounds need them.
#[test]
fn every_controller_is_scored_under_the_same_bounds_and_the_report_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write_trace(dir.path(), "wave.csv", 600);
    let policy = policy_file(
        dir.path(),
        "      - target_tracking: { metric: utilization, target: 0.6 }\n",
    );
    let v = simulate_json(&trace, &policy);
    let p = &v["parameters"];
    assert_eq!(
        (p["min_instances"].as_u64(), p["max_instances"].as_u64()),
        (Some(2), Some(300)),
        "{p}"
    );
    assert!(
        p["bounds_source"]
            .as_str()
            .unwrap()
            .contains("policy group"),
        "{p}"
    );

    let out = hoist()
        .args(["simulate", "--trace"])
        .arg(&trace)
        .arg("--policy")
        .arg(&policy)
        .args([
            "--output",
            "json",
            "--min-instances",
            "1",
            "--max-instances",
            "3",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["parameters"];
    assert_eq!(
        (p["min_instances"].as_u64(), p["max_instances"].as_u64()),
        (Some(1), Some(3)),
        "{p}"
    );
    assert!(
        p["bounds_source"].as_str().unwrap().contains("groups too"),
        "{p}"
    );
    // The policy's own max (300) no longer applies: it pays for at most 3 instances (0.10 an
    // instance-hour), and O2, under the same bounds, costs the same.
    let hours = v["scored_hours"].as_f64().unwrap();
    assert!(
        v["cost"].as_f64().unwrap() <= 3.0 * 0.10 * hours + 1e-9,
        "{v}"
    );
    assert!(
        (v["cost_ratio_o2"].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "{v}"
    );

    // Two policy files with different bounds: the command asks for explicit ones.
    let other = dir.path().join("other.yaml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&policy)
            .unwrap()
            .replace("min: 2", "min: 4"),
    )
    .unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir(&traces).unwrap();
    std::fs::copy(&trace, traces.join("wave.csv")).unwrap();
    let out = hoist()
        .args(["evaluate", "--traces"])
        .arg(&traces)
        .arg("--policy")
        .arg(&policy)
        .arg("--policy")
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("different bounds") && stderr.contains("--min-instances"),
        "{stderr}"
    );
}
