//! Against servers: the real test peers (oidc-provider and the jose-validating resource
//! server, tests/peers), the authorization servers people use (imitated), hostile scripted
//! loopback servers (tests/common/fault.rs), TLS with a test CA, a real forward proxy
//! (tinyproxy), keys in SoftHSM2, and the token cache shared by processes.

#[path = "../common/mod.rs"]
mod common;

mod algs;
mod c_abi;
mod cleartext;
mod concurrency;
mod connection_pool;
mod deadline;
mod echoed_credentials;
mod faults;
mod flow;
mod headers_and_bodies;
mod interop;
mod pkcs11;
mod proxy;
mod redaction;
mod shared_token_cache;
mod tls;
