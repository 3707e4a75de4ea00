//! [`BillingProvider`] for Google Cloud.
//!
//! GCP has no cost query API. Actual cost comes from the Cloud Billing export to BigQuery (the
//! standard usage cost table), the way cost tools read GCP, when `billing.bigquery_table` is
//! set: Compute Engine's cost plus its credits, by day or month, in the billing account's
//! currency. Without a table the provider declares no actual cost (`actual_cost: false`) and
//! Hoist's own estimate from prices stands in. There is no forecast API either. Prices come from
//! the [`crate::catalog::PriceBook`].
//!
//! Group-by keys: `service` (the service's description) and `tag:KEY` (a resource label).

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use hoist_api::{
    BillingCapabilities, BillingProvider, CapacityType, CostEntry, CostGranularity, CostQuery,
    Currency, ErrorKind, Money, Price, Result,
};
use serde_json::{Value, json};

use crate::GcpProvider;
use crate::errors::{error_body, from_status, local};
use crate::settings::BIGQUERY_ENDPOINT;

/// The SQL of a cost question: Compute Engine cost plus credits per day and currency in
/// `[@start, @end)`, optionally per a label's value (`@group_key`) and only for line items that
/// carry the configured labels. The export table is partitioned by export time, and a line item
/// is exported after its usage, so partitions from a day before `@start` on are all it reads.
pub fn cost_sql(table: &str, by_service: bool, by_label: bool, labels: usize) -> String {
    let mut key = String::new();
    if by_service {
        key = ", service.description AS key".to_owned();
    } else if by_label {
        key = ", (SELECT l.value FROM UNNEST(labels) AS l WHERE l.key = @group_key) AS key"
            .to_owned();
    }
    let mut filters = String::new();
    if !by_service {
        filters.push_str(" AND service.description = 'Compute Engine'");
    }
    for i in 0..labels {
        filters.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM UNNEST(labels) AS l WHERE l.key = @label_key_{i} AND l.value = @label_value_{i})"
        ));
    }
    let group = if key.is_empty() { "" } else { ", key" };
    format!(
        "SELECT FORMAT_DATE('%Y-%m-%d', DATE(usage_start_time)) AS day, \
         SUM(cost) + SUM(IFNULL((SELECT SUM(c.amount) FROM UNNEST(credits) AS c), 0)) AS cost, \
         currency{key} \
         FROM `{table}` \
         WHERE DATE(_PARTITIONTIME) >= DATE_SUB(DATE(@start), INTERVAL 1 DAY) \
         AND usage_start_time >= @start AND usage_start_time < @end{filters} \
         GROUP BY day, currency{group} ORDER BY day"
    )
}

fn parameter(name: &str, kind: &str, value: &str) -> Value {
    json!({"name": name, "parameterType": {"type": kind}, "parameterValue": {"value": value}})
}

fn unreadable(what: impl std::fmt::Display) -> hoist_api::Error {
    local(
        ErrorKind::Other,
        "cost",
        format!("BigQuery sent an unreadable answer: {what}"),
    )
}

/// Reads of a BigQuery result at most (pages, or polls of an unfinished job).
const MAX_PAGES: usize = 100;

/// The largest BigQuery answer read (a page of daily rows is a few KiB).
const MAX_ANSWER_BYTES: usize = 32 << 20;

