//! The AuthToken description and the process-wide access-token cache.
//!
//! One token fetch per token lifetime: tokens are cached process-wide, keyed by everything
//! that makes a token different (endpoint, client, a hash of the secret, scope, audience,
//! resource, extra fields, key thumbprint), so a second Http object with the same settings
//! reuses the token. Concurrent callers wait for one fetch (single flight); while a token
//! that is still valid is being refreshed, other callers keep using it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::challenge;
use super::error::{Error, ErrorKind, ResponseInfo, Result, err, shorten};
use super::form;
use super::http::{Request, Transport};
use super::key::EcKey;
use super::nonce;
use super::proof::{Target, client_assertion, make_proof};
use super::{clock, discovery};
use super::redact::{self, scrub};
use super::session_log::SessionLog;

/// Lifetime assumed when a token response has no `expires_in` (RFC 6749 makes it optional).
pub const DEFAULT_EXPIRES_IN: u64 = 300;
/// A token is renewed when fewer than this many seconds, or 10% of its lifetime, remain
/// (whichever is smaller) — but never later than [`MIN_REFRESH_MARGIN`] before it expires,
/// because servers count `exp` in whole seconds.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
pub const MIN_REFRESH_MARGIN: Duration = Duration::from_secs(1);

/// How long before expiry a token of this lifetime is renewed.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    REFRESH_MARGIN.min(lifetime / 10).max(MIN_REFRESH_MARGIN.min(lifetime / 2))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body (RFC 6749 §2.3.1), the default.
    SecretPost,
    /// HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1).
    SecretBasic,
    /// A signed client assertion (RFC 7523, OpenID Connect `private_key_jwt`).
    PrivateKeyJwt,
}

/// The `aud` of a private_key_jwt client assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssertionAudience {
    /// The token endpoint URL (what Okta and most servers expect), the default.
    TokenEndpoint,
    /// The issuer identifier.
    Issuer,
    /// An explicit value.
    Value(String),
}

/// Members of the AuthToken JSON that are settings, not form fields.
const KNOWN: &[&str] = &[
    "token_endpoint",
    "issuer",
    "metadata_url",
    "client_assertion_audience",
    "client_assertion_kid",
    "clock_skew_correction",
    "client_id",
    "client_secret",
    "scope",
    "audience",
    "resource",
    "client_auth_method",
    "token_endpoint_auth_method",
    "allow_bearer",
    "default_expires_in",
];

/// Form fields the client sets itself; the AuthToken JSON may not override them.
const RESERVED: &[&str] = &["grant_type", "client_assertion", "client_assertion_type"];

pub struct AuthConfig {
    /// Given directly, or `None` when it comes from discovery (`issuer`, `metadata_url`).
    pub token_endpoint: Option<Target>,
    pub issuer: Option<String>,
    pub metadata_url: Option<Target>,
    pub client_id: String,
    client_secret: Option<Zeroizing<String>>,
    pub assertion_audience: AssertionAudience,
    pub assertion_kid: Option<String>,
    /// Retry once with `iat` on the server's clock when a proof is refused and the clocks
    /// differ (default on).
    pub clock_skew_correction: bool,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub client_auth: ClientAuth,
    pub allow_bearer: bool,
    pub default_expires_in: u64,
    pub extra: Vec<(String, String)>,
    /// Hash of everything above except the key; combined with the key's jkt for the cache.
    fingerprint: [u8; 32],
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("token_endpoint", &self.token_endpoint.as_ref().map(|t| &t.url))
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"****")
            .field("scope", &self.scope)
            .field("audience", &self.audience)
            .field("resource", &self.resource)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

