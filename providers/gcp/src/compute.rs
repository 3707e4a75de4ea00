//! Compute Engine through `google-cloud-compute-v1` (instance group managers zonal and regional,
//! instance templates, machine types), returning this crate's plain types. Writes return their
//! operation's poller result: the crate's discovery poller follows the zonal, regional or global
//! operation to `DONE`, and [`check_operation`] turns an operation that ended with an error into
//! one.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures::FutureExt;
use google_cloud_compute_v1::client::{
    InstanceGroupManagers, InstanceTemplates, MachineTypes, RegionInstanceGroupManagers,
    RegionInstanceTemplates,
};
use google_cloud_compute_v1::model;
use google_cloud_gax::paginator::ItemPaginator;
use google_cloud_gax::retry_policy::RetryPolicy;
use google_cloud_gax::retry_result::RetryResult;
use google_cloud_gax::retry_state::RetryState;
use google_cloud_lro::Poller;
use hoist_api::{ErrorKind, Result};

use crate::errors::{from_gax, from_status, local};
use crate::settings::Location;

/// A managed instance group, as this crate uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mig {
    /// Its name.
    pub name: String,
    /// Its zone or region.
    pub location: Location,
    /// Instances asked for.
    pub target_size: u32,
    /// The instance template URL new instances get.
    pub template: String,
    /// Zones it spans (a zonal group: its zone).
    pub zones: Vec<String>,
}

/// One managed instance.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedVm {
    /// The instance's numeric id, once it has one.
    pub id: Option<u64>,
    /// The instance's name.
    pub name: String,
    /// Its URL (what delete-instances takes).
    pub url: String,
    /// Its zone.
    pub zone: String,
    /// `PROVISIONING`, `STAGING`, `RUNNING`, `STOPPING`, `STOPPED`, `TERMINATED`, ...
    pub status: String,
    /// `NONE`, `CREATING`, `DELETING`, `RECREATING`, ...
    pub action: String,
    /// The template it was made from.
    pub template: String,
    /// Why the group's last attempt to create or change it failed (code, message): a stockout
    /// or a quota, which Compute Engine reports here rather than in the resize's operation.
    pub last_error: Option<(String, String)>,
}

/// An instance template's parts this crate reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// Its region, for a regional template (`regions/{r}/instanceTemplates/{name}`).
    pub region: Option<String>,
    /// The machine type of its instances.
    pub machine_type: String,
    /// Labels of its instances.
    pub labels: BTreeMap<String, String>,
    /// Spot or preemptible instances.
    pub spot: bool,
    raw: model::InstanceTemplate,
}

/// A machine type in a zone.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineKind {
    /// `n2-standard-2`.
    pub name: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Shared-core.
    pub shared_cpu: bool,
    /// GPUs attached.
    pub gpus: u32,
    /// Arm64.
    pub arm64: bool,
}

/// Retries 429, 5xx, a 403 that reports a rate quota (Compute Engine's `rateLimitExceeded`),
/// and failures before the request was sent, `attempts` times in all.
#[derive(Debug, Clone, Copy)]
pub struct RetryThrottledAndServerErrors {
    /// Attempts in all (the first included).
    pub attempts: u32,
}

impl RetryPolicy for RetryThrottledAndServerErrors {
    fn on_error(&self, state: &RetryState, error: google_cloud_gax::error::Error) -> RetryResult {
        let retryable = error.is_transient_and_before_rpc()
            || error.is_io()
            || error.is_connect()
            || error
                .http_status_code()
                .is_some_and(|s| s == 429 || (500..600).contains(&s))
            || crate::errors::is_rate_limit(&crate::errors::reason_of_error(&error));
        if !retryable || error.is_authentication() {
            RetryResult::Permanent(error)
        } else if state.attempt_count >= self.attempts {
            RetryResult::Exhausted(error)
        } else {
            RetryResult::Continue(error)
        }
    }
}

