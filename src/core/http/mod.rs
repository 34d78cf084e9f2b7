//! The HTTP transport: one ureq agent (keep-alive pool) per distinct settings, shared by
//! every Http object with equal settings (at most [`MAX_SHARED_TRANSPORTS`] are kept),
//! rustls with verified certificates, bodies always read to the end (so connections are reused),
//! and a resolver that neither spawns a thread nor asks DNS on every request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

pub mod clock;
pub mod headers;

use super::error::{Error, ErrorKind, Result, shorten};
use super::fsread::FileMemo;
use super::response::ResponseInfo;
pub use super::response::status_text; // path kept for capi; see ARCHITECTURE.md
use super::session_log::{Entry, SessionLog};
use super::state::{BoundedLru, never_in_use, weightless};
use super::url::{Target, is_loopback_origin, split_origin};
pub use super::wipe::wipe_headers; // path kept for tests; see ARCHITECTURE.md

mod settings;
pub use settings::*;
mod deadline;
pub use deadline::*;
mod tls;
pub use tls::*;
mod proxy;
pub use proxy::*;

/// How long a DNS answer is reused.
const DNS_TTL: Duration = super::state::limits::DNS_TTL;

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
        // A port the URL names but that is no u16 (`:65616`) reads as "no port" below, which
        // would mean the default one: refused instead (Target::parse refuses it earlier).
        let after_host = authority.as_str().rsplit_once(']').map_or(authority.as_str(), |(_, t)| t);
        if authority.port_u16().is_none_or(|p| p == 0) && after_host.contains(':') {
            return Err(ureq::Error::BadUri("the port is not a number from 1 to 65535".into()));
        }
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

/// How many transports (each a ureq agent: a connection pool and a TLS configuration) the
/// process keeps for reuse by new Http objects, least recently used first out.
pub const MAX_SHARED_TRANSPORTS: usize = super::state::limits::SHARED_TRANSPORTS;
/// Idle keep-alive connections kept per transport, in all and per origin, and for how long.
pub const MAX_IDLE_CONNECTIONS: usize = super::state::limits::IDLE_CONNECTIONS;
pub const MAX_IDLE_PER_ORIGIN: usize = super::state::limits::IDLE_PER_ORIGIN;
pub const MAX_IDLE_AGE: Duration = super::state::limits::IDLE_AGE;

/// What makes two transports interchangeable: equal settings, and for
/// [`ProxyChoice::Env`] the proxy variables as they are now.
#[derive(Clone, PartialEq, Eq)]
struct SharedKey {
    settings: Settings,
    env: Vec<Option<std::ffi::OsString>>,
}

/// Hashes the cheap parts; equality compares everything (the trust roots' certificates too).
impl std::hash::Hash for SharedKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let s = &self.settings;
        (s.connect_timeout, s.request_timeout, s.max_response_size, s.follow_redirects).hash(h);
        std::mem::discriminant(&s.trust).hash(h);
        std::mem::discriminant(&s.proxy).hash(h);
        self.env.hash(h);
    }
}

/// The environment variables that [`ProxyChoice::Env`] reads.
const PROXY_ENV: &[&str] =
    &["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "REQUEST_METHOD"];

/// At most [`MAX_SHARED_TRANSPORTS`], least recently used out (objects keep theirs).
static SHARED: LazyLock<BoundedLru<SharedKey, Arc<Transport>>> =
    LazyLock::new(|| BoundedLru::new(MAX_SHARED_TRANSPORTS, usize::MAX, weightless, never_in_use));

pub struct Transport {
    agent: ureq::Agent,
    pub settings: Settings,
    route: Arc<Route>,
    /// The end of the call this transport serves ([`Transport::for_call`]); `None` on the
    /// Http object's own transport.
    deadline: Option<Deadline>,
}

/// A request as the core sends it.
pub struct Request<'a> {
    pub method: &'a str,
    pub target: &'a Target,
    pub headers: Vec<(String, String)>,
    /// The `Authorization` value of a request to a resource server (`DPoP <token>`), kept
    /// with the access token (made once per token, not copied into `headers` and wiped per
    /// request): a credential like those of `headers`.
    pub authorization: Option<&'a str>,
    pub body: Option<&'a [u8]>,
    /// Which server this is, for error texts ("request to the token endpoint ...").
    pub role: Role,
}

