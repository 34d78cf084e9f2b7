//! # dpopkit
//!
//! OAuth 2.0 client_credentials with DPoP (RFC 9449), for any program that can call C.
//!
//! * [`core`] is the pure-Rust library: keys, proofs, token cache, nonces, HTTP, session
//!   log. Use it directly from Rust.
//! * `capi` is the C ABI (see `include/dpopkit.h`): integer handles, 1/0 results, one
//!   result enum, caller-owned strings freed with `dpopkit_string_free`.
#![deny(unsafe_op_in_unsafe_fn)]

/// cbindgen:ignore
pub mod core;
pub mod ffi;

pub mod capi;

/// cbindgen:ignore
/// The COM server for sp_OACreate / VBScript (Windows only; src/com/mod.rs).
#[cfg(windows)]
mod com;

pub use ffi::result::dpopkit_result;
