//! Request headers set by the caller (`Accept`, `Idempotency-Key`, `If-Match`, an API key),
//! sent on API requests only: never on token or metadata requests, and never to an origin
//! other than the one the call was given (see [`crate::core::HttpClient::send`]).

use crate::core::error::{ErrorKind, Result, err, shorten};

/// Most headers an Http object keeps, and the largest name and value accepted: a header
/// list is configuration, not data, and servers refuse header blocks past 8–16 KiB anyway.
pub const MAX_REQUEST_HEADERS: usize = 64;
pub const MAX_HEADER_NAME: usize = 256;
pub const MAX_HEADER_VALUE: usize = 8 * 1024;

/// Names dpopkit sets itself, or whose meaning belongs to the transport, with why.
const REFUSED: &[(&str, &str)] = &[
    ("authorization", "dpopkit sends the access token itself (`Authorization: DPoP <token>`); set the AuthToken instead"),
    ("dpop", "dpopkit makes a fresh DPoP proof for every request itself"),
    ("host", "the host comes from the URL of each request"),
    ("content-length", "the length comes from the body of each request"),
    ("transfer-encoding", "the transport frames the body itself"),
    ("connection", "the transport manages its connections (keep-alive pool) itself"),
    ("keep-alive", "the transport manages its connections (keep-alive pool) itself"),
    ("proxy-connection", "the transport manages its connections (keep-alive pool) itself"),
    ("upgrade", "switching protocols is not supported on an API request"),
    ("te", "the transport chooses transfer codings itself"),
    ("trailer", "the transport frames the body itself"),
];

pub use crate::core::redact::is_credential_header; // path kept for tests; see ARCHITECTURE.md

/// An RFC 9110 `token` (field names): letters, digits and ``!#$%&'*+-.^_`|~``.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks a header a caller wants to send; the error names the problem and the fix.
pub fn check(name: &str, value: &str) -> Result<()> {
    check_name(name)?;
    if let Some((_, why)) = REFUSED.iter().find(|(n, _)| name.eq_ignore_ascii_case(n)) {
        return err(ErrorKind::InvalidArgument, format!("the request header '{name}' cannot be set: {why}"));
    }
    if value.len() > MAX_HEADER_VALUE {
        return err(
            ErrorKind::InvalidArgument,
            format!("the value of request header '{name}' is {} bytes; at most {MAX_HEADER_VALUE} are accepted", value.len()),
        );
    }
    // The value is never repeated in the text: it may be a credential.
    if value.contains(['\r', '\n', '\0']) {
        return err(
            ErrorKind::InvalidArgument,
            format!("the value of request header '{name}' contains a line break or NUL, which would split the request (header injection)"),
        );
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return err(ErrorKind::InvalidArgument, format!("the value of request header '{name}' contains a control character"));
    }
    if value != value.trim_matches([' ', '\t']) {
        return err(
            ErrorKind::InvalidArgument,
            format!("the value of request header '{name}' starts or ends with white space, which HTTP drops; trim it"),
        );
    }
    Ok(())
}

/// Checks a header name alone (for remove).
pub fn check_name(name: &str) -> Result<()> {
    if name.len() > MAX_HEADER_NAME {
        return err(ErrorKind::InvalidArgument, format!("the header name is {} bytes; at most {MAX_HEADER_NAME} are accepted", name.len()));
    }
    if !is_token(name) {
        return err(
            ErrorKind::InvalidArgument,
            format!(
                "'{}' is not a valid header name: an RFC 9110 token of letters, digits and !#$%&'*+-.^_`|~ (no spaces, colons or line breaks)",
                shorten(&name.escape_debug().to_string())
            ),
        );
    }
    Ok(())
}

/// The headers of an Http object, in the order they were first set; names are unique
/// (case-insensitively). Values are wiped when the list is dropped or replaced.
#[derive(Clone, Default)]
pub struct RequestHeaders(Vec<(String, String)>);

impl std::fmt::Debug for RequestHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values may be credentials.
        f.debug_list().entries(self.0.iter().map(|(k, _)| k)).finish()
    }
}

