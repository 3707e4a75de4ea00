//! The fuzz targets: what Hoist reads from files and from plugins, each followed a little way
//! past the parser (what a real caller does next with the result), and the parsers' documented
//! promises checked where they are cheap to check.

use std::path::Path;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hoist_api::model::Sample;
use hoist_api::{
    Activity, CapacityType, InstanceClass, InstanceState, MetricKind, Price, ScalingGroup,
    TimeSeries,
};
use hoist_engine::config::{PolicyDocument, PolicyLimits, parse_str_with_limits};
use hoist_engine::{
    DecisionMemory, ForecastPoint, GroupSnapshot, MetricWindows, Observation, decide,
};
use hoist_plugin::protocol::{
    CostRequest, CreateRequest, Empty, GroupRequest, InstanceInfo, Metadata, NameRequest,
    Operation, PriceRequest, QueryRangeRequest, RemoveInstancesRequest, SetDesiredRequest,
    SetInstanceClassRequest, WireError,
};
use hoist_sim::trace::{MAX_TRACE_STEPS, Trace, load_trace, parse_trace};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::runner::Target;

const MAIN_THREAD_STACK: usize = 8 << 20;
const TOKIO_WORKER_STACK: usize = 2 << 20;

/// Policy files: `hoist_engine::config::parse_str_with_limits` with the default limits, then, for
/// a file that loads, one decision per group on a few observations (cron schedules, bounds and
/// guards as read).
pub const POLICY_FILE: Target = Target {
    name: "policy_file",
    extension: "yaml",
    run: policy_file,
    tokens: &[
        "providers:",
        "groups:",
        "policies:",
        "guards:",
        "run:",
        "metrics_sources:",
        "alerts:",
        "version: 1",
        "simulated: {}",
        "plugin: ./x.so",
        "aws: { region: eu-west-1 }",
        "prometheus: { url: http://127.0.0.1:9090 }",
        "- name: web\n    provider: sim\n    min: 1\n    max: 10\n",
        "target_tracking:",
        "step:",
        "threshold:",
        "scheduled:",
        "predictive:",
        "metric: utilization",
        "metric: { custom: jobs }",
        "{ custom: ",
        "target: 0.6",
        "aggregation: total",
        "tolerance: 0.1",
        "scale_up: { stabilization_window: 0s, limits: [] }",
        "limits: [{ percent: 100, period: 15s }, { instances: 4, period: 15s }]",
        "select: disabled",
        "adjustment: percent",
        "adjustment: exact",
        "steps:\n  - { to: 0.3, adjust: -1 }\n  - { from: 0.8, adjust: 3 }\n",
        "{ from: 0.5, to: 0.5, adjust: 1 }",
        "cron: \"0 8 * * MON-FRI\"",
        "cron: \"0 0 31 2 *\"",
        "cron: \"59 23 29 2 *\"",
        "cron: \"*/0 * * * *\"",
        "cron: \"0 0 * * 8\"",
        "cron: \"0 0 L * *\"",
        "cron: \"0 0 1W * *\"",
        "cron: \"0 0 * * 5#5\"",
        "cron: \"@yearly\"",
        "timezone: Europe/Berlin",
        "timezone: America/St_Johns",
        "timezone: Pacific/Kiritimati",
        "timezone: Not/AZone",
        "duration: 36500d",
        "scale_in_cooldown: 9999999999999d",
        "metric_max_age: 0s",
        "max_scale_out_step: 0",
        "scale_in_protection: true",
        "dry_run: true",
        "max_capacity: { raise_by_percent: 100 }",
        "quantile: 0.9",
        "mode: forecast_only",
        "&a",
        "*a",
        "<<: *a",
        "!!str ",
        "!!binary ",
        "!!float ",
        "!!int ",
        "!custom ",
        "? ",
        "|\n",
        ">-\n",
        "\t",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "'",
        "{",
        "}",
        "[",
        "]",
        ": ",
        "- ",
        "#",
        "%",
        "@",
        "`",
    ],
    stack_size: MAIN_THREAD_STACK,
};

