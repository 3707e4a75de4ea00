//! [`AwsProviderBuilder`]: configures and builds an [`AwsProvider`].
//!
//! Two starting points, like `object_store`'s builders: [`AwsProviderBuilder::new`] uses only
//! what the `with_*` setters give it, and [`AwsProviderBuilder::from_env`] starts from the
//! standard AWS configuration chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_PROFILE`,
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, the shared config and
//! credentials files, web identity, ECS and EC2 instance metadata). Setters always win over the
//! environment: an endpoint set here is set on every service's own configuration, so neither
//! `AWS_ENDPOINT_URL` nor `AWS_ENDPOINT_URL_<SERVICE>` nor a profile's `endpoint_url` can
//! redirect it, and a profile set here supplies the credentials and region in place of
//! `AWS_ACCESS_KEY_ID` and `AWS_REGION`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::default_provider::region::DefaultRegionChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use hoist_api::{Clock, ErrorKind, Result, SystemClock};
use tokio::sync::RwLock;

use crate::catalog::PriceBook;
use crate::client::{AwsProvider, Clients, GroupSelector};
use crate::errors::local;

/// The region whose endpoint serves the AWS Price List API.
pub const PRICE_LIST_REGION: &str = "us-east-1";

/// The CloudWatch namespace custom metrics are read from unless configured otherwise.
pub const DEFAULT_CUSTOM_METRIC_NAMESPACE: &str = "Hoist";

