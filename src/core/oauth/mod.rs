//! OAuth 2.0 client_credentials: the AuthToken configuration, the token request and its
//! cache with single flight ([`token`]), the on-disk token cache shared between processes
//! ([`store`]) and authorization server metadata ([`discovery`]). Above `dpop/` and
//! `http/`; below `client/`.

pub mod discovery;
pub mod store;
pub mod token;
