//! [`AwsProviderBuilder`]: configures and builds an [`AwsProvider`].
//!
//! Two starting points, like `object_store`'s builders: [`AwsProviderBuilder::new`] uses only
//! what the `with_*` setters give it, and [`AwsProviderBuilder::from_env`] starts from the
//! standard AWS configuration chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_PROFILE`,
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, the shared config and
//! credentials files, web identity, ECS and EC2 instance metadata). Setters always win over the
//! environment.

use std::fmt;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use hoist_api::{ErrorKind, Result};
use tokio::sync::RwLock;

use crate::catalog::PriceBook;
use crate::client::{AwsProvider, Clients, GroupSelector};
use crate::errors::local;

/// The region whose endpoint serves the AWS Price List API.
pub const PRICE_LIST_REGION: &str = "us-east-1";

/// The CloudWatch namespace custom metrics are read from unless configured otherwise.
pub const DEFAULT_CUSTOM_METRIC_NAMESPACE: &str = "Hoist";

/// Builds an [`AwsProvider`].
///
/// ```no_run
/// # async fn example() -> hoist_api::Result<()> {
/// use hoist_aws::{AwsProviderBuilder, GroupSelector};
///
/// let provider = AwsProviderBuilder::from_env()
///     .with_region("eu-west-1")
///     .with_groups(GroupSelector::Prefix("web-".into()))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AwsProviderBuilder {
    use_environment: bool,
    name: String,
    region: Option<String>,
    endpoint_url: Option<String>,
    cloudwatch_endpoint_url: Option<String>,
    profile: Option<String>,
    credentials: Option<Credentials>,
    selector: GroupSelector,
    custom_metric_namespace: String,
    instance_refresh: bool,
    sdk_config: Option<SdkConfig>,
}

impl fmt::Debug for AwsProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsProviderBuilder")
            .field("use_environment", &self.use_environment)
            .field("name", &self.name)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("cloudwatch_endpoint_url", &self.cloudwatch_endpoint_url)
            .field("profile", &self.profile)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|_| "** static credentials **"),
            )
            .field("selector", &self.selector)
            .field("custom_metric_namespace", &self.custom_metric_namespace)
            .field("instance_refresh", &self.instance_refresh)
            .finish_non_exhaustive()
    }
}

impl Default for AwsProviderBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl AwsProviderBuilder {
    /// A builder that reads nothing from the environment: region and credentials must be set
    /// with [`with_region`](Self::with_region) and
    /// [`with_static_credentials`](Self::with_static_credentials). It manages every group of the
    /// account and region until told otherwise.
    pub fn new() -> Self {
        AwsProviderBuilder {
            use_environment: false,
            name: "aws".to_owned(),
            region: None,
            endpoint_url: None,
            cloudwatch_endpoint_url: None,
            profile: None,
            credentials: None,
            selector: GroupSelector::All,
            custom_metric_namespace: DEFAULT_CUSTOM_METRIC_NAMESPACE.to_owned(),
            instance_refresh: true,
            sdk_config: None,
        }
    }

    /// A builder that starts from the standard AWS configuration chain, honouring
    /// `AWS_REGION`, `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_<SERVICE>`), `AWS_PROFILE` and the
    /// usual credential variables and files.
    pub fn from_env() -> Self {
        AwsProviderBuilder {
            use_environment: true,
            ..Self::new()
        }
    }

    /// The provider's name in logs and policy files (default `aws`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The AWS region (`us-east-1`, ...).
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sends every request to this endpoint instead of AWS (an emulator, a VPC endpoint).
    pub fn with_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Sends CloudWatch requests to this endpoint (overrides
    /// [`with_endpoint_url`](Self::with_endpoint_url) for CloudWatch only).
    pub fn with_cloudwatch_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.cloudwatch_endpoint_url = Some(url.into());
        self
    }

