//! Where alerts go: the Alertmanager v2 API, Slack incoming webhooks, PagerDuty Events v2 and a
//! generic JSON webhook. Each sink turns an [`Alert`] into its service's payload (the
//! `*_payload` functions, tested for shape) and `POST`s it. Secret URLs and keys never appear in
//! errors or logs: transport errors are stripped of their URL, and messages name the sink, not
//! the address.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use hoist_api::{Error, ErrorKind, Result};
use serde_json::{Value, json};

use super::config::{AlertsConfig, SinkConfig};
use super::{Alert, AlertStatus, Severity};
use hoist_api::secret::SecretString;

/// Delivers alerts to one destination.
#[async_trait]
pub trait AlertSink: Send + Sync + Debug + 'static {
    /// The sink's name in the configuration.
    fn name(&self) -> &str;

    /// `alertmanager`, `slack`, `pagerduty`, `webhook`, or a custom kind.
    fn kind(&self) -> &'static str;

    /// How often an active alert is sent again.
    fn repeat_interval(&self) -> Duration;

    /// Sends one firing or resolved alert.
    async fn deliver(&self, alert: &Alert) -> Result<()>;
}

/// Builds every configured sink, resolving its secrets (relative secret files against
/// `base_dir`). Errors name the sink and the secret's source, never its value.
pub fn build_sinks(
    config: &AlertsConfig,
    base_dir: &Path,
) -> Result<BTreeMap<String, Arc<dyn AlertSink>>> {
    let client = reqwest::Client::builder()
        .timeout(config.timeout.get())
        .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::config(format!("alerts: cannot build the HTTP client: {e}")))?;
    let mut sinks: BTreeMap<String, Arc<dyn AlertSink>> = BTreeMap::new();
    for (name, sink) in &config.sinks {
        let in_sink = |e: Error| {
            Error::config(format!(
                "alerts.sinks.{name}.{}: {}",
                sink.kind(),
                e.message()
            ))
        };
        let built: Arc<dyn AlertSink> = match sink {
            SinkConfig::Alertmanager(c) => Arc::new(AlertmanagerSink {
                name: name.clone(),
                client: client.clone(),
                url: format!("{}/api/v2/alerts", c.url.trim_end_matches('/')),
                bearer_token: c
                    .bearer_token
                    .as_ref()
                    .map(|s| s.resolve(base_dir))
                    .transpose()
                    .map_err(in_sink)?,
                repeat_interval: c.repeat_interval.get(),
            }),
            SinkConfig::Slack(c) => Arc::new(SlackSink {
                name: name.clone(),
                client: client.clone(),
                webhook_url: c.webhook_url.resolve(base_dir).map_err(in_sink)?,
                channel: c.channel.clone(),
                username: c.username.clone(),
                repeat_interval: c.repeat_interval.get(),
            }),
            SinkConfig::Pagerduty(c) => Arc::new(PagerDutySink {
                name: name.clone(),
                client: client.clone(),
                url: c.url.clone(),
                routing_key: c.routing_key.resolve(base_dir).map_err(in_sink)?,
                repeat_interval: c.repeat_interval.get(),
            }),
            SinkConfig::Webhook(c) => {
                let mut headers = Vec::new();
                for (header, secret) in &c.headers {
                    let value = secret.resolve(base_dir).map_err(in_sink)?;
                    reqwest::header::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                        Error::config(format!(
                            "alerts.sinks.{name}.webhook.headers: `{header}` is not a valid header name"
                        ))
                    })?;
                    headers.push((header.clone(), value));
                }
                Arc::new(WebhookSink {
                    name: name.clone(),
                    client: client.clone(),
                    url: c.url.resolve(base_dir).map_err(in_sink)?,
                    headers,
                    repeat_interval: c.repeat_interval.get(),
                })
            }
        };
        sinks.insert(name.clone(), built);
    }
    Ok(sinks)
}

