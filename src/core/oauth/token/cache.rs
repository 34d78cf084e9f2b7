//! The access token cache: one slot per (AuthToken, key), single flight per slot, failure
//! back-off, and the on-disk store shared with other processes.

use super::*;

/// A cached access token. `Debug` never shows the value.
pub struct AccessToken {
    pub(super) value: Zeroizing<String>,
    /// `DPoP`, or `Bearer` when `allow_bearer` let one through.
    pub token_type: String,
    pub expires_at: Instant,
    pub refresh_at: Instant,
    /// The last moment the token is sent at all, two [`MIN_REFRESH_MARGIN`]s (or the whole
    /// refresh margin, when shorter) before `expires_at`: servers floor `iat` to whole
    /// seconds, so their `exp` can come up to a second before ours, and the request needs
    /// time to reach the server. While a renewal is in flight, other calls keep using the
    /// token until then, and wait for the renewal after.
    pub usable_until: Instant,
    /// base64url(SHA-256(value)), the `ath` claim of every proof sent with it: made once.
    pub(super) ath: std::sync::OnceLock<String>,
    /// The `Authorization` header value it is sent with (`DPoP <token>`, `Bearer <token>`
    /// for a Bearer token): made once, wiped with the token.
    pub(super) authorization: std::sync::OnceLock<Zeroizing<String>>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken").field("token_type", &self.token_type).field("value", &"****").finish()
    }
}

impl AccessToken {
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The `Authorization` header value for this token: `DPoP <token>`, or `Bearer <token>`
    /// for a Bearer token (see [`AccessToken::is_dpop`]).
    pub fn authorization(&self) -> &str {
        self.authorization
            .get_or_init(|| Zeroizing::new(format!("{} {}", if self.is_dpop() { "DPoP" } else { "Bearer" }, self.value.as_str())))
    }

    /// The `ath` claim for this token (RFC 9449 §4.2), hashed once per token.
    pub fn ath(&self) -> &str {
        self.ath.get_or_init(|| crate::core::dpop::proof::ath(&self.value))
    }

    pub fn is_dpop(&self) -> bool {
        self.token_type.eq_ignore_ascii_case("dpop")
    }
}

#[derive(Default)]
pub(super) struct SlotState {
    pub(super) token: Option<Arc<AccessToken>>,
    pub(super) fetching: bool,
    /// Number of completed fetches; a waiter compares it to know its fetch ended.
    pub(super) round: u64,
    /// The last round's failure, until a fetch succeeds.
    pub(super) failure: Option<Failure>,
}

/// A failed token request, shared by the calls that waited for it and, during a short
/// back-off, by the calls that come next.
pub(super) struct Failure {
    pub(super) round: u64,
    pub(super) error: Error,
    pub(super) at: Instant,
    /// Failures in a row; the back-off grows with them up to [`MAX_BACKOFF`].
    pub(super) in_a_row: u32,
}

/// After a failed token request no new one is made for this long (doubling while the
/// failures go on, up to [`MAX_BACKOFF`]): calls keep using a token that is still valid,
/// or get the failure at once instead of asking a failing server again.
pub const BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Failure {
    pub(super) fn backoff(&self) -> Duration {
        BACKOFF.saturating_mul(1 << self.in_a_row.saturating_sub(1).min(4)).min(MAX_BACKOFF)
    }

    pub(super) fn backing_off(&self, now: Instant) -> bool {
        now < self.at + self.backoff()
    }

    /// Whether the next calls may get this failure instead of a request of their own: only
    /// what the server answered, never what depends on one caller's settings (its deadline,
    /// its network path, its trust roots) or a local failure.
    pub(super) fn shared_with_next_calls(&self) -> bool {
        matches!(
            self.error.kind,
            ErrorKind::TokenEndpoint
                | ErrorKind::TokenResponse
                | ErrorKind::TokenNotBound
                | ErrorKind::DpopNonce
                | ErrorKind::DpopProof
                | ErrorKind::Discovery
        )
    }
}

