//! The `plugin` provider kind for the [`hoist_api::registry::ProviderRegistry`]: a policy file
//! says `providers: { pool: { plugin: ./libstatic_pool.so, config: {...} } }` and gets the
//! plugin's traits as an ordinary provider. The path resolves against the policy file's
//! directory; `config` goes to the plugin, which validates it. With `sha256: HEX` the library
//! is pinned: its bytes are read and hashed, a library whose SHA-256 differs is refused before
//! anything of it is loaded, and the bytes that were checked (a private copy) are what is
//! loaded, so the file cannot change between the check and the load.

use std::path::PathBuf;

use async_trait::async_trait;
use hoist_api::Error;
use hoist_api::registry::{BuildContext, BuiltProvider, ProviderFactory};
use serde::Deserialize;

use crate::loader::PluginLibrary;

/// Settings of a `plugin` provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// The plugin library; relative to the policy file's directory.
    pub plugin: PathBuf,
    /// The plugin's own configuration (an empty map when absent).
    #[serde(default = "empty_map")]
    pub config: serde_json::Value,
    /// The library's SHA-256 (64 hex digits), to refuse any other library.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// The largest plugin library read to check its hash: 1 GiB.
const MAX_PINNED_LIBRARY_BYTES: u64 = 1 << 30;

/// The SHA-256 of `bytes`, as 64 lower-case hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn empty_map() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// Builds providers of kind `plugin` by loading their library.
#[derive(Debug, Clone, Copy, Default)]
pub struct PluginFactory;

impl PluginFactory {
    /// The factory.
    pub fn new() -> Self {
        PluginFactory
    }

    fn settings(ctx: &BuildContext<'_>) -> Result<PluginSettings, Error> {
        let settings: PluginSettings =
            serde_path_to_error::deserialize(ctx.settings).map_err(|e| {
                let path = e.path().to_string();
                let error = Error::config(format!(
                    "{} (expected `plugin: PATH` and an optional `config:` map)",
                    e.inner()
                ));
                if path == "." {
                    error
                } else {
                    error.with_field(path)
                }
            })?;
        Ok(settings)
    }

    fn open(ctx: &BuildContext<'_>, settings: &PluginSettings) -> Result<PluginLibrary, Error> {
        let path = ctx.base_dir.join(&settings.plugin);
        let Some(pinned) = &settings.sha256 else {
            return PluginLibrary::open(&path)
                .map_err(|e| Error::from(e).with_provider(ctx.name.to_owned()));
        };
        let pinned = pinned.trim().to_ascii_lowercase();
        if pinned.len() != 64 || !pinned.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::config(format!(
                "`{pinned}` is not a SHA-256: 64 hex digits, as `sha256sum` or `hoist plugins inspect` prints"
            ))
            .with_field("sha256"));
        }
        let copy = verified_copy(&path, &pinned)?;
        let opened = PluginLibrary::open(&copy);
        // The library stays mapped; the private copy's name is no longer needed.
        if let Some(dir) = copy.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        opened.map_err(|e| Error::from(e).with_provider(ctx.name.to_owned()))
    }
}

/// Reads the library at `path`, checks its SHA-256 against `pinned`, and writes the checked
/// bytes to a fresh private directory, returning the copy's path.
fn verified_copy(path: &std::path::Path, pinned: &str) -> Result<PathBuf, Error> {
    use std::io::Read;
    let io = |e: std::io::Error| {
        Error::config(format!(
            "plugin {}: cannot read the library to check its SHA-256: {e}",
            path.display()
        ))
    };
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(Error::config(format!(
            "plugin {}: not a regular file",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_PINNED_LIBRARY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_PINNED_LIBRARY_BYTES {
        return Err(Error::config(format!(
            "plugin {}: larger than 1 GiB; not a plugin library",
            path.display()
        )));
    }
    let actual = sha256_hex(&bytes);
    if actual != pinned {
        return Err(Error::config(format!(
            "plugin {}: its SHA-256 is {actual}, but the policy pins {pinned}; the library was rebuilt or replaced, so it is refused before it is loaded (update `sha256` if the new library is trusted)",
            path.display()
        ))
        .with_field("sha256"));
    }
    static COPIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("hoist-plugin-{}-{n}", std::process::id()));
    let write = |e: std::io::Error| {
        Error::config(format!(
            "plugin {}: cannot write the checked copy to {}: {e}",
            path.display(),
            dir.display()
        ))
    };
    let _ = std::fs::remove_dir_all(&dir);
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(&dir).map_err(write)?;
    let copy = dir.join(
        path.file_name()
            .unwrap_or_else(|| std::ffi::OsStr::new("plugin")),
    );
    std::fs::write(&copy, &bytes).map_err(write)?;
    Ok(copy)
}

#[async_trait]
impl ProviderFactory for PluginFactory {
    fn kind(&self) -> &str {
        "plugin"
    }

    /// The provider's whole map: `plugin: PATH` and the plugin's own, free-form `config`.
    fn settings_schema(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "description": "A provider plugin: a library built with the plugin kit.",
            "properties": {
                "plugin": {
                    "type": "string",
                    "description": "Path to the plugin library (`.so`, `.dylib`, `.dll`), relative to the policy file's directory."
                },
                "config": {
                    "type": "object",
                    "description": "The plugin's own configuration, checked by the plugin when it is built."
                },
                "sha256": {
                    "type": "string",
                    "pattern": "^[0-9a-fA-F]{64}$",
                    "description": "The library's SHA-256: a library whose hash differs is refused before it is loaded."
                }
            },
            "required": ["plugin"],
            "additionalProperties": false
        })
    }

    /// Checks the settings and that the library loads with this host's ABI; the plugin's own
    /// configuration is checked when it is built.
    fn validate(&self, ctx: BuildContext<'_>) -> hoist_api::Result<()> {
        let settings = Self::settings(&ctx)?;
        Self::open(&ctx, &settings).map(|_| ())
    }

    async fn build(&self, ctx: BuildContext<'_>) -> hoist_api::Result<BuiltProvider> {
        let settings = Self::settings(&ctx)?;
        let library = Self::open(&ctx, &settings)?;
        let set = library
            .instantiate(ctx.name, ctx.base_dir, &settings.config)
            .await
            .map_err(|e| Error::from(e).with_provider(ctx.name.to_owned()))?;
        Ok(BuiltProvider { set, clock: None })
    }
}
