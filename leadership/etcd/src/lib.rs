//! # hoist-etcd
//!
//! Leader election on etcd for `hoist run --leader-elect --leader-backend etcd`: several
//! replicas on one policy, only the holder of an etcd key acting. [`EtcdLeadership`] implements
//! [`hoist_api::leadership::Leadership`].
//!
//! - **Campaign.** A replica that is not the leader looks at the election key
//!   `<prefix>/<name>` every retry period. When it is absent, the replica grants itself a lease
//!   with the lease duration as its TTL and creates the key with that lease in one transaction,
//!   only if the key still does not exist (`create_revision == 0`). Exactly one replica's
//!   transaction succeeds; it remembers the key's `create_revision` and its lease.
//! - **Renewal.** The leader keeps its lease alive every retry period over a keep-alive stream
//!   ([`EtcdLeadership::spawn_renewal`]). When etcd answers that the lease is gone, or the key is
//!   no longer the one this replica created, it steps down and campaigns again.
//! - **Fencing.** [`Leadership::may_act`] (asked right before every write) answers `true` only
//!   when this replica's last successful keep-alive is younger than the renew deadline *and* a
//!   linearizable etcd transaction confirms that the key still has the `create_revision`, the
//!   value (this replica's identity) and the lease this replica created it with; the deadline
//!   is checked again after the transaction returns. A lease that expired while the process was
//!   frozen (SIGSTOP, a long pause) deletes the key, and a key created again by another replica
//!   has a newer `create_revision`, so a process that wakes up stands by. What no check can cover
//!   is a pause between this answer and the provider's write itself: the clouds' APIs do not
//!   check an etcd revision.
//! - **Resign.** [`EtcdLeadership::resign`] revokes the lease at shutdown, which deletes the key,
//!   so another replica takes over within one retry period instead of one lease duration.
//!
//! Every etcd call is bounded by [`EtcdSettings::call_timeout`]; errors say which endpoints,
//! what was being done and why, and nothing here panics.

#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn,
    TxnOp, TxnOpResponse,
};
use hoist_api::leadership::Leadership;
use hoist_api::{Error, ErrorKind, Result};

/// The provider name errors carry.
pub const PROVIDER: &str = "etcd";

/// How often HTTP/2 and TCP keep-alive probes go to etcd on a connection in use.
const KEEPALIVE_PING_INTERVAL: Duration = Duration::from_secs(10);

/// The default prefix of the election key.
pub const DEFAULT_PREFIX: &str = "/hoist/leader";

/// How a replica takes part in leader election on etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// etcd's client URLs (`http://HOST:PORT`, or `HOST:PORT`).
    pub endpoints: Vec<String>,
    /// The prefix of the election key (default [`DEFAULT_PREFIX`]).
    pub prefix: String,
    /// The election's name: the key is `<prefix>/<name>`.
    pub name: String,
    /// The TTL of the leader's lease: how long the key outlives a leader that stopped renewing.
    /// etcd counts in whole seconds; this is rounded up.
    pub lease_duration: Duration,
    /// How long the leader keeps acting without a successful keep-alive.
    pub renew_deadline: Duration,
    /// How often the lease is kept alive, or the key tried for.
    pub retry_period: Duration,
    /// The longest any one etcd call may take.
    pub call_timeout: Duration,
    /// This replica's identity, written as the key's value.
    pub identity: String,
}

impl EtcdSettings {
    /// Settings with the defaults of `hoist run`: prefix [`DEFAULT_PREFIX`], a 15 s lease, a 10 s
    /// renew deadline, a 2 s retry period and 2 s per call.
    pub fn new(
        endpoints: Vec<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        EtcdSettings {
            endpoints,
            prefix: DEFAULT_PREFIX.to_owned(),
            name: name.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            call_timeout: Duration::from_secs(2),
            identity: identity.into(),
        }
    }