impl GcpProvider {
    async fn bigquery(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &reqwest::header::HeaderMap,
        body: Option<&Value>,
    ) -> Result<Value> {
        let op = "cost";
        let mut request = self.http.request(method, url).headers(headers.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            local(
                if e.is_timeout() {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Transient
                },
                op,
                format!("cannot reach BigQuery: {e}"),
            )
        })?;
        let status = response.status().as_u16();
        // Read at most MAX_ANSWER_BYTES: a server that sends without end is cut off.
        let mut response = response;
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            local(
                ErrorKind::Transient,
                op,
                format!("reading BigQuery's answer: {e}"),
            )
        })? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(local(
                    ErrorKind::Other,
                    op,
                    format!("BigQuery sent more than {MAX_ANSWER_BYTES} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        if status >= 400 {
            let (reason, message) = error_body(&bytes);
            return Err(from_status(op, status, &reason, &message));
        }
        serde_json::from_slice(&bytes).map_err(unreadable)
    }

    async fn auth_headers(&self) -> Result<reqwest::header::HeaderMap> {
        use google_cloud_auth::credentials::CacheableResource;
        match self.credentials.headers(http::Extensions::new()).await {
            Ok(CacheableResource::New { data, .. }) => Ok(data),
            Ok(CacheableResource::NotModified) => Ok(reqwest::header::HeaderMap::new()),
            Err(e) => Err(local(
                ErrorKind::PermissionDenied,
                "cost",
                format!("could not get Google Cloud credentials for BigQuery: {e}"),
            )),
        }
    }

    async fn bigquery_cost(&self, table: &str, query: &CostQuery) -> Result<Vec<CostEntry>> {
        let op = "cost";
        if query.range.end <= query.range.start {
            return Err(local(
                ErrorKind::InvalidInput,
                op,
                format!(
                    "the period {} .. {} is empty",
                    query.range.start, query.range.end
                ),
            ));
        }
        if query.granularity == CostGranularity::Hourly {
            return Err(local(
                ErrorKind::InvalidInput,
                op,
                "the billing export is read by day or month, not by hour",
            ));
        }
        let (by_service, group_key) = match query.group_by.as_deref() {
            None => (false, None),
            Some("service") => (true, None),
            Some(other) => match other.strip_prefix("tag:") {
                Some(k) if !k.is_empty() => (false, Some(k.to_owned())),
                _ => {
                    return Err(local(
                        ErrorKind::InvalidInput,
                        op,
                        format!("group_by `{other}`: expected `service` or `tag:KEY`"),
                    ));
                }
            },
        };
        let labels: Vec<(&String, &String)> = self.settings.billing.labels.iter().collect();
        let sql = cost_sql(table, by_service, group_key.is_some(), labels.len());
        let stamp = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S+00").to_string();
        let mut parameters = vec![
            parameter("start", "TIMESTAMP", &stamp(query.range.start)),
            parameter("end", "TIMESTAMP", &stamp(query.range.end)),
        ];
        if let Some(k) = &group_key {
            parameters.push(parameter("group_key", "STRING", k));
        }
        for (i, (k, v)) in labels.iter().enumerate() {
            parameters.push(parameter(&format!("label_key_{i}"), "STRING", k));
            parameters.push(parameter(&format!("label_value_{i}"), "STRING", v));
        }
        let body = json!({
            "query": sql,
            "useLegacySql": false,
            "parameterMode": "NAMED",
            "queryParameters": parameters,
            "timeoutMs": 30_000,
        });
        let endpoint = self
            .settings
            .billing
            .endpoint
            .clone()
            .or_else(|| self.settings.endpoint.clone())
            .unwrap_or_else(|| BIGQUERY_ENDPOINT.to_owned());
        let project = self
            .settings
            .billing
            .query_project
            .clone()
            .unwrap_or_else(|| self.project.clone());
        let url = format!(
            "{}/bigquery/v2/projects/{project}/queries",
            endpoint.trim_end_matches('/')
        );
        let headers = self.auth_headers().await?;
        let mut answer = self
            .bigquery(reqwest::Method::POST, &url, &headers, Some(&body))
            .await?;
        // A job that did not finish within the request, or a result in several pages, is read
        // with jobs.getQueryResults until complete (at most MAX_PAGES pages).
        let mut rows: Vec<Value> = Vec::new();
        let mut pages = 0;
        loop {
            let complete = answer.get("jobComplete").and_then(Value::as_bool) != Some(false);
            if complete {
                rows.extend(
                    answer
                        .get("rows")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            let token = answer
                .get("pageToken")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if complete && token.is_none() {
                break;
            }
            pages += 1;
            if pages > MAX_PAGES {
                return Err(local(
                    ErrorKind::Timeout,
                    op,
                    format!("the BigQuery result did not come within {MAX_PAGES} reads"),
                ));
            }
            let job = answer
                .pointer("/jobReference/jobId")
                .and_then(Value::as_str)
                .ok_or_else(|| unreadable("an unfinished job without a jobReference"))?;
            let mut next = format!(
                "{}/bigquery/v2/projects/{project}/queries/{job}?timeoutMs=30000",
                endpoint.trim_end_matches('/')
            );
            if let Some(location) = answer
                .pointer("/jobReference/location")
                .and_then(Value::as_str)
            {
                next.push_str(&format!("&location={location}"));
            }
            if let Some(token) = token.filter(|_| complete) {
                next.push_str(&format!("&pageToken={token}"));
            }
            let schema = answer.get("schema").cloned();
            answer = self
                .bigquery(reqwest::Method::GET, &next, &headers, None)
                .await?;
            if answer.get("schema").is_none()
                && let (Some(schema), Some(obj)) = (schema, answer.as_object_mut())
            {
                obj.insert("schema".to_owned(), schema);
            }
        }
        if let Some(total) = answer
            .get("totalRows")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<usize>().ok())
            && total != rows.len()
        {
            return Err(unreadable(format!(
                "{} rows read of the {total} BigQuery reported",
                rows.len()
            )));
        }
        let fields: Vec<String> = answer
            .pointer("/schema/fields")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .map(|f| {
                        f.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let column = |name: &str| fields.iter().position(|f| f == name);
        let (day, cost, currency) = match (column("day"), column("cost"), column("currency")) {
            (Some(d), Some(c), Some(cur)) => (d, c, cur),
            _ => return Err(unreadable("no day, cost or currency column")),
        };
        let key = column("key");
        let mut entries: Vec<CostEntry> = Vec::new();
        for row in &rows {
            let cells = row
                .get("f")
                .and_then(Value::as_array)
                .ok_or_else(|| unreadable("a row"))?;
            let cell = |i: usize| {
                cells
                    .get(i)
                    .and_then(|c| c.get("v"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            let date = NaiveDate::parse_from_str(cell(day), "%Y-%m-%d")
                .map_err(|_| unreadable(format!("the day `{}`", cell(day))))?;
            let amount: f64 = cell(cost)
                .parse()
                .map_err(|_| unreadable(format!("the cost `{}`", cell(cost))))?;
            let currency = Currency(cell(currency).to_owned());
            let amount = Money::from_f64(amount.max(0.0), currency)
                .ok_or_else(|| unreadable("a cost out of range"))?;
            let (start, end) = period(date, query.granularity);
            let key = key.map(|i| cell(i).to_owned());
            match entries
                .iter_mut()
                .find(|e| e.start == start && e.key == key && e.amount.currency == amount.currency)
            {
                Some(e) => e.amount.amount += amount.amount,
                None => entries.push(CostEntry {
                    start,
                    end,
                    key,
                    amount,
                    estimated: false,
                }),
            }
        }
        entries.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.key.cmp(&b.key)));
        Ok(entries)
    }
}

fn period(date: NaiveDate, granularity: CostGranularity) -> (DateTime<Utc>, DateTime<Utc>) {
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    match granularity {
        CostGranularity::Monthly => {
            let first = date.with_day(1).unwrap_or(date);
            let next = if first.month() == 12 {
                NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
            }
            .unwrap_or(first);
            (midnight(first), midnight(next))
        }
        _ => (midnight(date), midnight(date.succ_opt().unwrap_or(date))),
    }
}

#[async_trait]
impl BillingProvider for GcpProvider {
    fn capabilities(&self) -> BillingCapabilities {
        BillingCapabilities {
            actual_cost: self.settings.billing.bigquery_table.is_some(),
            forecast: false,
            prices: true,
        }
    }

    fn describe(&self) -> String {
        format!("{} (gcp)", self.name)
    }

    async fn cost(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
        match &self.settings.billing.bigquery_table {
            Some(table) => self.bigquery_cost(table, query).await,
            None => Err(local(
                ErrorKind::Unsupported,
                "cost",
                "GCP has no cost query API: set billing.bigquery_table to the Cloud Billing export table to read actual cost",
            )),
        }
    }

    async fn price(
        &self,
        instance_class: &str,
        zone: &str,
        capacity_type: CapacityType,
    ) -> Result<Price> {
        self.refresh_prices_if_due().await;
        let (catalog_zone, kinds) = self.machine_types().await?;
        let machine = kinds
            .iter()
            .find(|k| k.name == instance_class)
            .ok_or_else(|| {
                local(
                    ErrorKind::NotFound,
                    "price",
                    format!("{instance_class} is not a machine type in {catalog_zone}"),
                )
            })?;
        let region = zone.rsplit_once('-').map_or(zone, |(r, _)| r);
        self.book()
            .price(region, machine, capacity_type)
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
    fn the_query_names_the_table_and_parameters() {
        let sql = cost_sql("p.billing.export", false, true, 1);
        assert!(sql.contains("FROM `p.billing.export`"));
        assert!(sql.contains("@start") && sql.contains("@end") && sql.contains("@group_key"));
        assert!(
            sql.contains("@label_key_0") && sql.contains("service.description = 'Compute Engine'")
        );
        let d = NaiveDate::from_ymd_opt(2026, 12, 15).unwrap();
        let (start, end) = period(d, CostGranularity::Monthly);
        assert_eq!(start.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }
}
