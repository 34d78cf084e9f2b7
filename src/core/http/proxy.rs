//! Proxies: an explicit proxy URL, or the environment (`HTTPS_PROXY`, `NO_PROXY`, ...)
//! per target, and how a proxy URL is shown.

use super::*;

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
pub(super) struct ProxyUse {
    pub(super) proxy: ureq::Proxy,
    /// " (through proxy host:port)", appended to error texts.
    pub(super) via: String,
    /// The proxy is this machine (`localhost`, a loopback IP literal): what reaches it
    /// does not cross a network.
    pub(super) on_loopback: bool,
}

impl std::fmt::Debug for ProxyUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.via.trim())
    }
}

/// Checks a proxy URL (`[http|https://][user:password@]host[:port][/]`) and says what is
/// wrong without repeating the URL (the caller shows it masked). No port means 80 for
/// http:// and 443 for https://; a port must be a number from 1 to 65535.
pub(super) fn parse_proxy(u: &str) -> std::result::Result<ProxyUse, String> {
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
pub(super) fn proxy_from_url(u: &str) -> Result<ProxyUse> {
    parse_proxy(u).map_err(|why| Error::new(ErrorKind::InvalidArgument, format!("proxy URL '{}' is not usable: {why}", mask_userinfo(u))))
}

/// One `NO_PROXY` entry, curl's rules: `*` (everything), a host name that matches itself
/// and its subdomains (a leading `.` or `*.` is ignored), an IP address, or an IP range
/// in CIDR notation (`10.0.0.0/8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NoProxyEntry {
    All,
    Name(String),
    Net(IpAddr, u8),
}

pub(super) fn parse_no_proxy(list: &str) -> Vec<NoProxyEntry> {
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

pub(super) fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
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

pub(super) fn no_proxy_matches(entries: &[NoProxyEntry], host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok();
    entries.iter().any(|e| match e {
        NoProxyEntry::All => true,
        NoProxyEntry::Net(net, bits) => ip.is_some_and(|ip| in_net(ip, *net, *bits)),
        NoProxyEntry::Name(n) => ip.is_none() && (host == *n || host.strip_suffix(n.as_str()).is_some_and(|p| p.ends_with('.'))),
    })
}

/// The proxy a variable names, or why it cannot be used (the text names the variable).
pub(super) type EnvProxy = std::result::Result<ProxyUse, String>;

/// The proxies of the environment, one per target scheme.
pub(super) struct EnvRoute {
    pub(super) http: Option<EnvProxy>,
    pub(super) https: Option<EnvProxy>,
    pub(super) no_proxy: Vec<NoProxyEntry>,
}

impl EnvRoute {
    /// Reads the variables through `var` (the process environment, or a test's table).
    pub(super) fn from_vars(var: impl Fn(&str) -> Option<String>) -> EnvRoute {
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

    pub(super) fn proxy_for(&self, target: &Target) -> Result<Option<&ProxyUse>> {
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

/// How a Transport picks the proxy of a request (set per request, see [`Transport::run`]).
pub(super) enum Route {
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
    pub(super) fn proxy_for(&self, target: &Target) -> Result<Option<&ProxyUse>> {
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
