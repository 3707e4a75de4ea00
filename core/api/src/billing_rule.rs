//! How a provider turns an instance's life into a bill: per second with a minimum charge (AWS,
//! Azure, Google Cloud and the simulated cloud by default), or per started hour. A
//! [`BillingRule`] charges exact decimals for any window of time, so a meter and a provider's
//! own bill can be compared to the cent.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Decimal;

/// How instances are billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingRule {
    /// Per second from the launch, with a minimum charge per instance: an instance that ends
    /// before `minimum_seconds` is billed the rest of the minimum when it ends.
    PerSecond {
        /// The least an instance is billed for, in seconds.
        minimum_seconds: u32,
    },
    /// A full hour at the start of every started hour from the launch.
    PerHour,
}

impl Default for BillingRule {
    /// Per second with a one-minute minimum: what the major clouds charge Linux instances.
    fn default() -> Self {
        BillingRule::PerSecond {
            minimum_seconds: 60,
        }
    }
}

/// Whole seconds and nanoseconds of a span as an exact decimal of seconds (negative spans are 0).
fn seconds(span: TimeDelta) -> Decimal {
    if span <= TimeDelta::zero() {
        return Decimal::ZERO;
    }
    Decimal::from(span.num_seconds()) + Decimal::new(i64::from(span.subsec_nanos()), 9)
}

impl BillingRule {
    /// What an instance at `price_per_hour`, launched at `launched` and ended at `ended` (still
    /// running at `now` when `None`), is charged within `[from, to)`. Charges at an instant
    /// (a started hour, the rest of a minimum) fall in the window that holds that instant.
    pub fn charge_in(
        &self,
        price_per_hour: Decimal,
        launched: DateTime<Utc>,
        ended: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Decimal {
        let end = ended.unwrap_or(now);
        match *self {
            BillingRule::PerSecond { minimum_seconds } => {
                // Seconds first, one division at the end: exact for every price with a
                // finite decimal expansion per second.
                let lo = launched.max(from);
                let hi = end.min(to);
                let mut billed = seconds(hi - lo);
                if let Some(ended) = ended {
                    let lived = seconds(ended - launched);
                    let minimum = Decimal::from(minimum_seconds);
                    if lived < minimum && from <= ended && ended < to {
                        billed += minimum - lived;
                    }
                }
                price_per_hour * billed / Decimal::from(3_600)
            }
            BillingRule::PerHour => {
                let lived = end - launched;
                let whole = lived.num_seconds().max(0) / 3_600;
                let started = if ended.is_some() {
                    let partial = lived > TimeDelta::hours(whole);
                    (whole + i64::from(partial)).max(1)
                } else {
                    whole + 1
                };
                let charged = (0..started)
                    .map(|k| launched + TimeDelta::hours(k))
                    .filter(|t| from <= *t && *t < to)
                    .count();
                price_per_hour * Decimal::from(charged)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn per_second_bills_the_life_and_at_least_the_minimum() {
        let rule = BillingRule::default();
        let price = dec("0.36"); // 0.0001 a second
        // 90 s of life: 0.009.
        let c = rule.charge_in(price, at(0), Some(at(90)), at(100), at(-10), at(1000));
        assert_eq!(c, dec("0.009"));
        // 30 s of life: billed the 60 s minimum, 0.006, the rest when it ends.
        let c = rule.charge_in(price, at(0), Some(at(30)), at(100), at(-10), at(1000));
        assert_eq!(c, dec("0.006"));
        let before_end = rule.charge_in(price, at(0), Some(at(30)), at(100), at(-10), at(20));
        assert_eq!(before_end, dec("0.002"));
        // Still running at 1 h: 0.36; windows add up.
        let whole = rule.charge_in(price, at(0), None, at(3600), at(0), at(3600));
        let halves = rule.charge_in(price, at(0), None, at(3600), at(0), at(1800))
            + rule.charge_in(price, at(0), None, at(3600), at(1800), at(3600));
        assert_eq!(whole, dec("0.36"));
        assert_eq!(halves, whole);
    }

    #[test]
    fn per_hour_bills_every_started_hour_at_its_start() {
        let rule = BillingRule::PerHour;
        let price = dec("0.36");
        // 61 minutes: two hours.
        let c = rule.charge_in(price, at(0), Some(at(3660)), at(4000), at(0), at(10_000));
        assert_eq!(c, dec("0.72"));
        // Exactly one hour: one hour. A few seconds: one hour.
        assert_eq!(
            rule.charge_in(price, at(0), Some(at(3600)), at(4000), at(0), at(10_000)),
            dec("0.36")
        );
        assert_eq!(
            rule.charge_in(price, at(0), Some(at(5)), at(4000), at(0), at(10_000)),
            dec("0.36")
        );
        // Running for 90 minutes: the second hour is charged when it starts, in its window.
        assert_eq!(
            rule.charge_in(price, at(0), None, at(5400), at(3000), at(4000)),
            dec("0.36")
        );
    }
}
