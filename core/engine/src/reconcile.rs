//! Reconciling the cost meter with the provider's own bill, one complete UTC day at a time.
//!
//! The meter ([`crate::meter`]) charges instances as the control loop sees them; providers that
//! report their actual cost (the simulated cloud, AWS Cost Explorer, ...) bill the same
//! instances. Real clouds' cost data lags by hours (Cost Explorer up to a day), so the two are
//! compared only for complete past UTC days:
//!
//! - [`Reconciler::checkpoint`] is fed, at every evaluation, what the meter charged a provider's
//!   groups since it first observed them (a cumulative amount). It keeps that cumulative amount
//!   at every UTC midnight the observations pass, interpolated linearly between the last
//!   observation before midnight and the first at or after it.
//! - A day whose two midnights were both checkpointed is complete:
//!   [`Reconciler::metered_days`] gives what the meter charged in it (the difference of the two).
//! - [`billed_days`] asks a [`BillingProvider`] for those days (one daily query) and
//!   [`compare`] sets the meter against the bill: a [`Reconciliation`].
//!
//! The control loop ([`crate::control::ControlLoop::with_reconciliation`]) does the I/O; this
//! module's [`Reconciler`] is pure: it reads no clock, calls nothing and is unit-tested alone.
//! It also keeps, per provider, which days were reconciled (a day is reconciled once), whether a
//! reconciliation is under way and when the next one is due ([`Reconciler::begin`],
//! [`Reconciler::finish`], [`Reconciler::abort`]).
//!
//! A midnight's value is provisional while further observations can still come at the instant
//! that decided it (several groups of one provider are observed at the same virtual instant on
//! the simulated cloud): it is final once an observation at a later time arrives, and only days
//! whose midnights are final count as complete.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::TimeRange;
use crate::provider::{BillingProvider, CostGranularity, CostQuery};
use hoist_api::Decimal;

/// The meter against the bill for one provider and one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Provider name in the policy file.
    pub provider: String,
    /// The UTC day.
    pub day: NaiveDate,
    /// What the meter charged the provider's groups in the day.
    #[serde(with = "rust_decimal::serde::float")]
    pub metered: Decimal,
    /// What the provider billed for the day.
    #[serde(with = "rust_decimal::serde::float")]
    pub billed: Decimal,
    /// Currency of the bill (and of the meter's prices).
    pub currency: String,
    /// Metered minus billed: positive when the meter charged more than the bill.
    #[serde(with = "rust_decimal::serde::float")]
    pub difference: Decimal,
    /// The difference as a fraction of the bill, `(metered - billed) / billed`; 0 when both are
    /// 0, `None` when only the bill is 0.
    pub relative: Option<f64>,
}

impl Reconciliation {
    /// The billed amount as a binary float (for gauges).
    pub fn billed_f64(&self) -> f64 {
        to_f64(self.billed)
    }

    /// The metered amount as a binary float.
    pub fn metered_f64(&self) -> f64 {
        to_f64(self.metered)
    }

    /// The difference as a binary float.
    pub fn difference_f64(&self) -> f64 {
        to_f64(self.difference)
    }
}

fn to_f64(d: Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    d.to_f64().unwrap_or(f64::NAN)
}

/// Sets what the meter charged `provider` on `day` against what it billed (in `currency`).
pub fn compare(
    provider: &str,
    day: NaiveDate,
    metered: Decimal,
    billed: Decimal,
    currency: impl Into<String>,
) -> Reconciliation {
    // Checked: a bill near the largest decimal (a provider that lies) must not panic.
    let difference = metered.checked_sub(billed).unwrap_or(Decimal::MIN);
    let relative = if billed.is_zero() {
        metered.is_zero().then_some(0.0)
    } else {
        difference.checked_div(billed).map(to_f64)
    };
    Reconciliation {
        provider: provider.to_owned(),
        day,
        metered,
        billed,
        currency: currency.into(),
        difference,
        relative,
    }
}

/// `day` at 00:00 UTC.
pub fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

fn next_day(day: NaiveDate) -> NaiveDate {
    day.checked_add_days(Days::new(1)).unwrap_or(day)
}

