//! Typed settings of an `aws` provider in a policy file, and the factory the provider registry
//! uses to build one.
//!
//! ```yaml
//! providers:
//!   prod:
//!     aws:
//!       region: us-east-1                 # else AWS_REGION / the profile's region
//!       endpoint_url: http://127.0.0.1:5000  # optional: an emulator or VPC endpoint
//!       profile: prod                     # optional: a named profile of ~/.aws/config
//!       groups: { names: [web-asg] }      # or { tag: { key: team, value: web } }, { prefix: web- }, all
//!       instance_refresh: true            # replace instances after an instance type change
//!       cost_tags: { team: web }          # Cost Explorer figures for these tags only
//! ```
//!
//! Credentials are never settings: they come from the named `profile`, or else the standard AWS
//! chain (environment, profiles, web identity, ECS or EC2 instance metadata).
//!
//! What the block says wins over the environment: `region` over `AWS_REGION`, `endpoint_url`
//! over `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`, `profile` over `AWS_PROFILE` and
//! over the environment's credentials and region (see [`AwsProviderBuilder`]).
//!
//! Every error names its field ([`hoist_api::Error::field`]), so `hoist validate` reports it at
//! that field's line; [`AwsSettings::schema`] is the block's JSON Schema.

use std::sync::Arc;

use async_trait::async_trait;
use hoist_api::registry::{BuildContext, BuiltProvider, ProviderFactory};
use hoist_api::{Error, ProviderSet, Result};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::builder::AwsProviderBuilder;
use crate::client::GroupSelector;
use crate::scaling::drain::MAX_HEARTBEAT_SECONDS;

/// Settings of one `aws` provider. Parse them with [`AwsSettings::from_value`], whose errors
/// name their field; the `Deserialize` impl (same fields, same names) serves to embed them in
/// other configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// AWS region; when absent, the named profile's, else the standard chain's (`AWS_REGION`,
    /// the default profile).
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint for every AWS service (an emulator); when absent, `AWS_ENDPOINT_URL` or AWS.
    /// When present, it wins over `AWS_ENDPOINT_URL`.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Endpoint for CloudWatch only.
    #[serde(default)]
    pub cloudwatch_endpoint_url: Option<String>,
    /// Named profile of the shared config files: the credentials come from it, and the region
    /// unless `region` is set.
    #[serde(default)]
    pub profile: Option<String>,
    /// Which Auto Scaling groups the provider manages; all when absent.
    #[serde(default)]
    pub groups: Option<GroupsSetting>,
    /// CloudWatch namespace of custom metrics.
    #[serde(default)]
    pub custom_metric_namespace: Option<String>,
    /// Whether a change of instance type starts an instance refresh (default `true`).
    #[serde(default)]
    pub instance_refresh: Option<bool>,
    /// Cost allocation tags that limit what Cost Explorer reports (actual cost, forecasts and
    /// the meter's reconciliation) to the managed resources; the whole account when absent.
    #[serde(default)]
    pub cost_tags: Option<std::collections::BTreeMap<String, String>>,
}

/// The `groups` setting.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GroupsSetting {
    /// Exactly these group names.
    Names(Vec<String>),
    /// Groups with this tag.
    Tag {
        /// Tag key.
        key: String,
        /// Tag value; any when absent.
        #[serde(default)]
        value: Option<String>,
    },
    /// Groups whose name starts with this.
    Prefix(String),
    /// Every group of the account and region.
    All,
}

/// The fields of an `aws:` block, in the order the documentation lists them.
pub const FIELDS: &[&str] = &[
    "region",
    "endpoint_url",
    "cloudwatch_endpoint_url",
    "profile",
    "groups",
    "custom_metric_namespace",
    "instance_refresh",
    "cost_tags",
];

/// The forms of the `groups` setting.
const GROUP_FORMS: &[&str] = &["names", "tag", "prefix", "all"];

/// An error about the settings field at `field` (a path relative to the `aws:` block, like
/// `groups.names[1]`): the host reports it at that field's line, so the message does not repeat
/// the path.
fn field_error(field: &str, message: impl std::fmt::Display) -> Error {
    Error::config_field(field, message.to_string()).with_provider("aws")
}

fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// What kind of JSON value `value` is, for messages.
fn describe(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "nothing",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}

