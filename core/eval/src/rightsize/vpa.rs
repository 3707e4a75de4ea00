//! The Kubernetes Vertical Pod Autoscaler's recommender, ported from
//! `kubernetes/autoscaler/vertical-pod-autoscaler/pkg/recommender` (`util/histogram*.go`,
//! `util/decaying_histogram.go`, `model/aggregate_container_state.go`, `model/container.go`,
//! `model/aggregations_config.go`, `logic/estimator.go`, `logic/recommender.go`).
//!
//! What is kept as upstream has it:
//!
//! - **Histograms** with exponential buckets: the first bucket is `[0, first)`, bucket `n` is
//!   `first × ratio^n` wide (ratio 1.05), up to 1000 cores / 1 TB; a bucket lighter than
//!   `epsilon = 0.0001` counts as empty. A percentile is the *end* of the bucket where the
//!   cumulative weight reaches `p × total` (the start of the last bucket when it is there).
//! - **Decay**: a sample's weight is multiplied by `2^((t − reference) / half_life)` (24 h), the
//!   reference being shifted forward (and all weights rescaled) when the exponent passes 100.
//! - **CPU**: every sample (usage in whole millicores) weighs `max(request, 0.1)` cores, the
//!   request being the one in force when the sample was taken. Here that is the VPA's own
//!   target held at the time (the VPA in `Auto` mode), and before its first recommendation what
//!   the VM was given (0.1 when the panel does not say).
//! - **Memory**: one peak per aggregation interval (24 h, windows counted from the VM's first
//!   sample), weight 1, stamped with the window's end; a higher sample in the same window
//!   replaces the peak (subtract the old, add the new).
//! - **Estimates**: target = p90 × (1 + 0.15); lower bound = p50 × 1.15 × (1 + 0.001/c)^−2;
//!   upper bound = p95 × 1.15 × (1 + 1/c), where the confidence `c` = min(days between the
//!   first and last CPU sample, CPU samples / 1440); then at least 25 millicores and 250 MiB.
//!   Amounts are whole millicores and whole bytes, truncated as upstream's `ResourceAmount`.
//!
//! Not modelled: OOM events (the panels have none), checkpoints, and several containers per
//! pod (one VM is one pod of one container).

use super::panel::Sample;
use super::{Recommendation, Recommender, Setting};

/// Go's zero time (0001-01-01T00:00:00Z) in Unix seconds: the decaying histogram's first
/// reference timestamp, and the origin of its rounding.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// The exponent past which a decaying histogram renormalises (`maxDecayExponent`).
const MAX_DECAY_EXPONENT: i64 = 100;

/// The lightest sample weight (`minSampleWeight`), cores for CPU.
pub const MIN_SAMPLE_WEIGHT: f64 = 0.1;

/// The lightest non-empty bucket (`epsilon = 0.001 × minSampleWeight`).
pub const EPSILON: f64 = 0.001 * MIN_SAMPLE_WEIGHT;

/// Exponential bucket boundaries (`exponentialHistogramOptions`).
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    first: f64,
    ratio: f64,
    epsilon: f64,
    /// The start of each bucket.
    starts: Vec<f64>,
    ln_ratio: f64,
}

impl Buckets {
    /// Buckets covering `[0, max_value]`, the first `first` wide, each next `ratio` times wider.
    /// Panics unless `max_value > 0`, `first > 0`, `ratio > 1` and `epsilon > 0`.
    pub fn exponential(max_value: f64, first: f64, ratio: f64, epsilon: f64) -> Buckets {
        assert!(max_value > 0.0 && first > 0.0 && ratio > 1.0 && epsilon > 0.0);
        let count =
            ((max_value * (ratio - 1.0) / first + 1.0).ln() / ratio.ln()).ceil() as usize + 1;
        let starts = (0..count)
            .map(|b| {
                if b == 0 {
                    0.0
                } else {
                    first * (ratio.powi(b as i32) - 1.0) / (ratio - 1.0)
                }
            })
            .collect();
        Buckets {
            first,
            ratio,
            epsilon,
            starts,
            ln_ratio: ratio.ln(),
        }
    }

