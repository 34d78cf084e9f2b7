//! Handles: tagged, salted, never-reused 64-bit integers (the mozilla ffi-support idea).
//!
//! Layout of a handle (always > 0): bits 56..62 the object type tag, bits 40..55 a random
//! per-process salt (so small integers and handles from another copy of the library are
//! never valid), bits 0..39 a counter that is never reused, so a destroyed handle stays
//! invalid. The map holds `Arc`s: a call clones the `Arc` under a brief read lock and works
//! without the lock, so destroying a handle during a call on another thread is safe.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use super::calls::FfiError;
use super::objects::{HttpObj, JsonObj, KeyObj};
use super::result::dpopkit_result;

#[derive(Clone, Debug)]
pub enum Object {
    Key(Arc<KeyObj>),
    Json(Arc<JsonObj>),
    Http(Arc<HttpObj>),
}

impl Object {
    fn tag(&self) -> u64 {
        match self {
            Object::Key(_) => 1,
            Object::Json(_) => 2,
            Object::Http(_) => 3,
        }
    }

    pub fn calls(&self) -> &super::calls::CallStates {
        match self {
            Object::Key(o) => &o.calls,
            Object::Json(o) => &o.calls,
            Object::Http(o) => &o.calls,
        }
    }
}

fn type_name(tag: u64) -> &'static str {
    match tag {
        1 => "PrivateKey",
        2 => "JsonObject",
        3 => "Http",
        _ => "unknown",
    }
}

const COUNTER_BITS: u32 = 40;
const SALT_SHIFT: u32 = 40;
const TAG_SHIFT: u32 = 56;

struct Registry {
    salt: u64,
    next: AtomicU64,
    map: RwLock<HashMap<i64, Object>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    let salt = (u16::from_le_bytes(b) as u64).max(1);
    Registry { salt, next: AtomicU64::new(1), map: RwLock::new(HashMap::new()) }
});

pub fn insert(obj: Object) -> Result<i64, FfiError> {
    let r = &*REGISTRY;
    let n = r.next.fetch_add(1, Ordering::Relaxed);
    if n >= 1 << COUNTER_BITS {
        return Err(FfiError::new(dpopkit_result::Internal, "the handle space of this process is exhausted"));
    }
    let h = ((obj.tag() << TAG_SHIFT) | (r.salt << SALT_SHIFT) | n) as i64;
    r.map.write().unwrap_or_else(|e| e.into_inner()).insert(h, obj);
    Ok(h)
}

fn invalid(h: i64, why: &str) -> FfiError {
    FfiError::new(dpopkit_result::InvalidHandle, format!("handle {h} is not valid: {why}"))
}

/// The object behind any valid handle.
pub fn get(h: i64) -> Result<Object, FfiError> {
    if h == 0 {
        return Err(invalid(h, "0 means no object"));
    }
    if h < 0 {
        return Err(invalid(h, "handles are positive"));
    }
    let r = &*REGISTRY;
    if ((h as u64) >> SALT_SHIFT) & 0xffff != r.salt {
        return Err(invalid(h, "it was not created by this library instance"));
    }
    let map = r.map.read().unwrap_or_else(|e| e.into_inner());
    map.get(&h).cloned().ok_or_else(|| invalid(h, "it was destroyed or never created"))
}

fn wrong_type(h: i64, obj: &Object, expected: u64) -> FfiError {
    FfiError::new(
        dpopkit_result::WrongHandleType,
        format!("handle {h} is a {}, but a {} is needed here", type_name(obj.tag()), type_name(expected)),
    )
}

pub fn key(h: i64) -> Result<Arc<KeyObj>, FfiError> {
    match get(h)? {
        Object::Key(o) => Ok(o),
        other => Err(wrong_type(h, &other, 1)),
    }
}

pub fn json(h: i64) -> Result<Arc<JsonObj>, FfiError> {
    match get(h)? {
        Object::Json(o) => Ok(o),
        other => Err(wrong_type(h, &other, 2)),
    }
}

pub fn http(h: i64) -> Result<Arc<HttpObj>, FfiError> {
    match get(h)? {
        Object::Http(o) => Ok(o),
        other => Err(wrong_type(h, &other, 3)),
    }
}

/// Removes a handle. The object is dropped when the last in-flight call on it ends.
pub fn remove(h: i64) -> Result<(), FfiError> {
    get(h)?;
    let removed = REGISTRY.map.write().unwrap_or_else(|e| e.into_inner()).remove(&h);
    removed.map(|_| ()).ok_or_else(|| invalid(h, "it was destroyed or never created"))
}

/// Number of live handles (for leak checks in tests).
pub fn live_count() -> usize {
    REGISTRY.map.read().unwrap_or_else(|e| e.into_inner()).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_tagged_salted_and_never_reused() {
        let a = insert(Object::Json(Arc::default())).unwrap();
        let b = insert(Object::Key(Arc::default())).unwrap();
        assert!(a > 0 && b > 0 && a != b);
        assert!(json(a).is_ok());
        assert_eq!(json(b).unwrap_err().code, dpopkit_result::WrongHandleType);
        assert_eq!(http(a).unwrap_err().code, dpopkit_result::WrongHandleType);
        remove(a).unwrap();
        assert_eq!(json(a).unwrap_err().code, dpopkit_result::InvalidHandle);
        assert_eq!(remove(a).unwrap_err().code, dpopkit_result::InvalidHandle);
        for made_up in [0, -1, 1, 2, 3, i64::MAX, a + 1000] {
            assert_eq!(get(made_up).unwrap_err().code, dpopkit_result::InvalidHandle, "{made_up}");
        }
        // Same counter, other salt: rejected.
        let other_salt = b ^ (1 << SALT_SHIFT);
        assert_eq!(get(other_salt).unwrap_err().code, dpopkit_result::InvalidHandle);
        remove(b).unwrap();
    }
}
