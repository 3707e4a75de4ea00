//! The cost meter: what each group costs now and has cost so far, from the catalog's prices and
//! the time each instance lived, under its provider's [`BillingRule`].
//!
//! The meter sees groups as the control loop observes them. An instance's life starts at its
//! `launched_at` and ends at the first observation that shows it terminated or no longer shows
//! it (so it is billed until then, never less than it ran). Spot and on-demand are kept apart;
//! instances the catalog cannot price are counted, not guessed. Providers that report their
//! own bill (the simulated cloud, AWS Cost Explorer) can be compared with the meter:
//! [`Drift`] says by how much they differ.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hoist_api::billing_rule::BillingRule;
use hoist_api::{
    CapacityType, Decimal, GroupId, Instance, InstanceId, InstanceState, ScalingGroup,
};

/// One instance's life as the meter saw it.
#[derive(Debug, Clone, PartialEq)]
struct Life {
    launched: DateTime<Utc>,
    ended: Option<DateTime<Utc>>,
    price_per_hour: Option<Decimal>,
    capacity_type: CapacityType,
}

/// What the meter reads for a window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeterReading {
    /// Charged for on-demand (and reserved) instances.
    pub on_demand: Decimal,
    /// Charged for spot instances.
    pub spot: Decimal,
    /// What the instances alive at the end of the window cost per hour.
    pub run_rate_per_hour: Decimal,
    /// Instances in the window the catalog could not price (left out of the sums).
    pub unpriced: u32,
}