    /// The election key: `<prefix>/<name>`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.prefix.trim_end_matches('/'), self.name)
    }

    /// The lease's TTL in whole seconds, rounded up (at least 1).
    pub fn ttl_seconds(&self) -> i64 {
        let d = self.lease_duration;
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
    }

    /// Checks the endpoints, the key and the durations (retry period < renew deadline < lease
    /// duration; a call timeout no longer than the renew deadline).
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::invalid_input(message).with_provider(PROVIDER));
        if self.endpoints.is_empty() {
            return invalid(
                "leader election on etcd needs at least one endpoint (--etcd-endpoints http://HOST:PORT[,...])"
                    .to_owned(),
            );
        }
        for endpoint in &self.endpoints {
            let e = endpoint.trim();
            if e.is_empty() {
                return invalid("an etcd endpoint is empty".to_owned());
            }
            if e.starts_with("https://") {
                return invalid(format!(
                    "etcd endpoint {e}: TLS to etcd is not supported yet; give http:// endpoints"
                ));
            }
            if let Some((scheme, _)) = e.split_once("://")
                && scheme != "http"
            {
                return invalid(format!(
                    "etcd endpoint {e}: give http://HOST:PORT (etcd's client URL)"
                ));
            }
        }
        if self.identity.trim().is_empty() {
            return invalid("leader election on etcd needs an identity".to_owned());
        }
        if self.name.is_empty() || self.name.contains('/') {
            return invalid(format!(
                "the election's name {:?} must be non-empty and contain no `/` (the key is <prefix>/<name>)",
                self.name
            ));
        }
        if !(self.prefix.is_empty() || self.prefix.starts_with('/')) {
            return invalid(format!(
                "the etcd prefix {:?} must start with `/`",
                self.prefix
            ));
        }
        if !(self.retry_period < self.renew_deadline && self.renew_deadline < self.lease_duration) {
            return invalid(format!(
                "leader election needs retry period ({:?}) < renew deadline ({:?}) < lease duration ({:?})",
                self.retry_period, self.renew_deadline, self.lease_duration
            ));
        }
        if self.lease_duration < Duration::from_secs(1) {
            return invalid(format!(
                "the lease duration ({:?}) must be at least 1s: etcd counts leases in seconds",
                self.lease_duration
            ));
        }
        if self.call_timeout.is_zero() || self.call_timeout > self.renew_deadline {
            return invalid(format!(
                "the etcd call timeout ({:?}) must be above zero and at most the renew deadline ({:?})",
                self.call_timeout, self.renew_deadline
            ));
        }
        Ok(())
    }
}

/// What this replica holds while it is the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    /// The lease the key was created with.
    lease: i64,
    /// The key's `create_revision`: a key created again (by anyone) has a newer one.
    create_revision: i64,
    /// When the last keep-alive that etcd confirmed (or the grant) was sent.
    renewed: Instant,
}

/// State used only by one campaign or renewal at a time.
#[derive(Default)]
struct Session {
    /// The keep-alive stream of the held lease, opened at the first renewal.
    keeper: Option<(i64, LeaseKeeper, LeaseKeepAliveStream)>,
    /// The holder last seen by a campaign that lost, to log a change once.
    last_holder: Option<String>,
}

/// A replica's place in leader election on etcd. Connect with [`EtcdLeadership::connect`], keep
/// it campaigning and renewing with [`EtcdLeadership::spawn_renewal`], ask
/// [`Leadership::may_act`] before every write, and [`EtcdLeadership::resign`] at shutdown.
pub struct EtcdLeadership {
    client: Client,
    settings: EtcdSettings,
    key: String,
    /// The endpoints, for messages.
    endpoints: String,
    held: Mutex<Option<Held>>,
    session: tokio::sync::Mutex<Session>,
    resigned: AtomicBool,
}

impl fmt::Debug for EtcdLeadership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdLeadership")
            .field("endpoints", &self.endpoints)
            .field("key", &self.key)
            .field("identity", &self.settings.identity)
            .field("held", &self.held_now())
            .finish_non_exhaustive()
    }
}

