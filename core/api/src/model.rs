//! The provider-neutral domain model: scaling groups, instances, instance classes, money and
//! metric time series. Units live in names and types (`price_per_hour`, `memory_mib`).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Identifies a scaling group within one provider (an ASG name, a VMSS resource id, ...).
pub type GroupId = String;
/// Identifies an instance within one provider.
pub type InstanceId = String;

/// The lifecycle state of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Asked for, booting; billed but not serving.
    Pending,
    /// Serving.
    Running,
    /// Leaving: draining connections or shutting down; no longer counted as capacity.
    Terminating,
    /// Gone.
    Terminated,
    /// Failed to start or crashed.
    Failed,
}

impl InstanceState {
    /// Whether the instance counts toward the group's capacity (pending or running).
    pub fn is_active(self) -> bool {
        matches!(self, InstanceState::Pending | InstanceState::Running)
    }
}

/// How an instance is bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityType {
    /// Pay as you go.
    OnDemand,
    /// Spare capacity at a discount, may be interrupted.
    Spot,
    /// Committed use.
    Reserved,
}

/// One instance in a scaling group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Provider identifier.
    pub id: InstanceId,
    /// Instance class name (`m5.large`, `Standard_D2s_v5`, ...).
    pub instance_class: String,
    /// Availability zone.
    pub zone: String,
    /// How the instance is bought.
    pub capacity_type: CapacityType,
    /// Lifecycle state.
    pub state: InstanceState,
    /// When it was asked for.
    pub launched_at: DateTime<Utc>,
    /// Never chosen for scale-in.
    pub protected_from_scale_in: bool,
}

/// A scaling group as a provider reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingGroup {
    /// Provider identifier.
    pub id: GroupId,
    /// Lower bound of desired capacity.
    pub min_size: u32,
    /// Upper bound of desired capacity.
    pub max_size: u32,
    /// Instances the provider is asked to keep.
    pub desired_capacity: u32,
    /// The instance class new instances get.
    pub instance_class: String,
    /// Zones the group spans.
    pub zones: Vec<String>,
    /// The group's instances (any state except long gone).
    pub instances: Vec<Instance>,
    /// Free-form labels or tags.
    pub tags: BTreeMap<String, String>,
}

impl ScalingGroup {
    /// Instances in `state`.
    pub fn count_in(&self, state: InstanceState) -> u32 {
        self.instances.iter().filter(|i| i.state == state).count() as u32
    }

    /// Instances that serve (running).
    pub fn ready(&self) -> u32 {
        self.count_in(InstanceState::Running)
    }

    /// Instances that are booting.
    pub fn pending(&self) -> u32 {
        self.count_in(InstanceState::Pending)
    }
}

/// A neutral instance family, the same words for every cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceFamily {
    /// Balanced CPU and memory.
    General,
    /// More CPU per GiB.
    Compute,
    /// More memory per vCPU.
    Memory,
    /// Local storage heavy.
    Storage,
    /// Network heavy.
    Network,
    /// GPUs or other accelerators.
    Accelerated,
    /// Burstable, shared-core.
    Burstable,
}

/// CPU architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// x86-64.
    X86_64,
    /// 64-bit ARM.
    Arm64,
}

/// An ISO 4217 currency code such as `USD`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Currency(pub String);

impl Currency {
    /// US dollars, the currency of the built-in catalogs.
    pub fn usd() -> Self {
        Currency("USD".to_owned())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub use rust_decimal::Decimal;

/// An amount of money in a currency: an exact decimal, so a month of per-hour charges adds up
/// to the cent. On the wire (JSON, the plugin protocol) the amount is a plain number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The amount, in units of the currency (not cents).
    #[serde(with = "rust_decimal::serde::float")]
    pub amount: Decimal,
    /// The currency.
    pub currency: Currency,
}

impl Money {
    /// `amount` in `currency`.
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Money { amount, currency }
    }

    /// `amount` US dollars.
    pub fn usd(amount: Decimal) -> Self {
        Money::new(amount, Currency::usd())
    }

    /// `amount` in `currency` from a binary float, as the shortest decimal that reads back as
    /// the same float (`0.096` stays `0.096`); `None` for NaN, infinities and amounts beyond
    /// what a [`Decimal`] holds.
    pub fn from_f64(amount: f64, currency: Currency) -> Option<Self> {
        if !amount.is_finite() {
            return None;
        }
        let amount: Decimal = format!("{amount}").parse().ok()?;
        Some(Money::new(amount, currency))
    }

    /// `amount` US dollars from a binary float; see [`Money::from_f64`]. Panics on NaN,
    /// infinities and amounts out of range: for literals and values already checked.
    pub fn usd_f64(amount: f64) -> Self {
        Money::from_f64(amount, Currency::usd())
            .unwrap_or_else(|| panic!("{amount} is not an amount of money"))
    }

    /// The amount as a binary float, for estimates and ratios (not for sums of charges).
    pub fn to_f64(&self) -> f64 {
        use rust_decimal::prelude::ToPrimitive;
        self.amount.to_f64().unwrap_or(f64::NAN)
    }
}

impl fmt::Display for Money {
    /// The amount to the cent, rounded half away from zero, and the currency: `12.35 USD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cents = self
            .amount
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        write!(f, "{cents:.2} {}", self.currency)
    }
}

#[cfg(test)]
mod money_tests {
    use super::*;

