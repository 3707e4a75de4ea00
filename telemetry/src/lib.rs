//! # hoist-telemetry
//!
//! How Hoist shows itself to its operators: Prometheus metrics, alerts and logs. Everything
//! here listens to the control loop through [`hoist_engine::events::EventSink`]; the loop does
//! not know who listens.
//!
//! ## Entry points (what `hoist run` wires)
//!
//! ```no_run
//! # async fn run(policy_alerts: Option<&serde_json::Value>) -> hoist_api::Result<()> {
//! use std::sync::Arc;
//! use hoist_engine::events::{EventSink, FanOut};
//! use hoist_api::SystemClock;
//! use hoist_telemetry::{logging, AlertEngine, AlertsConfig, Telemetry, TelemetryServer};
//!
//! logging::init(logging::LogFormat::Human, "info").expect("logging set up once");
//! let telemetry = Telemetry::new();
//! let server = TelemetryServer::start("127.0.0.1:9464".parse().unwrap(), telemetry.clone()).await?;
//! let mut sinks: Vec<Arc<dyn EventSink>> = vec![Arc::new(telemetry.clone())];
//! let mut alerts = None;
//! if let Some(value) = policy_alerts {
//!     let engine = AlertEngine::from_config(&AlertsConfig::from_value(value)?, std::path::Path::new("."), Arc::new(SystemClock))?;
//!     sinks.push(engine.clone());
//!     alerts = Some(engine);
//! }
//! let events = FanOut(sinks); // hand to the control loop
//! # let _ = events;
//! // ... on exit:
//! if let Some(engine) = alerts { engine.shutdown().await; }
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Metrics ([`Telemetry`], served by [`TelemetryServer`] on `/metrics`)
//!
//! Labels: `provider` (name in the policy file), `group` (id on the provider).
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `hoist_group_current_instances` | gauge | provider, group | desired capacity the provider holds when observed |
//! | `hoist_group_desired_instances` | gauge | provider, group | desired capacity of the latest decision |
//! | `hoist_group_min_instances`, `hoist_group_max_instances` | gauge | provider, group | the policy's bounds |
//! | `hoist_group_ready_instances`, `hoist_group_pending_instances` | gauge | provider, group | running and booting instances |
//! | `hoist_group_cost_usd_per_hour` | gauge | provider, group | estimated cost of active instances; one family per currency (`_eur_`, ...) |
//! | `hoist_group_metered_cost_usd` | gauge | provider, group | what the cost meter charged since Hoist started watching the group (instances' lives under the provider's billing rule); one family per currency |
//! | `hoist_group_total_hourly_cost` | gauge | provider, group, currency | the same hourly cost under the OpenCost-style name (after OpenCost's `node_total_hourly_cost`), currency as a label |
//! | `hoist_group_cost_per_1000_units` | gauge | provider, group, currency, unit | cost of 1,000 units of the group's work (`cost.work_metric`) at the latest rate: hourly cost / (units per second × 3600) × 1000; absent while the rate is 0 |
//! | `hoist_group_forecast_instances`, `hoist_group_forecast_peak_instances` | gauge | provider, group | latest forecast: first point, and its peak |
//! | `hoist_decisions_total` | counter | provider, group, direction | decisions (`out`, `in`, `hold`) |
//! | `hoist_decision_reasons_total` | counter | provider, group, direction, source | reasons by policy or guard (`target_tracking[0]`, `guard.max`) |
//! | `hoist_scaling_actions_total` | counter | provider, group, direction, outcome | actions sent; outcome `ok` or an error kind |
//! | `hoist_metrics_missing_total` | counter | provider, group, metric | evaluations that lacked a usable metric |
//! | `hoist_provider_calls_total` | counter | provider, operation, outcome | provider calls |
//! | `hoist_provider_call_duration_seconds` | histogram | provider, operation | provider call latency |
//! | `hoist_provider_retries_total` | counter | provider, operation | retries |
//! | `hoist_provider_circuit_open` | gauge | provider | 1 while the circuit breaker is open |
//! | `hoist_evaluations_total` | counter | | group evaluations |
//! | `hoist_ready` | gauge | | 1 once ready (as `/readyz`) |
//! | `hoist_build_info` | info | version | build |
//! | `hoist_budget_amount` | gauge | budget, currency, period | the budget's amount (converted to the reporting currency when stated in another) |
//! | `hoist_budget_spend` | gauge | budget, currency, period | spent so far in the current period |
//! | `hoist_budget_forecast_spend` | gauge | budget, currency, period | forecast spend at the period's end |
//! | `hoist_budget_rung` | gauge | budget, currency, period | the rung's level, 0 `alert` to 3 `deny_scale_out`; `-1` while the forecast is inside the budget |
//! | `hoist_budget_target_scale` | gauge | budget, currency, period | factor on the utilisation targets of the budget's groups (1 = unchanged) |
//!
//! ## Alerts ([`alerts`])
//!
//! [`AlertEngine`] raises `scaling_action_failed`, `pinned_at_max`, `metrics_missing`,
//! `circuit_open`, `budget_actual` and `budget_forecast` (once per budget threshold per period),
//! and delivers them to Alertmanager, Slack, PagerDuty or a JSON webhook as the
//! policy file's `alerts:` section ([`AlertsConfig`]) routes them.
//!
//! ## Logs ([`logging`])
//!
//! [`logging::init`] installs a `tracing` subscriber: human-readable or JSON lines on stderr.

#![forbid(unsafe_code)]

pub mod alerts;
use hoist_http as http;
pub mod logging;
pub mod metrics;
pub use hoist_api::secret;
pub mod route;
pub mod server;
#[cfg(any(test, feature = "testkit"))]
pub use hoist_http::testing;

pub use alerts::{AlertEngine, AlertsConfig};
pub use metrics::{METRIC_NAMES, Telemetry};
pub use secret::{SecretRef, SecretString};
pub use server::{DEFAULT_ADDRESS, TelemetryServer};
