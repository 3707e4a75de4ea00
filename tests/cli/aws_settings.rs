//! The `hoist` binary on `aws:` settings, as a user runs it: what the policy file says wins over
//! the environment (endpoint, region, profile and its credentials), and a bad field deep in an
//! `aws:` block is reported at that field's own line.
//!
//! Every AWS endpoint is a local listener that records the requests it gets; nothing leaves
//! the machine. Each child process gets its environment set explicitly (every inherited `AWS_*`
//! variable removed first), so these tests never change their own process's environment.
#![cfg(feature = "aws")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_http::testing::BlockingEndpoint;

/// A local HTTP endpoint that records the head of every request and answers each with an
/// empty HTTP 400, which neither the SDK nor Hoist retries.
struct Endpoint(BlockingEndpoint);

impl Endpoint {
    fn start() -> Endpoint {
        Endpoint(BlockingEndpoint::start("400 Bad Request"))
    }

    fn requests(&self) -> Vec<String> {
        self.0.requests()
    }
}

/// Runs `hoist` in `home` with no inherited `AWS_*` variable, no profile files unless `env`
/// names some, no instance metadata, plus `env`.
fn hoist(args: &[&str], home: &Path, env: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
    command.args(args).current_dir(home);
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
        .env("AWS_MAX_ATTEMPTS", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run hoist")
}

fn write_policy(dir: &Path, aws_block: &str) -> PathBuf {
    let path = dir.join("policy.yaml");
    let text = format!(
        "providers:\n  prod:\n    aws:\n{aws_block}\ngroups:\n  - name: web-asg\n    provider: prod\n    min: 1\n    max: 10\n    policies:\n      - target_tracking: {{ metric: utilization, target: 0.6 }}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The SigV4 scope of a request: `credential=KEY/DATE/REGION/SERVICE/aws4_request`.
fn credential_scope(head: &str) -> &str {
    let start = head.find("credential=").expect("a signed request") + "credential=".len();
    let rest = &head[start..];
    &rest[..rest.find([',', ' ', '\r']).unwrap_or(rest.len())]
}

#[test]
fn plan_sends_to_the_files_endpoint_url_not_aws_endpoint_url() {
    let dir = tempfile::tempdir().unwrap();
    let file_endpoint = Endpoint::start();
    let environment = Endpoint::start();
    let policy = write_policy(
        dir.path(),
        &format!(
            "      region: us-east-1\n      endpoint_url: \"{}\"\n      groups: {{ names: [web-asg] }}",
            file_endpoint.0.url()
        ),
    );
    let out = hoist(
        &["plan", policy.to_str().unwrap()],
        dir.path(),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDENV".into()),
            ("AWS_SECRET_ACCESS_KEY", "env-secret".into()),
            ("AWS_ENDPOINT_URL", environment.0.url().to_owned()),
            (
                "AWS_ENDPOINT_URL_AUTO_SCALING",
                environment.0.url().to_owned(),
            ),
            ("AWS_ENDPOINT_URL_EC2", environment.0.url().to_owned()),
        ],
    );
    assert!(
        environment.requests().is_empty(),
        "AWS_ENDPOINT_URL's endpoint was contacted although the file names another: {:?}\n{}",
        environment.requests(),
        text(&out)
    );
    let requests = file_endpoint.requests();
    assert!(
        requests.iter().any(|r| r.contains("autoscaling")),
        "the file's endpoint got no Auto Scaling request: {requests:?}\n{}",
        text(&out)
    );
}

#[test]
fn plan_without_an_endpoint_in_the_file_follows_aws_endpoint_url() {
    let dir = tempfile::tempdir().unwrap();
    let environment = Endpoint::start();
    let policy = write_policy(
        dir.path(),
        "      region: us-east-1\n      groups: { names: [web-asg] }",
    );
    let out = hoist(
        &["plan", policy.to_str().unwrap()],
        dir.path(),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDENV".into()),
            ("AWS_SECRET_ACCESS_KEY", "env-secret".into()),
            ("AWS_ENDPOINT_URL", environment.0.url().to_owned()),
        ],
    );
    assert!(
        !environment.requests().is_empty(),
        "AWS_ENDPOINT_URL applies when the file names no endpoint\n{}",
        text(&out)
    );
}

#[test]
fn the_files_region_and_profile_win_over_the_environments() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &config,
        "[profile from-file]\nregion = eu-west-3\n\n[profile from-env]\nregion = sa-east-1\n",
    )
    .unwrap();
    std::fs::write(
        &credentials,
        "[from-file]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n\n[from-env]\naws_access_key_id = AKIDENVPROFILE\naws_secret_access_key = env-profile-secret\n",
    )
    .unwrap();
    let environment = [
        ("AWS_CONFIG_FILE", config.display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            credentials.display().to_string(),
        ),
        ("AWS_PROFILE", "from-env".to_owned()),
        ("AWS_REGION", "us-west-2".to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIDENV".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "env-secret".to_owned()),
    ];
    // (settings besides the endpoint, the credential scope the request must be signed with)
    let cases = [
        // The profile gives the credentials and the region, over AWS_PROFILE, AWS_REGION and
        // AWS_ACCESS_KEY_ID.
        ("      profile: from-file", "akidprofile/", "/eu-west-3/"),
        // A region in the file wins over both the profile's and AWS_REGION.
        (
            "      profile: from-file\n      region: ap-south-1",
            "akidprofile/",
            "/ap-south-1/",
        ),
        // Without a profile in the file, the environment's credentials apply, and the file's
        // region over AWS_REGION.
        ("      region: ca-central-1", "akidenv/", "/ca-central-1/"),
    ];
    for (settings, key, region) in cases {
        let endpoint = Endpoint::start();
        let policy = write_policy(
            dir.path(),
            &format!(
                "{settings}\n      endpoint_url: \"{}\"\n      groups: {{ names: [web-asg] }}",
                endpoint.0.url()
            ),
        );
        let out = hoist(
            &["plan", policy.to_str().unwrap()],
            dir.path(),
            &environment,
        );
        let requests = endpoint.requests();
        let first = requests.first().unwrap_or_else(|| {
            panic!(
                "{settings}: no request reached the endpoint\n{}",
                text(&out)
            )
        });
        let scope = credential_scope(first);
        assert!(
            scope.starts_with(key) && scope.contains(region),
            "{settings}: signed as {scope}, expected {key}…{region}"
        );
    }
}

