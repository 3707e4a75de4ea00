//! Demand for a simulated group: work units per second over time, from a trace or a seeded
//! generator.
//!
//! Demand is piecewise constant: a trace holds each value for its step; a generator is
//! evaluated once per simulation tick (at the tick's start) and held for the tick. `None` means
//! "no data" (a gap in a trace, or time past the end of a trace that does not loop): the
//! simulated cloud then reports no metrics for that time instead of pretending demand was zero.

use hoist_api::input::number;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::rng::{hash_words, normal_from, unit_f64};
use crate::trace::Trace;

/// Where a group's demand comes from.
#[derive(Debug, Clone)]
pub enum DemandSpec {
    /// The same demand at all times, work units per second.
    Constant(f64),
    /// A seeded synthetic workload.
    Generator(GeneratorSpec),
    /// A replayed trace.
    Trace(TraceDemand),
    /// A share of the demand named here, defined once in the world
    /// ([`SimulatedCloudBuilder::shared_demand`](crate::SimulatedCloudBuilder::shared_demand), or
    /// `shared_demands:` in the settings of a simulated provider of the same `world:`): at every
    /// tick the group gets the shared demand times its serving capacity over the serving capacity
    /// of all the groups that share it (see [Shared demand](crate#shared-demand)).
    Shared(String),
}

impl DemandSpec {
    /// A short description for tags and reports (`constant 120`, `generator`, `trace nasa`).
    pub fn describe(&self) -> String {
        match self {
            DemandSpec::Constant(v) => format!("constant {v}"),
            DemandSpec::Generator(_) => "generator".to_owned(),
            DemandSpec::Trace(t) => format!("trace {}", t.trace.name),
            DemandSpec::Shared(name) => format!("shared {name}"),
        }
    }
}

/// A synthetic workload: a base level with a daily cycle, a weekly factor, noise and spikes.
///
/// `d(t) = max(0, base * (1 + daily_amplitude * cos(2π (hour(t) - peak_hour) / 24))
///          * weekend(t) * (1 + noise * N(0, 1)) + spikes(t))`
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorSpec {
    /// Mean level on a weekday, work units per second.
    pub base: f64,
    /// Relative amplitude of the daily cycle (0 = flat, 0.5 = peak 1.5 × base, trough 0.5 × base).
    pub daily_amplitude: f64,
    /// Hour of the day (UTC, 0..24) of the daily peak.
    pub peak_hour: f64,
    /// Factor applied on Saturdays and Sundays (1 = no weekly cycle).
    pub weekend_factor: f64,
    /// Relative standard deviation of the per-tick noise (0 = none).
    pub noise: f64,
    /// Mean number of spikes per day (a Poisson process).
    pub spikes_per_day: f64,
    /// Demand a spike adds, as a multiple of `base`.
    pub spike_magnitude: f64,
    /// How long a spike lasts.
    pub spike_duration: Duration,
}

impl GeneratorSpec {
    /// A flat workload at `base` work units per second, no cycles, noise or spikes.
    pub fn flat(base: f64) -> Self {
        GeneratorSpec {
            base,
            daily_amplitude: 0.0,
            peak_hour: 14.0,
            weekend_factor: 1.0,
            noise: 0.0,
            spikes_per_day: 0.0,
            spike_magnitude: 0.0,
            spike_duration: Duration::from_secs(600),
        }
    }

    /// A typical web workload around `base`: daily amplitude 0.5 peaking at 14:00 UTC,
    /// weekends at 70 %, 5 % noise, one spike of +100 % for 10 minutes every two days.
    pub fn web(base: f64) -> Self {
        GeneratorSpec {
            base,
            daily_amplitude: 0.5,
            peak_hour: 14.0,
            weekend_factor: 0.7,
            noise: 0.05,
            spikes_per_day: 0.5,
            spike_magnitude: 1.0,
            spike_duration: Duration::from_secs(600),
        }
    }

