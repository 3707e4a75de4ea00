//! Test support: an [`AwsProvider`] whose clients answer from `aws-smithy-mocks` rules instead
//! of the network, for the operations the emulator lacks.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hoist_api::{Clock, SystemClock};
use tokio::sync::RwLock;

use crate::catalog::PriceBook;
use crate::client::{AwsProvider, Clients, GroupSelector};

/// The secret of the credentials test providers use; tests check it never leaks.
pub(crate) const TEST_SECRET: &str = "test-secret-never-shown";

fn base_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST",
            TEST_SECRET,
            Some("test-session-token".to_owned()),
            None,
            "test",
        )))
        .http_client(create_mock_http_client())
        .build()
}

fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
    rules.iter().fold(
        MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny),
        |i, r| i.with_rule(r),
    )
}

/// A provider whose Cost Explorer, EC2 and Auto Scaling clients answer from `rules` (each rule
/// belongs to one service; rules for other services are simply never matched).
pub(crate) fn mocked_provider(rules: &[&Rule]) -> AwsProvider {
    let config = base_config();
    let clients = Clients {
        autoscaling: aws_sdk_autoscaling::Client::from_conf(
            aws_sdk_autoscaling::config::Builder::from(&config)
                .interceptor(interceptor(rules))
                .build(),
        ),
        ec2: aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&config)
                .interceptor(interceptor(rules))
                .build(),
        ),
        cost_explorer: aws_sdk_costexplorer::Client::from_conf(
            aws_sdk_costexplorer::config::Builder::from(&config)
                .interceptor(interceptor(rules))
                .build(),
        ),
        cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(&config)
                .interceptor(interceptor(rules))
                .build(),
        ),
        pricing: aws_sdk_pricing::Client::from_conf(
            aws_sdk_pricing::config::Builder::from(&config)
                .interceptor(interceptor(rules))
                .build(),
        ),
    };
    AwsProvider {
        name: "aws".to_owned(),
        region: "us-east-1".to_owned(),
        endpoint_url: None,
        selector: GroupSelector::All,
        clients,
        custom_metric_namespace: "Hoist".to_owned(),
        instance_refresh: true,
        cost_tags: std::collections::BTreeMap::new(),
        prices: RwLock::new(PriceBook::shipped("us-east-1")),
        catalog_cache: RwLock::new(None),
        drains: std::collections::BTreeMap::new(),
        drain_state: std::sync::Mutex::default(),
        clock: Arc::new(SystemClock),
    }
}

/// A clock that stands still until advanced.
#[derive(Debug)]
pub(crate) struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock(std::sync::Mutex::new(
            DateTime::from_timestamp(1_900_000_000, 0).unwrap_or_default(),
        ))
    }
}

impl ManualClock {
    /// Moves the clock on by `by`.
    pub(crate) fn advance(&self, by: std::time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += chrono::Duration::from_std(by).unwrap_or_default();
    }
}

#[async_trait::async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn sleep_until(&self, until: DateTime<Utc>) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now = (*now).max(until);
    }
}
