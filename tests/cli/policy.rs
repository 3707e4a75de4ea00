//! The `hoist` binary on policy files: every example validates, plans and runs on the simulated
//! cloud; every broken file gives exit code 2 and a message naming the file, line and field,
//! never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) fn hoist(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run hoist")
}

/// The repository root, read when the test runs (cargo sets it then too): a test binary
/// reused from a target directory another checkout built still finds this checkout's files.
pub(crate) fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Example policy files that run on the simulated cloud alone.
fn simulated_examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .filter(|p| {
            let body = std::fs::read_to_string(p).unwrap();
            body.contains("simulated:") && !body.contains("plugin:")
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "expected the simulated examples, found {files:?}"
    );
    files
}

#[test]
fn every_example_validates() {
    let dir = tempfile::tempdir().unwrap();
    for file in simulated_examples() {
        let out = hoist(&["validate", file.to_str().unwrap()], dir.path());
        let (stdout, stderr) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {stdout}{stderr}",
            file.display()
        );
        assert!(stdout.contains(": ok"), "{stdout}");
    }
}

/// The examples for real clouds validate without credentials or a network: `hoist validate`
/// checks every provider's settings offline.
#[test]
fn every_cloud_example_validates_offline() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "aws.yaml",
        "azure.yaml",
        "gcp.yaml",
        "kubernetes.yaml",
        "kubernetes-nodes.yaml",
    ] {
        let file = root().join("examples").join(name);
        let out = hoist(&["validate", file.to_str().unwrap()], dir.path());
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{name}: {stdout}{stderr}");
        assert!(stdout.contains(": ok"), "{name}: {stdout}");
    }
}

#[test]
fn every_simulated_example_runs_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    for file in simulated_examples() {
        let audit = dir.path().join("audit.jsonl");
        let out = hoist(
            &[
                "run",
                file.to_str().unwrap(),
                "--duration",
                "6h",
                "--audit-log",
                audit.to_str().unwrap(),
            ],
            dir.path(),
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {stdout}{stderr}",
            file.display()
        );
        assert!(stdout.contains("summary:"), "{stdout}");
        assert!(stdout.contains("cost on "), "{stdout}");
        // One audit record per group per evaluation, each a JSON object with reasons.
        let log = std::fs::read_to_string(&audit).unwrap();
        let decisions: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|v: &serde_json::Value| v["record"] == "decision")
            .collect();
        assert!(
            decisions.len() >= 6 * 60 / 2,
            "{} decisions",
            decisions.len()
        );
        assert!(
            decisions
                .iter()
                .all(|d| d["reasons"].as_array().is_some_and(|r| !r.is_empty()))
        );
        std::fs::remove_file(&audit).unwrap();
    }
}

