//! The Unix system calls std does not offer at this crate's minimum Rust version: the
//! effective user id and `flock`. The only `unsafe` of the core besides `sys::windows`
//! and the key-pair wipe in `key/`.
#![allow(unsafe_code)]

use std::os::unix::io::AsRawFd;

/// The effective user id of the process: the owner the session log, the token cache
/// directory and its files must have.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and always succeeds.
    unsafe { libc::geteuid() }
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when another open file description holds it.
pub fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    loop {
        // SAFETY: the descriptor is open for the duration of the call (borrowed `file`).
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(code) if code == libc::EWOULDBLOCK || code == libc::EAGAIN => return Ok(false),
            _ => return Err(e),
        }
    }
}
