//! The author's kit: implement the core traits in ordinary async Rust, implement [`Plugin`] for
//! configuration and metadata, and export with [`crate::export_plugin!`]. The kit writes every
//! `extern "C"` function, owns the plugin's tokio runtime, turns JSON into trait calls and back,
//! and catches every panic so that it reaches the host as an error instead of unwinding into it.
//!
//! Authors write no `unsafe` and no FFI code; the macro expands to the two exported symbols
//! (which use `#[unsafe(no_mangle)]`, so a plugin crate may `deny(unsafe_code)` but not
//! `forbid` it).

#![allow(unsafe_code)]

use std::any::Any;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use futures::FutureExt;
use hoist_api::{
    BillingProvider, Error, ErrorKind, InstanceCatalog, MetricsSource, ScalingProvider,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::{
    ABI_VERSION, Completion, CreateCompletion, PluginTable, STATUS_ERROR, STATUS_OK, TABLE_SIZE_V1,
};
use crate::protocol::{
    Capability, CreateRequest, Empty, GroupRequest, InstanceInfo, Metadata, NameRequest, Operation,
    PriceRequest, QueryRangeRequest, RemoveInstancesRequest, SetDesiredRequest,
    SetInstanceClassRequest, WireError,
};

/// What the host tells a plugin instance about where it runs.
#[derive(Debug, Clone)]
pub struct PluginContext {
    /// The provider's name in the policy file (`pool`).
    pub name: String,
    /// The policy file's directory; relative paths in the configuration resolve against it.
    pub base_dir: PathBuf,
}

impl PluginContext {
    /// `path` resolved against [`Self::base_dir`] when it is relative.
    pub fn resolve(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// A provider that can be exported as a plugin. Implement [`ScalingProvider`] (and any of
/// [`InstanceCatalog`], [`BillingProvider`], [`MetricsSource`] you list in
/// [`crate::export_plugin!`]), then this trait.
#[async_trait]
pub trait Plugin: ScalingProvider + Sized {
    /// The plugin's configuration, as written under `config:` in a policy file. Unknown fields
    /// should be refused (`#[serde(deny_unknown_fields)]`).
    type Config: DeserializeOwned + Send + 'static;

    /// The plugin's name (`static-pool`).
    const NAME: &'static str;
    /// The plugin's version; usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// One line saying what it provides.
    const DESCRIPTION: &'static str;

    /// Builds an instance from its parsed configuration. Validate here: an [`Error`] (best of
    /// kind [`ErrorKind::Config`]) reaches the user verbatim, with the plugin file named.
    async fn create(config: Self::Config, ctx: PluginContext) -> hoist_api::Result<Self>;
}

/// The traits one instance provides. Built by [`crate::export_plugin!`].
#[derive(Debug, Clone)]
pub struct Provided {
    /// Scaling groups.
    pub scaling: Arc<dyn ScalingProvider>,
    /// Instance classes.
    pub catalog: Option<Arc<dyn InstanceCatalog>>,
    /// Billing.
    pub billing: Option<Arc<dyn BillingProvider>>,
    /// Metrics.
    pub metrics: Option<Arc<dyn MetricsSource>>,
}

impl Provided {
    /// Only scaling.
    pub fn scaling(scaling: Arc<dyn ScalingProvider>) -> Self {
        Provided {
            scaling,
            catalog: None,
            billing: None,
            metrics: None,
        }
    }

    fn info(&self) -> InstanceInfo {
        InstanceInfo {
            scaling: self.scaling.capabilities(),
            catalog: self.catalog.as_ref().map(|c| c.capabilities()),
            billing: self.billing.as_ref().map(|b| b.capabilities()),
            metrics: self.metrics.as_ref().map(|m| m.capabilities()),
        }
    }
}

/// Implemented by [`crate::export_plugin!`]: which traits the plugin provides, declared once.
#[doc(hidden)]
pub trait Exported: Plugin {
    /// The traits, `Scaling` first.
    const PROVIDES: &'static [Capability];
    /// The trait objects for one instance.
    fn provided(this: Arc<Self>) -> Provided;
}

/// The plugin's metadata.
pub fn metadata<T: Exported>() -> Metadata {
    Metadata {
        name: T::NAME.to_owned(),
        version: T::VERSION.to_owned(),
        description: T::DESCRIPTION.to_owned(),
        abi_version: ABI_VERSION,
        kit_version: env!("CARGO_PKG_VERSION").to_owned(),
        provides: T::PROVIDES.to_vec(),
        operations: T::PROVIDES
            .iter()
            .flat_map(|c| c.operations())
            .map(|op| op.wire_name().to_owned())
            .collect(),
    }
}

/// The table of ABI version 1 for plugin `T`.
#[doc(hidden)]
pub const fn table<T: Exported>() -> PluginTable {
    PluginTable {
        abi_version: ABI_VERSION,
        table_size: TABLE_SIZE_V1,
        metadata: metadata_fn::<T>,
        create: create_fn::<T>,
        call: call_fn::<T>,
        destroy: destroy_fn,
    }
}

/// The frozen version function's body.
#[doc(hidden)]
pub fn abi_version() -> u32 {
    ABI_VERSION
}

/// The entry function's body: the plugin's side of the version check.
#[doc(hidden)]
pub fn entry(host_abi_version: u32, table: &'static PluginTable) -> *const PluginTable {
    if host_abi_version == ABI_VERSION {
        table
    } else {
        std::ptr::null()
    }
}

/// The runtime every instance of this plugin library runs on. Each library links its own copy
/// of this crate, so each plugin has its own runtime, invisible to the host's.
fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("hoist-plugin")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!("cannot start the plugin's runtime: {e}"),
            )
        })
}