/// The run summary puts the cost meter (catalog prices x instance time, under the provider's
/// billing rule) beside the simulated cloud's own bill, and the two agree to within 1 %.
#[test]
fn the_run_summary_reconciles_the_meter_with_the_simulated_bill() {
    let dir = tempfile::tempdir().unwrap();
    let file = root().join("examples/quickstart.yaml");
    let out = hoist(&["run", file.to_str().unwrap(), "--quiet"], dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("cost on sim:"))
        .unwrap_or_else(|| panic!("no cost line in {stdout}"));
    let amount = |after: &str| -> f64 {
        let rest = &line[line.find(after).unwrap() + after.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let billed = amount("cost on sim: ");
    let metered = amount("(metered ");
    let drift = amount("drift ");
    assert!(billed > 0.0 && metered > 0.0, "{line}");
    assert!(drift < 1.0, "{line}");
    assert!(
        ((metered - billed) / billed * 100.0).abs() - drift < 0.01,
        "{line}"
    );
}

#[test]
fn the_quickstart_scales_out_in_the_afternoon_and_back_in_at_night() {
    let dir = tempfile::tempdir().unwrap();
    let file = root().join("examples/quickstart.yaml");
    let out = hoist(&["run", file.to_str().unwrap(), "--quiet"], dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let log = std::fs::read_to_string(dir.path().join("hoist-audit.jsonl")).unwrap();
    let applied: Vec<(String, u64)> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["record"] == "decision")
        .map(|v| {
            (
                v["at"].as_str().unwrap().to_owned(),
                v["desired"].as_u64().unwrap(),
            )
        })
        .collect();
    let at = |hour: &str| {
        applied
            .iter()
            .find(|(t, _)| t.starts_with(hour))
            .map(|(_, d)| *d)
            .unwrap_or_else(|| panic!("no decision at {hour}"))
    };
    // The demand peaks at 15:00 UTC and is lowest at 03:00: capacity follows it.
    let afternoon = at("2026-03-02T15:30");
    let night = at("2026-03-03T03:30");
    assert!(
        afternoon > night + 5,
        "afternoon {afternoon}, night {night}"
    );
    assert!(applied.iter().all(|(_, d)| (3..=60).contains(d)));
}

#[test]
fn plan_prints_json_for_machines() {
    let dir = tempfile::tempdir().unwrap();
    let file = root().join("examples/horizontal-scaling.yml");
    let out = hoist(
        &["plan", file.to_str().unwrap(), "--output", "json"],
        dir.path(),
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).expect("plan is JSON");
    let groups = plan["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    for g in groups {
        assert!(g["current"].is_u64() && g["desired"].is_u64(), "{g}");
        assert!(!g["reasons"].as_array().unwrap().is_empty(), "{g}");
    }
    // plan is a dry run: it writes no audit log.
    assert!(!dir.path().join("hoist-audit.jsonl").exists());
}

#[test]
fn run_once_evaluates_a_single_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = root().join("examples/quickstart.yaml");
    let out = hoist(&["run", file.to_str().unwrap(), "--once"], dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let log = std::fs::read_to_string(dir.path().join("hoist-audit.jsonl")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains("\"decision\"")).count(),
        1
    );
}

#[test]
fn schema_is_json_schema_of_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let out = hoist(&["schema"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema["properties"]["groups"].is_object(), "{schema}");
    assert!(schema["properties"]["providers"].is_object());
    let text = String::from_utf8_lossy(&out.stdout);
    for kind in [
        "target_tracking",
        "step",
        "threshold",
        "scheduled",
        "scale_in_cooldown",
    ] {
        assert!(text.contains(kind), "schema lacks {kind}");
    }
    // Providers: one branch per compiled-in kind, with the kind's own settings schema.
    let branches = schema["$defs"]["Provider"]["oneOf"]
        .as_array()
        .expect("a branch per provider kind");
    let sim = branches
        .iter()
        .find(|b| b["required"] == serde_json::json!(["simulated"]))
        .expect("a `simulated` branch");
    assert!(
        sim["properties"]["simulated"]["properties"]["seed"].is_object(),
        "{sim}"
    );
    let plugin = branches
        .iter()
        .find(|b| b["required"] == serde_json::json!(["plugin"]))
        .expect("a `plugin` branch");
    assert!(plugin["properties"]["config"].is_object(), "{plugin}");
}

/// (file, line, what the message must mention)
const BROKEN: &[(&str, u32, &str)] = &[
    ("syntax-error.yaml", 8, ""),
    ("unknown-field.yaml", 9, "maximum_instances"),
    ("min-above-max.yaml", 7, "groups[0].min"),
    ("zero-target.yaml", 12, "target"),
    ("negative-target.yaml", 12, "target"),
    ("subnormal-target.yaml", 12, "between 1e-9 and"),
    ("huge-step-adjust.yaml", 14, "steps[1].adjust"),
    ("huge-cooldown.yaml", 12, "longer than 36500d"),
    ("unknown-provider.yaml", 6, "groups[0].provider"),
    ("unknown-provider-kind.yaml", 3, "gcp-classic"),
    ("missing-trace.yaml", 7, "no-such-trace.csv"),
    ("bad-sim-setting.yaml", 7, "work_per_instanse"),
    ("bad-cron.yaml", 10, "timezone"),
    ("empty.yaml", 1, "empty"),
    ("never-scales-out.yaml", 13, "never scale out"),
    // Messages in the user's words, never the YAML reader's options.
    ("duplicate-key.yaml", 11, "`max` is given twice"),
    ("two-documents.yaml", 12, "a policy file is one document"),
    (
        "nan-target.yaml",
        10,
        "target must be a positive number, got NaN",
    ),
    ("latin1.yaml", 11, "not UTF-8"),
    // Documented ranges, checked at load.
    ("never-fires.yaml", 11, "never fires"),
    ("huge-max.yaml", 8, "limit of 1000000 instances"),
    ("huge-simulated-desired.yaml", 5, "desired 4000000000"),
    (
        "endless-virtual-run.yaml",
        6,
        "more than the limit of 1000000",
    ),
    ("schedule-below-min.yaml", 11, "below the group's min"),
];

#[test]
fn broken_policy_files_exit_2_naming_file_line_and_field() {
    let fixtures = root().join("tests/fixtures/broken");
    for command in ["validate", "plan", "run"] {
        for (file, line, needle) in BROKEN {
            let path = fixtures.join(file);
            let out = hoist(&[command, path.to_str().unwrap()], &fixtures);
            let (stdout, stderr) = text(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command} {file}: {stdout}{stderr}"
            );
            assert!(
                stderr.contains(&format!("{file}:{line}")),
                "{command} {file}: no file:line in {stderr}"
            );
            assert!(
                stderr.contains(needle),
                "{command} {file}: no `{needle}` in {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
            for parser_words in [
                "Options",
                "from_str",
                "DuplicateKeyPolicy",
                "configured policy",
            ] {
                assert!(
                    !stderr.contains(parser_words),
                    "{command} {file}: the message names the parser: {stderr}"
                );
            }
        }
    }
}

#[test]
fn a_missing_file_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = hoist(&["validate", "nope.yaml"], dir.path());
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("nope.yaml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn the_example_plugin_runs_under_hoist_run() {
    let library = hoist_plugin::test_support::built_library("hoist_plugin_static_pool")
        .expect("the static-pool plugin is built for the tests");
    let dir = tempfile::tempdir().unwrap();
    let example = root().join("plugins/examples/static-pool");
    std::fs::copy(
        example.join("machines.yaml"),
        dir.path().join("machines.yaml"),
    )
    .unwrap();
    let policy = std::fs::read_to_string(example.join("policy.yaml"))
        .unwrap()
        .replace(
            "../../../target/debug/libhoist_plugin_static_pool.so",
            library.to_str().unwrap(),
        );
    assert!(
        policy.contains(library.to_str().unwrap()),
        "plugin path not replaced"
    );
    std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();

    let out = hoist(&["validate", "policy.yaml"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let out = hoist(&["plan", "policy.yaml", "--output", "json"], dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["groups"][0]["provider"], "pool");
    let out = hoist(&["run", "--once", "policy.yaml"], dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(dir.path().join("hoist-audit.jsonl").exists());

    // Pinned by its SHA-256 (as `plugins inspect` prints it): the same library loads, any
    // other is refused before it is loaded, at the `sha256` line.
    let out = hoist(
        &["plugins", "inspect", library.to_str().unwrap(), "--json"],
        dir.path(),
    );
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sha = inspected["sha256"].as_str().unwrap().to_owned();
    assert_eq!(sha.len(), 64, "{inspected}");
    let policy = std::fs::read_to_string(dir.path().join("policy.yaml")).unwrap();
    let pinned = |hash: &str| {
        policy.replacen(
            "    config:\n",
            &format!("    sha256: {hash}\n    config:\n"),
            1,
        )
    };
    std::fs::write(dir.path().join("pinned.yaml"), pinned(&sha)).unwrap();
    let out = hoist(&["plan", "pinned.yaml"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let other = format!("{}0", &sha[..63]);
    let other = if other == sha {
        format!("{}1", &sha[..63])
    } else {
        other
    };
    std::fs::write(dir.path().join("tampered.yaml"), pinned(&other)).unwrap();
    for command in ["validate", "plan"] {
        let out = hoist(&[command, "tampered.yaml"], dir.path());
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("tampered.yaml:13")
                && stderr.contains(&format!("its SHA-256 is {sha}")),
            "{stderr}"
        );
    }

    // A configuration the plugin rejects reaches the user verbatim, as invalid input, when the
    // provider is built (`validate` checks the library and its ABI without starting the plugin).
    let bad = std::fs::read_to_string(dir.path().join("policy.yaml"))
        .unwrap()
        .replace(
            "inventory: machines.yaml",
            "inventory: no-such-inventory.yaml",
        );
    std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
    let out = hoist(&["plan", "bad.yaml"], dir.path());
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no-such-inventory.yaml"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_pool_example_fails_over_and_returns_as_its_output_and_audit_log_say() {
    let dir = tempfile::tempdir().unwrap();
    let file = root().join("examples/multi-cloud-pool.yml");
    let out = hoist(
        &["run", file.to_str().unwrap(), "--duration", "10h"],
        dir.path(),
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let down = stdout
        .lines()
        .find(|l| l.contains("cheap/web is down"))
        .unwrap_or_else(|| panic!("no failover in:\n{stdout}"));
    assert!(down.starts_with("2026-03-02 07:0"), "{down}");
    let back = stdout
        .lines()
        .find(|l| l.contains("cheap/web recovered"))
        .unwrap_or_else(|| panic!("no return in:\n{stdout}"));
    assert!(back.starts_with("2026-03-02 09:0"), "{back}");
    // Every pool_split record in the audit log carries its members and a reason.
    let audit = std::fs::read_to_string(dir.path().join("hoist-audit.jsonl")).unwrap();
    let splits: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["record"] == "pool_split")
        .collect();
    assert!(splits.len() > 10, "{}", splits.len());
    let failover = splits
        .iter()
        .find(|r| r["reason"].as_str().unwrap().contains("is down"))
        .unwrap();
    let members = failover["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(members[0]["state"], "down");
    // The pool's total stayed in place: what cheap/web held went to the others at once.
    let total = failover["total"].as_u64().unwrap();
    let placed: u64 = members[1..].iter().map(|m| m["to"].as_u64().unwrap()).sum();
    assert_eq!(placed, total, "{failover}");
    // `hoist simulate` replays one group on a trace; for a pool it points at `hoist run`.
    let trace = dir.path().join("t.csv");
    std::fs::write(
        &trace,
        "timestamp,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:01:00Z,2\n",
    )
    .unwrap();
    let out = hoist(
        &[
            "simulate",
            "--trace",
            trace.to_str().unwrap(),
            "--policy",
            file.to_str().unwrap(),
        ],
        dir.path(),
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("only pools") && stderr.contains("hoist run"),
        "{stderr}"
    );
}
