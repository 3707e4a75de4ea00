//! [`AlertEngine`]: the alert rules as an [`EventSink`], and the background task that delivers
//! their alerts.
//!
//! `emit` runs the pure rules ([`super::rules`]) under a short lock and queues what changed; it
//! never waits for the network. A dispatcher task owns the deliveries: a new alert goes at once
//! to every sink its routes select; an active alert is sent again each sink's
//! `repeat_interval` (and retried sooner after a failed delivery); a resolved alert is sent
//! once to each of those sinks, retried a few times when delivery fails. Deliveries happen one
//! after another, so a sink never sees an alert's resolution before its firing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_api::{Clock, Error, Result};
use hoist_engine::events::{Event, EventSink};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::Alert;
use super::config::{AlertsConfig, RouteConfig};
use super::rules::{AlertRules, Transition};
use super::sinks::{AlertSink, build_sinks};

/// How often the dispatcher looks for alerts to re-send.
const TICK: Duration = Duration::from_secs(1);
/// Wait before retrying a failed delivery (capped by the sink's repeat interval).
const RETRY_AFTER: Duration = Duration::from_secs(15);
/// Attempts to deliver a resolution before giving up on a sink.
const RESOLVE_ATTEMPTS: u32 = 5;

enum Command {
    /// Boxed: an alert is large next to the other commands.
    Transition(Box<Transition>),
    Flush(oneshot::Sender<()>),
}

