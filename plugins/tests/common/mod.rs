//! Shared by the tests and the bench: the plugin libraries cargo built for them (dev-dependencies
//! of `hoist-plugin`, so their `cdylib`s sit next to the test executable) and a small inventory.

#![allow(dead_code)]

use std::path::PathBuf;

/// The built shared library of crate `crate_name` (`hoist_plugin_static_pool`).
pub fn plugin_library(crate_name: &str) -> PathBuf {
    hoist_plugin::test_support::built_library(crate_name).unwrap_or_else(|e| panic!("{e}"))
}

/// A small inventory for the static pool: pool `web` (3 machines of class `r640`, min 1) and
/// pool `batch` (2 machines of class `r740xd`, min 0).
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
