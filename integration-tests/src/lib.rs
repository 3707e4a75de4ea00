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
