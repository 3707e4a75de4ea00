//! The control loop reconciles the cost meter with the simulated cloud's own bill: over three
//! virtual days (and a few minutes, so that the third day's end is final), each complete UTC day
//! is reported once as `Event::CostReconciled`, written to the cost ledger once, and the meter is
//! within 1 % of the bill. A bill that cannot be read is asked again at the next interval.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use hoist_api::layers::FaultLayer;
use hoist_api::{ErrorKind, Operation};
use hoist_engine::config::parse_str;
use hoist_engine::control::{ControlLoop, ManagedGroup};
use hoist_engine::events::{Event, EventSink, FanOut};
use hoist_engine::ledger::{self, CostLedger, LedgerRecord};
use hoist_engine::reconcile::Reconciliation;
use hoist_sim::{DemandSpec, GeneratorSpec, SimGroupSpec, SimulatedCloud};

const POLICY: &str = "providers:\n  sim:\n    simulated: {}\ngroups:\n  - name: web\n    provider: sim\n    min: 2\n    max: 40\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n  - name: queue\n    provider: sim\n    min: 1\n    max: 25\n    policies:\n      - target_tracking: { metric: utilization, target: 0.7 }\n";

/// The reconciliations the loop reported, with the virtual time of each.
#[derive(Debug)]
struct Reconciled {
    clock: Arc<dyn hoist_api::Clock>,
    seen: Mutex<Vec<(DateTime<Utc>, Reconciliation)>>,
}

impl EventSink for Reconciled {
    fn emit(&self, event: &Event) {
        if let Event::CostReconciled(r) = event {
            self.seen
                .lock()
                .unwrap()
                .push((self.clock.now(), r.clone()));
        }
    }
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

/// Runs two groups on the simulated cloud from 2026-03-02 00:00 for three days and five minutes,
/// reconciling every 6 h; the first `failures` cost queries fail. Returns the reconciliations
/// and the ledger's reconciliation lines.
async fn three_days(failures: u32) -> (Vec<(DateTime<Utc>, Reconciliation)>, Vec<Reconciliation>) {
    let doc = parse_str(Path::new("reconcile.yaml"), POLICY).expect("policy");
    let start = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
    let cloud = SimulatedCloud::builder()
        .seed(7)
        .start(start)
        .group(SimGroupSpec {
            min: 0,
            max: 1000,
            desired: 4,
            demand: DemandSpec::Generator(GeneratorSpec {
                noise: 0.2,
                ..GeneratorSpec::web(600.0)
            }),
            ..SimGroupSpec::new("web")
        })
        .group(SimGroupSpec {
            min: 0,
            max: 1000,
            desired: 2,
            demand: DemandSpec::Generator(GeneratorSpec::web(200.0)),
            ..SimGroupSpec::new("queue")
        })
        .build()
        .expect("cloud");
    let faults = FaultLayer::new(1);
    if failures > 0 {
        faults.fail_next(Operation::Cost, failures, ErrorKind::Transient);
    }
    let sim = cloud.provider_set("sim").with_layer(&faults);
    let groups = vec![
        ManagedGroup::new(doc.policy.groups[0].clone(), sim.clone()),
        ManagedGroup::new(doc.policy.groups[1].clone(), sim),
    ];
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("ledger.jsonl");
    let ledger = Arc::new(
        CostLedger::create(&ledger_path, Duration::from_secs(3600), cloud.clock()).unwrap(),
    );
    let reconciled = Arc::new(Reconciled {
        clock: cloud.clock(),
        seen: Mutex::new(Vec::new()),
    });
    let mut control = ControlLoop::new(groups, cloud.clock(), Duration::from_secs(60))
        .with_events(Arc::new(FanOut(vec![reconciled.clone(), ledger.clone()])))
        .with_reconciliation(Duration::from_secs(6 * 3600));
    control
        .run(
            Some(start + TimeDelta::days(3) + TimeDelta::minutes(5)),
            |_| {},
        )
        .await
        .expect("the run");
    ledger.finish().unwrap();
    let (records, skipped) = ledger::read(&ledger_path).unwrap();
    assert_eq!(skipped, 0);
    let lines = records
        .into_iter()
        .filter_map(|r| match r {
            LedgerRecord::Reconciliation(r) => Some(r.reconciliation),
            _ => None,
        })
        .collect();
    let seen = reconciled.seen.lock().unwrap().clone();
    (seen, lines)
}

#[tokio::test]
async fn each_complete_day_is_reconciled_once_within_one_percent_of_the_bill() {
    let (seen, lines) = three_days(0).await;
    let days: Vec<NaiveDate> = seen.iter().map(|(_, r)| r.day).collect();
    assert_eq!(days, vec![day(2), day(3), day(4)], "{seen:#?}");
    for (at, r) in &seen {
        assert_eq!(r.provider, "sim");
        assert_eq!(r.currency, "USD");
        // As soon as the day is complete: the first evaluation after the next midnight.
        let next_midnight = r
            .day
            .succ_opt()
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        assert_eq!(*at, next_midnight + TimeDelta::minutes(1), "{r:?}");
        assert!(r.billed > hoist_api::Decimal::ZERO, "{r:?}");
        assert_eq!(r.difference, r.metered - r.billed);
        let drift = r.relative.expect("a bill above zero has a ratio");
        assert!(drift.abs() < 0.01, "{r:?}");
        println!(
            "{}: metered {} billed {} drift {:+.4} %",
            r.day,
            r.metered,
            r.billed,
            drift * 100.0
        );
    }
    // One ledger line per reconciled day (amounts are written as JSON numbers).
    assert_eq!(lines.len(), seen.len());
    for (line, (_, r)) in lines.iter().zip(&seen) {
        assert_eq!(
            (&line.provider, line.day, &line.currency),
            (&r.provider, r.day, &r.currency)
        );
        assert!(
            (line.billed_f64() - r.billed_f64()).abs() < 1e-9,
            "{line:?}"
        );
        assert!(
            (line.metered_f64() - r.metered_f64()).abs() < 1e-9,
            "{line:?}"
        );
        assert_eq!(line.relative, r.relative);
    }
}

#[tokio::test]
async fn a_bill_that_cannot_be_read_is_asked_again_at_the_next_interval() {
    let (seen, lines) = three_days(1).await;
    let days: Vec<(DateTime<Utc>, NaiveDate)> = seen.iter().map(|(at, r)| (*at, r.day)).collect();
    let at = |d: u32, h: u32, m: u32| Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).unwrap();
    assert_eq!(
        days,
        vec![
            // The first query (at 00:01 on the 3rd) failed: 6 h later.
            (at(3, 6, 1), day(2)),
            (at(4, 0, 1), day(3)),
            (at(5, 0, 1), day(4)),
        ]
    );
    assert_eq!(lines.len(), 3);
}
