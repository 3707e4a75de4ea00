//! Scoring recommenders on a panel, as `EVALUATION.md` ("Rightsizing (vertical) metrics")
//! defines it.
//!
//! For every VM, at every whole hour (UTC) `h` that has samples: the recommender gets the VM's
//! samples before `h` and its recommendation is held over `[h, h + hold)`; every sample in that
//! hour is a scored step when it is at least `warmup` after the VM's first sample and inside
//! `[from, until)`. Samples before `from` are still history: a recommender scored on the last
//! 45 days has seen the days before. A recommender whose VMs share state
//! ([`Recommender::fleet_member`]) plays them together, hour by hour, one member per VM, so that
//! at every hour what it shares comes from the steps before that hour on every VM. Per
//! resource, over every scored step of every VM:
//!
//! - **slack** = mean of `(recommended − used) / recommended` (negative on a short step, with
//!   no lower bound: a step short by 25 × counts −24; a step with both at 0 counts 0, one with
//!   nothing recommended and some use counts −1). The headline figure;
//! - **oversize** = mean of `max(0, (recommended − used) / recommended)`: slack counting
//!   over-sizing only, a short step counting 0. Slack can be lowered by missing deeper; this
//!   cannot, so the two side by side show how much of the slack figure is short steps;
//! - **shortfall** = share of steps with `used > recommended`;
//! - **short depth** = mean of `used / recommended` over the short steps: how far they miss
//!   (`None` when no step is short). A short step with nothing recommended (an infinite ratio)
//!   counts as short but is left out of this mean. Without those,
//!   `slack = oversize − shortfall × (short depth − 1)` exactly;
//! - **cost ratio** = Σ recommended / Σ given (what the VMs were given), when the panel says;
//! - **changes per VM-day**: hours whose recommendation differs from the hour before, over the
//!   scored VM-days (scored steps × step / 1 day).
//!
//! The hourly oracle recommends each hour's own peak: never short, the least slack an hourly
//! size can have.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::panel::{Panel, Sample};
use super::{Recommendation, Recommender};

/// How a panel is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ScoreOptions {
    /// Score only steps at or after this time (seconds since the epoch).
    pub from: Option<i64>,
    /// Score only steps before this time.
    pub until: Option<i64>,
    /// Each VM's first this-many seconds are not scored (1 day).
    pub warmup_seconds: i64,
    /// How long a recommendation is held, seconds (1 hour); decisions fall on multiples of it.
    pub hold_seconds: i64,
}

impl Default for ScoreOptions {
    fn default() -> ScoreOptions {
        ScoreOptions {
            from: None,
            until: None,
            warmup_seconds: 86_400,
            hold_seconds: 3600,
        }
    }
}

/// One resource's score.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResourceScore {
    /// Scored steps.
    pub steps: u64,
    /// Mean of (recommended − used) / recommended, a fraction: negative on a short step, with
    /// no lower bound, so missing deeper lowers it.
    pub slack: f64,
    /// Mean of max(0, (recommended − used) / recommended), a fraction: slack counting
    /// over-sizing only, a short step counting 0.
    pub oversize: f64,
    /// Share of steps with used > recommended, a fraction.
    pub shortfall: f64,
    /// Mean of used / recommended over the short steps (above 1): how far they miss. `None`
    /// when no step with something recommended is short; a short step with nothing
    /// recommended counts in `shortfall` but not here.
    pub short_depth: Option<f64>,
    /// Σ recommended / Σ given; `None` when the panel does not say what the VMs were given.
    pub cost_ratio: Option<f64>,
    /// Mean recommended size per scored step (cores or bytes).
    pub mean_recommended: f64,
    /// Mean use per scored step.
    pub mean_used: f64,
    /// Hours whose recommendation differs from the hour before.
    pub changes: u64,
    /// Changes per scored VM-day.
    pub changes_per_vm_day: f64,
}

/// A recommender's (or the oracle's) score on a panel.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RightsizeScore {
    /// The recommender's name.
    pub name: String,
    /// Its settings in a line.
    pub settings: String,
    /// Its main setting's value, when it has one.
    pub setting: Option<f64>,
    /// VMs with at least one scored step.
    pub vms: usize,
    /// Scored VM-days.
    pub vm_days: f64,
    /// Steps in the scored span left unscored because the recommender could not tell yet.
    pub unsized_steps: u64,
    /// CPU.
    pub cpu: ResourceScore,
    /// Memory, when the panel has it.
    pub memory: Option<ResourceScore>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Acc {
    n: u64,
    slack: f64,
    over: f64,
    short: u64,
    /// Σ used / recommended over the short steps with something recommended.
    depth: f64,
    /// Those steps.
    short_sized: u64,
    rec: f64,
    used: f64,
    given: f64,
    changes: u64,
}

