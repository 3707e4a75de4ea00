//! The `alerts:` section of a policy file: where alerts go (sinks), which alerts go where
//! (routes) and when each condition fires (rules). Secrets (webhook URLs, routing keys, tokens)
//! are `{env: VAR}` or `{file: PATH}`, never inline.
//!
//! ```yaml
//! alerts:
//!   sinks:
//!     ops:
//!       alertmanager: { url: "http://127.0.0.1:9093" }
//!     chat:
//!       slack: { webhook_url: { env: SLACK_WEBHOOK_URL }, repeat_interval: 4h }
//!     pager:
//!       pagerduty: { routing_key: { file: /run/secrets/pagerduty-routing-key } }
//!     audit:
//!       webhook: { url: { env: ALERT_WEBHOOK_URL } }
//!   routes:                                # no routes: every alert to every sink
//!     - sinks: [ops, chat]
//!     - sinks: [pager]
//!       min_severity: critical
//!       alerts: [scaling_action_failed, circuit_open]
//!   rules:
//!     scaling_action_failed: { after_failures: 3, severity: critical }
//!     pinned_at_max: { for: 10m }
//!     metrics_missing: { for: 5m }
//!     circuit_open: { enabled: true }
//!     budget_actual: { severity: warning, critical_at: 100 }
//!     budget_forecast: { enabled: true }
//!   labels: { team: infra }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use hoist_api::duration::HumanDuration;
use hoist_api::{Error, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Alert, AlertName, Severity};
use hoist_api::secret::SecretRef;

/// The whole `alerts:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Named sinks.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Which alerts go to which sinks. An alert goes to every sink of every matching route
    /// (once per sink); with no routes, every alert goes to every sink.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// When each condition fires.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Labels added to every alert (`team: infra`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Time limit for one delivery to one sink.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            sinks: BTreeMap::new(),
            routes: Vec::new(),
            rules: RulesConfig::default(),
            labels: BTreeMap::new(),
            timeout: default_timeout(),
        }
    }
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

/// One sink: exactly one kind key with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// An Alertmanager (v2 API, `POST /api/v2/alerts`).
    Alertmanager(AlertmanagerSinkConfig),
    /// A Slack incoming webhook.
    Slack(SlackSinkConfig),
    /// PagerDuty Events API v2.
    Pagerduty(PagerDutySinkConfig),
    /// Any HTTP endpoint that accepts a JSON `POST`.
    Webhook(WebhookSinkConfig),
}

impl SinkConfig {
    /// `alertmanager`, `slack`, `pagerduty` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Alertmanager(_) => "alertmanager",
            SinkConfig::Slack(_) => "slack",
            SinkConfig::Pagerduty(_) => "pagerduty",
            SinkConfig::Webhook(_) => "webhook",
        }
    }
}

/// Settings of an Alertmanager sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerSinkConfig {
    /// Base URL (`http://alertmanager:9093`); `/api/v2/alerts` is appended.
    pub url: String,
    /// A bearer token, when Alertmanager sits behind an authenticating proxy.
    #[serde(default)]
    pub bearer_token: Option<SecretRef>,
    /// Re-send an active alert this often (Alertmanager forgets alerts whose `endsAt` passes;
    /// Hoist sets `endsAt` to four intervals ahead). Default 1m.
    #[serde(default = "default_alertmanager_repeat")]
    pub repeat_interval: HumanDuration,
}

fn default_alertmanager_repeat() -> HumanDuration {
    HumanDuration::from_secs(60)
}

/// Settings of a Slack sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackSinkConfig {
    /// The incoming webhook URL (a secret: it carries the token).
    pub webhook_url: SecretRef,
    /// Override the webhook's channel (legacy webhooks only).
    #[serde(default)]
    pub channel: Option<String>,
    /// Override the posting name (legacy webhooks only).
    #[serde(default)]
    pub username: Option<String>,
    /// Re-post an active alert this often. Default 4h.
    #[serde(default = "default_slack_repeat")]
    pub repeat_interval: HumanDuration,
}

