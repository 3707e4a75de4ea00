//! The host side: opens a plugin library, checks its ABI version before anything else, reads its
//! metadata, creates instances from configuration and exposes them as ordinary providers that
//! implement the core traits. Libraries are never unloaded.
//!
//! Every way a library can be unfit gives a [`LoadError`] that names the file and says what to
//! do; a plugin that panics or misbehaves in a call gives a [`hoist_api::Error`], and the host
//! keeps running.

#![allow(unsafe_code)]

use std::ffi::c_void;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::channel::oneshot;
use hoist_api::{
    Activity, BillingCapabilities, BillingProvider, CapacityType, CatalogCapabilities, CostEntry,
    CostQuery, Error, ErrorKind, InstanceCatalog, InstanceClass, MetricsCapabilities,
    MetricsSource, Price, ProviderSet, RangeQuery, RemoveInstances, ScalingCapabilities,
    ScalingGroup, ScalingProvider, TimeSeries,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::{
    ABI_VERSION, AbiVersionFn, ENTRY_SYMBOL, EntryFn, PluginTable, STATUS_ERROR, STATUS_OK,
    TABLE_SIZE_V1, VERSION_SYMBOL,
};
use crate::protocol::{
    Capability, CreateRequest, Empty, GroupRequest, InstanceInfo, Metadata, NameRequest, Operation,
    PriceRequest, RemoveInstancesRequest, SetDesiredRequest, SetInstanceClassRequest, WireError,
};

/// The version of this crate, which plugins must be built against to share its ABI.
pub const KIT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a plugin library cannot be used. Every message names the file and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file does not exist.
    #[error(
        "plugin {path}: no such file. Check the `plugin:` path (a relative path resolves against \
         the policy file's directory) and build the plugin with `cargo build`."
    )]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The path is not a regular file.
    #[error(
        "plugin {path}: {what}. A plugin is a shared library file: point `plugin:` at the built \
         `lib<name>.so` (`.dylib` on macOS, `.dll` on Windows) under target/<profile>/."
    )]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        what: String,
    },
    /// The dynamic loader refused the file.
    #[error(
        "plugin {path}: not a loadable shared library ({reason}). A plugin is a crate built with \
         `crate-type = [\"cdylib\"]` for this platform; point `plugin:` at the built \
         `lib<name>.so` (`.dylib` on macOS, `.dll` on Windows) under target/<profile>/."
    )]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// The dynamic loader's message.
        reason: String,
    },
    /// A shared library without the frozen version symbol.
    #[error(
        "plugin {path}: a shared library but not a Hoist plugin: it does not export \
         `hoist_plugin_abi_version`. Export the provider with `hoist_plugin::export_plugin!` \
         (see docs/writing-a-plugin.md)."
    )]
    NotAPlugin {
        /// The file.
        path: PathBuf,
    },
    /// The plugin was built for another ABI version.
    #[error(
        "plugin {path}: built for Hoist plugin ABI version {plugin_abi}, but this hoist speaks \
         ABI version {host_abi} (hoist-plugin {kit}). Rebuild the plugin against hoist-plugin \
         {kit}{advice}",
        host_abi = ABI_VERSION,
        kit = KIT_VERSION,
        advice = if *plugin_abi > ABI_VERSION {
            ", or upgrade hoist to one that speaks the plugin's ABI version."
        } else {
            "."
        }
    )]
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// The version the plugin reports.
        plugin_abi: u32,
    },
    /// The library claims our ABI version but its entry point or table is broken.
    #[error(
        "plugin {path}: {problem}. The library is damaged or was not built with \
         `hoist_plugin::export_plugin!`; rebuild it against hoist-plugin {kit}.",
        kit = KIT_VERSION
    )]
    BadTable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The plugin refused its configuration or failed to start; the plugin's message verbatim.
    #[error("plugin `{plugin}` ({path}) could not start: {message}")]
    Rejected {
        /// The file.
        path: PathBuf,
        /// The plugin's name.
        plugin: String,
        /// The plugin's own message, unchanged.
        message: String,
        /// The plugin's error.
        #[source]
        error: Box<Error>,
    },
}

impl LoadError {
    /// The file concerned.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::NotFound { path }
            | LoadError::NotAFile { path, .. }
            | LoadError::NotALibrary { path, .. }
            | LoadError::NotAPlugin { path }
            | LoadError::AbiMismatch { path, .. }
            | LoadError::BadTable { path, .. }
            | LoadError::Rejected { path, .. } => path,
        }
    }
}

