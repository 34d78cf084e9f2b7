//! The one result enum of the C ABI. Numbers are stable: never renumber or reuse one;
//! retired values stay as "reserved" comments.

use crate::core::ErrorKind;

/// Result codes, read with `dpopkit_last_error_code`. `DPOPKIT_RESULT_OK` is 0.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum dpopkit_result {
    /// The call succeeded.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// The handle is 0, negative, made up, from another copy of the library, or destroyed.
    InvalidHandle = 2,
    /// The handle is valid but of another object type (a key where an Http is expected).
    WrongHandleType = 3,
    /// A string argument is not valid UTF-8.
    InvalidUtf8 = 4,
    /// An argument is malformed: a URL that is not http(s), a bad method, a bad setting.
    InvalidArgument = 5,
    /// Key data could not be parsed, or the password is wrong.
    KeyFormat = 6,
    /// The key is not one DPoP here signs with: EC P-256 (ES256), EC P-384 (ES384), Ed25519
    /// (EdDSA) and RSA of 2048 to 4096 bits (RS256, PS256) are; smaller RSA keys and other
    /// curves are not.
    KeyUnsupported = 7,
    /// A file could not be read or written (key file, session log).
    FileIo = 8,
    /// A DPoP key is required and none is set, or the key object holds no key.
    NoKey = 9,
    /// The AuthToken JSON is missing, malformed or lacks a required member, or it would send
    /// the client secret or assertion over plain http to another machine (the text names
    /// the fix: https, or `"allow_insecure_http": "true"`).
    AuthToken = 10,
    /// A network failure: connection refused or reset, DNS failure.
    Transport = 11,
    /// A connect or request timeout expired.
    Timeout = 12,
    /// TLS failed, for example an untrusted certificate.
    Tls = 13,
    /// The token endpoint answered with an error (the text names it).
    TokenEndpoint = 14,
    /// The token endpoint issued a token that is not DPoP-bound.
    TokenNotDpopBound = 15,
    /// The token endpoint's answer is not a usable token response.
    TokenResponse = 16,
    /// The server answered with a non-2xx status (see `dpopkit_http_last_status`).
    HttpStatus = 17,
    /// A server kept asking for a new DPoP nonce after one retry.
    DpopNonce = 18,
    /// The response body exceeded the size limit.
    ResponseTooLarge = 19,
    /// The response body is not UTF-8 text, so it cannot be returned as a string.
    ResponseNotText = 20,
    /// The JSON object has no such member, or the text is not a JSON object.
    Json = 21,
    /// Authorization server metadata (discovery) could not be fetched or does not fit.
    Discovery = 22,
    /// The server refused the DPoP proof (`invalid_dpop_proof`) or does not support the
    /// key's algorithm; the text names the cause (e.g. a clock difference) and the fix.
    DpopProof = 23,
    /// What was asked for is not there: e.g. the last response has no header of that name
    /// (`dpopkit_http_last_response_header_value` returns NULL with this code).
    NotFound = 24,
    /// A panic was caught at the boundary: a bug in dpopkit, please report it.
    Panic = 100,
    /// Another internal error.
    Internal = 101,
}

impl From<ErrorKind> for dpopkit_result {
    fn from(k: ErrorKind) -> Self {
        match k {
            ErrorKind::InvalidArgument => dpopkit_result::InvalidArgument,
            ErrorKind::KeyFormat => dpopkit_result::KeyFormat,
            ErrorKind::KeyUnsupported => dpopkit_result::KeyUnsupported,
            ErrorKind::FileIo => dpopkit_result::FileIo,
            ErrorKind::NoKey => dpopkit_result::NoKey,
            ErrorKind::AuthToken => dpopkit_result::AuthToken,
            ErrorKind::Transport => dpopkit_result::Transport,
            ErrorKind::Timeout => dpopkit_result::Timeout,
            ErrorKind::Tls => dpopkit_result::Tls,
            ErrorKind::TokenEndpoint => dpopkit_result::TokenEndpoint,
            ErrorKind::TokenNotBound => dpopkit_result::TokenNotDpopBound,
            ErrorKind::TokenResponse => dpopkit_result::TokenResponse,
            ErrorKind::HttpStatus => dpopkit_result::HttpStatus,
            ErrorKind::DpopNonce => dpopkit_result::DpopNonce,
            ErrorKind::ResponseTooLarge => dpopkit_result::ResponseTooLarge,
            ErrorKind::ResponseNotText => dpopkit_result::ResponseNotText,
            ErrorKind::Discovery => dpopkit_result::Discovery,
            ErrorKind::DpopProof => dpopkit_result::DpopProof,
            ErrorKind::Internal => dpopkit_result::Internal,
        }
    }
}
