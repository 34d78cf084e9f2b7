//! The AuthToken: the JSON configuration of a client (`AuthConfig`), read member by member.

use super::*;

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

/// Every member of the AuthToken JSON that is a setting (not a form field), each with what
/// it does in one line. The one list: misspellings are compared with it, and a test
/// (`members_are_documented`) checks that the C header's `dpopkit_http_set_auth_token`,
/// README's AuthToken table and the Python binding's `Http.auth_token` name every member.
pub const MEMBERS: &[(&str, &str)] = &[
    ("token_endpoint", "https URL of the token endpoint; required unless `issuer` or `metadata_url` finds it"),
    ("issuer", "the issuer: its metadata (RFC 8414) gives the token endpoint and the DPoP algorithms"),
    ("metadata_url", "the URL of the server's metadata, when it is not under `issuer`"),
    ("client_assertion_audience", "private_key_jwt: `aud` of the assertion: token_endpoint (default), issuer or a value"),
    ("client_assertion_kid", "private_key_jwt: the `kid` header of the assertion"),
    ("clock_skew_correction", "\"false\" never dates proofs on the server's clock"),
    ("max_clock_skew", "seconds: the largest server clock offset proofs are dated by (default 3600)"),
    ("client_id", "the client id; required"),
    ("client_secret", "the secret of client_secret_post / client_secret_basic"),
    ("scope", "sent when present"),
    ("audience", "sent when present"),
    ("resource", "sent when present (RFC 8707)"),
    ("client_auth_method", "client_secret_post (default), client_secret_basic or private_key_jwt"),
    ("token_endpoint_auth_method", "the same as `client_auth_method` (the RFC 7591 name)"),
    ("allow_bearer", "\"true\" accepts a token that is not DPoP-bound"),
    ("default_expires_in", "seconds a token lives when the response has no `expires_in` (default 300)"),
    ("allow_insecure_http", "\"true\" lets the credentials go over plain http to another machine"),
    ("token_cache_dir", "a private directory where the token is shared with this user's other processes"),
];

/// Whether `name` is one of [`MEMBERS`].
pub(super) fn is_member(name: &str) -> bool {
    MEMBERS.iter().any(|(n, _)| *n == name)
}

/// Form fields the client sets itself; the AuthToken JSON may not override them.
pub(super) const RESERVED: &[&str] = &["grant_type", "client_assertion", "client_assertion_type"];

/// A member `param:NAME` is sent as the form field `NAME` whatever it looks like: the way to
/// pass an extra parameter whose name is close to a known member (see `near_known`).
pub const EXTRA_PARAM_PREFIX: &str = "param:";

/// The known member that `name` is most likely a misspelling of: one within an edit
/// distance (insertions, deletions, substitutions, swaps of neighbours; ASCII case ignored)
/// of 1 for known names of up to 5 characters, 2 for longer ones. Unknown members are sent
/// as extra form fields, so `scpoe` would otherwise go out silently and the token come back
/// without the scope.
pub(super) fn near_known(name: &str) -> Option<&'static str> {
    if name.len() > 40 {
        return None; // longer than any known name by far: no typo of one
    }
    let lower = name.to_ascii_lowercase();
    MEMBERS
        .iter()
        .map(|(k, _)| (edit_distance(lower.as_bytes(), k.as_bytes()), *k))
        .filter(|(d, k)| *d <= if k.len() <= 5 { 1 } else { 2 })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance (Levenshtein plus swaps of adjacent bytes).
