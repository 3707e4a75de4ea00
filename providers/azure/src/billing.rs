//! [`BillingProvider`] on Cost Management: actual cost (the query API) and its forecast (the
//! forecast API), by day or month, in the account's billing currency; instance prices from the
//! [`crate::catalog::PriceBook`].
//!
//! What a report covers is `billing.scope` (the provider's scale sets by resource id, a resource
//! group, or the subscription) narrowed by `billing.tags`. Group-by keys: `group` (by scale set:
//! the resource id, shown as the scale set's group name when it is one of the provider's),
//! `resource_group`, `service` and `tag:KEY`. Cost Management has no hourly granularity; an
//! hourly question is refused. Amounts are `ActualCost` (what the invoice shows).

use async_trait::async_trait;
use azure_core::Url;
use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, NaiveDateTime, Utc};
use hoist_api::{
    BillingCapabilities, BillingProvider, CapacityType, CostEntry, CostGranularity, CostQuery,
    Currency, ErrorKind, Money, Price, Result,
};
use serde_json::{Value, json};

use crate::errors::local;
use crate::settings::BillingScope;
use crate::{AzureProvider, region_of_zone};

/// The Cost Management API version.
pub const COST_API_VERSION: &str = "2023-11-01";

/// Pages of a cost report read at most.
const MAX_COST_PAGES: usize = 100;

/// A parsed group-by key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupBy {
    ScaleSet,
    ResourceGroup,
    Service,
    Tag(String),
}

fn parse_group_by(operation: &str, group_by: Option<&str>) -> Result<Option<GroupBy>> {
    match group_by {
        None => Ok(None),
        Some("group") => Ok(Some(GroupBy::ScaleSet)),
        Some("resource_group") => Ok(Some(GroupBy::ResourceGroup)),
        Some("service") => Ok(Some(GroupBy::Service)),
        Some(other) => match other.strip_prefix("tag:") {
            Some(key) if !key.is_empty() => Ok(Some(GroupBy::Tag(key.to_owned()))),
            _ => Err(local(
                ErrorKind::InvalidInput,
                operation,
                format!(
                    "group_by `{other}`: expected `group`, `resource_group`, `service` or `tag:KEY`"
                ),
            )),
        },
    }
}

impl GroupBy {
    fn grouping(&self) -> Value {
        match self {
            GroupBy::ScaleSet => json!({"type": "Dimension", "name": "ResourceId"}),
            GroupBy::ResourceGroup => json!({"type": "Dimension", "name": "ResourceGroupName"}),
            GroupBy::Service => json!({"type": "Dimension", "name": "ServiceName"}),
            GroupBy::Tag(key) => json!({"type": "TagKey", "name": key}),
        }
    }

    /// The column carrying the key in the answer.
    fn columns(&self) -> Vec<String> {
        match self {
            GroupBy::ScaleSet => vec!["ResourceId".to_owned()],
            GroupBy::ResourceGroup => vec!["ResourceGroupName".to_owned()],
            GroupBy::Service => vec!["ServiceName".to_owned()],
            GroupBy::Tag(key) => vec!["TagValue".to_owned(), key.clone()],
        }
    }
}

impl AzureProvider {
    fn cost_scope(&self) -> String {
        match (self.settings.billing.scope, &self.settings.resource_group) {
            (BillingScope::ResourceGroup, Some(rg)) => {
                format!("/subscriptions/{}/resourceGroups/{rg}", self.subscription)
            }
            _ => format!("/subscriptions/{}", self.subscription),
        }
    }

    async fn cost_filter(&self, operation: &str) -> Result<Option<Value>> {
        let mut clauses = Vec::new();
        if self.settings.billing.scope == BillingScope::ScaleSets {
            let ids = self.scale_set_ids().await.map_err(|e| {
                local(
                    e.kind(),
                    operation,
                    format!("cannot find the scale sets to report on: {}", e.message()),
                )
            })?;
            clauses.push(
                json!({"dimensions": {"name": "ResourceId", "operator": "In", "values": ids}}),
            );
        }
        for (key, value) in &self.settings.billing.tags {
            clauses.push(json!({"tags": {"name": key, "operator": "In", "values": [value]}}));
        }
        Ok(match clauses.len() {
            0 => None,
            1 => clauses.pop(),
            _ => Some(json!({"and": clauses})),
        })
    }

