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

/// Environment variable naming the PKCS#11 module when the URI has no `module-path`. When it
/// is set, it is also the only module a URI may name.
pub const MODULE_ENV: &str = "DPOPKIT_PKCS11_MODULE";

/// Most modules a process loads; a bound on the registry, far above real use.
const MAX_MODULES: usize = 16;
/// Most sessions one token gets from dpopkit (fewer when the token says so).
const MAX_SESSIONS: usize = 8;
/// Most refused-PIN fingerprints remembered per token, and tokens remembered.
const MAX_REFUSED_PER_TOKEN: usize = 8;
const MAX_REFUSED_TOKENS: usize = 64;
/// Longest URI accepted.
const MAX_URI: usize = 4096;

const DER_OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const DER_OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

// ---------------------------------------------------------------------------------------
// RFC 7512 URIs
// ---------------------------------------------------------------------------------------

/// A parsed `pkcs11:` URI (RFC 7512). `Debug` and [`Pkcs11Uri::shown`] never show the PIN.
#[derive(Default, Clone)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    pub slot_id: Option<u64>,
    pub module_path: Option<String>,
    pub pin_source: Option<String>,
    pin_value: Option<Zeroizing<String>>,
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

/// Whether `text` is a PKCS#11 URI (it starts with `pkcs11:`, any case).
pub fn is_uri(text: &str) -> bool {
    let t = text.trim_start();
    t.len() >= 7 && t.is_char_boundary(7) && t[..7].eq_ignore_ascii_case("pkcs11:")
}

fn bad_uri(msg: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("invalid PKCS#11 URI: {} (form: pkcs11:token=LABEL;object=KEY?module-path=/path/to/module.so)", msg.into()),
    )
}

