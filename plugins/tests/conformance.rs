//! The provider conformance suite (`hoist_api::testkit`) against the example plugin, loaded
//! through the real loader: the same checks every built-in provider passes.

use hoist_api::testkit::{ConformanceTarget, run_conformance};
use hoist_plugin::PluginLibrary;
use serde_json::json;

mod common;
use common::{INVENTORY, plugin_library};

/// Checks that must run and pass, not be skipped: everything the static pool declares.
const MUST_PASS: &[&str] = &[
    "scaling.lists_group",
    "scaling.describes_group",
    "scaling.unknown_group_not_found",
    "scaling.sets_desired_within_bounds",
    "scaling.rejects_out_of_bounds",
    "scaling.removes_chosen_instance",
    "scaling.rejects_unknown_instance",
    "scaling.sets_instance_class",
    "scaling.activities",
    "catalog.lists_classes",
    "catalog.lookup",
    "catalog.knows_group_class",
    "scaling.group_restored",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_pool_plugin_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("machines.yaml"), INVENTORY).unwrap();
    let library = PluginLibrary::open(plugin_library("hoist_plugin_static_pool")).unwrap();
    let set = library
        .instantiate("pool", dir.path(), &json!({ "inventory": "machines.yaml" }))
        .await
        .unwrap();
    let report = run_conformance(&ConformanceTarget::new(set, "web")).await;
    println!("{report}");
    report.assert_passed();
    let passed = report.passed_names();
    for name in MUST_PASS {
        assert!(passed.contains(name), "{name} did not pass:\n{report}");
    }
}
