//! Process-wide counters of what the core did on the network, for a server's metrics
//! (`dpopkit serve` shows them in Prometheus format). Relaxed atomics: a count, not a lock.

use std::sync::atomic::{AtomicU64, Ordering};

static TOKEN_REQUESTS: AtomicU64 = AtomicU64::new(0);
static NONCE_RETRIES: AtomicU64 = AtomicU64::new(0);

/// What [`snapshot`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests sent to a token endpoint (each retry counted).
    pub token_requests: u64,
    /// Retries after a `use_dpop_nonce` challenge, from the token endpoint or a resource server.
    pub nonce_retries: u64,
}

/// The counts since the process started.
pub fn snapshot() -> Counters {
    Counters { token_requests: TOKEN_REQUESTS.load(Ordering::Relaxed), nonce_retries: NONCE_RETRIES.load(Ordering::Relaxed) }
}

pub(crate) fn token_request() {
    TOKEN_REQUESTS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn nonce_retry() {
    NONCE_RETRIES.fetch_add(1, Ordering::Relaxed);
}
