//! Removing secrets from anything that is written down or handed back: logs, error
//! texts, response bodies and headers.

use std::cell::RefCell;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use zeroize::{Zeroize, Zeroizing};

use super::response::ResponseInfo;
pub use super::wipe::wipe_json; // path kept for capi/ffi; see ARCHITECTURE.md

/// Form and JSON member names whose values are credentials.
const SECRET_FIELDS: &[&str] =
    &["client_secret", "access_token", "refresh_token", "id_token", "client_assertion", "assertion", "password", "d"];

mod matcher;
use matcher::*;
mod view;
use view::*;
mod scope;
pub use scope::*;
mod body;
pub use body::*;

pub const MASK: &str = "****";

/// Whether a header with this name carries a credential, so its value is shown as `****`
/// in the session log and masked where a server echoes it back: `Authorization`, `DPoP`,
/// `Proxy-Authorization`, `Cookie`, `Set-Cookie`, `*-Api-Key` (and `Api-Key`, `ApiKey`),
/// and any name containing `token`, `secret` or `password`.
pub fn is_credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(n.as_str(), "authorization" | "proxy-authorization" | "dpop" | "cookie" | "set-cookie" | "api-key" | "apikey")
        || n.ends_with("-api-key")
        || n.ends_with("-apikey")
        || n.contains("token")
        || n.contains("secret")
        || n.contains("password")
}
/// The value of a header as the session log shows it: `****` for a credential (see
/// [`is_credential_header`]: `Authorization`, `DPoP`, `Cookie`, `*-Api-Key`,
/// `*Token*`, `Proxy-Authorization`, ...).
pub fn redact_header_value(name: &str, value: &str) -> String {
    if is_credential_header(name) { MASK.to_string() } else { value.to_string() }
}

fn is_secret_field(name: &str) -> bool {
    SECRET_FIELDS.contains(&name)
}

/// Secrets shorter than this are masked only where they stand alone (see [`Secrets`]).
pub const WHOLE_WORD_BELOW: usize = 8;

/// The values that must never be written down, each in every form a server could echo it
/// back in.
///
/// The rule: a value of [`WHOLE_WORD_BELOW`] bytes or more is masked wherever it occurs.
/// A shorter one (a 3-character test secret) is masked wherever it is not glued to a
/// letter, digit or `_` on a side where it starts or ends with one — as a form or JSON
/// value, in quotes, after a space — so ordinary words that contain it stay readable.
///
/// Masking is linear in the text plus the secrets: a text that is short next to the
/// secrets is searched value by value (memchr's memmem), a long one in a single pass of an
/// Aho-Corasick automaton of every form of every value (see `Matcher`). Besides the
/// forms made for each value, the text is also searched through a *decoded view* (see
/// `View`): `\uXXXX` and JSON escapes, HTML/XML character references and `%XX` decoded,
/// in any mix per character, with a map back to the original bytes.
pub struct Secrets {
    values: Vec<Value>,
    /// The automaton for long texts, made on first use and forgotten when a value is added.
    matcher: std::sync::OnceLock<Option<Matcher>>,
    /// The length of the shortest needle of this set's values ([`Value::shortest_needle`];
    /// not of its layers; `usize::MAX` when it has none), kept up to date as values are
    /// added: a text shorter than it holds none of this set's values, which is most texts
    /// for the layer of earlier calls' tokens and proofs.
    shortest: usize,
    /// Values shared with other sets, each searched as a layer of its own, with its own
    /// automaton (made once for every set that shares the layer): the credentials of
    /// earlier calls that every call starts with (see `call_scope`): `[0]` the tokens and
    /// the completed chunks of proofs, `[1]` the proofs of the chunk being filled. A text
    /// is masked for the union of this set's values and the layers'.
    base: [Option<std::sync::Arc<Secrets>>; 2],
}

/// How a value may come back from a server, besides as written.
#[derive(Clone, PartialEq, Eq)]
enum Kind {
    /// Percent- and JSON-encoded too ([`Secrets::add`]).
    Encoded,
    /// Encoded, in base64 and in the dumps of a body ([`Secrets::add_token`]).
    Token,
    /// Encoded, in the dumps of a body, and inside the Basic credentials of this client id
    /// ([`Secrets::add_client_secret`]).
    ClientSecret(Zeroizing<String>),
    /// Learnt from a response ([`Secrets::add_found`]): as written and in base64; the
    /// decoded view covers its escaped forms.
    Found,
}