    /// Upstream's CPU buckets: `first` cores (0.01 in the releases up to 1.3, 0.001 later),
    /// ratio 1.05, up to 1000 cores.
    pub fn cpu(first: f64) -> Buckets {
        Buckets::exponential(1000.0, first, 1.05, EPSILON)
    }

    /// Upstream's memory buckets: 10 MB first, ratio 1.05, up to 1 TB.
    pub fn memory() -> Buckets {
        Buckets::exponential(1e12, 1e7, 1.05, EPSILON)
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether there are no buckets (never, once built).
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The bucket `value` falls in (the first or last one outside the range).
    pub fn find(&self, value: f64) -> usize {
        if value < self.first {
            return 0;
        }
        let b = ((value * (self.ratio - 1.0) / self.first + 1.0).ln() / self.ln_ratio) as usize;
        b.min(self.starts.len() - 1)
    }

    /// Where bucket `b` starts.
    pub fn start(&self, b: usize) -> f64 {
        self.starts[b]
    }
}

/// A histogram of weighted samples (upstream's `histogram`).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    buckets: Buckets,
    weight: Vec<f64>,
    total: f64,
    min_bucket: usize,
    max_bucket: usize,
}

impl Histogram {
    /// An empty histogram over `buckets`.
    pub fn new(buckets: Buckets) -> Histogram {
        let n = buckets.len();
        Histogram {
            buckets,
            weight: vec![0.0; n],
            total: 0.0,
            min_bucket: n - 1,
            max_bucket: 0,
        }
    }

    /// Adds `weight` (non-negative) at `value`.
    pub fn add(&mut self, value: f64, weight: f64) {
        let weight = weight.max(0.0);
        let b = self.buckets.find(value);
        self.weight[b] += weight;
        self.total += weight;
        if b < self.min_bucket && self.weight[b] >= self.buckets.epsilon {
            self.min_bucket = b;
        }
        if b > self.max_bucket && self.weight[b] >= self.buckets.epsilon {
            self.max_bucket = b;
        }
    }

    /// Removes `weight` at `value` (a bucket never goes below zero).
    pub fn subtract(&mut self, value: f64, weight: f64) {
        let mut weight = weight.max(0.0);
        let b = self.buckets.find(value);
        if weight > self.weight[b] - self.buckets.epsilon {
            weight = self.weight[b];
        }
        self.total -= weight;
        self.weight[b] -= weight;
        self.update_min_max();
    }

    /// Whether the histogram holds no weight.
    pub fn is_empty(&self) -> bool {
        self.weight[self.min_bucket] < self.buckets.epsilon
    }

    /// The total weight.
    pub fn total_weight(&self) -> f64 {
        self.total
    }

    /// The `p`-th percentile (`p` in [0, 1]): the end of the bucket where the cumulative weight
    /// reaches `p × total`; 0 when empty.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let threshold = p * self.total;
        let mut partial = 0.0;
        let mut b = self.min_bucket;
        while b < self.max_bucket {
            partial += self.weight[b];
            if partial >= threshold {
                break;
            }
            b += 1;
        }
        if b < self.buckets.len() - 1 {
            self.buckets.start(b + 1)
        } else {
            self.buckets.start(b)
        }
    }

    /// Multiplies every weight by `factor` (non-negative).
    fn scale(&mut self, factor: f64) {
        for b in self.min_bucket..=self.max_bucket {
            self.weight[b] *= factor;
        }
        self.total *= factor;
        self.update_min_max();
    }

    fn update_min_max(&mut self) {
        let last = self.buckets.len() - 1;
        while self.weight[self.min_bucket] < self.buckets.epsilon && self.min_bucket < last {
            self.min_bucket += 1;
        }
        while self.weight[self.max_bucket] < self.buckets.epsilon && self.max_bucket > 0 {
            self.max_bucket -= 1;
        }
    }
}

/// A histogram whose samples lose half their weight every `half_life` (upstream's
/// `decayingHistogram`).
#[derive(Debug, Clone, PartialEq)]
pub struct DecayingHistogram {
    histogram: Histogram,
    half_life: i64,
    /// Seconds since the epoch; always a whole number of half-lives from Go's zero time.
    reference: i64,
}

