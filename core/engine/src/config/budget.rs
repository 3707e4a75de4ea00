//! The cost sections of a policy file: `costs:` (the reporting currency, exchange rates, the cost
//! ledger) and `budgets:` (what may be spent, on what, per period, and what Hoist does when the
//! forecast says a budget will be exceeded).
//!
//! ```yaml
//! costs:
//!   currency: USD
//!   exchange_rates:
//!     as_of: 2026-11-30
//!     rates: { EUR: 1.08 }        # 1 EUR = 1.08 USD
//! budgets:
//!   - name: web-monthly
//!     scope: { group: web }        # all | {provider: P} | {group: G} | {tag: {team: payments}}
//!     period: monthly              # daily | weekly | monthly | {custom: {every: 10d, starting: ...}}
//!     amount: 5000
//!     currency: USD
//!     alert_on: { actual: [50, 80, 100], forecast: [100] }
//!     action: cap                  # alert | prefer_cheaper | cap | deny_scale_out
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone as _, Utc};
use hoist_api::model::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;

/// `costs:`: how money is reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CostsConfig {
    /// The currency every figure is reported in (ISO 4217). Default `USD`.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Rates from other currencies into `currency`, for providers or budgets that use another.
    #[serde(default)]
    pub exchange_rates: Option<ExchangeRates>,
    /// Where the cost ledger (JSON lines: each group's spend and each budget's state, at most
    /// once per `ledger_every`) goes, relative to the policy file. Default: `hoist-costs.jsonl`
    /// in the working directory.
    #[serde(default)]
    pub ledger: Option<PathBuf>,
    /// How often a group's and a budget's state is written to the ledger. Default `1h`.
    #[serde(default = "default_ledger_every")]
    pub ledger_every: HumanDuration,
    /// How often actual cost is read back from providers that report it, to reconcile the
    /// meter against it. Default `6h`.
    #[serde(default = "default_reconcile_every")]
    pub reconcile_every: HumanDuration,
}

impl Default for CostsConfig {
    fn default() -> Self {
        CostsConfig {
            currency: default_currency(),
            exchange_rates: None,
            ledger: None,
            ledger_every: default_ledger_every(),
            reconcile_every: default_reconcile_every(),
        }
    }
}

fn default_currency() -> String {
    "USD".into()
}

fn default_ledger_every() -> HumanDuration {
    HumanDuration::from_secs(3600)
}

fn default_reconcile_every() -> HumanDuration {
    HumanDuration::from_secs(6 * 3600)
}

/// A table of exchange rates into the reporting currency, with the date they were taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRates {
    /// The day the rates were taken; shown beside every converted figure.
    #[schemars(with = "String")]
    pub as_of: NaiveDate,
    /// One unit of the key currency is this many units of the reporting currency.
    #[schemars(with = "BTreeMap<String, f64>")]
    #[serde(with = "decimal_map")]
    pub rates: BTreeMap<String, Decimal>,
}

mod decimal_map {
    use std::collections::BTreeMap;

    use hoist_api::model::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<String, Decimal>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let plain: BTreeMap<&String, f64> = map
            .iter()
            .map(|(k, v)| (k, super::decimal_f64(*v)))
            .collect();
        plain.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Decimal>, D::Error> {
        let plain = BTreeMap::<String, f64>::deserialize(d)?;
        plain
            .into_iter()
            .map(|(k, v)| {
                super::decimal_of(v).map(|d| (k.clone(), d)).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "rate of {k}: {v} is not a number a rate can be"
                    ))
                })
            })
            .collect()
    }
}

/// A finite float as a decimal (the shortest decimal that reads back as the float).
pub(crate) fn decimal_of(value: f64) -> Option<Decimal> {
    if !value.is_finite() {
        return None;
    }
    format!("{value}").parse().ok()
}

/// A decimal as the nearest float.
pub(crate) fn decimal_f64(value: Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    value.to_f64().unwrap_or(f64::NAN)
}

/// Converts amounts into the reporting currency.
#[derive(Debug, Clone, PartialEq)]
pub struct Converter {
    currency: String,
    rates: Option<ExchangeRates>,
}

/// A figure converted into the reporting currency, with the rate and its date when it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Converted {
    /// The amount in the reporting currency.
    pub amount: f64,
    /// The reporting currency.
    pub currency: String,
    /// `Some((from, rate, as_of))` when the amount was converted.
    pub via: Option<(String, f64, NaiveDate)>,
}

