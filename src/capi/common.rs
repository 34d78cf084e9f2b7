//! Functions shared by every object: destroy, last error, strings, version.

use std::ffi::c_char;
use std::os::raw::c_int;

use crate::ffi::boundary::{last_for, peek, run, run_keep_success};
use crate::ffi::{registry, strings};

/// Destroys any dpopkit object (PrivateKey, JsonObject or Http) and invalidates its handle.
///
/// Returns 1 on success, 0 when the handle is not valid (already destroyed, made up, 0).
/// A call on the same handle that is running on another thread finishes normally; calls
/// made after this one fail with `DPOPKIT_RESULT_INVALID_HANDLE`. Destroying a key does not
/// affect an Http object it was given to (the Http keeps its own reference). Keys are wiped
/// from memory when their last reference goes away.
///
/// A successful destroy does not change the calling thread's last error, so cleanup code
/// can destroy objects first and read `dpopkit_last_error_text(0)` after.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_destroy(handle: i64) -> c_int {
    run_keep_success("dpopkit_destroy", || registry::remove(handle).map(|_| 1))
}

/// Forgets every cached access token, DPoP nonce, learned server clock and discovered
/// authorization server metadata of this process, and every key parsed from a file
/// (`dpopkit_key_load_any_format_file` keeps parsed keys, so loading the same file again is
/// cheap), for example after rotating a client secret or a key: the next request fetches a
/// new token. Also forgets (and wipes) the proofs and tokens of earlier calls that later
/// calls mask when a server echoes them. Calls in flight finish with the token they have.
/// Returns 1.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_token_cache_clear() -> c_int {
    run("dpopkit_token_cache_clear", 0, |_| {
        crate::core::clear_process_state();
        Ok(1)
    })
}

/// The text of the last error of `handle` on the calling thread, or "" after a success.
/// With `handle` = 0 (or a handle that is not valid), the calling thread's latest error of
/// any call. Never contains a secret.
///
/// Ownership: the returned string belongs to the caller: free it with
/// `dpopkit_string_free`. Returns NULL only if memory could not be allocated.
/// Reading the last error does not change it.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_last_error_text(handle: i64) -> *mut c_char {
    peek(std::ptr::null_mut(), || strings::out(&last_for(handle).text).unwrap_or(std::ptr::null_mut()))
}

/// The `dpopkit_result` code of the last call on `handle` from the calling thread
/// (`DPOPKIT_RESULT_OK` = 0 after a success). With 0 or an invalid handle, the calling
/// thread's latest call. Reading it does not change it.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_last_error_code(handle: i64) -> u32 {
    peek(crate::ffi::result::dpopkit_result::Panic as u32, || last_for(handle).code)
}

/// Frees a string returned by any dpopkit function, wiping its memory first. NULL is fine.
/// The caller may overwrite the string's bytes before freeing it (for example to wipe an
/// exported key); the free does not depend on the contents.
///
/// # Safety
/// `s` must be NULL or a pointer returned by dpopkit and not yet freed; never pass it to
/// `free()`, and never free it twice.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_string_free(s: *mut c_char) {
    peek((), || unsafe { strings::free(s) })
}

/// The library version, e.g. "0.1.0".
///
/// Ownership: caller frees the result with `dpopkit_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_version() -> *mut c_char {
    run("dpopkit_version", 0, |_| strings::out(env!("CARGO_PKG_VERSION")))
}

/// Number of live handles (objects created and not yet destroyed) in this process.
/// Meant for leak checks in tests and diagnostics. Does not change the last error.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_live_handles() -> i64 {
    peek(-1, || registry::live_count() as i64)
}

/// Test-only: panics inside the boundary, to prove a panic becomes
/// `DPOPKIT_RESULT_PANIC` and a 0 result, and that nothing is printed. Not exported to C.
#[doc(hidden)]
pub fn __panic_inside_boundary_for_tests(handle: i64) -> c_int {
    run("__panic_inside_boundary_for_tests", handle, |_| -> Result<c_int, crate::ffi::boundary::FfiError> {
        panic!("deliberate test panic")
    })
}
