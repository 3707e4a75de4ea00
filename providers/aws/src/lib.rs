//! # hoist-aws
//!
//! Hoist's AWS provider: one [`AwsProvider`] per account and region implements the four core
//! traits on the official AWS SDK for Rust:
//!
//! | trait | AWS API |
//! |---|---|
//! | [`hoist_api::ScalingProvider`] | Auto Scaling (groups, SetDesiredCapacity, TerminateInstanceInAutoScalingGroup, launch templates, instance refresh, and for a group's drain a termination lifecycle hook: PutLifecycleHook, CompleteLifecycleAction) and EC2 DescribeInstances |
//! | [`hoist_api::InstanceCatalog`] | EC2 DescribeInstanceTypes and DescribeInstanceTypeOfferings, prices from a shipped table refreshed live |
//! | [`hoist_api::BillingProvider`] | Cost Explorer GetCostAndUsage and GetCostForecast |
//! | [`hoist_api::MetricsSource`] | CloudWatch GetMetricData |
//!
//! Build one with [`AwsProviderBuilder`] (`new` for explicit settings, `from_env` for the
//! standard AWS configuration and credential chain, honouring `AWS_REGION` and
//! `AWS_ENDPOINT_URL`), or from a policy file's settings with [`provider_set_from_settings`] /
//! [`AwsProviderFactory`]. What the settings (or the builder's setters) say wins over the
//! environment: region, endpoint, and a named profile with its credentials. Settings errors
//! name their field ([`hoist_api::Error::field`]) and [`AwsSettings::schema`] describes them.
//! Errors convert to [`hoist_api::Error`] by meaning (see [`errors`]); credentials never appear
//! in `Debug` output, logs or errors.
//!
//! Modules follow one concern each: [`builder`], [`client`], [`errors`], [`scaling`],
//! [`catalog`], [`billing`], [`metrics`] and [`settings`].

#![forbid(unsafe_code)]

pub mod billing;
pub mod builder;
pub mod catalog;
pub mod client;
pub mod errors;
pub mod metrics;
pub mod scaling;
pub mod settings;
#[cfg(test)]
mod testing;
mod time;

pub use builder::AwsProviderBuilder;
pub use client::{AwsProvider, GroupSelector};
pub use scaling::victims::{VictimSelection, choose_victims};
pub use settings::{AwsProviderFactory, AwsSettings, GroupsSetting, provider_set_from_settings};