impl Converter {
    /// From `costs:`.
    pub fn new(costs: &CostsConfig) -> Self {
        Converter {
            currency: costs.currency.clone(),
            rates: costs.exchange_rates.clone(),
        }
    }

    /// The reporting currency.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The day the rates were taken, if there is a table.
    pub fn as_of(&self) -> Option<NaiveDate> {
        self.rates.as_ref().map(|r| r.as_of)
    }

    /// Whether `currency` can be converted (it is the reporting one, or has a rate).
    pub fn knows(&self, currency: &str) -> bool {
        self.rate(currency).is_some()
    }

    /// The rate from `currency` into the reporting currency (1 for the reporting currency).
    pub fn rate(&self, currency: &str) -> Option<Decimal> {
        if currency.eq_ignore_ascii_case(&self.currency) {
            return Some(Decimal::ONE);
        }
        self.rates
            .as_ref()?
            .rates
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(currency))
            .map(|(_, v)| *v)
    }

    /// `amount` of `currency` in the reporting currency; `None` without a rate (or past what a
    /// decimal holds, which validation keeps budgets and rates far from).
    pub fn convert(&self, amount: Decimal, currency: &str) -> Option<Decimal> {
        amount.checked_mul(self.rate(currency)?)
    }

    /// `amount` of `currency` in the reporting currency, saying how it was converted.
    pub fn converted(&self, amount: f64, currency: &str) -> Option<Converted> {
        let rate = self.rate(currency)?;
        let same = currency.eq_ignore_ascii_case(&self.currency);
        Some(Converted {
            amount: amount * decimal_f64(rate),
            currency: self.currency.clone(),
            via: if same {
                None
            } else {
                Some((
                    currency.to_ascii_uppercase(),
                    decimal_f64(rate),
                    self.as_of()?,
                ))
            },
        })
    }
}

/// What a budget covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BudgetScope {
    /// Every group of the policy file.
    All,
    /// The groups on one provider (a key of `providers`).
    Provider(String),
    /// One group (its `name`).
    Group(String),
    /// The groups whose `labels` include all of these.
    Tag(BTreeMap<String, String>),
}

impl fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetScope::All => f.write_str("all groups"),
            BudgetScope::Provider(p) => write!(f, "provider {p}"),
            BudgetScope::Group(g) => write!(f, "group {g}"),
            BudgetScope::Tag(tags) => {
                let list: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "tag {}", list.join(","))
            }
        }
    }
}

impl BudgetScope {
    /// Whether a group (by name, provider and labels) is in scope.
    pub fn covers(&self, group: &str, provider: &str, labels: &BTreeMap<String, String>) -> bool {
        match self {
            BudgetScope::All => true,
            BudgetScope::Provider(p) => p == provider,
            BudgetScope::Group(g) => g == group,
            BudgetScope::Tag(tags) => tags.iter().all(|(k, v)| labels.get(k) == Some(v)),
        }
    }
}

/// A budget's period. Calendar periods are in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BudgetPeriod {
    /// Each UTC day.
    Daily,
    /// Each week from Monday 00:00 UTC.
    Weekly,
    /// Each calendar month.
    Monthly,
    /// Periods of a fixed length from a start.
    Custom {
        /// The length of each period.
        every: HumanDuration,
        /// The start of the first period (RFC 3339).
        #[schemars(with = "String")]
        starting: DateTime<Utc>,
    },
}

impl BudgetPeriod {
    /// The period that contains `at`: `[start, end)`.
    pub fn containing(&self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let day = at.date_naive();
        let midnight =
            |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
        match self {
            BudgetPeriod::Daily => {
                let start = midnight(day);
                (start, start + TimeDelta::days(1))
            }
            BudgetPeriod::Weekly => {
                let monday = day - TimeDelta::days(i64::from(day.weekday().num_days_from_monday()));
                let start = midnight(monday);
                (start, start + TimeDelta::days(7))
            }
            BudgetPeriod::Monthly => {
                let first = day.with_day(1).unwrap_or(day);
                let next = if first.month() == 12 {
                    NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
                }
                .unwrap_or(first);
                (midnight(first), midnight(next))
            }
            BudgetPeriod::Custom { every, starting } => {
                // Checked throughout: validation keeps `every` within MAX_CUSTOM_PERIOD, but a
                // configuration built in code may not.
                let len = every.as_delta().clamp(
                    TimeDelta::seconds(1),
                    TimeDelta::days(MAX_CUSTOM_PERIOD_DAYS),
                );
                let secs = len.num_seconds();
                let offset = at.signed_duration_since(*starting).num_seconds();
                let start = offset
                    .div_euclid(secs)
                    .checked_mul(secs)
                    .and_then(|s| starting.checked_add_signed(TimeDelta::seconds(s)))
                    .unwrap_or(*starting);
                let end = start
                    .checked_add_signed(len)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                (start, end)
            }
        }
    }