impl MeterReading {
    /// On-demand and spot together.
    pub fn total(&self) -> Decimal {
        self.on_demand + self.spot
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

/// The cost meter of one provider's groups.
#[derive(Debug, Clone, Default)]
pub struct CostMeter {
    rule: BillingRule,
    lives: BTreeMap<(GroupId, InstanceId), Life>,
    first_observed: BTreeMap<GroupId, DateTime<Utc>>,
}

impl CostMeter {
    /// A meter for a provider that bills by `rule`.
    pub fn new(rule: BillingRule) -> Self {
        CostMeter {
            rule,
            lives: BTreeMap::new(),
            first_observed: BTreeMap::new(),
        }
    }

    /// The billing rule.
    pub fn rule(&self) -> BillingRule {
        self.rule
    }

    /// Records `group` as observed at `at`; `price` gives an instance's price per hour (`None`
    /// when the catalog does not know it). Instances of the group the meter knew and no longer
    /// sees, or sees terminated, end at `at`.
    pub fn observe(
        &mut self,
        at: DateTime<Utc>,
        group: &ScalingGroup,
        price: impl Fn(&Instance) -> Option<Decimal>,
    ) {
        self.first_observed.entry(group.id.clone()).or_insert(at);
        let mut seen = Vec::new();
        for instance in &group.instances {
            let key = (group.id.clone(), instance.id.clone());
            let gone = matches!(
                instance.state,
                InstanceState::Terminated | InstanceState::Failed
            );
            let life = self.lives.entry(key.clone()).or_insert_with(|| Life {
                launched: instance.launched_at.min(at),
                ended: None,
                price_per_hour: price(instance),
                capacity_type: instance.capacity_type,
            });
            if life.price_per_hour.is_none() {
                life.price_per_hour = price(instance);
            }
            if gone && life.ended.is_none() {
                life.ended = Some(at);
            }
            seen.push(key);
        }
        for (key, life) in self.lives.iter_mut() {
            if key.0 == group.id && life.ended.is_none() && !seen.contains(key) {
                life.ended = Some(at);
            }
        }
    }

    /// What `group` (every group with `None`) was charged within `[from, to)`, as of `now`.
    pub fn read(
        &self,
        group: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> MeterReading {
        let mut reading = MeterReading::default();
        for ((g, _), life) in &self.lives {
            if group.is_some_and(|wanted| wanted != g) {
                continue;
            }
            let end = life.ended.unwrap_or(now);
            if end < from || life.launched >= to {
                continue;
            }
            let Some(price) = life.price_per_hour else {
                reading.unpriced += 1;
                continue;
            };
            let charge = self
                .rule
                .charge_in(price, life.launched, life.ended, now, from, to);
            match life.capacity_type {
                CapacityType::Spot => reading.spot += charge,
                CapacityType::OnDemand | CapacityType::Reserved => reading.on_demand += charge,
            }
            if life.ended.is_none() && life.launched <= to {
                reading.run_rate_per_hour += price;
            }
        }
        reading
    }

    /// What `group` was charged since the meter first observed it, as of `now`.
    pub fn since_first_observed(&self, group: &str, now: DateTime<Utc>) -> Option<MeterReading> {
        let from = *self.first_observed.get(group)?;
        Some(self.read(Some(group), from, now, now))
    }

    /// Forgets instances that ended before `before` (their charges no longer asked for).
    pub fn forget_before(&mut self, before: DateTime<Utc>) {
        self.lives
            .retain(|_, life| life.ended.is_none_or(|ended| ended >= before));
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

    fn group(instances: Vec<Instance>) -> ScalingGroup {
        ScalingGroup {
            id: "web".to_owned(),
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
            &group(vec![instance("a", 0, InstanceState::Running, false)]),
            price,
        );
        meter.observe(
            at(600),
            &group(vec![
                instance("a", 0, InstanceState::Running, false),
                instance("b", 600, InstanceState::Pending, true),
                instance("c", 600, InstanceState::Pending, false),
            ]),
            price,
        );
        meter.observe(
            at(630),
            &group(vec![
                instance("a", 0, InstanceState::Running, false),
                instance("b", 600, InstanceState::Running, true),
            ]),
            price,
        );
        meter.observe(
            at(3600),
            &group(vec![instance("b", 600, InstanceState::Running, true)]),
            price,
        );
        let r = meter.read(None, at(0), at(7200), at(4200));
        // a: 3600 s x 0.0001 = 0.36; c: the 60 s minimum x 0.0001 = 0.006.
        assert_eq!(r.on_demand, dec("0.366"));
        // b: 3600 s (600 .. 4200) x 0.12 / 3600 = 0.12.
        assert_eq!(r.spot, dec("0.12"));
        assert_eq!(r.run_rate_per_hour, dec("0.12"));
        assert_eq!(r.unpriced, 0);
        // Windows add up.
        let first = meter.read(Some("web"), at(0), at(1800), at(4200));
        let second = meter.read(Some("web"), at(1800), at(7200), at(4200));
        assert_eq!(first.total() + second.total(), r.total());
    }

    #[test]
    fn a_hand_computed_bill_per_hour_and_unpriced_instances() {
        let mut meter = CostMeter::new(BillingRule::PerHour);
        let priced = |i: &Instance| (i.id != "x").then(|| dec("0.5"));
        meter.observe(
            at(0),
            &group(vec![
                instance("a", 0, InstanceState::Running, false),
                instance("x", 0, InstanceState::Running, false),
            ]),
            priced,
        );
        meter.observe(at(3700), &group(vec![]), priced);
        let r = meter.read(None, at(0), at(10_000), at(10_000));
        // a lived 3700 s: two started hours.
        assert_eq!(r.on_demand, dec("1.0"));
        assert_eq!(r.unpriced, 1);
        assert_eq!(r.run_rate_per_hour, Decimal::ZERO);
        let drift = Drift {
            metered: r.total(),
            billed: dec("1.25"),
        };
        assert_eq!(drift.difference(), dec("0.25"));
        assert_eq!(drift.relative(), dec("0.2"));
        meter.forget_before(at(5000));
        assert_eq!(
            meter.read(None, at(0), at(10_000), at(10_000)).total(),
            Decimal::ZERO
        );
    }
}
