//! The replay's fleet: instance counts in launch cohorts, a queue of booting cohorts, and the
//! bill. No per-instance objects: a cohort is `(launch time, count)`.

use std::collections::VecDeque;

use super::Billing;

/// Which instances a scale-in removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The oldest first (booting ones last). AWS's `OldestInstance` termination policy; with
    /// per-second billing it never pays a minimum charge it could avoid.
    OldestFirst,
    /// Booting ones first, then the newest ready ones: the Kubernetes ReplicaSet's choice
    /// (not-ready pods before ready ones, newer before older).
    NewestFirst,
}

/// Instances by launch cohort, and what they cost.
#[derive(Debug, Clone)]
pub(crate) struct Fleet {
    ready: VecDeque<(i64, u32)>,
    booting: VecDeque<(i64, u32)>,
    pub(crate) n_ready: u32,
    pub(crate) n_booting: u32,
    boot_seconds: i64,
    billing: Billing,
    price_per_hour: f64,
    /// Money spent so far on instances already removed.
    pub(crate) cost: f64,
    /// Time from which the bill counts (see [`Fleet::start_billing`]).
    billing_from: i64,
}

impl Fleet {
    pub(crate) fn new(boot_seconds: i64, billing: Billing, price_per_hour: f64) -> Self {
        Fleet {
            ready: VecDeque::new(),
            booting: VecDeque::new(),
            n_ready: 0,
            n_booting: 0,
            boot_seconds,
            billing,
            price_per_hour,
            cost: 0.0,
            billing_from: i64::MIN,
        }
    }

    /// Instances ready at once, billed from `now` (the fleet a replay starts with).
    pub(crate) fn start_ready(&mut self, now: i64, n: u32) {
        if n > 0 {
            self.ready.push_back((now, n));
            self.n_ready += n;
        }
    }

    /// Instances asked for and billed by the provider: ready plus booting.
    pub(crate) fn total(&self) -> u32 {
        self.n_ready + self.n_booting
    }

    /// Forgets the bill so far and bills from `now` on: an instance running at `now` is charged
    /// what its whole life costs less what it had cost by `now` (so a minimum charge already
    /// paid is not paid again).
    pub(crate) fn start_billing(&mut self, now: i64) {
        self.cost = 0.0;
        self.billing_from = now;
    }

    /// Moves cohorts whose boot delay has passed to ready.
    #[inline]
    pub(crate) fn advance(&mut self, now: i64) {
        while let Some(&(launch, n)) = self.booting.front() {
            if launch + self.boot_seconds > now {
                break;
            }
            self.booting.pop_front();
            self.n_booting -= n;
            self.n_ready += n;
            self.ready.push_back((launch, n));
        }
    }

    /// Asks for `n` instances at `now`.
    pub(crate) fn launch(&mut self, now: i64, n: u32) {
        if n == 0 {
            return;
        }
        if self.boot_seconds == 0 {
            self.ready.push_back((now, n));
            self.n_ready += n;
        } else {
            self.booting.push_back((now, n));
            self.n_booting += n;
        }
    }

    /// Removes `n` instances at `now` in `order`, billing each.
    pub(crate) fn remove(&mut self, now: i64, mut n: u32, order: Removal) {
        n = n.min(self.total());
        while n > 0 {
            let (queue, from_front, is_ready) = match order {
                Removal::OldestFirst if self.n_ready > 0 => (&mut self.ready, true, true),
                Removal::OldestFirst => (&mut self.booting, true, false),
                Removal::NewestFirst if self.n_booting > 0 => (&mut self.booting, false, false),
                Removal::NewestFirst => (&mut self.ready, false, true),
            };
            let cohort = if from_front {
                queue.front_mut()
            } else {
                queue.back_mut()
            };
            let Some(cohort) = cohort else { break };
            let take = cohort.1.min(n);
            cohort.1 -= take;
            let launch = cohort.0;
            if cohort.1 == 0 {
                if from_front {
                    queue.pop_front();
                } else {
                    queue.pop_back();
                }
            }
            let mut charge = self.billing.charge(now - launch, self.price_per_hour);
            if launch < self.billing_from {
                charge -= self
                    .billing
                    .charge(self.billing_from - launch, self.price_per_hour);
            }
            self.cost += f64::from(take) * charge.max(0.0);
            if is_ready {
                self.n_ready -= take;
            } else {
                self.n_booting -= take;
            }
            n -= take;
        }
    }

    /// Instances launched after `now - seconds` (booting or ready).
    pub(crate) fn launched_within(&self, now: i64, seconds: i64) -> u32 {
        let cutoff = now - seconds;
        let mut n = 0;
        for &(launch, count) in self.booting.iter().rev() {
            if launch <= cutoff {
                return n;
            }
            n += count;
        }
        for &(launch, count) in self.ready.iter().rev() {
            if launch <= cutoff {
                break;
            }
            n += count;
        }
        n
    }

    /// What the bill is at `now`: the instances removed, plus what the running ones have cost
    /// so far (a minimum charge counts from the launch).
    pub(crate) fn cost_at(&self, now: i64) -> f64 {
        let mut cost = self.cost;
        for &(launch, n) in self.ready.iter().chain(&self.booting) {
            let mut charge = self.billing.charge(now - launch, self.price_per_hour);
            if launch < self.billing_from {
                charge -= self
                    .billing
                    .charge(self.billing_from - launch, self.price_per_hour);
            }
            cost += f64::from(n) * charge.max(0.0);
        }
        cost
    }

    /// Bills every instance still there at `now` (the end of the replay) and returns the total
    /// cost.
    pub(crate) fn close(&mut self, now: i64) -> f64 {
        let total = self.total();
        self.remove(now, total, Removal::OldestFirst);
        self.cost
    }
}