fn json_scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl AuthConfig {
    /// Parses the AuthToken JSON. Required: `token_endpoint`, `client_id`, `client_secret`.
    /// Optional: `scope`, `audience`, `resource`, `client_auth_method`
    /// (`client_secret_post` | `client_secret_basic`), `allow_bearer`, `default_expires_in`;
    /// any other string member is sent as an extra form field.
    pub fn from_json(text: &str) -> Result<AuthConfig> {
        let mut v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::new(ErrorKind::AuthToken, format!("the AuthToken is not valid JSON: {e}")))?;
        let result = Self::from_value(&v);
        super::redact::wipe_json(&mut v);
        result
    }

    fn from_value(v: &serde_json::Value) -> Result<AuthConfig> {
        let Some(obj) = v.as_object() else {
            return err(ErrorKind::AuthToken, "the AuthToken must be a JSON object");
        };
        let get = |name: &str| -> Result<Option<String>> {
            match obj.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(x) => match json_scalar(x) {
                    Some(s) if s.is_empty() => Ok(None),
                    Some(s) => Ok(Some(s)),
                    None => err(ErrorKind::AuthToken, format!("AuthToken member \"{name}\" must be a string")),
                },
            }
        };
        let require = |name: &str| -> Result<String> {
            get(name)?.ok_or_else(|| {
                Error::new(ErrorKind::AuthToken, format!("the AuthToken JSON has no \"{name}\" (it is required)"))
            })
        };
        let url = |name: &str| -> Result<Option<Target>> {
            get(name)?
                .map(|u| {
                    Target::parse(&u)
                        .map_err(|e| Error::new(ErrorKind::AuthToken, format!("AuthToken \"{name}\": {}", e.message)))
                })
                .transpose()
        };
        let token_endpoint = url("token_endpoint")?;
        let metadata_url = url("metadata_url")?;
        let issuer = get("issuer")?;
        if let Some(i) = &issuer {
            Target::parse(i).map_err(|e| Error::new(ErrorKind::AuthToken, format!("AuthToken \"issuer\": {}", e.message)))?;
        }
        if token_endpoint.is_none() && metadata_url.is_none() && issuer.is_none() {
            return err(
                ErrorKind::AuthToken,
                "the AuthToken JSON has no \"token_endpoint\" (it is required, or \"issuer\" to discover it from the server's metadata)",
            );
        }
        let client_id = require("client_id")?;
        let method = get("client_auth_method")?.or(get("token_endpoint_auth_method")?);
        let client_auth = match method.as_deref() {
            None | Some("client_secret_post") => ClientAuth::SecretPost,
            Some("client_secret_basic") => ClientAuth::SecretBasic,
            Some("private_key_jwt") => ClientAuth::PrivateKeyJwt,
            Some(other) => {
                return err(
                    ErrorKind::AuthToken,
                    format!(
                        "AuthToken \"client_auth_method\" '{}' is not supported: use client_secret_post, client_secret_basic or private_key_jwt",
                        shorten(other)
                    ),
                );
            }
        };
        let client_secret = match (get("client_secret")?, client_auth) {
            (Some(s), _) => Some(Zeroizing::new(s)),
            (None, ClientAuth::PrivateKeyJwt) => None,
            (None, _) => {
                return err(
                    ErrorKind::AuthToken,
                    "the AuthToken JSON has no \"client_secret\" (it is required for client_secret_post and \
                     client_secret_basic; with \"client_auth_method\": \"private_key_jwt\" a signed assertion is sent instead)",
                );
            }
        };
        let assertion_audience = match get("client_assertion_audience")?.as_deref() {
            None | Some("token_endpoint") => AssertionAudience::TokenEndpoint,
            Some("issuer") => {
                if issuer.is_none() {
                    return err(
                        ErrorKind::AuthToken,
                        "AuthToken \"client_assertion_audience\": \"issuer\" needs \"issuer\" in the AuthToken too",
                    );
                }
                AssertionAudience::Issuer
            }
            Some(other) => AssertionAudience::Value(other.to_string()),
        };
        let clock_skew_correction = match get("clock_skew_correction")?.as_deref() {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(_) => return err(ErrorKind::AuthToken, "AuthToken \"clock_skew_correction\" must be true or false"),
        };
        let allow_bearer = match get("allow_bearer")?.as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => return err(ErrorKind::AuthToken, format!("AuthToken \"allow_bearer\" must be true or false, not '{other}'")),
        };
        let default_expires_in = match get("default_expires_in")? {
            None => DEFAULT_EXPIRES_IN,
            Some(s) => match s.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => return err(ErrorKind::AuthToken, "AuthToken \"default_expires_in\" must be a positive number of seconds"),
            },
        };
        let mut extra = Vec::new();
        for (k, val) in obj {
            if KNOWN.contains(&k.as_str()) {
                continue;
            }
            if RESERVED.contains(&k.as_str()) {
                return err(ErrorKind::AuthToken, format!("AuthToken member \"{k}\" is set by dpopkit and cannot be given"));
            }
            match json_scalar(val) {
                Some(s) => extra.push((k.clone(), s)),
                None => return err(ErrorKind::AuthToken, format!("AuthToken member \"{k}\" must be a string")),
            }
        }
        extra.sort();
        let mut cfg = AuthConfig {
            token_endpoint,
            issuer,
            metadata_url,
            client_id,
            client_secret,
            assertion_audience,
            assertion_kid: get("client_assertion_kid")?,
            clock_skew_correction,
            scope: get("scope")?,
            audience: get("audience")?,
            resource: get("resource")?,
            client_auth,
            allow_bearer,
            default_expires_in,
            extra,
            fingerprint: [0; 32],
        };
        cfg.fingerprint = cfg.compute_fingerprint();
        Ok(cfg)
    }

    fn compute_fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut field = |s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        field(self.token_endpoint.as_ref().map_or("\u{0}", |t| &t.url));
        field(self.issuer.as_deref().unwrap_or("\u{0}"));
        field(self.metadata_url.as_ref().map_or("\u{0}", |t| &t.url));
        field(&self.client_id);
        field(self.client_secret.as_deref().map_or("\u{0}", |s| s.as_str()));
        field(&format!("{:?} {:?} {:?}", self.client_auth, self.assertion_audience, self.assertion_kid));
        for o in [&self.scope, &self.audience, &self.resource] {
            field(o.as_deref().unwrap_or("\u{0}"));
        }
        field(if self.allow_bearer { "bearer" } else { "dpop" });
        for (k, v) in &self.extra {
            field(k);
            field(v);
        }
        h.finalize().into()
    }

    /// The client secret ("" with private_key_jwt): a value never to be written anywhere.
    pub fn secret(&self) -> &str {
        self.client_secret.as_deref().map_or("", |s| s.as_str())
    }
}