#[test]
fn validate_reports_a_bad_aws_field_at_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aws-bad.yaml");
    std::fs::write(
        &path,
        r#"providers:
  prod:
    aws:
      endpoint_url: "http://127.0.0.1:5000"
      groups: { names: [web-asg] }
      instance_refresh: false
      region: "US East 1"
  staging:
    aws:
      region: eu-west-1
      custom_metric_namespace: Hoist
      regoin: eu-west-2
  tagged:
    aws:
      region: eu-west-1
      groups:
        names:
          - api
          - ""
groups:
  - name: web-asg
    provider: prod
    min: 1
    max: 10
    policies:
      - target_tracking: { metric: utilization, target: 0.6 }
"#,
    )
    .unwrap();
    let out = hoist(&["validate", path.to_str().unwrap()], dir.path(), &[]);
    let output = text(&out);
    assert_eq!(out.status.code(), Some(2), "{output}");
    for expected in [
        // the value `"US East 1"` on line 7
        "aws-bad.yaml:7:15: providers.prod.aws.region: `US East 1` is not an AWS region name",
        // the misspelt key's value on line 12
        "aws-bad.yaml:12:15: providers.staging.aws.regoin: unknown field `regoin`; did you mean `region`?",
        // the second item of the list, line 19
        "aws-bad.yaml:19:13: providers.tagged.aws.groups.names[1]: is empty",
    ] {
        assert!(
            output.contains(expected),
            "expected {expected:?} in:\n{output}"
        );
    }
    // The path is given once, by the host, not repeated in the message text.
    assert!(!output.contains("field `region`"), "{output}");
    assert!(!output.contains("aws settings:"), "{output}");
}
