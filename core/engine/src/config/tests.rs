//! Tests of the policy file's typed values (cron, time zone, rate limits, metric queries), the
//! limits on its YAML, and the schema built from provider factories.

use std::fmt::Write as _;
use std::path::Path;

use super::*;

const HEAD: &str = "providers:\n  sim:\n    simulated: {}\ngroups:\n";

fn parse(text: &str) -> Result<PolicyDocument, ConfigErrors> {
    parse_str_with_limits(Path::new("policy.yaml"), text, &PolicyLimits::default())
}

fn errors(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.0,
    }
}

/// The error on `field`, or a panic listing the errors.
fn error_on<'a>(errors: &'a [ConfigError], field: &str) -> &'a ConfigError {
    errors
        .iter()
        .find(|e| e.field.as_deref() == Some(field))
        .unwrap_or_else(|| panic!("no error on {field}: {}", ConfigErrors(errors.to_vec())))
}

fn one_group(body: &str) -> String {
    format!("{HEAD}  - name: web\n    provider: sim\n    min: 1\n    max: 10\n{body}")
}

#[test]
fn cron_and_time_zone_are_parsed_when_the_file_is_read_and_written_back_as_text() {
    let text = one_group(
        "    policies:\n      - scheduled: { cron: \"0 8 * * MON-FRI\", timezone: Europe/Berlin, duration: 10h, min: 3 }\n      - scheduled: { cron: \"0 20 * * *\", duration: 1h, max: 2 }\n",
    );
    let doc = parse(&text).unwrap();
    let group = &doc.policy.groups[0];
    let PolicyConfig::Scheduled(s) = &group.policies[0] else {
        panic!("not scheduled")
    };
    assert_eq!(s.cron.as_str(), "0 8 * * MON-FRI");
    assert_eq!(s.timezone.0, chrono_tz::Europe::Berlin);
    let PolicyConfig::Scheduled(evening) = &group.policies[1] else {
        panic!("not scheduled")
    };
    assert_eq!(evening.timezone, TimeZone::UTC, "UTC by default");
    let written = serde_json::to_value(s).unwrap();
    assert_eq!(written["cron"], "0 8 * * MON-FRI");
    assert_eq!(written["timezone"], "Europe/Berlin");
}

#[test]
fn a_bad_cron_and_a_bad_time_zone_are_reported_at_their_lines_with_every_other_problem() {
    let text = format!(
        "{HEAD}  - name: web\n    provider: sim\n    min: 20\n    max: 10\n    policies:\n      - scheduled:\n          cron: \"0 25 * * *\"\n          timezone: Mars/Olympus\n          duration: 1h\n          min: 3\n      - scheduled:\n          cron: \"0 8 * *\"\n          duration: 1h\n          min: 3\n"
    );
    let errors = errors(&text);
    let min = error_on(&errors, "groups[0].min");
    assert_eq!(min.line, Some(7));
    let cron = error_on(&errors, "groups[0].policies[0].scheduled.cron");
    assert_eq!(cron.line, Some(11));
    assert!(
        cron.message
            .contains("invalid cron expression `0 25 * * *`"),
        "{cron}"
    );
    let tz = error_on(&errors, "groups[0].policies[0].scheduled.timezone");
    assert_eq!(tz.line, Some(12));
    assert!(
        tz.message.contains("unknown time zone `Mars/Olympus`"),
        "{tz}"
    );
    let fields = error_on(&errors, "groups[0].policies[1].scheduled.cron");
    assert_eq!(fields.line, Some(16));
    assert!(fields.message.contains("five fields"), "{fields}");
    assert_eq!(errors.len(), 4, "{}", ConfigErrors(errors.clone()));
    // In the order of the file.
    let lines: Vec<u64> = errors.iter().filter_map(|e| e.line).collect();
    assert!(lines.is_sorted(), "{lines:?}");
    assert!(
        cron.to_string().starts_with(
            "policy.yaml:11:17: groups[0].policies[0].scheduled.cron: invalid cron expression"
        ),
        "{cron}"
    );
}

fn limits_of(doc: &PolicyDocument) -> (Vec<RateLimit>, Vec<RateLimit>) {
    let PolicyConfig::TargetTracking(tt) = &doc.policy.groups[0].policies[0] else {
        panic!("not target tracking")
    };
    (tt.scale_up.limits.clone(), tt.scale_down.limits.clone())
}

