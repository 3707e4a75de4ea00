//! [`PrometheusSource`]: PromQL instant and range queries over the Prometheus HTTP API, and the
//! [`MetricsSource`] that answers a policy's metric queries with them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hoist_api::{
    Error, ErrorKind, MetricKind, MetricQuery, MetricsCapabilities, MetricsSource, RangeQuery,
    Result, Sample, TimeRange, TimeSeries,
};
use hoist_api::{SecretRef, SecretString};
use serde::Deserialize;

use crate::settings::PrometheusSettings;

/// The built-in PromQL per signal when neither the policy nor the settings give one.
/// `{group}` is the group id, `{group_label}` the configured label (default `group`).
pub const BUILTIN_QUERIES: &[(&str, &str)] = &[
    (
        "utilization",
        r#"1 - avg(rate(node_cpu_seconds_total{mode="idle",{group_label}="{group}"}[2m]))"#,
    ),
    (
        "request_rate",
        r#"sum(rate(http_requests_total{{group_label}="{group}"}[2m]))"#,
    ),
    (
        "latency_p95",
        r#"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{group_label}="{group}"}[5m])))"#,
    ),
    (
        "latency_p99",
        r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{group_label}="{group}"}[5m])))"#,
    ),
    (
        "error_rate",
        r#"sum(rate(http_requests_total{{group_label}="{group}",code=~"5.."}[2m])) / sum(rate(http_requests_total{{group_label}="{group}"}[2m]))"#,
    ),
];

/// Where the bearer token comes from.
#[derive(Debug, Clone)]
enum Token {
    Static(SecretString),
    /// Re-read on every query (rotated service-account tokens).
    File(PathBuf),
}

/// A Prometheus server as a [`MetricsSource`].
///
/// A metric query's PromQL is, in order: the policy's expression
/// ([`MetricQuery::expression`]), the per-group template, the per-signal template, the built-in
/// query ([`BUILTIN_QUERIES`]). `{group}` in it becomes the group id, escaped for a PromQL
/// string (so write it inside quotes: `{service="{group}"}`).
///
/// Errors, by [`ErrorKind`], so the engine can hold and say why:
///
/// | what | kind | retryable |
/// |---|---|---|
/// | Prometheus rejects the query (`bad_data`, `execution`), with its message | `InvalidInput` | no |
/// | no series matched, only NaN samples, or every series stale | `NotFound` | no |
/// | no PromQL for the signal | `Config` | no |
/// | HTTP 401/403 | `PermissionDenied` | no |
/// | HTTP 429 | `Throttled` | yes |
/// | query timeout (client or Prometheus `timeout`) | `Timeout` | yes |
/// | connection failure, 5xx, `unavailable`, an unreadable reply | `Transient` | yes |
///
/// ```no_run
/// # async fn demo() -> hoist_api::Result<()> {
/// use std::time::Duration;
/// use hoist_prometheus::PrometheusSource;
///
/// let prom = PrometheusSource::builder("http://127.0.0.1:9090")
///     .timeout(Duration::from_secs(5))
///     .query("request_rate", r#"sum(rate(http_requests_total{service="{group}"}[2m]))"#)
///     .build()?;
/// let up = prom.query_instant("up", None).await?;
/// # let _ = up; Ok(()) }
/// ```
#[derive(Clone)]
pub struct PrometheusSource {
    client: reqwest::Client,
    base_url: String,
    timeout: Duration,
    staleness: Duration,
    token: Option<Token>,
    group_label: String,
    queries: BTreeMap<String, String>,
    groups: BTreeMap<String, BTreeMap<String, String>>,
}

impl fmt::Debug for PrometheusSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusSource")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("staleness", &self.staleness)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("group_label", &self.group_label)
            .field("queries", &self.queries)
            .field("groups", &self.groups)
            .finish()
    }
}

impl fmt::Display for PrometheusSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prometheus({})", self.base_url)
    }
}

/// Builds a [`PrometheusSource`].
#[derive(Debug, Clone)]
pub struct PrometheusSourceBuilder {
    base_url: String,
    timeout: Duration,
    staleness: Duration,
    token: Option<Token>,
    group_label: String,
    queries: BTreeMap<String, String>,
    groups: BTreeMap<String, BTreeMap<String, String>>,
}

