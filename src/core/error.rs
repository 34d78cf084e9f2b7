//! The one error type of the core. Texts are written for people and never contain a secret:
//! every place that builds an error from peer data passes it through [`crate::core::redact`].

use std::fmt;

/// What went wrong, coarse enough to be mapped 1:1 onto the C result enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A caller-supplied value is malformed (bad URL, empty name, bad setting).
    InvalidArgument,
    /// Key data could not be parsed in any supported format, or the password is wrong.
    KeyFormat,
    /// The key parsed, but it is of a kind DPoP here does not sign with: only EC P-256
    /// (ES256), EC P-384 (ES384) and Ed25519 (EdDSA) are (RSA, P-521, secp256k1, ... are not).
    KeyUnsupported,
    /// A file could not be read or written.
    FileIo,
    /// An operation needs a DPoP key and none was set (or the key object holds none).
    NoKey,
    /// The AuthToken JSON is missing, malformed, or lacks a required field.
    AuthToken,
    /// Connection refused, reset, DNS failure, or another network-level failure.
    Transport,
    /// A connect or request timeout expired.
    Timeout,
    /// The TLS handshake failed (untrusted certificate, protocol error).
    Tls,
    /// The token endpoint answered with an error status.
    TokenEndpoint,
    /// The token endpoint issued a token that is not DPoP-bound (`token_type` is not `DPoP`).
    TokenNotBound,
    /// The token endpoint's 2xx answer is not a usable token response.
    TokenResponse,
    /// The resource server answered with a non-2xx status.
    HttpStatus,
    /// A server kept asking for a new DPoP nonce after the one retry.
    DpopNonce,
    /// A response body exceeded the configured size limit.
    ResponseTooLarge,
    /// A 2xx body was asked for as text but is not UTF-8 (or contains NUL).
    ResponseNotText,
    /// Authorization server metadata could not be fetched or does not fit.
    Discovery,
    /// The server does not accept the key's algorithm, or refused the proof as invalid.
    DpopProof,
    /// Something that should not happen; a bug in dpopkit.
    Internal,
}

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

#[derive(Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// The response that caused the error, when there was one.
    pub response: Option<Box<ResponseInfo>>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), response: None }
    }

    pub fn with_response(mut self, response: ResponseInfo) -> Self {
        self.response = Some(Box::new(response));
        self
    }

    /// HTTP status of the response the error came from, 0 when there was none.
    pub fn status(&self) -> u16 {
        self.response.as_ref().map_or(0, |r| r.status)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("status", &self.status())
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn err<T>(kind: ErrorKind, message: impl Into<String>) -> Result<T> {
    Err(Error::new(kind, message))
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
    let masked = super::redact::with_call(|c| c.scrub(s));
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
