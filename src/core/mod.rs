//! The pure-Rust core: keys, proofs, tokens, nonces, HTTP and the session log.
//! It knows nothing about C; `crate::ffi` and `crate::capi` wrap it.
//!
//! Layers (see ARCHITECTURE.md; `scripts/check_layers.py` fails on an import circle):
//! leaves `state`, `wipe`, `form`, `response`, `sys`; then `redact`, `error`, `url`,
//! `fsread`, `session_log`; then `http/`, `pkcs11/`, `key/`, `dpop/`, `oauth/`, `client/`.
#![deny(unsafe_code)] // audited exceptions: sys/ (geteuid, flock; the Win32 calls) and key/ (wipes ring's key pair)

pub mod client;
pub mod counters;
pub mod dpop;
pub mod error;
pub mod form;
pub mod fsread;
pub mod http;
pub mod key;
pub mod oauth;
pub mod pkcs11;
pub mod redact;
pub mod response;
pub mod session_log;
pub mod state;
pub mod sys;
pub mod url;
pub mod wipe;

pub use client::HttpClient;
pub use error::{Error, ErrorKind, Result};
pub use http::Settings;
pub use key::EcKey;
pub use response::ResponseInfo;

/// Forgets all process-wide state that a later call would use (the one function that does;
/// `dpopkit_token_cache_clear` calls it): cached access tokens and parsed AuthTokens,
/// discovered metadata, the servers' clocks and DPoP nonces, keys parsed from files, and the
/// credentials of earlier calls kept for masking (wiped). Calls in flight finish with what
/// they hold. The bounds of all of it: [`state::limits`].
pub fn clear_process_state() {
    oauth::token::clear_cache(); // tokens, parsed AuthTokens, discovery, clocks
    dpop::nonce::clear();
    dpop::algs::clear();
    key::clear_file_cache();
    redact::forget_later();
}

// Module paths from before the re-tree, kept so that tests/, benches/, examples/, fuzz/,
// src/bin, src/capi and other branches compile unchanged.
pub use dpop::challenge; // path kept for tests/benches; see ARCHITECTURE.md
pub use dpop::nonce; // path kept for tests/benches; see ARCHITECTURE.md
pub use dpop::proof; // path kept for tests/benches; see ARCHITECTURE.md
pub use http::clock; // path kept for tests/benches; see ARCHITECTURE.md
pub use http::headers; // path kept for tests/benches; see ARCHITECTURE.md
pub use oauth::discovery; // path kept for tests/benches; see ARCHITECTURE.md
pub use oauth::store as token_store; // path kept for tests/benches; see ARCHITECTURE.md
pub use oauth::token; // path kept for tests/benches; see ARCHITECTURE.md
#[cfg(windows)]
pub use sys::windows as sys_windows; // path kept for tests/benches; see ARCHITECTURE.md
