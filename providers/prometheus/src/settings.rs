//! The settings of a `prometheus` metrics source in a policy file, typed and validated.
//!
//! ```yaml
//! metrics_sources:
//!   prom:
//!     prometheus:
//!       url: http://127.0.0.1:9090
//!       timeout: 10s
//!       staleness: 5m
//!       bearer_token: { file: /var/run/secrets/prometheus-token }
//!       group_label: service          # the label the built-in queries select groups by
//!       queries:                      # per signal, for every group; {group} is the group id
//!         queue_depth: 'sum(rabbitmq_queue_messages{queue="{group}"})'
//!       groups:                       # per group and signal, overriding `queries`
//!         web:
//!           request_rate: 'sum(rate(nginx_http_requests_total{app="web"}[2m]))'
//! ```

use std::collections::BTreeMap;

use hoist_api::SecretRef;
use hoist_api::duration::HumanDuration;
use hoist_api::{Error, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Settings of a Prometheus metrics source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSettings {
    /// Base URL of the Prometheus HTTP API (`http://prometheus:9090`, or a path prefix such as
    /// `https://example.com/prometheus`).
    pub url: String,
    /// Time limit of one query, sent to Prometheus as its `timeout` too. Default 10s.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// A series whose newest sample is older than this (plus one step) is stale. Default 5m,
    /// Prometheus's own look-back.
    #[serde(default = "default_staleness")]
    pub staleness: HumanDuration,
    /// A bearer token for authenticating proxies or managed Prometheus: `{env: VAR}` or
    /// `{file: PATH}` (a file is re-read on every query, so rotated tokens work).
    #[serde(default)]
    pub bearer_token: Option<SecretRef>,
    /// The label the built-in queries select a group by. Default `group`.
    #[serde(default = "default_group_label")]
    pub group_label: String,
    /// PromQL templates per signal (`utilization`, `request_rate`, `queue_depth`,
    /// `latency_p95`, `latency_p99`, `error_rate` or a custom name), for every group.
    #[serde(default)]
    pub queries: BTreeMap<String, String>,
    /// PromQL templates per group id and signal, overriding `queries`.
    #[serde(default)]
    pub groups: BTreeMap<String, BTreeMap<String, String>>,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_staleness() -> HumanDuration {
    HumanDuration::from_secs(300)
}

fn default_group_label() -> String {
    "group".to_owned()
}

impl PrometheusSettings {
    /// Parses and validates settings; errors name the field ([`Error::field`], such as
    /// `timeout`).
    pub fn from_value(value: &serde_json::Value) -> Result<Self> {
        let settings: PrometheusSettings = serde_path_to_error_free(value)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values: the URL parses as http(s), durations are positive, the group label is a
    /// valid Prometheus label name, templates are not empty.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        match reqwest::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            Ok(url) => problems.push((
                "url".to_owned(),
                format!("scheme `{}` is not http or https", url.scheme()),
            )),
            Err(e) => problems.push((
                "url".to_owned(),
                format!("`{}` is not a URL: {e}", self.url),
            )),
        }
        if self.timeout.get().is_zero() {
            problems.push(("timeout".to_owned(), "must be more than 0".to_owned()));
        }
        if self.staleness.get().is_zero() {
            problems.push(("staleness".to_owned(), "must be more than 0".to_owned()));
        }
        if !is_label_name(&self.group_label) {
            problems.push((
                "group_label".to_owned(),
                format!(
                    "`{}` is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                    self.group_label
                ),
            ));
        }
        for (signal, query) in &self.queries {
            if query.trim().is_empty() {
                problems.push((format!("queries.{signal}"), "empty query".to_owned()));
            }
        }
        for (group, queries) in &self.groups {
            for (signal, query) in queries {
                if query.trim().is_empty() {
                    problems.push((format!("groups.{group}.{signal}"), "empty query".to_owned()));
                }
            }
        }
        match problems.into_iter().next() {
            None => Ok(()),
            Some((field, message)) => Err(Error::config_field(field, message)),
        }
    }
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Deserialises with the failing field's path as the error's field.
fn serde_path_to_error_free(value: &serde_json::Value) -> Result<PrometheusSettings> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            Error::config(e.inner().to_string())
        } else {
            Error::config_field(path, e.inner().to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_and_full_form() {
        let s = PrometheusSettings::from_value(&json!({"url": "http://127.0.0.1:9090"})).unwrap();
        assert_eq!(s.timeout.get(), Duration::from_secs(10));
        assert_eq!(s.staleness.get(), Duration::from_secs(300));
        assert_eq!(s.group_label, "group");
        let s = PrometheusSettings::from_value(&json!({
            "url": "https://prom.example/api/prom",
            "timeout": "3s",
            "bearer_token": {"env": "PROM_TOKEN"},
            "group_label": "service",
            "queries": {"queue_depth": "sum(q{queue=\"{group}\"})"},
            "groups": {"web": {"request_rate": "sum(rate(x[1m]))"}},
        }))
        .unwrap();
        assert_eq!(s.groups["web"]["request_rate"], "sum(rate(x[1m]))");
    }

    #[test]
    fn errors_name_the_field() {
        let err = PrometheusSettings::from_value(&json!({"url": "http://p", "timout": "3s"}))
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `timout`"), "{err}");
        let err = PrometheusSettings::from_value(&json!({"url": "http://p", "timeout": "3"}))
            .unwrap_err();
        assert_eq!(err.field(), Some("timeout"), "{err}");
        let err = PrometheusSettings::from_value(&json!({"url": "p:9090"})).unwrap_err();
        assert_eq!(err.field(), Some("url"), "{err}");
        let err =
            PrometheusSettings::from_value(&json!({"url": "http://p", "group_label": "my-group"}))
                .unwrap_err();
        assert!(err.to_string().contains("group_label"), "{err}");
        let err =
            PrometheusSettings::from_value(&json!({"url": "http://p", "bearer_token": "abc"}))
                .unwrap_err();
        assert!(
            err.field().is_some_and(|f| f.starts_with("bearer_token")),
            "{err}"
        );
        assert!(!err.to_string().contains("abc"), "{err}");
        let err = PrometheusSettings::from_value(&json!({"timeout": "3s"})).unwrap_err();
        assert!(err.to_string().contains("missing field `url`"), "{err}");
    }
}
