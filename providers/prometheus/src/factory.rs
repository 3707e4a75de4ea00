//! [`PrometheusFactory`]: the `prometheus` kind of the provider registry. A Prometheus server
//! offers metrics only; its [`hoist_api::ProviderSet`] carries a [`MetricsOnlyScaling`] that
//! declares no scaling capability and manages no group.

use std::sync::Arc;

use async_trait::async_trait;
use hoist_api::registry::{BuildContext, BuiltProvider, ProviderFactory};
use hoist_api::{
    Activity, Error, InstanceId, ProviderSet, Result, ScalingCapabilities, ScalingGroup,
    ScalingProvider,
};

use crate::settings::PrometheusSettings;
use crate::source::metrics_source_from_settings_in;

/// Builds `prometheus` metrics sources from policy settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrometheusFactory;

#[async_trait]
impl ProviderFactory for PrometheusFactory {
    fn kind(&self) -> &str {
        "prometheus"
    }

    fn validate(&self, ctx: BuildContext<'_>) -> Result<()> {
        PrometheusSettings::from_value(ctx.settings).map(|_| ())
    }

    async fn build(&self, ctx: BuildContext<'_>) -> Result<BuiltProvider> {
        let source = metrics_source_from_settings_in(ctx.settings, ctx.base_dir)?;
        Ok(BuiltProvider {
            set: ProviderSet {
                name: ctx.name.to_owned(),
                scaling: Arc::new(MetricsOnlyScaling {
                    name: ctx.name.to_owned(),
                }),
                catalog: None,
                billing: None,
                metrics: Some(Arc::new(source)),
            },
            clock: None,
        })
    }
}

/// The scaling side of a metrics-only provider: no capabilities, no groups.
#[derive(Debug, Clone)]
pub struct MetricsOnlyScaling {
    name: String,
}

impl MetricsOnlyScaling {
    fn refuse(&self, operation: &str) -> Error {
        Error::unsupported(format!(
            "`{}` is a metrics source; it manages no scaling groups",
            self.name
        ))
        .with_provider(&self.name)
        .with_operation(operation)
    }
}

#[async_trait]
impl ScalingProvider for MetricsOnlyScaling {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> ScalingCapabilities {
        ScalingCapabilities::default()
    }

    async fn list_groups(&self) -> Result<Vec<ScalingGroup>> {
        Ok(Vec::new())
    }

    async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
        Err(Error::not_found(format!(
            "group {group}: `{}` is a metrics source and manages no groups",
            self.name
        ))
        .with_provider(&self.name)
        .with_operation("describe_group"))
    }

    async fn set_desired_capacity(&self, _group: &str, _desired: u32) -> Result<()> {
        Err(self.refuse("set_desired_capacity"))
    }

    async fn remove_instances(
        &self,
        _group: &str,
        _instances: &[InstanceId],
        _decrement: bool,
    ) -> Result<()> {
        Err(self.refuse("remove_instances"))
    }

    async fn set_instance_class(
        &self,
        _group: &str,
        _instance_class: &str,
    ) -> Result<Option<Activity>> {
        Err(self.refuse("set_instance_class"))
    }

    async fn activities(&self, _group: &str) -> Result<Vec<Activity>> {
        Err(self.refuse("activities"))
    }
}