/// One secret. Its other forms are made the first time a text as long as its shortest
/// form is scanned (see `Value::shortest_needle`), so a call whose
/// responses are shorter than its tokens and proofs — most API calls — never pays for them.
/// A clone shares the value and its forms (made once for all clones; wiped when the last
/// clone goes): the values kept for later calls (`remember_for_later`) and a client secret
/// ([`SharedSecret`]) are copied and encoded once, not once per call.
#[derive(Clone)]
struct Value(std::sync::Arc<ValueInner>);

struct ValueInner {
    raw: Zeroizing<String>,
    kind: Kind,
    forms: std::sync::OnceLock<Vec<Zeroizing<Vec<u8>>>>,
    /// [`Value::shortest_needle`], worked out once (every search of every text asks).
    shortest: usize,
}

impl std::ops::Deref for Value {
    type Target = ValueInner;
    fn deref(&self) -> &ValueInner {
        &self.0
    }
}

impl Value {
    fn new(s: &str, kind: Kind) -> Value {
        Self::owning(s.to_string(), kind)
    }

    /// A value that takes `s` over (no copy of it to make and wipe).
    fn owning(s: String, kind: Kind) -> Value {
        let shortest = shortest_needle(s.len(), &kind);
        Value(std::sync::Arc::new(ValueInner { raw: Zeroizing::new(s), kind, forms: Default::default(), shortest }))
    }

    fn same(&self, s: &str, kind: &Kind) -> bool {
        same_text(&self.raw, s) && self.kind == *kind
    }
}

/// `a == b`, comparing the last byte first: the values compared are tokens and proofs of
/// one length that share a long start (the same JWS header, the same key) and differ in
/// their signatures, at the end; a new proof is compared with every kept one of its length,
/// and most differ in that byte (no call to `memcmp` for them).
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.last() == b.last() && a == b
}

/// One secret and its echoable forms, made once and shared by every call that adds it
/// ([`Secrets::add_shared`]): the client secret of a parsed AuthToken, which every call of
/// every Http object using it masks, is encoded once instead of once per call. `Debug`
/// never shows it.
#[derive(Clone)]
pub struct SharedSecret(Value);

impl SharedSecret {
    /// The client secret of `client_id` (see [`Secrets::add_client_secret`]).
    pub fn client_secret(client_id: &str, secret: &str) -> SharedSecret {
        SharedSecret(Value::new(secret, Kind::ClientSecret(Zeroizing::new(client_id.to_string()))))
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(****)")
    }
}

