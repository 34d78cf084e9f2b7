//! Keys inside a PKCS#11 token (SoftHSM2), through the same calls as key files: the sample
//! flow against the real peers with nonces required at the AS and the RS, private_key_jwt,
//! 8 threads x 50 calls on one handle, one module load and one login shared by every handle,
//! re-login after a logout or closed sessions, the errors (module, token, object, PIN,
//! non-EC key), keys that cannot be read out of the token, `dpopkit keygen --pkcs11`, and
//! the C sample (bindings/c/sample.c) run with a URI in place of the key path.
//!
//! Needs SoftHSM2 and OpenSC's pkcs11-tool (`bash scripts/setup.sh` installs both). Without
//! them every test here FAILS with that message: nothing is skipped silently.

use crate::common;

use std::ffi::c_char;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::common::capi::{c, code, take, text};
use crate::common::{Peers, repo};
use dpopkit::capi::common::dpopkit_destroy;
use dpopkit::capi::http::{
    dpopkit_http_new, dpopkit_http_quick_get_str, dpopkit_http_set_auth_token, dpopkit_http_set_dpop_key, dpopkit_http_set_timeouts,
};
use dpopkit::capi::key::{
    dpopkit_key_generate_pkcs11, dpopkit_key_get_jwk, dpopkit_key_get_jwk_thumbprint, dpopkit_key_get_pkcs8_pem,
    dpopkit_key_get_public_jwk, dpopkit_key_load_any_format, dpopkit_key_load_any_format_file, dpopkit_key_new,
};
use dpopkit::core::{EcKey, ErrorKind, HttpClient};
use dpopkit::dpopkit_result as R;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "1234";
const SO_PIN: &str = "12345678";
/// One token per test that changes token state (logout, PIN change), so tests running in
/// parallel threads of this process do not disturb each other.
const TOKENS: &[&str] =
    &["flow", "threads", "shared", "relogin", "pinchange", "errors", "interop", "keygen", "c-sample", "cli", "race", "stall", "broken"];

struct Hsm {
    dir: PathBuf,
    conf: PathBuf,
}

fn run_tool(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed: {all}");
    all
}

/// A SoftHSM2 store in a temporary directory with the tokens above, and two keys made by
/// another tool (OpenSC's pkcs11-tool): an EC P-256 key and an RSA key. Created once per
/// test process, before the module is loaded: SoftHSM reads SOFTHSM2_CONF at C_Initialize.
fn hsm() -> &'static Hsm {
    static HSM: OnceLock<Hsm> = OnceLock::new();
    HSM.get_or_init(|| {
        assert!(
            Path::new(MODULE).exists(),
            "SoftHSM2 is not installed ({MODULE} is missing): run `bash scripts/setup.sh`, which installs the \
             Debian packages softhsm2 and opensc (or: apt-get install softhsm2 opensc)"
        );
        for tool in ["softhsm2-util", "pkcs11-tool"] {
            assert!(
                Command::new(tool).arg("--help").output().is_ok(),
                "{tool} is not installed: run `bash scripts/setup.sh` (apt-get install softhsm2 opensc)"
            );
        }
        let dir = std::env::temp_dir().join(format!("dpopkit-softhsm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", dir.join("tokens").display()),
        )
        .unwrap();
        for label in TOKENS {
            run_tool(
                Command::new("softhsm2-util")
                    .args(["--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", PIN])
                    .env("SOFTHSM2_CONF", &conf),
                "softhsm2-util --init-token",
            );
        }
        for (key_type, label, id) in [("EC:prime256v1", "tool-p256", "02"), ("rsa:2048", "rsa", "03"), ("rsa:1024", "rsa1024", "04")] {
            run_tool(
                Command::new("pkcs11-tool")
                    .args(["--module", MODULE, "--token-label", "interop", "--login", "--pin", PIN, "--keypairgen"])
                    .args(["--key-type", key_type, "--label", label, "--id", id, "--usage-sign"])
                    .env("SOFTHSM2_CONF", &conf),
                "pkcs11-tool --keypairgen",
            );
        }
        // The RSA key of tests/fixtures/rsa.pem, imported: its jkt is known (rsa.jkt).
        run_tool(
            Command::new("softhsm2-util")
                .args(["--import", repo().join("tests/fixtures/rsa.pem").to_str().unwrap(), "--token", "interop"])
                .args(["--label", "rsa-imported", "--id", "05", "--pin", PIN])
                .env("SOFTHSM2_CONF", &conf),
            "softhsm2-util --import",
        );
        // SAFETY: set once, inside this OnceLock initialiser, which every test runs before
        // anything else, so no other thread of this process reads the environment meanwhile.
        unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
        Hsm { dir, conf }
    })
}

fn uri(token: &str, object: &str) -> String {
    hsm();
    format!("pkcs11:token={token};object={object}?module-path={MODULE}")
}

/// A new P-256 key in `token`, created through the library (non-extractable, sensitive).
fn new_token_key(token: &str, object: &str) -> EcKey {
    EcKey::generate_in_token(&uri(token, object), Some(PIN), "ES256").unwrap_or_else(|e| panic!("keygen in {token}: {e}"))
}

fn claims(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("RS body is not JSON ({e}): {body}"))
}

fn claim<'a>(claims: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    claims.as_array()?.iter().find(|c| c["type"] == name)?["value"].as_str()
}

fn bound_jkt(body: &str) -> String {
    let c = claims(body);
    let cnf: serde_json::Value = serde_json::from_str(claim(&c, "cnf").expect("cnf claim")).unwrap();
    cnf["jkt"].as_str().unwrap().to_string()
}

