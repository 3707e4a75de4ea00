//! [`BillingProvider`] on Cost Explorer: actual cost by period, grouped by service or tag
//! (GetCostAndUsage), the cost forecast (GetCostForecast), and instance prices from the
//! [`crate::catalog::PriceBook`].
//!
//! Group-by keys: `service` (the `SERVICE` dimension), `group` (the
//! `aws:autoscaling:groupName` cost allocation tag) and `tag:KEY`. Amounts are `UnblendedCost`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_costexplorer::types::{
    DateInterval, Expression, Granularity, GroupDefinition, GroupDefinitionType, Metric,
    MetricValue, TagValues,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use hoist_api::{
    BillingCapabilities, BillingProvider, CapacityType, CostEntry, CostGranularity, CostQuery,
    Currency, ErrorKind, Money, Price, Result,
};

use crate::client::AwsProvider;
use crate::errors::{SdkResultExt, local};

/// The tag AWS puts on every instance of an Auto Scaling group (activate it as a cost
/// allocation tag to group costs by scaling group).
pub const GROUP_NAME_TAG: &str = "aws:autoscaling:groupName";

const METRIC: &str = "UnblendedCost";

/// The Cost Explorer filter of the provider's `cost_tags`: every tag must match (`None`: the
/// whole account).
fn cost_filter(tags: &std::collections::BTreeMap<String, String>) -> Option<Expression> {
    let mut each: Vec<Expression> = tags
        .iter()
        .map(|(key, value)| {
            Expression::builder()
                .tags(TagValues::builder().key(key).values(value).build())
                .build()
        })
        .collect();
    match each.len() {
        0 => None,
        1 => each.pop(),
        _ => Some(Expression::builder().set_and(Some(each)).build()),
    }
}

/// A parsed group-by key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupBy {
    Service,
    Tag(String),
}

fn parse_group_by(operation: &str, group_by: Option<&str>) -> Result<Option<GroupBy>> {
    match group_by {
        None => Ok(None),
        Some("service") => Ok(Some(GroupBy::Service)),
        Some("group") => Ok(Some(GroupBy::Tag(GROUP_NAME_TAG.to_owned()))),
        Some(other) => match other.strip_prefix("tag:") {
            Some(key) if !key.is_empty() => Ok(Some(GroupBy::Tag(key.to_owned()))),
            _ => Err(local(
                ErrorKind::InvalidInput,
                operation,
                format!("group_by `{other}`: expected `service`, `group` or `tag:KEY`"),
            )),
        },
    }
}

fn interval(operation: &str, query: &CostQuery) -> Result<DateInterval> {
    if query.range.end <= query.range.start {
        return Err(local(
            ErrorKind::InvalidInput,
            operation,
            format!(
                "the period {} .. {} is empty",
                query.range.start, query.range.end
            ),
        ));
    }
    let format = |t: DateTime<Utc>| match query.granularity {
        CostGranularity::Hourly => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        CostGranularity::Daily | CostGranularity::Monthly => t.format("%Y-%m-%d").to_string(),
    };
    DateInterval::builder()
        .start(format(query.range.start))
        .end(format(query.range.end))
        .build()
        .map_err(|e| local(ErrorKind::InvalidInput, operation, e.to_string()))
}

fn granularity(g: CostGranularity) -> Granularity {
    match g {
        CostGranularity::Hourly => Granularity::Hourly,
        CostGranularity::Daily => Granularity::Daily,
        CostGranularity::Monthly => Granularity::Monthly,
    }
}

/// Reads a Cost Explorer date (`2024-05-01`) or date-time (`2024-05-01T10:00:00Z`).
fn parse_ce_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn money(operation: &str, value: &MetricValue) -> Result<Money> {
    let raw = value.amount().unwrap_or("0");
    let amount = raw.parse::<hoist_api::Decimal>().map_err(|_| {
        local(
            ErrorKind::Other,
            operation,
            format!("Cost Explorer sent an unreadable amount `{raw}`"),
        )
    })?;
    Ok(Money {
        amount,
        currency: Currency(value.unit().unwrap_or("USD").to_owned()),
    })
}

fn period(operation: &str, p: Option<&DateInterval>) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let p = p.ok_or_else(|| {
        local(
            ErrorKind::Other,
            operation,
            "Cost Explorer sent a row without a period",
        )
    })?;
    match (parse_ce_time(p.start()), parse_ce_time(p.end())) {
        (Some(start), Some(end)) => Ok((start, end)),
        _ => Err(local(
            ErrorKind::Other,
            operation,
            format!(
                "Cost Explorer sent an unreadable period {} .. {}",
                p.start(),
                p.end()
            ),
        )),
    }
}