    #[test]
    fn sums_are_exact_and_display_rounds_half_away_from_zero() {
        let tenth = Money::usd_f64(0.1);
        let sum: Decimal = (0..30).map(|_| tenth.amount).sum();
        assert_eq!(sum, Decimal::from(3));
        assert_eq!(Money::usd("0.125".parse().unwrap()).to_string(), "0.13 USD");
        assert_eq!(Money::usd("2".parse().unwrap()).to_string(), "2.00 USD");
        assert_eq!(Money::usd_f64(0.096).amount.to_string(), "0.096");
        assert!(Money::from_f64(f64::NAN, Currency::usd()).is_none());
        assert!(Money::from_f64(1e300, Currency::usd()).is_none());
    }

    #[test]
    fn the_wire_form_is_a_plain_number() {
        let json = serde_json::to_string(&Money::usd_f64(0.35)).unwrap();
        assert_eq!(json, r#"{"amount":0.35,"currency":"USD"}"#);
        let back: Money = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Money::usd_f64(0.35));
    }
}

/// The unit a rate is quoted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateUnit {
    /// Per hour.
    PerHour,
    /// Per calendar month (730 hours for conversions).
    PerMonth,
}

/// Where a price came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceSource {
    /// `table`, `live`, `config`, `sim`, ...
    pub kind: String,
    /// What exactly: a table's name and date, an API, a file.
    pub detail: String,
}

/// A price: money per unit of time, with its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// The money per `unit`.
    pub amount: Money,
    /// The rate unit.
    pub unit: RateUnit,
    /// Where it came from.
    pub source: PriceSource,
}

impl Price {
    /// The price per hour in its currency, as a float for estimates; see
    /// [`Price::per_hour_exact`].
    pub fn per_hour(&self) -> f64 {
        use rust_decimal::prelude::ToPrimitive;
        self.per_hour_exact().to_f64().unwrap_or(f64::NAN)
    }

    /// The price per hour in its currency, exactly (a monthly rate is divided by 730 hours).
    pub fn per_hour_exact(&self) -> Decimal {
        match self.unit {
            RateUnit::PerHour => self.amount.amount,
            RateUnit::PerMonth => self.amount.amount / Decimal::from(730),
        }
    }
}

/// One way to buy a class: a zone and capacity type, at a price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offering {
    /// Zone (or region when prices do not vary by zone).
    pub zone: String,
    /// On-demand, spot or reserved.
    pub capacity_type: CapacityType,
    /// What it costs.
    pub price: Price,
}

/// An instance class (instance type, VM size, machine type, node shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceClass {
    /// Provider name of the class.
    pub name: String,
    /// Neutral family.
    pub family: InstanceFamily,
    /// Virtual CPUs.
    pub vcpus: f64,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Accelerators.
    pub gpus: u32,
    /// CPU architecture.
    pub architecture: Architecture,
    /// Network bandwidth in Gbit/s when known.
    pub network_gbps: Option<f64>,
    /// Where and how it can be bought.
    pub offerings: Vec<Offering>,
}

impl InstanceClass {
    /// The cheapest offering of `capacity_type`, if any.
    pub fn cheapest(&self, capacity_type: CapacityType) -> Option<&Offering> {
        self.offerings
            .iter()
            .filter(|o| o.capacity_type == capacity_type)
            .min_by(|a, b| a.price.per_hour().total_cmp(&b.price.per_hour()))
    }
}

/// A signal the engine can scale on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Average CPU utilisation of ready instances, as a fraction 0..=1.
    Utilization,
    /// Requests per second, summed over the group.
    RequestRate,
    /// Messages waiting.
    QueueDepth,
    /// 95th percentile latency, seconds.
    LatencyP95,
    /// 99th percentile latency, seconds.
    LatencyP99,
    /// Share of requests failing, 0..=1.
    ErrorRate,
    /// A named custom metric.
    Custom(String),
}

impl MetricKind {
    /// A stable short name for logs, reasons and labels.
    pub fn name(&self) -> &str {
        match self {
            MetricKind::Utilization => "utilization",
            MetricKind::RequestRate => "request_rate",
            MetricKind::QueueDepth => "queue_depth",
            MetricKind::LatencyP95 => "latency_p95",
            MetricKind::LatencyP99 => "latency_p99",
            MetricKind::ErrorRate => "error_rate",
            MetricKind::Custom(name) => name,
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One observation of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When.
    pub at: DateTime<Utc>,
    /// The value (may be NaN when a source reports it; the engine treats NaN as missing).
    pub value: f64,
}

/// A time series with its labels.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TimeSeries {
    /// Labels identifying the series.
    pub labels: BTreeMap<String, String>,
    /// Samples, oldest first.
    pub samples: Vec<Sample>,
}

/// What to ask a [`crate::MetricsSource`] for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricQuery {
    /// The group the metric describes.
    pub group: GroupId,
    /// The signal.
    pub metric: MetricKind,
    /// A source-specific expression (PromQL, a CloudWatch metric spec), when the policy gives one.
    pub expression: Option<String>,
}

/// A half-open interval of time, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
}

/// An in-flight or finished change to a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// Provider identifier of the activity.
    pub id: String,
    /// What it does.
    pub description: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Progress 0..=100 when known.
    pub progress_percent: Option<u8>,
    /// Whether it is done.
    pub done: bool,
}