impl Acc {
    fn add(&mut self, rec: f64, used: f64, given: f64) {
        self.n += 1;
        let term = if rec > 0.0 {
            (rec - used) / rec
        } else if used > 0.0 {
            -1.0
        } else {
            0.0
        };
        self.slack += term;
        self.over += term.max(0.0);
        if used > rec {
            self.short += 1;
            if rec > 0.0 {
                self.depth += used / rec;
                self.short_sized += 1;
            }
        }
        self.rec += rec;
        self.used += used;
        self.given += given;
    }

    fn merge(&mut self, o: &Acc) {
        self.n += o.n;
        self.slack += o.slack;
        self.over += o.over;
        self.short += o.short;
        self.depth += o.depth;
        self.short_sized += o.short_sized;
        self.rec += o.rec;
        self.used += o.used;
        self.given += o.given;
        self.changes += o.changes;
    }

    fn finish(&self, given_known: bool, vm_days: f64) -> ResourceScore {
        let n = self.n.max(1) as f64;
        ResourceScore {
            steps: self.n,
            slack: self.slack / n,
            oversize: self.over / n,
            shortfall: self.short as f64 / n,
            short_depth: (self.short_sized > 0).then(|| self.depth / self.short_sized as f64),
            cost_ratio: (given_known && self.given > 0.0).then(|| self.rec / self.given),
            mean_recommended: self.rec / n,
            mean_used: self.used / n,
            changes: self.changes,
            changes_per_vm_day: if vm_days > 0.0 {
                self.changes as f64 / vm_days
            } else {
                0.0
            },
        }
    }
}

/// What is scored: the oracle, a recommender, or a recommender at several values of its main
/// setting in one play.
#[derive(Debug)]
pub enum Job {
    /// The hourly oracle: each hour's own peak.
    Oracle,
    /// A recommender.
    Recommender(Box<dyn Recommender>),
    /// A recommender made by [`Recommender::with_settings`]: one score per value, in order.
    Sweep {
        /// The recommender following every value.
        recommender: Box<dyn Recommender>,
        /// Per value: the value, and the name and settings line of the recommender at it.
        values: Vec<(f64, String, String)>,
    },
}

impl Job {
    /// The jobs scoring `recommender` at each of `values` of its main setting: one
    /// [`Job::Sweep`] when it can follow them all at once, else one job per value. Either way
    /// they give one score per value, in order.
    pub fn sweep(recommender: &dyn Recommender, values: &[f64]) -> Vec<Job> {
        match recommender.with_settings(values) {
            Some(all) if !values.is_empty() => vec![Job::Sweep {
                recommender: all,
                values: values
                    .iter()
                    .map(|&v| {
                        let one = recommender.with_setting(v);
                        (v, one.name(), one.describe())
                    })
                    .collect(),
            }],
            _ => values
                .iter()
                .map(|&v| Job::Recommender(recommender.with_setting(v)))
                .collect(),
        }
    }

    /// The jobs scoring `recommender` as it is, then at each of `values` of its main setting:
    /// one [`Job::Sweep`] when it can follow them all at once, else one job each. Either way
    /// they give one score per value after the recommender's own.
    pub fn with_sweep(recommender: Box<dyn Recommender>, values: &[f64]) -> Vec<Job> {
        let own = recommender.main_setting().map(|s| s.value);
        let all = own.and_then(|own| {
            let settings: Vec<f64> = std::iter::once(own).chain(values.iter().copied()).collect();
            recommender.with_settings(&settings)
        });
        match (own, all) {
            (Some(own), Some(all)) if !values.is_empty() => {
                let mut labels = vec![(own, recommender.name(), recommender.describe())];
                labels.extend(values.iter().map(|&v| {
                    let one = recommender.with_setting(v);
                    (v, one.name(), one.describe())
                }));
                vec![Job::Sweep {
                    recommender: all,
                    values: labels,
                }]
            }
            _ => {
                let mut jobs = Job::sweep(recommender.as_ref(), values);
                jobs.insert(0, Job::Recommender(recommender));
                jobs
            }
        }
    }

    /// How many scores it gives.
    pub fn scores(&self) -> usize {
        match self {
            Job::Sweep { values, .. } => values.len(),
            Job::Oracle | Job::Recommender(_) => 1,
        }
    }
}

impl std::fmt::Debug for dyn Recommender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recommender({})", self.name())
    }
}

/// The hourly oracle: the peak of each resource over `hour` (the samples it is held for).
pub fn oracle(hour: &[Sample]) -> Recommendation {
    hour.iter()
        .fold(Recommendation { cpu: 0.0, mem: 0.0 }, |r, s| {
            Recommendation {
                cpu: r.cpu.max(s.cpu),
                mem: r.mem.max(s.mem),
            }
        })
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    cpu: Acc,
    mem: Acc,
    vms: usize,
    unsized_steps: u64,
}

