//! Long-running writes for providers whose cloud answers a write with an operation that takes
//! minutes (a scale set's capacity, a managed instance group's resize): [`ActivityLog::run`]
//! follows the operation for at most a given wait, then lets it finish in the background, and
//! keeps every operation as an [`Activity`] that `ScalingProvider::activities` reports.
//!
//! The engine bounds one provider call (30 s under the recommended layers), so a provider waits
//! less than that and returns; an operation that fails later is logged and shown in its
//! activity, and the next evaluation sees the group as the cloud reports it.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;

use crate::error::{Error, ErrorKind, Result};
use crate::model::Activity;

/// Activities kept per group unless told otherwise.
pub const DEFAULT_KEPT: usize = 20;

/// The operations of a provider's groups, newest last.
#[derive(Debug)]
pub struct ActivityLog {
    provider: String,
    kept: usize,
    next: AtomicU64,
    groups: Mutex<BTreeMap<String, VecDeque<Activity>>>,
}

impl ActivityLog {
    /// A log for `provider` (its name in logs and errors) keeping [`DEFAULT_KEPT`] activities
    /// per group.
    pub fn new(provider: impl Into<String>) -> Arc<Self> {
        Arc::new(ActivityLog {
            provider: provider.into(),
            kept: DEFAULT_KEPT,
            next: AtomicU64::new(1),
            groups: Mutex::new(BTreeMap::new()),
        })
    }

    /// Adds `activity` to `group`, or replaces the one with its id.
    pub fn record(&self, group: &str, activity: Activity) {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let list = groups.entry(group.to_owned()).or_default();
        if let Some(existing) = list.iter_mut().find(|a| a.id == activity.id) {
            *existing = activity;
        } else {
            list.push_back(activity);
            while list.len() > self.kept {
                list.pop_front();
            }
        }
    }

    /// The activities of `group`, oldest first.
    pub fn list(&self, group: &str) -> Vec<Activity> {
        self.groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(group)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Runs `work` (following an accepted write) as activity `operation` on `group`,
    /// described by `description`. Returns its result when it ends within `wait`: the finished
    /// activity, or its error. Otherwise returns the running activity and lets `work` finish in
    /// the background, recording how it ended (and logging a failure).
    pub async fn run<F>(
        self: &Arc<Self>,
        operation: &'static str,
        group: &str,
        wait: Duration,
        description: String,
        work: F,
    ) -> Result<Activity>
    where
        F: Future<Output = Result<()>> + Send + 'static,
    {
        let started_at = Utc::now();
        let activity = Activity {
            id: format!(
                "{operation}-{}-{}",
                started_at.timestamp_millis(),
                self.next.fetch_add(1, Ordering::Relaxed)
            ),
            description: description.clone(),
            started_at,
            progress_percent: None,
            done: false,
        };
        self.record(group, activity.clone());
        let log = Arc::clone(self);
        let group_id = group.to_owned();
        let mut finished = activity.clone();
        let handle = tokio::spawn(async move {
            let result = work.await;
            finished.done = true;
            finished.progress_percent = Some(100);
            finished.description = match &result {
                Ok(()) => format!("{description}: succeeded"),
                Err(e) => format!("{description}: failed: {e}"),
            };
            log.record(&group_id, finished.clone());
            if let Err(e) = &result {
                tracing::warn!(provider = %log.provider, group = %group_id, error = %e, "operation failed");
            }
            result.map(|()| finished)
        });
        match tokio::time::timeout(wait, handle).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(Error::new(
                ErrorKind::Other,
                format!("following the operation stopped: {join}"),
            )
            .with_provider(self.provider.clone())
            .with_operation(operation)),
            Err(_) => {
                tracing::info!(
                    provider = %self.provider,
                    group,
                    activity = %activity.id,
                    "operation still running; following it in the background"
                );
                Ok(activity)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_operation_returns_running_and_is_recorded_when_it_ends() {
        let log = ActivityLog::new("test");
        let quick = log
            .run(
                "resize",
                "web",
                Duration::from_secs(5),
                "1 -> 2".into(),
                async { Ok(()) },
            )
            .await
            .unwrap();
        assert!(quick.done && quick.description.ends_with("succeeded"));
        let failed = log
            .run(
                "resize",
                "web",
                Duration::from_secs(5),
                "2 -> 9".into(),
                async { Err(Error::new(ErrorKind::QuotaExceeded, "no")) },
            )
            .await
            .unwrap_err();
        assert_eq!(failed.kind(), ErrorKind::QuotaExceeded);
        let slow = log
            .run(
                "resize",
                "web",
                Duration::from_secs(1),
                "2 -> 3".into(),
                async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    Ok(())
                },
            )
            .await
            .unwrap();
        assert!(!slow.done);
        tokio::time::sleep(Duration::from_secs(20)).await;
        let all = log.list("web");
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(all.iter().all(|a| a.done), "{all:?}");
        assert!(all[1].description.contains("failed"));
        assert!(log.list("other").is_empty());
    }
}
