//! Secrets are wiped from memory: a global allocator scans every block freed while a check
//! runs for the needles (a private scalar in all the forms it is kept in, the client
//! credentials as they are encoded for a request) and counts the blocks that still hold one.
//! A control in each group (a block freed on purpose without wiping) proves the scanner
//! finds what it looks for. Its own test binary: the allocator is process-wide, and one
//! check runs at a time ([`freed_copies`] holds a lock).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

mod credentials;
mod keys;

struct Scanner;

static SCANNING: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);
static NEEDLES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Scanner {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if SCANNING.load(Ordering::SeqCst) {
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            // try_lock: the needle list's own blocks are never scanned while it is held.
            if let Ok(needles) = NEEDLES.try_lock() {
                if needles.iter().any(|n| !n.is_empty() && block.windows(n.len()).any(|w| w == &n[..])) {
                    FOUND.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Scanner = Scanner;

/// Runs `f` with the scanner on and returns how many freed blocks held a needle. One call
/// at a time in the whole process (the scanner is process-wide).
fn freed_copies(needles: &[&[u8]], f: impl FnOnce()) -> usize {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    *NEEDLES.lock().unwrap() = needles.iter().map(|n| n.to_vec()).collect();
    FOUND.store(0, Ordering::SeqCst);
    SCANNING.store(true, Ordering::SeqCst);
    f();
    SCANNING.store(false, Ordering::SeqCst);
    NEEDLES.lock().unwrap().clear();
    FOUND.load(Ordering::SeqCst)
}
