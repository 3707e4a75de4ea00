//! What crosses the plugin boundary as JSON: operation names, their requests, the plugin's
//! metadata, instance information and errors. Both the loader and the author's kit use these
//! types, so the two sides cannot disagree about a field.
//!
//! Replies of successful operations are the trait method's return value serialised as JSON
//! (`null` for `()`). New operations and new optional fields may be added within one ABI
//! version; a side that does not know an operation answers [`hoist_api::ErrorKind::Unsupported`].

use std::path::PathBuf;

use hoist_api::{
    BillingCapabilities, CapacityType, CatalogCapabilities, CostQuery, Error, ErrorKind,
    MetricsCapabilities, ScalingCapabilities,
};
use serde::{Deserialize, Serialize};

/// One of the four provider traits, as named in plugin metadata.
pub use hoist_api::ProviderTrait as Capability;

/// An operation: one trait method, named on the wire by [`Operation::wire_name`]
/// (`scaling.set_desired_capacity`). The one operation table of `hoist-api`.
pub use hoist_api::Operation;

/// A request without arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Empty {}

/// A request naming a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRequest {
    /// The group id.
    pub group: String,
}

/// Request of [`Operation::SetDesiredCapacity`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetDesiredRequest {
    /// The group id.
    pub group: String,
    /// Instances wanted.
    pub desired: u32,
}

/// Request of [`Operation::RemoveInstances`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveInstancesRequest {
    /// The group id.
    pub group: String,
    /// The instances to remove and how.
    #[serde(flatten)]
    pub request: hoist_api::RemoveInstances,
}

/// Request of [`Operation::SetInstanceClass`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetInstanceClassRequest {
    /// The group id.
    pub group: String,
    /// The new instance class.
    pub instance_class: String,
    /// How fast existing instances may be replaced (absent from hosts of before the field: the
    /// plugin's own pace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption: Option<hoist_api::DisruptionBudget>,
}

/// A request naming an instance class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameRequest {
    /// The class name.
    pub name: String,
}

/// Request of [`Operation::Price`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceRequest {
    /// The class.
    pub instance_class: String,
    /// The zone.
    pub zone: String,
    /// How it is bought.
    pub capacity_type: CapacityType,
}

/// Request of [`Operation::QueryRange`]: the API's own request.
pub type QueryRangeRequest = hoist_api::RangeQuery;

/// Request of [`Operation::Cost`] and [`Operation::Forecast`].
pub type CostRequest = CostQuery;

/// What a plugin says about itself, without any configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The plugin's name (`static-pool`).
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// A one-line description.
    pub description: String,
    /// The ABI version it was built for.
    pub abi_version: u32,
    /// The version of the `hoist-plugin` crate it was built with.
    pub kit_version: String,
    /// The traits it implements (always including `scaling`).
    pub provides: Vec<Capability>,
    /// The wire names of the operations it answers.
    pub operations: Vec<String>,
}

/// What the host sends to create an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The provider's name in the policy file.
    pub name: String,
    /// The directory relative paths in `config` resolve against (the policy file's directory).
    pub base_dir: PathBuf,
    /// The plugin's own configuration, validated by the plugin.
    pub config: serde_json::Value,
}

/// What a created instance can do; the reply of `create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Scaling capabilities.
    pub scaling: ScalingCapabilities,
    /// Catalog capabilities, when the plugin provides a catalog.
    pub catalog: Option<CatalogCapabilities>,
    /// Billing capabilities, when the plugin provides billing.
    pub billing: Option<BillingCapabilities>,
    /// Metrics capabilities, when the plugin provides metrics.
    pub metrics: Option<MetricsCapabilities>,
}

/// A [`hoist_api::Error`] on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    /// The [`ErrorKind`] name (`not_found`, `throttled`, ...); unknown names read as `other`.
    pub kind: String,
    /// Whether a retry may help.
    pub retryable: bool,
    /// The message, verbatim.
    pub message: String,
    /// The error's source chain as text, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl WireError {
    /// The wire form of `error`.
    pub fn from_error(error: &Error) -> Self {
        let mut chain = Vec::new();
        let mut source = std::error::Error::source(error);
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        WireError {
            kind: error.kind().as_str().to_owned(),
            retryable: error.is_retryable(),
            message: error.message().to_owned(),
            source: (!chain.is_empty()).then(|| chain.join(": ")),
        }
    }

    /// The error it stands for; `provider` and `operation` are the host's names for them.
    pub fn into_error(self, provider: &str, operation: &str) -> Error {
        let kind = serde_json::from_value::<ErrorKind>(serde_json::Value::String(self.kind))
            .unwrap_or(ErrorKind::Other);
        let mut error = Error::new(kind, self.message)
            .with_retryable(self.retryable)
            .with_provider(provider)
            .with_operation(operation);
        if let Some(source) = self.source {
            error = error.with_source(source);
        }
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_round_trip_and_are_unique() {
        let mut names: Vec<&str> = Operation::ALL.iter().map(|op| op.wire_name()).collect();
        for op in Operation::ALL {
            assert_eq!(Operation::from_wire_name(op.wire_name()), Some(op));
            assert!(op.provider_trait().operations().any(|o| o == op));
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Operation::ALL.len());
        assert_eq!(Operation::from_wire_name("scaling.nope"), None);
    }

    #[test]
    fn errors_cross_with_kind_retryability_message_and_source() {
        let original = Error::new(ErrorKind::Throttled, "slow down")
            .with_retryable(false)
            .with_source(std::io::Error::other("socket closed"));
        let wire: WireError =
            serde_json::from_slice(&serde_json::to_vec(&WireError::from_error(&original)).unwrap())
                .unwrap();
        let back = wire.into_error("pool", "scaling.list_groups");
        assert_eq!(back.kind(), ErrorKind::Throttled);
        assert!(!back.is_retryable());
        assert_eq!(back.message(), "slow down");
        assert_eq!(
            back.to_string(),
            "pool scaling.list_groups: slow down (throttled): socket closed"
        );
    }

    #[test]
    fn unknown_error_kinds_read_as_other() {
        let wire = WireError {
            kind: "from_the_future".into(),
            retryable: true,
            message: "m".into(),
            source: None,
        };
        let error = wire.into_error("p", "o");
        assert_eq!(error.kind(), ErrorKind::Other);
        assert!(error.is_retryable());
    }
}
