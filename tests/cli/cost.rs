//! `hoist cost` as a user runs it: on a policy for the simulated cloud (whose missing ledger it
//! writes by running the policy first), on ledgers the tests write or spoil, and on a policy
//! with a real provider and no ledger.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn hoist(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
    command.current_dir(dir);
    command
}

/// One simulated group `web` over one day of virtual time, with a daily budget on it.
fn policy_file(dir: &Path) -> PathBuf {
    let path = dir.join("web.yaml");
    std::fs::write(
        &path,
        r"providers:
  sim:
    simulated:
      seed: 42
      start: 2026-03-02T00:00:00Z
      boot_delay: 2m
      groups:
        web:
          instance_class: general.large
          desired: 10
          work_per_instance: 100
          demand:
            base: 1500
            daily_amplitude: 0.6
            peak_hour: 15
            weekend_factor: 0.6
            noise: 0.05
            spikes_per_day: 1
            spike_magnitude: 0.8
run:
  interval: 1m
  duration: 1d
budgets: [{name: web-daily, scope: {group: web}, period: daily, amount: 30, action: cap}]
groups:
  - name: web
    provider: sim
    min: 3
    max: 60
    policies:
      - target_tracking:
          metric: utilization
          target: 0.6
    guards:
      scale_in_cooldown: 5m
",
    )
    .unwrap();
    path
}