/// Raises alerts from the control loop's events and delivers them to the configured sinks.
///
/// ```no_run
/// # async fn demo(policy_alerts: &serde_json::Value) -> hoist_api::Result<()> {
/// use std::sync::Arc;
/// use hoist_api::SystemClock;
/// use hoist_telemetry::alerts::{AlertEngine, AlertsConfig};
///
/// let config = AlertsConfig::from_value(policy_alerts)?;          // the policy's `alerts:`
/// let alerts = AlertEngine::from_config(&config, std::path::Path::new("."), Arc::new(SystemClock))?;
/// // give `alerts.clone()` to the control loop as an EventSink (e.g. in a FanOut with Telemetry);
/// // at exit, deliver what is queued:
/// alerts.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AlertEngine {
    rules: Mutex<AlertRules>,
    clock: Arc<dyn Clock>,
    queue: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Transition(t) => write!(f, "Transition({t:?})"),
            Command::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl AlertEngine {
    /// Builds the sinks of `config` (reading their secrets; relative secret files resolve
    /// against `base_dir`, the policy file's directory) and starts the dispatcher. Must be
    /// called inside a Tokio runtime.
    pub fn from_config(
        config: &AlertsConfig,
        base_dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>> {
        config.validate()?;
        let sinks = build_sinks(config, base_dir)?;
        Self::with_sinks(config, sinks, clock)
    }

    /// Uses the given sinks (by name, as routes refer to them) with the routes, rules and
    /// labels of `config`; its `sinks` section is ignored. Must be called inside a Tokio
    /// runtime.
    pub fn with_sinks(
        config: &AlertsConfig,
        sinks: BTreeMap<String, Arc<dyn AlertSink>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>> {
        for (index, route) in config.routes.iter().enumerate() {
            if let Some(unknown) = route.sinks.iter().find(|s| !sinks.contains_key(*s)) {
                return Err(Error::config(format!(
                    "alerts.routes[{index}].sinks: unknown sink `{unknown}`"
                )));
            }
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::config("the alert engine needs a Tokio runtime to deliver alerts")
        })?;
        let (queue, receiver) = mpsc::unbounded_channel();
        let dispatcher = Dispatcher {
            sinks,
            routes: config.routes.clone(),
            active: BTreeMap::new(),
            resolving: Vec::new(),
        };
        runtime.spawn(dispatcher.run(receiver));
        Ok(Arc::new(AlertEngine {
            rules: Mutex::new(AlertRules::new(&config.rules, config.labels.clone())),
            clock,
            queue,
        }))
    }

    /// The alerts firing now.
    pub fn active_alerts(&self) -> Vec<Alert> {
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .active()
            .cloned()
            .collect()
    }

    /// Returns once every alert change observed so far has been delivered (or its delivery
    /// failed and was scheduled for retry).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Delivers what is queued; call before the process exits. Active alerts stay active in
    /// the receivers (Alertmanager resolves them itself when their `endsAt` passes).
    pub async fn shutdown(&self) {
        self.flush().await;
    }
}

impl EventSink for AlertEngine {
    fn emit(&self, event: &Event) {
        let now = self.clock.now();
        let transitions = self
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(event, now);
        for transition in transitions {
            match &transition {
                Transition::Fire(a) => {
                    tracing::warn!(alert = %a.dedup_key(), severity = a.severity.as_str(), summary = %a.summary, "alert firing")
                }
                Transition::Resolve(a) => tracing::info!(alert = %a.dedup_key(), "alert resolved"),
                Transition::Update(_) => {}
            }
            // Fails only when the dispatcher is gone (runtime shutting down): nothing to do.
            let _ = self.queue.send(Command::Transition(Box::new(transition)));
        }
    }
}

/// Delivery state of one alert at one sink.
#[derive(Debug)]
struct SinkDelivery {
    sink: Arc<dyn AlertSink>,
    /// When the last delivery succeeded.
    last_ok: Option<Instant>,
    /// When the last attempt was made.
    last_attempt: Option<Instant>,
    /// Failed attempts in a row.
    failures: u32,
}

#[derive(Debug)]
struct Delivery {
    alert: Alert,
    sinks: Vec<SinkDelivery>,
}

#[derive(Debug)]
struct Dispatcher {
    sinks: BTreeMap<String, Arc<dyn AlertSink>>,
    routes: Vec<RouteConfig>,
    active: BTreeMap<String, Delivery>,
    resolving: Vec<Delivery>,
}

impl Dispatcher {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Transition(t)) => self.apply(*t).await,
                    Some(Command::Flush(done)) => { let _ = done.send(()); }
                    None => break,
                },
                _ = tick.tick() => self.resend_due().await,
            }
        }
    }

    /// The sinks an alert goes to: every sink of every matching route, once; with no routes,
    /// every sink.
    fn route(&self, alert: &Alert) -> Vec<Arc<dyn AlertSink>> {
        let names: Vec<&String> = if self.routes.is_empty() {
            self.sinks.keys().collect()
        } else {
            let mut names: Vec<&String> = self
                .routes
                .iter()
                .filter(|r| r.matches(alert))
                .flat_map(|r| r.sinks.iter())
                .collect();
            names.sort();
            names.dedup();
            names
        };
        names
            .into_iter()
            .filter_map(|n| self.sinks.get(n).cloned())
            .collect()
    }

    async fn apply(&mut self, transition: Transition) {
        match transition {
            Transition::Fire(alert) => {
                let sinks = self.route(&alert);
                if sinks.is_empty() {
                    tracing::debug!(alert = %alert.dedup_key(), "no route sends this alert anywhere");
                }
                let mut delivery = Delivery {
                    alert,
                    sinks: sinks
                        .into_iter()
                        .map(|sink| SinkDelivery {
                            sink,
                            last_ok: None,
                            last_attempt: None,
                            failures: 0,
                        })
                        .collect(),
                };
                for target in &mut delivery.sinks {
                    attempt(&delivery.alert, target).await;
                }
                self.active.insert(delivery.alert.dedup_key(), delivery);
            }
            Transition::Update(alert) => {
                if let Some(delivery) = self.active.get_mut(&alert.dedup_key()) {
                    delivery.alert = alert;
                }
            }
            Transition::Resolve(alert) => {
                let Some(firing) = self.active.remove(&alert.dedup_key()) else {
                    return;
                };
                let mut delivery = Delivery {
                    alert,
                    sinks: firing
                        .sinks
                        .into_iter()
                        .map(|s| SinkDelivery {
                            sink: s.sink,
                            last_ok: None,
                            last_attempt: None,
                            failures: 0,
                        })
                        .collect(),
                };
                for target in &mut delivery.sinks {
                    attempt(&delivery.alert, target).await;
                }
                delivery.sinks.retain(|s| s.last_ok.is_none());
                if !delivery.sinks.is_empty() {
                    self.resolving.push(delivery);
                }
            }
        }
    }

    async fn resend_due(&mut self) {
        let now = Instant::now();
        for delivery in self.active.values_mut() {
            for target in &mut delivery.sinks {
                let repeat = target.sink.repeat_interval();
                let due = match (target.last_ok, target.last_attempt) {
                    (Some(ok), _) if target.failures == 0 => now.duration_since(ok) >= repeat,
                    (_, Some(tried)) => now.duration_since(tried) >= RETRY_AFTER.min(repeat),
                    (_, None) => true,
                };
                if due {
                    attempt(&delivery.alert, target).await;
                }
            }
        }
        for delivery in &mut self.resolving {
            for target in &mut delivery.sinks {
                let due = target
                    .last_attempt
                    .is_none_or(|tried| now.duration_since(tried) >= RETRY_AFTER);
                if due && target.last_ok.is_none() {
                    attempt(&delivery.alert, target).await;
                }
            }
            delivery.sinks.retain(|s| {
                let keep = s.last_ok.is_none() && s.failures < RESOLVE_ATTEMPTS;
                if s.last_ok.is_none() && !keep {
                    tracing::error!(sink = s.sink.name(), alert = %delivery.alert.dedup_key(), "giving up delivering the resolution");
                }
                keep
            });
        }
        self.resolving.retain(|d| !d.sinks.is_empty());
    }
}