/// One VM being played: where it is in its samples, and its totals so far (one per score the
/// job gives).
struct VmPlay<'a> {
    samples: &'a [Sample],
    /// The first sample not played yet.
    i: usize,
    hold: i64,
    scored_from: i64,
    until: i64,
    memory: bool,
    previous: Vec<Option<Recommendation>>,
    recs: Vec<Option<Recommendation>>,
    totals: Vec<Totals>,
}

impl<'a> VmPlay<'a> {
    fn new(samples: &'a [Sample], scores: usize, opts: &ScoreOptions, memory: bool) -> Self {
        let first = samples.first().map_or(i64::MAX, |s| s.at);
        VmPlay {
            samples,
            i: 0,
            hold: opts.hold_seconds.max(1),
            scored_from: first
                .saturating_add(opts.warmup_seconds)
                .max(opts.from.unwrap_or(i64::MIN)),
            until: opts.until.unwrap_or(i64::MAX),
            memory,
            previous: vec![None; scores],
            recs: vec![None; scores],
            totals: vec![Totals::default(); scores],
        }
    }

    /// The hour (a multiple of the hold) of the next sample to play; `None` when every one
    /// before `until` is played.
    fn next_hour(&self) -> Option<i64> {
        self.samples
            .get(self.i)
            .filter(|s| s.at < self.until)
            .map(|s| s.at.div_euclid(self.hold) * self.hold)
    }

    /// Plays the next hour, `h` (from [`VmPlay::next_hour`]): the job's recommendation from
    /// the samples before it, scored on the hour's samples.
    fn hour(&mut self, job: &mut Job, h: i64) {
        let (i, samples) = (self.i, self.samples);
        let mut j = i + 1;
        while j < samples.len() && samples[j].at < h + self.hold {
            j += 1;
        }
        let recs = &mut self.recs;
        match job {
            Job::Oracle => recs[0] = Some(oracle(&samples[i..j])),
            Job::Recommender(r) => recs[0] = r.recommend(h, &samples[..i]),
            Job::Sweep { recommender, .. } => {
                recommender.recommend_all(h, &samples[..i], recs);
            }
        }
        for ((t, &rec), previous) in self.totals.iter_mut().zip(&*recs).zip(&mut self.previous) {
            let mut scored = false;
            for s in &samples[i..j] {
                if s.at < self.scored_from || s.at >= self.until {
                    continue;
                }
                let Some(rec) = rec else {
                    t.unsized_steps += 1;
                    continue;
                };
                scored = true;
                t.cpu.add(rec.cpu, s.cpu, s.cpu_given);
                if self.memory {
                    t.mem.add(rec.mem, s.mem, s.mem_given);
                }
            }
            if scored && let (Some(p), Some(r)) = (*previous, rec) {
                t.cpu.changes += u64::from(p.cpu != r.cpu);
                t.mem.changes += u64::from(self.memory && p.mem != r.mem);
            }
            *previous = rec;
        }
        self.i = j;
    }

    fn finish(mut self) -> Vec<Totals> {
        for t in &mut self.totals {
            t.vms = usize::from(t.cpu.n > 0);
        }
        self.totals
    }
}

/// Plays `job` on one VM: one total per score the job gives.
fn score_vm(samples: &[Sample], job: &mut Job, opts: &ScoreOptions, memory: bool) -> Vec<Totals> {
    let mut play = VmPlay::new(samples, job.scores(), opts, memory);
    if samples.is_empty() {
        return play.finish();
    }
    match job {
        Job::Oracle => {}
        Job::Recommender(r) | Job::Sweep { recommender: r, .. } => r.start(),
    }
    while let Some(h) = play.next_hour() {
        play.hour(job, h);
    }
    play.finish()
}

/// For a job whose recommender shares state across VMs ([`Recommender::fleet_member`]): a
/// job per VM, each with its own member, started. `None` for any other job.
fn fleet_jobs(job: &Job, vms: usize) -> Option<Vec<Job>> {
    let (Job::Recommender(r) | Job::Sweep { recommender: r, .. }) = job else {
        return None;
    };
    let first = r.fleet_member()?;
    let jobs = std::iter::once(Some(first))
        .chain((1..vms).map(|_| r.fleet_member()))
        .map(|member| {
            let mut member = member?;
            member.start();
            Some(match job {
                Job::Sweep { values, .. } => Job::Sweep {
                    recommender: member,
                    values: values.clone(),
                },
                _ => Job::Recommender(member),
            })
        })
        .collect::<Option<Vec<Job>>>()?;
    Some(jobs)
}

