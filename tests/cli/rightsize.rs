//! `hoist rightsize` as a user runs it, on small panels the tests write.

use std::path::{Path, PathBuf};
use std::process::Command;

fn hoist() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
}

/// `days` days of 5-minute rows from midnight on the first of the month, after `header`:
/// `row(day, minute of the day)` gives each row after its timestamp; lines end with `eol`.
fn panel_text(
    header: &str,
    (year, month): (u32, u32),
    days: u32,
    eol: &str,
    mut row: impl FnMut(u32, u32) -> String,
) -> String {
    let mut text = format!("{header}{eol}");
    for step in 0..days * 288 {
        let (day, minute) = (step / 288, (step % 288) * 5);
        text.push_str(&format!(
            "{year}-{month:02}-{:02}T{:02}:{:02}:00Z,{}{eol}",
            1 + day,
            minute / 60,
            minute % 60,
            row(day, minute)
        ));
    }
    text
}

const GENERIC_HEADER: &str = "timestamp,vm,cpu_used,cpu_capacity,mem_used,mem_capacity";

/// Three days of one VM in the generic format, 5-minute steps: CPU 0.5 cores with a 1-core
/// burst at 12:00 each day, memory 1 GB, given 2 cores and 4 GB.
fn generic_panel(dir: &Path) -> PathBuf {
    let text = panel_text(GENERIC_HEADER, (2024, 1), 3, "\n", |_, minute| {
        let cpu = if minute / 60 == 12 { 1.0 } else { 0.5 };
        format!("web-1,{cpu},2,1000000000,4000000000")
    });
    let path = dir.join("panel.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str], panel: &Path) -> std::process::Output {
    hoist()
        .args(["rightsize", "--panel"])
        .arg(panel)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn scores_the_vpa_hoist_and_the_oracle_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let panel = generic_panel(dir.path());
    let chart = dir.path().join("frontier.svg");
    let out = run(
        &["--format", "json", "--chart", chart.to_str().unwrap()],
        &panel,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows[0]["name"], "oracle");
    assert_eq!(rows[1]["name"], "vpa");
    assert_eq!(rows[2]["name"], "hoist");
    // Hoist's row is at its default target, 0.9 % of steps short.
    assert_eq!(rows[2]["setting"], 0.9);
    // Two scored days (the first is warm-up) of 288 steps.
    assert_eq!(rows[0]["cpu"]["steps"], 576);
    // The oracle is never short; given 2 cores and 4 GB, every cost ratio is below 1.
    assert_eq!(rows[0]["cpu"]["shortfall"], 0.0);
    for row in rows {
        for resource in ["cpu", "memory"] {
            let cost = row[resource]["cost_ratio"].as_f64().unwrap();
            assert!(cost > 0.0 && cost < 1.0, "{row}");
        }
    }
    // Oversize counts a short step 0 where slack counts it negative; the short depth is how far
    // short steps miss (null when none is), and slack = oversize − shortfall × (depth − 1).
    assert_eq!(rows[0]["cpu"]["oversize"], rows[0]["cpu"]["slack"]);
    assert!(rows[0]["cpu"]["short_depth"].is_null());
    for row in rows.iter().chain(
        v["sweeps"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["points"].as_array().unwrap().iter().map(|p| &p["score"])),
    ) {
        for resource in ["cpu", "memory"] {
            let r = &row[resource];
            let f = |k: &str| r[k].as_f64().unwrap();
            assert!(f("oversize") >= f("slack") && f("oversize") <= 1.0, "{r}");
            match r["short_depth"].as_f64() {
                None => assert_eq!(f("shortfall"), 0.0, "{r}"),
                Some(depth) => {
                    assert!(depth > 1.0 && f("shortfall") > 0.0, "{r}");
                    let slack = f("oversize") - f("shortfall") * (depth - 1.0);
                    assert!((slack - f("slack")).abs() < 1e-9, "{r}");
                }
            }
        }
    }
    // The VPA at p90 misses the daily burst hour: 1/24 of the steps short, at most.
    let short = rows[1]["cpu"]["shortfall"].as_f64().unwrap();
    assert!(short <= 1.0 / 24.0 + 1e-9, "{short}");
    assert_eq!(v["sweeps"][0]["recommender"], "vpa");
    assert_eq!(v["sweeps"][0]["points"].as_array().unwrap().len(), 11);
    // Hoist's sweep of the target, played in one pass: its point at 0.9 is its row.
    assert_eq!(v["sweeps"][1]["recommender"], "hoist");
    assert_eq!(v["sweeps"][1]["setting"], "target % of steps short");
    let points = v["sweeps"][1]["points"].as_array().unwrap();
    assert_eq!(points.len(), 12);
    let at_default = points.iter().find(|p| p["value"] == 0.9).unwrap();
    assert_eq!(at_default["score"], rows[2]);
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("vpa sweep") && svg.contains("hoist sweep"),
        "{svg}"
    );
}

