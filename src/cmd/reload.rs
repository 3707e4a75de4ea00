//! Live reload for `hoist run`: a task watches the policy file; a change that validates is
//! handed to the run (which applies it between two rounds, see
//! [`hoist_core::control::ControlLoop::run_until_reload`]); a change that does not is refused
//! at once, with file, line and field, in the audit log, on standard error and as an alert,
//! and the running configuration stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_core::audit::{AuditLog, AuditRecord, fingerprint};
use hoist_core::config::PolicyDocument;
use hoist_core::control::ReloadSignal;
use hoist_core::events::{Event, EventSink};

use super::{CliError, policy};

/// A validated change waiting for the run to apply it.
#[derive(Debug)]
pub struct Pending {
    /// The new file, parsed and validated.
    pub document: PolicyDocument,
    /// Its fingerprint.
    pub fingerprint: String,
}

/// The newest validated change, taken by the run when it reloads.
pub type PendingSlot = Arc<Mutex<Option<Pending>>>;

/// What the watcher needs.
#[derive(Debug)]
pub struct Watcher {
    /// The policy file.
    pub file: PathBuf,
    /// How often it is checked.
    pub every: Duration,
    /// The fingerprint of the configuration running now.
    pub running: String,
    /// Where refusals are recorded.
    pub audit: Arc<AuditLog>,
    /// Where refusals are reported (metrics, alerts).
    pub events: Arc<dyn EventSink>,
    /// Rung when a change validates.
    pub signal: ReloadSignal,
    /// Where a validated change waits.
    pub pending: PendingSlot,
    /// The clock of the run, for the audit records' times.
    pub clock: Arc<dyn hoist_core::Clock>,
}

/// Reads the policy's bytes (a directory's: each policy file's name and bytes) as the policy
/// loader bounds them; `None` when they cannot be read now (a file being replaced, say): the
/// next check sees them.
fn read(file: &Path) -> Option<Vec<u8>> {
    policy::source_bytes(file)
}

impl Watcher {
    /// Checks the file every `every` until the task is aborted.
    pub async fn watch(self) {
        let registry = policy::registry();
        let mut seen = self.running.clone();
        let mut ticker = tokio::time::interval(self.every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(bytes) = read(&self.file) else {
                continue;
            };
            let print = fingerprint(&bytes);
            if print == seen {
                continue;
            }
            seen.clone_from(&print);
            let file = self.file.clone();
            let loaded = {
                let registry = &registry;
                tokio::task::block_in_place(|| policy::load(&file, registry))
            };
            match loaded {
                Ok(document) => {
                    *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(Pending {
                        document,
                        fingerprint: print,
                    });
                    self.signal.request();
                }
                Err(error) => {
                    let errors = match error {
                        CliError::Input(m) | CliError::Runtime(m) => m,
                    };
                    self.reject(&print, &errors);
                }
            }
        }
    }

    /// Records and reports a refused change.
    pub fn reject(&self, print: &str, errors: &str) {
        reject(
            &self.audit,
            self.events.as_ref(),
            self.clock.now(),
            (&self.file, print, &self.running),
            errors,
        );
    }
}

/// Records and reports a refused change of `file` (fingerprint `print`, while `running` keeps
/// running).
pub fn reject(
    audit: &AuditLog,
    events: &dyn EventSink,
    at: chrono::DateTime<chrono::Utc>,
    (file, print, running): (&Path, &str, &str),
    errors: &str,
) {
    let name = file.display().to_string();
    eprintln!(
        "hoist: {name} changed but is refused; the running configuration ({running}) stays:\n{errors}"
    );
    if let Err(e) = audit.append(&AuditRecord::ConfigRejected {
        at,
        file: &name,
        fingerprint: print.to_owned(),
        running,
        errors,
    }) {
        tracing::error!(error = %e, "audit log write failed");
    }
    events.emit(&Event::ConfigRejected {
        file: name,
        fingerprint: print.to_owned(),
        errors: errors.to_owned(),
    });
}

/// The git commit of the work tree `file` is in and whether the file differs from it; `None`
/// outside a work tree (or without git).
pub fn git_commit(file: &Path) -> Option<(String, bool)> {
    let (dir, name) = if file.is_dir() {
        (file, ".".to_owned())
    } else {
        (
            file.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
            file.file_name()?.to_string_lossy().into_owned(),
        )
    };
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty())?;
    let status = run(&["status", "--porcelain", "--", &name]).unwrap_or_default();
    Some((commit, !status.is_empty()))
}