fn default_slack_repeat() -> HumanDuration {
    HumanDuration::from_secs(4 * 3_600)
}

/// Settings of a PagerDuty sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PagerDutySinkConfig {
    /// The integration's routing key (a secret).
    pub routing_key: SecretRef,
    /// The Events API endpoint. Default `https://events.pagerduty.com/v2/enqueue`.
    #[serde(default = "default_pagerduty_url")]
    pub url: String,
    /// Re-send an active alert this often (PagerDuty de-duplicates by key). Default 1h.
    #[serde(default = "default_hourly_repeat")]
    pub repeat_interval: HumanDuration,
}

/// The PagerDuty Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

fn default_pagerduty_url() -> String {
    PAGERDUTY_EVENTS_URL.to_owned()
}

fn default_hourly_repeat() -> HumanDuration {
    HumanDuration::from_secs(3_600)
}

/// Settings of a generic JSON webhook sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkConfig {
    /// The URL to `POST` to: a secret (`{env: VAR}` or `{file: PATH}`), as such URLs often
    /// carry a token, or a plain URL without credentials or query (`http://127.0.0.1:9000/`).
    pub url: WebhookUrl,
    /// Extra request headers, values from secrets (`Authorization: {env: HOOK_AUTH}`).
    #[serde(default)]
    pub headers: BTreeMap<String, SecretRef>,
    /// Re-send an active alert this often. Default 1h.
    #[serde(default = "default_hourly_repeat")]
    pub repeat_interval: HumanDuration,
}

/// Where a webhook sink posts: a secret, or a plain URL that carries no token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WebhookUrl {
    /// A plain URL, without credentials or query string.
    Plain(String),
    /// From a secret.
    Secret(SecretRef),
}

impl WebhookUrl {
    /// The URL. A plain one with credentials or a query string is refused (they belong in a
    /// secret, out of the policy file).
    pub fn resolve(
        &self,
        base_dir: &std::path::Path,
    ) -> hoist_api::Result<hoist_api::SecretString> {
        match self {
            WebhookUrl::Secret(secret) => secret.resolve(base_dir),
            WebhookUrl::Plain(url) => {
                let parsed = reqwest::Url::parse(url).map_err(|e| {
                    hoist_api::Error::config(format!("webhook url is not a URL: {e}"))
                })?;
                if !parsed.username().is_empty()
                    || parsed.password().is_some()
                    || parsed.query().is_some()
                {
                    return Err(hoist_api::Error::config(
                        "a webhook url with credentials or a query string must come from a secret: `url: {env: VAR}` or `url: {file: PATH}`",
                    ));
                }
                Ok(hoist_api::SecretString::new(url.clone()))
            }
        }
    }
}

/// Which alerts a route sends to its sinks. Empty filters match everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Names of sinks (keys of `sinks`).
    pub sinks: Vec<String>,
    /// Only these alerts.
    #[serde(default)]
    pub alerts: Vec<AlertName>,
    /// Only alerts at least this severe.
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Only alerts about these providers.
    #[serde(default)]
    pub providers: Vec<String>,
    /// Only alerts about these groups (group ids on their provider).
    #[serde(default)]
    pub groups: Vec<String>,
}

impl RouteConfig {
    /// Whether `alert` passes this route's filters.
    pub fn matches(&self, alert: &Alert) -> bool {
        (self.alerts.is_empty() || self.alerts.contains(&alert.name))
            && self.min_severity.is_none_or(|min| alert.severity >= min)
            && (self.providers.is_empty() || self.providers.contains(&alert.provider))
            && (self.groups.is_empty()
                || alert
                    .group
                    .as_ref()
                    .is_some_and(|g| self.groups.contains(g)))
    }
}