    /// A short name (`monthly`, `every 10d`).
    pub fn label(&self) -> String {
        match self {
            BudgetPeriod::Daily => "daily".into(),
            BudgetPeriod::Weekly => "weekly".into(),
            BudgetPeriod::Monthly => "monthly".into(),
            BudgetPeriod::Custom { every, .. } => format!("every {every}"),
        }
    }
}

/// The longest custom budget period, in days (ten years).
pub const MAX_CUSTOM_PERIOD_DAYS: i64 = 3660;

/// The largest budget amount and exchange rate a policy file may give.
pub const MAX_BUDGET_AMOUNT: f64 = hoist_api::input::MAX_AMOUNT;

/// The rungs of the budget ladder, in the order they are climbed.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
    Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Rung {
    /// Tell only.
    #[default]
    Alert,
    /// Instance-class choices and vertical moves prefer cheaper classes and spot.
    PreferCheaper,
    /// Scale-out limited to what keeps the forecast inside the budget.
    Cap,
    /// No scale-out, except what restores the group's availability floor.
    DenyScaleOut,
}

impl Rung {
    /// `alert`, `prefer_cheaper`, `cap` or `deny_scale_out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rung::Alert => "alert",
            Rung::PreferCheaper => "prefer_cheaper",
            Rung::Cap => "cap",
            Rung::DenyScaleOut => "deny_scale_out",
        }
    }

    /// 0 for `alert` up to 3 for `deny_scale_out` (the `/metrics` value).
    pub fn level(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Rung {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thresholds, in percent of the budget, at which an alert is raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertOn {
    /// On the spend so far in the period. Default `[50, 80, 100]`.
    #[serde(default = "default_actual")]
    pub actual: Vec<f64>,
    /// On the forecast spend to the period's end. Default `[100]`.
    #[serde(default = "default_forecast")]
    pub forecast: Vec<f64>,
}

impl Default for AlertOn {
    fn default() -> Self {
        AlertOn {
            actual: default_actual(),
            forecast: default_forecast(),
        }
    }
}

fn default_actual() -> Vec<f64> {
    vec![50.0, 80.0, 100.0]
}

fn default_forecast() -> Vec<f64> {
    vec![100.0]
}

/// One budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// A name, unique in the file (used in alerts, metrics and decisions).
    pub name: String,
    /// What it covers. Default: every group.
    #[serde(default = "default_scope")]
    pub scope: BudgetScope,
    /// The period it resets on.
    pub period: BudgetPeriod,
    /// What may be spent in one period.
    #[serde(with = "rust_decimal::serde::float")]
    #[schemars(with = "f64")]
    pub amount: Decimal,
    /// The amount's currency (ISO 4217). Default: `costs.currency`.
    #[serde(default)]
    pub currency: Option<String>,
    /// When to alert.
    #[serde(default)]
    pub alert_on: AlertOn,
    /// The highest rung the budget may climb when its forecast exceeds it. Default `alert`.
    #[serde(default)]
    pub action: Rung,
    /// Under `cap`: the utilisation target-tracking policies may be run at before capacity is
    /// cut (headroom is given up before demand goes unserved). Default 0.9.
    #[serde(default = "default_max_utilization")]
    pub max_utilization: f64,
}

fn default_scope() -> BudgetScope {
    BudgetScope::All
}

fn default_max_utilization() -> f64 {
    0.9
}

/// Whether `code` has the shape of an ISO 4217 code (three capital letters); whether it can be
/// converted is a separate check against the rate table.
pub(crate) fn plausible_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// The day an RFC 3339 time is in (for labels).
pub fn day_of(at: DateTime<Utc>) -> NaiveDate {
    at.date_naive()
}
