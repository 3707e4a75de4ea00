//! Leader election on etcd (`hoist-etcd`) against a real etcd (Debian's `etcd-server`, started
//! by `scripts/servers/etcd.sh`).
//!
//! First the library: two replicas on one election, exactly one may act; a resignation hands
//! over; a leader whose lease was revoked behind its back (what an expiry does) is fenced off,
//! even when the replica that took over has the same identity. Then `hoist run --leader-elect
//! --leader-backend etcd` as processes: three replicas on one policy, driving a managed instance
//! group on the Google Cloud fake (`scripts/servers/gcp_fake.py`, whose state all replicas
//! share); the leader is killed with SIGKILL, then the next one is frozen with SIGSTOP past its
//! lease and resumed; the audit logs, read together, show every change made exactly once and the
//! resumed replica standing by.
//!
//! Each test uses an election key of its own.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hoist_core::leadership::Leadership;
use hoist_etcd::{EtcdLeadership, EtcdSettings};
use hoist_integration_tests::{fake_control, hoist_binary, server_url};
use serde_json::{Value, json};

fn etcd() -> String {
    server_url("HOIST_TEST_ETCD_URL")
}

/// A name of this test's own.
fn unique(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("{what}-{:x}-{n}", std::process::id())
}

/// A 3 s lease, a 2 s renew deadline, a 0.5 s retry period.
fn settings(prefix: &str, identity: &str) -> EtcdSettings {
    EtcdSettings {
        endpoints: vec![etcd()],
        prefix: prefix.to_owned(),
        name: "hoist".into(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
        call_timeout: Duration::from_secs(1),
        identity: identity.into(),
    }
}

async fn replica(prefix: &str, identity: &str) -> Arc<EtcdLeadership> {
    Arc::new(
        EtcdLeadership::connect(settings(prefix, identity))
            .await
            .expect("connect to etcd"),
    )
}

/// A plain etcd client, to look at the key and act behind the replicas' backs.
async fn raw() -> etcd_client::Client {
    etcd_client::Client::connect([etcd()], None)
        .await
        .expect("connect to etcd")
}

/// The election key's value, lease and create revision, when it exists.
async fn election_key(key: &str) -> Option<(String, i64, i64)> {
    let response = raw().await.get(key, None).await.expect("read the key");
    response.kvs().first().map(|kv| {
        (
            String::from_utf8_lossy(kv.value()).into_owned(),
            kv.lease(),
            kv.create_revision(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_two_replicas_may_act_and_renewal_keeps_it_so() {
    let prefix = format!("/hoist-test/{}", unique("one"));
    let (a, b) = (replica(&prefix, "a").await, replica(&prefix, "b").await);
    assert!(!a.may_act().await, "nobody leads before a campaign");

    let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra ^ rb, "exactly one campaign wins: a {ra}, b {rb}");
    let (leader, standby) = if ra { (&a, &b) } else { (&b, &a) };
    for _ in 0..3 {
        let (acts, stands) = tokio::join!(leader.may_act(), standby.may_act());
        assert!(acts && !stands, "leader {acts}, standby {stands}");
        assert!(leader.try_acquire_or_renew().await.unwrap());
        assert!(!standby.try_acquire_or_renew().await.unwrap());
    }
    let (value, lease, _) = election_key(leader.key()).await.expect("the key exists");
    assert_eq!(value, leader.identity());
    assert_eq!(Some(lease), leader.lease_id());
    assert_eq!(leader.key(), format!("{prefix}/hoist"));

    // Kept alive in the background, the leadership outlives its lease duration.
    let renewal = leader.spawn_renewal();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(leader.may_act().await);
    assert!(!standby.try_acquire_or_renew().await.unwrap());
    assert!(!standby.may_act().await);
    renewal.abort();
    leader.resign().await;
    standby.resign().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leader_resigns_the_other_takes_over() {
    let prefix = format!("/hoist-test/{}", unique("resign"));
    let a = replica(&prefix, "a").await;
    assert!(a.try_acquire_or_renew().await.unwrap());
    let b = replica(&prefix, "b").await;
    assert!(!b.try_acquire_or_renew().await.unwrap());
    assert!(a.may_act().await && !b.may_act().await);

    a.resign().await;
    assert_eq!(
        election_key(a.key()).await,
        None,
        "revoking the lease deletes the key"
    );
    assert!(!a.may_act().await);
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "b takes over at once"
    );
    assert!(b.may_act().await);
    // A replica that resigned campaigns no more.
    assert!(!a.try_acquire_or_renew().await.unwrap());
    assert!(!a.may_act().await);
    assert_eq!(election_key(b.key()).await.unwrap().0, "b");
    b.resign().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_expired_behind_its_back_is_fenced_off() {
    // Both replicas carry the same identity, as two processes given one --identity would: the
    // key's value alone cannot tell them apart, its create revision and lease can.
    let prefix = format!("/hoist-test/{}", unique("fence"));
    let a = replica(&prefix, "same").await;
    let b = replica(&prefix, "same").await;
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(a.may_act().await);
    let (_, lease, created) = election_key(a.key()).await.unwrap();

    // What an expiry does while `a` is frozen: the lease goes, and the key with it.
    raw().await.lease_revoke(lease).await.expect("revoke");
    assert_eq!(election_key(a.key()).await, None);
    // `b` takes over before `a` wakes; `a`'s last keep-alive is younger than its deadline.
    assert!(b.try_acquire_or_renew().await.unwrap());
    let (value, new_lease, recreated) = election_key(b.key()).await.unwrap();
    assert_eq!(value, "same");
    assert!(recreated > created && new_lease != lease);
    assert!(
        !a.may_act().await,
        "fenced: the key is not the one a created"
    );
    assert!(b.may_act().await);
    // `a` learns it lost and stands by.
    assert!(!a.try_acquire_or_renew().await.unwrap());
    assert_eq!(a.lease_id(), None);
    assert!(!a.may_act().await);

    // A revoked lease with nobody taking over: the key is simply gone.
    let (_, lease, _) = election_key(b.key()).await.unwrap();
    raw().await.lease_revoke(lease).await.expect("revoke");
    assert!(!b.may_act().await, "fenced: the key is gone");
    a.resign().await;
    b.resign().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_did_not_renew_within_the_deadline_stands_by() {
    let prefix = format!("/hoist-test/{}", unique("deadline"));
    let a = replica(&prefix, "a").await;
    assert!(a.try_acquire_or_renew().await.unwrap());
    // Past the 2 s renew deadline, within the 3 s lease: the key is still a's, yet a stands by.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        election_key(a.key()).await.unwrap().1,
        a.lease_id().unwrap()
    );
    assert!(!a.may_act().await);
    // A keep-alive in time restores it.
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(a.may_act().await);
    a.resign().await;
}

// ---- `hoist run --leader-elect --leader-backend etcd`, as processes ----

fn gcp() -> String {
    server_url("HOIST_TEST_GCP_URL")
}

/// A project on the Google Cloud fake with one zonal group `web` of `size` instances (bounds
/// 1..10 from its template's labels); operations finish at once.
async fn seed(project: &str, size: u64) {
    let state = json!({
        "operation_seconds": 0,
        "zones": {"us-central1-a": {"region": "us-central1"}},
        "machine_types": [{"name": "n2-standard-2", "guestCpus": 2, "memoryMb": 8192}],
        "quota": {"us-central1": {"CPUS": 100}},
        "templates": [{"name": "web-v1", "machineType": "n2-standard-2",
            "labels": {"hoist": "enabled", "hoist-min-size": "1", "hoist-max-size": "10"}}],
        "groups": [{"name": "web", "zone": "us-central1-a", "template": "web-v1",
            "target_size": size, "autoscaler": false}]
    });
    fake_control(
        &gcp(),
        reqwest::Method::PUT,
        &format!("/_fake/projects/{project}"),
        Some(state),
    )
    .await;
}

async fn target_size(project: &str) -> u64 {
    let state = fake_control(
        &gcp(),
        reqwest::Method::GET,
        &format!("/_fake/projects/{project}"),
        None,
    )
    .await;
    state["groups"][0]["target_size"]
        .as_u64()
        .unwrap_or_else(|| panic!("no target size in {state}"))
}

/// Someone else resizes the group (drift the leader must put right).
async fn resize(project: &str, size: u64) {
    let url = format!(
        "{}/compute/v1/projects/{project}/zones/us-central1-a/instanceGroupManagers/web/resize?size={size}",
        gcp()
    );
    let mut last = String::new();
    for _ in 0..40 {
        let response = reqwest::Client::new()
            .post(&url)
            .send()
            .await
            .expect("the fake answers");
        if response.status().is_success() {
            if target_size(project).await == size {
                return;
            }
        } else {
            // An operation of the leader's may still be running.
            last = format!(
                "{}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not resize the group to {size}: {last}");
}

/// Waits until the group's target size is `want`; how long that took.
async fn wait_for(project: &str, want: u64, within: Duration, replicas: &Replicas) -> Duration {
    let start = Instant::now();
    loop {
        let now = target_size(project).await;
        if now == want {
            return start.elapsed();
        }
        if start.elapsed() > within {
            panic!(
                "the target size did not become {want} within {within:?} (now {now})\n{}",
                replicas.report()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `hoist run` replicas of a test: SIGCONT and SIGKILL for each at the end, whatever
/// happens.
struct Replicas {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Replicas {
    fn start(&mut self, identity: &str, prefix: &str) {
        let out = std::fs::File::create(self.dir.join(format!("{identity}.out"))).unwrap();
        let err = std::fs::File::create(self.dir.join(format!("{identity}.err"))).unwrap();
        let child = Command::new(hoist_binary())
            .current_dir(&self.dir)
            .args([
                "run",
                "policy.yaml",
                "--no-metrics",
                "--log-level",
                "warn,hoist_etcd=info",
                "--leader-elect",
                "--leader-backend",
                "etcd",
                "--etcd-endpoints",
                &etcd(),
                "--etcd-prefix",
                prefix,
                "--lease-duration",
                "4s",
                "--renew-deadline",
                "3s",
                "--retry-period",
                "1s",
                "--identity",
                identity,
                "--audit-log",
                &format!("{identity}.jsonl"),
            ])
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start hoist run");
        self.children.push((identity.to_owned(), child));
    }

    fn pid(&self, identity: &str) -> u32 {
        self.children
            .iter()
            .find(|(name, _)| name == identity)
            .map(|(_, child)| child.id())
            .unwrap_or_else(|| panic!("no replica {identity}"))
    }

    fn signal(&self, identity: &str, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid(identity).to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {identity}");
    }

    fn kill(&mut self, identity: &str) {
        self.signal(identity, "KILL");
        if let Some((_, child)) = self.children.iter_mut().find(|(n, _)| n == identity) {
            let _ = child.wait();
        }
    }

    /// Stops every replica still running with SIGTERM (they resign) and waits for them.
    fn stop_all(&mut self) {
        for (_, child) in &mut self.children {
            if child.try_wait().ok().flatten().is_none() {
                let _ = Command::new("kill")
                    .args(["-CONT", &child.id().to_string()])
                    .stderr(Stdio::null())
                    .status();
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        for (_, child) in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self, identity: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join(format!("{identity}.jsonl")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until an audit log records the drift from `current` put right (the record follows
    /// the write); whose log it is.
    async fn fixed_by(&self, current: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for (name, _) in &self.children {
                if decisions(&self.log(name), "applied")
                    .iter()
                    .any(|d| d.1 == current)
                {
                    return name.clone();
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "no audit log records the change from {current} within 10 s\n{}",
                    self.report()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every replica's stderr, for a failure message.
    fn report(&self) -> String {
        self.children
            .iter()
            .map(|(name, _)| {
                let err = std::fs::read_to_string(self.dir.join(format!("{name}.err")))
                    .unwrap_or_default();
                format!("--- {name} stderr:\n{err}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            if child.try_wait().ok().flatten().is_some() {
                continue;
            }
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A decision in an audit log: (time, current, desired).
type Decided = (chrono::DateTime<chrono::Utc>, u64, u64);

/// The decisions in an audit log with `outcome`.
fn decisions(log: &[Value], outcome: &str) -> Vec<Decided> {
    log.iter()
        .filter(|r| r["record"] == "decision" && r["outcome"] == outcome)
        .map(|r| {
            (
                r["at"]
                    .as_str()
                    .unwrap_or_default()
                    .parse()
                    .expect("a time"),
                r["current"].as_u64().unwrap_or_default(),
                r["desired"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_fail_over_on_sigkill_and_a_resumed_sigstopped_leader_stands_by() {
    let etcd_prefix = format!("/hoist-test/{}", unique("run"));
    let project = unique("hoist-ha");
    seed(&project, 2).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        format!(
            "providers:\n  gcp:\n    gcp:\n      project: {project}\n      zone: us-central1-a\n      endpoint: {url}\n      credentials: anonymous\n      poll_interval: 50ms\nrun:\n  interval: 1s\ngroups:\n  - name: web\n    provider: gcp\n    min: 1\n    max: 10\n    policies:\n      - scheduled: {{ cron: \"* * * * *\", duration: 1h, min: 8 }}\n",
            url = gcp()
        ),
    )
    .unwrap();
    let mut replicas = Replicas {
        dir: dir.path().to_owned(),
        children: Vec::new(),
    };
    let within = Duration::from_secs(30);

    // `a` leads and puts the group at 8; `b` and `c` stand by.
    replicas.start("a", &etcd_prefix);
    wait_for(&project, 8, within, &replicas).await;
    assert_eq!(replicas.fixed_by(2).await, "a");
    replicas.start("b", &etcd_prefix);
    replicas.start("c", &etcd_prefix);
    tokio::time::sleep(Duration::from_secs(3)).await;
    resize(&project, 1).await;
    wait_for(&project, 8, within, &replicas).await;
    assert_eq!(replicas.fixed_by(1).await, "a");

    // SIGKILL: `a` dies without a word; a survivor takes over once a's lease (4 s) has expired.
    replicas.kill("a");
    let killed_at = chrono::Utc::now();
    resize(&project, 3).await;
    let took = wait_for(&project, 8, within, &replicas).await;
    // The lease, then at most a retry period and an evaluation interval, and slack for a
    // loaded machine.
    assert!(
        took < Duration::from_secs(4 + 1 + 1 + 3),
        "took over after {took:?}\n{}",
        replicas.report()
    );
    println!("after SIGKILL of the leader, a survivor put the group right in {took:?}");
    let leader = replicas.fixed_by(3).await;
    let leader = leader.as_str();
    assert_ne!(leader, "a", "{}", replicas.report());
    let other = if leader == "b" { "c" } else { "b" };

    // SIGSTOP the new leader past its lease: the other one takes over.
    replicas.signal(leader, "STOP");
    tokio::time::sleep(Duration::from_secs(4 + 2)).await;
    resize(&project, 4).await;
    wait_for(&project, 8, within, &replicas).await;
    assert_eq!(
        replicas.fixed_by(4).await,
        other,
        "the replica not frozen takes over\n{}",
        replicas.report()
    );

    // Freeze the current leader too, make drift, and wake the first one up: it still believes
    // it leads, but its lease is gone and the key is another's, so it stands by. Nobody acts
    // until the frozen leader's lease expires.
    replicas.signal(other, "STOP");
    resize(&project, 6).await;
    let resumed_at = chrono::Utc::now();
    replicas.signal(leader, "CONT");
    let deadline = Instant::now() + Duration::from_millis(2500);
    let standby = loop {
        let standby: Vec<_> = decisions(&replicas.log(leader), "standby")
            .into_iter()
            .filter(|d| d.0 >= resumed_at && d.1 == 6)
            .collect();
        if !standby.is_empty() || Instant::now() > deadline {
            break standby;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !standby.is_empty(),
        "{leader} did not record a standby decision after it was resumed\n{}",
        replicas.report()
    );
    assert_eq!(
        target_size(&project).await,
        6,
        "nobody may act while the leader is frozen and the resumed one is fenced\n{}",
        replicas.report()
    );
    replicas.signal(other, "CONT");
    // One of them puts it right, once the leadership is settled.
    wait_for(&project, 8, within, &replicas).await;
    replicas.fixed_by(6).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    replicas.stop_all();

    // Read together, the audit logs show every change exactly once.
    let logs: Vec<(&str, Vec<Value>)> = ["a", "b", "c"]
        .into_iter()
        .map(|r| (r, replicas.log(r)))
        .collect();
    let applied: Vec<(&str, Decided)> = logs
        .iter()
        .flat_map(|(r, log)| decisions(log, "applied").into_iter().map(move |d| (*r, d)))
        .collect();
    let shown = format!("{applied:?}\n{}", replicas.report());
    for drift in [2, 1, 3, 4, 6] {
        let fixes: Vec<_> = applied.iter().filter(|(_, d)| d.1 == drift).collect();
        assert_eq!(
            fixes.len(),
            1,
            "{drift} → 8 made {} times: {shown}",
            fixes.len()
        );
        assert_eq!(fixes[0].1.2, 8, "{shown}");
    }
    assert_eq!(applied.len(), 5, "no other change: {shown}");
    let by = |drift: u64| applied.iter().find(|(_, d)| d.1 == drift).map(|(r, _)| *r);
    assert_eq!((by(2), by(1)), (Some("a"), Some("a")), "{shown}");
    assert_eq!(by(3), Some(leader), "{shown}");
    assert_eq!(by(4), Some(other), "{shown}");
    // The standbys changed nothing while `a` led.
    assert!(
        applied.iter().all(|(r, d)| *r == "a" || d.0 > killed_at),
        "{shown}"
    );
    // The resumed replica's first decision on the drift to 6 was to stand by, not to act.
    let first_on_six = logs.iter().find(|(r, _)| *r == leader).map(|(_, log)| {
        log.iter()
            .filter(|r| r["record"] == "decision" && r["current"] == 6)
            .map(|r| r["outcome"].as_str().unwrap_or_default().to_owned())
            .next()
    });
    assert_eq!(first_on_six, Some(Some("standby".to_owned())), "{shown}");
    // The survivors stopped cleanly.
    for r in ["b", "c"] {
        let log = replicas.log(r);
        assert_eq!(
            log.last().map(|l| l["record"].clone()),
            Some(json!("stopped")),
            "{r}: {shown}"
        );
    }
}

/// The control loop's state on etcd: the leader writes, a new leader reads what the old one
/// wrote, and an old leader fenced off cannot overwrite it. Batches larger than one etcd
/// transaction allows are written whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_store_on_etcd_is_written_by_the_leader_only_and_read_by_the_next() {
    use hoist_core::state::StateStore;
    let prefix = format!("/hoist-test/{}", unique("state"));
    let a = replica(&prefix, "a").await;
    let b = replica(&prefix, "b").await;
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());

    // More keys and bytes than one transaction carries.
    let batch: Vec<(String, Vec<u8>)> = (0..250)
        .map(|i| (format!("group/sim/g{i:03}"), vec![b'x'; 8 * 1024]))
        .collect();
    a.save(batch.clone()).await.expect("the leader writes");
    let refused = b
        .save(vec![("group/sim/g000".into(), b"standby".to_vec())])
        .await
        .expect_err("a standby does not write");
    assert!(refused.to_string().contains("not the leader"), "{refused}");

    a.resign().await;
    assert!(b.try_acquire_or_renew().await.unwrap());
    let read = b.load_prefix("group/").await.expect("the new leader reads");
    assert_eq!(read, batch);
    b.save(vec![("group/sim/g000".into(), b"new".to_vec())])
        .await
        .expect("the new leader writes");

    // An old leader that still believes it holds the key is fenced off: b deletes its key
    // behind its back and a third replica takes over.
    let mut client = raw().await;
    client.delete(b.key(), None).await.expect("delete the key");
    let c = replica(&prefix, "c").await;
    assert!(c.try_acquire_or_renew().await.unwrap());
    let fenced = b
        .save(vec![("group/sim/g000".into(), b"stale".to_vec())])
        .await
        .expect_err("fenced");
    assert!(fenced.to_string().contains("fencing"), "{fenced}");
    assert_eq!(
        c.load_prefix("group/sim/g000").await.unwrap()[0].1,
        b"new".to_vec()
    );
    c.resign().await;
}
