//! [`AwsProvider`]: the SDK clients for one account and region, the group selection and the
//! caches behind the four Hoist traits (implemented in `scaling`, `catalog`, `billing` and
//! `metrics`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use std::time::Duration;

use hoist_api::{Clock, InstanceClass, ProviderSet};
use tokio::sync::RwLock;

use crate::catalog::PriceBook;
use crate::scaling::drain::DrainState;

/// Which Auto Scaling groups a provider manages. Groups outside the selection are invisible to
/// it: describing or resizing one fails with `not_found`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSelector {
    /// Exactly these groups, by name.
    Names(Vec<String>),
    /// Groups carrying the tag `key` (with `value`, when given).
    Tag {
        /// Tag key.
        key: String,
        /// Tag value; any value when `None`.
        value: Option<String>,
    },
    /// Groups whose name starts with this prefix.
    Prefix(String),
    /// Every group in the account and region.
    All,
}

impl GroupSelector {
    /// Whether a group with `name` and `tags` is selected.
    pub fn matches(&self, name: &str, tags: &BTreeMap<String, String>) -> bool {
        match self {
            GroupSelector::Names(names) => names.iter().any(|n| n == name),
            GroupSelector::Tag { key, value } => match (tags.get(key), value) {
                (Some(_), None) => true,
                (Some(actual), Some(wanted)) => actual == wanted,
                (None, _) => false,
            },
            GroupSelector::Prefix(prefix) => name.starts_with(prefix.as_str()),
            GroupSelector::All => true,
        }
    }
}

impl fmt::Display for GroupSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupSelector::Names(names) => write!(f, "names [{}]", names.join(", ")),
            GroupSelector::Tag { key, value: None } => write!(f, "tag {key}"),
            GroupSelector::Tag {
                key,
                value: Some(value),
            } => write!(f, "tag {key}={value}"),
            GroupSelector::Prefix(prefix) => write!(f, "prefix {prefix}"),
            GroupSelector::All => f.write_str("all groups"),
        }
    }
}

/// The SDK clients one provider uses.
#[derive(Clone)]
pub(crate) struct Clients {
    pub(crate) autoscaling: aws_sdk_autoscaling::Client,
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) cost_explorer: aws_sdk_costexplorer::Client,
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
    pub(crate) pricing: aws_sdk_pricing::Client,
}

/// Hoist's AWS provider: Auto Scaling groups ([`hoist_api::ScalingProvider`]), EC2 instance
/// types and prices ([`hoist_api::InstanceCatalog`]), Cost Explorer
/// ([`hoist_api::BillingProvider`]) and CloudWatch ([`hoist_api::MetricsSource`]) for one
/// account and region.
///
/// Build one with [`crate::AwsProviderBuilder`]; its `Debug` output never shows credentials.
pub struct AwsProvider {
    pub(crate) name: String,
    pub(crate) region: String,
    pub(crate) endpoint_url: Option<String>,
    pub(crate) selector: GroupSelector,
    pub(crate) clients: Clients,
    pub(crate) custom_metric_namespace: String,
    pub(crate) instance_refresh: bool,
    /// Cost allocation tags Cost Explorer queries are filtered by (none: the whole account).
    pub(crate) cost_tags: std::collections::BTreeMap<String, String>,
    pub(crate) prices: RwLock<PriceBook>,
    pub(crate) catalog_cache: RwLock<Option<Arc<Vec<InstanceClass>>>>,
    /// Drain periods of groups, by group name (see [`crate::scaling::drain`]).
    pub(crate) drains: BTreeMap<String, Duration>,
    /// Which groups have their drain hook, and which instances were seen waiting since when.
    pub(crate) drain_state: std::sync::Mutex<DrainState>,
    /// The time drains are measured in.
    pub(crate) clock: Arc<dyn Clock>,
}

impl fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsProvider")
            .field("name", &self.name)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("selector", &self.selector)
            .field("custom_metric_namespace", &self.custom_metric_namespace)
            .field("instance_refresh", &self.instance_refresh)
            .field("cost_tags", &self.cost_tags)
            .field("drains", &self.drains)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for AwsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "aws({}, {}, {})", self.name, self.region, self.selector)
    }
}

impl AwsProvider {
    /// The provider's name in logs and policy files.
    pub fn provider_name(&self) -> &str {
        &self.name
    }

    /// The AWS region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Which groups it manages.
    pub fn selector(&self) -> &GroupSelector {
        &self.selector
    }

    /// The Auto Scaling client, for callers that need an operation Hoist does not wrap.
    pub fn autoscaling_client(&self) -> &aws_sdk_autoscaling::Client {
        &self.clients.autoscaling
    }

    /// The EC2 client.
    pub fn ec2_client(&self) -> &aws_sdk_ec2::Client {
        &self.clients.ec2
    }

    /// All four traits of this provider as one [`ProviderSet`] named after the provider.
    pub fn into_provider_set(self: Arc<Self>) -> ProviderSet {
        ProviderSet {
            name: self.name.clone(),
            scaling: Some(self.clone()),
            catalog: Some(self.clone()),
            billing: Some(self.clone()),
            metrics: Some(self),
            // EC2 bills Linux instances per second with a one-minute minimum.
            billing_rule: hoist_api::billing_rule::BillingRule::PerSecond {
                minimum_seconds: 60,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_matches_by_names_tag_and_prefix() {
        let mut tags = BTreeMap::new();
        tags.insert("team".to_owned(), "web".to_owned());
        let names = GroupSelector::Names(vec!["a".into(), "b".into()]);
        assert!(names.matches("a", &tags));
        assert!(!names.matches("c", &tags));
        let any_team = GroupSelector::Tag {
            key: "team".into(),
            value: None,
        };
        assert!(any_team.matches("x", &tags));
        assert!(!any_team.matches("x", &BTreeMap::new()));
        let web_team = GroupSelector::Tag {
            key: "team".into(),
            value: Some("web".into()),
        };
        assert!(web_team.matches("x", &tags));
        let api_team = GroupSelector::Tag {
            key: "team".into(),
            value: Some("api".into()),
        };
        assert!(!api_team.matches("x", &tags));
        let prefix = GroupSelector::Prefix("web-".into());
        assert!(prefix.matches("web-1", &tags));
        assert!(!prefix.matches("api-1", &tags));
        assert!(GroupSelector::All.matches("anything", &BTreeMap::new()));
    }
}
