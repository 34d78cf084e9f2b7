//! Keys that never leave a PKCS#11 token (HSM, smart card, TPM, SoftHSM2): RFC 7512 URIs,
//! one module load and one login per process and token, ECDSA inside the token, and
//! key-pair generation in the token.
//!
//! The module is loaded at run time with `cryptoki` (dlopen / LoadLibrary): nothing is linked
//! at build time, and a process that never sees a `pkcs11:` URI never loads anything.
//!
//! Life cycle. A process-wide registry holds every module loaded (by canonical path, kept
//! for the life of the process: PKCS#11 modules are not designed to be unloaded and
//! re-initialised) and every token in use (weakly: the sessions, the login and the PIN kept
//! for re-login go away with the last key handle of that token). Signing takes a session
//! from a small pool (a `Session` is `Send` but not `Sync`), so many threads sign at once
//! without sharing a session. A session closed under us, or a token that logged us out, is
//! repaired once per call: a new session, a new login with the PIN given at load time. A PIN
//! the token refused is remembered (as a keyed hash) and never sent again automatically:
//! tokens lock after a few wrong PINs.
//!
//! Deadlines. A signature for a call (a DPoP proof, a client assertion) runs on a worker
//! thread; the call waits for it, and for a free session, only until its deadline, then
//! fails with `Timeout`. A stalled token keeps the worker and its session until it answers;
//! the session then goes back to the pool and the late signature is dropped.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use sha2::Digest;
use zeroize::Zeroizing;

use super::error::{Error, ErrorKind, Result, err, shorten};
use super::http::Deadline;

mod uri;
pub use uri::*;
mod session;
pub use session::*;
mod sign;
pub use sign::*;
mod mechanism;
mod workers;

/// Environment variable naming the PKCS#11 module when the URI has no `module-path`. When it
/// is set, it is also the only module a URI may name.
pub const MODULE_ENV: &str = "DPOPKIT_PKCS11_MODULE";

/// Most modules a process loads; a bound on the registry, far above real use.
const MAX_MODULES: usize = crate::core::state::limits::PKCS11_MODULES;
/// Most sessions one token gets from dpopkit (fewer when the token says so).
const MAX_SESSIONS: usize = crate::core::state::limits::PKCS11_SESSIONS;
/// Most refused-PIN fingerprints remembered per token, and tokens remembered.
const MAX_REFUSED_PER_TOKEN: usize = crate::core::state::limits::PKCS11_REFUSED_PER_TOKEN;
const MAX_REFUSED_TOKENS: usize = crate::core::state::limits::PKCS11_REFUSED_TOKENS;
/// Longest URI accepted.
const MAX_URI: usize = 4096;

const DER_OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const DER_OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

// ---------------------------------------------------------------------------------------
// RFC 7512 URIs
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests;