/// How a `POST` went wrong, as Hoist's error, without the URL when it is secret.
async fn post_json(
    request: reqwest::RequestBuilder,
    body: &Value,
    sink: &str,
    kind: &str,
) -> Result<()> {
    let context = |message: String, error_kind: ErrorKind| {
        Error::new(error_kind, format!("alert sink {sink} ({kind}): {message}"))
            .with_operation("deliver_alert")
    };
    let response = request.json(body).send().await.map_err(|e| {
        let error_kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Transient
        };
        // `without_url` keeps secret webhook URLs out of the message.
        context(format!("request failed: {}", e.without_url()), error_kind)
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let excerpt: String = text.chars().take(300).collect();
    let error_kind = match status.as_u16() {
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::Throttled,
        400..=499 => ErrorKind::InvalidInput,
        _ => ErrorKind::Transient,
    };
    Err(context(
        format!("HTTP {status}: {}", excerpt.trim()),
        error_kind,
    ))
}

/// The Alertmanager v2 `POST /api/v2/alerts` body for one alert: a one-element array with
/// `labels`, `annotations`, `startsAt` and `endsAt`. A firing alert's `endsAt` is
/// `now + 4 × repeat_interval` (at least 5 minutes), so Alertmanager resolves it by itself if
/// Hoist stops re-sending; a resolved alert's `endsAt` is when it cleared.
pub fn alertmanager_payload(alert: &Alert, now: DateTime<Utc>, repeat_interval: Duration) -> Value {
    let horizon = TimeDelta::from_std(repeat_interval * 4)
        .unwrap_or(TimeDelta::MAX)
        .max(TimeDelta::minutes(5));
    let ends_at = match alert.status {
        AlertStatus::Firing => now + horizon,
        AlertStatus::Resolved => alert.ends_at.unwrap_or(now),
    };
    json!([{
        "labels": alert.labels(),
        "annotations": {
            "summary": alert.summary,
            "description": alert.description,
            "dedup_key": alert.dedup_key(),
        },
        "startsAt": alert.starts_at.to_rfc3339(),
        "endsAt": ends_at.to_rfc3339(),
    }])
}

/// An Alertmanager.
#[derive(Debug)]
pub struct AlertmanagerSink {
    name: String,
    client: reqwest::Client,
    url: String,
    bearer_token: Option<SecretString>,
    repeat_interval: Duration,
}

#[async_trait]
impl AlertSink for AlertmanagerSink {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "alertmanager"
    }
    fn repeat_interval(&self) -> Duration {
        self.repeat_interval
    }
    async fn deliver(&self, alert: &Alert) -> Result<()> {
        let body = alertmanager_payload(alert, Utc::now(), self.repeat_interval);
        let mut request = self.client.post(&self.url);
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token.expose());
        }
        post_json(request, &body, &self.name, self.kind()).await
    }
}

/// The Slack incoming-webhook body: a `text` line and one coloured attachment with the
/// description and the subject as fields.
pub fn slack_payload(alert: &Alert, channel: Option<&str>, username: Option<&str>) -> Value {
    let (tag, color) = match (alert.status, alert.severity) {
        (AlertStatus::Resolved, _) => ("RESOLVED", "#2eb886"),
        (AlertStatus::Firing, Severity::Critical) => ("FIRING", "#d63232"),
        (AlertStatus::Firing, Severity::Warning) => ("FIRING", "#daa038"),
        (AlertStatus::Firing, Severity::Info) => ("FIRING", "#439fe0"),
    };
    let mut fields = vec![
        json!({"title": "Severity", "value": alert.severity.as_str(), "short": true}),
        json!({"title": "Provider", "value": alert.provider, "short": true}),
    ];
    if let Some(group) = &alert.group {
        fields.push(json!({"title": "Group", "value": group, "short": true}));
    }
    if let Some(metric) = &alert.metric {
        fields.push(json!({"title": "Metric", "value": metric, "short": true}));
    }
    if let Some(budget) = &alert.budget {
        fields.push(json!({"title": "Budget", "value": budget, "short": true}));
    }
    if let Some(threshold) = &alert.threshold {
        fields
            .push(json!({"title": "Threshold", "value": format!("{threshold} %"), "short": true}));
    }
    let mut body = json!({
        "text": format!("[{tag}] {}", alert.summary),
        "attachments": [{
            "color": color,
            "title": alert.summary,
            "text": alert.description,
            "fields": fields,
            "footer": format!("hoist · {}", alert.dedup_key()),
            "ts": alert.ends_at.unwrap_or(alert.starts_at).timestamp(),
        }],
    });
    if let Some(channel) = channel {
        body["channel"] = json!(channel);
    }
    if let Some(username) = username {
        body["username"] = json!(username);
    }
    body
}