impl Value {
    fn forms(&self) -> &[Zeroizing<Vec<u8>>] {
        self.forms.get_or_init(|| {
            let mut out: Vec<Zeroizing<Vec<u8>>> = Vec::new();
            let raw = self.raw.as_bytes();
            let mut push = |f: Vec<u8>| {
                let f = Zeroizing::new(f);
                if !f.is_empty() && f.as_slice() != raw && !out.iter().any(|o| o.as_slice() == f.as_slice()) {
                    out.push(f);
                }
            };
            let s = self.raw.as_str();
            match self.kind {
                Kind::Found => {
                    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                        push(engine.encode(s.as_bytes()).into_bytes());
                    }
                    return out;
                }
                Kind::Encoded | Kind::Token | Kind::ClientSecret(_) => {}
            }
            for form in [true, false] {
                for lower in [false, true] {
                    push(percent_encode(s, form, lower).as_bytes().to_vec());
                }
            }
            // JSON as server stacks write it: plain (serde, Jackson), Go's encoding/json (`<>&`
            // as `\u003c`...), Python's json.dumps and PHP (every non-ASCII character as
            // `\u00fc`), in lower- and upper-case hex, each also with `/` as `\/` (PHP).
            // (Other mixes — .NET's `\u002B`, HTML entities — are found by the decoded view.)
            for go_html in [false, true] {
                for ascii_only in [false, true] {
                    for upper in [false, true] {
                        let inner = json_escape(s, go_html, ascii_only, upper);
                        if inner.contains('/') {
                            push(inner.replace('/', "\\/").into_bytes());
                        }
                        push(inner.as_bytes().to_vec());
                    }
                }
            }
            match &self.kind {
                Kind::Token => {
                    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                        push(engine.encode(s.as_bytes()).into_bytes());
                    }
                    dump_forms(s, &mut push);
                }
                Kind::ClientSecret(client_id) => {
                    let mut encoded = Zeroizing::new(String::new());
                    super::form::encode_component(client_id, &mut encoded);
                    encoded.push(':');
                    super::form::encode_component(s, &mut encoded);
                    let raw = Zeroizing::new(format!("{}:{s}", client_id.as_str()));
                    for creds in [encoded, raw] {
                        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                            push(engine.encode(creds.as_bytes()).into_bytes());
                        }
                        push(creds.as_bytes().to_vec());
                    }
                    // A dump (base64, hex, UTF-16) of the form body holds the secret as it
                    // was sent there (form-encoded), and of a JSON or text one as written.
                    let mut sent = Zeroizing::new(String::new());
                    super::form::encode_component(s, &mut sent);
                    dump_forms(s, &mut push);
                    dump_forms(&sent, &mut push);
                }
                _ => {}
            }
            // Shortest first, so that a search of a short text stops at the first form
            // longer than the text (see `needles_upto`).
            out.sort_by_key(|f| f.len());
            out
        })
    }

    /// Every byte string to search for: the value as written, then its forms.
    fn needles(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.raw.as_bytes()).chain(self.forms().iter().map(|f| f.as_slice()))
    }

    /// [`Value::needles`] of at most `len` bytes (the only ones a text of `len` bytes can
    /// hold): its forms are sorted by length, so the search stops at the first longer one;
    /// a value whose every needle is longer than `len` never makes its forms.
    fn needles_upto(&self, len: usize) -> impl Iterator<Item = &[u8]> {
        let fits = self.raw.len() <= len;
        let forms: &[Zeroizing<Vec<u8>>] = if self.shortest_needle() <= len { self.forms() } else { &[] };
        std::iter::once(self.raw.as_bytes())
            .filter(move |_| fits)
            .chain(forms.iter().map(|f| f.as_slice()).take_while(move |f| f.len() <= len))
    }

    /// The length of the shortest of [`Value::needles`], known without making the forms:
    /// the value's, or that of the base64 characters that depend on it alone at a byte
    /// alignment (`b64_core` of its full groups), fewer than its bytes for a token or a
    /// client secret of 5, 6, 7, 9, 10 or 13 bytes (every other form is longer).
    fn shortest_needle(&self) -> usize {
        self.shortest
    }
}

/// [`Value::shortest_needle`] of a value of `n` bytes of `kind`.
fn shortest_needle(n: usize, kind: &Kind) -> usize {
    match kind {
        Kind::Found | Kind::Encoded => n,
        Kind::Token | Kind::ClientSecret(_) => (0..3).filter(|lead| n >= lead + 3).map(|lead| (n - lead) / 3 * 4).fold(n, usize::min),
    }
}

/// A copy of the values (their forms are shared); the automaton is made again on use (the
/// shared layer's is shared too).
impl Clone for Secrets {
    fn clone(&self) -> Self {
        Secrets { values: self.values.clone(), matcher: std::sync::OnceLock::new(), shortest: self.shortest, base: self.base.clone() }
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} values)", self.all().count())
    }
}

/// Below this many bytes × needles a text is searched needle by needle (no automaton to
/// make); above it, in one pass of the `Matcher`.
const SMALL_WORK: usize = 1 << 24;

/// Header names up to this long are searched window by window (at most this many
/// comparisons of at most this many bytes per needle), longer ones with memmem (linear).
const SHORT_NAME: usize = 32;

/// How many bytes of a long text are scanned between two looks at the call's deadline.
const DEADLINE_STRIDE: usize = 1 << 20;

impl Default for Secrets {
    fn default() -> Self {
        Self::empty()
    }
}

impl Secrets {
    pub fn new() -> Self {
        Self::default()
    }

    const fn empty() -> Self {
        Secrets { values: Vec::new(), matcher: std::sync::OnceLock::new(), shortest: usize::MAX, base: [None, None] }
    }

    /// A set of `values` (distinct), with no shared layer.
    fn of_values(values: Vec<Value>) -> Self {
        let shortest = values.iter().map(Value::shortest_needle).min().unwrap_or(usize::MAX);
        Secrets { values, shortest, ..Self::empty() }
    }

