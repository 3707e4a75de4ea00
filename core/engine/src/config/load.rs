//! Reading a policy file: YAML syntax and types first, then semantic checks, each error with the
//! file, line and field.

use std::fmt;
use std::path::{Path, PathBuf};

use super::PolicyFile;
use super::deferred::{self, Deferred};
use super::limits::PolicyLimits;
use super::locate::LocationIndex;
use super::validate::validate;

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// The field path (`groups[0].max`), when known.
    pub field: Option<String>,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a policy file (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A parsed and validated policy file with what is needed to point at its lines later.
#[derive(Debug, Clone)]
pub struct PolicyDocument {
    /// The policy.
    pub policy: PolicyFile,
    /// Where it was read from.
    pub path: PathBuf,
    /// Its directory; relative paths in it resolve against this.
    pub base_dir: PathBuf,
    index: LocationIndex,
}

impl PolicyDocument {
    /// An error about `field` (a path like `providers.sim.simulated.seed`), located in the file.
    pub fn error_at(&self, field: &str, message: impl Into<String>) -> ConfigError {
        let loc = self.index.locate(field);
        ConfigError {
            file: self.path.clone(),
            line: loc.map(|l| l.0),
            column: loc.map(|l| l.1),
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}

/// An error about the value at a problem's location, with the field path found there.
fn located(path: &Path, index: &LocationIndex, problem: Deferred) -> ConfigError {
    ConfigError {
        file: path.to_owned(),
        line: problem.location.map(|l| l.0),
        column: problem.location.map(|l| l.1),
        field: problem
            .location
            .and_then(|(line, column)| index.path_at(line, column))
            .map(str::to_owned),
        message: problem.message,
    }
}

/// Reads, parses and validates a policy file, within the [`PolicyLimits`] of the environment
/// ([`PolicyLimits::from_env`]).
pub fn load_file(path: &Path) -> Result<PolicyDocument, ConfigErrors> {
    let limits = limits_from_env(path)?;
    load_file_with_limits(path, &limits)
}

/// Reads, parses and validates a policy file within `limits`.
pub fn load_file_with_limits(
    path: &Path,
    limits: &PolicyLimits,
) -> Result<PolicyDocument, ConfigErrors> {
    let read_limits = hoist_api::input::ReadLimits {
        max_bytes: limits.max_file_bytes as u64,
        max_line_bytes: limits.max_line_bytes,
        gzip: false,
    };
    let text = hoist_api::input::read_file(path, read_limits).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: e.line().map(|l| l as u64),
            column: e.column().map(|c| c as u64),
            field: None,
            message: limits.describe_read(&e),
        }])
    })?;
    parse_str_with_limits(path, &text, limits)
}

fn limits_from_env(path: &Path) -> Result<PolicyLimits, ConfigErrors> {
    PolicyLimits::from_env().map_err(|message| {
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: None,
            column: None,
            field: None,
            message,
        }])
    })
}

/// Parses and validates policy text read from `path`, within the [`PolicyLimits`] of the
/// environment ([`PolicyLimits::from_env`]).
pub fn parse_str(path: &Path, text: &str) -> Result<PolicyDocument, ConfigErrors> {
    let limits = limits_from_env(path)?;
    parse_str_with_limits(path, text, &limits)
}

