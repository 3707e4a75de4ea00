//! Alerts: conditions Hoist raises about itself, and the sinks that deliver them the way
//! operators already route alerts.
//!
//! - [`AlertEngine`] is an [`hoist_engine::events::EventSink`]: it watches the control loop's
//!   events, raises and resolves [`Alert`]s ([`rules`]) and delivers them from a background
//!   task, re-sending active alerts every sink's `repeat_interval` and sending a resolution when
//!   the condition clears.
//! - Sinks ([`sinks`]): the Alertmanager v2 API, Slack incoming webhooks, PagerDuty Events v2,
//!   and a generic JSON webhook.
//! - Configuration ([`AlertsConfig`]) is the `alerts:` section of a policy file.
//!
//! Every alert has a stable de-duplication key, `hoist/<alert>/<provider>[/<group>[/<metric>]]`
//! (`hoist/<alert>/<budget>/<threshold>` for budget alerts): PagerDuty receives it as
//! `dedup_key`, Alertmanager sees the same identity in the labels, Slack and webhooks receive it
//! in the payload.

pub mod config;
pub mod engine;
pub mod rules;
pub mod sinks;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use config::{AlertsConfig, RouteConfig, RulesConfig, SinkConfig};
pub use engine::AlertEngine;
pub use sinks::AlertSink;

/// The conditions Hoist alerts on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertName {
    /// Scaling actions on a group keep failing.
    ScalingActionFailed,
    /// A group is held at its maximum while its policies ask for more.
    PinnedAtMax,
    /// A metric a policy needs is missing, stale or invalid, so the group holds.
    MetricsMissing,
    /// A provider's circuit breaker is open: calls to it are refused.
    CircuitOpen,
    /// A budget's spend so far in its period crossed one of its `alert_on.actual` thresholds.
    BudgetActual,
    /// A budget's forecast spend at its period's end crossed one of its `alert_on.forecast`
    /// thresholds.
    BudgetForecast,
    /// A changed policy file was refused by `hoist run`: the previous configuration keeps
    /// running.
    ConfigRejected,
}

impl AlertName {
    /// The name used in configuration and de-duplication keys (`pinned_at_max`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertName::ScalingActionFailed => "scaling_action_failed",
            AlertName::PinnedAtMax => "pinned_at_max",
            AlertName::MetricsMissing => "metrics_missing",
            AlertName::CircuitOpen => "circuit_open",
            AlertName::BudgetActual => "budget_actual",
            AlertName::BudgetForecast => "budget_forecast",
            AlertName::ConfigRejected => "config_rejected",
        }
    }

    /// The `alertname` label, in Alertmanager's customary CamelCase (`HoistGroupPinnedAtMax`).
    pub fn alertname(self) -> &'static str {
        match self {
            AlertName::ScalingActionFailed => "HoistScalingActionFailed",
            AlertName::PinnedAtMax => "HoistGroupPinnedAtMax",
            AlertName::MetricsMissing => "HoistMetricsMissing",
            AlertName::CircuitOpen => "HoistProviderCircuitOpen",
            AlertName::BudgetActual => "HoistBudgetActualThreshold",
            AlertName::BudgetForecast => "HoistBudgetForecastThreshold",
            AlertName::ConfigRejected => "HoistConfigReloadRejected",
        }
    }
}

