//! Removing secrets from anything that is written down or handed back: logs, error
//! texts, response bodies and headers.

use std::cell::RefCell;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use zeroize::{Zeroize, Zeroizing};

use super::error::{Error, ResponseInfo};

/// Form and JSON member names whose values are credentials.
const SECRET_FIELDS: &[&str] = &[
    "client_secret",
    "access_token",
    "refresh_token",
    "id_token",
    "client_assertion",
    "assertion",
    "password",
    "d",
];

pub const MASK: &str = "****";

/// Overwrites every string in a parsed JSON value (used on documents that held secrets:
/// a JWK's `d`, an AuthToken's `client_secret`, a token response).
pub fn wipe_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => s.zeroize(),
        serde_json::Value::Array(a) => a.iter_mut().for_each(wipe_json),
        serde_json::Value::Object(m) => m.values_mut().for_each(wipe_json),
        _ => {}
    }
}

/// The value of a header as the session log shows it: `****` for a credential (see
/// [`super::headers::is_credential_header`]: `Authorization`, `DPoP`, `Cookie`, `*-Api-Key`,
/// `*Token*`, `Proxy-Authorization`, ...).
pub fn redact_header_value(name: &str, value: &str) -> String {
    if super::headers::is_credential_header(name) { MASK.to_string() } else { value.to_string() }
}

fn is_secret_field(name: &str) -> bool {
    SECRET_FIELDS.contains(&name)
}

/// Secrets shorter than this are masked only where they stand alone (see [`Secrets`]).
pub const WHOLE_WORD_BELOW: usize = 8;

/// The values that must never be written down, each in every form a server could echo it
/// back in. Masking is linear in the text: one substring search per value.
///
/// The rule: a value of [`WHOLE_WORD_BELOW`] bytes or more is masked wherever it occurs.
/// A shorter one (a 3-character test secret) is masked wherever it is not glued to a
/// letter, digit or `_` on a side where it starts or ends with one — as a form or JSON
/// value, in quotes, after a space — so ordinary words that contain it stay readable.
#[derive(Default)]
pub struct Secrets {
    values: Vec<Value>,
}

/// How a value may come back from a server, besides as written.
#[derive(Clone, PartialEq, Eq)]
enum Kind {
    /// Only as written.
    Exact,
    /// Percent- and JSON-encoded too ([`Secrets::add`]).
    Encoded,
    /// Encoded, and in base64 ([`Secrets::add_token`]).
    Token,
    /// Encoded, and inside the Basic credentials of this client id ([`Secrets::add_client_secret`]).
    ClientSecret(Zeroizing<String>),
}

/// One secret. Its other forms are made the first time a text at least as long as the
/// secret is scanned (every form is at least as long as the value itself), so a call whose
/// responses are shorter than its tokens and proofs — most API calls — never pays for them.
/// A clone shares the forms (made once for all clones): the values kept for later calls
/// ([`remember_for_later`]) are made once, not once per call.
#[derive(Clone)]
struct Value {
    raw: Zeroizing<String>,
    kind: Kind,
    forms: std::sync::Arc<std::sync::OnceLock<Vec<Zeroizing<String>>>>,
}

impl Value {
    fn forms(&self) -> &[Zeroizing<String>] {
        self.forms.get_or_init(|| {
            let mut out: Vec<Zeroizing<String>> = Vec::new();
            let mut push = |f: Zeroizing<String>| {
                if !f.is_empty() && f.as_str() != self.raw.as_str() && !out.iter().any(|o| o.as_str() == f.as_str()) {
                    out.push(f);
                }
            };
            let s = self.raw.as_str();
            if self.kind == Kind::Exact {
                return Vec::new();
            }
            for form in [true, false] {
                for lower in [false, true] {
                    push(percent_encode(s, form, lower));
                }
            }
            // JSON as server stacks write it: plain (serde, Jackson), Go's encoding/json (`<>&`
            // as `\u003c`...), Python's json.dumps and PHP (every non-ASCII character as
            // `\u00fc`), in lower- and upper-case hex, each also with `/` as `\/` (PHP).
            for go_html in [false, true] {
                for ascii_only in [false, true] {
                    for upper in [false, true] {
                        let inner = json_escape(s, go_html, ascii_only, upper);
                        if inner.contains('/') {
                            push(Zeroizing::new(inner.replace('/', "\\/")));
                        }
                        push(inner);
                    }
                }
            }
            match &self.kind {
                Kind::Token => {
                    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                        push(Zeroizing::new(engine.encode(s.as_bytes())));
                    }
                }
                Kind::ClientSecret(client_id) => {
                    let mut encoded = Zeroizing::new(String::new());
                    super::form::encode_component(client_id, &mut encoded);
                    encoded.push(':');
                    super::form::encode_component(s, &mut encoded);
                    let raw = Zeroizing::new(format!("{}:{s}", client_id.as_str()));
                    for creds in [encoded, raw] {
                        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                            push(Zeroizing::new(engine.encode(creds.as_bytes())));
                        }
                        push(creds);
                    }
                }
                _ => {}
            }
            out
        })
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} values)", self.values.len())
    }
}