/// A completion that fires exactly once: explicitly, or with an error when dropped unfired
/// (a task that was cancelled, a panic while starting).
struct Done {
    done: Completion,
    ctx: *mut c_void,
    fired: bool,
}

// SAFETY: the ABI requires the host's completion function and context to be usable from any
// thread (the completion runs on a plugin thread); `Done` only hands them back to that function.
unsafe impl Send for Done {}

impl Done {
    fn new(done: Completion, ctx: *mut c_void) -> Self {
        Done {
            done,
            ctx,
            fired: false,
        }
    }

    fn ok(mut self, reply: &[u8]) {
        self.fire(STATUS_OK, reply);
    }

    fn err(mut self, error: &Error) {
        self.fire_error(error);
    }

    fn fire_error(&mut self, error: &Error) {
        let reply = serde_json::to_vec(&WireError::from_error(error)).unwrap_or_default();
        self.fire(STATUS_ERROR, &reply);
    }

    fn fire(&mut self, status: u32, reply: &[u8]) {
        if self.fired {
            return;
        }
        self.fired = true;
        // SAFETY: `done` and `ctx` came from the host for this one call and `fired` guarantees
        // a single completion; `reply` is valid for the duration of the call, as the ABI says.
        unsafe { (self.done)(self.ctx, status, reply.as_ptr(), reply.len()) };
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if !self.fired {
            self.fire_error(&Error::new(
                ErrorKind::Other,
                "the plugin dropped the call before answering (its runtime stopped or it panicked \
                 while starting the call)",
            ));
        }
    }
}

/// Like [`Done`] for `create`.
struct CreateDone {
    done: CreateCompletion,
    ctx: *mut c_void,
    fired: bool,
}

// SAFETY: as for `Done`: the ABI requires the completion and its context to work from any thread.
unsafe impl Send for CreateDone {}

impl CreateDone {
    fn fire(&mut self, instance: *mut c_void, status: u32, reply: &[u8]) {
        if self.fired {
            return;
        }
        self.fired = true;
        // SAFETY: single completion (see `fired`) with the host's own function and context;
        // `reply` outlives the call.
        unsafe { (self.done)(self.ctx, instance, status, reply.as_ptr(), reply.len()) };
    }

    fn fire_error(&mut self, error: &Error) {
        let reply = serde_json::to_vec(&WireError::from_error(error)).unwrap_or_default();
        self.fire(std::ptr::null_mut(), STATUS_ERROR, &reply);
    }
}

impl Drop for CreateDone {
    fn drop(&mut self) {
        if !self.fired {
            self.fire_error(&Error::new(
                ErrorKind::Other,
                "the plugin dropped `create` before answering",
            ));
        }
    }
}

