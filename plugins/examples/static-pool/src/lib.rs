//! `static-pool`: a Hoist provider plugin for a fixed pool of machines listed in a file (bare
//! metal, long-lived VMs, a lab). Each pool is a scaling group; its desired capacity is how many
//! of its machines are enabled. Enabling and disabling can run commands (start a service, drain
//! a node); state survives restarts in a JSON file.
//!
//! Configuration (under `config:` in a policy file):
//!
//! ```yaml
//! inventory: machines.yaml        # classes and pools (relative to the policy file)
//! state_file: pool-state.json     # optional; default <inventory>.state.json
//! warmup: 2m                      # optional; enabled machines report `pending` this long
//! on_enable: [ssh, "{address}", systemctl, start, app]    # optional, argv with placeholders
//! on_disable: [ssh, "{address}", systemctl, stop, app]    # {pool} {machine} {address} {zone}
//! hook_timeout: 1m                # optional
//! ```
//!
//! Machines are enabled in the order the inventory lists them and disabled most recently
//! enabled first; `protected` machines are never disabled to scale in.

#![deny(unsafe_code)]

pub mod inventory;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hoist_plugin::hoist_api::duration::HumanDuration;
use hoist_plugin::hoist_api::{
    Activity, CapacityType, CatalogCapabilities, Error, ErrorKind, Instance, InstanceCatalog,
    InstanceClass, InstanceId, InstanceState, RemoveInstances, ScalingCapabilities, ScalingGroup,
    ScalingProvider, checks,
};
use hoist_plugin::{Plugin, PluginContext};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::inventory::{Inventory, MachineSpec, PoolSpec};

/// Activities kept per pool.
const ACTIVITIES_KEPT: usize = 50;

/// The plugin's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The inventory file.
    pub inventory: PathBuf,
    /// Where enabled machines are remembered; default `<inventory>.state.json`.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// How long an enabled machine reports `pending` before `running`.
    #[serde(default)]
    pub warmup: HumanDuration,
    /// Command run to enable a machine (argv; `{pool}`, `{machine}`, `{address}`, `{zone}`).
    #[serde(default)]
    pub on_enable: Option<Vec<String>>,
    /// Command run to disable a machine.
    #[serde(default)]
    pub on_disable: Option<Vec<String>>,
    /// Longest a command may run.
    #[serde(default = "default_hook_timeout")]
    pub hook_timeout: HumanDuration,
}

fn default_hook_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}

/// What is remembered between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    pools: BTreeMap<String, PoolState>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PoolState {
    /// Enabled machines and when each was enabled.
    enabled: BTreeMap<String, DateTime<Utc>>,
    /// Most recent last.
    activities: Vec<Activity>,
    next_activity: u64,
}

/// The provider: a set of pools of machines.
#[derive(Debug)]
pub struct StaticPool {
    inventory: Inventory,
    state_file: PathBuf,
    warmup: Duration,
    on_enable: Option<Vec<String>>,
    on_disable: Option<Vec<String>>,
    hook_timeout: Duration,
    state: Mutex<State>,
}

