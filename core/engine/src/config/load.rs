//! Reading a policy file: YAML syntax and types first, then semantic checks, each error with the
//! file, line and field.

use std::fmt;
use std::path::{Path, PathBuf};

use super::PolicyFile;
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

/// Reads, parses and validates a policy file.
pub fn load_file(path: &Path) -> Result<PolicyDocument, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: None,
            column: None,
            field: None,
            message: format!("cannot read the policy file: {e}"),
        }])
    })?;
    parse_str(path, &text)
}

/// Parses and validates policy text read from `path`.
pub fn parse_str(path: &Path, text: &str) -> Result<PolicyDocument, ConfigErrors> {
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
    let policy: PolicyFile = serde_saphyr::from_str(text).map_err(|e| {
        let loc = e.location();
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: loc.map(|l| l.line()),
            column: loc.map(|l| l.column()),
            field: None,
            message: syntax_message(&e),
        }])
    })?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let document = PolicyDocument {
        policy,
        path: path.to_owned(),
        base_dir,
        index: LocationIndex::build(text),
    };
    let problems = validate(&document.policy);
    if problems.is_empty() {
        Ok(document)
    } else {
        Err(ConfigErrors(
            problems
                .into_iter()
                .map(|(field, message)| document.error_at(&field, message))
                .collect(),
        ))
    }
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
