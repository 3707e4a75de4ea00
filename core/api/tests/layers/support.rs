//! A small in-memory provider for the layer and conformance tests: one group, two classes,
//! prices, a utilisation metric, per-operation call counters, and switchable bugs so the tests
//! can prove the conformance suite catches a provider that misbehaves.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hoist_api::layers::Operation;
use hoist_api::{
    Activity, Architecture, BillingCapabilities, BillingProvider, CapacityType,
    CatalogCapabilities, CostEntry, CostQuery, Error, Instance, InstanceCatalog, InstanceClass,
    InstanceFamily, InstanceState, MetricKind, MetricsCapabilities, MetricsSource, Money, Offering,
    Price, PriceSource, ProviderSet, RangeQuery, RateUnit, RemoveInstances, Result, Sample,
    ScalingCapabilities, ScalingGroup, ScalingProvider, TimeSeries,
};

/// Misbehaviours to switch on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bugs {
    /// Accepts any desired capacity, ignoring the bounds.
    pub ignore_bounds: bool,
    /// `remove_instances` ignores `decrement`.
    pub ignore_decrement: bool,
    /// Reports a non-retryable `Other` for unknown groups instead of not found.
    pub wrong_not_found: bool,
}

#[derive(Debug)]
struct State {
    group: ScalingGroup,
    next_id: u32,
    calls: BTreeMap<Operation, u32>,
}

/// The fake provider.
#[derive(Debug, Clone)]
pub struct FakeCloud {
    state: Arc<Mutex<State>>,
    bugs: Bugs,
    capabilities: ScalingCapabilities,
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + seconds, 0).expect("valid timestamp")
}

impl FakeCloud {
    /// Group `web`: min 1, max 5, two running `c.small` instances.
    pub fn new() -> Self {
        Self::with_bugs(Bugs::default())
    }

    pub fn with_bugs(bugs: Bugs) -> Self {
        let cloud = FakeCloud {
            state: Arc::new(Mutex::new(State {
                group: ScalingGroup {
                    id: "web".to_owned(),
                    min_size: 1,
                    max_size: 5,
                    desired_capacity: 0,
                    instance_class: "c.small".to_owned(),
                    zones: vec!["z1".to_owned()],
                    instances: Vec::new(),
                    tags: BTreeMap::new(),
                },
                next_id: 1,
                calls: BTreeMap::new(),
            })),
            bugs,
            capabilities: ScalingCapabilities {
                set_desired_capacity: true,
                remove_instances: true,
                set_instance_class: true,
                activities: true,
            },
        };
        cloud.state.lock().unwrap().resize(2);
        cloud
    }

    /// Declares different capabilities (the operations still work underneath).
    pub fn with_capabilities(mut self, capabilities: ScalingCapabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Calls of `operation` that reached this provider.
    pub fn calls(&self, operation: Operation) -> u32 {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(&operation)
            .copied()
            .unwrap_or(0)
    }

    /// Calls of the three writes that reached this provider.
    pub fn write_calls(&self) -> u32 {
        Operation::ALL
            .iter()
            .filter(|o| o.is_write())
            .map(|o| self.calls(*o))
            .sum()
    }

    pub fn desired(&self) -> u32 {
        self.state.lock().unwrap().group.desired_capacity
    }

    /// The whole provider as a set named `fake`.
    pub fn provider_set(&self) -> ProviderSet {
        let me = Arc::new(self.clone());
        ProviderSet {
            name: "fake".to_owned(),
            scaling: Some(me.clone()),
            catalog: Some(me.clone()),
            billing: Some(me.clone()),
            metrics: Some(me),
            billing_rule: Default::default(),
        }
    }

    fn enter(
        &self,
        operation: Operation,
        group: Option<&str>,
    ) -> Result<std::sync::MutexGuard<'_, State>> {
        let mut state = self.state.lock().unwrap();
        *state.calls.entry(operation).or_default() += 1;
        if let Some(group) = group
            && group != state.group.id
        {
            let error = if self.bugs.wrong_not_found {
                Error::new(hoist_api::ErrorKind::Other, format!("no group {group}"))
            } else {
                Error::not_found(format!("group {group}"))
            };
            return Err(error
                .with_provider("fake")
                .with_operation(operation.as_str()));
        }
        Ok(state)
    }
}