/// `$service`'s configuration builder from the shared `SdkConfig`, with `$endpoint` (when
/// `Some`) set on it, where it wins over every endpoint the environment or a profile names.
macro_rules! with_endpoint {
    ($service:ident, $config:expr, $endpoint:expr) => {{
        let mut builder = $service::config::Builder::from($config);
        if let Some(url) = $endpoint {
            builder.set_endpoint_url(Some(url.to_owned()));
        }
        builder
    }};
}

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
    cost_tags: std::collections::BTreeMap<String, String>,
    drains: std::collections::BTreeMap<String, Duration>,
    clock: Arc<dyn Clock>,
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
            .field("cost_tags", &self.cost_tags)
            .field("drains", &self.drains)
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
            cost_tags: std::collections::BTreeMap::new(),
            drains: std::collections::BTreeMap::new(),
            clock: Arc::new(SystemClock),
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

    /// Sends every request to this endpoint instead of AWS (an emulator, a VPC endpoint). It wins
    /// over `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>` and a profile's `endpoint_url`.
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
    /// Credentials come from this profile only (not from `AWS_ACCESS_KEY_ID` and the rest of the
    /// chain), and so does the region unless [`with_region`](Self::with_region) sets one.
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

    /// Limits what Cost Explorer reports (actual cost, forecasts, and so the reconciliation of
    /// the cost meter) to resources with all these cost allocation tags (activate them in the
    /// Billing console first), so that the bill compared with the meter is the managed groups'
    /// and not the whole account's.
    pub fn with_cost_tags(mut self, tags: std::collections::BTreeMap<String, String>) -> Self {
        self.cost_tags = tags;
        self
    }

    /// Drains instances of `group` for `drain` before Auto Scaling terminates them, with a
    /// termination lifecycle hook (see [`crate::scaling::drain`]); zero removes the drain. At
    /// most 2 h, the longest a lifecycle hook holds an instance.
    pub fn with_drain(mut self, group: impl Into<String>, drain: Duration) -> Self {
        let group = group.into();
        if drain.is_zero() {
            self.drains.remove(&group);
        } else {
            self.drains.insert(group, drain);
        }
        self
    }

    /// The clock drains are measured with (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
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
            None if self.use_environment => self.load_from_env().await,
            None => {
                if self.profile.is_some() {
                    return Err(local(
                        ErrorKind::Config,
                        OP,
                        "a profile needs the standard configuration chain: start from AwsProviderBuilder::from_env()",
                    )
                    .with_field("profile"));
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
            .with_field("region")
        })?;
        if region.is_empty() {
            return Err(
                local(ErrorKind::Config, OP, "the AWS region is empty").with_field("region")
            );
        }
        let endpoint_url = config.endpoint_url().map(str::to_owned);
        let longest = Duration::from_secs(crate::scaling::drain::MAX_HEARTBEAT_SECONDS as u64);
        if let Some((group, drain)) = self.drains.iter().find(|(_, d)| **d > longest) {
            return Err(local(
                ErrorKind::Config,
                OP,
                format!(
                    "group {group}: a drain of {} is longer than the 2h an Auto Scaling lifecycle hook holds an instance",
                    hoist_api::duration::format_duration(*drain)
                ),
            ));
        }

        // An endpoint named here is set on each service's own configuration. Set only on the
        // shared `SdkConfig`, it would lose to the environment: a service client built from an
        // `SdkConfig` whose endpoint did not come from code (its origin is the environment when
        // the loader found `AWS_ENDPOINT_URL`) asks the config's `service_config` first, and that
        // reads `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL` and the profile's `endpoint_url`.
        let endpoint = self.endpoint_url.as_deref();
        let cloudwatch_endpoint = self.cloudwatch_endpoint_url.as_deref().or(endpoint);
        let clients = Clients {
            autoscaling: aws_sdk_autoscaling::Client::from_conf(
                with_endpoint!(aws_sdk_autoscaling, &config, endpoint).build(),
            ),
            ec2: aws_sdk_ec2::Client::from_conf(
                with_endpoint!(aws_sdk_ec2, &config, endpoint).build(),
            ),
            cost_explorer: aws_sdk_costexplorer::Client::from_conf(
                with_endpoint!(aws_sdk_costexplorer, &config, endpoint).build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                with_endpoint!(aws_sdk_cloudwatch, &config, cloudwatch_endpoint).build(),
            ),
            // The Price List API is served from us-east-1 (and eu-central-1, ap-south-1) only;
            // it prices every region from there.
            pricing: aws_sdk_pricing::Client::from_conf(
                with_endpoint!(aws_sdk_pricing, &config, endpoint)
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
            cost_tags: self.cost_tags,
            catalog_cache: RwLock::new(None),
            drains: self.drains,
            drain_state: std::sync::Mutex::default(),
            clock: self.clock,
        })
    }

    /// The standard AWS configuration chain with this builder's settings taking precedence
    /// over the environment: a region set here wins over `AWS_REGION`, an endpoint over
    /// `AWS_ENDPOINT_URL`, and a profile named here over `AWS_PROFILE` and over the
    /// environment's credentials and region (`AWS_ACCESS_KEY_ID`, `AWS_REGION`): credentials
    /// then come from that profile only, and the region from it unless one is set here (else
    /// from the standard chain).
    async fn load_from_env(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        let region = match (&self.region, &self.profile) {
            (Some(region), _) => Some(Region::new(region.clone())),
            (None, Some(profile)) => {
                RegionProviderChain::first_try(
                    ProfileFileRegionProvider::builder()
                        .profile_name(profile)
                        .build(),
                )
                .or_else(DefaultRegionChain::builder().profile_name(profile).build())
                .region()
                .await
            }
            (None, None) => None,
        };
        if let Some(region) = &region {
            loader = loader.region(region.clone());
        }
        if let Some(profile) = &self.profile {
            let provider_config = ProviderConfig::default().with_region(region);
            loader = loader.profile_name(profile).credentials_provider(
                ProfileFileCredentialsProvider::builder()
                    .configure(&provider_config)
                    .profile_name(profile)
                    .build(),
            );
        }
        if let Some(url) = &self.endpoint_url {
            // Marks the shared config's endpoint as set in code; each service client gets it
            // set on its own configuration as well (see `build`).
            loader = loader.endpoint_url(url);
        }
        loader.load().await
    }

    /// [`build`](Self::build), wrapped in an `Arc` and turned into a
    /// [`hoist_api::ProviderSet`].
    pub async fn build_provider_set(self) -> Result<hoist_api::ProviderSet> {
        Ok(Arc::new(self.build().await?).into_provider_set())
    }
}

#[cfg(test)]
mod tests {

    use aws_types::origin::Origin;
    use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

    use hoist_http::testing::BlockingEndpoint;

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
        assert_eq!(err.field(), Some("region"));
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

    /// A local HTTP endpoint that counts the requests it receives and answers each with an
    /// empty HTTP 400 (which the SDK does not retry).
    struct Endpoint(BlockingEndpoint);