impl Secrets {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Adds `s` as written and as a server would echo it: form-urlencoded (WHATWG) and
    /// percent-encoded (RFC 3986), each with upper- and lower-case hex, and JSON-escaped
    /// (also with `\/`).
    pub fn add(&mut self, s: &str) {
        self.push(s, Kind::Encoded);
    }

    /// A token, an assertion or a proof: [`Secrets::add`], plus its base64 (standard and
    /// URL-safe alphabet; unpadded, which is a prefix of the padded form).
    pub fn add_token(&mut self, s: &str) {
        self.push(s, Kind::Token);
    }

    /// The client secret of `client_id`: [`Secrets::add`], plus the HTTP Basic credentials
    /// (form-encoded, RFC 6749 §2.3.1, what dpopkit sends, and raw) and their base64.
    pub fn add_client_secret(&mut self, client_id: &str, secret: &str) {
        self.push(secret, Kind::ClientSecret(Zeroizing::new(client_id.to_string())));
    }

    /// Adds every value of `other`, sharing the forms it has made (or will make) already.
    pub fn extend(&mut self, other: &Secrets) {
        for v in &other.values {
            if !v.raw.is_empty() && !self.values.iter().any(|o| o.raw == v.raw && o.kind == v.kind) {
                self.values.push(v.clone());
            }
        }
    }

    fn push(&mut self, s: &str, kind: Kind) {
        if !s.is_empty() && !self.values.iter().any(|v| v.raw.as_str() == s && v.kind == kind) {
            self.values.push(Value { raw: Zeroizing::new(s.to_string()), kind, forms: Default::default() });
        }
    }