#[test]
fn both_rate_limit_forms_parse_and_write_back_as_written() {
    let text = one_group(
        "    policies:\n      - target_tracking:\n          metric: utilization\n          target: 0.6\n          scale_up:\n            limits:\n              - { instances: 4, period: 15s }\n              - { percent: 100, period: 1m }\n          scale_down:\n            limits:\n              - percent: 10\n                period: 5m\n",
    );
    let doc = parse(&text).unwrap();
    let (up, down) = limits_of(&doc);
    assert_eq!(up[0].amount, LimitAmount::Instances(4));
    assert_eq!(up[0].period.get().as_secs(), 15);
    assert_eq!(up[1].amount, LimitAmount::Percent(100.0));
    assert_eq!(up[1].period.get().as_secs(), 60);
    assert_eq!(down[0].amount, LimitAmount::Percent(10.0));
    let written = serde_json::to_value(&up).unwrap();
    assert_eq!(
        written,
        serde_json::json!([{"instances": 4, "period": "15s"}, {"percent": 100.0, "period": "1m"}])
    );
    let back: Vec<RateLimit> = serde_json::from_value(written).unwrap();
    assert_eq!(back, up);
}

#[test]
fn the_default_rate_limits_are_those_of_kubernetes() {
    let text =
        one_group("    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n");
    let (up, down) = limits_of(&parse(&text).unwrap());
    let amounts: Vec<LimitAmount> = up.iter().map(|l| l.amount).collect();
    assert_eq!(
        amounts,
        [LimitAmount::Instances(4), LimitAmount::Percent(100.0)]
    );
    assert_eq!(down[0].amount, LimitAmount::Percent(100.0));
}

#[test]
fn a_rate_limit_with_both_forms_is_refused_at_its_file_line_and_field() {
    let text = format!(
        "{HEAD}  - name: web\n    provider: sim\n    min: 20\n    max: 10\n    policies:\n      - target_tracking:\n          metric: utilization\n          target: 0.6\n          scale_up:\n            limits:\n              - instances: 4\n                percent: 100\n                period: 15s\n              - {{ period: 15s }}\n"
    );
    let errors = errors(&text);
    let both = error_on(
        &errors,
        "groups[0].policies[0].target_tracking.scale_up.limits[0].percent",
    );
    assert_eq!(both.line, Some(16));
    assert!(both.message.contains("not both"), "{both}");
    assert!(both.to_string().starts_with("policy.yaml:16:"), "{both}");
    let neither = error_on(
        &errors,
        "groups[0].policies[0].target_tracking.scale_up.limits[1]",
    );
    assert_eq!(neither.line, Some(18));
    assert!(
        neither.message.contains("needs `instances` or `percent`"),
        "{neither}"
    );
    // The other problems of the file are still reported.
    error_on(&errors, "groups[0].min");
    assert_eq!(errors.len(), 3, "{}", ConfigErrors(errors.clone()));
}

#[test]
fn rate_limit_values_are_still_checked() {
    let text = one_group(
        "    policies:\n      - target_tracking:\n          metric: utilization\n          target: 0.6\n          scale_down:\n            limits: [{ instances: 0, period: 15s }, { percent: -5, period: 0s }]\n",
    );
    let errors = errors(&text);
    let base = "groups[0].policies[0].target_tracking.scale_down.limits";
    error_on(&errors, &format!("{base}[0].instances"));
    error_on(&errors, &format!("{base}[1].percent"));
    error_on(&errors, &format!("{base}[1].period"));
}

#[test]
fn metric_queries_are_keyed_by_signal() {
    let text = one_group(
        "    metrics:\n      queries:\n        request_rate: 'sum(rate(http_requests_total{service=\"{group}\"}[2m]))'\n        jobs: 'sum(jobs{queue=\"{group}\"})'\n    policies:\n      - target_tracking: { metric: request_rate, target: 100 }\n      - threshold: { metric: { custom: jobs }, upper: 100 }\n",
    );
    let doc = parse(&text).unwrap();
    let queries = &doc.policy.groups[0].metrics.as_ref().unwrap().queries;
    assert!(queries[&MetricKind::RequestRate].starts_with("sum(rate("));
    assert_eq!(
        queries[&MetricKind::Custom("jobs".into())],
        "sum(jobs{queue=\"{group}\"})"
    );
    // Written back by name.
    let written = serde_json::to_value(doc.policy.groups[0].metrics.as_ref().unwrap()).unwrap();
    assert!(written["queries"]["request_rate"].is_string(), "{written}");
    assert!(written["queries"]["jobs"].is_string(), "{written}");
}

