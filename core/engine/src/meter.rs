//! The cost meter: what each group has cost since Hoist started watching it and costs now,
//! from the catalog's prices and the time each instance lived, under its provider's
//! [`BillingRule`].
//!
//! The meter sees groups as the control loop observes them. An instance's life starts at its
//! `launched_at` (or the group's first observation, when it was launched before) and ends at the
//! first observation that shows it terminated or no longer shows it, so it is billed until then,
//! never less than it ran. Once a life has ended its charge is final: it is added to the group's
//! settled total and forgotten, so the meter holds only the instances alive now and reading a
//! group costs as much as its current instances, however long Hoist runs. Spot and on-demand are
//! kept apart; instances the catalog cannot price are counted, not guessed. Providers that report
//! their own bill (the simulated cloud, AWS Cost Explorer) can be compared with the meter:
//! [`Drift`] says by how much they differ.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, DefaultHasher};

use chrono::{DateTime, TimeDelta, Utc};
use hoist_api::billing_rule::BillingRule;
use hoist_api::{
    CapacityType, Decimal, GroupId, Instance, InstanceId, InstanceState, ScalingGroup,
};

/// One instance's life as the meter saw it.
#[derive(Debug, Clone, PartialEq)]
struct Life {
    /// The observation that last saw it (see [`Account::epoch`]).
    seen: u64,
    launched: DateTime<Utc>,
    price_per_hour: Option<Decimal>,
    capacity_type: CapacityType,
}

/// What the meter reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeterReading {
    /// Charged for on-demand (and reserved) instances.
    pub on_demand: Decimal,
    /// Charged for spot instances.
    pub spot: Decimal,
    /// What the instances alive now cost per hour.
    pub run_rate_per_hour: Decimal,
    /// Instances the catalog could not price (left out of the sums).
    pub unpriced: u32,
}

impl MeterReading {
    /// On-demand and spot together.
    pub fn total(&self) -> Decimal {
        self.on_demand + self.spot
    }

    fn add(&mut self, capacity_type: CapacityType, charge: Decimal) {
        match capacity_type {
            CapacityType::Spot => self.spot += charge,
            CapacityType::OnDemand | CapacityType::Reserved => self.on_demand += charge,
        }
    }

    fn merge(&mut self, other: &MeterReading) {
        self.on_demand += other.on_demand;
        self.spot += other.spot;
        self.run_rate_per_hour += other.run_rate_per_hour;
        self.unpriced += other.unpriced;
    }
}

/// The meter against a provider's own bill for the same window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// What the meter says.
    pub metered: Decimal,
    /// What the provider billed.
    pub billed: Decimal,
}

impl Drift {
    /// Billed minus metered.
    pub fn difference(&self) -> Decimal {
        self.billed - self.metered
    }

    /// The difference as a fraction of what was billed (0 when both are 0).
    pub fn relative(&self) -> Decimal {
        if self.billed.is_zero() {
            if self.metered.is_zero() {
                Decimal::ZERO
            } else {
                Decimal::ONE
            }
        } else {
            (self.difference() / self.billed).abs()
        }
    }
}

/// One group's account: since when it is watched, what ended lives were charged, and the lives
/// still open.
#[derive(Debug, Clone)]
struct Account {
    since: DateTime<Utc>,
    settled: MeterReading,
    /// Hashed with fixed keys, so that lives are visited in the same order in every run.
    open: HashMap<InstanceId, Life, BuildHasherDefault<DefaultHasher>>,
    /// Observations so far: a life not seen by the latest has ended.
    epoch: u64,
}

/// The cost meter of one provider's groups.
#[derive(Debug, Clone, Default)]
pub struct CostMeter {
    rule: BillingRule,
    accounts: BTreeMap<GroupId, Account>,
}

impl CostMeter {
    /// A meter for a provider that bills by `rule`.
    pub fn new(rule: BillingRule) -> Self {
        CostMeter {
            rule,
            accounts: BTreeMap::new(),
        }
    }

    /// The billing rule.
    pub fn rule(&self) -> BillingRule {
        self.rule
    }