async fn attempt(alert: &Alert, target: &mut SinkDelivery) {
    let now = Instant::now();
    target.last_attempt = Some(now);
    match target.sink.deliver(alert).await {
        Ok(()) => {
            target.last_ok = Some(now);
            target.failures = 0;
            tracing::debug!(sink = target.sink.name(), alert = %alert.dedup_key(), status = alert.status.as_str(), "alert delivered");
        }
        Err(error) => {
            target.failures += 1;
            tracing::warn!(sink = target.sink.name(), kind = target.sink.kind(), alert = %alert.dedup_key(), %error, "alert delivery failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use hoist_api::SystemClock;

    use super::*;
    use crate::alerts::{AlertName, AlertStatus};

    /// Records deliveries; fails while `fail` is set.
    #[derive(Debug, Default)]
    struct Recorder {
        name: String,
        repeat: Duration,
        seen: Mutex<Vec<(AlertStatus, String)>>,
        fail: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl AlertSink for Recorder {
        fn name(&self) -> &str {
            &self.name
        }
        fn kind(&self) -> &'static str {
            "recorder"
        }
        fn repeat_interval(&self) -> Duration {
            self.repeat
        }
        async fn deliver(&self, alert: &Alert) -> Result<()> {
            if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(Error::transient("down"));
            }
            self.seen
                .lock()
                .unwrap()
                .push((alert.status, alert.dedup_key()));
            Ok(())
        }
    }

    fn recorder(name: &str, repeat: Duration) -> Arc<Recorder> {
        Arc::new(Recorder {
            name: name.into(),
            repeat,
            ..Default::default()
        })
    }

    fn config(routes: &str) -> AlertsConfig {
        let value: serde_json::Value = serde_saphyr::from_str(routes).unwrap();
        serde_json::from_value(value).unwrap()
    }

    #[derive(Debug)]
    struct FixedClock(Mutex<DateTime<Utc>>);
    #[async_trait]
    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
        async fn sleep_until(&self, _until: DateTime<Utc>) {}
    }

    #[tokio::test(start_paused = true)]
    async fn routes_fire_resend_and_resolve() {
        let pager = recorder("pager", Duration::from_secs(60));
        let chat = recorder("chat", Duration::from_secs(3600));
        let sinks: BTreeMap<String, Arc<dyn AlertSink>> = BTreeMap::from([
            ("pager".to_owned(), pager.clone() as Arc<dyn AlertSink>),
            ("chat".to_owned(), chat.clone() as Arc<dyn AlertSink>),
        ]);
        let cfg = config(
            "routes:\n  - sinks: [chat]\n  - sinks: [pager]\n    alerts: [circuit_open]\n    min_severity: critical\n",
        );
        let engine = AlertEngine::with_sinks(&cfg, sinks, Arc::new(SystemClock)).unwrap();
        engine.emit(&Event::Circuit {
            provider: "aws".into(),
            open: true,
        });
        engine.flush().await;
        let key = "hoist/circuit_open/aws".to_owned();
        assert_eq!(
            *pager.seen.lock().unwrap(),
            vec![(AlertStatus::Firing, key.clone())]
        );
        assert_eq!(
            *chat.seen.lock().unwrap(),
            vec![(AlertStatus::Firing, key.clone())]
        );
        assert_eq!(engine.active_alerts().len(), 1);

        // 61 s later the pager (repeat 60 s) got it again, chat (1 h) did not.
        tokio::time::sleep(Duration::from_secs(61)).await;
        engine.flush().await;
        assert_eq!(pager.seen.lock().unwrap().len(), 2);
        assert_eq!(chat.seen.lock().unwrap().len(), 1);

        engine.emit(&Event::Circuit {
            provider: "aws".into(),
            open: false,
        });
        engine.flush().await;
        assert_eq!(
            pager.seen.lock().unwrap().last(),
            Some(&(AlertStatus::Resolved, key.clone()))
        );
        assert_eq!(
            chat.seen.lock().unwrap().last(),
            Some(&(AlertStatus::Resolved, key))
        );
        assert!(engine.active_alerts().is_empty());

        // A warning about a group goes to chat only.
        for _ in 0..2 {
            engine.emit(&Event::Acted {
                provider: "aws".into(),
                group: "web".into(),
                from: 1,
                to: 2,
                error: Some((hoist_api::ErrorKind::Throttled, "slow down".into())),
            });
        }
        engine.flush().await;
        assert_eq!(chat.seen.lock().unwrap().len(), 3);
        assert_eq!(pager.seen.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_deliveries_are_retried() {
        let hook = recorder("hook", Duration::from_secs(3600));
        hook.fail.store(true, std::sync::atomic::Ordering::Relaxed);
        let sinks: BTreeMap<String, Arc<dyn AlertSink>> =
            BTreeMap::from([("hook".to_owned(), hook.clone() as Arc<dyn AlertSink>)]);
        let clock = Arc::new(FixedClock(Mutex::new(Utc::now())));
        let engine = AlertEngine::with_sinks(&AlertsConfig::default(), sinks, clock).unwrap();
        engine.emit(&Event::Circuit {
            provider: "gcp".into(),
            open: true,
        });
        engine.flush().await;
        assert!(hook.seen.lock().unwrap().is_empty());
        hook.fail.store(false, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(RETRY_AFTER + Duration::from_secs(2)).await;
        engine.flush().await;
        assert_eq!(
            hook.seen.lock().unwrap().len(),
            1,
            "retried after the failure"
        );

        // A resolution that fails is retried too.
        hook.fail.store(true, std::sync::atomic::Ordering::Relaxed);
        engine.emit(&Event::Circuit {
            provider: "gcp".into(),
            open: false,
        });
        engine.flush().await;
        hook.fail.store(false, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(RETRY_AFTER + Duration::from_secs(2)).await;
        engine.flush().await;
        let seen = hook.seen.lock().unwrap();
        assert_eq!(seen.last().map(|s| s.0), Some(AlertStatus::Resolved));
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn needs_a_runtime_and_known_sinks() {
        let err = AlertEngine::with_sinks(
            &AlertsConfig::default(),
            BTreeMap::new(),
            Arc::new(SystemClock),
        )
        .unwrap_err();
        assert!(err.to_string().contains("Tokio runtime"), "{err}");
        let cfg = config("routes:\n  - sinks: [nowhere]\n");
        let err =
            AlertEngine::with_sinks(&cfg, BTreeMap::new(), Arc::new(SystemClock)).unwrap_err();
        assert!(err.to_string().contains("nowhere"), "{err}");
        let _ = AlertName::CircuitOpen;
    }
}