/// Hoist's row in JSON with `args` and no sweep.
fn hoist_row(panel: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--format", "json", "--no-sweep"];
    all.extend_from_slice(args);
    let out = run(&all, panel);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["sweeps"].as_array().unwrap().is_empty());
    assert_eq!(v["rows"][2]["name"], "hoist");
    v["rows"][2].clone()
}

#[test]
fn hoist_price_sets_hoists_row_and_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let panel = generic_panel(dir.path());
    let cheap = hoist_row(&panel, &["--hoist-price", "4"]);
    let dear = hoist_row(&panel, &["--hoist-price", "40"]);
    assert_eq!(
        (cheap["setting"].as_f64(), dear["setting"].as_f64()),
        (Some(4.0), Some(40.0))
    );
    assert!(
        cheap["settings"]
            .as_str()
            .unwrap()
            .contains("short step priced at 4 steps of slack")
    );
    // A dearer short step: never more short steps, never less recommended.
    let short = |r: &serde_json::Value| r["cpu"]["shortfall"].as_f64().unwrap();
    let size = |r: &serde_json::Value| r["cpu"]["mean_recommended"].as_f64().unwrap();
    assert!(short(&dear) <= short(&cheap), "{cheap} {dear}");
    assert!(size(&dear) >= size(&cheap), "{cheap} {dear}");
    for bad in ["0", "-3", "NaN", "inf"] {
        let out = run(&[&format!("--hoist-price={bad}")], &panel);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--hoist-price"), "{bad}: {err}");
    }
    // The old flag is gone.
    let out = run(&["--hoist-margin", "1.2"], &panel);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn hoist_target_sets_hoists_row_and_is_checked() {
    // Twelve days of two VMs with noisy CPU and memory: a higher target leaves more steps
    // short and recommends less.
    let dir = tempfile::tempdir().unwrap();
    let mut seed: u64 = 3;
    let text = panel_text(GENERIC_HEADER, (2024, 3), 12, "\n", |day, minute| {
        let mut rows = Vec::new();
        for vm in 0..2 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (seed >> 11) as f64 / (1u64 << 53) as f64;
            let burst = if u > 0.97 { 1.5 } else { 0.0 };
            let cpu = 0.3 + 0.5 * u + burst + f64::from((minute / 60 + day) % 3) * 0.1;
            rows.push(format!(
                "web-{vm},{cpu:.4},4,{:.0},8000000000",
                1e9 * (1.0 + cpu)
            ));
        }
        // One VM per line: the second VM's row follows with the same timestamp.
        rows.join(&format!(
            "\n2024-03-{:02}T{:02}:{:02}:00Z,",
            1 + day,
            minute / 60,
            minute % 60
        ))
    });
    let panel = dir.path().join("noisy.csv");
    std::fs::write(&panel, text).unwrap();
    let low = hoist_row(&panel, &["--hoist-target", "0.5"]);
    let high = hoist_row(&panel, &["--hoist-target", "5"]);
    assert_eq!(
        (low["setting"].as_f64(), high["setting"].as_f64()),
        (Some(0.5), Some(5.0))
    );
    assert!(
        low["settings"]
            .as_str()
            .unwrap()
            .contains("following 0.5 % of steps short"),
        "{low}"
    );
    let short = |r: &serde_json::Value| r["cpu"]["shortfall"].as_f64().unwrap();
    let size = |r: &serde_json::Value| r["cpu"]["mean_recommended"].as_f64().unwrap();
    assert!(short(&high) > short(&low), "{low} {high}");
    assert!(size(&high) < size(&low), "{low} {high}");
    for bad in ["0", "-1", "101", "NaN"] {
        let out = run(&[&format!("--hoist-target={bad}")], &panel);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--hoist-target"), "{bad}: {err}");
    }
    // A fixed price and a target are one or the other.
    let out = run(&["--hoist-target", "1", "--hoist-price", "14"], &panel);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