/// When each condition fires.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Scaling actions failing.
    #[serde(default)]
    pub scaling_action_failed: ActionFailedRule,
    /// A group pinned at its maximum while its policies want more (defaults: `for: 10m`,
    /// `severity: warning`).
    #[serde(default)]
    pub pinned_at_max: DurationRule,
    /// A metric missing, stale or invalid (defaults: `for: 5m`, `severity: warning`).
    #[serde(default)]
    pub metrics_missing: DurationRule,
    /// A provider's circuit breaker open (defaults: `for: 0`, `severity: critical`).
    #[serde(default)]
    pub circuit_open: DurationRule,
    /// A budget's spend so far crossing one of its `alert_on.actual` thresholds: fires once per
    /// threshold per period, resolves when the next period starts (defaults: `severity:
    /// warning`, `critical_at: 100`).
    #[serde(default)]
    pub budget_actual: BudgetRule,
    /// A budget's forecast spend crossing one of its `alert_on.forecast` thresholds: fires once
    /// per threshold per period, resolves when the next period starts (defaults: `severity:
    /// warning`, `critical_at: 100`).
    #[serde(default)]
    pub budget_forecast: BudgetRule,
    /// A changed policy file refused by a live reload: fires at once, resolves when a change
    /// is applied (defaults: `for: 0`, `severity: warning`; `for` is ignored).
    #[serde(default)]
    pub config_rejected: DurationRule,
}

/// The rule of a budget threshold alert. Each threshold a budget's `alert_on` lists fires once
/// per period, the first time the budget's figure reaches it; the alerts of a period resolve
/// when the next period starts. A threshold under `critical_at` (percent of the budget) fires
/// at `severity`; one at or above it is `critical`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetRule {
    /// Whether the rule runs. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Severity of thresholds under `critical_at`. Default `warning`.
    #[serde(default = "warning")]
    pub severity: Severity,
    /// Thresholds at or above this percentage of the budget fire as `critical`. Default 100.
    #[serde(default = "hundred")]
    pub critical_at: f64,
}

impl Default for BudgetRule {
    fn default() -> Self {
        BudgetRule {
            enabled: true,
            severity: Severity::Warning,
            critical_at: hundred(),
        }
    }
}

impl BudgetRule {
    /// The severity of an alert for `threshold` percent.
    pub fn severity_for(&self, threshold: f64) -> Severity {
        if threshold >= self.critical_at {
            Severity::Critical
        } else {
            self.severity
        }
    }
}

fn warning() -> Severity {
    Severity::Warning
}

fn hundred() -> f64 {
    100.0
}

/// The rule for failing scaling actions: fires after `after_failures` consecutive failures on
/// a group, resolves on the next success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionFailedRule {
    /// Whether the rule runs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Consecutive failures before firing (at least 1). Default 2.
    #[serde(default = "default_after_failures")]
    pub after_failures: u32,
    /// Default `critical`.
    #[serde(default = "critical")]
    pub severity: Severity,
}

impl Default for ActionFailedRule {
    fn default() -> Self {
        ActionFailedRule {
            enabled: true,
            after_failures: default_after_failures(),
            severity: Severity::Critical,
        }
    }
}

fn yes() -> bool {
    true
}

fn critical() -> Severity {
    Severity::Critical
}

fn default_after_failures() -> u32 {
    2
}

/// A rule that fires once its condition has held for `for` and resolves when it clears. Unset
/// fields take the condition's defaults (see [`RulesConfig`]'s fields and [`DurationRule::resolve`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DurationRule {
    /// Whether the rule runs (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// How long the condition must hold before the alert fires (`0` fires at once).
    #[serde(rename = "for", default)]
    pub for_duration: Option<HumanDuration>,
    /// How urgent the alert is.
    #[serde(default)]
    pub severity: Option<Severity>,
}

/// A [`DurationRule`] with its defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveRule {
    /// Whether the rule runs.
    pub enabled: bool,
    /// How long the condition must hold.
    pub for_duration: Duration,
    /// Severity of the alert.
    pub severity: Severity,
}