pub(super) fn edit_distance(a: &[u8], b: &[u8]) -> usize {
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
pub(super) fn extra_fields(obj: &serde_json::Map<String, serde_json::Value>) -> Result<Vec<(String, String)>> {
    let mut extra = Vec::new();
    for (k, val) in obj {
        if is_member(k) {
            continue;
        }
        let (name, on_purpose) = match k.strip_prefix(EXTRA_PARAM_PREFIX) {
            Some(n) => (n, true),
            None => (k.as_str(), false),
        };
        if RESERVED.contains(&name) {
            return err(ErrorKind::AuthToken, format!("AuthToken member \"{}\" is set by dpopkit and cannot be given", shorten(k)));
        }
        if on_purpose && (name.is_empty() || is_member(name)) {
            return err(
                ErrorKind::AuthToken,
                format!(
                    "AuthToken member \"{}\": {EXTRA_PARAM_PREFIX} is for extra form fields; write \"{}\" itself",
                    shorten(k),
                    shorten(name)
                ),
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
    pub(super) client_secret: Option<Zeroizing<String>>,
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
    /// (`token_cache_dir`, checked when the AuthToken is set; see [`crate::core::oauth::store`]).
    /// Not part of the fingerprint: it changes where a token is kept, not which token is
    /// used, so handles with and without it share the in-process cache entry.
    pub token_cache_dir: Option<std::path::PathBuf>,
    /// `token_cache_dir` as given (maybe relative): checked again, and resolved again, each
    /// time the same AuthToken text is set ([`AuthConfig::from_json_shared`]).
    pub(super) token_cache_dir_given: Option<String>,
    /// Hash of everything above except the key and the cache directory; combined with the
    /// key's jkt for the cache.
    pub(super) fingerprint: [u8; 32],
    /// The client secret with the forms it is masked in, made on first use and shared by
    /// every call of every Http object using this AuthToken (see [`AuthConfig::masked_secret`]).
    pub(super) masked_secret: std::sync::OnceLock<crate::core::redact::SharedSecret>,
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

pub(super) fn json_scalar(v: &serde_json::Value) -> Option<String> {
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
        let mut v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::new(ErrorKind::AuthToken, format!("the AuthToken is not valid JSON: {e}")))?;
        let result = Self::from_value(&v);
        crate::core::redact::wipe_json(&mut v);
        result
    }

    /// [`AuthConfig::from_json`] through a small process-wide cache keyed by a salted hash of
    /// the text: a program that builds the same AuthToken for every call (a new Http object
    /// per call, as the SQL CLR procedure does) parses and checks it once while one of them
    /// lives. The memo holds it weakly: no client secret stays after the last user is gone.
    /// Errors are not cached; [`clear_cache`] empties it. What can change while the text stays the same is
    /// checked on every call, a memo hit included: the `token_cache_dir` directory (it may
    /// have been removed or opened to others since; a relative one is resolved again
    /// against the current directory).
    pub fn from_json_shared(text: &str) -> Result<Arc<AuthConfig>> {
        let id = salted_hash(&[text.as_bytes()]);
        if let Some(cfg) = PARSED.get(&id).and_then(|w| w.upgrade()) {
            let Some(given) = cfg.token_cache_dir_given.as_deref() else { return Ok(cfg) };
            let dir = crate::core::oauth::store::check_dir(given)?;
            if cfg.token_cache_dir.as_deref() == Some(dir.as_path()) {
                return Ok(cfg);
            }
            // The same relative path from another current directory: another directory.
        }
        let cfg = Arc::new(Self::from_json(text)?);
        PARSED.insert(id, Arc::downgrade(&cfg));
        Ok(cfg)
    }

    pub(super) fn from_value(v: &serde_json::Value) -> Result<AuthConfig> {
        let Some(obj) = v.as_object() else {
            return err(ErrorKind::AuthToken, "the AuthToken must be a JSON object");
        };
        let m = Members(obj);
        // First: a misspelt member is named as such, also when it is a required one.
        let extra = extra_fields(obj)?;
        let (token_endpoint, metadata_url, issuer) = m.endpoints()?;
        let client_id = m.require("client_id")?;
        let client_auth = m.client_auth()?;
        let client_secret = m.client_secret(client_auth)?;
        let assertion_audience = m.assertion_audience(issuer.is_some())?;
        let clock_skew_correction = m.clock_skew_correction()?;
        let max_clock_skew = m.max_clock_skew()?;
        let allow_bearer = m.flag_off_by_default("allow_bearer", false)?;
        let allow_insecure_http = m.flag_off_by_default("allow_insecure_http", true)?;
        let default_expires_in = m.default_expires_in()?;
        let token_cache_dir_given = m.get("token_cache_dir")?;
        let token_cache_dir = token_cache_dir_given.as_deref().map(crate::core::oauth::store::check_dir).transpose()?;
        let mut cfg = AuthConfig {
            token_endpoint,
            issuer,
            metadata_url,
            client_id,
            client_secret,
            assertion_audience,
            assertion_kid: m.get("client_assertion_kid")?,
            clock_skew_correction,
            max_clock_skew,
            scope: m.get("scope")?,
            audience: m.get("audience")?,
            resource: m.get("resource")?,
            client_auth,
            allow_bearer,
            allow_insecure_http,
            default_expires_in,
            extra,
            token_cache_dir,
            token_cache_dir_given,
            fingerprint: [0; 32],
            masked_secret: std::sync::OnceLock::new(),
        };
        cfg.check_cleartext_urls()?;
        cfg.fingerprint = cfg.compute_fingerprint(true);
        Ok(cfg)
    }

    /// The URLs that decide where the credentials go: https, or plain http to this machine.
    fn check_cleartext_urls(&self) -> Result<()> {
        for (name, target) in [("token_endpoint", &self.token_endpoint), ("metadata_url", &self.metadata_url)] {
            if let Some(t) = target {
                check_cleartext(self, &format!("AuthToken \"{name}\""), t)?;
            }
        }
        if let Some(i) = &self.issuer {
            let t = Target::parse(i).map_err(|e| Error::new(ErrorKind::AuthToken, format!("AuthToken \"issuer\": {}", e.message)))?;
            check_cleartext(self, "AuthToken \"issuer\"", &t)?;
        }
        Ok(())
    }

    pub(super) fn compute_fingerprint(&self, with_secret: bool) -> [u8; 32] {
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
    pub(super) fn credential_name(&self) -> &'static str {
        match self.client_auth {
            ClientAuth::PrivateKeyJwt => "the signed client assertion",
            _ => "the client secret",
        }
    }

    /// The client secret ("" with private_key_jwt): a value never to be written anywhere.
    pub fn secret(&self) -> &str {
        self.client_secret.as_deref().map_or("", |s| s.as_str())
    }

    /// The client secret as every call masks it (with its echoable forms, made once for all
    /// calls; wiped with the AuthToken).
    pub fn masked_secret(&self) -> &crate::core::redact::SharedSecret {
        self.masked_secret.get_or_init(|| crate::core::redact::SharedSecret::client_secret(&self.client_id, self.secret()))
    }
}

/// The members of an AuthToken JSON object, read one by one (each reader names the member
/// and the fix in its error text).
struct Members<'a>(&'a serde_json::Map<String, serde_json::Value>);

impl Members<'_> {
    /// A string (or number, or boolean, as text) member; absent, `null` and `""` are `None`.
    fn get(&self, name: &str) -> Result<Option<String>> {
        match self.0.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(x) => match json_scalar(x) {
                Some(s) if s.is_empty() => Ok(None),
                Some(s) => Ok(Some(s)),
                None => err(ErrorKind::AuthToken, format!("AuthToken member \"{name}\" must be a string")),
            },
        }
    }

    fn require(&self, name: &str) -> Result<String> {
        self.get(name)?.ok_or_else(|| Error::new(ErrorKind::AuthToken, format!("the AuthToken JSON has no \"{name}\" (it is required)")))
    }

    fn url(&self, name: &str) -> Result<Option<Target>> {
        self.get(name)?
            .map(|u| Target::parse(&u).map_err(|e| Error::new(ErrorKind::AuthToken, format!("AuthToken \"{name}\": {}", e.message))))
            .transpose()
    }

    /// `token_endpoint`, `metadata_url` and `issuer`: at least one of them.
    fn endpoints(&self) -> Result<(Option<Target>, Option<Target>, Option<String>)> {
        let token_endpoint = self.url("token_endpoint")?;
        let metadata_url = self.url("metadata_url")?;
        let issuer = self.get("issuer")?;
        if let Some(i) = &issuer {
            Target::parse(i).map_err(|e| Error::new(ErrorKind::AuthToken, format!("AuthToken \"issuer\": {}", e.message)))?;
        }
        if token_endpoint.is_none() && metadata_url.is_none() && issuer.is_none() {
            return err(
                ErrorKind::AuthToken,
                "the AuthToken JSON has no \"token_endpoint\" (it is required, or \"issuer\" to discover it from the server's metadata)",
            );
        }
        Ok((token_endpoint, metadata_url, issuer))
    }

    /// `client_auth_method` (or its RFC 7591 name `token_endpoint_auth_method`).
    fn client_auth(&self) -> Result<ClientAuth> {
        let method = self.get("client_auth_method")?.or(self.get("token_endpoint_auth_method")?);
        match method.as_deref() {
            None | Some("client_secret_post") => Ok(ClientAuth::SecretPost),
            Some("client_secret_basic") => Ok(ClientAuth::SecretBasic),
            Some("private_key_jwt") => Ok(ClientAuth::PrivateKeyJwt),
            Some(other) => err(
                ErrorKind::AuthToken,
                format!(
                    "AuthToken \"client_auth_method\" '{}' is not supported: use client_secret_post, client_secret_basic or private_key_jwt",
                    shorten(other)
                ),
            ),
        }
    }

    fn client_secret(&self, client_auth: ClientAuth) -> Result<Option<Zeroizing<String>>> {
        match (self.get("client_secret")?, client_auth) {
            (Some(s), _) => Ok(Some(Zeroizing::new(s))),
            (None, ClientAuth::PrivateKeyJwt) => Ok(None),
            (None, _) => err(
                ErrorKind::AuthToken,
                "the AuthToken JSON has no \"client_secret\" (it is required for client_secret_post and \
                 client_secret_basic; with \"client_auth_method\": \"private_key_jwt\" a signed assertion is sent instead)",
            ),
        }
    }

    fn assertion_audience(&self, has_issuer: bool) -> Result<AssertionAudience> {
        match self.get("client_assertion_audience")?.as_deref() {
            None | Some("token_endpoint") => Ok(AssertionAudience::TokenEndpoint),
            Some("issuer") if !has_issuer => {
                err(ErrorKind::AuthToken, "AuthToken \"client_assertion_audience\": \"issuer\" needs \"issuer\" in the AuthToken too")
            }
            Some("issuer") => Ok(AssertionAudience::Issuer),
            Some(other) => Ok(AssertionAudience::Value(other.to_string())),
        }
    }

    fn clock_skew_correction(&self) -> Result<bool> {
        match self.get("clock_skew_correction")?.as_deref() {
            None | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(_) => err(ErrorKind::AuthToken, "AuthToken \"clock_skew_correction\" must be true or false"),
        }
    }

    fn max_clock_skew(&self) -> Result<i64> {
        let Some(s) = self.get("max_clock_skew")? else { return Ok(clock::DEFAULT_MAX_SKEW) };
        match s.trim().parse::<i64>() {
            Ok(n) if (0..=clock::LIMIT_MAX_SKEW).contains(&n) => Ok(n),
            _ => err(
                ErrorKind::AuthToken,
                format!(
                    "AuthToken \"max_clock_skew\" must be a number of seconds from 0 to {} (default {})",
                    clock::LIMIT_MAX_SKEW,
                    clock::DEFAULT_MAX_SKEW
                ),
            ),
        }
    }

    /// A boolean member that is false unless given; `shorten_shown`: the text shows a long
    /// wrong value cut (as `allow_insecure_http` always did).
    fn flag_off_by_default(&self, name: &str, shorten_shown: bool) -> Result<bool> {
        match self.get(name)?.as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => {
                let shown = if shorten_shown { shorten(other) } else { other.to_string() };
                err(ErrorKind::AuthToken, format!("AuthToken \"{name}\" must be true or false, not '{shown}'"))
            }
        }
    }

    fn default_expires_in(&self) -> Result<u64> {
        let Some(s) = self.get("default_expires_in")? else { return Ok(DEFAULT_EXPIRES_IN) };
        match s.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => err(ErrorKind::AuthToken, "AuthToken \"default_expires_in\" must be a positive number of seconds"),
        }
    }
}

