//! Refuse by default: a provider writes only what it declares; the default bodies and the
//! capability layer (put around every provider the registry builds) refuse the rest, before the
//! call reaches the provider.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use hoist_api::layers::CapabilityLayer;
use hoist_api::registry::{BuildContext, BuiltProvider, ProviderFactory, ProviderRegistry};
use hoist_api::{
    BillingCapabilities, BillingProvider, CapacityType, CostGranularity, CostQuery, ErrorKind,
    ProviderSet, RemoveInstances, Result, ScalingCapabilities, ScalingGroup, ScalingProvider,
    TimeRange,
};

/// Declares set_desired_capacity only, and writes nothing else but the required methods. Its
/// `remove_instances` exists but would count a call that must never arrive.
#[derive(Debug, Default)]
struct Minimal {
    removes: AtomicU32,
}

#[async_trait]
impl ScalingProvider for Minimal {
    fn name(&self) -> &str {
        "minimal"
    }

    fn capabilities(&self) -> ScalingCapabilities {
        ScalingCapabilities {
            set_desired_capacity: true,
            ..ScalingCapabilities::default()
        }
    }

    async fn list_groups(&self) -> Result<Vec<ScalingGroup>> {
        Ok(Vec::new())
    }

    async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
        Err(hoist_api::Error::not_found(format!("group {group}")))
    }

    async fn set_desired_capacity(&self, _group: &str, _desired: u32) -> Result<()> {
        Ok(())
    }

    async fn remove_instances(&self, _group: &str, _request: &RemoveInstances) -> Result<()> {
        self.removes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A billing provider that declares nothing and writes nothing but its capabilities.
#[derive(Debug)]
struct NoBilling;

#[async_trait]
impl BillingProvider for NoBilling {
    fn capabilities(&self) -> BillingCapabilities {
        BillingCapabilities::default()
    }
}

#[derive(Debug)]
struct MinimalFactory(Arc<Minimal>);

#[async_trait]
impl ProviderFactory for MinimalFactory {
    fn kind(&self) -> &str {
        "minimal"
    }

    async fn build(&self, ctx: BuildContext<'_>) -> Result<BuiltProvider> {
        Ok(BuiltProvider {
            set: ProviderSet::new(ctx.name)
                .with_scaling(self.0.clone())
                .with_billing(Arc::new(NoBilling)),
            clock: None,
        })
    }
}

fn query() -> CostQuery {
    let now = chrono::Utc::now();
    CostQuery {
        range: TimeRange {
            start: now - chrono::TimeDelta::days(1),
            end: now,
        },
        granularity: CostGranularity::Daily,
        group_by: None,
    }
}

#[tokio::test]
async fn default_bodies_refuse_what_is_not_written() {
    let minimal = Minimal::default();
    let e = minimal
        .set_instance_class("web", &hoist_api::ChangeInstanceClass::new("big"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert_eq!(e.operation(), "set_instance_class");
    assert!(e.to_string().contains("do not declare it"), "{e}");
    let e = minimal.activities("web").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let e = NoBilling.cost(&query()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let e = NoBilling
        .price("m5.large", "eu-west-1a", CapacityType::OnDemand)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
}

#[tokio::test]
async fn the_registry_refuses_undeclared_calls_before_they_reach_the_provider() {
    let minimal = Arc::new(Minimal::default());
    let mut registry = ProviderRegistry::new();
    registry.register(Arc::new(MinimalFactory(minimal.clone())));
    let settings = serde_json::Value::Null;
    let built = registry
        .build(
            "minimal",
            BuildContext {
                name: "m",
                settings: &settings,
                base_dir: Path::new("."),
                groups: &[],
            },
        )
        .await
        .unwrap();
    let scaling = built.set.scaling_provider().unwrap();
    assert!(
        scaling.describe().starts_with("Checked("),
        "{}",
        scaling.describe()
    );
    // Declared: goes through.
    scaling.set_desired_capacity("web", 2).await.unwrap();
    // Not declared: refused, and the provider never sees the call.
    let e = scaling
        .remove_instances("web", &RemoveInstances::new(vec!["i-1".to_owned()]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert_eq!(e.provider(), "minimal");
    assert_eq!(minimal.removes.load(Ordering::SeqCst), 0);
    // The same layer by hand, on a set without scaling: nothing to wrap, nothing invented.
    let metrics_only = ProviderSet::new("prom").with_layer(&CapabilityLayer);
    assert!(metrics_only.scaling.is_none());
    assert_eq!(
        metrics_only.scaling_provider().unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    let billing = built.set.billing.as_ref().unwrap();
    assert_eq!(
        billing.forecast(&query()).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}