fn pct_decode(value: &str, name: &str) -> Result<Vec<u8>> {
    let b = value.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => out.push(v),
                None => return Err(bad_uri(format!("'{name}' has a bad percent-escape (use %XX with two hex digits)"))),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn pct_encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &c in bytes {
        if c.is_ascii_alphanumeric() || b"-._~:/@!$'()*+,".contains(&c) {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

impl Pkcs11Uri {
    /// Parses an RFC 7512 URI. Path attributes: `token`, `manufacturer`, `serial`, `model`,
    /// `object`, `id`, `slot-id`, `type` (only `private`); query attributes: `module-path`,
    /// `pin-value`, `pin-source`. Values are percent-decoded. Unknown or unsupported
    /// attributes are refused rather than ignored: an ignored filter could pick another key.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.len() > MAX_URI {
            return Err(bad_uri(format!("{} bytes, more than {MAX_URI}", text.len())));
        }
        if !is_uri(text) {
            return Err(bad_uri("it does not start with 'pkcs11:'"));
        }
        let rest = &text[7..];
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        // A query that holds a pin-value, in any form, shows none of its attributes in an error
        // text: a PIN written with a bare '&' spills into the next attribute. (It cannot spill
        // into the path: the path ends at the first '?'.)
        let hide_query = holds_pin_value(query);
        let mut uri = Pkcs11Uri::default();
        let mut seen: Vec<String> = Vec::new();
        for (part, sep, in_query) in [(path, ';', false), (query, '&', true)] {
            let hide = in_query && hide_query;
            for attr in part.split(sep).filter(|a| !a.is_empty()) {
                let split = attr.split_once('=');
                // Only `pin-value=` in the query is a pin-value; anything else that spells it
                // (no '=', a ':' or a space, percent-encoded, in the path, inside another
                // attribute's value) is refused without showing any of it.
                let well_formed = in_query && split.is_some_and(|(n, _)| n.eq_ignore_ascii_case("pin-value"));
                if !well_formed && holds_pin_value(attr) {
                    return Err(malformed_pin_value());
                }
                let Some((name, value)) = split else {
                    return Err(bad_uri(format!("{} has no '='", echo(hide, attr))));
                };
                let name = name.to_ascii_lowercase();
                if seen.contains(&name) {
                    return Err(bad_uri(format!("{} is given twice", echo(hide, &name))));
                }
                seen.push(name.clone());
                uri.set(&name, value, in_query, hide)?;
            }
        }
        if uri.pin_value.is_some() && uri.pin_source.is_some() {
            return Err(bad_uri("it has both pin-value and pin-source: give the PIN one way"));
        }
        Ok(uri)
    }

    fn set(&mut self, name: &str, value: &str, in_query: bool, hide: bool) -> Result<()> {
        let bytes = Zeroizing::new(pct_decode(value, name)?);
        let text = || {
            std::str::from_utf8(&bytes)
                .map(str::to_string)
                .map_err(|_| bad_uri(format!("'{name}' is not UTF-8 after percent-decoding")))
        };
        let misplaced = |want_query: bool| {
            if want_query != in_query {
                let (is, should) = if in_query { ("query (after '?')", "path") } else { ("path", "query (after '?')") };
                Err(bad_uri(format!("{} is in the {is}; RFC 7512 puts it in the {should}", echo(hide, name))))
            } else {
                Ok(())
            }
        };
        match name {
            "token" | "manufacturer" | "serial" | "model" | "object" | "id" | "slot-id" | "type" => misplaced(false)?,
            "module-path" | "pin-value" | "pin-source" => misplaced(true)?,
            _ => {}
        }
        match name {
            "token" => self.token = Some(text()?),
            "manufacturer" => self.manufacturer = Some(text()?),
            "serial" => self.serial = Some(text()?),
            "model" => self.model = Some(text()?),
            "object" => self.object = Some(text()?),
            "id" => self.id = Some(bytes.to_vec()),
            "slot-id" => {
                let t = text()?;
                self.slot_id =
                    Some(t.parse().map_err(|_| bad_uri(format!("slot-id {} is not a decimal number", echo(hide, &t))))?);
            }
            "type" => {
                let t = text()?;
                if t != "private" {
                    let shown = if hide { echo(hide, &t) } else { format!("={}", shorten(&t)) };
                    return Err(bad_uri(format!(
                        "type{shown} names no private key: DPoP signs with the private key, use type=private or leave type out"
                    )));
                }
            }
            "module-path" => self.module_path = Some(text()?),
            "pin-value" => {
                let t = std::str::from_utf8(&bytes).map_err(|_| bad_uri("'pin-value' is not UTF-8 after percent-decoding"))?;
                self.pin_value = Some(Zeroizing::new(t.to_string()));
            }
            "pin-source" => self.pin_source = Some(text()?),
            "module-name" => return Err(bad_uri("module-name is not supported: give the full path as module-path")),
            "library-manufacturer" | "library-description" | "library-version" | "slot-description"
            | "slot-manufacturer" => {
                return Err(bad_uri(format!("'{name}' is not supported: select the token with token=, serial= or slot-id=")));
            }
            other => {
                return Err(bad_uri(format!(
                    "unknown attribute {} (supported: token, manufacturer, serial, model, object, id, slot-id, type; \
                     ?module-path, pin-value, pin-source)",
                    echo(hide, other)
                )));
            }
        }
        Ok(())
    }

    /// The URI as shown in texts: the selecting attributes and the module, never a PIN.
    pub fn shown(&self) -> String {
        let mut path = Vec::new();
        let mut put = |n: &str, v: &Option<String>| {
            if let Some(v) = v {
                path.push(format!("{n}={}", pct_encode(v.as_bytes())));
            }
        };
        put("token", &self.token);
        put("manufacturer", &self.manufacturer);
        put("serial", &self.serial);
        put("model", &self.model);
        put("object", &self.object);
        if let Some(id) = &self.id {
            path.push(format!("id={}", id.iter().map(|b| format!("%{b:02X}")).collect::<String>()));
        }
        if let Some(s) = self.slot_id {
            path.push(format!("slot-id={s}"));
        }
        let mut s = format!("pkcs11:{}", path.join(";"));
        let mut query = Vec::new();
        if let Some(m) = &self.module_path {
            query.push(format!("module-path={}", pct_encode(m.as_bytes())));
        }
        if self.pin_value.is_some() {
            query.push("pin-value=****".to_string());
        }
        if let Some(p) = &self.pin_source {
            query.push(format!("pin-source={}", pct_encode(p.as_bytes())));
        }
        if !query.is_empty() {
            s.push('?');
            s.push_str(&query.join("&"));
        }
        shorten(&s)
    }

    /// The PIN: the caller's password when given (not empty), else `pin-value`, else the
    /// first line of the `pin-source` file; `None` when there is none.
    fn pin(&self, password: Option<&str>) -> Result<Option<Zeroizing<String>>> {
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            return Ok(Some(Zeroizing::new(p.to_string())));
        }
        if let Some(p) = &self.pin_value {
            return Ok(Some(p.clone()));
        }
        let Some(source) = &self.pin_source else { return Ok(None) };
        let path = source.strip_prefix("file://").or_else(|| source.strip_prefix("file:")).unwrap_or(source);
        let shown = shorten(path);
        let data = super::fsread::read_regular_file(Path::new(path), &super::fsread::PIN_FILE)?;
        let text = std::str::from_utf8(&data)
            .map_err(|_| Error::new(ErrorKind::FileIo, format!("the PIN file (pin-source) '{shown}' is not UTF-8 text")))?;
        let line = text.lines().next().unwrap_or("");
        Ok(Some(Zeroizing::new(line.to_string())).filter(|p| !p.is_empty()))
    }

    /// The module to load: `module-path`, else `DPOPKIT_PKCS11_MODULE`. When the variable is
    /// set, it is the only module a process may load (an administrator's pin, so that a URI
    /// from a less trusted caller cannot make the process load another library): a
    /// `module-path` that does not name the same file is refused, and the file loaded is
    /// always the variable's, resolved once ([`load_module`] loads exactly the canonical path
    /// it returns). The URI's path is only compared, never loaded: a symbolic link in it that
    /// someone flips between the comparison and the load cannot change what is loaded.
    fn module(&self) -> Result<PathBuf> {
        let env = std::env::var_os(MODULE_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
        let chosen = match (&self.module_path, &env) {
            (Some(m), Some(e)) => {
                let same = Path::new(m) == e.as_path()
                    || matches!((std::fs::canonicalize(m), std::fs::canonicalize(e)), (Ok(a), Ok(b)) if a == b);
                if !same {
                    return err(
                        ErrorKind::InvalidArgument,
                        format!(
                            "the URI names the PKCS#11 module '{}', but {MODULE_ENV} allows only '{}': leave module-path \
                             out of the URI or change {MODULE_ENV}",
                            shorten(m),
                            shorten(&e.display().to_string())
                        ),
                    );
                }
                e.clone()
            }
            (Some(m), None) => PathBuf::from(m),
            (None, Some(e)) => e.clone(),
            (None, None) => {
                return err(
                    ErrorKind::InvalidArgument,
                    format!(
                        "no PKCS#11 module: add ?module-path=/path/to/the/vendor/module to the URI or set {MODULE_ENV} \
                         (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)"
                    ),
                );
            }
        };
        if !chosen.is_absolute() {
            let whose = if env.is_some() { MODULE_ENV } else { "module-path" };
            return err(
                ErrorKind::InvalidArgument,
                format!(
                    "the PKCS#11 module path '{}' ({whose}) is not absolute: give the full path, so that no library \
                     search order can pick another file",
                    shorten(&chosen.display().to_string())
                ),
            );
        }
        Ok(chosen)
    }
}

fn shorten_attr(a: &str) -> String {
    let mut end = a.len().min(40);
    while !a.is_char_boundary(end) {
        end -= 1;
    }
    a[..end].to_string()
}

/// A piece of a URI for an error text, quoted; nothing of it when the URI holds a PIN.
fn echo(hide: bool, piece: &str) -> String {
    if hide {
        "(an attribute not shown because the URI holds a pin-value: percent-encode '&', ';' and '?' in a PIN as %26, \
         %3B and %3F)"
            .to_string()
    } else {
        format!("'{}'", shorten_attr(piece))
    }
}

fn malformed_pin_value() -> Error {
    bad_uri(
        "it holds a malformed pin-value (not shown, as it holds the PIN): write it as ?pin-value=PIN in the query \
         (after the path and '?', separated from other query attributes by '&', with '&', ';', '?', '%' and spaces \
         in the PIN percent-encoded), or pass the PIN as the password argument",
    )
}

/// Whether `text` spells `pin-value` in any way: any case, any punctuation or spaces
/// between the letters, percent-encoded (up to four times).
fn holds_pin_value(text: &str) -> bool {
    let mut bytes = Zeroizing::new(text.as_bytes().to_vec());
    for _ in 0..5 {
        let squeezed: Zeroizing<Vec<u8>> =
            Zeroizing::new(bytes.iter().filter(|b| b.is_ascii_alphanumeric()).map(u8::to_ascii_lowercase).collect());
        if squeezed.windows(8).any(|w| w == b"pinvalue") {
            return true;
        }
        let mut decoded = Zeroizing::new(Vec::with_capacity(bytes.len()));
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'%', Some(v)) => {
                    decoded.push(v);
                    i += 3;
                }
                (b, _) => {
                    decoded.push(b);
                    i += 1;
                }
            }
        }
        if *decoded == *bytes {
            break;
        }
        bytes = decoded;
    }
    false
}

/// Refuses a key name that is not a `pkcs11:` URI but holds a pin-value (a misspelt
/// scheme, `pkcs11;token=...`), without showing it: it would otherwise be shown as a path.
pub fn refuse_misspelt_uri(text: &str) -> Result<()> {
    if !is_uri(text) && holds_pin_value(text) {
        return err(
            ErrorKind::InvalidArgument,
            "the key is named by a text that holds a pin-value but does not start with 'pkcs11:' (not shown, as it \
             holds a PIN): write pkcs11:token=LABEL;object=KEY?pin-value=PIN, or pass the PIN as the password",
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The process-wide registry
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Registry {
    modules: HashMap<PathBuf, Pkcs11>,
    tokens: HashMap<String, Weak<Token>>,
    /// Keyed hashes of PINs a token refused, per token identity.
    refused: HashMap<String, Vec<[u8; 32]>>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);
static MODULE_LOADS: AtomicUsize = AtomicUsize::new(0);
static LOGINS: AtomicUsize = AtomicUsize::new(0);

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many modules this process loaded and how many times it logged in to a token (for
/// tests: one of each per module and token, however many handles share them).
#[doc(hidden)]
pub fn counters() -> (usize, usize) {
    (MODULE_LOADS.load(Ordering::Relaxed), LOGINS.load(Ordering::Relaxed))
}

/// A keyed hash of a PIN, to recognise a PIN the token already refused without keeping it.
fn pin_fingerprint(pin: &str) -> [u8; 32] {
    static KEY: OnceLock<ring::hmac::Key> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &std::process::id().to_le_bytes()))
    });
    let tag = ring::hmac::sign(key, pin.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

fn ck_name(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, func) => format!("{func:?}: {rv:?}"),
        other => shorten(&other.to_string()),
    }
}

