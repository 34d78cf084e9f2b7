//! The panic boundary and the last-call state.
//!
//! Every exported function runs its body through [`run`] (which records the outcome) or
//! [`peek`] (for getters of the last-call state, which must not overwrite it). A panic is
//! caught and becomes `DPOPKIT_RESULT_PANIC` plus the function's failure value.
//!
//! The last-call state (code, text, success, HTTP status, last response) is kept per
//! handle *and* per calling thread, inside the object, so threads that share one Http
//! handle never read each other's results. A thread's entry is removed when the thread
//! ends and with the object when its handle is destroyed, and never otherwise: memory
//! follows the live (thread, object) pairs, and a live thread never loses its result. A
//! thread-local copy of the latest failure serves `dpopkit_last_error_text(0)` and calls
//! whose handle was invalid.

use std::cell::{Cell, RefCell};
use std::ffi::c_char;
use std::os::raw::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Once};

pub use super::calls::{CallStates, FfiError, HeldResponse, LastCall, held_response_bytes};
use super::registry;
use super::result::dpopkit_result;
use crate::core::ResponseInfo;

thread_local! {
    static THREAD_LAST: RefCell<LastCall> = RefCell::new(LastCall::default());
    /// > 0 while this thread runs inside an exported function.
    static IN_BOUNDARY: Cell<u32> = const { Cell::new(0) };
}

/// The library never prints. The default panic hook writes to stderr, so a hook is
/// chained in front of whatever hook the host has: it stays silent for panics inside a
/// dpopkit call (they become `DPOPKIT_RESULT_PANIC`) and hands every other panic to the
/// previous hook unchanged.
fn install_quiet_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_BOUNDARY.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
}

/// Catches a panic of `f`, silently.
fn catch<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    install_quiet_panic_hook();
    IN_BOUNDARY.with(|c| c.set(c.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(f));
    IN_BOUNDARY.with(|c| c.set(c.get() - 1));
    r
}

pub fn thread_last() -> LastCall {
    // During thread teardown (a call from another thread-local's destructor) the state may
    // be gone: there is nothing to read back then, and that is no reason to panic.
    THREAD_LAST.try_with(|t| t.borrow().clone()).unwrap_or_default()
}

/// Filled in by calls that made an HTTP request, so `last_status` and the last response
/// are updated (on success and on failure alike).
#[derive(Default)]
pub struct Ctx {
    pub response: Option<ResponseInfo>,
    pub requested: bool,
}

/// The value a function returns on failure.
pub trait Failure {
    fn failure() -> Self;
}

impl Failure for c_int {
    fn failure() -> Self {
        0
    }
}

impl Failure for i64 {
    fn failure() -> Self {
        0
    }
}

impl Failure for *mut c_char {
    fn failure() -> Self {
        std::ptr::null_mut()
    }
}

impl Failure for *mut u8 {
    fn failure() -> Self {
        std::ptr::null_mut()
    }
}

impl Failure for u32 {
    fn failure() -> Self {
        dpopkit_result::Panic as u32
    }
}

fn panic_error(function: &str) -> FfiError {
    FfiError::new(
        dpopkit_result::Panic,
        format!("internal error (panic) in {function}; the call had no effect that can be relied on. Please report this bug"),
    )
}

/// Runs `f`, catches panics, and records the outcome for `handle` (if it names a live
/// object) and for the calling thread.
pub fn run<T: Failure>(function: &'static str, handle: i64, f: impl FnOnce(&mut Ctx) -> Result<T, FfiError>) -> T {
    let mut ctx = Ctx::default();
    let result = catch(|| f(&mut ctx)).unwrap_or_else(|_| Err(panic_error(function)));
    let _ = catch(|| record(handle, &result, ctx));
    result.unwrap_or_else(|_| T::failure())
}

/// Like [`run`], but a success leaves the last-call state alone: for `dpopkit_destroy`, so
/// that cleanup code can still read the error that sent it there.
pub fn run_keep_success<T: Failure>(function: &'static str, f: impl FnOnce() -> Result<T, FfiError>) -> T {
    match catch(f).unwrap_or_else(|_| Err(panic_error(function))) {
        Ok(v) => v,
        Err(e) => {
            let result: Result<T, FfiError> = Err(e);
            let _ = catch(|| record(0, &result, Ctx::default()));
            T::failure()
        }
    }
}

