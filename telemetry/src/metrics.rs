//! Hoist's own state as Prometheus metrics. [`Telemetry`] is an [`EventSink`]: the control loop
//! emits events, `Telemetry` updates counters, gauges and histograms in memory (atomic updates
//! behind short locks, no I/O), and the HTTP endpoint ([`crate::TelemetryServer`]) encodes them
//! on each scrape in the OpenMetrics text format.
//!
//! Every metric name is listed in [`METRIC_NAMES`] and in the crate documentation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hoist_engine::Direction;
use hoist_engine::budget::BudgetStatus;
use hoist_engine::events::{Event, EventSink};
use hoist_engine::reconcile::Reconciliation;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Every metric [`Telemetry`] exports, as it appears on `/metrics` (counters with `_total`;
/// the cost gauge once per currency, `usd` shown).
pub const METRIC_NAMES: &[&str] = &[
    "hoist_build_info",
    "hoist_group_current_instances",
    "hoist_group_desired_instances",
    "hoist_group_min_instances",
    "hoist_group_max_instances",
    "hoist_group_ready_instances",
    "hoist_group_pending_instances",
    "hoist_group_cost_usd_per_hour",
    "hoist_group_metered_cost_usd",
    "hoist_group_total_hourly_cost",
    "hoist_group_cost_per_1000_units",
    "hoist_group_forecast_instances",
    "hoist_group_forecast_peak_instances",
    "hoist_decisions_total",
    "hoist_decision_reasons_total",
    "hoist_scaling_actions_total",
    "hoist_metrics_missing_total",
    "hoist_provider_calls_total",
    "hoist_provider_call_duration_seconds",
    "hoist_provider_retries_total",
    "hoist_provider_circuit_open",
    "hoist_evaluations_total",
    "hoist_ready",
    "hoist_budget_amount",
    "hoist_budget_spend",
    "hoist_budget_forecast_spend",
    "hoist_budget_rung",
    "hoist_budget_target_scale",
    "hoist_cost_reconciliation_drift_ratio",
    "hoist_cost_reconciled_billed",
];

/// The value of `hoist_budget_rung` while a budget's forecast is inside it (no rung). On a
/// rung the value is the rung's level: 0 `alert`, 1 `prefer_cheaper`, 2 `cap`,
/// 3 `deny_scale_out`.
pub const BUDGET_INSIDE_RUNG: f64 = -1.0;

/// Buckets of the provider call latency histogram, seconds.
const CALL_DURATION_BUCKETS_SECONDS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    provider: String,
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    provider: String,
    group: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    provider: String,
    group: String,
    direction: &'static str,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    provider: String,
    group: String,
    direction: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MissingLabels {
    provider: String,
    group: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    provider: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    provider: String,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramConstructor = fn() -> Histogram;

fn call_duration_histogram() -> Histogram {
    Histogram::new(CALL_DURATION_BUCKETS_SECONDS)
}

#[derive(Debug)]
struct Metrics {
    current: Family<GroupLabels, Gauge>,
    desired: Family<GroupLabels, Gauge>,
    min: Family<GroupLabels, Gauge>,
    max: Family<GroupLabels, Gauge>,
    ready: Family<GroupLabels, Gauge>,
    pending: Family<GroupLabels, Gauge>,
    forecast: Family<GroupLabels, FloatGauge>,
    forecast_peak: Family<GroupLabels, FloatGauge>,
    decisions: Family<DecisionLabels, Counter>,
    reasons: Family<ReasonLabels, Counter>,
    actions: Family<ActionLabels, Counter>,
    missing: Family<MissingLabels, Counter>,
    calls: Family<CallLabels, Counter>,
    call_duration: Family<OperationLabels, Histogram, HistogramConstructor>,
    retries: Family<OperationLabels, Counter>,
    circuit_open: Family<ProviderLabels, Gauge>,
    evaluations: Counter,
    ready_gauge: Gauge,
    reloads: Family<ReloadLabels, Counter>,
    reload_ok: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: String,
}

/// A cost per group, exported as one gauge family per currency (the hourly cost as
/// `hoist_group_cost_usd_per_hour`, `hoist_group_cost_eur_per_hour`, ...; the metered spend as
/// `hoist_group_metered_cost_usd`, ...), so the currency is in the name as Prometheus naming
/// asks.
#[derive(Debug)]
struct CostCollector {
    /// currency (lower case) -> (provider, group) -> cost.
    by_currency: Mutex<BTreeMap<String, CostPerGroup>>,
    /// The family name with `{currency}` where the currency goes.
    name: &'static str,
    /// The help text with `{CURRENCY}` where the currency goes.
    help: &'static str,
}

impl CostCollector {
    fn hourly() -> Self {
        CostCollector {
            by_currency: Mutex::new(BTreeMap::new()),
            name: "hoist_group_cost_{currency}_per_hour",
            help: "Estimated cost per hour of the group's active (pending and running) instances, in {CURRENCY}, from the catalog's prices (spot instances at the spot price)",
        }
    }

    fn metered() -> Self {
        CostCollector {
            by_currency: Mutex::new(BTreeMap::new()),
            name: "hoist_group_metered_cost_{currency}",
            help: "What Hoist's cost meter charged for the group since it started watching it, in {CURRENCY}: each instance's life under the provider's billing rule at the catalog's price (spot instances at the spot price)",
        }
    }
}

/// (provider, group) -> cost per hour.
type CostPerGroup = BTreeMap<(String, String), f64>;

impl CostCollector {
    fn set(&self, currency: &str, provider: &str, group: &str, cost_per_hour: f64) {
        let currency = currency_slug(currency);
        let mut map = self.by_currency.lock().unwrap_or_else(|e| e.into_inner());
        // A group's cost lives in one currency: forget it under any other.
        for (other, groups) in map.iter_mut() {
            if *other != currency {
                groups.remove(&(provider.to_owned(), group.to_owned()));
            }
        }
        map.entry(currency)
            .or_default()
            .insert((provider.to_owned(), group.to_owned()), cost_per_hour);
    }
}

/// `USD` -> `usd`; anything that is not ASCII alphanumeric becomes `_`, so a bad currency code
/// cannot produce an invalid metric name.
fn currency_slug(currency: &str) -> String {
    let slug: String = currency
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if slug.is_empty() {
        "unknown".to_owned()
    } else {
        slug
    }
}

impl Collector for CostCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let map = self.by_currency.lock().unwrap_or_else(|e| e.into_inner());
        for (currency, groups) in map.iter() {
            if groups.is_empty() {
                continue;
            }
            let name = self.name.replace("{currency}", currency);
            let help = self
                .help
                .replace("{CURRENCY}", &currency.to_ascii_uppercase());
            let mut family = encoder.encode_descriptor(&name, &help, None, MetricType::Gauge)?;
            for ((provider, group), cost) in groups {
                let labels = [("provider", provider.as_str()), ("group", group.as_str())];
                let metric = family.encode_family(&labels)?;
                ConstGauge::new(*cost).encode(metric)?;
            }
        }
        Ok(())
    }
}

