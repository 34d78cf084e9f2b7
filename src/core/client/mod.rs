//! The Http object of the core: holds the DPoP key, the AuthToken, the session log and the
//! transport, and sends requests with `Authorization: DPoP <token>` and a fresh proof.
//! Everything here is `&self` and thread-safe; no lock is held across network I/O.

use std::path::Path;
use std::sync::{Arc, RwLock};

use super::dpop::challenge;
use super::dpop::exchange::{Answer, Retries, Server, exchange};
use super::dpop::nonce;
use super::dpop::proof::Target;
use super::error::{Error, ErrorKind, Result, err};
use super::http::headers::RequestHeaders;
use super::http::{Deadline, MAX_REDIRECTS, Request, Response, Role, Settings, Transport};
use super::key::EcKey;
use super::oauth::token::{AuthConfig, FetchContext, get_token, oauth_error};
use super::redact::{self, scrub};
use super::session_log::SessionLog;

#[derive(Default)]
struct Config {
    key: Option<Arc<EcKey>>,
    assertion_key: Option<Arc<EcKey>>,
    auth: Option<Arc<AuthConfig>>,
    log: Option<Arc<SessionLog>>,
    /// Sent on API requests (see [`HttpClient::set_request_header`]).
    headers: Arc<RequestHeaders>,
}

pub struct HttpClient {
    config: RwLock<Config>,
    /// Shared with every Http object whose settings are equal ([`Transport::shared`]).
    transport: RwLock<Arc<Transport>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.config.read().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("HttpClient")
            .field("key", &c.key)
            .field("auth", &c.auth)
            .field("session_log", &c.log.as_ref().map(|l| l.path().to_path_buf()))
            .field("request_headers", &c.headers)
            .finish()
    }
}

/// Snapshot of the configuration for one call, so setters on other threads never tear it.
struct CallConfig {
    key: Option<Arc<EcKey>>,
    assertion_key: Option<Arc<EcKey>>,
    auth: Option<Arc<AuthConfig>>,
    log: Option<Arc<SessionLog>>,
    headers: Arc<RequestHeaders>,
    /// The Http object's transport (its connection pool) with this call's deadline: every
    /// request of the call, token and metadata requests included, ends by it.
    transport: Transport,
}

/// Checks an HTTP method name: an RFC 9110 token (DPoP's `htm` is the method as sent), and
/// not one whose meaning breaks a request API: CONNECT opens a tunnel, not a request; TRACE
/// (and IIS's TRACK) echo the request back, so the `Authorization` token and the `DPoP`
/// proof would come back in the response body (cross-site tracing). Refused in any case
/// (spelling), as servers and proxies often compare methods case-insensitively.
fn valid_method(m: &str) -> Result<()> {
    let token = !m.is_empty() && m.len() <= 32 && m.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return err(
            ErrorKind::InvalidArgument,
            "the HTTP method is not a valid method name (an RFC 9110 token of up to 32 letters, digits and !#$%&'*+-.^_`|~)",
        );
    }
    for (name, why) in [
        ("CONNECT", "it opens a tunnel, it is not a request"),
        ("TRACE", "the server would echo the access token and the DPoP proof back in the body"),
        ("TRACK", "the server would echo the access token and the DPoP proof back in the body"),
    ] {
        if m.eq_ignore_ascii_case(name) {
            return err(ErrorKind::InvalidArgument, format!("the HTTP method {name} is not supported: {why}"));
        }
    }
    Ok(())
}

impl HttpClient {
    pub fn new() -> Self {
        let transport = Transport::shared(Settings::default()).expect("the default settings are valid");
        HttpClient { config: RwLock::default(), transport: RwLock::new(transport) }
    }

    /// The configuration of a call that starts now, with its deadline (request_timeout).
    fn snapshot(&self) -> CallConfig {
        self.snapshot_within(None)
    }

