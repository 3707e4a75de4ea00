//! Limits on reading a policy file's YAML: a guard against hostile input (alias bombs such as
//! "billion laughs", deep nesting) sized for real files, and, when one trips, a message that says
//! which limit, and how to raise it.

use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::granit_parser::ErrorKind as ScanErrorKind;
use serde_saphyr::{Error as YamlError, ExternalMessageSource};

/// Limits on the YAML of a policy file. They stop input that costs far more to read than its
/// size (an alias bomb: a few lines of `&anchor`s and `*alias`es that stand for billions of
/// values; nesting thousands deep) while any real file loads: the defaults admit a file of
/// 10,000 groups of several policies each many times over.
///
/// [`crate::config::parse_str`] and [`crate::config::load_file`] read them with
/// [`PolicyLimits::from_env`], so a user can raise one without a new build:
///
/// | limit | default | environment variable |
/// |---|---|---|
/// | [`max_nodes`](Self::max_nodes) | 2,000,000 | `HOIST_POLICY_MAX_NODES` |
/// | [`max_aliases`](Self::max_aliases) | 100,000 | `HOIST_POLICY_MAX_ALIASES` |
/// | [`max_depth`](Self::max_depth) | 64 | `HOIST_POLICY_MAX_DEPTH` |
/// | [`max_text_bytes`](Self::max_text_bytes) | 256 MiB | `HOIST_POLICY_MAX_TEXT_BYTES` |
/// | [`max_file_bytes`](Self::max_file_bytes) | 64 MiB | `HOIST_POLICY_MAX_FILE_BYTES` |
/// | [`max_line_bytes`](Self::max_line_bytes) | 1 MiB | `HOIST_POLICY_MAX_LINE_BYTES` |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyLimits {
    /// Values, lists and maps in the file, each alias counted as everything it stands for. A
    /// group of a policy file is 20 to 60 of them.
    pub max_nodes: usize,
    /// Aliases (`*name`), anchors (`&name`) and merge keys (`<<`), each.
    pub max_aliases: usize,
    /// How deep lists and maps nest (a policy file needs about 10).
    pub max_depth: usize,
    /// Bytes of text in values, each alias counted as everything it stands for.
    pub max_text_bytes: usize,
    /// Bytes of the file itself; reading stops there (a file of 10,000 groups is about 10 MiB).
    pub max_file_bytes: usize,
    /// Bytes of its longest line.
    pub max_line_bytes: usize,
}

/// Environment variable raising [`PolicyLimits::max_nodes`].
pub const MAX_NODES_VAR: &str = "HOIST_POLICY_MAX_NODES";
/// Environment variable raising [`PolicyLimits::max_aliases`].
pub const MAX_ALIASES_VAR: &str = "HOIST_POLICY_MAX_ALIASES";
/// Environment variable raising [`PolicyLimits::max_depth`].
pub const MAX_DEPTH_VAR: &str = "HOIST_POLICY_MAX_DEPTH";
/// Environment variable raising [`PolicyLimits::max_text_bytes`].
pub const MAX_TEXT_BYTES_VAR: &str = "HOIST_POLICY_MAX_TEXT_BYTES";
/// Environment variable raising [`PolicyLimits::max_file_bytes`].
pub const MAX_FILE_BYTES_VAR: &str = "HOIST_POLICY_MAX_FILE_BYTES";
/// Environment variable raising [`PolicyLimits::max_line_bytes`].
pub const MAX_LINE_BYTES_VAR: &str = "HOIST_POLICY_MAX_LINE_BYTES";

impl Default for PolicyLimits {
    fn default() -> Self {
        PolicyLimits {
            max_nodes: 2_000_000,
            max_aliases: 100_000,
            max_depth: 64,
            max_text_bytes: 256 * 1024 * 1024,
            max_file_bytes: 64 << 20,
            max_line_bytes: 1 << 20,
        }
    }
}

