//! Threads that sign for calls with a deadline: the calling thread waits for the answer
//! until its deadline and then returns TIMEOUT, leaving a stalled token call to the
//! worker, which finishes it (and gives the session back) whenever the token answers.
//! Idle workers are reused (at most `MAX_IDLE`, each for `IDLE_FOR`), so a signature costs
//! a hand-over, not a thread start. Workers are bounded by the signatures in progress:
//! each holds one of a token's sessions or waits for one until its deadline.

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use super::{Error, ErrorKind, Result};

pub(super) type Job = Box<dyn FnOnce() + Send>;

const MAX_IDLE: usize = 16;
const IDLE_FOR: Duration = Duration::from_secs(30);
static IDLE: Mutex<Vec<(u64, Sender<Job>)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

fn idle() -> std::sync::MutexGuard<'static, Vec<(u64, Sender<Job>)>> {
    IDLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `job` on an idle worker, or on a new one.
pub(super) fn run(mut job: Job) -> Result<()> {
    loop {
        let Some((_, tx)) = idle().pop() else { break };
        match tx.send(job) {
            Ok(()) => return Ok(()),
            // That worker has just ended: the job comes back.
            Err(mpsc::SendError(j)) => job = j,
        }
    }
    std::thread::Builder::new()
        .name("dpopkit-pkcs11".into())
        .spawn(move || work(job))
        .map(drop)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot start a PKCS#11 signing thread: {e}")))
}

fn work(first: Job) {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel::<Job>();
    let mut job = first;
    loop {
        // A panic in a job drops its answer channel: the caller gets an error, and the
        // worker goes on.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
        {
            let mut idle = idle();
            if idle.len() >= MAX_IDLE {
                return;
            }
            idle.push((id, tx.clone()));
        }
        job = match rx.recv_timeout(IDLE_FOR) {
            Ok(j) => j,
            Err(_) => {
                let mut idle = idle();
                if let Some(i) = idle.iter().position(|(w, _)| *w == id) {
                    idle.remove(i);
                    return;
                }
                // Taken from the list meanwhile: its job is on the way.
                drop(idle);
                match rx.recv() {
                    Ok(j) => j,
                    Err(_) => return,
                }
            }
        };
    }
}