impl StaticPool {
    /// Builds the provider from its configuration; relative paths resolve against `base_dir`.
    pub fn new(config: Config, base_dir: &Path) -> Result<StaticPool, Error> {
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base_dir.join(p)
            }
        };
        for (field, hook) in [
            ("on_enable", &config.on_enable),
            ("on_disable", &config.on_disable),
        ] {
            if hook.as_ref().is_some_and(Vec::is_empty) {
                return Err(Error::config(format!(
                    "{field}: give the command as a non-empty list, e.g. [systemctl, start, app]"
                )));
            }
        }
        let inventory_path = resolve(&config.inventory);
        let inventory = Inventory::load(&inventory_path)?;
        let state_file = match &config.state_file {
            Some(path) => resolve(path),
            None => {
                let mut name = inventory_path.clone().into_os_string();
                name.push(".state.json");
                PathBuf::from(name)
            }
        };
        let state = load_state(&state_file, &inventory, config.warmup.get())?;
        let pool = StaticPool {
            inventory,
            state_file,
            warmup: config.warmup.get(),
            on_enable: config.on_enable,
            on_disable: config.on_disable,
            hook_timeout: config.hook_timeout.get(),
            state: Mutex::new(state),
        };
        Ok(pool)
    }

    fn pool(&self, id: &str) -> Result<&PoolSpec, Error> {
        self.inventory.pool(id).ok_or_else(|| {
            Error::not_found(format!(
                "pool `{id}` (the inventory has: {})",
                self.inventory
                    .pools
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    fn group(&self, pool: &PoolSpec, state: &PoolState, now: DateTime<Utc>) -> ScalingGroup {
        let warmup = chrono::TimeDelta::from_std(self.warmup).unwrap_or(chrono::TimeDelta::MAX);
        let instances = pool
            .machines
            .iter()
            .filter_map(|m| state.enabled.get(&m.id).map(|at| (m, *at)))
            .map(|(m, at)| Instance {
                id: m.id.clone(),
                instance_class: pool.instance_class.clone(),
                zone: m.zone.clone(),
                capacity_type: CapacityType::OnDemand,
                state: if now < at + warmup {
                    InstanceState::Pending
                } else {
                    InstanceState::Running
                },
                launched_at: at,
                protected_from_scale_in: m.protected,
            })
            .collect::<Vec<_>>();
        let mut zones: Vec<String> = pool.machines.iter().map(|m| m.zone.clone()).collect();
        zones.sort();
        zones.dedup();
        ScalingGroup {
            id: pool.id.clone(),
            min_size: pool.min_size,
            max_size: pool.max_size(),
            desired_capacity: instances.len() as u32,
            instance_class: pool.instance_class.clone(),
            zones,
            instances,
            tags: BTreeMap::from([("provider".to_owned(), "static-pool".to_owned())]),
        }
    }

    /// Runs the enable or disable command for `machine`, if one is configured.
    async fn hook(
        &self,
        command: &Option<Vec<String>>,
        pool: &PoolSpec,
        machine: &MachineSpec,
    ) -> Result<(), Error> {
        let Some(argv) = command else { return Ok(()) };
        let argv: Vec<String> = argv
            .iter()
            .map(|arg| {
                arg.replace("{pool}", &pool.id)
                    .replace("{machine}", &machine.id)
                    .replace(
                        "{address}",
                        machine.address.as_deref().unwrap_or(&machine.id),
                    )
                    .replace("{zone}", &machine.zone)
            })
            .collect();
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]).kill_on_drop(true);
        let shown = argv.join(" ");
        let output = tokio::time::timeout(self.hook_timeout, cmd.output())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    format!("`{shown}` did not finish within {:?}", self.hook_timeout),
                )
            })?
            .map_err(|e| Error::config(format!("cannot run `{shown}`: {e}")))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error::transient(format!(
                "`{shown}` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    /// Enables machines (inventory order) until `target` are enabled, never touching `skip`.
    async fn enable_up_to(
        &self,
        pool: &PoolSpec,
        state: &mut PoolState,
        target: usize,
        skip: &[InstanceId],
    ) -> Result<Vec<String>, Error> {
        let mut enabled = Vec::new();
        for machine in &pool.machines {
            if state.enabled.len() >= target {
                break;
            }
            if state.enabled.contains_key(&machine.id) || skip.contains(&machine.id) {
                continue;
            }
            self.hook(&self.on_enable, pool, machine).await?;
            state.enabled.insert(machine.id.clone(), Utc::now());
            enabled.push(machine.id.clone());
        }
        Ok(enabled)
    }

    async fn disable(
        &self,
        pool: &PoolSpec,
        state: &mut PoolState,
        machine_id: &str,
    ) -> Result<(), Error> {
        if let Some(machine) = pool.machines.iter().find(|m| m.id == machine_id) {
            self.hook(&self.on_disable, pool, machine).await?;
        }
        state.enabled.remove(machine_id);
        Ok(())
    }

    fn record(&self, state: &mut PoolState, description: String) {
        state.next_activity += 1;
        state.activities.push(Activity {
            id: format!("act-{}", state.next_activity),
            description,
            started_at: Utc::now(),
            progress_percent: Some(100),
            done: true,
        });
        let excess = state.activities.len().saturating_sub(ACTIVITIES_KEPT);
        state.activities.drain(..excess);
    }

    fn save(&self, state: &State) -> Result<(), Error> {
        save_state(&self.state_file, state)
    }
}

fn load_state(path: &Path, inventory: &Inventory, warmup: Duration) -> Result<State, Error> {
    let mut state = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<State>(&bytes).map_err(|e| {
            Error::config(format!(
                "state file {} is not valid ({e}); fix or delete it (machines then start from \
                 each pool's min_size)",
                path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => {
            return Err(Error::config(format!(
                "cannot read the state file {}: {e}",
                path.display()
            )));
        }
    };
    // Machines taken as enabled on the first run are already serving: past their warmup.
    let since =
        Utc::now() - chrono::TimeDelta::from_std(warmup).unwrap_or(chrono::TimeDelta::zero());
    let mut changed = false;
    for pool in &inventory.pools {
        let entry = state.pools.entry(pool.id.clone()).or_insert_with(|| {
            changed = true;
            // A new pool starts with its first `min_size` machines taken as enabled.
            PoolState {
                enabled: pool
                    .machines
                    .iter()
                    .take(pool.min_size as usize)
                    .map(|m| (m.id.clone(), since))
                    .collect(),
                ..PoolState::default()
            }
        });
        // Forget machines the inventory no longer lists.
        let before = entry.enabled.len();
        entry
            .enabled
            .retain(|id, _| pool.machines.iter().any(|m| &m.id == id));
        changed |= entry.enabled.len() != before;
    }
    if changed {
        save_state(path, &state)?;
    }
    Ok(state)
}

fn save_state(path: &Path, state: &State) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::new(ErrorKind::Other, format!("cannot encode the state: {e}")))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            Error::transient(format!(
                "cannot write the state file {}: {e}",
                path.display()
            ))
        })
}

#[async_trait]
impl ScalingProvider for StaticPool {
    fn name(&self) -> &str {
        "static-pool"
    }

    fn capabilities(&self) -> ScalingCapabilities {
        ScalingCapabilities {
            set_desired_capacity: true,
            remove_instances: true,
            set_instance_class: false,
            activities: true,
        }
    }

    async fn list_groups(&self) -> Result<Vec<ScalingGroup>, Error> {
        let state = self.state.lock().await;
        let now = Utc::now();
        Ok(self
            .inventory
            .pools
            .iter()
            .map(|p| self.group(p, &state.pools[&p.id], now))
            .collect())
    }

    async fn describe_group(&self, group: &str) -> Result<ScalingGroup, Error> {
        let pool = self.pool(group)?;
        let state = self.state.lock().await;
        Ok(self.group(pool, &state.pools[&pool.id], Utc::now()))
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<(), Error> {
        let pool = self.pool(group)?;
        checks::desired_within_bounds(group, desired, pool.min_size, pool.max_size())?;
        let mut guard = self.state.lock().await;
        let mut state = guard.pools[&pool.id].clone();
        let before = state.enabled.len();
        let target = desired as usize;
        let result = if target > before {
            self.enable_up_to(pool, &mut state, target, &[])
                .await
                .map(|_| ())
        } else {
            // Most recently enabled first, later in the inventory first on ties.
            let mut victims: Vec<(DateTime<Utc>, usize, &MachineSpec)> = pool
                .machines
                .iter()
                .enumerate()
                .filter(|(_, m)| !m.protected)
                .filter_map(|(i, m)| state.enabled.get(&m.id).map(|at| (*at, i, m)))
                .collect();
            victims.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
            let mut result = Ok(());
            for (_, _, machine) in victims.into_iter().take(before - target) {
                if let Err(e) = self.disable(pool, &mut state, &machine.id).await {
                    result = Err(e);
                    break;
                }
            }
            if result.is_ok() && state.enabled.len() > target {
                result = Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "pool `{group}` keeps {} machines: the others are protected from scale-in",
                        state.enabled.len()
                    ),
                ));
            }
            result
        };
        let after = state.enabled.len();
        if after != before {
            self.record(
                &mut state,
                format!("desired capacity {before} -> {after} (asked {desired})"),
            );
        }
        guard.pools.insert(pool.id.clone(), state);
        self.save(&guard)?;
        result
    }

    async fn remove_instances(&self, group: &str, request: &RemoveInstances) -> Result<(), Error> {
        let (instances, decrement) = (&request.instances, request.decrement);
        let pool = self.pool(group)?;
        let mut guard = self.state.lock().await;
        let mut state = guard.pools[&pool.id].clone();
        for id in instances {
            if !state.enabled.contains_key(id) {
                return Err(Error::not_found(format!(
                    "machine `{id}` is not an enabled machine of pool `{group}`"
                )));
            }
        }
        let before = state.enabled.len();
        let target = if decrement {
            let target = before.saturating_sub(instances.len());
            if (target as u32) < pool.min_size {
                return Err(Error::invalid_input(format!(
                    "removing {} machines with decrement would leave pool `{group}` at {target}, \
                     below its min_size {}",
                    instances.len(),
                    pool.min_size
                )));
            }
            target
        } else {
            let spare = pool.machines.len() - before;
            if spare < instances.len() {
                return Err(Error::new(
                    ErrorKind::CapacityUnavailable,
                    format!(
                        "pool `{group}` has {spare} spare machines, not enough to replace {}",
                        instances.len()
                    ),
                ));
            }
            before
        };
        let mut result = Ok(());
        for id in instances {
            if let Err(e) = self.disable(pool, &mut state, id).await {
                result = Err(e);
                break;
            }
        }
        if result.is_ok() && state.enabled.len() < target {
            result = self
                .enable_up_to(pool, &mut state, target, instances)
                .await
                .map(|_| ());
        }
        let description = format!(
            "removed {} ({}), {} machines enabled",
            instances.join(", "),
            if decrement { "decrement" } else { "replaced" },
            state.enabled.len()
        );
        self.record(&mut state, description);
        guard.pools.insert(pool.id.clone(), state);
        self.save(&guard)?;
        result
    }

    async fn activities(&self, group: &str) -> Result<Vec<Activity>, Error> {
        let pool = self.pool(group)?;
        let state = self.state.lock().await;
        Ok(state.pools[&pool.id].activities.clone())
    }
}

