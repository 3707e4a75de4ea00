//! Leader election with a `coordination.k8s.io` Lease, as Kubernetes' own controllers do it:
//! the holder writes its identity and renews `renewTime`; a Lease not renewed for
//! `leaseDurationSeconds` may be taken by another replica. Every write of the Lease is a replace
//! at the version read, so two replicas cannot both take it.
//!
//! [`LeaseLock::may_act`] (the engine asks it right before every write) reads the Lease, renews
//! it when this process holds it, and says `false` when another replica does, when the Lease
//! could not be read or written, or when this process's last renewal is older than the renew
//! deadline. [`LeaseLock::spawn_renewal`] keeps the Lease fresh between writes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hoist_api::leadership::Leadership;
use hoist_api::{Error, Result};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, PostParams};

use crate::errors::{PROVIDER, from_kube};

/// How a replica takes part in leader election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// The Lease's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// How long a Lease holds without renewal before another replica may take it.
    pub lease_duration: Duration,
    /// How long the holder keeps acting without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the Lease is renewed, or tried for.
    pub retry_period: Duration,
    /// This replica's identity.
    pub identity: String,
}

impl LeaseSettings {
    /// Checks the durations: retry < renew deadline < lease duration.
    pub fn validate(&self) -> Result<()> {
        if !(self.retry_period < self.renew_deadline && self.renew_deadline < self.lease_duration) {
            return Err(Error::invalid_input(format!(
                "leader election needs retry period ({:?}) < renew deadline ({:?}) < lease duration ({:?})",
                self.retry_period, self.renew_deadline, self.lease_duration
            ))
            .with_provider(PROVIDER));
        }
        if self.identity.is_empty() || self.name.is_empty() || self.namespace.is_empty() {
            return Err(Error::invalid_input(
                "leader election needs a lease name, a namespace and an identity",
            )
            .with_provider(PROVIDER));
        }
        Ok(())
    }
}

/// A replica's hold on a Lease.
#[derive(Debug)]
pub struct LeaseLock {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// When this replica last renewed the Lease successfully.
    renewed: Mutex<Option<Instant>>,
}

impl LeaseLock {
    /// A lock on the Lease `settings.name` in `settings.namespace`.
    pub fn new(client: Client, settings: LeaseSettings) -> Result<Self> {
        settings.validate()?;
        Ok(LeaseLock {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            renewed: Mutex::new(None),
        })
    }

    /// Takes the Lease if it is free or expired, renews it if this replica holds it. `true`
    /// when this replica holds it afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let what = format!("lease {}/{}", self.settings.namespace, self.settings.name);
        let now = chrono::Utc::now();
        let stamp = |t: chrono::DateTime<chrono::Utc>| {
            MicroTime(
                k8s_openapi::jiff::Timestamp::from_microsecond(t.timestamp_micros())
                    .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            )
        };
        let duration_s =
            i32::try_from(self.settings.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let existing = match self.api.get_opt(&self.settings.name).await {
            Ok(lease) => lease,
            Err(e) => return Err(from_kube(e, "read", &what)),
        };
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: kube::core::ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.settings.identity.clone()),
                    lease_duration_seconds: Some(duration_s),
                    acquire_time: Some(stamp(now)),
                    renew_time: Some(stamp(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.mark_renewed();
                    Ok(true)
                }
                // Another replica created it first.
                Err(e) if crate::errors::status_code(&e) == Some(409) => Ok(false),
                Err(e) => Err(from_kube(e, "create", &what)),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.settings.identity;
        if !ours && !holder.is_empty() {
            let renewed_at = spec
                .renew_time
                .as_ref()
                .map(|t| t.0.as_microsecond())
                .unwrap_or(0);
            let held_for = i64::from(spec.lease_duration_seconds.unwrap_or(duration_s)) * 1_000_000;
            if now.timestamp_micros() < renewed_at.saturating_add(held_for) {
                self.renewed.lock().expect("lease state").take();
                return Ok(false);
            }
        }
        if !ours {
            spec.holder_identity = Some(self.settings.identity.clone());
            spec.acquire_time = Some(stamp(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(stamp(now));
        spec.lease_duration_seconds = Some(duration_s);
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                if !ours {
                    tracing::info!(identity = %self.settings.identity, lease = %what, previous = %holder, "became the leader");
                }
                self.mark_renewed();
                Ok(true)
            }
            // Someone else wrote it since the read: they renewed or took it.
            Err(e) if crate::errors::status_code(&e) == Some(409) => {
                self.renewed.lock().expect("lease state").take();
                Ok(false)
            }
            Err(e) => Err(from_kube(e, "renew", &what)),
        }
    }

    fn mark_renewed(&self) {
        *self.renewed.lock().expect("lease state") = Some(Instant::now());
    }

    /// Renews (or tries for) the Lease every retry period, until the returned task is aborted.
    pub fn spawn_renewal(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let lock = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if let Err(e) = lock.try_acquire_or_renew().await {
                    tracing::warn!(error = %e, "leader election: cannot read or renew the lease");
                }
                tokio::time::sleep(lock.settings.retry_period).await;
            }
        })
    }

    /// Hands the Lease over at shutdown, when this replica holds it, so another can take it
    /// at once rather than after the lease duration.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.settings.identity.as_str())
        {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            let _ = self
                .api
                .replace(&self.settings.name, &PostParams::default(), &lease)
                .await;
        }
        self.renewed.lock().expect("lease state").take();
    }
}

#[async_trait]
impl Leadership for LeaseLock {
    async fn may_act(&self) -> bool {
        match self.try_acquire_or_renew().await {
            Ok(true) => self
                .renewed
                .lock()
                .expect("lease state")
                .is_some_and(|t| t.elapsed() < self.settings.renew_deadline),
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, "leader election: cannot confirm the leadership; standing by");
                false
            }
        }
    }

    fn identity(&self) -> &str {
        &self.settings.identity
    }
}