impl DurationRule {
    /// The rule with `default_for` and `default_severity` filling what is unset.
    pub fn resolve(&self, default_for: Duration, default_severity: Severity) -> EffectiveRule {
        EffectiveRule {
            enabled: self.enabled.unwrap_or(true),
            for_duration: self.for_duration.map_or(default_for, HumanDuration::get),
            severity: self.severity.unwrap_or(default_severity),
        }
    }
}

impl RulesConfig {
    /// `pinned_at_max` with its defaults: `for: 10m`, `severity: warning`.
    pub fn pinned_at_max(&self) -> EffectiveRule {
        self.pinned_at_max
            .resolve(Duration::from_secs(600), Severity::Warning)
    }

    /// `metrics_missing` with its defaults: `for: 5m`, `severity: warning`.
    pub fn metrics_missing(&self) -> EffectiveRule {
        self.metrics_missing
            .resolve(Duration::from_secs(300), Severity::Warning)
    }

    /// `config_rejected` with its defaults: `for: 0`, `severity: warning`.
    pub fn config_rejected(&self) -> EffectiveRule {
        self.config_rejected
            .resolve(Duration::ZERO, Severity::Warning)
    }

    /// `circuit_open` with its defaults: `for: 0`, `severity: critical`.
    pub fn circuit_open(&self) -> EffectiveRule {
        self.circuit_open
            .resolve(Duration::ZERO, Severity::Critical)
    }
}

