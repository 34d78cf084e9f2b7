//! DPoP (RFC 9449): proofs ([`proof`]), the servers' nonces ([`nonce`]) and the
//! `WWW-Authenticate` challenges they come with ([`challenge`]). Above `key/` (proofs are
//! signed) and `http/` (deadlines, the servers' clocks); below `oauth/` and `client/`.

pub mod challenge;
pub mod nonce;
pub mod proof;