    async fn cost_report(
        &self,
        operation: &str,
        api: &str,
        query: &CostQuery,
        estimated: bool,
    ) -> Result<Vec<CostEntry>> {
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
        let granularity = match query.granularity {
            CostGranularity::Daily => "Daily",
            CostGranularity::Monthly if !estimated => "Monthly",
            CostGranularity::Monthly => {
                return Err(local(
                    ErrorKind::InvalidInput,
                    operation,
                    "Cost Management forecasts by day; ask for daily granularity",
                ));
            }
            CostGranularity::Hourly => {
                return Err(local(
                    ErrorKind::InvalidInput,
                    operation,
                    "Cost Management reports by day or month, not by hour",
                ));
            }
        };
        let group_by = parse_group_by(operation, query.group_by.as_deref())?;
        if estimated && group_by.is_some() {
            return Err(local(
                ErrorKind::InvalidInput,
                operation,
                "Cost Management forecasts totals only; leave group_by out",
            ));
        }
        let last = query.range.end - ChronoDuration::seconds(1);
        let mut dataset = json!({
            "granularity": granularity,
            "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
        });
        if let Some(g) = &group_by {
            dataset["grouping"] = json!([g.grouping()]);
        }
        if let Some(filter) = self.cost_filter(operation).await? {
            dataset["filter"] = filter;
        }
        let mut body = json!({
            "type": "ActualCost",
            "timeframe": "Custom",
            "timePeriod": {
                "from": query.range.start.format("%Y-%m-%dT00:00:00Z").to_string(),
                "to": last.format("%Y-%m-%dT23:59:59Z").to_string(),
            },
            "dataset": dataset,
        });
        if estimated {
            body["includeActualCost"] = json!(false);
            body["includeFreshPartialCost"] = json!(false);
        }
        let mut url = self
            .arm
            .join(&format!(
                "{}/providers/Microsoft.CostManagement/{api}",
                self.cost_scope()
            ))
            .map_err(|e| local(ErrorKind::Config, operation, e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("api-version", COST_API_VERSION);
        let names = self.group_names().await;
        let mut entries = Vec::new();
        let mut next = Some(url);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_COST_PAGES {
                break;
            }
            let answer: Value = self
                .rest
                .post(operation, &url, &body)
                .await?
                .json(operation, "Cost Management")?;
            let props = answer.get("properties").unwrap_or(&answer);
            entries.extend(rows(
                operation,
                props,
                query.granularity,
                group_by.as_ref(),
                estimated,
                &names,
            )?);
            next = props
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty())
                .and_then(|l| Url::parse(l).ok());
        }
        entries.retain(|e| e.start < query.range.end && e.end > query.range.start);
        entries.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.key.cmp(&b.key)));
        Ok(entries)
    }
}

fn unreadable(operation: &str, what: impl std::fmt::Display) -> hoist_api::Error {
    local(
        ErrorKind::Other,
        operation,
        format!("Cost Management sent an unreadable report: {what}"),
    )
}

/// The period a row covers: `UsageDate` (`20261101`) or `BillingMonth`.
fn row_period(
    value: &Value,
    granularity: CostGranularity,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = match value {
        Value::Number(n) => NaiveDate::parse_from_str(&n.to_string(), "%Y%m%d").ok()?,
        Value::String(s) => NaiveDate::parse_from_str(s, "%Y%m%d")
            .ok()
            .or_else(|| {
                NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                    .ok()
                    .map(|t| t.date())
            })
            .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.date_naive()))?,
        _ => return None,
    };
    let end = match granularity {
        CostGranularity::Monthly => {
            let (y, m) = if start.month() == 12 {
                (start.year() + 1, 1)
            } else {
                (start.year(), start.month() + 1)
            };
            NaiveDate::from_ymd_opt(y, m, 1)?
        }
        _ => start.succ_opt()?,
    };
    Some((
        start.and_hms_opt(0, 0, 0)?.and_utc(),
        end.and_hms_opt(0, 0, 0)?.and_utc(),
    ))
}