impl Default for FakeCloud {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    fn resize(&mut self, desired: u32) {
        self.group.desired_capacity = desired;
        let active = |g: &ScalingGroup| g.instances.iter().filter(|i| i.state.is_active()).count();
        while active(&self.group) < desired as usize {
            let id = format!("i-{}", self.next_id);
            self.next_id += 1;
            self.group.instances.push(Instance {
                id,
                instance_class: self.group.instance_class.clone(),
                zone: "z1".to_owned(),
                capacity_type: CapacityType::OnDemand,
                state: InstanceState::Running,
                launched_at: at(0),
                protected_from_scale_in: false,
            });
        }
        while active(&self.group) > desired as usize {
            if let Some(last) = self
                .group
                .instances
                .iter_mut()
                .rev()
                .find(|i| i.state.is_active())
            {
                last.state = InstanceState::Terminated;
            }
        }
    }
}

fn class(name: &str, vcpus: f64, memory_mib: u64, per_hour: f64) -> InstanceClass {
    InstanceClass {
        name: name.to_owned(),
        family: InstanceFamily::General,
        vcpus,
        memory_mib,
        gpus: 0,
        architecture: Architecture::X86_64,
        network_gbps: None,
        offerings: vec![Offering {
            zone: "z1".to_owned(),
            capacity_type: CapacityType::OnDemand,
            price: price(per_hour),
        }],
    }
}

fn price(per_hour: f64) -> Price {
    Price {
        amount: Money::usd_f64(per_hour),
        unit: RateUnit::PerHour,
        source: PriceSource {
            kind: "table".to_owned(),
            detail: "fake".to_owned(),
        },
    }
}

fn classes() -> Vec<InstanceClass> {
    vec![
        class("c.small", 2.0, 4096, 0.1),
        class("c.large", 4.0, 8192, 0.2),
    ]
}

#[async_trait]
impl ScalingProvider for FakeCloud {
    fn name(&self) -> &str {
        "fake"
    }

    fn capabilities(&self) -> ScalingCapabilities {
        self.capabilities
    }

    async fn list_groups(&self) -> Result<Vec<ScalingGroup>> {
        Ok(vec![self.enter(Operation::ListGroups, None)?.group.clone()])
    }