#[derive(Default)]
pub(super) struct Slot {
    pub(super) state: Mutex<SlotState>,
    pub(super) done: Condvar,
}

/// Token slots by (configuration, key). A slot is in use, and never evicted, while a
/// caller holds it: during a fetch and while others wait for it.
pub(super) const MAX_SLOTS: usize = limits::TOKEN_SLOTS;
pub(super) static CACHE: LazyLock<BoundedLru<[u8; 32], Arc<Slot>>> =
    LazyLock::new(|| BoundedLru::new(MAX_SLOTS, usize::MAX, weightless, shared_arc));

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn slot_id(cfg: &AuthConfig, key: &EcKey, assertion_key: Option<&EcKey>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(cfg.fingerprint);
    h.update(key.jkt().as_bytes());
    if cfg.client_auth == ClientAuth::PrivateKeyJwt {
        h.update(assertion_key.unwrap_or(key).jkt().as_bytes());
    }
    h.finalize().into()
}

pub(super) fn slot_for(cfg: &AuthConfig, key: &EcKey, assertion_key: Option<&EcKey>) -> Arc<Slot> {
    CACHE.get_or_insert_with(slot_id(cfg, key, assertion_key), Arc::default)
}

/// The token currently cached for (cfg, key), without fetching one.
pub fn cached(cfg: &AuthConfig, key: &EcKey, assertion_key: Option<&EcKey>) -> Option<Arc<AccessToken>> {
    let slot = CACHE.get(&slot_id(cfg, key, assertion_key))?;
    lock(&slot.state).token.clone()
}

/// Forgets all cached tokens (their memory is wiped when the last user drops them).
/// Parsed AuthTokens by the salted hash of their JSON text ([`AuthConfig::from_json_shared`]),
/// held weakly: the memo shares a parsed AuthToken among the Http objects that use it, and
/// keeps no client secret once the last of them is gone (the AuthToken is wiped then).
pub(super) static PARSED: LazyLock<BoundedLru<[u8; 32], std::sync::Weak<AuthConfig>>> =
    LazyLock::new(|| BoundedLru::new(limits::PARSED_AUTH_TOKENS, usize::MAX, weightless, never_in_use));

pub fn clear_cache() {
    discovery::clear();
    clock::clear();
    PARSED.clear();
    for slot in CACHE.clear() {
        lock(&slot.state).token = None;
    }
}

/// Resets `fetching` even if the fetch panics, so waiters are never stranded.
pub(super) struct FetchGuard<'a> {
    pub(super) slot: &'a Slot,
    pub(super) result: Option<Result<Arc<AccessToken>>>,
    /// A token that is still usable when the fetch fails (one read from the shared cache
    /// inside its early-refresh margin): kept while the back-off runs.
    pub(super) fallback: Option<Arc<AccessToken>>,
}

impl Drop for FetchGuard<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.slot.state);
        st.fetching = false;
        st.round += 1;
        let round = st.round;
        match self.result.take() {
            Some(Ok(t)) => {
                st.token = Some(t);
                st.failure = None;
            }
            failed => {
                let error = match failed {
                    Some(Err(e)) => e,
                    _ => Error::new(ErrorKind::Internal, "internal error while fetching a token"),
                };
                let in_a_row = st.failure.as_ref().map_or(0, |f| f.in_a_row) + 1;
                st.failure = Some(Failure { round, error, at: Instant::now(), in_a_row });
                if st.token.is_none() {
                    st.token = self.fallback.take();
                }
            }
        }
        self.slot.done.notify_all();
    }
}

/// Everything a token fetch needs from the Http object that triggers it.
pub struct FetchContext<'a> {
    pub transport: &'a Transport,
    pub log: Option<&'a SessionLog>,
    /// Signs private_key_jwt assertions; the DPoP key when `None`.
    pub assertion_key: Option<&'a EcKey>,
}