/// A Slack incoming webhook.
#[derive(Debug)]
pub struct SlackSink {
    name: String,
    client: reqwest::Client,
    webhook_url: SecretString,
    channel: Option<String>,
    username: Option<String>,
    repeat_interval: Duration,
}

#[async_trait]
impl AlertSink for SlackSink {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "slack"
    }
    fn repeat_interval(&self) -> Duration {
        self.repeat_interval
    }
    async fn deliver(&self, alert: &Alert) -> Result<()> {
        let body = slack_payload(alert, self.channel.as_deref(), self.username.as_deref());
        let request = self.client.post(self.webhook_url.expose());
        post_json(request, &body, &self.name, self.kind()).await
    }
}

/// The PagerDuty Events API v2 body: `trigger` with a payload for a firing alert, `resolve`
/// with only the key for a resolved one; `dedup_key` is the alert's stable key.
pub fn pagerduty_payload(alert: &Alert, routing_key: &str) -> Value {
    match alert.status {
        AlertStatus::Resolved => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": alert.dedup_key(),
        }),
        AlertStatus::Firing => {
            let summary: String = alert.summary.chars().take(1024).collect();
            json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": alert.dedup_key(),
                "client": "Hoist",
                "payload": {
                    "summary": summary,
                    "source": format!("hoist/{}", alert.provider),
                    "severity": alert.severity.as_str(),
                    "timestamp": alert.starts_at.to_rfc3339(),
                    "component": alert
                        .group
                        .clone()
                        .or_else(|| alert.budget.clone())
                        .unwrap_or_else(|| alert.provider.clone()),
                    "group": alert.provider,
                    "class": alert.name.as_str(),
                    "custom_details": {
                        "description": alert.description,
                        "labels": alert.labels(),
                    },
                },
            })
        }
    }
}

/// PagerDuty Events API v2.
#[derive(Debug)]
pub struct PagerDutySink {
    name: String,
    client: reqwest::Client,
    url: String,
    routing_key: SecretString,
    repeat_interval: Duration,
}

#[async_trait]
impl AlertSink for PagerDutySink {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "pagerduty"
    }
    fn repeat_interval(&self) -> Duration {
        self.repeat_interval
    }
    async fn deliver(&self, alert: &Alert) -> Result<()> {
        let body = pagerduty_payload(alert, self.routing_key.expose());
        post_json(self.client.post(&self.url), &body, &self.name, self.kind()).await
    }
}

/// The generic webhook body, version `1`: `status`, `dedup_key`, `labels` and the whole alert.
pub fn webhook_payload(alert: &Alert) -> Value {
    json!({
        "version": "1",
        "source": "hoist",
        "status": alert.status.as_str(),
        "dedup_key": alert.dedup_key(),
        "labels": alert.labels(),
        "alert": alert,
    })
}

/// Any endpoint that accepts JSON.
#[derive(Debug)]
pub struct WebhookSink {
    name: String,
    client: reqwest::Client,
    url: SecretString,
    headers: Vec<(String, SecretString)>,
    repeat_interval: Duration,
}

