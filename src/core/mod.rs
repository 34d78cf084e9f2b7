//! The pure-Rust core: keys, proofs, tokens, nonces, HTTP and the session log.
//! It knows nothing about C; `crate::ffi` and `crate::capi` wrap it.
#![deny(unsafe_code)] // audited exceptions: key.rs wipes ring's key pair; token_store.rs calls flock and geteuid; sys_windows.rs holds the Win32 calls

pub mod challenge;
pub mod client;
pub mod clock;
pub mod counters;
pub mod discovery;
pub mod error;
pub mod form;
pub mod fsread;
pub mod headers;
pub mod http;
pub mod key;
pub mod nonce;
pub mod pkcs11;
pub mod proof;
pub mod redact;
pub mod session_log;
pub mod state;
#[cfg(windows)]
pub mod sys_windows;
pub mod token;
pub mod token_store;

pub use client::HttpClient;
pub use error::{Error, ErrorKind, ResponseInfo, Result};
pub use http::Settings;
pub use key::EcKey;