impl AlertsConfig {
    /// Parses the `alerts:` value of a policy file. Errors name the field path below
    /// `alerts` ([`Error::field`]).
    pub fn from_value(value: &serde_json::Value) -> Result<Self> {
        let config = Self::parse(value)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses the `alerts:` value without [`AlertsConfig::validate`]'s checks.
    pub fn parse(value: &serde_json::Value) -> Result<Self> {
        let config: AlertsConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                Error::config(e.inner().to_string())
            } else {
                Error::config_field(path, e.inner().to_string())
            }
        })?;
        Ok(config)
    }

    /// Checks references and values without reading any secret: routes name existing sinks,
    /// URLs parse, thresholds are positive. The error names the first problem's field;
    /// [`AlertsConfig::problems`] lists them all.
    pub fn validate(&self) -> Result<()> {
        match self.problems().into_iter().next() {
            None => Ok(()),
            Some((field, message)) => Err(Error::config_field(field, message)),
        }
    }

    /// Every problem [`AlertsConfig::validate`] checks for, each as the field path below
    /// `alerts` (`routes[0].sinks`) and a message.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (index, route) in self.routes.iter().enumerate() {
            if route.sinks.is_empty() {
                problems.push((
                    format!("routes[{index}].sinks"),
                    "a route needs at least one sink".to_owned(),
                ));
            }
            for sink in &route.sinks {
                if !self.sinks.contains_key(sink) {
                    let known: Vec<&str> = self.sinks.keys().map(String::as_str).collect();
                    problems.push((
                        format!("routes[{index}].sinks"),
                        format!(
                            "unknown sink `{sink}`; defined sinks: {}",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        for (name, sink) in &self.sinks {
            let url = match sink {
                SinkConfig::Alertmanager(c) => Some(&c.url),
                SinkConfig::Pagerduty(c) => Some(&c.url),
                SinkConfig::Slack(_) | SinkConfig::Webhook(_) => None,
            };
            let field = |leaf: &str| format!("sinks.{name}.{}.{leaf}", sink.kind());
            if let Some(url) = url {
                match reqwest::Url::parse(url) {
                    Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                    Ok(u) => problems.push((
                        field("url"),
                        format!("scheme `{}` is not http or https", u.scheme()),
                    )),
                    Err(e) => problems.push((field("url"), format!("`{url}` is not a URL: {e}"))),
                }
            }
            let repeat = match sink {
                SinkConfig::Alertmanager(c) => c.repeat_interval,
                SinkConfig::Slack(c) => c.repeat_interval,
                SinkConfig::Pagerduty(c) => c.repeat_interval,
                SinkConfig::Webhook(c) => c.repeat_interval,
            };
            if repeat.get() < Duration::from_secs(1) {
                problems.push((field("repeat_interval"), "must be at least 1s".to_owned()));
            }
        }
        if self.rules.scaling_action_failed.after_failures == 0 {
            problems.push((
                "rules.scaling_action_failed.after_failures".to_owned(),
                "must be at least 1".to_owned(),
            ));
        }
        for (name, rule) in [
            ("budget_actual", &self.rules.budget_actual),
            ("budget_forecast", &self.rules.budget_forecast),
        ] {
            if !rule.critical_at.is_finite() || rule.critical_at < 0.0 {
                problems.push((
                    format!("rules.{name}.critical_at"),
                    "must be a percentage, 0 or more".to_owned(),
                ));
            }
        }
        if self.timeout.get().is_zero() {
            problems.push(("timeout".to_owned(), "must be more than 0".to_owned()));
        }
        problems
    }

    /// The JSON Schema of the section, for editors and `hoist schema`.
    pub fn json_schema() -> schemars::Schema {
        schemars::schema_for!(AlertsConfig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> serde_json::Value {
        serde_saphyr::from_str(text).unwrap()
    }

    #[test]
    fn parses_the_documented_example_with_defaults() {
        let value = yaml(
            r#"
sinks:
  ops:
    alertmanager: { url: "http://127.0.0.1:9093" }
  chat:
    slack: { webhook_url: { env: SLACK_WEBHOOK_URL }, repeat_interval: 4h }
  pager:
    pagerduty: { routing_key: { file: /run/secrets/pd } }
  audit:
    webhook: { url: { env: HOOK }, headers: { Authorization: { env: HOOK_AUTH } } }
routes:
  - sinks: [ops, chat]
  - sinks: [pager]
    min_severity: critical
    alerts: [scaling_action_failed, circuit_open]
rules:
  pinned_at_max: { for: 15m }
  metrics_missing: { for: 0s, severity: critical }
  budget_forecast: { severity: info, critical_at: 120 }
labels: { team: infra }
"#,
        );
        let config = AlertsConfig::from_value(&value).unwrap();
        assert_eq!(config.sinks.len(), 4);
        assert_eq!(
            config.rules.pinned_at_max().for_duration,
            Duration::from_secs(900)
        );
        assert_eq!(config.rules.pinned_at_max().severity, Severity::Warning);
        assert_eq!(config.rules.metrics_missing().severity, Severity::Critical);
        assert_eq!(config.rules.metrics_missing().for_duration, Duration::ZERO);
        assert_eq!(config.rules.circuit_open().severity, Severity::Critical);
        assert!(config.rules.circuit_open().enabled);
        assert_eq!(config.rules.scaling_action_failed.after_failures, 2);
        // Budget rules: defaults, and the configured escalation point.
        assert!(config.rules.budget_actual.enabled);
        assert_eq!(
            config.rules.budget_actual.severity_for(80.0),
            Severity::Warning
        );
        assert_eq!(
            config.rules.budget_actual.severity_for(100.0),
            Severity::Critical
        );
        assert_eq!(
            config.rules.budget_forecast.severity_for(100.0),
            Severity::Info
        );
        assert_eq!(
            config.rules.budget_forecast.severity_for(120.0),
            Severity::Critical
        );
        match &config.sinks["pager"] {
            SinkConfig::Pagerduty(p) => assert_eq!(p.url, PAGERDUTY_EVENTS_URL),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(config.routes[1].min_severity, Some(Severity::Critical));
    }

    #[test]
    fn inline_secrets_and_unknown_fields_are_rejected_with_a_path() {
        let err = AlertsConfig::from_value(&yaml(
            "sinks:\n  chat:\n    slack: { webhook_url: \"https://hooks.slack.com/services/T/B/X\" }\n",
        ))
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.field(), Some("sinks.chat.slack.webhook_url"), "{text}");
        assert!(
            !text.contains("hooks.slack.com"),
            "the secret leaked: {text}"
        );

        let err = AlertsConfig::from_value(&yaml("rules:\n  pinned_at_max: { after: 5m }\n"))
            .unwrap_err();
        assert!(
            err.field()
                .is_some_and(|f| f.starts_with("rules.pinned_at_max")),
            "{err}"
        );
    }

    #[test]
    fn routes_must_name_defined_sinks() {
        let err = AlertsConfig::from_value(&yaml(
            "sinks:\n  ops: { alertmanager: { url: \"http://am:9093\" } }\nroutes:\n  - sinks: [opz]\n",
        ))
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.field(), Some("routes[0].sinks"), "{text}");
        assert!(text.contains("unknown sink `opz`"), "{text}");
        assert!(text.contains("ops"), "{text}");
        let err = AlertsConfig::from_value(&yaml(
            "sinks:\n  ops: { alertmanager: { url: \"ftp://am\" } }\n",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("scheme `ftp`"), "{err}");
    }

    #[test]
    fn route_filters() {
        let alert = Alert {
            name: AlertName::PinnedAtMax,
            severity: Severity::Warning,
            status: super::super::AlertStatus::Firing,
            provider: "aws".into(),
            group: Some("web".into()),
            metric: None,
            budget: None,
            threshold: None,
            period_start: None,
            summary: String::new(),
            description: String::new(),
            starts_at: chrono::Utc::now(),
            ends_at: None,
            extra_labels: BTreeMap::new(),
        };
        let all = RouteConfig {
            sinks: vec!["x".into()],
            alerts: vec![],
            min_severity: None,
            providers: vec![],
            groups: vec![],
        };
        assert!(all.matches(&alert));
        assert!(
            !RouteConfig {
                min_severity: Some(Severity::Critical),
                ..all.clone()
            }
            .matches(&alert)
        );
        assert!(
            !RouteConfig {
                alerts: vec![AlertName::CircuitOpen],
                ..all.clone()
            }
            .matches(&alert)
        );
        assert!(
            RouteConfig {
                groups: vec!["web".into()],
                ..all.clone()
            }
            .matches(&alert)
        );
        assert!(
            !RouteConfig {
                providers: vec!["gcp".into()],
                ..all
            }
            .matches(&alert)
        );
    }

    #[test]
    fn schema_is_generated() {
        let schema = serde_json::to_string(&AlertsConfig::json_schema()).unwrap();
        assert!(schema.contains("repeat_interval"));
        assert!(schema.contains("after_failures"));
        assert!(schema.contains("budget_forecast"));
        assert!(schema.contains("critical_at"));
    }

    #[test]
    fn budget_rules_parse_and_reject_bad_values() {
        let config = AlertsConfig::from_value(&yaml(
            "rules:\n  budget_actual: { enabled: false }\n  budget_forecast: { critical_at: 90 }\n",
        ))
        .unwrap();
        assert!(!config.rules.budget_actual.enabled);
        assert_eq!(config.rules.budget_forecast.critical_at, 90.0);
        let err = AlertsConfig::from_value(&yaml("rules:\n  budget_actual: { critical_at: -5 }\n"))
            .unwrap_err();
        assert_eq!(
            err.field(),
            Some("rules.budget_actual.critical_at"),
            "{err}"
        );
        let err = AlertsConfig::from_value(&yaml("rules:\n  budget_forecast: { for: 5m }\n"))
            .unwrap_err();
        assert!(
            err.field()
                .is_some_and(|f| f.starts_with("rules.budget_forecast")),
            "{err}"
        );
        let route: RouteConfig = serde_json::from_value(serde_json::json!({
            "sinks": ["x"], "alerts": ["budget_actual", "budget_forecast"]
        }))
        .unwrap();
        assert_eq!(
            route.alerts,
            [AlertName::BudgetActual, AlertName::BudgetForecast]
        );
    }
}