/// The server a request goes to, as error texts name it: a refused connection to the token
/// endpoint reads differently from one to the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    TokenEndpoint,
    Discovery,
    Resource,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::TokenEndpoint => "the token endpoint",
            Role::Discovery => "the authorization server's metadata (discovery)",
            Role::Resource => "the resource server",
        }
    }
}

pub type Response = ResponseInfo;

impl Transport {
    /// The process-wide transport for `settings`: Http objects whose transport settings are
    /// equal share one connection pool and one TLS configuration, so a new object reuses
    /// the keep-alive connections of an earlier one instead of paying a TCP and TLS
    /// handshake. Objects whose settings differ in anything (trust roots, proxy, timeouts,
    /// size limit, redirects) never share a connection. Bounded: [`MAX_SHARED_TRANSPORTS`]
    /// transports, each with at most [`MAX_IDLE_CONNECTIONS`] idle connections
    /// ([`MAX_IDLE_PER_ORIGIN`] per origin) kept for [`MAX_IDLE_AGE`].
    pub fn shared(settings: Settings) -> Result<Arc<Transport>> {
        let env = match settings.proxy {
            ProxyChoice::Env => PROXY_ENV.iter().map(std::env::var_os).collect(),
            _ => Vec::new(),
        };
        let key = SharedKey { settings, env };
        if let Some(t) = SHARED.get(&key) {
            return Ok(t);
        }
        // Building is cheap (the TLS configuration itself is made on first use); when two
        // threads race, the first one stored wins and the other's agent is dropped unused.
        let transport = Arc::new(Transport::new(key.settings.clone())?);
        Ok(SHARED.get_or_insert_with(key, || transport))
    }

    /// How many transports the process keeps for sharing (for tests).
    pub fn shared_count() -> usize {
        SHARED.len()
    }

