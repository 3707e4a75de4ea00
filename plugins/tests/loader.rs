//! The loader against real plugin libraries built by this workspace: the example plugin works
//! through every trait it provides, and every way a library can be unfit or misbehave gives an
//! error that names the file and says what to do, while the host keeps running.

use std::path::{Path, PathBuf};

use hoist_plugin::hoist_api::registry::{BuildContext, ProviderFactory, ProviderRegistry};
use hoist_plugin::hoist_api::{ErrorKind, InstanceState};
use hoist_plugin::{Capability, LoadError, PluginFactory, PluginLibrary};
use serde_json::json;

mod common;
use common::{INVENTORY, plugin_library};

fn static_pool() -> std::path::PathBuf {
    plugin_library("hoist_plugin_static_pool")
}

fn inventory_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("machines.yaml"), INVENTORY).unwrap();
    dir
}

#[test]
fn metadata_is_read_without_configuration() {
    let library = PluginLibrary::open(static_pool()).unwrap();
    let meta = library.metadata();
    assert_eq!(meta.name, "static-pool");
    assert_eq!(meta.abi_version, hoist_plugin::ABI_VERSION);
    assert_eq!(meta.kit_version, hoist_plugin::KIT_VERSION);
    assert_eq!(
        meta.provides,
        vec![Capability::Scaling, Capability::Catalog]
    );
    assert!(
        meta.operations
            .contains(&"scaling.set_desired_capacity".to_owned())
    );
    assert!(
        meta.operations
            .contains(&"catalog.instance_classes".to_owned())
    );
    assert!(!meta.operations.iter().any(|op| op.starts_with("billing.")));
}

#[tokio::test]
async fn the_example_plugin_scales_a_pool_through_the_loader() {
    let dir = inventory_dir();
    let library = PluginLibrary::open(static_pool()).unwrap();
    let set = library
        .instantiate("pool", dir.path(), &json!({ "inventory": "machines.yaml" }))
        .await
        .unwrap();
    assert_eq!(set.name, "pool");
    assert!(set.catalog.is_some());
    assert!(set.billing.is_none() && set.metrics.is_none());
    let scaling = set.scaling.expect("a plugin offers scaling");
    assert_eq!(scaling.name(), "static-pool");
    assert!(scaling.capabilities().set_desired_capacity);
    assert!(!scaling.capabilities().set_instance_class);

    let web = scaling.describe_group("web").await.unwrap();
    assert_eq!(
        (web.min_size, web.max_size, web.desired_capacity),
        (1, 3, 1)
    );
    assert_eq!(web.instances[0].id, "web-01");
    assert_eq!(web.instances[0].state, InstanceState::Running);

    scaling.set_desired_capacity("web", 3).await.unwrap();
    let web = scaling.describe_group("web").await.unwrap();
    assert_eq!(web.desired_capacity, 3);
    assert_eq!(web.instances.len(), 3);

    // Errors cross with their kind and message.
    let err = scaling.set_desired_capacity("web", 4).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.message() == "desired capacity 4 is outside [1, 3] of group web",
        "{err}"
    );
    assert_eq!(err.operation(), "scaling.set_desired_capacity");
    let err = scaling.describe_group("nope").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = scaling
        .set_instance_class("web", &hoist_api::ChangeInstanceClass::new("r740xd"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);

    scaling
        .remove_instances(
            "web",
            &hoist_plugin::hoist_api::RemoveInstances::new(vec!["web-02".to_owned()]),
        )
        .await
        .unwrap();
    let web = scaling.describe_group("web").await.unwrap();
    let ids: Vec<&str> = web.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["web-01", "web-03"]);
    assert_eq!(scaling.activities("web").await.unwrap().len(), 2);
    assert_eq!(scaling.list_groups().await.unwrap().len(), 2);

    let catalog = set.catalog.unwrap();
    let classes = catalog.instance_classes().await.unwrap();
    assert_eq!(classes.len(), 2);
    let r640 = catalog.instance_class("r640").await.unwrap();
    assert_eq!(r640.offerings.len(), 2, "r640 stands in rack-a and rack-b");
    assert_eq!(r640.offerings[0].price.per_hour(), 0.35);

    // The state survives a new instance (a restart of the host).
    drop(scaling);
    let again = library
        .instantiate("pool", dir.path(), &json!({ "inventory": "machines.yaml" }))
        .await
        .unwrap();
    assert_eq!(
        again
            .scaling_provider()
            .unwrap()
            .describe_group("web")
            .await
            .unwrap()
            .desired_capacity,
        2
    );
}

