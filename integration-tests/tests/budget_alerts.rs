//! Budget alerts through a real Alertmanager (Debian's `prometheus-alertmanager`, started by
//! `scripts/servers/prometheus.sh`): Hoist's `AlertEngine` is fed the statuses a budget goes
//! through in a period (50 % then 80 % of its amount spent, a forecast over 100 %, each status
//! repeated as the control loop repeats it every round) and then the first status of the next
//! period. It posts to `/api/v2/alerts`; Alertmanager routes to its webhook receiver at
//! `HOIST_TEST_ALERTMANAGER_WEBHOOK_ADDR` (group_wait and group_interval 1 s), where this test
//! listens.
//!
//! Each crossing must fire exactly once and resolve exactly once when the period ends. Two
//! views check that:
//!
//! - what Hoist sent: a second sink, a plain webhook to a local recorder, receives every
//!   delivery Hoist makes (both sinks re-send only every hour, so nothing is re-sent during the
//!   test): one firing and one resolution per (budget, kind, threshold);
//! - what Alertmanager made of it: Alertmanager re-notifies a whole group whenever it changes,
//!   so an alert shows up in several notifications; the test counts distinct alerts (label
//!   sets) and the order of their statuses, which must be firing, then resolved, never firing
//!   again, with one `startsAt` per alert.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use hoist_core::SystemClock;
use hoist_core::budget::BudgetStatus;
use hoist_core::events::{Event, EventSink};
use hoist_integration_tests::server_url;
use hoist_telemetry::testing::{RecordedRequest, RecordingReceiver};
use hoist_telemetry::{AlertEngine, AlertsConfig};
use serde_json::Value;

const AMOUNT: f64 = 5_000.0;
const WAIT: Duration = Duration::from_secs(30);

/// A status of `budget` (5,000 USD a month, converted from EUR) that spent `spent` and
/// forecasts `forecast` for the period starting at `start`.
fn status(budget: &str, start: DateTime<Utc>, spent: f64, forecast: f64) -> Event {
    let crossed = |thresholds: &[f64], value: f64| -> Vec<f64> {
        thresholds
            .iter()
            .copied()
            .filter(|t| value >= AMOUNT * t / 100.0)
            .collect()
    };
    Event::Budget(BudgetStatus {
        budget: budget.to_owned(),
        scope: "group web".into(),
        groups: vec!["web".into()],
        period: "monthly".into(),
        period_start: start,
        period_end: start + TimeDelta::days(30),
        amount: AMOUNT,
        currency: "USD".into(),
        converted_from: Some((
            "EUR".into(),
            1.08,
            NaiveDate::from_ymd_opt(2026, 10, 31).expect("a date"),
        )),
        spent,
        run_rate_per_hour: 8.0,
        pace_per_hour: 7.5,
        forecast,
        rung: None,
        target_scale: 1.0,
        capacity_kept: 1.0,
        actual_crossed: crossed(&[50.0, 80.0, 100.0], spent),
        forecast_crossed: crossed(&[100.0], forecast),
        at: Utc::now(),
    })
}