#[async_trait]
impl AlertSink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "webhook"
    }
    fn repeat_interval(&self) -> Duration {
        self.repeat_interval
    }
    async fn deliver(&self, alert: &Alert) -> Result<()> {
        let mut request = self.client.post(self.url.expose());
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.expose());
        }
        post_json(request, &webhook_payload(alert), &self.name, self.kind()).await
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::alerts::AlertName;
    use crate::testing::RecordingReceiver;

    fn alert(status: AlertStatus) -> Alert {
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        Alert {
            name: AlertName::PinnedAtMax,
            severity: Severity::Warning,
            status,
            provider: "aws".into(),
            group: Some("web".into()),
            metric: None,
            budget: None,
            threshold: None,
            period_start: None,
            summary: "aws/web pinned at its maximum of 10 instances".into(),
            description: "Group web is held at 10 while its policies ask for 14".into(),
            starts_at: start,
            ends_at: (status == AlertStatus::Resolved).then(|| start + TimeDelta::minutes(30)),
            extra_labels: BTreeMap::from([("team".to_owned(), "infra".to_owned())]),
        }
    }

    fn config_with(dir: &Path, sinks_yaml: &str) -> AlertsConfig {
        let value: Value = serde_saphyr::from_str(sinks_yaml).unwrap();
        let _ = dir;
        AlertsConfig::from_value(&value).unwrap()
    }

    fn secret_file(dir: &Path, name: &str, value: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        path.display().to_string()
    }

    #[tokio::test]
    async fn alertmanager_sink_posts_v2_alerts() {
        let receiver = RecordingReceiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let token = secret_file(dir.path(), "token", "am-token-123");
        let config = config_with(
            dir.path(),
            &format!(
                "sinks:\n  am:\n    alertmanager: {{ url: \"{}/\", bearer_token: {{ file: \"{token}\" }} }}\n",
                receiver.url()
            ),
        );
        let sinks = build_sinks(&config, dir.path()).unwrap();
        sinks["am"]
            .deliver(&alert(AlertStatus::Firing))
            .await
            .unwrap();
        sinks["am"]
            .deliver(&alert(AlertStatus::Resolved))
            .await
            .unwrap();
        let requests = receiver.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].path, "/api/v2/alerts");
        assert_eq!(requests[0].headers["authorization"], "Bearer am-token-123");
        let firing = requests[0].json();
        assert_eq!(firing[0]["labels"]["alertname"], "HoistGroupPinnedAtMax");
        assert_eq!(firing[0]["labels"]["group"], "web");
        assert_eq!(firing[0]["labels"]["team"], "infra");
        assert_eq!(firing[0]["startsAt"], "2026-03-01T12:00:00+00:00");
        let ends: DateTime<Utc> = firing[0]["endsAt"].as_str().unwrap().parse().unwrap();
        assert!(ends > Utc::now(), "a firing alert ends in the future");
        let resolved = requests[1].json();
        assert_eq!(resolved[0]["endsAt"], "2026-03-01T12:30:00+00:00");
        assert_eq!(resolved[0]["labels"], firing[0]["labels"]);
    }

    #[tokio::test]
    async fn slack_sink_posts_text_and_attachment() {
        let receiver = RecordingReceiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let url = secret_file(
            dir.path(),
            "slack",
            &format!("{}/services/T0/B0/SECRET", receiver.url()),
        );
        let config = config_with(
            dir.path(),
            &format!(
                "sinks:\n  chat:\n    slack: {{ webhook_url: {{ file: \"{url}\" }}, channel: \"#ops\" }}\n"
            ),
        );
        let sinks = build_sinks(&config, dir.path()).unwrap();
        assert!(!format!("{:?}", sinks["chat"]).contains("SECRET"));
        sinks["chat"]
            .deliver(&alert(AlertStatus::Firing))
            .await
            .unwrap();
        let request = &receiver.requests()[0];
        assert_eq!(request.path, "/services/T0/B0/SECRET");
        let body = request.json();
        assert_eq!(
            body["text"],
            "[FIRING] aws/web pinned at its maximum of 10 instances"
        );
        assert_eq!(body["channel"], "#ops");
        assert_eq!(body["attachments"][0]["color"], "#daa038");
        assert_eq!(body["attachments"][0]["fields"][2]["value"], "web");
        assert_eq!(
            body["attachments"][0]["footer"],
            "hoist · hoist/pinned_at_max/aws/web"
        );
    }

    #[tokio::test]
    async fn pagerduty_sink_triggers_and_resolves_with_the_dedup_key() {
        let receiver = RecordingReceiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let key = secret_file(dir.path(), "pd", "R0UTINGKEY");
        let config = config_with(
            dir.path(),
            &format!(
                "sinks:\n  pager:\n    pagerduty: {{ routing_key: {{ file: \"{key}\" }}, url: \"{}/v2/enqueue\" }}\n",
                receiver.url()
            ),
        );
        receiver.set_status(202);
        let sinks = build_sinks(&config, dir.path()).unwrap();
        sinks["pager"]
            .deliver(&alert(AlertStatus::Firing))
            .await
            .unwrap();
        sinks["pager"]
            .deliver(&alert(AlertStatus::Resolved))
            .await
            .unwrap();
        let requests = receiver.requests();
        let trigger = requests[0].json();
        assert_eq!(requests[0].path, "/v2/enqueue");
        assert_eq!(trigger["routing_key"], "R0UTINGKEY");
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(trigger["dedup_key"], "hoist/pinned_at_max/aws/web");
        assert_eq!(trigger["payload"]["severity"], "warning");
        assert_eq!(trigger["payload"]["source"], "hoist/aws");
        let resolve = requests[1].json();
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
        assert!(resolve.get("payload").is_none());
    }

    #[tokio::test]
    async fn webhook_sink_sends_headers_and_the_alert() {
        let receiver = RecordingReceiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let url = secret_file(
            dir.path(),
            "url",
            &format!("{}/hook?token=abc", receiver.url()),
        );
        let auth = secret_file(dir.path(), "auth", "Bearer hook-secret");
        let config = config_with(
            dir.path(),
            &format!(
                "sinks:\n  hook:\n    webhook: {{ url: {{ file: \"{url}\" }}, headers: {{ Authorization: {{ file: \"{auth}\" }} }} }}\n"
            ),
        );
        let sinks = build_sinks(&config, dir.path()).unwrap();
        sinks["hook"]
            .deliver(&alert(AlertStatus::Resolved))
            .await
            .unwrap();
        let request = &receiver.requests()[0];
        assert_eq!(request.path, "/hook");
        assert_eq!(request.headers["authorization"], "Bearer hook-secret");
        let body = request.json();
        assert_eq!(body["version"], "1");
        assert_eq!(body["status"], "resolved");
        assert_eq!(body["dedup_key"], "hoist/pinned_at_max/aws/web");
        assert_eq!(body["alert"]["group"], "web");
        assert_eq!(body["alert"]["ends_at"], "2026-03-01T12:30:00Z");
    }

    #[tokio::test]
    async fn failures_map_to_kinds_and_never_show_the_secret_url() {
        let receiver = RecordingReceiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let url = secret_file(
            dir.path(),
            "slack",
            &format!("{}/services/T0/B0/SECRET", receiver.url()),
        );
        let config = config_with(
            dir.path(),
            &format!("sinks:\n  chat:\n    slack: {{ webhook_url: {{ file: \"{url}\" }} }}\n"),
        );
        let sinks = build_sinks(&config, dir.path()).unwrap();
        receiver.set_status(429);
        let err = sinks["chat"]
            .deliver(&alert(AlertStatus::Firing))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Throttled);
        receiver.set_status(403);
        let err = sinks["chat"]
            .deliver(&alert(AlertStatus::Firing))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        receiver.set_status(500);
        let err = sinks["chat"]
            .deliver(&alert(AlertStatus::Firing))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert!(!err.to_string().contains("SECRET"), "{err}");
        // Connection refused: the transport error must not carry the URL either.
        let addr = receiver.url();
        drop(receiver);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = addr;
        let err = sinks["chat"]
            .deliver(&alert(AlertStatus::Firing))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert!(!err.to_string().contains("SECRET"), "{err}");
        assert!(err.to_string().contains("alert sink chat (slack)"), "{err}");
    }

    #[test]
    fn missing_secret_names_the_sink_and_variable() {
        let value: Value = serde_saphyr::from_str(
            "sinks:\n  pager:\n    pagerduty: { routing_key: { env: HOIST_TEST_UNSET_ROUTING_KEY } }\n",
        )
        .unwrap();
        let config = AlertsConfig::from_value(&value).unwrap();
        let err = build_sinks(&config, Path::new(".")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("alerts.sinks.pager.pagerduty"), "{text}");
        assert!(text.contains("HOIST_TEST_UNSET_ROUTING_KEY"), "{text}");
    }
}