impl EtcdLeadership {
    /// A replica on the etcd cluster at `settings.endpoints`. The connection is made lazily:
    /// an unreachable etcd is reported by the first campaign, and this replica stands by until
    /// it can reach it.
    pub async fn connect(settings: EtcdSettings) -> Result<Self> {
        settings.validate()?;
        let endpoints: Vec<String> = settings
            .endpoints
            .iter()
            .map(|e| e.trim().to_owned())
            .collect();
        let shown = endpoints.join(",");
        let options = ConnectOptions::new()
            .with_connect_timeout(settings.call_timeout)
            // HTTP/2 pings find a dead connection under the leader's keep-alive stream. etcd
            // refuses pings more often than every 5 s (`--grpc-keepalive-min-time`), and any
            // ping while no call is open, with "too many pings": neither is sent.
            .with_keep_alive(KEEPALIVE_PING_INTERVAL, settings.call_timeout)
            .with_keep_alive_while_idle(false)
            .with_tcp_keepalive(KEEPALIVE_PING_INTERVAL)
            // A member cut off from the cluster's leader refuses calls instead of answering
            // from its own, possibly stale, view.
            .with_require_leader(true);
        let client = match tokio::time::timeout(
            settings.call_timeout,
            Client::connect(&endpoints, Some(options)),
        )
        .await
        {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(from_etcd(e, "connect", &shown)),
            Err(_) => return Err(timeout_error("connect", &shown, settings.call_timeout)),
        };
        Ok(EtcdLeadership {
            client,
            key: settings.key(),
            settings,
            endpoints: shown,
            held: Mutex::new(None),
            session: tokio::sync::Mutex::new(Session::default()),
            resigned: AtomicBool::new(false),
        })
    }

    /// The settings this replica runs with.
    pub fn settings(&self) -> &EtcdSettings {
        &self.settings
    }

    /// The election key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease this replica holds the key with, when it believes it is the leader (a belief:
    /// [`Leadership::may_act`] is what confirms it).
    pub fn lease_id(&self) -> Option<i64> {
        self.held_now().map(|h| h.lease)
    }

    fn state(&self) -> MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn held_now(&self) -> Option<Held> {
        *self.state()
    }

    /// Whether `held`'s last renewal is younger than the renew deadline.
    fn fresh(&self, held: &Held) -> bool {
        held.renewed.elapsed() < self.settings.renew_deadline
    }

    /// Forgets `lease` when it is the one held. `true` when it was.
    fn forget(&self, lease: i64) -> bool {
        let mut state = self.state();
        if state.is_some_and(|h| h.lease == lease) {
            *state = None;
            true
        } else {
            false
        }
    }