#[test]
fn sample_flow_signs_every_proof_in_the_token_with_nonces_at_as_and_rs() {
    let generated = new_token_key("flow", "api-key");
    assert!(generated.is_in_token());
    drop(generated);
    // Loaded again by URI, as a user does, with the PIN as the password.
    let key = Arc::new(EcKey::from_any_format(uri("flow", "api-key").as_bytes(), Some(PIN)).unwrap());
    assert_eq!(key.alg(), "ES256");
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let http = HttpClient::new();
    http.set_dpop_key(key.clone());
    http.set_auth_token(&peers.auth_token()).unwrap();
    for _ in 0..3 {
        let (body, resp) = http.quick_get_str(&peers.api).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status, 200, "{body}");
        assert_eq!(claim(&claims(&body), "client_id"), Some("m2m.dpop"));
        assert_eq!(bound_jkt(&body), key.jkt(), "the token is bound to the key in the token");
    }
    assert_eq!(peers.tokens_issued(), 1);
    assert_eq!(peers.rs_stats()["ok"], 3);
    assert!(peers.rs_stats()["rejected"].as_u64().unwrap() >= 1, "the RS asked for a nonce first");
}

#[test]
fn private_key_jwt_assertion_signed_in_the_token() {
    let key = dpopkit_key_new();
    let u = uri("flow", "pkjwt-key");
    assert_eq!(unsafe { dpopkit_key_generate_pkcs11(key, c(&u).as_ptr(), c(PIN).as_ptr(), std::ptr::null()) }, 1, "{}", text(key));
    let jwk_file = hsm().dir.join("pkjwt.jwk");
    std::fs::write(&jwk_file, take(dpopkit_key_get_public_jwk(key)).unwrap()).unwrap();
    let peers = Peers::start(&["--as-nonce", "--rs-nonce", "--pkjwt-jwk", jwk_file.to_str().unwrap()]);
    let http = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_dpop_key(http, key), 1);
    let auth = serde_json::json!({"client_id": "m2m.pkjwt.dpopkey", "client_auth_method": "private_key_jwt",
        "token_endpoint": peers.token_endpoint, "scope": "api"});
    assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&auth.to_string()).as_ptr()) }, 1);
    let body = take(unsafe { dpopkit_http_quick_get_str(http, c(&peers.api).as_ptr()) });
    let body = body.unwrap_or_else(|| panic!("{}", text(http)));
    assert!(body.contains("m2m.pkjwt.dpopkey"), "{body}");
    assert_eq!(bound_jkt(&body), take(dpopkit_key_get_jwk_thumbprint(key)).unwrap());
    dpopkit_destroy(http);
    dpopkit_destroy(key);
}

#[test]
fn eight_threads_fifty_calls_on_one_handle_one_token_fetch() {
    let _ = new_token_key("threads", "api-key");
    let key = dpopkit_key_new();
    let u = uri("threads", "api-key");
    assert_eq!(unsafe { dpopkit_key_load_any_format(key, c(&u).as_ptr(), c(PIN).as_ptr()) }, 1, "{}", text(key));
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let http = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_dpop_key(http, key), 1);
    assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&peers.auth_token()).as_ptr()) }, 1);
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let api = peers.api.clone();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (barrier, api) = (barrier.clone(), api.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..50 {
                    let body = take(unsafe { dpopkit_http_quick_get_str(http, c(&api).as_ptr()) });
                    assert!(body.as_deref().is_some_and(|b| b.contains("m2m.dpop")), "{}", text(http));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a signing thread failed");
    }
    assert_eq!(peers.tokens_issued(), 1, "one token fetch for 8 x 50 calls");
    assert_eq!(peers.rs_stats()["ok"], 400);
    let jkt = take(dpopkit_key_get_jwk_thumbprint(key)).unwrap();
    let body = take(unsafe { dpopkit_http_quick_get_str(http, c(&api).as_ptr()) }).unwrap();
    assert_eq!(bound_jkt(&body), jkt);
    dpopkit_destroy(http);
    dpopkit_destroy(key);
}

#[test]
fn one_module_load_and_one_login_shared_by_all_handles() {
    let first = new_token_key("shared", "k1");
    let second = EcKey::from_pkcs11_uri(&uri("shared", "k1"), Some(PIN)).unwrap();
    let other_key = new_token_key("shared", "k2");
    let (a, b, o) = (first.token_key().unwrap(), second.token_key().unwrap(), other_key.token_key().unwrap());
    assert!(a.shares_token_with(b) && a.shares_token_with(o), "one token state for every handle on the token");
    assert_eq!(a.token_logins(), 1, "one login for three keys on one token");
    // One load per module and process: SoftHSM2, and the modules of
    // a_token_that_stalls_in_signing_ends_the_call_at_its_deadline and
    // a_token_that_cannot_be_read_does_not_hide_the_others when those ran already.
    assert!(dpopkit::core::pkcs11::counters().0 <= 3, "one module load per process and module: {:?}", dpopkit::core::pkcs11::counters());
    // Many threads sign at once through a bounded pool of sessions.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..20 {
                    assert_eq!(second.sign(b"m").unwrap().len(), 64);
                }
            });
        }
    });
    let (idle, open) = a.token_sessions();
    assert!(open <= 8 && idle == open, "sessions: {idle} idle of {open} open");
    assert_eq!(first.jkt(), second.jkt());
    assert_ne!(first.jkt(), other_key.jkt());
}