/// A cached access token. `Debug` never shows the value.
pub struct AccessToken {
    value: Zeroizing<String>,
    /// `DPoP`, or `Bearer` when `allow_bearer` let one through.
    pub token_type: String,
    pub expires_at: Instant,
    pub refresh_at: Instant,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken").field("token_type", &self.token_type).field("value", &"****").finish()
    }
}

impl AccessToken {
    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn is_dpop(&self) -> bool {
        self.token_type.eq_ignore_ascii_case("dpop")
    }
}

#[derive(Default)]
struct SlotState {
    token: Option<Arc<AccessToken>>,
    fetching: bool,
    /// Number of completed fetches; a waiter compares it to know its fetch ended.
    round: u64,
    failure: Option<(u64, Error)>,
}

#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    done: Condvar,
}

static CACHE: LazyLock<Mutex<HashMap<[u8; 32], Arc<Slot>>>> = LazyLock::new(Default::default);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn slot_for(cfg: &AuthConfig, key: &EcKey, assertion_key: Option<&EcKey>) -> Arc<Slot> {
    let mut h = Sha256::new();
    h.update(cfg.fingerprint);
    h.update(key.jkt().as_bytes());
    if cfg.client_auth == ClientAuth::PrivateKeyJwt {
        h.update(assertion_key.unwrap_or(key).jkt().as_bytes());
    }
    let id: [u8; 32] = h.finalize().into();
    let mut cache = lock(&CACHE);
    if cache.len() >= 1024 && !cache.contains_key(&id) {
        let now = Instant::now();
        cache.retain(|_, s| {
            let st = lock(&s.state);
            st.fetching || st.token.as_ref().is_some_and(|t| t.expires_at > now)
        });
    }
    cache.entry(id).or_default().clone()
}