    /// Records `group` as observed at `at`; `price` gives an instance's price per hour (`None`
    /// when the catalog does not know it). Instances of the group the meter knew and no longer
    /// sees, or sees terminated or failed, end at `at`: their charge is settled.
    pub fn observe(
        &mut self,
        at: DateTime<Utc>,
        group: &ScalingGroup,
        price: impl Fn(&Instance) -> Option<Decimal>,
    ) {
        let rule = self.rule;
        let account = self
            .accounts
            .entry(group.id.clone())
            .or_insert_with(|| Account {
                since: at,
                settled: MeterReading::default(),
                open: HashMap::default(),
                epoch: 0,
            });
        let since = account.since;
        account.epoch += 1;
        let epoch = account.epoch;
        for instance in &group.instances {
            if matches!(
                instance.state,
                InstanceState::Terminated | InstanceState::Failed
            ) {
                continue;
            }
            // Looked up before inserting, so a life already open costs no copy of its id.
            let life = match account.open.get_mut(&instance.id) {
                Some(life) => life,
                None => account
                    .open
                    .entry(instance.id.clone())
                    .or_insert_with(|| Life {
                        seen: epoch,
                        launched: instance.launched_at.min(at),
                        price_per_hour: None,
                        capacity_type: instance.capacity_type,
                    }),
            };
            life.seen = epoch;
            if life.price_per_hour.is_none() {
                life.price_per_hour = price(instance);
            }
        }
        // Every life this observation did not see has ended; settled in the order of their ids.
        let mut ended: Vec<InstanceId> = account
            .open
            .iter()
            .filter(|(_, life)| life.seen != epoch)
            .map(|(id, _)| id.clone())
            .collect();
        ended.sort_unstable();
        for id in ended {
            let Some(life) = account.open.remove(&id) else {
                continue;
            };
            match life.price_per_hour {
                Some(price) => {
                    // Final: every charge of a life that ended at `at` falls at or before `at`.
                    let charge = rule.charge_in(
                        price,
                        life.launched,
                        Some(at),
                        at,
                        since,
                        at + TimeDelta::seconds(1),
                    );
                    account.settled.add(life.capacity_type, charge);
                }
                None => account.settled.unpriced += 1,
            }
        }
    }

    /// What `group` was charged since the meter first observed it, as of `now`.
    pub fn since_first_observed(&self, group: &str, now: DateTime<Utc>) -> Option<MeterReading> {
        let account = self.accounts.get(group)?;
        let mut reading = account.settled.clone();
        for life in account.open.values() {
            let Some(price) = life.price_per_hour else {
                reading.unpriced += 1;
                continue;
            };
            let charge = self
                .rule
                .charge_in(price, life.launched, None, now, account.since, now);
            reading.add(life.capacity_type, charge);
            reading.run_rate_per_hour += price;
        }
        Some(reading)
    }

    /// Every group's reading since the meter first observed it, added up; `None` before the
    /// first observation.
    pub fn total_since_first_observed(&self, now: DateTime<Utc>) -> Option<MeterReading> {
        let mut total: Option<MeterReading> = None;
        for group in self.accounts.keys() {
            if let Some(r) = self.since_first_observed(group, now) {
                total.get_or_insert_with(MeterReading::default).merge(&r);
            }
        }
        total
    }

