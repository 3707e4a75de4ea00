//! The `hoist` binary itself, scraped by a real Prometheus: `hoist run` on the wall clock
//! (driving the example static-pool plugin) serves `/metrics`, `/healthz` and `/readyz` on the
//! address Prometheus scrapes, and the group's sizes and decisions arrive in Prometheus.
//!
//! Needs the `hoist` binary built next to this test (`scripts/test.sh` builds every target
//! first) and the servers of `scripts/servers/prometheus.sh`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hoist_integration_tests::server_url;
use hoist_prometheus::PrometheusSource;

/// `target/<profile>/` of this test executable.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>")
        .to_owned()
}

fn hoist_binary() -> PathBuf {
    let path = profile_dir().join("hoist");
    assert!(
        path.exists(),
        "{} does not exist: build the binary first (`cargo build --workspace --all-targets`, as scripts/test.sh does)",
        path.display()
    );
    path
}

fn static_pool_library() -> PathBuf {
    let name = format!(
        "{}hoist_plugin_static_pool{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    [
        profile_dir().join("deps").join(&name),
        profile_dir().join(&name),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("{name} was not built next to this test"))
}

/// Kills the child when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.ok()?;
    let status = reply.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, reply))
}

#[tokio::test]
async fn prometheus_scrapes_hoist_run() {
    let prometheus_url = server_url("HOIST_TEST_PROMETHEUS_URL");
    let scrape = server_url("HOIST_TEST_PROMETHEUS_SCRAPE_ADDR");

    let dir = tempfile::tempdir().expect("temporary directory");
    let example = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../plugins/examples/static-pool");
    std::fs::copy(
        example.join("machines.yaml"),
        dir.path().join("machines.yaml"),
    )
    .expect("copy the inventory");
    // Every minute of every day, for an hour: at least 3 machines.
    let policy = format!(
        r#"
providers:
  pool:
    plugin: {library}
    config:
      inventory: machines.yaml
run:
  interval: 1s
groups:
  - name: web
    provider: pool
    min: 1
    max: 4
    policies:
      - scheduled: {{ cron: "* * * * *", duration: 1h, min: 3 }}
"#,
        library = static_pool_library().display()
    );
    std::fs::write(dir.path().join("policy.yaml"), policy).expect("write the policy");

    let child = Command::new(hoist_binary())
        .args(["run", "policy.yaml", "--quiet", "--metrics-listen", &scrape])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hoist run");
    let mut running = Running(child);

    // Health endpoints answer once the server is up; ready after the first evaluation.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = running.0.try_wait().expect("poll hoist") {
            let mut stderr = String::new();
            if let Some(mut err) = running.0.stderr.take() {
                use std::io::Read;
                let _ = err.read_to_string(&mut stderr);
            }
            panic!("hoist run exited early with {status}: {stderr}");
        }
        if let (Some((200, _)), Some((200, _))) = (
            http_get(&scrape, "/healthz").await,
            http_get(&scrape, "/readyz").await,
        ) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "hoist did not become ready on {scrape}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Prometheus scrapes it and answers queries over what it exported.
    let prometheus = PrometheusSource::builder(prometheus_url)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("prometheus source");
    let wanted = [
        (
            "hoist_group_desired_instances{group=\"web\",provider=\"pool\"}",
            3.0,
        ),
        ("hoist_group_max_instances{group=\"web\"}", 4.0),
        ("sum(hoist_decisions_total{direction=\"out\"})", 1.0),
        ("hoist_ready", 1.0),
    ];
    for (query, value) in wanted {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut last;
        loop {
            match prometheus.query_instant(query, None).await {
                Ok(series)
                    if series
                        .iter()
                        .any(|s| s.samples.iter().any(|x| x.value >= value)) =>
                {
                    break;
                }
                other => last = format!("{other:?}"),
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Prometheus never saw `{query}` >= {value}; last answer: {last}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