/// Returns a valid token for (cfg, key), fetching one if needed. `stale` is a token the
/// resource server refused as `invalid_token`: it is dropped if it is still the cached one.
///
/// One fetch at a time per token (single flight): the other calls wait for it until their
/// own deadline, and all of them get its result, a failure included. After a failure no new
/// request is made for a short back-off: a token that is still valid is used meanwhile, and
/// a failure the server gave is handed to the next calls as it is.
///
/// With `token_cache_dir`, the fetch goes through the token cache shared with other
/// processes (`fetch_shared`); a `stale` token is removed from there too.
pub fn get_token(cfg: &AuthConfig, key: &EcKey, ctx: &FetchContext<'_>, stale: Option<&Arc<AccessToken>>) -> Result<Arc<AccessToken>> {
    let slot = slot_for(cfg, key, ctx.assertion_key);
    let deadline = ctx.transport.deadline();
    let mut st = lock(&slot.state);
    if let (Some(stale), Some(current)) = (stale, st.token.as_ref()) {
        if Arc::ptr_eq(stale, current) {
            st.token = None;
        }
    }
    // The round of the fetch this call waited for, if it waited.
    let mut waited_for = None;
    let valid = loop {
        let now = Instant::now();
        let valid = st.token.as_ref().filter(|t| now < t.usable_until).cloned();
        let backing_off = st.failure.as_ref().is_some_and(|f| f.backing_off(now));
        match &valid {
            Some(t) if now < t.refresh_at || st.fetching || backing_off => return Ok(t.clone()),
            _ => {}
        }
        if let Some(f) = &st.failure {
            if waited_for.is_some_and(|r| f.round > r) {
                let mut e = f.error.clone();
                if e.kind == ErrorKind::Timeout {
                    e.message.push_str(" (a token request of another call, which this call waited for)");
                }
                return Err(e);
            }
            if !st.fetching && backing_off && f.shared_with_next_calls() {
                let mut e = f.error.clone();
                e.message.push_str(&format!(
                    " (this token request failed {} ms ago; dpopkit asks again after {} ms)",
                    now.saturating_duration_since(f.at).as_millis(),
                    f.backoff().as_millis()
                ));
                return Err(e);
            }
        }
        if !st.fetching {
            break valid;
        }
        waited_for = Some(st.round);
        let left = deadline.remaining();
        if left.is_zero() {
            return Err(deadline.exceeded(" while waiting for another thread's token request"));
        }
        st = slot.done.wait_timeout(st, left).unwrap_or_else(|e| e.into_inner()).0;
    };
    st.fetching = true;
    drop(st);
    let mut guard = FetchGuard { slot: &slot, result: None, fallback: None };
    let (result, from_disk) = fetch_shared(cfg, key, ctx, stale.map(|t| t.value()));
    let result = result.map(Arc::new).map_err(|mut e| {
        if e.kind == ErrorKind::Timeout {
            e.message.push_str(" (requesting an access token)");
        }
        e
    });
    let valid = valid.or_else(|| from_disk.map(Arc::new));
    if result.is_err() {
        guard.fallback = valid.clone();
    }
    guard.result = Some(result.clone());
    drop(guard);
    match (result, valid) {
        // A refresh inside the early-refresh margin failed: the cached token still works.
        (Err(e), Some(t)) if Instant::now() < t.usable_until => {
            if let Some(log) = ctx.log {
                log.note(&format!(
                    "renewing the access token failed ({}); the cached one is valid for {} ms more and is used, \
                     renewal is tried again after the back-off",
                    e.message,
                    t.expires_at.saturating_duration_since(Instant::now()).as_millis()
                ));
            }
            Ok(t)
        }
        (result, _) => result,
    }
}