impl DecayingHistogram {
    /// An empty histogram; `half_life` in seconds (at least 1).
    pub fn new(buckets: Buckets, half_life: i64) -> DecayingHistogram {
        DecayingHistogram {
            histogram: Histogram::new(buckets),
            half_life: half_life.max(1),
            reference: GO_ZERO_TIME,
        }
    }

    /// Adds a sample taken at `at` (seconds since the epoch).
    pub fn add(&mut self, value: f64, weight: f64, at: i64) {
        let factor = self.decay_factor(at);
        self.histogram.add(value, weight * factor);
    }

    /// Removes a sample added at `at`.
    pub fn subtract(&mut self, value: f64, weight: f64, at: i64) {
        let factor = self.decay_factor(at);
        self.histogram.subtract(value, weight * factor);
    }

    /// The `p`-th percentile.
    pub fn percentile(&self, p: f64) -> f64 {
        self.histogram.percentile(p)
    }

    /// Whether no weight is held.
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The total weight, relative to the current reference time.
    pub fn total_weight(&self) -> f64 {
        self.histogram.total_weight()
    }

    /// The weight a sample taken at `at` carries, relative to one taken at `now`
    /// (`2^((at − now) / half_life)`): what the decay leaves of it.
    pub fn relative_weight(&self, at: i64, now: i64) -> f64 {
        ((at - now) as f64 / self.half_life as f64).exp2()
    }

    fn decay_factor(&mut self, at: i64) -> f64 {
        if at
            > self
                .reference
                .saturating_add(self.half_life * MAX_DECAY_EXPONENT)
        {
            self.shift_reference(at);
        }
        ((at - self.reference) as f64 / self.half_life as f64).exp2()
    }

    fn shift_reference(&mut self, to: i64) {
        // Go's Time.Round: to the nearest multiple of half_life since the zero time, halves up.
        let since = to - GO_ZERO_TIME;
        let r = since.rem_euclid(self.half_life);
        let rounded = if r + r < self.half_life {
            since - r
        } else {
            since - r + self.half_life
        };
        let to = GO_ZERO_TIME + rounded;
        let exponent = ((self.reference - to) as f64 / self.half_life as f64 + 0.5).floor();
        let exponent = exponent.clamp(-2000.0, 2000.0) as i32;
        self.histogram.scale(2f64.powi(exponent));
        self.reference = to;
    }
}

/// The VPA recommender's settings, upstream's defaults in [`VpaConfig::default`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VpaConfig {
    /// `--target-cpu-percentile` (0.9).
    pub target_cpu_percentile: f64,
    /// `--recommendation-lower-bound-cpu-percentile` (0.5).
    pub lower_cpu_percentile: f64,
    /// `--recommendation-upper-bound-cpu-percentile` (0.95).
    pub upper_cpu_percentile: f64,
    /// `--target-memory-percentile` (0.9).
    pub target_memory_percentile: f64,
    /// `--recommendation-lower-bound-memory-percentile` (0.5).
    pub lower_memory_percentile: f64,
    /// `--recommendation-upper-bound-memory-percentile` (0.95).
    pub upper_memory_percentile: f64,
    /// `--recommendation-margin-fraction` (0.15).
    pub safety_margin: f64,
    /// `--pod-recommendation-min-cpu-millicores` (25), in cores.
    pub min_cpu_cores: f64,
    /// `--pod-recommendation-min-memory-mb` (250 MiB), in bytes.
    pub min_memory_bytes: f64,
    /// `--cpu-histogram-decay-half-life` (24 h), seconds.
    pub cpu_half_life_seconds: i64,
    /// `--memory-histogram-decay-half-life` (24 h), seconds.
    pub memory_half_life_seconds: i64,
    /// `--memory-aggregation-interval` (24 h), seconds: one memory peak per interval.
    pub memory_interval_seconds: i64,
    /// The CPU histogram's first bucket, cores (0.01).
    pub cpu_first_bucket: f64,
}