/// What `billing` billed for each of `days` (UTC), with its currency: one daily cost query
/// from the first day's start to the last day's end, its entries summed per day. Days the
/// answer has no entry for (the provider's data lags) are missing from the map, to be asked
/// again later; entries for days not asked for are ignored.
pub async fn billed_days(
    billing: &dyn BillingProvider,
    days: &[NaiveDate],
) -> Result<BTreeMap<NaiveDate, (Decimal, String)>> {
    let wanted: BTreeSet<NaiveDate> = days.iter().copied().collect();
    let (Some(first), Some(last)) = (wanted.first(), wanted.last()) else {
        return Ok(BTreeMap::new());
    };
    let query = CostQuery {
        range: TimeRange {
            start: midnight(*first),
            end: midnight(next_day(*last)),
        },
        granularity: CostGranularity::Daily,
        group_by: None,
    };
    let entries = billing.cost(&query).await?;
    let mut billed: BTreeMap<NaiveDate, (Decimal, String)> = BTreeMap::new();
    for entry in entries {
        let day = entry.start.date_naive();
        if !wanted.contains(&day) || entry.end > midnight(next_day(day)) {
            continue;
        }
        let currency = entry.amount.currency.0;
        match billed.get_mut(&day) {
            Some((sum, c)) if *c == currency => {
                // A bill past what a decimal holds is a lie, not a day to compare.
                *sum = sum.checked_add(entry.amount.amount).ok_or_else(|| {
                    Error::invalid_input(format!(
                        "the bill for {day} adds up past what can be counted"
                    ))
                    .with_operation("cost")
                })?;
            }
            Some((_, c)) => {
                return Err(Error::invalid_input(format!(
                    "the bill for {day} is in two currencies, {c} and {currency}"
                ))
                .with_operation("cost"));
            }
            None => {
                billed.insert(day, (entry.amount.amount, currency));
            }
        }
    }
    Ok(billed)
}

/// One observation: when, and the cumulative amount then.
type Reading = (DateTime<Utc>, Decimal);

/// One provider's checkpoints and reconciliation state.
#[derive(Debug, Clone, Default)]
struct Track {
    /// The latest observation.
    last: Option<Reading>,
    /// The latest observation at a time before `last`'s.
    before: Option<Reading>,
    /// The cumulative amount at 00:00 UTC of each date.
    midnights: BTreeMap<NaiveDate, Decimal>,
    /// Complete days already reconciled (pruned with the midnights).
    reconciled: BTreeSet<NaiveDate>,
    /// Whether a reconciliation is under way.
    in_flight: bool,
    /// When the next reconciliation may start (none yet: as soon as a day is complete).
    next_attempt: Option<DateTime<Utc>>,
}

impl Track {
    /// Records the midnights `last` decides: those after `before` up to `last`, interpolated;
    /// with no earlier observation, only `last` itself when it is at midnight.
    fn decide_midnights(&mut self) {
        let Some((t1, v1)) = self.last else {
            return;
        };
        let Some((t0, v0)) = self.before else {
            if t1 == midnight(t1.date_naive()) {
                self.midnights.insert(t1.date_naive(), v1);
            }
            return;
        };
        let span = Decimal::from((t1 - t0).num_milliseconds());
        let mut day = next_day(t0.date_naive());
        while midnight(day) <= t1 {
            let at = midnight(day);
            let value = if at == t1 || span.is_zero() {
                v1
            } else {
                let part = Decimal::from((at - t0).num_milliseconds());
                v1.checked_sub(v0)
                    .and_then(|d| d.checked_mul(part))
                    .and_then(|d| d.checked_div(span))
                    .and_then(|d| v0.checked_add(d))
                    .unwrap_or(v1)
            };
            self.midnights.insert(day, value);
            let next = next_day(day);
            if next == day {
                break;
            }
            day = next;
        }
    }

    /// Whether the midnight of `date` can no longer change.
    fn is_final(&self, date: NaiveDate) -> bool {
        self.before.is_some_and(|(t, _)| midnight(date) <= t)
    }

    fn metered_days(&self) -> Vec<(NaiveDate, Decimal)> {
        self.midnights
            .iter()
            .filter_map(|(day, start)| {
                let end_day = next_day(*day);
                let end = self.midnights.get(&end_day)?;
                self.is_final(end_day).then(|| (*day, *end - *start))
            })
            .collect()
    }

    /// Forgets the midnights no complete-and-unreconciled day (nor the day still open) needs,
    /// and the reconciled days they covered.
    fn prune(&mut self) {
        let latest = self.midnights.keys().next_back().copied();
        let keep: BTreeSet<NaiveDate> = self
            .midnights
            .keys()
            .copied()
            .filter(|m| {
                let previous = m.checked_sub_days(Days::new(1));
                let next = next_day(*m);
                Some(*m) == latest
                    || (self.midnights.contains_key(&next) && !self.reconciled.contains(m))
                    || previous.is_some_and(|p| {
                        self.midnights.contains_key(&p) && !self.reconciled.contains(&p)
                    })
            })
            .collect();
        self.midnights.retain(|m, _| keep.contains(m));
        let midnights = &self.midnights;
        self.reconciled
            .retain(|d| midnights.contains_key(d) && midnights.contains_key(&next_day(*d)));
    }
}

