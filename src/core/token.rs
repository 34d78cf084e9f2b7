//! The AuthToken description and the process-wide access-token cache.
//!
//! One token fetch per token lifetime: tokens are cached process-wide, keyed by everything
//! that makes a token different (endpoint, client, a hash of the secret, scope, audience,
//! resource, extra fields, key thumbprint), so a second Http object with the same settings
//! reuses the token. Concurrent callers wait for one fetch (single flight); while a token
//! that is still valid is being refreshed, other callers keep using it.

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
use super::http::{Request, Role, Transport};
use super::key::EcKey;
use super::nonce;
use super::proof::{Target, client_assertion, make_proof_within};
use super::{clock, discovery};
use super::redact::{self, scrub};
use super::session_log::SessionLog;
use super::token_store;
use super::state::{BoundedLru, never_in_use, salted_hash, shared_arc, weightless};

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
    "max_clock_skew",
    "client_id",
    "client_secret",
    "scope",
    "audience",
    "resource",
    "client_auth_method",
    "token_endpoint_auth_method",
    "allow_bearer",
    "default_expires_in",
    "allow_insecure_http",
    "token_cache_dir",
];

/// Form fields the client sets itself; the AuthToken JSON may not override them.
const RESERVED: &[&str] = &["grant_type", "client_assertion", "client_assertion_type"];

/// A member `param:NAME` is sent as the form field `NAME` whatever it looks like: the way to
/// pass an extra parameter whose name is close to a known member (see `near_known`).
pub const EXTRA_PARAM_PREFIX: &str = "param:";

