//! The audit trail: one JSON object per line for every decision and every configuration change,
//! appended to a file and flushed as it is written, so that nothing is lost if the process dies.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Decision;
use crate::error::{Error, ErrorKind, Result};

/// One audit record.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum AuditRecord<'a> {
    /// A policy file was loaded (at start or on reload).
    ConfigLoaded {
        /// When.
        at: DateTime<Utc>,
        /// Which file.
        file: &'a str,
        /// FNV-1a hash of its bytes, to tell versions apart.
        fingerprint: String,
    },
    /// A decision, with whether and how it was applied.
    Decision {
        /// Provider name in the policy file.
        provider: &'a str,
        /// The decision with its reasons.
        #[serde(flatten)]
        decision: &'a Decision,
        /// `applied`, `dry_run`, `unchanged` or `failed`.
        outcome: &'a str,
        /// The error when it failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
    },
    /// A pool's split changed: a member's state, or capacity moved between members.
    PoolSplit {
        /// The split, every member with its state and its move.
        #[serde(flatten)]
        split: &'a crate::pool::PoolSplitRecord,
    },
    /// A changed policy file was validated and applied (at the next evaluation).
    ConfigChanged {
        /// When.
        at: DateTime<Utc>,
        /// Which file.
        file: &'a str,
        /// Fingerprint of the new bytes.
        fingerprint: String,
        /// Fingerprint of the configuration it replaced.
        previous: &'a str,
        /// What changed in the effective configuration, field by field.
        changes: &'a [crate::config::ConfigChange],
        /// The git commit of the work tree the file is in, when it is in one.
        #[serde(skip_serializing_if = "Option::is_none")]
        commit: Option<&'a str>,
        /// Whether the file differs from that commit (uncommitted changes).
        #[serde(skip_serializing_if = "Option::is_none")]
        uncommitted: Option<bool>,
    },
    /// A changed policy file was refused: the running configuration stays.
    ConfigRejected {
        /// When.
        at: DateTime<Utc>,
        /// Which file.
        file: &'a str,
        /// Fingerprint of the refused bytes.
        fingerprint: String,
        /// Fingerprint of the configuration that keeps running.
        running: &'a str,
        /// Why, with file, line and field.
        errors: &'a str,
    },
    /// A vertical policy's look at a group: the cheapest (class, count) that carries its peak
    /// load, and what was done with it.
    Vertical {
        /// When.
        at: DateTime<Utc>,
        /// Provider name in the policy file.
        provider: &'a str,
        /// Group name in the policy file.
        group: &'a str,
        /// The peak CPU load over the lookback, cores.
        peak_cores: f64,
        /// The peak memory in use on one instance over the lookback, bytes (with the policy's
        /// `memory_metric`).
        #[serde(skip_serializing_if = "Option::is_none")]
        peak_memory_bytes: Option<f64>,
        /// The class the group runs on.
        from_class: &'a str,
        /// Its desired capacity.
        from_count: u32,
        /// The recommended class.
        to_class: &'a str,
        /// How the recommended class is bought.
        to_capacity_type: crate::model::CapacityType,
        /// Instances of it that carry the peak at the target utilisation.
        to_count: u32,
        /// What the group costs per hour now (catalog prices).
        per_hour_now: f64,
        /// What the recommended fleet would cost per hour.
        per_hour_after: f64,
        /// The saving, percent of the cost now.
        saving_percent: f64,
        /// The currency of the prices.
        currency: &'a str,
        /// The budget whose `prefer_cheaper` rung (or above) allowed spot and any saving.
        #[serde(skip_serializing_if = "Option::is_none")]
        budget: Option<&'a str>,
        /// The disruption budget a move replaces the instances within (when the class changes):
        /// `max_unavailable`, `per_window` (when limited) and `window` (seconds).
        #[serde(skip_serializing_if = "Option::is_none")]
        disruption: Option<hoist_api::DisruptionBudget>,
        /// The instances a move replaces (when the class changes).
        #[serde(skip_serializing_if = "Option::is_none")]
        to_replace: Option<u32>,
        /// How many the move starts replacing in this step (when applied): at most the budget's
        /// `max_unavailable` (and `per_window`); later steps are `vertical_step` records.
        #[serde(skip_serializing_if = "Option::is_none")]
        replaced: Option<u32>,
        /// `kept` (already the cheapest), `below_min_saving`, `recommended`, `dry_run`,
        /// `standby`, `applied` or `failed`.
        outcome: &'a str,
        /// The error when it failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
    },
    /// A step of an applied vertical move's replacement, at an evaluation that found instances
    /// replaced since the last one (or the replacement done).
    VerticalStep {
        /// When.
        at: DateTime<Utc>,
        /// Provider name in the policy file.
        provider: &'a str,
        /// Group name in the policy file.
        group: &'a str,
        /// The class the group moves to.
        to_class: &'a str,
        /// The disruption budget of the move.
        disruption: hoist_api::DisruptionBudget,
        /// Instances replaced since the last evaluation.
        replaced: u32,
        /// Instances still to replace.
        remaining: u32,
        /// Instances being replaced now: new ones booting and old ones draining.
        in_flight: u32,
        /// `replacing`, or `replaced` when none is left.
        outcome: &'a str,
    },
    /// The run ended: it covered its duration, or a signal stopped it.
    Stopped {
        /// When.
        at: DateTime<Utc>,
        /// `completed`, or `stopped by SIGTERM` (or SIGINT).
        reason: &'a str,
    },
}

/// An append-only JSON-lines audit log.
#[derive(Debug)]
pub struct AuditLog {
    path: Option<PathBuf>,
    out: Mutex<Option<BufWriter<File>>>,
}

impl AuditLog {
    /// Opens (creating or appending to) the log at `path`.
    pub fn open(path: &Path) -> Result<AuditLog> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("cannot create {}", parent.display()),
                )
                .with_source(e)
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("cannot open the audit log {}", path.display()),
                )
                .with_source(e)
            })?;
        Ok(AuditLog {
            path: Some(path.to_owned()),
            out: Mutex::new(Some(BufWriter::new(file))),
        })
    }

    /// A log that writes nothing (for `plan` and tests).
    pub fn disabled() -> AuditLog {
        AuditLog {
            path: None,
            out: Mutex::new(None),
        }
    }

    /// Where it writes.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Appends one record and flushes it.
    pub fn append(&self, record: &AuditRecord<'_>) -> Result<()> {
        let mut guard = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let Some(out) = guard.as_mut() else {
            return Ok(());
        };
        let line = serde_json::to_string(record).map_err(|e| {
            Error::new(ErrorKind::Other, "cannot encode an audit record").with_source(e)
        })?;
        out.write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .map_err(|e| Error::new(ErrorKind::Other, "cannot write the audit log").with_source(e))
    }
}

/// FNV-1a 64-bit hash of `bytes`, as hex: a stable fingerprint of a configuration file.
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}