impl From<LoadError> for Error {
    fn from(error: LoadError) -> Self {
        let kind = match &error {
            LoadError::Rejected { error, .. } => error.kind(),
            _ => ErrorKind::Config,
        };
        Error::new(kind, error.to_string())
            .with_provider("plugin")
            .with_operation("load")
    }
}

/// An opened plugin library whose ABI version and metadata have been checked.
#[derive(Debug, Clone)]
pub struct PluginLibrary {
    path: PathBuf,
    table: PluginTable,
    metadata: Metadata,
}

/// A completion's result: status and a copy of the reply bytes.
type Reply = (u32, Vec<u8>);

/// The host's completion: `ctx` is a leaked `Box<oneshot::Sender<Reply>>`, taken back here.
unsafe extern "C" fn complete(ctx: *mut c_void, status: u32, reply: *const u8, reply_len: usize) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `Box::into_raw` of a sender made for this call, and the ABI
        // guarantees exactly one completion, so it is taken back exactly once.
        let sender = unsafe { Box::from_raw(ctx.cast::<oneshot::Sender<Reply>>()) };
        let bytes = if reply.is_null() || reply_len == 0 {
            Vec::new()
        } else {
            // SAFETY: the plugin lends `reply_len` bytes at `reply` for the duration of this call.
            unsafe { std::slice::from_raw_parts(reply, reply_len) }.to_vec()
        };
        // The receiver is gone when the host stopped waiting; the reply is then dropped.
        let _ = sender.send((status, bytes));
    }));
}

/// A created instance's pointer, `Send` so it can travel through the channel.
struct RawInstance(*mut c_void);
// SAFETY: an instance pointer is an opaque handle the plugin makes thread-safe (the kit's
// instances are `Arc`s of `Send + Sync` providers); the host only passes it back to the plugin.
unsafe impl Send for RawInstance {}

struct CreateCtx {
    sender: oneshot::Sender<(RawInstance, u32, Vec<u8>)>,
    destroy: unsafe extern "C" fn(*mut c_void),
}

unsafe extern "C" fn create_complete(
    ctx: *mut c_void,
    instance: *mut c_void,
    status: u32,
    reply: *const u8,
    reply_len: usize,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `Box::into_raw` of this call's `CreateCtx`, completed exactly once.
        let ctx = unsafe { Box::from_raw(ctx.cast::<CreateCtx>()) };
        let bytes = if reply.is_null() || reply_len == 0 {
            Vec::new()
        } else {
            // SAFETY: the plugin lends `reply_len` bytes at `reply` for the duration of this call.
            unsafe { std::slice::from_raw_parts(reply, reply_len) }.to_vec()
        };
        if let Err((instance, _, _)) = ctx.sender.send((RawInstance(instance), status, bytes))
            && !instance.0.is_null()
        {
            // Nobody waits for this instance any more: give it back.
            // SAFETY: a fresh instance of this plugin, not seen by anyone else.
            unsafe { (ctx.destroy)(instance.0) };
        }
    }));
}

impl PluginLibrary {
    /// Opens the library at `path`: checks the frozen version symbol first, then the entry, the
    /// table and the metadata. The library stays loaded for the life of the process.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref().to_owned();
        if !path.exists() {
            return Err(LoadError::NotFound { path });
        }
        // Resolve to an absolute path so the dynamic loader never searches its own paths.
        let absolute = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        // Only a regular file is handed to the dynamic loader: a directory, a device such as
        // /dev/zero or a pipe is refused before anything opens it.
        let file_type = std::fs::metadata(&absolute).map(|m| m.file_type());
        if !file_type.as_ref().is_ok_and(std::fs::FileType::is_file) {
            let what = match file_type {
                Ok(t) if t.is_dir() => "a directory".to_owned(),
                Ok(_) => "not a regular file (a device, pipe or socket)".to_owned(),
                Err(e) => format!("cannot be read ({e})"),
            };
            return Err(LoadError::NotAFile { path, what });
        }
        // SAFETY: loading a library runs its initialisers; plugins are trusted code the user
        // chose to load, as documented. The library is leaked below and never unloaded, so
        // nothing taken from it outlives it.
        let library =
            unsafe { libloading::Library::new(&absolute) }.map_err(|e| LoadError::NotALibrary {
                path: path.clone(),
                reason: error_chain(&e),
            })?;
        let library: &'static libloading::Library = Box::leak(Box::new(library));

