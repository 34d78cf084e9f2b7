//! Authorization server metadata (RFC 8414, OpenID Connect Discovery): the token endpoint
//! and the DPoP algorithms a server supports, fetched once per process and cached.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use super::error::{Error, ErrorKind, Result, shorten};
use super::http::{Request, Transport};
use super::proof::Target;
use super::session_log::SessionLog;

/// How long fetched metadata is reused.
pub const METADATA_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct Metadata {
    pub issuer: String,
    pub token_endpoint: Target,
    /// `dpop_signing_alg_values_supported`, when the server publishes it.
    pub dpop_algs: Option<Vec<String>>,
}

/// Metadata by the first URL tried, with the time it was fetched.
type Cache = HashMap<String, (Instant, Arc<Metadata>)>;
static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Default::default);

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
pub fn discover(issuer: Option<&str>, metadata_url: Option<&Target>, transport: &Transport, log: Option<&SessionLog>) -> Result<Arc<Metadata>> {
    let urls = match (metadata_url, issuer) {
        (Some(u), _) => vec![u.clone()],
        (None, Some(i)) => candidate_urls(i)?,
        (None, None) => return Err(fail("no issuer or metadata_url to discover the token endpoint from".into())),
    };
    let cache_key = urls[0].url.clone();
    if let Some((at, m)) = CACHE.lock().unwrap_or_else(|e| e.into_inner()).get(&cache_key) {
        if at.elapsed() < METADATA_TTL {
            return Ok(m.clone());
        }
    }
    let mut tried = Vec::new();
    for url in &urls {
        let headers = vec![("Accept".to_string(), "application/json".to_string())];
        let resp = transport.send(Request { method: "GET", target: url, headers, body: None }, log, &[])?;
        if resp.status == 404 && urls.len() > 1 {
            tried.push(format!("{} (404)", url.url));
            continue;
        }
        if !resp.is_success() {
            return Err(fail(format!("metadata at {} answered HTTP {}", url.url, resp.status)).with_response(resp));
        }
        let meta = parse(&resp.body, url, issuer)?;
        let meta = Arc::new(meta);
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(cache_key, (Instant::now(), meta.clone()));
        return Ok(meta);
    }
    Err(fail(format!("no authorization server metadata found: tried {}", tried.join(", "))))
}

fn parse(body: &[u8], url: &Target, issuer: Option<&str>) -> Result<Metadata> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| fail(format!("metadata at {} is not JSON", url.url)))?;
    let field = |n: &str| v.get(n).and_then(|x| x.as_str());
    let found_issuer = field("issuer").unwrap_or_default().to_string();
    if let Some(expected) = issuer {
        // RFC 8414 §3.3 / OIDC Discovery §4.3: the metadata must name the issuer we asked for.
        if found_issuer.trim_end_matches('/') != expected.trim_end_matches('/') {
            return Err(fail(format!(
                "metadata at {} names issuer '{}', not '{}' (RFC 8414 §3.3); check \"issuer\" in the AuthToken",
                url.url,
                shorten(&found_issuer),
                shorten(expected)
            )));
        }
    }
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
    let dpop_algs = v.get("dpop_signing_alg_values_supported").and_then(|a| a.as_array()).map(|a| {
        a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
    });
    Ok(Metadata { issuer: found_issuer, token_endpoint, dpop_algs })
}

/// Forgets cached metadata.
pub fn clear() {
    CACHE.lock().unwrap_or_else(|e| e.into_inner()).clear();
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
        let body = br#"{"issuer":"https://as.example","token_endpoint":"https://as.example/t","dpop_signing_alg_values_supported":["ES256"]}"#;
        let m = parse(body, &url, Some("https://as.example/")).unwrap();
        assert_eq!(m.dpop_algs.as_deref(), Some(&["ES256".to_string()][..]));
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