#[test]
fn an_unknown_metric_query_key_is_refused_at_its_line() {
    let text = one_group(
        "    metrics:\n      queries:\n        request_rat: 'sum(rate(x[2m]))'\n    policies:\n      - target_tracking: { metric: request_rate, target: 100 }\n",
    );
    let errors = errors(&text);
    let typo = error_on(&errors, "groups[0].metrics.queries.request_rat");
    assert_eq!(typo.line, Some(11));
    assert!(
        typo.message.contains("unknown signal `request_rat`"),
        "{typo}"
    );
    assert_eq!(errors.len(), 1);
}

#[test]
fn queries_for_every_metric_the_group_reads_are_accepted() {
    // The vertical block's memory metric, the cost's work metric and the in-service count
    // (read by `hoist recommend`) are read without a policy naming them.
    let text = one_group(
        "    metrics:\n      queries:\n        mem_share: 'avg(mem{group=\"{group}\"})'\n        served: 'sum(rate(requests[1m]))'\n        in_service_instances: 'count(up{group=\"{group}\"})'\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n    vertical: { memory_metric: mem_share }\n    cost: { work_metric: served }\n",
    );
    let doc = parse(&text).unwrap();
    assert_eq!(
        doc.policy.groups[0].metrics.as_ref().unwrap().queries.len(),
        3
    );
    // Without the vertical block, its metric's query is read by nothing.
    let unread = text.replace("    vertical: { memory_metric: mem_share }\n", "");
    let errors = errors(&unread);
    let e = error_on(&errors, "groups[0].metrics.queries.mem_share");
    assert!(e.message.contains("unknown signal `mem_share`"), "{e}");
    assert_eq!(errors.len(), 1);
}

#[test]
fn a_custom_metric_named_like_a_built_in_signal_is_refused() {
    let text = one_group(
        "    policies:\n      - threshold: { metric: { custom: utilization }, upper: 0.8 }\n",
    );
    let errors = errors(&text);
    let e = error_on(&errors, "groups[0].policies[0].threshold.metric");
    assert!(e.message.contains("built-in signal"), "{e}");
}

/// A policy file of `n` groups, each with a few policies and guards (about 40 YAML nodes).
fn many_groups(n: usize) -> String {
    let mut text = String::from(HEAD);
    for i in 0..n {
        write!(
            text,
            "  - name: web-{i:05}\n    provider: sim\n    min: 1\n    max: 20\n    policies:\n      - target_tracking: {{ metric: utilization, target: 0.6 }}\n      - threshold: {{ metric: latency_p95, upper: 0.25, lower: 0.05, periods: 2 }}\n      - scheduled: {{ cron: \"0 8 * * MON-FRI\", timezone: Europe/Berlin, duration: 10h, min: 3 }}\n    guards:\n      scale_in_cooldown: 5m\n      max_scale_out_step: 5\n"
        )
        .unwrap();
    }
    text
}

#[test]
fn a_file_of_ten_thousand_groups_loads() {
    let text = many_groups(10_000);
    let doc = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(doc.policy.groups.len(), 10_000);
    assert_eq!(doc.policy.groups[9_999].name, "web-09999");
    // And errors found later (a provider's settings) still point at their lines.
    let last = doc.error_at("groups[9999].guards.max_scale_out_step", "an error");
    assert_eq!(last.line, Some(4 + 9_999 * 11 + 11));
}

#[test]
fn one_anchor_shared_by_thousands_of_groups_loads() {
    let mut text = String::from(HEAD);
    for i in 0..5_000 {
        if i == 0 {
            text.push_str("  - name: g0\n    provider: sim\n    min: 1\n    max: 9\n    policies: &standard\n      - target_tracking: { metric: utilization, target: 0.6 }\n");
        } else {
            writeln!(
                text,
                "  - {{ name: g{i}, provider: sim, min: 1, max: 9, policies: *standard }}"
            )
            .unwrap();
        }
    }
    let doc = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(doc.policy.groups.len(), 5_000);
    assert_eq!(doc.policy.groups[4_999].policies.len(), 1);
}