    /// Checks the parameters; the message names the bad field.
    pub fn validate(&self) -> Result<(), String> {
        use hoist_api::input::MAX_AMOUNT;
        // (field, value, largest): amounts of work up to MAX_AMOUNT; factors and rates within
        // what a generator can mean (one spike a minute, noise ten times the load).
        let ranges = [
            ("base", self.base, MAX_AMOUNT),
            ("daily_amplitude", self.daily_amplitude, 1.0),
            ("weekend_factor", self.weekend_factor, 100.0),
            ("noise", self.noise, 10.0),
            ("spikes_per_day", self.spikes_per_day, 1440.0),
            ("spike_magnitude", self.spike_magnitude, 1000.0),
        ];
        for (field, v, largest) in ranges {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "{field} must be a finite number >= 0, got {}",
                    number(v)
                ));
            }
            if v > largest {
                return Err(format!(
                    "{field} must be at most {}, got {}",
                    number(largest),
                    number(v)
                ));
            }
        }
        if !(0.0..24.0).contains(&self.peak_hour) {
            return Err(format!(
                "peak_hour must be in [0, 24), got {}",
                self.peak_hour
            ));
        }
        Ok(())
    }
}

/// A trace replayed as demand: trace step `i` is played at `start + i * step` of the
/// simulation (the trace is aligned to the simulation's start).
#[derive(Debug, Clone)]
pub struct TraceDemand {
    /// The trace.
    pub trace: Arc<Trace>,
    /// How trace units map to work units per second.
    pub scale: TraceScale,
    /// Replay from the beginning after the end; without it, time past the end is a gap.
    pub looped: bool,
}

/// How a trace's unit maps to work units per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceScale {
    /// Multiply each value by this factor.
    Factor(f64),
    /// Scale so that the trace's largest value needs this many instances at 100 % utilisation.
    PeakInstances(f64),
}

/// Demand ready to evaluate: the spec with everything resolved (scale factor, seeds).
#[derive(Debug, Clone)]
pub(crate) enum Demand {
    Constant(f64),
    Generator {
        spec: GeneratorSpec,
        seed: u64,
        /// Spikes of the days last computed: (day number, [(start, end) in epoch seconds]).
        spike_cache: Vec<(i64, Vec<(i64, i64)>)>,
    },
    Trace {
        trace: Arc<Trace>,
        factor: f64,
        looped: bool,
        start: DateTime<Utc>,
    },
    /// A share of a shared demand, set by the world at every tick (see [`crate::shared`]); it
    /// is never evaluated here.
    Shared(String),
}

impl Demand {
    /// Resolves `spec` for a group whose instances serve `work_per_instance` each; `seed`
    /// should differ per group.
    pub(crate) fn resolve(
        spec: &DemandSpec,
        work_per_instance: f64,
        seed: u64,
        start: DateTime<Utc>,
    ) -> Result<Demand, String> {
        Ok(match spec {
            DemandSpec::Shared(name) => {
                if name.trim().is_empty() {
                    return Err("a shared demand needs a name".to_owned());
                }
                Demand::Shared(name.clone())
            }
            DemandSpec::Constant(v) => {
                if !v.is_finite() || !(0.0..=hoist_api::input::MAX_AMOUNT).contains(v) {
                    return Err(format!(
                        "constant demand must be in [0, {:e}], got {}",
                        hoist_api::input::MAX_AMOUNT,
                        number(*v)
                    ));
                }
                Demand::Constant(*v)
            }
            DemandSpec::Generator(g) => {
                g.validate()?;
                Demand::Generator {
                    spec: g.clone(),
                    seed,
                    spike_cache: Vec::new(),
                }
            }
            DemandSpec::Trace(t) => {
                if t.trace.is_empty() {
                    return Err(format!("trace {} is empty", t.trace.name));
                }
                let factor = match t.scale {
                    TraceScale::Factor(f) => f,
                    TraceScale::PeakInstances(peak) => {
                        if !peak.is_finite()
                            || peak <= 0.0
                            || peak > f64::from(hoist_api::input::MAX_INSTANCES)
                        {
                            return Err(format!(
                                "peak_instances must be in (0, {}], got {}",
                                hoist_api::input::MAX_INSTANCES,
                                number(peak)
                            ));
                        }
                        match t.trace.max() {
                            Some(max) if max > 0.0 => peak * work_per_instance / max,
                            _ => {
                                return Err(format!(
                                    "trace {} has no positive value to scale to peak_instances",
                                    t.trace.name
                                ));
                            }
                        }
                    }
                };
                if !factor.is_finite() || !(0.0..=hoist_api::input::MAX_AMOUNT).contains(&factor) {
                    return Err(format!(
                        "trace scale must be a finite number in [0, {:e}], got {}",
                        hoist_api::input::MAX_AMOUNT,
                        number(factor)
                    ));
                }
                Demand::Trace {
                    trace: t.trace.clone(),
                    factor,
                    looped: t.looped,
                    start,
                }
            }
        })
    }