/// The token currently cached for (cfg, key), without fetching one.
pub fn cached(cfg: &AuthConfig, key: &EcKey, assertion_key: Option<&EcKey>) -> Option<Arc<AccessToken>> {
    let slot = slot_for(cfg, key, assertion_key);
    let st = lock(&slot.state);
    st.token.clone()
}

/// Forgets all cached tokens (their memory is wiped when the last user drops them).
pub fn clear_cache() {
    discovery::clear();
    clock::clear();
    let mut cache = lock(&CACHE);
    for slot in cache.values() {
        lock(&slot.state).token = None;
    }
    cache.clear();
}

/// Resets `fetching` even if the fetch panics, so waiters are never stranded.
struct FetchGuard<'a> {
    slot: &'a Slot,
    result: Option<Result<Arc<AccessToken>>>,
}

impl Drop for FetchGuard<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.slot.state);
        st.fetching = false;
        st.round += 1;
        let round = st.round;
        match self.result.take() {
            Some(Ok(t)) => {
                st.token = Some(t);
                st.failure = None;
            }
            Some(Err(e)) => st.failure = Some((round, e)),
            None => st.failure = Some((round, Error::new(ErrorKind::Internal, "internal error while fetching a token"))),
        }
        self.slot.done.notify_all();
    }
}

/// Everything a token fetch needs from the Http object that triggers it.
pub struct FetchContext<'a> {
    pub transport: &'a Transport,
    pub log: Option<&'a SessionLog>,
    /// Signs private_key_jwt assertions; the DPoP key when `None`.
    pub assertion_key: Option<&'a EcKey>,
}

/// Returns a valid token for (cfg, key), fetching one if needed. `stale` is a token the
/// resource server refused as `invalid_token`: it is dropped if it is still the cached one.
pub fn get_token(
    cfg: &AuthConfig,
    key: &EcKey,
    ctx: &FetchContext<'_>,
    stale: Option<&Arc<AccessToken>>,
) -> Result<Arc<AccessToken>> {
    let slot = slot_for(cfg, key, ctx.assertion_key);
    let mut st = lock(&slot.state);
    if let (Some(stale), Some(current)) = (stale, st.token.as_ref()) {
        if Arc::ptr_eq(stale, current) {
            st.token = None;
        }
    }
    let wait_limit = ctx.transport.settings.request_timeout * 3 + Duration::from_secs(1);
    loop {
        let now = Instant::now();
        if let Some(t) = &st.token {
            if now < t.refresh_at || (st.fetching && now < t.expires_at) {
                return Ok(t.clone());
            }
        }
        if !st.fetching {
            break;
        }
        let my_round = st.round;
        let (guard, timeout) = slot.done.wait_timeout(st, wait_limit).unwrap_or_else(|e| e.into_inner());
        st = guard;
        if timeout.timed_out() && st.fetching {
            return err(ErrorKind::Timeout, "timed out waiting for another thread's token request");
        }
        if let Some((round, e)) = &st.failure {
            if *round > my_round && st.token.is_none() {
                return Err(e.clone());
            }
        }
    }
    st.fetching = true;
    drop(st);
    let mut guard = FetchGuard { slot: &slot, result: None };
    let result = fetch_token(cfg, key, ctx).map(Arc::new);
    guard.result = Some(result.clone());
    drop(guard);
    result
}

/// The token endpoint to use, given or discovered; discovery also checks that the server
/// accepts the key's algorithm for DPoP.
fn resolve_endpoint(cfg: &AuthConfig, key: &EcKey, ctx: &FetchContext<'_>) -> Result<(Target, Option<String>)> {
    if let Some(t) = &cfg.token_endpoint {
        return Ok((t.clone(), cfg.issuer.clone()));
    }
    let meta = discovery::discover(cfg.issuer.as_deref(), cfg.metadata_url.as_ref(), ctx.transport, ctx.log)?;
    if let Some(algs) = &meta.dpop_algs {
        if !algs.iter().any(|a| a == key.alg()) {
            return Err(Error::new(
                ErrorKind::DpopProof,
                format!(
                    "the authorization server {} accepts DPoP proofs signed with {} only (dpop_signing_alg_values_supported), \
                     but the DPoP key is {}: load or generate a key for one of those algorithms",
                    meta.issuer,
                    algs.join(", "),
                    key.alg()
                ),
            ));
        }
    }
    Ok((meta.token_endpoint.clone(), Some(meta.issuer.clone())))
}