impl PrometheusSourceBuilder {
    /// Time limit of one query (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Age beyond which (plus one step) a series' newest sample is stale (default 5 min).
    pub fn staleness(mut self, staleness: Duration) -> Self {
        self.staleness = staleness;
        self
    }

    /// A bearer token sent with every query.
    pub fn bearer_token(mut self, token: SecretString) -> Self {
        self.token = Some(Token::Static(token));
        self
    }

    /// A bearer token read from `path` on every query.
    pub fn bearer_token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token = Some(Token::File(path.into()));
        self
    }

    /// The label built-in queries select groups by (default `group`).
    pub fn group_label(mut self, label: impl Into<String>) -> Self {
        self.group_label = label.into();
        self
    }

    /// The PromQL template for `signal` (`request_rate`, ... or a custom name) on every group.
    pub fn query(mut self, signal: impl Into<String>, promql: impl Into<String>) -> Self {
        self.queries.insert(signal.into(), promql.into());
        self
    }

    /// The PromQL template for `signal` on one group.
    pub fn group_query(
        mut self,
        group: impl Into<String>,
        signal: impl Into<String>,
        promql: impl Into<String>,
    ) -> Self {
        self.groups
            .entry(group.into())
            .or_default()
            .insert(signal.into(), promql.into());
        self
    }

    /// Builds the source; fails with [`ErrorKind::Config`] on a bad URL or durations.
    pub fn build(self) -> Result<PrometheusSource> {
        let settings = PrometheusSettings {
            url: self.base_url.clone(),
            timeout: self.timeout.into(),
            staleness: self.staleness.into(),
            bearer_token: None,
            group_label: self.group_label.clone(),
            queries: self.queries.clone(),
            groups: self.groups.clone(),
        };
        settings.validate()?;
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::config(format!("prometheus: cannot build the HTTP client: {e}")))?;
        Ok(PrometheusSource {
            client,
            base_url: self.base_url.trim_end_matches('/').to_owned(),
            timeout: self.timeout,
            staleness: self.staleness,
            token: self.token,
            group_label: self.group_label,
            queries: self.queries,
            groups: self.groups,
        })
    }
}

/// Builds a [`PrometheusSource`] from a policy file's `prometheus:` settings (see
/// [`PrometheusSettings`]); relative token files resolve against the working directory.
pub fn metrics_source_from_settings(settings: &serde_json::Value) -> Result<PrometheusSource> {
    metrics_source_from_settings_in(settings, Path::new("."))
}

/// As [`metrics_source_from_settings`], resolving relative token files against `base_dir`
/// (the policy file's directory).
pub fn metrics_source_from_settings_in(
    settings: &serde_json::Value,
    base_dir: &Path,
) -> Result<PrometheusSource> {
    let settings = PrometheusSettings::from_value(settings)?;
    let mut builder = PrometheusSource::builder(&settings.url)
        .timeout(settings.timeout.get())
        .staleness(settings.staleness.get())
        .group_label(&settings.group_label);
    builder.queries = settings.queries;
    builder.groups = settings.groups;
    match settings.bearer_token {
        Some(SecretRef::File(path)) => {
            let full = if path.is_absolute() {
                path
            } else {
                base_dir.join(path)
            };
            // Read once now so a missing file fails at start-up, not at the first query.
            SecretRef::File(full.clone())
                .resolve(base_dir)
                .map_err(|e| Error::config_field("bearer_token", e.message()))?;
            builder = builder.bearer_token_file(full);
        }
        Some(secret @ SecretRef::Env(_)) => {
            let token = secret
                .resolve(base_dir)
                .map_err(|e| Error::config_field("bearer_token", e.message()))?;
            builder = builder.bearer_token(token);
        }
        None => {}
    }
    builder.build()
}

/// One reply of the Prometheus HTTP API.
#[derive(Debug, Deserialize)]
struct ApiReply {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum ApiData {
    Matrix(Vec<MatrixSeries>),
    Vector(Vec<VectorSample>),
    Scalar((f64, String)),
    String(serde::de::IgnoredAny),
}

#[derive(Debug, Deserialize)]
struct MatrixSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

#[derive(Debug, Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    value: Option<(f64, String)>,
}

/// The largest reply read from Prometheus, bytes: about a million samples.
pub const MAX_REPLY_BYTES: usize = 64 << 20;

/// `"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"` as Prometheus writes sample values.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

fn timestamp(seconds: f64) -> Option<DateTime<Utc>> {
    let millis = (seconds * 1000.0).round();
    if !millis.is_finite() {
        return None;
    }
    Utc.timestamp_millis_opt(millis as i64).single()
}