    /// Runs one etcd call within the call timeout.
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.settings.call_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(from_etcd(e, what, &self.endpoints)),
            Err(_) => Err(timeout_error(
                what,
                &self.endpoints,
                self.settings.call_timeout,
            )),
        }
    }

    /// Campaigns when this replica is not the leader, renews the lease when it is. `Ok(true)`
    /// when it is the leader afterwards. After [`EtcdLeadership::resign`], always `Ok(false)`.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let mut session = self.session.lock().await;
        if self.resigned.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let Some(held) = self.held_now() else {
            return self.campaign(&mut session).await;
        };
        match self.renew(&mut session, held).await {
            Ok(true) => Ok(true),
            // Lost: another replica may hold the key now, or it is free to take again.
            Ok(false) => self.campaign(&mut session).await,
            Err(e) => {
                if held.renewed.elapsed() >= self.settings.lease_duration && self.forget(held.lease)
                {
                    session.keeper = None;
                    tracing::warn!(
                        identity = %self.settings.identity,
                        key = %self.key,
                        "lost the leadership: no keep-alive reached etcd within the lease duration"
                    );
                }
                Err(e)
            }
        }
    }

    /// One keep-alive of `held`'s lease, then the fencing check. `Ok(false)` when the lease or
    /// the key is gone (this replica has stepped down).
    async fn renew(&self, session: &mut Session, held: Held) -> Result<bool> {
        let sent = Instant::now();
        let alive = self.keep_alive(session, held.lease).await;
        let alive = match alive {
            Ok(alive) => alive,
            Err(e) => {
                // A stream that failed or timed out may still deliver a late answer: start a
                // new one next time, so an answer is never taken for a later keep-alive.
                session.keeper = None;
                return Err(e);
            }
        };
        if !alive {
            session.keeper = None;
            if self.forget(held.lease) {
                tracing::warn!(
                    identity = %self.settings.identity,
                    key = %self.key,
                    lease = %format_args!("{:x}", held.lease),
                    "lost the leadership: etcd says the lease has expired (was this process paused or cut off for longer than the lease duration?)"
                );
            }
            return Ok(false);
        }
        {
            let mut state = self.state();
            if let Some(h) = state.as_mut()
                && h.lease == held.lease
            {
                h.renewed = sent;
            }
        }
        if self.holds(held).await? {
            return Ok(true);
        }
        session.keeper = None;
        if self.forget(held.lease) {
            tracing::warn!(
                identity = %self.settings.identity,
                key = %self.key,
                "lost the leadership: the election key is no longer the one this replica created"
            );
        }
        // The lease may still live; it holds nothing of ours now.
        self.revoke(held.lease).await;
        Ok(false)
    }

    /// Sends one keep-alive for `lease` and waits for etcd's answer. `Ok(false)` when etcd says
    /// the lease does not exist (any more).
    async fn keep_alive(&self, session: &mut Session, lease: i64) -> Result<bool> {
        if session.keeper.as_ref().is_some_and(|(id, ..)| *id != lease) {
            session.keeper = None;
        }
        let client = &self.client;
        let answer = self
            .call("keep the lease alive", async {
                if let Some((_, keeper, stream)) = session.keeper.as_mut() {
                    keeper.keep_alive().await?;
                    return match stream.message().await? {
                        Some(response) => Ok(response.ttl() > 0),
                        None => Err(etcd_client::Error::LeaseKeepAliveError(
                            "etcd closed the keep-alive stream".to_owned(),
                        )),
                    };
                }
                // Opening the stream sends the first keep-alive and reads its answer.
                match client.lease_client().keep_alive(lease).await {
                    Ok((keeper, stream)) => {
                        session.keeper = Some((lease, keeper, stream));
                        Ok(true)
                    }
                    Err(etcd_client::Error::LeaseKeepAliveError(m)) if m == "lease not found" => {
                        Ok(false)
                    }
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(answer)
    }

    /// The fencing check: whether the election key still has the `create_revision`, the value
    /// and the lease this replica created it with. A linearizable read in one transaction.
    async fn holds(&self, held: Held) -> Result<bool> {
        let txn = Txn::new().when([
            Compare::create_revision(self.key.as_str(), CompareOp::Equal, held.create_revision),
            Compare::value(
                self.key.as_str(),
                CompareOp::Equal,
                self.settings.identity.as_str(),
            ),
            Compare::lease(self.key.as_str(), CompareOp::Equal, held.lease),
        ]);
        let mut kv = self.client.kv_client();
        let response = self
            .call("check the election key (fencing)", kv.txn(txn))
            .await?;
        Ok(response.succeeded())
    }

    /// Tries to become the leader: creates the key with a new lease when it is absent.
    async fn campaign(&self, session: &mut Session) -> Result<bool> {
        session.keeper = None;
        let mut kv = self.client.kv_client();
        // A look first: while another replica holds the key, a lease granted every retry
        // period would only be revoked again.
        let current = self
            .call("read the election key", kv.get(self.key.as_str(), None))
            .await?;
        if let Some(existing) = current.kvs().first() {
            self.note_holder(session, existing.value());
            return Ok(false);
        }

        let ttl = self.settings.ttl_seconds();
        let sent = Instant::now();
        let mut leases = self.client.lease_client();
        let grant = self.call("grant a lease", leases.grant(ttl, None)).await?;
        let lease = grant.id();
        if grant.ttl() != ttl {
            tracing::info!(
                asked = ttl,
                granted = grant.ttl(),
                "etcd granted a lease TTL other than the lease duration"
            );
        }
        let key = self.key.as_str();
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([
                TxnOp::put(
                    key,
                    self.settings.identity.as_str(),
                    Some(PutOptions::new().with_lease(lease)),
                ),
                TxnOp::get(key, None),
            ])
            .or_else([TxnOp::get(key, None)]);
        let response = match self.call("create the election key", kv.txn(txn)).await {
            Ok(response) => response,
            Err(e) => {
                // Whether the key was created is unknown: revoking the lease deletes it if it was.
                self.revoke(lease).await;
                return Err(e);
            }
        };
        let created = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get
                .kvs()
                .first()
                .map(|kv| (kv.create_revision(), kv.value().to_vec())),
            _ => None,
        });
        if !response.succeeded() {
            self.revoke(lease).await;
            if let Some((_, holder)) = created {
                self.note_holder(session, &holder);
            }
            return Ok(false);
        }
        let Some((create_revision, _)) = created else {
            self.revoke(lease).await;
            return Err(Error::new(
                ErrorKind::Other,
                format!(
                    "etcd at {}: created the election key {} but did not return it",
                    self.endpoints, self.key
                ),
            )
            .with_provider(PROVIDER));
        };
        *self.state() = Some(Held {
            lease,
            create_revision,
            renewed: sent,
        });
        session.last_holder = None;
        tracing::info!(
            identity = %self.settings.identity,
            key = %self.key,
            lease = %format_args!("{lease:x}"),
            revision = create_revision,
            "became the leader"
        );
        Ok(true)
    }

    fn note_holder(&self, session: &mut Session, value: &[u8]) {
        let holder = String::from_utf8_lossy(value).into_owned();
        if session.last_holder.as_deref() != Some(holder.as_str()) {
            tracing::info!(
                identity = %self.settings.identity,
                key = %self.key,
                leader = %holder,
                "standing by: another replica holds the leadership"
            );
            session.last_holder = Some(holder);
        }
    }

    /// Revokes `lease`, best effort (it expires by itself otherwise).
    async fn revoke(&self, lease: i64) {
        let mut leases = self.client.lease_client();
        match self.call("revoke the lease", leases.revoke(lease)).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                error = %e,
                lease = %format_args!("{lease:x}"),
                "could not revoke a lease; it expires by itself"
            ),
        }
    }

    /// Campaigns and renews every retry period, until the returned task is aborted.
    pub fn spawn_renewal(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.try_acquire_or_renew().await {
                    tracing::warn!(error = %e, "leader election on etcd: cannot campaign or renew");
                }
                tokio::time::sleep(this.settings.retry_period).await;
            }
        })
    }

    /// Gives the leadership up for good (at shutdown): revokes the lease, which deletes the key,
    /// so another replica takes over at its next campaign. This replica campaigns no more.
    /// Abort the task of [`EtcdLeadership::spawn_renewal`] first.
    pub async fn resign(&self) {
        self.resigned.store(true, Ordering::SeqCst);
        let mut session = self.session.lock().await;
        session.keeper = None;
        let held = self.state().take();
        if let Some(held) = held {
            let mut leases = self.client.lease_client();
            match self
                .call("revoke the lease", leases.revoke(held.lease))
                .await
            {
                Ok(_) => tracing::info!(
                    identity = %self.settings.identity,
                    key = %self.key,
                    "resigned the leadership"
                ),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not resign the leadership; another replica takes over when the lease expires"
                ),
            }
        }
    }
}

