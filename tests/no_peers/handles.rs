//! Handles through the C ABI, called from Rust: misuse (wrong, destroyed or zero handles,
//! bad strings) gives the right code and text, never a crash; key and JSON objects; key
//! files that are devices, FIFOs, directories or too large.

use std::ffi::c_char;

use crate::common::capi::{c, code, take, text};
use crate::common::fixture;
use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::capi::json::*;
use dpopkit::capi::key::*;
use dpopkit::dpopkit_result as R;

const BAD_UTF8: &[u8] = b"\xff\xfe\0";

#[test]
fn handle_misuse_matrix() {
    let key = dpopkit_key_new();
    let json = dpopkit_json_new();
    let http = dpopkit_http_new();
    let stale = dpopkit_json_new();
    assert_eq!(dpopkit_destroy(stale), 1);
    let made_up = [0i64, -1, 1, 42, i64::MAX, stale];
    let url = c("http://127.0.0.1:9/");
    for &h in &made_up {
        assert!(unsafe { dpopkit_http_quick_get_str(h, url.as_ptr()) }.is_null());
        assert_eq!(code(0), R::InvalidHandle as u32, "handle {h}");
        assert!(text(0).contains("not valid"), "{}", text(0));
        assert_eq!(dpopkit_http_set_dpop_key(h, key), 0);
        assert_eq!(unsafe { dpopkit_json_update_string(h, c("a").as_ptr(), c("b").as_ptr()) }, 0);
        assert!(dpopkit_json_emit(h).is_null());
        assert_eq!(dpopkit_key_generate(h), 0);
        assert_eq!(dpopkit_destroy(h), 0);
        assert_eq!(code(0), R::InvalidHandle as u32);
        assert_eq!(dpopkit_http_last_status(h), 0);
        assert_eq!(dpopkit_http_last_method_success(h), 0);
        // Issue 12's functions (more in tests/servers/headers_and_bodies.rs).
        unsafe {
            assert_eq!(dpopkit_http_set_request_header(h, c("Accept").as_ptr(), c("a/b").as_ptr()), 0);
            assert_eq!(code(0), R::InvalidHandle as u32);
            assert_eq!(dpopkit_http_remove_request_header(h, c("Accept").as_ptr()), 0);
            assert_eq!(code(0), R::InvalidHandle as u32);
            assert_eq!(dpopkit_http_clear_request_headers(h), 0);
            assert_eq!(code(0), R::InvalidHandle as u32);
            assert!(dpopkit_http_last_response_header_value(h, c("Location").as_ptr()).is_null());
            assert_eq!(code(0), R::InvalidHandle as u32);
            assert!(dpopkit_http_last_status_text(h).is_null());
            let mut n = 7usize;
            assert!(dpopkit_http_quick_get_bytes(h, url.as_ptr(), &mut n).is_null());
            assert_eq!((code(0), n), (R::InvalidHandle as u32, 0));
            n = 7;
            assert!(
                dpopkit_http_quick_request_bytes(h, c("GET").as_ptr(), url.as_ptr(), std::ptr::null(), std::ptr::null(), 0, &mut n)
                    .is_null()
            );
            assert_eq!((code(0), n), (R::InvalidHandle as u32, 0));
            n = 7;
            assert!(dpopkit_http_last_response_body_bytes(h, &mut n).is_null());
            assert_eq!((code(0), n), (R::InvalidHandle as u32, 0));
        }
    }
    // Wrong types, every way round.
    assert!(unsafe { dpopkit_http_quick_get_str(key, url.as_ptr()) }.is_null());
    assert_eq!(code(0), R::WrongHandleType as u32);
    assert!(text(0).contains("PrivateKey") && text(0).contains("Http"), "{}", text(0));
    assert!(dpopkit_json_emit(http).is_null());
    assert_eq!(code(0), R::WrongHandleType as u32);
    assert_eq!(dpopkit_key_generate(json), 0);
    assert_eq!(code(0), R::WrongHandleType as u32);
    assert_eq!(dpopkit_http_set_dpop_key(http, json), 0);
    assert_eq!(code(http), R::WrongHandleType as u32);
    // An empty key object.
    assert_eq!(dpopkit_http_set_dpop_key(http, key), 0);
    assert_eq!(code(http), R::NoKey as u32);
    assert!(dpopkit_key_get_public_jwk(key).is_null());
    assert_eq!(code(key), R::NoKey as u32);
    // NULL and invalid UTF-8 for every pointer argument.
    let null = std::ptr::null();
    let bad = BAD_UTF8.as_ptr() as *const c_char;
    unsafe {
        assert_eq!(dpopkit_key_load_any_format_file(key, null, null), 0);
        assert_eq!(code(key), R::NullArgument as u32);
        assert!(text(key).contains("'path'"));
        assert_eq!(dpopkit_key_load_any_format_file(key, bad, null), 0);
        assert_eq!(code(key), R::InvalidUtf8 as u32);
        assert_eq!(dpopkit_key_load_any_format_file(key, c("x").as_ptr(), bad), 0);
        assert_eq!(code(key), R::InvalidUtf8 as u32);
        assert_eq!(dpopkit_key_load_any_format(key, null, null), 0);
        assert_eq!(code(key), R::NullArgument as u32);
        assert_eq!(dpopkit_json_update_string(json, null, c("v").as_ptr()), 0);
        assert_eq!(code(json), R::NullArgument as u32);
        assert_eq!(dpopkit_json_update_string(json, c("n").as_ptr(), null), 0);
        assert_eq!(dpopkit_json_update_string(json, c("n").as_ptr(), bad), 0);
        assert_eq!(code(json), R::InvalidUtf8 as u32);
        assert_eq!(dpopkit_json_update_string(json, c("").as_ptr(), c("v").as_ptr()), 0);
        assert_eq!(code(json), R::InvalidArgument as u32);
        assert_eq!(dpopkit_json_load(json, null), 0);
        assert_eq!(dpopkit_json_load(json, c("[1]").as_ptr()), 0);
        assert_eq!(code(json), R::Json as u32);
        assert!(dpopkit_json_string_of(json, c("missing").as_ptr()).is_null());
        assert_eq!(code(json), R::Json as u32);
        assert_eq!(dpopkit_http_set_auth_token(http, null), 0);
        assert_eq!(code(http), R::NullArgument as u32);
        assert_eq!(dpopkit_http_set_auth_token(http, c("{not json").as_ptr()), 0);
        assert_eq!(code(http), R::AuthToken as u32);
        assert_eq!(dpopkit_http_set_auth_token(http, c("{}").as_ptr()), 0);
        assert!(text(http).contains("token_endpoint"), "{}", text(http));
        assert!(dpopkit_http_quick_get_str(http, null).is_null());
        assert_eq!(code(http), R::NullArgument as u32);
        assert!(dpopkit_http_quick_get_str(http, bad).is_null());
        assert_eq!(code(http), R::InvalidUtf8 as u32);
        for u in ["", "ftp://x/", "not a url", "file:///etc/passwd"] {
            assert!(dpopkit_http_quick_get_str(http, c(u).as_ptr()).is_null());
            assert_eq!(code(http), R::InvalidArgument as u32, "{u:?}");
        }
        assert!(dpopkit_http_quick_request_str(http, null, c("http://127.0.0.1:9/").as_ptr(), null, null).is_null());
        assert_eq!(code(http), R::NullArgument as u32);
        assert!(dpopkit_http_quick_request_str(http, c("GE T").as_ptr(), c("http://127.0.0.1:9/").as_ptr(), null, null).is_null());
        assert_eq!(code(http), R::InvalidArgument as u32);
        assert_eq!(dpopkit_http_set_session_log_filename(http, c("/nonexistent-dir/x.log").as_ptr()), 0);
        assert_eq!(code(http), R::FileIo as u32);
        assert_eq!(dpopkit_http_set_session_log_filename(http, null), 1, "NULL stops logging");
        assert_eq!(dpopkit_http_set_timeouts(http, 0, 1000), 0);
        assert_eq!(code(http), R::InvalidArgument as u32);
        dpopkit_string_free(std::ptr::null_mut());
    }
    // A 10 MB string is handled (as an invalid URL), not a crash.
    let huge = c(&format!("http://127.0.0.1:9/{}", "a".repeat(10 << 20)));
    let r = unsafe { dpopkit_http_quick_get_str(http, huge.as_ptr()) };
    assert!(r.is_null());
    assert!(text(http).len() < 1000, "error texts stay short");
    // The getters of the last error do not change it.
    assert_eq!(unsafe { dpopkit_json_load(json, c("[").as_ptr()) }, 0);
    let (c1, t1) = (code(json), text(json));
    assert_eq!((code(json), text(json)), (c1, t1));
    // A success clears the error.
    assert_eq!(dpopkit_key_generate(key), 1);
    assert_eq!(code(key), R::Ok as u32);
    assert_eq!(text(key), "");
    for h in [key, json, http] {
        assert_eq!(dpopkit_destroy(h), 1);
        assert_eq!(dpopkit_destroy(h), 0, "double destroy");
    }
}

