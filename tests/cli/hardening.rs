//! Hostile and extreme input to the `hoist` binary (issue 13): every case ends with a clear
//! message and the README's exit code (2 for input, 1 for runtime), never a panic, and in time
//! and memory proportional to the data rather than to what it claims.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::policy::{hoist, root};
use std::time::{Duration, Instant};

/// Runs `hoist args` in `dir`, asserting exit code 2 and a message containing `needle`, with
/// no panic; returns standard error.
fn refused(args: &[&str], dir: &Path, needle: &str) -> String {
    let out = hoist(args, dir);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: no `{needle}` in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    stderr
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_endless_file_is_read_only_up_to_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    refused(
        &["validate", "/dev/zero"],
        dir.path(),
        "larger than the limit of 64 MiB",
    );
    refused(
        &["validate", "/dev/zero"],
        dir.path(),
        "HOIST_POLICY_MAX_FILE_BYTES",
    );
    let policy = root().join("examples/predictive-scaling.yml");
    refused(
        &[
            "simulate",
            "--trace",
            "/dev/zero",
            "--policy",
            policy.to_str().unwrap(),
        ],
        dir.path(),
        "larger than the limit of 512 MiB",
    );
}

#[test]
fn a_directory_without_policy_files_is_not_a_policy_and_no_directory_is_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    // A directory is a set of policy files; one with none is refused, saying what it needs.
    refused(
        &["validate", "."],
        dir.path(),
        "at least one `*.yml` or `*.yaml` file",
    );
    refused(&["plugins", "inspect", "."], dir.path(), "a directory");
    refused(
        &["plugins", "inspect", "/dev/zero"],
        dir.path(),
        "not a regular file",
    );
}

#[test]
fn a_trace_line_too_long_or_a_value_too_large_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!(
        "timestamp,value\n2026-01-01T00:00:00Z,1\n2026-01-01T00:01:00Z,{}\n",
        "1".repeat(10_000)
    );
    write(dir.path(), "long.csv", &long);
    refused(
        &["capacity", "long.csv"],
        dir.path(),
        "long.csv:3: the line is longer than the limit of 4 KiB",
    );
    write(
        dir.path(),
        "huge.csv",
        "timestamp,value\n2026-01-01T00:00:00Z,1\n2026-01-01T00:01:00Z,1e308\n",
    );
    let stderr = refused(
        &["capacity", "huge.csv"],
        dir.path(),
        "huge.csv:3: value 1e308",
    );
    assert!(stderr.len() < 300, "the number is written out: {stderr}");
}

#[test]
fn a_few_rows_claiming_a_century_are_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "century.csv",
        "timestamp,value\n1900-01-01T00:00:00Z,1\n1950-01-01T00:00:00Z,2\n2000-01-01T00:00:00Z,3\n",
    );
    let policy = root().join("examples/predictive-scaling.yml");
    let started = Instant::now();
    refused(
        &[
            "simulate",
            "--trace",
            "century.csv",
            "--policy",
            policy.to_str().unwrap(),
        ],
        dir.path(),
        "more than the limit of 20000000",
    );
    refused(
        &["capacity", "century.csv"],
        dir.path(),
        "longer than a day",
    );
    // Refused on what the rows claim, before any work on it: well under the time a replay of
    // 79 million ticks would take even in an optimised build.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn capacity_on_a_century_of_daily_rows_is_linear() {
    let dir = tempfile::tempdir().unwrap();
    let start = chrono::NaiveDate::from_ymd_opt(1926, 1, 1).unwrap();
    let mut text = String::from("timestamp,value\n");
    for day in 0..36_500u64 {
        let date = start + chrono::Days::new(day);
        text.push_str(&format!("{date}T00:00:00Z,{}\n", 100 + day % 7));
    }
    write(dir.path(), "daily.csv", &text);
    let out = hoist(&["capacity", "daily.csv", "--output", "json"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["plan"]["history"].as_array().unwrap().len(), 36_500);
    // The weekly pattern of the last year is what the plan follows.
    let peak = plan["plan"]["expected_peak"].as_f64().unwrap();
    assert!((100.0..=107.0).contains(&peak), "{peak}");
}

#[test]
fn a_run_longer_than_the_virtual_time_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = root().join("examples/quickstart.yaml");
    refused(
        &["run", quickstart.to_str().unwrap(), "--duration", "36000d"],
        dir.path(),
        "--duration: 36000d of virtual time",
    );
    refused(
        &[
            "run",
            quickstart.to_str().unwrap(),
            "--duration",
            "9999999999999d",
        ],
        dir.path(),
        "36500d",
    );
}

#[test]
fn a_folder_without_a_usable_trace_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("traces")).unwrap();
    refused(&["evaluate", "--traces", "traces"], dir.path(), "no .csv");
    write(&dir.path().join("traces"), "x.csv", "a,b\n1,2\n");
    refused(
        &["evaluate", "--traces", "traces"],
        dir.path(),
        "no usable trace",
    );
}

#[test]
fn a_closed_pipe_ends_the_run_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = root().join("examples/quickstart.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["run", quickstart.to_str().unwrap()])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the first line, then close the pipe, as `| head -1` does.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("hoist: 1 group(s)"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(stderr.is_empty(), "not quiet: {stderr}");
    // What was decided before the pipe closed is in the audit log.
    let audit = std::fs::read_to_string(dir.path().join("hoist-audit.jsonl")).unwrap();
    assert!(audit.lines().count() > 1, "{audit}");
}

/// The example plugin's policy (a wall-clock run), pointed at the built library.
fn plugin_policy(dir: &Path) -> PathBuf {
    let library = hoist_plugin::test_support::built_library("hoist_plugin_static_pool")
        .expect("the static-pool plugin is built for the tests");
    let example = root().join("plugins/examples/static-pool");
    std::fs::copy(example.join("machines.yaml"), dir.join("machines.yaml")).unwrap();
    let policy = std::fs::read_to_string(example.join("policy.yaml"))
        .unwrap()
        .replace(
            "../../../target/debug/libhoist_plugin_static_pool.so",
            library.to_str().unwrap(),
        );
    write(dir, "policy.yaml", &policy)
}

#[test]
fn sigterm_ends_a_wall_clock_run_with_its_summary_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    plugin_policy(dir.path());
    let child = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["run", "policy.yaml", "--metrics-listen", "0.0.0.0:0"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first evaluation is in the audit log, the run is under way.
    let audit = dir.path().join("hoist-audit.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&audit).is_ok_and(|a| a.contains("\"decision\"")) {
        assert!(Instant::now() < deadline, "no decision within a minute");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("summary:"), "{stdout}");
    assert!(stderr.contains("SIGTERM received, stopping"), "{stderr}");
    // Listening beyond loopback is said out loud.
    assert!(
        stderr.contains("warning: --metrics-listen 0.0.0.0:0 is not a loopback address"),
        "{stderr}"
    );
    let audit = std::fs::read_to_string(&audit).unwrap();
    let last: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["record"], "stopped", "{audit}");
    assert_eq!(last["reason"], "stopped by SIGTERM", "{audit}");
}
