//! The HTTP transport: one ureq agent (keep-alive pool) per Http object, rustls with
//! verified certificates, bodies always read to the end (so connections are reused),
//! and a resolver that neither spawns a thread nor asks DNS on every request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::error::{Error, ErrorKind, ResponseInfo, Result, shorten};
use super::proof::Target;
use super::session_log::{Entry, SessionLog};
use super::state::{BoundedLru, FileMemo, never_in_use, weightless};

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
pub const MAX_SHARED_TRANSPORTS: usize = 16;
/// Idle keep-alive connections kept per transport, in all and per origin, and for how long.
pub const MAX_IDLE_CONNECTIONS: usize = 16;
pub const MAX_IDLE_PER_ORIGIN: usize = 8;
pub const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

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
const PROXY_ENV: &[&str] = &[
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy",
    "REQUEST_METHOD",
];

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

/// The end of one call. `request_timeout` (the C API's `request_ms`) bounds the whole call:
/// every redirect hop, every nonce / invalid_token / clock-skew retry, the token request and
/// the metadata request. Each request gets what is left of it, never a fresh allowance.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        let now = Instant::now();
        // An absurd budget (far beyond any real call) saturates instead of overflowing.
        let at = now.checked_add(budget).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86400));
        Deadline { at, budget }
    }

    pub fn at(&self) -> Instant {
        self.at
    }

    /// The whole call's allowance (request_ms).
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// What is left; zero once the deadline has passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The `Timeout` error of a call that ran out of time; `doing` says where it was
    /// ("while …", "before …", ": request to … timed out …").
    pub fn exceeded(&self, doing: &str) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "the whole call exceeded request_ms {} ms (redirects, retries and token requests included){doing}",
                self.budget.as_millis()
            ),
        )
    }

    /// What is left for the next request, or the `Timeout` error when nothing is.
    pub fn check(&self, doing: impl FnOnce() -> String) -> Result<Duration> {
        match self.remaining() {
            left if left.is_zero() => Err(self.exceeded(&doing())),
            left => Ok(left),
        }
    }
}

/// A request as the core sends it.
pub struct Request<'a> {
    pub method: &'a str,
    pub target: &'a Target,
    pub headers: Vec<(String, String)>,
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

/// Trust only the certificates of the PEM file at `path`. Parsed bundles are kept
/// process-wide ([`FileMemo`]): an object made per call that sets the same CA file reads
/// nothing when the file is unchanged, and its settings compare equal (the same `Arc`) to
/// the earlier objects', so it shares their connections.
pub fn load_ca_file(path: &std::path::Path) -> Result<TrustRoots> {
    static CA_FILES: LazyLock<FileMemo<Vec<Vec<u8>>>> = LazyLock::new(|| FileMemo::new(16));
    let shown = shorten(&path.display().to_string());
    let file = super::fsread::RegularFile::open(path, &super::fsread::CA_FILE)?;
    let certs = CA_FILES.load(file, b"", |pem| {
        parse_ca_pem(pem).map_err(|e| Error::new(e.kind, format!("CA file '{shown}': {}", e.message)))
    })?;
    Ok(TrustRoots::Pem(certs))
}

/// `u` with any `user:password@` shown as `****@`: what error texts and `Debug` show of a
/// proxy URL.
pub fn mask_userinfo(u: &str) -> String {
    let (scheme, rest) = match u.find("://") {
        Some(i) => (&u[..i + 3], &u[i + 3..]),
        None => ("", u),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rfind('@') {
        Some(i) => format!("****@{}", &authority[i + 1..]),
        None => authority.to_string(),
    };
    shorten(&format!("{scheme}{authority}{tail}"))
}

/// A checked proxy: what ureq uses, and how texts name it (host and port, never the
/// credentials).
#[derive(Clone)]
struct ProxyUse {
    proxy: ureq::Proxy,
    /// " (through proxy host:port)", appended to error texts.
    via: String,
    /// The proxy is this machine (`localhost`, a loopback IP literal): what reaches it
    /// does not cross a network.
    on_loopback: bool,
}

impl std::fmt::Debug for ProxyUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.via.trim())
    }
}

