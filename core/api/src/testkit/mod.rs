//! The provider conformance suite: what every provider must do, as plain async functions that
//! take any provider.
//!
//! The suite is the definition of "a provider works". It runs against the simulated cloud, the
//! simulated cloud wrapped in each layer, every cloud provider against its test server, and every
//! plugin loaded through the real loader. Checks are chosen by the provider's capabilities: what
//! it declares it cannot do must fail with [`ErrorKind::Unsupported`](crate::ErrorKind), and what
//! it declares it can do must work. A failing check says what was asked, what came back and what
//! a provider must do instead.
//!
//! ```no_run
//! # async fn demo(set: hoist_api::ProviderSet) {
//! use hoist_api::testkit::{ConformanceTarget, run_conformance};
//!
//! // `web` exists, has min < max, and may be resized during the run; the suite puts its
//! // desired capacity (and instance class) back at the end.
//! let target = ConformanceTarget::new(set, "web");
//! let report = run_conformance(&target).await;
//! println!("{report}");
//! report.assert_passed();
//! # }
//! ```
//!
//! Each check is also a public function (`check_*`) returning an [`Outcome`], for a provider
//! crate that wants to run one at a time.
//!
//! # Targets
//!
//! - **A cloud against its test server** (an AWS API emulator, say): the provider's
//!   [`ProviderSet`], the wall clock, and a settle time long enough for the emulator's
//!   instances to appear (`with_settle(Duration::from_secs(2), 10)` polls for up to 20 s).
//! - **The simulated cloud**: `cloud.provider_set(name)` with `with_clock(cloud.clock())` and a
//!   settle time of at least the boot delay; settling advances virtual time, so it costs
//!   nothing.
//! - **A layer**: the layered set; a dry run adds [`ConformanceTarget::with_recorded_writes`],
//!   under which valid writes must succeed, invalid ones must fail as on the provider, and
//!   nothing may change.
//! - **A plugin**: the [`ProviderSet`] the plugin loader returns, exactly like a built-in
//!   provider.
//!
//! The group must exist with `min_size < max_size`. The suite changes its desired capacity
//! (within bounds), removes instances it chose and changes its class, then puts desired capacity
//! and class back and checks that they are (`scaling.group_restored`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::model::GroupId;
use crate::provider::ProviderSet;

mod billing;
mod catalog;
mod metrics;
mod report;
mod scaling;
mod support;

pub use billing::{check_billing_cost, check_billing_forecast, check_billing_prices};
pub use catalog::{
    check_catalog_knows_group_class, check_catalog_lists_classes, check_catalog_lookup,
};
pub use metrics::{check_metrics_builtin_kinds, check_metrics_expressions};
pub use report::{CheckReport, ConformanceReport, Outcome};
pub use scaling::{
    check_scaling_activities, check_scaling_describes_group, check_scaling_lists_group,
    check_scaling_rejects_out_of_bounds, check_scaling_rejects_unknown_instance,
    check_scaling_removes_chosen_instance, check_scaling_sets_desired_within_bounds,
    check_scaling_sets_instance_class, check_scaling_unknown_group_not_found,
};

/// What happens to writes on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Writes are applied: after a successful `set_desired_capacity`, `describe_group` shows it.
    #[default]
    Applied,
    /// Writes are validated and recorded, never applied (a dry run): valid writes succeed,
    /// invalid ones fail as they would on the provider, and the group never changes.
    Recorded,
}

/// A provider under test and how to test it.
#[derive(Debug, Clone)]
pub struct ConformanceTarget {
    /// The provider (its scaling provider and whichever of the other traits it offers).
    pub set: ProviderSet,
    /// An existing group with `min_size < max_size`, which the suite may resize; it puts the
    /// desired capacity and instance class back at the end.
    pub group: GroupId,
    /// Whether writes are applied or recorded.
    pub writes: WriteMode,
    /// The clock of the provider's world: the wall clock for a real cloud, the virtual clock
    /// of the simulated cloud. Metric and cost ranges end at its `now`.
    pub clock: Arc<dyn Clock>,
    /// How long one settle waits (on `clock`) for pending changes to land: instances to boot,
    /// terminations to finish. Zero for providers whose reads reflect writes at once.
    pub settle_time: Duration,
    /// How many times a check settles and looks again before it declares a change missing.
    pub settle_rounds: u32,
    /// A group id that does not exist on the provider.
    pub unknown_group: GroupId,
    /// The longest one check may take (wall-clock time) before it fails.
    pub check_timeout: Duration,
}

impl ConformanceTarget {
    /// Tests `group` on `set` with applied writes, the wall clock and no settling.
    pub fn new(set: ProviderSet, group: impl Into<GroupId>) -> Self {
        ConformanceTarget {
            set,
            group: group.into(),
            writes: WriteMode::Applied,
            clock: Arc::new(SystemClock),
            settle_time: Duration::ZERO,
            settle_rounds: 3,
            unknown_group: "hoist-conformance-no-such-group".to_owned(),
            check_timeout: Duration::from_secs(120),
        }
    }

    /// Writes are recorded, not applied (the target is a dry run).
    pub fn with_recorded_writes(mut self) -> Self {
        self.writes = WriteMode::Recorded;
        self
    }