/// Plays every VM of `panel` together, hour by hour (in the panel's VM order within an hour),
/// each with its own job of `jobs`: one total per VM, per score.
fn score_fleet(panel: &Panel, jobs: &mut [Job], opts: &ScoreOptions) -> Vec<Vec<Totals>> {
    let mut plays: Vec<VmPlay<'_>> = panel
        .vms
        .iter()
        .zip(jobs.iter())
        .map(|(vm, job)| VmPlay::new(&vm.samples, job.scores(), opts, panel.columns.memory))
        .collect();
    while let Some(h) = plays.iter().filter_map(VmPlay::next_hour).min() {
        for (play, job) in plays.iter_mut().zip(jobs.iter_mut()) {
            if play.next_hour() == Some(h) {
                play.hour(job, h);
            }
        }
    }
    plays.into_iter().map(VmPlay::finish).collect()
}

/// Scores `job` on `panel`: one score per score the job gives.
fn score_job(panel: &Panel, mut job: Job, opts: &ScoreOptions) -> Vec<RightsizeScore> {
    let mut totals = vec![Totals::default(); job.scores()];
    let per_vm: Vec<Vec<Totals>> = match fleet_jobs(&job, panel.vms.len()) {
        Some(mut jobs) => score_fleet(panel, &mut jobs, opts),
        None => panel
            .vms
            .iter()
            .map(|vm| score_vm(&vm.samples, &mut job, opts, panel.columns.memory))
            .collect(),
    };
    for vm_totals in &per_vm {
        for (totals, t) in totals.iter_mut().zip(vm_totals) {
            totals.cpu.merge(&t.cpu);
            totals.mem.merge(&t.mem);
            totals.vms += t.vms;
            totals.unsized_steps += t.unsized_steps;
        }
    }
    let labels: Vec<(String, String, Option<f64>)> = match &job {
        Job::Oracle => vec![(
            "oracle".to_owned(),
            "each hour's own peak (knows the future)".to_owned(),
            None,
        )],
        Job::Recommender(r) => vec![(r.name(), r.describe(), r.main_setting().map(|s| s.value))],
        Job::Sweep { values, .. } => values
            .iter()
            .map(|(v, name, settings)| (name.clone(), settings.clone(), Some(*v)))
            .collect(),
    };
    totals
        .iter()
        .zip(labels)
        .map(|(totals, (name, settings, setting))| {
            let vm_days = totals.cpu.n as f64 * panel.step_seconds as f64 / 86_400.0;
            RightsizeScore {
                name,
                settings,
                setting,
                vms: totals.vms,
                vm_days,
                unsized_steps: totals.unsized_steps,
                cpu: totals.cpu.finish(panel.columns.cpu_given, vm_days),
                memory: panel
                    .columns
                    .memory
                    .then(|| totals.mem.finish(panel.columns.mem_given, vm_days)),
            }
        })
        .collect()
}

/// Scores every job on `panel`, on up to `threads` threads; the scores come back in the jobs'
/// order (a [`Job::Sweep`]'s one per value, in order).
pub fn score_all(
    panel: &Panel,
    jobs: Vec<Job>,
    opts: &ScoreOptions,
    threads: usize,
) -> Vec<RightsizeScore> {
    let count = jobs.len();
    // The longest first (a sweep played at once), so that no thread is left with it at the end.
    let mut order: Vec<usize> = (0..count).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(jobs[k].scores()));
    let queue: Vec<Mutex<Option<Job>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let results: Vec<Mutex<Vec<RightsizeScore>>> =
        (0..count).map(|_| Mutex::new(Vec::new())).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        while let Some(&k) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            let job = queue[k].lock().ok().and_then(|mut j| j.take());
            if let Some(job) = job {
                let scores = score_job(panel, job, opts);
                if let Ok(mut slot) = results[k].lock() {
                    *slot = scores;
                }
            }
        }
    };
    let threads = threads.clamp(1, count.max(1));
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(work);
            }
        });
    }
    results
        .into_iter()
        .flat_map(|r| r.into_inner().unwrap_or_default())
        .collect()
}

/// Scores one recommender.
pub fn score_recommender(
    panel: &Panel,
    recommender: Box<dyn Recommender>,
    opts: &ScoreOptions,
) -> RightsizeScore {
    one(score_job(panel, Job::Recommender(recommender), opts))
}

/// Scores the hourly oracle.
pub fn score_oracle(panel: &Panel, opts: &ScoreOptions) -> RightsizeScore {
    one(score_job(panel, Job::Oracle, opts))
}

/// The score of a job giving one.
fn one(mut scores: Vec<RightsizeScore>) -> RightsizeScore {
    scores.swap_remove(0)
}