/// Another context on the same module in this process: a PKCS#11 login and the sessions
/// belong to the application, so this is how a token "logs us out" or "closes our sessions".
fn test_session(label: &str) -> (cryptoki::context::Pkcs11, cryptoki::slot::Slot, cryptoki::session::Session) {
    let ctx = cryptoki::context::Pkcs11::new(MODULE).unwrap();
    let _ = ctx.initialize(cryptoki::context::CInitializeArgs::new(cryptoki::context::CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == label)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    (ctx, slot, session)
}

fn verify(key: &EcKey, msg: &[u8], sig: &[u8]) {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, key.public_point())
        .verify(msg, sig)
        .expect("a valid ES256 signature by the token key");
}

#[test]
fn logs_in_again_after_a_logout_and_reopens_closed_sessions() {
    let key = new_token_key("relogin", "api-key");
    let tk = key.token_key().unwrap();
    verify(&key, b"before", &key.sign(b"before").unwrap());
    assert_eq!(tk.token_logins(), 1);
    let (_ctx, slot, session) = test_session("relogin");
    session.logout().unwrap();
    verify(&key, b"after logout", &key.sign(b"after logout").unwrap());
    assert_eq!(tk.token_logins(), 2, "one re-login after CKR_USER_NOT_LOGGED_IN");
    // Every session of the process closed (as when a token is reset): new sessions, new login.
    drop(session);
    let sys = unsafe { cryptoki_sys::Pkcs11::new(MODULE) }.unwrap();
    assert_eq!(unsafe { sys.C_CloseAllSessions(slot.id() as cryptoki_sys::CK_SLOT_ID) }, cryptoki_sys::CKR_OK);
    verify(&key, b"after close", &key.sign(b"after close").unwrap());
    assert_eq!(tk.token_logins(), 3);
    // And from several threads at once after a logout: still one re-login.
    let (_ctx, _slot, session) = test_session("relogin");
    session.logout().unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| verify(&key, b"t", &key.sign(b"t").unwrap()));
        }
    });
    assert_eq!(tk.token_logins(), 4);
}

#[test]
fn a_pin_changed_under_us_is_tried_once_at_re_login_then_never_again() {
    let key = new_token_key("pinchange", "api-key");
    let (_ctx, _slot, session) = test_session("pinchange");
    session.set_pin(&PIN.to_string().into(), &"5678".to_string().into()).unwrap();
    session.logout().unwrap();
    let e = key.sign(b"m").unwrap_err();
    assert_eq!(e.kind, ErrorKind::NoKey);
    assert!(e.message.contains("CKR_PIN_INCORRECT") && e.message.contains("re-login"), "{}", e.message);
    let e = key.sign(b"m").unwrap_err();
    assert!(e.message.contains("not tried again"), "the refused PIN is not sent again: {}", e.message);
    assert!(!e.message.contains(PIN));
    assert_eq!(key.token_key().unwrap().token_logins(), 1, "no successful login since");
    // Loading with the new PIN works again.
    let again = EcKey::from_pkcs11_uri(&uri("pinchange", "api-key"), Some("5678")).unwrap();
    assert_eq!(again.jkt(), key.jkt());
    verify(&again, b"m", &again.sign(b"m").unwrap());
}

/// Loads through the C ABI and returns (result code, error text).
fn load_fails(data: &str, password: Option<&str>) -> (u32, String) {
    let key = dpopkit_key_new();
    let pw = password.map(c);
    let ok = unsafe { dpopkit_key_load_any_format(key, c(data).as_ptr(), pw.as_ref().map_or(std::ptr::null(), |p| p.as_ptr())) };
    assert_eq!(ok, 0, "loading '{data}' should fail");
    let out = (code(key), text(key));
    dpopkit_destroy(key);
    out
}

#[test]
fn errors_have_clear_texts_and_never_show_the_pin() {
    let _ = new_token_key("errors", "api-key");
    let secret_pin = "98127634";
    let cases: Vec<(String, Option<&str>, R, &[&str])> = vec![
        (
            format!("pkcs11:token=errors;object=api-key?module-path=/nonexistent/libvendor-pkcs11.so&pin-value={secret_pin}"),
            None,
            R::FileIo,
            &["/nonexistent/libvendor-pkcs11.so", "cannot be opened", "install"],
        ),
        (
            format!("pkcs11:token=no-such-token;object=api-key?module-path={MODULE}"),
            Some(secret_pin),
            R::KeyFormat,
            // The text lists up to 8 tokens (slot order is the module's): not necessarily 'errors'.
            &["no token matches", "no-such-token", "tokens present"],
        ),
        (
            format!("pkcs11:token=errors;object=no-such-key?module-path={MODULE}&pin-value={PIN}"),
            None,
            R::KeyFormat,
            &["no private key matching", "no-such-key", "'api-key'", "keygen --pkcs11"],
        ),
        (format!("pkcs11:token=errors;object=api-key?module-path={MODULE}"), None, R::KeyFormat, &["needs a PIN"]),
        (
            format!("pkcs11:token=interop;object=rsa1024?module-path={MODULE}&pin-value={PIN}"),
            None,
            R::KeyUnsupported,
            &["RSA key of 1024 bits", "2048 to 4096", "keygen --alg PS256"],
        ),
        (
            format!("pkcs11:token=errors;object=api-key;bogus=1?module-path={MODULE}&pin-value={secret_pin}"),
            None,
            R::InvalidArgument,
            &["unknown attribute 'bogus'"],
        ),
        (
            format!("pkcs11:token=errors;object=api-key?module-path=libsofthsm2.so&pin-value={secret_pin}"),
            None,
            R::InvalidArgument,
            &["not absolute"],
        ),
    ];
    for (u, pw, want, needles) in cases {
        let (got, t) = load_fails(&u, pw);
        assert_eq!(got, want as u32, "{u}: {t}");
        for n in needles {
            assert!(t.contains(n), "'{n}' missing from: {t}");
        }
        assert!(!t.contains(secret_pin), "the PIN leaked into: {t}");
    }
    // A wrong PIN: refused once, then not sent to the token again; the right one still works.
    let u = uri("errors", "api-key");
    let (got, t) = load_fails(&u, Some(secret_pin));
    assert_eq!(got, R::KeyFormat as u32);
    assert!(t.contains("refused the PIN (CKR_PIN_INCORRECT)") && t.contains("does not try it again"), "{t}");
    assert!(!t.contains(secret_pin));
    let (got, t) = load_fails(&u, Some(secret_pin));
    assert_eq!(got, R::KeyFormat as u32);
    assert!(t.contains("already refused this PIN") && t.contains("not sent again"), "{t}");
    let (_, t) = load_fails(&format!("{u}&pin-value={secret_pin}"), None);
    assert!(t.contains("already refused this PIN"), "the same PIN from the URI: {t}");
    let key = EcKey::from_pkcs11_uri(&u, Some(PIN)).unwrap();
    // Logged in: another PIN for the same token is refused without a login.
    let e = EcKey::from_pkcs11_uri(&u, Some("11112222")).unwrap_err();
    assert!(e.message.contains("already logged in by this process with another PIN"), "{}", e.message);
    drop(key);
}