#[cfg(test)]
mod members_doc {
    use super::MEMBERS;

    fn read(rel: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The text between the first line containing `from` and the first later line containing `to`.
    fn between(text: &str, from: &str, to: &str) -> String {
        let start = text.find(from).unwrap_or_else(|| panic!("'{from}' not found"));
        let rest = &text[start..];
        let end = rest[from.len()..].find(to).map_or(rest.len(), |e| e + from.len());
        rest[..end].to_string()
    }

    fn missing(doc: &str, quoted: bool) -> Vec<&'static str> {
        MEMBERS
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| {
                if quoted {
                    !doc.contains(&format!("`{n}`"))
                } else {
                    !doc.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w == *n)
                }
            })
            .collect()
    }

    #[test]
    fn members_are_documented() {
        let header = between(&read("include/dpopkit.h"), "// Sets the AuthToken description", "dpopkit_http_set_auth_token(");
        let readme = between(&read("README.md"), "**AuthToken JSON** members:", "\n\n**");
        let python = between(&read("bindings/python/dpopkit/__init__.py"), "auth_token = property(", "\n    )");
        for (name, doc, quoted) in [
            ("include/dpopkit.h (src/capi/http.rs)", &header, true),
            ("README.md", &readme, true),
            ("bindings/python Http.auth_token", &python, false),
        ] {
            let m = missing(doc, quoted);
            assert!(m.is_empty(), "{name} does not name the AuthToken members {m:?} (the list: MEMBERS in src/core/oauth/token/config.rs)");
        }
        for (n, doc) in MEMBERS {
            assert!(!doc.is_empty() && !doc.contains('\n'), "{n}: one line of doc");
        }
    }
}
