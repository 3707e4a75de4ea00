//! [`MetricsSource`] on CloudWatch GetMetricData.
//!
//! Built-in signals: [`MetricKind::Utilization`] is the group's mean `AWS/EC2`
//! `CPUUtilization` (as a fraction), and [`MetricKind::Custom`] reads the metric of that name
//! from the provider's custom namespace (default `Hoist`), both with the dimension
//! `AutoScalingGroupName=<group>`. Any signal can instead be given an expression:
//!
//! - a metric spec `NAMESPACE:METRIC:STAT{Dim=Value,...}`, for example
//!   `AWS/ApplicationELB:RequestCountPerTarget:Sum{TargetGroup=targetgroup/web/0123}`; without
//!   `{...}` the dimension is `AutoScalingGroupName=<group>`, with `{}` there is none;
//! - anything else is sent as a CloudWatch metric math or Metrics Insights expression.
//!
//! Units: a `...Utilization` metric asked for as [`MetricKind::Utilization`] is divided by 100
//! (CloudWatch reports percent); a `Sum` asked for as [`MetricKind::RequestRate`] is divided by
//! the period, giving requests per second.

mod spec;

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use hoist_api::{
    ErrorKind, MetricKind, MetricQuery, MetricsCapabilities, MetricsSource, RangeQuery, Result,
    Sample, TimeRange, TimeSeries,
};

pub use spec::{MetricSpec, parse_metric_spec};

use crate::client::AwsProvider;
use crate::errors::{SdkResultExt, local};
use crate::time::{to_chrono, to_smithy};

const OP: &str = "get_metric_data";

/// A CloudWatch period for a wanted step: 1, 5, 10 or 30 s (high resolution), else a multiple
/// of 60 s, rounding up.
pub fn cloudwatch_period(step_seconds: u32) -> i32 {
    let period = match step_seconds {
        0 | 1 => 1,
        2..=5 => 5,
        6..=10 => 10,
        11..=30 => 30,
        s => s
            .div_ceil(60)
            .saturating_mul(60)
            .min(i32::MAX as u32 / 60 * 60),
    };
    period as i32
}

/// What is sent for one query, and how its values are scaled on the way back.
struct Plan {
    query: MetricDataQuery,
    scale: f64,
    description: String,
}

