//! A policy scales on a series served by a real Prometheus: the control loop reads the queue
//! depth a service exposes, through the Prometheus HTTP API, and resizes a group on the
//! simulated cloud accordingly. Then the service disappears and the loop holds, saying why.
//!
//! Prometheus scrapes `HOIST_TEST_PROMETHEUS_SCRAPE_ADDR` every second (see
//! `scripts/servers/prometheus.sh`); this test serves the service's `/metrics` there.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use hoist_core::config::parse_str;
use hoist_core::control::{Action, ControlLoop, GroupOutcome, ManagedGroup};
use hoist_core::engine::Direction;
use hoist_core::registry::{BuildContext, GroupBounds, ProviderRegistry};
use hoist_core::sim::register_builtins;
use hoist_integration_tests::server_url;
use hoist_telemetry::testing::RecordingReceiver;

fn policy_text(prometheus: &str) -> String {
    // The simulated cloud starts at the wall-clock time, so the virtual clock and Prometheus's
    // samples agree on what "now" is.
    let start = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    format!(
        r#"
providers:
  sim:
    simulated:
      start: {start}
      groups:
        consumers: {{ desired: 2 }}
metrics_sources:
  prom:
    prometheus: {{ url: "{prometheus}", staleness: 3s }}
groups:
  - name: consumers
    provider: sim
    min: 1
    max: 50
    metrics:
      source: prom
      queries:
        queue_depth: 'max(hoist_test_queue_depth{{queue="{{group}}"}})'
    policies:
      - target_tracking: {{ metric: queue_depth, target: 100 }}
"#
    )
}

async fn control_loop(text: &str) -> ControlLoop {
    let document = parse_str(Path::new("prometheus-policy.yaml"), text).expect("valid policy");
    let policy = &document.policy;
    let mut registry = ProviderRegistry::new();
    register_builtins(&mut registry);
    registry.register(Arc::new(hoist_prometheus::PrometheusFactory));

    let group = &policy.groups[0];
    let bounds = [GroupBounds::new(group.name.clone(), group.min, group.max)];
    let (kind, settings) = policy.providers["sim"].kind_and_settings().unwrap();
    let sim = registry
        .build(
            kind,
            BuildContext {
                name: "sim",
                settings: &settings,
                base_dir: Path::new("."),
                groups: &bounds,
            },
        )
        .await
        .expect("simulated cloud");
    let (kind, settings) = policy.metrics_sources["prom"].kind_and_settings().unwrap();
    let prom = registry
        .build(
            kind,
            BuildContext {
                name: "prom",
                settings: &settings,
                base_dir: Path::new("."),
                groups: &[],
            },
        )
        .await
        .expect("prometheus source");
    let mut managed = ManagedGroup::new(group.clone(), sim.set);
    managed.metrics = prom.set.metrics;
    ControlLoop::new(
        vec![managed],
        sim.clock.expect("virtual clock"),
        Duration::from_secs(60),
    )
}

#[tokio::test]
async fn the_control_loop_scales_on_a_prometheus_series_and_holds_when_it_goes_stale() {
    let prometheus = server_url("HOIST_TEST_PROMETHEUS_URL");
    let scrape: std::net::SocketAddr = server_url("HOIST_TEST_PROMETHEUS_SCRAPE_ADDR")
        .parse()
        .expect("HOIST_TEST_PROMETHEUS_SCRAPE_ADDR is host:port");

    // The service: 900 messages waiting in queue `consumers`.
    let service = RecordingReceiver::start_on(scrape)
        .await
        .expect("bind scrape address");
    service.set_reply(
        200,
        "# TYPE hoist_test_queue_depth gauge\nhoist_test_queue_depth{queue=\"consumers\"} 900\n",
    );

    // Wait until Prometheus has scraped the series (each try starts the cloud at "now").
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let decision = loop {
        let mut control = control_loop(&policy_text(&prometheus)).await;
        let outcome = control.evaluate_once().await.pop().expect("one group");
        let GroupOutcome::Decided {
            decision, action, ..
        } = outcome
        else {
            panic!("the group could not be observed: {outcome:?}");
        };
        if decision.direction == Direction::Out {
            assert!(matches!(action, Action::Applied), "{action:?}");
            break decision;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scale-out within 30 s; last decision: {decision:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // ceil(900 / 100) = 9, limited from 2 by the default scale-up rate (max(2 + 4, 2 × 200 %)).
    assert_eq!(decision.current, 2);
    assert_eq!(decision.desired, 6, "{:#?}", decision.reasons);
    assert!(
        decision.reasons[0].message.contains("queue_depth = 900"),
        "{:#?}",
        decision.reasons
    );

    // The service stops: after the staleness bound the loop holds and says why.
    drop(service);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut control = control_loop(&policy_text(&prometheus)).await;
    let outcome = control.evaluate_once().await.pop().expect("one group");
    let GroupOutcome::Decided { decision, .. } = outcome else {
        panic!("the group could not be observed: {outcome:?}");
    };
    assert_eq!(
        decision.direction,
        Direction::Hold,
        "{:#?}",
        decision.reasons
    );
    assert!(
        decision
            .reasons
            .iter()
            // Prometheus marks the series stale when its target disappears, so the query finds
            // either no series or only an old one; both make the loop hold.
            .any(|r| r.source == "metrics.queue_depth"
                && (r.message.contains("stale") || r.message.contains("no data"))),
        "{:#?}",
        decision.reasons
    );
}
