//! Rightsizing (vertical scaling) on per-VM panels: recommend each VM's CPU and memory from its
//! past usage and score the recommendations as `EVALUATION.md` defines.
//!
//! - [`panel`] reads a panel (the Bitbrains format or a generic long CSV).
//! - [`Recommender`] is what is scored: given a VM's samples before a time, a (CPU, memory)
//!   size. [`vpa::Vpa`] is the Kubernetes VPA recommender, ported faithfully; others (Hoist's
//!   own) plug in as more trait objects.
//! - [`score`] plays each recommender on every VM: a recommendation is made at every whole hour
//!   (UTC) from the samples before it, held for the hour, and scored on the steps of that hour
//!   (a recommender whose VMs share state, [`Recommender::fleet_member`], on every VM together,
//!   hour by hour);
//!   the hourly oracle (the hour's own peak) is scored the same way. Per resource: slack,
//!   shortfall, cost against what the VMs were given, changes per VM-day.
//! - [`chart`] draws the frontier (slack against shortfall) as SVG.

pub mod chart;
pub mod hoist;
pub mod panel;
pub mod score;
pub mod vpa;

pub use panel::{Panel, PanelError, Sample, VmSeries, load_panel, parse_panel};
pub use score::{
    ResourceScore, RightsizeScore, ScoreOptions, SweepPoint, score_oracle, score_recommender, sweep,
};

/// A size for one VM: CPU in cores, memory in bytes (0 when the panel has no memory).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Recommendation {
    /// CPU, cores.
    pub cpu: f64,
    /// Memory, bytes.
    pub mem: f64,
}

/// A recommender's main setting, swept for the frontier.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Setting {
    /// What it is ("target percentile").
    pub name: String,
    /// Its value in this recommender.
    pub value: f64,
    /// The values a frontier sweep tries, in order.
    pub sweep: Vec<f64>,
}

/// Recommends a VM's size from its past. One instance follows one VM at a time: [`start`]
/// begins a VM, then [`recommend`] is called at increasing times with ever longer slices of
/// that VM's samples, so state can be kept incrementally (the samples past the previous call's
/// slice are the new ones). The slice holds only samples before `at`: a recommender cannot see
/// the future.
///
/// [`start`]: Recommender::start
/// [`recommend`]: Recommender::recommend
pub trait Recommender: Send {
    /// A short name for tables ("vpa").
    fn name(&self) -> String;

    /// Its settings in a line.
    fn describe(&self) -> String {
        String::new()
    }

    /// The main setting, when it has one to sweep.
    fn main_setting(&self) -> Option<Setting> {
        None
    }

    /// A fresh recommender like this one with the main setting at `value`.
    fn with_setting(&self, value: f64) -> Box<dyn Recommender>;

    /// A fresh recommender like this one following every value of `values` of the main
    /// setting at once, when what it learns from a VM does not depend on the setting: one play
    /// of the panel then scores a whole sweep, through [`recommend_all`]. `None` (the
    /// default): a sweep plays one recommender per value.
    ///
    /// [`recommend_all`]: Recommender::recommend_all
    fn with_settings(&self, values: &[f64]) -> Option<Box<dyn Recommender>> {
        let _ = values;
        None
    }

    /// For a recommender with state shared by every VM of a panel (Hoist's price of a short
    /// step, following a target share of short steps across them): a recommender for one
    /// more VM, sharing that state with this one and every other made so. The scorer then
    /// plays the panel's VMs together, hour by hour, each by its own member, so that what is
    /// shared at an hour comes only from steps before it on every VM. `None` (the default):
    /// one recommender plays the VMs one after the other.
    fn fleet_member(&self) -> Option<Box<dyn Recommender>> {
        None
    }

    /// Clears all state: a new VM begins.
    fn start(&mut self);

    /// The size to hold from `at` (seconds since the epoch) for the next hour, from `past`:
    /// every sample of the VM before `at`, in time order. `None` when it cannot tell yet.
    fn recommend(&mut self, at: i64, past: &[Sample]) -> Option<Recommendation>;

    /// For a recommender made by [`with_settings`]: what [`recommend`] gives at each of its
    /// values, into `out` (one slot per value, in order). The default gives `recommend`'s
    /// size in every slot.
    ///
    /// [`with_settings`]: Recommender::with_settings
    /// [`recommend`]: Recommender::recommend
    fn recommend_all(&mut self, at: i64, past: &[Sample], out: &mut [Option<Recommendation>]) {
        let size = self.recommend(at, past);
        out.fill(size);
    }
}