#[test]
fn key_and_json_objects() {
    let key = dpopkit_key_new();
    let path = c(fixture("ec_pkcs8_enc.pem").to_str().unwrap());
    unsafe {
        assert_eq!(dpopkit_key_load_any_format_file(key, path.as_ptr(), c("wrong").as_ptr()), 0);
        assert_eq!(code(key), R::KeyFormat as u32);
        assert_eq!(dpopkit_key_load_any_format_file(key, path.as_ptr(), c("test-password").as_ptr()), 1);
    }
    let jkt = take(dpopkit_key_get_jwk_thumbprint(key)).unwrap();
    assert_eq!(jkt, std::fs::read_to_string(fixture("ec.jkt")).unwrap().trim());
    let public = take(dpopkit_key_get_public_jwk(key)).unwrap();
    assert!(public.contains("\"x\"") && !public.contains("\"d\""));
    let pem = take(dpopkit_key_get_pkcs8_pem(key)).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let jwk = take(dpopkit_key_get_jwk(key)).unwrap();
    let key2 = dpopkit_key_new();
    assert_eq!(unsafe { dpopkit_key_load_any_format(key2, c(&jwk).as_ptr(), std::ptr::null()) }, 1);
    assert_eq!(take(dpopkit_key_get_jwk_thumbprint(key2)).unwrap(), jkt);
    for (file, expect) in [("rsa1024.pem", R::KeyUnsupported), ("p521_sec1.pem", R::KeyUnsupported), ("missing.pem", R::FileIo)] {
        let p = c(fixture(file).to_str().unwrap());
        assert_eq!(unsafe { dpopkit_key_load_any_format_file(key2, p.as_ptr(), std::ptr::null()) }, 0);
        assert_eq!(code(key2), expect as u32, "{file}: {}", text(key2));
    }
    // A failed load keeps the previous key.
    assert_eq!(take(dpopkit_key_get_jwk_thumbprint(key2)).unwrap(), jkt);

    let json = dpopkit_json_new();
    unsafe {
        dpopkit_json_update_string(json, c("b").as_ptr(), c("1").as_ptr());
        dpopkit_json_update_string(json, c("a").as_ptr(), c("é\"q").as_ptr());
        dpopkit_json_update_string(json, c("b").as_ptr(), c("2").as_ptr());
    }
    assert_eq!(take(dpopkit_json_emit(json)).unwrap(), r#"{"b":"2","a":"é\"q"}"#);
    assert_eq!(unsafe { dpopkit_json_load(json, c(r#"{"n":5,"s":"x"}"#).as_ptr()) }, 1);
    assert_eq!(take(unsafe { dpopkit_json_string_of(json, c("n").as_ptr()) }).unwrap(), "5");
    let version = take(dpopkit_version()).unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    for h in [key, key2, json] {
        dpopkit_destroy(h);
    }
}

/// A key file path that is `/dev/zero`, a FIFO, a directory or over 1 MiB is refused at
/// once with a text, never read without end or waited on (issue 18, item 4). The same call
/// loads a client-assertion key (`dpopkit_http_set_client_assertion_key` takes a key object).
#[test]
fn key_files_that_are_devices_fifos_directories_or_too_large_are_refused_at_once() {
    use crate::common::guard;
    guard::in_child(
        module_path!(),
        "key_files_that_are_devices_fifos_directories_or_too_large_are_refused_at_once",
        std::time::Duration::from_secs(10),
        || {
            let dir = guard::scratch_dir("capi-key-files");
            let key = dpopkit_key_new();
            for (path, expect) in guard::hostile_paths(&dir, 1 << 20) {
                let p = c(path.to_str().unwrap());
                assert_eq!(unsafe { dpopkit_key_load_any_format_file(key, p.as_ptr(), std::ptr::null()) }, 0, "{}", path.display());
                let t = text(key);
                assert!(t.contains(&expect) && t.contains("key file"), "{}: {t}", path.display());
                let want = if expect.starts_with("larger") { R::KeyFormat } else { R::FileIo };
                assert_eq!(code(key), want as u32, "{}: {t}", path.display());
            }
            let good = c(fixture("ec_pkcs8.pem").to_str().unwrap());
            assert_eq!(unsafe { dpopkit_key_load_any_format_file(key, good.as_ptr(), std::ptr::null()) }, 1, "{}", text(key));
            dpopkit_destroy(key);
            let _ = std::fs::remove_dir_all(&dir);
        },
    );
}
