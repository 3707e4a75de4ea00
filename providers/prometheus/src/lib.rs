//! # hoist-prometheus
//!
//! Prometheus as a Hoist [`hoist_api::MetricsSource`]: PromQL instant and range queries over
//! the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`), with per-group query
//! templates, timeouts and errors that say why a metric is unusable (a bad query with
//! Prometheus's own message, no series, only NaN, stale series). See [`PrometheusSource`] for
//! the error mapping.
//!
//! Entry points for the binary:
//! - [`PrometheusFactory`]: register it in a [`hoist_api::registry::ProviderRegistry`] and a
//!   policy's `metrics_sources: { prom: { prometheus: {...} } }` builds through it;
//! - [`metrics_source_from_settings`]: the same settings to a [`PrometheusSource`] directly.
//!
//! HTTP is `reqwest` with rustls on the `aws-lc-rs` crypto provider (shared with the AWS
//! crates) and the platform's trust roots, so `https://` URLs work as well as `http://`.

#![forbid(unsafe_code)]

mod factory;
mod settings;
mod source;

pub use factory::PrometheusFactory;
pub use settings::PrometheusSettings;
pub use source::{
    BUILTIN_QUERIES, PrometheusSource, PrometheusSourceBuilder, metric_kind,
    metrics_source_from_settings, metrics_source_from_settings_in,
};
