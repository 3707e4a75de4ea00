//! The `kubernetes:` block of a policy file, and the registry's factory for it.
//!
//! ```yaml
//! providers:
//!   k8s:
//!     kubernetes:
//!       kubeconfig: ~/.kube/config      # default: $KUBECONFIG, ~/.kube/config, else in-cluster
//!       context: prod                   # default: the kubeconfig's current context
//!       groups: [deployment/default/web]  # reported by list_groups besides the policy's groups
//!       profiles:                       # instance classes of workloads (the vertical move)
//!         small: { cpu: 250m, memory: 256Mi }
//!         large: { cpu: "1", memory: 1Gi, limits: { cpu: "2", memory: 1Gi } }
//!       prices:                         # instance classes of node groups, and profiles
//!         instance_types: { m5.large: 0.096 }
//!         per_vcpu_hour: 0.0316
//!         per_gib_hour: 0.0042
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use hoist_api::duration::HumanDuration;
use hoist_api::registry::{BuildContext, BuiltProvider, ProviderFactory};
use hoist_api::{Error, Result};
use serde::Deserialize;
use serde_json::json;

use crate::errors::PROVIDER;
use crate::quantity::{parse_cpu, parse_memory_mib};
use crate::target::GroupRef;

/// Settings of a `kubernetes:` provider.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSettings {
    /// The kubeconfig file (relative to the policy file's directory). Default: the standard
    /// search (`$KUBECONFIG`, `~/.kube/config`), else the in-cluster service account.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context. Default: its current context.
    #[serde(default)]
    pub context: Option<String>,
    /// Groups to report besides those the policy file places on this provider.
    #[serde(default)]
    pub groups: Vec<String>,
    /// A label selector (`autoscaling.hoist.dev/enabled=true`): `list_groups` reports only the
    /// Deployments, StatefulSets and MachineDeployments that match it. Default: all of them.
    #[serde(default)]
    pub selector: Option<String>,
    /// Named resource profiles: the instance classes of workloads.
    #[serde(default)]
    pub profiles: BTreeMap<String, ResourceProfile>,
    /// Node groups' instance classes: the Cluster API infrastructure template (by name, of the
    /// kind the MachineDeployment already references) that makes nodes of each instance type.
    /// The vertical move on a node group points its `infrastructureRef` at the class's template.
    #[serde(default)]
    pub node_templates: BTreeMap<String, String>,
    /// Prices of node types and of profiles.
    #[serde(default)]
    pub prices: PriceTable,
    /// How long one request may take. Default 30s.
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Offer the groups' CPU utilisation from the `metrics.k8s.io` API (metrics-server) when
    /// the cluster serves it. Default true.
    #[serde(default)]
    pub pod_metrics: Option<bool>,
}

/// Container resources: what the vertical move sets on a workload's pod template.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceProfile {
    /// CPU request, as Kubernetes writes it (`250m`, `1`, `2.5`).
    pub cpu: String,
    /// Memory request (`256Mi`, `1Gi`, `512M`).
    pub memory: String,
    /// Limits, when they differ from nothing (no limits by default).
    #[serde(default)]
    pub limits: Option<Limits>,
    /// The container to size. Default: the pod template's first container.
    #[serde(default)]
    pub container: Option<String>,
}

/// Container limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPU limit.
    #[serde(default)]
    pub cpu: Option<String>,
    /// Memory limit.
    #[serde(default)]
    pub memory: Option<String>,
}

/// Prices per hour: per node type, or per vCPU-hour and GiB-hour (as OpenCost prices
/// on-premises nodes).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// Price per hour of a node of each `node.kubernetes.io/instance-type`.
    #[serde(default)]
    pub instance_types: BTreeMap<String, f64>,
    /// Price of one vCPU for an hour, for what the table does not name.
    #[serde(default)]
    pub per_vcpu_hour: Option<f64>,
    /// Price of one GiB of memory for an hour.
    #[serde(default)]
    pub per_gib_hour: Option<f64>,
    /// The currency (ISO 4217). Default USD.
    #[serde(default)]
    pub currency: Option<String>,
}

impl PriceTable {
    /// The price per hour of a class, when the table prices it.
    pub fn price(&self, instance_type: &str, vcpus: f64, memory_mib: u64) -> Option<f64> {
        if let Some(p) = self.instance_types.get(instance_type) {
            return Some(*p);
        }
        match (self.per_vcpu_hour, self.per_gib_hour) {
            (None, None) => None,
            (cpu, mem) => {
                Some(cpu.unwrap_or(0.0) * vcpus + mem.unwrap_or(0.0) * memory_mib as f64 / 1024.0)
            }
        }
    }
}

