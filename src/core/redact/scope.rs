//! The call scope: the secrets of the running call (a thread-local set) and the
//! credentials of earlier calls kept for later calls to mask.

use super::*;

pub(super) struct CallState {
    pub(super) depth: u32,
    /// The call's set, shared (not copied) with every [`with_call`] running; `None` while
    /// nothing is in it. Changed copy-on-write, so a reader keeps the set it was given.
    pub(super) secrets: Option<std::rc::Rc<Secrets>>,
    /// The call's deadline, once its transport has said it (see [`note_deadline`]).
    pub(super) deadline: Option<std::time::Instant>,
}

thread_local! {
    // Never destroyed (`ManuallyDrop`: no destructor is registered), so a call made while
    // the thread ends — from another thread-local's destructor, after this one would have
    // been torn down — still has its secret set. Nothing leaks: the set is emptied (and
    // its allocation freed) when each call's outermost scope ends.
    //
    // No borrow of it is ever held while other code runs (a closure of the caller, the
    // masking): each borrow only reads, swaps or merges, so a borrow never finds it borrowed
    // and re-entry (masking inside `remember`, remembering inside `with_call`) cannot
    // hand out an empty set.
    static CALL: std::mem::ManuallyDrop<RefCell<CallState>> =
        const { std::mem::ManuallyDrop::new(RefCell::new(CallState { depth: 0, secrets: None, deadline: None })) };
}

/// Keeps the call's secret set alive; nested scopes share the outermost one.
#[must_use]
pub struct CallScope {
    pub(super) _not_send: std::marker::PhantomData<*const ()>,
}

/// Starts (or joins) the call's secret set. The outermost scope starts it with the values
/// earlier calls of the process left for later (`remember_for_later`), so that a server
/// or a cache echoing an earlier request gets masked too.
pub fn call_scope() -> CallScope {
    let outermost = CALL.with(|c| {
        let mut c = c.borrow_mut();
        c.depth += 1;
        c.depth == 1
    });
    if outermost {
        if let Some(later) = Later::layer() {
            CALL.with(|c| c.borrow_mut().secrets = Some(std::rc::Rc::new(Secrets::on(later))));
        }
    }
    CallScope { _not_send: std::marker::PhantomData }
}

impl Drop for CallScope {
    fn drop(&mut self) {
        let _ = CALL.try_with(|c| {
            let mut c = c.borrow_mut();
            c.depth = c.depth.saturating_sub(1);
            if c.depth == 0 {
                c.secrets = None; // the values are Zeroizing: wiped when the last reader lets go
                c.deadline = None;
            }
        });
    }
}

/// Adds to the secrets of the current call (nothing outside a call). `f` runs with no
/// borrow of the call's set held (it may mask, or remember): what it adds is merged after.
pub fn remember(f: impl FnOnce(&mut Secrets)) {
    let in_call = CALL.try_with(|c| c.try_borrow().is_ok_and(|c| c.depth > 0)).unwrap_or(false);
    if !in_call {
        return;
    }
    let mut add = Secrets::default();
    f(&mut add);
    if add.is_empty() {
        return;
    }
    let _ = CALL.try_with(|c| {
        let mut c = c.borrow_mut(); // held for the merge only: never found borrowed
        if c.depth == 0 {
            return;
        }
        match &mut c.secrets {
            Some(set) => std::rc::Rc::make_mut(set).extend(&add),
            None => c.secrets = Some(std::rc::Rc::new(add)),
        }
    });
}

/// Notes the deadline of the current call (nothing outside a call): long masking work (a
/// large body) looks at it and stops there, masking what it has not checked.
pub fn note_deadline(at: std::time::Instant) {
    let _ = CALL.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if c.depth > 0 {
                c.deadline = Some(c.deadline.map_or(at, |d| d.min(at)));
            }
        }
    });
}

pub(super) fn call_deadline() -> Option<std::time::Instant> {
    CALL.try_with(|c| c.try_borrow().ok().and_then(|c| c.deadline)).ok().flatten()
}