/// The meter's cumulative amount at each UTC midnight, per provider, and which complete days
/// were reconciled. See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct Reconciler {
    providers: BTreeMap<String, Track>,
}

impl Reconciler {
    /// A reconciler that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that at `now` the meter had charged `provider`'s groups `cumulative` since it
    /// first observed them. Observations older than the latest one are ignored; another one at
    /// the same instant replaces it.
    pub fn checkpoint(&mut self, provider: &str, now: DateTime<Utc>, cumulative: Decimal) {
        let track = match self.providers.get_mut(provider) {
            Some(track) => track,
            None => self.providers.entry(provider.to_owned()).or_default(),
        };
        match track.last {
            Some((last, _)) if now < last => return,
            Some((last, _)) if now == last => {}
            Some(previous) => track.before = Some(previous),
            None => {}
        }
        track.last = Some((now, cumulative));
        track.decide_midnights();
    }

    /// What the meter charged `provider` in each complete UTC day (both of its midnights
    /// checkpointed and final), oldest first, reconciled or not.
    pub fn metered_days(&self, provider: &str) -> Vec<(NaiveDate, Decimal)> {
        self.providers
            .get(provider)
            .map(Track::metered_days)
            .unwrap_or_default()
    }

    /// The complete days of `provider` not reconciled yet, oldest first.
    pub fn unreconciled_days(&self, provider: &str) -> Vec<(NaiveDate, Decimal)> {
        let Some(track) = self.providers.get(provider) else {
            return Vec::new();
        };
        track
            .metered_days()
            .into_iter()
            .filter(|(day, _)| !track.reconciled.contains(day))
            .collect()
    }

    /// Starts a reconciliation of `provider` at `now` when one is due: none is under way, the
    /// last one started at least `every` ago (or there was none) and some complete day is not
    /// reconciled yet. Returns those days with what the meter charged in each; the caller asks
    /// the bill and ends with [`Reconciler::finish`] (or [`Reconciler::abort`] on failure).
    pub fn begin(
        &mut self,
        provider: &str,
        now: DateTime<Utc>,
        every: TimeDelta,
    ) -> Option<Vec<(NaiveDate, Decimal)>> {
        self.begin_settled(provider, now, every, TimeDelta::zero())
    }

    /// [`Reconciler::begin`], offering only days that ended at least `settle` ago: a real
    /// cloud's bill for a day keeps growing for hours after it ends (Cost Explorer's by up to
    /// a day), and a day is reconciled only once.
    pub fn begin_settled(
        &mut self,
        provider: &str,
        now: DateTime<Utc>,
        every: TimeDelta,
        settle: TimeDelta,
    ) -> Option<Vec<(NaiveDate, Decimal)>> {
        let days: Vec<(NaiveDate, Decimal)> = self
            .unreconciled_days(provider)
            .into_iter()
            .filter(|(day, _)| {
                day.succ_opt()
                    .and_then(|next| next.and_hms_opt(0, 0, 0))
                    .is_some_and(|end| end.and_utc() + settle <= now)
            })
            .collect();
        let track = self.providers.get_mut(provider)?;
        if track.in_flight || track.next_attempt.is_some_and(|next| now < next) || days.is_empty() {
            return None;
        }
        track.in_flight = true;
        track.next_attempt = Some(
            now.checked_add_signed(every)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        );
        Some(days)
    }

    /// Ends the reconciliation under way for `provider`: `done` are reconciled and never
    /// offered again; the other days are offered at the next one.
    pub fn finish(&mut self, provider: &str, done: &[NaiveDate]) {
        if let Some(track) = self.providers.get_mut(provider) {
            track.in_flight = false;
            track.reconciled.extend(done.iter().copied());
            track.prune();
        }
    }