impl PolicyLimits {
    /// The defaults, each replaced by its environment variable when that is set (see the table
    /// above). A variable that is not a positive whole number is an error naming it.
    pub fn from_env() -> Result<PolicyLimits, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<PolicyLimits, String> {
        let mut limits = PolicyLimits::default();
        for (var, field) in [
            (MAX_NODES_VAR, &mut limits.max_nodes),
            (MAX_ALIASES_VAR, &mut limits.max_aliases),
            (MAX_DEPTH_VAR, &mut limits.max_depth),
            (MAX_TEXT_BYTES_VAR, &mut limits.max_text_bytes),
            (MAX_FILE_BYTES_VAR, &mut limits.max_file_bytes),
            (MAX_LINE_BYTES_VAR, &mut limits.max_line_bytes),
        ] {
            if let Some(text) = lookup(var) {
                let example = field.saturating_mul(2);
                *field = text
                    .trim()
                    .replace('_', "")
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        format!(
                            "{var}=`{text}` is not a positive whole number (e.g. {var}={example})"
                        )
                    })?;
            }
        }
        Ok(limits)
    }

    /// The parser options enforcing these limits.
    pub(crate) fn options(&self) -> serde_saphyr::Options {
        // Every event but a node's end is a node or an alias, so the event count trips only
        // after the node or alias count would have.
        let max_events = self
            .max_nodes
            .saturating_mul(2)
            .saturating_add(self.max_aliases)
            .saturating_add(64);
        let mut budget = serde_saphyr::Budget::default();
        budget.max_nodes = self.max_nodes;
        budget.max_events = max_events;
        budget.max_aliases = self.max_aliases;
        budget.max_anchors = self.max_aliases;
        budget.max_merge_keys = self.max_aliases;
        budget.max_depth = self.max_depth;
        // The scanner meets flow nesting (`[[[...`) before the parser counts its depth.
        budget.flow_nesting_limit = self.max_depth;
        budget.max_total_scalar_bytes = self.max_text_bytes;
        budget.max_recorded_anchor_events = max_events;
        budget.max_recorded_anchor_bytes = self.max_text_bytes;
        // One anchor used by 10,000 groups is a real file; what an alias stands for is counted
        // by the node limit instead.
        budget.enforce_alias_anchor_ratio = false;
        let mut options = serde_saphyr::Options::default();
        options.budget = Some(budget);
        options.alias_limits.max_total_replayed_events = max_events;
        options.alias_limits.max_replay_stack_depth = self.max_depth;
        options
    }

    /// What a parser error says in words, when it is one of these limits tripping.
    pub(crate) fn describe(&self, error: &YamlError) -> Option<String> {
        let mut error = error;
        while let YamlError::WithSnippet { error: inner, .. }
        | YamlError::AliasError { error: inner, .. } = error
        {
            error = inner;
        }
        let nodes = || {
            self.explain(
                format!(
                    "more than {} YAML values, lists and maps (each alias `*name` counted as everything it stands for)",
                    self.max_nodes
                ),
                MAX_NODES_VAR,
                self.max_nodes,
            )
        };
        let aliases = || {
            self.explain(
                format!(
                    "more than {} aliases (`*name`), anchors (`&name`) or merge keys (`<<`)",
                    self.max_aliases
                ),
                MAX_ALIASES_VAR,
                self.max_aliases,
            )
        };
        let depth = || {
            self.explain(
                format!(
                    "lists and maps nested (or aliases replayed) more than {} deep",
                    self.max_depth
                ),
                MAX_DEPTH_VAR,
                self.max_depth,
            )
        };
        let text = || {
            self.explain(
                format!(
                    "more than {} bytes of text in values (each alias `*name` counted as everything it stands for)",
                    self.max_text_bytes
                ),
                MAX_TEXT_BYTES_VAR,
                self.max_text_bytes,
            )
        };
        Some(match error {
            YamlError::Budget { breach, .. } => match breach {
                BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => nodes(),
                BudgetBreach::Aliases { .. }
                | BudgetBreach::Anchors { .. }
                | BudgetBreach::MergeKeys { .. }
                | BudgetBreach::AliasAnchorRatio { .. } => aliases(),
                BudgetBreach::Depth { .. } => depth(),
                BudgetBreach::ScalarBytes { .. } => text(),
                other => format!(
                    "the policy file is refused by a limit of the YAML reader ({other:?}); a policy file needs one YAML document of ordinary size"
                ),
            },
            YamlError::AliasReplayLimitExceeded { .. } => nodes(),
            YamlError::AliasReplayStackDepthExceeded { .. } => depth(),
            YamlError::ExternalMessage { source, .. }
                if matches!(
                    &**source,
                    ExternalMessageSource::Parser(scan)
                        if matches!(scan.kind(), ScanErrorKind::RecursionLimitExceeded)
                ) =>
            {
                depth()
            }
            _ => return None,
        })
    }

    /// What a read error says, with the variable that raises the limit that stopped it.
    pub(crate) fn describe_read(&self, error: &hoist_api::input::ReadError) -> String {
        use hoist_api::input::ReadError;
        let (var, current) = match error {
            ReadError::TooLarge { .. } => (MAX_FILE_BYTES_VAR, self.max_file_bytes),
            ReadError::LineTooLong { .. } => (MAX_LINE_BYTES_VAR, self.max_line_bytes),
            _ => return error.message(),
        };
        format!(
            "{}; a policy file is YAML text of ordinary size. If the file is genuine, raise the limit with the environment variable {var} (e.g. {var}={})",
            error.message(),
            current.saturating_mul(4)
        )
    }

    fn explain(&self, what: String, var: &str, current: usize) -> String {
        format!(
            "the policy file has {what}, past a limit that guards against hostile YAML (alias bombs such as \"billion laughs\", deep nesting); if the file is genuine, raise the limit with the environment variable {var} (e.g. {var}={})",
            current.saturating_mul(4)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_variables_raise_limits_and_bad_values_name_the_variable() {
        let limits = PolicyLimits::from_lookup(|var| match var {
            MAX_NODES_VAR => Some("5_000_000".to_owned()),
            MAX_DEPTH_VAR => Some(" 100 ".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(limits.max_nodes, 5_000_000);
        assert_eq!(limits.max_depth, 100);
        assert_eq!(limits.max_aliases, PolicyLimits::default().max_aliases);
        let err = PolicyLimits::from_lookup(|var| (var == MAX_ALIASES_VAR).then(|| "lots".into()))
            .unwrap_err();
        assert!(
            err.contains(MAX_ALIASES_VAR) && err.contains("lots"),
            "{err}"
        );
        assert!(
            PolicyLimits::from_lookup(|var| (var == MAX_DEPTH_VAR).then(|| "0".into())).is_err()
        );
    }
}
