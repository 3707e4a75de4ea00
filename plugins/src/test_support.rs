//! Helpers for a plugin's own tests: find the `cdylib` cargo built next to the test executable,
//! so a test loads the real library through the real loader. With the `testkit` feature,
//! `hoist_plugin::hoist_api::testkit` is the conformance suite to run against it.

use std::path::PathBuf;

/// The shared library of crate `crate_name` (underscores, e.g. `hello_pool`) that cargo built
/// for the running test or bench: `target/<profile>/deps/lib<crate_name>.so` (or
/// `target/<profile>/`). Cargo builds it when the crate under test is a `cdylib` (for its own
/// integration tests) or a dev-dependency with `crate-type = ["cdylib", "rlib"]`.
pub fn built_library(crate_name: &str) -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the test executable: {e}"))?;
    let deps = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", exe.display()))?;
    let file = format!(
        "{}{crate_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let mut looked = Vec::new();
    for dir in [Some(deps), deps.parent()].into_iter().flatten() {
        let candidate = dir.join(&file);
        if candidate.exists() {
            return Ok(candidate);
        }
        looked.push(dir.display().to_string());
    }
    Err(format!(
        "{file} was not found in {}; give the crate `crate-type = [\"cdylib\", \"rlib\"]` so \
         cargo builds the library for tests",
        looked.join(" or ")
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_library_says_where_it_looked_and_what_to_do() {
        let error = super::built_library("no_such_crate_here").unwrap_err();
        assert!(error.contains("no_such_crate_here"), "{error}");
        assert!(error.contains("crate-type"), "{error}");
    }
}