/// The alerts of `budget` in one Alertmanager notification.
fn alerts_of(request: &RecordedRequest, budget: &str) -> Vec<Value> {
    request.json()["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["labels"]["budget"] == budget)
        .cloned()
        .collect()
}

/// Whether some notification so far carries the alert `key` with `status`.
fn notified(requests: &[RecordedRequest], budget: &str, key: &str, status: &str) -> bool {
    requests.iter().any(|r| {
        alerts_of(r, budget)
            .iter()
            .any(|a| a["annotations"]["dedup_key"] == key && a["status"] == status)
    })
}

async fn wait_for_notification(
    receiver: &RecordingReceiver,
    budget: &str,
    key: &str,
    status: &str,
) {
    let found = receiver
        .wait_for(WAIT, |r| {
            alerts_of(r, budget)
                .iter()
                .any(|a| a["annotations"]["dedup_key"] == key && a["status"] == status)
        })
        .await;
    assert!(
        found.is_some(),
        "Alertmanager did not notify `{key}` {status} within {WAIT:?}; notifications: {:#?}",
        receiver
            .requests()
            .iter()
            .map(|r| alerts_of(r, budget))
            .collect::<Vec<_>>()
    );
}

/// Feeds `event` `times` times, as the control loop does once per evaluation round.
async fn feed(engine: &AlertEngine, event: &Event, times: usize) {
    for _ in 0..times {
        engine.emit(event);
    }
    engine.flush().await;
}

#[tokio::test]
async fn budget_thresholds_alert_once_per_crossing_and_resolve_with_the_period() {
    let webhook_addr = server_url("HOIST_TEST_ALERTMANAGER_WEBHOOK_ADDR")
        .parse()
        .expect("HOIST_TEST_ALERTMANAGER_WEBHOOK_ADDR is host:port");
    let alertmanager_url = server_url("HOIST_TEST_ALERTMANAGER_URL");
    let through_alertmanager = RecordingReceiver::start_on(webhook_addr)
        .await
        .expect("bind the address Alertmanager's receiver posts to");
    // Every delivery Hoist makes, straight from its webhook sink.
    let direct = RecordingReceiver::start().await;
    let secrets = tempfile::tempdir().expect("a temporary directory");
    let hook_url = secrets.path().join("hook-url");
    std::fs::write(&hook_url, direct.url()).expect("write the webhook URL");

    // A budget name of its own, so that alerts from earlier runs cannot satisfy the test.
    let budget = format!("itest-budget-{}", std::process::id());
    let key = |kind: &str, threshold: &str| format!("hoist/{kind}/{budget}/{threshold}");
    let actual_50 = key("budget_actual", "50");
    let actual_80 = key("budget_actual", "80");
    let forecast_100 = key("budget_forecast", "100");

    let config = AlertsConfig::from_value(&serde_json::json!({
        "sinks": {
            "am": { "alertmanager": { "url": alertmanager_url, "repeat_interval": "1h" } },
            "audit": { "webhook": {
                "url": { "file": hook_url.to_str().expect("a UTF-8 path") },
                "repeat_interval": "1h",
            } },
        },
        "routes": [ { "sinks": ["am", "audit"], "alerts": ["budget_actual", "budget_forecast"] } ],
        "labels": { "team": "finops" },
    }))
    .expect("valid alert configuration");
    let engine = AlertEngine::from_config(&config, secrets.path(), Arc::new(SystemClock))
        .expect("alert engine");

    let november = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let december = november + TimeDelta::days(30);

    // 52 % spent: the 50 % threshold, reported five rounds in a row.
    feed(&engine, &status(&budget, november, 2_600.0, 4_000.0), 5).await;
    wait_for_notification(&through_alertmanager, &budget, &actual_50, "firing").await;
    // 82 % spent: 80 % crosses, 50 % is still crossed.
    feed(&engine, &status(&budget, november, 4_100.0, 4_800.0), 5).await;
    wait_for_notification(&through_alertmanager, &budget, &actual_80, "firing").await;
    // The forecast goes over the amount: the forecast threshold of 100 % crosses.
    feed(&engine, &status(&budget, november, 4_200.0, 5_400.0), 5).await;
    wait_for_notification(&through_alertmanager, &budget, &forecast_100, "firing").await;
    // More rounds of the same period change nothing, even with the figures moving.
    for spent in [4_250.0, 4_300.0, 4_350.0] {
        feed(&engine, &status(&budget, november, spent, 5_500.0), 2).await;
    }
    let active: Vec<String> = engine
        .active_alerts()
        .iter()
        .map(|a| a.dedup_key())
        .collect();
    assert_eq!(
        active,
        [actual_50.clone(), actual_80.clone(), forecast_100.clone()]
    );

    // December starts: every alert of November resolves.
    feed(&engine, &status(&budget, december, 15.0, 3_000.0), 3).await;
    assert!(engine.active_alerts().is_empty());
    for k in [&actual_50, &actual_80, &forecast_100] {
        wait_for_notification(&through_alertmanager, &budget, k, "resolved").await;
    }
    // Give Alertmanager a few more group intervals to show any duplicate it would send.
    tokio::time::sleep(Duration::from_secs(3)).await;
    engine.shutdown().await;

    // What Hoist sent: per alert, one firing and then one resolution.
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in direct.requests() {
        let body = request.json();
        assert_eq!(body["labels"]["budget"], budget.as_str(), "{body}");
        sent.entry(body["dedup_key"].as_str().expect("dedup_key").to_owned())
            .or_default()
            .push(body["status"].as_str().expect("status").to_owned());
    }
    let expected: BTreeMap<String, Vec<String>> = [&actual_50, &actual_80, &forecast_100]
        .into_iter()
        .map(|k| (k.clone(), vec!["firing".to_owned(), "resolved".to_owned()]))
        .collect();
    assert_eq!(sent, expected, "Hoist's deliveries per alert");

    // What Alertmanager notified: three distinct alerts, each firing then resolved once.
    let notifications = through_alertmanager.requests();
    assert!(notified(&notifications, &budget, &actual_50, "firing"));
    let mut seen: BTreeMap<String, (Value, Vec<String>, Vec<String>)> = BTreeMap::new();
    for request in &notifications {
        assert_eq!(request.path, "/alerts");
        for alert in alerts_of(request, &budget) {
            let identity = alert["labels"].to_string();
            let entry = seen
                .entry(identity)
                .or_insert_with(|| (alert["labels"].clone(), Vec::new(), Vec::new()));
            let status = alert["status"].as_str().expect("status").to_owned();
            if entry.1.last() != Some(&status) {
                entry.1.push(status);
            }
            let starts = alert["startsAt"].as_str().expect("startsAt").to_owned();
            if !entry.2.contains(&starts) {
                entry.2.push(starts);
            }
        }
    }
    assert_eq!(
        seen.len(),
        3,
        "distinct alerts Alertmanager notified: {:#?}",
        seen.values().map(|v| &v.0).collect::<Vec<_>>()
    );
    let mut by_key: BTreeMap<String, Value> = BTreeMap::new();
    for (labels, statuses, starts) in seen.values() {
        let threshold = labels["threshold"].as_str().expect("threshold");
        let alertname = labels["alertname"].as_str().expect("alertname");
        assert_eq!(
            statuses,
            &["firing", "resolved"],
            "{alertname} {threshold}: status transitions"
        );
        assert_eq!(
            starts.len(),
            1,
            "{alertname} {threshold}: one alert, one start"
        );
        let kind = match alertname {
            "HoistBudgetActualThreshold" => "budget_actual",
            "HoistBudgetForecastThreshold" => "budget_forecast",
            other => panic!("unexpected alert {other}"),
        };
        by_key.insert(key(kind, threshold), labels.clone());
    }
    assert_eq!(
        by_key.keys().collect::<Vec<_>>(),
        [&actual_50, &actual_80, &forecast_100]
    );
    for (k, severity) in [
        (&actual_50, "warning"),
        (&actual_80, "warning"),
        (&forecast_100, "critical"),
    ] {
        let labels = &by_key[k];
        assert_eq!(labels["severity"], severity, "{k}");
        assert_eq!(labels["period_start"], "2026-11-01T00:00:00Z", "{k}");
        assert_eq!(labels["provider"], "budgets", "{k}");
        assert_eq!(labels["team"], "finops", "{k}");
        assert_eq!(labels["source"], "hoist", "{k}");
    }

    // The forecast alert's text, as Alertmanager passed it on.
    let forecast = notifications
        .iter()
        .flat_map(|r| alerts_of(r, &budget))
        .find(|a| a["annotations"]["dedup_key"] == forecast_100.as_str())
        .expect("the forecast alert");
    let summary = forecast["annotations"]["summary"]
        .as_str()
        .expect("summary");
    assert!(
        summary.starts_with(&format!(
            "budget {budget}: forecast 5,400.00 USD is 108 % of 5,000.00 USD (monthly)"
        )),
        "{summary}"
    );
    let description = forecast["annotations"]["description"]
        .as_str()
        .expect("description");
    assert!(
        description.contains("converted from EUR at 1.08 as of 2026-10-31"),
        "{description}"
    );

    through_alertmanager.shutdown().await;
    direct.shutdown().await;
}
