//! Secrets in configuration: webhook URLs, routing keys and tokens are never written inline in a
//! policy file. They are named as `{env: VAR}` or `{file: PATH}` ([`SecretRef`]) and resolved
//! into a [`SecretString`], whose `Debug` output is redacted so it cannot leak into logs.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Where a secret comes from: an environment variable or a file (relative paths resolve against
/// the policy file's directory). Written `{env: SLACK_WEBHOOK_URL}` or
/// `{file: /run/secrets/pagerduty}`.
///
/// Deserialising never echoes what was written: an inline value is refused with a message that
/// does not contain it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretRef {
    /// The value of this environment variable.
    Env(String),
    /// The contents of this file, without the trailing newline.
    File(PathBuf),
}

impl SecretRef {
    /// Reads the secret. Errors ([`crate::ErrorKind::Config`]) name the variable or file
    /// and never contain the value.
    pub fn resolve(&self, base_dir: &Path) -> Result<SecretString> {
        match self {
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(value) if !value.trim().is_empty() => Ok(SecretString(value.trim().to_owned())),
                Ok(_) => Err(Error::config(format!(
                    "secret from environment variable {var}: the variable is empty"
                ))),
                Err(std::env::VarError::NotPresent) => Err(Error::config(format!(
                    "secret from environment variable {var}: the variable is not set"
                ))),
                Err(std::env::VarError::NotUnicode(_)) => Err(Error::config(format!(
                    "secret from environment variable {var}: the value is not valid UTF-8"
                ))),
            },
            SecretRef::File(path) => {
                let full = if path.is_absolute() {
                    path.clone()
                } else {
                    base_dir.join(path)
                };
                let text = std::fs::read_to_string(&full).map_err(|e| {
                    Error::config(format!("secret from file {}: {e}", full.display()))
                })?;
                let value = text.trim();
                if value.is_empty() {
                    return Err(Error::config(format!(
                        "secret from file {}: the file is empty",
                        full.display()
                    )));
                }
                Ok(SecretString(value.to_owned()))
            }
        }
    }

    /// Where the secret comes from, safe to log (`env SLACK_WEBHOOK_URL`, `file /run/x`).
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env(var) => format!("env {var}"),
            SecretRef::File(path) => format!("file {}", path.display()),
        }
    }
}

const SECRET_SHAPE: &str = "a secret is written `{env: VARIABLE}` or `{file: PATH}`, never inline";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;

        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = SecretRef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SECRET_SHAPE)
            }

            // Every non-map form is refused without repeating the value.
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(E::custom(SECRET_SHAPE))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretRef, E> {
                Err(E::custom(SECRET_SHAPE))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretRef, E> {
                Err(E::custom(SECRET_SHAPE))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretRef, E> {
                Err(E::custom(SECRET_SHAPE))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretRef, E> {
                Err(E::custom(SECRET_SHAPE))
            }
            fn visit_unit<E: de::Error>(self) -> Result<SecretRef, E> {
                Err(E::custom(SECRET_SHAPE))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<SecretRef, A::Error> {
                Err(de::Error::custom(SECRET_SHAPE))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(SECRET_SHAPE));
                };
                let secret = match key.as_str() {
                    "env" => SecretRef::Env(map.next_value::<String>()?),
                    "file" => SecretRef::File(map.next_value::<PathBuf>()?),
                    other => {
                        return Err(de::Error::custom(format!(
                            "unknown key `{other}`: {SECRET_SHAPE}"
                        )));
                    }
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(format!("one key only: {SECRET_SHAPE}")));
                }
                Ok(secret)
            }
        }

        deserializer.deserialize_any(SecretVisitor)
    }
}

/// A resolved secret. `Debug` prints `SecretString(<redacted>)`; there is no `Display` and no
/// `Serialize`, so the value reaches only the code that calls [`SecretString::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a value obtained elsewhere (tests, programmatic configuration).
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The secret value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_and_file_forms() {
        let env: SecretRef = serde_json::from_str(r#"{"env": "X_TOKEN"}"#).unwrap();
        assert_eq!(env, SecretRef::Env("X_TOKEN".into()));
        let file: SecretRef = serde_json::from_str(r#"{"file": "key.txt"}"#).unwrap();
        assert_eq!(file, SecretRef::File("key.txt".into()));
        assert!(serde_json::from_str::<SecretRef>(r#""https://inline""#).is_err());
        assert!(serde_json::from_str::<SecretRef>(r#"{"value": "x"}"#).is_err());
    }

    #[test]
    fn reads_files_relative_to_base_dir_and_trims() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "s3cr3t-value\n").unwrap();
        let secret = SecretRef::File("key".into()).resolve(dir.path()).unwrap();
        assert_eq!(secret.expose(), "s3cr3t-value");
        assert!(!format!("{secret:?}").contains("s3cr3t"));
    }

    #[test]
    fn missing_sources_name_the_source() {
        let err = SecretRef::Env("HOIST_TEST_SURELY_UNSET_VARIABLE".into())
            .resolve(Path::new("."))
            .unwrap_err();
        assert!(err.to_string().contains("HOIST_TEST_SURELY_UNSET_VARIABLE"));
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        let err = SecretRef::File("/nonexistent/key".into())
            .resolve(Path::new("."))
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/key"));
    }
}