/// Checks a proxy URL (`[http|https://][user:password@]host[:port][/]`) and says what is
/// wrong without repeating the URL (the caller shows it masked). No port means 80 for
/// http:// and 443 for https://; a port must be a number from 1 to 65535.
fn parse_proxy(u: &str) -> std::result::Result<ProxyUse, String> {
    if u.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("it contains spaces or control characters".into());
    }
    let (scheme, rest) = match u.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("http".to_string(), u),
    };
    match scheme.as_str() {
        "http" | "https" => {}
        s if s.starts_with("socks") => {
            return Err("SOCKS proxies are not supported: only http:// and https:// proxies".into());
        }
        _ => return Err("only http:// and https:// proxies are supported".into()),
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if !matches!(&rest[end..], "" | "/") {
        return Err("a proxy URL has no path, query or fragment".into());
    }
    let authority = &rest[..end];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
        let Some((ip, tail)) = after.split_once(']') else { return Err("the IPv6 address has no closing ']'".into()) };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("the host is not a valid IPv6 address".into());
        }
        match tail {
            "" => (&hostport[..ip.len() + 2], None),
            t => match t.strip_prefix(':') {
                Some(p) => (&hostport[..ip.len() + 2], Some(p)),
                None => return Err("unexpected text after the IPv6 address".into()),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("it has no host".into());
    }
    if !host.starts_with('[') && !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
        return Err("the host is not a valid host name (an IPv6 address goes in brackets)".into());
    }
    let default_port = if scheme == "https" { 443 } else { 80 };
    let port = match port {
        None => default_port,
        Some("") => return Err("there is no port number after ':'".into()),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(format!("the port '{}' is not a number from 1 to 65535", shorten(p))),
        },
    };
    let proxy = ureq::Proxy::new(u).map_err(|_| "it is not a valid URL".to_string())?;
    if proxy.port() != port || !matches!(proxy.protocol(), ureq::ProxyProtocol::Http | ureq::ProxyProtocol::Https) {
        return Err("it is not a valid URL".into());
    }
    let host = host.to_ascii_lowercase();
    let on_loopback = is_loopback_origin(&format!("http://{host}"));
    Ok(ProxyUse { proxy, via: format!(" (through proxy {host}:{port})"), on_loopback })
}

/// An explicit proxy URL: checked when it is set.
fn proxy_from_url(u: &str) -> Result<ProxyUse> {
    parse_proxy(u).map_err(|why| {
        Error::new(ErrorKind::InvalidArgument, format!("proxy URL '{}' is not usable: {why}", mask_userinfo(u)))
    })
}

/// One `NO_PROXY` entry, curl's rules: `*` (everything), a host name that matches itself
/// and its subdomains (a leading `.` or `*.` is ignored), an IP address, or an IP range
/// in CIDR notation (`10.0.0.0/8`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxyEntry {
    All,
    Name(String),
    Net(IpAddr, u8),
}

