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
#[derive(Default)]
pub struct Secrets {
    values: Vec<Value>,
    /// The automaton for long texts, made on first use and forgotten when a value is added.
    matcher: std::sync::OnceLock<Option<Matcher>>,
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

/// One secret. Its other forms are made the first time a text at least as long as the
/// secret is scanned (every form is at least as long as the value itself), so a call whose
/// responses are shorter than its tokens and proofs — most API calls — never pays for them.
/// A clone shares the forms (made once for all clones): the values kept for later calls
/// (`remember_for_later`) are made once, not once per call.
#[derive(Clone)]
struct Value {
    raw: Zeroizing<String>,
    kind: Kind,
    forms: std::sync::Arc<std::sync::OnceLock<Vec<Zeroizing<Vec<u8>>>>>,
}

/// The forms of `s` inside a dump of a larger body: its base64 at each of the three byte
/// alignments (the characters that depend on its bytes only; standard and URL-safe
/// alphabet), its hex (lower and upper case) and its UTF-16 (little and big endian).
fn dump_forms(s: &str, push: &mut impl FnMut(Vec<u8>)) {
    let b = s.as_bytes();
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for lead in 0..3 {
            for partial in [true, false] {
                if let Some(core) = b64_core(b, lead, engine, partial) {
                    push(core.into_bytes());
                }
            }
        }
    }
    for hex in [b"0123456789abcdef", b"0123456789ABCDEF"] {
        push(b.iter().flat_map(|x| [hex[usize::from(x >> 4)], hex[usize::from(x & 15)]]).collect());
    }
    push(s.encode_utf16().flat_map(u16::to_le_bytes).collect());
    push(s.encode_utf16().flat_map(u16::to_be_bytes).collect());
}

/// The base64 characters that depend only on `s` when `s` sits inside a larger base64 dump
/// with its first `lead` bytes (0, 1 or 2) sharing a 3-byte group with the bytes before it:
/// its full groups, and with `partial` also the characters of the groups it shares that
/// hold only its bits (found when the dump has them; the full groups alone otherwise).
fn b64_core(s: &[u8], lead: usize, engine: &base64::engine::GeneralPurpose, partial: bool) -> Option<String> {
    if s.len() < lead + 3 {
        return None;
    }
    let mut out = String::new();
    if lead > 0 && partial {
        let mut g = [0u8; 3];
        g[3 - lead..].copy_from_slice(&s[..lead]);
        let enc = Zeroizing::new(engine.encode(g));
        // The other data's bits end at 8 * (3 - lead); characters from there on are ours.
        out.push_str(&enc[(8 * (3 - lead)).div_ceil(6)..]);
    }
    let full = (s.len() - lead) / 3 * 3;
    out.push_str(&Zeroizing::new(engine.encode(&s[lead..lead + full])));
    let tail = s.len() - lead - full;
    if tail > 0 && partial {
        let mut g = [0u8; 3];
        g[..tail].copy_from_slice(&s[lead + full..]);
        let enc = Zeroizing::new(engine.encode(g));
        out.push_str(&enc[..8 * tail / 6]);
    }
    Some(out)
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
            out
        })
    }

    /// Every byte string to search for: the value as written, then its forms.
    fn needles(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.raw.as_bytes()).chain(self.forms().iter().map(|f| f.as_slice()))
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} values)", self.values.len())
    }
}

/// Below this many bytes × needles a text is searched needle by needle (no automaton to
/// make); above it, in one pass of the `Matcher`.
const SMALL_WORK: usize = 1 << 24;

/// How many bytes of a long text are scanned between two looks at the call's deadline.
const DEADLINE_STRIDE: usize = 1 << 20;

impl Secrets {
    pub fn new() -> Self {
        Self::default()
    }

