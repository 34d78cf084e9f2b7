//! The per-handle, per-thread last-call state (what the `last_*` getters read) and the
//! error as the C side sees it. Below [`super::boundary`] (which records into it) and
//! [`super::objects`] (whose objects hold it); imports neither.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;

use super::result::dpopkit_result;
use crate::core::{Error, ResponseInfo};

/// An error as the C side sees it.
#[derive(Debug)]
pub struct FfiError {
    pub code: dpopkit_result,
    pub text: String,
    pub response: Option<Box<ResponseInfo>>,
}

impl FfiError {
    pub fn new(code: dpopkit_result, text: impl Into<String>) -> Self {
        FfiError { code, text: text.into(), response: None }
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        FfiError { code: e.kind.into(), text: e.message, response: e.response }
    }
}

/// Bytes of response bodies and headers held in last-call states, process-wide.
static HELD_BYTES: AtomicUsize = AtomicUsize::new(0);

/// A last response kept for the `last_*` getters; counted in [`held_response_bytes`].
pub struct HeldResponse(ResponseInfo);

impl HeldResponse {
    pub(crate) fn new(r: ResponseInfo) -> Self {
        HELD_BYTES.fetch_add(weight(&r), Ordering::Relaxed);
        HeldResponse(r)
    }
}

fn weight(r: &ResponseInfo) -> usize {
    r.body.len() + r.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

impl Drop for HeldResponse {
    fn drop(&mut self) {
        HELD_BYTES.fetch_sub(weight(&self.0), Ordering::Relaxed);
    }
}

impl std::ops::Deref for HeldResponse {
    type Target = ResponseInfo;
    fn deref(&self) -> &ResponseInfo {
        &self.0
    }
}

/// Diagnostics (Rust only, not in the C ABI): bytes of responses that last-call states
/// of all handles and threads hold right now.
pub fn held_response_bytes() -> usize {
    HELD_BYTES.load(Ordering::Relaxed)
}

/// What one call left behind, as read by the `last_*` getters.
#[derive(Clone, Default)]
pub struct LastCall {
    pub code: u32,
    pub text: String,
    pub success: bool,
    /// HTTP status of the last request made through this handle on this thread.
    pub status: u16,
    pub response: Option<Arc<HeldResponse>>,
}

type StateMap = Mutex<HashMap<ThreadId, LastCall>>;

fn lock(m: &StateMap) -> std::sync::MutexGuard<'_, HashMap<ThreadId, LastCall>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Per-thread last-call state of one object. A thread's entry lives as long as both the
/// thread and the object: it is removed when the thread ends (see `Touched`) and with
/// the object when its handle is destroyed. Entries of live threads are never dropped, so
/// a thread always reads back its own result, however many threads come and go.
#[derive(Default)]
pub struct CallStates(Arc<StateMap>);

impl CallStates {
    pub fn get(&self) -> Option<LastCall> {
        lock(&self.0).get(&std::thread::current().id()).cloned()
    }

    /// Number of threads whose state this object holds.
    pub fn len(&self) -> usize {
        lock(&self.0).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut LastCall)) {
        let id = touch(&self.0);
        f(lock(&self.0).entry(id).or_default());
    }
}

/// The objects in which this thread has left a last-call state, so that the state is
/// removed when the thread ends (its thread-local is dropped). Weak references: an object
/// that goes away takes its states with it, and its dead entry here is pruned later.
struct Touched {
    thread: ThreadId,
    /// By the address of the object's state map (stable while the Weak is held).
    objects: HashMap<usize, Weak<StateMap>>,
    /// Dead entries are pruned when `objects` reaches this size (amortized O(1)).
    prune_at: usize,
}

impl Drop for Touched {
    fn drop(&mut self) {
        for w in self.objects.values() {
            if let Some(map) = w.upgrade() {
                let mine = lock(&map).remove(&self.thread);
                drop(mine); // outside the lock: a large response is freed here
            }
        }
    }
}

/// Records that this thread keeps state in `map`; returns the thread's id.
fn touch(map: &Arc<StateMap>) -> ThreadId {
    let id = std::thread::current().id();
    // During thread teardown the registry may be gone already: the state is then kept
    // until the object is destroyed (a bounded leak, never a lost result).
    let _ = TOUCHED.try_with(|t| {
        let Ok(mut t) = t.try_borrow_mut() else { return };
        let key = Arc::as_ptr(map) as usize;
        if t.objects.contains_key(&key) {
            return;
        }
        if t.objects.len() >= t.prune_at {
            t.objects.retain(|_, w| w.strong_count() > 0);
            t.prune_at = (2 * t.objects.len()).max(16);
        }
        t.objects.insert(key, Arc::downgrade(map));
    });
    id
}
thread_local! {
    static TOUCHED: RefCell<Touched> = RefCell::new(Touched {
        thread: std::thread::current().id(),
        objects: HashMap::new(),
        prune_at: 16,
    });
}

/// How many objects this thread's record of touched objects holds (for tests).
#[cfg(test)]
pub(crate) fn touched_len() -> usize {
    TOUCHED.with(|t| t.borrow().objects.len())
}
