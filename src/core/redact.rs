//! Removing secrets from anything that is written down: logs and error texts.

/// Header names whose values are credentials.
const SECRET_HEADERS: &[&str] = &["authorization", "dpop", "proxy-authorization", "cookie", "set-cookie"];

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
    use zeroize::Zeroize;
    match v {
        serde_json::Value::String(s) => s.zeroize(),
        serde_json::Value::Array(a) => a.iter_mut().for_each(wipe_json),
        serde_json::Value::Object(m) => m.values_mut().for_each(wipe_json),
        _ => {}
    }
}

pub fn redact_header_value(name: &str, value: &str) -> String {
    if SECRET_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) { MASK.to_string() } else { value.to_string() }
}

fn is_secret_field(name: &str) -> bool {
    SECRET_FIELDS.contains(&name)
}

/// Replaces every occurrence of each secret (ignoring empty or very short ones, which
/// would mangle ordinary text) with `****`. An occurrence that is part of a secret field's
/// name (a client secret `secret` inside `client_secret`) is left alone.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        let mut result = String::with_capacity(out.len());
        let mut last = 0;
        for (pos, _) in out.match_indices(s) {
            if pos < last || inside_field_name(&out, pos, s) {
                continue;
            }
            result.push_str(&out[last..pos]);
            result.push_str(MASK);
            last = pos + s.len();
        }
        result.push_str(&out[last..]);
        out = result;
    }
    out
}

fn inside_field_name(text: &str, pos: usize, secret: &str) -> bool {
    SECRET_FIELDS.iter().any(|f| {
        f.match_indices(secret).any(|(off, _)| {
            pos >= off && text.get(pos - off..pos - off + f.len()) == Some(*f)
        })
    })
}

/// A printable, redacted form of a body: JSON and form bodies have their secret members
/// masked; binary bodies are summarised; long bodies are cut at `max` bytes.
pub fn redact_body(content_type: &str, body: &[u8], max: usize) -> String {
    let Ok(text) = std::str::from_utf8(body) else {
        return format!("({} bytes of binary data)", body.len());
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
    if redacted.len() > max {
        let mut end = max;
        while !redacted.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes in all)", &redacted[..end], body.len())
    } else {
        redacted
    }
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

/// For text that is neither JSON nor a form (malformed JSON, HTML): mask anything that
/// looks like `"secret_name": "value"` or `secret_name=value`. The values are found in the
/// original text first and masked together, so masking one can never hide another's name.
fn redact_form_like(text: &str) -> String {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for field in SECRET_FIELDS.iter().filter(|f| f.len() > 1) {
        for pat in [format!("\"{field}\""), format!("{field}=")] {
            for (pos, _) in text.match_indices(&pat) {
                let rest = &text[pos + pat.len()..];
                let skip = rest.len() - rest.trim_start_matches(|c: char| c == ':' || c.is_whitespace()).len();
                let value = &rest[skip..];
                let vlen = if let Some(stripped) = value.strip_prefix('"') {
                    stripped.find('"').map_or(value.len(), |e| e + 2)
                } else {
                    value.find(['&', ',', '}', ' ', '\n', '\r']).unwrap_or(value.len())
                };
                if vlen > 0 {
                    let start = pos + pat.len() + skip;
                    ranges.push((start, start + vlen));
                }
            }
        }
    }
    if ranges.is_empty() {
        return text.to_string();
    }
    ranges.sort_unstable();
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

    #[test]
    fn headers_and_scrub() {
        assert_eq!(redact_header_value("Authorization", "DPoP x"), MASK);
        assert_eq!(redact_header_value("dpop", "eyJ"), MASK);
        assert_eq!(redact_header_value("Content-Type", "a/b"), "a/b");
        assert_eq!(scrub("a secret-value b", &["secret-value", ""]), "a **** b");
        assert_eq!(scrub("client_secret=secret&x=secret", &["secret"]), "client_secret=****&x=****");
        assert_eq!(scrub("aaaa", &["aa"]), "aaaa", "too short to scrub");
        assert_eq!(scrub("xsecretsecret", &["secret"]), "x********");
    }
}