/// The known member that `name` is most likely a misspelling of: one within an edit
/// distance (insertions, deletions, substitutions, swaps of neighbours; ASCII case ignored)
/// of 1 for known names of up to 5 characters, 2 for longer ones. Unknown members are sent
/// as extra form fields, so `scpoe` would otherwise go out silently and the token come back
/// without the scope.
fn near_known(name: &str) -> Option<&'static str> {
    if name.len() > 40 {
        return None; // longer than any known name by far: no typo of one
    }
    let lower = name.to_ascii_lowercase();
    KNOWN
        .iter()
        .map(|k| (edit_distance(lower.as_bytes(), k.as_bytes()), *k))
        .filter(|(d, k)| *d <= if k.len() <= 5 { 1 } else { 2 })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance (Levenshtein plus swaps of adjacent bytes).
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// The extra form fields of an AuthToken: its unknown members, refused when reserved or when
/// they look like a misspelt known member (the text names both and the way to send such a
/// field on purpose); `param:NAME` sends `NAME` as it is.
fn extra_fields(obj: &serde_json::Map<String, serde_json::Value>) -> Result<Vec<(String, String)>> {
    let mut extra = Vec::new();
    for (k, val) in obj {
        if KNOWN.contains(&k.as_str()) {
            continue;
        }
        let (name, on_purpose) = match k.strip_prefix(EXTRA_PARAM_PREFIX) {
            Some(n) => (n, true),
            None => (k.as_str(), false),
        };
        if RESERVED.contains(&name) {
            return err(ErrorKind::AuthToken, format!("AuthToken member \"{}\" is set by dpopkit and cannot be given", shorten(k)));
        }
        if on_purpose && (name.is_empty() || KNOWN.contains(&name)) {
            return err(
                ErrorKind::AuthToken,
                format!("AuthToken member \"{}\": {EXTRA_PARAM_PREFIX} is for extra form fields; write \"{}\" itself", shorten(k), shorten(name)),
            );
        }
        if !on_purpose {
            if let Some(known) = near_known(name) {
                return err(
                    ErrorKind::AuthToken,
                    format!(
                        "AuthToken member \"{}\" is not one dpopkit knows: did you mean \"{known}\"? (Unknown members are sent \
                         as extra form fields of the token request; to send a field of that name on purpose, write \"{EXTRA_PARAM_PREFIX}{}\".)",
                        shorten(name),
                        shorten(name)
                    ),
                );
            }
        }
        match json_scalar(val) {
            Some(s) => extra.push((name.to_string(), s)),
            None => return err(ErrorKind::AuthToken, format!("AuthToken member \"{}\" must be a string", shorten(k))),
        }
    }
    extra.sort();
    Ok(extra)
}

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
    /// The largest server clock offset (seconds) that proofs are ever dated by
    /// (`max_clock_skew`, default [`clock::DEFAULT_MAX_SKEW`]); a server whose `Date` is
    /// further off gets local-time proofs and an error that says so.
    pub max_clock_skew: i64,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub client_auth: ClientAuth,
    pub allow_bearer: bool,
    /// Send the client secret or assertion over plain http to a host other than this
    /// machine (default off: see [`check_cleartext`]).
    pub allow_insecure_http: bool,
    pub default_expires_in: u64,
    pub extra: Vec<(String, String)>,
    /// The directory of the token cache shared with other processes of this user
    /// (`token_cache_dir`, checked when the AuthToken is set; see [`super::token_store`]).
    /// Not part of the fingerprint: it changes where a token is kept, not which token is
    /// used, so handles with and without it share the in-process cache entry.
    pub token_cache_dir: Option<std::path::PathBuf>,
    /// `token_cache_dir` as given (maybe relative): checked again, and resolved again, each
    /// time the same AuthToken text is set ([`AuthConfig::from_json_shared`]).
    token_cache_dir_given: Option<String>,
    /// Hash of everything above except the key and the cache directory; combined with the
    /// key's jkt for the cache.
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
            .field("token_cache_dir", &self.token_cache_dir)
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

    /// [`AuthConfig::from_json`] through a small process-wide cache keyed by a salted hash of
    /// the text: a program that builds the same AuthToken for every call (a new Http object
    /// per call, as the SQL CLR procedure does) parses and checks it once. Errors are not
    /// cached; [`clear_cache`] empties it. What can change while the text stays the same is
    /// checked on every call, a memo hit included: the `token_cache_dir` directory (it may
    /// have been removed or opened to others since; a relative one is resolved again
    /// against the current directory).
    pub fn from_json_shared(text: &str) -> Result<Arc<AuthConfig>> {
        let id = salted_hash(&[text.as_bytes()]);
        if let Some(cfg) = PARSED.get(&id) {
            let Some(given) = cfg.token_cache_dir_given.as_deref() else { return Ok(cfg) };
            let dir = super::token_store::check_dir(given)?;
            if cfg.token_cache_dir.as_deref() == Some(dir.as_path()) {
                return Ok(cfg);
            }
            // The same relative path from another current directory: another directory.
            let cfg = Arc::new(Self::from_json(text)?);
            PARSED.insert(id, cfg.clone());
            return Ok(cfg);
        }
        let cfg = Arc::new(Self::from_json(text)?);
        Ok(PARSED.get_or_insert_with(id, || cfg))
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
        // First: a misspelt member is named as such, also when it is a required one.
        let extra = extra_fields(obj)?;
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
        let max_clock_skew = match get("max_clock_skew")? {
            None => clock::DEFAULT_MAX_SKEW,
            Some(s) => match s.trim().parse::<i64>() {
                Ok(n) if (0..=clock::LIMIT_MAX_SKEW).contains(&n) => n,
                _ => {
                    return err(
                        ErrorKind::AuthToken,
                        format!(
                            "AuthToken \"max_clock_skew\" must be a number of seconds from 0 to {} (default {})",
                            clock::LIMIT_MAX_SKEW,
                            clock::DEFAULT_MAX_SKEW
                        ),
                    );
                }
            },
        };
        let allow_bearer = match get("allow_bearer")?.as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => return err(ErrorKind::AuthToken, format!("AuthToken \"allow_bearer\" must be true or false, not '{other}'")),
        };
        let allow_insecure_http = match get("allow_insecure_http")?.as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return err(
                    ErrorKind::AuthToken,
                    format!("AuthToken \"allow_insecure_http\" must be true or false, not '{}'", shorten(other)),
                );
            }
        };
        let default_expires_in = match get("default_expires_in")? {
            None => DEFAULT_EXPIRES_IN,
            Some(s) => match s.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => return err(ErrorKind::AuthToken, "AuthToken \"default_expires_in\" must be a positive number of seconds"),
            },
        };
        let token_cache_dir_given = get("token_cache_dir")?;
        let token_cache_dir = token_cache_dir_given.as_deref().map(super::token_store::check_dir).transpose()?;
        let mut cfg = AuthConfig {
            token_endpoint,
            issuer,
            metadata_url,
            client_id,
            client_secret,
            assertion_audience,
            assertion_kid: get("client_assertion_kid")?,
            clock_skew_correction,
            max_clock_skew,
            scope: get("scope")?,
            audience: get("audience")?,
            resource: get("resource")?,
            client_auth,
            allow_bearer,
            allow_insecure_http,
            default_expires_in,
            extra,
            token_cache_dir,
            token_cache_dir_given,
            fingerprint: [0; 32],
        };
        // The URLs that decide where the credentials go: https, or plain http to this machine.
        for (name, target) in [("token_endpoint", &cfg.token_endpoint), ("metadata_url", &cfg.metadata_url)] {
            if let Some(t) = target {
                check_cleartext(&cfg, &format!("AuthToken \"{name}\""), t)?;
            }
        }
        if let Some(i) = &cfg.issuer {
            let t = Target::parse(i).map_err(|e| Error::new(ErrorKind::AuthToken, format!("AuthToken \"issuer\": {}", e.message)))?;
            check_cleartext(&cfg, "AuthToken \"issuer\"", &t)?;
        }
        cfg.fingerprint = cfg.compute_fingerprint(true);
        Ok(cfg)
    }

    fn compute_fingerprint(&self, with_secret: bool) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut field = |s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        field(self.token_endpoint.as_ref().map_or("\u{0}", |t| &t.url));
        field(self.issuer.as_deref().unwrap_or("\u{0}"));
        field(self.metadata_url.as_ref().map_or("\u{0}", |t| &t.url));
        field(&self.client_id);
        if with_secret {
            field(self.client_secret.as_deref().map_or("\u{0}", |s| s.as_str()));
        }
        field(&format!("{:?} {:?} {:?}", self.client_auth, self.assertion_audience, self.assertion_kid));
        for o in [&self.scope, &self.audience, &self.resource] {
            field(o.as_deref().unwrap_or("\u{0}"));
        }
        field(if self.allow_bearer { "bearer" } else { "dpop" });
        // Handles that date proofs differently do not share a fetch (or its failure).
        field(&format!("skew {} {}", self.clock_skew_correction, self.max_clock_skew));
        field(if self.allow_insecure_http { "insecure-http" } else { "tls" });
        for (k, v) in &self.extra {
            field(k);
            field(v);
        }
        h.finalize().into()
    }

    /// `Authorization: Basic base64(form(client_id):form(secret))` (RFC 6749 §2.3.1), built
    /// in wiped buffers only.
    pub fn basic_authorization(&self) -> Zeroizing<String> {
        // Room for the worst case (every byte percent-encoded): the buffer never moves, so
        // no unwiped copy is left behind by a reallocation.
        let mut creds = Zeroizing::new(String::with_capacity(3 * (self.client_id.len() + self.secret().len()) + 1));
        form::encode_component(&self.client_id, &mut creds);
        creds.push(':');
        form::encode_component(self.secret(), &mut creds);
        let mut header = Zeroizing::new(String::with_capacity(6 + creds.len().div_ceil(3) * 4));
        header.push_str("Basic ");
        STANDARD.encode_string(creds.as_bytes(), &mut header);
        header
    }

    /// What a token request of this client carries that must not cross a network in clear.
    fn credential_name(&self) -> &'static str {
        match self.client_auth {
            ClientAuth::PrivateKeyJwt => "the signed client assertion",
            _ => "the client secret",
        }
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
    /// The last moment the token is sent at all, [`MIN_REFRESH_MARGIN`] (or half the
    /// refresh margin) before `expires_at`: servers floor `iat` to whole seconds, so their
    /// `exp` can come up to a second before ours. While a renewal is in flight, other calls keep using
    /// the token until then, and wait for the renewal after.
    pub usable_until: Instant,
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
    /// The last round's failure, until a fetch succeeds.
    failure: Option<Failure>,
}

