//! `hoist trace generate`: the standard suite and single specs written as traces that
//! `hoist simulate` and `hoist evaluate` read, and bad specs refused naming the file and field.

use std::path::Path;
use std::process::{Command, Output};

fn hoist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .output()
        .expect("run hoist")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

const SPEC: &str = "\
name: shop
days: 28
base: 400
daily: {harmonics: [{order: 1, amplitude: 0.6, peak_hour: 20}]}
weekly: {weekend_factor: 1.3}
level_shifts: [{at: 21d, factor: 0.6, duration: 3d}]
flash_crowds: [{at: 14d19h, onset: 5m, peak: 6, hold: 20m, duration: 2h}]
outages: [{at: 10d3h, duration: 2h}]
noise: {poisson: {counts_per_unit: 1}}
seed: 7
";

#[test]
fn the_standard_suite_is_written_with_its_index_and_evaluate_reads_a_trace() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite");
    let out = hoist(&[
        "trace",
        "generate",
        "--suite",
        "standard",
        "--out",
        path(&suite),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(suite.join("suite.json")).unwrap()).unwrap();
    assert_eq!(index["suite"], "standard");
    let traces = index["traces"].as_array().unwrap();
    assert!(traces.len() >= 12, "{} traces", traces.len());
    let mut one_minute = 0;
    for t in traces {
        let file = suite.join(t["file"].as_str().unwrap());
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("timestamp,value\n2024-01-01T00:00:00Z,"));
        assert_eq!(
            text.lines().count() - 1,
            t["rows"].as_u64().unwrap() as usize
        );
        let spec = &t["spec"];
        assert!(spec["days"].as_u64().unwrap() >= 28, "{}", t["name"]);
        assert!(spec["base"].as_f64().unwrap() > 0.0);
        if spec["step_minutes"] == 1 {
            one_minute += 1;
        }
    }
    assert!(one_minute >= 1);
    let gaps = traces.iter().find(|t| t["name"] == "outages-gaps").unwrap();
    assert!(gaps["gaps"].as_u64().unwrap() > 300, "{gaps}");

    // The same command writes the same bytes.
    let again = dir.path().join("again");
    let out = hoist(&[
        "trace",
        "generate",
        "--suite",
        "standard",
        "--out",
        path(&again),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for t in traces {
        let name = t["file"].as_str().unwrap();
        assert!(
            std::fs::read(suite.join(name)).unwrap() == std::fs::read(again.join(name)).unwrap(),
            "{name} differs between two runs"
        );
    }

    // `hoist evaluate` reads a generated trace (a folder holding one, to keep the run short).
    let one = dir.path().join("one");
    std::fs::create_dir(&one).unwrap();
    std::fs::copy(
        suite.join("daily-single-peak.csv"),
        one.join("daily-single-peak.csv"),
    )
    .unwrap();
    let json = dir.path().join("evaluate.json");
    let out = hoist(&[
        "evaluate",
        "--traces",
        path(&one),
        "--test-fraction",
        "0.2",
        "--peak-instances",
        "20",
        "--json",
        path(&json),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let trace = &report["traces"][0];
    assert_eq!(trace["trace"], "daily-single-peak");
    assert_eq!(trace["step_seconds"], 300);
    assert_eq!(trace["steps"], 35 * 288 / 5, "the last 20 % is scored");

    // `hoist simulate` reads one with gaps and zero outages.
    let out = hoist(&[
        "simulate",
        "--trace",
        path(&suite.join("outages-gaps.csv")),
        "--policy",
        "hpa",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(result["cost_ratio_o1"].as_f64().unwrap() >= 1.0, "{result}");
}

#[test]
fn a_spec_file_gives_one_trace_and_the_seed_can_be_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("shop.yml");
    std::fs::write(&spec, SPEC).unwrap();
    let csv = dir.path().join("out/shop.csv");
    let out = hoist(&[
        "trace",
        "generate",
        "--spec",
        path(&spec),
        "--out",
        path(&csv),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&csv).unwrap();
    // 28 days of 5-minute steps, less the 2 h gap.
    assert_eq!(text.lines().count() - 1, 28 * 288 - 24);
    assert!(!text.contains("2024-01-11T03:00:00Z"), "the gap is absent");
    assert!(text.contains("2024-01-11T05:00:00Z"));

    // A folder as --out gets <name>.csv; the same spec gives the same file.
    let out = hoist(&[
        "trace",
        "generate",
        "--spec",
        path(&spec),
        "--out",
        path(dir.path()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("shop.csv")).unwrap(),
        text
    );

    // JSON specs too; --seed changes the noise, not the shape.
    let json = dir.path().join("shop.json");
    std::fs::write(
        &json,
        r#"{"name": "shop", "days": 28, "base": 400, "noise": {"poisson": {"counts_per_unit": 1}}}"#,
    )
    .unwrap();
    let a = dir.path().join("a.csv");
    let b = dir.path().join("b.csv");
    for (file, seed) in [(&a, "1"), (&b, "2")] {
        let out = hoist(&[
            "trace",
            "generate",
            "--spec",
            path(&json),
            "--out",
            path(file),
            "--seed",
            seed,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (a, b) = (
        std::fs::read_to_string(&a).unwrap(),
        std::fs::read_to_string(&b).unwrap(),
    );
    assert_ne!(a, b);
    assert_eq!(a.lines().count(), b.lines().count());
}

#[test]
fn bad_specs_are_refused_with_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let out_csv = dir.path().join("x.csv");
    let refuse = |name: &str, text: &str, expected: &[&str]| {
        let spec = dir.path().join(name);
        std::fs::write(&spec, text).unwrap();
        let out = hoist(&[
            "trace",
            "generate",
            "--spec",
            path(&spec),
            "--out",
            path(&out_csv),
        ]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(name), "{name}: {err}");
        for e in expected {
            assert!(err.contains(e), "{name}: expected {e:?} in {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    };
    refuse(
        "crowd.yml",
        &SPEC.replace("peak: 6", "peak: 0.5"),
        &["flash_crowds[0].peak", "[1, 1000]"],
    );
    refuse(
        "days.yml",
        &SPEC.replace("days: 28", "days: 99999999"),
        &["days", "730"],
    );
    refuse(
        "step.yml",
        &format!("{SPEC}step_minutes: 7\n"),
        &["step_minutes"],
    );
    refuse(
        "rate.json",
        r#"{"name": "x", "days": 7, "base": 1, "noise": {"poisson": {"counts_per_unit": -1}}}"#,
        &["noise.poisson.counts_per_unit"],
    );
    refuse(
        "huge.json",
        r#"{"name": "x", "days": 7, "base": 1e400}"#,
        &["huge.json"],
    );
    refuse(
        "unknown.yml",
        &format!("{SPEC}amplitude: 3\n"),
        &["amplitude"],
    );
    refuse(
        "duration.yml",
        &SPEC.replace("onset: 5m", "onset: 5"),
        &["missing unit"],
    );
    refuse(
        "gap.yml",
        &SPEC.replace("at: 10d3h, duration: 2h", "at: 0s, duration: 2h"),
        &["outages[0]"],
    );

    let out = hoist(&[
        "trace",
        "generate",
        "--suite",
        "nonesuch",
        "--out",
        path(dir.path()),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("standard"), "{}", stderr(&out));
    let out = hoist(&["trace", "generate", "--out", path(dir.path())]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_help_describes_every_field_and_the_guide_lists_the_suite() {
    let out = hoist(&["trace", "generate", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for field in [
        "name",
        "description",
        "start",
        "days",
        "step_minutes",
        "base",
        "harmonics",
        "hourly",
        "weekend_factor",
        "profile",
        "trend_per_week",
        "level_shifts",
        "ramp",
        "flash_crowds",
        "onset",
        "hold",
        "outages",
        "missing",
        "zero",
        "random_walk",
        "sd_per_hour",
        "reversion_per_day",
        "counts_per_unit",
        "seed",
    ] {
        assert!(help.contains(field), "--help does not mention {field}");
    }

    let guide =
        std::fs::read_to_string(crate::policy::root().join("docs/guides/generated-traces.md"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = hoist(&[
        "trace",
        "generate",
        "--suite",
        "standard",
        "--out",
        path(dir.path()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("suite.json")).unwrap())
            .unwrap();
    for t in index["traces"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        assert!(
            guide.contains(&format!("`{name}`")),
            "the guide does not list {name}"
        );
    }
}
