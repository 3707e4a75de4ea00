//! The result of a conformance run: one line per check, passed, skipped (with why) or failed
//! (with what a provider author should fix).

use std::fmt;
use std::time::Duration;

use super::{ConformanceTarget, WriteMode};

/// How one check went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider did what it must.
    Passed,
    /// The check does not apply (the provider offers no catalog, say).
    Skipped {
        /// Why.
        reason: String,
    },
    /// The provider did something it must not.
    Failed {
        /// What was asked, what came back, and what is expected instead.
        message: String,
    },
}

impl Outcome {
    /// A skip for `reason`.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Outcome::Skipped {
            reason: reason.into(),
        }
    }

    /// A failure with `message`.
    pub fn failed(message: impl Into<String>) -> Self {
        Outcome::Failed {
            message: message.into(),
        }
    }

    /// Whether it failed.
    pub fn is_failed(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The check, such as `scaling.rejects_out_of_bounds`.
    pub name: &'static str,
    /// How it went.
    pub outcome: Outcome,
    /// Wall-clock time it took.
    pub duration: Duration,
}

/// Every check's result for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceReport {
    /// The target as it shows itself (`Retry(DryRun(sim))`, provider, group, write mode).
    pub target: String,
    /// The write mode it ran in.
    pub writes: WriteMode,
    /// Results, in run order.
    pub checks: Vec<CheckReport>,
}

impl ConformanceReport {
    pub(crate) fn new(target: &ConformanceTarget) -> Self {
        ConformanceReport {
            target: target.to_string(),
            writes: target.writes,
            checks: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, name: &'static str, outcome: Outcome, duration: Duration) {
        self.checks.push(CheckReport {
            name,
            outcome,
            duration,
        });
    }

    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|c| c.outcome.is_failed())
    }

    /// The failed checks.
    pub fn failures(&self) -> Vec<&CheckReport> {
        self.checks
            .iter()
            .filter(|c| c.outcome.is_failed())
            .collect()
    }

    /// The names of checks that passed.
    pub fn passed_names(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Passed)
            .map(|c| c.name)
            .collect()
    }

    /// The result of the check named `name`.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.outcome)
    }

    /// Panics with the whole report when a check failed; for tests.
    #[track_caller]
    pub fn assert_passed(&self) {
        if !self.passed() {
            panic!("conformance failed:\n{self}");
        }
    }
}

impl fmt::Display for ConformanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of {}", self.target)?;
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for check in &self.checks {
            match &check.outcome {
                Outcome::Passed => writeln!(f, "  PASS {}", check.name)?,
                Outcome::Skipped { reason } => {
                    writeln!(f, "  SKIP {:width$}  {reason}", check.name)?
                }
                Outcome::Failed { message } => {
                    writeln!(f, "  FAIL {:width$}  {message}", check.name)?
                }
            }
        }
        let failed = self.failures().len();
        let skipped = self
            .checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Skipped { .. }))
            .count();
        write!(
            f,
            "{} passed, {skipped} skipped, {failed} failed",
            self.checks.len() - failed - skipped
        )
    }
}
