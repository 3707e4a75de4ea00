//! Seasonal naive: the value at the same time one period ago. The baseline every model must beat.

use chrono::TimeDelta;

use super::seasonality::steps_in;

/// The seasonal-naive forecast for a history of `values` at `step`: the same time last week
/// when the history holds a week, else the same time yesterday, else the last value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeasonalNaive {
    /// The period, in steps (the forecast repeats the last period).
    pub period_steps: usize,
}

impl SeasonalNaive {
    /// The baseline for a history of `history_len` values at `step`: weekly when at least one
    /// week of history exists, daily when one day does, otherwise a one-step period (the last
    /// value repeated).
    pub fn for_history(step: TimeDelta, history_len: usize) -> Self {
        let week = steps_in(TimeDelta::weeks(1), step);
        let day = steps_in(TimeDelta::days(1), step);
        let period_steps = match (week, day) {
            (Some(week), _) if history_len >= week => week,
            (_, Some(day)) if history_len >= day => day,
            _ => 1,
        };
        SeasonalNaive { period_steps }
    }

    /// Forecasts `horizon_steps` values after the end of `history`. A value whose seasonal
    /// predecessor is a gap takes the one a period earlier, then the last present value.
    pub fn forecast(&self, history: &[Option<f64>], horizon_steps: usize) -> Vec<Option<f64>> {
        let n = history.len();
        if n == 0 {
            return vec![None; horizon_steps];
        }
        let last_present = history.iter().rev().find_map(|v| *v);
        let period = self.period_steps.max(1);
        (1..=horizon_steps)
            .map(|h| {
                let target = n - 1 + h;
                // The first index at or before the end of history in the same phase.
                let back = h.div_ceil(period) * period;
                let mut index = target.checked_sub(back);
                while let Some(i) = index {
                    if let Some(v) = history[i] {
                        return Some(v);
                    }
                    index = i.checked_sub(period);
                }
                last_present
            })
            .collect()
    }

    /// The forecast `horizon_steps` ahead of position `origin` (the index of the last value
    /// known), without copying the history: `values[origin + h - k * period]`.
    pub fn forecast_at(
        &self,
        values: &[Option<f64>],
        origin: usize,
        horizon_steps: usize,
    ) -> Option<f64> {
        let period = self.period_steps.max(1);
        let back = horizon_steps.div_ceil(period) * period;
        let mut index = (origin + horizon_steps).checked_sub(back);
        while let Some(i) = index {
            if let Some(v) = values.get(i).copied().flatten() {
                return Some(v);
            }
            index = i.checked_sub(period);
        }
        values[..=origin.min(values.len().saturating_sub(1))]
            .iter()
            .rev()
            .find_map(|v| *v)
    }
}