#[test]
fn token_key_material_cannot_be_read_or_exported() {
    let u = uri("keygen", "api-key");
    let key = dpopkit_key_new();
    assert_eq!(unsafe { dpopkit_key_generate_pkcs11(key, c(&u).as_ptr(), c(PIN).as_ptr(), c("ES256").as_ptr()) }, 1, "{}", text(key));
    // The library refuses to export it, with a clear text; the public half works.
    for (name, f) in [("get_jwk", dpopkit_key_get_jwk as extern "C" fn(i64) -> *mut c_char), ("get_pkcs8_pem", dpopkit_key_get_pkcs8_pem)] {
        assert!(f(key).is_null(), "{name} exported a token key");
        assert_eq!(code(key), R::KeyUnsupported as u32, "{name}");
        assert!(text(key).contains("not exportable"), "{name}: {}", text(key));
    }
    let public = take(dpopkit_key_get_public_jwk(key)).unwrap();
    assert!(public.contains(r#""crv":"P-256""#) && !public.contains(r#""d""#), "{public}");
    assert_eq!(take(dpopkit_key_get_jwk_thumbprint(key)).unwrap().len(), 43);
    // The token itself: the private key is sensitive, never extractable, and C_GetAttributeValue
    // of CKA_VALUE is refused with CKR_ATTRIBUTE_SENSITIVE (the session is logged in: the
    // login belongs to the process).
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    let (_ctx, _slot, session) = test_session("keygen");
    let found = session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Label(b"api-key".to_vec())]).unwrap();
    assert_eq!(found.len(), 1);
    let attrs = session
        .get_attributes(
            found[0],
            &[
                AttributeType::Extractable,
                AttributeType::Sensitive,
                AttributeType::NeverExtractable,
                AttributeType::Token,
                AttributeType::Value,
            ],
        )
        .unwrap();
    for want in [Attribute::Extractable(false), Attribute::Sensitive(true), Attribute::NeverExtractable(true), Attribute::Token(true)] {
        assert!(attrs.contains(&want), "{want:?} not in {attrs:?}");
    }
    assert!(!attrs.iter().any(|a| matches!(a, Attribute::Value(_))), "CKA_VALUE was readable: {attrs:?}");
    let mut buf = [0u8; 128];
    let mut template = [cryptoki_sys::CK_ATTRIBUTE {
        type_: cryptoki_sys::CKA_VALUE,
        pValue: buf.as_mut_ptr().cast(),
        ulValueLen: buf.len() as cryptoki_sys::CK_ULONG,
    }];
    let sys = unsafe { cryptoki_sys::Pkcs11::new(MODULE) }.unwrap();
    let rv = unsafe { sys.C_GetAttributeValue(session.handle(), found[0].handle(), template.as_mut_ptr(), 1) };
    assert_eq!(rv, cryptoki_sys::CKR_ATTRIBUTE_SENSITIVE, "C_GetAttributeValue(CKA_VALUE) must be refused");
    assert_eq!(template[0].ulValueLen, cryptoki_sys::CK_UNAVAILABLE_INFORMATION);
    assert!(buf.iter().all(|b| *b == 0), "no key bytes written");
    // A second key with the same label is refused, the first one untouched.
    let again = dpopkit_key_new();
    assert_eq!(unsafe { dpopkit_key_generate_pkcs11(again, c(&u).as_ptr(), c(PIN).as_ptr(), std::ptr::null()) }, 0);
    assert_eq!(code(again), R::InvalidArgument as u32);
    assert!(text(again).contains("already holds a key"), "{}", text(again));
    dpopkit_destroy(again);
    dpopkit_destroy(key);
}

#[test]
fn keys_made_by_other_tools_and_p384_keys_work() {
    // pkcs11-tool's key: CKA_EC_POINT as a DER OCTET STRING; selected by id only.
    let k = EcKey::from_pkcs11_uri(&format!("pkcs11:token=interop;id=%02?module-path={MODULE}"), Some(PIN)).unwrap();
    assert_eq!(k.alg(), "ES256");
    verify(&k, b"x", &k.sign(b"x").unwrap());
    let by_label = EcKey::load_file(Path::new(&uri("interop", "tool-p256")), Some(PIN)).unwrap();
    assert_eq!(by_label.jkt(), k.jkt(), "load_file accepts the URI too");
    // ES384 where the token supports it (SoftHSM2 does).
    let p384 = EcKey::generate_in_token(&uri("interop", "p384"), Some(PIN), "ES384").unwrap();
    assert_eq!(p384.alg(), "ES384");
    assert!(p384.public_jwk().contains("P-384"));
    let sig = p384.sign(b"y").unwrap();
    assert_eq!(sig.len(), 96);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P384_SHA384_FIXED, p384.public_point()).verify(b"y", &sig).unwrap();
    let proof = dpopkit::core::proof::make_proof(&p384, "GET", "https://rs.example/x", None, None, None).unwrap();
    assert!(proof.split('.').count() == 3);
    // The thumbprint matches the one computed from the public JWK alone.
    let jwk = p384.public_jwk();
    assert_eq!(p384.jkt(), base64_sha256(jwk));
    assert!(EcKey::generate_in_token(&uri("interop", "x"), Some(PIN), "EdDSA").is_err());
}