/// One live instance; the host holds it as an opaque pointer from [`Arc::into_raw`].
struct Instance {
    name: &'static str,
    provided: Provided,
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

fn panicked(plugin: &str, what: &str, payload: &(dyn Any + Send)) -> Error {
    Error::new(
        ErrorKind::Other,
        format!(
            "plugin `{plugin}` panicked in {what}: {}; the call failed but the host keeps \
             running. Report this to the plugin's author.",
            panic_message(payload)
        ),
    )
}

/// Copies `len` bytes at `ptr` (null with length 0 is an empty slice).
///
/// # Safety
/// `ptr` must point at `len` readable bytes, or `len` must be 0.
unsafe fn copy_bytes(ptr: *const u8, len: usize) -> Vec<u8> {
    if len == 0 || ptr.is_null() {
        Vec::new()
    } else {
        // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
        unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
    }
}

unsafe extern "C" fn metadata_fn<T: Exported>(done: Completion, ctx: *mut c_void) {
    let mut done = Done::new(done, ctx);
    let result = catch_unwind(AssertUnwindSafe(|| serde_json::to_vec(&metadata::<T>())));
    match result {
        Ok(Ok(bytes)) => done.ok(&bytes),
        Ok(Err(e)) => done.fire_error(&Error::new(
            ErrorKind::Other,
            format!("cannot encode metadata: {e}"),
        )),
        Err(payload) => done.fire_error(&panicked(T::NAME, "metadata", payload.as_ref())),
    }
}

unsafe extern "C" fn create_fn<T: Exported>(
    request: *const u8,
    request_len: usize,
    done: CreateCompletion,
    ctx: *mut c_void,
) {
    let done = CreateDone {
        done,
        ctx,
        fired: false,
    };
    // SAFETY: the ABI lends `request_len` bytes at `request` for the duration of this call; they
    // are copied before it returns.
    let request = unsafe { copy_bytes(request, request_len) };
    let started = catch_unwind(AssertUnwindSafe(|| -> Result<(), (Error, CreateDone)> {
        let runtime = match runtime() {
            Ok(rt) => rt,
            Err(e) => return Err((e, done)),
        };
        runtime.spawn(async move {
            let mut done = done;
            let outcome = AssertUnwindSafe(create_instance::<T>(&request))
                .catch_unwind()
                .await;
            match outcome {
                Ok(Ok((instance, info))) => {
                    let reply = serde_json::to_vec(&info).unwrap_or_default();
                    let handle = Arc::into_raw(Arc::new(instance)) as *mut c_void;
                    done.fire(handle, STATUS_OK, &reply);
                }
                Ok(Err(e)) => done.fire_error(&e),
                Err(payload) => done.fire_error(&panicked(T::NAME, "create", payload.as_ref())),
            }
        });
        Ok(())
    }));
    match started {
        Ok(Ok(())) => {}
        Ok(Err((e, mut done))) => done.fire_error(&e),
        // The completion moved into the closure has fired from its `Drop` during unwinding.
        Err(_) => {}
    }
}

async fn create_instance<T: Exported>(request: &[u8]) -> Result<(Instance, InstanceInfo), Error> {
    let request: CreateRequest = serde_json::from_slice(request).map_err(|e| {
        Error::invalid_input(format!("malformed create request from the host: {e}"))
    })?;
    let config: T::Config = serde_path_to_error::deserialize(request.config).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            Error::config(format!("invalid configuration: {}", e.inner()))
        } else {
            Error::config(format!("invalid configuration at `{path}`: {}", e.inner()))
        }
    })?;
    let ctx = PluginContext {
        name: request.name,
        base_dir: request.base_dir,
    };
    let plugin = Arc::new(T::create(config, ctx).await?);
    let provided = T::provided(plugin);
    let info = provided.info();
    Ok((
        Instance {
            name: T::NAME,
            provided,
        },
        info,
    ))
}

