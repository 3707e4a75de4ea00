//! The fuzz targets, each a test that runs for `HOIST_FUZZ_SECONDS` seconds (default 3) after
//! its whole corpus. See `fuzz/README.md` for running longer, replaying and adding a case.

#[test]
fn policy_file() {
    hoist_fuzz::run_test(&hoist_fuzz::POLICY_FILE);
}

#[test]
fn trace_csv() {
    hoist_fuzz::run_test(&hoist_fuzz::TRACE_CSV);
}

#[test]
fn plugin_protocol() {
    hoist_fuzz::run_test(&hoist_fuzz::PLUGIN_PROTOCOL);
}
