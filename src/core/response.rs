//! A response as the core keeps it ([`ResponseInfo`]: status, headers, body) and the
//! header lookup on it. A leaf: it imports nothing of the core.

use std::fmt;

/// Status line and headers of the response an error came from, kept so that callers can
/// read `last_status`, the last body and headers after a failed call.
#[derive(Clone, Default)]
pub struct ResponseInfo {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl fmt::Debug for ResponseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseInfo")
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .finish()
    }
}
impl ResponseInfo {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// Every value of the header `name` (case-insensitive), joined with ", " as RFC 9110
    /// §5.3 combines repeated fields; `None` when the response has no such header.
    pub fn header_joined(&self, name: &str) -> Option<String> {
        let all = self.header_all(name);
        if all.is_empty() { None } else { Some(all.join(", ")) }
    }

    /// The standard reason phrase of the status ("OK", "Created", "Not Found"), "" for a
    /// status that has none (or no response). The phrase a server wrote on its status line
    /// is not kept: HTTP/2 has none, and RFC 9110 §15 tells clients to ignore it.
    pub fn status_text(&self) -> &'static str {
        status_text(self.status)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// All headers as `Name: value` lines joined by CRLF.
    pub fn header_text(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.headers {
            s.push_str(k);
            s.push_str(": ");
            s.push_str(v);
            s.push_str("\r\n");
        }
        s
    }
}

/// The standard reason phrase of an HTTP status, "" when it has none.
pub fn status_text(status: u16) -> &'static str {
    ureq::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
}