/// A "billion laughs": nine levels of nine aliases, 9^9 strings from 10 lines.
fn billion_laughs() -> String {
    let mut text = String::from(
        "alerts:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let (prev, name) = (pair[0], pair[1]);
        let refs = vec![format!("*{prev}"); 9].join(",");
        writeln!(text, "  {name}: &{name} [{refs}]").unwrap();
    }
    text.push_str(HEAD);
    text.push_str("  - { name: web, provider: sim, min: 1, max: 2, policies: [{ target_tracking: { metric: utilization, target: 0.6 } }] }\n");
    text
}

#[test]
fn an_alias_bomb_is_refused_saying_which_limit_and_how_to_raise_it() {
    let started = std::time::Instant::now();
    let errors = errors(&billion_laughs());
    assert_eq!(errors.len(), 1, "{}", ConfigErrors(errors.clone()));
    let e = &errors[0];
    let text = e.to_string();
    assert!(text.starts_with("policy.yaml:"), "{text}");
    assert!(e.line.is_some(), "{text}");
    assert!(text.contains("YAML values, lists and maps"), "{text}");
    assert!(text.contains("billion laughs"), "{text}");
    assert!(text.contains("HOIST_POLICY_MAX_NODES="), "{text}");
    assert!(!text.contains("budget breached"), "{text}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn deep_nesting_is_refused_saying_which_limit_and_how_to_raise_it() {
    let depth = 10_000;
    let text = format!(
        "alerts:\n  x: {}{}\n{HEAD}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "{}", ConfigErrors(errors.clone()));
    let text = errors[0].to_string();
    assert!(text.contains("nested"), "{text}");
    assert!(text.contains("HOIST_POLICY_MAX_DEPTH="), "{text}");
}

#[test]
fn a_limit_can_be_raised() {
    let text = many_groups(100);
    let small = PolicyLimits {
        max_nodes: 1_000,
        ..PolicyLimits::default()
    };
    let refused = parse_str_with_limits(Path::new("policy.yaml"), &text, &small).unwrap_err();
    let message = refused.to_string();
    assert!(message.contains("more than 1000 YAML values"), "{message}");
    assert!(message.contains("HOIST_POLICY_MAX_NODES=4000"), "{message}");
    let raised = PolicyLimits {
        max_nodes: 10_000,
        ..small
    };
    assert!(parse_str_with_limits(Path::new("policy.yaml"), &text, &raised).is_ok());
}

#[derive(Debug)]
struct FakeFactory(&'static str, serde_json::Value);

#[async_trait::async_trait]
impl hoist_api::registry::ProviderFactory for FakeFactory {
    fn kind(&self) -> &str {
        self.0
    }

    fn settings_schema(&self) -> serde_json::Value {
        self.1.clone()
    }

    async fn build(
        &self,
        _ctx: hoist_api::registry::BuildContext<'_>,
    ) -> hoist_api::Result<hoist_api::registry::BuiltProvider> {
        Err(hoist_api::Error::unsupported("a fake"))
    }
}

/// Every `$ref` of `value` that does not resolve in `root`.
fn dangling_refs(root: &serde_json::Value, value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref" {
                    let target = child.as_str().unwrap_or_default();
                    let pointer = target.strip_prefix('#').unwrap_or(target);
                    if root.pointer(pointer).is_none() {
                        out.push(target.to_owned());
                    }
                } else {
                    dangling_refs(root, child, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dangling_refs(root, v, out)),
        _ => {}
    }
}

#[test]
fn the_schema_has_one_branch_per_provider_factory_with_its_own_settings() {
    let mut registry = hoist_api::registry::ProviderRegistry::new();
    hoist_sim::register_builtins(&mut registry);
    // A factory whose schema carries its own definitions, named like one of the policy file's.
    registry.register(std::sync::Arc::new(FakeFactory(
        "acme",
        serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": { "region": { "$ref": "#/$defs/Region" }, "period": { "$ref": "#/$defs/HumanDuration" } },
            "$defs": { "Region": { "type": "string" }, "HumanDuration": { "type": "integer" } }
        }),
    )));
    registry.register(std::sync::Arc::new(FakeFactory(
        PLUGIN_KIND,
        serde_json::json!({
            "type": "object",
            "properties": { "plugin": { "type": "string" }, "config": { "type": "object" } },
            "required": ["plugin"]
        }),
    )));
    let schema = json_schema_for(&registry);
    let provider = &schema["$defs"]["Provider"];
    let branches = provider["oneOf"].as_array().expect("oneOf");
    assert_eq!(branches.len(), 3);
    let acme = &branches[0];
    assert_eq!(acme["required"], serde_json::json!(["acme"]));
    assert_eq!(acme["additionalProperties"], false);
    assert_eq!(
        acme["properties"]["acme"]["properties"]["region"]["$ref"],
        "#/$defs/acme.Region"
    );
    assert!(acme["properties"]["acme"].get("$schema").is_none());
    // The plugin kind describes the provider's whole map.
    assert_eq!(branches[1]["required"], serde_json::json!(["plugin"]));
    // The simulated cloud's own settings, with their definitions moved alongside.
    let sim = &branches[2]["properties"]["simulated"];
    assert!(sim["properties"]["seed"].is_object(), "{sim}");
    // The policy file's own HumanDuration is untouched; the factory's moved under its kind.
    assert_eq!(schema["$defs"]["acme.HumanDuration"]["type"], "integer");
    let plain = json_schema();
    for (name, def) in plain["$defs"].as_object().unwrap() {
        if name != "Provider" {
            assert_eq!(&schema["$defs"][name], def, "{name} changed");
        }
    }
    let mut dangling = Vec::new();
    dangling_refs(&schema, &schema, &mut dangling);
    assert!(dangling.is_empty(), "dangling references: {dangling:?}");
    // metrics_sources share the definition.
    assert_eq!(
        schema["properties"]["metrics_sources"]["additionalProperties"]["$ref"],
        "#/$defs/Provider"
    );
}