    /// [`HttpClient::snapshot`] with a deadline of at most `budget` from now.
    fn snapshot_within(&self, budget: Option<std::time::Duration>) -> CallConfig {
        let transport = {
            let shared = self.transport.read().unwrap_or_else(|e| e.into_inner());
            let whole = shared.settings.request_timeout;
            shared.for_call(Deadline::after(budget.map_or(whole, |b| b.min(whole))))
        };
        let c = self.config.read().unwrap_or_else(|e| e.into_inner());
        CallConfig {
            key: c.key.clone(),
            assertion_key: c.assertion_key.clone(),
            auth: c.auth.clone(),
            log: c.log.clone(),
            headers: c.headers.clone(),
            transport,
        }
    }

    pub fn set_dpop_key(&self, key: Arc<EcKey>) {
        self.config.write().unwrap_or_else(|e| e.into_inner()).key = Some(key);
    }

    /// The key that signs private_key_jwt client assertions (the DPoP key when not set).
    pub fn set_client_assertion_key(&self, key: Option<Arc<EcKey>>) {
        self.config.write().unwrap_or_else(|e| e.into_inner()).assertion_key = key;
    }

    /// Sets the AuthToken JSON; the token itself is fetched on the first request.
    pub fn set_auth_token(&self, json: &str) -> Result<()> {
        let auth = AuthConfig::from_json_shared(json)?;
        self.config.write().unwrap_or_else(|e| e.into_inner()).auth = Some(auth);
        Ok(())
    }

    pub fn auth_config(&self) -> Option<Arc<AuthConfig>> {
        self.config.read().unwrap_or_else(|e| e.into_inner()).auth.clone()
    }

    /// Appends the session log to `path` (rotated at 10 MiB, see [`SessionLog`]); `None`
    /// or an empty path stops logging.
    pub fn set_session_log(&self, path: Option<&Path>) -> Result<()> {
        self.set_session_log_with_limit(path, super::session_log::DEFAULT_MAX_LOG_SIZE)
    }

    /// [`HttpClient::set_session_log`], rotating the file to `<path>.1` at `max_bytes`.
    pub fn set_session_log_with_limit(&self, path: Option<&Path>, max_bytes: u64) -> Result<()> {
        let log = match path {
            Some(p) if !p.as_os_str().is_empty() => Some(Arc::new(SessionLog::open_with_limit(p, max_bytes)?)),
            _ => None,
        };
        self.config.write().unwrap_or_else(|e| e.into_inner()).log = log;
        Ok(())
    }

    pub fn session_log_path(&self) -> Option<String> {
        let c = self.config.read().unwrap_or_else(|e| e.into_inner());
        c.log.as_ref().map(|l| l.path().display().to_string())
    }

    /// Sends `name: value` on every API request of this object from now on, replacing an
    /// earlier value of that name (names compare case-insensitively). Never sent on token
    /// or metadata requests, and never to another origin than the one a call was given
    /// (a redirect elsewhere drops them, like the credentials). Names must be RFC 9110
    /// tokens and values single lines without NUL; `Authorization`, `DPoP`, `Host`,
    /// `Content-Length`, `Transfer-Encoding`, `Connection` (and the other hop-by-hop
    /// headers) are refused with a text that says why. At most
    /// [`super::http::headers::MAX_REQUEST_HEADERS`] headers. A `Content-Type` given to a call
    /// replaces one set here for that call. Credential-like headers (`Cookie`,
    /// `X-Api-Key`, `*Token*`, ...) are `****` in the session log.
    pub fn set_request_header(&self, name: &str, value: &str) -> Result<()> {
        super::http::headers::check(name, value)?;
        let mut c = self.config.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (*c.headers).clone();
        next.set(name, value)?;
        c.headers = Arc::new(next);
        Ok(())
    }

    /// Stops sending the header `name` (any spelling). Returns whether it was set. A name
    /// that is not a valid header name is an error.
    pub fn remove_request_header(&self, name: &str) -> Result<bool> {
        super::http::headers::check_name(name)?;
        let mut c = self.config.write().unwrap_or_else(|e| e.into_inner());
        if c.headers.get(name).is_none() {
            return Ok(false);
        }
        let mut next = (*c.headers).clone();
        let removed = next.remove(name);
        c.headers = Arc::new(next);
        Ok(removed)
    }

    /// Stops sending every header set with [`HttpClient::set_request_header`].
    pub fn clear_request_headers(&self) {
        self.config.write().unwrap_or_else(|e| e.into_inner()).headers = Arc::default();
    }