    /// How many instances the meter holds open (for tests and sizing).
    pub fn open_lives(&self) -> usize {
        self.accounts.values().map(|a| a.open.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_api::ScalingGroup;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn instance(id: &str, launched: i64, state: InstanceState, spot: bool) -> Instance {
        Instance {
            id: id.to_owned(),
            instance_class: "m".to_owned(),
            zone: "z".to_owned(),
            capacity_type: if spot {
                CapacityType::Spot
            } else {
                CapacityType::OnDemand
            },
            state,
            launched_at: at(launched),
            protected_from_scale_in: false,
        }
    }

    fn group(id: &str, instances: Vec<Instance>) -> ScalingGroup {
        ScalingGroup {
            id: id.to_owned(),
            min_size: 0,
            max_size: 10,
            desired_capacity: instances.len() as u32,
            instance_class: "m".to_owned(),
            zones: vec!["z".to_owned()],
            instances,
            tags: Default::default(),
        }
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn a_hand_computed_bill_per_second() {
        let mut meter = CostMeter::new(BillingRule::default());
        let price = |i: &Instance| {
            Some(if i.capacity_type == CapacityType::Spot {
                dec("0.12")
            } else {
                dec("0.36")
            })
        };
        // a: on-demand from 0 to 3600; b: spot from 600, still running; c: on-demand, lived 30 s.
        meter.observe(
            at(0),
            &group("web", vec![instance("a", 0, InstanceState::Running, false)]),
            price,
        );
        meter.observe(
            at(600),
            &group(
                "web",
                vec![
                    instance("a", 0, InstanceState::Running, false),
                    instance("b", 600, InstanceState::Pending, true),
                    instance("c", 600, InstanceState::Pending, false),
                ],
            ),
            price,
        );
        meter.observe(
            at(630),
            &group(
                "web",
                vec![
                    instance("a", 0, InstanceState::Running, false),
                    instance("b", 600, InstanceState::Running, true),
                    instance("c", 600, InstanceState::Terminated, false),
                ],
            ),
            price,
        );
        meter.observe(
            at(3600),
            &group(
                "web",
                vec![instance("b", 600, InstanceState::Running, true)],
            ),
            price,
        );
        // Ended lives are settled and forgotten: only b stays open.
        assert_eq!(meter.open_lives(), 1);
        let r = meter.since_first_observed("web", at(4200)).unwrap();
        // a: 3600 s x 0.0001 = 0.36; c: the 60 s minimum x 0.0001 = 0.006.
        assert_eq!(r.on_demand, dec("0.366"));
        // b: 3600 s (600 .. 4200) x 0.12 / 3600 = 0.12.
        assert_eq!(r.spot, dec("0.12"));
        assert_eq!(r.run_rate_per_hour, dec("0.12"));
        assert_eq!(r.unpriced, 0);
        assert!(meter.since_first_observed("db", at(4200)).is_none());
    }

    #[test]
    fn a_hand_computed_bill_per_hour_and_unpriced_instances() {
        let mut meter = CostMeter::new(BillingRule::PerHour);
        let priced = |i: &Instance| (i.id != "x").then(|| dec("0.5"));
        meter.observe(
            at(0),
            &group(
                "web",
                vec![
                    instance("a", 0, InstanceState::Running, false),
                    instance("x", 0, InstanceState::Running, false),
                ],
            ),
            priced,
        );
        meter.observe(
            at(0),
            &group("db", vec![instance("d", 0, InstanceState::Running, false)]),
            priced,
        );
        meter.observe(at(3700), &group("web", vec![]), priced);
        let r = meter.since_first_observed("web", at(10_000)).unwrap();
        // a lived 3700 s: two started hours.
        assert_eq!(r.on_demand, dec("1.0"));
        assert_eq!(r.unpriced, 1);
        assert_eq!(r.run_rate_per_hour, Decimal::ZERO);
        // d, still running at 10 000 s: three started hours; totals add the groups up.
        let total = meter.total_since_first_observed(at(10_000)).unwrap();
        assert_eq!(total.on_demand, dec("2.5"));
        assert_eq!(total.run_rate_per_hour, dec("0.5"));
        assert_eq!(meter.open_lives(), 1);
        let drift = Drift {
            metered: r.total(),
            billed: dec("1.25"),
        };
        assert_eq!(drift.difference(), dec("0.25"));
        assert_eq!(drift.relative(), dec("0.2"));
    }

    #[test]
    fn an_instance_launched_before_watching_is_charged_from_the_first_observation() {
        let mut meter = CostMeter::new(BillingRule::default());
        let price = |_: &Instance| Some(dec("3.6"));
        meter.observe(
            at(1000),
            &group("web", vec![instance("a", 0, InstanceState::Running, false)]),
            price,
        );
        meter.observe(at(1100), &group("web", vec![]), price);
        // 100 s watched at 0.001 a second.
        assert_eq!(
            meter.since_first_observed("web", at(2000)).unwrap().total(),
            dec("0.1")
        );
    }
}