impl AwsProvider {
    fn plan(&self, query: &MetricQuery, period: i32) -> Result<Plan> {
        let group_dimension = || {
            vec![
                Dimension::builder()
                    .name("AutoScalingGroupName")
                    .value(&query.group)
                    .build(),
            ]
        };
        let spec = match (&query.expression, &query.metric) {
            (Some(expression), _) => match parse_metric_spec(expression).map_err(|e| {
                local(
                    ErrorKind::InvalidInput,
                    OP,
                    format!("metric expression `{expression}`: {e}"),
                )
            })? {
                Some(spec) => spec,
                None => {
                    return Ok(Plan {
                        query: MetricDataQuery::builder()
                            .id("q0")
                            .expression(expression)
                            .period(period)
                            .return_data(true)
                            .build(),
                        scale: 1.0,
                        description: expression.clone(),
                    });
                }
            },
            (None, MetricKind::Utilization) => MetricSpec {
                namespace: "AWS/EC2".to_owned(),
                metric_name: "CPUUtilization".to_owned(),
                stat: "Average".to_owned(),
                dimensions: None,
            },
            (None, MetricKind::Custom(name)) => MetricSpec {
                namespace: self.custom_metric_namespace.clone(),
                metric_name: name.clone(),
                stat: "Average".to_owned(),
                dimensions: None,
            },
            (None, other) => {
                return Err(local(
                    ErrorKind::Unsupported,
                    OP,
                    format!(
                        "CloudWatch has no built-in `{other}` for a group: give the policy an expression such as \
                         `AWS/ApplicationELB:RequestCountPerTarget:Sum{{TargetGroup=targetgroup/NAME/ID}}`"
                    ),
                ));
            }
        };
        let dimensions = match &spec.dimensions {
            None => group_dimension(),
            Some(dims) => dims
                .iter()
                .map(|(name, value)| Dimension::builder().name(name).value(value).build())
                .collect(),
        };
        let scale = match &query.metric {
            MetricKind::Utilization if spec.metric_name.ends_with("Utilization") => 0.01,
            MetricKind::RequestRate if spec.stat == "Sum" => 1.0 / f64::from(period),
            _ => 1.0,
        };
        let description = spec.to_string();
        Ok(Plan {
            query: MetricDataQuery::builder()
                .id("m0")
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace(spec.namespace)
                                .metric_name(spec.metric_name)
                                .set_dimensions(Some(dimensions))
                                .build(),
                        )
                        .period(period)
                        .stat(spec.stat)
                        .build(),
                )
                .return_data(true)
                .build(),
            scale,
            description,
        })
    }

    pub(crate) async fn get_metric_data(
        &self,
        query: &MetricQuery,
        range: TimeRange,
        step_seconds: u32,
    ) -> Result<Vec<TimeSeries>> {
        if range.end <= range.start {
            return Err(local(
                ErrorKind::InvalidInput,
                OP,
                format!("the range {} .. {} is empty", range.start, range.end),
            ));
        }
        let period = cloudwatch_period(step_seconds);
        let plan = self.plan(query, period)?;
        let mut by_id: BTreeMap<String, (Option<String>, Vec<Sample>)> = BTreeMap::new();
        let mut next = None;
        loop {
            let page = self
                .clients
                .cloudwatch
                .get_metric_data()
                .metric_data_queries(plan.query.clone())
                .start_time(to_smithy(range.start))
                .end_time(to_smithy(range.end))
                .scan_by(ScanBy::TimestampAscending)
                .set_next_token(next.take())
                .send()
                .await
                .aws(OP)?;
            for result in page.metric_data_results() {
                let entry = by_id
                    .entry(result.id().unwrap_or("m0").to_owned())
                    .or_insert_with(|| (result.label().map(str::to_owned), Vec::new()));
                for (t, v) in result.timestamps().iter().zip(result.values()) {
                    if let Some(at) = to_chrono(t) {
                        entry.1.push(Sample {
                            at,
                            value: v * plan.scale,
                        });
                    }
                }
            }
            for message in page.messages() {
                tracing::debug!(code = ?message.code(), value = ?message.value(), "CloudWatch message");
            }
            next = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        Ok(by_id
            .into_values()
            .map(|(label, mut samples)| {
                samples.sort_by_key(|s| s.at);
                samples.dedup_by_key(|s| s.at);
                let mut labels = BTreeMap::new();
                labels.insert("group".to_owned(), query.group.clone());
                labels.insert("metric".to_owned(), query.metric.name().to_owned());
                labels.insert("source".to_owned(), "cloudwatch".to_owned());
                labels.insert("query".to_owned(), plan.description.clone());
                if let Some(label) = label {
                    labels.insert("label".to_owned(), label);
                }
                TimeSeries { labels, samples }
            })
            .collect())
    }
}

#[async_trait]
impl MetricsSource for AwsProvider {
    fn capabilities(&self) -> MetricsCapabilities {
        MetricsCapabilities {
            builtin: vec![MetricKind::Utilization],
            expressions: true,
        }
    }

    async fn query_range(&self, request: &RangeQuery) -> Result<Vec<TimeSeries>> {
        self.get_metric_data(&request.query, request.range, request.step_seconds)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_round_up_to_what_cloudwatch_accepts() {
        assert_eq!(cloudwatch_period(0), 1);
        assert_eq!(cloudwatch_period(7), 10);
        assert_eq!(cloudwatch_period(30), 30);
        assert_eq!(cloudwatch_period(31), 60);
        assert_eq!(cloudwatch_period(60), 60);
        assert_eq!(cloudwatch_period(61), 120);
        assert_eq!(cloudwatch_period(300), 300);
    }
}
