//! Cost of the plugin boundary: loading a plugin library, and one call through the loader
//! compared with the same provider (the static pool) linked into the host directly.

use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use hoist_plugin::PluginLibrary;
use hoist_plugin::hoist_api::ScalingProvider;
use hoist_plugin_static_pool::{Config, StaticPool};

#[path = "../tests/common/mod.rs"]
mod common;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("machines.yaml"), common::INVENTORY).unwrap();
    let config = serde_json::json!({ "inventory": "machines.yaml" });
    let path = common::plugin_library("hoist_plugin_static_pool");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The first load pays for dlopen, relocation and the metadata call; later opens of the same
    // file reuse the mapping. Printed once, since it can only happen once per process.
    let started = Instant::now();
    let library = PluginLibrary::open(&path).unwrap();
    eprintln!("first load of {}: {:?}", path.display(), started.elapsed());

    c.bench_function(
        "open (already mapped): version check, table, metadata",
        |b| b.iter(|| PluginLibrary::open(&path).unwrap()),
    );
    c.bench_function(
        "instantiate through the plugin (config, inventory, state)",
        |b| {
            b.iter(|| {
                runtime
                    .block_on(library.instantiate("pool", dir.path(), &config))
                    .unwrap()
            })
        },
    );

    let plugin = runtime
        .block_on(library.instantiate("pool", dir.path(), &config))
        .unwrap()
        .scaling
        .expect("a plugin offers scaling");
    let direct: Arc<dyn ScalingProvider> = Arc::new(
        StaticPool::new(
            serde_json::from_value::<Config>(config.clone()).unwrap(),
            dir.path(),
        )
        .unwrap(),
    );
    let mut group = c.benchmark_group("describe_group");
    group.bench_function("linked directly", |b| {
        b.iter(|| runtime.block_on(direct.describe_group("web")).unwrap())
    });
    group.bench_function("through the plugin", |b| {
        b.iter(|| runtime.block_on(plugin.describe_group("web")).unwrap())
    });
    group.finish();
    let mut group = c.benchmark_group("list_groups");
    group.bench_function("linked directly", |b| {
        b.iter(|| runtime.block_on(direct.list_groups()).unwrap())
    });
    group.bench_function("through the plugin", |b| {
        b.iter(|| runtime.block_on(plugin.list_groups()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