#[tokio::test]
async fn concurrent_calls_all_complete() {
    let dir = inventory_dir();
    let set = hoist_plugin::PluginLibrary::open(static_pool())
        .unwrap()
        .instantiate("pool", dir.path(), &json!({ "inventory": "machines.yaml" }))
        .await
        .unwrap();
    let calls = (0..200).map(|i| {
        let scaling = set.scaling.clone().expect("a plugin offers scaling");
        tokio::spawn(async move {
            let group = if i % 2 == 0 { "web" } else { "batch" };
            scaling.describe_group(group).await.map(|g| g.id)
        })
    });
    for (i, call) in calls.enumerate() {
        let id = call.await.unwrap().unwrap();
        assert_eq!(id, if i % 2 == 0 { "web" } else { "batch" });
    }
}

fn assert_names_file_and_advice(error: &LoadError, path: &Path, advice: &str) {
    let message = error.to_string();
    assert_eq!(error.path(), path);
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(advice),
        "expected `{advice}` in: {message}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let path = Path::new("/nonexistent/libnothing.so");
    let error = PluginLibrary::open(path).unwrap_err();
    assert!(matches!(error, LoadError::NotFound { .. }));
    assert_names_file_and_advice(
        &error,
        path,
        "relative path resolves against the policy file",
    );
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libfake.so");
    std::fs::write(&path, "this is a text file, not ELF").unwrap();
    let error = PluginLibrary::open(&path).unwrap_err();
    assert!(matches!(error, LoadError::NotALibrary { .. }), "{error:?}");
    assert_names_file_and_advice(&error, &path, "crate-type = [\"cdylib\"]");
    // The dynamic loader's own reason is kept.
    assert!(error.to_string().contains("libfake.so"), "{error}");
    let LoadError::NotALibrary { reason, .. } = &error else {
        unreachable!()
    };
    assert!(reason.contains("dlopen failed: "), "{reason}");
}

#[test]
fn a_library_without_the_version_symbol_is_not_a_plugin() {
    let path = plugin_library("hoist_plugin_fixture_no_version");
    let error = PluginLibrary::open(&path).unwrap_err();
    assert!(matches!(error, LoadError::NotAPlugin { .. }), "{error:?}");
    assert_names_file_and_advice(&error, &path, "hoist_plugin::export_plugin!");
}

#[test]
fn a_plugin_of_another_abi_version_is_refused_with_what_to_do() {
    let path = plugin_library("hoist_plugin_fixture_other_abi");
    // The fixture's entry aborts the process if called: refusing must happen before it.
    let error = PluginLibrary::open(&path).unwrap_err();
    match &error {
        LoadError::AbiMismatch { plugin_abi, .. } => {
            assert_eq!(*plugin_abi, hoist_plugin::ABI_VERSION + 1)
        }
        other => panic!("expected an ABI mismatch, got {other:?}"),
    }
    assert_names_file_and_advice(
        &error,
        &path,
        &format!(
            "Rebuild the plugin against hoist-plugin {}",
            hoist_plugin::KIT_VERSION
        ),
    );
    assert!(error.to_string().contains(&format!(
        "built for Hoist plugin ABI version {}",
        hoist_plugin::ABI_VERSION + 1
    )));
}

#[tokio::test]
async fn bad_configuration_reaches_the_user_verbatim() {
    let dir = inventory_dir();
    let library = PluginLibrary::open(static_pool()).unwrap();
    let cases = [
        (
            json!({}),
            "invalid configuration: missing field `inventory`",
        ),
        (
            json!({ "inventory": "machines.yaml", "warmup": "5 minutes" }),
            "invalid configuration at `warmup`: invalid duration",
        ),
        (
            json!({ "inventory": "machines.yaml", "on_enable": [] }),
            "on_enable: give the command as a non-empty list",
        ),
        (
            json!({ "inventory": "missing.yaml" }),
            "cannot read the inventory",
        ),
    ];
    for (config, expected) in cases {
        let error = library
            .instantiate("pool", dir.path(), &config)
            .await
            .unwrap_err();
        let LoadError::Rejected {
            message,
            error: inner,
            ..
        } = &error
        else {
            panic!("expected a rejection, got {error:?}");
        };
        assert!(message.contains(expected), "{config}: {message}");
        assert_eq!(inner.kind(), ErrorKind::Config);
        assert!(
            error
                .to_string()
                .contains(&static_pool().display().to_string())
        );
    }
}