    /// The request headers set now, in the order they were first set.
    pub fn request_headers(&self) -> Vec<(String, String)> {
        let c = self.config.read().unwrap_or_else(|e| e.into_inner());
        c.headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    pub fn settings(&self) -> Settings {
        self.transport.read().unwrap_or_else(|e| e.into_inner()).settings.clone()
    }

    /// Switches to the process-wide transport (connection pool) for `settings`.
    pub fn set_settings(&self, settings: Settings) -> Result<()> {
        if settings.connect_timeout.is_zero() || settings.request_timeout.is_zero() || settings.max_response_size == 0 {
            return err(ErrorKind::InvalidArgument, "timeouts and the response size limit must be greater than 0");
        }
        let transport = Transport::shared(settings)?;
        *self.transport.write().unwrap_or_else(|e| e.into_inner()) = transport;
        Ok(())
    }

    /// GET `url` and return the response when its status is 2xx: its body as bytes, any
    /// byte values (credentials a server echoes back are `****`, as everywhere).
    pub fn quick_get_bytes(&self, url: &str) -> Result<Response> {
        self.request(Some("GET"), url, None, None)
    }

    /// GET `url` and return the body of a 2xx response as text.
    pub fn quick_get_str(&self, url: &str) -> Result<(String, Response)> {
        let resp = self.request(Some("GET"), url, None, None)?;
        let text = body_text(&resp)?;
        Ok((text, resp))
    }

    /// Sends a request and returns the response when its status is 2xx. A non-2xx status is
    /// an `HttpStatus` error that carries the response. With an AuthToken set, the request
    /// carries `Authorization: DPoP <token>` and a fresh proof; without one, it is sent plain.
    pub fn request(&self, method: Option<&str>, url: &str, content_type: Option<&str>, body: Option<&[u8]>) -> Result<Response> {
        let cc = self.snapshot();
        let _secrets = call_secrets(&cc);
        let resp =
            self.send_with(&cc, method.unwrap_or("GET"), url, content_type, body).map_err(crate::core::error::scrub_error_of_call)?;
        // Whatever a server echoes back of the call's credentials is masked in what the
        // caller gets: the body of a 2xx as well as the error text and response of a failure.
        let resp = redact::with_call(|s| {
            let mut resp = resp;
            s.scrub_response(&mut resp);
            resp
        });
        if resp.is_success() {
            return Ok(resp);
        }
        Err(crate::core::error::scrub_error_of_call(status_error(url, &resp).with_response(resp)))
    }

    /// Like [`HttpClient::request`] but any status is returned as a response.
    /// Redirects (when enabled) are followed here: credentials (`Authorization`, `DPoP`)
    /// go only to the origin of `url`, and only until the chain leaves it (a hop that comes
    /// back was chosen by another origin); each hop there gets its own proof. The whole
    /// call, every hop and retry included, ends within `request_timeout`.
    pub fn send(&self, method: &str, url: &str, content_type: Option<&str>, body: Option<&[u8]>) -> Result<Response> {
        let cc = self.snapshot();
        let _secrets = call_secrets(&cc);
        let mut resp = self.send_with(&cc, method, url, content_type, body).map_err(crate::core::error::scrub_error_of_call)?;
        redact::with_call(|s| s.scrub_response(&mut resp));
        Ok(resp)
    }

    /// [`HttpClient::send`] with `headers` added for this call only, on top of those set
    /// with [`HttpClient::set_request_header`] (replacing one of the same name), each checked
    /// and treated like them (same origin only, credential-like ones masked). For a gateway
    /// that forwards its callers' headers through one shared Http object. The call ends
    /// within `budget` when one is given (and never later than request_timeout): what is
    /// left of a request's deadline after it waited in the gateway's queue.
    pub fn send_with_headers(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        content_type: Option<&str>,
        body: Option<&[u8]>,
        budget: Option<std::time::Duration>,
    ) -> Result<Response> {
        let mut cc = self.snapshot_within(budget);
        if !headers.is_empty() {
            let mut next = (*cc.headers).clone();
            for (name, value) in headers {
                crate::core::headers::check(name, value)?;
                next.set(name, value)?;
            }
            cc.headers = Arc::new(next);
        }
        let _secrets = call_secrets(&cc);
        let mut resp = self.send_with(&cc, method, url, content_type, body).map_err(crate::core::error::scrub_error_of_call)?;
        redact::with_call(|s| s.scrub_response(&mut resp));
        Ok(resp)
    }

    /// [`HttpClient::send`] with the configuration snapshot of the call.
    fn send_with(&self, cc: &CallConfig, method: &str, url: &str, content_type: Option<&str>, body: Option<&[u8]>) -> Result<Response> {
        valid_method(method)?;
        let original = Target::parse(url)?;
        if let Some(ct) = content_type {
            if ct.contains(['\r', '\n']) {
                return err(ErrorKind::InvalidArgument, "the content type contains a line break");
            }
        }
        let mut target = original.clone();
        let mut method = method.to_string();
        let mut content_type = content_type.filter(|c| !c.is_empty());
        let mut body = body;
        let mut hops = 0;
        let mut retries = Retries::default();
        let mut left_origin = false;
        let deadline = cc.transport.deadline();
        loop {
            left_origin |= target.origin != original.origin;
            let resp = self
                .send_one(cc, &method, &target, content_type, body, !left_origin, &mut retries)
                .map_err(|e| with_progress(e, &original, hops, &retries))?;
            if !cc.transport.settings.follow_redirects || !matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
                return Ok(resp);
            }
            let Some(location) = resp.header("location") else { return Ok(resp) };
            if hops == MAX_REDIRECTS {
                return Err(Error::new(ErrorKind::HttpStatus, format!("{} redirected more than {MAX_REDIRECTS} times", original.htu))
                    .with_response(resp));
            }
            let next = resolve_location(&target, location).map_err(|e| {
                Error::new(ErrorKind::HttpStatus, format!("redirect from {} not followed: {}", target.htu, e.message))
                    .with_response(resp.clone())
            })?;
            if resp.status == 303 || (matches!(resp.status, 301 | 302) && method == "POST") {
                method = "GET".to_string();
                body = None;
                content_type = None;
            }
            hops += 1;
            if let Err(e) = deadline.check(|| format!(" before redirect hop {hops} to {}", next.htu)) {
                return Err(with_progress(e, &original, hops - 1, &retries).with_response(resp));
            }
            target = next;
        }
    }

