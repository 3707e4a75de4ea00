//! Forecast accuracy metrics: MASE (mean absolute error scaled by the in-sample seasonal-naive
//! error) and sMAPE, as `EVALUATION.md` defines them. Pairs with a missing side are skipped.

/// Mean absolute error over the pairs where both the actual and the forecast are present.
/// `None` when no pair is present.
pub fn mae(actual: &[Option<f64>], forecast: &[Option<f64>]) -> Option<f64> {
    let (sum, count) = actual
        .iter()
        .zip(forecast)
        .filter_map(|(a, f)| Some((finite(*a)? - finite(*f)?).abs()))
        .fold((0.0, 0usize), |(s, c), e| (s + e, c + 1));
    (count > 0).then(|| sum / count as f64)
}

/// Symmetric mean absolute percentage error, in percent (0 to 200): the mean of
/// `200 |a - f| / (|a| + |f|)`; a pair where both are zero counts as a perfect forecast.
pub fn smape_percent(actual: &[Option<f64>], forecast: &[Option<f64>]) -> Option<f64> {
    let (sum, count) = actual
        .iter()
        .zip(forecast)
        .filter_map(|(a, f)| {
            let (a, f) = (finite(*a)?, finite(*f)?);
            let denominator = a.abs() + f.abs();
            Some(if denominator == 0.0 {
                0.0
            } else {
                200.0 * (a - f).abs() / denominator
            })
        })
        .fold((0.0, 0usize), |(s, c), e| (s + e, c + 1));
    (count > 0).then(|| sum / count as f64)
}

/// The in-sample seasonal-naive error: the mean of `|y[t] - y[t - period_steps]|` over the
/// training values where both are present. This is the denominator of MASE. `None` when no such
/// pair exists or the error is zero (a constant series: MASE is undefined).
pub fn seasonal_naive_scale(training: &[Option<f64>], period_steps: usize) -> Option<f64> {
    if period_steps == 0 || training.len() <= period_steps {
        return None;
    }
    let (sum, count) = training[period_steps..]
        .iter()
        .zip(training)
        .filter_map(|(now, before)| Some((finite(*now)? - finite(*before)?).abs()))
        .fold((0.0, 0usize), |(s, c), e| (s + e, c + 1));
    let scale = sum / count.max(1) as f64;
    (count > 0 && scale > 0.0).then_some(scale)
}

/// Mean absolute scaled error: [`mae`] divided by `scale` (from [`seasonal_naive_scale`]).
pub fn mase(actual: &[Option<f64>], forecast: &[Option<f64>], scale: f64) -> Option<f64> {
    (scale > 0.0).then_some(())?;
    mae(actual, forecast).map(|e| e / scale)
}

fn finite(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_known_values() {
        let actual = [Some(10.0), Some(20.0), None, Some(0.0)];
        let forecast = [Some(12.0), Some(20.0), Some(5.0), Some(0.0)];
        assert_eq!(mae(&actual, &forecast), Some(2.0 / 3.0));
        let smape = smape_percent(&actual, &forecast).unwrap();
        assert!((smape - (200.0 * 2.0 / 22.0) / 3.0).abs() < 1e-12);
        let training = [Some(1.0), Some(2.0), Some(4.0), Some(2.0)];
        assert_eq!(seasonal_naive_scale(&training, 2), Some(1.5));
        assert_eq!(seasonal_naive_scale(&[Some(3.0); 5], 2), None);
        assert_eq!(mase(&actual, &forecast, 2.0), Some(1.0 / 3.0));
    }
}
