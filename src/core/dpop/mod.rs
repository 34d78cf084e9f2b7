//! DPoP (RFC 9449): proofs ([`proof`]), the servers' nonces ([`nonce`]) and the
//! `WWW-Authenticate` challenges they come with ([`challenge`]), and the one exchange
//! both roles run ([`exchange`]: proof, nonce, the nonce retry and the clock-skew retry). Above `key/` (proofs are
//! signed) and `http/` (deadlines, the servers' clocks); below `oauth/` and `client/`.

pub mod challenge;
pub mod exchange;
pub mod nonce;
pub mod proof;