    /// A set that starts with the values of `base`, shared (not copied) as layers.
    fn on(base: [Option<std::sync::Arc<Secrets>>; 2]) -> Self {
        Secrets { base, ..Self::empty() }
    }

    /// The shared layers this set starts with.
    fn shared(&self) -> impl Iterator<Item = &Secrets> {
        self.base.iter().flatten().map(|b| &**b)
    }

    /// The layers searched on their own: the shared ones, then this set's values.
    fn layers(&self) -> impl Iterator<Item = &Secrets> {
        self.shared().chain(std::iter::once(self))
    }

    /// This layer's values that a text of `len` bytes can hold (in one of their forms at least).
    fn fitting(&self, len: usize) -> impl Iterator<Item = &Value> {
        debug_assert_eq!(self.shortest, self.values.iter().map(Value::shortest_needle).min().unwrap_or(usize::MAX));
        let values: &[Value] = if self.shortest <= len { &self.values } else { &[] };
        values.iter().filter(move |v| v.shortest_needle() <= len)
    }

    /// Brings what is worked out from the values up to date: the last one was just added.
    fn value_added(&mut self) {
        self.matcher = std::sync::OnceLock::new(); // made again, with the new value
        self.shortest = self.shortest.min(self.values.last().map_or(usize::MAX, Value::shortest_needle));
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.shared().all(|b| b.is_empty())
    }

    /// Every value: this set's and its shared layer's.
    fn all(&self) -> impl Iterator<Item = &Value> {
        self.shared().flat_map(|b| b.values.iter()).chain(self.values.iter())
    }

    fn holds(&self, s: &str, kind: &Kind) -> bool {
        self.layers().any(|l| l.fitting(s.len()).any(|v| v.same(s, kind)))
    }

    /// Adds a secret whose forms are shared with every other set that adds it.
    pub fn add_shared(&mut self, v: &SharedSecret) {
        self.push_value(&v.0);
    }

    /// Adds `s` as written and as a server would echo it: form-urlencoded (WHATWG) and
    /// percent-encoded (RFC 3986), each with upper- and lower-case hex, and JSON-escaped
    /// (also with `\/`); the decoded view finds any other mix of `\u`, `%XX` and HTML
    /// character references.
    pub fn add(&mut self, s: &str) {
        self.push(s, Kind::Encoded);
    }

    /// A token, an assertion or a proof: [`Secrets::add`], plus its base64 (standard and
    /// URL-safe alphabet; unpadded, which is a prefix of the padded form), and its forms
    /// inside a base64, hex or UTF-16 dump of a larger body.
    pub fn add_token(&mut self, s: &str) {
        self.push(s, Kind::Token);
    }

    /// The client secret of `client_id`: [`Secrets::add`], plus the HTTP Basic credentials
    /// (form-encoded, RFC 6749 §2.3.1, what dpopkit sends, and raw) and their base64, and
    /// the secret (raw and form-encoded) inside a base64 dump at any alignment, a hex dump
    /// and UTF-16.
    pub fn add_client_secret(&mut self, client_id: &str, secret: &str) {
        self.push(secret, Kind::ClientSecret(Zeroizing::new(client_id.to_string())));
    }

    /// A value learnt from a response (a token in a body that is refused or logged): as
    /// written and in base64; its escaped forms are found by the decoded view. Fewer forms
    /// than [`Secrets::add_token`], since a response can name many (see [`found_secret_values`]).
    pub fn add_found(&mut self, s: &str) {
        self.push(s, Kind::Found);
    }

    /// Adds every value of `other`, sharing the forms it has made (or will make) already.
    pub fn extend(&mut self, other: &Secrets) {
        for (i, theirs) in other.base.iter().enumerate() {
            match (&self.base[i], theirs) {
                (_, None) => {}
                (None, Some(b)) if self.values.is_empty() => {
                    self.base[i] = Some(b.clone());
                    self.matcher = std::sync::OnceLock::new(); // it searches `base[1]` too
                }
                (Some(mine), Some(b)) if std::sync::Arc::ptr_eq(mine, b) => {}
                (_, Some(b)) => {
                    for v in &b.values {
                        self.push_value(v);
                    }
                }
            }
        }
        for v in &other.values {
            self.push_value(v);
        }
    }