fn rv(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

fn load_module(path: &Path) -> Result<(PathBuf, Pkcs11)> {
    let shown = shorten(&path.display().to_string());
    let canon = std::fs::canonicalize(path).map_err(|e| {
        Error::new(
            ErrorKind::FileIo,
            format!(
                "the PKCS#11 module '{shown}' cannot be opened ({e}): install the token vendor's module \
                 (SoftHSM2: apt-get install softhsm2) or fix module-path / {MODULE_ENV}"
            ),
        )
    })?;
    let mut reg = registry();
    if let Some(ctx) = reg.modules.get(&canon) {
        return Ok((canon, ctx.clone()));
    }
    if reg.modules.len() >= MAX_MODULES {
        return err(ErrorKind::InvalidArgument, format!("more than {MAX_MODULES} PKCS#11 modules in one process"));
    }
    let ctx = Pkcs11::new(&canon).map_err(|e| {
        Error::new(ErrorKind::FileIo, format!("cannot load the PKCS#11 module '{shown}': {}", ck_name(&e)))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        // Another part of the process initialised it already: share it.
        Err(e) if rv(&e) == Some(RvError::CryptokiAlreadyInitialized) => {}
        Err(e) => {
            return err(ErrorKind::FileIo, format!("the PKCS#11 module '{shown}' failed to initialise: {}", ck_name(&e)));
        }
    }
    MODULE_LOADS.fetch_add(1, Ordering::Relaxed);
    reg.modules.insert(canon.clone(), ctx.clone());
    Ok((canon, ctx))
}

// ---------------------------------------------------------------------------------------
// Tokens: a session pool and the login
// ---------------------------------------------------------------------------------------

struct Pool {
    idle: Vec<Session>,
    open: usize,
    max: usize,
}

struct Login {
    /// The PIN that logged in, kept (wiped on drop) to log in again after the token
    /// logged this process out. `None` for tokens without a login or with a PIN pad.
    pin: Option<Zeroizing<String>>,
    logged_in: bool,
    /// The token refused `pin` at a re-login: no further automatic try.
    refused: bool,
}

pub(crate) struct Token {
    ctx: Pkcs11,
    slot: Slot,
    /// Registry key: module, slot, serial and label.
    ident: String,
    /// "token 'LABEL'" for texts.
    name: String,
    login_required: bool,
    protected_path: bool,
    pool: Mutex<Pool>,
    returned: Condvar,
    login: Mutex<Login>,
    /// Bumped at every login, so that many threads logged out at once log in once.
    generation: AtomicU64,
    /// Successful logins (C_Login calls answered OK or USER_ALREADY_LOGGED_IN).
    logins: AtomicUsize,
}

impl Token {
    fn locked_pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle session, a new one while fewer than `max` are open, else the next one a
    /// signer gives back, waited for until `deadline` (without one: until one comes back).
    fn checkout(&self, deadline: Option<&Deadline>) -> Result<Session> {
        let mut pool = self.locked_pool();
        loop {
            if let Some(s) = pool.idle.pop() {
                return Ok(s);
            }
            if pool.open < pool.max {
                pool.open += 1;
                drop(pool);
                let e = match self.ctx.open_ro_session(self.slot) {
                    Ok(s) => return Ok(s),
                    Err(e) => e,
                };
                pool = self.locked_pool();
                pool.open -= 1;
                if rv(&e) != Some(RvError::SessionCount) || pool.open == 0 {
                    drop(pool);
                    self.returned.notify_one();
                    return Err(self.fail("cannot open a session", &e));
                }
                // The token allows fewer sessions than it said: wait for one of ours.
                pool.max = pool.open;
            }
            pool = match deadline {
                None => self.returned.wait(pool).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.remaining();
                    if left.is_zero() {
                        let open = pool.open;
                        drop(pool);
                        // A wake-up this thread took is passed on to the next waiter.
                        self.returned.notify_one();
                        return Err(d.exceeded(&format!(
                            " while waiting for a free session of {} (all {open} busy signing: the token is slow or \
                             stalled)",
                            self.name
                        )));
                    }
                    self.returned.wait_timeout(pool, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
    }

    fn checkin(&self, s: Session) {
        self.locked_pool().idle.push(s);
        self.returned.notify_one();
    }

    /// Drops a session the token no longer knows, and the idle ones with it: sessions are
    /// closed together (C_CloseAllSessions, a token pulled out), and one stale session per
    /// retry would exhaust the retries.
    fn discard(&self, s: Session) {
        drop(s);
        let mut pool = self.locked_pool();
        let idle = std::mem::take(&mut pool.idle);
        pool.open = pool.open.saturating_sub(1 + idle.len());
        drop(pool);
        drop(idle);
        self.returned.notify_all();
    }

    /// A failed token call as an error text. At signing time the key is unusable, which the
    /// C ABI reports as `NO_KEY`.
    fn fail(&self, what: &str, e: &CkError) -> Error {
        let hint = match rv(e) {
            Some(RvError::DeviceRemoved | RvError::TokenNotPresent) => ": the token was removed or is not present",
            Some(RvError::DeviceError) => ": the token reported a device error",
            _ => "",
        };
        Error::new(ErrorKind::NoKey, format!("{}: {what} ({}){hint}", self.name, ck_name(e)))
    }

    /// Logs in at load time with `pin`, or checks that `pin` is the one the process logged
    /// in with.
    fn ensure_login(&self, pin: Option<Zeroizing<String>>) -> Result<()> {
        let mut login = self.login.lock().unwrap_or_else(|e| e.into_inner());
        if !self.login_required {
            login.logged_in = true;
            return Ok(());
        }
        if login.logged_in && !login.refused {
            let same = match (&login.pin, &pin) {
                (Some(a), Some(b)) => pin_fingerprint(a) == pin_fingerprint(b),
                (None, None) => true,
                _ => false,
            };
            if same {
                return Ok(());
            }
            return err(
                ErrorKind::KeyFormat,
                format!(
                    "{} is already logged in by this process with another PIN; give the same PIN (a token has one \
                     login per process)",
                    self.name
                ),
            );
        }
        if let Some(p) = &pin {
            let fp = pin_fingerprint(p);
            if registry().refused.get(&self.ident).is_some_and(|v| v.contains(&fp)) {
                return err(
                    ErrorKind::KeyFormat,
                    format!(
                        "{} already refused this PIN in this process; it is not sent again, because tokens lock after \
                         a few wrong PINs. Check the PIN and load the key with the right one",
                        self.name
                    ),
                );
            }
        } else if !self.protected_path {
            return err(
                ErrorKind::KeyFormat,
                format!(
                    "{} needs a PIN: pass it as the password argument, or as pin-value / pin-source in the URI",
                    self.name
                ),
            );
        }
        let session = self.checkout(None)?;
        let result = self.login_with(&session, pin.as_ref());
        self.checkin(session);
        result?;
        login.pin = pin;
        login.logged_in = true;
        login.refused = false;
        Ok(())
    }

    fn login_with(&self, session: &Session, pin: Option<&Zeroizing<String>>) -> Result<()> {
        let auth = pin.map(|p| {
            let mut s = String::with_capacity(p.len());
            s.push_str(p);
            AuthPin::from(s)
        });
        match session.login(UserType::User, auth.as_ref()) {
            Ok(()) => {}
            Err(e) if rv(&e) == Some(RvError::UserAlreadyLoggedIn) => {}
            Err(e) => {
                return Err(match rv(&e) {
                    Some(RvError::PinIncorrect) => {
                        if let Some(p) = pin {
                            let mut reg = registry();
                            if reg.refused.len() >= MAX_REFUSED_TOKENS && !reg.refused.contains_key(&self.ident) {
                                reg.refused.clear();
                            }
                            let list = reg.refused.entry(self.ident.clone()).or_default();
                            if list.len() >= MAX_REFUSED_PER_TOKEN {
                                list.remove(0);
                            }
                            list.push(pin_fingerprint(p));
                        }
                        Error::new(
                            ErrorKind::KeyFormat,
                            format!(
                                "{} refused the PIN (CKR_PIN_INCORRECT). dpopkit does not try it again: tokens lock \
                                 after a few wrong PINs. Check the PIN and load the key again with the right one",
                                self.name
                            ),
                        )
                    }
                    Some(RvError::PinLocked) => Error::new(
                        ErrorKind::KeyFormat,
                        format!(
                            "the user PIN of {} is locked (CKR_PIN_LOCKED) after too many wrong PINs: the token's \
                             security officer must unblock it",
                            self.name
                        ),
                    ),
                    Some(RvError::PinExpired) => Error::new(
                        ErrorKind::KeyFormat,
                        format!("the user PIN of {} has expired (CKR_PIN_EXPIRED): set a new one with the vendor's tool", self.name),
                    ),
                    Some(RvError::PinLenRange | RvError::PinInvalid) => Error::new(
                        ErrorKind::KeyFormat,
                        format!("{} does not accept a PIN of this length or with these characters ({})", self.name, ck_name(&e)),
                    ),
                    Some(RvError::UserPinNotInitialized) => Error::new(
                        ErrorKind::KeyFormat,
                        format!("{} has no user PIN yet (CKR_USER_PIN_NOT_INITIALIZED): initialise the token first", self.name),
                    ),
                    _ => Error::new(ErrorKind::KeyFormat, format!("{}: login failed: {}", self.name, ck_name(&e))),
                });
            }
        }
        LOGINS.fetch_add(1, Ordering::Relaxed);
        self.logins.fetch_add(1, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Logs in again after the token said CKR_USER_NOT_LOGGED_IN, unless another thread did
    /// since `seen` or the token refused the PIN before.
    fn relogin(&self, seen: u64, deadline: Option<&Deadline>) -> Result<()> {
        let mut login = self.login.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        if login.refused {
            return err(
                ErrorKind::NoKey,
                format!(
                    "{} logged this process out and refused the PIN at the re-login; it is not tried again. Load the \
                     key again with the current PIN",
                    self.name
                ),
            );
        }
        if login.pin.is_none() && !self.protected_path {
            return err(ErrorKind::NoKey, format!("{} logged this process out and no PIN is known to log in again", self.name));
        }
        let session = self.checkout(deadline)?;
        let result = self.login_with(&session, login.pin.as_ref());
        self.checkin(session);
        if let Err(e) = result {
            login.refused = true;
            login.logged_in = false;
            login.pin = None;
            return Err(Error::new(ErrorKind::NoKey, format!("re-login after the token logged this process out: {}", e.message)));
        }
        Ok(())
    }
}

/// The token the URI names, shared with every other handle on it.
fn open_token(uri: &Pkcs11Uri) -> Result<Arc<Token>> {
    let module = uri.module()?;
    let (canon, ctx) = load_module(&module)?;
    let module_shown = shorten(&module.display().to_string());
    let slots = ctx.get_slots_with_initialized_token().map_err(|e| {
        Error::new(ErrorKind::KeyFormat, format!("the PKCS#11 module '{module_shown}' cannot list its slots: {}", ck_name(&e)))
    })?;
    let mut found = Vec::new();
    let mut seen = Vec::new();
    let all = slots.len();
    for slot in slots {
        let Ok(info) = ctx.get_token_info(slot) else { continue };
        let label = info.label().trim_end().to_string();
        let serial = info.serial_number().trim_end().to_string();
        if seen.len() < 8 {
            seen.push(format!("'{}' (serial {serial}, slot-id {})", shorten(&label), slot.id()));
        }
        let want = |w: &Option<String>, have: &str| w.as_deref().is_none_or(|w| w.trim_end() == have);
        if uri.slot_id.is_some_and(|id| id != slot.id())
            || !want(&uri.token, &label)
            || !want(&uri.serial, &serial)
            || !want(&uri.manufacturer, info.manufacturer_id().trim_end())
            || !want(&uri.model, info.model().trim_end())
        {
            continue;
        }
        found.push((slot, label, serial, info.login_required(), info.protected_authentication_path(), info.max_session_count()));
    }
    let shown = uri.shown();
    let (slot, label, serial, login_required, protected_path, max) = match found.len() {
        1 => found.remove(0),
        0 => {
            let mut present = if seen.is_empty() { "none".to_string() } else { seen.join(", ") };
            if all > seen.len() && !seen.is_empty() {
                present.push_str(&format!(" and {} more", all - seen.len()));
            }
            return err(
                ErrorKind::KeyFormat,
                format!("no token matches '{shown}' in the PKCS#11 module '{module_shown}' (tokens present: {present})"),
            );
        }
        n => {
            return err(
                ErrorKind::KeyFormat,
                format!("{n} tokens match '{shown}' ({}): add token=, serial= or slot-id= to the URI", seen.join(", ")),
            );
        }
    };
    let ident = format!("{}\n{}\n{serial}\n{label}", canon.display(), slot.id());
    let mut reg = registry();
    if let Some(t) = reg.tokens.get(&ident).and_then(Weak::upgrade) {
        return Ok(t);
    }
    let max = match max {
        cryptoki::slot::Limit::Max(m) if m > 0 => (m as usize).min(MAX_SESSIONS),
        _ => MAX_SESSIONS,
    };
    let token = Arc::new(Token {
        ctx,
        slot,
        ident: ident.clone(),
        name: format!("PKCS#11 token '{}'", shorten(&label)),
        login_required,
        protected_path,
        pool: Mutex::new(Pool { idle: Vec::new(), open: 0, max }),
        returned: Condvar::new(),
        login: Mutex::new(Login { pin: None, logged_in: false, refused: false }),
        generation: AtomicU64::new(0),
        logins: AtomicUsize::new(0),
    });
    reg.tokens.retain(|_, w| w.strong_count() > 0);
    reg.tokens.insert(ident, Arc::downgrade(&token));
    Ok(token)
}

// ---------------------------------------------------------------------------------------
// Keys in a token
// ---------------------------------------------------------------------------------------

/// The curves a token key may be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    pub fn alg(self) -> &'static str {
        match self {
            Curve::P256 => "ES256",
            Curve::P384 => "ES384",
        }
    }
    pub fn crv(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }
    fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
    fn der_oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => DER_OID_P256,
            Curve::P384 => DER_OID_P384,
        }
    }
    fn from_alg(alg: &str) -> Result<Self> {
        match alg {
            "ES256" | "" => Ok(Curve::P256),
            "ES384" => Ok(Curve::P384),
            other => err(
                ErrorKind::InvalidArgument,
                format!("keys in a PKCS#11 token are ES256 (P-256) or ES384 (P-384), not '{}'", shorten(other)),
            ),
        }
    }
}

/// A private key inside a token: signs there, never leaves it.
pub struct TokenKey {
    signer: Arc<KeySigner>,
    /// Uncompressed SEC1 point, 0x04 || x || y.
    point: Vec<u8>,
}

/// What signing needs, shared with the worker thread that signs for a call with a deadline
/// (the worker may outlive the call when the token stalls).
struct KeySigner {
    token: Arc<Token>,
    handle: Mutex<ObjectHandle>,
    /// Finds the key again when the token invalidates the handle.
    template: Vec<Attribute>,
    curve: Curve,
    shown: String,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey").field("uri", &self.signer.shown).field("curve", &self.signer.curve).finish()
    }
}

/// Threads that sign for calls with a deadline: the calling thread waits for the answer
/// until its deadline and then returns TIMEOUT, leaving a stalled token call to the
/// worker, which finishes it (and gives the session back) whenever the token answers.
/// Idle workers are reused (at most `MAX_IDLE`, each for `IDLE_FOR`), so a signature costs
/// a hand-over, not a thread start. Workers are bounded by the signatures in progress:
/// each holds one of a token's sessions or waits for one until its deadline.
mod workers {
    use std::panic::AssertUnwindSafe;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc::{self, Sender};
    use std::time::Duration;

    use super::{Error, ErrorKind, Result};

    pub(super) type Job = Box<dyn FnOnce() + Send>;

    const MAX_IDLE: usize = 16;
    const IDLE_FOR: Duration = Duration::from_secs(30);
    static IDLE: Mutex<Vec<(u64, Sender<Job>)>> = Mutex::new(Vec::new());
    static NEXT: AtomicU64 = AtomicU64::new(0);

    fn idle() -> std::sync::MutexGuard<'static, Vec<(u64, Sender<Job>)>> {
        IDLE.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `job` on an idle worker, or on a new one.
    pub(super) fn run(mut job: Job) -> Result<()> {
        loop {
            let Some((_, tx)) = idle().pop() else { break };
            match tx.send(job) {
                Ok(()) => return Ok(()),
                // That worker has just ended: the job comes back.
                Err(mpsc::SendError(j)) => job = j,
            }
        }
        std::thread::Builder::new()
            .name("dpopkit-pkcs11".into())
            .spawn(move || work(job))
            .map(drop)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot start a PKCS#11 signing thread: {e}")))
    }

    fn work(first: Job) {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<Job>();
        let mut job = first;
        loop {
            // A panic in a job drops its answer channel: the caller gets an error, and the
            // worker goes on.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
            {
                let mut idle = idle();
                if idle.len() >= MAX_IDLE {
                    return;
                }
                idle.push((id, tx.clone()));
            }
            job = match rx.recv_timeout(IDLE_FOR) {
                Ok(j) => j,
                Err(_) => {
                    let mut idle = idle();
                    if let Some(i) = idle.iter().position(|(w, _)| *w == id) {
                        idle.remove(i);
                        return;
                    }
                    // Taken from the list meanwhile: its job is on the way.
                    drop(idle);
                    match rx.recv() {
                        Ok(j) => j,
                        Err(_) => return,
                    }
                }
            };
        }
    }
}

fn ec_params_curve(params: &[u8]) -> Result<Curve> {
    match params {
        p if p == DER_OID_P256 => Ok(Curve::P256),
        p if p == DER_OID_P384 => Ok(Curve::P384),
        // A printable-string curve name (rare, PKCS#11 allows it).
        p if p.len() > 2 && p[0] == 0x13 && (p.ends_with(b"prime256v1") || p.ends_with(b"P-256")) => Ok(Curve::P256),
        p if p.len() > 2 && p[0] == 0x13 && (p.ends_with(b"secp384r1") || p.ends_with(b"P-384")) => Ok(Curve::P384),
        p => err(
            ErrorKind::KeyUnsupported,
            format!(
                "the token key is on an EC curve dpopkit does not sign with (CKA_EC_PARAMS {}): use P-256 (ES256) or \
                 P-384 (ES384), e.g. dpopkit keygen --pkcs11 URI",
                p.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>()
            ),
        ),
    }
}

/// The public point from CKA_EC_POINT, which tokens give as a DER OCTET STRING (the
/// standard) or as the raw point; compressed points are expanded.
pub fn parse_ec_point(curve: Curve, data: &[u8]) -> Result<Vec<u8>> {
    let raw = match data {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && len & 0x80 == 0 => rest,
        [0x04, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        _ => data,
    };
    let bad = || {
        Error::new(ErrorKind::KeyFormat, format!("the token's CKA_EC_POINT is not a valid {} point", curve.crv()))
    };
    match curve {
        Curve::P256 => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let pk = p256::PublicKey::from_sec1_bytes(raw).map_err(|_| bad())?;
            Ok(pk.to_encoded_point(false).as_bytes().to_vec())
        }
        Curve::P384 => {
            use p384::elliptic_curve::sec1::ToEncodedPoint;
            let pk = p384::PublicKey::from_sec1_bytes(raw).map_err(|_| bad())?;
            Ok(pk.to_encoded_point(false).as_bytes().to_vec())
        }
    }
}

/// CKM_ECDSA returns r || s; a few tokens return a DER ECDSA-Sig-Value instead.
fn raw_signature(sig: Vec<u8>, n: usize) -> Option<Vec<u8>> {
    if sig.len() == 2 * n {
        return Some(sig);
    }
    // SEQUENCE { INTEGER r, INTEGER s }, short or one-byte long length.
    let body = match sig.as_slice() {
        [0x30, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        [0x30, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        _ => return None,
    };
    let mut out = vec![0u8; 2 * n];
    let mut rest = body;
    for i in 0..2 {
        let [0x02, len, tail @ ..] = rest else { return None };
        let len = usize::from(*len);
        if tail.len() < len {
            return None;
        }
        let mut int = &tail[..len];
        while int.len() > n && int[0] == 0 {
            int = &int[1..];
        }
        if int.len() > n {
            return None;
        }
        out[i * n + n - int.len()..(i + 1) * n].copy_from_slice(int);
        rest = &tail[len..];
    }
    rest.is_empty().then_some(out)
}

fn key_template(uri: &Pkcs11Uri, class: ObjectClass) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(class)];
    if let Some(o) = &uri.object {
        t.push(Attribute::Label(o.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

fn label_list(session: &Session, class: ObjectClass) -> String {
    let Ok(objs) = session.find_objects(&[Attribute::Class(class)]) else { return "unknown".into() };
    let mut names: Vec<String> = objs
        .iter()
        .take(8)
        .filter_map(|o| session.get_attributes(*o, &[AttributeType::Label]).ok())
        .filter_map(|a| match a.first() {
            Some(Attribute::Label(l)) => Some(format!("'{}'", shorten(&String::from_utf8_lossy(l)))),
            _ => None,
        })
        .collect();
    if objs.len() > 8 {
        names.push(format!("and {} more", objs.len() - 8));
    }
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

impl KeySigner {
    /// CKM_ECDSA over `digest` with a pooled session; a closed session, a logout and a stale
    /// object handle are each repaired once.
    fn sign_digest(&self, digest: &[u8], deadline: Option<&Deadline>) -> Result<Vec<u8>> {
        let token = &self.token;
        let mut last = None;
        // A closed session, a logout and a stale object handle are each repaired once.
        for _ in 0..4 {
            if let Some(d) = deadline {
                // Past the deadline nobody waits for this signature: do not start one.
                d.check(|| format!(" while waiting to sign in {}", token.name))?;
            }
            let seen = token.generation.load(Ordering::Acquire);
            let session = token.checkout(deadline)?;
            let handle = *self.handle.lock().unwrap_or_else(|e| e.into_inner());
            match session.sign(&Mechanism::Ecdsa, handle, digest) {
                Ok(sig) => {
                    token.checkin(session);
                    return raw_signature(sig, self.curve.field_len()).ok_or_else(|| {
                        Error::new(ErrorKind::Internal, format!("{}: CKM_ECDSA returned a signature of an unexpected form", token.name))
                    });
                }
                Err(e) => match rv(&e) {
                    Some(RvError::SessionHandleInvalid | RvError::SessionClosed) => {
                        token.discard(session);
                        last = Some(e);
                    }
                    Some(RvError::UserNotLoggedIn) => {
                        token.checkin(session);
                        token.relogin(seen, deadline)?;
                        last = Some(e);
                    }
                    Some(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid) => {
                        // Some tokens (SoftHSM2) hide private objects after a logout and
                        // answer "invalid handle" instead of CKR_USER_NOT_LOGGED_IN.
                        let logged_out = session.get_session_info().is_ok_and(|i| {
                            matches!(i.session_state(), SessionState::RoPublic | SessionState::RwPublic)
                        });
                        if logged_out && token.login_required {
                            token.checkin(session);
                            token.relogin(seen, deadline)?;
                            last = Some(e);
                            continue;
                        }
                        let found = session.find_objects(&self.template);
                        token.checkin(session);
                        match found.as_deref() {
                            Ok([one]) => *self.handle.lock().unwrap_or_else(|e| e.into_inner()) = *one,
                            _ => {
                                return err(ErrorKind::NoKey, format!("the key '{}' is no longer in {}", self.shown, token.name));
                            }
                        }
                        last = Some(e);
                    }
                    Some(RvError::DeviceRemoved | RvError::TokenNotPresent | RvError::DeviceError) => {
                        token.discard(session);
                        return Err(token.fail("signing failed", &e));
                    }
                    Some(RvError::MechanismInvalid) => {
                        token.checkin(session);
                        return err(
                            ErrorKind::KeyUnsupported,
                            format!("{} does not offer CKM_ECDSA for {} keys", token.name, self.curve.crv()),
                        );
                    }
                    _ => {
                        token.checkin(session);
                        return Err(token.fail("signing failed", &e));
                    }
                },
            }
        }
        Err(token.fail("signing failed after re-opening the session and logging in again", &last.unwrap_or(CkError::InvalidValue)))
    }
}

impl TokenKey {
    /// Opens the key a `pkcs11:` URI names. `password` is the user PIN (else `pin-value` or
    /// `pin-source` from the URI); it is wiped after use and kept only inside the token's
    /// shared state to log in again after the token logs the process out.
    pub fn open(uri_text: &str, password: Option<&str>) -> Result<Self> {
        let uri = Pkcs11Uri::parse(uri_text)?;
        let pin = uri.pin(password)?;
        let token = open_token(&uri)?;
        token.ensure_login(pin)?;
        Self::find(token, &uri)
    }

    fn find(token: Arc<Token>, uri: &Pkcs11Uri) -> Result<Self> {
        let shown = uri.shown();
        let session = token.checkout(None)?;
        let result = Self::find_in(&token, &session, uri, &shown);
        token.checkin(session);
        let (handle, curve, point, template) = result?;
        let signer = Arc::new(KeySigner { token, handle: Mutex::new(handle), template, curve, shown });
        let key = TokenKey { signer, point };
        key.self_test()?;
        Ok(key)
    }

    fn find_in(
        token: &Token,
        session: &Session,
        uri: &Pkcs11Uri,
        shown: &str,
    ) -> Result<(ObjectHandle, Curve, Vec<u8>, Vec<Attribute>)> {
        let template = key_template(uri, ObjectClass::PRIVATE_KEY);
        let found = session.find_objects(&template).map_err(|e| token.fail("cannot search for the key", &e))?;
        let handle = match found.as_slice() {
            [one] => *one,
            [] => {
                return err(
                    ErrorKind::KeyFormat,
                    format!(
                        "{} holds no private key matching '{shown}' (private keys visible after login: {}); create one \
                         with: dpopkit keygen --pkcs11 'URI'",
                        token.name,
                        label_list(session, ObjectClass::PRIVATE_KEY)
                    ),
                );
            }
            many => {
                return err(
                    ErrorKind::KeyFormat,
                    format!("{} private keys in {} match '{shown}': add object= or id= to the URI", many.len(), token.name),
                );
            }
        };
        let attrs = session
            .get_attributes(handle, &[AttributeType::KeyType, AttributeType::EcParams, AttributeType::Id, AttributeType::Label, AttributeType::Sign])
            .map_err(|e| token.fail("cannot read the key's attributes", &e))?;
        let mut key_type = None;
        let mut params = None;
        let mut id = None;
        let mut label = None;
        let mut can_sign = true;
        for a in attrs {
            match a {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::EcParams(p) => params = Some(p),
                Attribute::Id(i) => id = Some(i),
                Attribute::Label(l) => label = Some(l),
                Attribute::Sign(s) => can_sign = s,
                _ => {}
            }
        }
        match key_type {
            Some(t) if t == KeyType::EC => {}
            Some(t) => {
                let what = if t == KeyType::RSA { "an RSA key".to_string() } else if t == KeyType::EC_EDWARDS { "an EdDSA key".to_string() } else { format!("a key of type {t}") };
                return err(
                    ErrorKind::KeyUnsupported,
                    format!(
                        "the token key '{shown}' is {what}: dpopkit signs DPoP proofs in a token with EC P-256 (ES256) \
                         or P-384 (ES384) keys; create one with: dpopkit keygen --pkcs11 'URI'"
                    ),
                );
            }
            None => return err(ErrorKind::KeyUnsupported, format!("the token does not say which type of key '{shown}' is")),
        }
        if !can_sign {
            return err(ErrorKind::KeyUnsupported, format!("the token key '{shown}' may not sign (CKA_SIGN is false)"));
        }
        let curve = ec_params_curve(&params.unwrap_or_default())?;
        // The public point: from the public key object with the same CKA_ID (or label),
        // else from the private key object itself (some tokens keep it there).
        let mut pub_template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
        match (&id, &label) {
            (Some(i), _) if !i.is_empty() => pub_template.push(Attribute::Id(i.clone())),
            (_, Some(l)) => pub_template.push(Attribute::Label(l.clone())),
            _ => {}
        }
        let mut point = None;
        let publics = session.find_objects(&pub_template).map_err(|e| token.fail("cannot search for the public key", &e))?;
        for obj in publics.iter().copied().chain(std::iter::once(handle)) {
            if let Ok(a) = session.get_attributes(obj, &[AttributeType::EcPoint]) {
                if let Some(Attribute::EcPoint(p)) = a.into_iter().next() {
                    point = Some(p);
                    break;
                }
            }
        }
        let Some(point) = point else {
            return err(
                ErrorKind::KeyFormat,
                format!(
                    "{} has no public key object with the CKA_ID of '{shown}', and the private key does not carry \
                     CKA_EC_POINT: the public key is needed for the JWK. Import it, e.g. pkcs11-tool --write-object \
                     pub.der --type pubkey --id ID",
                    token.name
                ),
            );
        };
        let point = parse_ec_point(curve, &point)?;
        Ok((handle, curve, point, template))
    }

    /// One signature verified with the public key: catches a public key object that does
    /// not belong to the private key (two objects sharing a label) at load time.
    fn self_test(&self) -> Result<()> {
        let msg = b"dpopkit pkcs11 self-test";
        let sig = self.sign(msg)?;
        let alg: &dyn ring::signature::VerificationAlgorithm = match self.signer.curve {
            Curve::P256 => &ring::signature::ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &ring::signature::ECDSA_P384_SHA384_FIXED,
        };
        ring::signature::UnparsedPublicKey::new(alg, &self.point).verify(msg, &sig).map_err(|_| {
            Error::new(
                ErrorKind::KeyFormat,
                format!(
                    "the private key '{}' and the public key found for it in {} do not match (two key pairs share a \
                     label or CKA_ID): give the URI an id= that names one pair",
                    self.signer.shown, self.signer.token.name
                ),
            )
        })
    }

    pub fn curve(&self) -> Curve {
        self.signer.curve
    }

    /// Uncompressed SEC1 public point.
    pub fn point(&self) -> &[u8] {
        &self.point
    }

    /// The URI without PIN, for texts.
    pub fn shown(&self) -> &str {
        &self.signer.shown
    }

    /// How often this process logged in to the key's token (for tests).
    #[doc(hidden)]
    pub fn token_logins(&self) -> usize {
        self.signer.token.logins.load(Ordering::Relaxed)
    }

    /// Whether both keys share one token session pool and login (for tests).
    #[doc(hidden)]
    pub fn shares_token_with(&self, other: &TokenKey) -> bool {
        Arc::ptr_eq(&self.signer.token, &other.signer.token)
    }

    /// Idle and open sessions of the key's token (for tests).
    #[doc(hidden)]
    pub fn token_sessions(&self) -> (usize, usize) {
        let pool = self.signer.token.locked_pool();
        (pool.idle.len(), pool.open)
    }

    /// A JWS signature (r || s) of `message`: the digest is computed here, the ECDSA
    /// operation (CKM_ECDSA) runs in the token. No deadline: for key loading and tests.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.sign_within(message, None)
    }

    /// [`TokenKey::sign`] for a call that ends at `deadline`: the token is asked on a worker
    /// thread, and at the deadline this returns TIMEOUT whether the token answered or not
    /// (waiting for a free session included). A signature that comes after the deadline is
    /// dropped; its session goes back to the pool only when the token has answered.
    pub fn sign_within(&self, message: &[u8], deadline: Option<Deadline>) -> Result<Vec<u8>> {
        let digest: Vec<u8> = match self.signer.curve {
            Curve::P256 => sha2::Sha256::digest(message).to_vec(),
            Curve::P384 => sha2::Sha384::digest(message).to_vec(),
        };
        let Some(deadline) = deadline else { return self.signer.sign_digest(&digest, None) };
        let doing = || format!(" while {} was signing the DPoP proof or assertion (it did not answer in time)", self.signer.token.name);
        deadline.check(doing)?;
        let (tx, rx) = mpsc::sync_channel(1);
        let signer = self.signer.clone();
        workers::run(Box::new(move || {
            let _ = tx.send(signer.sign_digest(&digest, Some(&deadline)));
        }))?;
        match rx.recv_timeout(deadline.remaining().max(Duration::from_millis(1))) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(deadline.exceeded(&doing())),
            Err(RecvTimeoutError::Disconnected) => {
                err(ErrorKind::Internal, format!("{}: the signing thread ended without an answer", self.signer.token.name))
            }
        }
    }
    /// Creates a non-extractable, sensitive key pair in the token the URI names, labelled
    /// with `object=` (required) and `id=` (else 16 random bytes), then opens it. Refuses
    /// when a key with that label or id already exists.
    pub fn generate(uri_text: &str, password: Option<&str>, alg: &str) -> Result<Self> {
        let curve = Curve::from_alg(alg)?;
        let mut uri = Pkcs11Uri::parse(uri_text)?;
        let Some(label) = uri.object.clone().filter(|o| !o.is_empty()) else {
            return err(ErrorKind::InvalidArgument, "a new token key needs a name: add object=NAME to the URI");
        };
        let pin = uri.pin(password)?;
        let token = open_token(&uri)?;
        token.ensure_login(pin)?;
        let id = match &uri.id {
            Some(id) => id.clone(),
            None => {
                let mut id = vec![0u8; 16];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
                    .map_err(|_| Error::new(ErrorKind::Internal, "the system random generator failed"))?;
                id
            }
        };
        let session = token
            .ctx
            .open_rw_session(token.slot)
            .map_err(|e| token.fail("cannot open a read-write session to create the key", &e))?;
        for t in [vec![Attribute::Label(label.as_bytes().to_vec())], vec![Attribute::Id(id.clone())]] {
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                let mut t = t.clone();
                t.push(Attribute::Class(class));
                let n = session.find_objects(&t).map_err(|e| token.fail("cannot search the token", &e))?.len();
                if n > 0 {
                    return err(
                        ErrorKind::InvalidArgument,
                        format!(
                            "{} already holds a key with this object= label or id= ('{}'): choose another name, or \
                             delete the old key with the vendor's tool",
                            token.name,
                            uri.shown()
                        ),
                    );
                }
            }
        }
        let label = label.into_bytes();
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(curve.der_oid().to_vec()),
            Attribute::Label(label.clone()),
            Attribute::Id(id.clone()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label),
            Attribute::Id(id.clone()),
        ];
        session
            .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
            .map_err(|e| token.fail(&format!("cannot create a {} key pair", curve.crv()), &e))?;
        drop(session);
        uri.id = Some(id);
        Self::find(token, &uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parses_rfc7512_attributes_and_percent_escapes() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=My%20Token;object=api-key;id=%01%a0;slot-id=7;serial=12ab;manufacturer=SoftHSM%20project;\
             model=SoftHSM%20v2;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=12%3B34",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("My Token"));
        assert_eq!(u.object.as_deref(), Some("api-key"));
        assert_eq!(u.id.as_deref(), Some(&[0x01, 0xa0][..]));
        assert_eq!(u.slot_id, Some(7));
        assert_eq!(u.serial.as_deref(), Some("12ab"));
        assert_eq!(u.manufacturer.as_deref(), Some("SoftHSM project"));
        assert_eq!(u.model.as_deref(), Some("SoftHSM v2"));
        assert_eq!(u.module_path.as_deref(), Some("/usr/lib/softhsm/libsofthsm2.so"));
        assert_eq!(u.pin(None).unwrap().unwrap().as_str(), "12;34");
        assert_eq!(u.pin(Some("9999")).unwrap().unwrap().as_str(), "9999", "the password argument wins");
        assert_eq!(u.pin(Some("")).unwrap().unwrap().as_str(), "12;34", "an empty password is none");
        let shown = u.shown();
        assert!(!shown.contains("12;34") && !shown.contains("12%3B34"), "{shown}");
        assert!(shown.contains("pin-value=****") && shown.contains("token=My%20Token") && shown.contains("id=%01%A0"), "{shown}");
        assert!(!format!("{u:?}").contains("34"));
        assert!(is_uri("  PKCS11:token=x") && !is_uri("pkcs1") && !is_uri("-----BEGIN"));
    }

    #[test]
    fn bad_uris_are_refused_without_echoing_the_pin() {
        for (uri, needle) in [
            ("pkcs11:token=a;token=b", "twice"),
            ("pkcs11:object=%zz", "percent-escape"),
            ("pkcs11:obj=x", "unknown attribute 'obj'"),
            ("pkcs11:type=public", "type=public"),
            ("pkcs11:type=cert", "private"),
            ("pkcs11:slot-id=x1", "decimal"),
            ("pkcs11:token", "no '='"),
            ("pkcs11:module-path=/x", "query"),
            ("pkcs11:?token=x", "path"),
            ("pkcs11:?module-name=softhsm2", "module-path"),
            ("pkcs11:slot-description=x", "not supported"),
            ("pkcs11:object=%FF%FE", "UTF-8"),
            ("file:key.pem", "pkcs11:"),
        ] {
            let e = Pkcs11Uri::parse(uri).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{uri}");
            assert!(e.message.contains(needle), "{uri}: {}", e.message);
        }
        let e = Pkcs11Uri::parse("pkcs11:token=a;bogus=1?pin-value=S3cretPin").unwrap_err();
        assert!(!e.message.contains("S3cretPin"), "{}", e.message);
        let e = Pkcs11Uri::parse("pkcs11:token=a?pin-value=S3cretPin&pin-value=other").unwrap_err();
        assert!(!e.message.contains("S3cretPin") && !e.message.contains("other"), "{}", e.message);
    }

    #[test]
    fn every_spelling_of_pin_value_is_recognised_and_never_echoed() {
        for t in ["pin-value", "PIN-VALUE:1", "pin value 1", "pin_value=1", "pin%2Dvalue", "pin%252dvalue", "p%69n-value", "x&pin-value=1"] {
            assert!(holds_pin_value(t), "{t}");
        }
        for t in ["pin-source=/x", "token=pin", "object=value", "pinned-value"] {
            assert!(!holds_pin_value(t), "{t}");
        }
        for uri in [
            "pkcs11:token=a?pin-value:7391",
            "pkcs11:token=a?pin-value%3D7391",
            "pkcs11:token=a?pin-value 7391",
            "pkcs11:token=a;object=k&pin-value=7391",
            "pkcs11:token=a?pin-value=73&91",
            "pkcs11:token=a?pin-value=73&91=x",
            "pkcs11:token=a?pin-value=7391&pin-source=/x/7391",
        ] {
            let e = Pkcs11Uri::parse(uri).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{uri}");
            assert!(!e.message.contains("73") && !e.message.contains("91"), "{uri}: {}", e.message);
        }
        // Without a pin-value in the query, the attribute at fault is still named.
        let e = Pkcs11Uri::parse("pkcs11:token=a;bogus=1?pin-value=7391").unwrap_err();
        assert!(e.message.contains("'bogus'") && !e.message.contains("7391"), "{}", e.message);
        assert!(refuse_misspelt_uri("pkcs11;token=a?pin-value=7391").unwrap_err().message.find("7391").is_none());
        assert!(refuse_misspelt_uri("/keys/dpop.pem").is_ok());
    }

    #[test]
    fn module_path_must_be_absolute_and_may_come_from_the_uri() {
        let u = Pkcs11Uri::parse("pkcs11:token=a?module-path=libsofthsm2.so").unwrap();
        let e = u.module().unwrap_err();
        assert!(e.message.contains("not absolute"), "{}", e.message);
        if std::env::var_os(MODULE_ENV).is_none() {
            let e = Pkcs11Uri::parse("pkcs11:token=a").unwrap().module().unwrap_err();
            assert!(e.message.contains(MODULE_ENV) && e.message.contains("module-path"), "{}", e.message);
        }
    }

    #[test]
    fn pin_source_reads_the_first_line_of_a_file() {
        let path = std::env::temp_dir().join(format!("dpopkit-pin-{}", std::process::id()));
        std::fs::write(&path, "4321\nignored\n").unwrap();
        let u = Pkcs11Uri::parse(&format!("pkcs11:token=a?pin-source=file:{}", path.display())).unwrap();
        assert_eq!(u.pin(None).unwrap().unwrap().as_str(), "4321");
        std::fs::remove_file(&path).unwrap();
        let e = u.pin(None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::FileIo);
        assert!(e.message.contains("pin-source"), "{}", e.message);
    }

    #[test]
    fn ec_point_accepts_der_octet_string_raw_and_compressed() {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let sk = p256::SecretKey::random(&mut rand_core::OsRng);
        let raw = sk.public_key().to_encoded_point(false).as_bytes().to_vec();
        let mut der = vec![0x04, raw.len() as u8];
        der.extend_from_slice(&raw);
        let compressed = sk.public_key().to_encoded_point(true).as_bytes().to_vec();
        for input in [&raw, &der, &compressed] {
            assert_eq!(parse_ec_point(Curve::P256, input).unwrap(), raw);
        }
        assert!(parse_ec_point(Curve::P256, &raw[..64]).is_err());
        let sk = p384::SecretKey::random(&mut rand_core::OsRng);
        let raw = sk.public_key().to_encoded_point(false).as_bytes().to_vec();
        let mut der = vec![0x04, raw.len() as u8];
        der.extend_from_slice(&raw);
        assert_eq!(parse_ec_point(Curve::P384, &der).unwrap(), raw);
        assert!(parse_ec_point(Curve::P256, &der).is_err(), "a P-384 point is not a P-256 point");
    }

    #[test]
    fn der_signatures_are_converted_to_r_s() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a leading zero in DER
        raw[31] = 1;
        raw[63] = 2; // s = 2: short
        let mut der = vec![0x30, 0, 0x02, 33, 0];
        der.extend_from_slice(&raw[..32]);
        der.extend_from_slice(&[0x02, 1, 2]);
        der[1] = (der.len() - 2) as u8;
        assert_eq!(raw_signature(der, 32).unwrap(), raw);
        assert_eq!(raw_signature(raw.clone(), 32).unwrap(), raw);
        assert!(raw_signature(vec![1, 2, 3], 32).is_none());
    }

    #[test]
    fn ec_params_name_the_curve() {
        assert_eq!(ec_params_curve(DER_OID_P256).unwrap(), Curve::P256);
        assert_eq!(ec_params_curve(DER_OID_P384).unwrap(), Curve::P384);
        let e = ec_params_curve(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::KeyUnsupported);
    }
}