/// One setting of a frontier sweep.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SweepPoint {
    /// The main setting's value.
    pub value: f64,
    /// The score with it.
    pub score: RightsizeScore,
}

/// Scores `recommender` at each value of its main setting's sweep (none when it has no main
/// setting), in one play when it can follow them all at once ([`Job::sweep`]).
pub fn sweep(
    panel: &Panel,
    recommender: &dyn Recommender,
    opts: &ScoreOptions,
    threads: usize,
) -> Vec<SweepPoint> {
    let Some(setting) = recommender.main_setting() else {
        return Vec::new();
    };
    let jobs = Job::sweep(recommender, &setting.sweep);
    setting
        .sweep
        .iter()
        .zip(score_all(panel, jobs, opts, threads))
        .map(|(&value, score)| SweepPoint { value, score })
        .collect()
}

/// The sweep point with the least slack on a resource among those at most `max_shortfall`
/// short on it (`memory` picks the resource).
pub fn best_within(points: &[SweepPoint], max_shortfall: f64, memory: bool) -> Option<&SweepPoint> {
    points
        .iter()
        .filter_map(|p| {
            let r = if memory {
                p.score.memory.as_ref()?
            } else {
                &p.score.cpu
            };
            (r.shortfall <= max_shortfall + 1e-12).then_some((p, r.slack))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::super::panel::parse_panel;
    use super::*;
    use std::sync::Arc;

    /// Recommends a fixed size, or the last sample's use × 2 when `follow`.
    #[derive(Debug)]
    struct Fixed {
        cpu: f64,
        mem: f64,
        follow: bool,
    }

    impl Recommender for Fixed {
        fn name(&self) -> String {
            "fixed".into()
        }
        fn with_setting(&self, value: f64) -> Box<dyn Recommender> {
            Box::new(Fixed {
                cpu: value,
                mem: self.mem,
                follow: self.follow,
            })
        }
        fn start(&mut self) {}
        fn recommend(&mut self, _at: i64, past: &[Sample]) -> Option<Recommendation> {
            if self.follow {
                let last = past.last()?;
                return Some(Recommendation {
                    cpu: last.cpu * 2.0,
                    mem: last.mem * 2.0,
                });
            }
            Some(Recommendation {
                cpu: self.cpu,
                mem: self.mem,
            })
        }
    }

    /// One VM given 4 cores and 1000 bytes, 30-minute steps over three hours (6 steps).
    fn panel() -> Panel {
        parse_panel(
            "hand",
            "timestamp,vm,cpu_used,cpu_capacity,mem_used,mem_capacity\n\
             2024-01-01T00:00:00Z,a,1,4,100,1000\n\
             2024-01-01T00:30:00Z,a,2,4,200,1000\n\
             2024-01-01T01:00:00Z,a,1,4,100,1000\n\
             2024-01-01T01:30:00Z,a,3,4,500,1000\n\
             2024-01-01T02:00:00Z,a,2,4,400,1000\n\
             2024-01-01T02:30:00Z,a,1,4,400,1000\n",
        )
        .unwrap()
    }

    fn opts() -> ScoreOptions {
        ScoreOptions {
            warmup_seconds: 3600,
            ..ScoreOptions::default()
        }
    }

    #[test]
    fn a_fixed_size_by_hand() {
        // Warm-up 1 h: steps 01:00..02:30 are scored (4 steps). Size 2 cores, 400 bytes.
        // CPU used 1, 3, 2, 1: slack terms 0.5, −0.5, 0, 0.5 → mean 0.125; short 1 of 4;
        // cost 8 / 16 = 0.5. Memory used 100, 500, 400, 400: terms 0.75, −0.25, 0, 0 → 0.125;
        // short 1 of 4; cost 1600 / 4000 = 0.4. Never changes. 4 steps of 30 min = 1/12 day.
        // Oversize counts the short step 0: CPU (0.5 + 0 + 0 + 0.5) / 4 = 0.25, memory
        // 0.75 / 4 = 0.1875. The short step's depth: CPU 3 / 2 = 1.5, memory 500 / 400 = 1.25;
        // slack = oversize − shortfall × (depth − 1): 0.25 − 0.25 × 0.5 = 0.125.
        let s = score_recommender(
            &panel(),
            Box::new(Fixed {
                cpu: 2.0,
                mem: 400.0,
                follow: false,
            }),
            &opts(),
        );
        assert_eq!(s.cpu.steps, 4);
        assert!((s.cpu.slack - 0.125).abs() < 1e-12);
        assert!((s.cpu.shortfall - 0.25).abs() < 1e-12);
        assert!((s.cpu.cost_ratio.unwrap() - 0.5).abs() < 1e-12);
        assert!((s.cpu.oversize - 0.25).abs() < 1e-12);
        assert!((s.cpu.short_depth.unwrap() - 1.5).abs() < 1e-12);
        let m = s.memory.unwrap();
        assert!((m.slack - 0.125).abs() < 1e-12);
        assert!((m.shortfall - 0.25).abs() < 1e-12);
        assert!((m.cost_ratio.unwrap() - 0.4).abs() < 1e-12);
        assert!((m.oversize - 0.1875).abs() < 1e-12);
        assert!((m.short_depth.unwrap() - 1.25).abs() < 1e-12);
        assert_eq!((s.cpu.changes, m.changes), (0, 0));
        assert!((s.vm_days - 1.0 / 12.0).abs() < 1e-12);
    }

    /// A fleet member: sizes each hour at the number of hours any member has been asked for
    /// before it, and notes every call (its VM, the hour) in the log the fleet shares.
    struct Counting {
        vm: usize,
        members: Arc<Mutex<usize>>,
        log: Arc<Mutex<Vec<(usize, i64)>>>,
    }

    impl Recommender for Counting {
        fn name(&self) -> String {
            "counting".into()
        }
        fn with_setting(&self, _: f64) -> Box<dyn Recommender> {
            unreachable!()
        }
        fn fleet_member(&self) -> Option<Box<dyn Recommender>> {
            let mut members = self.members.lock().unwrap();
            *members += 1;
            Some(Box::new(Counting {
                vm: *members - 1,
                members: Arc::clone(&self.members),
                log: Arc::clone(&self.log),
            }))
        }
        fn start(&mut self) {}
        fn recommend(&mut self, at: i64, _past: &[Sample]) -> Option<Recommendation> {
            let mut log = self.log.lock().unwrap();
            let before = log.iter().filter(|(_, h)| *h < at).count() as f64;
            log.push((self.vm, at));
            Some(Recommendation {
                cpu: 1.0 + before,
                mem: 1.0,
            })
        }
    }

    #[test]
    fn a_fleet_is_played_hour_by_hour_over_its_vms() {
        // Two VMs: `a` from 00:00 to 02:30, `b` from 01:00 to 03:30. Played together, the
        // calls go hour by hour, in the panel's order within an hour, one member per VM.
        let panel = parse_panel(
            "fleet",
            "timestamp,vm,cpu_used\n\
             2024-01-01T00:00:00Z,a,1\n\
             2024-01-01T01:00:00Z,a,1\n\
             2024-01-01T02:30:00Z,a,1\n\
             2024-01-01T01:00:00Z,b,1\n\
             2024-01-01T03:30:00Z,b,1\n",
        )
        .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let fleet = Counting {
            vm: usize::MAX,
            members: Arc::new(Mutex::new(0)),
            log: Arc::clone(&log),
        };
        let opts = ScoreOptions {
            warmup_seconds: 0,
            ..ScoreOptions::default()
        };
        let s = score_recommender(&panel, Box::new(fleet), &opts);
        let t0 = 1_704_067_200; // 2024-01-01T00:00:00Z
        let h = |k: i64| t0 + k * 3600;
        assert_eq!(
            *log.lock().unwrap(),
            vec![(0, h(0)), (0, h(1)), (1, h(1)), (0, h(2)), (1, h(3))]
        );
        // Each step scored against its own member's size: at 00:00 nothing was asked before
        // (1), at 01:00 one hour (2, both VMs), at 02:00 three calls before (4), at 03:00 four
        // (5): CPU used 1 everywhere, so slack is the mean of 1 − 1 / size.
        let expected = [1.0, 2.0, 2.0, 4.0, 5.0]
            .iter()
            .map(|size: &f64| 1.0 - 1.0 / size)
            .sum::<f64>()
            / 5.0;
        assert_eq!((s.cpu.steps, s.vms), (5, 2));
        assert!((s.cpu.slack - expected).abs() < 1e-12, "{}", s.cpu.slack);
    }

    #[test]
    fn a_recommender_sees_only_the_past_by_hand() {
        // Twice the last use before each hour. At 01:00 the last sample is 00:30 (2, 200): size
        // 4 and 400 over 01:00, 01:30. At 02:00 the last is 01:30 (3, 500): 6 and 1000 over
        // 02:00, 02:30. CPU terms: 3/4, 1/4, 4/6, 5/6 → mean 0.625, never short, cost 20/16.
        // Memory terms: 3/4, −1/4, 6/10, 6/10 → mean 0.425, short 1 of 4, cost 2800/4000.
        // One change on each resource (01:00 → 02:00), over 1/12 VM-day: 12 per VM-day.
        // CPU is never short: oversize = slack, no depth. Memory oversize (3/4 + 0 + 6/10 +
        // 6/10) / 4 = 0.4875; its short step uses 500 of 400, depth 1.25.
        let s = score_recommender(
            &panel(),
            Box::new(Fixed {
                cpu: 0.0,
                mem: 0.0,
                follow: true,
            }),
            &opts(),
        );
        assert!((s.cpu.slack - 0.625).abs() < 1e-12);
        assert_eq!(s.cpu.shortfall, 0.0);
        assert!((s.cpu.cost_ratio.unwrap() - 1.25).abs() < 1e-12);
        assert!((s.cpu.oversize - 0.625).abs() < 1e-12);
        assert_eq!(s.cpu.short_depth, None);
        let m = s.memory.unwrap();
        assert!((m.slack - 0.425).abs() < 1e-12);
        assert!((m.shortfall - 0.25).abs() < 1e-12);
        assert!((m.cost_ratio.unwrap() - 0.7).abs() < 1e-12);
        assert!((m.oversize - 0.4875).abs() < 1e-12);
        assert!((m.short_depth.unwrap() - 1.25).abs() < 1e-12);
        assert_eq!((s.cpu.changes, m.changes), (1, 1));
        assert!((s.cpu.changes_per_vm_day - 12.0).abs() < 1e-9);
    }

    #[test]
    fn the_oracle_by_hand() {
        // Hour peaks: 01:00 → (3, 500), 02:00 → (2, 400). CPU terms 2/3, 0, 0, 1/2 → 7/24;
        // memory terms 4/5, 0, 0, 0 → 0.2. Never short.
        let s = score_oracle(&panel(), &opts());
        assert!((s.cpu.slack - 7.0 / 24.0).abs() < 1e-12);
        assert_eq!(s.cpu.shortfall, 0.0);
        assert_eq!((s.cpu.oversize, s.cpu.short_depth), (s.cpu.slack, None));
        let m = s.memory.unwrap();
        assert!((m.slack - 0.2).abs() < 1e-12);
        assert_eq!(m.shortfall, 0.0);
        assert_eq!((m.oversize, m.short_depth), (m.slack, None));
        // CPU peaks 2 (warm-up hour), 3, 2: a change in each scored hour.
        assert_eq!(s.cpu.changes, 2);
    }

    #[test]
    fn missing_deeper_lowers_slack_but_not_oversize_by_hand() {
        // CPU used 1, 3, 2, 1 against half a core: every step short, by 2, 6, 4, 2 ×. Slack
        // terms −1, −5, −3, −1 → −2.5; oversize 0; depth (2 + 6 + 4 + 2) / 4 = 3.5, and
        // slack = 0 − 1 × (3.5 − 1). Memory at 0 with use: short on every step with nothing
        // recommended: slack −1 (each counts −1), oversize 0, no depth (the ratio is infinite).
        let s = score_recommender(
            &panel(),
            Box::new(Fixed {
                cpu: 0.5,
                mem: 0.0,
                follow: false,
            }),
            &opts(),
        );
        assert!((s.cpu.slack + 2.5).abs() < 1e-12);
        assert_eq!(s.cpu.oversize, 0.0);
        assert_eq!(s.cpu.shortfall, 1.0);
        assert!((s.cpu.short_depth.unwrap() - 3.5).abs() < 1e-12);
        let m = s.memory.unwrap();
        assert_eq!((m.slack, m.oversize, m.shortfall), (-1.0, 0.0, 1.0));
        assert_eq!(m.short_depth, None);
        // A quarter of a core misses twice as deep: slack falls to −6, oversize stays 0.
        let deeper = score_recommender(
            &panel(),
            Box::new(Fixed {
                cpu: 0.25,
                mem: 0.0,
                follow: false,
            }),
            &opts(),
        );
        assert!((deeper.cpu.slack + 6.0).abs() < 1e-12);
        assert_eq!(deeper.cpu.oversize, 0.0);
        assert!((deeper.cpu.short_depth.unwrap() - 7.0).abs() < 1e-12);
    }

    #[test]
    fn a_window_scores_only_its_steps() {
        // From 02:00: the steps 02:00 and 02:30 with size (2, 400): CPU terms 0, 0.5.
        let opts = ScoreOptions {
            from: Some(1_704_074_400),
            ..opts()
        };
        let s = score_recommender(
            &panel(),
            Box::new(Fixed {
                cpu: 2.0,
                mem: 400.0,
                follow: false,
            }),
            &opts,
        );
        assert_eq!(s.cpu.steps, 2);
        assert!((s.cpu.slack - 0.25).abs() < 1e-12);
        // Until 02:00 instead: 01:00 and 01:30.
        let opts = ScoreOptions {
            from: None,
            until: Some(1_704_074_400),
            ..opts
        };
        let s = score_oracle(&panel(), &opts);
        assert_eq!(s.cpu.steps, 2);
        assert!((s.cpu.slack - (2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn sweeps_run_in_parallel_in_order() {
        let fixed = Fixed {
            cpu: 0.0,
            mem: 400.0,
            follow: false,
        };
        struct Swept(Fixed);
        impl Recommender for Swept {
            fn name(&self) -> String {
                "swept".into()
            }
            fn main_setting(&self) -> Option<super::super::Setting> {
                Some(super::super::Setting {
                    name: "cpu".into(),
                    value: 2.0,
                    sweep: vec![1.0, 2.0, 3.0, 4.0],
                })
            }
            fn with_setting(&self, v: f64) -> Box<dyn Recommender> {
                self.0.with_setting(v)
            }
            fn start(&mut self) {}
            fn recommend(&mut self, at: i64, past: &[Sample]) -> Option<Recommendation> {
                self.0.recommend(at, past)
            }
        }
        let points = sweep(&panel(), &Swept(fixed), &opts(), 3);
        let values: Vec<f64> = points.iter().map(|p| p.value).collect();
        assert_eq!(values, [1.0, 2.0, 3.0, 4.0]);
        // Size 3: CPU used 1, 3, 2, 1 → never short; size 2 is short once.
        let best = best_within(&points, 0.0, false).unwrap();
        assert_eq!(best.value, 3.0);
        assert_eq!(best_within(&points, 0.25, false).unwrap().value, 2.0);
    }

    /// A fixed CPU size per value, followed all at once.
    struct Multi(Vec<f64>);

    impl Recommender for Multi {
        fn name(&self) -> String {
            "multi".into()
        }
        fn describe(&self) -> String {
            format!("size {}", self.0[0])
        }
        fn main_setting(&self) -> Option<super::super::Setting> {
            Some(super::super::Setting {
                name: "cpu".into(),
                value: self.0[0],
                sweep: vec![1.0, 3.0],
            })
        }
        fn with_setting(&self, v: f64) -> Box<dyn Recommender> {
            Box::new(Multi(vec![v]))
        }
        fn with_settings(&self, values: &[f64]) -> Option<Box<dyn Recommender>> {
            Some(Box::new(Multi(values.to_vec())))
        }
        fn start(&mut self) {}
        fn recommend(&mut self, _at: i64, _past: &[Sample]) -> Option<Recommendation> {
            Some(Recommendation {
                cpu: self.0[0],
                mem: 400.0,
            })
        }
        fn recommend_all(
            &mut self,
            _at: i64,
            _past: &[Sample],
            out: &mut [Option<Recommendation>],
        ) {
            for (slot, &cpu) in out.iter_mut().zip(&self.0) {
                *slot = Some(Recommendation { cpu, mem: 400.0 });
            }
        }
    }

    #[test]
    fn a_sweep_played_at_once_scores_each_value_as_alone() {
        // The recommender at 2, then its sweep 1 and 3, in one job: the same scores, in order,
        // as one job per value; after the oracle, whichever job is played first.
        let own: Box<dyn Recommender> = Box::new(Multi(vec![2.0]));
        let jobs = Job::with_sweep(own, &[1.0, 3.0]);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].scores(), 3);
        let mut all = vec![Job::Oracle];
        all.extend(jobs);
        let scores = score_all(&panel(), all, &opts(), 2);
        assert_eq!(scores.len(), 4);
        assert_eq!(scores[0], score_oracle(&panel(), &opts()));
        for (score, cpu) in scores[1..].iter().zip([2.0, 1.0, 3.0]) {
            let alone = score_recommender(&panel(), Box::new(Multi(vec![cpu])), &opts());
            assert_eq!(*score, alone);
            assert_eq!(score.setting, Some(cpu));
            assert_eq!(score.settings, format!("size {cpu}"));
        }
        // Without `with_settings`: one job per value, the recommender's own first.
        let fixed: Box<dyn Recommender> = Box::new(Fixed {
            cpu: 2.0,
            mem: 400.0,
            follow: false,
        });
        let jobs = Job::with_sweep(fixed, &[1.0, 3.0]);
        assert_eq!(jobs.iter().map(Job::scores).collect::<Vec<_>>(), [1, 1, 1]);
        let scores = score_all(&panel(), jobs, &opts(), 1);
        // CPU used 1, 3, 2, 1: size 2 is short on 1 of 4 steps, size 1 on 2, size 3 on none.
        let short: Vec<f64> = scores.iter().map(|s| s.cpu.shortfall).collect();
        assert_eq!(short, [0.25, 0.5, 0.0]);
    }
}