#[async_trait]
impl InstanceCatalog for StaticPool {
    fn capabilities(&self) -> CatalogCapabilities {
        CatalogCapabilities {
            spot_prices: false,
            live_prices: false,
        }
    }

    async fn instance_classes(&self) -> Result<Vec<InstanceClass>, Error> {
        Ok(self.inventory.instance_classes())
    }
}

#[async_trait]
impl Plugin for StaticPool {
    type Config = Config;

    const NAME: &'static str = "static-pool";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "A fixed pool of machines listed in a file; desired capacity = machines enabled";

    async fn create(config: Config, ctx: PluginContext) -> Result<Self, Error> {
        StaticPool::new(config, &ctx.base_dir)
    }
}

hoist_plugin::export_plugin!(StaticPool, provides: [catalog]);

#[cfg(test)]
mod tests {
    use super::*;

    const INVENTORY: &str = "
classes:
  - { name: small, vcpus: 2, memory_mib: 4096, price_per_hour: 0.05 }
pools:
  - id: web
    instance_class: small
    min_size: 1
    machines:
      - { id: m1, address: 10.0.0.1 }
      - { id: m2, address: 10.0.0.2 }
      - { id: m3, address: 10.0.0.3, protected: true }
";

    fn pool_with(dir: &Path, extra: serde_json::Value) -> StaticPool {
        std::fs::write(dir.join("inv.yaml"), INVENTORY).unwrap();
        let mut config = serde_json::json!({ "inventory": "inv.yaml" });
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        StaticPool::new(serde_json::from_value(config).unwrap(), dir).unwrap()
    }