    /// One request: plain, or with the token and a proof (and the nonce/invalid_token
    /// retries) when an AuthToken is set and `with_credentials` allows it. `retries` are
    /// the call's, shared with its other hops.
    #[allow(clippy::too_many_arguments)]
    fn send_one(
        &self,
        cc: &CallConfig,
        method: &str,
        target: &Target,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        with_credentials: bool,
        retries: &mut Retries,
    ) -> Result<Response> {
        let mut base_headers = Vec::with_capacity(4 + cc.headers.len());
        // The caller's headers go only where the credentials would: the original origin,
        // until the chain leaves it.
        if with_credentials {
            for (k, v) in cc.headers.iter() {
                if content_type.is_some() && k.eq_ignore_ascii_case("content-type") {
                    continue;
                }
                base_headers.push((k.to_string(), v.to_string()));
            }
        }
        if let Some(ct) = content_type {
            base_headers.push(("Content-Type".to_string(), ct.to_string()));
        }
        let log = cc.log.as_deref();
        let auth = match cc.auth.as_deref() {
            Some(a) if with_credentials => a,
            _ => {
                let plain = Request { method, target, headers: base_headers, authorization: None, body, role: Role::Resource };
                return cc.transport.send(plain, log, &[]);
            }
        };
        let Some(key) = cc.key.as_deref() else {
            return err(ErrorKind::NoKey, "an AuthToken is set but no DPoP key: call set_dpop_key with a loaded or generated key first");
        };
        let ctx = FetchContext { transport: &cc.transport, log, assertion_key: cc.assertion_key.as_deref() };
        let mut token = get_token(auth, key, &ctx, None)?;
        let server = Server {
            role: nonce::Role::ResourceServer,
            origin: &target.origin,
            who: &target.origin,
            algs: None,
            refusal: |resp| if resp.status == 401 { challenge::dpop_error(&resp.header_all("www-authenticate")) } else { None },
            clock_skew_correction: auth.clock_skew_correction,
            max_clock_skew: auth.max_clock_skew,
            log,
        };
        loop {
            let answer = exchange(&server, key, cc.transport.deadline(), retries, |attempt| {
                let mut headers = base_headers.clone();
                if token.is_dpop() {
                    headers.push(("DPoP".to_string(), attempt.proof(method, &target.htu, Some(token.ath()))?));
                }
                let secrets = [auth.secret(), token.value()];
                let authorization = Some(token.authorization());
                cc.transport.send(Request { method, target, headers, authorization, body, role: Role::Resource }, log, &secrets)
            })?;
            match answer {
                Answer::Final(resp) => return Ok(resp),
                Answer::Refused { error, .. } if error == "invalid_token" && !retries.token => {
                    retries.token = true;
                    token = get_token(auth, key, &ctx, Some(&token))?;
                }
                Answer::Refused { resp, error, hint: Some(hint) } if error == "invalid_dpop_proof" => {
                    let base = status_error(&target.url, &resp);
                    let msg = scrub(&format!("{}; {hint}", base.message), &[auth.secret(), token.value()]);
                    return Err(Error::new(ErrorKind::DpopProof, msg).with_response(resp));
                }
                Answer::Refused { resp, .. } => return Ok(resp),
            }
        }
    }
}

