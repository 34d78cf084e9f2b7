//! The library without the real test peers: the C ABI's handles and their misuse, the
//! generated header and the bindings' drift from it, per-thread and process-wide state, the
//! session log file, panics at the boundary, fuzz regressions and the key texts. Where a
//! call needs a server, a scripted loopback one (tests/common/fault.rs). Tests that start
//! tests/peers (node) are in tests/servers.

#[path = "../common/mod.rs"]
mod common;

mod binding_drift;
mod fuzz_regressions;
mod handles;
mod header;
mod key_docs;
mod methods;
mod panic;
mod process_state;
mod session_log;
mod thread_state;