/// Cost Explorer's `LimitExceededException` is its request-rate limit, not a quota: report it
/// as throttling so that retry layers back off and try again.
fn rate_limit(operation: &str, e: hoist_api::Error) -> hoist_api::Error {
    use std::error::Error as _;
    let is_rate_limit = e
        .source()
        .and_then(|s| s.downcast_ref::<crate::errors::AwsServiceError>())
        .is_some_and(|s| s.code.as_deref() == Some("LimitExceededException"));
    if is_rate_limit {
        local(
            ErrorKind::Throttled,
            operation,
            "Cost Explorer request rate exceeded",
        )
        .with_source(e)
    } else {
        e
    }
}

impl AwsProvider {
    async fn cost_and_usage(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        const OP: &str = "get_cost_and_usage";
        let group_by = parse_group_by(OP, query.group_by.as_deref())?;
        let time_period = interval(OP, query)?;
        let mut entries = Vec::new();
        let mut next = None;
        loop {
            let mut request = self
                .clients
                .cost_explorer
                .get_cost_and_usage()
                .time_period(time_period.clone())
                .granularity(granularity(query.granularity))
                .metrics(METRIC)
                .set_filter(cost_filter(&self.cost_tags))
                .set_next_page_token(next.take());
            if let Some(g) = &group_by {
                let (kind, key) = match g {
                    GroupBy::Service => (GroupDefinitionType::Dimension, "SERVICE"),
                    GroupBy::Tag(key) => (GroupDefinitionType::Tag, key.as_str()),
                };
                request =
                    request.group_by(GroupDefinition::builder().r#type(kind).key(key).build());
            }
            let page = request
                .send()
                .await
                .aws(OP)
                .map_err(|e| rate_limit(OP, e))?;
            for row in page.results_by_time() {
                let (start, end) = period(OP, row.time_period())?;
                let estimated = row.estimated();
                if group_by.is_some() {
                    for group in row.groups() {
                        let Some(value) = group
                            .metrics()
                            .and_then(|m: &HashMap<String, MetricValue>| m.get(METRIC))
                        else {
                            continue;
                        };
                        let key = group.keys().join(",");
                        // Tag keys come back as `KEY$value`; keep the value (empty: untagged).
                        let key = match &group_by {
                            Some(GroupBy::Tag(tag)) => key
                                .strip_prefix(&format!("{tag}$"))
                                .map(str::to_owned)
                                .unwrap_or(key),
                            _ => key,
                        };
                        entries.push(CostEntry {
                            start,
                            end,
                            key: Some(key),
                            amount: money(OP, value)?,
                            estimated,
                        });
                    }
                } else if let Some(value) = row.total().and_then(|t| t.get(METRIC)) {
                    entries.push(CostEntry {
                        start,
                        end,
                        key: None,
                        amount: money(OP, value)?,
                        estimated,
                    });
                }
            }
            next = page
                .next_page_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        Ok(entries)
    }

    async fn cost_forecast(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        const OP: &str = "get_cost_forecast";
        if query.group_by.is_some() {
            return Err(local(
                ErrorKind::Unsupported,
                OP,
                "Cost Explorer forecasts totals only: ask without group_by",
            ));
        }
        if query.granularity == CostGranularity::Hourly {
            return Err(local(
                ErrorKind::Unsupported,
                OP,
                "Cost Explorer forecasts by day or month, not by hour",
            ));
        }
        let out = self
            .clients
            .cost_explorer
            .get_cost_forecast()
            .time_period(interval(OP, query)?)
            .metric(Metric::UnblendedCost)
            .granularity(granularity(query.granularity))
            .set_filter(cost_filter(&self.cost_tags))
            .send()
            .await
            .aws(OP)
            .map_err(|e| rate_limit(OP, e))?;
        let currency = out
            .total()
            .and_then(|t| t.unit())
            .unwrap_or("USD")
            .to_owned();
        let mut entries = Vec::new();
        for row in out.forecast_results_by_time() {
            let (start, end) = period(OP, row.time_period())?;
            let raw = row.mean_value().unwrap_or("0");
            let amount = raw.parse::<hoist_api::Decimal>().map_err(|_| {
                local(
                    ErrorKind::Other,
                    OP,
                    format!("Cost Explorer sent an unreadable forecast `{raw}`"),
                )
            })?;
            entries.push(CostEntry {
                start,
                end,
                key: None,
                amount: Money {
                    amount,
                    currency: Currency(currency.clone()),
                },
                estimated: true,
            });
        }
        Ok(entries)
    }
}

#[async_trait]
impl BillingProvider for AwsProvider {
    fn capabilities(&self) -> BillingCapabilities {
        BillingCapabilities {
            actual_cost: true,
            forecast: true,
            prices: true,
        }
    }

    async fn cost(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        self.cost_and_usage(query).await
    }

    async fn forecast(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        self.cost_forecast(query).await
    }

    async fn price(
        &self,
        instance_class: &str,
        zone: &str,
        capacity_type: CapacityType,
    ) -> Result<Price> {
        self.prices
            .read()
            .await
            .get(instance_class, zone, capacity_type)
            .cloned()
            .ok_or_else(|| {
                local(
                    ErrorKind::NotFound,
                    "price",
                    format!(
                        "no {capacity_type:?} price for {instance_class} in {zone} ({}): refresh prices from AWS first",
                        self.region
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_by_keys_parse_or_name_the_problem() {
        assert_eq!(parse_group_by("x", None).unwrap(), None);
        assert_eq!(
            parse_group_by("x", Some("service")).unwrap(),
            Some(GroupBy::Service)
        );
        assert_eq!(
            parse_group_by("x", Some("group")).unwrap(),
            Some(GroupBy::Tag(GROUP_NAME_TAG.into()))
        );
        assert_eq!(
            parse_group_by("x", Some("tag:team")).unwrap(),
            Some(GroupBy::Tag("team".into()))
        );
        let err = parse_group_by("x", Some("tag:")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(parse_group_by("x", Some("region")).is_err());
    }

    #[test]
    fn cost_explorer_times_parse() {
        assert_eq!(
            parse_ce_time("2024-05-01").unwrap().to_rfc3339(),
            "2024-05-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_ce_time("2024-05-01T10:00:00Z").unwrap().to_rfc3339(),
            "2024-05-01T10:00:00+00:00"
        );
        assert!(parse_ce_time("May 1").is_none());
    }
}

#[cfg(test)]
mod mocked_tests {
    //! GetCostForecast is not implemented by moto (it answers HTTP 500), so the forecast path is
    //! tested against the SDK's own mock interceptor.

    use aws_sdk_costexplorer::operation::get_cost_and_usage::GetCostAndUsageOutput;
    use aws_sdk_costexplorer::operation::get_cost_forecast::{
        GetCostForecastError, GetCostForecastOutput,
    };
    use aws_sdk_costexplorer::types::{DateInterval, ForecastResult, MetricValue};
    use aws_smithy_mocks::mock;
    use chrono::TimeZone;
    use hoist_api::{BillingProvider, CostGranularity, CostQuery, ErrorKind, TimeRange};

    use crate::testing::{TEST_SECRET, mocked_provider};

    fn query(granularity: CostGranularity, group_by: Option<&str>) -> CostQuery {
        CostQuery {
            range: TimeRange {
                start: chrono::Utc.with_ymd_and_hms(2031, 2, 1, 0, 0, 0).unwrap(),
                end: chrono::Utc.with_ymd_and_hms(2031, 2, 3, 0, 0, 0).unwrap(),
            },
            granularity,
            group_by: group_by.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn forecast_rows_become_estimated_cost_entries() {
        let rule = mock!(aws_sdk_costexplorer::Client::get_cost_forecast)
            .match_requests(|r| {
                r.time_period().map(|p| (p.start(), p.end())) == Some(("2031-02-01", "2031-02-03"))
                    && r.granularity().map(|g| g.as_str()) == Some("DAILY")
                    && r.metric().map(|m| m.as_str()) == Some("UNBLENDED_COST")
            })
            .then_output(|| {
                let day = |start: &str, end: &str, mean: &str| {
                    ForecastResult::builder()
                        .time_period(
                            DateInterval::builder()
                                .start(start)
                                .end(end)
                                .build()
                                .unwrap(),
                        )
                        .mean_value(mean)
                        .build()
                };
                GetCostForecastOutput::builder()
                    .total(MetricValue::builder().amount("30.5").unit("USD").build())
                    .forecast_results_by_time(day("2031-02-01", "2031-02-02", "10.25"))
                    .forecast_results_by_time(day("2031-02-02", "2031-02-03", "20.25"))
                    .build()
            });
        let aws = mocked_provider(&[&rule]);
        let entries = aws
            .forecast(&query(CostGranularity::Daily, None))
            .await
            .unwrap();
        assert_eq!(rule.num_calls(), 1);
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|e| e.estimated && e.key.is_none()));
        assert_eq!(entries[0].amount.to_f64(), 10.25);
        assert_eq!(entries[1].amount.to_f64(), 20.25);
        assert_eq!(entries[1].amount.currency.0, "USD");
        assert_eq!(
            entries[1].start,
            chrono::Utc.with_ymd_and_hms(2031, 2, 2, 0, 0, 0).unwrap()
        );
    }

    #[tokio::test]
    async fn cost_tags_filter_every_cost_explorer_query() {
        let both_tags = |f: Option<&aws_sdk_costexplorer::types::Expression>| {
            let Some(and) = f.map(|f| f.and()) else {
                return false;
            };
            let tags: Vec<(Option<&str>, &[String])> = and
                .iter()
                .filter_map(|e| e.tags())
                .map(|t| (t.key(), t.values()))
                .collect();
            tags == vec![
                (Some("env"), &["prod".to_owned()][..]),
                (Some("team"), &["web".to_owned()][..]),
            ]
        };
        let usage = mock!(aws_sdk_costexplorer::Client::get_cost_and_usage)
            .match_requests(move |r| both_tags(r.filter()))
            .then_output(|| GetCostAndUsageOutput::builder().build());
        let forecast = mock!(aws_sdk_costexplorer::Client::get_cost_forecast)
            .match_requests(move |r| both_tags(r.filter()))
            .then_output(|| {
                GetCostForecastOutput::builder()
                    .total(MetricValue::builder().amount("0").unit("USD").build())
                    .build()
            });
        let mut aws = mocked_provider(&[&usage, &forecast]);
        aws.cost_tags = [("team", "web"), ("env", "prod")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        aws.cost(&query(CostGranularity::Daily, None))
            .await
            .unwrap();
        aws.forecast(&query(CostGranularity::Daily, None))
            .await
            .unwrap();
        assert_eq!((usage.num_calls(), forecast.num_calls()), (1, 1));

        // One tag is a plain tag expression; none is no filter.
        let one: std::collections::BTreeMap<String, String> =
            [("team".to_owned(), "web".to_owned())].into();
        let f = super::cost_filter(&one).unwrap();
        assert_eq!(f.tags().and_then(|t| t.key()), Some("team"));
        assert!(super::cost_filter(&Default::default()).is_none());
    }

    #[tokio::test]
    async fn forecast_refuses_what_cost_explorer_cannot_do_before_calling_it() {
        let rule = mock!(aws_sdk_costexplorer::Client::get_cost_forecast)
            .then_output(|| GetCostForecastOutput::builder().build());
        let aws = mocked_provider(&[&rule]);
        let err = aws
            .forecast(&query(CostGranularity::Daily, Some("service")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        let err = aws
            .forecast(&query(CostGranularity::Hourly, None))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert_eq!(rule.num_calls(), 0);
    }

    #[tokio::test]
    async fn forecast_errors_map_to_kinds_without_credentials() {
        let limit = mock!(aws_sdk_costexplorer::Client::get_cost_forecast).then_error(|| {
            GetCostForecastError::LimitExceededException(
                aws_sdk_costexplorer::types::error::LimitExceededException::builder()
                    .message("slow down")
                    .meta(
                        aws_smithy_types::error::ErrorMetadata::builder()
                            .code("LimitExceededException")
                            .message("slow down")
                            .build(),
                    )
                    .build(),
            )
        });
        let aws = mocked_provider(&[&limit]);
        let err = aws
            .forecast(&query(CostGranularity::Daily, None))
            .await
            .unwrap_err();
        // Cost Explorer's LimitExceededException is its request-rate limit.
        assert_eq!(err.kind(), ErrorKind::Throttled, "{err}");
        assert!(err.is_retryable());
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(TEST_SECRET), "{shown}");
        assert!(!shown.contains("test-session-token"), "{shown}");
        assert_eq!(err.provider(), "aws");
        assert_eq!(err.operation(), "get_cost_forecast");

        let unavailable = mock!(aws_sdk_costexplorer::Client::get_cost_forecast)
            .then_http_response(|| {
                aws_smithy_runtime_api::http::Response::new(
                    aws_smithy_runtime_api::http::StatusCode::try_from(503).unwrap(),
                    aws_smithy_types::body::SdkBody::from(
                        r#"{"__type":"ServiceUnavailable","message":"try later"}"#,
                    ),
                )
            });
        let aws = mocked_provider(&[&unavailable]);
        let err = aws
            .forecast(&query(CostGranularity::Daily, None))
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    }
}
