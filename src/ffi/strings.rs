//! C strings in and out. Inputs are borrowed NUL-terminated UTF-8; outputs are allocated
//! here and freed only by `dpopkit_string_free`.
//!
//! Every returned string sits in a block that starts with its length, so the free does not
//! depend on the contents: a caller may overwrite a string (to wipe a secret, even with
//! zeros) before freeing it. The whole block is wiped when freed.

use std::ffi::{CStr, c_char};

use super::calls::FfiError;
use super::result::dpopkit_result;

const HEADER: usize = size_of::<usize>();

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
    c.to_str().map_err(|_| FfiError::new(dpopkit_result::InvalidUtf8, format!("argument '{name}' is not valid UTF-8")))
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
    if s.as_bytes().contains(&0) {
        return Err(FfiError::new(dpopkit_result::ResponseNotText, "the text contains a NUL byte and cannot be returned as a C string"));
    }
    let mut block = Vec::with_capacity(HEADER + s.len() + 1);
    block.extend_from_slice(&(s.len() + 1).to_ne_bytes());
    block.extend_from_slice(s.as_bytes());
    block.push(0);
    let base = Box::into_raw(block.into_boxed_slice()) as *mut u8;
    // SAFETY: the block is HEADER + len + 1 bytes long; the string starts after the header.
    Ok(unsafe { base.add(HEADER) } as *mut c_char)
}

/// Bytes for the caller, who frees them with `dpopkit_bytes_free`. Same block layout as
/// [`out`] (length first, then the data), so an empty result is a valid non-NULL pointer
/// (just past the length) and the free never depends on the contents.
pub fn out_bytes(b: &[u8]) -> *mut u8 {
    let mut block = Vec::with_capacity(HEADER + b.len());
    block.extend_from_slice(&b.len().to_ne_bytes());
    block.extend_from_slice(b);
    let base = Box::into_raw(block.into_boxed_slice()) as *mut u8;
    // SAFETY: the block is HEADER + len bytes long; the data starts after the header (for
    // len 0 this is one past the end: non-NULL, never dereferenced).
    unsafe { base.add(HEADER) }
}

/// Frees (and wipes) bytes from [`out_bytes`].
///
/// # Safety
/// `p` is NULL or a pointer returned by [`out_bytes`] and not yet freed.
pub unsafe fn free_bytes(p: *mut u8) {
    // The layouts are the same: the header holds the length of what follows it.
    unsafe { free(p as *mut c_char) }
}

/// Frees (and wipes) a string from [`out`].
///
/// # Safety
/// `p` is NULL or a pointer returned by [`out`] and not yet freed.
pub unsafe fn free(p: *mut c_char) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` came from `out`, so HEADER bytes before it hold the length of the rest
    // of the block, written there and never exposed to the caller.
    unsafe {
        let base = (p as *mut u8).sub(HEADER);
        let len = usize::from_ne_bytes(std::ptr::read_unaligned(base as *const [u8; HEADER]));
        let mut block = Box::from_raw(std::ptr::slice_from_raw_parts_mut(base, HEADER + len));
        zeroize::Zeroize::zeroize(&mut block[..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_survive_being_overwritten_before_free() {
        for s in ["", "a", "hello world", &"x".repeat(10_000)] {
            let p = out(s).unwrap();
            assert_eq!(unsafe { CStr::from_ptr(p) }.to_str().unwrap(), s);
            // The caller wipes it (e.g. explicit_bzero) before freeing: still a valid free.
            unsafe { std::ptr::write_bytes(p, 0, s.len()) };
            unsafe { free(p) };
        }
        assert!(out("a\0b").is_err());
        for b in [&b""[..], b"\0", &[0xff, 0xfe, 0, 1], &[7u8; 5000]] {
            let p = out_bytes(b);
            assert!(!p.is_null());
            assert_eq!(unsafe { std::slice::from_raw_parts(p, b.len()) }, b);
            unsafe { free_bytes(p) };
        }
        unsafe { free_bytes(std::ptr::null_mut()) };
        unsafe { free(std::ptr::null_mut()) };
    }
}
