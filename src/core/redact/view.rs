//! The decoded view of a text (`\uXXXX`, JSON, HTML/XML character references, `%XX`)
//! and the escaped forms a secret is echoed in.

use super::*;

/// A text with its escapes decoded — `\uXXXX` (any hex case; surrogate pairs joined) and
/// the other JSON escapes, HTML/XML character references (`&amp; &lt; &gt; &quot; &apos;`,
/// `&#43;`, `&#x2B;`, semicolon optional for numeric ones) and `%XX` — each on its own, so
/// any mix of them and of literal characters (what .NET's System.Text.Json or an HTML
/// template writes) reads as the value itself. Made in one pass; `escapes` maps back.
pub(super) struct View {
    pub(super) bytes: Vec<u8>,
    /// (start in view, start in original, length in view, length in original), in order.
    pub(super) escapes: Vec<(usize, usize, u8, u8)>,
}

impl View {
    /// `None` when `hay` holds no escape.
    pub(super) fn of(hay: &[u8]) -> Option<View> {
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
    pub(super) fn original(&self, s: usize, e: usize) -> (usize, usize) {
        self.originals(vec![(s, e)]).pop().unwrap_or((0, 0))
    }

    /// [`View::original`] of each range (sorted here): one forward pass over the escapes,
    /// so mapping back costs O(ranges + escapes), not a search per range.
    pub(super) fn originals(&self, mut ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
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
            if pos < vs + vl { if end { os + ol } else { os } } else { os + ol + (pos - vs - vl) + usize::from(end) }
        };
        ranges.into_iter().map(|(s, e)| (at(s, false), at(e - 1, true))).collect()
    }
}

pub(super) fn hex_value(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// Decodes the escape at the start of `s` into `out`: (bytes used, bytes made).
pub(super) fn decode_escape(s: &[u8], out: &mut [u8; 4]) -> Option<(usize, usize)> {
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

pub(super) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The inside of a JSON string holding `s`: `"` `\\` and control characters escaped as
/// serde_json does; with `go_html` also `<`, `>`, `&` as `\u003c`...; with `ascii_only`
/// every non-ASCII character as `\uXXXX` (UTF-16, astral ones as a surrogate pair);
/// `upper` for upper-case hex in `\u` escapes.
pub(super) fn json_escape(s: &str, go_html: bool, ascii_only: bool, upper: bool) -> Zeroizing<String> {
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

pub(super) fn percent_encode(s: &str, form: bool, lower: bool) -> Zeroizing<String> {
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

/// The forms of `s` inside a dump of a larger body: its base64 at each of the three byte
/// alignments (the characters that depend on its bytes only; standard and URL-safe
/// alphabet), its hex (lower and upper case) and its UTF-16 (little and big endian).
pub(super) fn dump_forms(s: &str, push: &mut impl FnMut(Vec<u8>)) {
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
pub(super) fn b64_core(s: &[u8], lead: usize, engine: &base64::engine::GeneralPurpose, partial: bool) -> Option<String> {
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