    async fn describe_group(&self, group: &str) -> Result<ScalingGroup> {
        Ok(self
            .enter(Operation::DescribeGroup, Some(group))?
            .group
            .clone())
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<()> {
        let mut state = self.enter(Operation::SetDesiredCapacity, Some(group))?;
        if !self.capabilities.set_desired_capacity {
            return Err(Error::unsupported("set_desired_capacity"));
        }
        let g = &state.group;
        if !self.bugs.ignore_bounds && (desired < g.min_size || desired > g.max_size) {
            return Err(Error::invalid_input(format!(
                "desired {desired} outside [{}, {}]",
                g.min_size, g.max_size
            )));
        }
        state.resize(desired);
        Ok(())
    }

    async fn remove_instances(&self, group: &str, request: &RemoveInstances) -> Result<()> {
        let (instances, decrement) = (&request.instances, request.decrement);
        let mut state = self.enter(Operation::RemoveInstances, Some(group))?;
        if !self.capabilities.remove_instances {
            return Err(Error::unsupported("remove_instances"));
        }
        for id in instances {
            if !state
                .group
                .instances
                .iter()
                .any(|i| &i.id == id && i.state.is_active())
            {
                return Err(Error::not_found(format!("instance {id}")));
            }
        }
        let count = instances.len() as u32;
        if decrement && state.group.desired_capacity < state.group.min_size + count {
            return Err(Error::invalid_input("would go below min size"));
        }
        for i in &mut state.group.instances {
            if instances.contains(&i.id) {
                i.state = InstanceState::Terminating;
            }
        }
        let desired = if decrement && !self.bugs.ignore_decrement {
            state.group.desired_capacity - count
        } else {
            state.group.desired_capacity
        };
        state.resize(desired);
        Ok(())
    }

    async fn set_instance_class(
        &self,
        group: &str,
        request: &hoist_api::ChangeInstanceClass,
    ) -> Result<Option<Activity>> {
        let instance_class = request.instance_class.as_str();
        let mut state = self.enter(Operation::SetInstanceClass, Some(group))?;
        if !self.capabilities.set_instance_class {
            return Err(Error::unsupported("set_instance_class"));
        }
        if !classes().iter().any(|c| c.name == instance_class) {
            return Err(Error::not_found(format!("instance class {instance_class}")));
        }
        state.group.instance_class = instance_class.to_owned();
        Ok(None)
    }

    async fn activities(&self, group: &str) -> Result<Vec<Activity>> {
        let _state = self.enter(Operation::Activities, Some(group))?;
        if !self.capabilities.activities {
            return Err(Error::unsupported("activities"));
        }
        Ok(vec![Activity {
            id: "a-1".to_owned(),
            description: "launch".to_owned(),
            started_at: at(0),
            progress_percent: Some(100),
            done: true,
        }])
    }
}

#[async_trait]
impl InstanceCatalog for FakeCloud {
    fn capabilities(&self) -> CatalogCapabilities {
        CatalogCapabilities::default()
    }

    async fn instance_classes(&self) -> Result<Vec<InstanceClass>> {
        let _state = self.enter(Operation::InstanceClasses, None)?;
        Ok(classes())
    }

    async fn instance_class(&self, name: &str) -> Result<InstanceClass> {
        let _state = self.enter(Operation::InstanceClass, None)?;
        classes()
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::not_found(format!("instance class {name}")))
    }
}

#[async_trait]
impl BillingProvider for FakeCloud {
    fn capabilities(&self) -> BillingCapabilities {
        BillingCapabilities {
            actual_cost: false,
            forecast: false,
            prices: true,
        }
    }

    async fn cost(&self, _query: &CostQuery) -> Result<Vec<CostEntry>> {
        let _state = self.enter(Operation::Cost, None)?;
        Err(Error::unsupported("cost"))
    }

    async fn forecast(&self, _query: &CostQuery) -> Result<Vec<CostEntry>> {
        let _state = self.enter(Operation::Forecast, None)?;
        Err(Error::unsupported("forecast"))
    }

    async fn price(
        &self,
        instance_class: &str,
        _zone: &str,
        _capacity_type: CapacityType,
    ) -> Result<Price> {
        let _state = self.enter(Operation::Price, None)?;
        classes()
            .into_iter()
            .find(|c| c.name == instance_class)
            .map(|c| c.offerings[0].price.clone())
            .ok_or_else(|| Error::not_found(format!("instance class {instance_class}")))
    }
}

#[async_trait]
impl MetricsSource for FakeCloud {
    fn capabilities(&self) -> MetricsCapabilities {
        MetricsCapabilities {
            builtin: vec![MetricKind::Utilization],
            expressions: false,
        }
    }

    async fn query_range(&self, request: &RangeQuery) -> Result<Vec<TimeSeries>> {
        let (query, range, step_seconds) = (&request.query, request.range, request.step_seconds);
        let _state = self.enter(Operation::QueryRange, Some(&query.group))?;
        if query.expression.is_some() || query.metric != MetricKind::Utilization {
            return Err(Error::unsupported("only utilization"));
        }
        let step = chrono::Duration::seconds(i64::from(step_seconds.max(1)));
        let mut samples = Vec::new();
        let mut t = range.start;
        while t < range.end {
            samples.push(Sample { at: t, value: 0.5 });
            t += step;
        }
        Ok(vec![TimeSeries {
            labels: BTreeMap::new(),
            samples,
        }])
    }
}