fn field_error(field: &str, message: impl std::fmt::Display) -> Error {
    Error::config_field(field, message.to_string()).with_provider(PROVIDER)
}

impl KubernetesSettings {
    /// Parses and checks settings; every error names its field (a path relative to the
    /// `kubernetes:` block, such as `profiles.small.cpu`).
    pub fn from_value(value: &serde_json::Value) -> Result<Self> {
        let value = if value.is_null() {
            json!({})
        } else {
            value.clone()
        };
        let settings: KubernetesSettings =
            serde_path_to_error::deserialize(value).map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                if path == "." {
                    Error::config(format!("kubernetes settings: {message}")).with_provider(PROVIDER)
                } else {
                    field_error(&path, message)
                }
            })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot: group addresses, quantities, prices.
    pub fn validate(&self) -> Result<()> {
        for (i, group) in self.groups.iter().enumerate() {
            GroupRef::parse(group)
                .map_err(|e| field_error(&format!("groups[{i}]"), e.message()))?;
        }
        if let Some(selector) = &self.selector
            && selector.trim().is_empty()
        {
            return Err(field_error(
                "selector",
                format!(
                    "`{selector}` is not a label selector such as `autoscaling.hoist.dev/enabled=true`"
                ),
            ));
        }
        for (class, template) in &self.node_templates {
            if template.trim().is_empty() {
                return Err(field_error(
                    &format!("node_templates.{class}"),
                    "names no infrastructure template",
                ));
            }
        }
        for (name, profile) in &self.profiles {
            let at = |f: &str| format!("profiles.{name}.{f}");
            parse_cpu(&profile.cpu).map_err(|e| field_error(&at("cpu"), e))?;
            parse_memory_mib(&profile.memory).map_err(|e| field_error(&at("memory"), e))?;
            if let Some(limits) = &profile.limits {
                if let Some(cpu) = &limits.cpu {
                    parse_cpu(cpu).map_err(|e| field_error(&at("limits.cpu"), e))?;
                }
                if let Some(memory) = &limits.memory {
                    parse_memory_mib(memory).map_err(|e| field_error(&at("limits.memory"), e))?;
                }
            }
        }
        let price_ok =
            |p: f64| p.is_finite() && (0.0..=hoist_api::input::MAX_PRICE_PER_HOUR).contains(&p);
        for (name, price) in &self.prices.instance_types {
            if !price_ok(*price) {
                return Err(field_error(
                    &format!("prices.instance_types.{name}"),
                    format!("a price per hour must be in [0, 1000000], got {price}"),
                ));
            }
        }
        for (field, price) in [
            ("prices.per_vcpu_hour", self.prices.per_vcpu_hour),
            ("prices.per_gib_hour", self.prices.per_gib_hour),
        ] {
            if let Some(p) = price
                && !price_ok(p)
            {
                return Err(field_error(
                    field,
                    format!("must be in [0, 1000000], got {p}"),
                ));
            }
        }
        if let Some(currency) = &self.prices.currency
            && !(currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase()))
        {
            return Err(field_error(
                "prices.currency",
                format!("`{currency}` is not an ISO 4217 code such as USD or EUR"),
            ));
        }
        if self.timeout.is_some_and(|t| t.get().is_zero()) {
            return Err(field_error("timeout", "must be longer than 0s"));
        }
        Ok(())
    }

    /// The JSON Schema of the settings.
    pub fn schema() -> serde_json::Value {
        let quantity = |what: &str| json!({"type": "string", "minLength": 1, "description": what});
        json!({
            "title": "kubernetes provider settings",
            "description": "A Kubernetes cluster: workloads with a scale subresource (Deployments, StatefulSets, ReplicaSets, custom resources) and Cluster API node groups (MachineDeployments, MachineSets), addressed in a group's name as KIND/NAMESPACE/NAME. Credentials come from the kubeconfig or the in-cluster service account, never from settings.",
            "type": ["object", "null"],
            "additionalProperties": false,
            "properties": {
                "kubeconfig": {"type": "string", "description": "The kubeconfig file, relative to the policy file. Default: $KUBECONFIG, ~/.kube/config, else in-cluster."},
                "context": {"type": "string", "description": "The kubeconfig context. Default: the current context."},
                "groups": {"type": "array", "items": {"type": "string", "pattern": "^[^/]+/[^/]+/[^/]+$"}, "description": "Groups to report besides those the policy places here, as KIND/NAMESPACE/NAME."},
                "selector": {"type": "string", "description": "A label selector: list only the Deployments, StatefulSets and MachineDeployments that match it."},
                "node_templates": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}, "description": "Instance type to the Cluster API infrastructure template (name) that makes nodes of it: the vertical move of node groups."},
                "profiles": {
                    "type": "object",
                    "description": "Named container resources: the instance classes of workloads, set on the pod template by the vertical move.",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["cpu", "memory"],
                        "properties": {
                            "cpu": quantity("CPU request, e.g. 250m or 1"),
                            "memory": quantity("Memory request, e.g. 256Mi or 1Gi"),
                            "limits": {"type": "object", "additionalProperties": false, "properties": {"cpu": quantity("CPU limit"), "memory": quantity("Memory limit")}},
                            "container": {"type": "string", "description": "The container to size; default the first."}
                        }
                    }
                },
                "prices": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "instance_types": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
                        "per_vcpu_hour": {"type": "number", "minimum": 0},
                        "per_gib_hour": {"type": "number", "minimum": 0},
                        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}
                    }
                },
                "timeout": {"type": "string", "description": "How long one request may take, e.g. 30s."},
                "pod_metrics": {"type": "boolean", "description": "Offer groups' CPU utilisation from the metrics.k8s.io API (metrics-server) when the cluster serves it. Default true."}
            }
        })
    }
}