#[test]
fn the_schema_keeps_typed_values_as_strings_and_rate_limits_as_one_form() {
    let schema = json_schema();
    let defs = &schema["$defs"];
    assert_eq!(defs["CronExpr"]["type"], "string");
    assert_eq!(defs["TimeZone"]["type"], "string");
    let forms = defs["RateLimit"]["anyOf"].as_array().expect("anyOf");
    assert_eq!(forms.len(), 2);
    for (form, key) in forms.iter().zip(["instances", "percent"]) {
        assert_eq!(form["additionalProperties"], false, "{form}");
        let required: Vec<&str> = form["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert!(
            required.contains(&key) && required.contains(&"period"),
            "{form}"
        );
    }
    let queries = &defs["GroupMetricsConfig"]["properties"]["queries"];
    assert_eq!(
        queries["additionalProperties"]["type"], "string",
        "{queries}"
    );
}

fn with_budgets(budgets: &str) -> String {
    format!(
        "{}    labels: {{ team: web }}\n    policies:\n      - target_tracking: {{ metric: utilization, target: 0.6 }}\n{budgets}",
        one_group("")
    )
}

#[test]
fn a_good_budget_section_loads_with_its_conversion() {
    let text = with_budgets(
        "costs:\n  currency: USD\n  exchange_rates:\n    as_of: 2026-11-30\n    rates: { EUR: 1.08 }\nbudgets:\n  - name: web-eur\n    scope: { tag: { team: web } }\n    period: monthly\n    amount: 100\n    currency: EUR\n    action: cap\n  - name: all\n    period: { custom: { every: 10d, starting: 2026-03-01T00:00:00Z } }\n    amount: 5\n",
    );
    let doc = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let b = &doc.policy.budgets;
    assert_eq!(b[0].action, budget::Rung::Cap);
    assert_eq!(b[1].scope, budget::BudgetScope::All);
    let converter = budget::Converter::new(&doc.policy.costs);
    let c = converter.converted(100.0, "EUR").unwrap();
    assert!((c.amount - 108.0).abs() < 1e-9);
    assert_eq!(c.via.unwrap().2.to_string(), "2026-11-30");
}

