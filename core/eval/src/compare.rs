//! Comparing policies: elastic speedup, the cost-versus-risk frontier of a reactive baseline,
//! and whether a policy lies below it.

use serde::{Deserialize, Serialize};

use super::Score;

/// The value a zero metric is replaced by in [`elastic_speedup`], in percent (0.01 %).
pub const SPEEDUP_EPSILON_PERCENT: f64 = 0.01;

/// The target utilisations a reactive baseline is swept over for its frontier.
pub const FRONTIER_TARGETS: [f64; 10] =
    [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95];

/// Elastic speedup of `policy` over `baseline`: the geometric mean over θ_U, θ_O, τ_U, τ_O of
/// baseline / policy, zeros replaced by [`SPEEDUP_EPSILON_PERCENT`]. Above 1: the policy is
/// more elastic.
pub fn elastic_speedup(policy: &Score, baseline: &Score) -> f64 {
    let eps = |x: f64| {
        if x > SPEEDUP_EPSILON_PERCENT {
            x
        } else {
            SPEEDUP_EPSILON_PERCENT
        }
    };
    let pairs = [
        (baseline.theta_u, policy.theta_u),
        (baseline.theta_o, policy.theta_o),
        (baseline.tau_u, policy.tau_u),
        (baseline.tau_o, policy.tau_o),
    ];
    let log_sum: f64 = pairs.iter().map(|&(b, p)| (eps(b) / eps(p)).ln()).sum();
    (log_sum / pairs.len() as f64).exp()
}

/// One setting of a baseline on the frontier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrontierPoint {
    /// Target utilisation of this setting.
    pub target: f64,
    /// τ_U, %.
    pub tau_u: f64,
    /// Cost / cost of O1.
    pub cost_ratio_o1: f64,
}

/// A reactive baseline's frontier on one trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frontier {
    /// The baseline.
    pub baseline: String,
    /// Its settings, in target order.
    pub points: Vec<FrontierPoint>,
}

/// Where a policy lies against one frontier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Cheaper than every setting whose τ_U is no higher.
    Below,
    /// Some setting with no higher τ_U costs no more.
    NotBelow,
    /// Every setting has a higher τ_U, and the safest of them (the least τ_U, then the least
    /// cost) costs more: the policy is below the frontier's safest end, and below any
    /// extension of it to less τ_U (being safer never costs less along a frontier).
    SaferAndCheaper,
    /// Every setting has a higher τ_U and the safest costs no more: the frontier does not
    /// reach the policy's risk level, so the comparison says nothing.
    NoComparableSetting,
}

impl Verdict {
    /// Short text for tables.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Below => "below",
            Verdict::NotBelow => "not below",
            Verdict::SaferAndCheaper => "below (safer than every setting, cheaper than the safest)",
            Verdict::NoComparableSetting => "no setting as safe",
        }
    }
}

impl Frontier {
    /// Where a policy with `tau_u` and `cost_ratio_o1` lies.
    pub fn verdict(&self, tau_u: f64, cost_ratio_o1: f64) -> Verdict {
        let mut comparable = self
            .points
            .iter()
            .filter(|p| p.tau_u <= tau_u + 1e-9)
            .peekable();
        if comparable.peek().is_none() {
            let safest = self.points.iter().min_by(|a, b| {
                a.tau_u
                    .total_cmp(&b.tau_u)
                    .then(a.cost_ratio_o1.total_cmp(&b.cost_ratio_o1))
            });
            return match safest {
                Some(p) if cost_ratio_o1 < p.cost_ratio_o1 => Verdict::SaferAndCheaper,
                _ => Verdict::NoComparableSetting,
            };
        }
        if comparable.all(|p| cost_ratio_o1 < p.cost_ratio_o1) {
            Verdict::Below
        } else {
            Verdict::NotBelow
        }
    }
}

/// Whether a policy lies below every frontier: `Some(true)` when it is below all of them
/// ([`Verdict::Below`] or [`Verdict::SaferAndCheaper`]), `Some(false)` when it is not below at
/// least one, `None` when it is below some and no frontier is comparable for the others.
pub fn below_every_frontier(verdicts: &[Verdict]) -> Option<bool> {
    if verdicts.contains(&Verdict::NotBelow) {
        Some(false)
    } else if verdicts
        .iter()
        .all(|v| matches!(v, Verdict::Below | Verdict::SaferAndCheaper))
    {
        Some(true)
    } else {
        None
    }
}

/// A frontier of `baseline` with one point per (τ_U, cost ÷ O1) of `points`, at targets 0.50,
/// 0.55, … in order.
#[cfg(test)]
pub(crate) fn frontier_of(baseline: &str, points: &[(f64, f64)]) -> Frontier {
    Frontier {
        baseline: baseline.to_owned(),
        points: points
            .iter()
            .enumerate()
            .map(|(i, &(tau_u, cost_ratio_o1))| FrontierPoint {
                target: 0.5 + 0.05 * i as f64,
                tau_u,
                cost_ratio_o1,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frontier(points: &[(f64, f64)]) -> Frontier {
        frontier_of("hpa", points)
    }

    #[test]
    fn a_policy_is_judged_against_the_settings_as_safe_as_it_or_the_safest() {
        // Targets 0.50–0.60: dearer as they get safer.
        let f = frontier(&[(0.5, 1.6), (1.0, 1.3), (2.0, 1.1)]);
        // Cheaper than both settings at no more τ_U.
        assert_eq!(f.verdict(1.0, 1.25), Verdict::Below);
        // The setting at τ_U 1.0 costs no more.
        assert_eq!(f.verdict(1.5, 1.3), Verdict::NotBelow);
        assert_eq!(f.verdict(2.5, 1.2), Verdict::NotBelow);
        // Safer than every setting: below when cheaper than the safest (1.6), else open.
        assert_eq!(f.verdict(0.1, 1.59), Verdict::SaferAndCheaper);
        assert_eq!(f.verdict(0.1, 1.6), Verdict::NoComparableSetting);
        assert_eq!(f.verdict(0.0, 3.0), Verdict::NoComparableSetting);
        // Two equally safe settings: the cheaper is the safest.
        let tied = frontier(&[(0.5, 1.6), (0.5, 1.4), (2.0, 1.1)]);
        assert_eq!(tied.verdict(0.1, 1.5), Verdict::NoComparableSetting);
        assert_eq!(tied.verdict(0.1, 1.3), Verdict::SaferAndCheaper);
        // No settings at all: nothing to say.
        assert_eq!(
            frontier(&[]).verdict(0.0, 1.0),
            Verdict::NoComparableSetting
        );
    }

    #[test]
    fn below_every_frontier_counts_safer_and_cheaper_as_below() {
        use Verdict::*;
        assert_eq!(below_every_frontier(&[Below, SaferAndCheaper]), Some(true));
        assert_eq!(
            below_every_frontier(&[SaferAndCheaper, NotBelow]),
            Some(false)
        );
        assert_eq!(below_every_frontier(&[Below, NoComparableSetting]), None);
        assert_eq!(
            serde_json::to_value(SaferAndCheaper).unwrap(),
            "safer_and_cheaper"
        );
    }
}