/// Remembers the credentials of outgoing request headers: the credential of
/// `Authorization` / `Proxy-Authorization` (after the scheme), the `DPoP` proof, and the
/// value of every other header whose name says it is a credential (`Cookie`, `X-Api-Key`,
/// `X-Auth-Token`, ... see [`is_credential_header`]), so that a server
/// echoing them back is masked in the log, in error texts and in returned bodies.
pub fn remember_request_headers(headers: &[(String, String)]) {
    remember(|s| {
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("proxy-authorization") {
                s.add_token(value.split_once(' ').map_or(value.as_str(), |(_, c)| c.trim()));
            } else if name.eq_ignore_ascii_case("dpop") {
                // One value for this call and for later ones: its forms are made once.
                let proof = Value::new(value, Kind::Token);
                s.push_value(&proof);
                keep_proof(proof, Later::proof_until());
            } else if is_credential_header(name) {
                s.add_token(value);
                // A cookie header holds `name=value` pairs: each value on its own too.
                if name.eq_ignore_ascii_case("cookie") {
                    for pair in value.split(';') {
                        if let Some((_, v)) = pair.split_once('=') {
                            s.add(v.trim());
                        }
                    }
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// Credentials of earlier calls that a server could still accept.
//
// A server (or a cache in front of it) may echo a request it got earlier: another call's
// proof, or an access token that has been renewed since but is still valid. Such values
// are kept process-wide, bounded, until they expire, and every call starts its secret set
// with them (see `call_scope`). Their forms are made once, shared by every call (`Value`
// clones share them). `dpopkit_token_cache_clear` forgets them all.

/// Access tokens kept for later: at most this many (in a map of their own, so that a
/// burst of proofs never pushes out a valid token).
pub const MAX_LATER_TOKENS: usize = crate::core::state::limits::LATER_TOKENS;
/// DPoP proofs and client assertions kept for later: the most recent this many. Every
/// text a call masks is searched for each kept value, so the bound is also what the
/// masking of later calls costs at most (a few more substring searches per text).
pub const MAX_LATER_PROOFS: usize = crate::core::state::limits::LATER_PROOFS;
/// Bytes of kept values, per map (the forms a value is echoed in come on top, bounded by
/// a small multiple of it).
pub const MAX_LATER_BYTES: usize = crate::core::state::limits::LATER_BYTES;
/// How long a DPoP proof is kept after it is sent: the longest `iat` window servers use
/// (5 minutes), plus a minute for their clock leeway. A proof dated on a server's clock
/// ([`crate::core::http::clock`]) is accepted by that server for the same time from its sending.
pub const PROOF_KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(6 * 60);
/// What is added to an access token's or an assertion's own expiry: servers' clock leeway.
pub const EXPIRY_LEEWAY: std::time::Duration = std::time::Duration::from_secs(60);

pub(super) struct Later {
    pub(super) value: Value,
    pub(super) until: std::time::Instant,
}

pub(super) type LaterMap = crate::core::state::BoundedLru<[u8; 32], std::sync::Arc<Later>>;

pub(super) fn later_weight(_: &[u8; 32], v: &std::sync::Arc<Later>) -> usize {
    v.value.raw.len()
}

/// Tokens and proofs apart, so that a burst of proofs never pushes out a valid token.
pub(super) static LATER_TOKENS: std::sync::LazyLock<LaterMap> =
    std::sync::LazyLock::new(|| LaterMap::new(MAX_LATER_TOKENS, MAX_LATER_BYTES, later_weight, crate::core::state::never_in_use));
pub(super) static LATER_PROOFS: std::sync::LazyLock<LaterMap> =
    std::sync::LazyLock::new(|| LaterMap::new(MAX_LATER_PROOFS, MAX_LATER_BYTES, later_weight, crate::core::state::never_in_use));

/// Bumped after every change of the kept values (kept, dropped, forgotten): the shared
/// layer made from them ([`Later::layer`]) is made again when it differs.
pub(super) static LATER_CHANGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The kept values as one shared layer of secrets (with its own automaton for long texts),
/// the change it was made at, and until when none of its values expires.
struct LaterLayer {
    change: u64,
    until: std::time::Instant,
    set: Option<std::sync::Arc<Secrets>>,
}

static LATER_LAYER: std::sync::RwLock<Option<LaterLayer>> = std::sync::RwLock::new(None);

fn changed() {
    LATER_CHANGES.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

impl Later {
    pub(super) fn proof_until() -> std::time::Instant {
        std::time::Instant::now() + PROOF_KEPT_FOR
    }

    /// The values not yet expired, for a new call's secret set: one layer shared by every
    /// call (not a copy per call), made again only after the kept values change or one of
    /// them expires. A value kept before a call starts is always in the layer it gets: the
    /// change is counted after the value is in its map, and the layer is made after the
    /// count is read.
    pub(super) fn layer() -> Option<std::sync::Arc<Secrets>> {
        use std::sync::atomic::Ordering;
        let change = LATER_CHANGES.load(Ordering::Acquire);
        let now = std::time::Instant::now();
        if let Some(l) = LATER_LAYER.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if l.change == change && now < l.until {
                return l.set.clone();
            }
        }
        let mut values = Vec::new();
        let mut until = now + PROOF_KEPT_FOR;
        for map in [&*LATER_TOKENS, &*LATER_PROOFS] {
            if map.is_empty() {
                continue;
            }
            for l in map.values().into_iter().filter(|l| l.until > now) {
                until = until.min(l.until);
                values.push(l.value.clone());
            }
        }
        let set = (!values.is_empty()).then(|| std::sync::Arc::new(Secrets { values, ..Secrets::default() }));
        let mut stored = LATER_LAYER.write().unwrap_or_else(|e| e.into_inner());
        if stored.as_ref().is_none_or(|s| s.change <= change) {
            *stored = Some(LaterLayer { change, until, set: set.clone() });
        }
        set
    }
}

/// Keeps `value` masked in every call of the process that starts before `until`, on any
/// thread, besides the current call (in its set already). Bounded ([`MAX_LATER_TOKENS`],
/// [`MAX_LATER_PROOFS`], [`MAX_LATER_BYTES`]): past a bound the least recently kept goes
/// first; expired values are dropped whenever one is kept. Values are wiped when they go
/// (their forms with the last call still using them). Values shorter than
/// [`WHOLE_WORD_BELOW`] or longer than 16 KiB are not kept.
pub(super) fn remember_for_later(map: &LaterMap, value: &str, until: std::time::Instant) {
    let now = std::time::Instant::now();
    if value.len() < WHOLE_WORD_BELOW || value.len() > 16 << 10 || until <= now {
        return;
    }
    let key = crate::core::state::salted_hash(&[value.as_bytes()]);
    if map.with(&key, |l| l.until >= until).unwrap_or(false) {
        return; // kept already, as long
    }
    keep(map, key, Value::new(value, Kind::Token), until);
}

fn keep(map: &LaterMap, key: [u8; 32], value: Value, until: std::time::Instant) {
    let now = std::time::Instant::now();
    map.retain(|l| l.until > now);
    map.insert(key, std::sync::Arc::new(Later { value, until }));
    changed();
}

/// A DPoP proof or an assertion sent now, kept as `remember_for_later` keeps a value, but
/// under a key of its own: each is new (a fresh `jti`), so there is nothing to look up and
/// no hash of it to make.
fn keep_proof(value: Value, until: std::time::Instant) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if value.raw.len() < WHOLE_WORD_BELOW || value.raw.len() > 16 << 10 || until <= std::time::Instant::now() {
        return;
    }
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_le_bytes());
    key[8] = 1; // never the salted hash of a value (those are in this map too, from `remember_proof_for_later`)
    keep(&LATER_PROOFS, key, value, until);
}

/// An access token, until it expires (plus [`EXPIRY_LEEWAY`]): renewed, it may still be
/// accepted — and echoed — until then. See `remember_for_later`.
pub fn remember_token_for_later(value: &str, expires_at: std::time::Instant) {
    remember_for_later(&LATER_TOKENS, value, expires_at + EXPIRY_LEEWAY);
}

/// A DPoP proof or a client assertion, until `until` (see [`PROOF_KEPT_FOR`]; an
/// assertion: its `exp` plus [`EXPIRY_LEEWAY`]). See `remember_for_later`.
pub fn remember_proof_for_later(value: &str, until: std::time::Instant) {
    remember_for_later(&LATER_PROOFS, value, until);
}

/// Forgets every value kept for later calls (`dpopkit_token_cache_clear`); calls in flight
/// keep their own copies until they end.
pub fn forget_later() {
    LATER_TOKENS.clear();
    LATER_PROOFS.clear();
    changed();
}

/// How many values are kept for later calls (tokens, proofs): for tests.
pub fn later_count() -> (usize, usize) {
    (LATER_TOKENS.len(), LATER_PROOFS.len())
}

/// Runs `f` with the secrets of the current call (an empty set outside a call).
pub fn with_call<R>(f: impl FnOnce(&Secrets) -> R) -> R {
    // A shared reference to the set, taken under a borrow that runs nothing else: `f` may
    // mask or remember (a value it remembers goes into a copy that later calls see).
    let set = CALL.try_with(|c| c.try_borrow().map(|c| c.secrets.clone()).ok());
    match set {
        Ok(Some(Some(set))) => f(&set),
        Ok(Some(None)) => f(&Secrets::empty()), // nothing to mask: no secret in this call (yet)
        // Unreachable (no borrow is held across other code, the thread-local is never
        // destroyed); were it reached, failing closed beats masking with an empty set.
        _ => panic!("dpopkit: the call's secret set could not be read; refusing to show unmasked text"),
    }
}

/// A caller-supplied value as shown in an error text: at most 200 characters, so that a
/// huge argument cannot make a huge error text. A value that is cut has the secrets of the
/// current call masked first: texts are masked as a whole later, but a secret the cut
/// splits would no longer be found then (a server's URL that holds the access token).
pub fn shorten(s: &str) -> String {
    if s.len() <= 200 {
        return s.to_string();
    }
    let total = s.len();
    let masked = with_call(|c| c.scrub(s));
    let s = masked.as_str();
    if s.len() <= 200 {
        return format!("{s} ({total} bytes)");
    }
    let mut end = 200;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({total} bytes)", &s[..end])
}

/// A text with the secrets of the current call masked (see [`call_scope`]): what every
/// text from a server or a caller goes through before it becomes an error text, a log
/// line, or a returned body or header. The name says it: the set is the call's.
pub fn scrub_for_call(text: &str) -> String {
    with_call(|call| call.scrub(text))
}

/// Replaces every occurrence of each secret, in all its echoable forms (see [`Secrets`]),
/// and of every secret of the current call, with `****`. With no `secrets` of its own,
/// write [`scrub_for_call`].
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut set = Secrets::default();
    for s in secrets {
        set.add(s);
    }
    with_call(|call| set.extend(call));
    set.scrub(text)
}