impl Default for VpaConfig {
    fn default() -> VpaConfig {
        VpaConfig {
            target_cpu_percentile: 0.9,
            lower_cpu_percentile: 0.5,
            upper_cpu_percentile: 0.95,
            target_memory_percentile: 0.9,
            lower_memory_percentile: 0.5,
            upper_memory_percentile: 0.95,
            safety_margin: 0.15,
            min_cpu_cores: 0.025,
            min_memory_bytes: 250.0 * 1024.0 * 1024.0,
            cpu_half_life_seconds: 86_400,
            memory_half_life_seconds: 86_400,
            memory_interval_seconds: 86_400,
            cpu_first_bucket: 0.01,
        }
    }
}

impl VpaConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("target CPU percentile", self.target_cpu_percentile),
            ("lower-bound CPU percentile", self.lower_cpu_percentile),
            ("upper-bound CPU percentile", self.upper_cpu_percentile),
            ("target memory percentile", self.target_memory_percentile),
            (
                "lower-bound memory percentile",
                self.lower_memory_percentile,
            ),
            (
                "upper-bound memory percentile",
                self.upper_memory_percentile,
            ),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} {p} must be in [0, 1]"));
            }
        }
        if !(self.safety_margin >= 0.0 && self.safety_margin <= 10.0) {
            return Err(format!(
                "safety margin {} must be in [0, 10]",
                self.safety_margin
            ));
        }
        if !(self.cpu_first_bucket > 0.0 && self.cpu_first_bucket <= 1.0) {
            return Err(format!(
                "CPU first bucket {} must be in (0, 1] cores",
                self.cpu_first_bucket
            ));
        }
        for (name, s) in [
            ("CPU half-life", self.cpu_half_life_seconds),
            ("memory half-life", self.memory_half_life_seconds),
            ("memory aggregation interval", self.memory_interval_seconds),
        ] {
            if s < 60 {
                return Err(format!("{name} must be at least 1m"));
            }
        }
        if !(self.min_cpu_cores >= 0.0 && self.min_memory_bytes >= 0.0) {
            return Err("minimums must not be negative".into());
        }
        Ok(())
    }
}

/// One resource's estimates: target, lower and upper bound (cores or bytes).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// What the VPA sets the request to.
    pub target: f64,
    /// Below this the updater evicts to grow.
    pub lower: f64,
    /// Above this the updater evicts to shrink.
    pub upper: f64,
}

/// The VPA's aggregate state of one container (one VM): upstream's `AggregateContainerState`
/// and `ContainerState` together.
#[derive(Debug, Clone, PartialEq)]
pub struct VpaState {
    cpu: DecayingHistogram,
    memory: DecayingHistogram,
    first_sample: Option<i64>,
    last_sample: Option<i64>,
    samples: u64,
    last_cpu_sample: Option<i64>,
    memory_peak: f64,
    window_end: Option<i64>,
    last_memory_sample: Option<i64>,
    memory_interval: i64,
}

/// Upstream's `ResourceAmount` from cores: whole millicores, truncated, at least 0.
fn millicores(cores: f64) -> i64 {
    amount(cores * 1000.0)
}

/// Upstream's `resourceAmountFromFloat`: truncated to an integer in [0, 1e14].
fn amount(x: f64) -> i64 {
    if x > 1e14 {
        100_000_000_000_000
    } else if x.is_nan() || x < 0.0 {
        0
    } else {
        x as i64
    }
}

/// Upstream's `ScaleResource`.
fn scale(a: i64, factor: f64) -> i64 {
    amount(a as f64 * factor)
}

impl VpaState {
    /// An empty state.
    pub fn new(config: &VpaConfig) -> VpaState {
        VpaState {
            cpu: DecayingHistogram::new(
                Buckets::cpu(config.cpu_first_bucket),
                config.cpu_half_life_seconds,
            ),
            memory: DecayingHistogram::new(Buckets::memory(), config.memory_half_life_seconds),
            first_sample: None,
            last_sample: None,
            samples: 0,
            last_cpu_sample: None,
            memory_peak: 0.0,
            window_end: None,
            last_memory_sample: None,
            memory_interval: config.memory_interval_seconds,
        }
    }