unsafe extern "C" fn call_fn<T: Exported>(
    instance: *const c_void,
    op: *const u8,
    op_len: usize,
    request: *const u8,
    request_len: usize,
    done: Completion,
    ctx: *mut c_void,
) {
    let done = Done::new(done, ctx);
    // SAFETY: the ABI lends both byte ranges for the duration of this call; they are copied now.
    let (op, request) = unsafe { (copy_bytes(op, op_len), copy_bytes(request, request_len)) };
    let instance = instance.cast::<Instance>();
    // SAFETY: `instance` came from `Arc::into_raw` in `create_fn` and the host has not destroyed
    // it (it destroys only after its last call started); the count is raised before `from_raw`
    // so the task owns its own reference.
    let instance = unsafe {
        Arc::increment_strong_count(instance);
        Arc::from_raw(instance)
    };
    let _ = catch_unwind(AssertUnwindSafe(move || {
        let op_name = String::from_utf8_lossy(&op).into_owned();
        let Some(operation) = Operation::from_wire_name(&op_name) else {
            done.err(&Error::unsupported(format!(
                "plugin `{}` does not know the operation `{op_name}`; it was built with \
                 hoist-plugin {}",
                T::NAME,
                env!("CARGO_PKG_VERSION")
            )));
            return;
        };
        let runtime = match runtime() {
            Ok(rt) => rt,
            Err(e) => return done.err(&e),
        };
        runtime.spawn(async move {
            let outcome = AssertUnwindSafe(dispatch(&instance.provided, operation, &request))
                .catch_unwind()
                .await;
            match outcome {
                Ok(Ok(reply)) => done.ok(&reply),
                Ok(Err(e)) => done.err(&e),
                Err(payload) => done.err(&panicked(
                    instance.name,
                    operation.wire_name(),
                    payload.as_ref(),
                )),
            }
        });
    }));
}

unsafe extern "C" fn destroy_fn(instance: *mut c_void) {
    let _ = catch_unwind(|| {
        if !instance.is_null() {
            // SAFETY: `instance` came from `Arc::into_raw` in `create_fn` and the host destroys
            // each instance once; tasks still running hold their own references.
            drop(unsafe { Arc::from_raw(instance.cast::<Instance>()) });
        }
    });
}

fn parse<R: DeserializeOwned>(operation: Operation, request: &[u8]) -> Result<R, Error> {
    serde_json::from_slice(request).map_err(|e| {
        Error::invalid_input(format!(
            "malformed request for {operation} from the host: {e}"
        ))
    })
}

fn reply<V: Serialize>(value: &V) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value)
        .map_err(|e| Error::new(ErrorKind::Other, format!("cannot encode the reply: {e}")))
}

fn missing(capability: Capability) -> Error {
    Error::unsupported(format!("this plugin does not provide {capability}"))
}

async fn dispatch(provided: &Provided, op: Operation, request: &[u8]) -> Result<Vec<u8>, Error> {
    let catalog = || {
        provided
            .catalog
            .as_ref()
            .ok_or_else(|| missing(Capability::Catalog))
    };
    let billing = || {
        provided
            .billing
            .as_ref()
            .ok_or_else(|| missing(Capability::Billing))
    };
    let metrics = || {
        provided
            .metrics
            .as_ref()
            .ok_or_else(|| missing(Capability::Metrics))
    };
    let scaling = &provided.scaling;
    match op {
        Operation::ListGroups => {
            let _: Empty = parse(op, request)?;
            reply(&scaling.list_groups().await?)
        }
        Operation::DescribeGroup => {
            let r: GroupRequest = parse(op, request)?;
            reply(&scaling.describe_group(&r.group).await?)
        }
        Operation::SetDesiredCapacity => {
            let r: SetDesiredRequest = parse(op, request)?;
            reply(&scaling.set_desired_capacity(&r.group, r.desired).await?)
        }
        Operation::RemoveInstances => {
            let r: RemoveInstancesRequest = parse(op, request)?;
            reply(&scaling.remove_instances(&r.group, &r.request).await?)
        }
        Operation::SetInstanceClass => {
            let r: SetInstanceClassRequest = parse(op, request)?;
            let mut change = hoist_api::ChangeInstanceClass::new(r.instance_class);
            if let Some(budget) = r.disruption {
                change = change.with_disruption(budget);
            }
            reply(&scaling.set_instance_class(&r.group, &change).await?)
        }
        Operation::Activities => {
            let r: GroupRequest = parse(op, request)?;
            reply(&scaling.activities(&r.group).await?)
        }
        Operation::InstanceClasses => {
            let _: Empty = parse(op, request)?;
            reply(&catalog()?.instance_classes().await?)
        }
        Operation::InstanceClass => {
            let r: NameRequest = parse(op, request)?;
            reply(&catalog()?.instance_class(&r.name).await?)
        }
        Operation::Cost => {
            let r: hoist_api::CostQuery = parse(op, request)?;
            reply(&billing()?.cost(&r).await?)
        }
        Operation::Forecast => {
            let r: hoist_api::CostQuery = parse(op, request)?;
            reply(&billing()?.forecast(&r).await?)
        }
        Operation::Price => {
            let r: PriceRequest = parse(op, request)?;
            reply(
                &billing()?
                    .price(&r.instance_class, &r.zone, r.capacity_type)
                    .await?,
            )
        }
        Operation::QueryRange => {
            let r: QueryRangeRequest = parse(op, request)?;
            reply(&metrics()?.query_range(&r).await?)
        }
    }
}

