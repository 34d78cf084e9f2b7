//! The request target: a parsed absolute http(s) URL ([`Target`]) and the helpers on its
//! origin. A leaf: it knows only [`super::error`].

use std::net::IpAddr;

use super::error::{ErrorKind, Result, err, shorten};

/// A parsed absolute http(s) URL, split the way DPoP and the nonce cache need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL to send (fragment removed).
    pub url: String,
    /// `scheme://host[:port]`, lower-case, default port omitted: the nonce cache key.
    pub origin: String,
    /// `origin` + path, no query or fragment: the proof's `htu`.
    pub htu: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let url = url.trim();
        let url = url.split_once('#').map_or(url, |(u, _)| u);
        let uri: ureq::http::Uri = match url.parse() {
            Ok(u) => u,
            Err(_) => return err(ErrorKind::InvalidArgument, format!("not a valid URL: '{}'", shorten(url))),
        };
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase) {
            Some(s) if s == "http" || s == "https" => s,
            Some(s) => {
                return err(ErrorKind::InvalidArgument, format!("unsupported URL scheme '{s}': only http and https"));
            }
            None => {
                return err(ErrorKind::InvalidArgument, format!("not an absolute http(s) URL: '{}'", shorten(url)));
            }
        };
        let Some(authority) = uri.authority() else {
            return err(ErrorKind::InvalidArgument, format!("the URL has no host: '{}'", shorten(url)));
        };
        if authority.as_str().contains('@') {
            return err(ErrorKind::InvalidArgument, "user:password@ in URLs is not supported");
        }
        let host = authority.host().to_ascii_lowercase();
        if host.is_empty() {
            return err(ErrorKind::InvalidArgument, format!("the URL has no host: '{}'", shorten(url)));
        }
        let default_port = if scheme == "https" { 443 } else { 80 };
        check_port(authority.as_str(), &scheme, &uri)?;
        let origin = match authority.port_u16() {
            Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
            _ => format!("{scheme}://{host}"),
        };
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        let htu = format!("{origin}{path}");
        Ok(Target { url: url.to_string(), origin, htu })
    }
}

/// The port of `authority` (`host[:port]`, `[v6][:port]`, no userinfo) must be a number
/// from 1 to 65535 when the URL names one. The URL parser accepts any run of digits there
/// and then reports no port at all, so `:65616` or `:99999999999` would silently become
/// the scheme's default port: the request (and its credentials) would go somewhere the
/// caller never named. The text names the URL without its query (which may carry values
/// a caller would rather not see in a log).
fn check_port(authority: &str, scheme: &str, uri: &ureq::http::Uri) -> Result<()> {
    let port = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map(|(_, tail)| tail.strip_prefix(':')),
        None => Some(authority.split_once(':').map(|(_, p)| p)),
    };
    let Some(Some(port)) = port else { return Ok(()) };
    let valid =
        !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) && matches!(port.parse::<u32>(), Ok(1..=65535));
    if valid {
        return Ok(());
    }
    let shown = format!("{scheme}://{authority}{}", uri.path());
    let what =
        if port.is_empty() { "has ':' but no port number after it".to_string() } else { format!("has the port '{}'", shorten(port)) };
    err(
        ErrorKind::InvalidArgument,
        format!("the URL '{}' {what}: a port must be a number from 1 to 65535 (or left out for the scheme's default)", shorten(&shown)),
    )
}
/// `("https", "host")` of `https://host:8443`; an IPv6 host keeps its brackets.
pub(crate) fn split_origin(origin: &str) -> (&str, &str) {
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