#[test]
fn bad_budgets_are_refused_at_their_file_line_and_field() {
    let text = with_budgets(
        "budgets:\n  - name: negative\n    period: daily\n    amount: -5\n  - name: euros\n    period: daily\n    amount: 10\n    currency: EUR\n  - name: nowhere\n    scope: { provider: aws }\n    period: daily\n    amount: 10\n  - name: nogroup\n    scope: { group: api }\n    period: daily\n    amount: 10\n  - name: notag\n    scope: { tag: { team: data } }\n    period: weekly\n    amount: 10\n    alert_on: { actual: [0, 50] }\n",
    );
    let errors = errors(&text);
    // The group's lines: 1-4 head, 5-8 group bounds, 9-11 labels and policy; budgets from 12.
    let negative = error_on(&errors, "budgets[0].amount");
    assert_eq!(negative.line, Some(15), "{negative}");
    assert!(negative.to_string().contains("policy.yaml"), "{negative}");
    assert!(negative.message.contains("positive"), "{negative}");
    let euros = error_on(&errors, "budgets[1].currency");
    assert_eq!(euros.line, Some(19));
    assert!(
        euros.message.contains("no exchange rate from EUR"),
        "{euros}"
    );
    let provider = error_on(&errors, "budgets[2].scope.provider");
    assert!(
        provider.message.contains("unknown provider `aws`"),
        "{provider}"
    );
    assert_eq!(provider.line, Some(21));
    let group = error_on(&errors, "budgets[3].scope.group");
    assert!(group.message.contains("unknown group `api`"), "{group}");
    let tag = error_on(&errors, "budgets[4].scope.tag");
    assert!(tag.message.contains("no group has the labels"), "{tag}");
    let threshold = error_on(&errors, "budgets[4].alert_on.actual[0]");
    assert!(threshold.message.contains("percentage"), "{threshold}");
}

#[test]
fn budget_periods_contain_their_time() {
    use chrono::TimeZone as _;
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 12, 31, 18, 30, 0)
        .unwrap();
    let (s, e) = budget::BudgetPeriod::Monthly.containing(at);
    assert_eq!(
        (s.to_rfc3339(), e.to_rfc3339()),
        (
            "2026-12-01T00:00:00+00:00".into(),
            "2027-01-01T00:00:00+00:00".into()
        )
    );
    let (s, e) = budget::BudgetPeriod::Weekly.containing(at);
    assert_eq!(
        (s.to_rfc3339(), e.to_rfc3339()),
        (
            "2026-12-28T00:00:00+00:00".into(),
            "2027-01-04T00:00:00+00:00".into()
        )
    );
    let custom = budget::BudgetPeriod::Custom {
        every: crate::duration::HumanDuration::from_secs(10 * 86_400),
        starting: chrono::Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
    };
    let (s, e) = custom.containing(at);
    assert_eq!(
        (s.to_rfc3339(), e.to_rfc3339()),
        (
            "2026-12-31T00:00:00+00:00".into(),
            "2027-01-10T00:00:00+00:00".into()
        )
    );
}

#[test]
fn absurd_budget_figures_are_refused_not_overflowed() {
    let text = with_budgets(
        "costs:\n  exchange_rates:\n    as_of: 2026-11-30\n    rates: { EUR: 1e27 }\nbudgets:\n  - name: huge\n    period: { custom: { every: 10000d, starting: 2026-03-01T00:00:00Z } }\n    amount: 1e27\n    currency: EUR\n",
    );
    let errors = errors(&text);
    assert!(
        error_on(&errors, "costs.exchange_rates.rates.EUR")
            .message
            .contains("at most")
    );
    assert!(
        error_on(&errors, "budgets[0].amount")
            .message
            .contains("at most")
    );
    assert!(
        error_on(&errors, "budgets[0].period.custom.every")
            .message
            .contains("at most")
    );
    // Built in code past validation, the period arithmetic and the conversion still do not
    // panic.
    use chrono::TimeZone as _;
    let period = budget::BudgetPeriod::Custom {
        every: crate::duration::HumanDuration(std::time::Duration::from_secs(u64::MAX / 4)),
        starting: chrono::Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
    };
    let (s, e) = period.containing(chrono::Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap());
    assert!(s < e);
    let converter = budget::Converter::new(&budget::CostsConfig {
        exchange_rates: Some(budget::ExchangeRates {
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            rates: [("EUR".to_owned(), hoist_api::model::Decimal::MAX)].into(),
        }),
        ..budget::CostsConfig::default()
    });
    assert_eq!(
        converter.convert(hoist_api::model::Decimal::MAX, "EUR"),
        None
    );
}