    /// Adds a CPU sample: `usage` cores at `at`, with `request` cores in force.
    /// Out-of-order and duplicate samples are dropped, as upstream.
    pub fn add_cpu(&mut self, at: i64, usage: f64, request: f64) {
        if usage < 0.0 || self.last_cpu_sample.is_some_and(|last| at <= last) {
            return;
        }
        let usage = millicores(usage) as f64 / 1000.0;
        let request = millicores(request) as f64 / 1000.0;
        self.cpu.add(usage, request.max(MIN_SAMPLE_WEIGHT), at);
        self.last_cpu_sample = Some(at);
        if self.last_sample.is_none_or(|l| at > l) {
            self.last_sample = Some(at);
        }
        if self.first_sample.is_none_or(|f| at < f) {
            self.first_sample = Some(at);
        }
        self.samples += 1;
    }

    /// Adds a memory sample: `usage` bytes at `at`; one peak per aggregation interval.
    pub fn add_memory(&mut self, at: i64, usage: f64) {
        if usage < 0.0 || self.last_memory_sample.is_some_and(|last| at < last) {
            return;
        }
        let usage = amount(usage) as f64;
        self.last_memory_sample = Some(at);
        let window_end = *self.window_end.get_or_insert(at);
        let mut add_new_peak = false;
        if at < window_end {
            let old = self.memory_peak;
            if old != 0.0 && usage > old {
                self.memory.subtract(old, 1.0, window_end);
                add_new_peak = true;
            }
        } else {
            let interval = self.memory_interval;
            let shift = (at - window_end) / interval * interval + interval;
            self.window_end = Some(window_end + shift);
            self.memory_peak = 0.0;
            add_new_peak = true;
        }
        if add_new_peak {
            let end = self.window_end.unwrap_or(at);
            self.memory.add(usage, 1.0, end);
            self.memory_peak = usage;
        }
    }

    /// Upstream's confidence: min(days between the first and last CPU sample, CPU samples /
    /// 1440).
    pub fn confidence(&self) -> f64 {
        let (Some(first), Some(last)) = (self.first_sample, self.last_sample) else {
            return 0.0;
        };
        let days = (last - first) as f64 / 86_400.0;
        days.min(self.samples as f64 / 1440.0)
    }

    /// Whether any CPU sample was added.
    pub fn has_samples(&self) -> bool {
        self.samples > 0
    }

    /// The CPU histogram.
    pub fn cpu_histogram(&self) -> &DecayingHistogram {
        &self.cpu
    }

    /// The memory-peaks histogram.
    pub fn memory_histogram(&self) -> &DecayingHistogram {
        &self.memory
    }

    /// CPU target, lower and upper bound, cores.
    pub fn cpu_estimate(&self, config: &VpaConfig) -> Estimate {
        let min = millicores(config.min_cpu_cores);
        let est = |p: f64| millicores(self.cpu.percentile(p));
        let (target, lower, upper) = self.estimates(
            config,
            est(config.target_cpu_percentile),
            est(config.lower_cpu_percentile),
            est(config.upper_cpu_percentile),
            min,
        );
        Estimate {
            target: target as f64 / 1000.0,
            lower: lower as f64 / 1000.0,
            upper: upper as f64 / 1000.0,
        }
    }

    /// Memory target, lower and upper bound, bytes.
    pub fn memory_estimate(&self, config: &VpaConfig) -> Estimate {
        let min = amount(config.min_memory_bytes);
        let est = |p: f64| amount(self.memory.percentile(p));
        let (target, lower, upper) = self.estimates(
            config,
            est(config.target_memory_percentile),
            est(config.lower_memory_percentile),
            est(config.upper_memory_percentile),
            min,
        );
        Estimate {
            target: target as f64,
            lower: lower as f64,
            upper: upper as f64,
        }
    }

    fn estimates(
        &self,
        config: &VpaConfig,
        target: i64,
        lower: i64,
        upper: i64,
        min: i64,
    ) -> (i64, i64, i64) {
        let margin = |a: i64| a + scale(a, config.safety_margin);
        let confidence = self.confidence();
        let with_confidence = |a: i64, multiplier: f64, exponent: f64| {
            scale(a, (1.0 + multiplier / confidence).powf(exponent))
        };
        (
            margin(target).max(min),
            with_confidence(margin(lower), 0.001, -2.0).max(min),
            with_confidence(margin(upper), 1.0, 1.0).max(min),
        )
    }
}

