//! The one error type of the core. Texts are written for people and never contain a secret:
//! every place that builds an error from peer data passes it through [`crate::core::redact`].

use std::fmt;

pub use super::redact::shorten; // lives with the masking it uses; path kept for all callers
use super::redact::{self, Secrets};
pub use super::response::ResponseInfo; // path kept for tests; see ARCHITECTURE.md

/// What went wrong, coarse enough to be mapped 1:1 onto the C result enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A caller-supplied value is malformed (bad URL, empty name, bad setting).
    InvalidArgument,
    /// Key data could not be parsed in any supported format, or the password is wrong.
    KeyFormat,
    /// The key parsed, but it is of a kind DPoP here does not sign with: only EC P-256
    /// (ES256), EC P-384 (ES384), Ed25519 (EdDSA) and RSA of 2048 to 4096 bits (RS256,
    /// PS256) are (RSA under 2048 bits, P-521, secp256k1, ... are not).
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

    /// Masks the secrets of `set` in the text and in the response it carries.
    pub fn scrub_with(&mut self, set: &Secrets) {
        if set.is_empty() {
            return;
        }
        self.message = set.scrub(&self.message);
        if let Some(r) = self.response.as_deref_mut() {
            set.scrub_response(r);
        }
    }

    /// HTTP status of the response the error came from, 0 when there was none.
    pub fn status(&self) -> u16 {
        self.response.as_ref().map_or(0, |r| r.status)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error").field("kind", &self.kind).field("message", &self.message).field("status", &self.status()).finish()
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

/// Masks the call's secrets in an error (text and response).
pub fn scrub_error_of_call(mut e: Error) -> Error {
    redact::with_call(|s| e.scrub_with(s));
    e
}