/// Edit distance, to suggest the field a misspelt one meant.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Fails on the first key of `map` that is not in `known`, naming it as `parent.key`.
fn reject_unknown(
    map: &serde_json::Map<String, serde_json::Value>,
    parent: &str,
    known: &[&str],
) -> Result<()> {
    let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) else {
        return Ok(());
    };
    let listed = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let suggestion = known
        .iter()
        .map(|k| (distance(unknown, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| format!("did you mean `{k}`? "))
        .unwrap_or_default();
    Err(field_error(
        &join_path(parent, unknown),
        format!("unknown field `{unknown}`; {suggestion}expected one of {listed}"),
    ))
}

/// `map[key]` deserialised, `None` when absent or null; a type error names `parent.key`.
fn optional<T: DeserializeOwned>(
    map: &serde_json::Map<String, serde_json::Value>,
    parent: &str,
    key: &str,
) -> Result<Option<T>> {
    match map.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| field_error(&join_path(parent, key), e)),
    }
}

impl GroupsSetting {
    /// Parses the `groups` setting; errors name the field below `groups`.
    fn from_value(value: &serde_json::Value) -> Result<Self> {
        const FIELD: &str = "groups";
        let expected =
            "expected `all`, `{names: [...]}`, `{tag: {key: ..., value: ...}}` or `{prefix: ...}`";
        let map = match value {
            serde_json::Value::String(s) if s == "all" => return Ok(GroupsSetting::All),
            serde_json::Value::Object(map) => map,
            serde_json::Value::String(s) => {
                return Err(field_error(
                    FIELD,
                    format!("`{s}` is not a group selection; {expected}"),
                ));
            }
            other => {
                return Err(field_error(
                    FIELD,
                    format!("got {}; {expected}", describe(other)),
                ));
            }
        };
        reject_unknown(map, FIELD, GROUP_FORMS)?;
        let mut keys = map.keys();
        let form = match (keys.next(), keys.next()) {
            (Some(form), None) => form.as_str(),
            (None, _) => return Err(field_error(FIELD, format!("is empty; {expected}"))),
            (Some(a), Some(b)) => {
                return Err(field_error(
                    FIELD,
                    format!("gives both `{a}` and `{b}`; choose one selection"),
                ));
            }
        };
        let inner = &map[form];
        let path = join_path(FIELD, form);
        match form {
            "names" => {
                let serde_json::Value::Array(items) = inner else {
                    return Err(field_error(
                        &path,
                        format!("got {}; expected a list of group names", describe(inner)),
                    ));
                };
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| match item {
                        serde_json::Value::String(name) => Ok(name.clone()),
                        other => Err(field_error(
                            &format!("{path}[{i}]"),
                            format!("got {}; expected a group name", describe(other)),
                        )),
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(GroupsSetting::Names)
            }
            "tag" => {
                let serde_json::Value::Object(tag) = inner else {
                    return Err(field_error(
                        &path,
                        format!(
                            "got {}; expected `{{key: ..., value: ...}}`",
                            describe(inner)
                        ),
                    ));
                };
                reject_unknown(tag, &path, &["key", "value"])?;
                let key: Option<String> = optional(tag, &path, "key")?;
                let key =
                    key.ok_or_else(|| field_error(&path, "needs `key` (and optionally `value`)"))?;
                Ok(GroupsSetting::Tag {
                    key,
                    value: optional(tag, &path, "value")?,
                })
            }
            "prefix" => serde_json::from_value(inner.clone())
                .map(GroupsSetting::Prefix)
                .map_err(|e| field_error(&path, e)),
            _ => match inner {
                serde_json::Value::Null => Ok(GroupsSetting::All),
                other => Err(field_error(
                    &path,
                    format!("takes no value, got {}", describe(other)),
                )),
            },
        }
    }
}

impl AwsSettings {
    /// Parses and validates settings. Every error names its field ([`Error::field`], a path
    /// relative to the `aws:` block such as `region` or `groups.names[1]`), so a host reports
    /// it at that field's line.
    pub fn from_value(settings: &serde_json::Value) -> Result<Self> {
        let empty = serde_json::Map::new();
        let map = match settings {
            serde_json::Value::Null => &empty,
            serde_json::Value::Object(map) => map,
            other => {
                return Err(Error::config(format!(
                    "aws settings must be a mapping of fields, got {}",
                    describe(other)
                ))
                .with_provider("aws"));
            }
        };
        reject_unknown(map, "", FIELDS)?;
        let parsed = AwsSettings {
            region: optional(map, "", "region")?,
            endpoint_url: optional(map, "", "endpoint_url")?,
            cloudwatch_endpoint_url: optional(map, "", "cloudwatch_endpoint_url")?,
            profile: optional(map, "", "profile")?,
            groups: match map.get("groups") {
                None | Some(serde_json::Value::Null) => None,
                Some(value) => Some(GroupsSetting::from_value(value)?),
            },
            custom_metric_namespace: optional(map, "", "custom_metric_namespace")?,
            instance_refresh: optional(map, "", "instance_refresh")?,
            cost_tags: optional(map, "", "cost_tags")?,
        };
        parsed.validate()?;
        Ok(parsed)
    }