fn rows(
    operation: &str,
    props: &Value,
    granularity: CostGranularity,
    group_by: Option<&GroupBy>,
    estimated: bool,
    names: &[(String, String)],
) -> Result<Vec<CostEntry>> {
    let columns: Vec<String> = props
        .get("columns")
        .and_then(Value::as_array)
        .ok_or_else(|| unreadable(operation, "no columns"))?
        .iter()
        .map(|c| {
            c.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let find = |names: &[&str]| {
        columns
            .iter()
            .position(|c| names.iter().any(|n| c.eq_ignore_ascii_case(n)))
    };
    let cost = find(&["Cost", "PreTaxCost", "CostUSD"])
        .ok_or_else(|| unreadable(operation, "no Cost column"))?;
    let date = find(&["UsageDate", "BillingMonth"])
        .ok_or_else(|| unreadable(operation, "no UsageDate or BillingMonth column"))?;
    let currency = find(&["Currency"]);
    let key = match group_by {
        Some(g) => {
            let wanted = g.columns();
            let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
            Some(
                find(&wanted)
                    .ok_or_else(|| unreadable(operation, "no column for the group-by key"))?,
            )
        }
        None => None,
    };
    let status = find(&["CostStatus"]);
    let mut out = Vec::new();
    for row in props
        .get("rows")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let Some(cells) = row.as_array() else {
            return Err(unreadable(operation, "a row is not a list"));
        };
        let cell = |i: usize| cells.get(i).unwrap_or(&Value::Null);
        if estimated
            && let Some(s) = status
            && cell(s).as_str().is_some_and(|s| s != "Forecast")
        {
            continue;
        }
        let amount = cell(cost)
            .as_f64()
            .ok_or_else(|| unreadable(operation, "a cost is not a number"))?;
        let (start, end) = row_period(cell(date), granularity)
            .ok_or_else(|| unreadable(operation, format!("the date {}", cell(date))))?;
        let currency = Currency(
            currency
                .and_then(|i| cell(i).as_str())
                .filter(|c| !c.is_empty())
                .unwrap_or("USD")
                .to_owned(),
        );
        let amount = Money::from_f64(amount, currency)
            .ok_or_else(|| unreadable(operation, "a cost out of range"))?;
        let key = key.map(|i| {
            let raw = match cell(i) {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            if group_by == Some(&GroupBy::ScaleSet) {
                names
                    .iter()
                    .find(|(id, _)| id.eq_ignore_ascii_case(&raw))
                    .map(|(_, name)| name.clone())
                    .unwrap_or(raw)
            } else {
                raw
            }
        });
        out.push(CostEntry {
            start,
            end,
            key,
            amount,
            estimated,
        });
    }
    Ok(out)
}

#[async_trait]
impl BillingProvider for AzureProvider {
    fn capabilities(&self) -> BillingCapabilities {
        BillingCapabilities {
            actual_cost: true,
            forecast: true,
            prices: true,
        }
    }

    fn describe(&self) -> String {
        format!("{} (azure)", self.name)
    }

    async fn cost(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        self.cost_report("cost", "query", query, false).await
    }

    async fn forecast(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        self.cost_report("forecast", "forecast", query, true).await
    }

    async fn price(
        &self,
        instance_class: &str,
        zone: &str,
        capacity_type: CapacityType,
    ) -> Result<Price> {
        self.refresh_prices_if_due().await;
        let region = region_of_zone(zone);
        self.book()
            .price(region, instance_class, capacity_type)
            .ok_or_else(|| {
                local(
                    ErrorKind::NotFound,
                    "price",
                    format!("no {capacity_type:?} price for {instance_class} in {region}"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_daily_and_monthly_rows() {
        let props = json!({
            "columns": [{"name": "Cost"}, {"name": "UsageDate"}, {"name": "ResourceId"}, {"name": "Currency"}],
            "rows": [[12.5, 20261101, "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS/WEB", "EUR"]]
        });
        let names = vec![(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/web".to_owned(),
            "web".to_owned(),
        )];
        let rows = rows(
            "cost",
            &props,
            CostGranularity::Daily,
            Some(&GroupBy::ScaleSet),
            false,
            &names,
        )
        .unwrap();
        assert_eq!(rows[0].key.as_deref(), Some("web"));
        assert_eq!(rows[0].amount.to_string(), "12.50 EUR");
        assert_eq!(rows[0].end - rows[0].start, ChronoDuration::days(1));
        let (start, end) =
            row_period(&json!("2026-12-01T00:00:00"), CostGranularity::Monthly).unwrap();
        assert_eq!(start.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert!(parse_group_by("cost", Some("tag:")).is_err());
    }
}