/// A failed token request, shared by the calls that waited for it and, during a short
/// back-off, by the calls that come next.
struct Failure {
    round: u64,
    error: Error,
    at: Instant,
    /// Failures in a row; the back-off grows with them up to [`MAX_BACKOFF`].
    in_a_row: u32,
}

/// After a failed token request no new one is made for this long (doubling while the
/// failures go on, up to [`MAX_BACKOFF`]): calls keep using a token that is still valid,
/// or get the failure at once instead of asking a failing server again.
pub const BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Failure {
    fn backoff(&self) -> Duration {
        BACKOFF.saturating_mul(1 << self.in_a_row.saturating_sub(1).min(4)).min(MAX_BACKOFF)
    }

    fn backing_off(&self, now: Instant) -> bool {
        now < self.at + self.backoff()
    }

    /// Whether the next calls may get this failure instead of a request of their own: only
    /// what the server answered, never what depends on one caller's settings (its deadline,
    /// its network path, its trust roots) or a local failure.
    fn shared_with_next_calls(&self) -> bool {
        matches!(
            self.error.kind,
            ErrorKind::TokenEndpoint
                | ErrorKind::TokenResponse
                | ErrorKind::TokenNotBound
                | ErrorKind::DpopNonce
                | ErrorKind::DpopProof
                | ErrorKind::Discovery
        )
    }
}

#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    done: Condvar,
}

/// Token slots by (configuration, key). A slot is in use, and never evicted, while a
/// caller holds it: during a fetch and while others wait for it.
const MAX_SLOTS: usize = 1024;
static CACHE: LazyLock<BoundedLru<[u8; 32], Arc<Slot>>> =
    LazyLock::new(|| BoundedLru::new(MAX_SLOTS, usize::MAX, weightless, shared_arc));

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn slot_id(cfg: &AuthConfig, key: &EcKey, assertion_key: Option<&EcKey>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(cfg.fingerprint);
    h.update(key.jkt().as_bytes());
    if cfg.client_auth == ClientAuth::PrivateKeyJwt {
        h.update(assertion_key.unwrap_or(key).jkt().as_bytes());
    }
    h.finalize().into()
}

fn slot_for(cfg: &AuthConfig, key: &EcKey, assertion_key: Option<&EcKey>) -> Arc<Slot> {
    CACHE.get_or_insert_with(slot_id(cfg, key, assertion_key), Arc::default)
}

/// The token currently cached for (cfg, key), without fetching one.
pub fn cached(cfg: &AuthConfig, key: &EcKey, assertion_key: Option<&EcKey>) -> Option<Arc<AccessToken>> {
    let slot = CACHE.get(&slot_id(cfg, key, assertion_key))?;
    lock(&slot.state).token.clone()
}

/// Forgets all cached tokens (their memory is wiped when the last user drops them).
/// Parsed AuthTokens by the salted hash of their JSON text ([`AuthConfig::from_json_shared`]).
static PARSED: LazyLock<BoundedLru<[u8; 32], Arc<AuthConfig>>> =
    LazyLock::new(|| BoundedLru::new(16, usize::MAX, weightless, never_in_use));

pub fn clear_cache() {
    discovery::clear();
    clock::clear();
    PARSED.clear();
    for slot in CACHE.clear() {
        lock(&slot.state).token = None;
    }
}