    fn push_value(&mut self, v: &Value) {
        if !v.raw.is_empty() && !self.holds(&v.raw, &v.kind) {
            self.values.push(v.clone());
            self.value_added();
        }
    }

    fn push(&mut self, s: &str, kind: Kind) {
        // A value held as a token or a client secret is masked in every form `add` would
        // give it (their forms include those): no second copy for `add`.
        let subsumed = kind == Kind::Encoded && self.all().any(|v| same_text(&v.raw, s) && v.kind != Kind::Found);
        if !s.is_empty() && !subsumed && !self.holds(s, &kind) {
            self.values.push(Value::new(s, kind));
            self.value_added();
        }
    }

    /// The automaton of every needle of every value of this set, not of its shared layer
    /// (`None` if it cannot be made: then texts are searched needle by needle, still
    /// linear per needle).
    fn matcher(&self) -> Option<&Matcher> {
        self.matcher.get_or_init(|| Matcher::new(self.searched(usize::MAX).flat_map(Value::needles))).as_ref()
    }

    /// The values searched with this set's own, in one pass (one automaton for a long
    /// text) that a text of `len` bytes can hold: this set's and those of the layer of
    /// proofs of the chunk being filled (`base[1]`, which changes with every proof: its
    /// automaton would be made per call anyway, and a pass of its own would scan a long
    /// text once more).
    fn searched(&self, len: usize) -> impl Iterator<Item = &Value> {
        self.base[1].iter().flat_map(move |b| b.fitting(len)).chain(self.fitting(len))
    }

    /// The byte ranges of `hay` to mask, sorted and merged: those of the shared layer of
    /// tokens and completed proofs (searched on its own, with the automaton it keeps for
    /// every set sharing it), and those of this set's values with the filling chunk's.
    fn ranges(&self, hay: &[u8]) -> Vec<(usize, usize)> {
        if hay.is_empty() || self.is_empty() {
            return Vec::new();
        }
        let deadline = call_deadline();
        let mut view: Option<Option<View>> = None; // made once, for the first layer that needs it
        let mut ranges = Vec::new();
        for unit in self.base[0].as_deref().into_iter().chain(std::iter::once(self)) {
            // A text shorter than a value's shortest form (`Value::shortest_needle`) holds
            // none of them, and the forms need not even be made.
            let count: usize = unit.searched(hay.len()).map(|v| 1 + v.forms().len()).sum();
            if count > 0 {
                let view = view.get_or_insert_with(|| View::of(hay)).as_ref();
                unit.collect(hay, view, hay.len().saturating_mul(count) > SMALL_WORK, deadline, &mut ranges);
            }
        }
        widen_and_merge(hay, ranges)
    }

    /// [`Secrets::ranges`] of this layer alone, in one automaton pass (`whole`) or needle by
    /// needle (tests).
    #[cfg(test)]
    fn ranges_by(&self, hay: &[u8], whole: bool, deadline: Option<std::time::Instant>) -> Vec<(usize, usize)> {
        let mut ranges = Vec::new();
        self.collect(hay, View::of(hay).as_ref(), whole, deadline, &mut ranges);
        widen_and_merge(hay, ranges)
    }

    /// Adds the ranges of the [`Secrets::searched`] values (not those of the shared layer
    /// `base[0]`) in `hay` and its decoded `view`, in one automaton pass (`whole`) or
    /// needle by needle.
    fn collect(
        &self,
        hay: &[u8],
        view: Option<&View>,
        whole: bool,
        deadline: Option<std::time::Instant>,
        ranges: &mut Vec<(usize, usize)>,
    ) {
        let fitting = || self.searched(hay.len());
        let matcher = if whole { self.matcher() } else { None };
        if let Some(m) = matcher {
            m.scan(hay, ranges, deadline);
            if let Some(view) = view {
                let mut found = Vec::new();
                m.scan(&view.bytes, &mut found, deadline);
                ranges.extend(view.originals(found));
            }
        } else {
            let grams = Bigrams::of(hay);
            for needle in fitting().flat_map(|v| v.needles_upto(hay.len())).filter(|n| grams.may_hold(n)) {
                find_needle(hay, needle, ranges);
            }
            if let Some(view) = view {
                // The view decodes escapes: the values as written are what is left to find.
                let mut found = Vec::new();
                for v in fitting() {
                    find_needle(&view.bytes, v.raw.as_bytes(), &mut found);
                    if let Kind::ClientSecret(id) = &v.kind {
                        let creds = Zeroizing::new(format!("{}:{}", id.as_str(), v.raw.as_str()));
                        find_needle(&view.bytes, creds.as_bytes(), &mut found);
                    }
                }
                ranges.extend(view.originals(found));
            }
        }
    }
}