#[async_trait]
impl Leadership for EtcdLeadership {
    async fn may_act(&self) -> bool {
        let Some(held) = self.held_now() else {
            return false;
        };
        if !self.fresh(&held) {
            tracing::warn!(
                identity = %self.settings.identity,
                since = ?held.renewed.elapsed(),
                deadline = ?self.settings.renew_deadline,
                "leader election on etcd: the last keep-alive is older than the renew deadline; standing by"
            );
            return false;
        }
        match self.holds(held).await {
            Ok(true) => {}
            Ok(false) => {
                if self.forget(held.lease) {
                    tracing::warn!(
                        identity = %self.settings.identity,
                        key = %self.key,
                        "fencing: the election key is no longer the one this replica created; standing by"
                    );
                }
                return false;
            }
            Err(e) => {
                tracing::warn!(error = %e, "leader election on etcd: cannot confirm the leadership; standing by");
                return false;
            }
        }
        // A process paused while the check was in flight must not act on its answer.
        self.held_now()
            .is_some_and(|now| now.lease == held.lease && self.fresh(&now))
    }

    fn identity(&self) -> &str {
        &self.settings.identity
    }
}

fn timeout_error(what: &str, endpoints: &str, after: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("etcd at {endpoints}: cannot {what}: no answer within {after:?}"),
    )
    .with_provider(PROVIDER)
}

