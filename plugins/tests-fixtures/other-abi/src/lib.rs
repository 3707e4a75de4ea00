//! Test fixture: a library as a plugin built against a future `hoist-plugin` would look: its
//! frozen version symbol reports the next ABI version. The host must refuse it before calling
//! anything else, so the entry below must never run.

#![deny(unsafe_code)]

/// The version this fixture claims: one past the host's.
pub const CLAIMED_ABI_VERSION: u32 = hoist_plugin::ABI_VERSION + 1;

/// The frozen version function.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn hoist_plugin_abi_version() -> u32 {
    CLAIMED_ABI_VERSION
}

/// An entry the host must never call (a host that did would abort the test).
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn hoist_plugin_entry(_host_abi_version: u32) -> *const u8 {
    std::process::abort()
}
