//! What ships and how a user meets it: the `dpopkit` command-line tool, the built artifacts
//! (SONAME, exports, install layout, pkg-config) and README.md's quick start run as written.
//! The gateway CLI's tests belong here too (a `gateway` module).

#[path = "../common/mod.rs"]
mod common;

mod artifacts;
mod cli;
mod readme;
