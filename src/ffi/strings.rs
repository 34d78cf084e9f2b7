//! C strings in and out. Inputs are borrowed NUL-terminated UTF-8; outputs are allocated
//! here with `CString::into_raw` and freed only by `dpopkit_string_free`.

use std::ffi::{CStr, CString, c_char};

use super::boundary::FfiError;
use super::result::dpopkit_result;

/// A required string argument. NULL and invalid UTF-8 are errors that name the argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for the call.
pub unsafe fn arg<'a>(p: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    if p.is_null() {
        return Err(FfiError::new(dpopkit_result::NullArgument, format!("argument '{name}' is NULL")));
    }
    // SAFETY: non-NULL checked above; the caller guarantees NUL termination.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|_| FfiError::new(dpopkit_result::InvalidUtf8, format!("argument '{name}' is not valid UTF-8")))
}

/// An optional string argument: NULL means none.
///
/// # Safety
/// As [`arg`].
pub unsafe fn opt_arg<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>, FfiError> {
    if p.is_null() { Ok(None) } else { unsafe { arg(p, name) }.map(Some) }
}

/// A string for the caller, who frees it with `dpopkit_string_free`.
pub fn out(s: &str) -> Result<*mut c_char, FfiError> {
    CString::new(s)
        .map(CString::into_raw)
        .map_err(|_| FfiError::new(dpopkit_result::ResponseNotText, "the text contains a NUL byte and cannot be returned as a C string"))
}

/// Frees a string from [`out`], wiping it first: returned strings can be key material
/// (PEM, JWK exports) or response bodies.
///
/// # Safety
/// `p` is NULL or a pointer returned by [`out`] and not yet freed.
pub unsafe fn free(p: *mut c_char) {
    if !p.is_null() {
        // SAFETY: the caller passes back a pointer from CString::into_raw, once.
        let s = unsafe { CString::from_raw(p) };
        zeroize::Zeroize::zeroize(&mut s.into_bytes_with_nul());
    }
}