    /// Demand at time `t`, work units per second; `tick` is the simulation tick index of `t`,
    /// used to draw the generator's noise.
    pub(crate) fn at(&mut self, t: DateTime<Utc>, tick: i64) -> Option<f64> {
        match self {
            Demand::Constant(v) => Some(*v),
            Demand::Shared(_) => None,
            Demand::Trace {
                trace,
                factor,
                looped,
                start,
            } => {
                let step_ns = trace.step.num_nanoseconds()?.max(1);
                let off_ns = (t - *start).num_nanoseconds()?;
                if off_ns < 0 {
                    return None;
                }
                let mut i = (off_ns / step_ns) as u64;
                let len = trace.len() as u64;
                if i >= len {
                    if !*looped {
                        return None;
                    }
                    i %= len;
                }
                trace.values[i as usize].map(|v| v * *factor)
            }
            Demand::Generator {
                spec,
                seed,
                spike_cache,
            } => {
                let hour = f64::from(t.hour())
                    + f64::from(t.minute()) / 60.0
                    + f64::from(t.second()) / 3600.0;
                let daily = 1.0
                    + spec.daily_amplitude
                        * (std::f64::consts::TAU * (hour - spec.peak_hour) / 24.0).cos();
                let weekend = if t.weekday().number_from_monday() >= 6 {
                    spec.weekend_factor
                } else {
                    1.0
                };
                let noise = if spec.noise > 0.0 {
                    let n = normal_from(
                        hash_words(&[*seed, 1, tick as u64]),
                        hash_words(&[*seed, 2, tick as u64]),
                    );
                    1.0 + spec.noise * n
                } else {
                    1.0
                };
                let mut d = spec.base * daily * weekend * noise;
                if spec.spikes_per_day > 0.0 && spec.spike_magnitude > 0.0 {
                    let secs = t.timestamp();
                    let day = secs.div_euclid(86_400);
                    let duration = spec.spike_duration.as_secs() as i64;
                    // A spike may start the day before and last into today.
                    let days_back = duration.div_euclid(86_400) + 1;
                    let mut active = 0usize;
                    for dd in (day - days_back)..=day {
                        active += active_spikes(spec, *seed, dd, spike_cache, secs);
                    }
                    d += active as f64 * spec.spike_magnitude * spec.base;
                }
                Some(d.max(0.0))
            }
        }
    }
}