    const fn empty() -> Self {
        Secrets { values: Vec::new(), matcher: std::sync::OnceLock::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
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
        for v in &other.values {
            if !v.raw.is_empty() && !self.values.iter().any(|o| o.raw == v.raw && o.kind == v.kind) {
                self.values.push(v.clone());
            }
        }
    }

    fn push(&mut self, s: &str, kind: Kind) {
        if !s.is_empty() && !self.values.iter().any(|v| v.raw.as_str() == s && v.kind == kind) {
            self.values.push(Value { raw: Zeroizing::new(s.to_string()), kind, forms: Default::default() });
            self.matcher = std::sync::OnceLock::new();
        }
    }

    /// The automaton of every needle of every value (`None` if it cannot be made: then
    /// texts are searched needle by needle, still linear per needle).
    fn matcher(&self) -> Option<&Matcher> {
        self.matcher.get_or_init(|| Matcher::new(self.values.iter().flat_map(Value::needles))).as_ref()
    }

    /// The byte ranges of `hay` to mask, sorted and merged.
    fn ranges(&self, hay: &[u8]) -> Vec<(usize, usize)> {
        if self.values.is_empty() || hay.is_empty() {
            return Vec::new();
        }
        // Every form of a value is at least as long as the value: a text shorter than the
        // value holds none of them, and the forms need not even be made.
        let count: usize = self.values.iter().filter(|v| v.raw.len() <= hay.len()).map(|v| 1 + v.forms().len()).sum();
        self.ranges_by(hay, hay.len().saturating_mul(count) > SMALL_WORK, call_deadline())
    }

    /// [`Secrets::ranges`], in one automaton pass (`whole`) or needle by needle.
    fn ranges_by(&self, hay: &[u8], whole: bool, deadline: Option<std::time::Instant>) -> Vec<(usize, usize)> {
        let mut ranges = Vec::new();
        let fitting = || self.values.iter().filter(|v| v.raw.len() <= hay.len());
        let view = View::of(hay);
        let matcher = if whole { self.matcher() } else { None };
        if let Some(m) = matcher {
            m.scan(hay, &mut ranges, deadline);
            if let Some(view) = &view {
                let mut found = Vec::new();
                m.scan(&view.bytes, &mut found, deadline);
                ranges.extend(view.originals(found));
            }
        } else {
            let grams = Bigrams::of(hay);
            for needle in fitting().flat_map(Value::needles).filter(|n| n.len() <= hay.len() && grams.may_hold(n)) {
                find_needle(hay, needle, &mut ranges);
            }
            if let Some(view) = &view {
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
        self.values.iter().flat_map(Value::needles).map(<[u8]>::len).max().unwrap_or(0)
    }

    /// Whether a header *name* holds a secret. HTTP lower-cases names (and logs capitalise
    /// them), so the comparison ignores ASCII case; only values of [`WHOLE_WORD_BELOW`]
    /// bytes or more count (a name is a word: a short secret would hide ordinary names).
    pub fn in_header_name(&self, name: &str) -> bool {
        let name = Zeroizing::new(name.to_ascii_lowercase());
        let forms = self.values.iter().filter(|v| v.raw.len() <= name.len()).flat_map(Value::needles);
        forms.filter(|v| v.len() >= WHOLE_WORD_BELOW && v.len() <= name.len()).any(|v| {
            let v = Zeroizing::new(v.to_ascii_lowercase());
            memchr::memmem::find(name.as_bytes(), &v).is_some()
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
        super::error::shorten(enc)
    );
    r.body.zeroize();
    r.body = note.into_bytes();
    r.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-encoding") && !k.eq_ignore_ascii_case("content-length"));
}

/// Which pairs of adjacent bytes a text holds (hashed into 4096 bits: a pair can be
/// reported that is not there, never the other way): a needle one of whose pairs is
/// missing cannot occur, and is not searched. Most of a call's ~100 needles are rejected
/// so in a few lookups each; memmem needs a searcher made per needle.
struct Bigrams([u64; 64]);

impl Bigrams {
    fn slot(a: u8, b: u8) -> usize {
        (usize::from(a) << 4 ^ usize::from(b)) & 4095
    }

    fn of(hay: &[u8]) -> Bigrams {
        let mut g = Bigrams([0; 64]);
        for w in hay.windows(2) {
            let i = Self::slot(w[0], w[1]);
            g.0[i / 64] |= 1 << (i % 64);
        }
        g
    }

    /// False when `needle` certainly does not occur (some of its pairs, spread over it,
    /// are checked).
    fn may_hold(&self, needle: &[u8]) -> bool {
        if needle.len() < 2 {
            return true;
        }
        let last = needle.len() - 2;
        (0..8).map(|k| k * last / 7).all(|at| {
            let i = Self::slot(needle[at], needle[at + 1]);
            self.0[i / 64] & (1 << (i % 64)) != 0
        })
    }
}

/// Every occurrence of `needle` in `hay`, added to `ranges`: leftmost non-overlapping ones
/// for a long needle (they leave no whole occurrence behind); for a short one every
/// occurrence (overlapping too, at most len-1 bytes apart) that stands alone.
fn find_needle(hay: &[u8], needle: &[u8], ranges: &mut Vec<(usize, usize)>) {
    if needle.is_empty() || needle.len() > hay.len() {
        return;
    }
    let first_of_this = ranges.len();
    if needle.len() >= WHOLE_WORD_BELOW {
        ranges.extend(memchr::memmem::find_iter(hay, needle).map(|i| (i, i + needle.len())));
        return;
    }
    let finder = memchr::memmem::Finder::new(needle);
    let mut at = 0;
    while let Some(i) = finder.find(&hay[at..]) {
        let (s, e) = (at + i, at + i + needle.len());
        if stands_alone(hay, s, e) {
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

/// Whether `hay[s..e]` (a short secret's occurrence) is not glued to a word on a side where
/// it starts or ends with a word byte.
fn stands_alone(hay: &[u8], s: usize, e: usize) -> bool {
    let before = s > 0 && is_word_byte(hay[s]) && is_word_byte(hay[s - 1]);
    let after = e < hay.len() && is_word_byte(hay[e - 1]) && is_word_byte(hay[e]);
    !before && !after
}

/// Adds `(s, e)` to ranges found in order of their ends, merging it with the ones it
/// overlaps (or touches, for `touching`).
fn add_range(out: &mut Vec<(usize, usize)>, mut s: usize, e: usize, touching: bool) {
    while let Some(&(ls, le)) = out.last() {
        if s < le || (touching && s == le) {
            s = s.min(ls);
            out.pop();
        } else {
            break;
        }
    }
    out.push((s, e));
}

/// One Aho-Corasick automaton (the `aho-corasick` crate, by memchr's author) of every needle
/// of a [`Secrets`], stepped byte by byte so that each position costs O(1) however many
/// needles end there: per state it keeps the longest needle of [`WHOLE_WORD_BELOW`] bytes
/// or more that ends there (which covers every shorter one ending at the same byte) and the
/// lengths (1..7) of the short ones, checked one by one against the "stands alone" rule.
/// A text is thus scanned once, whatever the number of needles (each secret has some 20
/// forms); memmem per needle would be O(text × needles).
struct Matcher {
    nfa: aho_corasick::nfa::contiguous::NFA,
}

impl Matcher {
    fn new<'a>(needles: impl Iterator<Item = &'a [u8]>) -> Option<Matcher> {
        let needles: Vec<&[u8]> = needles.filter(|n| !n.is_empty()).collect();
        let nfa = aho_corasick::nfa::contiguous::Builder::new()
            .match_kind(aho_corasick::MatchKind::Standard)
            .build(&needles)
            .ok()?;
        Some(Matcher { nfa })
    }

    /// Adds the ranges of `hay` to mask. Past the call's `deadline` (checked every
    /// [`DEADLINE_STRIDE`] bytes) the rest of the text is masked whole: masking never
    /// runs on past the call's end, and never lets the unchecked part through.
    fn scan(&self, hay: &[u8], out: &mut Vec<(usize, usize)>, deadline: Option<std::time::Instant>) {
        use aho_corasick::Anchored;
        use aho_corasick::automaton::Automaton;
        let nfa = &self.nfa;
        let Ok(mut sid) = nfa.start_state(Anchored::No) else {
            out.push((0, hay.len())); // cannot happen (unanchored search is supported): fail closed
            return;
        };
        // Per state: 0 = not yet looked at, else 1 | short lengths as bits 1..7 | longest << 8.
        let mut info: Vec<u64> = Vec::new();
        for (n, chunk) in hay.chunks(DEADLINE_STRIDE).enumerate() {
            let base = n * DEADLINE_STRIDE;
            if n > 0 && deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                add_range(out, base, hay.len(), true);
                return;
            }
            for (j, &b) in chunk.iter().enumerate() {
                sid = nfa.next_state(Anchored::No, sid, b);
                if !(nfa.is_special(sid) && nfa.is_match(sid)) {
                    continue;
                }
                let idx = sid.as_usize();
                if idx >= info.len() {
                    info.resize(idx + 1, 0);
                }
                if info[idx] == 0 {
                    let mut v = 1u64;
                    for k in 0..nfa.match_len(sid) {
                        let len = nfa.pattern_len(nfa.match_pattern(sid, k));
                        if len >= WHOLE_WORD_BELOW {
                            v = v.max(((len as u64) << 8) | (v & 0xff));
                        } else {
                            v |= 1 << len;
                        }
                    }
                    info[idx] = v;
                }
                let v = info[idx];
                let e = base + j + 1;
                let mut short = (v >> 1) & 0x7f;
                // Shortest first: their starts go down, so ends stay in order for add_range.
                while short != 0 {
                    let len = short.trailing_zeros() as usize + 1;
                    short &= short - 1;
                    if stands_alone(hay, e - len, e) {
                        add_range(out, e - len, e, true);
                    }
                }
                let long = (v >> 8) as usize;
                if long > 0 {
                    add_range(out, e - long, e, false);
                }
            }
        }
    }
}

/// A text with its escapes decoded — `\uXXXX` (any hex case; surrogate pairs joined) and
/// the other JSON escapes, HTML/XML character references (`&amp; &lt; &gt; &quot; &apos;`,
/// `&#43;`, `&#x2B;`, semicolon optional for numeric ones) and `%XX` — each on its own, so
/// any mix of them and of literal characters (what .NET's System.Text.Json or an HTML
/// template writes) reads as the value itself. Made in one pass; `escapes` maps back.
struct View {
    bytes: Vec<u8>,
    /// (start in view, start in original, length in view, length in original), in order.
    escapes: Vec<(usize, usize, u8, u8)>,
}

impl View {
    /// `None` when `hay` holds no escape.
    fn of(hay: &[u8]) -> Option<View> {
        memchr::memchr3(b'\\', b'&', b'%', hay)?;
        let mut view = View { bytes: Vec::with_capacity(hay.len()), escapes: Vec::new() };
        let mut i = 0;
        while i < hay.len() {
            let Some(k) = memchr::memchr3(b'\\', b'&', b'%', &hay[i..]) else {
                view.bytes.extend_from_slice(&hay[i..]);
                break;
            };
            view.bytes.extend_from_slice(&hay[i..i + k]);
            i += k;
            let mut buf = [0u8; 4];
            match decode_escape(&hay[i..], &mut buf) {
                Some((used, made)) => {
                    // At most 12 bytes used (a surrogate pair), 4 made.
                    view.escapes.push((view.bytes.len(), i, made as u8, used as u8));
                    view.bytes.extend_from_slice(&buf[..made]);
                    i += used;
                }
                None => {
                    view.bytes.push(hay[i]);
                    i += 1;
                }
            }
        }
        if view.escapes.is_empty() { None } else { Some(view) }
    }

    /// The original range of the view's `s..e`: an escape partly inside is taken whole.
    #[cfg(test)]
    fn original(&self, s: usize, e: usize) -> (usize, usize) {
        self.originals(vec![(s, e)]).pop().unwrap_or((0, 0))
    }

    /// [`View::original`] of each range (sorted here): one forward pass over the escapes,
    /// so mapping back costs O(ranges + escapes), not a search per range.
    fn originals(&self, mut ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
        ranges.sort_unstable();
        // Merged, so that the positions asked only grow (but for one step back per range).
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
        for (s, e) in ranges {
            match merged.last_mut() {
                Some(last) if s < last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let ranges = merged;
        let mut k = 0; // escapes[..k] start at or before the position asked
        let mut at = |pos: usize, end: bool| {
            while k < self.escapes.len() && self.escapes[k].0 <= pos {
                k += 1;
            }
            // Positions only grow (ranges are merged; `e - 1` >= `s`), so this never runs
            // far; it keeps the answer right whatever the order.
            while k > 0 && self.escapes[k - 1].0 > pos {
                k -= 1;
            }
            let Some(&(vs, os, vl, ol)) = k.checked_sub(1).map(|k| &self.escapes[k]) else {
                return pos + usize::from(end);
            };
            let (vl, ol) = (usize::from(vl), usize::from(ol));
            if pos < vs + vl {
                if end { os + ol } else { os }
            } else {
                os + ol + (pos - vs - vl) + usize::from(end)
            }
        };
        ranges.into_iter().map(|(s, e)| (at(s, false), at(e - 1, true))).collect()
    }
}

fn hex_value(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// Decodes the escape at the start of `s` into `out`: (bytes used, bytes made).
fn decode_escape(s: &[u8], out: &mut [u8; 4]) -> Option<(usize, usize)> {
    let hex4 = |s: &[u8]| -> Option<u32> {
        (s.len() >= 4).then_some(())?;
        s[..4].iter().try_fold(0u32, |acc, &b| Some(acc * 16 + hex_value(b)?))
    };
    let char_out = |c: char, out: &mut [u8; 4]| c.encode_utf8(out).len();
    match s.first()? {
        b'\\' => match s.get(1)? {
            b'u' => {
                let u = hex4(&s[2..])?;
                let c = if (0xD800..0xDC00).contains(&u) {
                    let low = (s.get(6..8)? == b"\\u").then(|| hex4(&s[8..])).flatten()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    let c = char::from_u32(0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00))?;
                    return Some((12, char_out(c, out)));
                } else {
                    char::from_u32(u)?
                };
                Some((6, char_out(c, out)))
            }
            &b => {
                let c = match b {
                    b'"' | b'\\' | b'/' | b'\'' => b,
                    b'b' => 8,
                    b'f' => 12,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    _ => return None,
                };
                out[0] = c;
                Some((2, 1))
            }
        },
        b'%' => {
            let v = hex_value(*s.get(1)?)? * 16 + hex_value(*s.get(2)?)?;
            out[0] = v as u8;
            Some((3, 1))
        }
        b'&' => {
            if s.get(1) == Some(&b'#') {
                let (radix, from) = if matches!(s.get(2), Some(b'x' | b'X')) { (16, 3) } else { (10, 2) };
                let max = if radix == 16 { 6 } else { 7 };
                let digits = s[from..].iter().take(max).take_while(|b| char::from(**b).is_digit(radix)).count();
                if digits == 0 {
                    return None;
                }
                let v = s[from..from + digits].iter().fold(0u32, |acc, &b| acc * radix + char::from(b).to_digit(radix).unwrap_or(0));
                let c = char::from_u32(v).filter(|&c| c != '\0')?;
                let used = from + digits + usize::from(s.get(from + digits) == Some(&b';'));
                return Some((used, char_out(c, out)));
            }
            for (name, c) in [("&amp;", b'&'), ("&lt;", b'<'), ("&gt;", b'>'), ("&quot;", b'"'), ("&apos;", b'\'')] {
                if s.len() >= name.len() && s[..name.len()].eq_ignore_ascii_case(name.as_bytes()) {
                    out[0] = c;
                    return Some((name.len(), 1));
                }
            }
            None
        }
        _ => None,
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
    /// The call's deadline, once its transport has said it (see [`note_deadline`]).
    deadline: Option<std::time::Instant>,
}

thread_local! {
    // Never destroyed (`ManuallyDrop`: no destructor is registered), so a call made while
    // the thread ends — from another thread-local's destructor, after this one would have
    // been torn down — still has its secret set. Nothing leaks: the set is emptied (and
    // its allocation freed) when each call's outermost scope ends.
    static CALL: std::mem::ManuallyDrop<RefCell<CallState>> =
        const { std::mem::ManuallyDrop::new(RefCell::new(CallState { depth: 0, secrets: Secrets::empty(), deadline: None })) };
}

/// Keeps the call's secret set alive; nested scopes share the outermost one.
#[must_use]
pub struct CallScope {
    _not_send: std::marker::PhantomData<*const ()>,
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
                c.deadline = None;
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

fn call_deadline() -> Option<std::time::Instant> {
    CALL.try_with(|c| c.try_borrow().ok().and_then(|c| c.deadline)).ok().flatten()
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

/// At most this many distinct values are learnt from one response ([`found_secret_values`]).
pub const MAX_FOUND_VALUES: usize = 16;
/// A value longer than this is not learnt (a token is a few KiB at most).
pub const MAX_FOUND_VALUE: usize = 32 * 1024;
/// At most this many bytes of values in all are learnt from one response.
pub const MAX_FOUND_BYTES: usize = 64 * 1024;

/// The values of secret-named members of a response, as far as [`found_secret_values`]
/// learnt them.
pub struct Found {
    pub values: Vec<Zeroizing<String>>,
    /// False when the body named more than the bound: the values left out must be masked
    /// by their member name ([`redact_body`], [`mask_secret_fields`]) — never let through.
    pub complete: bool,
    bytes: usize,
}

impl Found {
    fn add(&mut self, v: &str) -> bool {
        if v.is_empty() || v == "null" || self.values.iter().any(|x| x.as_str() == v) {
            return true;
        }
        if v.len() > MAX_FOUND_VALUE || self.values.len() >= MAX_FOUND_VALUES || self.bytes + v.len() > MAX_FOUND_BYTES {
            // Past the bound nothing more is looked at (what is left costs nothing), and
            // the caller masks by member name instead.
            self.complete = false;
            return false;
        }
        self.bytes += v.len();
        self.values.push(Zeroizing::new(v.to_string()));
        true
    }
}

/// The values of secret-named members (`access_token`, `refresh_token`, ...) in a body, as
/// found (JSON-quoted or form-encoded) and decoded: for a response whose secrets are not
/// known yet (a token response that is refused or logged). Bounded: at most
/// [`MAX_FOUND_VALUES`] distinct values of at most [`MAX_FOUND_VALUE`] bytes,
/// [`MAX_FOUND_BYTES`] in all, and linear in the body (a value is copied only once it is
/// within the bound); [`Found::complete`] says whether every value fitted.
pub fn found_secret_values(body: &[u8]) -> Found {
    let text = String::from_utf8_lossy(body);
    let mut out = Found { values: Vec::new(), complete: true, bytes: 0 };
    // The textual rule below finds every `"name": value` written plainly; a JSON parse
    // is needed only for escapes (a name `"\u0061ccess_token"`, a value holding `\"`).
    let looks_json = text.trim_start().starts_with(['{', '[']) && memchr::memchr(b'\\', text.as_bytes()).is_some();
    if let Some(mut v) = looks_json.then(|| serde_json::from_str::<serde_json::Value>(&text).ok()).flatten() {
        collect_json_secrets(&v, &mut out);
        wipe_json(&mut v);
    }
    for (s, e) in field_value_ranges(&text) {
        if !out.complete {
            break;
        }
        if e - s > MAX_FOUND_VALUE + 2 {
            out.complete = false; // masked by its name wherever it is shown
            break;
        }
        let raw = &text[s..e];
        let more = if let Some(inner) = raw.strip_prefix('"') {
            let inner = inner.strip_suffix('"').unwrap_or(inner);
            let decoded = inner.contains('\\').then(|| serde_json::from_str::<String>(&format!("\"{inner}\"")).ok().map(Zeroizing::new)).flatten();
            out.add(inner) && decoded.is_none_or(|d| out.add(&d))
        } else {
            let decoded = raw.contains(['%', '+']).then(|| Zeroizing::new(super::form::decode(raw)));
            out.add(raw) && decoded.is_none_or(|d| out.add(&d))
        };
        if !more {
            break;
        }
    }
    out
}

/// [`found_secret_values`], the values only.
pub fn secret_field_values(body: &[u8]) -> Vec<Zeroizing<String>> {
    found_secret_values(body).values
}

fn collect_json_secrets(v: &serde_json::Value, out: &mut Found) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m {
                if !out.complete {
                    return;
                }
                match val {
                    serde_json::Value::String(s) if is_secret_field(k) => {
                        out.add(s);
                    }
                    _ => collect_json_secrets(val, out),
                }
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                if !out.complete {
                    return;
                }
                collect_json_secrets(x, out);
            }
        }
        _ => {}
    }
}

/// Header names whose values say how the bytes are framed, never what a server echoes:
/// kept when the other values of a response are masked ([`mask_secret_fields`]).
fn is_structural_header(name: &str) -> bool {
    const KEEP: &[&str] = &[
        "content-type", "content-length", "content-encoding", "transfer-encoding", "connection", "date", "server",
        "cache-control", "pragma", "expires", "vary", "keep-alive", "dpop-nonce", "www-authenticate", "retry-after",
    ];
    KEEP.iter().any(|k| name.eq_ignore_ascii_case(k))
}

/// A header value as shown when a response named more secret values than are learnt
/// ([`Found::complete`] false): `****` unless its name is a framing one.
pub fn header_value_when_incomplete(name: &str, value: &str) -> String {
    if is_structural_header(name) { redact_form_like(value) } else { MASK.to_string() }
}

/// The field-name rule on a response whose token values are not (all) known: the body's
/// secret-named members are masked (see [`redact_body`]; a body that is not text becomes a
/// summary), and when `complete` is false every header value but the framing ones too.
pub fn mask_secret_fields(r: &mut ResponseInfo, complete: bool) {
    let ct = r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map_or("", |(_, v)| v.as_str());
    if !r.body.is_empty() && content_encoding(&r.headers).is_none() {
        let shown = redact_body(ct, &r.body, usize::MAX).into_bytes();
        r.body.zeroize();
        r.body = shown;
    }
    if !complete {
        for (k, v) in r.headers.iter_mut() {
            let shown = header_value_when_incomplete(k, v);
            v.zeroize();
            *v = shown;
        }
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

    /// Masks `text` both ways (needle by needle, and in one automaton pass).
    fn both_ways(s: &Secrets, text: &str) -> [String; 2] {
        [false, true].map(|whole| {
            let ranges = s.ranges_by(text.as_bytes(), whole, None);
            let mut out = String::new();
            let mut at = 0;
            for (a, b) in ranges {
                out.push_str(&text[at..a]);
                out.push_str(MASK);
                at = b;
            }
            out.push_str(&text[at..]);
            out
        })
    }

    #[test]
    fn the_automaton_masks_what_the_needles_do() {
        let mut s = Secrets::new();
        s.add_client_secret("m2m", "S3cr&t/Va+l ue%\"\\ü-9f8e7d");
        s.add_token("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtMm0ifQ.c2lnbmF0dXJl");
        s.add("x7q");
        s.add("abcdefghabcdefgh"); // overlaps itself
        s.add("abcdefgh");
        let texts = [
            "a x7q b x7qz client_secret=S3cr%26t%2FVa%2Bl+ue%25%22%5C%C3%BC-9f8e7d",
            "abcdefghabcdefghabcdefgh then abcdefghabcdefgh",
            "\"S3cr&t/Va+l ue%\\\"\\\\ü-9f8e7d\" eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtMm0ifQ.c2lnbmF0dXJl",
            "S3cr\\u0026t\\u002FVa\\u002Bl\\u0020ue\\u0025\\u0022\\u005C\\u00FC\\u002D9f8e7d x7q",
            "S3cr&amp;t&#x2F;Va&#43l ue&#X25;&quot;&#92;&#252;-9f8e7d",
        ];
        for text in texts {
            let [a, b] = both_ways(&s, text);
            for out in [&a, &b] {
                for bad in ["S3cr", "x7q ", "abcdefgh", "eyJhbGci", "9f8e7d"] {
                    assert!(!out.contains(bad), "{bad} in {out:?} (from {text:?})");
                }
            }
        }
        // The rule for short secrets is the same both ways.
        let [a, b] = both_ways(&s, "ax7q x7q_ (x7q)");
        assert_eq!(a, "ax7q x7q_ (****)");
        assert_eq!(b, a);
    }

    #[test]
    fn the_decoded_view_maps_back_whole_escapes() {
        let text = b"a&#x41;b\\u00e9%41&amp;z \\uD834\\uDD1E &#43 &bogus; %G1 \\q";
        let v = View::of(text).expect("escapes");
        assert_eq!(String::from_utf8_lossy(&v.bytes), "aAbéA&z 𝄞 + &bogus; %G1 \\q");
        // "Abé" in the view is `&#x41;b\u00e9` in the original.
        let at = memchr::memmem::find(&v.bytes, "Abé".as_bytes()).unwrap();
        let (s, e) = v.original(at, at + "Abé".len());
        assert_eq!(&text[s..e], b"&#x41;b\\u00e9");
        // Half of a decoded character takes the whole escape.
        let (s, e) = v.original(at + 2, at + 3);
        assert_eq!(&text[s..e], b"\\u00e9");
        assert!(View::of(b"plain text").is_none() && View::of(b"100% & done").is_none());
    }

    #[test]
    fn base64_cores_at_every_alignment_are_masked() {
        let secret = "Secret-Value/42+x";
        let mut s = Secrets::new();
        s.add_token(secret);
        for pad in 0..3 {
            for engine in [&base64::engine::general_purpose::STANDARD, &base64::engine::general_purpose::URL_SAFE] {
                let data = format!("{}client_secret={secret}&client_id=m2m", &"xyz"[..pad]);
                let dump = engine.encode(&data);
                let out = s.scrub(&dump);
                // Whatever is left decodes (at any alignment) to no 6 bytes of the secret.
                let left: String = out.split(MASK).collect::<Vec<_>>().join("");
                for piece in out.split(MASK) {
                    for skip in 0..4 {
                        let p = piece.get(skip..).unwrap_or("");
                        let p = &p[..p.len() / 4 * 4];
                        let bytes = engine.decode(p).unwrap_or_default();
                        assert!(!bytes.windows(6).any(|w| secret.as_bytes().windows(6).any(|x| x == w)), "pad {pad}: {out} ({left})");
                    }
                }
            }
        }
        let hex: String = secret.bytes().map(|b| format!("{b:02X}")).collect();
        assert_eq!(s.scrub(&format!("dump 00{hex}FF")), "dump 00****FF");
        let utf16: Vec<u8> = secret.encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert!(s.scrub_bytes(&utf16).is_some_and(|o| o == MASK.as_bytes()));
    }

    #[test]
    fn values_learnt_from_a_response_are_bounded() {
        let members: Vec<String> = (0..5000).map(|i| format!(r#"{{"access_token":"tok-{i:05}-abcdefgh"}}"#)).collect();
        let f = finishes_within(300, move || found_secret_values(format!("[{}]", members.join(",")).as_bytes()));
        assert!(f.values.len() == MAX_FOUND_VALUES && !f.complete);
        let body = runs("password=");
        let f = finishes_within(300, move || found_secret_values(body.as_bytes()));
        assert!(f.values.is_empty() && !f.complete, "one value of 4 MiB: beyond the bound");
        let f = found_secret_values(br#"{"access_token":"abc","refresh_token":"abc","id_token":"def"}"#);
        assert!(f.complete && f.values.len() == 2);
        // Beyond the bound the member names still mask, in the body and the headers.
        let mut r = ResponseInfo {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into()), ("X-Echo".into(), "tok-04999-abcdefgh".into())],
            body: br#"{"a":[{"access_token":"tok-04999-abcdefgh"}],"token_type":"Bearer"}"#.to_vec(),
        };
        mask_secret_fields(&mut r, false);
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("tok-") && body.contains("Bearer"), "{body}");
        assert_eq!(r.headers[1].1, MASK);
        assert_eq!(r.headers[0].1, "application/json");
    }

    #[test]
    fn a_scan_past_the_deadline_masks_the_rest() {
        let mut s = Secrets::new();
        s.add_token("Tok3n-value-aaaaaaaa");
        let text = "x".repeat(3 * DEADLINE_STRIDE);
        let past = std::time::Instant::now();
        let r = s.ranges_by(text.as_bytes(), true, Some(past));
        assert_eq!(r, vec![(DEADLINE_STRIDE, text.len())], "the unchecked part is masked, not let through");
        assert!(s.ranges_by(text.as_bytes(), true, None).is_empty());
    }

    #[test]
    fn a_compressed_body_is_withheld() {
        let mut s = Secrets::new();
        s.add("some-secret-value");
        let mut r = ResponseInfo {
            status: 200,
            headers: vec![("Content-Encoding".into(), "gzip".into()), ("Content-Length".into(), "3".into())],
            body: vec![0x1f, 0x8b, 8],
        };
        s.scrub_response(&mut r);
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains("withheld") && body.contains("'gzip'"), "{body}");
        assert!(r.headers.is_empty());
    }

    /// Random texts over a small alphabet, random secrets: both ways, every occurrence of
    /// every needle that must be masked is inside a masked range.
    #[test]
    fn both_ways_cover_every_occurrence() {
        let seed = std::cell::Cell::new(0x2545_F491_4F6C_DD1Du64);
        let next = |n: usize| {
            let mut x = seed.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            seed.set(x);
            (x % n as u64) as usize
        };
        let alphabet = b"ab_-&% ";
        for round in 0..300 {
            let word = |len: usize| -> String { (0..len).map(|_| alphabet[next(alphabet.len())] as char).collect() };
            let secrets: Vec<String> = (0..3).map(|i| word(if i == 0 { 2 + round % 5 } else { 8 + round % 9 })).collect();
            let text = {
                let mut t = String::new();
                while t.len() < 400 {
                    t.push_str(&if next(3) == 0 { secrets[next(3)].clone() } else { word(1 + next(6)) });
                }
                t
            };
            let mut s = Secrets::new();
            for x in &secrets {
                s.add(x);
            }
            let hay = text.as_bytes();
            for whole in [false, true] {
                let ranges = s.ranges_by(hay, whole, None);
                let covered = |a: usize, b: usize| ranges.iter().any(|&(s, e)| s <= a && b <= e);
                for v in &s.values {
                    for needle in v.needles() {
                        let mut at = 0;
                        while let Some(i) = memchr::memmem::find(&hay[at..], needle) {
                            let (a, b) = (at + i, at + i + needle.len());
                            let must = needle.len() >= WHOLE_WORD_BELOW || stands_alone(hay, a, b);
                            // A long needle overlapping a masked copy of itself is not whole.
                            let broken = needle.len() >= WHOLE_WORD_BELOW && ranges.iter().any(|&(s, e)| s < b && a < e);
                            assert!(!must || covered(a, b) || broken, "round {round}, whole {whole}: {needle:?} at {a} in {text:?}: {ranges:?}");
                            at = a + 1;
                        }
                    }
                }
                // Nothing of a long secret is left whole in the output.
                let out = {
                    let mut o = Vec::new();
                    let mut at = 0;
                    for &(a, b) in &ranges {
                        o.extend_from_slice(&hay[at..a]);
                        o.extend_from_slice(MASK.as_bytes());
                        at = b;
                    }
                    o.extend_from_slice(&hay[at..]);
                    String::from_utf8(o).unwrap()
                };
                for x in &secrets[1..] {
                    assert!(!out.contains(x.as_str()), "round {round}, whole {whole}: {x:?} in {out:?}");
                }
            }
        }
    }
}