fn parse_no_proxy(list: &str) -> Vec<NoProxyEntry> {
    let mut out = Vec::new();
    for item in list.split(',') {
        let item = item.trim().to_ascii_lowercase();
        if item.is_empty() {
            continue;
        }
        if item == "*" {
            out.push(NoProxyEntry::All);
            continue;
        }
        let (addr, bits) = match item.split_once('/') {
            Some((a, b)) => (a, b.parse::<u8>().ok()),
            None => (item.as_str(), None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = addr.parse::<IpAddr>() {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            out.push(NoProxyEntry::Net(ip, bits.unwrap_or(max).min(max)));
            continue;
        }
        let name = item.trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.');
        if !name.is_empty() {
            out.push(NoProxyEntry::Name(name.to_string()));
        }
    }
    out
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn no_proxy_matches(entries: &[NoProxyEntry], host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok();
    entries.iter().any(|e| match e {
        NoProxyEntry::All => true,
        NoProxyEntry::Net(net, bits) => ip.is_some_and(|ip| in_net(ip, *net, *bits)),
        NoProxyEntry::Name(n) => {
            ip.is_none() && (host == *n || host.strip_suffix(n.as_str()).is_some_and(|p| p.ends_with('.')))
        }
    })
}

/// The proxy a variable names, or why it cannot be used (the text names the variable).
type EnvProxy = std::result::Result<ProxyUse, String>;

/// The proxies of the environment, one per target scheme.
struct EnvRoute {
    http: Option<EnvProxy>,
    https: Option<EnvProxy>,
    no_proxy: Vec<NoProxyEntry>,
}

impl EnvRoute {
    /// Reads the variables through `var` (the process environment, or a test's table).
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> EnvRoute {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let cgi = var("REQUEST_METHOD").is_some();
        let first = |names: &[&'static str]| {
            names.iter().find_map(|n| set(n).map(|v| (*n, v))).map(|(name, value)| {
                parse_proxy(value.trim()).map_err(|why| {
                    format!(
                        "the environment variable {name} ('{}') is not a usable proxy: {why}; fix or unset it, or \
                         choose the proxy explicitly (dpopkit_http_set_proxy: a URL, or \"\" for none)",
                        mask_userinfo(value.trim())
                    )
                })
            })
        };
        // HTTP_PROXY (upper case) is what CGI makes of a request's `Proxy:` header.
        let http_names: &[&'static str] =
            if cgi { &["http_proxy", "all_proxy", "ALL_PROXY"] } else { &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"] };
        EnvRoute {
            http: first(http_names),
            https: first(&["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]),
            no_proxy: set("no_proxy").or_else(|| set("NO_PROXY")).map(|v| parse_no_proxy(&v)).unwrap_or_default(),
        }
    }

    fn proxy_for(&self, target: &Target) -> Result<Option<&ProxyUse>> {
        let (scheme, host) = split_origin(&target.origin);
        let chosen = if scheme == "https" { &self.https } else { &self.http };
        match chosen {
            None => Ok(None),
            Some(_) if no_proxy_matches(&self.no_proxy, host) => Ok(None),
            Some(Ok(p)) => Ok(Some(p)),
            Some(Err(msg)) => Err(Error::new(ErrorKind::InvalidArgument, msg.clone())),
        }
    }
}

/// `("https", "host")` of `https://host:8443`; an IPv6 host keeps its brackets.
fn split_origin(origin: &str) -> (&str, &str) {
    let (scheme, hostport) = origin.split_once("://").unwrap_or(("http", origin));
    let host = if hostport.starts_with('[') {
        hostport.find(']').map_or(hostport, |i| &hostport[..=i])
    } else {
        hostport.split_once(':').map_or(hostport, |(h, _)| h)
    };
    (scheme, host)
}

/// Whether `scheme://host[:port]` names this machine: the host `localhost` (exactly), or
/// a loopback IP literal (127.0.0.0/8, `[::1]`, `[::ffff:127.x.y.z]`). Names that merely
/// resolve to a loopback address (`localhost.`, `127.1`, `2130706433`) do not count.
pub fn is_loopback_origin(origin: &str) -> bool {
    let (_, host) = split_origin(origin);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Err(_) => false,
    }
}

/// How a Transport picks the proxy of a request (set per request, see [`Transport::run`]).
enum Route {
    Direct,
    /// One explicit proxy for every target that is not this machine.
    Fixed(ProxyUse),
    /// From the environment, per target scheme and host.
    Env(Box<EnvRoute>),
}

impl Route {
    /// The proxy for a request to `target`. A target on this machine (`localhost`, a
    /// loopback IP literal: see [`is_loopback_origin`]) never goes through a proxy, be it
    /// explicit or from the environment, whatever `NO_PROXY` says: a proxy elsewhere would
    /// carry what plain http allows only to this machine (a client secret) across the
    /// network, and its own `127.0.0.1` is not ours. Names that merely resolve to a
    /// loopback address are not this machine here either (as for the cleartext rule).
    fn proxy_for(&self, target: &Target) -> Result<Option<&ProxyUse>> {
        if is_loopback_origin(&target.origin) {
            return Ok(None);
        }
        match self {
            Route::Direct => Ok(None),
            Route::Fixed(p) => Ok(Some(p)),
            Route::Env(env) => env.proxy_for(target),
        }
    }
}

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
        let Request { method, target, headers, body, role } = req;
        // The request gets what is left of the call's deadline (connect, send and the whole
        // response body), never more than request_timeout.
        let limit = match &self.deadline {
            Some(d) => d.check(|| format!(" before {method} {}", shorten(&target.htu)))?.min(self.settings.request_timeout),
            None => self.settings.request_timeout,
        };
        // Whatever goes out as a credential is a secret of the call from now on.
        super::redact::remember_request_headers(&headers);
        if let Some(d) = &self.deadline {
            super::redact::note_deadline(d.at()); // masking a long body stops there
        }
        let headers = WipeOnDrop(headers);
        let proxy = self.proxy_for(target)?;
        let via = proxy.map_or("", |p| p.via.as_str());
        let mut builder = ureq::http::Request::builder().method(method).uri(&target.url);
        for (k, v) in headers.0.iter() {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(log) = log {
            let mut shown = WipeOnDrop(Vec::with_capacity(headers.0.len() + 1));
            shown.0.push(("Host".to_string(), host_header(target)));
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
            .map_err(|e| map_ureq_error(e, target, role, &self.settings, via, self.deadline, limit))
            .map_err(|e| e.with_response(ResponseInfo { status, headers: headers.clone(), body: Vec::new() }))?;
        super::clock::observe(&target.origin, resp.headers().get("date").and_then(|d| d.to_str().ok()));
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

/// Header lists whose values may be credentials: wiped (names and values) when dropped.
struct WipeOnDrop(Vec<(String, String)>);

impl Drop for WipeOnDrop {
    fn drop(&mut self) {
        wipe_headers(&mut self.0);
    }
}

/// Overwrites every header name and value with zeros (their buffers stay allocated, empty).
pub fn wipe_headers(headers: &mut [(String, String)]) {
    for (k, v) in headers.iter_mut() {
        zeroize::Zeroize::zeroize(k);
        zeroize::Zeroize::zeroize(v);
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
fn map_ureq_error(e: ureq::Error, target: &Target, role: Role, settings: &Settings, via: &str, deadline: Option<Deadline>, limit: Duration) -> Error {
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
                _ => Error::new(
                    ErrorKind::Timeout,
                    format!("request to {peer} timed out ({which}, limit {} ms)", limit.as_millis()),
                ),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn why(u: &str) -> String {
        parse_proxy(u).err().unwrap_or_else(|| panic!("{u} was accepted"))
    }

    #[test]
    fn proxy_ports_are_checked_not_defaulted() {
        for (u, says) in [
            ("http://proxy:99999", "'99999' is not a number from 1 to 65535"),
            ("http://proxy:abc", "'abc' is not a number"),
            ("http://proxy:0", "'0' is not a number"),
            ("http://proxy:+80", "'+80' is not a number"),
            ("http://proxy:", "no port number"),
            ("http://[::1:3128", "closing ']'"),
            ("http://pro xy:3128", "spaces"),
            ("http://proxy:3128/path", "no path"),
            ("http://a:b:3128", "not a number"),
            ("socks5://proxy:1080", "SOCKS"),
            ("ftp://proxy:21", "only http"),
        ] {
            assert!(why(u).contains(says), "{u}: {}", why(u));
        }
        let p = parse_proxy("http://proxy.example:3128").unwrap();
        assert_eq!((p.proxy.port(), p.via.as_str()), (3128, " (through proxy proxy.example:3128)"));
        assert_eq!(parse_proxy("http://proxy.example").unwrap().proxy.port(), 80);
        assert_eq!(parse_proxy("https://proxy.example/").unwrap().proxy.port(), 443);
        assert_eq!(parse_proxy("127.0.0.1:8080").unwrap().via, " (through proxy 127.0.0.1:8080)");
        assert_eq!(parse_proxy("http://[::1]:3128").unwrap().via, " (through proxy [::1]:3128)");
        let p = parse_proxy("http://user:p%40ss@proxy:3128").unwrap();
        assert_eq!(p.proxy.password(), Some("p@ss"));
        assert!(!p.via.contains("user") && !p.via.contains("ss"), "{}", p.via);
    }

    #[test]
    fn proxy_passwords_are_never_shown() {
        let secret = "s3cr3t-proxy-pass";
        for u in [
            format!("http://user:{secret}@proxy:99999"),
            format!("socks5://user:{secret}@proxy:1080"),
            format!("http://user:{secret}@pro xy:1"),
        ] {
            let e = proxy_from_url(&u).unwrap_err();
            assert!(!e.message.contains(secret) && e.message.contains("****@"), "{}", e.message);
            let debug = format!("{:?}", Settings { proxy: ProxyChoice::Url(u.clone()), ..Settings::default() });
            assert!(!debug.contains(secret), "{debug}");
        }
        assert_eq!(mask_userinfo("http://u:p@h:1/x"), "http://****@h:1/x");
        assert_eq!(mask_userinfo("u:p@h:1"), "****@h:1");
        assert_eq!(mask_userinfo("http://h:1"), "http://h:1");
        let env = EnvRoute::from_vars(|n| (n == "https_proxy").then(|| format!("http://u:{secret}@proxy:70000")));
        let e = env.proxy_for(&Target::parse("https://as.example/token").unwrap()).unwrap_err();
        assert!(e.message.contains("https_proxy") && !e.message.contains(secret), "{}", e.message);
    }

    fn t(u: &str) -> Target {
        Target::parse(u).unwrap()
    }

    /// The route decision for proxies that are not on this machine, without any traffic
    /// (the tests cannot reach another machine): loopback targets go straight, everything
    /// else through the proxy, and plain http through it counts as crossing the network.
    #[test]
    fn loopback_targets_never_go_through_a_proxy() {
        const LOOPBACK: &[&str] =
            &["http://127.0.0.1:8080/token", "http://127.9.8.7/x", "http://localhost:9/t", "http://[::1]:9/t", "https://127.0.0.1:8443/t", "http://[::ffff:127.0.0.1]/"];
        const ELSEWHERE: &[&str] = &["http://as.example/token", "https://as.example/token", "http://2130706433:8080/token", "http://0.0.0.0:9/t", "http://10.0.0.1/"];
        let explicit = Transport::new(Settings { proxy: ProxyChoice::Url("http://proxy.corp.example:3128".into()), ..Settings::default() }).unwrap();
        let env_vars: &[(&str, &str)] = &[("http_proxy", "http://proxy.corp.example:3128"), ("https_proxy", "http://proxy.corp.example:3128")];
        let env = Route::Env(Box::new(EnvRoute::from_vars(|n| env_vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()))));
        let all = Route::Env(Box::new(env_of(&[("ALL_PROXY", "proxy.corp.example:3128")])));
        for route in [&*explicit.route, &env, &all] {
            for u in LOOPBACK {
                assert!(route.proxy_for(&t(u)).unwrap().is_none(), "{u} went through the proxy");
            }
            for u in ELSEWHERE {
                let p = route.proxy_for(&t(u)).unwrap().unwrap_or_else(|| panic!("{u} went direct"));
                assert_eq!(p.via, " (through proxy proxy.corp.example:3128)");
                assert!(!p.on_loopback);
            }
        }
        // Even an unusable proxy variable does not matter to a loopback target.
        let broken = Route::Env(Box::new(env_of(&[("http_proxy", "http://proxy:99999")])));
        assert!(broken.proxy_for(&t("http://127.0.0.1:1/t")).unwrap().is_none());
        assert!(broken.proxy_for(&t("http://as.example/t")).is_err());
        // What crosses the network in clear, on that route.
        let via = Some(" (through proxy proxy.corp.example:3128)".to_string());
        for (u, clear) in [
            ("http://127.0.0.1:8080/token", None),
            ("http://localhost/token", None),
            ("https://127.0.0.1/token", None),
            ("https://as.example/token", None),
            ("http://as.example/token", via.clone()),
            ("http://2130706433/token", via),
        ] {
            assert_eq!(explicit.cleartext_route(&t(u)).unwrap(), clear, "{u}");
        }
        let direct = Transport::new(Settings { proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
        assert_eq!(direct.cleartext_route(&t("http://as.example/token")).unwrap(), Some(String::new()));
        assert_eq!(direct.cleartext_route(&t("http://127.0.0.1/token")).unwrap(), None);
        // The rule itself looks at the whole route: plain http to this machine relayed by a
        // proxy elsewhere would cross the network (the route above never does that).
        let far = parse_proxy("http://proxy.corp.example:3128").unwrap();
        let near = parse_proxy("http://127.0.0.1:3128").unwrap();
        assert!(near.on_loopback && parse_proxy("localhost:1").unwrap().on_loopback && parse_proxy("http://[::1]:1").unwrap().on_loopback);
        assert!(in_clear_over_network(&t("http://127.0.0.1/t"), Some(&far)));
        assert!(!in_clear_over_network(&t("http://127.0.0.1/t"), Some(&near)));
        assert!(!in_clear_over_network(&t("http://127.0.0.1/t"), None));
        assert!(in_clear_over_network(&t("http://as.example/t"), Some(&near)), "a local proxy relays it elsewhere in clear");
        assert!(!in_clear_over_network(&t("https://as.example/t"), Some(&far)), "a CONNECT tunnel: TLS end to end");
    }

    #[test]
    fn loopback_is_an_ip_literal_or_localhost() {
        for yes in ["http://localhost", "http://LOCALHOST:8080", "http://127.0.0.1:9", "http://127.255.3.4", "http://[::1]:80", "http://[::ffff:127.0.0.1]"] {
            assert!(is_loopback_origin(yes), "{yes}");
        }
        for no in [
            "http://localhost.",
            "http://localhost.:8080",
            "http://a.localhost",
            "http://localhost.evil.example",
            "http://127.1",
            "http://2130706433",
            "http://0x7f000001",
            "http://127.0.0.1.nip.io",
            "http://128.0.0.1",
            "http://[::2]",
            "http://0.0.0.0",
            "http://10.0.0.1",
        ] {
            assert!(!is_loopback_origin(no), "{no}");
        }
    }

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> EnvRoute {
        EnvRoute::from_vars(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()))
    }

    fn via(env: &EnvRoute, url: &str) -> Option<String> {
        env.proxy_for(&Target::parse(url).unwrap()).unwrap().map(|p| p.via.clone())
    }

    #[test]
    fn environment_proxies_follow_curl() {
        const HTTP: &str = "http://as.example/token";
        const HTTPS: &str = "https://as.example/token";
        let p = |port: u16| Some(format!(" (through proxy p:{port})"));
        // Each scheme its own variable; HTTPS_PROXY is not used for http:// and HTTP_PROXY
        // not for https://.
        let env = env_of(&[("HTTPS_PROXY", "p:1")]);
        assert_eq!((via(&env, HTTP), via(&env, HTTPS)), (None, p(1)));
        let env = env_of(&[("HTTP_PROXY", "p:2")]);
        assert_eq!((via(&env, HTTP), via(&env, HTTPS)), (p(2), None));
        // ALL_PROXY for both when the scheme's own is not set; lower case first.
        let env = env_of(&[("ALL_PROXY", "p:3"), ("https_proxy", "p:4"), ("HTTPS_PROXY", "p:5")]);
        assert_eq!((via(&env, HTTP), via(&env, HTTPS)), (p(3), p(4)));
        let env = env_of(&[("all_proxy", "p:6"), ("ALL_PROXY", "p:7"), ("http_proxy", ""), ("HTTP_PROXY", " ")]);
        assert_eq!((via(&env, HTTP), via(&env, HTTPS)), (p(6), p(6)));
        // httpoxy: under CGI (REQUEST_METHOD set) HTTP_PROXY may come from a request's
        // `Proxy:` header and is ignored; the lower-case http_proxy and ALL_PROXY are not.
        let env = env_of(&[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "p:8")]);
        assert_eq!((via(&env, HTTP), via(&env, HTTPS)), (None, None));
        let env = env_of(&[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "p:8"), ("ALL_PROXY", "p:9")]);
        assert_eq!(via(&env, HTTP), p(9));
        let env = env_of(&[("REQUEST_METHOD", ""), ("HTTP_PROXY", "p:8"), ("http_proxy", "p:10")]);
        assert_eq!(via(&env, HTTP), p(10));
    }

    #[test]
    fn no_proxy_follows_curl() {
        let env = env_of(&[
            ("ALL_PROXY", "p:1"),
            ("NO_PROXY", " example.com, .corp.test ,*.wild.test, 10.0.0.0/8, ::1, [fd00::1] ,127.0.0.1,localhost"),
        ]);
        for direct in [
            "https://example.com/",
            "https://api.example.com/",
            "https://x.corp.test/",
            "https://corp.test/",
            "https://a.wild.test/",
            "http://10.2.3.4:8080/",
            "http://[::1]:8080/",
            "http://[fd00::1]/",
            "http://127.0.0.1:9/",
            "http://localhost:9/",
            "https://EXAMPLE.com./",
        ] {
            assert_eq!(via(&env, direct), None, "{direct}");
        }
        for proxied in ["https://notexample.com/", "https://example.com.evil/", "http://11.0.0.1/", "http://127.0.0.2/", "http://[::2]/"] {
            assert!(via(&env, proxied).is_some(), "{proxied}");
        }
        let env = env_of(&[("https_proxy", "p:1"), ("no_proxy", "*"), ("NO_PROXY", "other")]);
        assert_eq!(via(&env, "https://anything.example/"), None);
    }
}
