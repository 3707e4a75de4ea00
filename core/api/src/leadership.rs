//! Leadership: whether this process may act, when several replicas of Hoist run for high
//! availability and only one of them (the leader) may change capacity.
//!
//! The control loop asks [`Leadership::may_act`] before every write; an implementation confirms
//! with its store (a Kubernetes Lease, an etcd lease) that it still holds the leadership and
//! renews it, and answers `false` when it does not, or cannot tell. A replica that is not the
//! leader still observes and decides, and records its decisions as `standby`, so its audit log
//! shows what it would have done; it changes nothing.

use std::fmt::Debug;

use async_trait::async_trait;

/// Whether this process may change capacity now.
#[async_trait]
pub trait Leadership: Send + Sync + Debug + 'static {
    /// Confirms (and renews) the leadership right before a write. `false` when this process
    /// is not the leader, or cannot confirm that it is: acting on a stale belief could make
    /// two replicas act at once, so doubt means standing by.
    async fn may_act(&self) -> bool;

    /// Who this process is, for logs and the audit trail.
    fn identity(&self) -> &str;
}

/// Always the leader: a single replica.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alone;

#[async_trait]
impl Leadership for Alone {
    async fn may_act(&self) -> bool {
        true
    }

    fn identity(&self) -> &str {
        "alone"
    }
}
