//! The cost ledger: a JSON-lines file of what each group has cost and each budget's state, at
//! most once per `costs.ledger_every` for each, written by the running autoscaler and read by
//! `hoist cost`.
//!
//! Each line is one [`LedgerRecord`]:
//!
//! ```json
//! {"type":"group","at":"2026-03-02T01:00:00Z","provider":"sim","group":"web","instances":10,"instance_class":"general.large","hourly_cost":0.96,"metered_cost":0.97,"currency":"USD","work_per_second":1520.0,"work_unit":"requests"}
//! {"type":"budget","at":"2026-03-02T01:00:00Z","budget":"web-monthly","spent":0.97,"forecast":690.2,...}
//! {"type":"reconciliation","at":"2026-03-03T00:01:00Z","provider":"sim","day":"2026-03-02","metered":23.1,"billed":23.04,"currency":"USD","difference":0.06,"relative":0.0026}
//! ```
//!
//! A `reconciliation` line is written for each complete UTC day the meter was set against the
//! provider's own bill (once per provider and day, when it happens; see [`crate::reconcile`]).
//!
//! `metered_cost` is cumulative: what the meter charged the group since the autoscaler first
//! observed it in this run. A new run starts again from zero, and readers take each run's
//! increments.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hoist_api::Clock;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::budget::BudgetStatus;
use crate::events::{Event, EventSink};
use crate::reconcile::Reconciliation;

/// One group's cost at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupCostRecord {
    /// When observed.
    pub at: DateTime<Utc>,
    /// Provider name in the policy file.
    pub provider: String,
    /// The group's id on the provider.
    pub group: String,
    /// Active instances.
    pub instances: u32,
    /// The group's instance class.
    pub instance_class: String,
    /// Cost per hour of the active instances (on-demand prices).
    pub hourly_cost: Option<f64>,
    /// What the meter charged since it first observed the group in this run.
    pub metered_cost: Option<f64>,
    /// The part of `metered_cost` charged for spot instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metered_spot_cost: Option<f64>,
    /// Active instances bought as spot.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spot_instances: u32,
    /// Currency of the amounts.
    pub currency: Option<String>,
    /// Work done per second (the group's `cost.work_metric`), latest sample.
    #[serde(default)]
    pub work_per_second: Option<f64>,
    /// What a unit of work is called.
    #[serde(default)]
    pub work_unit: Option<String>,
    /// Which run of the autoscaler wrote it (its start time), so runs are told apart.
    pub run: DateTime<Utc>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A line of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LedgerRecord {
    /// A group's cost.
    Group(GroupCostRecord),
    /// A budget's state.
    Budget(BudgetStatus),
    /// A day of the meter set against the provider's bill.
    Reconciliation(ReconciliationRecord),
}

/// A day of the meter set against the provider's bill, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconciliationRecord {
    /// When it was reconciled.
    pub at: DateTime<Utc>,
    /// The reconciliation.
    #[serde(flatten)]
    pub reconciliation: Reconciliation,
}

#[derive(Debug)]
struct State {
    out: Option<BufWriter<File>>,
    every: TimeDelta,
    run: Option<DateTime<Utc>>,
    last_group: HashMap<(String, String), DateTime<Utc>>,
    last_budget: HashMap<String, DateTime<Utc>>,
    work: HashMap<(String, String), (f64, String)>,
    pending: HashMap<(String, String), GroupCostRecord>,
    failed: bool,
}

/// Writes the ledger from the control loop's events.
#[derive(Debug)]
pub struct CostLedger {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl CostLedger {
    /// Appends to `path` (created if missing), one record per group and budget at most every
    /// `every`, stamped by `clock` (the control loop's).
    pub fn open(
        path: &Path,
        every: std::time::Duration,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Self> {
        Self::with_mode(path, every, clock, true)
    }

    /// Like [`CostLedger::open`], but starts the file afresh: for a run in virtual time, which
    /// replays the same hours again and would otherwise count them twice.
    pub fn create(
        path: &Path,
        every: std::time::Duration,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Self> {
        Self::with_mode(path, every, clock, false)
    }

    fn with_mode(
        path: &Path,
        every: std::time::Duration,
        clock: Arc<dyn Clock>,
        append: bool,
    ) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)?;
        Ok(CostLedger {
            path: path.to_owned(),
            clock,
            state: Mutex::new(State {
                out: Some(BufWriter::new(file)),
                every: TimeDelta::from_std(every).unwrap_or(TimeDelta::hours(1)),
                run: None,
                last_group: HashMap::new(),
                last_budget: HashMap::new(),
                work: HashMap::new(),
                pending: HashMap::new(),
                failed: false,
            }),
        })
    }