/// The Compute Engine clients for one project.
#[derive(Clone)]
pub struct Compute {
    project: String,
    zonal: InstanceGroupManagers,
    regional: RegionInstanceGroupManagers,
    templates: InstanceTemplates,
    region_templates: RegionInstanceTemplates,
    machine_types: MachineTypes,
    timeout: Duration,
    operation_timeout: Duration,
    poll_interval: Duration,
    /// Templates read, by the URL or name asked for. Compute Engine's instance templates are
    /// immutable (a changed template is a new one), so one read serves every evaluation.
    template_cache: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Template>>>,
}

/// Templates kept in the cache at most (it starts over when full).
const TEMPLATES_CACHED: usize = 256;

impl fmt::Debug for Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compute")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// How clients are built.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The endpoint, when not Google's.
    pub endpoint: Option<String>,
    /// The credentials.
    pub credentials: google_cloud_auth::credentials::Credentials,
    /// Attempts per call.
    pub attempts: u32,
    /// The first wait between polls of an operation.
    pub poll_interval: Duration,
}

macro_rules! build_client {
    ($client:ty, $config:expr) => {{
        let config = $config;
        let mut builder = <$client>::builder()
            .with_credentials(config.credentials.clone())
            .with_retry_policy($crate::compute::RetryThrottledAndServerErrors {
                attempts: config.attempts,
            })
            .with_backoff_policy(
                google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder::new()
                    .with_initial_delay(std::time::Duration::from_millis(500))
                    .with_maximum_delay(std::time::Duration::from_secs(30))
                    .build()
                    .map_err(|e| {
                        $crate::errors::local(
                            hoist_api::ErrorKind::Config,
                            "connect",
                            e.to_string(),
                        )
                    })?,
            )
            .with_polling_backoff_policy(
                google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder::new()
                    .with_initial_delay(config.poll_interval)
                    .with_maximum_delay(
                        std::time::Duration::from_secs(10).max(config.poll_interval),
                    )
                    .build()
                    .map_err(|e| {
                        $crate::errors::local(
                            hoist_api::ErrorKind::Config,
                            "connect",
                            e.to_string(),
                        )
                    })?,
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        builder.build().await.map_err(|e| {
            $crate::errors::local(hoist_api::ErrorKind::Config, "connect", e.to_string())
        })?
    }};
}

#[allow(unused_imports)]
pub(crate) use build_client;

fn zone_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_owned()
}