#[test]
fn the_floors_bound_both_recommenders_on_an_idle_vm() {
    // Three days of a VM using 0.0002 cores and 2 MB: every size is its floor, unless the
    // floors are lowered.
    let dir = tempfile::tempdir().unwrap();
    let text = panel_text(GENERIC_HEADER, (2024, 1), 3, "\n", |_, _| {
        "idle,0.0002,2,2000000,4000000000".to_owned()
    });
    let panel = dir.path().join("idle.csv");
    std::fs::write(&panel, text).unwrap();
    let rows = |args: &[&str]| {
        let mut all = vec!["--format", "json", "--no-sweep"];
        all.extend_from_slice(args);
        let out = run(&all, &panel);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["rows"].as_array().unwrap().clone()
    };
    let mean = |row: &serde_json::Value, resource: &str| {
        row[resource]["mean_recommended"].as_f64().unwrap()
    };
    const MIB: f64 = 1024.0 * 1024.0;
    // Defaults: 25 millicores for both; 250 MiB for the VPA, 16 MiB for Hoist's.
    let close = |got: f64, want: f64| assert!((got - want).abs() <= 1e-9 * want, "{got} {want}");
    let default = rows(&[]);
    close(mean(&default[1], "cpu"), 0.025);
    close(mean(&default[2], "cpu"), 0.025);
    close(mean(&default[1], "memory"), 250.0 * MIB);
    close(mean(&default[2], "memory"), 16.0 * MIB);
    assert!(!default[2]["settings"].as_str().unwrap().contains("floors"));
    // Lowered to Kubernetes' smallest CPU request and 1 MiB: Hoist sizes the VM at the CPU
    // floor and just over its 2 MB of memory; the VPA at its histograms' first buckets (0.01
    // cores, 10 MB) with its margin.
    let low = rows(&["--min-cpu", "0.001", "--min-memory", "1MiB"]);
    close(mean(&low[2], "cpu"), 0.001);
    let hoist_mem = mean(&low[2], "memory");
    assert!((2e6..2.1e6).contains(&hoist_mem), "{hoist_mem}");
    let vpa_cpu = mean(&low[1], "cpu");
    assert!((0.001..0.025).contains(&vpa_cpu), "{vpa_cpu}");
    // The VPA's memory histogram starts at 10 MB: 10 MB × 1.15.
    close(mean(&low[1], "memory"), 11.5e6);
    for row in &low[1..] {
        assert!(
            row["settings"]
                .as_str()
                .unwrap()
                .contains("floors 0.001 cores, 1 MiB"),
            "{row}"
        );
        assert_eq!(row["cpu"]["shortfall"], 0.0, "{row}");
    }
    // Less slack on the idle VM with lower floors.
    for i in 1..=2 {
        for resource in ["cpu", "memory"] {
            let slack = |rows: &[serde_json::Value]| rows[i][resource]["slack"].as_f64().unwrap();
            assert!(slack(&low) < slack(&default), "{resource}: {}", low[i]);
        }
    }
    for bad in [
        "--min-cpu=0",
        "--min-cpu=0.0001",
        "--min-cpu=NaN",
        "--min-cpu=5000",
        "--min-memory=0",
        "--min-memory=-1MiB",
        "--min-memory=2 furlongs",
        "--min-memory=900000TB",
    ] {
        let out = run(&[bad], &panel);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        let flag = bad.split('=').next().unwrap();
        assert!(err.contains(flag), "{bad}: {err}");
    }
}

