//! The DPoP exchange, one implementation for both roles (the token endpoint and a resource
//! server): a proof with the server's current nonce and the server's clock, signed with an
//! algorithm the server takes (its metadata, else what it asked for before, else the key's
//! preferred one), one retry when the server asks for a nonce (`use_dpop_nonce`), one when
//! it refuses the proof and its challenge lists other algorithms (`algs`) the key signs, and
//! one when it refuses the proof while its clock differs from ours (`invalid_dpop_proof`),
//! with one retry state per call. What
//! differs between the roles is data: the nonce store ([`nonce::Role`]), how a refusal is
//! read from a response ([`Server::refusal`]), and what the caller does with the answer.

use crate::core::error::{ErrorKind, Result, err};
use crate::core::http::clock;
use crate::core::http::{Deadline, Response};
use crate::core::key::EcKey;
use crate::core::session_log::SessionLog;

use super::proof::make_proof_alg_with_ath;
use super::{algs, challenge, nonce};

/// The server one exchange talks to, and how it says no.
pub struct Server<'a> {
    /// Which nonce store: the token endpoint's or the resource servers'.
    pub role: nonce::Role,
    /// `scheme://host[:port]`: the key of its nonce and of its clock.
    pub origin: &'a str,
    /// Names the server in the text of a failed nonce retry.
    pub who: &'a str,
    /// The proof algorithms the server says it takes (`dpop_signing_alg_values_supported`),
    /// when it says.
    pub algs: Option<&'a [String]>,
    /// The DPoP or OAuth error of a response that refuses the request, `None` for an
    /// answer (success or not) that is the caller's to read: for the token endpoint any
    /// error status with an `error`, for a resource server a 401 with a DPoP challenge.
    pub refusal: fn(&Response) -> Option<String>,
    /// `clock_skew_correction` and `max_clock_skew` of the AuthToken.
    pub clock_skew_correction: bool,
    pub max_clock_skew: i64,
    pub log: Option<&'a SessionLog>,
}

/// The retries a call has made, shared by every request of the call (redirect hops
/// included): each is made at most once.
#[derive(Default)]
pub struct Retries {
    pub nonce: bool,
    /// Resource server only: a new token after `invalid_token`.
    pub token: bool,
    pub clock: bool,
    /// A proof with another algorithm after a challenge's `algs`.
    pub alg: bool,
}

impl Retries {
    /// "the DPoP nonce retry and the clock-skew retry", for error texts ("" when none).
    pub fn describe(&self) -> String {
        let done: Vec<&str> = [
            (self.nonce, "the DPoP nonce retry"),
            (self.token, "the token refetch after invalid_token"),
            (self.alg, "the retry with the algorithm the server asked for"),
            (self.clock, "the clock-skew retry"),
        ]
        .iter()
        .filter(|(d, _)| *d)
        .map(|(_, w)| *w)
        .collect();
        done.join(" and ")
    }
}

/// One attempt of the exchange: the nonce and `iat` its proof carries.
pub struct Attempt<'a> {
    key: &'a EcKey,
    /// The JWS algorithm of the proof.
    pub alg: &'static str,
    pub nonce: Option<String>,
    /// On the server's clock when that is switched on for it (see [`clock`]).
    pub iat: i64,
    deadline: Deadline,
}

impl Attempt<'_> {
    /// The DPoP proof of this attempt for `method` `htu` (with `ath`, the access token's
    /// hash, when a token is sent: see [`crate::core::oauth::token::AccessToken::ath`]),
    /// signed with the attempt's algorithm within the call's deadline.
    pub fn proof(&self, method: &str, htu: &str, ath: Option<&str>) -> Result<String> {
        make_proof_alg_with_ath(self.key, self.alg, method, htu, ath, self.nonce.as_deref(), Some(self.iat), Some(self.deadline))
    }
}

/// How an exchange ended.
pub enum Answer {
    /// A response that is not a refusal ([`Server::refusal`] is `None`): the caller's.
    Final(Response),
    /// A refusal the exchange does not retry (again): its error, and for a refused proof
    /// from a server whose clock differs, the text that says so (`hint`).
    Refused { resp: Response, error: String, hint: Option<String> },
}

