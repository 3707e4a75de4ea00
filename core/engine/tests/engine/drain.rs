//! A group's `drain` reaches its provider through assembly: on the simulated cloud, instances
//! chosen for scale-in drain for it before they are terminated.

use std::sync::Arc;

use hoist_api::InstanceState;
use hoist_api::registry::ProviderRegistry;
use hoist_engine::assembly;
use hoist_engine::events::NoEvents;

const POLICY: &str = "providers: {sim: {simulated: {seed: 1, groups: {web: {desired: 4}}}}}\ngroups:\n  - name: web\n    provider: sim\n    min: 1\n    max: 8\n    drain: 2m\n    policies: [{target_tracking: {metric: utilization, target: 0.6}}]\n";

#[tokio::test]
async fn a_groups_drain_reaches_the_simulated_cloud() {
    let mut registry = ProviderRegistry::new();
    hoist_sim::register_builtins(&mut registry);
    let document = assembly::parse(POLICY, "drain.yaml".as_ref(), &registry).unwrap();
    let built = assembly::build(&document, &registry, Arc::new(NoEvents))
        .await
        .unwrap();
    let sim = &built.providers["sim"];
    let scaling = sim.set.scaling_provider().unwrap();
    scaling.set_desired_capacity("web", 2).await.unwrap();
    let g = scaling.describe_group("web").await.unwrap();
    assert_eq!(g.count_in(InstanceState::Terminating), 2, "{g:?}");
    let clock = sim.clock.clone().expect("a virtual clock");
    clock
        .sleep_until(clock.now() + chrono::TimeDelta::minutes(2))
        .await;
    let g = scaling.describe_group("web").await.unwrap();
    assert_eq!(
        (g.instances.len(), g.count_in(InstanceState::Terminating)),
        (2, 0)
    );
}
