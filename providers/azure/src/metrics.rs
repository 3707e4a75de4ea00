//! [`MetricsSource`] on Azure Monitor: the scale set's platform metrics, so `utilization` works
//! without Prometheus.
//!
//! `utilization` is the average of `Percentage CPU` (or `metrics.utilization`) over the scale
//! set's instances, divided by 100. Any other platform metric is asked for by name in the
//! policy's `expression`, with an optional aggregation: `Network In Total`,
//! `Maximum(Percentage CPU)`; its values come as Azure Monitor reports them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hoist_api::{
    ErrorKind, MetricKind, MetricsCapabilities, MetricsSource, RangeQuery, Result, Sample,
    TimeSeries,
};
use serde_json::Value;

use crate::AzureProvider;
use crate::errors::local;

/// The Azure Monitor metrics API version.
pub const MONITOR_API_VERSION: &str = "2023-10-01";

/// The metric behind `utilization` unless the settings name another.
pub const DEFAULT_UTILIZATION_METRIC: &str = "Percentage CPU";

const AGGREGATIONS: &[&str] = &["Average", "Maximum", "Minimum", "Total", "Count"];

/// A metric and how to aggregate it, from an expression (`Maximum(Percentage CPU)`).
pub fn parse_expression(expression: &str) -> Result<(String, String)> {
    let e = expression.trim();
    if let Some(open) = e.find('(')
        && e.ends_with(')')
    {
        let aggregation = e[..open].trim();
        let metric = e[open + 1..e.len() - 1].trim();
        if let Some(a) = AGGREGATIONS
            .iter()
            .find(|a| a.eq_ignore_ascii_case(aggregation))
            && !metric.is_empty()
        {
            return Ok((metric.to_owned(), (*a).to_owned()));
        }
    }
    if e.is_empty() || e.contains(['(', ')', ',']) {
        return Err(local(
            ErrorKind::InvalidInput,
            "query_range",
            format!(
                "`{expression}` is not an Azure Monitor metric: write its name (`Percentage CPU`) or AGGREGATION(NAME) with one of {}",
                AGGREGATIONS.join(", ")
            ),
        ));
    }
    Ok((e.to_owned(), "Average".to_owned()))
}

/// ISO 8601 for a step: Azure Monitor's grains are 1, 5, 15 and 30 minutes, 1, 6 and 12 hours,
/// and 1 day; the smallest grain not finer than the step is used.
pub fn interval_for(step_seconds: u32) -> &'static str {
    match step_seconds {
        0..=60 => "PT1M",
        61..=300 => "PT5M",
        301..=900 => "PT15M",
        901..=1800 => "PT30M",
        1801..=3600 => "PT1H",
        3601..=21600 => "PT6H",
        21601..=43200 => "PT12H",
        _ => "P1D",
    }
}

fn unreadable(what: impl std::fmt::Display) -> hoist_api::Error {
    local(
        ErrorKind::Other,
        "query_range",
        format!("Azure Monitor sent an unreadable answer: {what}"),
    )
}

#[async_trait]
impl MetricsSource for AzureProvider {
    fn capabilities(&self) -> MetricsCapabilities {
        MetricsCapabilities {
            builtin: vec![MetricKind::Utilization],
            expressions: true,
        }
    }

    fn describe(&self) -> String {
        format!("{} (azure monitor)", self.name)
    }

    async fn query_range(&self, request: &RangeQuery) -> Result<Vec<TimeSeries>> {
        let op = "query_range";
        let (metric, aggregation, scale) = match (&request.query.expression, &request.query.metric)
        {
            (Some(expression), _) => {
                let (m, a) = parse_expression(expression)?;
                (m, a, 1.0)
            }
            (None, MetricKind::Utilization) => (
                self.settings
                    .metrics
                    .utilization
                    .clone()
                    .unwrap_or_else(|| DEFAULT_UTILIZATION_METRIC.to_owned()),
                "Average".to_owned(),
                0.01,
            ),
            (None, other) => {
                return Err(local(
                    ErrorKind::Unsupported,
                    op,
                    format!(
                        "Azure Monitor has no built-in `{other}` for scale sets; name a metric in the policy's expression"
                    ),
                ));
            }
        };
        let set = self.resolve(&request.query.group).await?;
        let range = request.range;
        if range.end <= range.start {
            return Ok(Vec::new());
        }
        let mut url = self
            .arm
            .join(&format!("{}/providers/Microsoft.Insights/metrics", set.id))
            .map_err(|e| local(ErrorKind::Config, op, e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("api-version", MONITOR_API_VERSION)
            .append_pair("metricnames", &metric)
            .append_pair(
                "timespan",
                &format!(
                    "{}/{}",
                    range.start.format("%Y-%m-%dT%H:%M:%SZ"),
                    range.end.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            )
            .append_pair("interval", interval_for(request.step_seconds))
            .append_pair("aggregation", &aggregation);
        let answer: Value = self.rest.get(op, &url).await?.json(op, "Azure Monitor")?;
        let field = aggregation.to_ascii_lowercase();
        let mut samples = Vec::new();
        for value in answer
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| unreadable("no `value`"))?
        {
            for series in value
                .get("timeseries")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                for point in series
                    .get("data")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    let at = point
                        .get("timeStamp")
                        .and_then(Value::as_str)
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&Utc))
                        .ok_or_else(|| unreadable("a point without a timeStamp"))?;
                    // A grain with no data has no aggregate: a gap, not a zero.
                    let Some(v) = point.get(&field).and_then(Value::as_f64) else {
                        continue;
                    };
                    if at >= range.start && at < range.end {
                        samples.push(Sample {
                            at,
                            value: v * scale,
                        });
                    }
                }
            }
        }
        samples.sort_by_key(|s| s.at);
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("group".to_owned(), request.query.group.clone());
        labels.insert("metric".to_owned(), metric);
        labels.insert("aggregation".to_owned(), aggregation);
        Ok(vec![TimeSeries { labels, samples }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_and_intervals() {
        assert_eq!(
            parse_expression("Maximum(Percentage CPU)").unwrap(),
            ("Percentage CPU".to_owned(), "Maximum".to_owned())
        );
        assert_eq!(parse_expression("Network In Total").unwrap().1, "Average");
        assert!(parse_expression("Median(x)").is_err());
        assert!(parse_expression("").is_err());
        assert_eq!(interval_for(60), "PT1M");
        assert_eq!(interval_for(120), "PT5M");
        assert_eq!(interval_for(86400), "P1D");
    }
}