    /// The byte ranges of `hay` to mask, sorted and merged.
    fn ranges(&self, hay: &[u8]) -> Vec<(usize, usize)> {
        let mut ranges = Vec::new();
        // Every form of a value is at least as long as the value: a text shorter than the
        // value holds none of them, and the forms need not even be made.
        let needles = self
            .values
            .iter()
            .filter(|v| v.raw.len() <= hay.len())
            .flat_map(|v| std::iter::once(&v.raw).chain(v.forms()))
            .filter(|n| n.len() <= hay.len());
        for v in needles {
            let needle = v.as_bytes();
            let first_of_this = ranges.len();
            if needle.len() >= WHOLE_WORD_BELOW {
                // Leftmost non-overlapping occurrences leave no whole occurrence behind.
                ranges.extend(memchr::memmem::find_iter(hay, needle).map(|i| (i, i + needle.len())));
                continue;
            }
            // Short: every occurrence (overlapping too, at most len-1 bytes apart), kept when
            // it stands alone.
            let finder = memchr::memmem::Finder::new(needle);
            let glued_start = is_word_byte(needle[0]);
            let glued_end = is_word_byte(needle[needle.len() - 1]);
            let mut at = 0;
            while let Some(i) = finder.find(&hay[at..]) {
                let (s, e) = (at + i, at + i + needle.len());
                let before = s > 0 && glued_start && is_word_byte(hay[s - 1]);
                let after = e < hay.len() && glued_end && is_word_byte(hay[e]);
                if !before && !after {
                    // Runs of touching occurrences become one range (bounded memory).
                    let len = ranges.len();
                    match ranges.last_mut() {
                        Some(last) if len > first_of_this && s <= last.1 => last.1 = e,
                        _ => ranges.push((s, e)),
                    }
                }
                at = s + 1;
            }
        }
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
        for (s, e) in ranges {
            match merged.last_mut() {
                Some(last) if s < last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    }

    /// `text` with every occurrence of every value replaced by `****`.
    pub fn scrub(&self, text: &str) -> String {
        let ranges = self.ranges(text.as_bytes());
        if ranges.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (s, e) in ranges {
            // Values are valid UTF-8, so matches start and end on character boundaries.
            out.push_str(&text[at..s]);
            out.push_str(MASK);
            at = e;
        }
        out.push_str(&text[at..]);
        out
    }

    /// [`Secrets::scrub`] on bytes (a body that may not be text); `None` when unchanged.
    pub fn scrub_bytes(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let ranges = self.ranges(bytes);
        if ranges.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut at = 0;
        for (s, e) in ranges {
            out.extend_from_slice(&bytes[at..s]);
            out.extend_from_slice(MASK.as_bytes());
            at = e;
        }
        out.extend_from_slice(&bytes[at..]);
        Some(out)
    }

    /// The length of the longest value (in any of its forms): how far past a cut a secret
    /// that starts before it can reach.
    pub fn longest(&self) -> usize {
        // Called only for texts longer than a cut, so making the forms here costs little.
        self.values.iter().flat_map(|v| std::iter::once(&v.raw).chain(v.forms())).map(|f| f.len()).max().unwrap_or(0)
    }

    /// Whether a header *name* holds a secret. HTTP lower-cases names (and logs capitalise
    /// them), so the comparison ignores ASCII case; only values of [`WHOLE_WORD_BELOW`]
    /// bytes or more count (a name is a word: a short secret would hide ordinary names).
    pub fn in_header_name(&self, name: &str) -> bool {
        let name = Zeroizing::new(name.to_ascii_lowercase());
        let forms = self.values.iter().filter(|v| v.raw.len() <= name.len()).flat_map(|v| std::iter::once(&v.raw).chain(v.forms()));
        forms.filter(|v| v.len() >= WHOLE_WORD_BELOW && v.len() <= name.len()).any(|v| {
            let v = Zeroizing::new(v.to_ascii_lowercase());
            memchr::memmem::find(name.as_bytes(), v.as_bytes()).is_some()
        })
    }

    /// Masks the body and every header of a response (names too: see
    /// [`Secrets::in_header_name`]), in place (the old body is wiped).
    pub fn scrub_response(&self, r: &mut ResponseInfo) {
        if self.is_empty() {
            return;
        }
        if let Some(b) = self.scrub_bytes(&r.body) {
            r.body.zeroize();
            r.body = b;
        }
        for (k, _) in r.headers.iter_mut() {
            if self.in_header_name(k) {
                k.zeroize();
                *k = MASK.to_string();
            }
        }
        for (_, v) in r.headers.iter_mut() {
            if !self.ranges(v.as_bytes()).is_empty() {
                let new = self.scrub(v);
                v.zeroize();
                *v = new;
            }
        }
    }

    /// Masks an error's text and the response it carries.
    pub fn scrub_error(&self, e: &mut Error) {
        if self.is_empty() {
            return;
        }
        e.message = self.scrub(&e.message);
        if let Some(r) = e.response.as_deref_mut() {
            self.scrub_response(r);
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The inside of a JSON string holding `s`: `"` `\\` and control characters escaped as
/// serde_json does; with `go_html` also `<`, `>`, `&` as `\u003c`...; with `ascii_only`
/// every non-ASCII character as `\uXXXX` (UTF-16, astral ones as a surrogate pair);
/// `upper` for upper-case hex in `\u` escapes.
fn json_escape(s: &str, go_html: bool, ascii_only: bool, upper: bool) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(s.len() + 8));
    let hex: &[u8; 16] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    let unit = |out: &mut String, u: u16| {
        out.push_str("\\u");
        for shift in [12, 8, 4, 0] {
            out.push(hex[usize::from((u >> shift) & 15)] as char);
        }
    };
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => unit(&mut out, c as u16),
            '<' | '>' | '&' if go_html => unit(&mut out, c as u16),
            c if ascii_only && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    unit(&mut out, *u);
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn percent_encode(s: &str, form: bool, lower: bool) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(s.len() * 3));
    let hex: &[u8; 16] = if lower { b"0123456789abcdef" } else { b"0123456789ABCDEF" };
    for b in s.bytes() {
        let safe = b.is_ascii_alphanumeric() || if form { b"*-._".contains(&b) } else { b"-._~".contains(&b) };
        if safe {
            out.push(b as char);
        } else if form && b == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(hex[(b >> 4) as usize] as char);
            out.push(hex[(b & 15) as usize] as char);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The secrets of the call running on this thread.
//
// A call (one `HttpClient::request` or `send`, with its redirects, retries and token fetch)
// runs on the caller's thread. Everything it sends as a credential — the client secret,
// the Basic credentials, an assertion, every DPoP proof, the access token — is remembered
// here for the length of the call, so that whatever a server echoes back is masked in the
// session log, in error texts and in the response handed back. The set is wiped when the
// outermost scope ends. It starts with the proofs and tokens of earlier calls that a
// server could still accept (see "Credentials of earlier calls" below).

struct CallState {
    depth: u32,
    secrets: Secrets,
}

thread_local! {
    // Never destroyed (`ManuallyDrop`: no destructor is registered), so a call made while
    // the thread ends — from another thread-local's destructor, after this one would have
    // been torn down — still has its secret set. Nothing leaks: the set is emptied (and
    // its allocation freed) when each call's outermost scope ends.
    static CALL: std::mem::ManuallyDrop<RefCell<CallState>> =
        const { std::mem::ManuallyDrop::new(RefCell::new(CallState { depth: 0, secrets: Secrets { values: Vec::new() } })) };
}

/// Keeps the call's secret set alive; nested scopes share the outermost one.
#[must_use]
pub struct CallScope {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Starts (or joins) the call's secret set. The outermost scope starts it with the values
/// earlier calls of the process left for later ([`remember_for_later`]), so that a server
/// or a cache echoing an earlier request gets masked too.
pub fn call_scope() -> CallScope {
    let outermost = CALL.with(|c| {
        let mut c = c.borrow_mut();
        c.depth += 1;
        c.depth == 1
    });
    if outermost {
        let later = Later::live();
        if !later.is_empty() {
            CALL.with(|c| c.borrow_mut().secrets.values.extend(later));
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
                c.secrets = Secrets::default(); // the values are Zeroizing: wiped on drop
            }
        });
    }
}

/// Adds to the secrets of the current call (nothing outside a call).
pub fn remember(f: impl FnOnce(&mut Secrets)) {
    let _ = CALL.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if c.depth > 0 {
                f(&mut c.secrets);
            }
        }
    });
}