/// The files of (cfg, key) in the token cache directory `dir` (see [`crate::core::oauth::store`]):
/// the file name and the binding its record must carry are both keyed hashes, under the
/// directory's key, of the whole in-process cache key (settings, client secret and key
/// thumbprints): other credentials get a file of their own, and neither can be checked
/// against a guessed secret without the key ([`token_store::Store::open`]).
pub(super) fn disk_store(
    dir: &std::path::Path,
    cfg: &AuthConfig,
    key: &EcKey,
    assertion_key: Option<&EcKey>,
) -> std::result::Result<token_store::Store, String> {
    let slot = slot_id(cfg, key, assertion_key);
    token_store::Store::open(dir, &[&slot], &[&slot])
}

/// The token of a record, if it is still usable now. A record written more than a minute
/// "in the future" is not used: the wall clock went back, so its times mean nothing.
pub(super) fn token_from_record(r: token_store::Record) -> Option<AccessToken> {
    let (now, now_ms) = (Instant::now(), token_store::unix_ms_now());
    if r.issued_at_ms > now_ms.saturating_add(60_000) {
        return None;
    }
    let at = |ms| token_store::from_unix_ms(ms, now, now_ms);
    let usable_until = at(r.usable_until_ms)?;
    let expires_at = at(r.expires_at_ms)?;
    let refresh_at = at(r.refresh_at_ms).unwrap_or(now);
    Some(AccessToken {
        value: r.access_token,
        token_type: r.token_type,
        expires_at,
        refresh_at,
        usable_until,
        ath: Default::default(),
        authorization: Default::default(),
    })
}

/// The token fetch of a call. Without `token_cache_dir`: [`fetch_token`]. With it:
///
/// 1. a token in the shared file that is not due for renewal (and is not `stale`, the one
///    the resource server refused) is used without asking the server;
/// 2. otherwise the key's lock file is taken (`flock`), waiting while another process
///    fetches, for at most half of what is left of the call's deadline (a stopped process
///    cannot hold the others up: after that they ask the server themselves);
/// 3. under the lock the file is read again — the process that held it has usually just
///    written a fresh token — and a `stale` record is removed;
/// 4. else the token is requested and written to the file (atomically) for the others.
///
/// A directory or file that cannot be used (removed, made writable by others, read-only,
/// full) only costs the sharing: the call goes on with a per-process token and the
/// session log says why. Returns the result and a token from the file that is past its
/// refresh time but still usable, to be used if the request fails.
pub(super) fn fetch_shared(
    cfg: &AuthConfig,
    key: &EcKey,
    ctx: &FetchContext<'_>,
    stale: Option<&str>,
) -> (Result<AccessToken>, Option<AccessToken>) {
    let Some(dir) = cfg.token_cache_dir.as_deref() else { return (fetch_token(cfg, key, ctx), None) };
    let note = |text: String| {
        if let Some(log) = ctx.log {
            log.note(&text);
        }
    };
    let store = match disk_store(dir, cfg, key, ctx.assertion_key) {
        Ok(s) => s,
        Err(why) => {
            note(format!("{why}; the access token is cached in this process only"));
            return (fetch_token(cfg, key, ctx), None);
        }
    };
    let shown = shorten(&store.path().display().to_string());
    // (a token to use now, a token still usable while it is renewed)
    let look = |remove_stale: bool| -> (Option<AccessToken>, Option<AccessToken>) {
        let ignored = |why: &str| note(format!("the token cache file '{shown}' {why}; it is not used and will be replaced"));
        let r = match store.read() {
            token_store::Found::Missing => return (None, None),
            token_store::Found::Ignored(why) => {
                ignored(&why);
                return (None, None);
            }
            token_store::Found::Record(r) => r,
        };
        let type_ok = r.token_type.eq_ignore_ascii_case("dpop") || (cfg.allow_bearer && r.token_type.eq_ignore_ascii_case("bearer"));
        if r.binding != store.binding() {
            ignored("was written for other credentials (the same settings with another client secret)");
        } else if r.jkt != key.jkt() {
            ignored(&format!("holds a token issued for another key (jkt {})", shorten(&r.jkt)));
        } else if !type_ok {
            ignored("holds a token of a type these settings do not accept");
        } else if stale == Some(r.access_token.as_str()) {
            if remove_stale {
                match store.remove() {
                    Ok(()) => note(format!(
                        "the resource server refused the token of the cache file '{shown}' (invalid_token); the file is removed"
                    )),
                    Err(e) => note(format!("cannot remove the refused token's cache file '{shown}': {e}")),
                }
            }
        } else if let Some(t) = token_from_record(r) {
            redact::remember(|s| s.add_token(t.value()));
            redact::remember_token_for_later(t.value(), t.expires_at);
            if Instant::now() < t.refresh_at {
                note(format!(
                    "using the access token of the token cache file '{shown}' (renewed in {} s)",
                    t.refresh_at.saturating_duration_since(Instant::now()).as_secs()
                ));
                return (Some(t), None);
            }
            return (None, Some(t));
        }
        (None, None)
    };
    if let (Some(t), _) = look(false) {
        return (Ok(t), None);
    }
    let give_up = Instant::now() + ctx.transport.deadline().remaining() / 2;
    let mut lock = match store.lock(give_up) {
        token_store::Locking::Held(l) => Some(l),
        token_store::Locking::Busy(waited) => {
            note(format!(
                "another process has held the token cache lock of '{shown}' for {} ms (a slow token request, or a \
                 stopped process); requesting a token without waiting longer",
                waited.as_millis()
            ));
            None
        }
        token_store::Locking::Failed(why) => {
            note(format!("{why}; requesting a token without the cross-process lock"));
            None
        }
    };
    let (fresh, usable) = look(true);
    if let Some(t) = fresh {
        return (Ok(t), None);
    }
    let result = fetch_token(cfg, key, ctx);
    if let Ok(t) = &result {
        share_fetched(&store, key, t, &mut lock, dir, ctx, &shown, &note);
    }
    drop(lock);
    (result, usable)
}

