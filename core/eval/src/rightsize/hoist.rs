//! Hoist's own recommender: the next hour's peak, predicted from what the VPA's decaying
//! histogram averages away.
//!
//! A recommendation is held for one hour and judged on that hour's 5-minute usage, so what it
//! must cover is the coming hour's peak. The VPA sizes from a percentile of a long, decaying
//! history: a VM busy for two hours a day gets the same size all day. Hoist looks at the three
//! things that predict an hour's peak best:
//!
//! - the **last two hours'** peak (usage is persistent: the coming hour looks like the last);
//! - for CPU, **yesterday's** peak from an hour before the coming hour to an hour after it (the
//!   daily cycle, with an hour's leeway either side: the nightly batch job at 02:00 is sized
//!   for at 01:59, not after it starts);
//! - for **memory**, the peak of the last six hours and of this hour yesterday and a week ago:
//!   memory is released slowly and a short memory is an out-of-memory kill, not a slow request,
//!   so it is sized on longer windows and with more margin.
//!
//! The windows were chosen on the first 46 days of the Bitbrains panel (`hoist rightsize
//! --until 46d`) among: the last one, two or three hours; yesterday's hour alone or with the
//! hour before; a week ago or not.
//!
//! The size is the largest of those peaks times a margin (the main setting; memory's margin is
//! half as large again), never less than 0.025 cores and 16 MiB. It is not capped at what the
//! VM was given: on the Bitbrains panel usage passes it, and a cap there left 7 % of steps
//! short whatever the margin.

use super::panel::Sample;
use super::{Recommendation, Recommender, Setting};

/// The smallest sizes recommended: the VPA's CPU minimum (0.025 cores), and 16 MiB of memory
/// (the VPA's 250 MiB floor is for containers; on the Bitbrains panel it alone adds 4 points
/// of memory slack).
const MIN_CPU: f64 = 0.025;
const MIN_MEM: f64 = 16.0 * 1024.0 * 1024.0;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// The margins a frontier sweep tries.
const MARGIN_SWEEP: [f64; 13] = [
    1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4, 1.5, 1.6, 1.7, 1.8,
];

/// Hoist's recommender (see the module docs).
#[derive(Debug, Clone)]
pub struct HoistRecommender {
    margin: f64,
    has_memory: bool,
}

impl HoistRecommender {
    /// With CPU margin `margin` (memory's is half as large again).
    pub fn new(margin: f64, has_memory: bool) -> Self {
        HoistRecommender {
            margin: margin.max(1.0),
            has_memory,
        }
    }

    fn mem_margin(&self) -> f64 {
        1.0 + (self.margin - 1.0) * 1.5
    }
}

/// The peak CPU and memory of the samples in `[from, until)` (`past` is in time order).
fn peak(past: &[Sample], from: i64, until: i64) -> Option<(f64, f64)> {
    let start = past.partition_point(|s| s.at < from);
    let end = past.partition_point(|s| s.at < until);
    past[start..end.max(start)]
        .iter()
        .fold(None, |acc: Option<(f64, f64)>, s| {
            Some(acc.map_or((s.cpu, s.mem), |(c, m)| (c.max(s.cpu), m.max(s.mem))))
        })
}

impl Recommender for HoistRecommender {
    fn name(&self) -> String {
        "hoist".into()
    }

    fn describe(&self) -> String {
        format!(
            "peak of the last hour and of the same hour a day and a week ago (memory: and of the last 6 h) × {} CPU / × {} memory",
            self.margin,
            self.mem_margin()
        )
    }

    fn main_setting(&self) -> Option<Setting> {
        Some(Setting {
            name: "margin".into(),
            value: self.margin,
            sweep: MARGIN_SWEEP.to_vec(),
        })
    }

    fn with_setting(&self, value: f64) -> Box<dyn Recommender> {
        Box::new(HoistRecommender::new(value, self.has_memory))
    }

    fn start(&mut self) {}

    fn recommend(&mut self, at: i64, past: &[Sample]) -> Option<Recommendation> {
        // CPU: the last two hours, and yesterday from an hour before the coming hour to an hour
        // after it.
        let (mut cpu, mut mem) = peak(past, at - 2 * HOUR, at)?;
        if let Some((c, _)) = peak(past, at - DAY - HOUR, at - DAY + 2 * HOUR) {
            cpu = cpu.max(c);
        }
        // Memory: the last six hours, and this hour yesterday and a week ago.
        for (from, until) in [
            (at - 6 * HOUR, at),
            (at - DAY, at - DAY + HOUR),
            (at - 7 * DAY, at - 7 * DAY + HOUR),
        ] {
            if let Some((_, m)) = peak(past, from, until) {
                mem = mem.max(m);
            }
        }
        let cpu = (cpu * self.margin).max(MIN_CPU);
        let mem = if self.has_memory {
            (mem * self.mem_margin()).max(MIN_MEM)
        } else {
            0.0
        };
        Some(Recommendation { cpu, mem })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64, cpu: f64, mem: f64) -> Sample {
        Sample {
            at,
            cpu,
            cpu_given: 4.0,
            mem,
            mem_given: 8e9,
        }
    }

    #[test]
    fn the_coming_hour_is_sized_on_recent_and_yesterdays_peaks_by_hand() {
        // Two days of 5-minute samples at 1 core and 1 GB, except: yesterday at 13:30, 3 cores
        // (inside the window from 11:00 to 14:00 yesterday); 7 hours before 12:00 today,
        // 5 GB (outside the 6-hour memory window); today at 10:00, 2 GB.
        let day0 = 1_700_000_000 - 1_700_000_000 % DAY;
        let noon = day0 + DAY + 12 * HOUR;
        let mut past = Vec::new();
        let mut t = day0;
        while t < noon {
            let (mut cpu, mut mem) = (1.0, 1e9);
            if t == day0 + 13 * HOUR + 30 * 60 {
                cpu = 3.0;
            }
            if t == noon - 7 * HOUR {
                mem = 5e9;
            }
            if t == noon - 2 * HOUR {
                mem = 2e9;
            }
            past.push(sample(t, cpu, mem));
            t += 300;
        }
        let mut r = HoistRecommender::new(1.2, true);
        let rec = r.recommend(noon, &past).unwrap();
        // CPU: yesterday's 3 cores × 1.2; memory: today's 2 GB × (1 + 0.2 × 1.5).
        assert!((rec.cpu - 3.6).abs() < 1e-9, "{rec:?}");
        assert!((rec.mem - 2.6e9).abs() < 1.0, "{rec:?}");
        // Nothing in the last two hours: no recommendation.
        assert!(r.recommend(noon + 3 * HOUR, &past).is_none());
    }
}
