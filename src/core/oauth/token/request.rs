//! The token request: endpoint, cleartext checks, the DPoP exchange with the token
//! endpoint, and the token response.

use super::*;

/// The endpoint the token request goes to, and what the server's metadata says.
pub(super) struct Endpoint {
    pub target: Target,
    pub issuer: Option<String>,
    pub meta: Option<Arc<discovery::Metadata>>,
}

/// The token endpoint to use, given or discovered; discovery also checks, before any
/// request, that the server accepts an algorithm the DPoP key signs (and, for
/// private_key_jwt, one the assertion key signs).
pub(super) fn resolve_endpoint(cfg: &AuthConfig, key: &EcKey, ctx: &FetchContext<'_>) -> Result<Endpoint> {
    if let Some(t) = &cfg.token_endpoint {
        return Ok(Endpoint { target: t.clone(), issuer: cfg.issuer.clone(), meta: None });
    }
    let meta = discovery::discover(cfg.issuer.as_deref(), cfg.metadata_url.as_ref(), ctx.transport, ctx.log)?;
    let who = format!("the authorization server {}", meta.issuer);
    if let Some(algs) = &meta.dpop_algs {
        if key.choose_alg(Some(algs)).is_none() {
            return Err(key.alg_refusal(&who, algs, "dpop_signing_alg_values_supported", "DPoP proofs"));
        }
    }
    if cfg.client_auth == ClientAuth::PrivateKeyJwt {
        assertion_alg(ctx.assertion_key.unwrap_or(key), Some(&meta))?;
    }
    Ok(Endpoint { target: meta.token_endpoint.clone(), issuer: Some(meta.issuer.clone()), meta: Some(meta) })
}

/// The algorithm of a private_key_jwt assertion signed by `key`: one the server lists in
/// `token_endpoint_auth_signing_alg_values_supported`, else the key's preferred one.
fn assertion_alg(key: &EcKey, meta: Option<&discovery::Metadata>) -> Result<&'static str> {
    let offered = meta.and_then(|m| m.auth_algs.as_deref());
    key.choose_alg(offered).ok_or_else(|| {
        let who = format!("the authorization server {}", meta.map_or("", |m| m.issuer.as_str()));
        key.alg_refusal(&who, offered.unwrap_or_default(), "token_endpoint_auth_signing_alg_values_supported", "client assertions")
    })
}