#[test]
fn a_group_drain_is_read_and_one_beyond_two_hours_is_refused_at_its_line() {
    let policies = "    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n";
    let doc = parse(&one_group(&format!("    drain: 5m\n{policies}"))).unwrap();
    assert_eq!(
        doc.policy.groups[0].drain,
        Some(HumanDuration::from_secs(300))
    );
    let written = serde_json::to_value(&doc.policy.groups[0]).unwrap();
    assert_eq!(written["drain"], "5m");

    let without = parse(&one_group(policies)).unwrap();
    assert_eq!(without.policy.groups[0].drain, None);
    let written = serde_json::to_value(&without.policy.groups[0]).unwrap();
    assert!(
        written.get("drain").is_none(),
        "no drain is not written: {written}"
    );

    assert!(parse(&one_group(&format!("    drain: 2h\n{policies}"))).is_ok());
    let errors = errors(&one_group(&format!("    drain: 2h1s\n{policies}")));
    let drain = error_on(&errors, "groups[0].drain");
    assert_eq!(drain.line, Some(9));
    assert!(drain.message.contains("2h"), "{drain}");

    let schema = json_schema();
    let field = &schema["$defs"]["GroupConfig"]["properties"]["drain"];
    assert!(
        field["description"]
            .as_str()
            .is_some_and(|d| d.contains("drain")),
        "{field}"
    );
}

const POOL: &str = "providers:
  cheap: {simulated: {}}
  steady: {simulated: {}}
pools:
  - name: web
    min: 2
    max: 30
    policies:
      - target_tracking: { metric: utilization, target: 0.6 }
    members:
      - { provider: cheap, group: web, max: 20 }
      - { provider: steady, group: web, min: 2, max: 20, min_share: 0.2 }
";

#[test]
fn a_pool_parses_and_the_same_group_id_sits_on_two_providers() {
    let doc = parse(POOL).unwrap();
    let pool = &doc.policy.pools[0];
    assert_eq!(pool.members.len(), 2);
    assert_eq!(pool.members[0].key(), "cheap/web");
    assert_eq!(pool.members[1].min_share, Some(0.2));
    let group = pool.as_group();
    assert_eq!(group.provider, super::pool::POOL_PROVIDER);
    assert_eq!((group.min, group.max), (2, 30));
    // Two groups named alike on two providers are two groups.
    let two = "providers:\n  a: {simulated: {}}\n  b: {simulated: {}}\ngroups:\n  - {name: web, provider: a, min: 1, max: 2, policies: [{target_tracking: {metric: utilization, target: 0.6}}]}\n  - {name: web, provider: b, min: 1, max: 2, policies: [{target_tracking: {metric: utilization, target: 0.6}}]}\n";
    parse(two).unwrap();
    let twice = two.replace("provider: b", "provider: a");
    let e = errors(&twice);
    assert!(
        error_on(&e, "groups[1].name")
            .message
            .contains("duplicate group `web` on provider `a`")
    );
}

#[test]
fn a_pool_whose_members_cannot_hold_it_is_refused_at_its_line() {
    let text = POOL.replace("max: 30", "max: 50");
    let e = errors(&text);
    let err = error_on(&e, "pools[0].max");
    assert!(
        err.message.contains("its members' max add up to 40"),
        "{}",
        err.message
    );
    assert_eq!(err.line, Some(7));
    let text = POOL.replace("min: 2\n    max: 30", "min: 1\n    max: 30");
    let e = errors(&text);
    assert!(
        error_on(&e, "pools[0].min")
            .message
            .contains("members' min add up to 2")
    );
}

#[test]
fn pool_members_are_checked() {
    let text = POOL
        .replace(
            "provider: cheap, group: web",
            "provider: nowhere, group: web",
        )
        .replace("min_share: 0.2", "min_share: 1.5");
    let e = errors(&text);
    assert!(
        error_on(&e, "pools[0].members[0].provider")
            .message
            .contains("unknown provider `nowhere`")
    );
    assert!(
        error_on(&e, "pools[0].members[1].min_share")
            .message
            .contains("between 0 and 1")
    );
    // A member that is also scaled on its own.
    let text = format!(
        "{POOL}groups:\n  - {{name: web, provider: cheap, min: 1, max: 2, policies: [{{target_tracking: {{metric: utilization, target: 0.6}}}}]}}\n"
    );
    let e = errors(&text);
    assert!(
        error_on(&e, "pools[0].members[0].group")
            .message
            .contains("also scaled on its own")
    );
    // A pool's own policies are checked as a group's.
    let text = POOL.replace("target: 0.6", "target: -1");
    let e = errors(&text);
    error_on(&e, "pools[0].policies[0].target_tracking.target");
    // The name pools are recorded under is not a provider's.
    let text = POOL.replace(
        "  steady: {simulated: {}}",
        "  steady: {simulated: {}}\n  pool: {simulated: {}}",
    );
    let e = errors(&text);
    error_on(&e, "providers.pool");
}
