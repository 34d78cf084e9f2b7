//! JsonObject: a small JSON object builder, used for the AuthToken description.

use std::ffi::c_char;
use std::os::raw::c_int;
use std::sync::Arc;

use crate::core::redact::wipe_json;
use crate::ffi::boundary::{FfiError, run};
use crate::ffi::registry::{self, Object};
use crate::ffi::result::dpopkit_result;
use crate::ffi::strings::{arg, out};

/// Creates an empty JSON object (`{}`). Returns a handle > 0, or 0 on failure.
/// Destroy it with `dpopkit_destroy`.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_json_new() -> i64 {
    run("dpopkit_json_new", 0, |_| registry::insert(Object::Json(Arc::default())))
}

/// Sets member `name` (a top-level member name, no path syntax) to the string `value`,
/// adding it at the end or replacing it in place. Returns 1 on success, 0 on failure.
///
/// # Safety
/// `name` and `value` are NUL-terminated UTF-8 strings, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_json_update_string(json: i64, name: *const c_char, value: *const c_char) -> c_int {
    run("dpopkit_json_update_string", json, |_| {
        let obj = registry::json(json)?;
        let name = unsafe { arg(name, "name") }?;
        let value = unsafe { arg(value, "value") }?;
        if name.is_empty() {
            return Err(FfiError::new(dpopkit_result::InvalidArgument, "the member name is empty"));
        }
        let old = obj.map.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), value.into());
        if let Some(mut old) = old {
            wipe_json(&mut old);
        }
        Ok(1)
    })
}

/// The object as compact JSON text, members in insertion order.
///
/// Ownership: caller frees the result with `dpopkit_string_free`. NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_json_emit(json: i64) -> *mut c_char {
    run("dpopkit_json_emit", json, |_| {
        let obj = registry::json(json)?;
        let text = serde_json::to_string(&*obj.map.lock().unwrap_or_else(|e| e.into_inner()));
        let text = zeroize::Zeroizing::new(text.map_err(|e| FfiError::new(dpopkit_result::Internal, e.to_string()))?);
        out(&text)
    })
}

/// Replaces the object's content with the JSON object in `text`.
/// Returns 1 on success, 0 when `text` is not a JSON object (the content is unchanged).
///
/// # Safety
/// `text` is a NUL-terminated UTF-8 string, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_json_load(json: i64, text: *const c_char) -> c_int {
    run("dpopkit_json_load", json, |_| {
        let obj = registry::json(json)?;
        let text = unsafe { arg(text, "text") }?;
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(m)) => {
                let old = std::mem::replace(&mut *obj.map.lock().unwrap_or_else(|e| e.into_inner()), m);
                wipe_json(&mut serde_json::Value::Object(old));
                Ok(1)
            }
            Ok(_) => Err(FfiError::new(dpopkit_result::Json, "the text is JSON but not an object")),
            Err(e) => Err(FfiError::new(dpopkit_result::Json, format!("the text is not valid JSON: {e}"))),
        }
    })
}

/// The value of member `name` as a string (numbers and booleans as their JSON text).
/// NULL with `DPOPKIT_RESULT_JSON` when there is no such member or it is an object/array.
///
/// Ownership: caller frees the result with `dpopkit_string_free`.
///
/// # Safety
/// `name` is a NUL-terminated UTF-8 string, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_json_string_of(json: i64, name: *const c_char) -> *mut c_char {
    run("dpopkit_json_string_of", json, |_| {
        let obj = registry::json(json)?;
        let name = unsafe { arg(name, "name") }?;
        let map = obj.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(name) {
            Some(serde_json::Value::String(s)) => out(s),
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => out(&v.to_string()),
            Some(_) => Err(FfiError::new(dpopkit_result::Json, format!("member \"{name}\" is not a string, number or boolean"))),
            None => Err(FfiError::new(dpopkit_result::Json, format!("there is no member \"{name}\""))),
        }
    })
}
