//! The AWS provider against moto, the AWS API emulator (started by `scripts/servers/moto.sh`).
//!
//! Groups are created with the plain AWS SDK (not through Hoist) and read back with it, so each
//! test checks Hoist's effect as another AWS client sees it. Every test uses its own group
//! names, so the tests run in parallel on one moto without resetting it.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag};
use aws_sdk_ec2::types::{InstanceType, RequestLaunchTemplateData};
use chrono::{Duration, Utc};
use hoist_aws::{AwsProvider, AwsProviderBuilder, GroupSelector, VictimSelection};
use hoist_core::{
    BillingProvider, CapacityType, CostGranularity, CostQuery, ErrorKind, InstanceCatalog,
    InstanceFamily, InstanceState, MetricKind, MetricQuery, MetricsSource, ScalingProvider,
    TimeRange,
};
use hoist_core::{RangeQuery, RemoveInstances};
use hoist_integration_tests::server_url;

const REGION: &str = "us-east-1";

/// moto hands queued Cost Explorer results to whichever GetCostAndUsage request comes next, so
/// the tests that call Cost Explorer take turns.
static COST_EXPLORER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const ZONE: &str = "us-east-1a";

fn moto() -> String {
    server_url("HOIST_TEST_MOTO_URL")
}

/// A name no other test (or earlier run against the same moto) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_millis(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    "testing",
                    "testing-secret",
                    None,
                    None,
                    "test",
                ),
            ),
        )
        .build()
}

/// Plain SDK clients: the "other AWS client" that sets up and checks groups.
struct Raw {
    asg: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
}

fn raw() -> Raw {
    let config = sdk_config(&moto());
    Raw {
        asg: aws_sdk_autoscaling::Client::new(&config),
        ec2: aws_sdk_ec2::Client::new(&config),
    }
}

async fn provider(selector: GroupSelector) -> Arc<AwsProvider> {
    Arc::new(
        AwsProviderBuilder::new()
            .with_region(REGION)
            .with_endpoint_url(moto())
            .with_cloudwatch_endpoint_url(server_url("HOIST_TEST_CLOUDWATCH_URL"))
            .with_static_credentials("testing", "testing-secret", None)
            // moto has no instance refresh (StartInstanceRefresh answers HTTP 500).
            .with_instance_refresh(false)
            .with_groups(selector)
            .build()
            .await
            .expect("provider builds"),
    )
}

/// Creates a launch template and an Auto Scaling group on it; returns (group, template id).
async fn create_group(
    raw: &Raw,
    prefix: &str,
    min: i32,
    max: i32,
    desired: i32,
    tags: &[(&str, &str)],
) -> (String, String) {
    let image = raw
        .ec2
        .describe_images()
        .send()
        .await
        .unwrap()
        .images()
        .iter()
        .find_map(|i| i.image_id().map(str::to_owned))
        .expect("moto has images");
    let template = raw
        .ec2
        .create_launch_template()
        .launch_template_name(unique("lt"))
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id(image)
                .instance_type(InstanceType::M5Large)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let template_id = template
        .launch_template()
        .and_then(|t| t.launch_template_id())
        .unwrap()
        .to_owned();
    let name = unique(prefix);
    let mut request = raw
        .asg
        .create_auto_scaling_group()
        .auto_scaling_group_name(&name)
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_id(&template_id)
                .version("$Latest")
                .build(),
        )
        .min_size(min)
        .max_size(max)
        .desired_capacity(desired)
        .availability_zones(ZONE);
    for (key, value) in tags {
        request = request.tags(
            Tag::builder()
                .key(*key)
                .value(*value)
                .resource_id(&name)
                .resource_type("auto-scaling-group")
                .propagate_at_launch(true)
                .build(),
        );
    }
    request.send().await.unwrap();
    (name, template_id)
}

async fn raw_desired(raw: &Raw, group: &str) -> (i32, Vec<String>) {
    let out = raw
        .asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .unwrap();
    let g = &out.auto_scaling_groups()[0];
    let ids = g
        .instances()
        .iter()
        .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect();
    (g.desired_capacity().unwrap(), ids)
}

