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
///
/// The registration is remembered in a plain atomic, not a `OnceLock`: a fork while
/// another thread is inside a `OnceLock`'s initialisation would leave it running forever
/// in the child. Two threads may both register on their first call; each fork then counts
/// twice, which changes the count all the same.
pub fn forks() -> Option<u64> {
    use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
    static FORKS: AtomicU64 = AtomicU64::new(0);
    /// 0: not registered yet, 1: registered, 2: registration failed.
    static STATE: AtomicU8 = AtomicU8::new(0);
    extern "C" fn in_child() {
        FORKS.fetch_add(1, Ordering::AcqRel);
    }
    let state = match STATE.load(Ordering::Acquire) {
        0 => {
            // SAFETY: registers a handler that only increments an atomic (async-signal-safe,
            // as a handler run after fork must be). glibc unregisters it if the library is
            // unloaded.
            let ok = unsafe { libc::pthread_atfork(None, None, Some(in_child)) } == 0;
            let state = if ok { 1 } else { 2 };
            STATE.store(state, Ordering::Release);
            state
        }
        s => s,
    };
    (state == 1).then(|| FORKS.load(Ordering::Acquire))
}