/// Remembers the credentials of outgoing request headers: the credential of
/// `Authorization` / `Proxy-Authorization` (after the scheme), the `DPoP` proof, and the
/// value of every other header whose name says it is a credential (`Cookie`, `X-Api-Key`,
/// `X-Auth-Token`, ... see [`super::headers::is_credential_header`]), so that a server
/// echoing them back is masked in the log, in error texts and in returned bodies.
pub fn remember_request_headers(headers: &[(String, String)]) {
    remember(|s| {
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("proxy-authorization") {
                s.add_token(value.split_once(' ').map_or(value.as_str(), |(_, c)| c.trim()));
            } else if name.eq_ignore_ascii_case("dpop") {
                s.add_token(value);
                remember_proof_for_later(value, Later::proof_until());
            } else if super::headers::is_credential_header(name) {
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
pub const MAX_LATER_TOKENS: usize = 16;
/// DPoP proofs and client assertions kept for later: the most recent this many. Every
/// text a call masks is searched for each kept value, so the bound is also what the
/// masking of later calls costs at most (a few more substring searches per text).
pub const MAX_LATER_PROOFS: usize = 32;
/// Bytes of kept values, per map (the forms a value is echoed in come on top, bounded by
/// a small multiple of it).
pub const MAX_LATER_BYTES: usize = 64 << 10;
/// How long a DPoP proof is kept after it is sent: the longest `iat` window servers use
/// (5 minutes), plus a minute for their clock leeway. A proof dated on a server's clock
/// ([`super::clock`]) is accepted by that server for the same time from its sending.
pub const PROOF_KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(6 * 60);
/// What is added to an access token's or an assertion's own expiry: servers' clock leeway.
pub const EXPIRY_LEEWAY: std::time::Duration = std::time::Duration::from_secs(60);

struct Later {
    value: Value,
    until: std::time::Instant,
}

type LaterMap = super::state::BoundedLru<[u8; 32], std::sync::Arc<Later>>;

fn later_weight(_: &[u8; 32], v: &std::sync::Arc<Later>) -> usize {
    v.value.raw.len()
}

/// Tokens and proofs apart, so that a burst of proofs never pushes out a valid token.
static LATER_TOKENS: std::sync::LazyLock<LaterMap> =
    std::sync::LazyLock::new(|| LaterMap::new(MAX_LATER_TOKENS, MAX_LATER_BYTES, later_weight, super::state::never_in_use));
static LATER_PROOFS: std::sync::LazyLock<LaterMap> =
    std::sync::LazyLock::new(|| LaterMap::new(MAX_LATER_PROOFS, MAX_LATER_BYTES, later_weight, super::state::never_in_use));

impl Later {
    fn proof_until() -> std::time::Instant {
        std::time::Instant::now() + PROOF_KEPT_FOR
    }

    /// The values not yet expired, for a new call's secret set (clones that share forms).
    fn live() -> Vec<Value> {
        let now = std::time::Instant::now();
        let mut out = Vec::new();
        for map in [&*LATER_TOKENS, &*LATER_PROOFS] {
            if map.is_empty() {
                continue;
            }
            out.extend(map.values().into_iter().filter(|l| l.until > now).map(|l| l.value.clone()));
        }
        out
    }
}

/// Keeps `value` masked in every call of the process that starts before `until`, on any
/// thread, besides the current call (in its set already). Bounded ([`MAX_LATER_TOKENS`],
/// [`MAX_LATER_PROOFS`], [`MAX_LATER_BYTES`]): past a bound the least recently kept goes
/// first; expired values are dropped whenever one is kept. Values are wiped when they go
/// (their forms with the last call still using them). Values shorter than
/// [`WHOLE_WORD_BELOW`] or longer than 16 KiB are not kept.
fn remember_for_later(map: &LaterMap, value: &str, until: std::time::Instant) {
    let now = std::time::Instant::now();
    if value.len() < WHOLE_WORD_BELOW || value.len() > 16 << 10 || until <= now {
        return;
    }
    let key = super::state::salted_hash(&[value.as_bytes()]);
    if map.with(&key, |l| l.until >= until).unwrap_or(false) {
        return; // kept already, as long
    }
    map.retain(|l| l.until > now);
    let value = Value { raw: Zeroizing::new(value.to_string()), kind: Kind::Token, forms: Default::default() };
    map.insert(key, std::sync::Arc::new(Later { value, until }));
}

/// An access token, until it expires (plus [`EXPIRY_LEEWAY`]): renewed, it may still be
/// accepted — and echoed — until then. See [`remember_for_later`].
pub fn remember_token_for_later(value: &str, expires_at: std::time::Instant) {
    remember_for_later(&LATER_TOKENS, value, expires_at + EXPIRY_LEEWAY);
}

/// A DPoP proof or a client assertion, until `until` (see [`PROOF_KEPT_FOR`]; an
/// assertion: its `exp` plus [`EXPIRY_LEEWAY`]). See [`remember_for_later`].
pub fn remember_proof_for_later(value: &str, until: std::time::Instant) {
    remember_for_later(&LATER_PROOFS, value, until);
}

/// Forgets every value kept for later calls (`dpopkit_token_cache_clear`); calls in flight
/// keep their own copies until they end.
pub fn forget_later() {
    LATER_TOKENS.clear();
    LATER_PROOFS.clear();
}

/// How many values are kept for later calls (tokens, proofs): for tests.
pub fn later_count() -> (usize, usize) {
    (LATER_TOKENS.len(), LATER_PROOFS.len())
}

/// Runs `f` with the secrets of the current call (an empty set outside a call).
pub fn with_call<R>(f: impl FnOnce(&Secrets) -> R) -> R {
    let mut f = Some(f);
    let done = CALL.try_with(|c| match c.try_borrow() {
        Ok(c) => f.take().map(|f| f(&c.secrets)),
        Err(_) => None,
    });
    if let Ok(Some(r)) = done {
        return r;
    }
    let empty = Secrets::default();
    match f {
        Some(f) => f(&empty),
        None => unreachable!("with_call ran its closure but returned nothing"),
    }
}

/// Masks the call's secrets in an error (text and response).
pub fn scrub_error_of_call(mut e: Error) -> Error {
    with_call(|s| s.scrub_error(&mut e));
    e
}

/// Replaces every occurrence of each secret, in all its echoable forms (see [`Secrets`]),
/// and of every secret of the current call, with `****`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut set = Secrets::default();
    for s in secrets {
        set.add(s);
    }
    with_call(|call| set.extend(call));
    set.scrub(text)
}

/// The values of secret-named members (`access_token`, `refresh_token`, ...) in a body, as
/// found (JSON-quoted or form-encoded) and decoded: for a response whose secrets are not
/// known yet (a token response that is refused).
pub fn secret_field_values(body: &[u8]) -> Vec<Zeroizing<String>> {
    let text = String::from_utf8_lossy(body);
    let mut out: Vec<Zeroizing<String>> = Vec::new();
    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&text) {
        collect_json_secrets(&v, &mut out);
        wipe_json(&mut v);
    }
    for (s, e) in field_value_ranges(&text) {
        let raw = &text[s..e];
        if let Some(inner) = raw.strip_prefix('"') {
            let inner = inner.strip_suffix('"').unwrap_or(inner);
            out.push(Zeroizing::new(inner.to_string()));
            if let Ok(decoded) = serde_json::from_str::<String>(&format!("\"{inner}\"")) {
                out.push(Zeroizing::new(decoded));
            }
        } else {
            out.push(Zeroizing::new(raw.to_string()));
            out.push(Zeroizing::new(super::form::decode(raw)));
        }
    }
    out.retain(|v| !v.is_empty() && v.as_str() != "null");
    out
}

fn collect_json_secrets(v: &serde_json::Value, out: &mut Vec<Zeroizing<String>>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m {
                match val {
                    serde_json::Value::String(s) if is_secret_field(k) => out.push(Zeroizing::new(s.clone())),
                    _ => collect_json_secrets(val, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_json_secrets(x, out)),
        _ => {}
    }
}

/// A printable, redacted form of a body: JSON and form bodies have their secret members
/// masked; binary bodies are summarised; long bodies are cut at `max` bytes. The body is
/// cut to `max` bytes *before* it is looked at, and every step is linear in that length.
pub fn redact_body(content_type: &str, body: &[u8], max: usize) -> String {
    redact_body_of(content_type, body, max, body.len())
}

/// [`redact_body`] of a body that may already be a part (or a masked copy) of a longer one
/// of `total` bytes: what the cut says ("... (total bytes in all)").
pub fn redact_body_of(content_type: &str, body: &[u8], max: usize, total: usize) -> String {
    // A whole JSON document of reasonable size is parsed before it is cut (parsing is
    // linear), so member names the server wrote with escapes (`"\u0061ccess_token"`) are
    // still recognised; past the cut, only the text rules below apply.
    if body.len() > max && total == body.len() && body.len() <= MAX_STRUCTURED_BODY {
        let looks_json = content_type.to_ascii_lowercase().contains("json")
            || body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| matches!(b, b'{' | b'['));
        if let Some(mut v) = looks_json.then(|| serde_json::from_slice::<serde_json::Value>(body).ok()).flatten() {
            redact_json(&mut v);
            let text = Zeroizing::new(v.to_string());
            wipe_json(&mut v);
            let redacted = redact_form_like(&text[..floor_char_boundary(&text, max.saturating_add(256))]);
            let end = floor_char_boundary(&redacted, max);
            return format!("{}... ({total} bytes in all)", &redacted[..end]);
        }
    }
    let head = &body[..body.len().min(max)];
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // Cut inside a character: keep the complete ones.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
        Err(_) => return format!("({total} bytes of binary data)"),
    };
    let ct = content_type.to_ascii_lowercase();
    let trimmed = text.trim_start();
    let structured = if ct.contains("json") || trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str::<serde_json::Value>(text).ok().map(|mut v| {
            redact_json(&mut v);
            v.to_string()
        })
    } else if ct.contains("x-www-form-urlencoded") || looks_like_form(text) {
        Some(redact_form(text))
    } else {
        None
    };
    // Whatever the structure said, also mask `name=value` / `"name": value` anywhere
    // (HTML pages and malformed JSON echo tokens too).
    let redacted = redact_form_like(structured.as_deref().unwrap_or(text));
    if body.len() > max || total > body.len() || redacted.len() > max {
        let mut end = max.min(redacted.len());
        while !redacted.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({total} bytes in all)", &redacted[..end])
    } else {
        redacted
    }
}

