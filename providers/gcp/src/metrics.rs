//! [`MetricsSource`] on Cloud Monitoring, so `utilization` works without Prometheus.
//!
//! `utilization` is `compute.googleapis.com/instance/cpu/utilization` (already a fraction)
//! averaged over the group's instances: the group's managed instances' ids select the series
//! (`resource.labels.instance_id = one_of(...)`), each aligned by its mean over the step and
//! reduced by the mean across instances. An `expression` names another metric type
//! (`compute.googleapis.com/instance/network/received_bytes_count`), restricted to the group's
//! instances in the same way, or is a whole Cloud Monitoring filter when it mentions
//! `metric.type` itself.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use google_cloud_gax::paginator::ItemPaginator;
use google_cloud_monitoring_v3::model::{Aggregation, TimeInterval, aggregation};
use hoist_api::{
    ErrorKind, MetricKind, MetricsCapabilities, MetricsSource, RangeQuery, Result, Sample,
    TimeSeries,
};

use crate::GcpProvider;
use crate::errors::{from_gax, local};

/// The metric behind `utilization`.
pub const CPU_UTILIZATION: &str = "compute.googleapis.com/instance/cpu/utilization";

/// The most points read for one question.
const MAX_POINTS: usize = 200_000;

/// The Cloud Monitoring filter for `metric_type` on the instances `ids`.
pub fn filter_for(metric_type: &str, ids: &[u64]) -> String {
    let ids: Vec<String> = ids.iter().map(|i| format!("\"{i}\"")).collect();
    format!(
        "metric.type = \"{metric_type}\" AND resource.type = \"gce_instance\" AND resource.labels.instance_id = one_of({})",
        ids.join(",")
    )
}

fn timestamp(t: DateTime<Utc>) -> google_cloud_wkt::Timestamp {
    google_cloud_wkt::Timestamp::clamp(
        t.timestamp(),
        i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    )
}

#[async_trait]
impl MetricsSource for GcpProvider {
    fn capabilities(&self) -> MetricsCapabilities {
        MetricsCapabilities {
            builtin: vec![MetricKind::Utilization],
            expressions: true,
        }
    }

    fn describe(&self) -> String {
        format!("{} (cloud monitoring)", self.name)
    }

    async fn query_range(&self, request: &RangeQuery) -> Result<Vec<TimeSeries>> {
        let op = "query_range";
        let range = request.range;
        if range.end <= range.start {
            return Ok(Vec::new());
        }
        let expression = request.query.expression.as_deref().map(str::trim);
        let metric_type = match (expression, &request.query.metric) {
            (Some(""), _) => {
                return Err(local(ErrorKind::InvalidInput, op, "an empty expression"));
            }
            (Some(e), _) => e.to_owned(),
            (None, MetricKind::Utilization) => CPU_UTILIZATION.to_owned(),
            (None, other) => {
                return Err(local(
                    ErrorKind::Unsupported,
                    op,
                    format!(
                        "Cloud Monitoring has no built-in `{other}` for managed instance groups; name a metric type in the policy's expression"
                    ),
                ));
            }
        };
        let filter = if metric_type.contains("metric.type") {
            metric_type.clone()
        } else {
            let mig = self.resolve(&request.query.group).await?;
            let ids: Vec<u64> = self
                .compute
                .instances(&mig)
                .await?
                .iter()
                .filter_map(|vm| vm.id)
                .collect();
            if ids.is_empty() {
                // No instance has reported yet: no samples, which the engine treats as missing.
                return Ok(vec![TimeSeries::default()]);
            }
            filter_for(&metric_type, &ids)
        };
        let step = i64::from(request.step_seconds.max(60));
        let mut items = self
            .monitoring
            .list_time_series()
            .set_name(format!("projects/{}", self.project))
            .set_filter(filter)
            .set_interval(
                TimeInterval::new()
                    .set_start_time(timestamp(range.start))
                    .set_end_time(timestamp(range.end)),
            )
            .set_aggregation(
                Aggregation::new()
                    .set_alignment_period(google_cloud_wkt::Duration::clamp(step, 0))
                    .set_per_series_aligner(aggregation::Aligner::AlignMean)
                    .set_cross_series_reducer(aggregation::Reducer::ReduceMean),
            )
            .by_item();
        let mut samples = Vec::new();
        while let Some(series) = items.next().await {
            let series = series.map_err(|e| from_gax(op, e))?;
            for point in series.points {
                let Some(at) = point
                    .interval
                    .as_ref()
                    .and_then(|i| i.end_time.as_ref().or(i.start_time.as_ref()))
                    .and_then(|t| {
                        DateTime::from_timestamp(t.seconds(), u32::try_from(t.nanos()).unwrap_or(0))
                    })
                else {
                    continue;
                };
                let Some(value) = point.value.as_ref().and_then(|v| {
                    v.double_value()
                        .copied()
                        .or_else(|| v.int64_value().map(|i| *i as f64))
                }) else {
                    continue;
                };
                if at >= range.start && at < range.end {
                    samples.push(Sample { at, value });
                }
                if samples.len() > MAX_POINTS {
                    return Err(local(
                        ErrorKind::InvalidInput,
                        op,
                        format!("more than {MAX_POINTS} points: ask for a larger step"),
                    ));
                }
            }
        }
        samples.sort_by_key(|s| s.at);
        samples.dedup_by_key(|s| s.at);
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("group".to_owned(), request.query.group.clone());
        labels.insert("metric".to_owned(), metric_type);
        Ok(vec![TimeSeries { labels, samples }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_selects_the_group_instances() {
        assert_eq!(
            filter_for(CPU_UTILIZATION, &[1001, 1002]),
            "metric.type = \"compute.googleapis.com/instance/cpu/utilization\" AND resource.type = \"gce_instance\" AND resource.labels.instance_id = one_of(\"1001\",\"1002\")"
        );
    }
}