impl fmt::Display for AlertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent an alert is. Ordered: `info < warning < critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// `info`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Whether an alert is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition cleared.
    Resolved,
}

impl AlertStatus {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert, firing or resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Which condition.
    pub name: AlertName,
    /// How urgent.
    pub severity: Severity,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// The provider (name in the policy file); `budgets` for budget alerts.
    pub provider: String,
    /// The group, for group alerts.
    pub group: Option<String>,
    /// The metric, for missing-metric alerts.
    pub metric: Option<String>,
    /// The budget (its name in the policy file), for budget alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    /// The threshold crossed, in percent of the budget (`80`), for budget alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    /// The start of the budget period the alert is about, for budget alerts. Part of the
    /// labels, so that the same crossing in the next period is a new alert to Alertmanager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_start: Option<DateTime<Utc>>,
    /// One line for a pager or chat.
    pub summary: String,
    /// What happened and what it means.
    pub description: String,
    /// When the condition started to hold.
    pub starts_at: DateTime<Utc>,
    /// When it cleared (resolved alerts only).
    pub ends_at: Option<DateTime<Utc>>,
    /// Extra labels from configuration (`team: infra`).
    pub extra_labels: BTreeMap<String, String>,
}

impl Alert {
    /// The stable de-duplication key: `hoist/<alert>/<provider>[/<group>[/<metric>]]`, or
    /// `hoist/<alert>/<budget>[/<threshold>]` for budget alerts. The same condition on the
    /// same subject always has the same key, across re-sends and restarts.
    pub fn dedup_key(&self) -> String {
        if let Some(budget) = &self.budget {
            let mut key = format!("hoist/{}/{budget}", self.name.as_str());
            if let Some(threshold) = &self.threshold {
                key.push('/');
                key.push_str(threshold);
            }
            return key;
        }
        let mut key = format!("hoist/{}/{}", self.name.as_str(), self.provider);
        if let Some(group) = &self.group {
            key.push('/');
            key.push_str(group);
        }
        if let Some(metric) = &self.metric {
            key.push('/');
            key.push_str(metric);
        }
        key
    }

    /// The identifying labels: `alertname`, `severity`, `source="hoist"`, `provider`, and
    /// `group`, `metric`, `budget`, `threshold` and `period_start` (RFC 3339) when set, plus the
    /// configured extra labels.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.extra_labels.clone();
        labels.insert("alertname".into(), self.name.alertname().into());
        labels.insert("severity".into(), self.severity.as_str().into());
        labels.insert("source".into(), "hoist".into());
        labels.insert("provider".into(), self.provider.clone());
        if let Some(group) = &self.group {
            labels.insert("group".into(), group.clone());
        }
        if let Some(metric) = &self.metric {
            labels.insert("metric".into(), metric.clone());
        }
        if let Some(budget) = &self.budget {
            labels.insert("budget".into(), budget.clone());
        }
        if let Some(threshold) = &self.threshold {
            labels.insert("threshold".into(), threshold.clone());
        }
        if let Some(start) = &self.period_start {
            labels.insert(
                "period_start".into(),
                start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        labels
    }

    /// The same alert, resolved at `at`.
    pub fn resolved(&self, at: DateTime<Utc>) -> Alert {
        Alert {
            status: AlertStatus::Resolved,
            ends_at: Some(at),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn dedup_keys_are_stable_and_name_the_subject() {
        let alert = Alert {
            name: AlertName::MetricsMissing,
            severity: Severity::Warning,
            status: AlertStatus::Firing,
            provider: "aws".into(),
            group: Some("web".into()),
            metric: Some("request_rate".into()),
            budget: None,
            threshold: None,
            period_start: None,
            summary: "s".into(),
            description: "d".into(),
            starts_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            ends_at: None,
            extra_labels: BTreeMap::from([("team".to_owned(), "infra".to_owned())]),
        };
        assert_eq!(
            alert.dedup_key(),
            "hoist/metrics_missing/aws/web/request_rate"
        );
        let resolved = alert.resolved(Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap());
        assert_eq!(resolved.dedup_key(), alert.dedup_key());
        assert_eq!(resolved.status, AlertStatus::Resolved);
        let labels = alert.labels();
        assert_eq!(labels["alertname"], "HoistMetricsMissing");
        assert_eq!(labels["team"], "infra");
        assert_eq!(labels["metric"], "request_rate");
        assert!(!labels.contains_key("budget"));
        let json = serde_json::to_value(&alert).unwrap();
        assert!(json.get("budget").is_none(), "{json}");
    }

    #[test]
    fn budget_alerts_are_keyed_by_budget_and_threshold() {
        let alert = Alert {
            name: AlertName::BudgetForecast,
            severity: Severity::Critical,
            status: AlertStatus::Firing,
            provider: "budgets".into(),
            group: None,
            metric: None,
            budget: Some("web-monthly".into()),
            threshold: Some("100".into()),
            period_start: Some(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()),
            summary: "s".into(),
            description: "d".into(),
            starts_at: Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap(),
            ends_at: None,
            extra_labels: BTreeMap::new(),
        };
        assert_eq!(alert.dedup_key(), "hoist/budget_forecast/web-monthly/100");
        let labels = alert.labels();
        assert_eq!(labels["alertname"], "HoistBudgetForecastThreshold");
        assert_eq!(labels["budget"], "web-monthly");
        assert_eq!(labels["threshold"], "100");
        assert_eq!(labels["period_start"], "2026-11-01T00:00:00Z");
        assert_eq!(labels["provider"], "budgets");
        assert!(!labels.contains_key("group"));
    }
}