/// Writes the token just fetched to the token cache directory for the other processes,
/// releases the cross-process lock, and prunes the directory now and then.
#[allow(clippy::too_many_arguments)]
fn share_fetched(
    store: &token_store::Store,
    key: &EcKey,
    t: &AccessToken,
    lock: &mut Option<token_store::Lock>,
    dir: &std::path::Path,
    ctx: &FetchContext<'_>,
    shown: &str,
    note: &dyn Fn(String),
) {
    let (now, now_ms) = (Instant::now(), token_store::unix_ms_now());
    let ms = |i| token_store::to_unix_ms(i, now, now_ms);
    let record = token_store::Record {
        binding: store.binding().to_string(),
        jkt: key.jkt().to_string(),
        token_type: t.token_type.clone(),
        access_token: t.value.clone(),
        issued_at_ms: now_ms.min(ms(t.refresh_at)),
        refresh_at_ms: ms(t.refresh_at),
        usable_until_ms: ms(t.usable_until),
        expires_at_ms: ms(t.expires_at),
    };
    if let Err(e) = store.write(&record, lock.is_some()) {
        note(format!("cannot write the token cache file '{shown}' ({e}); the access token is cached in this process only"));
    } else {
        drop(lock.take());
        // Expired records and leftovers go, at most once a minute per directory, in a
        // small part of what is left of the call's time. Reading a few hundred records
        // takes milliseconds; the 5 s cap is for a machine so loaded that a tighter one
        // (1 s was tried) left the work half done.
        let budget = (ctx.transport.deadline().remaining() / 4).min(Duration::from_secs(5));
        if let Some(p) = token_store::prune_now_and_then(dir, store.id(), Instant::now() + budget).filter(|p| p.total() > 0) {
            note(format!(
                "pruned the token cache directory: {} expired and {} unusable records, {} beyond the bound of {}, {} lock \
                 files without a record, {} temporary files of writers that died",
                p.expired,
                p.unusable,
                p.oldest,
                token_store::MAX_RECORDS,
                p.locks,
                p.temporary
            ));
        }
    }
}
