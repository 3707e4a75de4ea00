//! `hoist run` on the wall clock (the simulated cloud with `clock: wall`): a valid change to the
//! policy file takes effect while it runs, an invalid one is refused with file, line and field
//! while the old configuration keeps running, and `--state` carries the groups' memory across
//! a restart.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const POLICY: &str = "providers:\n  sim:\n    simulated:\n      clock: wall\n      boot_delay: 1s\n      metric_lag: 1s\n      metric_period: 1s\n      tick: 1s\n      groups:\n        api:\n          demand: { base: 400, daily_amplitude: 0, noise: 0 }\nrun:\n  interval: 1s\ngroups:\n  - name: api\n    provider: sim\n    min: 1\n    max: 10\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n    guards:\n      scale_in_cooldown: 1h\n";

/// A running `hoist run`, killed if a test fails before stopping it.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(dir: &Path, extra: &[&str]) -> Running {
    Running(Some(spawn(dir, extra)))
}

fn spawn(dir: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args([
            "run",
            "policy.yml",
            "--no-metrics",
            "--audit-log",
            "audit.jsonl",
            "--cost-ledger",
            "costs.jsonl",
            "--watch-interval",
            "200ms",
        ])
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hoist run")
}

fn records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits (up to 30 s) until the audit log has a record for which `pred` holds.
fn wait_for(
    dir: &Path,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(r) = records(dir).into_iter().find(|r| pred(r)) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} in the audit log: {:?}",
            records(dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(mut running: Running) -> (i32, String, String) {
    let mut child = running.0.take().expect("running");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = child.wait().expect("wait");
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

fn decisions(dir: &Path) -> usize {
    records(dir)
        .iter()
        .filter(|r| r["record"] == "decision")
        .count()
}

/// Replaces the file in one step, as editors and config management do.
fn write(dir: &Path, text: &str) {
    let tmp = dir.join("policy.yml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("policy.yml")).unwrap();
}

#[test]
fn a_running_hoist_refuses_a_broken_policy_and_applies_a_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yml"), POLICY).unwrap();
    let child = start(dir.path(), &["--state", "state.redb"]);
    wait_for(dir.path(), "decision", |r| r["record"] == "decision");

    // max below min: refused with the file, line and field; the old policy keeps running.
    write(dir.path(), &POLICY.replace("max: 10", "max: 0"));
    let rejected = wait_for(dir.path(), "config_rejected", |r| {
        r["record"] == "config_rejected"
    });
    let errors = rejected["errors"].as_str().unwrap();
    assert!(errors.contains("policy.yml:"), "{errors}");
    assert!(errors.contains("max"), "{errors}");
    let before = decisions(dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    while decisions(dir.path()) < before + 2 {
        assert!(Instant::now() < deadline, "the old policy stopped deciding");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A valid change: the new maximum holds from the next evaluation, and the audit log says
    // what changed.
    write(dir.path(), &POLICY.replace("max: 10", "max: 3"));
    let changed = wait_for(dir.path(), "config_changed", |r| {
        r["record"] == "config_changed"
    });
    assert_eq!(
        changed["changes"][0]["path"], "groups[api].max",
        "{changed}"
    );
    assert_eq!(changed["changes"][0]["before"], 10);
    assert_eq!(changed["changes"][0]["after"], 3);
    assert_eq!(changed["previous"], rejected["running"]);
    let after_change = decisions(dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    while decisions(dir.path()) < after_change + 2 {
        assert!(Instant::now() < deadline, "the new policy does not decide");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, out, err) = stop(child);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("is refused"), "{err}");
    assert!(out.contains("reloaded policy.yml"), "{out}");
    // Every decision after the change stays within the new maximum.
    let all = records(dir.path());
    let changed_at = all
        .iter()
        .position(|r| r["record"] == "config_changed")
        .unwrap();
    for r in all[changed_at..]
        .iter()
        .filter(|r| r["record"] == "decision")
    {
        assert!(r["desired"].as_u64().unwrap() <= 3, "{r}");
    }
    assert_eq!(all.last().unwrap()["record"], "stopped");

    // A restart with the same state file restores the group's memory.
    let child = start(dir.path(), &["--state", "state.redb"]);
    let (_, out, err) = {
        let deadline = Instant::now() + Duration::from_secs(20);
        let stopped_before = all.len();
        while records(dir.path()).len() <= stopped_before + 1 {
            assert!(
                Instant::now() < deadline,
                "the restarted run does not decide"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        stop(child)
    };
    assert!(out.contains("restored 1 group(s)"), "{out}\n{err}");
}

/// A team's policy file for a directory run: the shared simulated cloud, defined the same way
/// in every file, and one group.
fn team(group: &str, max: u32) -> String {
    format!(
        "providers:\n  sim:\n    simulated:\n      clock: wall\n      boot_delay: 1s\n      metric_lag: 1s\n      metric_period: 1s\n      tick: 1s\ngroups:\n  - name: {group}\n    provider: sim\n    min: 1\n    max: {max}\n    policies:\n      - target_tracking: {{ metric: utilization, target: 0.6 }}\n"
    )
}

/// Replaces a file in one step.
fn put(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_directory_of_team_policies_runs_as_one_and_reloads_file_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    // The run settings in one file; each team's group in its own.
    put(
        &policies.join("a-api.yml"),
        &(team("api", 10) + "run:\n  interval: 1s\n"),
    );
    put(&policies.join("b-web.yml"), &team("web", 5));
    let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["validate", "policies"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let child = Running(Some(
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args([
                "run",
                "policies",
                "--no-metrics",
                "--audit-log",
                "audit.jsonl",
                "--cost-ledger",
                "costs.jsonl",
                "--watch-interval",
                "200ms",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    wait_for(dir.path(), "a decision of api", |r| r["group"] == "api");
    wait_for(dir.path(), "a decision of web", |r| r["group"] == "web");

    // A broken team file is refused, naming that file; the others keep running.
    put(&policies.join("b-web.yml"), &team("web", 0));
    let rejected = wait_for(dir.path(), "config_rejected", |r| {
        r["record"] == "config_rejected"
    });
    assert!(
        rejected["errors"].as_str().unwrap().contains("b-web.yml:"),
        "{rejected}"
    );

    // Fixed: applied.
    put(&policies.join("b-web.yml"), &team("web", 4));
    let changed = wait_for(dir.path(), "config_changed", |r| {
        r["record"] == "config_changed"
    });
    assert_eq!(
        changed["changes"][0]["path"], "groups[web].max",
        "{changed}"
    );

    // A new team file that defines the shared cloud differently is refused.
    put(
        &policies.join("c-db.yml"),
        &team("db", 4).replace("boot_delay: 1s", "boot_delay: 2s"),
    );
    let refused = wait_for(dir.path(), "a refusal of c-db.yml", |r| {
        r["record"] == "config_rejected"
            && r["errors"]
                .as_str()
                .unwrap_or("")
                .contains("defined differently")
    });
    assert!(
        refused["errors"].as_str().unwrap().contains("c-db.yml"),
        "{refused}"
    );

    // Defined the same way, the new team's group joins the run.
    put(&policies.join("c-db.yml"), &team("db", 4));
    let joined = wait_for(dir.path(), "config_changed adding db", |r| {
        r["record"] == "config_changed"
            && r["changes"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["path"] == "groups[db]"))
    });
    assert!(joined["changes"][0]["after"].is_object(), "{joined}");
    wait_for(dir.path(), "a decision of the new group", |r| {
        r["group"] == "db"
    });
    let (code, out, err) = stop(child);
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn state_is_refused_in_virtual_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.yml"),
        POLICY.replace("      clock: wall\n", ""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["run", "policy.yml", "--state", "state.redb", "-q"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--state") && err.contains("virtual time"),
        "{err}"
    );
    assert!(!dir.path().join("state.redb").exists());
}
