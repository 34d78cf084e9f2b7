//! The HTTP transport: one ureq agent (keep-alive pool) per Http object, rustls with
//! verified certificates, bodies always read to the end (so connections are reused),
//! and a resolver that neither spawns a thread nor asks DNS on every request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::error::{Error, ErrorKind, ResponseInfo, Result, shorten};
use super::proof::Target;
use super::session_log::{Entry, SessionLog};

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

/// Where requests go through. `Env` reads `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
/// `NO_PROXY` (upper or lower case) when the Http object is created.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProxyChoice {
    #[default]
    Env,
    None,
    Url(String),
}

/// Per-Http settings; the defaults are documented in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub connect_timeout: Duration,
    /// The whole request: connect, send, and read the full response.
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

/// How long a DNS answer is reused.
const DNS_TTL: Duration = Duration::from_secs(30);

/// Resolves IP literals without any lookup and caches names for [`DNS_TTL`]; only a cache
/// miss goes to ureq's default resolver (which runs the lookup under the timeout).
#[derive(Debug, Default)]
struct CachingResolver {
    inner: DefaultResolver,
    cache: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return self.inner.resolve(uri, config, timeout);
        };
        let Some(port) = authority.port_u16().or(match scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        }) else {
            return self.inner.resolve(uri, config, timeout);
        };
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            let mut out = self.empty();
            out.push(SocketAddr::new(ip, port));
            return Ok(out);
        }
        let key = format!("{host}:{port}");
        if let Some((at, addrs)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            if at.elapsed() < DNS_TTL {
                return Ok(addrs.clone());
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

pub struct Transport {
    agent: ureq::Agent,
    pub settings: Settings,
    /// " (through proxy host:port)" for error texts, when a proxy is used.
    via: Option<String>,
}

/// A request as the core sends it.
pub struct Request<'a> {
    pub method: &'a str,
    pub target: &'a Target,
    pub headers: Vec<(String, String)>,
    pub body: Option<&'a [u8]>,
}

pub type Response = ResponseInfo;

impl ResponseInfo {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
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

/// Parses a PEM bundle into DER certificates; at least one is required.
pub fn parse_ca_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c.der().to_vec()),
            Ok(_) => {}
            Err(e) => return Err(Error::new(ErrorKind::InvalidArgument, format!("the CA bundle is not valid PEM: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(Error::new(ErrorKind::InvalidArgument, "the CA bundle holds no CERTIFICATE block"));
    }
    Ok(certs)
}

/// Trust only the certificates of the PEM file at `path`.
pub fn load_ca_file(path: &std::path::Path) -> Result<TrustRoots> {
    let shown = shorten(&path.display().to_string());
    let pem = std::fs::read(path)
        .map_err(|e| Error::new(ErrorKind::FileIo, format!("cannot read CA file '{shown}': {e}")))?;
    let certs = parse_ca_pem(&pem).map_err(|e| Error::new(e.kind, format!("CA file '{shown}': {}", e.message)))?;
    Ok(TrustRoots::Pem(Arc::new(certs)))
}

/// Checks a proxy URL: http(s) proxies only (SOCKS is not built in).
fn proxy_from_url(u: &str) -> Result<ureq::Proxy> {
    let scheme = u.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), None | Some("http") | Some("https")) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("proxy '{}': only http:// and https:// proxies are supported", shorten(u)),
        ));
    }
    ureq::Proxy::new(u).map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("the proxy URL is not valid: {e}")))
}