/// Resets `fetching` even if the fetch panics, so waiters are never stranded.
struct FetchGuard<'a> {
    slot: &'a Slot,
    result: Option<Result<Arc<AccessToken>>>,
    /// A token that is still usable when the fetch fails (one read from the shared cache
    /// inside its early-refresh margin): kept while the back-off runs.
    fallback: Option<Arc<AccessToken>>,
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
            failed => {
                let error = match failed {
                    Some(Err(e)) => e,
                    _ => Error::new(ErrorKind::Internal, "internal error while fetching a token"),
                };
                let in_a_row = st.failure.as_ref().map_or(0, |f| f.in_a_row) + 1;
                st.failure = Some(Failure { round, error, at: Instant::now(), in_a_row });
                if st.token.is_none() {
                    st.token = self.fallback.take();
                }
            }
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
///
/// One fetch at a time per token (single flight): the other calls wait for it until their
/// own deadline, and all of them get its result, a failure included. After a failure no new
/// request is made for a short back-off: a token that is still valid is used meanwhile, and
/// a failure the server gave is handed to the next calls as it is.
///
/// With `token_cache_dir`, the fetch goes through the token cache shared with other
/// processes (`fetch_shared`); a `stale` token is removed from there too.
pub fn get_token(
    cfg: &AuthConfig,
    key: &EcKey,
    ctx: &FetchContext<'_>,
    stale: Option<&Arc<AccessToken>>,
) -> Result<Arc<AccessToken>> {
    let slot = slot_for(cfg, key, ctx.assertion_key);
    let deadline = ctx.transport.deadline();
    let mut st = lock(&slot.state);
    if let (Some(stale), Some(current)) = (stale, st.token.as_ref()) {
        if Arc::ptr_eq(stale, current) {
            st.token = None;
        }
    }
    // The round of the fetch this call waited for, if it waited.
    let mut waited_for = None;
    let valid = loop {
        let now = Instant::now();
        let valid = st.token.as_ref().filter(|t| now < t.usable_until).cloned();
        let backing_off = st.failure.as_ref().is_some_and(|f| f.backing_off(now));
        match &valid {
            Some(t) if now < t.refresh_at || st.fetching || backing_off => return Ok(t.clone()),
            _ => {}
        }
        if let Some(f) = &st.failure {
            if waited_for.is_some_and(|r| f.round > r) {
                let mut e = f.error.clone();
                if e.kind == ErrorKind::Timeout {
                    e.message.push_str(" (a token request of another call, which this call waited for)");
                }
                return Err(e);
            }
            if !st.fetching && backing_off && f.shared_with_next_calls() {
                let mut e = f.error.clone();
                e.message.push_str(&format!(
                    " (this token request failed {} ms ago; dpopkit asks again after {} ms)",
                    now.saturating_duration_since(f.at).as_millis(),
                    f.backoff().as_millis()
                ));
                return Err(e);
            }
        }
        if !st.fetching {
            break valid;
        }
        waited_for = Some(st.round);
        let left = deadline.remaining();
        if left.is_zero() {
            return Err(deadline.exceeded(" while waiting for another thread's token request"));
        }
        st = slot.done.wait_timeout(st, left).unwrap_or_else(|e| e.into_inner()).0;
    };
    st.fetching = true;
    drop(st);
    let mut guard = FetchGuard { slot: &slot, result: None, fallback: None };
    let (result, from_disk) = fetch_shared(cfg, key, ctx, stale.map(|t| t.value()));
    let result = result.map(Arc::new).map_err(|mut e| {
        if e.kind == ErrorKind::Timeout {
            e.message.push_str(" (requesting an access token)");
        }
        e
    });
    let valid = valid.or_else(|| from_disk.map(Arc::new));
    if result.is_err() {
        guard.fallback = valid.clone();
    }
    guard.result = Some(result.clone());
    drop(guard);
    match (result, valid) {
        // A refresh inside the early-refresh margin failed: the cached token still works.
        (Err(e), Some(t)) if Instant::now() < t.usable_until => {
            if let Some(log) = ctx.log {
                log.note(&format!(
                    "renewing the access token failed ({}); the cached one is valid for {} ms more and is used, \
                     renewal is tried again after the back-off",
                    e.message,
                    t.expires_at.saturating_duration_since(Instant::now()).as_millis()
                ));
            }
            Ok(t)
        }
        (result, _) => result,
    }
}

/// The files of (cfg, key) in the token cache directory `dir` (see [`super::token_store`]):
/// the file name and the binding its record must carry are both keyed hashes, under the
/// directory's key, of the whole in-process cache key (settings, client secret and key
/// thumbprints): other credentials get a file of their own, and neither can be checked
/// against a guessed secret without the key ([`token_store::Store::open`]).
fn disk_store(dir: &std::path::Path, cfg: &AuthConfig, key: &EcKey, assertion_key: Option<&EcKey>) -> std::result::Result<token_store::Store, String> {
    let slot = slot_id(cfg, key, assertion_key);
    token_store::Store::open(dir, &[&slot], &[&slot])
}

/// The token of a record, if it is still usable now. A record written more than a minute
/// "in the future" is not used: the wall clock went back, so its times mean nothing.
fn token_from_record(r: token_store::Record) -> Option<AccessToken> {
    let (now, now_ms) = (Instant::now(), token_store::unix_ms_now());
    if r.issued_at_ms > now_ms.saturating_add(60_000) {
        return None;
    }
    let at = |ms| token_store::from_unix_ms(ms, now, now_ms);
    let usable_until = at(r.usable_until_ms)?;
    let expires_at = at(r.expires_at_ms)?;
    let refresh_at = at(r.refresh_at_ms).unwrap_or(now);
    Some(AccessToken { value: r.access_token, token_type: r.token_type, expires_at, refresh_at, usable_until })
}