    /// The named profile of the shared config files (only with [`from_env`](Self::from_env)).
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Static credentials. Prefer the standard chain ([`from_env`](Self::from_env)) outside
    /// tests; these never appear in `Debug` output, logs or errors.
    pub fn with_static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.credentials = Some(Credentials::new(
            access_key_id,
            secret_access_key,
            session_token,
            None,
            "hoist-static",
        ));
        self
    }

    /// Which groups the provider manages (default: all of the account and region).
    pub fn with_groups(mut self, selector: GroupSelector) -> Self {
        self.selector = selector;
        self
    }

    /// Shorthand for [`GroupSelector::Names`].
    pub fn with_group_names<I, S>(self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.with_groups(GroupSelector::Names(
            names.into_iter().map(Into::into).collect(),
        ))
    }

    /// The CloudWatch namespace of custom metrics (default [`DEFAULT_CUSTOM_METRIC_NAMESPACE`]).
    pub fn with_custom_metric_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.custom_metric_namespace = namespace.into();
        self
    }

    /// Whether changing a group's instance type also starts an instance refresh that replaces
    /// its running instances (default `true`). Without it, only new instances get the new type.
    pub fn with_instance_refresh(mut self, enabled: bool) -> Self {
        self.instance_refresh = enabled;
        self
    }

    /// Uses a ready SDK configuration (for example one built by the caller with its own HTTP
    /// client) instead of loading one; region, endpoint and credential setters still apply on
    /// top of it.
    pub fn with_sdk_config(mut self, config: SdkConfig) -> Self {
        self.sdk_config = Some(config);
        self
    }

    /// Loads the configuration and builds the provider. Fails with [`ErrorKind::Config`] when
    /// no region is known, or when [`new`](Self::new) was used without credentials.
    pub async fn build(self) -> Result<AwsProvider> {
        const OP: &str = "build";
        let base = match self.sdk_config.clone() {
            Some(config) => config,
            None if self.use_environment => {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(profile) = &self.profile {
                    loader = loader.profile_name(profile);
                }
                loader.load().await
            }
            None => {
                if self.profile.is_some() {
                    return Err(local(
                        ErrorKind::Config,
                        OP,
                        "a profile needs the standard configuration chain: start from AwsProviderBuilder::from_env()",
                    ));
                }
                if self.credentials.is_none() {
                    return Err(local(
                        ErrorKind::Config,
                        OP,
                        "no credentials: call with_static_credentials, or start from AwsProviderBuilder::from_env() for the standard AWS credential chain",
                    ));
                }
                SdkConfig::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .build()
            }
        };
        let mut config = base.into_builder();
        if let Some(region) = &self.region {
            config.set_region(Some(Region::new(region.clone())));
        }
        if let Some(url) = &self.endpoint_url {
            config.set_endpoint_url(Some(url.clone()));
        }
        if let Some(credentials) = &self.credentials {
            config.set_credentials_provider(Some(SharedCredentialsProvider::new(
                credentials.clone(),
            )));
        }
        let config = config.build();
        let region = config.region().map(|r| r.to_string()).ok_or_else(|| {
            local(
                ErrorKind::Config,
                OP,
                "no AWS region: set `region` (or AWS_REGION / a profile's region)",
            )
        })?;
        if region.is_empty() {
            return Err(local(ErrorKind::Config, OP, "the AWS region is empty"));
        }
        let endpoint_url = config.endpoint_url().map(str::to_owned);

        let cloudwatch = match &self.cloudwatch_endpoint_url {
            Some(url) => aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(&config)
                    .endpoint_url(url)
                    .build(),
            ),
            None => aws_sdk_cloudwatch::Client::new(&config),
        };
        let clients = Clients {
            autoscaling: aws_sdk_autoscaling::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            cost_explorer: aws_sdk_costexplorer::Client::new(&config),
            cloudwatch,
            // The Price List API is served from us-east-1 (and eu-central-1, ap-south-1) only;
            // it prices every region from there.
            pricing: aws_sdk_pricing::Client::from_conf(
                aws_sdk_pricing::config::Builder::from(&config)
                    .region(Region::new(PRICE_LIST_REGION))
                    .build(),
            ),
        };
        tracing::debug!(provider = %self.name, %region, endpoint = ?endpoint_url, selector = %self.selector, "AWS provider built");
        Ok(AwsProvider {
            name: self.name,
            prices: RwLock::new(PriceBook::shipped(&region)),
            region,
            endpoint_url,
            selector: self.selector,
            clients,
            custom_metric_namespace: self.custom_metric_namespace,
            instance_refresh: self.instance_refresh,
            catalog_cache: RwLock::new(None),
        })
    }

    /// [`build`](Self::build), wrapped in an `Arc` and turned into a
    /// [`hoist_api::ProviderSet`].
    pub async fn build_provider_set(self) -> Result<hoist_api::ProviderSet> {
        Ok(Arc::new(self.build().await?).into_provider_set())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_credentials() {
        let builder = AwsProviderBuilder::new()
            .with_region("us-east-1")
            .with_static_credentials("AKIDEXAMPLE", "very-secret-key", Some("session-tok".into()));
        let shown = format!("{builder:?}");
        assert!(!shown.contains("very-secret-key"), "{shown}");
        assert!(!shown.contains("session-tok"), "{shown}");
        assert!(!shown.contains("AKIDEXAMPLE"), "{shown}");
    }

    #[tokio::test]
    async fn new_without_credentials_or_region_is_a_config_error() {
        let err = AwsProviderBuilder::new()
            .with_region("us-east-1")
            .build()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("credentials"), "{err}");

        let err = AwsProviderBuilder::new()
            .with_static_credentials("a", "b", None)
            .build()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("region"), "{err}");
    }

    #[tokio::test]
    async fn builds_with_explicit_settings() {
        let provider = AwsProviderBuilder::new()
            .with_name("prod")
            .with_region("eu-west-1")
            .with_endpoint_url("http://127.0.0.1:1")
            .with_static_credentials("a", "secret-b", None)
            .with_group_names(["web"])
            .build()
            .await
            .unwrap();
        assert_eq!(provider.region(), "eu-west-1");
        assert_eq!(provider.provider_name(), "prod");
        assert_eq!(
            provider.selector(),
            &GroupSelector::Names(vec!["web".into()])
        );
        assert!(!format!("{provider:?}").contains("secret-b"));
    }
}