/// Adds where the call was to a timeout: the redirect hop and the retries already made.
fn with_progress(mut e: Error, original: &Target, hops: u32, retries: &Retries) -> Error {
    if e.kind == ErrorKind::Timeout {
        let done = retries.describe();
        if hops > 0 {
            let after = if done.is_empty() { String::new() } else { format!(", after {done}") };
            e.message.push_str(&format!("; the call to {} was at redirect hop {hops}{after}", original.htu));
        } else if !done.is_empty() {
            e.message.push_str(&format!("; the call to {} had made {done}", original.htu));
        }
    }
    e
}

/// Whether a URI reference begins with a scheme (RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT /
/// "+" / "-" / "." ) ":"`, before any '/', '?' or '#'). Anything else is a relative
/// reference, even when its query or path holds "://" (`/next?u=https://x`).
fn has_scheme(reference: &str) -> bool {
    let Some(colon) = reference.find([':', '/', '?', '#']).filter(|&i| reference.as_bytes()[i] == b':') else {
        return false;
    };
    let scheme = &reference[..colon];
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Starts the call's secret set (see [`redact::call_scope`]) with the client secret.
fn call_secrets(cc: &CallConfig) -> redact::CallScope {
    let scope = redact::call_scope();
    if let Some(auth) = cc.auth.as_deref() {
        redact::remember(|s| s.add_shared(auth.masked_secret()));
    }
    scope
}

/// Resolves a `Location` value against the current URL (RFC 3986 §5, without dot-segment
/// removal): absolute, scheme-relative, absolute-path, query-only and relative-path
/// references. The fragment is dropped (it is never sent).
fn resolve_location(base: &Target, location: &str) -> Result<Target> {
    let location = location.trim();
    let location = location.split_once('#').map_or(location, |(l, _)| l);
    if has_scheme(location) {
        return Target::parse(location);
    }
    let scheme = base.origin.split("://").next().unwrap_or("https");
    if let Some(rest) = location.strip_prefix("//") {
        return Target::parse(&format!("{scheme}://{rest}"));
    }
    if location.is_empty() {
        return Ok(base.clone());
    }
    if location.starts_with('/') {
        return Target::parse(&format!("{}{location}", base.origin));
    }
    if location.starts_with('?') {
        return Target::parse(&format!("{}{location}", base.htu));
    }
    let dir = base.htu.rfind('/').map_or(base.htu.as_str(), |i| &base.htu[..=i]);
    Target::parse(&format!("{dir}{location}"))
}

fn body_text(resp: &Response) -> Result<String> {
    match std::str::from_utf8(&resp.body) {
        Ok(s) if !s.contains('\0') => Ok(s.to_string()),
        _ => Err(Error::new(
            ErrorKind::ResponseNotText,
            format!("the response body ({} bytes) is not UTF-8 text; read it as bytes instead", resp.body.len()),
        )
        .with_response(resp.clone())),
    }
}

/// The error for a non-2xx response: the status and what the server said about it.
fn status_error(url: &str, resp: &Response) -> Error {
    let target = Target::parse(url).map(|t| t.htu).unwrap_or_default();
    let mut msg = format!("{target} answered HTTP {}", resp.status);
    let challenges = resp.header_all("www-authenticate");
    let dpop = challenge::parse(&challenges.join(", "));
    let c = dpop.iter().find(|c| c.scheme.eq_ignore_ascii_case("dpop")).or(dpop.first());
    let (body_error, body_description) = oauth_error(resp);
    let error = c.and_then(|c| c.param("error").map(str::to_string)).or(body_error);
    let description = c.and_then(|c| c.param("error_description").map(str::to_string)).or(body_description);
    // The server's words are masked before they are cut: a cut echo would not match.
    if let Some(e) = error {
        msg.push_str(&format!(": {}", redact::scrub_for_call(&e).chars().take(100).collect::<String>()));
    }
    if let Some(d) = description {
        // Without its control characters before it is masked (a secret split by them).
        msg.push_str(&format!(" ({})", redact::scrub_for_call(&d.replace(char::is_control, "")).chars().take(300).collect::<String>()));
    }
    if (300..400).contains(&resp.status) {
        if let Some(loc) = resp.header("location") {
            msg.push_str(&format!("; redirect to {} not followed", redact::scrub_for_call(loc).chars().take(200).collect::<String>()));
        }
    }
    Error::new(ErrorKind::HttpStatus, redact::scrub_for_call(&msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_tokens_and_not_connect_or_trace() {
        for ok in ["GET", "POST", "PATCH", "PROPFIND", "M-SEARCH", "get"] {
            assert!(valid_method(ok).is_ok(), "{ok}");
        }
        for bad in ["", "GE T", "GET\r\nX: y", "G(T", "CONNECT", "connect", "TRACE", "Trace", "TRACK", &"X".repeat(33)] {
            let e = valid_method(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{bad}");
        }
        assert!(valid_method("TRACE").unwrap_err().message.contains("echo"));
    }

    #[test]
    fn locations_resolve_against_the_current_url() {
        let base = Target::parse("http://a.test:8080/api/v1/items?x=1").unwrap();
        assert_eq!(resolve_location(&base, "https://b.test/x").unwrap().htu, "https://b.test/x");
        assert_eq!(resolve_location(&base, "//c.test/y").unwrap().htu, "http://c.test/y");
        assert_eq!(resolve_location(&base, "/root?q=1").unwrap().url, "http://a.test:8080/root?q=1");
        assert_eq!(resolve_location(&base, "other").unwrap().htu, "http://a.test:8080/api/v1/other");
        assert!(resolve_location(&base, "ftp://x/").is_err());
        assert_eq!(resolve_location(&base, "?q=2").unwrap().url, "http://a.test:8080/api/v1/items?q=2");
        assert_eq!(resolve_location(&base, "#top").unwrap().url, base.url);
        assert_eq!(resolve_location(&base, "HTTPS://B.test/x#frag").unwrap().url, "HTTPS://B.test/x");
    }

    #[test]
    fn a_query_with_a_scheme_in_it_is_still_a_relative_reference() {
        let base = Target::parse("http://a.test/dir/page").unwrap();
        let r = resolve_location(&base, "/next?u=https://x.test/y").unwrap();
        assert_eq!(r.url, "http://a.test/next?u=https://x.test/y");
        assert_eq!(r.origin, "http://a.test");
        let r = resolve_location(&base, "next?x=a://b").unwrap();
        assert_eq!(r.url, "http://a.test/dir/next?x=a://b");
        let r = resolve_location(&base, "sub/leaf#x://y").unwrap();
        assert_eq!(r.url, "http://a.test/dir/sub/leaf");
        for (reference, scheme) in [
            ("https://b.test/", true),
            ("a+b-c.d:rest", true),
            ("1abc:rest", false),
            ("next?x=a://b", false),
            ("/p:q", false),
            ("seg/x:y", false),
            (":nothing", false),
            ("", false),
        ] {
            assert_eq!(has_scheme(reference), scheme, "{reference}");
        }
    }
}
