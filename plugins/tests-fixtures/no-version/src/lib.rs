//! Test fixture: a valid shared library that exports a C function but not
//! `hoist_plugin_abi_version`, so the loader must refuse it as "not a Hoist plugin".

#![deny(unsafe_code)]

/// An exported function that is not part of the plugin ABI.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn some_other_library_function() -> u32 {
    42
}