/// The token fetch of a call. Without `token_cache_dir`: [`fetch_token`]. With it:
///
/// 1. a token in the shared file that is not due for renewal (and is not `stale`, the one
///    the resource server refused) is used without asking the server;
/// 2. otherwise the key's lock file is taken (`flock`), waiting while another process
///    fetches, for at most half of what is left of the call's deadline (a stopped process
///    cannot hold the others up: after that they ask the server themselves);
/// 3. under the lock the file is read again — the process that held it has usually just
///    written a fresh token — and a `stale` record is removed;
/// 4. else the token is requested and written to the file (atomically) for the others.
///
/// A directory or file that cannot be used (removed, made writable by others, read-only,
/// full) only costs the sharing: the call goes on with a per-process token and the
/// session log says why. Returns the result and a token from the file that is past its
/// refresh time but still usable, to be used if the request fails.
fn fetch_shared(cfg: &AuthConfig, key: &EcKey, ctx: &FetchContext<'_>, stale: Option<&str>) -> (Result<AccessToken>, Option<AccessToken>) {
    let Some(dir) = cfg.token_cache_dir.as_deref() else { return (fetch_token(cfg, key, ctx), None) };
    let note = |text: String| {
        if let Some(log) = ctx.log {
            log.note(&text);
        }
    };
    let store = match disk_store(dir, cfg, key, ctx.assertion_key) {
        Ok(s) => s,
        Err(why) => {
            note(format!("{why}; the access token is cached in this process only"));
            return (fetch_token(cfg, key, ctx), None);
        }
    };
    let shown = shorten(&store.path().display().to_string());
    // (a token to use now, a token still usable while it is renewed)
    let look = |remove_stale: bool| -> (Option<AccessToken>, Option<AccessToken>) {
        let ignored = |why: &str| note(format!("the token cache file '{shown}' {why}; it is not used and will be replaced"));
        let r = match store.read() {
            token_store::Found::Missing => return (None, None),
            token_store::Found::Ignored(why) => {
                ignored(&why);
                return (None, None);
            }
            token_store::Found::Record(r) => r,
        };
        let type_ok = r.token_type.eq_ignore_ascii_case("dpop") || (cfg.allow_bearer && r.token_type.eq_ignore_ascii_case("bearer"));
        if r.binding != store.binding() {
            ignored("was written for other credentials (the same settings with another client secret)");
        } else if r.jkt != key.jkt() {
            ignored(&format!("holds a token issued for another key (jkt {})", shorten(&r.jkt)));
        } else if !type_ok {
            ignored("holds a token of a type these settings do not accept");
        } else if stale == Some(r.access_token.as_str()) {
            if remove_stale {
                match store.remove() {
                    Ok(()) => note(format!("the resource server refused the token of the cache file '{shown}' (invalid_token); the file is removed")),
                    Err(e) => note(format!("cannot remove the refused token's cache file '{shown}': {e}")),
                }
            }
        } else if let Some(t) = token_from_record(r) {
            redact::remember(|s| s.add_token(t.value()));
            redact::remember_token_for_later(t.value(), t.expires_at);
            if Instant::now() < t.refresh_at {
                note(format!(
                    "using the access token of the token cache file '{shown}' (renewed in {} s)",
                    t.refresh_at.saturating_duration_since(Instant::now()).as_secs()
                ));
                return (Some(t), None);
            }
            return (None, Some(t));
        }
        (None, None)
    };
    if let (Some(t), _) = look(false) {
        return (Ok(t), None);
    }
    let give_up = Instant::now() + ctx.transport.deadline().remaining() / 2;
    let mut lock = match store.lock(give_up) {
        token_store::Locking::Held(l) => Some(l),
        token_store::Locking::Busy(waited) => {
            note(format!(
                "another process has held the token cache lock of '{shown}' for {} ms (a slow token request, or a \
                 stopped process); requesting a token without waiting longer",
                waited.as_millis()
            ));
            None
        }
        token_store::Locking::Failed(why) => {
            note(format!("{why}; requesting a token without the cross-process lock"));
            None
        }
    };
    let (fresh, usable) = look(true);
    if let Some(t) = fresh {
        return (Ok(t), None);
    }
    let result = fetch_token(cfg, key, ctx);
    if let Ok(t) = &result {
        let (now, now_ms) = (Instant::now(), token_store::unix_ms_now());
        let ms = |i| token_store::to_unix_ms(i, now, now_ms);
        let record = token_store::Record {
            binding: store.binding().to_string(),
            jkt: key.jkt().to_string(),
            token_type: t.token_type.clone(),
            access_token: t.value.clone(),
            issued_at_ms: now_ms.min(ms(t.refresh_at)),
            refresh_at_ms: ms(t.refresh_at),
            usable_until_ms: ms(t.usable_until),
            expires_at_ms: ms(t.expires_at),
        };
        if let Err(e) = store.write(&record, lock.is_some()) {
            note(format!("cannot write the token cache file '{shown}' ({e}); the access token is cached in this process only"));
        } else {
            drop(lock.take());
            // Expired records and leftovers go, at most once a minute per directory, in a
            // small part of what is left of the call's time. Reading a few hundred records
            // takes milliseconds; the 5 s cap is for a machine so loaded that a tighter one
            // (1 s was tried) left the work half done.
            let budget = (ctx.transport.deadline().remaining() / 4).min(Duration::from_secs(5));
            if let Some(p) = token_store::prune_now_and_then(dir, store.id(), Instant::now() + budget).filter(|p| p.total() > 0) {
                note(format!(
                    "pruned the token cache directory: {} expired and {} unusable records, {} beyond the bound of {}, {} lock \
                     files without a record, {} temporary files of writers that died",
                    p.expired,
                    p.unusable,
                    p.oldest,
                    token_store::MAX_RECORDS,
                    p.locks,
                    p.temporary
                ));
            }
        }
    }
    drop(lock);
    (result, usable)
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

/// Refuses to send credentials in clear: `target` (where the client secret or assertion,
/// or the metadata that names where they go, would travel) must be https, or plain http to
/// this machine — the host `localhost` or a loopback IP literal (127.0.0.0/8, ::1) — unless
/// the AuthToken says `"allow_insecure_http": "true"`. The rule looks at the URL: a
/// name that some resolver maps to 127.0.0.1 (`localhost.`, `127.1`, `2130706433`) is not
/// this machine for it, as DNS can say anything. When the request is sent, the route is
/// checked too ([`check_cleartext_route`]).
pub fn check_cleartext(cfg: &AuthConfig, what: &str, target: &Target) -> Result<()> {
    if cfg.allow_insecure_http || !target.origin.starts_with("http://") || super::http::is_loopback_origin(&target.origin) {
        return Ok(());
    }
    err(
        ErrorKind::AuthToken,
        format!(
            "{what} {} is plain http to another machine: {} would cross the network unencrypted. Use an \
             https:// URL, or set \"allow_insecure_http\": \"true\" in the AuthToken if this network is \
             trusted (plain http is always allowed to localhost and 127.0.0.1)",
            shorten(&target.url),
            cfg.credential_name()
        ),
    )
}

/// [`check_cleartext`] on the route the request takes, when it is about to be sent: plain
/// http that crosses a network — to another machine, straight or through a proxy — needs
/// `"allow_insecure_http": "true"`. A target on this machine is never sent through a
/// proxy (see `Route::proxy_for` in http.rs), so plain http to localhost stays allowed
/// with any proxy setting and never leaves the machine.
pub fn check_cleartext_route(cfg: &AuthConfig, what: &str, target: &Target, transport: &super::http::Transport) -> Result<()> {
    check_cleartext(cfg, what, target)?;
    let Some(via) = transport.cleartext_route(target)? else { return Ok(()) };
    if cfg.allow_insecure_http || via.is_empty() {
        return Ok(()); // straight to another machine: what check_cleartext decided
    }
    err(
        ErrorKind::AuthToken,
        format!(
            "{what} {} is plain http{via}: {} would cross the network unencrypted. Use an https:// URL, or set \
             \"allow_insecure_http\": \"true\" in the AuthToken if this network is trusted",
            shorten(&target.url),
            cfg.credential_name()
        ),
    )
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
        super::counters::nonce_retry();
        return Ok(());
    }
    let why = if given.is_none() { "but sent no DPoP-Nonce header" } else { "again after a retry with the nonce it gave" };
    err(ErrorKind::DpopNonce, format!("{who} asked for a DPoP nonce (use_dpop_nonce) {why}"))
}

