//! The operation table: every method of the four provider traits, named once. Layers, events,
//! errors, metrics labels, the plugin protocol, the plugin kit and the loader all speak of
//! operations through [`Operation`], so a new operation is added here and the compiler points at
//! every place that must handle it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::provider::{BillingCapabilities, ScalingCapabilities};
#[cfg(doc)]
use crate::provider::{BillingProvider, InstanceCatalog, MetricsSource, ScalingProvider};

/// One method of the four provider traits, for layers that treat calls by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// [`ScalingProvider::list_groups`].
    ListGroups,
    /// [`ScalingProvider::describe_group`].
    DescribeGroup,
    /// [`ScalingProvider::set_desired_capacity`].
    SetDesiredCapacity,
    /// [`ScalingProvider::remove_instances`].
    RemoveInstances,
    /// [`ScalingProvider::set_instance_class`].
    SetInstanceClass,
    /// [`ScalingProvider::activities`].
    Activities,
    /// [`InstanceCatalog::instance_classes`].
    InstanceClasses,
    /// [`InstanceCatalog::instance_class`].
    InstanceClass,
    /// [`BillingProvider::cost`].
    Cost,
    /// [`BillingProvider::forecast`].
    Forecast,
    /// [`BillingProvider::price`].
    Price,
    /// [`MetricsSource::query_range`].
    QueryRange,
}

impl Operation {
    /// Every operation, in trait order.
    pub const ALL: [Operation; 12] = [
        Operation::ListGroups,
        Operation::DescribeGroup,
        Operation::SetDesiredCapacity,
        Operation::RemoveInstances,
        Operation::SetInstanceClass,
        Operation::Activities,
        Operation::InstanceClasses,
        Operation::InstanceClass,
        Operation::Cost,
        Operation::Forecast,
        Operation::Price,
        Operation::QueryRange,
    ];

    /// The method name, as used in errors, events and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::ListGroups => "list_groups",
            Operation::DescribeGroup => "describe_group",
            Operation::SetDesiredCapacity => "set_desired_capacity",
            Operation::RemoveInstances => "remove_instances",
            Operation::SetInstanceClass => "set_instance_class",
            Operation::Activities => "activities",
            Operation::InstanceClasses => "instance_classes",
            Operation::InstanceClass => "instance_class",
            Operation::Cost => "cost",
            Operation::Forecast => "forecast",
            Operation::Price => "price",
            Operation::QueryRange => "query_range",
        }
    }

    /// Whether the operation changes a group (the three scaling writes).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Operation::SetDesiredCapacity
                | Operation::RemoveInstances
                | Operation::SetInstanceClass
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Operation {
    /// The plugin protocol's name of the operation, `TRAIT.METHOD` (`scaling.set_desired_capacity`).
    pub fn wire_name(self) -> &'static str {
        match self {
            Operation::ListGroups => "scaling.list_groups",
            Operation::DescribeGroup => "scaling.describe_group",
            Operation::SetDesiredCapacity => "scaling.set_desired_capacity",
            Operation::RemoveInstances => "scaling.remove_instances",
            Operation::SetInstanceClass => "scaling.set_instance_class",
            Operation::Activities => "scaling.activities",
            Operation::InstanceClasses => "catalog.instance_classes",
            Operation::InstanceClass => "catalog.instance_class",
            Operation::Cost => "billing.cost",
            Operation::Forecast => "billing.forecast",
            Operation::Price => "billing.price",
            Operation::QueryRange => "metrics.query_range",
        }
    }

    /// The operation whose [`Operation::wire_name`] is `name`.
    pub fn from_wire_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.wire_name() == name)
    }

    /// The trait the operation belongs to.
    pub fn provider_trait(self) -> ProviderTrait {
        match self {
            Operation::ListGroups
            | Operation::DescribeGroup
            | Operation::SetDesiredCapacity
            | Operation::RemoveInstances
            | Operation::SetInstanceClass
            | Operation::Activities => ProviderTrait::Scaling,
            Operation::InstanceClasses | Operation::InstanceClass => ProviderTrait::Catalog,
            Operation::Cost | Operation::Forecast | Operation::Price => ProviderTrait::Billing,
            Operation::QueryRange => ProviderTrait::Metrics,
        }
    }

    /// Whether a scaling provider with `capabilities` declares this operation. Operations every
    /// provider of the trait must have (listing and describing groups) are always declared;
    /// operations of the other traits are not scaling operations and answer `false`.
    pub fn declared_by_scaling(self, capabilities: &ScalingCapabilities) -> bool {
        match self {
            Operation::ListGroups | Operation::DescribeGroup => true,
            Operation::SetDesiredCapacity => capabilities.set_desired_capacity,
            Operation::RemoveInstances => capabilities.remove_instances,
            Operation::SetInstanceClass => capabilities.set_instance_class,
            Operation::Activities => capabilities.activities,
            _ => false,
        }
    }

    /// Whether a billing provider with `capabilities` declares this operation.
    pub fn declared_by_billing(self, capabilities: &BillingCapabilities) -> bool {
        match self {
            Operation::Cost => capabilities.actual_cost,
            Operation::Forecast => capabilities.forecast,
            Operation::Price => capabilities.prices,
            _ => false,
        }
    }

    /// The error a provider gives for an operation it does not declare: the default body of
    /// every capability-gated trait method, and the capability layer's refusal.
    pub fn unsupported(self, provider: &str) -> crate::Error {
        let declared = match self.provider_trait() {
            ProviderTrait::Scaling => "ScalingCapabilities",
            ProviderTrait::Billing => "BillingCapabilities",
            ProviderTrait::Catalog => "CatalogCapabilities",
            ProviderTrait::Metrics => "MetricsCapabilities",
        };
        crate::Error::unsupported(format!(
            "{} is not supported by this provider (its {declared} do not declare it)",
            self.as_str()
        ))
        .with_provider(provider)
        .with_operation(self.as_str())
    }
}

/// The four provider traits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderTrait {
    /// [`ScalingProvider`].
    Scaling,
    /// [`InstanceCatalog`].
    Catalog,
    /// [`BillingProvider`].
    Billing,
    /// [`MetricsSource`].
    Metrics,
}

impl fmt::Display for ProviderTrait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ProviderTrait {
    /// The trait's operations, in trait order.
    pub fn operations(self) -> impl Iterator<Item = Operation> {
        Operation::ALL
            .into_iter()
            .filter(move |op| op.provider_trait() == self)
    }

    /// The trait's short name (`scaling`, `catalog`, `billing`, `metrics`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderTrait::Scaling => "scaling",
            ProviderTrait::Catalog => "catalog",
            ProviderTrait::Billing => "billing",
            ProviderTrait::Metrics => "metrics",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names: Vec<&str> = Operation::ALL.iter().map(|op| op.wire_name()).collect();
        for op in Operation::ALL {
            assert_eq!(Operation::from_wire_name(op.wire_name()), Some(op));
            assert!(op.wire_name().ends_with(op.as_str()));
            assert!(op.wire_name().starts_with(op.provider_trait().as_str()));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Operation::ALL.len());
        assert_eq!(Operation::from_wire_name("scaling.nope"), None);
    }
}
