//! DPoP (RFC 9449): proofs ([`proof`]), the servers' nonces ([`nonce`]) and the
//! `WWW-Authenticate` challenges they come with ([`challenge`]), and the one exchange
//! both roles run ([`exchange`]: proof, algorithm, nonce, the nonce retry, the algorithm
//! retry and the clock-skew retry; [`algs`] remembers what each server took). Above `key/` (proofs are
//! signed) and `http/` (deadlines, the servers' clocks); below `oauth/` and `client/`.

pub mod algs;
pub mod challenge;
pub mod exchange;
pub mod jti;
pub mod nonce;
pub mod proof;