#[test]
fn prints_a_table_and_markdown_for_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let panel = generic_panel(dir.path());
    let out = run(&["--from", "2d", "--no-sweep"], &panel);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Scored 2024-01-03T00:00:00Z → 2024-01-04T00:00:00Z"),
        "{text}"
    );
    assert!(
        text.contains("CPU slack")
            && text.contains("CPU over")
            && text.contains("CPU miss ×")
            && text.contains("mem over")
            && text.contains("mem miss ×")
            && text.contains("oracle")
            && text.contains("vpa")
            && text.contains("hoist")
    );
    let out = run(
        &["--format", "markdown", "--until", "2024-01-03T00:00:00Z"],
        &panel,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("| recommender | CPU slack | CPU over | CPU short | CPU miss × | CPU cost |"),
        "{text}"
    );
    assert!(text.contains("best CPU at most 1.00 % short: "), "{text}");
    assert!(
        text.contains("picked on the part it is scored on"),
        "{text}"
    );
    assert!(text.contains("### Frontier of vpa"), "{text}");
    assert!(text.contains("### Frontier of hoist"), "{text}");
}

#[test]
fn reads_the_bitbrains_format_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    let header = "timestamp,vm,cores,cpu_capacity_mhz,cpu_usage_mhz,mem_capacity_kb,mem_usage_kb";
    let text = panel_text(header, (2013, 7), 2, "\r\n", |day, minute| {
        // Off for the first hour of the second day.
        if day == 1 && minute < 60 {
            "33,0,0.0,0.0,0,0".to_owned()
        } else {
            "33,2,5200.0,520.0,8388608,1048576".to_owned()
        }
    });
    let path = dir.path().join("bb.csv.gz");
    let gz = stored_gzip(text.as_bytes());
    std::fs::write(&path, gz).unwrap();
    let out = run(&["--format", "json", "--no-sweep"], &path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["panel"]["format"], "bitbrains");
    assert_eq!(v["panel"]["off_rows"], 12);
    // 0.2 cores used of 2 given (520 of 5200 MHz); the off hour is a gap, not scored.
    assert_eq!(v["rows"][0]["cpu"]["steps"], 288 - 12);
    assert!((v["rows"][0]["cpu"]["mean_used"].as_f64().unwrap() - 0.2).abs() < 1e-9);
}

/// Gzip without a compression crate: stored (uncompressed) deflate blocks.
fn stored_gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let chunks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn refuses_bad_panels_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let header = "timestamp,vm,cpu_used,cpu_capacity,mem_used,mem_capacity\n";
    let good = "2024-01-01T00:00:00Z,a,0.5,2,100,1000\n";
    for (name, body, line, what) in [
        (
            "missing.csv",
            "timestamp,vm,mem_used\n".to_owned(),
            1,
            "missing column \"cpu_used\"",
        ),
        (
            "negative.csv",
            format!("{header}{good}2024-01-01T00:05:00Z,a,-0.1,2,100,1000\n"),
            3,
            "cpu_used -0.1 is negative",
        ),
        (
            "zero.csv",
            format!("{header}{good}2024-01-01T00:05:00Z,a,0.1,2,100,0\n"),
            3,
            "mem_capacity is 0",
        ),
        (
            "number.csv",
            format!("{header}{good}2024-01-01T00:05:00Z,a,lots,2,100,1000\n"),
            3,
            "cpu_used \"lots\" is not a number",
        ),
        (
            "order.csv",
            format!("{header}{good}2023-12-31T23:55:00Z,a,0.1,2,100,1000\n"),
            3,
            "is not after its previous row (line 2)",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let out = run(&[], &path);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        let at = format!("{}:{line}: ", path.display());
        assert!(err.contains(&at) && err.contains(what), "{name}: {err}");
    }
}