/// gRPC status codes (stable across gRPC implementations).
mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// An etcd client error as Hoist's error, saying where and what.
fn from_etcd(e: etcd_client::Error, what: &str, endpoints: &str) -> Error {
    use etcd_client::Error as E;
    let (kind, detail) = match &e {
        E::GRpcStatus(status) => {
            let kind = match i32::from(status.code()) {
                code::INVALID_ARGUMENT | code::FAILED_PRECONDITION | code::OUT_OF_RANGE => {
                    ErrorKind::InvalidInput
                }
                code::NOT_FOUND => ErrorKind::NotFound,
                code::DEADLINE_EXCEEDED => ErrorKind::Timeout,
                code::PERMISSION_DENIED | code::UNAUTHENTICATED => ErrorKind::PermissionDenied,
                code::RESOURCE_EXHAUSTED => ErrorKind::Throttled,
                _ => ErrorKind::Transient,
            };
            (kind, format!("{:?}: {}", status.code(), status.message()))
        }
        E::InvalidArgs(_) | E::InvalidUri(_) | E::EndpointError(_) => {
            (ErrorKind::Config, e.to_string())
        }
        _ => (ErrorKind::Transient, e.to_string()),
    };
    Error::new(
        kind,
        format!("etcd at {endpoints}: cannot {what}: {detail}"),
    )
    .with_provider(PROVIDER)
    .with_source(e)
}

/// The most operations one state transaction carries (etcd refuses more than 128 by default).
const STATE_OPS_PER_TXN: usize = 100;
/// The most value bytes one state transaction carries (etcd refuses requests over 1.5 MiB by
/// default).
const STATE_BYTES_PER_TXN: usize = 1 << 20;

impl EtcdLeadership {
    /// Where the control loop's state lives: under the election key, `<key>/state/`.
    pub fn state_prefix(&self) -> String {
        format!("{}/state/", self.key)
    }
}