/// The provider registry's factory for the `kubernetes` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct KubernetesProviderFactory;

#[async_trait]
impl ProviderFactory for KubernetesProviderFactory {
    fn kind(&self) -> &str {
        "kubernetes"
    }

    fn settings_schema(&self) -> serde_json::Value {
        KubernetesSettings::schema()
    }

    fn validate(&self, ctx: BuildContext<'_>) -> Result<()> {
        KubernetesSettings::from_value(ctx.settings)?;
        for group in ctx.groups {
            GroupRef::parse(&group.id)?;
        }
        Ok(())
    }

    async fn build(&self, ctx: BuildContext<'_>) -> Result<BuiltProvider> {
        let mut settings = KubernetesSettings::from_value(ctx.settings)?;
        if let Some(path) = &settings.kubeconfig
            && path.is_relative()
        {
            settings.kubeconfig = Some(ctx.base_dir.join(path));
        }
        for group in ctx.groups {
            GroupRef::parse(&group.id)?;
            if !settings.groups.contains(&group.id) {
                settings.groups.push(group.id.clone());
            }
        }
        let mut provider = crate::KubernetesProvider::connect(ctx.name, settings).await?;
        for group in ctx.groups {
            if let Some(drain) = group.drain {
                provider = provider.with_drain(&group.id, drain)?;
            }
        }
        Ok(BuiltProvider {
            set: Arc::new(provider).into_provider_set(),
            clock: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_errors_name_the_field() {
        let s = KubernetesSettings::from_value(&json!({
            "context": "prod",
            "groups": ["deployment/default/web"],
            "profiles": {"small": {"cpu": "250m", "memory": "256Mi"}},
            "prices": {"per_vcpu_hour": 0.03, "per_gib_hour": 0.004}
        }))
        .unwrap();
        assert_eq!(s.context.as_deref(), Some("prod"));
        assert!((s.prices.price("x", 2.0, 4096).unwrap() - 0.076).abs() < 1e-9);
        assert_eq!(
            KubernetesSettings::from_value(&serde_json::Value::Null).unwrap(),
            KubernetesSettings::default()
        );
        let cases = [
            (json!({"contxt": "x"}), "contxt"),
            (
                json!({"profiles": {"small": {"cpu": "lots", "memory": "1Gi"}}}),
                "profiles.small.cpu",
            ),
            (json!({"groups": ["web"]}), "groups[0]"),
            (
                json!({"prices": {"per_vcpu_hour": -1}}),
                "prices.per_vcpu_hour",
            ),
        ];
        for (value, field) in cases {
            let e = KubernetesSettings::from_value(&value).unwrap_err();
            assert_eq!(e.kind(), hoist_api::ErrorKind::Config, "{e}");
            let named = e.field().is_some_and(|f| f.contains(field)) || e.message().contains(field);
            assert!(named, "{value}: {e} (field {:?})", e.field());
        }
    }
}