/// Demand traces: `hoist_sim::trace::parse_trace` (and `load_trace` for gzip), then the
/// trace's accessors on the result.
pub const TRACE_CSV: Target = Target {
    name: "trace_csv",
    extension: "csv",
    run: trace_csv,
    tokens: &[
        "timestamp,value\n",
        "\u{feff}",
        "\r\n",
        ",",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.5Z",
        "2026-01-01T00:00:00.999999999Z",
        "2026-01-01T00:00:00+14:00",
        "2026-01-01T00:00:00-23:59",
        "2026-01-01 00:00:00Z",
        "2026-01-01t00:00:00z",
        "2026-02-29T00:00:00Z",
        "2024-02-29T00:00:00Z",
        "2026-01-01T00:00:60Z",
        "2026-01-01T24:00:00Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999999Z",
        "1970-01-01T00:00:00Z",
        "1677-09-21T00:12:44Z",
        "2262-04-11T23:47:16Z",
        "+275760-09-13T00:00:00Z",
        "2026-01-01T00:00:01Z,1\n",
        "2026-01-01T00:00:02Z,1\n",
        "2026-03-01T00:00:00Z,1\n",
        "2100-01-01T00:00:00Z,1\n",
    ],
    stack_size: MAIN_THREAD_STACK,
};

/// The plugin protocol: every JSON message type of `hoist_plugin::protocol` and every reply type
/// the host reads, from the same bytes, with `WireError::into_error` and what the host does with
/// a reply.
pub const PLUGIN_PROTOCOL: Target = Target {
    name: "plugin_protocol",
    extension: "json",
    run: plugin_protocol,
    tokens: &[
        "{}",
        "[]",
        "null",
        "true",
        "false",
        "\"\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\\udc00\\ud800\"",
        "\"\\uffff\"",
        "\"kind\":\"throttled\"",
        "\"kind\":\"from_the_future\"",
        "\"retryable\":true",
        "\"source\":\"socket closed\"",
        "\"abi_version\":1",
        "\"provides\":[\"scaling\",\"catalog\",\"billing\",\"metrics\"]",
        "\"operations\":[\"scaling.list_groups\"]",
        "\"capacity_type\":\"spot\"",
        "\"state\":\"running\"",
        "\"unit\":\"per_month\"",
        "\"granularity\":\"daily\"",
        "\"metric\":{\"custom\":\"jobs\"}",
        "\"amount\":1e308",
        "\"amount\":79228162514264337593543950335",
        "\"amount\":-79228162514264337593543950336",
        "\"amount\":0.0000000000000000000000000001",
        "\"amount\":1e-28",
        "\"amount\":1e-29",
        "\"desired\":4294967296",
        "\"step_seconds\":0",
        "\"progress_percent\":255",
        "\"progress_percent\":256",
        "\"vcpus\":1e308",
        "\"start\":\"+262143-12-31T23:59:59Z\"",
        "\"start\":\"-262144-01-01T00:00:00Z\"",
        "\"at\":\"9999-12-31T23:59:59.999999999Z\"",
        "\"at\":\"2026-01-01T00:00:00+14:00\"",
        "\"base_dir\":\"/\"",
        "\"config\":{\"a\":[1,{\"b\":null}]}",
        "\"group\":\"web\"",
        "\"decrement\":true",
        "\"instances\":[\"i-1\",\"i-2\"]",
        ",",
        ":",
        "{",
        "}",
        "[",
        "]",
    ],
    stack_size: TOKIO_WORKER_STACK,
};

/// Every target.
pub const TARGETS: &[Target] = &[POLICY_FILE, TRACE_CSV, PLUGIN_PROTOCOL];

/// Text as a file reader would see it; bytes that are not UTF-8 are replaced so the parser
/// still runs (the file readers refuse such files before parsing).
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

