//! The example program as a user runs it: assembled by `hoist_engine::assembly`, so an AWS
//! provider runs in the recommended layers (here: its retries are seen), the file's settings win
//! over the environment, bad files are reported at their line, and simulated files run too.
//!
//! Every AWS endpoint is a local listener; nothing leaves the machine. The environment of each
//! child process is set explicitly, so these tests never touch their own process's.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_http::testing::BlockingEndpoint;

/// A local HTTP endpoint that counts requests and answers each with `status` and no body.
struct Endpoint(BlockingEndpoint);

impl Endpoint {
    fn start(status: &'static str) -> Endpoint {
        Endpoint(BlockingEndpoint::start(status))
    }

    fn hits(&self) -> usize {
        self.0.hits()
    }
}

/// Runs the example on `policy` with a clean AWS environment (static test credentials, no
/// profile files, no instance metadata, SDK retries off so only Hoist's retry layer retries)
/// plus `env`.
fn aws_autoscale(policy: &Path, home: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aws-autoscale"));
    command.arg(policy).arg("--once").current_dir(home);
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    command
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "example-secret")
        .env("AWS_MAX_ATTEMPTS", "1")
        .envs(env.iter().copied());
    command.output().expect("run aws-autoscale")
}

fn write_policy(dir: &Path, aws_block: &str) -> PathBuf {
    let path = dir.join("policy.yaml");
    let text = format!(
        "providers:\n  prod:\n    aws:\n{aws_block}\ngroups:\n  - name: web-asg\n    provider: prod\n    min: 1\n    max: 10\n    policies:\n      - target_tracking: {{ metric: utilization, target: 0.6 }}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_aws_provider_runs_in_the_recommended_layers_at_the_files_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    // Both unavailable: the retry layer retries what a retry may cure.
    let file_endpoint = Endpoint::start("503 Service Unavailable");
    let environment_endpoint = Endpoint::start("503 Service Unavailable");
    let policy = write_policy(
        dir.path(),
        &format!(
            "      region: us-east-1\n      endpoint_url: {}\n      groups: {{ names: [web-asg] }}",
            file_endpoint.0.url()
        ),
    );
    let out = aws_autoscale(
        &policy,
        dir.path(),
        &[("AWS_ENDPOINT_URL", environment_endpoint.0.url())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("prod: retrying "),
        "no retry reported: {stderr}"
    );
    assert!(stderr.contains("could not observe"), "{stderr}");
    assert!(
        file_endpoint.hits() >= 2,
        "the file's endpoint saw {} request(s); the retry layer should have retried",
        file_endpoint.hits()
    );
    assert_eq!(
        environment_endpoint.hits(),
        0,
        "AWS_ENDPOINT_URL must not override the file's endpoint_url"
    );
}

#[test]
fn a_bad_field_in_the_aws_block_is_reported_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "      region: us-east-1\n      groups: { names: [web-asg] }\n      instance_refresh: sometimes",
    );
    let out = aws_autoscale(&policy, dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // Line 6 of the file: `      instance_refresh: sometimes`, whose value starts at column 25.
    assert!(
        stderr.contains("policy.yaml:6:25: providers.prod.aws.instance_refresh:"),
        "{stderr}"
    );
}

#[test]
fn a_simulated_policy_file_runs_too() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../quickstart.yaml");
    let out = aws_autoscale(&quickstart, dir.path(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("desired"), "{stdout}");
}
