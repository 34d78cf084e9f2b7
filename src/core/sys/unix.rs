//! The Unix system calls std does not offer at this crate's minimum Rust version: the
//! effective user id, `flock`, and a count of the forks this process came out of. The only `unsafe` of the core besides `sys::windows`
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

/// How many times the process has been forked (0 in the process that loaded dpopkit, 1
/// in its child, ...), counted by a `pthread_atfork` child handler registered on the first
/// call; `None` if it cannot be registered. State copied by a fork that must not be used
/// twice (the pool of `jti` bits) is tied to this count.
pub fn forks() -> Option<u64> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static FORKS: AtomicU64 = AtomicU64::new(0);
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    extern "C" fn in_child() {
        FORKS.fetch_add(1, Ordering::AcqRel);
    }
    // SAFETY: registers a handler that only increments an atomic (async-signal-safe, as
    // a handler run after fork must be). glibc unregisters it if the library is unloaded.
    let ok = *REGISTERED.get_or_init(|| unsafe { libc::pthread_atfork(None, None, Some(in_child)) } == 0);
    ok.then(|| FORKS.load(Ordering::Acquire))
}