    impl Endpoint {
        fn start() -> Endpoint {
            Endpoint(BlockingEndpoint::start("400 Bad Request"))
        }

        fn hits(&self) -> usize {
            self.0.hits()
        }
    }

    /// What `aws_config`'s loader reads from the environment, without touching the process
    /// environment: `AWS_ENDPOINT_URL` and every `AWS_ENDPOINT_URL_<SERVICE>` point at `url`.
    #[derive(Debug)]
    struct EnvironmentEndpoint(String);

    impl LoadServiceConfig for EnvironmentEndpoint {
        fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
            key.env()
                .starts_with("AWS_ENDPOINT_URL")
                .then(|| self.0.clone())
        }
    }

    /// The `SdkConfig` `aws_config::defaults(..).load()` returns when `AWS_ENDPOINT_URL` is set
    /// to `url`: the endpoint, its origin (the environment) and the environment-backed service
    /// configuration that service clients consult.
    fn loaded_with_environment_endpoint(url: &str) -> SdkConfig {
        let mut builder = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            )))
            .endpoint_url(url)
            .service_config(EnvironmentEndpoint(url.to_owned()));
        builder.insert_origin("endpoint_url", Origin::shared_environment_variable());
        builder.build()
    }

    /// Sends one request through each of the provider's five service clients.
    async fn call_every_service(clients: &Clients) {
        // Every call fails (the endpoints answer 400); only where it went matters.
        let _ = clients
            .autoscaling
            .describe_auto_scaling_groups()
            .send()
            .await;
        let _ = clients.ec2.describe_regions().send().await;
        let _ = clients.cloudwatch.list_metrics().send().await;
        let _ = clients
            .cost_explorer
            .list_cost_allocation_tags()
            .send()
            .await;
        let _ = clients.pricing.describe_services().send().await;
    }

    #[tokio::test]
    async fn an_endpoint_in_the_settings_wins_over_aws_endpoint_url() {
        let environment = Endpoint::start();
        let settings = Endpoint::start();
        let loaded = loaded_with_environment_endpoint(environment.0.url());

        // What the SDK does on its own: an endpoint set on the shared config after loading
        // keeps the environment's origin, and a service client built from it asks the
        // environment first. This is how `endpoint_url` in a policy file used to be ignored.
        let mut shared = loaded.clone().into_builder();
        shared.set_endpoint_url(Some(settings.0.url().to_owned()));
        let _ = aws_sdk_autoscaling::Client::new(&shared.build())
            .describe_auto_scaling_groups()
            .send()
            .await;
        assert_eq!(
            environment.hits(),
            1,
            "the SDK alone prefers the environment"
        );
        assert_eq!(settings.hits(), 0);

        let provider = AwsProviderBuilder::new()
            .with_sdk_config(loaded)
            .with_endpoint_url(settings.0.url())
            .build()
            .await
            .unwrap();
        call_every_service(&provider.clients).await;
        assert_eq!(
            environment.hits(),
            1,
            "no request of the provider may reach AWS_ENDPOINT_URL's endpoint"
        );
        assert_eq!(
            settings.hits(),
            5,
            "every service goes to the settings' endpoint"
        );
    }

    #[tokio::test]
    async fn a_cloudwatch_endpoint_in_the_settings_wins_for_cloudwatch_only() {
        let environment = Endpoint::start();
        let settings = Endpoint::start();
        let cloudwatch = Endpoint::start();
        let provider = AwsProviderBuilder::new()
            .with_sdk_config(loaded_with_environment_endpoint(environment.0.url()))
            .with_endpoint_url(settings.0.url())
            .with_cloudwatch_endpoint_url(cloudwatch.0.url())
            .build()
            .await
            .unwrap();
        call_every_service(&provider.clients).await;
        assert_eq!(environment.hits(), 0);
        assert_eq!(settings.hits(), 4);
        assert_eq!(cloudwatch.hits(), 1);
    }

    #[tokio::test]
    async fn without_an_endpoint_in_the_settings_the_environment_applies() {
        let environment = Endpoint::start();
        let provider = AwsProviderBuilder::new()
            .with_sdk_config(loaded_with_environment_endpoint(environment.0.url()))
            .build()
            .await
            .unwrap();
        call_every_service(&provider.clients).await;
        assert_eq!(environment.hits(), 5);
    }
}
