//! The control loop cannot be stalled by one cloud: groups are evaluated concurrently, so a
//! provider that hangs (or answers only at its timeout) delays its own groups and no other.
//!
//! Time is tokio's paused clock: it jumps to the next timer whenever every task waits, so an
//! hour of hanging costs nothing and every instant below is exact.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hoist_api::Clock;
use hoist_api::layers::{FaultLayer, Operations, TimeoutLayer};
use hoist_engine::config::parse_str;
use hoist_engine::control::{ControlLoop, GroupOutcome, ManagedGroup};
use hoist_engine::events::{Event, EventSink};
use hoist_sim::{SimGroupSpec, SimulatedCloud};
use tokio::time::Instant;

const HANG: Duration = Duration::from_secs(3600);
const INTERVAL: Duration = Duration::from_secs(60);

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
}

/// The wall clock as tokio sees it (paused in these tests), moving the simulated worlds along.
#[derive(Debug)]
struct TokioClock {
    origin: Instant,
    clouds: Vec<SimulatedCloud>,
}

impl TokioClock {
    fn elapsed(&self) -> TimeDelta {
        TimeDelta::from_std(Instant::now() - self.origin).unwrap()
    }
}

#[async_trait]
impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        base() + self.elapsed()
    }

    async fn sleep_until(&self, until: DateTime<Utc>) {
        let wait = (until - base()).to_std().unwrap_or_default();
        tokio::time::sleep_until(self.origin + wait).await;
        for cloud in &self.clouds {
            cloud.advance_to(until);
        }
    }
}

/// When each group's decision was made, as time since the start.
#[derive(Debug, Default)]
struct DecidedAt {
    origin: Mutex<Option<Instant>>,
    seen: Mutex<Vec<(String, Duration)>>,
}

impl EventSink for DecidedAt {
    fn emit(&self, event: &Event) {
        if let Event::Decided { decision, .. } = event {
            let origin = self.origin.lock().unwrap().expect("origin set");
            self.seen
                .lock()
                .unwrap()
                .push((decision.group.clone(), Instant::now() - origin));
        }
    }
}

/// Two simulated clouds: `hung` (group `batch`), whose every call waits an hour, optionally
/// under a timeout, and `healthy` (group `web`). `batch` comes first in the policy file, so a
/// loop that evaluated one group after the other would make `web` wait behind it.
fn control_loop(timeout: Option<Duration>) -> (ControlLoop, Arc<DecidedAt>) {
    let text = "providers:\n  hung:\n    simulated: {}\n  healthy:\n    simulated: {}\ngroups:\n  - name: batch\n    provider: hung\n    min: 1\n    max: 10\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n  - name: web\n    provider: healthy\n    min: 1\n    max: 10\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n";
    let policy = parse_str(Path::new("two-clouds.yaml"), text)
        .expect("test policy")
        .policy;
    let cloud = |group: &str| {
        SimulatedCloud::builder()
            .start(base())
            .group(SimGroupSpec {
                desired: 2,
                ..SimGroupSpec::new(group)
            })
            .build()
            .expect("simulated cloud")
    };
    let (hung_cloud, healthy_cloud) = (cloud("batch"), cloud("web"));
    let mut hung = hung_cloud
        .provider_set("hung")
        .with_layer(&FaultLayer::new(7).with_latency(Operations::All, HANG, HANG));
    if let Some(limit) = timeout {
        hung = hung.with_layer(&TimeoutLayer::new(limit));
    }
    let healthy = healthy_cloud.provider_set("healthy");
    let groups = vec![
        ManagedGroup::new(policy.groups[0].clone(), hung),
        ManagedGroup::new(policy.groups[1].clone(), healthy),
    ];
    let clock = Arc::new(TokioClock {
        origin: Instant::now(),
        clouds: vec![hung_cloud, healthy_cloud],
    });
    let decided = Arc::new(DecidedAt::default());
    *decided.origin.lock().unwrap() = Some(clock.origin);
    let control = ControlLoop::new(groups, clock, INTERVAL).with_events(decided.clone());
    (control, decided)
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(60 * m)
}

#[tokio::test(start_paused = true)]
async fn a_hung_provider_does_not_delay_the_other_providers_groups() {
    let (mut control, decided) = control_loop(None);
    let origin = Instant::now();
    let mut outcomes: Vec<(String, Duration, DateTime<Utc>)> = Vec::new();
    let run = control.run(Some(base() + TimeDelta::minutes(5)), |outcome| {
        if let GroupOutcome::Decided { decision, .. } = outcome {
            outcomes.push((decision.group.clone(), origin.elapsed(), decision.at));
        }
    });
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&run);
    run.await.expect("run");

    // `web` decided at every interval, on the minute, while `batch` hung.
    let web: Vec<(Duration, DateTime<Utc>)> = outcomes
        .iter()
        .filter(|(g, _, _)| g == "web")
        .map(|(_, after, at)| (*after, *at))
        .collect();
    let expected: Vec<(Duration, DateTime<Utc>)> = (0..=5)
        .map(|m| (minutes(m), base() + TimeDelta::minutes(m as i64)))
        .collect();
    assert_eq!(web, expected);
    // `batch` was evaluated once, started at 0 and finished an hour per call later; it skipped
    // the intervals that came while it hung instead of piling evaluations up.
    let batch: Vec<&(String, Duration, DateTime<Utc>)> =
        outcomes.iter().filter(|(g, _, _)| g == "batch").collect();
    assert_eq!(batch.len(), 1, "{outcomes:?}");
    assert_eq!(batch[0].2, base());
    assert!(batch[0].1 >= HANG, "{outcomes:?}");
    assert_eq!(outcomes.last().unwrap().0, "batch", "{outcomes:?}");
    assert_eq!(decided.seen.lock().unwrap().len(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_provider_that_times_out_delays_only_its_own_groups() {
    let timeout = Duration::from_secs(20);
    let (mut control, decided) = control_loop(Some(timeout));
    let outcomes = control.evaluate_once().await;

    // Outcomes come back in the groups' order; `batch` failed at its timeout.
    assert!(
        matches!(&outcomes[0], GroupOutcome::ObserveFailed { group, .. } if group == "batch"),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[1], GroupOutcome::Decided { decision, .. } if decision.group == "web"),
        "{outcomes:?}"
    );
    // `web` decided at once, not after `batch`'s 20 s.
    assert_eq!(
        *decided.seen.lock().unwrap(),
        [("web".to_owned(), Duration::ZERO)]
    );

    // One group at a time, as the loop used to work: `web` waits for `batch` to time out.
    let (control, decided) = control_loop(Some(timeout));
    let mut control = control.with_concurrency(1);
    control.evaluate_once().await;
    assert_eq!(*decided.seen.lock().unwrap(), [("web".to_owned(), timeout)]);
}
