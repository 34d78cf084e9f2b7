//! Authorization server metadata (RFC 8414, OpenID Connect Discovery): the token endpoint
//! and the DPoP algorithms a server supports, fetched once per process and cached.
//!
//! The cache is keyed by the metadata URL, the issuer the caller expects and the trust
//! settings of its transport (trusted roots and proxy): a handle that could not have
//! fetched (and verified) the metadata itself never gets it from another handle's fetch,
//! and the issuer is checked again on every hit.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::core::dpop::proof::Target;
use crate::core::error::{Error, ErrorKind, Result, shorten};
use crate::core::http::{ProxyChoice, Request, Role, Settings, Transport, TrustRoots};
use crate::core::session_log::SessionLog;
use crate::core::state::{BoundedLru, never_in_use};

/// How long fetched metadata is reused.
pub const METADATA_TTL: Duration = crate::core::state::limits::METADATA_TTL;

#[derive(Debug)]
pub struct Metadata {
    pub issuer: String,
    pub token_endpoint: Target,
    /// `dpop_signing_alg_values_supported`, when the server publishes it.
    pub dpop_algs: Option<Vec<String>>,
    /// `token_endpoint_auth_signing_alg_values_supported` (private_key_jwt), when published.
    pub auth_algs: Option<Vec<String>>,
}

/// (first URL tried, expected issuer, trust fingerprint of the transport).
type Key = (String, Option<String>, [u8; 32]);

/// Metadata with the time it was fetched.
static CACHE: LazyLock<BoundedLru<Key, (Instant, Arc<Metadata>)>> = LazyLock::new(|| {
    BoundedLru::new(
        crate::core::state::limits::DISCOVERY_ENTRIES,
        crate::core::state::limits::DISCOVERY_BYTES,
        |k, (_, m)| k.0.len() + weigh(m),
        never_in_use,
    )
});

fn weigh(m: &Metadata) -> usize {
    let algs: usize = [&m.dpop_algs, &m.auth_algs].iter().map(|l| l.as_ref().map_or(0, |a| a.iter().map(|s| s.len() + 24).sum())).sum();
    256 + m.issuer.len() + 2 * m.token_endpoint.url.len() + algs
}

/// A hash of what decides whether a transport would accept a server: its trusted roots
/// and its proxy.
fn trust_fingerprint(s: &Settings) -> [u8; 32] {
    let mut h = Sha256::new();
    match &s.trust {
        TrustRoots::Bundled => h.update(b"bundled"),
        TrustRoots::Os => h.update(b"os"),
        TrustRoots::Pem(certs) => {
            h.update(b"pem");
            for c in certs.iter() {
                h.update((c.len() as u64).to_le_bytes());
                h.update(c);
            }
        }
    }
    match &s.proxy {
        ProxyChoice::Env => h.update(b"\0proxy-env"),
        ProxyChoice::None => h.update(b"\0proxy-none"),
        ProxyChoice::Url(u) => {
            h.update(b"\0proxy-url");
            h.update(u.as_bytes());
        }
    }
    h.finalize().into()
}

fn fail(msg: String) -> Error {
    Error::new(ErrorKind::Discovery, msg)
}

/// The metadata URLs to try for an issuer: OpenID Connect's, then RFC 8414's (which puts
/// the well-known segment before the issuer's path).
pub fn candidate_urls(issuer: &str) -> Result<Vec<Target>> {
    let issuer = issuer.trim_end_matches('/');
    let t = Target::parse(issuer).map_err(|e| fail(format!("AuthToken \"issuer\": {}", e.message)))?;
    let path = t.htu[t.origin.len()..].trim_end_matches('/').to_string();
    let oidc = Target::parse(&format!("{issuer}/.well-known/openid-configuration"))?;
    let rfc8414 = Target::parse(&format!("{}/.well-known/oauth-authorization-server{path}", t.origin))?;
    Ok(vec![oidc, rfc8414])
}

/// Metadata for `issuer` (or from `metadata_url`), from the cache or the server.
pub fn discover(
    issuer: Option<&str>,
    metadata_url: Option<&Target>,
    transport: &Transport,
    log: Option<&SessionLog>,
) -> Result<Arc<Metadata>> {
    let urls = match (metadata_url, issuer) {
        (Some(u), _) => vec![u.clone()],
        (None, Some(i)) => candidate_urls(i)?,
        (None, None) => return Err(fail("no issuer or metadata_url to discover the token endpoint from".into())),
    };
    let cache_key: Key = (urls[0].url.clone(), issuer.map(str::to_string), trust_fingerprint(&transport.settings));
    if let Some((at, m)) = CACHE.get(&cache_key) {
        if at.elapsed() < METADATA_TTL {
            // The key holds the issuer, but check anyway: the rule must not depend on how
            // the cache is keyed.
            check_issuer(&m.issuer, &urls[0], issuer)?;
            return Ok(m);
        }
    }
    let mut tried = Vec::new();
    for url in &urls {
        let headers = vec![("Accept".to_string(), "application/json".to_string())];
        let resp = transport.send(
            Request { method: "GET", target: url, headers, authorization: None, body: None, role: Role::Discovery },
            log,
            &[],
        )?;
        if resp.status == 404 && urls.len() > 1 {
            tried.push(format!("{} (404)", url.url));
            continue;
        }
        if !resp.is_success() {
            return Err(fail(format!("metadata at {} answered HTTP {}", url.url, resp.status)).with_response(resp));
        }
        let meta = parse(&resp.body, url, issuer)?;
        let meta = Arc::new(meta);
        CACHE.insert(cache_key, (Instant::now(), meta.clone()));
        return Ok(meta);
    }
    Err(fail(format!("no authorization server metadata found: tried {}", tried.join(", "))))
}