/// How many of the spikes starting on day `day` (days since the epoch) are active at epoch
/// second `secs`.
fn active_spikes(
    spec: &GeneratorSpec,
    seed: u64,
    day: i64,
    cache: &mut Vec<(i64, Vec<(i64, i64)>)>,
    secs: i64,
) -> usize {
    let count = |spikes: &[(i64, i64)]| {
        spikes
            .iter()
            .filter(|(s, e)| *s <= secs && secs < *e)
            .count()
    };
    if let Some((_, spikes)) = cache.iter().find(|(d, _)| *d == day) {
        return count(spikes);
    }
    // Poisson count by inversion, then uniform start times in the day.
    let mut k = 0u64;
    let mut p = (-spec.spikes_per_day).exp();
    let mut cdf = p;
    let u = unit_f64(hash_words(&[seed, 3, day as u64]));
    while u > cdf && k < 1_000 {
        k += 1;
        p *= spec.spikes_per_day / k as f64;
        cdf += p;
    }
    let duration = spec.spike_duration.as_secs() as i64;
    let spikes: Vec<(i64, i64)> = (0..k)
        .map(|j| {
            let offset = (unit_f64(hash_words(&[seed, 4, day as u64, j])) * 86_400.0) as i64;
            let s = day * 86_400 + offset;
            (s, s + duration)
        })
        .collect();
    let n = count(&spikes);
    // Keep the few most recent days (a spike can reach back at most a few days).
    if cache.len() >= 8 {
        cache.remove(0);
    }
    cache.push((day, spikes));
    n
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::trace::parse_trace;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        // 2024-01-03 is a Wednesday.
        Utc.with_ymd_and_hms(2024, 1, 3, h, m, 0).unwrap()
    }

    #[test]
    fn generator_peaks_at_the_peak_hour_and_is_lower_on_weekends() {
        let spec = GeneratorSpec {
            daily_amplitude: 0.5,
            weekend_factor: 0.5,
            ..GeneratorSpec::flat(100.0)
        };
        let mut d = Demand::resolve(&DemandSpec::Generator(spec), 1.0, 1, t(0, 0)).unwrap();
        assert!((d.at(t(14, 0), 0).unwrap() - 150.0).abs() < 1e-9);
        assert!((d.at(t(2, 0), 0).unwrap() - 50.0).abs() < 1e-9);
        let saturday = Utc.with_ymd_and_hms(2024, 1, 6, 14, 0, 0).unwrap();
        assert!((d.at(saturday, 0).unwrap() - 75.0).abs() < 1e-9);
    }

    #[test]
    fn generator_noise_is_seeded() {
        let spec = GeneratorSpec {
            noise: 0.1,
            ..GeneratorSpec::flat(100.0)
        };
        let mk = |seed| Demand::resolve(&DemandSpec::Generator(spec.clone()), 1.0, seed, t(0, 0));
        let (mut a, mut b, mut c) = (mk(1).unwrap(), mk(1).unwrap(), mk(2).unwrap());
        let xs: Vec<f64> = (0..50).map(|k| a.at(t(0, 0), k).unwrap()).collect();
        let ys: Vec<f64> = (0..50).map(|k| b.at(t(0, 0), k).unwrap()).collect();
        let zs: Vec<f64> = (0..50).map(|k| c.at(t(0, 0), k).unwrap()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        assert!(xs.iter().any(|x| (x - 100.0).abs() > 1.0));
    }

    #[test]
    fn spikes_arrive_at_about_the_configured_rate() {
        let spec = GeneratorSpec {
            spikes_per_day: 2.0,
            spike_magnitude: 1.0,
            spike_duration: Duration::from_secs(3_600),
            ..GeneratorSpec::flat(10.0)
        };
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let mut d = Demand::resolve(&DemandSpec::Generator(spec), 1.0, 9, start).unwrap();
        // Share of minutes with a spike over 200 days: about 2 spikes/day * 1 h / 24 h = 8.3 %.
        let minutes = 200 * 1_440;
        let spiky = (0..minutes)
            .filter(|m| d.at(start + chrono::TimeDelta::minutes(*m), 0).unwrap() > 15.0)
            .count();
        let share = spiky as f64 / minutes as f64;
        assert!((0.065..0.10).contains(&share), "{share}");
    }

    #[test]
    fn trace_demand_scales_keeps_gaps_and_loops() {
        let trace = Arc::new(
            parse_trace(
                "x",
                "timestamp,value\n2024-01-03T00:00:00Z,10\n2024-01-03T00:01:00Z,20\n2024-01-03T00:03:00Z,40\n",
            )
            .unwrap(),
        );
        let spec = |looped| {
            DemandSpec::Trace(TraceDemand {
                trace: trace.clone(),
                scale: TraceScale::PeakInstances(4.0),
                looped,
            })
        };
        let mut d = Demand::resolve(&spec(false), 50.0, 0, t(0, 0)).unwrap();
        // peak 40 -> 4 instances * 50 work/s = 200 work/s, so factor 5.
        assert_eq!(d.at(t(0, 0), 0), Some(50.0));
        assert_eq!(
            d.at(t(0, 1) + chrono::TimeDelta::seconds(59), 0),
            Some(100.0)
        );
        assert_eq!(d.at(t(0, 2), 0), None);
        assert_eq!(d.at(t(0, 3), 0), Some(200.0));
        assert_eq!(d.at(t(0, 4), 0), None);
        let mut l = Demand::resolve(&spec(true), 50.0, 0, t(0, 0)).unwrap();
        assert_eq!(l.at(t(0, 5), 0), Some(100.0));
        assert_eq!(l.at(t(0, 6), 0), None);
    }
}
