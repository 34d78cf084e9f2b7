//! What ships and how a user meets it: the `dpopkit` command-line tool, the built artifacts
//! (SONAME, exports, install layout, pkg-config) and README.md's quick start run as written.
//! `dpopkit serve`, the gateway, is in `gateway`.

#[path = "../common/mod.rs"]
mod common;

mod artifacts;
mod cli;
#[cfg(feature = "gateway")]
mod gateway;
mod readme;