/// The `error` of a refused proof, from an OAuth error body or a DPoP challenge.
fn proof_error(resp: &ResponseInfo) -> Option<String> {
    oauth_error(resp).0.or_else(|| challenge::dpop_error(&resp.header_all("www-authenticate")))
}

/// After `use_dpop_nonce` from `who`: `Ok` to retry once with the nonce the server just
/// gave (a new one, never a loop), or the `DpopNonce` error that says why not.
pub fn nonce_retry(who: &str, given: Option<&str>, sent: Option<&str>, retried: &mut bool) -> Result<()> {
    if !*retried && given.is_some() && given != sent {
        *retried = true;
        return Ok(());
    }
    let why = if given.is_none() { "but sent no DPoP-Nonce header" } else { "again after a retry with the nonce it gave" };
    err(ErrorKind::DpopNonce, format!("{who} asked for a DPoP nonce (use_dpop_nonce) {why}"))
}

/// After `invalid_dpop_proof` from `origin`: `Ok` to retry with the server's clock (now
/// switched on), or `Err` with the text that explains the refusal when the clocks differ.
pub fn clock_skew_retry(origin: &str, correction: bool, already: bool, log: Option<&SessionLog>) -> Result<(), Option<String>> {
    let Some(offset) = clock::significant_offset(origin) else { return Err(None) };
    if correction && !already {
        clock::enable_correction(origin);
        if let Some(log) = log {
            log.note(&format!(
                "{origin} refused the DPoP proof (invalid_dpop_proof); its clock is {} this machine's \
                 (Date header). Retrying once with iat on the server's clock, and dating later proofs for it that way.",
                clock::describe(offset)
            ));
        }
        return Ok(());
    }
    let fix = if correction {
        "the retry with a corrected iat was refused too"
    } else {
        "fix this machine's clock (NTP), or remove \"clock_skew_correction\": \"false\" from the AuthToken so that \
         dpopkit dates its proofs on the server's clock"
    };
    Err(Some(format!("the server's clock is {} this machine's (Date header): {fix}", clock::describe(offset))))
}

/// [`fetch_token_once`] with the call's secrets masked in its error before the error is
/// shared with the threads that waited for this fetch.
fn fetch_token(cfg: &AuthConfig, key: &EcKey, ctx: &FetchContext<'_>) -> Result<AccessToken> {
    let _scope = redact::call_scope();
    redact::remember(|s| s.add_client_secret(&cfg.client_id, cfg.secret()));
    fetch_token_once(cfg, key, ctx).map_err(redact::scrub_error_of_call)
}