/// Largest JSON body parsed whole before it is cut for the log ([`redact_body_of`]).
pub const MAX_STRUCTURED_BODY: usize = 4 << 20;

fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut end = at.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if is_secret_field(k) && !val.is_null() {
                    *val = serde_json::Value::String(MASK.into());
                } else {
                    redact_json(val);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_json),
        _ => {}
    }
}

fn looks_like_form(text: &str) -> bool {
    !text.contains(char::is_whitespace) && text.contains('=')
}

fn redact_form(text: &str) -> String {
    text.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_field(&super::form::decode(k)) => format!("{k}={MASK}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The next position at or after `from` where `pred` holds (or the end), remembering the
/// last answer: asked with positions that only grow, the scans never overlap, so all the
/// questions together cost one pass over the text.
struct NextScan<P: Fn(u8) -> bool> {
    pred: P,
    from: usize,
    found: usize,
}

impl<P: Fn(u8) -> bool> NextScan<P> {
    fn new(pred: P) -> Self {
        NextScan { pred, from: 1, found: 0 } // empty: from > found
    }

    fn next(&mut self, bytes: &[u8], at: usize) -> usize {
        if !(self.from <= at && at <= self.found) {
            self.from = at;
            self.found = bytes[at.min(bytes.len())..].iter().position(|b| (self.pred)(*b)).map_or(bytes.len(), |i| at + i);
        }
        self.found
    }
}

/// Where the values of `"secret_name": value` and `secret_name=value` are, in one pass:
/// the names are found by substring search (each a few bytes, found overlapping), sorted,
/// and their values measured with [`NextScan`]s, so a body made of nothing but
/// `password=password=...` costs the same as any other body of its length.
fn field_value_ranges(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut name_ends: Vec<usize> = Vec::new();
    for field in SECRET_FIELDS.iter().filter(|f| f.len() > 1) {
        // `name=` cannot overlap itself; `"name"` only on its quote (`"name"name"`).
        let eq = format!("{field}=");
        name_ends.extend(memchr::memmem::find_iter(bytes, eq.as_bytes()).map(|i| i + eq.len()));
        let quoted = format!("\"{field}\"");
        let finder = memchr::memmem::Finder::new(quoted.as_bytes());
        let mut at = 0;
        while let Some(i) = finder.find(&bytes[at..]) {
            name_ends.push(at + i + quoted.len());
            at += i + quoted.len() - 1;
        }
    }
    name_ends.sort_unstable();
    name_ends.dedup();
    let mut quote = NextScan::new(|b| b == b'"');
    let mut delim = NextScan::new(|b| matches!(b, b'&' | b',' | b'}' | b' ' | b'\n' | b'\r'));
    let mut ranges = Vec::new();
    for end in name_ends {
        // Skip `:` and white space after the name. Names end in `"` or `=`, never inside
        // such a run, so the runs skipped never overlap.
        let rest = &text[end..];
        let skip = rest.len() - rest.trim_start_matches(|c: char| c == ':' || c.is_whitespace()).len();
        let start = end + skip;
        let stop = if bytes.get(start) == Some(&b'"') {
            let q = quote.next(bytes, start + 1);
            (q + 1).min(bytes.len())
        } else {
            delim.next(bytes, start)
        };
        if stop > start {
            ranges.push((start, stop));
        }
    }
    ranges
}

/// For text that is neither JSON nor a form (malformed JSON, HTML): mask anything that
/// looks like `"secret_name": "value"` or `secret_name=value`. The values are found in the
/// original text first and masked together, so masking one can never hide another's name.
fn redact_form_like(text: &str) -> String {
    let ranges = field_value_ranges(text);
    if ranges.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in ranges {
        if end <= at {
            continue; // inside a range already masked
        }
        if start >= at {
            out.push_str(&text[at..start]);
            out.push_str(MASK);
        }
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_and_text_bodies_are_masked() {
        let j = redact_body("application/json", br#"{"access_token":"abc.def","token_type":"DPoP","n":{"refresh_token":"r"}}"#, 1000);
        assert!(!j.contains("abc.def") && !j.contains("\"r\"") && j.contains("DPoP"), "{j}");
        let f = redact_body("application/x-www-form-urlencoded", b"client_secret=s3cr3t&client_id=m2m&scope=api", 1000);
        assert_eq!(f, "client_secret=****&client_id=m2m&scope=api");
        let t = redact_body("text/html", br#"<p>{"access_token": "zzzz9999", x}</p>"#, 1000);
        assert!(!t.contains("zzzz9999"), "{t}");
        let t = redact_body("", b"<p>access_token=yyyy8888</p>", 1000);
        assert!(!t.contains("yyyy8888"), "{t}");
        let f = redact_body("", "access_token=x&".repeat(100_000).as_bytes(), usize::MAX);
        assert!(!f.contains("=x") && f.len() > 1_000_000, "linear and complete");
        let o = redact_body("", br#"{"note":"client_secret=","access_token":"SECRETXY"},"#, 1000);
        assert!(!o.contains("SECRETXY"), "one mask must not hide the next name: {o}");
        let b = redact_body("", &[0xff, 0xfe, 0], 1000);
        assert!(b.contains("3 bytes"));
    }

    /// Runs `f` on a thread and fails if it has not finished after `secs`: a hang guard
    /// only (the inputs below take well under a second in a debug build when the work is
    /// linear, and hours when it is quadratic), not a timing assertion.
    fn finishes_within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(secs)).expect("still running: super-linear redaction")
    }

    /// 4 MiB: linear work takes about a second here (unoptimised), quadratic work some
    /// 10^11 steps — hours. (The session log cuts bodies to 64 KiB before this runs; the
    /// scan itself must be linear all the same.)
    const BIG: usize = 4 << 20;

    fn runs(unit: &str) -> String {
        unit.repeat(BIG / unit.len())
    }

    #[test]
    fn field_redaction_is_linear_on_megabytes_of_name_runs() {
        // Each `name=` starts a value that, scanned on its own, reaches the end of the text.
        for unit in ["password=", "access_token=password=", "\"d\"assertion=x"] {
            let text = runs(unit);
            let out = finishes_within(300, move || redact_form_like(&text));
            assert!(out.len() < 64 && out.contains(MASK), "{unit}: one value from the first name to the end: {out}");
        }
        // Quoted values end at the next quote, which opens the next name: all masked.
        let text = runs("\"client_secret\":\"password=");
        let out = finishes_within(300, move || redact_form_like(&text));
        assert!(!out.contains("password=") && out.matches(MASK).count() == BIG / 26, "{}", &out[..100]);
        // Values that do end: every one masked, none left.
        let text = runs("password=x&");
        let out = finishes_within(300, move || redact_form_like(&text));
        assert!(!out.contains("=x") && out.matches(MASK).count() == BIG / 11, "all masked");
    }

    #[test]
    fn a_body_is_cut_before_it_is_scanned() {
        let body = runs("password=");
        let n = body.len();
        let out = finishes_within(300, move || redact_body("text/plain", body.as_bytes(), 64 * 1024));
        assert!(out.len() < 64 * 1024 + 64 && out.ends_with(&format!("({n} bytes in all)")), "{}", &out[out.len() - 40..]);
        let body = runs("x");
        let out = redact_body("", body.as_bytes(), 10);
        assert_eq!(out, format!("xxxxxxxxxx... ({BIG} bytes in all)"));
        // Cut inside a character: the complete ones are kept, it is still text.
        let out = redact_body("", "ééé".as_bytes(), 3);
        assert_eq!(out, "é... (6 bytes in all)");
        // Masks make text longer; the result is cut to `max` again.
        let out = redact_body("", "password=x&".repeat(100).as_bytes(), 50);
        assert!(out.starts_with("password=****&password=****") && out.len() < 50 + 30, "{out}");
    }

    #[test]
    fn secret_masking_is_linear_and_complete() {
        // A periodic long secret and a short one found (glued, so kept) at every position.
        let mut s = Secrets::new();
        s.add("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        s.add("aaa");
        let body = runs("a").into_bytes();
        let out = finishes_within(300, move || s.scrub_bytes(&body)).expect("changed");
        assert_eq!(out, MASK.repeat(BIG / 64).into_bytes());
        // A short secret that stands alone at every other position: one mask per run.
        let mut s = Secrets::new();
        s.add("-");
        let body = runs("-").into_bytes();
        assert_eq!(finishes_within(300, move || s.scrub_bytes(&body)).expect("changed"), MASK.as_bytes());
        let mut s = Secrets::new();
        s.add("Tok3n-value-aaaaaaaa");
        let body = runs("Tok3n-value-aaaaaaa").into_bytes(); // one short of a match, everywhere
        assert!(finishes_within(300, move || s.scrub_bytes(&body)).is_none());
    }

    #[test]
    fn secrets_in_every_echoed_form() {
        let mut s = Secrets::new();
        s.add_client_secret("m2m.dpop", "a b&c/é\"x");
        let text = "raw a b&c/é\"x form a+b%26c%2F%C3%A9%22x lower a+b%26c%2f%c3%a9%22x \
                    pct a%20b%26c%2F%C3%A9%22x json a b&c\\/é\\\"x basic bTJtLmRwb3A6YStiJTI2YyUyRiVDMyVBOSUyMng";
        let out = s.scrub(text);
        assert_eq!(out.matches(MASK).count(), 6, "{out}");
        for word in ["raw", "form", "lower", "pct", "json", "basic"] {
            assert!(out.contains(&format!("{word} ****")), "{word}: {out}");
        }
    }

    #[test]
    fn short_secrets_are_masked_where_they_stand_alone() {
        let mut s = Secrets::new();
        s.add("x7q");
        assert_eq!(s.scrub("client_secret=x7q&a=1 'x7q' \"x7q\" x7q."), "client_secret=****&a=1 '****' \"****\" ****.");
        assert_eq!(s.scrub("ax7q x7qb x7q_ _x7q"), "ax7q x7qb x7q_ _x7q", "glued to a word: left alone");
        let mut s = Secrets::new();
        s.add("secret");
        assert_eq!(s.scrub("client_secret=secret"), "client_secret=****", "the field name stays");
        let mut s = Secrets::new();
        s.add("-!-");
        assert_eq!(s.scrub("a-!-b"), "a****b", "no letter at its edges: masked anywhere");
    }

    #[test]
    fn the_call_scope_collects_and_forgets() {
        remember(|s| s.add("outside-any-call"));
        assert_eq!(scrub("outside-any-call", &[]), "outside-any-call", "nothing is kept outside a call");
        {
            let _outer = call_scope();
            remember_request_headers(&[("Authorization".into(), "DPoP the-access-token".into()), ("DPoP".into(), "a.proof.jwt".into())]);
            {
                let _inner = call_scope();
                remember(|s| s.add("inner-secret"));
            }
            assert_eq!(scrub("the-access-token a.proof.jwt inner-secret", &[]), "**** **** ****");
        }
        assert_eq!(scrub("the-access-token", &[]), "the-access-token", "forgotten when the call ends");
    }

    #[test]
    fn values_of_earlier_calls_are_masked_later_bounded_and_expire() {
        use std::time::{Duration, Instant};
        let token = "later-token-value-0123456789";
        let proof = "eyJhbGciOiJFUzI1NiJ9.eyJsYXRlciI6MX0.later-proof-signature";
        let key = super::super::state::salted_hash(&[token.as_bytes()]);
        {
            let _call = call_scope();
            remember_request_headers(&[("DPoP".into(), proof.into())]);
            remember(|s| s.add_token(token));
            remember_token_for_later(token, Instant::now() + Duration::from_secs(3600));
        }
        assert_eq!(scrub(&format!("{token} {proof}"), &[]), format!("{token} {proof}"), "nothing is masked outside a call");
        // A later call, on another thread: both masked, the token in its other forms too.
        let text = format!("{token} {proof} {}", STANDARD_NO_PAD.encode(token));
        let masked = std::thread::spawn(move || {
            let _call = call_scope();
            scrub(&text, &[])
        })
        .join()
        .unwrap();
        assert_eq!(masked, "**** **** ****");
        // The forms were made in the kept value, once, for every later call.
        assert_eq!(LATER_TOKENS.with(&key, |l| l.value.forms.get().is_some()), Some(true));
        // Expired values are not used, and are dropped when the next one is kept.
        let brief = "brief-token-value-0123456789";
        remember_for_later(&LATER_TOKENS, brief, Instant::now() + Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(60));
        {
            let _call = call_scope();
            assert_eq!(scrub(brief, &[]), brief, "an expired value is not masked");
        }
        remember_for_later(&LATER_TOKENS, "next-token-value-0123456789", Instant::now() + Duration::from_secs(60));
        assert!(LATER_TOKENS.values().iter().all(|l| l.value.raw.as_str() != brief), "expired: dropped");
        remember_for_later(&LATER_TOKENS, "past-token-value-0123456789", Instant::now());
        assert!(LATER_TOKENS.values().iter().all(|l| l.value.raw.as_str() != "past-token-value-0123456789"));
        // Bounded: the most recent proofs are kept, the oldest go.
        for i in 0..MAX_LATER_PROOFS + 10 {
            remember_proof_for_later(&format!("eyJ0.eyJ{i}.bounded-proof-{i:04}"), Instant::now() + PROOF_KEPT_FOR);
        }
        let kept: Vec<String> = LATER_PROOFS.values().iter().map(|l| l.value.raw.to_string()).collect();
        assert!(kept.len() <= MAX_LATER_PROOFS && LATER_PROOFS.bytes() <= MAX_LATER_BYTES, "{}", kept.len());
        assert!(kept.iter().any(|k| k.ends_with(&format!("{:04}", MAX_LATER_PROOFS + 9))) && !kept.iter().any(|k| k.ends_with("-0000")));
        // Too long (or too short) values are not kept.
        remember_token_for_later(&"x".repeat(17 << 10), Instant::now() + Duration::from_secs(60));
        assert!(LATER_TOKENS.values().iter().all(|l| l.value.raw.len() <= 16 << 10));
        // dpopkit_token_cache_clear forgets them all.
        forget_later();
        assert_eq!(later_count(), (0, 0));
        let _call = call_scope();
        assert_eq!(scrub(token, &[]), token);
    }

    #[test]
    fn secret_values_of_a_refused_token_response() {
        let v = secret_field_values(br#"{"access_token":"a\/b+c","token_type":"Bearer","n":{"refresh_token":"rrrr"}}"#);
        let v: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
        assert!(v.contains(&"a/b+c") && v.contains(&"a\\/b+c") && v.contains(&"rrrr"), "{v:?}");
        let v = secret_field_values(b"access_token=a%2Fb+c&token_type=bearer");
        let v: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
        assert!(v.contains(&"a%2Fb+c") && v.contains(&"a/b c"), "{v:?}");
    }

    #[test]
    fn headers_and_scrub() {
        assert_eq!(redact_header_value("Authorization", "DPoP x"), MASK);
        assert_eq!(redact_header_value("dpop", "eyJ"), MASK);
        assert_eq!(redact_header_value("Content-Type", "a/b"), "a/b");
        assert_eq!(scrub("a secret-value b", &["secret-value", ""]), "a **** b");
        assert_eq!(scrub("client_secret=secret&x=secret", &["secret"]), "client_secret=****&x=****");
        assert_eq!(scrub("aaaa", &["aa"]), "aaaa", "too short to scrub");
        assert_eq!(scrub("xsecretsecret", &["secret-value"]), "xsecretsecret");
        assert_eq!(scrub("x secret-valuesecret-value", &["secret-value"]), "x ********");
    }
}