/// The found `ranges` of `hay`, sorted and merged.
fn widen_and_merge(hay: &[u8], mut ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    {
        // A needle that is not UTF-8 (the UTF-16 of a non-ASCII secret) can match inside a
        // character: the mask takes the whole character (at most 3 bytes each side).
        for (s, e) in ranges.iter_mut() {
            for _ in 0..3 {
                if *s > 0 && hay[*s] & 0xC0 == 0x80 {
                    *s -= 1;
                }
                if *e < hay.len() && hay[*e] & 0xC0 == 0x80 {
                    *e += 1;
                }
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
}

impl Secrets {
    /// `text` with every occurrence of every value replaced by `****`.
    pub fn scrub(&self, text: &str) -> String {
        let ranges = self.ranges(text.as_bytes());
        if ranges.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (s, e) in ranges {
            // Ranges start and end on character boundaries (see `ranges`).
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
        self.all().flat_map(Value::needles).map(<[u8]>::len).max().unwrap_or(0)
    }

    /// Whether a header *name* holds a secret. HTTP lower-cases names (and logs capitalise
    /// them), so the comparison ignores ASCII case; only values of [`WHOLE_WORD_BELOW`]
    /// bytes or more count (a name is a word: a short secret would hide ordinary names).
    pub fn in_header_name(&self, name: &str) -> bool {
        let n = name.len();
        if n < WHOLE_WORD_BELOW {
            return false;
        }
        let mut found = self.layers().flat_map(|l| l.fitting(n)).flat_map(|v| v.needles_upto(n)).filter(|v| v.len() >= WHOLE_WORD_BELOW);
        if n <= SHORT_NAME {
            // A name as short as most: compared in place, window by window.
            return found.any(|v| name.as_bytes().windows(v.len()).any(|w| w.eq_ignore_ascii_case(v)));
        }
        let name = Zeroizing::new(name.to_ascii_lowercase());
        // One buffer for the lower-cased needles (wiped when it goes), not a copy each.
        let mut lower = Zeroizing::new(Vec::new());
        found.any(|v| {
            lower.clear();
            lower.extend(v.iter().map(u8::to_ascii_lowercase));
            memchr::memmem::find(name.as_bytes(), &lower).is_some()
        })
    }

    /// Masks the body and every header of a response (names too: see
    /// [`Secrets::in_header_name`]), in place (the old body is wiped). A body with a
    /// `Content-Encoding` (gzip, deflate, br...: dpopkit asks for none and decodes none)
    /// cannot be checked, so it is not handed back: see [`withhold_encoded_body`].
    pub fn scrub_response(&self, r: &mut ResponseInfo) {
        if self.is_empty() {
            return;
        }
        withhold_encoded_body(r);
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
}

/// The value of a response's `Content-Encoding`, if it has one that changes the bytes
/// (anything but `identity`).
pub fn content_encoding(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("identity"))
}

/// Replaces an encoded (compressed) body by a text that says why it is not handed back:
/// dpopkit sends no `Accept-Encoding` and decodes nothing, so a gzip or deflate body is one
/// the server chose to send, and a secret echoed inside it could not be masked. The
/// `Content-Encoding` and `Content-Length` headers go with it (they described the bytes).
pub fn withhold_encoded_body(r: &mut ResponseInfo) {
    if r.body.is_empty() {
        return;
    }
    let Some(enc) = content_encoding(&r.headers) else { return };
    let note = format!(
        "dpopkit withheld this {}-byte body: it came with Content-Encoding '{}', which dpopkit did not ask for and does not \
         decode, so it cannot be checked for echoed secrets; have the server send it without compression",
        r.body.len(),
        shorten(enc)
    );
    r.body.zeroize();
    r.body = note.into_bytes();
    r.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-encoding") && !k.eq_ignore_ascii_case("content-length"));
}

#[cfg(test)]
mod tests;
