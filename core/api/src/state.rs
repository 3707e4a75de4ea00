//! Where the control loop keeps what it must not forget across a restart or a failover: each
//! group's decision memory (cooldowns, stabilisation and rate-limit windows), its forecaster's
//! history, the budgets' spend and the last decisions.
//!
//! A store holds opaque values under string keys; the engine decides what goes in them. Hoist
//! ships an embedded store for a single replica (`hoist_engine::state::RedbStore`) and one in
//! the leader-election backend for several replicas (`hoist_etcd`), so a new leader reads what
//! the old one wrote.
//!
//! Writes come in batches, one per evaluation round: a batch is applied whole or not at all.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::Result;

/// A key-value store for the control loop's state.
#[async_trait]
pub trait StateStore: Send + Sync + Debug + 'static {
    /// Every value whose key starts with `prefix`, as (key, value).
    async fn load_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;

    /// Writes every (key, value) of `batch` at once: all of them or, on an error, none.
    async fn save(&self, batch: Vec<(String, Vec<u8>)>) -> Result<()>;

    /// Where the store keeps its data, for logs and the run summary (a path, an endpoint).
    fn describe(&self) -> String;
}

/// A store in memory only: what a process without `--state` keeps, and a store for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    values: std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn values(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Vec<u8>>> {
        self.values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn load_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self
            .values()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn save(&self, batch: Vec<(String, Vec<u8>)>) -> Result<()> {
        self.values().extend(batch);
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_reads_back_by_prefix() {
        let store = MemoryStore::new();
        store
            .save(vec![
                ("group/a".into(), b"1".to_vec()),
                ("group/b".into(), b"2".to_vec()),
                ("budgets".into(), b"3".to_vec()),
            ])
            .await
            .unwrap();
        let groups = store.load_prefix("group/").await.unwrap();
        assert_eq!(
            groups,
            vec![
                ("group/a".to_owned(), b"1".to_vec()),
                ("group/b".to_owned(), b"2".to_vec())
            ]
        );
        store
            .save(vec![("group/a".into(), b"9".to_vec())])
            .await
            .unwrap();
        assert_eq!(store.load_prefix("group/a").await.unwrap()[0].1, b"9");
    }
}
