//! Alerts through a real Alertmanager (Debian's `prometheus-alertmanager`, started by
//! `scripts/servers/prometheus.sh`): Hoist's `AlertEngine` posts to `/api/v2/alerts`,
//! Alertmanager routes to its webhook receiver at `HOIST_TEST_ALERTMANAGER_WEBHOOK_ADDR`
//! (group_wait and group_interval 1 s), where this test listens; the firing alert and then its
//! resolution must both arrive.

use std::sync::Arc;
use std::time::Duration;

use hoist_core::SystemClock;
use hoist_core::events::{Event, EventSink};
use hoist_integration_tests::server_url;
use hoist_telemetry::testing::{RecordedRequest, RecordingReceiver};
use hoist_telemetry::{AlertEngine, AlertsConfig};

fn alert_in(request: &RecordedRequest, status: &str, provider: &str) -> Option<serde_json::Value> {
    let body = request.json();
    body["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["status"] == status && a["labels"]["provider"] == provider)
        .cloned()
}

#[tokio::test]
async fn an_alert_and_its_resolution_arrive_through_alertmanager() {
    let webhook_addr = server_url("HOIST_TEST_ALERTMANAGER_WEBHOOK_ADDR")
        .parse()
        .expect("HOIST_TEST_ALERTMANAGER_WEBHOOK_ADDR is host:port");
    let receiver = RecordingReceiver::start_on(webhook_addr)
        .await
        .expect("bind the address Alertmanager's receiver posts to");
    // A provider name of its own, so that alerts from earlier runs cannot satisfy the test.
    let provider = format!("itest-{}", std::process::id());

    let config = AlertsConfig::from_value(&serde_json::json!({
        "sinks": {
            "am": { "alertmanager": {
                "url": server_url("HOIST_TEST_ALERTMANAGER_URL"),
                "repeat_interval": "5s",
            } }
        },
        "routes": [ { "sinks": ["am"], "alerts": ["circuit_open", "scaling_action_failed"] } ],
        "rules": { "scaling_action_failed": { "after_failures": 1 } },
        "labels": { "team": "infra" },
    }))
    .expect("valid alert configuration");
    let engine =
        AlertEngine::from_config(&config, std::path::Path::new("."), Arc::new(SystemClock))
            .expect("alert engine");

    engine.emit(&Event::Circuit {
        provider: provider.clone(),
        open: true,
    });
    engine.emit(&Event::Acted {
        provider: provider.clone(),
        group: "web".into(),
        from: 3,
        to: 5,
        error: Some((
            hoist_core::ErrorKind::QuotaExceeded,
            "vCPU quota reached".into(),
        )),
    });
    engine.flush().await;

    let firing = receiver
        .wait_for(Duration::from_secs(30), |r| {
            alert_in(r, "firing", &provider)
                .is_some_and(|a| a["labels"]["alertname"] == "HoistProviderCircuitOpen")
        })
        .await
        .expect("Alertmanager delivered the firing circuit alert to the webhook");
    let alert = alert_in(&firing, "firing", &provider).unwrap();
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["team"], "infra");
    assert_eq!(alert["labels"]["source"], "hoist");
    assert_eq!(
        alert["annotations"]["dedup_key"],
        format!("hoist/circuit_open/{provider}")
    );
    assert_eq!(firing.path, "/alerts");

    let failing = receiver
        .wait_for(Duration::from_secs(30), |r| {
            alert_in(r, "firing", &provider)
                .is_some_and(|a| a["labels"]["alertname"] == "HoistScalingActionFailed")
        })
        .await
        .expect("the failing-action alert arrived too");
    let alert = alert_in(&failing, "firing", &provider).unwrap();
    assert_eq!(alert["labels"]["group"], "web");
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("vCPU quota reached")
    );

    // The circuit closes: Hoist resolves, Alertmanager notifies the resolution.
    engine.emit(&Event::Circuit {
        provider: provider.clone(),
        open: false,
    });
    engine.flush().await;
    let resolved = receiver
        .wait_for(Duration::from_secs(30), |r| {
            alert_in(r, "resolved", &provider)
                .is_some_and(|a| a["labels"]["alertname"] == "HoistProviderCircuitOpen")
        })
        .await
        .expect("Alertmanager delivered the resolution to the webhook");
    let alert = alert_in(&resolved, "resolved", &provider).unwrap();
    let ends: chrono::DateTime<chrono::Utc> = alert["endsAt"].as_str().unwrap().parse().unwrap();
    assert!(ends <= chrono::Utc::now());
    assert!(
        engine
            .active_alerts()
            .iter()
            .all(|a| a.name.as_str() != "circuit_open")
    );

    engine.shutdown().await;
    receiver.shutdown().await;
}