/// The VPA recommender as a [`Recommender`]: its state per VM is fed incrementally, and its
/// target held as the request in force (`Auto` mode).
#[derive(Debug, Clone)]
pub struct Vpa {
    config: VpaConfig,
    has_memory: bool,
    state: VpaState,
    consumed: usize,
    request: Option<f64>,
}

impl Vpa {
    /// A VPA recommender with `config`; `has_memory` says whether the panel has memory.
    pub fn new(config: VpaConfig, has_memory: bool) -> Vpa {
        let state = VpaState::new(&config);
        Vpa {
            config,
            has_memory,
            state,
            consumed: 0,
            request: None,
        }
    }

    /// Its settings.
    pub fn config(&self) -> &VpaConfig {
        &self.config
    }

    /// The current state (the VM being recommended).
    pub fn state(&self) -> &VpaState {
        &self.state
    }
}

/// The target percentiles a frontier sweep of the VPA tries.
pub const PERCENTILE_SWEEP: [f64; 11] =
    [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 1.0];

impl Recommender for Vpa {
    fn name(&self) -> String {
        "vpa".into()
    }

    fn describe(&self) -> String {
        let c = &self.config;
        format!(
            "target p{} CPU / p{} memory × {}, half-life {} h, memory peaks per {} h{}",
            c.target_cpu_percentile,
            c.target_memory_percentile,
            1.0 + c.safety_margin,
            c.cpu_half_life_seconds as f64 / 3600.0,
            c.memory_interval_seconds as f64 / 3600.0,
            {
                let d = VpaConfig::default();
                if (c.min_cpu_cores, c.min_memory_bytes) == (d.min_cpu_cores, d.min_memory_bytes) {
                    String::new()
                } else {
                    format!(
                        "; floors {} cores, {} MiB",
                        c.min_cpu_cores,
                        c.min_memory_bytes / (1024.0 * 1024.0)
                    )
                }
            }
        )
    }

    fn main_setting(&self) -> Option<Setting> {
        Some(Setting {
            name: "target percentile".into(),
            value: self.config.target_cpu_percentile,
            sweep: PERCENTILE_SWEEP.to_vec(),
        })
    }

    fn with_setting(&self, value: f64) -> Box<dyn Recommender> {
        let config = VpaConfig {
            target_cpu_percentile: value,
            target_memory_percentile: value,
            ..self.config.clone()
        };
        Box::new(Vpa::new(config, self.has_memory))
    }

    fn start(&mut self) {
        self.state = VpaState::new(&self.config);
        self.consumed = 0;
        self.request = None;
    }