/// Runs the exchange: `send` makes one request with the attempt's proof; the server's
/// nonce is kept, and a `use_dpop_nonce` or `invalid_dpop_proof` refusal is retried once
/// each (per `retries`, the call's). A nonce refusal that cannot be retried is the
/// `DpopNonce` error, with the response.
pub fn exchange(
    server: &Server<'_>,
    key: &EcKey,
    deadline: Deadline,
    retries: &mut Retries,
    mut send: impl FnMut(&Attempt<'_>) -> Result<Response>,
) -> Result<Answer> {
    let mut alg = match server.algs {
        Some(offered) => {
            let alg = key
                .choose_alg(Some(offered))
                .ok_or_else(|| key.alg_refusal(server.who, offered, "dpop_signing_alg_values_supported", "DPoP proofs"))?;
            if key.algs().len() > 1 {
                algs::set_key_default(key.jkt(), alg);
            }
            alg
        }
        // A key with one algorithm (EC, the usual case) never looks in the store: no
        // lookup on the hot path.
        None if key.algs().len() == 1 => key.alg(),
        None => algs::get(server.origin, server.role, key.jkt()).or_else(|| algs::key_default(key.jkt())).unwrap_or(key.alg()),
    };
    loop {
        let attempt = Attempt {
            key,
            alg,
            nonce: nonce::get(server.origin, server.role, key.jkt()),
            iat: clock::iat_for(server.origin, server.max_clock_skew),
            deadline,
        };
        let resp = send(&attempt)?;
        let given = resp.header("dpop-nonce").map(str::to_string);
        if let Some(n) = &given {
            nonce::set(server.origin, server.role, key.jkt(), n);
        }
        let Some(error) = (server.refusal)(&resp) else { return Ok(Answer::Final(resp)) };
        match error.as_str() {
            "use_dpop_nonce" => match nonce_retry(server.who, given.as_deref(), attempt.nonce.as_deref(), &mut retries.nonce) {
                Ok(()) => continue,
                Err(e) => return Err(e.with_response(resp)),
            },
            "invalid_dpop_proof" => {
                match alg_retry(server, key, &resp, alg, &mut retries.alg) {
                    Ok(Some(next)) => {
                        alg = next;
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => return Err(e.with_response(resp)),
                }
                match clock_skew_retry(server.origin, server.clock_skew_correction, server.max_clock_skew, retries.clock, server.log) {
                    Ok(()) => {
                        retries.clock = true;
                        continue;
                    }
                    Err(hint) => return Ok(Answer::Refused { resp, error, hint }),
                }
            }
            _ => return Ok(Answer::Refused { resp, error, hint: None }),
        }
    }
}

/// After `invalid_dpop_proof`: the algorithm to retry with (once per call) when the
/// server's challenge lists algorithms (`algs`) without the one just used and with another
/// the key signs, remembered for that server; `None` when the challenge says nothing
/// against `alg`; the error that names what the server takes when the key signs none of it.
fn alg_retry(server: &Server<'_>, key: &EcKey, resp: &Response, alg: &str, retried: &mut bool) -> Result<Option<&'static str>> {
    let Some(offered) = challenge::dpop_algs(&resp.header_all("www-authenticate")) else { return Ok(None) };
    if offered.iter().any(|a| a == alg) {
        return Ok(None);
    }
    match key.choose_alg(Some(&offered)) {
        Some(next) if !*retried => {
            *retried = true;
            algs::set(server.origin, server.role, key.jkt(), next);
            Ok(Some(next))
        }
        Some(_) => Ok(None),
        None => Err(key.alg_refusal(server.who, &offered, "the algs of its WWW-Authenticate: DPoP challenge", "DPoP proofs")),
    }
}

/// After `use_dpop_nonce` from `who`: `Ok` to retry once with the nonce the server just
/// gave (a new one, never a loop), or the `DpopNonce` error that says why not.
pub fn nonce_retry(who: &str, given: Option<&str>, sent: Option<&str>, retried: &mut bool) -> Result<()> {
    if !*retried && given.is_some() && given != sent {
        *retried = true;
        crate::core::counters::nonce_retry();
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