        // SAFETY: `hoist_plugin_abi_version` is frozen as `extern "C" fn() -> u32` for every
        // ABI version; the library is never unloaded, so the pointer stays valid.
        let version: AbiVersionFn = match unsafe { library.get::<AbiVersionFn>(VERSION_SYMBOL) } {
            Ok(symbol) => *symbol,
            Err(_) => return Err(LoadError::NotAPlugin { path }),
        };
        // SAFETY: see above; the function takes nothing and catches its own panics.
        let plugin_abi = unsafe { version() };
        if plugin_abi != ABI_VERSION {
            return Err(LoadError::AbiMismatch { path, plugin_abi });
        }

        // SAFETY: the plugin declared ABI version 1, whose entry has exactly this signature.
        let entry: EntryFn = match unsafe { library.get::<EntryFn>(ENTRY_SYMBOL) } {
            Ok(symbol) => *symbol,
            Err(_) => {
                return Err(LoadError::BadTable {
                    path,
                    problem: "it reports ABI version 1 but exports no `hoist_plugin_entry`".into(),
                });
            }
        };
        // SAFETY: as above; the plugin checks our version and returns null when it disagrees.
        let table = unsafe { entry(ABI_VERSION) };
        if table.is_null() {
            return Err(LoadError::BadTable {
                path,
                problem: format!("the plugin refused this host's ABI version {ABI_VERSION}"),
            });
        }
        // SAFETY: non-null; the entry of ABI version 1 returns a pointer to a `'static`
        // `PluginTable`. The first two fields are read alone first: a table is at least that big.
        let (table_abi, table_size) = unsafe { ((*table).abi_version, (*table).table_size) };
        if table_abi != ABI_VERSION || table_size < TABLE_SIZE_V1 {
            return Err(LoadError::BadTable {
                path,
                problem: format!(
                    "its function table is for ABI version {table_abi} with {table_size} bytes; \
                     this host needs version {ABI_VERSION} with at least {TABLE_SIZE_V1} bytes"
                ),
            });
        }
        // SAFETY: the table has at least the version 1 fields (checked just above).
        let table: PluginTable = unsafe { *table };

        let (sender, mut receiver) = oneshot::channel::<Reply>();
        let ctx = Box::into_raw(Box::new(sender)).cast::<c_void>();
        // SAFETY: `complete` and its context follow the ABI; `metadata` answers synchronously.
        unsafe { (table.metadata)(complete, ctx) };
        let (status, bytes) = match receiver.try_recv() {
            Ok(Some(reply)) => reply,
            _ => {
                return Err(LoadError::BadTable {
                    path,
                    problem: "`metadata` did not answer before returning".into(),
                });
            }
        };
        if status != STATUS_OK {
            let message = serde_json::from_slice::<WireError>(&bytes)
                .map(|e| e.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(LoadError::BadTable {
                path,
                problem: format!("`metadata` failed: {message}"),
            });
        }
        let metadata: Metadata =
            serde_json::from_slice(&bytes).map_err(|e| LoadError::BadTable {
                path: path.clone(),
                problem: format!("its metadata is not valid: {e}"),
            })?;
        if metadata.abi_version != ABI_VERSION {
            return Err(LoadError::AbiMismatch {
                path,
                plugin_abi: metadata.abi_version,
            });
        }
        Ok(PluginLibrary {
            path,
            table,
            metadata,
        })
    }

    /// The file it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the plugin says about itself.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Creates a provider named `name` from the plugin's `config`; relative paths in it resolve
    /// against `base_dir`. The plugin validates the configuration; its message reaches the
    /// caller unchanged inside [`LoadError::Rejected`].
    pub async fn instantiate(
        &self,
        name: &str,
        base_dir: &Path,
        config: &serde_json::Value,
    ) -> Result<ProviderSet, LoadError> {
        let request = CreateRequest {
            name: name.to_owned(),
            base_dir: base_dir.to_owned(),
            config: config.clone(),
        };
        let request = serde_json::to_vec(&request)
            .map_err(|e| self.rejected(Error::config(e.to_string())))?;
        let (sender, receiver) = oneshot::channel();
        let ctx = Box::into_raw(Box::new(CreateCtx {
            sender,
            destroy: self.table.destroy,
        }))
        .cast::<c_void>();
        // SAFETY: `request` outlives the call; `create_complete` and its context follow the ABI.
        unsafe { (self.table.create)(request.as_ptr(), request.len(), create_complete, ctx) };
        let (instance, status, bytes) = receiver.await.map_err(|_| {
            self.rejected(Error::new(
                ErrorKind::Other,
                "the plugin never answered `create`",
            ))
        })?;
        if status != STATUS_OK || instance.0.is_null() {
            let error = decode_error(status, &bytes, &self.metadata.name, "create");
            return Err(self.rejected(error));
        }
        let handle = Arc::new(Handle {
            table: self.table,
            instance: instance.0,
            plugin: self.metadata.name.clone(),
        });
        let info: InstanceInfo = serde_json::from_slice(&bytes).map_err(|e| {
            self.rejected(Error::new(
                ErrorKind::Other,
                format!("its reply to `create` is not valid: {e}"),
            ))
        })?;
        let provider = Arc::new(PluginProvider { handle, info });
        Ok(ProviderSet {
            name: name.to_owned(),
            scaling: Some(provider.clone()),
            catalog: provider
                .info
                .catalog
                .is_some()
                .then(|| provider.clone() as Arc<dyn InstanceCatalog>),
            billing: provider
                .info
                .billing
                .is_some()
                .then(|| provider.clone() as Arc<dyn BillingProvider>),
            metrics: provider
                .info
                .metrics
                .is_some()
                .then(|| provider.clone() as Arc<dyn MetricsSource>),
            billing_rule: Default::default(),
        })
    }