/// What a group costs and how much work it does, exported as the OpenCost-style
/// `hoist_group_total_hourly_cost{provider,group,currency}` (after OpenCost's
/// `node_total_hourly_cost`) and `hoist_group_cost_per_1000_units{provider,group,currency,unit}`.
/// Computed at each scrape from the latest `GroupObserved` cost and the latest `Work` sample.
#[derive(Debug, Default)]
struct GroupEconomics {
    /// (provider, group) -> its latest cost and work.
    groups: Mutex<BTreeMap<(String, String), GroupFigures>>,
}

#[derive(Debug, Default, Clone)]
struct GroupFigures {
    /// (currency, cost per hour).
    cost: Option<(String, f64)>,
    /// (unit, units per second).
    work: Option<(String, f64)>,
}

impl GroupFigures {
    /// Cost of 1,000 units of work at the current rate: cost per hour / (units per second ×
    /// 3600) × 1000. `None` without a cost, without work, or while the work rate is 0.
    fn cost_per_1000_units(&self) -> Option<(&str, &str, f64)> {
        let (currency, cost) = self.cost.as_ref()?;
        let (unit, per_second) = self.work.as_ref()?;
        if !per_second.is_finite() || *per_second <= 0.0 {
            return None;
        }
        let value = cost / (per_second * 3_600.0) * 1_000.0;
        value
            .is_finite()
            .then_some((currency.as_str(), unit.as_str(), value))
    }
}

impl GroupEconomics {
    fn set_cost(&self, provider: &str, group: &str, currency: &str, cost_per_hour: f64) {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups
            .entry((provider.to_owned(), group.to_owned()))
            .or_default()
            .cost = Some((currency.to_owned(), cost_per_hour));
    }

    fn set_work(&self, provider: &str, group: &str, unit: &str, units_per_second: f64) {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups
            .entry((provider.to_owned(), group.to_owned()))
            .or_default()
            .work = Some((unit.to_owned(), units_per_second));
    }
}

