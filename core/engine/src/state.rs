//! The control loop's state across restarts: what is kept, under which keys, and the embedded
//! store that keeps it for a single replica.
//!
//! Per group, under `group/<provider>/<group>`, a [`GroupState`]: the decision memory
//! (stabilisation windows, cooldowns, rate-limit windows, ready counts), the predictive policy's
//! history, the last decision, when the vertical policy last looked and the vertical move whose
//! replacement it follows. Under [`BUDGETS_KEY`], every budget's state at the last round.
//! Values are JSON, so a record written by another version is read or, when it cannot be,
//! ignored with a warning: a process never refuses to start over its state, it starts that
//! group afresh.
//!
//! The loop writes one batch per round (see [`ControlLoop::with_state`]), so a crash loses at
//! most the round in flight.
//!
//! [`ControlLoop::with_state`]: crate::control::ControlLoop::with_state

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};

pub use hoist_api::state::{MemoryStore, StateStore};

use crate::error::{Error, Result};
use crate::{Decision, DecisionMemory, PredictiveSnapshot};

/// The version of [`GroupState`] this build writes and reads.
pub const FORMAT: u32 = 1;

/// The key of the budgets' states.
pub const BUDGETS_KEY: &str = "budgets";

/// The key prefix of every group's state.
pub const GROUP_PREFIX: &str = "group/";

/// The key of a group's state.
pub fn group_key(provider: &str, group: &str) -> String {
    format!("{GROUP_PREFIX}{provider}/{group}")
}

/// What is kept of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// [`FORMAT`] when written.
    pub format: u32,
    /// When it was written (the loop's clock).
    pub saved_at: DateTime<Utc>,
    /// The decision memory.
    pub memory: DecisionMemory,
    /// The predictive policy's history, when the group has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<PredictiveSnapshot>,
    /// The last decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<Decision>,
    /// When the group's vertical policy last looked (its cooldown runs from there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_vertical: Option<DateTime<Utc>>,
    /// The vertical move whose replacement the loop was following, if one was under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertical_move: Option<VerticalMoveState>,
}

/// A vertical move under way, as kept across a restart: a restarted loop goes on recording
/// each step of its replacement in the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerticalMoveState {
    /// The class the group is moving to.
    pub to_class: String,
    /// The disruption budget the move was asked with.
    pub disruption: hoist_api::DisruptionBudget,
    /// Instances not yet of `to_class` at the last look.
    pub remaining: u32,
}

impl GroupState {
    /// Reads a stored value; `Err` says why it cannot be used.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        let state: GroupState = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if state.format != FORMAT {
            return Err(format!(
                "written in format {} and this build reads format {FORMAT}",
                state.format
            ));
        }
        Ok(state)
    }
}

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("hoist_state");

/// The embedded store of a single replica: one [redb] file. One process at a time may open
/// it (redb locks the file); a second one is refused with an error that says so.
///
/// [redb]: https://docs.rs/redb
#[derive(Debug, Clone)]
pub struct RedbStore {
    db: Arc<redb::Database>,
    path: PathBuf,
}

impl RedbStore {
    /// Opens the store at `path`, creating it when it does not exist.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Err(Error::config(format!(
                "state store {}: is a directory; give a file path",
                path.display()
            )));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(Error::config(format!(
                "state store {}: the directory {} does not exist",
                path.display(),
                parent.display()
            )));
        }
        let db = redb::Database::create(path).map_err(|e| {
            let hint = match &e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    " (another process has it open: one state file per process)"
                }
                _ => "",
            };
            Error::config(format!(
                "state store {}: cannot open: {e}{hint}",
                path.display()
            ))
        })?;
        let store = RedbStore {
            db: Arc::new(db),
            path: path.to_owned(),
        };
        // Create the table up front, so a read of a new store finds it.
        store.write(Vec::new())?;
        Ok(store)
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::new(
            hoist_api::ErrorKind::Other,
            format!("state store {}: {what}: {e}", self.path.display()),
        )
    }

    fn write(&self, batch: Vec<(String, Vec<u8>)>) -> Result<()> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| self.failed("cannot write", e))?;
        {
            let mut table = txn
                .open_table(TABLE)
                .map_err(|e| self.failed("cannot write", e))?;
            for (key, value) in &batch {
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(|e| self.failed("cannot write", e))?;
            }
        }
        txn.commit().map_err(|e| self.failed("cannot commit", e))
    }

    fn read_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.failed("cannot read", e))?;
        let table = txn
            .open_table(TABLE)
            .map_err(|e| self.failed("cannot read", e))?;
        let mut out = Vec::new();
        for entry in table
            .range(prefix..)
            .map_err(|e| self.failed("cannot read", e))?
        {
            let (key, value) = entry.map_err(|e| self.failed("cannot read", e))?;
            if !key.value().starts_with(prefix) {
                break;
            }
            out.push((key.value().to_owned(), value.value().to_vec()));
        }
        Ok(out)
    }
}

#[async_trait]
impl StateStore for RedbStore {
    async fn load_prefix(&self, prefix: &str) -> hoist_api::Result<Vec<(String, Vec<u8>)>> {
        let store = self.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || store.read_prefix(&prefix))
            .await
            .map_err(|e| {
                Error::new(
                    hoist_api::ErrorKind::Other,
                    format!("state store read stopped: {e}"),
                )
            })?
    }

    async fn save(&self, batch: Vec<(String, Vec<u8>)>) -> hoist_api::Result<()> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write(batch))
            .await
            .map_err(|e| {
                Error::new(
                    hoist_api::ErrorKind::Other,
                    format!("state store write stopped: {e}"),
                )
            })?
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn redb_store_keeps_values_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = RedbStore::open(&path).unwrap();
            assert!(store.load_prefix("group/").await.unwrap().is_empty());
            store
                .save(vec![
                    (group_key("sim", "web"), b"{}".to_vec()),
                    (group_key("sim", "api"), b"[]".to_vec()),
                    (BUDGETS_KEY.into(), b"[1]".to_vec()),
                ])
                .await
                .unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        let groups = store.load_prefix(GROUP_PREFIX).await.unwrap();
        assert_eq!(
            groups,
            vec![
                ("group/sim/api".to_owned(), b"[]".to_vec()),
                ("group/sim/web".to_owned(), b"{}".to_vec()),
            ]
        );
        assert_eq!(store.load_prefix(BUDGETS_KEY).await.unwrap().len(), 1);
    }

    #[test]
    fn a_second_process_on_the_same_file_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let _first = RedbStore::open(&path).unwrap();
        let second = RedbStore::open(&path).unwrap_err().to_string();
        assert!(second.contains("state.redb"), "{second}");
    }

    #[test]
    fn a_directory_or_a_missing_parent_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = RedbStore::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let e = RedbStore::open(&dir.path().join("no/such/state.redb"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn records_of_another_format_or_garbage_are_not_used() {
        assert!(GroupState::decode(b"not json").is_err());
        let other = serde_json::json!({
            "format": 99, "saved_at": "2026-01-01T00:00:00Z", "memory": DecisionMemory::new()
        });
        let e = GroupState::decode(other.to_string().as_bytes()).unwrap_err();
        assert!(e.contains("format 99"), "{e}");
    }
}