    /// A transport of its own (not shared): see [`Transport::shared`].
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
        let route = match &settings.proxy {
            ProxyChoice::Env => {
                // Lossy, not `var`: a value that is not UTF-8 must not read as "unset"
                // (REQUEST_METHOD) nor be skipped silently (a proxy variable).
                let env = EnvRoute::from_vars(|n| std::env::var_os(n).map(|v| v.to_string_lossy().into_owned()));
                if env.http.is_none() && env.https.is_none() { Route::Direct } else { Route::Env(Box::new(env)) }
            }
            ProxyChoice::None => Route::Direct,
            ProxyChoice::Url(u) => Route::Fixed(proxy_from_url(u)?),
        };
        // The agent has no proxy: every request names its own (or none), as the route says
        // for its target (the pool keys connections by proxy, so reuse still works).
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .proxy(None)
            .http_status_as_error(false)
            .max_redirects(0)
            // Any RFC 9110 token (PROPFIND, QUERY, ...): the client checks methods itself
            // and refuses CONNECT and TRACE; ureq would only allow the registered ones.
            .allow_non_standard_methods(true)
            .user_agent(concat!("dpopkit/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_global(Some(settings.request_timeout))
            .max_idle_connections(MAX_IDLE_CONNECTIONS)
            .max_idle_connections_per_host(MAX_IDLE_PER_ORIGIN)
            .max_idle_age(MAX_IDLE_AGE)
            .build();
        let agent = ureq::Agent::with_parts(config, DefaultConnector::default(), CachingResolver::default());
        Ok(Transport { agent, settings, route: Arc::new(route), deadline: None })
    }

    /// This transport (the same connection pool) for one call that must end by `deadline`.
    pub fn for_call(&self, deadline: Deadline) -> Transport {
        Transport { agent: self.agent.clone(), settings: self.settings.clone(), route: self.route.clone(), deadline: Some(deadline) }
    }

    /// The deadline of the call, or one `request_timeout` from now outside a call.
    pub fn deadline(&self) -> Deadline {
        self.deadline.unwrap_or_else(|| Deadline::after(self.settings.request_timeout))
    }

    /// Sends one request and reads the whole response. Any status is a success here;
    /// only transport failures are errors. `secrets` are scrubbed from the log.
    ///
    /// The header values (`Authorization`, `DPoP`) are wiped when the request is sent:
    /// the copies here are ours; the transport's own buffers (ureq's header map and write
    /// buffer, rustls's record buffers) are not within reach.
    pub fn send(&self, req: Request<'_>, log: Option<&SessionLog>, secrets: &[&str]) -> Result<Response> {
        let Request { method, target, headers, authorization, body, role } = req;
        // The request gets what is left of the call's deadline (connect, send and the whole
        // response body), never more than request_timeout.
        let limit = match &self.deadline {
            Some(d) => d.check(|| format!(" before {method} {}", shorten(&target.htu)))?.min(self.settings.request_timeout),
            None => self.settings.request_timeout,
        };
        let mut headers = WipeOnDrop(headers);
        let mut builder = ureq::http::Request::builder().method(method).uri(&target.url);
        if let Some(a) = authorization {
            builder = builder.header(ureq::http::header::AUTHORIZATION, a);
        }
        for (k, v) in headers.0.iter() {
            builder = match known_header_name(k) {
                Some(name) => builder.header(name, v.as_str()),
                None => builder.header(k.as_str(), v.as_str()),
            };
        }
        // Whatever goes out as a credential is a secret of the call from now on (before
        // anything is logged, sent or can fail with a server's text; the proof moves into
        // the call's set: the log shows credential headers as `****` anyway).
        if let Some(a) = authorization {
            super::redact::remember_authorization(a);
        }
        super::redact::remember_request_headers(&mut headers.0);
        if let Some(d) = &self.deadline {
            super::redact::note_deadline(d.at()); // masking a long body stops there
        }
        let proxy = self.proxy_for(target)?;
        let via = proxy.map_or("", |p| p.via.as_str());
        if let Some(log) = log {
            let mut shown = WipeOnDrop(Vec::with_capacity(headers.0.len() + 1));
            shown.0.push(("Host".to_string(), host_header(target)));
            if let Some(a) = authorization {
                shown.0.push(("Authorization".to_string(), a.to_string()));
            }
            shown.0.extend(headers.0.iter().cloned());
            let path = path_and_query(&target.url);
            log.write(
                true,
                &Entry { first_line: format!("{method} {path} HTTP/1.1"), headers: &shown.0, body: body.unwrap_or(&[]) },
                secrets,
            );
        }
        let result = match body {
            Some(b) => builder.body(b).map(|r| self.run(r, proxy, limit)),
            None => builder.body(()).map(|r| self.run(r, proxy, limit)),
        };
        drop(headers);
        let mut resp = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(map_ureq_error(e, target, role, &self.settings, via, self.deadline, limit)),
            Err(e) => {
                return Err(Error::new(ErrorKind::InvalidArgument, format!("cannot build the request: {e}")));
            }
        };
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> =
            resp.headers().iter().map(|(k, v)| (canonical_name(k.as_str()), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(self.settings.max_response_size)
            .read_to_vec()
            .map_err(|e| map_ureq_error(e, target, role, &self.settings, via, self.deadline, limit))
            .map_err(|e| e.with_response(ResponseInfo { status, headers: headers.clone(), body: Vec::new() }))?;
        super::http::clock::observe(&target.origin, resp.headers().get("date").and_then(|d| d.to_str().ok()));
        if let Some(log) = log {
            let reason = resp.status().canonical_reason().unwrap_or("");
            log.write(false, &Entry { first_line: format!("HTTP/1.1 {status} {reason}"), headers: &headers, body: &body }, secrets);
        }
        Ok(ResponseInfo { status, headers, body })
    }

    /// The proxy for a request to `target`, if any; an unusable proxy variable of the
    /// environment is an error here (not a silent direct connection).
    fn proxy_for(&self, target: &Target) -> Result<Option<&ProxyUse>> {
        self.route.proxy_for(target)
    }

    /// How a request to `target` would cross a network unencrypted, if it would: `Some("")`
    /// for plain http straight to another machine, `Some(" (through proxy host:port)")` for
    /// plain http relayed by a proxy; `None` when it stays encrypted (https, tunnelled
    /// end to end through any proxy) or on this machine (see `in_clear_over_network`).
    pub fn cleartext_route(&self, target: &Target) -> Result<Option<String>> {
        let proxy = self.proxy_for(target)?;
        Ok(in_clear_over_network(target, proxy).then(|| proxy.map_or(String::new(), |p| p.via.clone())))
    }

    /// Runs a request with `limit` as its global timeout (what is left of the call), through
    /// `proxy` or straight to its target: set on every request (the agent has none), so a
    /// request the route sends direct never falls back to a proxy.
    fn run<S: ureq::AsSendBody>(
        &self,
        r: ureq::http::Request<S>,
        proxy: Option<&ProxyUse>,
        limit: Duration,
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let r = self.agent.configure_request(r).timeout_global(Some(limit)).proxy(proxy.map(|p| p.proxy.clone()));
        self.agent.run(r.build())
    }
}

/// Whether what is sent to `target` by way of `proxy` (`None`: straight) crosses a network
/// unencrypted. https never does: through a proxy it is a CONNECT tunnel, TLS end to end
/// with the target's certificate checked. Plain http does unless both the target and the
/// proxy (if any) are this machine; [`Route::proxy_for`] never sends a loopback target
/// through a proxy, so in practice: plain http to another machine, straight or relayed.
fn in_clear_over_network(target: &Target, proxy: Option<&ProxyUse>) -> bool {
    if !target.origin.starts_with("http://") {
        return false;
    }
    !is_loopback_origin(&target.origin) || proxy.is_some_and(|p| !p.on_loopback)
}

/// The names dpopkit itself sends with every DPoP request, as constants: not parsed (and
/// `DPoP`, not a standard name, not copied into a new allocation) per request.
fn known_header_name(name: &str) -> Option<ureq::http::HeaderName> {
    use ureq::http::header;
    if name.eq_ignore_ascii_case("authorization") {
        Some(header::AUTHORIZATION)
    } else if name.eq_ignore_ascii_case("dpop") {
        Some(header::HeaderName::from_static("dpop"))
    } else if name.eq_ignore_ascii_case("content-type") {
        Some(header::CONTENT_TYPE)
    } else {
        None
    }
}

/// Header lists whose values may be credentials: wiped (names and values) when dropped.
struct WipeOnDrop(Vec<(String, String)>);

impl Drop for WipeOnDrop {
    fn drop(&mut self) {
        wipe_headers(&mut self.0);
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

/// `limit` is the time the request was given: request_timeout, or less when that was all
/// that was left of the call's `deadline`.
/// The error of a failed request, naming the server's role and URL (without the query,
/// which may carry anything) and the proxy it went through.
fn map_ureq_error(
    e: ureq::Error,
    target: &Target,
    role: Role,
    settings: &Settings,
    via: &str,
    deadline: Option<Deadline>,
    limit: Duration,
) -> Error {
    let peer = format!("{} {}{via}", role.name(), shorten(&target.htu));
    match e {
        ureq::Error::Timeout(which) => {
            if matches!(which, ureq::Timeout::Connect) && settings.connect_timeout < limit {
                return Error::new(
                    ErrorKind::Timeout,
                    format!("request to {peer} timed out ({which}, limit {} ms)", settings.connect_timeout.as_millis()),
                );
            }
            match deadline {
                Some(d) if limit < settings.request_timeout => {
                    d.exceeded(&format!(": request to {peer} timed out after the {} ms that were left", limit.as_millis()))
                }
                _ => Error::new(ErrorKind::Timeout, format!("request to {peer} timed out ({which}, limit {} ms)", limit.as_millis())),
            }
        }
        ureq::Error::HostNotFound => Error::new(ErrorKind::Transport, format!("cannot resolve host of {peer}: host not found")),
        ureq::Error::BodyExceedsLimit(n) => {
            Error::new(ErrorKind::ResponseTooLarge, format!("response from {peer} is larger than the limit of {n} bytes"))
        }
        ureq::Error::Io(io) => {
            // rustls reports certificate problems through the I/O error.
            if let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                return tls_error(&peer, tls);
            }
            let what = match io.kind() {
                // Through a proxy, the only connection made is the one to the proxy.
                std::io::ErrorKind::ConnectionRefused if !via.is_empty() => "the proxy refused the connection".to_string(),
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
                std::io::ErrorKind::UnexpectedEof => "connection closed before a complete response".to_string(),
                std::io::ErrorKind::TimedOut => "timed out".to_string(),
                _ => io.to_string(),
            };
            Error::new(ErrorKind::Transport, format!("request to {peer} failed: {what}"))
        }
        ureq::Error::ConnectionFailed => Error::new(ErrorKind::Transport, format!("cannot connect to {peer}: connection failed")),
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

#[cfg(test)]
mod tests;
