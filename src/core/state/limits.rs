//! Every bound on process-wide state, in one table: what each cache, memo and pool holds at
//! most, and for how long. The modules that keep the state use these names (and some
//! re-export them under their old names); nothing process-wide is unbounded. What is kept
//! where: ARCHITECTURE.md, "Process state".

use std::time::Duration;

// --- oauth/token: access tokens and parsed AuthTokens ---------------------------------
/// Token slots, one per (AuthToken, key); a slot in use (a fetch, its waiters) is never evicted.
pub const TOKEN_SLOTS: usize = 1024;
/// Parsed AuthTokens shared by the Http objects that use them (held weakly: no secret
/// outlives its last user).
pub const PARSED_AUTH_TOKENS: usize = 16;

// --- oauth/discovery: authorization server metadata ------------------------------------
/// Metadata documents kept, and their bytes in all.
pub const DISCOVERY_ENTRIES: usize = 256;
pub const DISCOVERY_BYTES: usize = 4 << 20;
/// How long a metadata document is used before it is fetched again.
pub const METADATA_TTL: Duration = Duration::from_secs(3600);

// --- oauth/store: the token cache directory shared with other processes ----------------
/// Records kept in one directory (the least recently written go first).
pub const TOKEN_FILES: usize = 256;
/// A directory is pruned at most this often per process.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

// --- dpop/nonce: the servers' DPoP nonces -------------------------------------------------
/// (origin, role, key) entries, their bytes in all, and the longest nonce kept.
pub const NONCE_ENTRIES: usize = 4096;
pub const NONCE_BYTES: usize = 4 << 20;
pub const NONCE_LENGTH: usize = 4096;
/// Proof algorithms learnt from servers' challenges (dpop/algs.rs): (origin, role, key).
pub const ALG_CHOICE_ENTRIES: usize = 4096;
pub const ALG_CHOICE_BYTES: usize = 1 << 20;

// --- http/clock: the servers' clocks (Date header) -------------------------------------
/// Origins whose clock offset is kept, and their bytes in all.
pub const CLOCK_ENTRIES: usize = 4096;
pub const CLOCK_BYTES: usize = 1 << 20;

// --- http: transports (keep-alive pools) shared by Http objects with equal settings ------
pub const SHARED_TRANSPORTS: usize = 16;
/// Idle connections per transport, per origin, and how long one stays idle.
pub const IDLE_CONNECTIONS: usize = 16;
pub const IDLE_PER_ORIGIN: usize = 8;
pub const IDLE_AGE: Duration = Duration::from_secs(30);
/// How long a resolved address is used.
pub const DNS_TTL: Duration = Duration::from_secs(30);
/// Parsed CA bundles (by file content).
pub const CA_FILES: usize = 16;

// --- key: keys parsed from files ---------------------------------------------------------
pub const FILE_KEYS: usize = 32;

// --- redact: credentials of earlier calls that later calls mask --------------------------
pub const LATER_TOKENS: usize = 16;
/// Proofs and assertions: at least this many of the most recent (kept and dropped in
/// chunks of half as many, so up to half as many more: `redact::PROOF_CHUNK`).
pub const LATER_PROOFS: usize = 32;
/// Bytes of kept values, per map.
pub const LATER_BYTES: usize = 64 << 10;

// --- pkcs11: modules, sessions, refused PINs ----------------------------------------------
pub const PKCS11_MODULES: usize = 16;
/// Sessions per token in the signing pool.
pub const PKCS11_SESSIONS: usize = 8;
pub const PKCS11_REFUSED_PER_TOKEN: usize = 8;
pub const PKCS11_REFUSED_TOKENS: usize = 64;