fn sample(point: &(f64, String)) -> Result<Sample> {
    let at = timestamp(point.0)
        .ok_or_else(|| Error::transient(format!("bad sample timestamp {}", point.0)))?;
    let value = parse_value(&point.1)
        .ok_or_else(|| Error::transient(format!("bad sample value `{}`", point.1)))?;
    Ok(Sample { at, value })
}

/// A PromQL string literal's content for `text` (quotes and backslashes escaped).
fn escape_label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl PrometheusSource {
    /// A builder for the Prometheus HTTP API at `base_url`.
    pub fn builder(base_url: impl Into<String>) -> PrometheusSourceBuilder {
        PrometheusSourceBuilder {
            base_url: base_url.into(),
            timeout: Duration::from_secs(10),
            staleness: Duration::from_secs(300),
            token: None,
            group_label: "group".to_owned(),
            queries: BTreeMap::new(),
            groups: BTreeMap::new(),
        }
    }

    /// The PromQL this source runs for `query`, with `{group}` substituted.
    pub fn promql_for(&self, query: &MetricQuery) -> Result<String> {
        let signal = query.metric.name();
        let template = query
            .expression
            .clone()
            .or_else(|| {
                self.groups
                    .get(&query.group)
                    .and_then(|q| q.get(signal))
                    .cloned()
            })
            .or_else(|| self.queries.get(signal).cloned())
            .or_else(|| {
                BUILTIN_QUERIES
                    .iter()
                    .find(|(name, _)| *name == signal)
                    .map(|(_, q)| q.replace("{group_label}", &self.group_label))
            })
            .ok_or_else(|| {
                Error::config(format!(
                    "no PromQL for signal `{signal}` of group `{}`: give the group a query \
                     (`metrics.queries.{signal}`) or the source one (`queries.{signal}`)",
                    query.group
                ))
                .with_provider("prometheus")
            })?;
        Ok(template.replace("{group}", &escape_label_value(&query.group)))
    }

    /// Runs an instant query at `at` (default: Prometheus's now). Each series holds one sample;
    /// a scalar result is one series without labels.
    pub async fn query_instant(
        &self,
        promql: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<TimeSeries>> {
        let mut form = vec![
            ("query", promql.to_owned()),
            ("timeout", format!("{}ms", self.timeout.as_millis())),
        ];
        if let Some(at) = at {
            form.push(("time", format_time(at)));
        }
        let data = self.call("query", "/api/v1/query", &form).await?;
        series_of(data).map_err(|e| e.with_provider("prometheus").with_operation("query"))
    }

    /// Runs a range query over `range` with one sample per `step`, as Prometheus returns it
    /// (no emptiness, NaN or staleness checks; see [`MetricsSource::query_range`] for those).
    pub async fn query_range_promql(
        &self,
        promql: &str,
        range: TimeRange,
        step: Duration,
    ) -> Result<Vec<TimeSeries>> {
        let operation = "query_range";
        if step.is_zero() {
            return Err(Error::invalid_input("the query step must be more than 0")
                .with_provider("prometheus")
                .with_operation(operation));
        }
        if range.end <= range.start {
            return Err(Error::invalid_input(format!(
                "the range end {} is not after its start {}",
                range.end, range.start
            ))
            .with_provider("prometheus")
            .with_operation(operation));
        }
        let form = vec![
            ("query", promql.to_owned()),
            ("start", format_time(range.start)),
            ("end", format_time(range.end)),
            ("step", format!("{}", step.as_secs_f64())),
            ("timeout", format!("{}ms", self.timeout.as_millis())),
        ];
        let data = self.call(operation, "/api/v1/query_range", &form).await?;
        series_of(data).map_err(|e| e.with_provider("prometheus").with_operation(operation))
    }

    async fn bearer(&self) -> Result<Option<SecretString>> {
        match &self.token {
            None => Ok(None),
            Some(Token::Static(token)) => Ok(Some(token.clone())),
            Some(Token::File(path)) => SecretRef::File(path.clone())
                .resolve(Path::new("/"))
                .map(Some)
                .map_err(|e| {
                    Error::new(
                        ErrorKind::PermissionDenied,
                        format!("bearer token: {}", e.message()),
                    )
                }),
        }
    }

    async fn call(
        &self,
        operation: &'static str,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<ApiData> {
        let fail = |kind: ErrorKind, message: String| {
            Error::new(kind, message)
                .with_provider("prometheus")
                .with_operation(operation)
        };
        let query = form
            .iter()
            .find(|(k, _)| *k == "query")
            .map(|(_, q)| q.as_str())
            .unwrap_or_default();
        let mut request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .form(form);
        if let Some(token) = self
            .bearer()
            .await
            .map_err(|e| fail(e.kind(), e.message().to_owned()))?
        {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::Transient
            };
            fail(
                kind,
                format!("request to {} failed: {}", self.base_url, e.without_url()),
            )
        })?;
        let status = response.status();
        // A reply is read up to MAX_REPLY_BYTES: a server that sends more (a runaway query, or
        // something that is not Prometheus) is refused rather than buffered without end.
        let mut response = response;
        let mut body = Vec::new();
        loop {
            let chunk = response.chunk().await.map_err(|e| {
                fail(
                    ErrorKind::Transient,
                    format!("reading the reply failed: {}", e.without_url()),
                )
            })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(fail(
                    ErrorKind::InvalidInput,
                    format!(
                        "the reply is larger than {} MiB; narrow the query (fewer series, a coarser step)",
                        MAX_REPLY_BYTES >> 20
                    ),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let reply: Option<ApiReply> = serde_json::from_slice(&body).ok();
        match reply {
            Some(reply) if reply.status == "success" => {
                for warning in &reply.warnings {
                    tracing::warn!(query, warning = %warning, "Prometheus warned about a query");
                }
                reply.data.ok_or_else(|| {
                    fail(
                        ErrorKind::Transient,
                        "a success reply without data".to_owned(),
                    )
                })
            }
            Some(reply) => {
                let error_type = reply.error_type.unwrap_or_default();
                let message = reply.error.unwrap_or_default();
                let kind = match error_type.as_str() {
                    "bad_data" | "execution" => ErrorKind::InvalidInput,
                    "timeout" => ErrorKind::Timeout,
                    "not_found" => ErrorKind::NotFound,
                    _ => http_kind(status.as_u16()),
                };
                Err(fail(
                    kind,
                    format!("Prometheus rejected `{query}` ({error_type}): {message}"),
                ))
            }
            None => {
                let excerpt: String = String::from_utf8_lossy(&body).chars().take(200).collect();
                let kind = if status.is_success() {
                    ErrorKind::Transient
                } else {
                    http_kind(status.as_u16())
                };
                Err(fail(
                    kind,
                    format!(
                        "HTTP {status} without a Prometheus API reply: {}",
                        excerpt.trim()
                    ),
                ))
            }
        }
    }
}

fn http_kind(status: u16) -> ErrorKind {
    match status {
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::Throttled,
        400..=499 => ErrorKind::InvalidInput,
        _ => ErrorKind::Transient,
    }
}

fn format_time(at: DateTime<Utc>) -> String {
    format!("{:.3}", at.timestamp_millis() as f64 / 1000.0)
}

fn series_of(data: ApiData) -> Result<Vec<TimeSeries>> {
    match data {
        ApiData::Matrix(series) => series
            .into_iter()
            .map(|s| {
                Ok(TimeSeries {
                    labels: s.metric,
                    samples: s.values.iter().map(sample).collect::<Result<_>>()?,
                })
            })
            .collect(),
        ApiData::Vector(samples) => samples
            .into_iter()
            .map(|s| {
                Ok(TimeSeries {
                    labels: s.metric,
                    samples: s
                        .value
                        .as_ref()
                        .map(sample)
                        .transpose()?
                        .into_iter()
                        .collect(),
                })
            })
            .collect(),
        ApiData::Scalar(point) => Ok(vec![TimeSeries {
            labels: BTreeMap::new(),
            samples: vec![sample(&point)?],
        }]),
        ApiData::String(_) => Err(Error::invalid_input(
            "the query returns a string, not numbers",
        )),
    }
}

/// Drops NaN samples and stale series; explains when nothing usable is left.
fn usable(
    series: Vec<TimeSeries>,
    promql: &str,
    query: &MetricQuery,
    range: TimeRange,
    step: Duration,
    staleness: Duration,
) -> Result<Vec<TimeSeries>> {
    let subject = format!("{} of group {}", query.metric, query.group);
    if series.is_empty() {
        return Err(Error::not_found(format!(
            "no data for {subject}: `{promql}` matched no series between {} and {}",
            range.start, range.end
        )));
    }
    let bound = TimeDelta::from_std(staleness + step).unwrap_or(TimeDelta::MAX);
    let mut newest: Option<DateTime<Utc>> = None;
    let mut nan_only = 0usize;
    let mut kept = Vec::with_capacity(series.len());
    for mut s in series {
        let had_samples = !s.samples.is_empty();
        s.samples.retain(|x| !x.value.is_nan());
        let Some(last) = s.samples.last().map(|x| x.at) else {
            if had_samples {
                nan_only += 1;
            }
            continue;
        };
        newest = Some(newest.map_or(last, |n| n.max(last)));
        if range.end - last > bound {
            continue;
        }
        kept.push(s);
    }
    if !kept.is_empty() {
        return Ok(kept);
    }
    match newest {
        Some(newest) => Err(Error::not_found(format!(
            "stale data for {subject}: the newest sample of `{promql}` is from {newest}, more than {}s before {}",
            bound.num_seconds(),
            range.end
        ))),
        None if nan_only > 0 => Err(Error::not_found(format!(
            "no usable data for {subject}: `{promql}` returned only NaN (for example a division by zero without traffic)"
        ))),
        None => Err(Error::not_found(format!(
            "no data for {subject}: `{promql}` returned series without samples"
        ))),
    }
}

#[async_trait]
impl MetricsSource for PrometheusSource {
    fn capabilities(&self) -> MetricsCapabilities {
        let mut builtin: Vec<MetricKind> = BUILTIN_QUERIES
            .iter()
            .map(|(name, _)| *name)
            .chain(self.queries.keys().map(String::as_str))
            .map(metric_kind)
            .collect();
        builtin.sort();
        builtin.dedup();
        MetricsCapabilities {
            builtin,
            expressions: true,
        }
    }

    async fn query_range(&self, request: &RangeQuery) -> Result<Vec<TimeSeries>> {
        let (query, range, step_seconds) = (&request.query, request.range, request.step_seconds);
        let promql = self.promql_for(query)?;
        let step = Duration::from_secs(u64::from(step_seconds));
        let series = self.query_range_promql(&promql, range, step).await?;
        usable(series, &promql, query, range, step, self.staleness)
            .map_err(|e| e.with_provider("prometheus").with_operation("query_range"))
    }
}

/// A signal name from configuration as a [`MetricKind`].
pub fn metric_kind(name: &str) -> MetricKind {
    match name {
        "utilization" => MetricKind::Utilization,
        "request_rate" => MetricKind::RequestRate,
        "queue_depth" => MetricKind::QueueDepth,
        "latency_p95" => MetricKind::LatencyP95,
        "latency_p99" => MetricKind::LatencyP99,
        "error_rate" => MetricKind::ErrorRate,
        other => MetricKind::Custom(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use hoist_http::testing::RecordingReceiver;
    use serde_json::json;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    fn range() -> TimeRange {
        TimeRange {
            start: at(0),
            end: at(600),
        }
    }

    fn query(metric: MetricKind, expression: Option<&str>) -> MetricQuery {
        MetricQuery {
            group: "web".into(),
            metric,
            expression: expression.map(str::to_owned),
        }
    }

    fn matrix(values: &[(i64, &str)]) -> String {
        let values: Vec<_> = values
            .iter()
            .map(|(t, v)| json!([(1_700_000_000 + t) as f64, v]))
            .collect();
        json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"group": "web"}, "values": values}
        ]}})
        .to_string()
    }

    async fn source(receiver: &RecordingReceiver) -> PrometheusSource {
        PrometheusSource::builder(format!("{}/prom/", receiver.url()))
            .timeout(Duration::from_secs(2))
            .staleness(Duration::from_secs(120))
            .group_label("service")
            .query("queue_depth", r#"sum(queue_messages{queue="{group}"})"#)
            .group_query("web", "request_rate", "sum(rate(web_requests_total[1m]))")
            .bearer_token(SecretString::new("tok-123"))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn range_query_sends_the_form_and_parses_samples() {
        let receiver = RecordingReceiver::start().await;
        receiver.set_reply(200, matrix(&[(480, "1.5"), (540, "NaN"), (600, "+Inf")]));
        let prom = source(&receiver).await;
        let series = prom
            .query_range(&RangeQuery::new(
                query(MetricKind::QueueDepth, None),
                range(),
                60,
            ))
            .await
            .unwrap();
        assert_eq!(series.len(), 1);
        let values: Vec<f64> = series[0].samples.iter().map(|s| s.value).collect();
        assert_eq!(values, vec![1.5, f64::INFINITY], "NaN dropped, +Inf kept");
        assert_eq!(series[0].samples[0].at, at(480));
        assert_eq!(series[0].labels["group"], "web");

        let request = &receiver.requests()[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/prom/api/v1/query_range");
        assert_eq!(request.headers["authorization"], "Bearer tok-123");
        let form: BTreeMap<String, String> =
            url_decode(std::str::from_utf8(&request.body).unwrap());
        assert_eq!(form["query"], r#"sum(queue_messages{queue="web"})"#);
        assert_eq!(form["start"], "1700000000.000");
        assert_eq!(form["end"], "1700000600.000");
        assert_eq!(form["step"], "60");
        assert_eq!(form["timeout"], "2000ms");
    }

    fn url_decode(body: &str) -> BTreeMap<String, String> {
        reqwest::Url::parse(&format!("http://x/?{body}"))
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[tokio::test]
    async fn query_templates_resolve_in_order() {
        let receiver = RecordingReceiver::start().await;
        let prom = source(&receiver).await;
        // The policy's expression wins.
        assert_eq!(
            prom.promql_for(&query(MetricKind::RequestRate, Some("up{job=\"{group}\"}")))
                .unwrap(),
            r#"up{job="web"}"#
        );
        // Then the group's own template.
        assert_eq!(
            prom.promql_for(&query(MetricKind::RequestRate, None))
                .unwrap(),
            "sum(rate(web_requests_total[1m]))"
        );
        // Then the built-in default, with the configured group label.
        assert_eq!(
            prom.promql_for(&query(MetricKind::LatencyP95, None))
                .unwrap(),
            r#"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{service="web"}[5m])))"#
        );
        // Nothing for a custom signal: a config error that says where to put a query.
        let err = prom
            .promql_for(&query(MetricKind::Custom("jobs".into()), None))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("queries.jobs"), "{err}");
        // Group ids are escaped inside PromQL strings.
        let q = MetricQuery {
            group: r#"we"b"#.into(),
            metric: MetricKind::QueueDepth,
            expression: None,
        };
        assert_eq!(
            prom.promql_for(&q).unwrap(),
            r#"sum(queue_messages{queue="we\"b"})"#
        );
        assert!(
            prom.capabilities()
                .builtin
                .contains(&MetricKind::QueueDepth)
        );
        assert!(prom.capabilities().expressions);
        assert!(!format!("{prom:?}").contains("tok-123"));
    }

    #[tokio::test]
    async fn bad_queries_pass_prometheus_message_as_invalid_input() {
        let receiver = RecordingReceiver::start().await;
        receiver.set_reply(
            400,
            json!({"status": "error", "errorType": "bad_data",
                   "error": "invalid parameter \"query\": 1:8: parse error: unexpected \"}\""})
            .to_string(),
        );
        let prom = source(&receiver).await;
        let err = prom
            .query_range(&RangeQuery::new(
                query(MetricKind::QueueDepth, Some("sum(x})")),
                range(),
                60,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("parse error: unexpected"), "{err}");
        assert!(err.to_string().contains("sum(x})"), "{err}");
    }

    #[tokio::test]
    async fn a_reply_larger_than_the_limit_is_refused_not_buffered() {
        let receiver = RecordingReceiver::start().await;
        let prom = source(&receiver).await;
        let q = query(MetricKind::QueueDepth, None);
        // Valid JSON, padded past the limit with whitespace.
        let mut reply = " ".repeat(MAX_REPLY_BYTES + 1);
        reply.push_str(&matrix(&[(540, "1"), (600, "2")]));
        receiver.set_reply(200, reply);
        let err = prom
            .query_range(&RangeQuery::new(q, range(), 60))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("larger than 64 MiB"), "{err}");
    }

    #[tokio::test]
    async fn empty_nan_and_stale_results_are_not_found_with_the_reason() {
        let receiver = RecordingReceiver::start().await;
        let prom = source(&receiver).await;
        let q = query(MetricKind::QueueDepth, None);

        receiver.set_reply(
            200,
            json!({"status": "success", "data": {"resultType": "matrix", "result": []}})
                .to_string(),
        );
        let err = prom
            .query_range(&RangeQuery::new(q.clone(), range(), 60))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("matched no series"), "{err}");

        receiver.set_reply(200, matrix(&[(540, "NaN"), (600, "NaN")]));
        let err = prom
            .query_range(&RangeQuery::new(q.clone(), range(), 60))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("only NaN"), "{err}");

        // Newest sample 300 s before the end; staleness 120 s + step 60 s.
        receiver.set_reply(200, matrix(&[(240, "3"), (300, "4")]));
        let err = prom
            .query_range(&RangeQuery::new(q.clone(), range(), 60))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("stale data"), "{err}");

        // 180 s old is within the bound.
        receiver.set_reply(200, matrix(&[(420, "4")]));
        assert_eq!(
            prom.query_range(&RangeQuery::new(q.clone(), range(), 60))
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn http_failures_map_to_kinds() {
        let receiver = RecordingReceiver::start().await;
        let prom = source(&receiver).await;
        for (status, body, kind) in [
            (401, "unauthorised".to_owned(), ErrorKind::PermissionDenied),
            (429, "slow down".to_owned(), ErrorKind::Throttled),
            (502, "<html>bad gateway</html>".to_owned(), ErrorKind::Transient),
            (
                503,
                json!({"status": "error", "errorType": "timeout", "error": "query timed out"})
                    .to_string(),
                ErrorKind::Timeout,
            ),
            (
                422,
                json!({"status": "error", "errorType": "execution", "error": "many-to-many matching not allowed"})
                    .to_string(),
                ErrorKind::InvalidInput,
            ),
        ] {
            receiver.set_reply(status, body);
            let err = prom.query_instant("up", None).await.unwrap_err();
            assert_eq!(err.kind(), kind, "HTTP {status}: {err}");
        }
        let addr = receiver.url();
        receiver.shutdown().await;
        let prom = PrometheusSource::builder(addr).build().unwrap();
        let err = prom.query_instant("up", None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn instant_vector_and_scalar_results() {
        let receiver = RecordingReceiver::start().await;
        let prom = source(&receiver).await;
        receiver.set_reply(
            200,
            json!({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"job": "a"}, "value": [1700000000.5, "1"]},
                {"metric": {"job": "b"}, "value": [1700000000.5, "0"]}
            ]}})
            .to_string(),
        );
        let series = prom.query_instant("up", Some(at(0))).await.unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!(series[1].samples[0].value, 0.0);
        assert_eq!(
            series[0].samples[0].at.timestamp_millis(),
            1_700_000_000_500
        );
        let form = url_decode(std::str::from_utf8(&receiver.requests()[0].body).unwrap());
        assert_eq!(form["time"], "1700000000.000");
        receiver.set_reply(
            200,
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1700000000, "42"]}})
                .to_string(),
        );
        let series = prom.query_instant("42", None).await.unwrap();
        assert_eq!(series[0].samples[0].value, 42.0);
    }

    #[tokio::test]
    async fn settings_build_a_source_and_token_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "file-token\n").unwrap();
        let receiver = RecordingReceiver::start().await;
        receiver.set_reply(
            200,
            json!({"status": "success", "data": {"resultType": "vector", "result": []}})
                .to_string(),
        );
        let prom = metrics_source_from_settings_in(
            &json!({"url": receiver.url(), "bearer_token": {"file": "token"}}),
            dir.path(),
        )
        .unwrap();
        prom.query_instant("up", None).await.unwrap();
        assert_eq!(
            receiver.requests()[0].headers["authorization"],
            "Bearer file-token"
        );
        let err = metrics_source_from_settings_in(
            &json!({"url": receiver.url(), "bearer_token": {"file": "missing"}}),
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(err.field(), Some("bearer_token"), "{err}");
        assert_eq!(err.kind(), ErrorKind::Config);
    }

    #[tokio::test]
    async fn rejects_bad_ranges_before_sending() {
        let receiver = RecordingReceiver::start().await;
        let prom = source(&receiver).await;
        let q = query(MetricKind::QueueDepth, None);
        let err = prom
            .query_range(&RangeQuery::new(q.clone(), range(), 0))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let backwards = TimeRange {
            start: at(10),
            end: at(0),
        };
        let err = prom
            .query_range(&RangeQuery::new(q.clone(), backwards, 60))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(receiver.requests().is_empty());
    }
}