    fn recommend(&mut self, _at: i64, past: &[Sample]) -> Option<Recommendation> {
        let from = self.consumed.min(past.len());
        for s in &past[from..] {
            let request = self.request.unwrap_or(if s.cpu_given > 0.0 {
                s.cpu_given
            } else {
                MIN_SAMPLE_WEIGHT
            });
            self.state.add_cpu(s.at, s.cpu, request);
            if self.has_memory {
                self.state.add_memory(s.at, s.mem);
            }
        }
        self.consumed = past.len();
        if !self.state.has_samples() {
            return None;
        }
        let cpu = self.state.cpu_estimate(&self.config).target;
        let mem = if self.has_memory {
            self.state.memory_estimate(&self.config).target
        } else {
            0.0
        };
        self.request = Some(cpu);
        Some(Recommendation { cpu, mem })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn buckets_are_upstreams() {
        // 0.01 cores first, ratio 1.05, up to 1000 cores: ceil(log_1.05(1000 × 0.05 / 0.01 + 1))
        // + 1 = ceil(174.6) + 1 = 176 buckets.
        let b = Buckets::cpu(0.01);
        assert_eq!(b.len(), 176);
        assert_eq!(b.start(0), 0.0);
        assert!((b.start(1) - 0.01).abs() < 1e-12);
        assert!((b.start(2) - 0.0205).abs() < 1e-12);
        assert!((b.start(3) - 0.031525).abs() < 1e-12);
        assert_eq!(b.find(0.005), 0);
        assert_eq!(b.find(0.01), 1);
        assert_eq!(b.find(0.02), 1);
        assert_eq!(b.find(0.021), 2);
        assert_eq!(b.find(1e9), 175);
        assert_eq!(Buckets::memory().len(), 176);
        assert!((Buckets::memory().start(1) - 1e7).abs() < 1e-3);
    }

    #[test]
    fn percentiles_of_a_known_histogram_are_bucket_ends() {
        // Weights 1, 2, 7 in buckets 1 ([0.01, 0.0205)), 2 and 3 (upstream's histogram_test
        // shape): p ≤ 0.1 ends bucket 1, p ≤ 0.3 ends bucket 2, above ends bucket 3.
        let b = Buckets::cpu(0.01);
        let mut h = Histogram::new(b.clone());
        assert_eq!(h.percentile(0.5), 0.0);
        h.add(0.015, 1.0);
        h.add(0.025, 2.0);
        h.add(0.035, 7.0);
        assert_eq!(h.percentile(0.0), b.start(2));
        assert_eq!(h.percentile(0.1), b.start(2));
        assert_eq!(h.percentile(0.11), b.start(3));
        assert_eq!(h.percentile(0.3), b.start(3));
        assert_eq!(h.percentile(0.31), b.start(4));
        assert_eq!(h.percentile(1.0), b.start(4));
        // The last bucket has no end: its start is returned.
        h.add(5000.0, 100.0);
        assert_eq!(h.percentile(1.0), b.start(175));
        // Subtracting brings it back.
        h.subtract(5000.0, 100.0);
        assert_eq!(h.percentile(1.0), b.start(4));
    }

    #[test]
    fn decay_halves_a_sample_weight_every_24_hours() {
        let t0 = 1_700_000_000 / DAY * DAY;
        let mut h = DecayingHistogram::new(Buckets::cpu(0.01), DAY);
        h.add(0.015, 1.0, t0);
        let w0 = h.total_weight();
        h.add(0.015, 1.0, t0 + DAY);
        // The second sample weighs twice the first: 1 + 2 (relative to the first).
        assert!((h.total_weight() / w0 - 3.0).abs() < 1e-12);
        assert!((h.relative_weight(t0, t0 + DAY) - 0.5).abs() < 1e-15);
        // A heavy old sample loses to a light new one once decayed: 3 units at 0.015 a day old
        // against 2 units at 0.035 now is 1.5 against 2, so the median is in the new bucket.
        let b = Buckets::cpu(0.01);
        let mut h = DecayingHistogram::new(b.clone(), DAY);
        h.add(0.015, 3.0, t0);
        h.add(0.035, 2.0, t0 + DAY);
        assert_eq!(h.percentile(0.5), b.start(4));
        // Without the day between them, 3 against 2: the median stays in the old bucket.
        let mut h = DecayingHistogram::new(b.clone(), DAY);
        h.add(0.015, 3.0, t0);
        h.add(0.035, 2.0, t0);
        assert_eq!(h.percentile(0.5), b.start(2));
    }

    #[test]
    fn the_reference_shifts_without_changing_percentiles() {
        let b = Buckets::cpu(0.01);
        let mut h = DecayingHistogram::new(b.clone(), 3600);
        let t0 = 1_700_000_000;
        h.add(0.015, 1.0, t0);
        h.add(0.035, 1.0, t0);
        let p = h.percentile(0.5);
        // 150 half-lives later (past the exponent of 100) the old samples weigh 2^-150 of a
        // new one: renormalised, they drop below epsilon and only the new one remains.
        h.add(0.5, 1.0, t0 + 150 * 3600);
        assert!(h.total_weight().is_finite());
        assert_eq!(h.percentile(0.0), b.start(b.find(0.5) + 1));
        assert_ne!(p, h.percentile(0.5));
    }

    #[test]
    fn estimates_apply_margin_bounds_and_minimums() {
        let config = VpaConfig::default();
        let mut s = VpaState::new(&config);
        let t0 = 1_700_000_000 / DAY * DAY;
        // Two days of one sample a minute at 1 core: every percentile is the end of 1.0's
        // bucket.
        for i in 0..2 * 1440 {
            s.add_cpu(t0 + i * 60, 1.0, 1.0);
            s.add_memory(t0 + i * 60, 1e9);
        }
        let b = Buckets::cpu(0.01);
        let end = b.start(b.find(1.0) + 1);
        let base = millicores(end);
        let with_margin = base + scale(base, 0.15);
        let cpu = s.cpu_estimate(&config);
        assert_eq!(cpu.target, with_margin as f64 / 1000.0);
        // Confidence: min(lifespan 2 days − 1 min, 2880 / 1440 = 2 days).
        let c = (2.0 * 1440.0 - 1.0) / 1440.0;
        assert!((s.confidence() - c).abs() < 1e-12);
        assert_eq!(cpu.upper, scale(with_margin, 1.0 + 1.0 / c) as f64 / 1000.0);
        assert_eq!(
            cpu.lower,
            scale(with_margin, (1.0 + 0.001 / c).powf(-2.0)) as f64 / 1000.0
        );
        assert!(cpu.lower < cpu.target && cpu.target < cpu.upper);
        // Memory: the peaks histogram holds 1e9 (two daily peaks).
        let m = Buckets::memory();
        let mem_base = amount(m.start(m.find(1e9) + 1));
        let mem = s.memory_estimate(&config);
        assert_eq!(mem.target, (mem_base + scale(mem_base, 0.15)) as f64);

        // Tiny usage: the minimums (25 millicores, 250 MiB) win.
        let mut s = VpaState::new(&config);
        for i in 0..100 {
            s.add_cpu(t0 + i * 60, 0.001, 1.0);
            s.add_memory(t0 + i * 60, 1e6);
        }
        assert_eq!(s.cpu_estimate(&config).target, 0.025);
        assert_eq!(s.memory_estimate(&config).target, 250.0 * 1024.0 * 1024.0);
        assert_eq!(s.cpu_estimate(&config).lower, 0.025);
    }

    #[test]
    fn memory_keeps_one_peak_per_interval() {
        let config = VpaConfig::default();
        let mut s = VpaState::new(&config);
        let t0 = 1_700_000_000;
        // Day 1: 1 GB then a peak of 4 GB, which replaces it; day 2: 2 GB.
        s.add_memory(t0, 1e9);
        s.add_memory(t0 + 3600, 4e9);
        s.add_memory(t0 + 7200, 3e9);
        s.add_memory(t0 + DAY, 2e9);
        let h = s.memory_histogram();
        // Two peaks: 4 GB stamped at the end of day 1 (t0 + 1 d) and 2 GB at the end of day 2
        // (t0 + 2 d), which weighs twice as much. Total relative to the reference: 1 + 2 units.
        let m = Buckets::memory();
        // The 1 GB peak was replaced, and 3 GB never was one: 2 of 3 units are at 2 GB.
        assert_eq!(h.percentile(0.0), m.start(m.find(2e9) + 1));
        assert_eq!(h.percentile(0.66), m.start(m.find(2e9) + 1));
        assert_eq!(h.percentile(0.67), m.start(m.find(4e9) + 1));
        assert_eq!(h.percentile(1.0), m.start(m.find(4e9) + 1));
    }

    #[test]
    fn cpu_samples_weigh_the_request_in_force() {
        let config = VpaConfig::default();
        let mut s = VpaState::new(&config);
        let t0 = 1_700_000_000;
        // One sample at 0.015 with a request of 3 cores, three at 0.035 with 0.1 (minimum
        // weight): 3 against 0.3, so p0.5 is in the low bucket.
        s.add_cpu(t0, 0.015, 3.0);
        for i in 1..4 {
            s.add_cpu(t0 + i, 0.035, 0.0);
        }
        let b = Buckets::cpu(0.01);
        assert_eq!(s.cpu_histogram().percentile(0.5), b.start(2));
        // A duplicate timestamp is dropped.
        s.add_cpu(t0 + 3, 5.0, 100.0);
        assert_eq!(s.cpu_histogram().percentile(1.0), b.start(4));
    }
}