impl Drop for RequestHeaders {
    fn drop(&mut self) {
        crate::core::http::wipe_headers(&mut self.0);
    }
}

impl RequestHeaders {
    /// Sets `name` to `value`, replacing an earlier value of that name (any spelling).
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        check(name, value)?;
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            zeroize::Zeroize::zeroize(&mut slot.1);
            *slot = (name.to_string(), value.to_string());
            return Ok(());
        }
        if self.0.len() >= MAX_REQUEST_HEADERS {
            return err(
                ErrorKind::InvalidArgument,
                format!("an Http object keeps at most {MAX_REQUEST_HEADERS} request headers; remove or clear some first"),
            );
        }
        self.0.push((name.to_string(), value.to_string()));
        Ok(())
    }

    /// Removes `name` (any spelling); whether it was set.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.0.iter().position(|(k, _)| k.eq_ignore_ascii_case(name)) {
            Some(i) => {
                let mut h = self.0.remove(i);
                zeroize::Zeroize::zeroize(&mut h.1);
                true
            }
            None => false,
        }
    }

    pub fn clear(&mut self) {
        crate::core::http::wipe_headers(&mut self.0);
        self.0.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_tokens_values_single_lines_and_framing_headers_refused() {
        for ok in
            [("Accept", "application/json"), ("Idempotency-Key", "k-1"), ("If-Match", "\"abc\""), ("X-Empty", ""), ("x.y_z~1", "a\tb")]
        {
            assert!(check(ok.0, ok.1).is_ok(), "{ok:?}");
        }
        for bad_name in ["", "Bad Name", "X:Y", "X\r\nY", "Ä", "X\0"] {
            let e = check(bad_name, "v").unwrap_err();
            assert!(e.message.contains("not a valid header name"), "{bad_name:?}: {}", e.message);
        }
        for bad_value in ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b", "a\u{7f}", " lead", "trail\t"] {
            let e = check("X-Test", bad_value).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument);
            assert!(!e.message.contains(bad_value), "the value is not repeated: {}", e.message);
        }
        for (name, says) in [
            ("Authorization", "access token"),
            ("authorization", "access token"),
            ("DPoP", "proof"),
            ("Host", "URL"),
            ("Content-Length", "body"),
            ("Transfer-Encoding", "frames"),
            ("CONNECTION", "connections"),
        ] {
            let e = check(name, "x").unwrap_err();
            assert!(e.message.contains("cannot be set") && e.message.contains(says), "{name}: {}", e.message);
        }
        assert!(check("X", &"v".repeat(MAX_HEADER_VALUE + 1)).is_err());
        assert!(check(&"N".repeat(MAX_HEADER_NAME + 1), "v").is_err());
    }

    #[test]
    fn set_replaces_any_spelling_remove_and_clear_and_a_bound() {
        let mut h = RequestHeaders::default();
        h.set("Accept", "text/plain").unwrap();
        h.set("X-A", "1").unwrap();
        h.set("accept", "application/json").unwrap();
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![("accept", "application/json"), ("X-A", "1")]);
        assert!(h.remove("ACCEPT") && !h.remove("accept"));
        assert_eq!(h.len(), 1);
        h.clear();
        assert!(h.is_empty());
        for i in 0..MAX_REQUEST_HEADERS {
            h.set(&format!("X-{i}"), "v").unwrap();
        }
        assert!(h.set("X-One-More", "v").unwrap_err().message.contains("at most"));
        h.set("X-0", "replacing is fine").unwrap();
        assert!(!format!("{h:?}").contains("replacing"), "Debug shows names only");
    }

    #[test]
    fn credential_like_names() {
        for yes in [
            "Cookie",
            "X-Api-Key",
            "x-api-key",
            "Api-Key",
            "X-Auth-Token",
            "Token",
            "X-Client-Secret",
            "Proxy-Authorization",
            "X-CSRF-Token",
        ] {
            assert!(is_credential_header(yes), "{yes}");
        }
        for no in ["Accept", "Idempotency-Key", "If-Match", "X-Correlation-Id", "Content-Type"] {
            assert!(!is_credential_header(no), "{no}");
        }
    }
}
