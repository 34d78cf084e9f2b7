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
        let layers = Later::layer();
        if layers.iter().any(Option::is_some) {
            // Shared, not copied: two reference counts per call, whatever the values.
            let set = Secrets::on(layers);
            CALL.with(|c| c.borrow_mut().secrets = Some(std::rc::Rc::new(set)));
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

/// Remembers the credential of an `Authorization` header value sent outside the header
/// list (`Request::authorization`), as [`remember_request_headers`] does for one in it.
pub fn remember_authorization(value: &str) {
    remember(|s| add_authorization(s, value));
}

/// The credential of an `Authorization` value (after the scheme), added as a token unless
/// the call's set has it already: the access token of a DPoP call is there (the token
/// cache added it, shared), so no copy of it is made, merged and wiped per request.
fn add_authorization(s: &mut Secrets, value: &str) {
    let credential = value.split_once(' ').map_or(value, |(_, c)| c.trim());
    if !in_call_set(credential, &Kind::Token) {
        s.add_token(credential);
    }
}

/// Whether the current call's set holds `s` as `kind` already (read under a borrow that
/// runs nothing else).
fn in_call_set(s: &str, kind: &Kind) -> bool {
    CALL.try_with(|c| c.try_borrow().ok().and_then(|c| c.secrets.as_ref().map(|set| set.holds(s, kind)))).ok().flatten().unwrap_or(false)
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
/// echoing them back is masked in the log, in error texts and in returned bodies. The
/// `DPoP` proof is moved out of `headers` (left empty there), not copied: it is kept, and
/// wiped, as a value of the call and of later calls (call this once the request is built).
pub fn remember_request_headers(headers: &mut [(String, String)]) {
    remember(|s| {
        for (name, value) in headers.iter_mut() {
            if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("proxy-authorization") {
                add_authorization(s, value);
            } else if name.eq_ignore_ascii_case("dpop") {
                // One value for this call and for later ones: its forms are made once.
                let proof = Value::owning(std::mem::take(value), Kind::Token);
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
/// DPoP proofs and client assertions kept for later: at least the most recent this many
/// (up to [`PROOF_CHUNK`] more: they go by chunks). Every text a call masks is searched
/// for each kept value, so the bound is also what the masking of later calls costs at most.
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
    /// The order a proof was kept in (0 for a token): proofs are kept and dropped by
    /// chunks of [`PROOF_CHUNK`] (see [`keep_proof`]).
    pub(super) seq: u64,
}

/// Proofs are kept for later in chunks of this many, in the order they are sent, and go a
/// whole chunk at a time: when a chunk is the third newest, or when the newest proof in
/// it has expired. So at least the [`MAX_LATER_PROOFS`] most recent proofs are kept (up
/// to `PROOF_CHUNK` more), and what every call masks changes in two parts: the proofs
/// of the chunk being filled, and, once per chunk, the rest (`Later::layer`).
pub const PROOF_CHUNK: u64 = (MAX_LATER_PROOFS as u64).div_ceil(2);

pub(super) type LaterMap = crate::core::state::BoundedLru<[u8; 32], std::sync::Arc<Later>>;

pub(super) fn later_weight(_: &[u8; 32], v: &std::sync::Arc<Later>) -> usize {
    v.value.raw.len()
}

/// Tokens and proofs apart, so that a burst of proofs never pushes out a valid token.
pub(super) static LATER_TOKENS: std::sync::LazyLock<LaterMap> =
    std::sync::LazyLock::new(|| LaterMap::new(MAX_LATER_TOKENS, MAX_LATER_BYTES, later_weight, crate::core::state::never_in_use));
/// Room for three chunks of proofs: the bound on entries never drops one of a chunk
/// alone (the byte bound may, for very long proofs).
pub(super) static LATER_PROOFS: std::sync::LazyLock<LaterMap> =
    std::sync::LazyLock::new(|| LaterMap::new(3 * PROOF_CHUNK as usize, MAX_LATER_BYTES, later_weight, crate::core::state::never_in_use));

/// Bumped after every change of the kept values (kept, dropped, forgotten): the layers
/// made from them ([`Later::layer`]) are made again when it differs.
pub(super) static LATER_CHANGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The kept values as every call starts with them: a shared layer (tokens and the proofs
/// of completed chunks, with its own automaton for long texts, made once per chunk) and
/// the proofs of the chunk being filled (copied into each call's own set: a few shared
/// values). `change` is the count they were made at, `until` when a value of them expires,
/// `stable` what the layer was made of.
struct LaterLayer {
    change: u64,
    until: std::time::Instant,
    stable: StableKey,
    layer: Option<std::sync::Arc<Secrets>>,
    recent: Option<std::sync::Arc<Secrets>>,
    /// The chunk `recent` is of.
    filling: u64,
}

/// What the shared layer of [`LaterLayer`] was made of.
#[derive(Clone, Copy, PartialEq, Eq)]
struct StableKey {
    token_changes: u64,
    tokens: usize,
    /// Proofs of completed chunks: how many, the first and the last.
    proofs: (usize, u64, u64),
}

/// Bumped when a token is kept for later (or all are forgotten).
static TOKEN_CHANGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

static LATER_LAYER: std::sync::RwLock<Option<LaterLayer>> = std::sync::RwLock::new(None);

fn changed() {
    LATER_CHANGES.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// The proofs kept, with the chunks they are in, as far as they are live: a chunk is while
/// its newest proof is not expired and it is one of the three newest.
fn live_proofs(now: std::time::Instant) -> Vec<std::sync::Arc<Later>> {
    let all = LATER_PROOFS.values();
    let newest = all.iter().map(|l| l.seq / PROOF_CHUNK).max().unwrap_or(0);
    let live_chunk = |chunk: u64| chunk + 2 >= newest && all.iter().any(|l| l.seq / PROOF_CHUNK == chunk && l.until > now);
    let mut chunks: Vec<(u64, bool)> = Vec::new();
    all.iter()
        .filter(|l| {
            let chunk = l.seq / PROOF_CHUNK;
            match chunks.iter().find(|(c, _)| *c == chunk) {
                Some(&(_, live)) => live,
                None => {
                    let live = live_chunk(chunk);
                    chunks.push((chunk, live));
                    live
                }
            }
        })
        .cloned()
        .collect()
}

impl Later {
    pub(super) fn proof_until() -> std::time::Instant {
        std::time::Instant::now() + PROOF_KEPT_FOR
    }

    /// The values not yet expired, for a new call's secret set: a layer shared by every call
    /// (not a copy per call), made again only when its values change (once per chunk of
    /// proofs, or when a token is kept or one expires), and a layer of the few proofs of
    /// the chunk being filled (made again when one joins). A value kept before a call
    /// starts is always in what it gets: the change is counted after the value is in its
    /// map, and the layer is made after the count is read.
    pub(super) fn layer() -> [Option<std::sync::Arc<Secrets>>; 2] {
        use std::sync::atomic::Ordering;
        let change = LATER_CHANGES.load(Ordering::Acquire);
        let now = std::time::Instant::now();
        let previous = {
            let stored = LATER_LAYER.read().unwrap_or_else(|e| e.into_inner());
            match stored.as_ref() {
                Some(l) if l.change == change && now < l.until => return [l.layer.clone(), l.recent.clone()],
                Some(l) => Some((l.stable, l.layer.clone())),
                None => None,
            }
        };
        let tokens: Vec<_> = LATER_TOKENS.values().into_iter().filter(|l| l.until > now).collect();
        let proofs = live_proofs(now);
        let current = proofs.iter().map(|l| l.seq / PROOF_CHUNK).max().unwrap_or(0);
        let mut until = now + PROOF_KEPT_FOR;
        for l in &tokens {
            until = until.min(l.until);
        }
        // A chunk goes when its newest proof expires: the layers are made again then.
        let mut chunk_until: Vec<(u64, std::time::Instant)> = Vec::new();
        for l in &proofs {
            match chunk_until.iter_mut().find(|(c, _)| *c == l.seq / PROOF_CHUNK) {
                Some((_, u)) => *u = (*u).max(l.until),
                None => chunk_until.push((l.seq / PROOF_CHUNK, l.until)),
            }
        }
        for (_, u) in chunk_until {
            until = until.min(u);
        }
        let (done, filling): (Vec<_>, Vec<_>) = proofs.into_iter().partition(|l| l.seq / PROOF_CHUNK < current);
        // The layer is made again only when what it holds differs: tokens kept or gone since,
        // or other completed chunks of proofs (their count and their first and last proof).
        let seqs = || done.iter().map(|l| l.seq);
        let stable = StableKey {
            token_changes: TOKEN_CHANGES.load(Ordering::Acquire),
            tokens: tokens.len(),
            proofs: (done.len(), seqs().min().unwrap_or(0), seqs().max().unwrap_or(0)),
        };
        let layer = match previous {
            Some((s, layer)) if s == stable => layer,
            _ => {
                let values: Vec<Value> = tokens.iter().chain(done.iter()).map(|l| l.value.clone()).collect();
                shared_layer(values)
            }
        };
        let recent = shared_layer(filling.iter().map(|l| l.value.clone()).collect());
        let mut stored = LATER_LAYER.write().unwrap_or_else(|e| e.into_inner());
        if stored.as_ref().is_none_or(|s| s.change <= change) {
            *stored = Some(LaterLayer { change, until, stable, layer: layer.clone(), recent: recent.clone(), filling: current });
        }
        [layer, recent]
    }
}

/// A layer every call shares, of `values` (distinct; none in the other layer): `None` when
/// there are none.
fn shared_layer(values: Vec<Value>) -> Option<std::sync::Arc<Secrets>> {
    (!values.is_empty()).then(|| std::sync::Arc::new(Secrets::of_values(values)))
}

/// Keeps `value` masked in every call of the process that starts before `until`, on any
/// thread, besides the current call (in its set already). Bounded ([`MAX_LATER_TOKENS`],
/// [`MAX_LATER_BYTES`]; proofs: see [`PROOF_CHUNK`]): past a bound the least recently kept
/// goes first; expired values are dropped whenever one is kept. Values are wiped when they
/// go (their forms with the last call still using them). Values shorter than
/// [`WHOLE_WORD_BELOW`] or longer than 16 KiB are not kept.
pub(super) fn remember_for_later(map: &LaterMap, value: &str, until: std::time::Instant) {
    let now = std::time::Instant::now();
    if value.len() < WHOLE_WORD_BELOW || value.len() > 16 << 10 || until <= now {
        return;
    }
    if std::ptr::eq(map, &*LATER_PROOFS) {
        return keep_proof(Value::new(value, Kind::Token), until);
    }
    let key = crate::core::state::salted_hash(&[value.as_bytes()]);
    if map.with(&key, |l| l.until >= until).unwrap_or(false) {
        return; // kept already, as long
    }
    map.retain(|l| l.until > now);
    map.insert(key, std::sync::Arc::new(Later { value: Value::new(value, Kind::Token), until, seq: 0 }));
    TOKEN_CHANGES.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    changed();
}

/// A DPoP proof or an assertion sent now, kept as `remember_for_later` keeps a value, but
/// under a key of its own: each is new (a fresh `jti`), so there is nothing to look up and
/// no hash of it to make. Kept in chunks ([`PROOF_CHUNK`]); when a chunk starts, the
/// chunks that are no longer live ([`live_proofs`]) go.
fn keep_proof(value: Value, until: std::time::Instant) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let now = std::time::Instant::now();
    if value.raw.len() < WHOLE_WORD_BELOW || value.raw.len() > 16 << 10 || until <= now {
        return;
    }
    let seq = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seq.to_le_bytes());
    let before = LATER_PROOFS.len();
    LATER_PROOFS.insert(key, std::sync::Arc::new(Later { value: value.clone(), until, seq }));
    let only_added = LATER_PROOFS.len() == before + 1; // nothing evicted (nor kept meanwhile)
    if seq % PROOF_CHUNK == 0 {
        let live: Vec<u64> = live_proofs(now).iter().map(|l| l.seq).collect();
        LATER_PROOFS.retain(|l| live.contains(&l.seq));
        return changed();
    }
    // Most proofs only join the chunk being filled: the layers made at the last change are
    // brought up to date here (a copy of the few proofs of that chunk, and this one), under
    // the lock, when nothing else has changed since they were made; otherwise the next call
    // makes them again.
    let mut stored = LATER_LAYER.write().unwrap_or_else(|e| e.into_inner());
    let previous = LATER_CHANGES.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    if let Some(l) = stored.as_mut().filter(|l| only_added && l.change == previous && l.filling == seq / PROOF_CHUNK) {
        let old = l.recent.as_ref().map_or(&[][..], |r| &r.values[..]);
        let mut recent = Vec::with_capacity(old.len() + 1);
        recent.extend(old.iter().cloned());
        recent.push(value);
        l.recent = shared_layer(recent);
        l.change = previous + 1;
    }
}

/// An access token, until it expires (plus [`EXPIRY_LEEWAY`]): renewed, it may still be
/// accepted — and echoed — until then. See `remember_for_later`.
pub fn remember_token_for_later(value: &str, expires_at: std::time::Instant) {
    remember_for_later(&LATER_TOKENS, value, expires_at + EXPIRY_LEEWAY);
}

/// A DPoP proof or a client assertion, until `until` (see [`PROOF_KEPT_FOR`]; an
/// assertion: its `exp` plus [`EXPIRY_LEEWAY`]). See `keep_proof`.
pub fn remember_proof_for_later(value: &str, until: std::time::Instant) {
    remember_for_later(&LATER_PROOFS, value, until);
}

/// Forgets every value kept for later calls (`dpopkit_token_cache_clear`); calls in flight
/// keep their own copies until they end.
pub fn forget_later() {
    LATER_TOKENS.clear();
    LATER_PROOFS.clear();
    TOKEN_CHANGES.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
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