/// Refuses to send credentials in clear: `target` (where the client secret or assertion,
/// or the metadata that names where they go, would travel) must be https, or plain http to
/// this machine — the host `localhost` or a loopback IP literal (127.0.0.0/8, ::1) — unless
/// the AuthToken says `"allow_insecure_http": "true"`. The rule looks at the URL: a
/// name that some resolver maps to 127.0.0.1 (`localhost.`, `127.1`, `2130706433`) is not
/// this machine for it, as DNS can say anything. When the request is sent, the route is
/// checked too ([`check_cleartext_route`]).
pub fn check_cleartext(cfg: &AuthConfig, what: &str, target: &Target) -> Result<()> {
    if cfg.allow_insecure_http || !target.origin.starts_with("http://") || crate::core::url::is_loopback_origin(&target.origin) {
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
pub fn check_cleartext_route(cfg: &AuthConfig, what: &str, target: &Target, transport: &crate::core::http::Transport) -> Result<()> {
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
pub(super) fn proof_error(resp: &ResponseInfo) -> Option<String> {
    oauth_error(resp).0.or_else(|| challenge::dpop_error(&resp.header_all("www-authenticate")))
}

/// [`fetch_token_once`] with the call's secrets masked in its error before the error is
/// shared with the threads that waited for this fetch.
pub(super) fn fetch_token(cfg: &AuthConfig, key: &EcKey, ctx: &FetchContext<'_>) -> Result<AccessToken> {
    let _scope = redact::call_scope();
    redact::remember(|s| s.add_client_secret(&cfg.client_id, cfg.secret()));
    fetch_token_once(cfg, key, ctx).map_err(crate::core::error::scrub_error_of_call)
}

/// One client_credentials token request, with one retry when the server asks for a nonce
/// and one when it refuses the proof while its clock differs from ours.
pub(super) fn fetch_token_once(cfg: &AuthConfig, key: &EcKey, ctx: &FetchContext<'_>) -> Result<AccessToken> {
    let Endpoint { target: endpoint, issuer, meta } = resolve_endpoint(cfg, key, ctx)?;
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
    let who = format!("token endpoint {}", endpoint.url);
    let server = Server {
        role: nonce::Role::AuthorizationServer,
        origin: &endpoint.origin,
        who: &who,
        algs: meta.as_ref().and_then(|m| m.dpop_algs.as_deref()),
        refusal: |resp| if resp.is_success() { None } else { proof_error(resp) },
        clock_skew_correction: cfg.clock_skew_correction,
        max_clock_skew: cfg.max_clock_skew,
        log: ctx.log,
    };
    let mut requested = Instant::now();
    let answer = exchange(&server, key, ctx.transport.deadline(), &mut Retries::default(), |attempt| {
        let body = token_request_body(cfg, key, ctx, (&assertion_aud, meta.as_deref()), attempt.iat)?;
        let mut headers = vec![
            ("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string()),
            ("Accept".to_string(), "application/json".to_string()),
            ("DPoP".to_string(), attempt.proof("POST", &endpoint.htu, None)?),
        ];
        if let Some(b) = &basic {
            headers.push(("Authorization".to_string(), b.to_string()));
        }
        requested = Instant::now();
        crate::core::counters::token_request();
        ctx.transport.send(
            Request {
                method: "POST",
                target: endpoint,
                headers,
                authorization: None,
                body: Some(body.as_bytes()),
                role: Role::TokenEndpoint,
            },
            ctx.log,
            &secrets,
        )
    })?;
    let (resp, refused, hint) = match answer {
        Answer::Final(resp) => (resp, None, None),
        Answer::Refused { resp, error, hint } => (resp, Some(error), hint),
    };
    if resp.is_success() {
        return token_from_success(cfg, resp, requested);
    }
    Err(token_endpoint_error(cfg, key, endpoint, resp, refused.as_deref(), hint.as_deref(), &secrets))
}

/// The form body of one token request; a private_key_jwt assertion is new (new `jti`) on
/// every attempt, dated `iat`: servers refuse a replayed one.
fn token_request_body(
    cfg: &AuthConfig,
    key: &EcKey,
    ctx: &FetchContext<'_>,
    (assertion_aud, meta): (&str, Option<&discovery::Metadata>),
    iat: i64,
) -> Result<Zeroizing<String>> {
    let assertion_key = ctx.assertion_key.unwrap_or(key);
    let assertion = match cfg.client_auth {
        ClientAuth::PrivateKeyJwt => Some(Zeroizing::new(client_assertion(
            assertion_key,
            assertion_alg(assertion_key, meta)?,
            &cfg.client_id,
            assertion_aud,
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
    Ok(Zeroizing::new(form::encode(&pairs)))
}

/// The token of a 2xx answer. The body holds the access token: it is wiped unless an error
/// carries it along (errors never show bodies in their texts; the last response is the
/// caller's).
fn token_from_success(cfg: &AuthConfig, mut resp: Response, requested: Instant) -> Result<AccessToken> {
    match parse_token_response(cfg, &resp, requested) {
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
    }
}

/// The error of a token endpoint's error answer: the status, what the server said, and
/// the likely fix.
fn token_endpoint_error(
    cfg: &AuthConfig,
    key: &EcKey,
    endpoint: &Target,
    resp: Response,
    refused: Option<&str>,
    hint: Option<&str>,
    secrets: &[&str],
) -> Error {
    let (error, description) = oauth_error(&resp);
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
    let proof_refused = refused == Some("invalid_dpop_proof");
    if let Some(h) = hint {
        msg.push_str(&format!("; {h}"));
    } else if proof_refused && key.alg() != "ES256" {
        // Many servers (and the DPoP profiles of several products) take ES256 only, and
        // some say no more than "invalid_dpop_proof" when they see another algorithm.
        msg.push_str(&format!(
            "; the DPoP key is {}, and the server may accept ES256 only: sign with an EC P-256 (ES256) key, \
             e.g. `dpopkit keygen --alg ES256 --out dpop.pem` or dpopkit_key_generate_alg(key, \"ES256\"){}",
            key.describe(),
            if cfg.token_endpoint.is_some() {
                "; or set \"issuer\" in the AuthToken instead of \"token_endpoint\": dpopkit then signs with an \
                 algorithm the server's metadata lists (dpop_signing_alg_values_supported), or says which key to make"
            } else {
                ""
            }
        ));
    }
    // A refused proof is the DPoP proof error whatever the cause the text names.
    let kind = if proof_refused { ErrorKind::DpopProof } else { ErrorKind::TokenEndpoint };
    Error::new(kind, scrub(&msg, secrets)).with_response(resp)
}

/// `error` and `error_description` of an OAuth error body, length-limited.
pub fn oauth_error(resp: &ResponseInfo) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&resp.body) else {
        return (None, None);
    };
    // Masked before it is cut: a cut echo of a credential would no longer match it; and
    // after the control characters go, or a secret split by them would come out joined.
    let field = |n: &str| {
        v.get(n).and_then(|x| x.as_str()).map(|s| redact::scrub_for_call(&s.replace(char::is_control, "")).chars().take(300).collect())
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
    crate::core::redact::wipe_json(&mut v);
    result
}

pub(super) fn token_from_json(
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
    // The last moment the token is sent: servers floor `iat` to whole seconds, so their `exp`
    // can come up to a second before `expires_at`; a second more covers the request's way to
    // the resource server (a loaded one takes that long). Past `refresh_at` (when the margin
    // allows: tokens of 20 s and more), a failed renewal still leaves time to use the token.
    let usable_until = expires_at - margin.min(2 * MIN_REFRESH_MARGIN);
    Ok(AccessToken { value, token_type, expires_at, refresh_at, usable_until, ath: Default::default(), authorization: Default::default() })
}