#[test]
fn rsa_keys_in_the_token_sign_rs256_and_ps256_for_the_real_servers() {
    let jkt = std::fs::read_to_string(repo().join("tests/fixtures/rsa.jkt")).unwrap();
    let made_by_tool = EcKey::from_pkcs11_uri(&uri("interop", "rsa"), Some(PIN)).unwrap();
    let imported = EcKey::from_pkcs11_uri(&uri("interop", "rsa-imported"), Some(PIN)).unwrap();
    assert_eq!(imported.jkt(), jkt.trim(), "the imported rsa.pem keeps its RFC 7638 thumbprint");
    let generated = EcKey::generate_in_token(&uri("interop", "rsa-made-here"), Some(PIN), "PS256").unwrap();
    for (what, key) in [("pkcs11-tool's", &made_by_tool), ("imported", &imported), ("generated", &generated)] {
        assert!(key.is_in_token(), "{what}");
        assert_eq!(key.algs(), ["RS256", "PS256"], "{what}");
        assert!(key.public_jwk().starts_with(r#"{"e":"AQAB","kty":"RSA","n":""#), "{what}: {}", key.public_jwk());
        assert!(key.to_pkcs8_pem().is_err() && key.to_private_jwk().is_err(), "{what}: not exportable");
        // CKM_SHA256_RSA_PKCS and CKM_SHA256_RSA_PKCS_PSS, checked by ring's verifiers.
        let v: serde_json::Value = serde_json::from_str(key.public_jwk()).unwrap();
        let b64 = |m: &str| base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v[m].as_str().unwrap()).unwrap();
        let public = ring::signature::RsaPublicKeyComponents { n: b64("n"), e: b64("e") };
        public.verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, b"m", &key.sign_alg("RS256", b"m").unwrap()).unwrap();
        public.verify(&ring::signature::RSA_PSS_2048_8192_SHA256, b"m", &key.sign_alg("PS256", b"m").unwrap()).unwrap();
    }
    let keys = [Arc::new(made_by_tool), Arc::new(imported), Arc::new(generated)];
    for only in ["RS256", "PS256"] {
        let peers = Peers::start(&["--as-nonce", "--rs-nonce", "--dpop-algs", only]);
        let auth = serde_json::json!({"client_id": "m2m.dpop", "client_secret": "secret", "issuer": peers.issuer, "scope": "api"});
        for key in &keys {
            let http = HttpClient::new();
            http.set_dpop_key(key.clone());
            http.set_auth_token(&auth.to_string()).unwrap();
            let (body, resp) = http.quick_get_str(&peers.api).unwrap_or_else(|e| panic!("{only}: {e}"));
            assert_eq!(resp.status, 200, "{body}");
            assert_eq!(bound_jkt(&body), key.jkt());
            let header = peers.rs_stats()["last_proof_header"].clone();
            assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some(only), Some("dpop+jwt")), "{header}");
            assert_eq!(serde_json::to_string(&header["jwk"]).unwrap(), key.public_jwk());
        }
    }
}

fn base64_sha256(s: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(s.as_bytes()))
}

fn cli() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dpopkit"))
}

