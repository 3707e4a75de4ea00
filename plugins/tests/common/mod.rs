//! Finds the plugin libraries cargo built for this test or bench: they are dev-dependencies of
//! `hoist-plugin`, so their `cdylib`s sit next to the test executable in `target/<profile>/deps`.

#![allow(dead_code)]

use std::path::PathBuf;

/// The built shared library of crate `crate_name` (`hoist_plugin_static_pool`).
pub fn plugin_library(crate_name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the deps directory").to_owned();
    let file = format!(
        "{}{crate_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    for dir in [deps.clone(), deps.parent().unwrap_or(&deps).to_owned()] {
        let candidate = dir.join(&file);
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "{file} was not built next to {}; it is a dev-dependency of hoist-plugin, so \
         `cargo test -p hoist-plugin` builds it",
        exe.display()
    )
}

/// A small inventory for the static pool: one class, pool `web` (3 machines, min 1) and pool
/// `batch` (2 machines, min 0).
pub const INVENTORY: &str = "
classes:
  - { name: r640, vcpus: 32, memory_mib: 262144, price_per_hour: 0.35 }
  - { name: r740xd, family: storage, vcpus: 48, memory_mib: 393216, price_per_hour: 0.6 }
pools:
  - id: web
    instance_class: r640
    min_size: 1
    machines:
      - { id: web-01, zone: rack-a, address: 10.0.0.11 }
      - { id: web-02, zone: rack-a, address: 10.0.0.12 }
      - { id: web-03, zone: rack-b, address: 10.0.0.13 }
  - id: batch
    instance_class: r740xd
    machines:
      - { id: batch-01, zone: rack-b }
      - { id: batch-02, zone: rack-b }
";