fn parse(body: &[u8], url: &Target, issuer: Option<&str>) -> Result<Metadata> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| fail(format!("metadata at {} is not JSON", url.url)))?;
    let field = |n: &str| v.get(n).and_then(|x| x.as_str());
    let found_issuer = field("issuer").unwrap_or_default().to_string();
    check_issuer(&found_issuer, url, issuer)?;
    let token_endpoint = field("token_endpoint")
        .ok_or_else(|| fail(format!("metadata at {} has no token_endpoint", url.url)))
        .and_then(|t| Target::parse(t).map_err(|e| fail(format!("metadata token_endpoint: {}", e.message))))?;
    // Metadata fetched over https (or naming an https issuer) that sends the credentials to
    // a plain-http endpoint is a downgrade: refused whatever the AuthToken allows.
    if (url.origin.starts_with("https://") || found_issuer.starts_with("https://")) && token_endpoint.origin.starts_with("http://") {
        return Err(fail(format!(
            "metadata at {} names a plain-http token endpoint ({}) for an https server: refused, the client \
             credentials would cross the network unencrypted. The server's metadata must name an https \
             token_endpoint",
            url.url,
            shorten(&token_endpoint.url)
        )));
    }
    // At most 64 names each (a real server lists a dozen).
    let list = |name: &str| -> Option<Vec<String>> {
        v.get(name)
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str().map(|s| shorten(s).to_string())).take(64).collect())
    };
    let dpop_algs = list("dpop_signing_alg_values_supported");
    let auth_algs = list("token_endpoint_auth_signing_alg_values_supported");
    Ok(Metadata { issuer: found_issuer, token_endpoint, dpop_algs, auth_algs })
}

/// RFC 8414 §3.3 / OIDC Discovery §4.3: the metadata must name exactly the issuer we asked
/// for (identical strings: a trailing slash is a different issuer).
fn check_issuer(found: &str, url: &Target, expected: Option<&str>) -> Result<()> {
    let Some(expected) = expected else { return Ok(()) };
    if found == expected {
        return Ok(());
    }
    Err(fail(format!(
        "metadata at {} names issuer '{}', not '{}' (RFC 8414 §3.3: they must be identical); if that server is \
         the one you meant, set \"issuer\" in the AuthToken to exactly what its metadata names",
        url.url,
        shorten(found),
        shorten(expected)
    )))
}

/// Forgets cached metadata.
pub fn clear() {
    CACHE.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls() {
        let u = candidate_urls("https://as.example/tenant1/").unwrap();
        assert_eq!(u[0].url, "https://as.example/tenant1/.well-known/openid-configuration");
        assert_eq!(u[1].url, "https://as.example/.well-known/oauth-authorization-server/tenant1");
        let u = candidate_urls("http://127.0.0.1:8080").unwrap();
        assert_eq!(u[1].url, "http://127.0.0.1:8080/.well-known/oauth-authorization-server");
    }

    #[test]
    fn metadata_must_name_the_issuer() {
        let url = Target::parse("https://as.example/.well-known/openid-configuration").unwrap();
        let body = br#"{"issuer":"https://evil.example","token_endpoint":"https://evil.example/token"}"#;
        let e = parse(body, &url, Some("https://as.example")).unwrap_err();
        assert!(e.message.contains("RFC 8414"), "{}", e.message);
        let body =
            br#"{"issuer":"https://as.example","token_endpoint":"https://as.example/t","dpop_signing_alg_values_supported":["ES256"]}"#;
        let m = parse(body, &url, Some("https://as.example")).unwrap();
        assert_eq!(m.dpop_algs.as_deref(), Some(&["ES256".to_string()][..]));
        // Identical, not "equal up to a trailing slash".
        let e = parse(body, &url, Some("https://as.example/")).unwrap_err();
        assert!(e.message.contains("identical"), "{}", e.message);
    }

    #[test]
    fn https_metadata_never_names_an_http_token_endpoint() {
        let https = Target::parse("https://as.example/.well-known/openid-configuration").unwrap();
        for te in ["http://as.example/token", "http://127.0.0.1:8080/token", "HTTP://as.example/token"] {
            let body = format!(r#"{{"issuer":"https://as.example","token_endpoint":"{te}"}}"#);
            let e = parse(body.as_bytes(), &https, Some("https://as.example")).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Discovery);
            assert!(e.message.contains("plain-http token endpoint"), "{}", e.message);
        }
        // An https issuer's metadata fetched from an http metadata_url: still refused.
        let http = Target::parse("http://127.0.0.1:8080/meta").unwrap();
        let body = br#"{"issuer":"https://as.example","token_endpoint":"http://as.example/token"}"#;
        assert!(parse(body, &http, None).is_err());
        // http everywhere (a loopback test server) is not a downgrade.
        let body = br#"{"issuer":"http://127.0.0.1:8080","token_endpoint":"http://127.0.0.1:8080/token"}"#;
        assert!(parse(body, &http, Some("http://127.0.0.1:8080")).is_ok());
        let body = br#"{"issuer":"https://as.example","token_endpoint":"https://as.example/token"}"#;
        assert!(parse(body, &https, Some("https://as.example")).is_ok());
    }
}