impl Transport {
    pub fn new(settings: Settings) -> Result<Transport> {
        let roots = match &settings.trust {
            TrustRoots::Bundled => ureq::tls::RootCerts::WebPki,
            TrustRoots::Os => ureq::tls::RootCerts::PlatformVerifier,
            TrustRoots::Pem(certs) => {
                let certs: Vec<_> = certs.iter().map(|d| ureq::tls::Certificate::from_der(d).to_owned()).collect();
                ureq::tls::RootCerts::new_with_certs(&certs)
            }
        };
        let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
        let proxy = match &settings.proxy {
            ProxyChoice::Env => ureq::Proxy::try_from_env().filter(|p| {
                // An environment proxy of a kind that is not built in is ignored, not a panic later.
                matches!(p.protocol(), ureq::ProxyProtocol::Http | ureq::ProxyProtocol::Https)
            }),
            ProxyChoice::None => None,
            ProxyChoice::Url(u) => Some(proxy_from_url(u)?),
        };
        let via = proxy.as_ref().map(|p| format!(" (through proxy {}:{})", p.host(), p.port()));
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .proxy(proxy)
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("dpopkit/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_global(Some(settings.request_timeout))
            .max_idle_connections_per_host(16)
            .build();
        let agent = ureq::Agent::with_parts(config, DefaultConnector::default(), CachingResolver::default());
        Ok(Transport { agent, settings, via })
    }

    /// Sends one request and reads the whole response. Any status is a success here;
    /// only transport failures are errors. `secrets` are scrubbed from the log.
    pub fn send(&self, req: Request<'_>, log: Option<&SessionLog>, secrets: &[&str]) -> Result<Response> {
        // Whatever goes out as a credential is a secret of the call from now on.
        super::redact::remember_request_headers(&req.headers);
        let mut builder = ureq::http::Request::builder().method(req.method).uri(&req.target.url);
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(log) = log {
            let mut headers = Vec::with_capacity(req.headers.len() + 1);
            headers.push(("Host".to_string(), host_header(req.target)));
            headers.extend(req.headers.iter().cloned());
            let path = path_and_query(&req.target.url);
            log.write(
                true,
                &Entry { first_line: format!("{} {} HTTP/1.1", req.method, path), headers: &headers, body: req.body.unwrap_or(&[]) },
                secrets,
            );
        }
        let result = match req.body {
            Some(b) => builder.body(b).map(|r| self.agent.run(r)),
            None => builder.body(()).map(|r| self.agent.run(r)),
        };
        let mut resp = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(map_ureq_error(e, req.target, self)),
            Err(e) => {
                return Err(Error::new(ErrorKind::InvalidArgument, format!("cannot build the request: {e}")));
            }
        };
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (canonical_name(k.as_str()), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(self.settings.max_response_size)
            .read_to_vec()
            .map_err(|e| map_ureq_error(e, req.target, self))
            .map_err(|e| e.with_response(ResponseInfo { status, headers: headers.clone(), body: Vec::new() }))?;
        super::clock::observe(&req.target.origin, resp.headers().get("date").and_then(|d| d.to_str().ok()));
        if let Some(log) = log {
            let reason = resp.status().canonical_reason().unwrap_or("");
            log.write(false, &Entry { first_line: format!("HTTP/1.1 {status} {reason}"), headers: &headers, body: &body }, secrets);
        }
        Ok(ResponseInfo { status, headers, body })
    }
}

fn host_header(t: &Target) -> String {
    t.origin.split_once("://").map_or(t.origin.as_str(), |(_, h)| h).to_string()
}

fn path_and_query(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    match after_scheme.find(['/', '?']) {
        Some(i) => &after_scheme[i..],
        None => "/",
    }
}

/// `content-type` -> `Content-Type`, for a log that reads like the wire.
fn canonical_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    if out.eq_ignore_ascii_case("dpop-nonce") {
        return "DPoP-Nonce".into();
    }
    if out.eq_ignore_ascii_case("www-authenticate") {
        return "WWW-Authenticate".into();
    }
    out
}

fn map_ureq_error(e: ureq::Error, target: &Target, transport: &Transport) -> Error {
    let settings = &transport.settings;
    let peer = format!("{}{}", target.origin, transport.via.as_deref().unwrap_or(""));
    match e {
        ureq::Error::Timeout(which) => {
            let limit = match which {
                ureq::Timeout::Connect => settings.connect_timeout,
                _ => settings.request_timeout,
            };
            Error::new(
                ErrorKind::Timeout,
                format!("request to {peer} timed out ({which}, limit {} ms)", limit.as_millis()),
            )
        }
        ureq::Error::HostNotFound => {
            Error::new(ErrorKind::Transport, format!("cannot resolve host of {peer}: host not found"))
        }
        ureq::Error::BodyExceedsLimit(n) => Error::new(
            ErrorKind::ResponseTooLarge,
            format!("response from {peer} is larger than the limit of {n} bytes"),
        ),
        ureq::Error::Io(io) => {
            // rustls reports certificate problems through the I/O error.
            if let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                return tls_error(&peer, tls);
            }
            let what = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
                std::io::ErrorKind::UnexpectedEof => "connection closed before a complete response".to_string(),
                std::io::ErrorKind::TimedOut => "timed out".to_string(),
                _ => io.to_string(),
            };
            Error::new(ErrorKind::Transport, format!("request to {peer} failed: {what}"))
        }
        ureq::Error::ConnectionFailed => {
            Error::new(ErrorKind::Transport, format!("cannot connect to {peer}: connection failed"))
        }
        ureq::Error::Tls(msg) => Error::new(ErrorKind::Tls, format!("TLS with {peer} failed: {msg}")),
        ureq::Error::Rustls(re) => tls_error(&peer, &re),
        other => Error::new(ErrorKind::Transport, format!("request to {peer} failed: {other}")),
    }
}

/// Shared handle to a transport; swapped whole when settings change.
pub type SharedTransport = Arc<Transport>;

fn tls_error(peer: &str, e: &rustls::Error) -> Error {
    let msg = match e {
        rustls::Error::InvalidCertificate(_) => format!("the server certificate is not trusted ({e})"),
        _ => e.to_string(),
    };
    Error::new(ErrorKind::Tls, format!("TLS with {peer} failed: {msg}"))
}