fn policy_file(data: &[u8]) {
    let text = text(data);
    match parse_str_with_limits(Path::new("fuzz.yaml"), &text, &PolicyLimits::default()) {
        Ok(document) => exercise_policy(&document),
        Err(errors) => {
            assert!(
                !errors.0.is_empty(),
                "a refused policy file without a problem"
            );
            for error in &errors.0 {
                assert!(!error.message.is_empty(), "an empty message: {error:?}");
            }
            let _ = errors.to_string();
        }
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
}

/// What `hoist run` and `hoist plan` do with a policy file that loads: each group decided on.
fn exercise_policy(document: &PolicyDocument) {
    let policy = &document.policy;
    let _ = serde_json::to_string(policy);
    for provider in policy
        .providers
        .values()
        .chain(policy.metrics_sources.values())
    {
        let _ = provider.kind_and_settings();
    }
    let now = t0();
    for (g, group) in policy.groups.iter().enumerate() {
        let _ = group.provider_id();
        let needed = group.metrics_needed();
        for (p, policy) in group.policies.iter().enumerate() {
            let _ = document
                .error_at(
                    &format!("groups[{g}].policies[{p}].{}", policy.kind()),
                    "fuzz",
                )
                .to_string();
        }
        let forecast = [
            ForecastPoint {
                at: now + TimeDelta::minutes(1),
                instances: 7.5,
                upper: Some(9.0),
            },
            ForecastPoint {
                at: now + TimeDelta::minutes(5),
                instances: f64::MAX,
                upper: None,
            },
        ];
        let mid = group.min / 2 + group.max / 2;
        let cases: [(u32, f64, bool); 4] = [
            (group.min, 0.0, false),
            (mid, 0.55, true),
            (group.max, 1e308, false),
            (mid.saturating_add(1), f64::NAN, true),
        ];
        for (desired, value, with_forecast) in cases {
            let snapshot = GroupSnapshot {
                id: group.provider_id().to_owned(),
                desired,
                ready: desired,
                pending: 0,
                provider_min: 0,
                provider_max: u32::MAX,
                instance_class: "general.large".into(),
            };
            let metrics: MetricWindows = needed
                .iter()
                .map(|m| {
                    let samples = (0..3)
                        .map(|i| Sample {
                            at: now - TimeDelta::minutes(2 - i),
                            value,
                        })
                        .collect();
                    (m.clone(), samples)
                })
                .collect();
            let observation = Observation {
                now,
                group: &snapshot,
                metrics: &metrics,
                forecast: with_forecast.then_some(&forecast[..]),
                forecast_note: None,
                budget: None,
            };
            let mut memory = DecisionMemory::new();
            let (decision, update) = decide(group, &observation, &memory);
            memory.apply(&update);
            memory.record_applied(&decision);
            let _ = serde_json::to_string(&decision);
            // A second evaluation a minute later reads the memory the first left.
            let later = Observation {
                now: now + TimeDelta::minutes(1),
                ..observation
            };
            let _ = decide(group, &later, &memory);
        }
    }
}

fn trace_csv(data: &[u8]) {
    let result = if data.starts_with(&[0x1f, 0x8b]) {
        // Gzip: through the file loader, as `hoist simulate --trace x.csv.gz` reads it.
        let path = std::env::temp_dir().join(format!(
            "hoist-fuzz-trace-{}-{:?}.csv.gz",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, data).expect("cannot write a scratch file");
        let result = load_trace(&path);
        let _ = std::fs::remove_file(&path);
        result
    } else {
        parse_trace("fuzz", &text(data))
    };
    match result {
        Ok(trace) => exercise_trace(&trace),
        Err(error) => {
            let _ = (error.to_string(), error.file(), error.line());
        }
    }
}

/// The promises of `hoist_sim::trace` (a regular grid, at least two rows, finite values >= 0,
/// at most `MAX_TRACE_STEPS` steps) and its accessors.
fn exercise_trace(trace: &Trace) {
    let step_ns = trace.step.num_nanoseconds().unwrap_or(i64::MAX);
    assert!(step_ns > 0, "a trace with step {:?}", trace.step);
    assert!(
        (2..=MAX_TRACE_STEPS).contains(&trace.len()),
        "a trace of {} steps",
        trace.len()
    );
    assert!(
        trace.values.first().is_some_and(Option::is_some)
            && trace.values.last().is_some_and(Option::is_some),
        "a trace that starts or ends in a gap"
    );
    for value in trace.values.iter().flatten() {
        assert!(
            value.is_finite() && *value >= 0.0,
            "a trace value of {value}"
        );
    }
    let (start, end) = (trace.start, trace.end());
    assert!(
        end > start,
        "a trace ending at {end}, before its start {start}"
    );
    assert_eq!(
        trace.index_of(start),
        Some(0),
        "the start {start} is not step 0"
    );
    assert_eq!(
        trace.index_of(end),
        None,
        "end() = {end} (start + len × step) is inside the trace: start {start}, {} steps of {} s",
        trace.len(),
        step_ns as f64 / 1e9
    );
    let last = trace.at(trace.len() - 1);
    assert_eq!(
        trace.index_of(last),
        Some(trace.len() - 1),
        "at(len - 1) = {last} is not the last step"
    );
    let _ = (trace.max(), trace.mean(), trace.gaps(), trace.is_empty());
    let far_past = DateTime::<Utc>::MIN_UTC;
    let far_future = DateTime::<Utc>::MAX_UTC;
    for t in [far_past, start - trace.step, start, last, end, far_future] {
        let _ = trace.value_at(t);
    }
    // Windows copy their part: every pair of bounds on a small trace, short ones on a long
    // trace (one of 20 million steps is a legitimate 320 MB).
    let bounds = [
        None,
        Some(far_past),
        Some(start),
        Some(last),
        Some(end),
        Some(far_future),
    ];
    for from in bounds {
        for until in bounds {
            let short = from.is_some_and(|f| f >= last) || until.is_some_and(|u| u <= start);
            if trace.len() <= 100_000 || short {
                let part = trace.window(from, until);
                assert!(part.len() <= trace.len());
            }
        }
    }
    if trace.len() <= 100_000 {
        assert_eq!(trace.window(None, None).values, trace.values);
    }
}

/// Deserialises `T` from `data`; what deserialises serialises again.
fn decode<T: DeserializeOwned + Serialize>(data: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(data).ok()?;
    let _ = serde_json::to_vec(&value);
    Some(value)
}

fn plugin_protocol(data: &[u8]) {
    // Operation names (the loader reads them from metadata, the kit from each call).
    let name = String::from_utf8_lossy(data);
    let _ = Operation::from_wire_name(&name);

    // Requests, as the plugin's kit reads them.
    let _ = decode::<Empty>(data);
    let _ = decode::<GroupRequest>(data);
    let _ = decode::<SetDesiredRequest>(data);
    let _ = decode::<RemoveInstancesRequest>(data);
    let _ = decode::<SetInstanceClassRequest>(data);
    let _ = decode::<NameRequest>(data);
    let _ = decode::<PriceRequest>(data);
    let _ = decode::<QueryRangeRequest>(data);
    let _ = decode::<CostRequest>(data);
    let _ = decode::<CreateRequest>(data);

    // What the host reads from a plugin.
    if let Some(metadata) = decode::<Metadata>(data) {
        for operation in &metadata.operations {
            let _ = Operation::from_wire_name(operation);
        }
    }
    let _ = decode::<InstanceInfo>(data);
    if let Some(error) = decode::<WireError>(data) {
        let error = error.into_error("fuzz", "scaling.list_groups");
        let _ = (error.to_string(), format!("{error:?}"), error.kind());
    }
    if let Some(group) = decode::<ScalingGroup>(data) {
        let _ = (
            group.ready(),
            group.pending(),
            group.count_in(InstanceState::Failed),
        );
    }
    if let Some(groups) = decode::<Vec<ScalingGroup>>(data) {
        let _ = groups.iter().map(ScalingGroup::ready).sum::<u32>();
    }
    let _ = decode::<()>(data);
    let _ = decode::<Option<Activity>>(data);
    let _ = decode::<Vec<Activity>>(data);
    if let Some(class) = decode::<InstanceClass>(data) {
        exercise_class(&class);
    }
    if let Some(classes) = decode::<Vec<InstanceClass>>(data) {
        classes.iter().for_each(exercise_class);
    }
    if let Some(entries) = decode::<Vec<hoist_api::CostEntry>>(data) {
        for entry in &entries {
            let _ = (entry.amount.to_string(), entry.amount.to_f64());
        }
    }
    if let Some(price) = decode::<Price>(data) {
        let _ = (
            price.per_hour(),
            price.per_hour_exact(),
            price.amount.to_string(),
        );
    }
    if let Some(series) = decode::<Vec<TimeSeries>>(data) {
        let _ = series.iter().map(|s| s.samples.len()).sum::<usize>();
    }
    let _ = decode::<MetricKind>(data);
}

fn exercise_class(class: &InstanceClass) {
    for capacity in [
        CapacityType::OnDemand,
        CapacityType::Spot,
        CapacityType::Reserved,
    ] {
        if let Some(offering) = class.cheapest(capacity) {
            let _ = (offering.price.per_hour(), offering.price.amount.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The corpus files of `target` with their names.
    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
            .join("corpus");
        crate::runner::corpus_files(&dir, target)
            .unwrap()
            .into_iter()
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect()
    }

    #[test]
    fn policy_seeds_load_unless_named_broken() {
        for (name, data) in seeds(POLICY_FILE.name) {
            if name.starts_with("crash-") {
                continue;
            }
            let text = String::from_utf8(data).unwrap();
            let result = parse_str_with_limits(Path::new(&name), &text, &PolicyLimits::default());
            assert_eq!(
                result.is_ok(),
                !name.starts_with("broken-"),
                "{name}: {result:?}"
            );
        }
    }

    #[test]
    fn trace_seeds_parse_unless_named_bad() {
        for (name, data) in seeds(TRACE_CSV.name) {
            if name.starts_with("crash-") || name.ends_with(".gz") {
                continue;
            }
            let result = parse_trace(&name, &String::from_utf8(data).unwrap());
            assert_eq!(
                result.is_ok(),
                !name.starts_with("bad-"),
                "{name}: {result:?}"
            );
        }
    }

    #[test]
    fn plugin_seeds_are_protocol_messages() {
        for (name, data) in seeds(PLUGIN_PROTOCOL.name) {
            if name.starts_with("crash-") {
                continue;
            }
            let decodes = [
                decode::<Metadata>(&data).is_some(),
                decode::<CreateRequest>(&data).is_some(),
                decode::<InstanceInfo>(&data).is_some(),
                decode::<WireError>(&data).is_some(),
                decode::<SetDesiredRequest>(&data).is_some(),
                decode::<RemoveInstancesRequest>(&data).is_some(),
                decode::<PriceRequest>(&data).is_some(),
                decode::<QueryRangeRequest>(&data).is_some(),
                decode::<CostRequest>(&data).is_some(),
                decode::<Vec<ScalingGroup>>(&data).is_some(),
                decode::<InstanceClass>(&data).is_some(),
                decode::<Vec<TimeSeries>>(&data).is_some(),
                decode::<Vec<hoist_api::CostEntry>>(&data).is_some(),
                decode::<Vec<Activity>>(&data).is_some(),
            ];
            assert!(decodes.contains(&true), "{name} is no protocol message");
        }
    }
}
