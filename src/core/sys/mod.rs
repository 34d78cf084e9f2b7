//! The platform layer: every system call std does not offer, and so the core's platform
//! `unsafe` (besides the key-pair wipe in `key/`). Unix: the effective user id and `flock`
//! ([`unix`]); Windows: owner-only files and directories, the token cache's file lock and
//! the user's SID (`windows`, Windows only). New platform code goes here, behind a safe function.

#[cfg(unix)]
pub mod unix;
#[cfg(unix)]
pub use unix::{euid, forks, try_lock};
#[cfg(windows)]
pub mod windows;

/// Windows has no fork: state is never copied into another process.
#[cfg(not(unix))]
pub fn forks() -> Option<u64> {
    Some(0)
}