/// Exports a [`Plugin`] from a `cdylib` crate: the frozen version symbol, the entry symbol and
/// the table behind them. List the traits beyond scaling the type implements, once:
///
/// ```text
/// hoist_plugin::export_plugin!(StaticPool, provides: [catalog]);
/// ```
///
/// Accepted names: `catalog` ([`InstanceCatalog`]), `billing` ([`BillingProvider`]),
/// `metrics` ([`MetricsSource`]). Use it once per library.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty $(,)?) => {
        $crate::export_plugin!($plugin, provides: []);
    };
    ($plugin:ty, provides: [$($capability:ident),* $(,)?] $(,)?) => {
        impl $crate::kit::Exported for $plugin {
            const PROVIDES: &'static [$crate::protocol::Capability] = &[
                $crate::protocol::Capability::Scaling,
                $($crate::__hoist_capability!($capability)),*
            ];
            fn provided(this: ::std::sync::Arc<Self>) -> $crate::kit::Provided {
                #[allow(unused_mut)]
                let mut provided = $crate::kit::Provided::scaling(this.clone());
                $($crate::__hoist_provide!(provided, this, $capability);)*
                provided
            }
        }

        /// The frozen ABI version function of this Hoist plugin.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn hoist_plugin_abi_version() -> u32 {
            $crate::kit::abi_version()
        }

        /// The entry function of this Hoist plugin: its function table for the host's ABI.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn hoist_plugin_entry(
            host_abi_version: u32,
        ) -> *const $crate::abi::PluginTable {
            static TABLE: $crate::abi::PluginTable = $crate::kit::table::<$plugin>();
            $crate::kit::entry(host_abi_version, &TABLE)
        }
    };
}

/// Maps a capability name in [`export_plugin!`] to its [`Capability`].
#[doc(hidden)]
#[macro_export]
macro_rules! __hoist_capability {
    (catalog) => {
        $crate::protocol::Capability::Catalog
    };
    (billing) => {
        $crate::protocol::Capability::Billing
    };
    (metrics) => {
        $crate::protocol::Capability::Metrics
    };
    ($other:ident) => {
        compile_error!(concat!(
            "unknown capability `",
            stringify!($other),
            "` in export_plugin!: use catalog, billing or metrics (scaling is always provided)"
        ))
    };
}

/// Stores one capability's trait object in [`Provided`].
#[doc(hidden)]
#[macro_export]
macro_rules! __hoist_provide {
    ($provided:ident, $this:ident, catalog) => {
        $provided.catalog =
            Some($this.clone() as ::std::sync::Arc<dyn $crate::hoist_api::InstanceCatalog>);
    };
    ($provided:ident, $this:ident, billing) => {
        $provided.billing =
            Some($this.clone() as ::std::sync::Arc<dyn $crate::hoist_api::BillingProvider>);
    };
    ($provided:ident, $this:ident, metrics) => {
        $provided.metrics =
            Some($this.clone() as ::std::sync::Arc<dyn $crate::hoist_api::MetricsSource>);
    };
    ($provided:ident, $this:ident, $other:ident) => {};
}