    fn rejected(&self, error: Error) -> LoadError {
        LoadError::Rejected {
            path: self.path.clone(),
            plugin: self.metadata.name.clone(),
            message: error.message().to_owned(),
            error: Box::new(error),
        }
    }
}

/// `error` and its sources, `: `-separated (libloading keeps the loader's message in a source).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Opens the plugin at `path` and creates one provider from `config` (named after the plugin,
/// relative paths resolved against the current directory).
pub async fn load(
    path: impl AsRef<Path>,
    config: &serde_json::Value,
) -> Result<ProviderSet, LoadError> {
    let library = PluginLibrary::open(path)?;
    let base_dir = std::env::current_dir().unwrap_or_default();
    let name = library.metadata().name.clone();
    library.instantiate(&name, &base_dir, config).await
}

fn decode_error(status: u32, bytes: &[u8], plugin: &str, operation: &str) -> Error {
    match (status, serde_json::from_slice::<WireError>(bytes)) {
        (STATUS_ERROR, Ok(wire)) => wire.into_error(plugin, operation),
        (_, _) => Error::new(
            ErrorKind::Other,
            format!(
                "the plugin answered with status {status} and an unreadable error: {}",
                String::from_utf8_lossy(bytes)
            ),
        )
        .with_provider(plugin)
        .with_operation(operation),
    }
}

/// One live plugin instance; destroyed in the plugin when the last provider handle drops.
struct Handle {
    table: PluginTable,
    instance: *mut c_void,
    plugin: String,
}

// SAFETY: the ABI requires `call` to be safe from any thread on the same instance (the kit's
// instances are `Arc`s of `Send + Sync` providers); the pointer is only passed back to the plugin.
unsafe impl Send for Handle {}
// SAFETY: as above; `Handle` has no interior mutability of its own.
unsafe impl Sync for Handle {}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("plugin", &self.plugin)
            .field("instance", &self.instance)
            .finish()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the instance came from this plugin's `create` and is destroyed once, here.
        unsafe { (self.table.destroy)(self.instance) };
    }
}

impl Handle {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        op: Operation,
        request: &Req,
    ) -> Result<Resp, Error> {
        let op_name = op.wire_name();
        let request = serde_json::to_vec(request).map_err(|e| {
            Error::invalid_input(format!("cannot encode the request: {e}"))
                .with_provider(&self.plugin)
                .with_operation(op_name)
        })?;
        let (sender, receiver) = oneshot::channel::<Reply>();
        let ctx = Box::into_raw(Box::new(sender)).cast::<c_void>();
        // SAFETY: the instance is alive (`self` holds it), both byte ranges outlive the call,
        // and `complete` with its fresh context follows the ABI.
        unsafe {
            (self.table.call)(
                self.instance,
                op_name.as_ptr(),
                op_name.len(),
                request.as_ptr(),
                request.len(),
                complete,
                ctx,
            )
        };
        let (status, bytes) = receiver.await.map_err(|_| {
            Error::new(ErrorKind::Other, "the plugin never answered")
                .with_provider(&self.plugin)
                .with_operation(op_name)
        })?;
        if status != STATUS_OK {
            return Err(decode_error(status, &bytes, &self.plugin, op_name));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!("the plugin's reply does not match the operation: {e}"),
            )
            .with_provider(&self.plugin)
            .with_operation(op_name)
        })
    }
}