    /// Ends the reconciliation under way for `provider` without reconciling anything (the bill
    /// could not be read): its days are offered again at the next one.
    pub fn abort(&mut self, provider: &str) {
        if let Some(track) = self.providers.get_mut(provider) {
            track.in_flight = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use chrono::TimeZone;
    use hoist_api::{BillingCapabilities, CostEntry, Currency, Money};
    use std::sync::Mutex;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn date(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).unwrap()
    }

    #[test]
    fn midnights_are_interpolated_between_the_observations_around_them() {
        let mut r = Reconciler::new();
        // 1 a minute from 23:00 on the 1st: 60 at midnight.
        r.checkpoint("aws", at(1, 23, 0), dec("0"));
        r.checkpoint("aws", at(1, 23, 50), dec("50"));
        // The observations around midnight are 23:50 (50) and 00:30 (90): 60 at midnight.
        r.checkpoint("aws", at(2, 0, 30), dec("90"));
        // Only one midnight: no complete day yet.
        assert!(r.metered_days("aws").is_empty());
        r.checkpoint("aws", at(2, 12, 0), dec("500"));
        // 23:30 (1000) and 00:30 on the 3rd (1240): 1120 at midnight.
        r.checkpoint("aws", at(2, 23, 30), dec("1000"));
        r.checkpoint("aws", at(3, 0, 30), dec("1240"));
        assert!(
            r.metered_days("aws").is_empty(),
            "the 3rd's midnight is final only after a later observation"
        );
        r.checkpoint("aws", at(3, 0, 31), dec("1241"));
        assert_eq!(r.metered_days("aws"), vec![(date(2), dec("1060"))]);
        assert!(r.metered_days("gcp").is_empty());
    }

    #[test]
    fn only_complete_days_count_and_a_start_at_midnight_counts() {
        let mut r = Reconciler::new();
        // Starting mid-day: the first day is incomplete.
        r.checkpoint("sim", at(1, 10, 0), dec("0"));
        r.checkpoint("sim", at(2, 0, 0), dec("14"));
        r.checkpoint("sim", at(2, 6, 0), dec("20"));
        assert!(r.metered_days("sim").is_empty());
        // A gap over two midnights: both are interpolated (here 1 an hour).
        r.checkpoint("sim", at(4, 6, 0), dec("68"));
        r.checkpoint("sim", at(4, 7, 0), dec("69"));
        assert_eq!(
            r.metered_days("sim"),
            vec![(date(2), dec("24")), (date(3), dec("24"))]
        );

        // Starting exactly at midnight: the first observation is the day's start.
        let mut r = Reconciler::new();
        r.checkpoint("sim", at(1, 0, 0), dec("0"));
        // Another group of the provider observed at the same instant replaces the value.
        r.checkpoint("sim", at(1, 0, 0), dec("0.5"));
        r.checkpoint("sim", at(1, 12, 0), dec("10"));
        r.checkpoint("sim", at(2, 0, 0), dec("20"));
        r.checkpoint("sim", at(2, 0, 0), dec("20.5"));
        // Out of order: ignored.
        r.checkpoint("sim", at(1, 23, 0), dec("1000"));
        assert!(r.metered_days("sim").is_empty());
        r.checkpoint("sim", at(2, 0, 1), dec("20.6"));
        assert_eq!(r.metered_days("sim"), vec![(date(1), dec("20"))]);
    }

    #[test]
    fn a_lying_bill_near_the_largest_decimal_does_not_panic() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let r = compare("aws", day, Decimal::MIN, Decimal::MAX, "USD");
        assert_eq!(r.difference, Decimal::MIN);
        let r = compare("aws", day, Decimal::ONE, Decimal::MAX, "USD");
        assert!(r.relative.is_some_and(|x| x < 0.0));
    }

    #[test]
    fn compare_gives_the_difference_and_the_relative_drift() {
        let c = compare("aws", date(1), dec("103"), dec("100"), "USD");
        assert_eq!(c.difference, dec("3"));
        assert_eq!(c.relative, Some(0.03));
        assert_eq!(c.currency, "USD");
        let c = compare("aws", date(1), dec("90"), dec("120"), "USD");
        assert_eq!(c.difference, dec("-30"));
        assert_eq!(c.relative, Some(-0.25));
        assert_eq!(
            compare("aws", date(1), dec("0"), dec("0"), "USD").relative,
            Some(0.0)
        );
        assert_eq!(
            compare("aws", date(1), dec("1"), dec("0"), "USD").relative,
            None
        );
        // Serialized with amounts as numbers.
        let json =
            serde_json::to_value(compare("aws", date(2), dec("1.5"), dec("1"), "EUR")).unwrap();
        assert_eq!(json["metered"], 1.5);
        assert_eq!(json["day"], "2026-03-02");
        assert_eq!(json["relative"], 0.5);
    }