impl Collector for GroupEconomics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if groups.values().any(|g| g.cost.is_some()) {
            let mut family = encoder.encode_descriptor(
                "hoist_group_total_hourly_cost",
                "Estimated cost per hour of the group's active instances, in the currency of the currency label (OpenCost-style, after node_total_hourly_cost)",
                None,
                MetricType::Gauge,
            )?;
            for ((provider, group), figures) in groups.iter() {
                if let Some((currency, cost)) = &figures.cost {
                    let labels = [
                        ("provider", provider.as_str()),
                        ("group", group.as_str()),
                        ("currency", currency.as_str()),
                    ];
                    ConstGauge::new(*cost).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        if groups.values().any(|g| g.cost_per_1000_units().is_some()) {
            let mut family = encoder.encode_descriptor(
                "hoist_group_cost_per_1000_units",
                "Cost of 1,000 units of the group's work at the current rate: cost per hour / (units per second x 3600) x 1000; absent while the work rate is 0",
                None,
                MetricType::Gauge,
            )?;
            for ((provider, group), figures) in groups.iter() {
                if let Some((currency, unit, value)) = figures.cost_per_1000_units() {
                    let labels = [
                        ("provider", provider.as_str()),
                        ("group", group.as_str()),
                        ("currency", currency),
                        ("unit", unit),
                    ];
                    ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

/// Each budget's latest status, exported as the `hoist_budget_*` gauges labelled `budget`,
/// `currency` and `period`. Computed at each scrape from the latest `Budget` event of each
/// budget, so a budget whose currency or period label changes leaves no stale series.
#[derive(Debug, Default)]
struct BudgetGauges {
    budgets: Mutex<BTreeMap<String, BudgetStatus>>,
}

/// (name, help, value) of each budget gauge.
type BudgetGauge = (&'static str, &'static str, fn(&BudgetStatus) -> f64);

const BUDGET_GAUGES: [BudgetGauge; 5] = [
    (
        "hoist_budget_amount",
        "The budget's amount for its period, in the currency of the currency label (converted when the policy states it in another currency)",
        |s| s.amount,
    ),
    (
        "hoist_budget_spend",
        "Spent so far in the budget's current period (period to date)",
        |s| s.spent,
    ),
    (
        "hoist_budget_forecast_spend",
        "Forecast spend at the end of the budget's current period, at the current pace",
        |s| s.forecast,
    ),
    (
        "hoist_budget_rung",
        "The budget's rung: 0 alert, 1 prefer_cheaper, 2 cap, 3 deny_scale_out; -1 while the forecast is inside the budget (no rung)",
        |s| s.rung.map_or(BUDGET_INSIDE_RUNG, |r| f64::from(r.level())),
    ),
    (
        "hoist_budget_target_scale",
        "Factor the budget applies to the utilisation targets of its groups (1 = unchanged; above 1 under cap)",
        |s| s.target_scale,
    ),
];

impl Collector for BudgetGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        if budgets.is_empty() {
            return Ok(());
        }
        for (name, help, value) in BUDGET_GAUGES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (budget, status) in budgets.iter() {
                let v = value(status);
                if !v.is_finite() {
                    continue;
                }
                let labels = [
                    ("budget", budget.as_str()),
                    ("currency", status.currency.as_str()),
                    ("period", status.period.as_str()),
                ];
                ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The latest reconciled day of each provider (the meter against the provider's own bill),
/// exported as `hoist_cost_reconciliation_drift_ratio{provider}` and
/// `hoist_cost_reconciled_billed{provider,currency}`. Computed at each scrape from the
/// `CostReconciled` event of the latest day, so a change of currency leaves no stale series.
#[derive(Debug, Default)]
struct ReconciliationGauges {
    providers: Mutex<BTreeMap<String, Reconciliation>>,
}

impl ReconciliationGauges {
    fn set(&self, reconciliation: &Reconciliation) {
        let mut providers = self.providers.lock().unwrap_or_else(|e| e.into_inner());
        let latest = providers
            .get(&reconciliation.provider)
            .is_none_or(|r| r.day <= reconciliation.day);
        if latest {
            providers.insert(reconciliation.provider.clone(), reconciliation.clone());
        }
    }
}

impl Collector for ReconciliationGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let providers = self.providers.lock().unwrap_or_else(|e| e.into_inner());
        let drifts: Vec<(&str, f64)> = providers
            .iter()
            .filter_map(|(p, r)| Some((p.as_str(), r.relative.filter(|v| v.is_finite())?)))
            .collect();
        if !drifts.is_empty() {
            let mut family = encoder.encode_descriptor(
                "hoist_cost_reconciliation_drift_ratio",
                "Relative drift of the cost meter from the provider's own bill on the last reconciled UTC day, (metered - billed) / billed",
                None,
                MetricType::Gauge,
            )?;
            for (provider, drift) in drifts {
                ConstGauge::new(drift).encode(family.encode_family(&[("provider", provider)])?)?;
            }
        }
        let billed: Vec<(&str, &str, f64)> = providers
            .iter()
            .map(|(p, r)| (p.as_str(), r.currency.as_str(), r.billed_f64()))
            .filter(|(_, _, v)| v.is_finite())
            .collect();
        if !billed.is_empty() {
            let mut family = encoder.encode_descriptor(
                "hoist_cost_reconciled_billed",
                "What the provider billed for the last reconciled UTC day, in the currency of the currency label",
                None,
                MetricType::Gauge,
            )?;
            for (provider, currency, amount) in billed {
                let labels = [("provider", provider), ("currency", currency)];
                ConstGauge::new(amount).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Readiness for `/readyz`: ready once the first evaluation finished, or when the process is a
/// standby replica waiting for leadership (healthy and doing what it should).
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    evaluated: AtomicBool,
    standby: AtomicBool,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    metrics: Metrics,
    cost: Arc<CostCollector>,
    metered: Arc<CostCollector>,
    economics: Arc<GroupEconomics>,
    budgets: Arc<BudgetGauges>,
    reconciliations: Arc<ReconciliationGauges>,
    readiness: Readiness,
}

/// Hoist's Prometheus metrics, fed by events. Cheap to clone (one `Arc`); hand one clone to the
/// control loop as an [`EventSink`] and one to [`crate::TelemetryServer`].
///
/// ```
/// use hoist_engine::events::{Event, EventSink};
/// use hoist_telemetry::Telemetry;
///
/// let telemetry = Telemetry::new();
/// telemetry.emit(&Event::Circuit { provider: "aws".into(), open: true });
/// let text = telemetry.encode();
/// assert!(text.contains("hoist_provider_circuit_open{provider=\"aws\"} 1"));
/// ```
#[derive(Debug, Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A fresh set of metrics in its own registry (no global state).
    pub fn new() -> Self {
        let metrics = Metrics {
            current: Family::default(),
            desired: Family::default(),
            min: Family::default(),
            max: Family::default(),
            ready: Family::default(),
            pending: Family::default(),
            forecast: Family::default(),
            forecast_peak: Family::default(),
            decisions: Family::default(),
            reasons: Family::default(),
            actions: Family::default(),
            missing: Family::default(),
            calls: Family::default(),
            call_duration: Family::new_with_constructor(call_duration_histogram),
            retries: Family::default(),
            circuit_open: Family::default(),
            evaluations: Counter::default(),
            ready_gauge: Gauge::default(),
            reloads: Family::default(),
            reload_ok: Gauge::default(),
        };
        metrics.reload_ok.set(1);
        let cost = Arc::new(CostCollector::hourly());
        let metered = Arc::new(CostCollector::metered());
        let economics = Arc::new(GroupEconomics::default());
        let budgets = Arc::new(BudgetGauges::default());
        let reconciliations = Arc::new(ReconciliationGauges::default());
        let mut registry = Registry::default();
        let m = &metrics;
        registry.register(
            "hoist_build",
            "Hoist build information; the value is always 1",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "hoist_group_current_instances",
            "Desired capacity the provider holds for the group when observed, instances",
            m.current.clone(),
        );
        registry.register(
            "hoist_group_desired_instances",
            "Desired capacity the latest decision asked for, instances",
            m.desired.clone(),
        );
        registry.register(
            "hoist_group_min_instances",
            "The policy's lower bound for the group, instances",
            m.min.clone(),
        );
        registry.register(
            "hoist_group_max_instances",
            "The policy's upper bound for the group, instances",
            m.max.clone(),
        );
        registry.register(
            "hoist_group_ready_instances",
            "Instances serving (running) when the group was observed",
            m.ready.clone(),
        );
        registry.register(
            "hoist_group_pending_instances",
            "Instances booting when the group was observed",
            m.pending.clone(),
        );
        registry.register(
            "hoist_group_forecast_instances",
            "Instances a predictive policy forecasts for the first point of its latest forecast",
            m.forecast.clone(),
        );
        registry.register(
            "hoist_group_forecast_peak_instances",
            "Largest number of instances over the latest forecast's horizon",
            m.forecast_peak.clone(),
        );
        registry.register(
            "hoist_decisions",
            "Decisions made, by direction (out, in, hold)",
            m.decisions.clone(),
        );
        registry.register(
            "hoist_decision_reasons",
            "Reasons behind decisions, by the policy or guard that gave them (source)",
            m.reasons.clone(),
        );
        registry.register(
            "hoist_scaling_actions",
            "Scaling actions sent to providers, by direction and outcome (ok or an error kind)",
            m.actions.clone(),
        );
        registry.register(
            "hoist_metrics_missing",
            "Evaluations where a metric a policy needs was missing, stale or invalid",
            m.missing.clone(),
        );
        registry.register(
            "hoist_provider_calls",
            "Provider calls, by operation and outcome (ok or an error kind)",
            m.calls.clone(),
        );
        registry.register(
            "hoist_provider_call_duration_seconds",
            "Provider call latency, seconds",
            m.call_duration.clone(),
        );
        registry.register(
            "hoist_provider_retries",
            "Retries of provider calls by the retry layer",
            m.retries.clone(),
        );
        registry.register(
            "hoist_provider_circuit_open",
            "1 while the provider's circuit breaker is open (calls refused), else 0",
            m.circuit_open.clone(),
        );
        registry.register(
            "hoist_evaluations",
            "Group evaluations completed (one per group per decision)",
            m.evaluations.clone(),
        );
        registry.register(
            "hoist_ready",
            "1 once the first evaluation finished (or the process is a standby replica), else 0",
            m.ready_gauge.clone(),
        );
        registry.register(
            "hoist_config_reloads",
            "Changed policy files seen by `hoist run`, by result: `applied` or `rejected` (the running configuration kept)",
            m.reloads.clone(),
        );
        registry.register(
            "hoist_config_last_reload_successful",
            "1 when the policy file in effect is the file on disk (or its last change was applied), 0 while a change was refused",
            m.reload_ok.clone(),
        );
        registry.register_collector(Box::new(Arc::clone(&cost)));
        registry.register_collector(Box::new(Arc::clone(&metered)));
        registry.register_collector(Box::new(Arc::clone(&economics)));
        registry.register_collector(Box::new(Arc::clone(&budgets)));
        registry.register_collector(Box::new(Arc::clone(&reconciliations)));
        Telemetry {
            inner: Arc::new(Inner {
                registry,
                metrics,
                cost,
                metered,
                economics,
                budgets,
                reconciliations,
                readiness: Readiness::default(),
            }),
        }
    }

    /// The metrics in the OpenMetrics text format, as served on `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if let Err(error) =
            prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
        {
            tracing::error!(%error, "encoding metrics failed");
        }
        out
    }

    /// Whether `/readyz` answers 200: the first evaluation finished (a `Decided` event was
    /// seen or [`Telemetry::mark_evaluated`] was called), or the process is a standby replica.
    pub fn is_ready(&self) -> bool {
        let r = &self.inner.readiness;
        r.evaluated.load(Ordering::Relaxed) || r.standby.load(Ordering::Relaxed)
    }

    /// Marks the first evaluation done (also happens on the first `Decided` event).
    pub fn mark_evaluated(&self) {
        self.inner
            .readiness
            .evaluated
            .store(true, Ordering::Relaxed);
        self.update_ready_gauge();
    }

    /// Declares this replica a standby (not leader): it is ready although it does not evaluate.
    /// Call with `false` when it becomes leader; readiness then waits for its first evaluation
    /// unless it has evaluated before.
    pub fn set_standby(&self, standby: bool) {
        self.inner
            .readiness
            .standby
            .store(standby, Ordering::Relaxed);
        self.update_ready_gauge();
    }

    fn update_ready_gauge(&self) {
        self.inner
            .metrics
            .ready_gauge
            .set(i64::from(self.is_ready()));
    }
}

fn direction_label(direction: Direction) -> &'static str {
    match direction {
        Direction::Out => "out",
        Direction::In => "in",
        Direction::Hold => "hold",
    }
}

fn group_labels(provider: &str, group: &str) -> GroupLabels {
    GroupLabels {
        provider: provider.to_owned(),
        group: group.to_owned(),
    }
}

/// Reason sources like `target_tracking[0]` keep their index: policies are few per group, so
/// the label stays bounded, and the index tells which of two policies of one kind spoke.
fn reason_source(source: &str) -> String {
    source.to_owned()
}

impl EventSink for Telemetry {
    fn emit(&self, event: &Event) {
        let m = &self.inner.metrics;
        match event {
            Event::GroupObserved {
                provider,
                group,
                min,
                max,
                cost_per_hour,
                currency,
                metered_cost,
                ..
            } => {
                let labels = group_labels(provider, &group.id);
                m.current
                    .get_or_create(&labels)
                    .set(i64::from(group.desired));
                m.min.get_or_create(&labels).set(i64::from(*min));
                m.max.get_or_create(&labels).set(i64::from(*max));
                m.ready.get_or_create(&labels).set(i64::from(group.ready));
                m.pending
                    .get_or_create(&labels)
                    .set(i64::from(group.pending));
                let currency = currency.as_deref().unwrap_or("USD");
                if let Some(cost) = cost_per_hour.filter(|c| c.is_finite()) {
                    self.inner.cost.set(currency, provider, &group.id, cost);
                    self.inner
                        .economics
                        .set_cost(provider, &group.id, currency, cost);
                }
                if let Some(spent) = metered_cost.filter(|c| c.is_finite()) {
                    self.inner.metered.set(currency, provider, &group.id, spent);
                }
            }
            Event::Decided { provider, decision } => {
                let direction = direction_label(decision.direction);
                let labels = group_labels(provider, &decision.group);
                m.desired
                    .get_or_create(&labels)
                    .set(i64::from(decision.desired));
                m.decisions
                    .get_or_create(&DecisionLabels {
                        provider: provider.clone(),
                        group: decision.group.clone(),
                        direction,
                    })
                    .inc();
                for reason in &decision.reasons {
                    m.reasons
                        .get_or_create(&ReasonLabels {
                            provider: provider.clone(),
                            group: decision.group.clone(),
                            direction,
                            source: reason_source(&reason.source),
                        })
                        .inc();
                }
                m.evaluations.inc();
                if !self.inner.readiness.evaluated.swap(true, Ordering::Relaxed) {
                    self.update_ready_gauge();
                }
            }
            Event::Acted {
                provider,
                group,
                from,
                to,
                error,
            } => {
                let direction = match to.cmp(from) {
                    std::cmp::Ordering::Greater => "out",
                    std::cmp::Ordering::Less => "in",
                    std::cmp::Ordering::Equal => "hold",
                };
                m.actions
                    .get_or_create(&ActionLabels {
                        provider: provider.clone(),
                        group: group.clone(),
                        direction,
                        outcome: error.as_ref().map_or("ok", |(kind, _)| kind.as_str()),
                    })
                    .inc();
            }
            Event::ProviderCall {
                provider,
                operation,
                error,
                duration,
            } => {
                m.calls
                    .get_or_create(&CallLabels {
                        provider: provider.clone(),
                        operation,
                        outcome: error.map_or("ok", |kind| kind.as_str()),
                    })
                    .inc();
                m.call_duration
                    .get_or_create(&OperationLabels {
                        provider: provider.clone(),
                        operation,
                    })
                    .observe(duration.as_secs_f64());
            }
            Event::Retry {
                provider,
                operation,
                attempt: _,
            } => {
                m.retries
                    .get_or_create(&OperationLabels {
                        provider: provider.clone(),
                        operation,
                    })
                    .inc();
            }
            Event::Circuit { provider, open } => {
                m.circuit_open
                    .get_or_create(&ProviderLabels {
                        provider: provider.clone(),
                    })
                    .set(i64::from(*open));
            }
            Event::MetricsMissing {
                provider,
                group,
                metric,
                reason: _,
            } => {
                m.missing
                    .get_or_create(&MissingLabels {
                        provider: provider.clone(),
                        group: group.clone(),
                        metric: metric.name().to_owned(),
                    })
                    .inc();
            }
            Event::Forecast {
                provider,
                group,
                points,
            } => {
                let labels = group_labels(provider, group);
                if let Some(first) = points.iter().find(|p| p.instances.is_finite()) {
                    m.forecast.get_or_create(&labels).set(first.instances);
                }
                let peak = points
                    .iter()
                    .map(|p| p.instances)
                    .filter(|v| v.is_finite())
                    .fold(None, |acc: Option<f64>, v| {
                        Some(acc.map_or(v, |a| a.max(v)))
                    });
                if let Some(peak) = peak {
                    m.forecast_peak.get_or_create(&labels).set(peak);
                }
            }
            Event::Work {
                provider,
                group,
                units_per_second,
                unit,
            } => {
                self.inner
                    .economics
                    .set_work(provider, group, unit, *units_per_second);
            }
            Event::Budget(status) => {
                self.inner
                    .budgets
                    .budgets
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(status.budget.clone(), status.clone());
            }
            Event::CostReconciled(reconciliation) => {
                self.inner.reconciliations.set(reconciliation);
            }
            Event::ConfigApplied { .. } => {
                m.reloads
                    .get_or_create(&ReloadLabels {
                        result: "applied".into(),
                    })
                    .inc();
                m.reload_ok.set(1);
            }
            Event::ConfigRejected { .. } => {
                m.reloads
                    .get_or_create(&ReloadLabels {
                        result: "rejected".into(),
                    })
                    .inc();
                m.reload_ok.set(0);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone, Utc};
    use hoist_api::ErrorKind;
    use hoist_engine::config::budget::Rung;
    use hoist_engine::{Decision, ForecastPoint, GroupSnapshot, Reason};

    use super::*;

    fn snapshot(id: &str) -> GroupSnapshot {
        GroupSnapshot {
            id: id.into(),
            desired: 4,
            ready: 3,
            pending: 1,
            provider_min: 0,
            provider_max: 100,
            instance_class: "m5.large".into(),
        }
    }

    fn line_value(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn group_observed_sets_gauges_and_cost_with_currency_in_the_name() {
        let t = Telemetry::new();
        t.emit(&Event::GroupObserved {
            provider: "sim".into(),
            group: snapshot("web"),
            min: 2,
            max: 10,
            cost_per_hour: Some(0.384),
            currency: Some("USD".into()),
            metered_cost: Some(2.5),
            metered_spot_cost: None,
            spot_instances: 0,
        });
        t.emit(&Event::GroupObserved {
            provider: "azure".into(),
            group: snapshot("api"),
            min: 1,
            max: 5,
            cost_per_hour: Some(1.5),
            currency: Some("EUR".into()),
            metered_cost: Some(7.25),
            metered_spot_cost: None,
            spot_instances: 0,
        });
        let text = t.encode();
        let web = r#"{provider="sim",group="web"}"#;
        assert_eq!(
            line_value(&text, &format!("hoist_group_current_instances{web}")),
            Some(4.0)
        );
        assert_eq!(
            line_value(&text, &format!("hoist_group_ready_instances{web}")),
            Some(3.0)
        );
        assert_eq!(
            line_value(&text, &format!("hoist_group_pending_instances{web}")),
            Some(1.0)
        );
        assert_eq!(
            line_value(&text, &format!("hoist_group_min_instances{web}")),
            Some(2.0)
        );
        assert_eq!(
            line_value(&text, &format!("hoist_group_max_instances{web}")),
            Some(10.0)
        );
        assert_eq!(
            line_value(&text, &format!("hoist_group_cost_usd_per_hour{web}")),
            Some(0.384)
        );
        assert_eq!(
            line_value(
                &text,
                r#"hoist_group_cost_eur_per_hour{provider="azure",group="api"}"#
            ),
            Some(1.5)
        );
        assert!(text.contains("# TYPE hoist_group_cost_usd_per_hour gauge"));
        // What the meter charged since it started watching, per currency.
        assert_eq!(
            line_value(&text, &format!("hoist_group_metered_cost_usd{web}")),
            Some(2.5)
        );
        assert_eq!(
            line_value(
                &text,
                r#"hoist_group_metered_cost_eur{provider="azure",group="api"}"#
            ),
            Some(7.25)
        );
        assert!(text.contains("# TYPE hoist_group_metered_cost_usd gauge"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn decisions_count_by_direction_and_reason_source_and_set_readiness() {
        let t = Telemetry::new();
        assert!(!t.is_ready());
        let decision = Decision {
            group: "web".into(),
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            current: 4,
            desired: 6,
            direction: Direction::Out,
            instance_class: None,
            reasons: vec![
                Reason {
                    source: "target_tracking[0]".into(),
                    recommended: Some(7),
                    message: "utilization 0.9 above 0.6".into(),
                },
                Reason {
                    source: "guard.max".into(),
                    recommended: Some(6),
                    message: "capped".into(),
                },
            ],
            dry_run: false,
        };
        for _ in 0..2 {
            t.emit(&Event::Decided {
                provider: "sim".into(),
                decision: decision.clone(),
            });
        }
        let text = t.encode();
        assert!(t.is_ready());
        assert_eq!(
            line_value(
                &text,
                r#"hoist_decisions_total{provider="sim",group="web",direction="out"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            line_value(
                &text,
                r#"hoist_decision_reasons_total{provider="sim",group="web",direction="out",source="guard.max"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            line_value(
                &text,
                r#"hoist_group_desired_instances{provider="sim",group="web"}"#
            ),
            Some(6.0)
        );
        assert_eq!(line_value(&text, "hoist_ready"), Some(1.0));
        assert_eq!(line_value(&text, "hoist_evaluations_total"), Some(2.0));
    }

    #[test]
    fn provider_calls_retries_circuits_actions_and_forecasts() {
        let t = Telemetry::new();
        t.emit(&Event::ProviderCall {
            provider: "aws".into(),
            operation: "describe_group",
            error: None,
            duration: Duration::from_millis(30),
        });
        t.emit(&Event::ProviderCall {
            provider: "aws".into(),
            operation: "describe_group",
            error: Some(ErrorKind::Throttled),
            duration: Duration::from_millis(700),
        });
        t.emit(&Event::Retry {
            provider: "aws".into(),
            operation: "describe_group",
            attempt: 2,
        });
        t.emit(&Event::Circuit {
            provider: "aws".into(),
            open: true,
        });
        t.emit(&Event::Circuit {
            provider: "gcp".into(),
            open: false,
        });
        t.emit(&Event::Acted {
            provider: "aws".into(),
            group: "web".into(),
            from: 2,
            to: 1,
            error: Some((ErrorKind::Conflict, "activity in progress".into())),
        });
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        t.emit(&Event::Forecast {
            provider: "aws".into(),
            group: "web".into(),
            points: vec![
                ForecastPoint {
                    at,
                    instances: 3.5,
                    upper: None,
                },
                ForecastPoint {
                    at,
                    instances: 8.0,
                    upper: Some(9.0),
                },
                ForecastPoint {
                    at,
                    instances: f64::NAN,
                    upper: None,
                },
            ],
        });
        let text = t.encode();
        let aws = r#"provider="aws",operation="describe_group""#;
        assert_eq!(
            line_value(
                &text,
                &format!("hoist_provider_calls_total{{{aws},outcome=\"ok\"}}")
            ),
            Some(1.0)
        );
        assert_eq!(
            line_value(
                &text,
                &format!("hoist_provider_calls_total{{{aws},outcome=\"throttled\"}}")
            ),
            Some(1.0)
        );
        assert_eq!(
            line_value(
                &text,
                &format!("hoist_provider_call_duration_seconds_count{{{aws}}}")
            ),
            Some(2.0)
        );
        assert_eq!(
            line_value(
                &text,
                &format!("hoist_provider_call_duration_seconds_bucket{{le=\"0.05\",{aws}}}")
            ),
            Some(1.0)
        );
        assert_eq!(
            line_value(&text, &format!("hoist_provider_retries_total{{{aws}}}")),
            Some(1.0)
        );
        assert_eq!(
            line_value(&text, r#"hoist_provider_circuit_open{provider="aws"}"#),
            Some(1.0)
        );
        assert_eq!(
            line_value(&text, r#"hoist_provider_circuit_open{provider="gcp"}"#),
            Some(0.0)
        );
        assert_eq!(
            line_value(
                &text,
                r#"hoist_scaling_actions_total{provider="aws",group="web",direction="in",outcome="conflict"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            line_value(
                &text,
                r#"hoist_group_forecast_instances{provider="aws",group="web"}"#
            ),
            Some(3.5)
        );
        assert_eq!(
            line_value(
                &text,
                r#"hoist_group_forecast_peak_instances{provider="aws",group="web"}"#
            ),
            Some(8.0)
        );
    }

    #[test]
    fn every_listed_name_is_exported() {
        let t = Telemetry::new();
        t.emit(&Event::GroupObserved {
            provider: "sim".into(),
            group: snapshot("web"),
            min: 1,
            max: 3,
            cost_per_hour: Some(1.0),
            currency: Some("USD".into()),
            metered_cost: Some(2.5),
            metered_spot_cost: None,
            spot_instances: 0,
        });
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        t.emit(&Event::Forecast {
            provider: "sim".into(),
            group: "web".into(),
            points: vec![ForecastPoint {
                at,
                instances: 1.0,
                upper: None,
            }],
        });
        t.emit(&Event::Decided {
            provider: "sim".into(),
            decision: Decision {
                group: "web".into(),
                at,
                current: 1,
                desired: 1,
                direction: Direction::Hold,
                instance_class: None,
                reasons: vec![Reason {
                    source: "target_tracking[0]".into(),
                    recommended: Some(1),
                    message: "within tolerance".into(),
                }],
                dry_run: false,
            },
        });
        t.emit(&Event::Acted {
            provider: "sim".into(),
            group: "web".into(),
            from: 1,
            to: 2,
            error: None,
        });
        t.emit(&Event::MetricsMissing {
            provider: "sim".into(),
            group: "web".into(),
            metric: hoist_api::MetricKind::RequestRate,
            reason: "no series".into(),
        });
        t.emit(&Event::ProviderCall {
            provider: "sim".into(),
            operation: "describe_group",
            error: None,
            duration: Duration::from_millis(1),
        });
        t.emit(&Event::Retry {
            provider: "sim".into(),
            operation: "describe_group",
            attempt: 2,
        });
        t.emit(&Event::Circuit {
            provider: "sim".into(),
            open: false,
        });
        t.emit(&Event::Work {
            provider: "sim".into(),
            group: "web".into(),
            units_per_second: 10.0,
            unit: "requests".into(),
        });
        t.emit(&Event::Budget(budget_status("web-monthly", None)));
        t.emit(&Event::CostReconciled(reconciliation(
            "sim", 2, "103", "100",
        )));
        let text = t.encode();
        for name in METRIC_NAMES {
            let family = name.trim_end_matches("_total").trim_end_matches("_info");
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{name} missing from:\n{text}"
            );
        }
    }

    fn budget_status(name: &str, rung: Option<Rung>) -> BudgetStatus {
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        BudgetStatus {
            budget: name.into(),
            scope: "group web".into(),
            groups: vec!["web".into()],
            period: "monthly".into(),
            period_start: start,
            period_end: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            amount: 5_000.0,
            currency: "USD".into(),
            converted_from: None,
            spent: 3_100.0,
            run_rate_per_hour: 8.0,
            pace_per_hour: 7.5,
            forecast: 5_400.0,
            rung,
            target_scale: if rung.is_some() { 1.15 } else { 1.0 },
            capacity_kept: 1.0,
            actual_crossed: vec![50.0],
            forecast_crossed: vec![100.0],
            at: start,
        }
    }

    #[test]
    fn budgets_export_amount_spend_forecast_rung_and_target_scale() {
        let t = Telemetry::new();
        assert!(
            !t.encode().contains("hoist_budget_"),
            "no budget, no series"
        );
        t.emit(&Event::Budget(budget_status(
            "web-monthly",
            Some(Rung::Cap),
        )));
        t.emit(&Event::Budget(budget_status("api-monthly", None)));
        let text = t.encode();
        let web = r#"{budget="web-monthly",currency="USD",period="monthly"}"#;
        let api = r#"{budget="api-monthly",currency="USD",period="monthly"}"#;
        let value = |name: &str, labels: &str| line_value(&text, &format!("{name}{labels}"));
        assert_eq!(value("hoist_budget_amount", web), Some(5_000.0));
        assert_eq!(value("hoist_budget_spend", web), Some(3_100.0));
        assert_eq!(value("hoist_budget_forecast_spend", web), Some(5_400.0));
        assert_eq!(value("hoist_budget_rung", web), Some(2.0));
        assert_eq!(value("hoist_budget_target_scale", web), Some(1.15));
        // Inside the budget: -1, not 0 (0 is the `alert` rung).
        assert_eq!(value("hoist_budget_rung", api), Some(BUDGET_INSIDE_RUNG));
        assert_eq!(value("hoist_budget_target_scale", api), Some(1.0));
        assert!(text.contains("# TYPE hoist_budget_rung gauge"));

        // The next evaluation replaces the figures; on the `alert` rung the value is 0.
        let mut later = budget_status("api-monthly", Some(Rung::Alert));
        later.spent = 3_200.0;
        t.emit(&Event::Budget(later));
        let text = t.encode();
        assert_eq!(
            line_value(&text, &format!("hoist_budget_rung{api}")),
            Some(0.0)
        );
        assert_eq!(
            line_value(&text, &format!("hoist_budget_spend{api}")),
            Some(3_200.0)
        );
        assert_eq!(text.matches("hoist_budget_spend{").count(), 2, "{text}");
    }

    #[test]
    fn group_hourly_cost_and_cost_per_1000_units() {
        let t = Telemetry::new();
        let observe = |cost: f64| Event::GroupObserved {
            provider: "sim".into(),
            group: snapshot("web"),
            min: 1,
            max: 10,
            cost_per_hour: Some(cost),
            currency: Some("EUR".into()),
            metered_cost: None,
            metered_spot_cost: None,
            spot_instances: 0,
        };
        let work = |units_per_second: f64| Event::Work {
            provider: "sim".into(),
            group: "web".into(),
            units_per_second,
            unit: "requests".into(),
        };
        // Work before any cost: nothing to divide.
        t.emit(&work(50.0));
        assert!(!t.encode().contains("hoist_group_cost_per_1000_units"));
        t.emit(&observe(1.8));
        let text = t.encode();
        assert_eq!(
            line_value(
                &text,
                r#"hoist_group_total_hourly_cost{provider="sim",group="web",currency="EUR"}"#
            ),
            Some(1.8)
        );
        // The per-currency family stays as it was.
        assert_eq!(
            line_value(
                &text,
                r#"hoist_group_cost_eur_per_hour{provider="sim",group="web"}"#
            ),
            Some(1.8)
        );
        // 1.8 EUR/h over 50 req/s = 180,000 req/h: 0.01 EUR per 1,000 requests.
        let per_1000 = r#"hoist_group_cost_per_1000_units{provider="sim",group="web",currency="EUR",unit="requests"}"#;
        let v = line_value(&text, per_1000).unwrap();
        assert!((v - 0.01).abs() < 1e-12, "{v}");
        // The latest cost and the latest work both move it.
        t.emit(&observe(3.6));
        t.emit(&work(25.0));
        let v = line_value(&t.encode(), per_1000).unwrap();
        assert!((v - 0.04).abs() < 1e-12, "{v}");
        // No work: no value (rather than infinity or a stale one).
        t.emit(&work(0.0));
        let text = t.encode();
        assert_eq!(line_value(&text, per_1000), None);
        assert!(!text.contains("hoist_group_cost_per_1000_units"), "{text}");
        assert_eq!(
            line_value(
                &text,
                r#"hoist_group_total_hourly_cost{provider="sim",group="web",currency="EUR"}"#
            ),
            Some(3.6)
        );
    }

    fn reconciliation(provider: &str, day: u32, metered: &str, billed: &str) -> Reconciliation {
        hoist_engine::reconcile::compare(
            provider,
            chrono::NaiveDate::from_ymd_opt(2026, 3, day).unwrap(),
            metered.parse().unwrap(),
            billed.parse().unwrap(),
            "USD",
        )
    }

    #[test]
    fn the_last_reconciled_day_gives_the_drift_and_the_bill() {
        let t = Telemetry::new();
        assert!(!t.encode().contains("hoist_cost_reconcil"));
        t.emit(&Event::CostReconciled(reconciliation(
            "aws", 2, "103", "100",
        )));
        // An older day reconciled late (its bill lagged) does not replace the latest.
        t.emit(&Event::CostReconciled(reconciliation(
            "aws", 1, "50", "100",
        )));
        // A bill of 0 has no ratio, but its amount is exported.
        t.emit(&Event::CostReconciled(reconciliation("sim", 2, "1", "0")));
        let text = t.encode();
        let drift = line_value(
            &text,
            r#"hoist_cost_reconciliation_drift_ratio{provider="aws"}"#,
        )
        .unwrap();
        assert!((drift - 0.03).abs() < 1e-12, "{drift}");
        assert_eq!(
            line_value(
                &text,
                r#"hoist_cost_reconciled_billed{provider="aws",currency="USD"}"#
            ),
            Some(100.0)
        );
        assert!(!text.contains(r#"hoist_cost_reconciliation_drift_ratio{provider="sim"}"#));
        assert_eq!(
            line_value(
                &text,
                r#"hoist_cost_reconciled_billed{provider="sim",currency="USD"}"#
            ),
            Some(0.0)
        );
        assert!(text.contains("# TYPE hoist_cost_reconciliation_drift_ratio gauge"));
        t.emit(&Event::CostReconciled(reconciliation(
            "aws", 3, "90", "120",
        )));
        let drift = line_value(
            &t.encode(),
            r#"hoist_cost_reconciliation_drift_ratio{provider="aws"}"#,
        );
        assert_eq!(drift, Some(-0.25));
    }

    #[test]
    fn currency_slug_keeps_names_valid() {
        assert_eq!(currency_slug("USD"), "usd");
        assert_eq!(currency_slug("e u r"), "e_u_r");
        assert_eq!(currency_slug(""), "unknown");
    }
}