/// A plugin instance seen as a provider: implements every core trait by calling the plugin.
/// [`PluginLibrary::instantiate`] exposes only the traits the plugin provides.
#[derive(Debug)]
pub struct PluginProvider {
    handle: Arc<Handle>,
    info: InstanceInfo,
}

impl PluginProvider {
    /// Whether the plugin provides `capability`.
    pub fn provides(&self, capability: Capability) -> bool {
        match capability {
            Capability::Scaling => true,
            Capability::Catalog => self.info.catalog.is_some(),
            Capability::Billing => self.info.billing.is_some(),
            Capability::Metrics => self.info.metrics.is_some(),
        }
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl ScalingProvider for PluginProvider {
    fn describe(&self) -> String {
        self.handle.plugin.clone()
    }

    fn name(&self) -> &str {
        &self.handle.plugin
    }

    fn capabilities(&self) -> ScalingCapabilities {
        self.info.scaling
    }

    async fn list_groups(&self) -> hoist_api::Result<Vec<ScalingGroup>> {
        self.handle.call(Operation::ListGroups, &Empty {}).await
    }

    async fn describe_group(&self, group: &str) -> hoist_api::Result<ScalingGroup> {
        let request = GroupRequest {
            group: group.to_owned(),
        };
        self.handle.call(Operation::DescribeGroup, &request).await
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> hoist_api::Result<()> {
        let request = SetDesiredRequest {
            group: group.to_owned(),
            desired,
        };
        self.handle
            .call(Operation::SetDesiredCapacity, &request)
            .await
    }

    async fn remove_instances(
        &self,
        group: &str,
        request: &RemoveInstances,
    ) -> hoist_api::Result<()> {
        let request = RemoveInstancesRequest {
            group: group.to_owned(),
            request: request.clone(),
        };
        self.handle.call(Operation::RemoveInstances, &request).await
    }

    async fn set_instance_class(
        &self,
        group: &str,
        request: &hoist_api::ChangeInstanceClass,
    ) -> hoist_api::Result<Option<Activity>> {
        let request = SetInstanceClassRequest {
            group: group.to_owned(),
            instance_class: request.instance_class.clone(),
            disruption: request.disruption,
        };
        self.handle
            .call(Operation::SetInstanceClass, &request)
            .await
    }

    async fn activities(&self, group: &str) -> hoist_api::Result<Vec<Activity>> {
        let request = GroupRequest {
            group: group.to_owned(),
        };
        self.handle.call(Operation::Activities, &request).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl InstanceCatalog for PluginProvider {
    fn describe(&self) -> String {
        self.handle.plugin.clone()
    }

    fn capabilities(&self) -> CatalogCapabilities {
        self.info.catalog.unwrap_or_default()
    }

    async fn instance_classes(&self) -> hoist_api::Result<Vec<InstanceClass>> {
        self.handle
            .call(Operation::InstanceClasses, &Empty {})
            .await
    }

    async fn instance_class(&self, name: &str) -> hoist_api::Result<InstanceClass> {
        let request = NameRequest {
            name: name.to_owned(),
        };
        self.handle.call(Operation::InstanceClass, &request).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl BillingProvider for PluginProvider {
    fn describe(&self) -> String {
        self.handle.plugin.clone()
    }

    fn capabilities(&self) -> BillingCapabilities {
        self.info.billing.unwrap_or_default()
    }

    async fn cost(&self, query: &CostQuery) -> hoist_api::Result<Vec<CostEntry>> {
        self.handle.call(Operation::Cost, query).await
    }

    async fn forecast(&self, query: &CostQuery) -> hoist_api::Result<Vec<CostEntry>> {
        self.handle.call(Operation::Forecast, query).await
    }

    async fn price(
        &self,
        instance_class: &str,
        zone: &str,
        capacity_type: CapacityType,
    ) -> hoist_api::Result<Price> {
        let request = PriceRequest {
            instance_class: instance_class.to_owned(),
            zone: zone.to_owned(),
            capacity_type,
        };
        self.handle.call(Operation::Price, &request).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl MetricsSource for PluginProvider {
    fn describe(&self) -> String {
        self.handle.plugin.clone()
    }

    fn capabilities(&self) -> MetricsCapabilities {
        self.info.metrics.clone().unwrap_or_default()
    }

    async fn query_range(&self, request: &RangeQuery) -> hoist_api::Result<Vec<TimeSeries>> {
        self.handle.call(Operation::QueryRange, request).await
    }
}