fn success(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn cost_json(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = hoist(dir)
        .args(["cost", "web.yaml", "--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    serde_json::from_str(&success(out)).unwrap()
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The "metered" figure of `hoist run -q`'s summary line for provider `sim`.
fn metered_by_hoist_run(dir: &Path, ledger: &str) -> f64 {
    let out = hoist(dir)
        .args(["run", "-q", "web.yaml", "--cost-ledger", ledger])
        .output()
        .unwrap();
    let text = success(out);
    let line = text
        .lines()
        .find(|l| l.contains("sim") && l.contains("metered"))
        .unwrap_or_else(|| panic!("no metered cost in:\n{text}"));
    let after = line
        .split("metered")
        .nth(1)
        .unwrap()
        .trim_start_matches(" cost on sim:");
    after
        .split_whitespace()
        .find_map(|w| w.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

/// RFC 4180 records (quoted fields with doubled quotes, CRLF or LF line ends).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[test]
fn cost_without_a_ledger_runs_the_simulated_policy_and_names_group_and_budget() {
    let dir = tempfile::tempdir().unwrap();
    policy_file(dir.path());
    let out = hoist(dir.path())
        .args(["cost", "web.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let table = success(out);
    assert!(
        stderr.contains("running") && stderr.contains("simulated"),
        "the auto-run is not announced: {stderr}"
    );
    assert!(dir.path().join("hoist-costs.jsonl").exists());
    assert!(table.contains("web"), "{table}");
    assert!(table.contains("web-daily"), "{table}");
    assert!(table.contains("TOTAL"), "{table}");
    // A second report reads the ledger the first one wrote, without running again.
    let out = hoist(dir.path())
        .args(["cost", "web.yaml"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("running"),
        "ran again"
    );
    assert_eq!(success(out), table);
}

#[test]
fn cost_json_total_is_the_sum_of_groups_and_matches_the_metered_cost_of_hoist_run() {
    let dir = tempfile::tempdir().unwrap();
    policy_file(dir.path());
    let report = cost_json(dir.path(), &[]);
    for key in [
        "groups",
        "providers",
        "total",
        "budgets",
        "currency",
        "as_of",
    ] {
        assert!(report.get(key).is_some(), "no {key} in {report}");
    }
    assert_eq!(report["currency"], "USD");
    let groups = report["groups"].as_array().unwrap();
    assert!(!groups.is_empty());
    let sum: f64 = groups.iter().map(|g| f(&g["period_to_date"])).sum();
    let total = f(&report["total"]["period_to_date"]);
    assert!(total > 0.0, "{report}");
    assert!(
        (total - sum).abs() < 1e-6,
        "total {total} against groups {sum}"
    );
    assert!((f(&report["providers"]["sim"]["period_to_date"]) - total).abs() < 1e-6);
    assert!(f(&report["total"]["forecast"]) >= total);
    let metered = metered_by_hoist_run(dir.path(), "other.jsonl");
    assert!(
        (total - metered).abs() <= metered * 0.01,
        "hoist cost says {total}, hoist run metered {metered}"
    );
    let budget = &report["budgets"][0];
    assert_eq!(budget["budget"], "web-daily");
    assert_eq!(f(&budget["amount"]), 30.0);
}

#[test]
fn cost_adds_up_several_runs_appended_to_one_ledger() {
    let dir = tempfile::tempdir().unwrap();
    policy_file(dir.path());
    let once = metered_by_hoist_run(dir.path(), "a.jsonl");
    let again = metered_by_hoist_run(dir.path(), "b.jsonl");
    // Two runs in one ledger, as wall-clock runs append to it.
    let mut both = std::fs::read_to_string(dir.path().join("a.jsonl")).unwrap();
    both.push_str(&std::fs::read_to_string(dir.path().join("b.jsonl")).unwrap());
    std::fs::write(dir.path().join("both.jsonl"), both).unwrap();
    let report = cost_json(dir.path(), &["--ledger", "both.jsonl"]);
    let total = f(&report["total"]["period_to_date"]);
    assert!(
        (total - (once + again)).abs() <= (once + again) * 0.01,
        "two runs of {once} and {again}, hoist cost says {total}"
    );
}

#[test]
fn a_second_run_in_virtual_time_replaces_the_ledger_instead_of_counting_the_hours_twice() {
    let dir = tempfile::tempdir().unwrap();
    policy_file(dir.path());
    metered_by_hoist_run(dir.path(), "same.jsonl");
    let again = metered_by_hoist_run(dir.path(), "same.jsonl");
    let report = cost_json(dir.path(), &["--ledger", "same.jsonl"]);
    let total = f(&report["total"]["period_to_date"]);
    assert!(
        (total - again).abs() <= again * 0.01,
        "the second run metered {again}, hoist cost says {total}"
    );
}

#[test]
fn cost_at_an_earlier_time_counts_only_what_was_spent_by_then() {
    let dir = tempfile::tempdir().unwrap();
    policy_file(dir.path());
    let whole = cost_json(dir.path(), &[]);
    let noon = cost_json(dir.path(), &["--at", "2026-03-02T12:00:00Z"]);
    assert_eq!(noon["as_of"], "2026-03-02T12:00:00Z");
    let (a, b) = (
        f(&noon["total"]["period_to_date"]),
        f(&whole["total"]["period_to_date"]),
    );
    assert!(a > 0.0 && a < b, "at noon {a}, at the end {b}");
    // The budget as of noon is in its first day, with spend of its own.
    assert_eq!(noon["budgets"][0]["period_start"], "2026-03-02T00:00:00Z");
    assert!(f(&noon["budgets"][0]["spent"]) > 0.0);
}

#[test]
fn cost_markdown_prints_tables() {
    let dir = tempfile::tempdir().unwrap();
    policy_file(dir.path());
    let out = hoist(dir.path())
        .args(["cost", "web.yaml", "--format", "markdown"])
        .output()
        .unwrap();
    let text = success(out);
    assert!(text.contains("| PROVIDER | GROUP |"), "{text}");
    assert!(text.contains("| --- |"), "{text}");
    assert!(text.contains("| web-daily |"), "{text}");
}

/// The columns FOCUS 1.0 and 1.1 require, or require when the provider has the construct
/// (present, possibly empty).
const FOCUS_REQUIRED: [&str; 43] = [
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
];

/// The FOCUS 1.1 columns `hoist cost --focus` writes, in order.
const FOCUS_11: [&str; 50] = [
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "CapacityReservationId",
    "CapacityReservationStatus",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
];

#[test]
fn cost_focus_export_has_the_focus_columns_and_adds_up_to_the_report() {
    let dir = tempfile::tempdir().unwrap();
    policy_file(dir.path());
    let report = cost_json(dir.path(), &["--focus", "focus.csv"]);
    let text = std::fs::read_to_string(dir.path().join("focus.csv")).unwrap();
    let rows = parse_csv(&text);
    let header = &rows[0];
    assert_eq!(header, &FOCUS_11.map(String::from).to_vec());
    for column in FOCUS_REQUIRED {
        assert!(header.iter().any(|h| h == column), "no {column}");
    }
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let body = &rows[1..];
    assert!(body.len() >= 20, "{} rows for a day", body.len());
    let mut billed = 0.0;
    for row in body {
        assert_eq!(row.len(), header.len(), "{row:?}");
        let cost: f64 = row[col("BilledCost")].parse().unwrap();
        billed += cost;
        assert_eq!(row[col("EffectiveCost")], row[col("BilledCost")]);
        assert!(
            row[col("ChargePeriodStart")] < row[col("ChargePeriodEnd")],
            "{row:?}"
        );
        assert!(row[col("ChargePeriodStart")].ends_with('Z'));
        assert!(row[col("BillingPeriodStart")] <= row[col("ChargePeriodStart")]);
        assert_eq!(row[col("ChargeCategory")], "Usage");
        assert_eq!(row[col("ChargeClass")], "");
        assert_eq!(row[col("ChargeFrequency")], "Usage-Based");
        assert_eq!(row[col("PricingCategory")], "Standard");
        assert_eq!(row[col("PricingUnit")], "Hours");
        assert_eq!(row[col("ServiceCategory")], "Compute");
        assert_eq!(row[col("ResourceId")], "sim/web");
        assert_eq!(row[col("ResourceType")], "Scaling group");
        assert_eq!(row[col("BillingCurrency")], "USD");
        assert_eq!(row[col("CommitmentDiscountId")], "");
        let quantity: f64 = row[col("PricingQuantity")].parse().unwrap();
        let price: f64 = row[col("ListUnitPrice")].parse().unwrap();
        assert!((quantity * price - cost).abs() < 1e-6, "{row:?}");
        let tags: serde_json::Value = serde_json::from_str(&row[col("Tags")]).unwrap();
        assert!(tags.is_object());
    }
    let total = f(&report["total"]["period_to_date"]);
    assert!(
        (billed - total).abs() < 0.01,
        "FOCUS BilledCost {billed}, report {total}"
    );
}

#[test]
fn cost_focus_export_prices_spot_as_dynamic_and_on_demand_as_standard() {
    let dir = tempfile::tempdir().unwrap();
    policy_file(dir.path());
    // A second group on spot instances beside the on-demand `web`.
    let text = std::fs::read_to_string(dir.path().join("web.yaml")).unwrap();
    let text = text
        .replace(
            "        web:\n          instance_class: general.large\n",
            "        batch:\n          instance_class: general.large\n          spot: true\n          desired: 4\n          work_per_instance: 100\n          demand: { base: 300 }\n        web:\n          instance_class: general.large\n",
        )
        .replace(
            "groups:\n  - name: web\n",
            "groups:\n  - name: batch\n    provider: sim\n    min: 2\n    max: 10\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n  - name: web\n",
        );
    assert!(
        text.contains("spot: true") && text.contains("name: batch"),
        "{text}"
    );
    std::fs::write(dir.path().join("web.yaml"), text).unwrap();
    let report = cost_json(dir.path(), &["--focus", "focus.csv"]);
    let rows = parse_csv(&std::fs::read_to_string(dir.path().join("focus.csv")).unwrap());
    let header = &rows[0];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (mut spot, mut on_demand, mut billed) = (0, 0, 0.0);
    for row in &rows[1..] {
        billed += row[col("BilledCost")].parse::<f64>().unwrap();
        let quantity: f64 = row[col("PricingQuantity")].parse().unwrap();
        let price: f64 = row[col("ListUnitPrice")].parse().unwrap();
        let cost: f64 = row[col("BilledCost")].parse().unwrap();
        assert!((quantity * price - cost).abs() < 1e-6, "{row:?}");
        match row[col("ResourceId")].as_str() {
            "sim/batch" => {
                assert_eq!(row[col("PricingCategory")], "Dynamic", "{row:?}");
                assert!(row[col("SkuPriceId")].ends_with(":spot"), "{row:?}");
                spot += 1;
            }
            "sim/web" => {
                assert_eq!(row[col("PricingCategory")], "Standard", "{row:?}");
                assert!(row[col("SkuPriceId")].ends_with(":on-demand"), "{row:?}");
                on_demand += 1;
            }
            other => panic!("unexpected resource {other}"),
        }
    }
    assert!(
        spot >= 20 && on_demand >= 20,
        "{spot} spot rows, {on_demand} on-demand"
    );
    let total = f(&report["total"]["period_to_date"]);
    assert!(
        (billed - total).abs() < 0.01,
        "FOCUS BilledCost {billed}, report {total}"
    );
}

#[test]
fn cost_chart_is_an_svg() {
    let dir = tempfile::tempdir().unwrap();
    policy_file(dir.path());
    let out = hoist(dir.path())
        .args(["cost", "web.yaml", "--chart", "spend.svg"])
        .output()
        .unwrap();
    success(out);
    let svg = std::fs::read_to_string(dir.path().join("spend.svg")).unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    assert!(svg.contains("web-daily"));
    assert!(svg.contains("stroke-dasharray"), "no dashed forecast");
    assert!(svg.trim_end().ends_with("</svg>"));
}

#[test]
fn cost_without_a_ledger_on_a_real_provider_says_to_run_hoist_run_first() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aws.yaml"),
        "providers:\n  prod:\n    aws:\n      region: us-east-1\n      groups: { names: [web-asg] }\ngroups:\n  - name: web-asg\n    provider: prod\n    min: 1\n    max: 10\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n",
    )
    .unwrap();
    let out = hoist(dir.path())
        .args([
            "cost",
            "aws.yaml",
            "--ledger",
            "/nonexistent/hoist-costs.jsonl",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/hoist-costs.jsonl"),
        "{stderr}"
    );
    assert!(stderr.contains("hoist run aws.yaml"), "{stderr}");
    assert!(stderr.contains("--ledger"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn cost_skips_a_garbage_line_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    policy_file(dir.path());
    let clean = cost_json(dir.path(), &[]);
    let mut text = std::fs::read_to_string(dir.path().join("hoist-costs.jsonl")).unwrap();
    let middle = text.len() / 2;
    let cut = text[middle..].find('\n').unwrap() + middle + 1;
    text.insert_str(cut, "this is not JSON {\n");
    std::fs::write(dir.path().join("spoilt.jsonl"), text).unwrap();
    let spoilt = cost_json(dir.path(), &["--ledger", "spoilt.jsonl"]);
    assert_eq!(spoilt["skipped_lines"], 1);
    assert!(
        spoilt["notes"][0].as_str().unwrap().contains("1 line(s)"),
        "{spoilt}"
    );
    assert_eq!(spoilt["total"], clean["total"]);
    let out = hoist(dir.path())
        .args(["cost", "web.yaml", "--ledger", "spoilt.jsonl"])
        .output()
        .unwrap();
    let table = success(out);
    assert!(table.contains("skipped"), "{table}");
    assert!(table.contains("web-daily"), "{table}");
}

#[test]
fn cost_per_1000_units_is_the_spend_over_the_work_done() {
    let dir = tempfile::tempdir().unwrap();
    let path = policy_file(dir.path());
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "    provider: sim\n",
        "    provider: sim\n    cost: {work_metric: request_rate, unit: requests}\n",
    );
    std::fs::write(&path, text).unwrap();
    let report = cost_json(dir.path(), &[]);
    let group = &report["groups"][0];
    assert_eq!(group["work_unit"], "requests");
    let units = f(&group["work_units_in_period"]);
    // About 1,500 requests per second for a day (a daily cycle around the base, one spike).
    assert!(
        units > 0.5 * 1500.0 * 86_400.0 && units < 2.0 * 1500.0 * 86_400.0,
        "{units}"
    );
    let per_1000 = f(&group["cost_per_1000_units"]);
    let expected = f(&group["period_to_date"]) / units * 1000.0;
    assert!(
        (per_1000 - expected).abs() <= expected * 1e-6,
        "{per_1000} against {expected}"
    );
    assert_eq!(report["total"]["work_unit"], "requests");
    let out = hoist(dir.path())
        .args(["cost", "web.yaml"])
        .output()
        .unwrap();
    assert!(success(out).contains("/1k requests"));
}

/// The budget record an earlier run left in the ledger: `spent` of 50 in the day of 2 March.
fn budget_record(at: &str, period_start: &str, period_end: &str, spent: f64) -> String {
    format!(
        r#"{{"type":"budget","budget":"web-daily","scope":"group web","groups":["web"],"period":"daily","period_start":"{period_start}","period_end":"{period_end}","amount":30.0,"currency":"USD","converted_from":null,"spent":{spent},"run_rate_per_hour":2.5,"pace_per_hour":2.5,"forecast":60.0,"rung":"cap","target_scale":1.2,"capacity_kept":0.3,"actual_crossed":[],"forecast_crossed":[100.0],"at":"{at}"}}"#
    )
}

fn plan_reasons(dir: &Path, start: &str, ledger: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("web.yaml"))
        .unwrap()
        .replace("start: 2026-03-02T00:00:00Z", &format!("start: {start}"));
    std::fs::write(dir.join("later.yaml"), text).unwrap();
    std::fs::write(dir.join("ledger.jsonl"), ledger).unwrap();
    let out = hoist(dir)
        .args([
            "plan",
            "later.yaml",
            "--output",
            "json",
            "--cost-ledger",
            "ledger.jsonl",
        ])
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_str(&success(out)).unwrap();
    plan["groups"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}: {}",
                r["source"].as_str().unwrap(),
                r["message"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn plan_shows_a_budget_carried_on_from_the_ledger_and_ignores_other_periods() {
    let dir = tempfile::tempdir().unwrap();
    policy_file(dir.path());
    // At 15:00, 27 of the day's 30 are spent at 2.5 an hour: the forecast is far over.
    let same_day = budget_record(
        "2026-03-02T14:00:00Z",
        "2026-03-02T00:00:00Z",
        "2026-03-03T00:00:00Z",
        27.0,
    );
    let reasons = plan_reasons(dir.path(), "2026-03-02T15:00:00Z", &same_day);
    let budget = reasons
        .iter()
        .find(|r| r.starts_with("budget.web-daily"))
        .unwrap_or_else(|| panic!("no budget reason in {reasons:?}"));
    assert!(
        budget.contains("(cap)") && budget.contains("27.00 spent"),
        "{budget}"
    );

    // The same record seen from the next day is another period: nothing carries on, and at
    // the run rate the new day's forecast is inside the budget.
    let reasons = plan_reasons(dir.path(), "2026-03-03T01:00:00Z", &same_day);
    assert!(
        !reasons.iter().any(|r| r.contains("27.00 spent")),
        "{reasons:?}"
    );
}
