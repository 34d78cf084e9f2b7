//! The AuthToken description and the process-wide access-token cache.
//!
//! One token fetch per token lifetime: tokens are cached process-wide, keyed by everything
//! that makes a token different (endpoint, client, a hash of the secret, scope, audience,
//! resource, extra fields, key thumbprint), so a second Http object with the same settings
//! reuses the token. Concurrent callers wait for one fetch (single flight); while a token
//! that is still valid is being refreshed, other callers keep using it.

use std::fmt;
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::discovery;
use super::store as token_store;
use crate::core::dpop::challenge;
use crate::core::dpop::exchange::{Answer, Retries, Server, exchange};
use crate::core::dpop::nonce;
use crate::core::dpop::proof::{Target, client_assertion};
use crate::core::error::{Error, ErrorKind, ResponseInfo, Result, err, shorten};
use crate::core::form;
use crate::core::http::Response;
use crate::core::http::clock;
use crate::core::http::{Request, Role, Transport};
use crate::core::key::EcKey;
use crate::core::redact::{self, scrub};
use crate::core::session_log::SessionLog;
use crate::core::state::limits;
use crate::core::state::{BoundedLru, never_in_use, salted_hash, shared_arc, weightless};

mod config;
pub use config::*;
mod cache;
pub use cache::*;
mod request;
pub use request::*;

/// Lifetime assumed when a token response has no `expires_in` (RFC 6749 makes it optional).
pub const DEFAULT_EXPIRES_IN: u64 = 300;
/// A token is renewed when fewer than this many seconds, or 10% of its lifetime, remain
/// (whichever is smaller) — but never later than [`MIN_REFRESH_MARGIN`] before it expires,
/// because servers count `exp` in whole seconds.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
pub const MIN_REFRESH_MARGIN: Duration = Duration::from_secs(1);

/// How long before expiry a token of this lifetime is renewed.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    REFRESH_MARGIN.min(lifetime / 10).max(MIN_REFRESH_MARGIN.min(lifetime / 2))
}

#[cfg(test)]
mod tests;
