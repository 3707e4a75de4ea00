//! Live prices: spot prices per zone from EC2's spot price history, and on-demand prices per
//! region from the AWS Price List API. Each refreshed price replaces the shipped one and says
//! where it came from (`live`, with the API and the time it was read).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::InstanceType;
use chrono::{DateTime, Utc};
use hoist_api::{CapacityType, ErrorKind, Money, Price, PriceSource, RateUnit, Result};

use crate::client::AwsProvider;
use crate::errors::{SdkResultExt, local};
use crate::time::{to_chrono, to_smithy};

impl AwsProvider {
    /// Reads the latest Linux spot price of each of `instance_types` in every zone of the
    /// region from EC2's spot price history (the last 6 hours) and stores them in the price
    /// book. Returns how many prices were stored.
    pub async fn refresh_spot_prices(&self, instance_types: &[String]) -> Result<usize> {
        const OP: &str = "describe_spot_price_history";
        if instance_types.is_empty() {
            return Ok(0);
        }
        let now = Utc::now();
        let mut latest: BTreeMap<(String, String), (DateTime<Utc>, f64)> = BTreeMap::new();
        for chunk in instance_types.chunks(50) {
            let mut next = None;
            loop {
                let page = self
                    .clients
                    .ec2
                    .describe_spot_price_history()
                    .set_instance_types(Some(
                        chunk
                            .iter()
                            .map(|t| InstanceType::from(t.as_str()))
                            .collect(),
                    ))
                    .product_descriptions("Linux/UNIX")
                    .product_descriptions("Linux/UNIX (Amazon VPC)")
                    .start_time(to_smithy(now - chrono::Duration::hours(6)))
                    .set_next_token(next.take())
                    .send()
                    .await
                    .aws(OP)?;
                for entry in page.spot_price_history() {
                    let (Some(t), Some(zone), Some(price)) = (
                        entry.instance_type(),
                        entry.availability_zone(),
                        entry.spot_price(),
                    ) else {
                        continue;
                    };
                    let Ok(usd) = price.parse::<f64>() else {
                        tracing::warn!(
                            instance_type = t.as_str(),
                            zone,
                            price,
                            "unreadable spot price skipped"
                        );
                        continue;
                    };
                    let at = entry.timestamp().and_then(to_chrono).unwrap_or_default();
                    let key = (t.as_str().to_owned(), zone.to_owned());
                    if latest.get(&key).is_none_or(|(seen, _)| at >= *seen) {
                        latest.insert(key, (at, usd));
                    }
                }
                next = page
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned);
                if next.is_none() {
                    break;
                }
            }
        }
        let mut book = self.prices.write().await;
        for ((instance_type, zone), (at, usd)) in &latest {
            book.insert(
                instance_type,
                zone,
                CapacityType::Spot,
                Price {
                    amount: Money::usd_f64(*usd),
                    unit: RateUnit::PerHour,
                    source: PriceSource {
                        kind: "live".to_owned(),
                        detail: format!(
                            "EC2 DescribeSpotPriceHistory, price of {} read {}",
                            at.to_rfc3339(),
                            now.to_rfc3339()
                        ),
                    },
                },
            );
        }
        drop(book);
        self.refresh_catalog().await;
        Ok(latest.len())
    }
}

impl AwsProvider {
    /// Reads the current Linux, shared-tenancy on-demand price of each of `instance_types` in
    /// the provider's region from the AWS Price List API (GetProducts) and stores them in the
    /// price book, replacing shipped prices. Returns how many prices were stored.
    pub async fn refresh_on_demand_prices(&self, instance_types: &[String]) -> Result<usize> {
        const OP: &str = "get_products";
        let now = Utc::now();
        let mut found: Vec<(String, f64)> = Vec::new();
        for instance_type in instance_types {
            let term = |field: &str, value: &str| {
                aws_sdk_pricing::types::Filter::builder()
                    .r#type(aws_sdk_pricing::types::FilterType::TermMatch)
                    .field(field)
                    .value(value)
                    .build()
                    .map_err(|e| local(ErrorKind::InvalidInput, OP, e.to_string()))
            };
            let mut next = None;
            loop {
                let page = self
                    .clients
                    .pricing
                    .get_products()
                    .service_code("AmazonEC2")
                    .format_version("aws_v1")
                    .filters(term("instanceType", instance_type)?)
                    .filters(term("regionCode", &self.region)?)
                    .filters(term("operatingSystem", "Linux")?)
                    .filters(term("tenancy", "Shared")?)
                    .filters(term("preInstalledSw", "NA")?)
                    .filters(term("capacitystatus", "Used")?)
                    .max_results(100)
                    .set_next_token(next.take())
                    .send()
                    .await
                    .aws(OP)?;
                for document in page.price_list() {
                    let (t, usd) = on_demand_from_price_list(document).map_err(bad_document)?;
                    if &t == instance_type {
                        found.push((t, usd));
                    }
                }
                next = page
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned);
                if next.is_none() {
                    break;
                }
            }
        }
        let mut book = self.prices.write().await;
        for (instance_type, usd) in &found {
            book.insert(
                instance_type,
                &self.region,
                CapacityType::OnDemand,
                Price {
                    amount: Money::usd_f64(*usd),
                    unit: RateUnit::PerHour,
                    source: PriceSource {
                        kind: "live".to_owned(),
                        detail: format!(
                            "AWS Price List API GetProducts (AmazonEC2, {}, Linux, shared tenancy), read {}",
                            self.region,
                            now.to_rfc3339()
                        ),
                    },
                },
            );
        }
        drop(book);
        self.refresh_catalog().await;
        Ok(found.len())
    }
}