/// One client_credentials token request, with one retry when the server asks for a nonce
/// and one when it refuses the proof while its clock differs from ours.
fn fetch_token_once(cfg: &AuthConfig, key: &EcKey, ctx: &FetchContext<'_>) -> Result<AccessToken> {
    let (endpoint, issuer) = resolve_endpoint(cfg, key, ctx)?;
    let endpoint = &endpoint;
    let assertion_aud = match &cfg.assertion_audience {
        AssertionAudience::TokenEndpoint => endpoint.url.clone(),
        AssertionAudience::Issuer => issuer.clone().unwrap_or_default(),
        AssertionAudience::Value(v) => v.clone(),
    };
    let basic = (cfg.client_auth == ClientAuth::SecretBasic).then(|| {
        let mut creds = String::new();
        form::encode_component(&cfg.client_id, &mut creds);
        creds.push(':');
        form::encode_component(cfg.secret(), &mut creds);
        Zeroizing::new(format!("Basic {}", STANDARD.encode(creds.as_bytes())))
    });
    let secrets = [cfg.secret()];
    let mut retried_nonce = false;
    let mut retried_clock = false;
    loop {
        let iat = clock::iat_for(&endpoint.origin);
        // A new assertion (new jti) on every attempt: servers refuse a replayed one.
        let assertion = match cfg.client_auth {
            ClientAuth::PrivateKeyJwt => Some(Zeroizing::new(client_assertion(
                ctx.assertion_key.unwrap_or(key),
                &cfg.client_id,
                &assertion_aud,
                cfg.assertion_kid.as_deref(),
                iat,
            )?)),
            _ => None,
        };
        if let Some(a) = &assertion {
            redact::remember(|s| s.add_token(a));
        }
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        match cfg.client_auth {
            ClientAuth::SecretPost => {
                pairs.push(("client_secret", cfg.secret()));
                pairs.push(("client_id", &cfg.client_id));
            }
            ClientAuth::PrivateKeyJwt => {
                pairs.push(("client_id", &cfg.client_id));
                pairs.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
                pairs.push(("client_assertion", assertion.as_deref().map_or("", |a| a.as_str())));
            }
            ClientAuth::SecretBasic => {}
        }
        for (name, value) in [("scope", &cfg.scope), ("audience", &cfg.audience), ("resource", &cfg.resource)] {
            if let Some(v) = value {
                pairs.push((name, v));
            }
        }
        for (k, v) in &cfg.extra {
            pairs.push((k, v));
        }
        pairs.push(("grant_type", "client_credentials"));
        let body = Zeroizing::new(form::encode(&pairs));
        let sent_nonce = nonce::get(&endpoint.origin, key.jkt());
        let proof = make_proof(key, "POST", &endpoint.htu, None, sent_nonce.as_deref(), Some(iat))?;
        let mut headers = vec![
            ("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string()),
            ("Accept".to_string(), "application/json".to_string()),
            ("DPoP".to_string(), proof),
        ];
        if let Some(b) = &basic {
            headers.push(("Authorization".to_string(), b.to_string()));
        }
        let requested = Instant::now();
        let resp = ctx.transport.send(
            Request { method: "POST", target: endpoint, headers, body: Some(body.as_bytes()) },
            ctx.log,
            &secrets,
        )?;
        let given_nonce = resp.header("dpop-nonce").map(str::to_string);
        if let Some(n) = &given_nonce {
            nonce::set(&endpoint.origin, key.jkt(), n);
        }
        if resp.is_success() {
            let mut resp = resp;
            let parsed = parse_token_response(cfg, &resp, requested);
            // The body holds the access token: wipe it unless an error carries it along
            // (errors never show bodies in their texts; the last response is the caller's).
            return match parsed {
                Ok(t) => {
                    redact::remember(|s| s.add_token(t.value()));
                    zeroize::Zeroize::zeroize(&mut resp.body);
                    Ok(t)
                }
                Err(e) => {
                    // Refused after a 2xx (a Bearer token, a bad expires_in): the body still
                    // names a token; it is masked before the response goes anywhere.
                    let found = redact::secret_field_values(&resp.body);
                    redact::remember(|s| found.iter().for_each(|v| s.add_token(v)));
                    Err(e.with_response(resp))
                }
            };
        }
        let (error, description) = oauth_error(&resp);
        let refused = proof_error(&resp);
        if refused.as_deref() == Some("use_dpop_nonce") {
            let who = format!("token endpoint {}", endpoint.url);
            match nonce_retry(&who, given_nonce.as_deref(), sent_nonce.as_deref(), &mut retried_nonce) {
                Ok(()) => continue,
                Err(e) => return Err(e.with_response(resp)),
            }
        }
        let mut hint = None;
        if refused.as_deref() == Some("invalid_dpop_proof") {
            match clock_skew_retry(&endpoint.origin, cfg.clock_skew_correction, retried_clock, ctx.log) {
                Ok(()) => {
                    retried_clock = true;
                    continue;
                }
                Err(h) => hint = h,
            }
        }
        let mut msg = format!("token endpoint {} answered HTTP {}", endpoint.url, resp.status);
        if let Some(e) = &error {
            msg.push_str(&format!(": {e}"));
        }
        if let Some(d) = &description {
            msg.push_str(&format!(" ({d})"));
        }
        if (300..400).contains(&resp.status) {
            msg.push_str("; redirects are not followed for token requests");
        }
        let mentions_audience = [&error, &description].iter().any(|t| t.as_deref().is_some_and(|t| t.contains("audience")));
        if mentions_audience && cfg.audience.is_none() {
            msg.push_str("; the server wants an audience: add \"audience\" to the AuthToken");
        }
        if error.as_deref() == Some("invalid_client") {
            msg.push_str(match cfg.client_auth {
                ClientAuth::PrivateKeyJwt => {
                    "; check client_id, the key that signs the assertion (registered with the server?) and client_assertion_audience"
                }
                _ => "; check client_id, client_secret and client_auth_method",
            });
        }
        let kind = match hint {
            Some(h) => {
                msg.push_str(&format!("; {h}"));
                ErrorKind::DpopProof
            }
            None => ErrorKind::TokenEndpoint,
        };
        return Err(Error::new(kind, scrub(&msg, &secrets)).with_response(resp));
    }
}

/// `error` and `error_description` of an OAuth error body, length-limited.
pub fn oauth_error(resp: &ResponseInfo) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&resp.body) else {
        return (None, None);
    };
    // Masked before it is cut: a cut echo of a credential would no longer match it.
    let field = |n: &str| {
        v.get(n).and_then(|x| x.as_str()).map(|s| scrub(s, &[]).chars().filter(|c| !c.is_control()).take(300).collect())
    };
    (field("error"), field("error_description"))
}

