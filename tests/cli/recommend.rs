//! `hoist recommend` as a user runs it, on `examples/usage-optimization.yml`.

use std::path::PathBuf;
use std::process::{Command, Output};

const EXAMPLE: &str = "examples/usage-optimization.yml";

fn hoist() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
    command.current_dir(crate::policy::root());
    command
}

fn recommend(args: &[&str]) -> Output {
    hoist().arg("recommend").args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn group<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no group {name} in {report}"))
}

fn amount(money: &serde_json::Value) -> f64 {
    assert_eq!(money["currency"], "USD", "{money}");
    money["amount"].as_f64().unwrap()
}

#[test]
fn the_example_as_a_table() {
    let out = recommend(&[EXAMPLE]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("7d of history replayed"), "{text}");
    for needle in [
        "GROUP",
        "MONTHLY NOW",
        "api",
        "reports",
        "memory.xlarge",
        "compute.",
        "rightsizing",
        "idle",
        "off-hours",
        "spot",
        "- scheduled: {cron: ",
        " USD",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
}

#[test]
fn the_example_as_json_fits_the_observed_peak_and_its_schedule_is_a_valid_policy() {
    let out = recommend(&[EXAMPLE, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["history"], "7d");
    assert_eq!(report["step_seconds"], 300);
    assert_eq!(report["hours_per_month"], 730);
    assert_eq!(report["from"], "2026-03-02T00:00:00Z");
    assert_eq!(report["until"], "2026-03-09T00:00:00Z");

    for g in report["groups"].as_array().unwrap() {
        let observed = &g["observed"];
        assert_eq!(observed["steps"], 2016, "{g}");
        assert!(amount(&observed["cost"]) > 0.0);
        // The recommended fleet carries the observed peak at the group's target.
        let target = g["target_utilization"].as_f64().unwrap();
        let peak = observed["peak_load_cores"].as_f64().unwrap();
        let fleet = &g["rightsizing"]["fleet"];
        let capacity = fleet["count"].as_f64().unwrap() * fleet["class"]["vcpus"].as_f64().unwrap();
        assert!(capacity * target >= peak - 1e-6, "{fleet} for {peak} cores");
        assert!(fleet["utilization_at_peak"].as_f64().unwrap() <= target + 1e-9);
        // One instance's recommended class holds one instance's need.
        let per_instance = &g["rightsizing"]["per_instance"];
        assert!(
            per_instance["recommended"]["vcpus"].as_f64().unwrap()
                >= per_instance["need_cpu_cores"].as_f64().unwrap()
        );
        assert!(g["spot"]["verdict"].is_string());
    }

    // `api` runs on the memory family; the same vCPUs cost less in the compute family.
    let api = group(&report, "api");
    assert_eq!(api["class"], "memory.xlarge");
    let fleet = &api["rightsizing"]["fleet"];
    assert_eq!(fleet["class"]["family"], "compute", "{fleet}");
    let now = amount(&api["observed"]["per_month"]);
    let after = amount(&api["rightsizing"]["per_month_after"]);
    let saving = amount(&api["rightsizing"]["saving_per_month"]);
    assert!(after < now && saving > 0.25 * now, "{now} {after} {saving}");
    assert!((now - after - saving).abs() < 0.011);
    // Its capacity above the base comes and goes with the daily cycle.
    assert_eq!(api["spot"]["verdict"], "partly", "{}", api["spot"]);

    // `reports` idles at night and at weekends, held up by its min.
    let reports = group(&report, "reports");
    let idle = &reports["idle"];
    assert!(!idle["stretches"].as_array().unwrap().is_empty(), "{idle}");
    assert!(idle["share_of_time"].as_f64().unwrap() > 0.3, "{idle}");
    let off = &reports["off_hours"];
    assert_eq!(off["found"], true, "{off}");
    assert!(amount(&off["saving_per_month"]) > 0.0);
    let new_min = off["min"].as_u64().unwrap();
    assert!(new_min < reports["min"].as_u64().unwrap());
    let policies = off["policies"].as_array().unwrap();
    assert!(!policies.is_empty());
    assert!(
        off["snippet"]
            .as_str()
            .unwrap()
            .contains("- scheduled: {cron: ")
    );

    // The schedule, pasted into the group as the snippet says, is a valid policy file.
    let example = std::fs::read_to_string(crate::policy::root().join(EXAMPLE)).unwrap();
    let (head, tail) = example.split_once("  - name: reports\n").unwrap();
    let mut applied = format!("{head}  - name: reports\n");
    for line in tail.lines() {
        if line.trim_start().starts_with("min:") {
            applied.push_str(&format!("    min: {new_min}\n"));
            continue;
        }
        applied.push_str(line);
        applied.push('\n');
        if line.trim() == "policies:" {
            for p in policies {
                let bound = match (p.get("min"), p.get("max")) {
                    (Some(min), _) => format!("min: {min}"),
                    (None, Some(max)) => format!("max: {max}"),
                    (None, None) => panic!("{p}"),
                };
                applied.push_str(&format!(
                    "      - scheduled: {{cron: {}, timezone: {}, duration: {}, {bound}}}\n",
                    p["cron"], p["timezone"], p["duration"]
                ));
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("applied.yml");
    std::fs::write(&path, &applied).unwrap();
    let out = hoist().arg("validate").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}\n{applied}", stderr(&out));
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let cases: [(&[&str], &str); 9] = [
        (&["no-such-policy.yml"], "no-such-policy.yml"),
        (&[EXAMPLE, "--idle-below", "1.5"], "--idle-below 1.5"),
        (&[EXAMPLE, "--target", "0"], "--target 0"),
        (
            &[EXAMPLE, "--families", "gpu"],
            "--families gpu: unknown family",
        ),
        (&[EXAMPLE, "--classes", "huge.metal"], "\"huge.metal\""),
        (&[EXAMPLE, "--history", "10m"], "--history 10m"),
        (&[EXAMPLE, "--group", "nope"], "no group named \"nope\""),
        (
            &[EXAMPLE, "--instances-query", " "],
            "--instances-query: an empty query",
        ),
        (
            &[EXAMPLE, "--memory-query", "mem_share"],
            "--memory-query: reads a real provider's metrics",
        ),
    ];
    for (args, message) in cases {
        let out = recommend(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    // A group on a real provider whose metrics source has no default query for the in-service
    // count (Azure Monitor): refused at the group's line before anything is built or called,
    // saying how to give one.
    let out = recommend(&["examples/azure.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("examples/azure.yaml:30"), "{err}");
    assert!(err.contains("groups[0].name"), "{err}");
    assert!(err.contains("in_service_instances: QUERY"), "{err}");
    assert!(err.contains("--instances-query"), "{err}");
}
