//! Helpers for tests that call the C ABI from Rust: C strings in, owned strings out, the
//! last error, and a key + Http pair set up with the sample AuthToken.

use std::ffi::{CStr, CString, c_char};

use dpopkit::capi::common::{dpopkit_destroy, dpopkit_last_error_code, dpopkit_last_error_text, dpopkit_string_free};
use dpopkit::capi::http::{dpopkit_http_new, dpopkit_http_quick_get_str, dpopkit_http_set_auth_token, dpopkit_http_set_dpop_key};
use dpopkit::capi::key::{dpopkit_key_generate, dpopkit_key_new};

use super::Peers;

pub fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Takes ownership of a returned string (freed with dpopkit_string_free).
pub fn take(p: *mut c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let s = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string();
    unsafe { dpopkit_string_free(p) };
    Some(s)
}

pub fn code(h: i64) -> u32 {
    dpopkit_last_error_code(h)
}

pub fn text(h: i64) -> String {
    take(dpopkit_last_error_text(h)).unwrap()
}

/// A generated key and an Http with the peers' sample AuthToken; destroyed on drop.
pub struct Client {
    pub key: i64,
    pub http: i64,
}

impl Client {
    pub fn new(peers: &Peers) -> Client {
        let key = dpopkit_key_new();
        assert_eq!(dpopkit_key_generate(key), 1);
        let http = dpopkit_http_new();
        assert_eq!(dpopkit_http_set_dpop_key(http, key), 1);
        assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&peers.auth_token()).as_ptr()) }, 1);
        Client { key, http }
    }

    pub fn get(&self, url: &str) -> Option<String> {
        take(unsafe { dpopkit_http_quick_get_str(self.http, c(url).as_ptr()) })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        dpopkit_destroy(self.http);
        dpopkit_destroy(self.key);
    }
}
