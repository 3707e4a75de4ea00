//! `hoist route` on the simulated cloud: a pool chosen by the request's kind, a session that
//! stays on its instance, JSON errors for work no rule takes, and a rule naming no pool refused
//! by `hoist validate` and `hoist route` with its line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Two pools on one simulated cloud: `web` over two groups of two instances each, `batch`
/// over one group; queries go to `web`, tasks to `batch`.
const POLICY: &str = "\
providers:
  sim:
    simulated:
      seed: 3
      groups:
        web-a: { desired: 2 }
        web-b: { desired: 2, instance_class: compute.xlarge }
        jobs: { desired: 1 }
pools:
  - name: web
    min: 2
    max: 10
    policies:
      - target_tracking: { metric: utilization, target: 0.6 }
    members:
      - { provider: sim, group: web-a, max: 5 }
      - { provider: sim, group: web-b, max: 5 }
  - name: batch
    min: 1
    max: 4
    policies:
      - target_tracking: { metric: utilization, target: 0.6 }
    members:
      - { provider: sim, group: jobs, max: 4 }
routes:
  - name: queries
    match: { kind: query }
    pool: web
  - name: tasks
    match: { kind: task, fits: { cpu: 8 } }
    pool: batch
";

/// A running `hoist route`, killed if a test fails before stopping it.
struct Running {
    child: Child,
    address: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hoist(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run hoist")
}

/// Starts `hoist route policy.yml` on a free port and waits for its address.
fn start(dir: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args([
            "route",
            "policy.yml",
            "--listen",
            "127.0.0.1:0",
            "--refresh",
            "1s",
        ])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hoist route");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_else(|| {
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("hoist route printed no address; stderr:\n{err}")
    });
    let address = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    // Keep reading standard output so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Running { child, address }
}

/// One HTTP/1.1 request on its own connection: the status and the body.
fn http(address: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn hoist_route_picks_the_pool_by_kind_and_keeps_a_session_on_its_instance() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yml"), POLICY).unwrap();
    let running = start(dir.path());
    let address = running.address.as_str();

    let (status, body) = http(address, "GET", "/healthz", "");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = http(address, "GET", "/v1/pools", "");
    assert_eq!(status, 200);
    let pools = json(&body);
    let web = &pools["pools"][0];
    assert_eq!(web["pool"], "web");
    assert_eq!(web["endpoints"].as_array().unwrap().len(), 4, "{pools}");

    // A query goes to `web`; its session stays on one instance call after call.
    let request = r#"{"kind": "query", "session": "user-42"}"#;
    let (status, body) = http(address, "POST", "/v1/route", request);
    assert_eq!(status, 200, "{body}");
    let first = json(&body);
    assert_eq!(first["pool"], "web");
    assert_eq!(first["rule"], "queries");
    assert_eq!(first["sticky"], true);
    assert!(
        ["web-a", "web-b"].contains(&first["endpoint"]["group"].as_str().unwrap()),
        "{first}"
    );
    let instance = first["endpoint"]["id"].as_str().unwrap().to_owned();
    let done = format!(r#"{{"pool": "web", "endpoint": "{instance}"}}"#);
    let (status, body) = http(address, "POST", "/v1/done", &done);
    assert_eq!(status, 200, "{body}");
    for _ in 0..5 {
        let (status, body) = http(address, "POST", "/v1/route", request);
        assert_eq!(status, 200, "{body}");
        assert_eq!(json(&body)["endpoint"]["id"], instance.as_str());
        http(address, "POST", "/v1/done", &done);
    }

    // A task that fits goes to `batch`; one that does not fit, or of a kind no rule names, is
    // refused with a message that says what it was.
    let (status, body) = http(
        address,
        "POST",
        "/v1/route",
        r#"{"kind": "task", "needs": {"cpu": 4}}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["pool"], "batch");
    for (request, says) in [
        (r#"{"kind": "task", "needs": {"cpu": 16}}"#, "needs: cpu 16"),
        (r#"{"kind": "video"}"#, "kind `video`"),
    ] {
        let (status, body) = http(address, "POST", "/v1/route", request);
        assert_eq!(status, 422, "{body}");
        let error = json(&body)["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains("no routing rule matches") && error.contains(says),
            "{error}"
        );
        assert!(error.contains("2 rules tried"), "{error}");
    }
    let (status, body) = http(address, "POST", "/v1/route", "{\"kind\": ");
    assert_eq!(status, 422);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("not a routing request")
    );

    let (status, metrics) = http(address, "GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("hoist_route_requests_total{pool=\"web\",rule=\"queries\"} 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hoist_route_in_flight{pool=\"web\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hoist_route_in_flight{pool=\"batch\"} 1"),
        "{metrics}"
    );

    // SIGTERM stops it cleanly.
    let mut running = running;
    let status = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = running.child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn a_rule_naming_no_pool_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let broken = POLICY.replace("    pool: batch\n", "    pool: jobs\n");
    std::fs::write(dir.path().join("policy.yml"), &broken).unwrap();
    let line = broken.lines().position(|l| l == "    pool: jobs").unwrap() + 1;
    for args in [
        &["validate", "policy.yml"][..],
        &["route", "policy.yml", "--listen", "127.0.0.1:0"][..],
    ] {
        let output = hoist(dir.path(), args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("policy.yml:{line}")),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("routes[1].pool: no pool named `jobs`; the pools are `batch`, `web`"),
            "{args:?}: {stderr}"
        );
    }
    // A file without routes cannot be served.
    let no_routes = POLICY.split("routes:").next().unwrap();
    std::fs::write(dir.path().join("policy.yml"), no_routes).unwrap();
    let output = hoist(dir.path(), &["route", "policy.yml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no `routes:`"));
}
