//! The binary interface between the host and a plugin library: two exported symbols and one
//! `#[repr(C)]` table of `extern "C"` functions. Only integers, raw byte pointers and function
//! pointers cross; every request and reply is JSON (see [`crate::protocol`]), borrowed for the
//! duration of one call, so no Rust type, allocator or async runtime is shared.
//!
//! # The contract
//!
//! 1. **Frozen forever:** [`VERSION_SYMBOL`] (`hoist_plugin_abi_version`) is an
//!    [`AbiVersionFn`] returning the ABI version the plugin was built for. The host looks it up
//!    first and refuses any version other than [`ABI_VERSION`] before touching anything else.
//! 2. [`ENTRY_SYMBOL`] (`hoist_plugin_entry`) is an [`EntryFn`]: the host passes its own ABI
//!    version, the plugin checks it too and returns its [`PluginTable`] (or null on a mismatch).
//! 3. The table is **append-only** within one ABI version: new functions are added at the end and
//!    [`PluginTable::table_size`] tells the host which ones a plugin has. Changing or removing a
//!    field, or the meaning of one, is a new ABI version.
//! 4. Every operation completes **exactly once** through its completion callback, possibly before
//!    the starting function returns, possibly later on a plugin thread. Reply bytes are valid only
//!    during the callback; the host copies them.
//! 5. Every exported function catches panics; a panic never unwinds into the host.
//! 6. The host never unloads a library, so function pointers and `'static` data stay valid.

use std::ffi::c_void;

/// The ABI version this crate speaks. Host and plugin must agree exactly.
pub const ABI_VERSION: u32 = 1;

/// Symbol of the frozen version function ([`AbiVersionFn`]). Never changes.
pub const VERSION_SYMBOL: &str = "hoist_plugin_abi_version";

/// Symbol of the entry function ([`EntryFn`]) of ABI version 1.
pub const ENTRY_SYMBOL: &str = "hoist_plugin_entry";

/// `hoist_plugin_abi_version`: the ABI version the plugin was built for. Frozen in every version.
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;

/// `hoist_plugin_entry`: given the host's ABI version, the plugin's table, or null when the plugin
/// does not speak that version.
pub type EntryFn = unsafe extern "C" fn(host_abi_version: u32) -> *const PluginTable;

/// Completion status: the reply is the operation's JSON result.
pub const STATUS_OK: u32 = 0;
/// Completion status: the reply is a JSON [`crate::protocol::WireError`].
pub const STATUS_ERROR: u32 = 1;

/// Completes one call: `ctx` as given by the host, a status ([`STATUS_OK`] or [`STATUS_ERROR`])
/// and `reply_len` bytes of JSON at `reply`, valid only until this function returns.
pub type Completion =
    unsafe extern "C" fn(ctx: *mut c_void, status: u32, reply: *const u8, reply_len: usize);

/// Completes `create`: like [`Completion`], plus the new instance handle (non-null only with
/// [`STATUS_OK`]; its reply is a JSON [`crate::protocol::InstanceInfo`]).
pub type CreateCompletion = unsafe extern "C" fn(
    ctx: *mut c_void,
    instance: *mut c_void,
    status: u32,
    reply: *const u8,
    reply_len: usize,
);

/// The table a plugin exports, ABI version 1. Append-only: read a field only when
/// [`Self::table_size`] covers it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginTable {
    /// The ABI version of this table; equals what [`VERSION_SYMBOL`] returns.
    pub abi_version: u32,
    /// `size_of::<PluginTable>()` as the plugin was compiled; fields beyond it are absent.
    pub table_size: u32,
    /// Replies (synchronously, before returning) with the JSON
    /// [`crate::protocol::Metadata`].
    pub metadata: unsafe extern "C" fn(done: Completion, ctx: *mut c_void),
    /// Creates one provider instance from a JSON [`crate::protocol::CreateRequest`] of
    /// `request_len` bytes at `request` (borrowed for the call). Completes through `done`.
    pub create: unsafe extern "C" fn(
        request: *const u8,
        request_len: usize,
        done: CreateCompletion,
        ctx: *mut c_void,
    ),
    /// Starts operation `op` (UTF-8, [`crate::protocol::Operation`] names) with a JSON request
    /// on `instance`. Both byte ranges are borrowed for the call. Completes through `done`.
    pub call: unsafe extern "C" fn(
        instance: *const c_void,
        op: *const u8,
        op_len: usize,
        request: *const u8,
        request_len: usize,
        done: Completion,
        ctx: *mut c_void,
    ),
    /// Releases an instance. Calls already started still complete.
    pub destroy: unsafe extern "C" fn(instance: *mut c_void),
}

/// The size the host needs a version 1 table to have.
pub const TABLE_SIZE_V1: u32 = std::mem::size_of::<PluginTable>() as u32;