    #[test]
    fn a_reconciliation_is_a_ledger_line_that_reads_back() {
        use crate::ledger::{LedgerRecord, ReconciliationRecord};
        let record = LedgerRecord::Reconciliation(ReconciliationRecord {
            at: at(3, 0, 1),
            reconciliation: compare("sim", date(2), dec("23.1"), dec("23.04"), "USD"),
        });
        let line = serde_json::to_string(&record).unwrap();
        assert!(
            line.starts_with(r#"{"type":"reconciliation","at":"2026-03-03T00:01:00Z","provider":"sim","day":"2026-03-02","metered":23.1,"billed":23.04"#),
            "{line}"
        );
        let back: LedgerRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn each_day_is_offered_until_reconciled_and_then_never_again() {
        let every = TimeDelta::hours(6);
        let mut r = Reconciler::new();
        for d in 1..=3 {
            r.checkpoint("aws", at(d, 0, 0), Decimal::from(d * 10));
            r.checkpoint("aws", at(d, 0, 1), Decimal::from(d * 10));
        }
        assert_eq!(r.begin("gcp", at(3, 0, 1), every), None);
        let days = r.begin("aws", at(3, 0, 1), every).unwrap();
        assert_eq!(days, vec![(date(1), dec("10")), (date(2), dec("10"))]);
        // Under way: not again.
        assert_eq!(r.begin("aws", at(3, 0, 2), every), None);
        // Day 2 has no bill yet.
        r.finish("aws", &[date(1)]);
        assert_eq!(r.unreconciled_days("aws"), vec![(date(2), dec("10"))]);
        // Not before the interval.
        assert_eq!(r.begin("aws", at(3, 5, 0), every), None);
        assert_eq!(
            r.begin("aws", at(3, 6, 1), every),
            Some(vec![(date(2), dec("10"))])
        );
        // The bill could not be read: offered again at the next interval.
        r.abort("aws");
        assert_eq!(r.begin("aws", at(3, 6, 2), every), None);
        assert_eq!(
            r.begin("aws", at(3, 12, 1), every),
            Some(vec![(date(2), dec("10"))])
        );
        r.finish("aws", &[date(2)]);
        assert!(r.unreconciled_days("aws").is_empty());
        assert_eq!(r.begin("aws", at(3, 23, 0), every), None);
        // Old midnights are forgotten; the open day's start is kept.
        r.checkpoint("aws", at(4, 0, 0), dec("40"));
        r.checkpoint("aws", at(4, 0, 1), dec("40"));
        assert_eq!(
            r.begin("aws", at(4, 0, 1), every),
            Some(vec![(date(3), dec("10"))])
        );
        r.finish("aws", &[date(3)]);
        assert_eq!(r.providers["aws"].midnights.len(), 1);
        assert!(r.metered_days("aws").is_empty());
    }

    /// A bill that answers what it was given and records the queries.
    #[derive(Debug, Default)]
    struct Bill {
        entries: Vec<CostEntry>,
        queries: Mutex<Vec<CostQuery>>,
    }

    #[async_trait]
    impl BillingProvider for Bill {
        fn capabilities(&self) -> BillingCapabilities {
            BillingCapabilities {
                actual_cost: true,
                ..Default::default()
            }
        }

        async fn cost(&self, query: &CostQuery) -> Result<Vec<CostEntry>> {
            self.queries.lock().unwrap().push(query.clone());
            Ok(self.entries.clone())
        }
    }

    fn entry(d: u32, amount: &str, currency: &str) -> CostEntry {
        CostEntry {
            start: at(d, 0, 0),
            end: at(d + 1, 0, 0),
            key: None,
            amount: Money::new(dec(amount), Currency(currency.to_owned())),
            estimated: false,
        }
    }

    #[tokio::test]
    async fn billed_days_asks_once_by_day_and_sums_per_day() {
        let bill = Bill {
            entries: vec![
                entry(1, "1.5", "USD"),
                entry(1, "2", "USD"),
                entry(3, "4", "USD"),
                entry(2, "9", "USD"),
            ],
            ..Default::default()
        };
        let billed = billed_days(&bill, &[date(3), date(1), date(4)])
            .await
            .unwrap();
        assert_eq!(
            billed,
            BTreeMap::from([
                (date(1), (dec("3.5"), "USD".to_owned())),
                (date(3), (dec("4"), "USD".to_owned())),
            ])
        );
        let queries = bill.queries.lock().unwrap().clone();
        assert_eq!(queries.len(), 1);
        assert_eq!(queries[0].granularity, CostGranularity::Daily);
        assert_eq!(queries[0].group_by, None);
        assert_eq!(
            (queries[0].range.start, queries[0].range.end),
            (at(1, 0, 0), at(5, 0, 0))
        );
        assert!(billed_days(&bill, &[]).await.unwrap().is_empty());

        let mixed = Bill {
            entries: vec![entry(1, "1", "USD"), entry(1, "1", "EUR")],
            ..Default::default()
        };
        assert!(billed_days(&mixed, &[date(1)]).await.is_err());
    }
}