/// The control loop's state on etcd, next to the election key, so a new leader reads what the
/// old one wrote. Every write is fenced like [`Leadership::may_act`]: it is a transaction that
/// succeeds only while this replica's election key is the one it created, so a paused old
/// leader cannot overwrite what the new one wrote. A batch larger than one transaction allows
/// (100 keys or 1 MiB) is written in several, each fenced; a failure leaves the earlier ones
/// written (each group's record is whole either way).
#[async_trait]
impl hoist_api::state::StateStore for EtcdLeadership {
    async fn load_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let base = self.state_prefix();
        let mut kv = self.client.kv_client();
        let response = self
            .call(
                "read the state",
                kv.get(
                    format!("{base}{prefix}"),
                    Some(etcd_client::GetOptions::new().with_prefix()),
                ),
            )
            .await?;
        let mut out: Vec<(String, Vec<u8>)> = response
            .kvs()
            .iter()
            .filter_map(|kv| {
                let key = std::str::from_utf8(kv.key()).ok()?;
                Some((key.strip_prefix(&base)?.to_owned(), kv.value().to_vec()))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn save(&self, batch: Vec<(String, Vec<u8>)>) -> Result<()> {
        let Some(held) = self.held_now() else {
            return Err(Error::new(
                ErrorKind::Conflict,
                "not the leader: the state is written by the leader only",
            )
            .with_provider(PROVIDER));
        };
        let base = self.state_prefix();
        let mut chunks: Vec<Vec<(String, Vec<u8>)>> = Vec::new();
        let mut bytes = 0;
        for (key, value) in batch {
            let start_new = chunks.last().is_none_or(|c| {
                c.len() >= STATE_OPS_PER_TXN || bytes + value.len() > STATE_BYTES_PER_TXN
            });
            if start_new {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += value.len();
            if let Some(chunk) = chunks.last_mut() {
                chunk.push((key, value));
            }
        }
        let mut kv = self.client.kv_client();
        for chunk in chunks {
            let txn = Txn::new()
                .when([
                    Compare::create_revision(
                        self.key.as_str(),
                        CompareOp::Equal,
                        held.create_revision,
                    ),
                    Compare::value(
                        self.key.as_str(),
                        CompareOp::Equal,
                        self.settings.identity.as_str(),
                    ),
                ])
                .and_then(
                    chunk
                        .into_iter()
                        .map(|(key, value)| TxnOp::put(format!("{base}{key}"), value, None))
                        .collect::<Vec<_>>(),
                );
            let response = self.call("write the state (fenced)", kv.txn(txn)).await?;
            if !response.succeeded() {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "fencing: the election key is no longer the one this replica created; the state was not written",
                )
                .with_provider(PROVIDER));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("etcd {} {}", self.endpoints, self.state_prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EtcdSettings {
        EtcdSettings::new(vec!["http://127.0.0.1:2379".into()], "hoist", "a")
    }

    #[test]
    fn the_key_is_prefix_slash_name() {
        let mut s = settings();
        assert_eq!(s.key(), "/hoist/leader/hoist");
        s.prefix = "/x/".into();
        assert_eq!(s.key(), "/x/hoist");
        s.prefix = String::new();
        assert_eq!(s.key(), "/hoist");
    }

    #[test]
    fn the_ttl_is_rounded_up_to_whole_seconds() {
        let mut s = settings();
        assert_eq!(s.ttl_seconds(), 15);
        s.lease_duration = Duration::from_millis(4500);
        assert_eq!(s.ttl_seconds(), 5);
    }

    #[test]
    fn settings_are_checked() {
        assert!(settings().validate().is_ok());
        let bad = |change: fn(&mut EtcdSettings), says: &str| {
            let mut s = settings();
            change(&mut s);
            let e = s.validate().expect_err(says);
            assert!(e.to_string().contains(says), "{e}");
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
        };
        bad(|s| s.endpoints.clear(), "at least one endpoint");
        bad(
            |s| s.endpoints = vec!["https://10.0.0.1:2379".into()],
            "TLS to etcd is not supported yet",
        );
        bad(
            |s| s.endpoints = vec!["unix://sock".into()],
            "give http://HOST:PORT",
        );
        bad(|s| s.identity = " ".into(), "needs an identity");
        bad(|s| s.name = "a/b".into(), "contain no `/`");
        bad(|s| s.prefix = "hoist".into(), "must start with `/`");
        bad(
            |s| s.renew_deadline = Duration::from_secs(20),
            "retry period (2s) < renew deadline (20s) < lease duration (15s)",
        );
        bad(
            |s| s.call_timeout = Duration::from_secs(11),
            "at most the renew deadline",
        );
        bad(
            |s| {
                s.retry_period = Duration::from_millis(100);
                s.renew_deadline = Duration::from_millis(500);
                s.lease_duration = Duration::from_millis(900);
                s.call_timeout = Duration::from_millis(100);
            },
            "at least 1s",
        );
    }

    #[tokio::test]
    async fn an_unreachable_etcd_is_a_clear_error_and_never_leads() {
        // A port nobody listens on: bind one, then close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let mut s = settings();
        s.endpoints = vec![format!("http://127.0.0.1:{port}")];
        s.call_timeout = Duration::from_millis(500);
        let leadership = EtcdLeadership::connect(s).await.expect("connects lazily");
        let e = leadership
            .try_acquire_or_renew()
            .await
            .expect_err("nothing answers");
        assert!(
            e.to_string().contains(&format!(
                "etcd at http://127.0.0.1:{port}: cannot read the election key"
            )),
            "{e}"
        );
        assert!(e.is_retryable(), "{e}");
        assert!(!leadership.may_act().await);
        assert_eq!(leadership.identity(), "a");
        leadership.resign().await;
    }
}