fn record<T>(handle: i64, result: &Result<T, FfiError>, ctx: Ctx) {
    let (code, text, mut response) = match result {
        Ok(_) => (dpopkit_result::Ok as u32, String::new(), None),
        Err(e) => (e.code as u32, e.text.clone(), e.response.as_deref().cloned()),
    };
    if ctx.response.is_some() {
        response = ctx.response;
    }
    let response = response.map(|r| Arc::new(HeldResponse::new(r)));
    let requested = ctx.requested || response.is_some();
    let apply = |s: &mut LastCall| {
        s.code = code;
        s.text.clone_from(&text);
        s.success = result.is_ok();
        if requested {
            s.status = response.as_ref().map_or(0, |r| r.status);
            s.response.clone_from(&response);
        }
    };
    if handle != 0 {
        if let Ok(obj) = registry::get(handle) {
            obj.calls().update(apply);
        }
    }
    let _ = THREAD_LAST.try_with(|t| apply(&mut t.borrow_mut()));
}

/// For getters of the last response that can fail (`last_response_header_value`,
/// `last_response_body_bytes`): like [`run`], but a success leaves the last-call state
/// alone, so reading a header after a failed call keeps that call's error; a failure
/// records its code and text and keeps the last status and response.
pub fn run_getter<T: Failure>(function: &'static str, handle: i64, f: impl FnOnce() -> Result<T, FfiError>) -> T {
    match catch(f).unwrap_or_else(|_| Err(panic_error(function))) {
        Ok(v) => v,
        Err(e) => {
            let result: Result<T, FfiError> = Err(e);
            let _ = catch(|| record(handle, &result, Ctx::default()));
            T::failure()
        }
    }
}

/// For getters of the last-call state: catches panics, records nothing.
pub fn peek<T>(failure: T, f: impl FnOnce() -> T) -> T {
    catch(f).unwrap_or(failure)
}

/// The state a `last_*` getter reads: the object's for this thread when `handle` names a
/// live object, else this thread's latest.
pub fn last_for(handle: i64) -> LastCall {
    if handle != 0 {
        if let Ok(obj) = registry::get(handle) {
            return obj.calls().get().unwrap_or_default();
        }
    }
    thread_last()
}

/// Diagnostics (Rust only, not in the C ABI): how many threads' last-call states the
/// object behind `handle` holds (0 for an invalid handle).
pub fn thread_states(handle: i64) -> usize {
    registry::get(handle).map_or(0, |o| o.calls().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_result_code_not_an_abort() {
        let r: c_int = run("test_fn", 0, |_| -> Result<c_int, FfiError> { panic!("boom") });
        assert_eq!(r, 0);
        let last = thread_last();
        assert_eq!(last.code, dpopkit_result::Panic as u32);
        assert!(last.text.contains("test_fn"));
        let p: *mut c_char = run("test_fn", 0, |_| -> Result<*mut c_char, FfiError> { panic!("boom") });
        assert!(p.is_null());
    }

    #[test]
    fn a_threads_state_dies_with_the_thread_and_dead_objects_are_pruned() {
        use super::super::registry::{Object, insert, remove};
        let h = insert(Object::Json(Arc::default())).unwrap();
        std::thread::spawn(move || {
            let _: c_int = run("f", h, |_| Err(FfiError::new(dpopkit_result::Json, "theirs")));
            assert_eq!(last_for(h).text, "theirs");
            assert_eq!(thread_states(h), 1);
            // Objects this thread touched and that were destroyed do not pile up here.
            for _ in 0..1000 {
                let o = insert(Object::Json(Arc::default())).unwrap();
                let _: c_int = run("f", o, |_| Ok(1));
                remove(o).unwrap();
            }
            let kept = super::super::calls::touched_len();
            assert!(kept <= 40, "{kept} entries for 1 live object");
        })
        .join()
        .unwrap();
        assert_eq!(thread_states(h), 0, "the ended thread's state went with it");
        remove(h).unwrap();
    }

    #[test]
    fn state_is_per_thread() {
        let _: c_int = run("f", 0, |_| Err(FfiError::new(dpopkit_result::Json, "mine")));
        std::thread::spawn(|| {
            assert_eq!(thread_last().code, 0);
            let _: c_int = run("f", 0, |_| Ok(1));
        })
        .join()
        .unwrap();
        assert_eq!(thread_last().text, "mine");
    }
}