#[test]
fn cli_keygen_pkcs11_prints_the_public_jwk_and_jkt_then_get_uses_the_token_key() {
    let h = hsm();
    let u = uri("cli", "cli-key");
    let out = Command::new(cli())
        .args(["keygen", "--pkcs11", &u])
        .env("DPOPKIT_KEY_PASSWORD", PIN)
        .env("SOFTHSM2_CONF", &h.conf)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with(r#"{"crv":"P-256","kty":"EC""#) && !lines[0].contains(r#""d""#), "{stdout}");
    assert_eq!(lines[1], base64_sha256(lines[0]));
    // The same key through --key URI, the PIN from --key-password.
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let out = Command::new(cli())
        .args(["get", &peers.api, "--key", &u, "--key-password", PIN, "--client-id", "m2m.dpop"])
        .args(["--token-endpoint", &peers.token_endpoint, "--scope", "api"])
        .env("DPOPKIT_CLIENT_SECRET", "secret")
        .env("SOFTHSM2_CONF", &h.conf)
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{body}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(bound_jkt(&body), lines[1]);
    // An RSA key pair in the token (--alg PS256): its public JWK has e, kty, n only.
    let out = Command::new(cli())
        .args(["keygen", "--pkcs11", &uri("cli", "cli-rsa-key"), "--alg", "PS256"])
        .env("DPOPKIT_KEY_PASSWORD", PIN)
        .env("SOFTHSM2_CONF", &h.conf)
        .output()
        .unwrap();
    let rsa = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{rsa}{}", String::from_utf8_lossy(&out.stderr));
    let rsa_lines: Vec<&str> = rsa.lines().collect();
    assert!(rsa_lines[0].starts_with(r#"{"e":"AQAB","kty":"RSA","n":""#) && !rsa_lines[0].contains(r#""d""#), "{rsa}");
    assert_eq!(rsa_lines[1], base64_sha256(rsa_lines[0]));
    // --jwk/--out make no sense for a token key; a wrong PIN is an error without the PIN.
    let out = Command::new(cli()).args(["keygen", "--pkcs11", &u, "--jwk"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(cli()).args(["jkt", "--key", &u, "--key-password", "55554444"]).env("SOFTHSM2_CONF", &h.conf).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr.contains("refused the PIN") && !stderr.contains("55554444"), "{stderr}");
}

#[test]
fn c_sample_with_a_pkcs11_uri_in_place_of_the_key_path() {
    let h = hsm();
    let key = new_token_key("c-sample", "api-key");
    let jkt = key.jkt().to_string();
    drop(key);
    let exe = h.dir.join("c-sample");
    common::c_sample::build_c_sample(&exe);
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let log = h.dir.join("c-sample.log");
    // The PIN comes as the sample's password argument; the module from the environment.
    let run = common::c_sample::Run {
        key: "pkcs11:token=c-sample;object=api-key".into(),
        password: PIN.into(),
        env: vec![("SOFTHSM2_CONF".into(), h.conf.clone().into()), ("DPOPKIT_PKCS11_MODULE".into(), MODULE.into())],
    };
    common::c_sample::check(&common::c_sample::run_with(&exe, &peers, &log, run), &log, Some(&jkt));
    assert_eq!(peers.tokens_issued(), 1);
    assert!(peers.rs_stats()["rejected"].as_u64().unwrap() >= 1, "nonce required at the RS");
    // load_any_format_file takes the URI too (the SQL Server procedure's key path).
    let k = dpopkit_key_new();
    let u = uri("c-sample", "api-key");
    assert_eq!(unsafe { dpopkit_key_load_any_format_file(k, c(&u).as_ptr(), c(PIN).as_ptr()) }, 1, "{}", text(k));
    assert_eq!(take(dpopkit_key_get_jwk_thumbprint(k)).unwrap(), jkt);
    dpopkit_destroy(k);
}

/// Compiles tests/c/NAME.c into the shared library libLIB.so; `defines` become
/// -DNAME="PATH" (C strings).
fn shared_lib(name: &str, lib: &str, defines: &[(&str, &Path)]) -> PathBuf {
    let out = hsm().dir.join(format!("lib{lib}.so"));
    let mut cmd = Command::new("cc");
    cmd.args(["-shared", "-fPIC", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(repo().join(format!("tests/c/{name}.c")));
    for (k, v) in defines {
        cmd.arg(format!("-D{k}=\"{}\"", v.display()));
    }
    cmd.arg("-ldl");
    run_tool(&mut cmd, &format!("cc tests/c/{name}.c"));
    out
}

/// Issue 18 item 1. With DPOPKIT_PKCS11_MODULE set, a URI whose module-path is a symbolic
/// link that another thread flips between the real module and another library (whose
/// constructor writes a marker file) must never make the process load that library: the
/// module loaded is the one the check allowed, whatever the link points to meanwhile. The
/// loads run in a child process (this test binary, the same test with DPOPKIT_TEST_RACE set, see `module_race_child`), because the
/// variable must be set for the whole process.
#[test]
fn a_module_path_link_flipped_between_check_and_load_never_loads_another_library() {
    if let Ok(spec) = std::env::var("DPOPKIT_TEST_RACE") {
        return module_race_child(&spec);
    }
    let h = hsm();
    drop(new_token_key("race", "api-key"));
    let marker = h.dir.join("race-marker");
    let _ = std::fs::remove_file(&marker);
    let other = shared_lib("pkcs11_marker", "pkcs11_marker", &[("MARKER", &marker)]);
    let link = h.dir.join("race-module.so");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &common::test_path(module_path!(), "a_module_path_link_flipped_between_check_and_load_never_loads_another_library"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DPOPKIT_PKCS11_MODULE", MODULE)
        .env("DPOPKIT_TEST_RACE", format!("{}\n{}\n{}", link.display(), other.display(), marker.display()))
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(!marker.exists(), "the process loaded the library the link pointed to after the check: {all}");
    let line = all.lines().find_map(|l| l.split_once("race:")).unwrap_or_else(|| panic!("no result line: {all}")).1;
    let n: Vec<usize> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(n.len() == 3 && n[1] > 0 && n[2] > 0, "the link must have been seen both ways (loads, ok, refused): {line}");
}

/// The child process of the test above (this test binary, that test, DPOPKIT_TEST_RACE set).
fn module_race_child(spec: &str) {
    let parts: Vec<&str> = spec.split('\n').collect();
    let (link, other, marker) = (Path::new(parts[0]), Path::new(parts[1]), Path::new(parts[2]));
    let tmp = link.with_extension("tmp");
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(MODULE, link).unwrap();
    let u = format!("pkcs11:token=race;object=api-key?module-path={}", link.display());
    let stop = AtomicBool::new(false);
    let (loads, ok, refused) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) && flips < 50_000_000 {
                let target = if flips % 2 == 0 { Path::new(MODULE) } else { other };
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(target, &tmp).unwrap();
                std::fs::rename(&tmp, link).unwrap();
                flips += 1;
            }
        });
        let loaders: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    while loads.fetch_add(1, Ordering::Relaxed) < 3000 && started.elapsed() < Duration::from_secs(20) && !marker.exists() {
                        match EcKey::from_pkcs11_uri(&u, Some(PIN)) {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) if e.message.contains("allows only") => refused.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                eprintln!("load: {}", e.message);
                                0
                            }
                        };
                    }
                })
            })
            .collect();
        for l in loaders {
            l.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    println!(
        "race: {} {} {} (loads, ok, refused); marker {}",
        loads.load(Ordering::Relaxed).min(3000),
        ok.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        marker.exists()
    );
}