/// The last path segment of a resource URL (`.../machineTypes/n2-standard-2` is
/// `n2-standard-2`).
pub fn last_segment(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// An operation that ended with an error, as an error (judged by its first error code).
pub fn check_operation(operation: &str, op: model::Operation) -> Result<()> {
    let Some(error) = op.error else {
        return Ok(());
    };
    let first = error.errors.first();
    let code = first.and_then(|e| e.code.clone()).unwrap_or_default();
    let message = first
        .and_then(|e| e.message.clone())
        .or(op.http_error_message)
        .unwrap_or_else(|| "the operation failed".to_owned());
    let status = op
        .http_error_status_code
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(400);
    Err(from_status(operation, status, &code, &message))
}

impl Compute {
    /// The clients for `project`.
    pub async fn new(
        project: &str,
        config: &ClientConfig,
        timeout: Duration,
        operation_timeout: Duration,
    ) -> Result<Self> {
        Ok(Compute {
            operation_timeout,
            poll_interval: config.poll_interval,
            template_cache: Default::default(),
            project: project.to_owned(),
            zonal: build_client!(InstanceGroupManagers, config),
            regional: build_client!(RegionInstanceGroupManagers, config),
            templates: build_client!(InstanceTemplates, config),
            region_templates: build_client!(RegionInstanceTemplates, config),
            machine_types: build_client!(MachineTypes, config),
            timeout,
        })
    }

    async fn bounded<T>(
        &self,
        operation: &str,
        call: impl std::future::Future<Output = google_cloud_gax::Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(|e| from_gax(operation, e)),
            Err(_) => Err(local(
                ErrorKind::Timeout,
                operation,
                format!("Google Cloud did not answer within {:?}", self.timeout),
            )),
        }
    }

    fn templates_cached(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Template>> {
        self.template_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Follows an operation's poller to its end, bounded by the operation timeout.
    async fn follow(
        &self,
        operation: &str,
        poll: impl std::future::Future<Output = google_cloud_gax::Result<model::Operation>>,
    ) -> Result<model::Operation> {
        match tokio::time::timeout(self.operation_timeout, poll).await {
            Ok(result) => result.map_err(|e| from_gax(operation, e)),
            Err(_) => Err(local(
                ErrorKind::Timeout,
                operation,
                format!(
                    "the operation was still running after {:?}; Compute Engine goes on with it, and the next describe shows its effect",
                    self.operation_timeout
                ),
            )
            .with_retryable(false)),
        }
    }

    /// After a resize: waits (within the operation timeout) until no instance is still being
    /// created without a verdict, and reports the first creation error as the resize's own.
    /// Compute Engine marks a resize done once the target size is set and reports stockouts and
    /// quota errors on the instances it could not create (their last attempt), retrying them
    /// until they succeed.
    pub async fn creations_settled(&self, mig: &Mig) -> Result<()> {
        let op = "set_desired_capacity";
        let deadline = tokio::time::Instant::now() + self.operation_timeout;
        let mut wait = self.poll_interval;
        loop {
            let vms = self.instances(mig).await?;
            if let Some((code, message)) = vms
                .iter()
                .filter(|vm| vm.action.starts_with("CREATING"))
                .find_map(|vm| vm.last_error.clone())
            {
                return Err(from_status(op, 400, &code, &message));
            }
            if !vms.iter().any(|vm| vm.action.starts_with("CREATING")) {
                return Ok(());
            }
            if tokio::time::Instant::now() + wait > deadline {
                return Err(local(
                    ErrorKind::Timeout,
                    op,
                    format!(
                        "instances were still being created after {:?}",
                        self.operation_timeout
                    ),
                )
                .with_retryable(false));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }

    fn mig(&self, igm: model::InstanceGroupManager, location: &Location) -> Result<Mig> {
        let name = igm.name.unwrap_or_default();
        let target_size = u32::try_from(igm.target_size.unwrap_or(0)).map_err(|_| {
            local(
                ErrorKind::Other,
                "describe_group",
                format!("group {name} reports a negative target size"),
            )
        })?;
        let template = igm
            .versions
            .first()
            .and_then(|v| v.instance_template.clone())
            .or(igm.instance_template)
            .unwrap_or_default();
        let zones = match location {
            Location::Zone(z) => vec![z.clone()],
            Location::Region(_) => igm
                .distribution_policy
                .map(|d| {
                    d.zones
                        .into_iter()
                        .filter_map(|z| z.zone.map(|z| zone_name(&z)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        Ok(Mig {
            name,
            location: location.clone(),
            target_size,
            template,
            zones,
        })
    }

    /// One group.
    pub async fn group(&self, location: &Location, name: &str) -> Result<Mig> {
        let op = "describe_group";
        let igm = match location {
            Location::Zone(z) => {
                self.bounded(
                    op,
                    self.zonal
                        .get()
                        .set_project(&self.project)
                        .set_zone(z)
                        .set_instance_group_manager(name)
                        .send(),
                )
                .await?
            }
            Location::Region(r) => {
                self.bounded(
                    op,
                    self.regional
                        .get()
                        .set_project(&self.project)
                        .set_region(r)
                        .set_instance_group_manager(name)
                        .send(),
                )
                .await?
            }
        };
        self.mig(igm, location)
    }

    /// Every group of the project (the aggregated list).
    pub async fn groups(&self) -> Result<Vec<Mig>> {
        let op = "list_groups";
        let mut pages = self
            .zonal
            .aggregated_list()
            .set_project(&self.project)
            .by_page();
        let mut out = Vec::new();
        use google_cloud_gax::paginator::Paginator;
        while let Some(page) = self.bounded(op, async { Ok(pages.next().await) }).await? {
            let page = page.map_err(|e| from_gax(op, e))?;
            for (scope, list) in page.items {
                let location = match scope.split_once('/') {
                    Some(("zones", z)) => Location::Zone(z.to_owned()),
                    Some(("regions", r)) => Location::Region(r.to_owned()),
                    _ => continue,
                };
                for igm in list.instance_group_managers {
                    out.push(self.mig(igm, &location)?);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The managed instances of a group.
    pub async fn instances(&self, mig: &Mig) -> Result<Vec<ManagedVm>> {
        let op = "describe_group";
        let mut out = Vec::new();
        let convert = |m: model::ManagedInstance| {
            let url = m.instance.unwrap_or_default();
            let zone = url
                .split('/')
                .skip_while(|s| *s != "zones")
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            ManagedVm {
                id: m.id,
                name: m.name.unwrap_or_else(|| last_segment(&url).to_owned()),
                zone,
                status: m
                    .instance_status
                    .and_then(|s| s.name().map(str::to_owned))
                    .unwrap_or_default(),
                action: m
                    .current_action
                    .and_then(|a| a.name().map(str::to_owned))
                    .unwrap_or_default(),
                template: m
                    .version
                    .and_then(|v| v.instance_template)
                    .unwrap_or_default(),
                last_error: m
                    .last_attempt
                    .and_then(|a| a.errors)
                    .and_then(|e| e.errors.into_iter().next())
                    .map(|e| (e.code.unwrap_or_default(), e.message.unwrap_or_default())),
                url,
            }
        };
        match &mig.location {
            Location::Zone(z) => {
                let mut items = self
                    .zonal
                    .list_managed_instances()
                    .set_project(&self.project)
                    .set_zone(z)
                    .set_instance_group_manager(&mig.name)
                    .by_item();
                while let Some(item) = self.bounded(op, async { Ok(items.next().await) }).await? {
                    out.push(convert(item.map_err(|e| from_gax(op, e))?));
                }
            }
            Location::Region(r) => {
                let mut items = self
                    .regional
                    .list_managed_instances()
                    .set_project(&self.project)
                    .set_region(r)
                    .set_instance_group_manager(&mig.name)
                    .by_item();
                while let Some(item) = self.bounded(op, async { Ok(items.next().await) }).await? {
                    out.push(convert(item.map_err(|e| from_gax(op, e))?));
                }
            }
        }
        Ok(out)
    }

    /// Resizes a group and follows the operation to its end.
    pub async fn resize(&self, mig: &Mig, size: u32) -> Result<()> {
        let op = "set_desired_capacity";
        let size = i32::try_from(size)
            .map_err(|_| local(ErrorKind::InvalidInput, op, "size out of range"))?;
        let done = match &mig.location {
            Location::Zone(z) => self
                .zonal
                .resize()
                .set_project(&self.project)
                .set_zone(z)
                .set_instance_group_manager(&mig.name)
                .set_size(size)
                .set_request_id(request_id())
                .poller()
                .until_done()
                .boxed(),
            Location::Region(r) => self
                .regional
                .resize()
                .set_project(&self.project)
                .set_region(r)
                .set_instance_group_manager(&mig.name)
                .set_size(size)
                .set_request_id(request_id())
                .poller()
                .until_done()
                .boxed(),
        };
        check_operation(op, self.follow(op, done).await?)
    }

    /// Deletes instances (GCE lowers the target size by as many) and follows the operation.
    pub async fn delete_instances(&self, mig: &Mig, urls: &[String]) -> Result<()> {
        let op = "remove_instances";
        let done = match &mig.location {
            Location::Zone(z) => {
                let body = model::InstanceGroupManagersDeleteInstancesRequest::new()
                    .set_instances(urls.to_vec())
                    .set_skip_instances_on_validation_error(false);
                self.zonal
                    .delete_instances()
                    .set_project(&self.project)
                    .set_zone(z)
                    .set_instance_group_manager(&mig.name)
                    .set_body(body)
                    .set_request_id(request_id())
                    .poller()
                    .until_done()
                    .boxed()
            }
            Location::Region(r) => {
                let body = model::RegionInstanceGroupManagersDeleteInstancesRequest::new()
                    .set_instances(urls.to_vec())
                    .set_skip_instances_on_validation_error(false);
                self.regional
                    .delete_instances()
                    .set_project(&self.project)
                    .set_region(r)
                    .set_instance_group_manager(&mig.name)
                    .set_body(body)
                    .set_request_id(request_id())
                    .poller()
                    .until_done()
                    .boxed()
            }
        };
        check_operation(op, self.follow(op, done).await?)
    }

    /// An instance template, by URL or name: a global one, or a regional one when the URL
    /// says `regions/{r}/instanceTemplates/{name}`.
    pub async fn template(&self, url_or_name: &str) -> Result<Template> {
        let op = "describe_group";
        if let Some(t) = self.templates_cached().get(url_or_name) {
            return Ok(t.clone());
        }
        let name = last_segment(url_or_name).to_owned();
        let region = region_of_template(url_or_name);
        let t = match &region {
            Some(r) => {
                self.bounded(
                    op,
                    self.region_templates
                        .get()
                        .set_project(&self.project)
                        .set_region(r)
                        .set_instance_template(&name)
                        .send(),
                )
                .await?
            }
            None => {
                self.bounded(
                    op,
                    self.templates
                        .get()
                        .set_project(&self.project)
                        .set_instance_template(&name)
                        .send(),
                )
                .await?
            }
        };
        let template = template_of(t, url_or_name, region);
        let mut cached = self.templates_cached();
        if cached.len() >= TEMPLATES_CACHED {
            cached.clear();
        }
        cached.insert(url_or_name.to_owned(), template.clone());
        Ok(template)
    }

    /// Creates a copy of `template` named `name` whose instances are `machine_type`, and
    /// returns its URL.
    pub async fn copy_template(
        &self,
        template: &Template,
        name: &str,
        machine_type: &str,
    ) -> Result<String> {
        let op = "set_instance_class";
        let properties = template
            .raw
            .properties
            .clone()
            .unwrap_or_default()
            .set_machine_type(machine_type);
        let copy = model::InstanceTemplate::new()
            .set_name(name)
            .set_description(format!(
                "{} with machine type {machine_type}, made by Hoist",
                template.name
            ))
            .set_properties(properties);
        let done = match &template.region {
            Some(region) => self
                .region_templates
                .insert()
                .set_project(&self.project)
                .set_region(region)
                .set_body(copy)
                .set_request_id(request_id())
                .poller()
                .until_done()
                .boxed(),
            None => self
                .templates
                .insert()
                .set_project(&self.project)
                .set_body(copy)
                .set_request_id(request_id())
                .poller()
                .until_done()
                .boxed(),
        };
        let done = self.follow(op, done).await?;
        let target = done.target_link.clone();
        check_operation(op, done)?;
        Ok(target.unwrap_or_else(|| match &template.region {
            Some(r) => format!(
                "projects/{}/regions/{r}/instanceTemplates/{name}",
                self.project
            ),
            None => format!("projects/{}/global/instanceTemplates/{name}", self.project),
        }))
    }

    /// Points a group at `template_url` and starts a proactive rolling replacement: at most
    /// `max_surge` extra instances at a time, none unavailable.
    pub async fn roll_to(&self, mig: &Mig, template_url: &str, max_surge: u32) -> Result<()> {
        let op = "set_instance_class";
        let surge = i32::try_from(max_surge.max(1)).unwrap_or(1);
        let patch = model::InstanceGroupManager::new()
            .set_versions([model::InstanceGroupManagerVersion::new()
                .set_instance_template(template_url)
                .set_name("hoist")])
            .set_update_policy(
                model::InstanceGroupManagerUpdatePolicy::new()
                    .set_type("PROACTIVE")
                    .set_minimal_action("REPLACE")
                    .set_max_surge(model::FixedOrPercent::new().set_fixed(surge))
                    .set_max_unavailable(model::FixedOrPercent::new().set_fixed(0)),
            );
        let done = match &mig.location {
            Location::Zone(z) => self
                .zonal
                .patch()
                .set_project(&self.project)
                .set_zone(z)
                .set_instance_group_manager(&mig.name)
                .set_body(patch)
                .set_request_id(request_id())
                .poller()
                .until_done()
                .boxed(),
            Location::Region(r) => self
                .regional
                .patch()
                .set_project(&self.project)
                .set_region(r)
                .set_instance_group_manager(&mig.name)
                .set_body(patch)
                .set_request_id(request_id())
                .poller()
                .until_done()
                .boxed(),
        };
        check_operation(op, self.follow(op, done).await?)
    }

    /// The machine types of a zone.
    pub async fn machine_types(&self, zone: &str) -> Result<Vec<MachineKind>> {
        let op = "instance_classes";
        let mut items = self
            .machine_types
            .list()
            .set_project(&self.project)
            .set_zone(zone)
            .by_item();
        let mut out = Vec::new();
        while let Some(item) = self.bounded(op, async { Ok(items.next().await) }).await? {
            let m = item.map_err(|e| from_gax(op, e))?;
            let Some(name) = m.name.clone() else { continue };
            out.push(MachineKind {
                vcpus: u32::try_from(m.guest_cpus.unwrap_or(0)).unwrap_or(0),
                memory_mib: u64::try_from(m.memory_mb.unwrap_or(0)).unwrap_or(0),
                shared_cpu: m.is_shared_cpu.unwrap_or(false),
                gpus: m
                    .accelerators
                    .iter()
                    .map(|a| u32::try_from(a.guest_accelerator_count.unwrap_or(0)).unwrap_or(0))
                    .sum(),
                arm64: m
                    .architecture
                    .as_ref()
                    .and_then(|a| a.name())
                    .is_some_and(|a| a == "ARM64")
                    || name.starts_with("t2a-")
                    || name.starts_with("c4a-"),
                name,
            });
        }
        Ok(out)
    }
}

/// The region of a regional template's URL (`.../regions/{r}/instanceTemplates/{name}`).
pub fn region_of_template(url: &str) -> Option<String> {
    let parts: Vec<&str> = url.split('/').collect();
    parts
        .windows(3)
        .find(|w| w[0] == "regions" && w[2] == "instanceTemplates")
        .map(|w| w[1].to_owned())
}

fn template_of(t: model::InstanceTemplate, url_or_name: &str, region: Option<String>) -> Template {
    let props = t.properties.clone().unwrap_or_default();
    let spot = props.scheduling.as_ref().is_some_and(|s| {
        s.preemptible.unwrap_or(false)
            || s.provisioning_model
                .as_ref()
                .and_then(|p| p.name())
                .is_some_and(|p| p == "SPOT")
    });
    Template {
        name: t.name.clone().unwrap_or_default(),
        url: t
            .self_link
            .clone()
            .unwrap_or_else(|| url_or_name.to_owned()),
        region,
        machine_type: last_segment(props.machine_type.as_deref().unwrap_or_default()).to_owned(),
        labels: props.labels.into_iter().collect(),
        spot,
        raw: t,
    }
}

/// A request id: Compute Engine ignores a retried write with the same id.
fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let a = (t as u64) ^ u64::from(std::process::id()).rotate_left(32);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        (n & 0xfff) as u16,
        n & 0xffff_ffff_ffff
    )
}
