//! The random bits of each proof's `jti`, fetched from the operating system a few dozen
//! proofs at a time per thread instead of with one `getrandom` system call per proof (the
//! only system call a proof made besides the signature's own).
//!
//! A process that forks copies the pool: parent and child would send the same next
//! `jti`s, and a server that remembers `jti`s (RFC 9449 §11.1) would refuse the second as
//! a replay. So the pool is tied to the process's fork count ([`crate::core::sys::forks`],
//! a `pthread_atfork` child handler): in a child the copied pool is thrown away unused and
//! filled again from the system. Where that handler cannot be registered, every `jti`
//! comes straight from the system, as before. The bits are no secret (a `jti` is sent in
//! the clear in the proof); each is zeroed in the pool once handed out anyway.

use std::cell::RefCell;

use ring::rand::{SecureRandom, SystemRandom};

use crate::core::error::{Error, ErrorKind, Result};

/// Bytes of one `jti` (128 bits).
pub const JTI_BYTES: usize = 16;
/// `jti`s per refill: 512 bytes per thread that makes proofs.
const PER_FILL: usize = 32;

struct Pool {
    bytes: [u8; JTI_BYTES * PER_FILL],
    /// The next unused `jti` (`PER_FILL`: none left).
    next: usize,
    /// The fork count the bytes were fetched at.
    forks: u64,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; JTI_BYTES * PER_FILL], next: PER_FILL, forks: 0 }) };
}

fn system_failed() -> Error {
    Error::new(ErrorKind::Internal, "the system random generator failed")
}

/// 128 bits from the system's generator, one system call.
fn straight() -> Result<[u8; JTI_BYTES]> {
    let mut b = [0u8; JTI_BYTES];
    SystemRandom::new().fill(&mut b).map_err(|_| system_failed())?;
    Ok(b)
}

/// The random bits of a new `jti`: never handed out twice, in this process or in any
/// process forked from it.
pub fn random_jti_bytes() -> Result<[u8; JTI_BYTES]> {
    let Some(forks) = crate::core::sys::forks() else { return straight() };
    let pooled = POOL.try_with(|p| {
        let Ok(mut p) = p.try_borrow_mut() else { return None }; // re-entered: cannot happen
        if p.next == PER_FILL || p.forks != forks {
            p.next = PER_FILL; // nothing from the old bytes is used, even if the fill fails
            SystemRandom::new().fill(&mut p.bytes).ok()?;
            p.next = 0;
            p.forks = forks;
        }
        let at = p.next * JTI_BYTES;
        let mut out = [0u8; JTI_BYTES];
        out.copy_from_slice(&p.bytes[at..at + JTI_BYTES]);
        p.bytes[at..at + JTI_BYTES].fill(0);
        p.next += 1;
        Some(out)
    });
    match pooled {
        Ok(Some(b)) => Ok(b),
        _ => straight(), // the thread is ending (its pool is gone), or the fill failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jtis_are_distinct_across_refills() {
        let all: std::collections::HashSet<[u8; JTI_BYTES]> = (0..5 * PER_FILL).map(|_| random_jti_bytes().unwrap()).collect();
        assert_eq!(all.len(), 5 * PER_FILL);
    }

    /// The pool is copied by fork(2): without the fork count the child's next jtis would
    /// be the parent's next ones (a replay for a server that remembers jtis).
    #[cfg(unix)]
    #[test]
    #[allow(unsafe_code)]
    fn a_forked_child_never_sends_the_parents_next_jtis() {
        random_jti_bytes().unwrap(); // the pool is filled, with PER_FILL - 1 left
        let mut fds = [0i32; 2];
        // SAFETY: a valid array of two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only takes jtis (no allocation, no lock another thread could
        // hold), writes them to the pipe and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let mut out = [0u8; 4 * JTI_BYTES];
            for chunk in out.chunks_mut(JTI_BYTES) {
                chunk.copy_from_slice(&random_jti_bytes().unwrap_or([0; JTI_BYTES]));
            }
            // SAFETY: the pipe's write end, a valid buffer; _exit skips the harness.
            unsafe {
                libc::write(fds[1], out.as_ptr().cast(), out.len());
                libc::_exit(0);
            }
        }
        let mine: Vec<[u8; JTI_BYTES]> = (0..4).map(|_| random_jti_bytes().unwrap()).collect();
        let mut got = [0u8; 4 * JTI_BYTES];
        let mut read = 0;
        while read < got.len() {
            // SAFETY: the pipe's read end, the unread rest of a valid buffer.
            let n = unsafe { libc::read(fds[0], got[read..].as_mut_ptr().cast(), got.len() - read) };
            assert!(n > 0, "the child wrote {read} of {} bytes", got.len());
            read += n as usize;
        }
        let mut status = 0;
        // SAFETY: our child's pid, a valid out pointer.
        unsafe {
            libc::waitpid(pid, &mut status, 0);
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        let child: Vec<&[u8]> = got.chunks(JTI_BYTES).collect();
        assert!(child.iter().all(|c| c.iter().any(|&b| b != 0)), "the child got no random bits");
        for m in &mine {
            assert!(!child.contains(&m.as_slice()), "the forked child took the parent's next jti");
        }
    }
}