/// Reads the hourly USD on-demand price from one Price List API product document (the JSON
/// strings `GetProducts` returns). Returns the instance type and the price.
pub fn on_demand_from_price_list(document: &str) -> std::result::Result<(String, f64), String> {
    let value: serde_json::Value =
        serde_json::from_str(document).map_err(|e| format!("price list entry is not JSON: {e}"))?;
    let instance_type = value
        .pointer("/product/attributes/instanceType")
        .and_then(|v| v.as_str())
        .ok_or("price list entry has no product.attributes.instanceType")?
        .to_owned();
    let terms = value
        .pointer("/terms/OnDemand")
        .and_then(|v| v.as_object())
        .ok_or("price list entry has no OnDemand terms")?;
    for term in terms.values() {
        let Some(dimensions) = term.get("priceDimensions").and_then(|d| d.as_object()) else {
            continue;
        };
        for dimension in dimensions.values() {
            let hourly = dimension
                .get("unit")
                .and_then(|u| u.as_str())
                .is_some_and(|u| u.eq_ignore_ascii_case("hrs"));
            let usd = dimension
                .pointer("/pricePerUnit/USD")
                .and_then(|p| p.as_str())
                .and_then(|p| p.parse::<f64>().ok());
            if let (true, Some(usd)) = (hourly, usd) {
                return Ok((instance_type, usd));
            }
        }
    }
    Err(format!("no hourly USD on-demand price for {instance_type}"))
}

/// Error for a Price List document that cannot be read.
pub(crate) fn bad_document(message: String) -> hoist_api::Error {
    local(ErrorKind::Other, "get_products", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_on_demand_price_from_a_price_list_document() {
        let doc = r#"{"product":{"attributes":{"instanceType":"m5.large","regionCode":"us-east-1"}},
            "terms":{"OnDemand":{"X.JRTCKXETXF":{"priceDimensions":{"X.JRTCKXETXF.6YS6EN2CT7":
            {"unit":"Hrs","pricePerUnit":{"USD":"0.0960000000"}}}}}}}"#;
        assert_eq!(
            on_demand_from_price_list(doc).unwrap(),
            ("m5.large".to_owned(), 0.096)
        );
        assert!(on_demand_from_price_list("{}").is_err());
        assert!(on_demand_from_price_list("nope").is_err());
    }
}

#[cfg(test)]
mod mocked_tests {
    //! moto has no Price List API at all, so the live on-demand refresh is tested against the
    //! SDK's mock interceptor.

    use aws_sdk_pricing::operation::get_products::GetProductsOutput;
    use aws_smithy_mocks::mock;
    use hoist_api::{BillingProvider, CapacityType};

    use crate::testing::mocked_provider;

    const M5_LARGE: &str = r#"{"product":{"attributes":{"instanceType":"m5.large","regionCode":"us-east-1"}},
        "terms":{"OnDemand":{"A.B":{"priceDimensions":{"A.B.C":{"unit":"Hrs","pricePerUnit":{"USD":"0.1010000000"}}}}}}}"#;

    #[tokio::test]
    async fn live_on_demand_prices_replace_the_shipped_table() {
        let rule = mock!(aws_sdk_pricing::Client::get_products)
            .match_requests(|r| {
                r.service_code() == Some("AmazonEC2")
                    && r.filters()
                        .iter()
                        .any(|f| f.field() == "instanceType" && f.value() == "m5.large")
                    && r.filters()
                        .iter()
                        .any(|f| f.field() == "regionCode" && f.value() == "us-east-1")
            })
            .then_output(|| GetProductsOutput::builder().price_list(M5_LARGE).build());
        let aws = mocked_provider(&[&rule]);
        let before = aws
            .price("m5.large", "us-east-1a", CapacityType::OnDemand)
            .await
            .unwrap();
        assert_eq!(before.source.kind, "table");
        let stored = aws
            .refresh_on_demand_prices(&["m5.large".to_owned()])
            .await
            .unwrap();
        assert_eq!(stored, 1);
        let after = aws
            .price("m5.large", "us-east-1a", CapacityType::OnDemand)
            .await
            .unwrap();
        assert_eq!(after.per_hour(), 0.101);
        assert_eq!(after.source.kind, "live");
        assert!(
            after.source.detail.contains("Price List API"),
            "{}",
            after.source.detail
        );
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn an_unreadable_price_list_entry_is_an_error() {
        let rule = mock!(aws_sdk_pricing::Client::get_products).then_output(|| {
            GetProductsOutput::builder()
                .price_list("{\"product\":{}}")
                .build()
        });
        let aws = mocked_provider(&[&rule]);
        let err = aws
            .refresh_on_demand_prices(&["m5.large".to_owned()])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("instanceType"), "{err}");
    }
}