    fn ids(group: &ScalingGroup) -> Vec<&str> {
        group.instances.iter().map(|i| i.id.as_str()).collect()
    }

    #[tokio::test]
    async fn hooks_run_with_placeholders_in_enable_and_disable_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("hooks.log");
        let log_arg = log.display().to_string();
        let pool = pool_with(
            dir.path(),
            serde_json::json!({
                "on_enable": ["sh", "-c", format!("echo enable {{pool}} {{machine}} {{address}} >> {log_arg}")],
                "on_disable": ["sh", "-c", format!("echo disable {{machine}} >> {log_arg}")],
            }),
        );
        pool.set_desired_capacity("web", 3).await.unwrap();
        pool.set_desired_capacity("web", 1).await.unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text, "enable web m2 10.0.0.2\nenable web m3 10.0.0.3\ndisable m2\ndisable m1\n",
            "m1 was enabled at start; scaling in disables the most recently enabled unprotected \
             machines first and keeps the protected m3"
        );
        assert_eq!(ids(&pool.describe_group("web").await.unwrap()), ["m3"]);
    }

    #[tokio::test]
    async fn protected_machines_stop_a_scale_in_with_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("inv.yaml"),
            INVENTORY.replace(
                "address: 10.0.0.2 }",
                "address: 10.0.0.2, protected: true }",
            ),
        )
        .unwrap();
        let config = serde_json::json!({ "inventory": "inv.yaml" });
        let pool = StaticPool::new(serde_json::from_value(config).unwrap(), dir.path()).unwrap();
        pool.set_desired_capacity("web", 3).await.unwrap();
        let err = pool.set_desired_capacity("web", 1).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(err.message().contains("protected from scale-in"), "{err}");
        let group = pool.describe_group("web").await.unwrap();
        assert_eq!(ids(&group), ["m2", "m3"]);
    }

    #[tokio::test]
    async fn a_failing_enable_command_keeps_what_succeeded_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool_with(
            dir.path(),
            serde_json::json!({ "on_enable": ["sh", "-c", "[ {machine} != m3 ] || { echo no power >&2; exit 3; }"] }),
        );
        let err = pool.set_desired_capacity("web", 3).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert!(err.message().contains("no power"), "{err}");
        let group = pool.describe_group("web").await.unwrap();
        assert_eq!(ids(&group), ["m1", "m2"]);
        // And it is remembered.
        let again = pool_with(dir.path(), serde_json::json!({}));
        assert_eq!(
            ids(&again.describe_group("web").await.unwrap()),
            ["m1", "m2"]
        );
    }

    #[tokio::test]
    async fn warmup_reports_pending_then_running() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool_with(dir.path(), serde_json::json!({ "warmup": "1h" }));
        pool.set_desired_capacity("web", 2).await.unwrap();
        let group = pool.describe_group("web").await.unwrap();
        assert_eq!(group.pending(), 1, "m2 was just enabled");
        let later = pool.group(
            pool.pool("web").unwrap(),
            &pool.state.lock().await.pools["web"],
            Utc::now() + chrono::TimeDelta::hours(2),
        );
        assert_eq!((later.pending(), later.ready()), (0, 2));
    }

    #[tokio::test]
    async fn a_corrupt_state_file_is_a_configuration_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inv.yaml"), INVENTORY).unwrap();
        std::fs::write(dir.path().join("inv.yaml.state.json"), "{ not json").unwrap();
        let config =
            serde_json::from_value(serde_json::json!({ "inventory": "inv.yaml" })).unwrap();
        let err = StaticPool::new(config, dir.path()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("inv.yaml.state.json"), "{err}");
    }
}