    /// Checks values serde cannot: non-empty names, plausible region and URLs.
    pub fn validate(&self) -> Result<()> {
        if let Some(region) = &self.region
            && (region.is_empty()
                || !region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            return Err(field_error(
                "region",
                format!("`{region}` is not an AWS region name (like `us-east-1`)"),
            ));
        }
        for (field, url) in [
            ("endpoint_url", &self.endpoint_url),
            ("cloudwatch_endpoint_url", &self.cloudwatch_endpoint_url),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(field_error(
                    field,
                    format!("`{url}` must start with http:// or https://"),
                ));
            }
        }
        if let Some(profile) = &self.profile
            && profile.is_empty()
        {
            return Err(field_error("profile", "is empty"));
        }
        if let Some(namespace) = &self.custom_metric_namespace
            && namespace.is_empty()
        {
            return Err(field_error("custom_metric_namespace", "is empty"));
        }
        if let Some(tags) = &self.cost_tags {
            for (key, value) in tags {
                if key.trim().is_empty() {
                    return Err(field_error("cost_tags", "a tag key is empty"));
                }
                if value.is_empty() {
                    return Err(field_error(
                        &format!("cost_tags.{key}"),
                        "is empty: give the tag's value",
                    ));
                }
            }
        }
        match &self.groups {
            Some(GroupsSetting::Names(names)) => {
                if names.is_empty() {
                    return Err(field_error("groups.names", "lists no group"));
                }
                for (i, name) in names.iter().enumerate() {
                    if name.trim().is_empty() {
                        return Err(field_error(&format!("groups.names[{i}]"), "is empty"));
                    }
                }
            }
            Some(GroupsSetting::Tag { key, value }) => {
                if key.is_empty() {
                    return Err(field_error("groups.tag.key", "is empty"));
                }
                if value.as_deref() == Some("") {
                    return Err(field_error(
                        "groups.tag.value",
                        "is empty (leave it out to match any value)",
                    ));
                }
            }
            Some(GroupsSetting::Prefix(prefix)) if prefix.is_empty() => {
                return Err(field_error(
                    "groups.prefix",
                    "is empty (use `all` to manage every group)",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// The JSON Schema (draft 2020-12) of an `aws:` block, for editors and `hoist schema`. It
    /// states what [`from_value`](Self::from_value) accepts; the checks it cannot express
    /// (a group placed on the provider but outside its `groups`) are made by `hoist validate`.
    pub fn schema() -> serde_json::Value {
        let url = |what: &str| {
            json!({
                "type": "string",
                "pattern": "^https?://",
                "description": what,
                "examples": ["http://127.0.0.1:5000"],
            })
        };
        let non_empty =
            |what: &str| json!({ "type": "string", "minLength": 1, "description": what });
        json!({
            "title": "aws provider settings",
            "description": "An AWS account and region: EC2 Auto Scaling groups, EC2 instance types and prices, Cost Explorer and CloudWatch. Credentials are never settings: they come from the named profile, or else the standard AWS chain. Every setting given here wins over the environment (AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE, AWS_ACCESS_KEY_ID, ...).",
            "type": ["object", "null"],
            "additionalProperties": false,
            "properties": {
                "region": {
                    "type": "string",
                    "pattern": "^[a-z0-9-]+$",
                    "description": "AWS region; when absent, the profile's, else AWS_REGION, else the default profile's.",
                    "examples": ["us-east-1", "eu-west-1"],
                },
                "endpoint_url": url("Endpoint for every AWS service (an emulator, a VPC endpoint); wins over AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>."),
                "cloudwatch_endpoint_url": url("Endpoint for CloudWatch only; wins over endpoint_url for CloudWatch."),
                "profile": non_empty("Named profile of the shared config files (~/.aws/config): credentials come from it, and the region unless `region` is set."),
                "groups": {
                    "description": "Which Auto Scaling groups the provider manages; every group of the account and region when absent.",
                    "oneOf": [
                        { "const": "all" },
                        {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["names"],
                            "properties": {
                                "names": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": { "type": "string", "pattern": "\\S" },
                                    "description": "Exactly these group names.",
                                },
                            },
                        },
                        {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["tag"],
                            "properties": {
                                "tag": {
                                    "type": "object",
                                    "additionalProperties": false,
                                    "required": ["key"],
                                    "properties": {
                                        "key": non_empty("Tag key."),
                                        "value": non_empty("Tag value; any value when absent."),
                                    },
                                },
                            },
                        },
                        {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["prefix"],
                            "properties": {
                                "prefix": non_empty("Groups whose name starts with this."),
                            },
                        },
                        {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["all"],
                            "properties": { "all": { "type": "null" } },
                        },
                    ],
                },
                "custom_metric_namespace": non_empty("CloudWatch namespace of custom metrics (default `Hoist`)."),
                "instance_refresh": {
                    "type": "boolean",
                    "default": true,
                    "description": "Whether changing a group's instance type also starts an instance refresh that replaces its running instances.",
                },
                "cost_tags": {
                    "type": "object",
                    "additionalProperties": { "type": "string", "minLength": 1 },
                    "description": "Cost allocation tags (key: value) that limit what Cost Explorer reports, and so the reconciliation of the cost meter, to the managed resources; the whole account when absent.",
                },
            },
        })
    }

    /// The group selection these settings ask for.
    pub fn selector(&self) -> GroupSelector {
        match &self.groups {
            None | Some(GroupsSetting::All) => GroupSelector::All,
            Some(GroupsSetting::Names(names)) => GroupSelector::Names(names.clone()),
            Some(GroupsSetting::Tag { key, value }) => GroupSelector::Tag {
                key: key.clone(),
                value: value.clone(),
            },
            Some(GroupsSetting::Prefix(prefix)) => GroupSelector::Prefix(prefix.clone()),
        }
    }

    /// A builder from the standard AWS chain with these settings on top.
    pub fn builder(&self, name: &str) -> AwsProviderBuilder {
        let mut builder = AwsProviderBuilder::from_env()
            .with_name(name)
            .with_groups(self.selector());
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        if let Some(url) = &self.endpoint_url {
            builder = builder.with_endpoint_url(url);
        }
        if let Some(url) = &self.cloudwatch_endpoint_url {
            builder = builder.with_cloudwatch_endpoint_url(url);
        }
        if let Some(profile) = &self.profile {
            builder = builder.with_profile(profile);
        }
        if let Some(namespace) = &self.custom_metric_namespace {
            builder = builder.with_custom_metric_namespace(namespace);
        }
        if let Some(refresh) = self.instance_refresh {
            builder = builder.with_instance_refresh(refresh);
        }
        if let Some(tags) = &self.cost_tags {
            builder = builder.with_cost_tags(tags.clone());
        }
        builder
    }
}

/// Builds the provider set of an `aws` provider named `name` from its policy-file settings.
pub async fn provider_set_from_settings(
    name: &str,
    settings: &serde_json::Value,
) -> Result<ProviderSet> {
    let settings = AwsSettings::from_value(settings)?;
    Ok(Arc::new(settings.builder(name).build().await?).into_provider_set())
}

/// The provider registry's factory for the `aws` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsProviderFactory;

impl AwsProviderFactory {
    fn check_groups(ctx: &BuildContext<'_>, settings: &AwsSettings) -> Result<()> {
        let selector = settings.selector();
        if let GroupSelector::Names(names) = &selector {
            for group in ctx.groups {
                if !names.contains(&group.id) {
                    return Err(field_error(
                        "groups.names",
                        format!(
                            "group `{}` is placed on provider `{}` but is not in its list",
                            group.id, ctx.name
                        ),
                    ));
                }
            }
        }
        if let GroupSelector::Prefix(prefix) = &selector {
            for group in ctx.groups {
                if !group.id.starts_with(prefix.as_str()) {
                    return Err(field_error(
                        "groups.prefix",
                        format!("group `{}` does not start with `{prefix}`", group.id),
                    ));
                }
            }
        }
        let longest = std::time::Duration::from_secs(MAX_HEARTBEAT_SECONDS as u64);
        for group in ctx.groups {
            if let Some(drain) = group.drain
                && drain > longest
            {
                return Err(Error::config(format!(
                    "group `{}`: a drain of {} is longer than the 2h an Auto Scaling lifecycle hook holds an instance",
                    group.id,
                    hoist_api::duration::format_duration(drain)
                ))
                .with_provider("aws"));
            }
        }
        Ok(())
    }

    /// `builder` with the drains of the groups the policy places on the provider.
    fn with_drains(ctx: &BuildContext<'_>, mut builder: AwsProviderBuilder) -> AwsProviderBuilder {
        for group in ctx.groups {
            if let Some(drain) = group.drain {
                builder = builder.with_drain(group.id.clone(), drain);
            }
        }
        builder
    }
}

#[async_trait]
impl ProviderFactory for AwsProviderFactory {
    fn kind(&self) -> &str {
        "aws"
    }

    fn settings_schema(&self) -> serde_json::Value {
        AwsSettings::schema()
    }

    fn validate(&self, ctx: BuildContext<'_>) -> Result<()> {
        let settings = AwsSettings::from_value(ctx.settings)?;
        Self::check_groups(&ctx, &settings)
    }

    async fn build(&self, ctx: BuildContext<'_>) -> Result<BuiltProvider> {
        let settings = AwsSettings::from_value(ctx.settings)?;
        Self::check_groups(&ctx, &settings)?;
        let provider = Self::with_drains(&ctx, settings.builder(ctx.name))
            .build()
            .await?;
        Ok(BuiltProvider {
            set: Arc::new(provider).into_provider_set(),
            clock: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_every_group_selection() {
        let s = AwsSettings::from_value(
            &json!({"region": "us-east-1", "groups": {"names": ["a", "b"]}}),
        )
        .unwrap();
        assert_eq!(
            s.selector(),
            GroupSelector::Names(vec!["a".into(), "b".into()])
        );
        let s =
            AwsSettings::from_value(&json!({"groups": {"tag": {"key": "team", "value": "web"}}}))
                .unwrap();
        assert_eq!(
            s.selector(),
            GroupSelector::Tag {
                key: "team".into(),
                value: Some("web".into())
            }
        );
        let s = AwsSettings::from_value(&json!({"groups": {"prefix": "web-"}})).unwrap();
        assert_eq!(s.selector(), GroupSelector::Prefix("web-".into()));
        let s = AwsSettings::from_value(&json!({"groups": "all"})).unwrap();
        assert_eq!(s.selector(), GroupSelector::All);
        assert_eq!(
            AwsSettings::from_value(&serde_json::Value::Null).unwrap(),
            AwsSettings::default()
        );
    }

    #[test]
    fn errors_name_the_field_structurally() {
        let cases = [
            (json!({"region": "US East"}), "region", "not an AWS region"),
            (json!({"region": 5}), "region", "expected a string"),
            (
                json!({"endpoint_url": "127.0.0.1:5000"}),
                "endpoint_url",
                "http://",
            ),
            (
                json!({"cloudwatch_endpoint_url": "localhost"}),
                "cloudwatch_endpoint_url",
                "http://",
            ),
            (json!({"profile": ""}), "profile", "empty"),
            (
                json!({"instance_refresh": "yes"}),
                "instance_refresh",
                "boolean",
            ),
            (
                json!({"custom_metric_namespace": ""}),
                "custom_metric_namespace",
                "empty",
            ),
            (json!({"groups": {"names": []}}), "groups.names", "no group"),
            (
                json!({"groups": {"names": ["a", ""]}}),
                "groups.names[1]",
                "empty",
            ),
            (
                json!({"groups": {"names": ["a", 3]}}),
                "groups.names[1]",
                "group name",
            ),
            (json!({"groups": {"names": "web"}}), "groups.names", "list"),
            (
                json!({"groups": {"tag": {"key": ""}}}),
                "groups.tag.key",
                "empty",
            ),
            (
                json!({"groups": {"tag": {"value": "x"}}}),
                "groups.tag",
                "`key`",
            ),
            (
                json!({"groups": {"tag": {"key": "a", "valeu": "x"}}}),
                "groups.tag.valeu",
                "`value`",
            ),
            (json!({"groups": {"prefix": ""}}), "groups.prefix", "empty"),
            (
                json!({"groups": {"prefix": "a", "names": ["a"]}}),
                "groups",
                "choose one",
            ),
            (
                json!({"groups": {"name": ["a"]}}),
                "groups.name",
                "did you mean `names`",
            ),
            (json!({"groups": "some"}), "groups", "not a group selection"),
            (
                json!({"regoin": "us-east-1"}),
                "regoin",
                "did you mean `region`",
            ),
        ];
        for (value, field, needle) in cases {
            let err = AwsSettings::from_value(&value).unwrap_err();
            assert_eq!(err.kind(), hoist_api::ErrorKind::Config, "{value}");
            assert_eq!(err.field(), Some(field), "{value}: {err}");
            assert!(err.message().contains(needle), "{value}: {err}");
            assert!(
                !err.message().contains(&format!("`{field}`:"))
                    && !err.message().starts_with(field),
                "the message must not repeat the path: {err}"
            );
        }
        let err = AwsSettings::from_value(&json!("us-east-1")).unwrap_err();
        assert_eq!(err.field(), None);
        assert!(err.message().contains("mapping"), "{err}");
    }

    #[test]
    fn group_checks_name_their_field() {
        let groups = [hoist_api::registry::GroupBounds::new("api", 1, 2)];
        for (settings, field) in [
            (json!({"groups": {"names": ["web"]}}), "groups.names"),
            (json!({"groups": {"prefix": "web-"}}), "groups.prefix"),
        ] {
            let ctx = BuildContext {
                name: "prod",
                settings: &settings,
                base_dir: std::path::Path::new("."),
                groups: &groups,
            };
            let err = AwsProviderFactory.validate(ctx).unwrap_err();
            assert_eq!(err.field(), Some(field), "{err}");
            assert!(err.message().contains("`api`"), "{err}");
        }
    }

    #[test]
    fn a_drain_longer_than_a_lifecycle_hook_holds_is_refused() {
        let settings = json!({});
        let groups = [
            hoist_api::registry::GroupBounds::new("web", 1, 2)
                .with_drain(std::time::Duration::from_secs(7_200)),
            hoist_api::registry::GroupBounds::new("api", 1, 2)
                .with_drain(std::time::Duration::from_secs(7_201)),
        ];
        let ctx = BuildContext {
            name: "prod",
            settings: &settings,
            base_dir: std::path::Path::new("."),
            groups: &groups,
        };
        let err = AwsProviderFactory.validate(ctx).unwrap_err();
        assert_eq!(err.kind(), hoist_api::ErrorKind::Config);
        assert!(err.message().contains("`api`"), "{err}");
        assert!(err.message().contains("2h"), "{err}");
        let builder = AwsProviderFactory::with_drains(&ctx, AwsProviderBuilder::new());
        assert!(
            format!("{builder:?}").contains("\"web\": 7200s"),
            "{builder:?}"
        );
    }

    #[test]
    fn the_schema_describes_exactly_the_fields_the_parser_accepts() {
        let schema = AwsProviderFactory.settings_schema();
        assert_eq!(schema, AwsSettings::schema());
        assert_eq!(schema["additionalProperties"], json!(false));
        let mut described: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut fields = FIELDS.to_vec();
        described.sort_unstable();
        fields.sort_unstable();
        assert_eq!(described, fields);
        for field in FIELDS {
            assert!(
                schema["properties"][field]["description"].is_string()
                    || schema["properties"][field]["oneOf"].is_array(),
                "{field} is undocumented"
            );
        }
        let forms = schema["properties"]["groups"]["oneOf"].as_array().unwrap();
        // `all` as a word, and one mapping per form.
        assert_eq!(forms.len(), GROUP_FORMS.len() + 1);
    }
}