/// Parses a 2xx token response (public for fuzzing and tests).
pub fn parse_token_response(cfg: &AuthConfig, resp: &ResponseInfo, requested: Instant) -> Result<AccessToken> {
    let url = cfg.token_endpoint.as_ref().map_or("(discovered)", |t| t.url.as_str());
    let bad = |what: &str| Error::new(ErrorKind::TokenResponse, format!("token endpoint {url} answered {} but {what}", resp.status));
    let mut v: serde_json::Value = serde_json::from_slice(&resp.body).map_err(|_| {
        let ct = resp.header("content-type").unwrap_or("no content type");
        bad(&format!("the body is not JSON ({ct}, {} bytes)", resp.body.len()))
    })?;
    let result = token_from_json(cfg, &v, requested, bad);
    super::redact::wipe_json(&mut v);
    result
}

fn token_from_json(
    cfg: &AuthConfig,
    v: &serde_json::Value,
    requested: Instant,
    bad: impl Fn(&str) -> Error,
) -> Result<AccessToken> {
    let url = cfg.token_endpoint.as_ref().map_or("(discovered)", |t| t.url.as_str());
    let Some(obj) = v.as_object() else { return Err(bad("the body is not a JSON object")) };
    let value = match obj.get("access_token") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Zeroizing::new(s.clone()),
        Some(_) => return Err(bad("\"access_token\" is not a non-empty string")),
        None => return Err(bad("the response has no \"access_token\"")),
    };
    let token_type = match obj.get("token_type") {
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => return Err(bad("the response has no \"token_type\"")),
    };
    let accepted = token_type.eq_ignore_ascii_case("dpop") || (token_type.eq_ignore_ascii_case("bearer") && cfg.allow_bearer);
    if !accepted {
        return Err(Error::new(
            ErrorKind::TokenNotBound,
            format!(
                "token endpoint {url} issued a '{}' token, not a DPoP-bound one: the server did not bind the \
                 token to the DPoP key (RFC 9449 §5). Enable DPoP for this client on the server, or set \
                 \"allow_bearer\": \"true\" in the AuthToken to accept it",
                token_type.chars().take(40).collect::<String>()
            ),
        ));
    }
    let expires_in = match obj.get("expires_in") {
        None | Some(serde_json::Value::Null) => cfg.default_expires_in,
        Some(serde_json::Value::Number(n)) => match n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)) {
            Some(n) => n,
            None => return Err(bad("\"expires_in\" is not a positive number")),
        },
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().map_err(|_| bad("\"expires_in\" is not a number"))?,
        Some(_) => return Err(bad("\"expires_in\" is not a number")),
    };
    let lifetime = Duration::from_secs(expires_in.min(10 * 365 * 86400));
    let expires_at = requested + lifetime;
    Ok(AccessToken { value, token_type, expires_at, refresh_at: expires_at - refresh_margin(lifetime) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"{"client_id":"m2m.dpop","client_secret":"secret","token_endpoint":"http://127.0.0.1:9/token","scope":"api"}"#;

    #[test]
    fn parses_the_sample_auth_token() {
        let c = AuthConfig::from_json(BASE).unwrap();
        assert_eq!(c.client_id, "m2m.dpop");
        assert_eq!(c.scope.as_deref(), Some("api"));
        assert_eq!(c.client_auth, ClientAuth::SecretPost);
        assert!(c.extra.is_empty());
        assert!(!format!("{c:?}").contains("\"secret\""));
    }

    #[test]
    fn missing_and_bad_members_are_named() {
        let e = AuthConfig::from_json(r#"{"client_id":"a","client_secret":"b"}"#).unwrap_err();
        assert!(e.message.contains("token_endpoint"), "{}", e.message);
        let e = AuthConfig::from_json("[]").unwrap_err();
        assert_eq!(e.kind, ErrorKind::AuthToken);
        let e = AuthConfig::from_json(r#"{"client_id":"a","client_secret":"b","token_endpoint":"ftp://x"}"#).unwrap_err();
        assert!(e.message.contains("token_endpoint"));
        let e = AuthConfig::from_json(r#"{"client_id":"a","client_secret":"b","token_endpoint":"http://x/t","grant_type":"password"}"#).unwrap_err();
        assert!(e.message.contains("grant_type"));
    }

    #[test]
    fn extra_fields_and_cache_identity() {
        let a = AuthConfig::from_json(r#"{"client_id":"a","client_secret":"b","token_endpoint":"http://x/t","foo":"bar"}"#).unwrap();
        assert_eq!(a.extra, vec![("foo".to_string(), "bar".to_string())]);
        let b = AuthConfig::from_json(r#"{"client_id":"a","client_secret":"c","token_endpoint":"http://x/t","foo":"bar"}"#).unwrap();
        assert_ne!(a.fingerprint, b.fingerprint, "a different secret is a different cache entry");
    }

    fn resp(body: &str) -> ResponseInfo {
        ResponseInfo { status: 200, headers: vec![], body: body.as_bytes().to_vec() }
    }

    #[test]
    fn refresh_margins() {
        let m = |s| refresh_margin(Duration::from_secs(s));
        assert_eq!(m(3600), Duration::from_secs(60));
        assert_eq!(m(300), Duration::from_secs(30));
        assert_eq!(m(4), Duration::from_secs(1));
        assert_eq!(m(2), Duration::from_secs(1));
        assert_eq!(m(1), Duration::from_millis(500));
        assert_eq!(m(0), Duration::ZERO);
    }

    #[test]
    fn token_responses() {
        let c = AuthConfig::from_json(BASE).unwrap();
        let now = Instant::now();
        let t = parse_token_response(&c, &resp(r#"{"access_token":"x","token_type":"DPoP","expires_in":300}"#), now).unwrap();
        assert_eq!(t.refresh_at, now + Duration::from_secs(270));
        let t = parse_token_response(&c, &resp(r#"{"access_token":"x","token_type":"dpop"}"#), now).unwrap();
        assert_eq!(t.expires_at, now + Duration::from_secs(DEFAULT_EXPIRES_IN));
        let t = parse_token_response(&c, &resp(r#"{"access_token":"x","token_type":"DPoP","expires_in":3600}"#), now).unwrap();
        assert_eq!(t.refresh_at, now + Duration::from_secs(3540));
        let e = parse_token_response(&c, &resp(r#"{"access_token":"x","token_type":"Bearer"}"#), now).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TokenNotBound);
        assert!(!e.message.contains("\"x\""));
        for bad in ["<html>", r#"{"token_type":"DPoP"}"#, r#"{"access_token":"x","token_type":"DPoP","expires_in":"soon"}"#, "[1]"] {
            let e = parse_token_response(&c, &resp(bad), now).unwrap_err();
            assert_eq!(e.kind, ErrorKind::TokenResponse, "{bad}");
        }
    }
}