/// After `invalid_dpop_proof` from `origin`: `Ok` to retry with the server's clock (now
/// switched on), or `Err` with the text that explains the refusal when the clocks differ.
/// An offset beyond `max_skew` seconds is never corrected.
pub fn clock_skew_retry(
    origin: &str,
    correction: bool,
    max_skew: i64,
    already: bool,
    log: Option<&SessionLog>,
) -> Result<(), Option<String>> {
    let Some(offset) = clock::significant_offset(origin) else { return Err(None) };
    if correction && offset.abs() > max_skew {
        return Err(Some(format!(
            "the server's clock is {} this machine's (Date header), {} s beyond the {max_skew} s that dpopkit \
             corrects for: fix the server's or this machine's clock (NTP), or, if that server's clock really is \
             that far off, raise \"max_clock_skew\" (seconds) in the AuthToken",
            clock::describe(offset),
            offset.abs() - max_skew
        )));
    }
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
    // Checked again here: a discovered endpoint was not known when the AuthToken was set.
    let what = if cfg.token_endpoint.is_some() { "the token endpoint" } else { "the discovered token endpoint" };
    check_cleartext_route(cfg, what, endpoint, ctx.transport)?;
    let assertion_aud = match &cfg.assertion_audience {
        AssertionAudience::TokenEndpoint => endpoint.url.clone(),
        AssertionAudience::Issuer => issuer.clone().unwrap_or_default(),
        AssertionAudience::Value(v) => v.clone(),
    };
    let basic = (cfg.client_auth == ClientAuth::SecretBasic).then(|| cfg.basic_authorization());
    let secrets = [cfg.secret()];
    let mut retried_nonce = false;
    let mut retried_clock = false;
    loop {
        let iat = clock::iat_for(&endpoint.origin, cfg.max_clock_skew);
        // A new assertion (new jti) on every attempt: servers refuse a replayed one.
        let assertion = match cfg.client_auth {
            ClientAuth::PrivateKeyJwt => Some(Zeroizing::new(client_assertion(
                ctx.assertion_key.unwrap_or(key),
                &cfg.client_id,
                &assertion_aud,
                cfg.assertion_kid.as_deref(),
                iat,
                Some(ctx.transport.deadline()),
            )?)),
            _ => None,
        };
        if let Some(a) = &assertion {
            redact::remember(|s| s.add_token(a));
            // Replayable until its exp (60 s after iat) where a server does not track jti.
            redact::remember_proof_for_later(a, Instant::now() + Duration::from_secs(60) + redact::EXPIRY_LEEWAY);
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
        let sent_nonce = nonce::get(&endpoint.origin, nonce::Role::AuthorizationServer, key.jkt());
        let proof = make_proof_within(key, "POST", &endpoint.htu, None, sent_nonce.as_deref(), Some(iat), Some(ctx.transport.deadline()))?;
        let mut headers = vec![
            ("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string()),
            ("Accept".to_string(), "application/json".to_string()),
            ("DPoP".to_string(), proof),
        ];
        if let Some(b) = &basic {
            headers.push(("Authorization".to_string(), b.to_string()));
        }
        let requested = Instant::now();
        super::counters::token_request();
        let resp = ctx.transport.send(
            Request { method: "POST", target: endpoint, headers, body: Some(body.as_bytes()), role: Role::TokenEndpoint },
            ctx.log,
            &secrets,
        )?;
        let given_nonce = resp.header("dpop-nonce").map(str::to_string);
        if let Some(n) = &given_nonce {
            nonce::set(&endpoint.origin, nonce::Role::AuthorizationServer, key.jkt(), n);
        }
        if resp.is_success() {
            let mut resp = resp;
            let parsed = parse_token_response(cfg, &resp, requested);
            // The body holds the access token: wipe it unless an error carries it along
            // (errors never show bodies in their texts; the last response is the caller's).
            return match parsed {
                Ok(t) => {
                    redact::remember(|s| s.add_token(t.value()));
                    redact::remember_token_for_later(t.value(), t.expires_at);
                    zeroize::Zeroize::zeroize(&mut resp.body);
                    Ok(t)
                }
                Err(e) => {
                    // Refused after a 2xx (a Bearer token, a bad expires_in): the body still
                    // names a token; it is masked before the response goes anywhere.
                    // Bounded (a body can name thousands of values): those beyond the
                    // bound are masked by their member name, with the header values.
                    let found = redact::found_secret_values(&resp.body);
                    redact::remember(|s| found.values.iter().for_each(|v| s.add_found(v)));
                    redact::mask_secret_fields(&mut resp, found.complete);
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
            match clock_skew_retry(&endpoint.origin, cfg.clock_skew_correction, cfg.max_clock_skew, retried_clock, ctx.log) {
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
        let proof_refused = refused.as_deref() == Some("invalid_dpop_proof");
        if let Some(h) = &hint {
            msg.push_str(&format!("; {h}"));
        } else if proof_refused && key.alg() != "ES256" {
            // Many servers (and the DPoP profiles of several products) take ES256 only, and
            // some say no more than "invalid_dpop_proof" when they see another algorithm.
            msg.push_str(&format!(
                "; the DPoP key is {}, and the server may accept ES256 only: sign with an EC P-256 (ES256) key, \
                 e.g. `dpopkit keygen --alg ES256 --out dpop.pem` or dpopkit_key_generate_alg(key, \"ES256\")",
                key.alg()
            ));
        }
        // A refused proof is the DPoP proof error whatever the cause the text names.
        let kind = if proof_refused { ErrorKind::DpopProof } else { ErrorKind::TokenEndpoint };
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
    let margin = refresh_margin(lifetime);
    let refresh_at = expires_at - margin;
    // Half the margin at most, so that a failed renewal still leaves time to use the token.
    let usable_until = expires_at - MIN_REFRESH_MARGIN.min(margin / 2);
    Ok(AccessToken { value, token_type, expires_at, refresh_at, usable_until })
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
        let e = AuthConfig::from_json(r#"{"client_id":"a","client_secret":"b","token_endpoint":"https://x/t","grant_type":"password"}"#).unwrap_err();
        assert!(e.message.contains("grant_type"));
    }

    #[test]
    fn misspelt_members_are_refused_with_the_known_name() {
        for (typo, known) in [
            ("scpoe", "scope"),
            ("client_auth_methd", "client_auth_method"),
            ("Scope", "scope"),
            ("audince", "audience"),
            ("token_cache_dri", "token_cache_dir"),
            ("allow_insecure_htpp", "allow_insecure_http"),
        ] {
            let text = BASE.replace("\"scope\"", &format!("\"{typo}\""));
            let e = AuthConfig::from_json(&text).unwrap_err();
            assert_eq!(e.kind, ErrorKind::AuthToken);
            assert!(e.message.contains(&format!("\"{typo}\"")) && e.message.contains(&format!("did you mean \"{known}\"")), "{typo}: {}", e.message);
            assert!(e.message.contains(&format!("param:{typo}")), "names the way to send it on purpose: {}", e.message);
            assert!(!e.message.contains("secret\""), "{}", e.message);
        }
        // A misspelt required member: the typo is named, not just the missing member.
        let e = AuthConfig::from_json(r#"{"clinet_id":"a","client_secret":"b","token_endpoint":"https://x/t"}"#).unwrap_err();
        assert!(e.message.contains("\"clinet_id\"") && e.message.contains("did you mean \"client_id\""), "{}", e.message);
        // Real extra parameters still go out; a look-alike goes out when asked for by prefix.
        let c = AuthConfig::from_json(&BASE.replace("}", r#","organization":"acme","param:scopes":"x y"}"#)).unwrap();
        assert_eq!(c.extra, vec![("organization".to_string(), "acme".to_string()), ("scopes".to_string(), "x y".to_string())]);
        let e = AuthConfig::from_json(&BASE.replace("}", r#","param:scope":"x"}"#)).unwrap_err();
        assert!(e.message.contains("write \"scope\" itself"), "{}", e.message);
        let e = AuthConfig::from_json(&BASE.replace("}", r#","param:grant_type":"password"}"#)).unwrap_err();
        assert!(e.message.contains("cannot be given"), "{}", e.message);
        assert_eq!(edit_distance(b"scpoe", b"scope"), 1);
        assert_eq!(edit_distance(b"", b"abc"), 3);
        assert_eq!(near_known("organization"), None);
        assert_eq!(near_known("resourc"), Some("resource"));
    }

    #[test]
    fn parsed_auth_tokens_are_shared_by_text() {
        let text = BASE.replace("\"secret\"", "\"shared-parse-secret\"");
        let a = AuthConfig::from_json_shared(&text).unwrap();
        let b = AuthConfig::from_json_shared(&text).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "the same AuthToken text is parsed once");
        let other = AuthConfig::from_json_shared(&text.replace("\"api\"", "\"api2\"")).unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(other.scope.as_deref(), Some("api2"));
        assert!(AuthConfig::from_json_shared("{").is_err());
        assert!(AuthConfig::from_json_shared("{").is_err(), "errors are not cached");
    }

    #[test]
    fn extra_fields_and_cache_identity() {
        let a = AuthConfig::from_json(r#"{"client_id":"a","client_secret":"b","token_endpoint":"https://x/t","foo":"bar"}"#).unwrap();
        assert_eq!(a.extra, vec![("foo".to_string(), "bar".to_string())]);
        let b = AuthConfig::from_json(r#"{"client_id":"a","client_secret":"c","token_endpoint":"https://x/t","foo":"bar"}"#).unwrap();
        assert_ne!(a.fingerprint, b.fingerprint, "a different secret is a different cache entry");
    }

    fn auth(extra: &str) -> Result<AuthConfig> {
        AuthConfig::from_json(&format!(r#"{{"client_id":"a","client_secret":"b"{extra}}}"#))
    }

    #[test]
    fn credentials_never_go_to_another_machine_in_clear() {
        for (member, url) in [
            ("token_endpoint", "http://as.example/token"),
            ("token_endpoint", "http://localhost./token"),
            ("token_endpoint", "http://2130706433:8080/token"),
            ("token_endpoint", "http://10.1.2.3/token"),
            ("issuer", "http://as.example"),
            ("metadata_url", "http://as.example/.well-known/openid-configuration"),
        ] {
            for method in ["client_secret_post", "client_secret_basic", "private_key_jwt"] {
                let e = auth(&format!(r#","{member}":"{url}","client_auth_method":"{method}""#)).unwrap_err();
                assert_eq!(e.kind, ErrorKind::AuthToken, "{url}");
                let carried = if method == "private_key_jwt" { "client assertion" } else { "client secret" };
                for says in [member, "plain http", carried, "https://", "\"allow_insecure_http\": \"true\""] {
                    assert!(e.message.contains(says), "{member} {url} {method}: no {says:?} in: {}", e.message);
                }
                let allowed = auth(&format!(r#","{member}":"{url}","client_auth_method":"{method}","allow_insecure_http":"true""#));
                assert!(allowed.is_ok(), "{url} {method}: {:?}", allowed.err());
            }
        }
        for url in ["https://as.example/token", "http://127.0.0.1:9/token", "http://localhost:9/t", "http://[::1]:9/t", "http://127.9.9.9/t"] {
            assert!(auth(&format!(r#","token_endpoint":"{url}""#)).is_ok(), "{url}");
        }
        let e = auth(r#","token_endpoint":"https://as.example/t","allow_insecure_http":"yes""#).unwrap_err();
        assert!(e.message.contains("allow_insecure_http"), "{}", e.message);
        // Not sent as a form field, and part of the cache identity.
        let a = auth(r#","token_endpoint":"https://as.example/t","allow_insecure_http":"true""#).unwrap();
        let b = auth(r#","token_endpoint":"https://as.example/t""#).unwrap();
        assert!(a.extra.is_empty() && a.allow_insecure_http && !b.allow_insecure_http);
        assert_ne!(a.fingerprint, b.fingerprint);
        // The fetch-time check (discovered endpoints) applies the same rule.
        let discovered = Target::parse("http://as.example/token").unwrap();
        assert!(check_cleartext(&b, "the discovered token endpoint", &discovered).is_err());
        assert!(check_cleartext(&a, "the discovered token endpoint", &discovered).is_ok());
    }

    #[test]
    fn basic_authorization_form_encodes_then_base64s() {
        let c = AuthConfig::from_json(r#"{"client_id":"m2m dpop","client_secret":"s:e%c/r+t","token_endpoint":"https://x/t"}"#).unwrap();
        let expected = format!("Basic {}", STANDARD.encode("m2m+dpop:s%3Ae%25c%2Fr%2Bt"));
        assert_eq!(c.basic_authorization().as_str(), expected);
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
        // Never sent in its last second (the server's exp is floored to whole seconds).
        assert_eq!(t.usable_until, now + Duration::from_secs(299));
        let t = parse_token_response(&c, &resp(r#"{"access_token":"x","token_type":"DPoP","expires_in":4}"#), now).unwrap();
        assert_eq!((t.refresh_at, t.usable_until), (now + Duration::from_secs(3), now + Duration::from_millis(3500)));
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

    /// A loopback server for `calls` connections: `/token` answers a DPoP token, anything
    /// else `{}`. Stops by itself (accepting times out after 10 s without a connection).
    #[cfg(unix)]
    fn token_server(calls: usize) -> String {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut served = 0;
            while served < calls && started.elapsed() < Duration::from_secs(10) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                served += 1;
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut r = BufReader::new(stream);
                let mut first = String::new();
                let _ = r.read_line(&mut first);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let _ = r.by_ref().take(length as u64).read_to_end(&mut Vec::new());
                let body = if first.contains("/token") { r#"{"access_token":"unit-disk-token","token_type":"DPoP","expires_in":300}"# } else { "{}" };
                let _ = write!(r.get_mut(), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            }
        });
        format!("http://{addr}")
    }

    /// Issue 18, item 9: nothing in the token cache directory can be checked offline
    /// against guessed settings or a guessed client secret: no file name and no record holds
    /// an unkeyed hash of them (the formulas of dpopkit before the fix are computed here);
    /// two secrets still get two records, and the key file is private.
    #[cfg(unix)]
    #[test]
    fn disk_records_hold_no_unkeyed_hash_of_the_settings() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("dpopkit-token-oracle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let key = Arc::new(EcKey::generate().unwrap());
        let base = token_server(4);
        let text = |secret: &str| {
            serde_json::json!({"client_id": "oracle-client", "client_secret": secret, "token_endpoint": format!("{base}/token"),
                "scope": "api", "token_cache_dir": dir.to_str().unwrap()})
            .to_string()
        };
        let mut unkeyed = Vec::new();
        for secret in ["weak1", "weak2"] {
            let http = crate::core::HttpClient::new();
            http.set_dpop_key(key.clone());
            http.set_auth_token(&text(secret)).unwrap();
            http.request(Some("GET"), &format!("{base}/api"), None, None).unwrap();
            // What dpopkit wrote before: the file name SHA-256("dpopkit token file v1\0" ||
            // settings without the secret || jkt), the binding SHA-256("dpopkit token
            // binding v1\0" || SHA-256(SHA-256(settings with the secret) || jkt)).
            let cfg = AuthConfig::from_json(&text(secret)).unwrap();
            let slot = slot_id(&cfg, &key, None);
            let mut id = Sha256::new();
            id.update(b"dpopkit token file v1\0");
            let public = cfg.compute_fingerprint(false);
            id.update(public);
            id.update(key.jkt().as_bytes());
            let mut b = Sha256::new();
            b.update(b"dpopkit token binding v1\0");
            b.update(slot);
            for h in [id.finalize().to_vec(), b.finalize().to_vec(), slot.to_vec(), cfg.fingerprint.to_vec(), public.to_vec()] {
                unkeyed.push(token_store::hex(&h));
            }
        }
        let mut records = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let content = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            for h in &unkeyed {
                assert!(!name.contains(h.as_str()), "the file name {name} is an unkeyed hash of the settings");
                assert!(!content.contains(h.as_str()), "{name} holds an unkeyed hash of the settings (with the secret)");
            }
            if path.extension().is_none() {
                records.push(serde_json::from_str::<serde_json::Value>(&content).unwrap());
            }
        }
        assert_eq!(records.len(), 2, "two secrets, two records");
        assert_ne!(records[0]["binding"], records[1]["binding"]);
        let key_file = dir.join(token_store::KEY_FILE);
        let meta = std::fs::symlink_metadata(&key_file).expect("the directory's key file");
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