    /// Where it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the latest record of every group that was held back by the interval, and
    /// flushes. Call at the end of a run, so the ledger ends where the run did.
    pub fn finish(&self) -> std::io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let pending: Vec<GroupCostRecord> = state.pending.drain().map(|(_, r)| r).collect();
        let mut pending = pending;
        pending.sort_by(|a, b| (a.at, &a.provider, &a.group).cmp(&(b.at, &b.provider, &b.group)));
        for record in pending {
            state.write(&LedgerRecord::Group(record));
        }
        match state.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

impl State {
    fn write(&mut self, record: &LedgerRecord) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let written = serde_json::to_writer(&mut *out, record)
            .map_err(std::io::Error::other)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if let Err(e) = written
            && !self.failed
        {
            self.failed = true;
            tracing::error!(error = %e, "cost ledger write failed");
        }
    }
}

impl EventSink for CostLedger {
    fn emit(&self, event: &Event) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::GroupObserved {
                provider,
                group,
                cost_per_hour,
                currency,
                metered_cost,
                metered_spot_cost,
                spot_instances,
                ..
            } => {
                let at = self.clock.now();
                let run = *state.run.get_or_insert(at);
                let key = (provider.clone(), group.id.clone());
                let work = state.work.get(&key).cloned();
                let record = GroupCostRecord {
                    at,
                    provider: provider.clone(),
                    group: group.id.clone(),
                    instances: group.ready + group.pending,
                    instance_class: group.instance_class.clone(),
                    hourly_cost: *cost_per_hour,
                    metered_cost: *metered_cost,
                    metered_spot_cost: *metered_spot_cost,
                    spot_instances: *spot_instances,
                    currency: currency.clone(),
                    work_per_second: work.as_ref().map(|w| w.0),
                    work_unit: work.map(|w| w.1),
                    run,
                };
                let due = state
                    .last_group
                    .get(&key)
                    .is_none_or(|last| at - *last >= state.every);
                if due {
                    state.last_group.insert(key.clone(), at);
                    state.pending.remove(&key);
                    state.write(&LedgerRecord::Group(record));
                } else {
                    state.pending.insert(key, record);
                }
            }
            Event::Work {
                provider,
                group,
                units_per_second,
                unit,
            } => {
                state.work.insert(
                    (provider.clone(), group.clone()),
                    (*units_per_second, unit.clone()),
                );
            }
            Event::Budget(status) => {
                let due = state
                    .last_budget
                    .get(&status.budget)
                    .is_none_or(|last| status.at - *last >= state.every);
                if due {
                    state.last_budget.insert(status.budget.clone(), status.at);
                    state.write(&LedgerRecord::Budget(status.clone()));
                }
            }
            Event::CostReconciled(reconciliation) => {
                state.write(&LedgerRecord::Reconciliation(ReconciliationRecord {
                    at: self.clock.now(),
                    reconciliation: reconciliation.clone(),
                }));
            }
            _ => {}
        }
    }
}

/// The budget records of the ledger at `path`, to seed a restarted autoscaler's budgets; none
/// when there is no ledger.
pub fn budget_records(path: &Path) -> Vec<BudgetStatus> {
    read(path)
        .map(|(records, _)| {
            records
                .into_iter()
                .filter_map(|r| match r {
                    LedgerRecord::Budget(b) => Some(b),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The longest ledger line read; a longer one (no record Hoist writes comes near) is skipped
/// without being held in memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads a ledger; lines that do not parse (or are longer than [`MAX_LINE_BYTES`], or are not
/// UTF-8) are skipped and counted. A directory or a device is refused.
pub fn read(path: &Path) -> std::io::Result<(Vec<LedgerRecord>, usize)> {
    let file = File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a file",
            path.display()
        )));
    }
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut skipped = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        // At most one byte past the limit is kept; the rest of a long line is drained.
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.len() > MAX_LINE_BYTES && line.last() != Some(&b'\n') {
            skipped += 1;
            let mut rest = Vec::new();
            while !rest.ends_with(b"\n") {
                rest.clear();
                if (&mut reader)
                    .take(MAX_LINE_BYTES as u64)
                    .read_until(b'\n', &mut rest)?
                    == 0
                {
                    break;
                }
            }
            continue;
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            skipped += 1;
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(text) {
            Ok(r) => records.push(r),
            Err(_) => skipped += 1,
        }
    }
    Ok((records, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_line_a_binary_line_and_garbage_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let good = r#"{"type":"budget","budget":"b","scope":"all groups","groups":[],"period":"daily","period_start":"2026-03-02T00:00:00Z","period_end":"2026-03-03T00:00:00Z","amount":1.0,"currency":"USD","converted_from":null,"spent":0.5,"run_rate_per_hour":0.1,"pace_per_hour":0.1,"forecast":0.9,"rung":null,"target_scale":1.0,"capacity_kept":1.0,"actual_crossed":[],"forecast_crossed":[],"at":"2026-03-02T12:00:00Z"}"#;
        let mut text = Vec::new();
        text.extend_from_slice(good.as_bytes());
        text.push(b'\n');
        text.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE_BYTES));
        text.push(b'\n');
        text.extend_from_slice(&[0xff, 0xfe, b'\n']);
        text.extend_from_slice(b"not json\n\n");
        text.extend_from_slice(good.as_bytes());
        std::fs::write(&path, text).unwrap();
        let (records, skipped) = read(&path).unwrap();
        assert_eq!((records.len(), skipped), (2, 3));
        assert_eq!(budget_records(&path).len(), 2);
        assert!(read(dir.path()).is_err());
        assert!(budget_records(&dir.path().join("missing")).is_empty());
    }
}
