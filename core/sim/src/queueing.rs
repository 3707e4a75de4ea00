//! The latency model of the simulated cloud: each ready instance is an M/M/1 server behind a
//! random load balancer, so at utilisation ρ a request's response time is exponential with mean
//! `service_time / (1 - ρ)` and its `q` quantile is `service_time * ln(1 / (1 - q)) / (1 - ρ)`.
//! Latency climbs steeply as ρ approaches 1; ρ is capped at [`MAX_MODEL_UTILISATION`] so the
//! model stays finite, and when demand exceeds capacity the wait for the backlog ahead
//! (`backlog / capacity`) is added. Everything is capped at [`LATENCY_CAP_SECONDS`], the
//! request timeout.

/// The highest utilisation the M/M/1 formula is evaluated at (latency factor 100).
pub const MAX_MODEL_UTILISATION: f64 = 0.99;

/// The latency reported when a request cannot be served at all (no ready capacity) and the cap
/// on every latency, seconds.
pub const LATENCY_CAP_SECONDS: f64 = 60.0;

/// The `quantile` (for example 0.95) of response time, seconds, for instances with mean
/// `service_time_seconds` at `utilisation` (demand / ready capacity, may exceed 1) with
/// `backlog_seconds` of queued work ahead (backlog / capacity; 0 when none).
pub fn latency_seconds(
    quantile: f64,
    utilisation: f64,
    service_time_seconds: f64,
    backlog_seconds: f64,
) -> f64 {
    let q = quantile.clamp(0.0, 0.999_999);
    let rho = if utilisation.is_nan() {
        MAX_MODEL_UTILISATION
    } else {
        utilisation.clamp(0.0, MAX_MODEL_UTILISATION)
    };
    let response = service_time_seconds * (1.0 / (1.0 - q)).ln() / (1.0 - rho);
    (response + backlog_seconds.max(0.0)).min(LATENCY_CAP_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_monotone_in_utilisation_and_steep_near_one() {
        let mut last = 0.0;
        for i in 0..=120 {
            let u = f64::from(i) / 100.0;
            let l = latency_seconds(0.95, u, 0.05, 0.0);
            assert!(l >= last, "latency fell at utilisation {u}");
            last = l;
        }
        let idle = latency_seconds(0.95, 0.0, 0.05, 0.0);
        assert!((idle - 0.05 * 20f64.ln()).abs() < 1e-12);
        assert!(latency_seconds(0.95, 0.95, 0.05, 0.0) > 15.0 * idle);
        assert!(latency_seconds(0.99, 0.5, 0.05, 0.0) > latency_seconds(0.95, 0.5, 0.05, 0.0));
    }

    #[test]
    fn backlog_adds_wait_and_everything_is_capped() {
        let base = latency_seconds(0.95, 1.2, 0.05, 0.0);
        assert!(latency_seconds(0.95, 1.2, 0.05, 3.0) > base + 2.9);
        assert_eq!(latency_seconds(0.95, 1.2, 0.05, 1e6), LATENCY_CAP_SECONDS);
    }
}