/// A module with a token it cannot describe (C_GetTokenInfo fails for the token labelled
/// "broken": an HSM's token in a bad state, or SoftHSM2 while another thread writes that
/// token's files) still serves its other tokens. The whole slot listing failed before
/// ("cannot list its slots: GetTokenInfo: GeneralError"), for a token the URI never named.
#[test]
fn a_token_that_cannot_be_read_does_not_hide_the_others() {
    let _ = new_token_key("interop", "broken-neighbour");
    let shim =
        shared_lib("pkcs11_shim", "pkcs11_broken_token", &[("REAL_MODULE", Path::new(MODULE)), ("BROKEN_LABEL", Path::new("broken"))]);
    let u = format!("pkcs11:token=interop;object=broken-neighbour?module-path={}", shim.display());
    let key = EcKey::from_pkcs11_uri(&u, Some(PIN)).unwrap_or_else(|e| panic!("load next to a broken token: {}", e.message));
    verify(&key, b"m", &key.sign(b"m").unwrap());
    // The broken token itself is not found (it cannot be told apart), with the usual text.
    let e = EcKey::from_pkcs11_uri(&format!("pkcs11:token=broken;object=x?module-path={}", shim.display()), Some(PIN)).unwrap_err();
    assert!(e.message.contains("no token matches"), "{}", e.message);
}