#[tokio::test]
async fn describes_groups_with_instances_zones_types_and_launch_times() {
    let raw = raw();
    let (name, _) = create_group(&raw, "describe", 1, 5, 3, &[("team", "web")]).await;
    let aws = provider(GroupSelector::Names(vec![name.clone()])).await;
    let g = aws.describe_group(&name).await.unwrap();
    assert_eq!((g.min_size, g.max_size, g.desired_capacity), (1, 5, 3));
    assert_eq!(g.instance_class, "m5.large");
    assert_eq!(g.zones, vec![ZONE.to_owned()]);
    assert_eq!(g.tags.get("team").map(String::as_str), Some("web"));
    assert_eq!(g.instances.len(), 3);
    for i in &g.instances {
        assert_eq!(i.state, InstanceState::Running, "{i:?}");
        assert_eq!(i.zone, ZONE);
        assert_eq!(i.instance_class, "m5.large");
        assert_eq!(i.capacity_type, CapacityType::OnDemand);
        assert!(
            i.launched_at > Utc::now() - Duration::hours(1),
            "launch time from EC2: {i:?}"
        );
    }
    let listed = aws.list_groups().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, name);
}

#[tokio::test]
async fn selection_by_tag_and_prefix_hides_other_groups() {
    let raw = raw();
    let marker = unique("team");
    let (tagged, _) = create_group(&raw, "seltag", 0, 2, 0, &[("hoist-test-team", &marker)]).await;
    let (other, _) = create_group(
        &raw,
        "selother",
        0,
        2,
        0,
        &[("hoist-test-team", "someone-else")],
    )
    .await;

    let by_tag = provider(GroupSelector::Tag {
        key: "hoist-test-team".into(),
        value: Some(marker.clone()),
    })
    .await;
    let ids: Vec<String> = by_tag
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(ids, vec![tagged.clone()]);
    let err = by_tag.describe_group(&other).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = by_tag.set_desired_capacity(&other, 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    let prefix = tagged.rsplit_once('-').unwrap().0.to_owned();
    let by_prefix = provider(GroupSelector::Prefix(prefix)).await;
    let ids: Vec<String> = by_prefix
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(ids, vec![tagged]);
}

#[tokio::test]
async fn desired_capacity_is_set_within_bounds_and_refused_outside() {
    let raw = raw();
    let (name, _) = create_group(&raw, "bounds", 1, 3, 1, &[]).await;
    let aws = provider(GroupSelector::Names(vec![name.clone()])).await;

    aws.set_desired_capacity(&name, 3).await.unwrap();
    assert_eq!(raw_desired(&raw, &name).await.0, 3);

    // moto itself accepts 4 > MaxSize 3; the provider must refuse before calling it.
    let err = aws.set_desired_capacity(&name, 4).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("[1, 3]"), "{err}");
    let err = aws.set_desired_capacity(&name, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(
        raw_desired(&raw, &name).await.0,
        3,
        "a refused change must not reach AWS"
    );

    let err = aws
        .describe_group("no-such-group-anywhere")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn terminate_with_decrement_removes_exactly_the_chosen_instance() {
    let raw = raw();
    let (name, _) = create_group(&raw, "terminate", 0, 5, 3, &[]).await;
    let aws = provider(GroupSelector::Names(vec![name.clone()])).await;
    let (_, before) = raw_desired(&raw, &name).await;
    assert_eq!(before.len(), 3);
    let victim = before[1].clone();

    aws.remove_instances(&name, &RemoveInstances::new(vec![victim.clone()]))
        .await
        .unwrap();

    let (desired, after) = raw_desired(&raw, &name).await;
    assert_eq!(desired, 2);
    let mut expected: Vec<String> = before.iter().filter(|i| **i != victim).cloned().collect();
    let mut after_sorted = after.clone();
    expected.sort();
    after_sorted.sort();
    assert_eq!(after_sorted, expected, "only the chosen instance leaves");

    let err = aws
        .remove_instances(
            &name,
            &RemoveInstances::new(vec!["i-00000000000000000".to_owned()]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn scale_in_never_chooses_protected_instances() {
    let raw = raw();
    let (name, _) = create_group(&raw, "protect", 0, 5, 3, &[]).await;
    let aws = provider(GroupSelector::Names(vec![name.clone()])).await;
    let g = aws.describe_group(&name).await.unwrap();
    // Protect the newest instance: the one `Newest` would otherwise pick.
    let mut by_age = g.instances.clone();
    by_age.sort_by(|a, b| {
        b.launched_at
            .cmp(&a.launched_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    let protected = by_age[0].id.clone();
    raw.asg
        .set_instance_protection()
        .auto_scaling_group_name(&name)
        .instance_ids(&protected)
        .protected_from_scale_in(true)
        .send()
        .await
        .unwrap();

    let err = aws
        .remove_instances(&name, &RemoveInstances::new(vec![protected.clone()]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

    let removed = aws
        .scale_in(&name, 2, VictimSelection::Newest)
        .await
        .unwrap();
    assert_eq!(removed.len(), 2);
    assert!(!removed.contains(&protected));
    let (desired, left) = raw_desired(&raw, &name).await;
    assert_eq!(desired, 1);
    assert_eq!(left, vec![protected]);

    let err = aws
        .scale_in(&name, 5, VictimSelection::Oldest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn changing_the_instance_class_makes_a_new_launch_template_version() {
    let raw = raw();
    let (name, template_id) = create_group(&raw, "vertical", 0, 3, 1, &[]).await;
    let aws = provider(GroupSelector::Names(vec![name.clone()])).await;

    let err = aws
        .set_instance_class(&name, &hoist_core::ChangeInstanceClass::new("m5.notatype"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

    // Without instance refresh no replacement activity is started.
    let activity = aws
        .set_instance_class(&name, &hoist_core::ChangeInstanceClass::new("c5.large"))
        .await
        .unwrap();
    assert!(activity.is_none());

    let out = raw
        .asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&name)
        .send()
        .await
        .unwrap();
    let spec = out.auto_scaling_groups()[0]
        .launch_template()
        .unwrap()
        .clone();
    assert_eq!(spec.launch_template_id(), Some(template_id.as_str()));
    let version = spec.version().unwrap().to_owned();
    assert_eq!(version, "2");
    let versions = raw
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(&template_id)
        .versions(&version)
        .send()
        .await
        .unwrap();
    let data = versions.launch_template_versions()[0]
        .launch_template_data()
        .unwrap();
    assert_eq!(data.instance_type().map(|t| t.as_str()), Some("c5.large"));
    // The new version is based on the old one (SourceVersion); moto ignores SourceVersion, so
    // that part is checked against the SDK's mocks in hoist-aws.
    assert_eq!(
        aws.describe_group(&name).await.unwrap().instance_class,
        "c5.large"
    );
}

#[tokio::test]
async fn catalog_maps_instance_types_and_prices_with_their_source() {
    let aws = provider(GroupSelector::All).await;
    // The catalog lists the types EC2 reports that have a known price (the shipped table).
    let classes = aws.instance_classes().await.unwrap();
    assert!(classes.len() >= 50, "{} priced types", classes.len());
    assert!(classes.iter().all(|c| !c.offerings.is_empty()));
    assert_eq!(
        aws.instance_class("m5.metal").await.unwrap_err().kind(),
        ErrorKind::NotFound,
        "a type without any price is not offered"
    );
    let m5 = aws.instance_class("m5.large").await.unwrap();
    assert_eq!((m5.vcpus, m5.memory_mib, m5.gpus), (2.0, 8192, 0));
    assert_eq!(m5.family, InstanceFamily::General);
    let on_demand = m5
        .cheapest(CapacityType::OnDemand)
        .expect("shipped on-demand price");
    assert_eq!(on_demand.price.per_hour(), 0.096);
    assert_eq!(on_demand.price.source.kind, "table");
    assert!(m5.offerings.iter().any(|o| o.zone == ZONE));
    assert_eq!(
        aws.instance_class("r5.large").await.unwrap().family,
        InstanceFamily::Memory
    );
    assert_eq!(
        aws.instance_class("c5.large").await.unwrap().family,
        InstanceFamily::Compute
    );
    assert_eq!(
        aws.instance_class("t3.micro").await.unwrap().family,
        InstanceFamily::Burstable
    );
    let g5 = aws.instance_class("g5.xlarge").await.unwrap();
    assert_eq!(g5.family, InstanceFamily::Accelerated);
    assert!(g5.gpus >= 1);
    let arm = aws.instance_class("m6g.large").await.unwrap();
    assert_eq!(arm.architecture, hoist_core::Architecture::Arm64);
    assert_eq!(
        aws.instance_class("nope.large").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Spot prices come live from EC2's spot price history, per zone, and say so (the first
    // catalog load above read them).
    let stored = aws
        .refresh_spot_prices(&["m5.large".to_owned()])
        .await
        .unwrap();
    assert!(stored >= 1);
    let spot = aws
        .price("m5.large", ZONE, CapacityType::Spot)
        .await
        .unwrap();
    assert_eq!(spot.source.kind, "live");
    assert!(spot.source.detail.contains("DescribeSpotPriceHistory"));
    let m5 = aws.instance_class("m5.large").await.unwrap();
    assert!(
        m5.offerings
            .iter()
            .any(|o| o.capacity_type == CapacityType::Spot && o.zone == ZONE)
    );
}

/// Posts JSON to moto's control API with a plain HTTP/1.1 request.
fn moto_api_post(path: &str, body: &serde_json::Value) -> u16 {
    let base = moto();
    let authority = base.trim_start_matches("http://");
    let body = body.to_string();
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn cost_explorer_results_come_back_through_the_billing_trait() {
    let _turn = COST_EXPLORER.lock().await;
    let team = unique("team");
    // moto answers a request it has seen before with the same result, so each run asks about
    // its own (far future) days.
    let first = chrono::NaiveDate::from_ymd_opt(2040, 1, 1).unwrap()
        + chrono::Days::new((Utc::now().timestamp_millis() % 20_000) as u64);
    let date = |offset: u64| {
        (first + chrono::Days::new(offset))
            .format("%Y-%m-%d")
            .to_string()
    };
    let status = moto_api_post(
        "/moto-api/static/ce/cost-and-usage-results",
        &serde_json::json!({"results": [{
            "ResultsByTime": [
                {
                    "TimePeriod": {"Start": date(0), "End": date(1)},
                    "Total": {},
                    "Groups": [
                        {"Keys": [format!("team${team}")], "Metrics": {"UnblendedCost": {"Amount": "12.5", "Unit": "USD"}}},
                        {"Keys": ["team$"], "Metrics": {"UnblendedCost": {"Amount": "0.25", "Unit": "USD"}}}
                    ],
                    "Estimated": false
                },
                {
                    "TimePeriod": {"Start": date(1), "End": date(2)},
                    "Total": {},
                    "Groups": [
                        {"Keys": [format!("team${team}")], "Metrics": {"UnblendedCost": {"Amount": "7", "Unit": "USD"}}}
                    ],
                    "Estimated": true
                }
            ]
        }]}),
    );
    assert_eq!(status, 201);
    let aws = provider(GroupSelector::All).await;
    let day = |d: u32| {
        (first + chrono::Days::new(u64::from(d) - 1))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
    };
    let entries = aws
        .cost(&CostQuery {
            range: TimeRange {
                start: day(1),
                end: day(3),
            },
            granularity: CostGranularity::Daily,
            group_by: Some("tag:team".into()),
        })
        .await
        .unwrap();
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert_eq!(entries[0].key.as_deref(), Some(team.as_str()));
    assert_eq!(entries[0].amount.to_f64(), 12.5);
    assert_eq!(entries[0].amount.currency.0, "USD");
    assert_eq!((entries[0].start, entries[0].end), (day(1), day(2)));
    assert!(!entries[0].estimated);
    assert_eq!(
        entries[1].key.as_deref(),
        Some(""),
        "untagged cost keeps an empty key"
    );
    assert_eq!(entries[2].amount.to_f64(), 7.0);
    assert!(entries[2].estimated);
}

fn cloudwatch() -> aws_sdk_cloudwatch::Client {
    let config = aws_sdk_cloudwatch::config::Builder::from(&sdk_config(&moto()))
        .endpoint_url(server_url("HOIST_TEST_CLOUDWATCH_URL"))
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
}

/// Publishes `CPUUtilization` percentages for `group`, one per minute ending `minutes_ago`
/// minutes ago (the emulator runs no instances that would report it).
async fn put_group_cpu(group: &str, values: &[(i64, f64)]) {
    let now = Utc::now();
    let minute = |m: i64| {
        let t = now - Duration::minutes(m);
        t - Duration::seconds(t.timestamp() % 60)
    };
    let points: Vec<_> = values.iter().map(|(m, v)| (minute(*m), *v)).collect();
    put_group_metric(
        "AWS/EC2",
        "CPUUtilization",
        aws_sdk_cloudwatch::types::StandardUnit::Percent,
        group,
        &points,
    )
    .await;
}

/// Publishes `metric` of `namespace` for `group` (dimension `AutoScalingGroupName`) at the
/// given times, in calls of 100 points.
async fn put_group_metric(
    namespace: &str,
    metric: &str,
    unit: aws_sdk_cloudwatch::types::StandardUnit,
    group: &str,
    points: &[(chrono::DateTime<Utc>, f64)],
) {
    let cloudwatch = cloudwatch();
    for chunk in points.chunks(100) {
        let mut put = cloudwatch.put_metric_data().namespace(namespace);
        for (at, value) in chunk {
            put = put.metric_data(
                aws_sdk_cloudwatch::types::MetricDatum::builder()
                    .metric_name(metric)
                    .dimensions(
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name("AutoScalingGroupName")
                            .value(group)
                            .build(),
                    )
                    .timestamp(aws_smithy_types::DateTime::from_secs(at.timestamp()))
                    .value(*value)
                    .unit(unit.clone())
                    .build(),
            );
        }
        put.send().await.unwrap();
    }
}

#[tokio::test]
async fn the_core_conformance_suite_passes_against_moto() {
    let _turn = COST_EXPLORER.lock().await;
    let raw = raw();
    let (name, _) = create_group(&raw, "conformance", 1, 4, 2, &[]).await;
    put_group_cpu(&name, &[(6, 35.0), (5, 45.0), (4, 55.0)]).await;
    let aws = provider(GroupSelector::Names(vec![name.clone()])).await;
    let target = hoist_core::testkit::ConformanceTarget::new(aws.into_provider_set(), &name)
        .with_settle(std::time::Duration::from_millis(500), 10);
    let report = hoist_core::testkit::run_conformance(&target).await;
    println!("{report}");
    // moto has no GetCostForecast (it answers HTTP 500); the forecast is tested against the
    // SDK's mocks in hoist-aws. Every other check must pass.
    let failed: Vec<&str> = report.failures().iter().map(|c| c.name).collect();
    assert_eq!(failed, vec!["billing.forecast"], "{report}");
    for name in [
        "scaling.sets_desired_within_bounds",
        "scaling.rejects_out_of_bounds",
        "scaling.removes_chosen_instance",
        "scaling.sets_instance_class",
        "catalog.knows_group_class",
        "billing.prices",
        "billing.cost",
        "metrics.builtin_kinds",
        "scaling.group_restored",
    ] {
        assert_eq!(
            report.outcome(name),
            Some(&hoist_core::testkit::Outcome::Passed),
            "{name}: {report}"
        );
    }
}

#[tokio::test]
async fn cloudwatch_metrics_round_trip_through_the_metrics_trait() {
    let aws = provider(GroupSelector::All).await;
    let group = unique("metrics");
    let cloudwatch = cloudwatch();
    let now = Utc::now();
    let minute = |m: i64| {
        let t = now - Duration::minutes(m);
        aws_smithy_types::DateTime::from_secs(t.timestamp() - t.timestamp() % 60)
    };
    let mut put = cloudwatch.put_metric_data().namespace("AWS/EC2");
    for (m, value) in [(5, 40.0), (4, 60.0), (3, 80.0)] {
        put = put.metric_data(
            aws_sdk_cloudwatch::types::MetricDatum::builder()
                .metric_name("CPUUtilization")
                .dimensions(
                    aws_sdk_cloudwatch::types::Dimension::builder()
                        .name("AutoScalingGroupName")
                        .value(&group)
                        .build(),
                )
                .timestamp(minute(m))
                .value(value)
                .unit(aws_sdk_cloudwatch::types::StandardUnit::Percent)
                .build(),
        );
    }
    put.send().await.unwrap();

    let range = TimeRange {
        start: now - Duration::minutes(10),
        end: now,
    };
    let query = MetricQuery {
        group: group.clone(),
        metric: MetricKind::Utilization,
        expression: None,
    };
    let series = aws
        .query_range(&RangeQuery::new(query.clone(), range, 60))
        .await
        .unwrap();
    assert_eq!(series.len(), 1, "{series:?}");
    let values: Vec<f64> = series[0].samples.iter().map(|s| s.value).collect();
    assert_eq!(
        values,
        vec![0.4, 0.6, 0.8],
        "percent becomes a fraction, oldest first"
    );
    assert!(series[0].samples.windows(2).all(|w| w[0].at < w[1].at));
    assert_eq!(series[0].labels.get("group"), Some(&group));

    // A custom metric by spec, without scaling.
    let spec = MetricQuery {
        group: group.clone(),
        metric: MetricKind::Custom("cpu".into()),
        expression: Some(format!(
            "AWS/EC2:CPUUtilization:Maximum{{AutoScalingGroupName={group}}}"
        )),
    };
    let series = aws
        .query_range(&RangeQuery::new(spec.clone(), range, 60))
        .await
        .unwrap();
    let values: Vec<f64> = series[0].samples.iter().map(|s| s.value).collect();
    assert_eq!(values, vec![40.0, 60.0, 80.0]);

    let unsupported = MetricQuery {
        group,
        metric: MetricKind::QueueDepth,
        expression: None,
    };
    assert_eq!(
        aws.query_range(&RangeQuery::new(unsupported.clone(), range, 60))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Unsupported
    );
}

#[tokio::test]
async fn provider_set_from_settings_drives_the_named_groups() {
    let raw = raw();
    let (name, _) = create_group(&raw, "settings", 0, 4, 1, &[]).await;
    let settings = serde_json::json!({
        "region": REGION,
        "endpoint_url": moto(),
        "groups": {"names": [name]},
        "instance_refresh": false,
    });
    let set = hoist_aws::provider_set_from_settings("prod", &settings)
        .await
        .unwrap();
    assert_eq!(set.name, "prod");
    assert!(set.catalog.is_some() && set.billing.is_some() && set.metrics.is_some());
    let groups = set.scaling_provider().unwrap().list_groups().await.unwrap();
    assert_eq!(
        groups.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        vec![name.as_str()]
    );
    set.scaling_provider()
        .unwrap()
        .set_desired_capacity(&name, 2)
        .await
        .unwrap();
    assert_eq!(raw_desired(&raw, &name).await.0, 2);
    let err = set
        .scaling_provider()
        .unwrap()
        .set_desired_capacity(&name, 5)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// The lifecycle hooks of `group`, as another AWS client reads them.
async fn lifecycle_hooks(raw: &Raw, group: &str) -> Vec<aws_sdk_autoscaling::types::LifecycleHook> {
    raw.asg
        .describe_lifecycle_hooks()
        .auto_scaling_group_name(group)
        .send()
        .await
        .unwrap()
        .lifecycle_hooks()
        .to_vec()
}

/// moto keeps the hook but never holds an instance in `Terminating:Wait` and has no
/// CompleteLifecycleAction; the release of waiting instances is tested on recorded replies in
/// `providers/aws/src/scaling/drain.rs`.
#[tokio::test]
async fn a_group_with_a_drain_gets_a_termination_lifecycle_hook_before_hoist_scales_it() {
    use hoist_core::registry::{BuildContext, GroupBounds, ProviderFactory};

    let raw = raw();
    let (drained, _) = create_group(&raw, "drain", 0, 4, 2, &[]).await;
    let (plain, _) = create_group(&raw, "nodrain", 0, 4, 2, &[]).await;
    let settings = serde_json::json!({
        "region": REGION,
        "endpoint_url": moto(),
        "groups": {"names": [drained, plain]},
        "instance_refresh": false,
    });
    let groups = [
        GroupBounds::new(drained.clone(), 0, 4).with_drain(std::time::Duration::from_secs(300)),
        GroupBounds::new(plain.clone(), 0, 4),
    ];
    let ctx = BuildContext {
        name: "prod",
        settings: &settings,
        base_dir: std::path::Path::new("."),
        groups: &groups,
    };
    let built = hoist_aws::AwsProviderFactory.build(ctx).await.unwrap();
    let scaling = built.set.scaling_provider().unwrap();

    // A read changes nothing on the group.
    scaling.describe_group(&drained).await.unwrap();
    assert!(lifecycle_hooks(&raw, &drained).await.is_empty());

    scaling.set_desired_capacity(&drained, 1).await.unwrap();
    scaling.set_desired_capacity(&plain, 1).await.unwrap();
    let hooks = lifecycle_hooks(&raw, &drained).await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let hook = &hooks[0];
    assert_eq!(hook.lifecycle_hook_name(), Some("hoist-drain"));
    assert_eq!(
        hook.lifecycle_transition(),
        Some("autoscaling:EC2_INSTANCE_TERMINATING")
    );
    assert_eq!(hook.heartbeat_timeout(), Some(300));
    assert_eq!(hook.default_result(), Some("CONTINUE"));
    assert_eq!(raw_desired(&raw, &drained).await.0, 1);
    assert!(
        lifecycle_hooks(&raw, &plain).await.is_empty(),
        "a group without a drain gets no hook"
    );
}

/// `hoist recommend` on an Auto Scaling group: the history is read from CloudWatch (the
/// group's CPU and its `GroupInServiceInstances`), the class and prices from the group and the
/// catalog, and the report follows from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_reads_a_groups_history_from_cloudwatch() {
    let raw = raw();
    let (name, _) = create_group(&raw, "recommend", 1, 10, 2, &[]).await;
    let (bare, _) = create_group(&raw, "recommend-bare", 1, 10, 2, &[]).await;
    // Two days in 5-minute steps: 6 instances at 60 % CPU from 08:00 to 20:00 UTC, 2 at 15 %
    // otherwise. Any 48 hours hold 24 of each, so 4 instances on average.
    let now = Utc::now();
    let end = now - Duration::seconds(now.timestamp() % 300);
    let times: Vec<_> = (1..=576).map(|k| end - Duration::minutes(5 * k)).collect();
    let day = |t: &chrono::DateTime<Utc>| (8..20).contains(&chrono::Timelike::hour(t));
    let count: Vec<_> = times
        .iter()
        .map(|t| (*t, if day(t) { 6.0 } else { 2.0 }))
        .collect();
    let cpu: Vec<_> = times
        .iter()
        .map(|t| (*t, if day(t) { 60.0 } else { 15.0 }))
        .collect();
    use aws_sdk_cloudwatch::types::StandardUnit;
    for group in [&name, &bare] {
        put_group_metric(
            "AWS/EC2",
            "CPUUtilization",
            StandardUnit::Percent,
            group,
            &cpu,
        )
        .await;
    }
    put_group_metric(
        "AWS/AutoScaling",
        "GroupInServiceInstances",
        StandardUnit::None,
        &name,
        &count,
    )
    .await;
    // Memory in use as the CloudWatch agent reports it, in percent: 50 % by day, 30 % by night.
    let memory: Vec<_> = times
        .iter()
        .map(|t| (*t, if day(t) { 50.0 } else { 30.0 }))
        .collect();
    put_group_metric(
        "CWAgent",
        "mem_used_percent",
        StandardUnit::Percent,
        &name,
        &memory,
    )
    .await;
    // The bare group's count is published elsewhere, as a user's own metric.
    put_group_metric("Team/Fleet", "Serving", StandardUnit::Count, &bare, &count).await;

    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "providers:\n  prod:\n    aws:\n      region: {REGION}\n      endpoint_url: {}\n      cloudwatch_endpoint_url: {}\n      groups: {{ names: [{name}, {bare}] }}\n\
         groups:\n\
         \x20 - {{ name: {name}, provider: prod, min: 1, max: 10, policies: [{{ target_tracking: {{ metric: utilization, target: 0.6 }} }}] }}\n\
         \x20 - {{ name: {bare}, provider: prod, min: 1, max: 10, policies: [{{ target_tracking: {{ metric: utilization, target: 0.6 }} }}] }}\n",
        moto(),
        server_url("HOIST_TEST_CLOUDWATCH_URL"),
    );
    std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
    // `hoist recommend policy.yaml --history 2d --group GROUP EXTRA...`
    let recommend = |group: &str, extra: &[&str]| {
        std::process::Command::new(hoist_integration_tests::hoist_binary())
            .current_dir(dir.path())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing-secret")
            .args([
                "recommend",
                "policy.yaml",
                "--history",
                "2d",
                "--group",
                group,
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = recommend(
        &name,
        &[
            "--memory-query",
            "CWAgent:mem_used_percent:Average",
            "--format",
            "json",
        ],
    );
    let text = hoist_integration_tests::output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let g = &report["groups"][0];
    assert_eq!(g["name"], name.as_str(), "{report}");
    assert_eq!(g["class"], "m5.large", "{g}");
    let observed = &g["observed"];
    assert_eq!(observed["steps"], 576, "{observed}");
    assert_eq!(observed["steps_with_metrics"], 576, "{observed}");
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    // 4 instances on average, 6 at the peak, 37.5 % busy on average, and at the peak 60 % of 6
    // instances of 2 vCPUs.
    for (field, expected) in [
        ("mean_instances", 4.0),
        ("peak_instances", 6.0),
        ("mean_utilization", 0.375),
        ("peak_load_cores", 7.2),
    ] {
        assert!(
            (f(&observed[field]) - expected).abs() < 1e-9,
            "{field}: {observed}"
        );
    }
    // Cost: the catalog's on-demand price of the instances counted, 4 × 48 instance-hours.
    let price = f(&g["spot"]["on_demand_price_per_hour"]["amount"]);
    assert!(price > 0.0, "{g}");
    let cost = f(&observed["cost"]["amount"]);
    assert!(
        (cost - 192.0 * price).abs() <= 0.01,
        "{cost} vs 192 × {price}"
    );
    // The capacity above the nightly 2 comes and goes each day: part of the group suits spot,
    // read from the count.
    let spot = &g["spot"];
    assert_eq!(spot["lives_from"], "in_service_count", "{spot}");
    assert_eq!(spot["base_instances"], 2, "{spot}");
    assert_eq!(spot["verdict"], "partly", "{spot}");
    // Memory, read as percent: each instance needs half its class's memory at the 80 % target.
    let need = f(&g["memory_need_bytes"]);
    let class_bytes = f(&g["memory_mib"]) * 1024.0 * 1024.0;
    assert!((need - 0.5 * class_bytes / 0.8).abs() < 1.0, "{g}");
    assert_eq!(
        f(&g["rightsizing"]["per_instance"]["need_memory_bytes"]),
        need,
        "{g}"
    );
    let history = g["history_from"].as_str().unwrap();
    assert!(
        history.contains("mem_used_percent:Average` read as percent"),
        "{history}"
    );
    // Sized for the peak at the target: 7.2 busy cores at 0.6 need 12 vCPUs.
    let fleet = &g["rightsizing"]["fleet"];
    let vcpus = f(&fleet["class"]["vcpus"]) * f(&fleet["count"]);
    assert!(vcpus >= 12.0 - 1e-9, "{fleet}");

    // Without GroupInServiceInstances the bare group's count is missing, and the error says
    // how to give it; with --instances-query it is read from there.
    let out = recommend(&bare, &[]);
    let text = hoist_integration_tests::output_text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("GroupInServiceInstances"), "{text}");
    assert!(text.contains("--instances-query"), "{text}");
    let out = recommend(
        &bare,
        &[
            "--instances-query",
            "Team/Fleet:Serving:Average",
            "--format",
            "json",
        ],
    );
    let text = hoist_integration_tests::output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let observed = &report["groups"][0]["observed"];
    assert!(
        (f(&observed["mean_instances"]) - 4.0).abs() < 1e-9,
        "{observed}"
    );
}