#[tokio::test]
async fn a_panicking_plugin_fails_the_call_and_the_host_keeps_running() {
    let path = plugin_library("hoist_plugin_fixture_panicky");
    let library = PluginLibrary::open(&path).unwrap();

    let error = library
        .instantiate("p", Path::new("."), &json!({ "panic_in_create": true }))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("panicked in create: create is broken on purpose"),
        "{error}"
    );

    let set = library
        .instantiate("p", Path::new("."), &json!({}))
        .await
        .unwrap();
    for _ in 0..3 {
        let error = set
            .scaling_provider()
            .unwrap()
            .describe_group("web")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Other);
        assert!(
            error
                .message()
                .contains("plugin `panicky` panicked in scaling.describe_group: describe_group(web) is broken on purpose"),
            "{error}"
        );
        assert!(
            error.message().contains("the host keeps running"),
            "{error}"
        );
        // The same instance still answers other calls.
        assert!(
            set.scaling_provider()
                .unwrap()
                .list_groups()
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn the_factory_resolves_the_path_against_the_policy_directory() {
    let dir = inventory_dir();
    let library = static_pool();
    let mut registry = ProviderRegistry::new();
    registry.register(std::sync::Arc::new(PluginFactory::new()));
    // A relative path from the policy directory to the library.
    std::os::unix::fs::symlink(&library, dir.path().join("libpool.so")).unwrap();
    let settings = json!({ "plugin": "./libpool.so", "config": { "inventory": "machines.yaml" } });
    let ctx = BuildContext {
        name: "pool",
        settings: &settings,
        base_dir: dir.path(),
        groups: &[],
    };
    PluginFactory.validate(ctx).unwrap();
    let built = registry.build("plugin", ctx).await.unwrap();
    assert!(built.clock.is_none());
    assert_eq!(built.set.name, "pool");
    assert_eq!(
        built
            .set
            .scaling_provider()
            .unwrap()
            .describe_group("batch")
            .await
            .unwrap()
            .desired_capacity,
        0
    );

    let typo = json!({ "plugn": "./libpool.so" });
    let error = PluginFactory
        .validate(BuildContext {
            settings: &typo,
            ..ctx
        })
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(error.message().contains("unknown field `plugn`"), "{error}");

    let bad_config = json!({ "plugin": "./libpool.so", "config": { "inventory": 3 } });
    let error = registry
        .build(
            "plugin",
            BuildContext {
                settings: &bad_config,
                ..ctx
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(
        error
            .message()
            .contains("invalid configuration at `inventory`"),
        "{error}"
    );
    assert_eq!(error.provider(), "pool");
}

#[test]
#[allow(unsafe_code)]
fn the_plugin_refuses_a_host_of_another_abi_version() {
    let path = static_pool();
    // SAFETY: the workspace's own example plugin; its entry takes a u32 and returns a pointer.
    unsafe {
        let library = libloading::Library::new(&path).unwrap();
        let entry = library
            .get::<hoist_plugin::abi::EntryFn>(hoist_plugin::abi::ENTRY_SYMBOL)
            .unwrap();
        assert!(entry(hoist_plugin::ABI_VERSION + 1).is_null());
        assert!(!entry(hoist_plugin::ABI_VERSION).is_null());
        // Never unloaded, like the loader does.
        std::mem::forget(library);
    }
}

#[tokio::test]
async fn the_example_policy_file_builds_its_plugin_provider() {
    let example = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("examples/static-pool");
    // Read as YAML only: the engine's own loading of this file is tested by `hoist validate`
    // in the CLI tests, and this crate depends on the provider SDK alone.
    let text = std::fs::read_to_string(example.join("policy.yaml")).unwrap();
    let document: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let mut settings = document["providers"]["pool"].clone();
    assert!(settings["plugin"].is_string(), "{settings}");
    // The file names the default target directory; point at the library this test run built.
    settings["plugin"] = json!(static_pool());
    // Keep the state file out of the source tree.
    let state = tempfile::tempdir().unwrap();
    settings["config"]["state_file"] = json!(state.path().join("state.json"));
    let ctx = BuildContext {
        name: "pool",
        settings: &settings,
        base_dir: &example,
        groups: &[],
    };
    let built = PluginFactory.build(ctx).await.unwrap();
    let web = built
        .set
        .scaling_provider()
        .unwrap()
        .describe_group("web")
        .await
        .unwrap();
    assert_eq!(
        (web.min_size, web.max_size, web.desired_capacity),
        (1, 4, 1)
    );
    assert_eq!(document["groups"][0]["provider"], "pool");
}
