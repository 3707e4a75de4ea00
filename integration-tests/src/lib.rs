//! Shared helpers for the tests against real servers.
//!
//! `scripts/test.sh` installs and starts each server once per run and exports its address in an
//! environment variable. A test that needs a server calls [`server_url`]; when the variable is
//! missing the test fails with a message that says how to run it, never passes silently.

/// The base URL of a test server from the environment variable `var`
/// (e.g. `HOIST_TEST_MOTO_URL`). Panics with instructions when it is not set.
pub fn server_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
        _ => panic!(
            "{var} is not set: this test needs a real server. Run `scripts/test.sh`, which \
             installs and starts the test servers and sets {var}."
        ),
    }
}

/// The `hoist` binary next to the running test's executable (built by `cargo build --workspace
/// --all-targets`, as `scripts/test.sh` does). Panics with instructions when it is missing.
pub fn hoist_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a target directory")
        .join("hoist");
    assert!(
        path.exists(),
        "{} does not exist: build the binary first (`cargo build --workspace --all-targets`, as scripts/test.sh does)",
        path.display()
    );
    path
}

/// What a finished command wrote, stdout then stderr.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Calls a cloud fake's control API (`/_fake/...` under `base`) with an optional JSON body and
/// returns its JSON answer (`null` when empty). Panics on an error status, naming it.
pub async fn fake_control(
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut request = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("the fake answers");
    let status = response.status();
    let text = response.text().await.expect("the fake's answer");
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}