    /// The clock of the provider's world.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Each settle waits `settle_time` on the clock; a check settles up to `rounds` times.
    pub fn with_settle(mut self, settle_time: Duration, rounds: u32) -> Self {
        self.settle_time = settle_time;
        self.settle_rounds = rounds.max(1);
        self
    }

    /// A group id the provider does not have (when the default could exist).
    pub fn with_unknown_group(mut self, unknown_group: impl Into<GroupId>) -> Self {
        self.unknown_group = unknown_group.into();
        self
    }

    /// The longest one check may take.
    pub fn with_check_timeout(mut self, check_timeout: Duration) -> Self {
        self.check_timeout = check_timeout;
        self
    }

    /// Lets pending changes land: waits `settle_time` on the target's clock.
    pub async fn settle(&self) {
        if !self.settle_time.is_zero() {
            let wait =
                chrono::Duration::from_std(self.settle_time).unwrap_or(chrono::Duration::MAX);
            let until = self.clock.now() + wait;
            self.clock.sleep_until(until).await;
        }
    }
}

impl ConformanceTarget {
    /// The scaling provider under test. Checks that call this run only on a set that has one:
    /// [`run_conformance`] skips them otherwise.
    pub(crate) fn scaling(&self) -> &std::sync::Arc<dyn crate::provider::ScalingProvider> {
        self.set
            .scaling
            .as_ref()
            .expect("scaling checks run only on a provider set with scaling")
    }
}

impl fmt::Display for ConformanceTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (provider `{}`, group `{}`, writes {:?})",
            self.set.describe(),
            self.set.name,
            self.group,
            self.writes
        )
    }
}

type CheckFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>>;
type CheckFn = for<'a> fn(&'a ConformanceTarget) -> CheckFuture<'a>;

/// Every check, in the order [`run_conformance`] runs them.
fn checks() -> Vec<(&'static str, CheckFn)> {
    vec![
        ("scaling.lists_group", |t| {
            Box::pin(check_scaling_lists_group(t))
        }),
        ("scaling.describes_group", |t| {
            Box::pin(check_scaling_describes_group(t))
        }),
        ("scaling.unknown_group_not_found", |t| {
            Box::pin(check_scaling_unknown_group_not_found(t))
        }),
        ("scaling.sets_desired_within_bounds", |t| {
            Box::pin(check_scaling_sets_desired_within_bounds(t))
        }),
        ("scaling.rejects_out_of_bounds", |t| {
            Box::pin(check_scaling_rejects_out_of_bounds(t))
        }),
        ("scaling.removes_chosen_instance", |t| {
            Box::pin(check_scaling_removes_chosen_instance(t))
        }),
        ("scaling.rejects_unknown_instance", |t| {
            Box::pin(check_scaling_rejects_unknown_instance(t))
        }),
        ("scaling.sets_instance_class", |t| {
            Box::pin(check_scaling_sets_instance_class(t))
        }),
        ("scaling.activities", |t| {
            Box::pin(check_scaling_activities(t))
        }),
        ("catalog.lists_classes", |t| {
            Box::pin(check_catalog_lists_classes(t))
        }),
        ("catalog.lookup", |t| Box::pin(check_catalog_lookup(t))),
        ("catalog.knows_group_class", |t| {
            Box::pin(check_catalog_knows_group_class(t))
        }),
        ("billing.prices", |t| Box::pin(check_billing_prices(t))),
        ("billing.cost", |t| Box::pin(check_billing_cost(t))),
        ("billing.forecast", |t| Box::pin(check_billing_forecast(t))),
        ("metrics.builtin_kinds", |t| {
            Box::pin(check_metrics_builtin_kinds(t))
        }),
        ("metrics.expressions", |t| {
            Box::pin(check_metrics_expressions(t))
        }),
    ]
}

/// The names of every check, in run order.
pub fn check_names() -> Vec<&'static str> {
    checks().into_iter().map(|(name, _)| name).collect()
}

/// Runs every check against `target`, then puts the group's desired capacity and instance
/// class back as they were and checks that they are (`scaling.group_restored`).
pub async fn run_conformance(target: &ConformanceTarget) -> ConformanceReport {
    let mut report = ConformanceReport::new(target);
    let Some(scaling) = target.set.scaling.as_ref() else {
        for (name, check) in checks() {
            let started = std::time::Instant::now();
            let outcome = if name.starts_with("scaling.") || name == "catalog.knows_group_class" {
                Outcome::skipped("the provider offers no scaling groups")
            } else {
                run_check(target, check).await
            };
            report.push(name, outcome, started.elapsed());
        }
        return report;
    };
    let original = scaling.describe_group(&target.group).await;
    for (name, check) in checks() {
        let started = std::time::Instant::now();
        let outcome = run_check(target, check).await;
        report.push(name, outcome, started.elapsed());
    }
    let started = std::time::Instant::now();
    let outcome = match original {
        Ok(original) => scaling::restore(target, &original).await,
        Err(e) => Outcome::Failed {
            message: format!(
                "describe_group({}) failed before the run, so the group could not be restored: {e}",
                target.group
            ),
        },
    };
    report.push("scaling.group_restored", outcome, started.elapsed());
    report
}

async fn run_check(target: &ConformanceTarget, check: CheckFn) -> Outcome {
    match tokio::time::timeout(target.check_timeout, check(target)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Failed {
            message: format!(
                "did not finish within {} s; a provider call hangs or settling never converges",
                target.check_timeout.as_secs()
            ),
        },
    }
}