/// Parses and validates policy text read from `path` within `limits`. Every problem is
/// reported, in the order of the file.
pub fn parse_str_with_limits(
    path: &Path,
    text: &str,
    limits: &PolicyLimits,
) -> Result<PolicyDocument, ConfigErrors> {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: Some(1),
            column: None,
            field: None,
            message: "the policy file is empty; it needs `providers:` and `groups:` (see examples/quickstart.yaml)".to_owned(),
        }]));
    }
    // Problems in typed values (cron, time zone, rate limit) are held back so that the others
    // are found too.
    let (parsed, held_back) = deferred::collect(|| {
        serde_saphyr::from_str_with_options::<PolicyFile>(text, limits.options())
    });
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let index = || LocationIndex::build_with_options(text, limits.options());
    let policy = match parsed {
        Ok(policy) => policy,
        Err(e) => {
            let loc = e.location();
            let syntax = ConfigError {
                file: path.to_owned(),
                line: loc.map(|l| l.line()),
                column: loc.map(|l| l.column()),
                field: None,
                message: limits
                    .describe(&e)
                    .or_else(|| in_users_words(&e))
                    .unwrap_or_else(|| syntax_message(&e)),
            };
            if held_back.is_empty() {
                return Err(ConfigErrors(vec![syntax]));
            }
            // Report what was found before the parser stopped, too.
            let index = index();
            let mut errors: Vec<ConfigError> = held_back
                .into_iter()
                .map(|p| located(path, &index, p))
                .collect();
            errors.push(syntax);
            return Err(in_file_order(errors));
        }
    };
    let document = PolicyDocument {
        policy,
        path: path.to_owned(),
        base_dir,
        index: index(),
    };
    let mut errors: Vec<ConfigError> = held_back
        .into_iter()
        .map(|p| located(path, &document.index, p))
        .collect();
    errors.extend(
        validate(&document.policy)
            .into_iter()
            .map(|(field, message)| document.error_at(&field, message)),
    );
    if errors.is_empty() {
        Ok(document)
    } else {
        Err(in_file_order(errors))
    }
}

/// Errors sorted by line and column (stable; those without a line last).
fn in_file_order(mut errors: Vec<ConfigError>) -> ConfigErrors {
    errors.sort_by_key(|e| (e.line.unwrap_or(u64::MAX), e.column.unwrap_or(0)));
    ConfigErrors(errors)
}

/// What a YAML error means for a policy file, for the errors whose parser message would name
/// the parser's own options instead of the user's mistake.
fn in_users_words(error: &serde_saphyr::Error) -> Option<String> {
    use serde_saphyr::Error as E;
    let mut error = error;
    while let E::WithSnippet { error: inner, .. } | E::AliasError { error: inner, .. } = error {
        error = inner;
    }
    Some(match error {
        E::DuplicateMappingKey { key: Some(key), .. } => format!(
            "`{key}` is given twice in the same mapping; keep one of the two (a later one would silently replace the earlier)"
        ),
        E::DuplicateMappingKey { key: None, .. } => "a key is given twice in the same mapping; keep one of the two".to_owned(),
        E::MultipleDocuments { .. } => "a second YAML document starts here (`---`); a policy file is one document: merge the two, or put the second in a file of its own".to_owned(),
        E::NonFiniteFloat { value, .. } => format!(
            "`{value}` is not a finite number; give a number such as 0.5 or 100"
        ),
        E::InvalidUtf8Input => "the file is not UTF-8 text; save it as UTF-8".to_owned(),
        E::MergeKeyNotAllowed { .. } => "merge keys (`<<`) are not allowed here".to_owned(),
        E::UnsupportedTag { tag, .. } => format!(
            "the tag `{tag}` is not supported; remove it and write the value plainly"
        ),
        E::BinaryNotUtf8 { .. } | E::BytesNotSupportedMissingBinaryTag { .. } => {
            "binary data is not supported in a policy file; write the value as text".to_owned()
        }
        E::NullIntoString { .. } | E::InvalidCharNull { .. } => {
            "a value is missing here (empty or `null`); write the text it needs".to_owned()
        }
        E::InvalidBooleanStrict { .. } => "expected `true` or `false`".to_owned(),
        _ => return None,
    })
}

/// The parser's message without its own location prefix and snippet (we print the location).
fn syntax_message(error: &serde_saphyr::Error) -> String {
    let full = error.to_string();
    let first = full.lines().next().unwrap_or(&full).trim();
    // serde-saphyr renders "error: line L column C: message" followed by a snippet; keep the
    // message and let ConfigError print the location.
    let message = first.strip_prefix("error: ").unwrap_or(first).trim();
    let message = match message.find(": ") {
        Some(i) if message[..i].starts_with("line ") => &message[i + 2..],
        _ => message,
    };
    message.to_owned()
}
