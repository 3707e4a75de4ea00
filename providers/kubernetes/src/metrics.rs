//! A group's CPU utilisation from the `metrics.k8s.io` API (what metrics-server serves), as the
//! HPA computes it: the CPU its pods use over the CPU they request.
//!
//! Offered as the provider's [`MetricsSource`] when the cluster serves `metrics.k8s.io` and the
//! `pod_metrics` setting is not false; a group that names another source (`metrics.source`)
//! reads everything from that one instead. Only `utilization` is built in: the API has no
//! request rates, queues or latencies (use Prometheus for those).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hoist_api::model::{MetricKind, Sample, TimeSeries};
use hoist_api::provider::{MetricsCapabilities, MetricsSource, RangeQuery};
use hoist_api::{Error, Result};
use kube::api::{Api, ListParams};
use kube::core::{ApiResource, DynamicObject};
use serde_json::Value;

use crate::errors::{PROVIDER, from_kube};
use crate::{GroupKind, KubernetesProvider, parse_cpu};

/// The PodMetrics resource of `metrics.k8s.io/v1beta1`.
pub fn pod_metrics_resource() -> ApiResource {
    ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    }
}

/// Whether the cluster serves `metrics.k8s.io`.
pub(crate) async fn served(client: &kube::Client) -> bool {
    kube::discovery::oneshot::group(client, "metrics.k8s.io")
        .await
        .is_ok_and(|g| g.recommended_kind("PodMetrics").is_some())
}

impl KubernetesProvider {
    /// The group's CPU utilisation now: (sum of its pods' CPU usage, sum of their CPU
    /// requests, newest sample time), over the pods that have both.
    pub async fn cpu_utilization(&self, group: &str) -> Result<(f64, DateTime<Utc>)> {
        let target = self.target(group).await?;
        if target.kind != GroupKind::Workload {
            return Err(Error::unsupported(format!(
                "{group}: pod metrics describe workloads; a node group's utilisation comes from Prometheus"
            ))
            .with_provider(PROVIDER));
        }
        let scale = target
            .api(&self.client)
            .get_scale(&target.reference.name)
            .await
            .map_err(|e| from_kube(e, "get the scale of", group))?;
        let selector = scale.status.and_then(|s| s.selector).unwrap_or_default();
        let params = ListParams::default().labels(&selector);
        let pods = self
            .pods(&target)
            .list(&params)
            .await
            .map_err(|e| from_kube(e, "list the pods of", group))?;
        let metrics: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &target.reference.namespace,
            &pod_metrics_resource(),
        );
        let usage = metrics
            .list(&params)
            .await
            .map_err(|e| from_kube(e, "read pod metrics (metrics.k8s.io) of", group))?;
        let (mut used, mut requested, mut newest) = (0.0, 0.0, None::<DateTime<Utc>>);
        for pod in pods
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            let Some(name) = pod.metadata.name.as_deref() else {
                continue;
            };
            let Some(m) = usage
                .items
                .iter()
                .find(|m| m.metadata.name.as_deref() == Some(name))
            else {
                continue;
            };
            let containers = pod
                .spec
                .as_ref()
                .map(|s| s.containers.as_slice())
                .unwrap_or_default();
            let mut request = 0.0;
            for c in containers {
                let cpu = c
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get("cpu"))
                    .and_then(|q| parse_cpu(&q.0).ok());
                match cpu {
                    Some(cpu) => request += cpu,
                    None => {
                        return Err(Error::invalid_input(format!(
                            "{group}: container {} of pod {name} has no CPU request, so CPU utilisation is not defined (as for the HPA); set requests, or scale on another signal",
                            c.name
                        ))
                        .with_provider(PROVIDER));
                    }
                }
            }
            let use_now: f64 = m
                .data
                .get("containers")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| c.pointer("/usage/cpu")?.as_str())
                        .filter_map(|q| parse_cpu(q).ok().or((q.trim() == "0").then_some(0.0)))
                        .sum()
                })
                .unwrap_or(0.0);
            used += use_now;
            requested += request;
            let at = m
                .data
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            newest = newest.max(at);
        }
        match newest {
            Some(at) if requested > 0.0 => Ok((used / requested, at)),
            _ => Err(Error::not_found(format!(
                "{group}: no pod has both metrics in metrics.k8s.io and a CPU request (is metrics-server running?)"
            ))
            .with_provider(PROVIDER)),
        }
    }
}

#[async_trait]
impl MetricsSource for KubernetesProvider {
    fn capabilities(&self) -> MetricsCapabilities {
        MetricsCapabilities {
            builtin: vec![MetricKind::Utilization],
            expressions: false,
        }
    }

    async fn query_range(&self, request: &RangeQuery) -> Result<Vec<TimeSeries>> {
        let query = &request.query;
        if query.expression.is_some() {
            return Err(Error::unsupported(
                "the metrics.k8s.io API takes no expressions; name a Prometheus source in `metrics.source` for queries",
            )
            .with_provider(PROVIDER));
        }
        if query.metric != MetricKind::Utilization {
            return Err(Error::unsupported(format!(
                "metrics.k8s.io has CPU and memory only: {} needs another source (Prometheus)",
                query.metric
            ))
            .with_provider(PROVIDER));
        }
        let (value, at) = self.cpu_utilization(&query.group).await?;
        // The API knows only the latest window; its time is kept as it is, so the engine's
        // `metric_max_age` judges a stale metrics-server the same way as any stale source.
        let samples = vec![Sample { at, value }];
        Ok(vec![TimeSeries {
            labels: [("group".to_owned(), query.group.clone())].into(),
            samples,
        }])
    }
}
