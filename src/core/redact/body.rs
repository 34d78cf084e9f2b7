//! Bodies: secret-named members found in a body, and a body as the session log shows it
//! (secret members masked, bounded).

use super::*;

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
    pub(super) bytes: usize,
}

impl Found {
    pub(super) fn add(&mut self, v: &str) -> bool {
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
            let decoded =
                inner.contains('\\').then(|| serde_json::from_str::<String>(&format!("\"{inner}\"")).ok().map(Zeroizing::new)).flatten();
            out.add(inner) && decoded.is_none_or(|d| out.add(&d))
        } else {
            let decoded = raw.contains(['%', '+']).then(|| Zeroizing::new(crate::core::form::decode(raw)));
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

pub(super) fn collect_json_secrets(v: &serde_json::Value, out: &mut Found) {
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
pub(super) fn is_structural_header(name: &str) -> bool {
    const KEEP: &[&str] = &[
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "date",
        "server",
        "cache-control",
        "pragma",
        "expires",
        "vary",
        "keep-alive",
        "dpop-nonce",
        "www-authenticate",
        "retry-after",
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

pub(super) fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut end = at.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

pub(super) fn redact_json(v: &mut serde_json::Value) {
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

pub(super) fn looks_like_form(text: &str) -> bool {
    !text.contains(char::is_whitespace) && text.contains('=')
}

pub(super) fn redact_form(text: &str) -> String {
    text.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_field(&crate::core::form::decode(k)) => format!("{k}={MASK}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The next position at or after `from` where `pred` holds (or the end), remembering the
/// last answer: asked with positions that only grow, the scans never overlap, so all the
/// questions together cost one pass over the text.
pub(super) struct NextScan<P: Fn(u8) -> bool> {
    pub(super) pred: P,
    pub(super) from: usize,
    pub(super) found: usize,
}

impl<P: Fn(u8) -> bool> NextScan<P> {
    pub(super) fn new(pred: P) -> Self {
        NextScan { pred, from: 1, found: 0 } // empty: from > found
    }

    pub(super) fn next(&mut self, bytes: &[u8], at: usize) -> usize {
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
pub(super) fn field_value_ranges(text: &str) -> Vec<(usize, usize)> {
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
pub(super) fn redact_form_like(text: &str) -> String {
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