/// Issue 18 item 5. A token that stalls in C_Sign (SoftHSM2 behind tests/c/pkcs11_shim.c
/// with STALL_FILE, stalling while a file exists) ends the call at its deadline (request_ms 1.5 s) with
/// TIMEOUT, from one thread and from 12 at once (more than the 8 sessions: the others wait
/// for a session, and that wait ends at the deadline too). Once the token answers again,
/// signing works and the session pool is whole (every session idle again).
#[test]
fn a_token_that_stalls_in_signing_ends_the_call_at_its_deadline() {
    let h = hsm();
    let stall = h.dir.join("stall-now");
    let _ = std::fs::remove_file(&stall);
    let shim = shared_lib("pkcs11_shim", "pkcs11_stall", &[("REAL_MODULE", Path::new(MODULE)), ("STALL_FILE", &stall)]);
    let u = format!("pkcs11:token=stall;object=api-key?module-path={}", shim.display());
    let key = dpopkit_key_new();
    assert_eq!(unsafe { dpopkit_key_generate_pkcs11(key, c(&u).as_ptr(), c(PIN).as_ptr(), std::ptr::null()) }, 1, "{}", text(key));
    let peers = Peers::start(&[]);
    let http = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_dpop_key(http, key), 1);
    assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&peers.auth_token()).as_ptr()) }, 1);
    assert_eq!(dpopkit_http_set_timeouts(http, 1000, 1500), 1);
    let api = c(&peers.api);
    let get = || take(unsafe { dpopkit_http_quick_get_str(http, api.as_ptr()) });
    assert!(get().is_some_and(|b| b.contains("m2m.dpop")), "{}", text(http));
    std::fs::write(&stall, "").unwrap();
    let t0 = Instant::now();
    let body = get();
    let took = t0.elapsed();
    assert!(body.is_none(), "a call signed by a stalled token succeeded");
    assert_eq!(code(http), R::Timeout as u32, "{}", text(http));
    assert!(took < Duration::from_millis(2300), "the call ran {took:?} against request_ms 1500");
    let t = text(http);
    assert!(t.contains("request_ms") && t.contains("PKCS#11"), "{t}");
    let results: Vec<(Option<String>, u32, Duration)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..12)
            .map(|_| {
                s.spawn(|| {
                    let t0 = Instant::now();
                    let body = take(unsafe { dpopkit_http_quick_get_str(http, api.as_ptr()) });
                    (body, code(http), t0.elapsed())
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (body, got, took) in &results {
        assert!(body.is_none() && *got == R::Timeout as u32, "12 threads: {got} after {took:?}");
        assert!(*took < Duration::from_millis(2500), "12 threads: a call ran {took:?} against request_ms 1500");
    }
    std::fs::remove_file(&stall).unwrap();
    assert!(get().is_some_and(|b| b.contains("m2m.dpop")), "after the stall: {}", text(http));
    // The late signatures finished; their sessions are back and the pool is whole.
    let same = EcKey::from_pkcs11_uri(&u, Some(PIN)).unwrap();
    let tk = same.token_key().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tk.token_sessions().0 != tk.token_sessions().1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (idle, open) = tk.token_sessions();
    assert!(idle == open && open <= 8 && open > 0, "sessions: {idle} idle of {open} open");
    std::thread::scope(|s| {
        for _ in 0..12 {
            s.spawn(|| assert!(get().is_some(), "{}", text(http)));
        }
    });
    dpopkit_destroy(http);
    dpopkit_destroy(key);
}

/// The malformed ways to write a pin-value (issue 18 item 12), each holding PIN_SHOWN_NEVER
/// or a part of it; none of them may come back in any text.
const PIN_SHOWN_NEVER: &str = "48151623";

fn malformed_pin_uris() -> Vec<String> {
    let p = PIN_SHOWN_NEVER;
    let m = MODULE;
    vec![
        format!("pkcs11:token=errors;object=api-key?module-path={m}&pin-value:{p}"),
        format!("pkcs11:token=errors;object=api-key?module-path={m}&pin-value {p}"),
        format!("pkcs11:token=errors;object=api-key?module-path={m}&pin-value%3D{p}"),
        format!("pkcs11:token=errors;object=api-key?module-path={m}&PIN-VALUE:{p}"),
        format!("pkcs11:token=errors;object=api-key?module-path={m}&pin_value={p}"),
        format!("pkcs11:token=errors;object=api-key?module-path={m}&pin-value{p}"),
        format!("pkcs11:token=errors;object=api-key?module-path={m}&pin%2Dvalue:{p}"),
        format!("pkcs11:token=errors;object=api-key?module-path={m}&pin-value:{p}=x"),
        format!("pkcs11:token=errors;object=api-key?module-path={m}&pin-value=4815&1623"),
        format!("pkcs11:token=errors;object=api-key?module-path={m}&pin-value=4815&1623=x"),
        format!("pkcs11:token=errors;object=api-key?module-path={m};pin-value={p}"),
        format!("pkcs11:token=errors;object=api-key&pin-value={p}?module-path={m}"),
        format!("pkcs11:token=errors;pin-value:{p};object=api-key?module-path={m}"),
        format!("pkcs11:token=errors;slot-id=1&pin-value={p}?module-path={m}"),
        format!("pkcs11:token=errors;type=private&pin-value={p}?module-path={m}"),
        format!("pkcs11:token=errors;object=api-key?module-path={m}&pin-value={p}&pin-value:{p}"),
        format!("pkcs11:token=errors;object=api-key?pin-source=/nonexistent/{p}&pin-value={p}&module-path={m}"),
    ]
}

fn assert_no_pin_part(what: &str, t: &str) {
    let p = PIN_SHOWN_NEVER;
    for i in 0..=p.len() - 4 {
        assert!(!t.contains(&p[i..i + 4]), "{what}: a part of the PIN ('{}') is in: {t}", &p[i..i + 4]);
    }
}

#[test]
fn a_malformed_pin_value_never_appears_in_an_error_text() {
    hsm();
    for u in malformed_pin_uris() {
        let (got, t) = load_fails(&u, None);
        assert_eq!(got, R::InvalidArgument as u32, "{u}: {t}");
        assert_no_pin_part(&u, &t);
        assert!(t.contains("pin-value"), "the text names what is wrong: {t}");
        let (_, t) = load_fails(&u, Some(PIN));
        assert_no_pin_part(&u, &t);
        // As a key path, and to keygen.
        let key = dpopkit_key_new();
        assert_eq!(unsafe { dpopkit_key_load_any_format_file(key, c(&u).as_ptr(), std::ptr::null()) }, 0, "{u}");
        assert_no_pin_part(&u, &text(key));
        assert_eq!(unsafe { dpopkit_key_generate_pkcs11(key, c(&u).as_ptr(), std::ptr::null(), std::ptr::null()) }, 0, "{u}");
        assert_no_pin_part(&u, &text(key));
        dpopkit_destroy(key);
    }
    // A key path that is meant as a URI but does not start with 'pkcs11:'.
    let u = format!("pkcs11;token=errors;object=api-key?pin-value={PIN_SHOWN_NEVER}");
    let key = dpopkit_key_new();
    assert_eq!(unsafe { dpopkit_key_load_any_format_file(key, c(&u).as_ptr(), std::ptr::null()) }, 0);
    assert_no_pin_part(&u, &text(key));
    assert_eq!(unsafe { dpopkit_key_load_any_format(key, c(&u).as_ptr(), std::ptr::null()) }, 0);
    assert_no_pin_part(&u, &text(key));
    dpopkit_destroy(key);
}

#[test]
fn cli_never_shows_a_malformed_pin_value() {
    let h = hsm();
    let mut uris = malformed_pin_uris();
    uris.push(format!("pkcs11;token=cli;object=cli-key?pin-value={PIN_SHOWN_NEVER}"));
    for u in &uris {
        for args in [
            vec!["keygen", "--pkcs11", u.as_str()],
            vec!["jkt", "--key", u.as_str()],
            vec!["get", "http://127.0.0.1:9/api", "--key", u.as_str(), "--client-id", "c", "--token-endpoint", "http://127.0.0.1:9/t"],
        ] {
            let out = Command::new(cli())
                .args(&args)
                .env("SOFTHSM2_CONF", &h.conf)
                .env("DPOPKIT_CLIENT_SECRET", "secret")
                .env_remove("DPOPKIT_KEY_PASSWORD")
                .output()
                .unwrap();
            let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(!out.status.success(), "{args:?}: {all}");
            assert_no_pin_part(&format!("{args:?}"), &all);
        }
    }
}

/// `pin-source=/dev/zero` was read until memory ran out, a FIFO blocked the call forever:
/// a PIN file that is not a regular file of at most 4096 bytes is refused at once, with a
/// text, before any module is loaded (issue 18, item 4).
#[test]
fn pin_sources_that_are_devices_fifos_directories_or_too_large_are_refused_at_once() {
    use crate::common::guard;
    guard::in_child(
        module_path!(),
        "pin_sources_that_are_devices_fifos_directories_or_too_large_are_refused_at_once",
        std::time::Duration::from_secs(10),
        || {
            let dir = guard::scratch_dir("pin-sources");
            let key = dpopkit_key_new();
            for (path, expect) in guard::hostile_paths(&dir, 4096) {
                let uri = format!("pkcs11:token=errors;object=none?module-path={MODULE}&pin-source={}", path.display());
                assert_eq!(unsafe { dpopkit_key_load_any_format_file(key, c(&uri).as_ptr(), std::ptr::null()) }, 0, "{uri}");
                let t = text(key);
                assert!(t.contains(&expect) && t.contains("PIN file"), "{}: {t}", path.display());
                assert_eq!(code(key), R::FileIo as u32, "{}: {t}", path.display());
            }
            dpopkit_destroy(key);
            let _ = std::fs::remove_dir_all(&dir);
        },
    );
}
