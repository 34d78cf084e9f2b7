//! What a caller sets on the transport: trust roots, proxy, timeouts, size limit.

use super::*;

/// Which certificates a TLS server must chain to. Verification is always on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TrustRoots {
    /// Mozilla's roots, bundled (webpki-roots): the default, the same on every machine.
    #[default]
    Bundled,
    /// The operating system's trust store and verifier (what corporate TLS-inspection
    /// proxies need: their CA is installed there).
    Os,
    /// Only the certificates of a PEM bundle (a private CA, or a test CA).
    Pem(Arc<Vec<Vec<u8>>>),
}

/// Where requests go through.
///
/// `Env` reads the environment when the Http object is created (or its settings are
/// replaced), the way curl does: `http_proxy` for http:// targets, `https_proxy` /
/// `HTTPS_PROXY` for https:// targets, `all_proxy` / `ALL_PROXY` for both when the
/// scheme's own variable is not set, and `no_proxy` / `NO_PROXY` (lower case first). The
/// upper-case `HTTP_PROXY` is read only outside CGI: when `REQUEST_METHOD` is set, a web
/// server may have put a request's `Proxy:` header there ("httpoxy"), so it is ignored.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum ProxyChoice {
    #[default]
    Env,
    None,
    Url(String),
}

impl std::fmt::Debug for ProxyChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyChoice::Env => f.write_str("Env"),
            ProxyChoice::None => f.write_str("None"),
            // A proxy URL may carry a password: never shown.
            ProxyChoice::Url(u) => f.debug_tuple("Url").field(&mask_userinfo(u)).finish(),
        }
    }
}

/// Per-Http settings; the defaults are documented in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub connect_timeout: Duration,
    /// The whole call: connect, send, read the full response — and every redirect hop,
    /// retry and token request of the call (see [`Deadline`]).
    pub request_timeout: Duration,
    /// Largest response body read; larger ones fail with `ResponseTooLarge`.
    pub max_response_size: u64,
    pub trust: TrustRoots,
    pub proxy: ProxyChoice,
    /// Follow up to [`MAX_REDIRECTS`] redirects of resource requests (never of token
    /// requests); credentials are sent only to the origin of the original URL.
    pub follow_redirects: bool,
}

pub const MAX_REDIRECTS: u32 = 5;

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_RESPONSE_SIZE: u64 = 16 * 1024 * 1024;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_response_size: DEFAULT_MAX_RESPONSE_SIZE,
            trust: TrustRoots::Bundled,
            proxy: ProxyChoice::Env,
            follow_redirects: true,
        }
    }
}
