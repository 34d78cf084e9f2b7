//! https against real local peers (server.mjs --tls) with a test CA made by the openssl
//! CLI: trusting the CA works (core and C ABI), not trusting it fails with a TLS error that
//! says so, and there is no way to turn verification off.

use crate::common;
use crate::common::tls as support;

use std::sync::Arc;

use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::capi::key::*;
use dpopkit::core::http::{ProxyChoice, TrustRoots, parse_ca_pem};
use dpopkit::core::{EcKey, ErrorKind, HttpClient, Settings};
use dpopkit::dpopkit_result as R;

use crate::common::Peers;
use crate::common::capi::{c, take, text as last_text};
use support::TestPki;

/// A core client with a fresh key, the sample AuthToken and `trust`; no proxy, so a proxy
/// in the environment cannot change what these tests see.
fn client(peers: &Peers, trust: TrustRoots) -> HttpClient {
    let http = HttpClient::new();
    http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
    http.set_auth_token(&peers.auth_token()).unwrap();
    http.set_settings(Settings { trust, proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
    http
}

fn claim(body: &str, name: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("RS body is not JSON ({e}): {body}"));
    v.as_array()?.iter().find(|c| c["type"] == name)?["value"].as_str().map(str::to_string)
}

#[test]
fn test_ca_is_trusted_with_pem_roots_and_nonces() {
    let pki = TestPki::new();
    let peers = pki.peers(&["--as-nonce", "--rs-nonce"]);
    assert!(peers.api.starts_with("https://127.0.0.1:") && peers.api.ends_with("/api/test"), "{}", peers.api);
    let http = client(&peers, pki.trust());
    for _ in 0..3 {
        let (body, resp) = http.quick_get_str(&peers.api).unwrap_or_else(|e| panic!("{:?}: {e}", e.kind));
        assert_eq!(resp.status, 200);
        assert_eq!(claim(&body, "client_id").as_deref(), Some("m2m.dpop"));
        // The RS checked iss against the https issuer (and fetched its JWKS over https).
        assert_eq!(claim(&body, "iss").as_deref(), Some(peers.issuer.as_str()));
    }
    // Both nonce round trips happened, and the RS accepted proofs whose htu is
    // https://127.0.0.1:PORT/api/test (its htu check uses https:// under --tls).
    let as_stats = pki.get_json(&format!("{}/_stats", peers.issuer));
    assert_eq!(as_stats["token_requests"], 2, "one use_dpop_nonce at the AS, then the token: {as_stats}");
    assert_eq!(as_stats["token_issued"], 1);
    let rs = pki.get_json(&format!("{}/_stats", peers.rs));
    assert_eq!(rs["ok"], 3, "{rs}");
    assert_eq!(rs["requests"], 4, "one use_dpop_nonce at the RS: {rs}");
}

#[test]
fn test_ca_is_trusted_through_the_c_abi() {
    let pki = TestPki::new();
    let peers = pki.peers(&["--as-nonce", "--rs-nonce"]);
    let key = dpopkit_key_new();
    assert_eq!(dpopkit_key_generate(key), 1);
    let http = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_dpop_key(http, key), 1);
    assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&peers.auth_token()).as_ptr()) }, 1);
    assert_eq!(unsafe { dpopkit_http_set_proxy(http, c("").as_ptr()) }, 1);
    let api = c(&peers.api);
    let ca = c(pki.ca.to_str().unwrap());
    assert_eq!(unsafe { dpopkit_http_set_ca_file(http, ca.as_ptr()) }, 1, "{}", last_text(http));
    for _ in 0..2 {
        let body = take(unsafe { dpopkit_http_quick_get_str(http, api.as_ptr()) })
            .unwrap_or_else(|| panic!("code {}: {}", dpopkit_last_error_code(http), last_text(http)));
        assert_eq!(dpopkit_http_last_status(http), 200);
        assert_eq!(claim(&body, "client_id").as_deref(), Some("m2m.dpop"));
    }
    assert_eq!(pki.get_json(&format!("{}/_stats", peers.rs))["ok"], 2);

    // NULL goes back to the bundled roots: not trusted any more (a new connection pool).
    assert_eq!(unsafe { dpopkit_http_set_ca_file(http, std::ptr::null()) }, 1);
    assert!(unsafe { dpopkit_http_quick_get_str(http, api.as_ptr()) }.is_null());
    assert_eq!(dpopkit_http_last_status(http), 0);
    assert_eq!(dpopkit_last_error_code(http), R::Tls as u32, "{}", last_text(http));
    assert_not_trusted(&last_text(http), &peers.rs);
    dpopkit_destroy(http);
    dpopkit_destroy(key);
}

/// The exact words a user sees when the server's certificate does not chain to the roots.
fn assert_not_trusted(text: &str, origin: &str) {
    assert!(text.contains("certificate is not trusted"), "the TLS error should say the certificate is not trusted: {text}");
    assert!(text.contains(origin), "the TLS error should name the server: {text}");
}

#[test]
fn bundled_roots_do_not_trust_the_test_ca() {
    let pki = TestPki::new();
    let peers = pki.peers(&[]);
    let http = client(&peers, TrustRoots::Bundled);
    let e = http.quick_get_str(&peers.api).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Tls, "{e}");
    // The token request to the AS is the first https connection.
    assert_not_trusted(&e.message, &peers.issuer);
    eprintln!("bundled roots: {}", e.message);

    // Without an AuthToken the request goes straight to the RS: same verdict.
    let plain = HttpClient::new();
    plain.set_settings(Settings { proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
    let e = plain.quick_get_str(&format!("{}/_stats", peers.rs)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Tls, "{e}");
    assert_not_trusted(&e.message, &peers.rs);

    // Same through the C ABI.
    let h = dpopkit_http_new();
    assert_eq!(unsafe { dpopkit_http_set_proxy(h, c("").as_ptr()) }, 1);
    let url = c(&format!("{}/_stats", peers.rs));
    assert!(unsafe { dpopkit_http_quick_get_str(h, url.as_ptr()) }.is_null());
    assert_eq!(dpopkit_last_error_code(h), R::Tls as u32);
    assert_eq!(dpopkit_http_last_status(h), 0, "no response was received");
    assert_not_trusted(&last_text(h), &peers.rs);
    dpopkit_destroy(h);
    assert_eq!(pki.get_json(&format!("{}/_stats", peers.rs))["requests"], 0);
}

#[test]
fn os_trust_store_does_not_trust_the_test_ca() {
    let pki = TestPki::new();
    let peers = pki.peers(&[]);
    // Through the C ABI: the setter works, the request fails cleanly, the library goes on,
    // and switching to the test CA afterwards works on the same object.
    let h = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_use_os_trust_store(h, 1), 1);
    assert_eq!(unsafe { dpopkit_http_set_proxy(h, c("").as_ptr()) }, 1);
    let url = c(&format!("{}/_stats", peers.rs));
    assert!(unsafe { dpopkit_http_quick_get_str(h, url.as_ptr()) }.is_null());
    let (code, text) = (dpopkit_last_error_code(h), last_text(h));
    let ca = c(pki.ca.to_str().unwrap());
    assert_eq!(unsafe { dpopkit_http_set_ca_file(h, ca.as_ptr()) }, 1);
    assert!(take(unsafe { dpopkit_http_quick_get_str(h, url.as_ptr()) }).is_some(), "{}", last_text(h));
    dpopkit_destroy(h);
    assert_eq!(code, R::Tls as u32, "{text}");

    let http = client(&peers, TrustRoots::Os);
    for _ in 0..2 {
        let e = http.quick_get_str(&peers.api).unwrap_err();
        eprintln!("OS trust store: {:?}: {}", e.kind, e.message);
        assert!(e.message.contains(&peers.issuer), "{e}");
        assert_eq!(e.kind, ErrorKind::Tls, "{e}");
    }
}

#[test]
fn ca_file_errors() {
    let dir = support::TempDir::new("ca-errors");
    let h = dpopkit_http_new();
    let missing = c(dir.path().join("missing.pem").to_str().unwrap());
    assert_eq!(unsafe { dpopkit_http_set_ca_file(h, missing.as_ptr()) }, 0);
    assert_eq!(dpopkit_last_error_code(h), R::FileIo as u32, "{}", last_text(h));
    assert!(last_text(h).contains("missing.pem"), "{}", last_text(h));

    let pki = TestPki::new();
    let no_cert = dir.path().join("key-only.pem");
    std::fs::copy(&pki.key, &no_cert).unwrap(); // PEM, but a PRIVATE KEY, not a CERTIFICATE
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let text = dir.path().join("text.pem");
    std::fs::write(&text, "not a certificate\n").unwrap();
    for f in [&no_cert, &empty, &text] {
        let p = c(f.to_str().unwrap());
        assert_eq!(unsafe { dpopkit_http_set_ca_file(h, p.as_ptr()) }, 0, "{}", f.display());
        assert_eq!(dpopkit_last_error_code(h), R::InvalidArgument as u32, "{}: {}", f.display(), last_text(h));
        assert!(last_text(h).contains("CERTIFICATE"), "{}", last_text(h));
    }
    assert!(parse_ca_pem(&std::fs::read(&no_cert).unwrap()).is_err());
    // A failed call changes nothing: a good file is still accepted afterwards.
    let ca = c(pki.ca.to_str().unwrap());
    assert_eq!(unsafe { dpopkit_http_set_ca_file(h, ca.as_ptr()) }, 1);
    assert_eq!(unsafe { dpopkit_http_set_ca_file(h, c("").as_ptr()) }, 1, "\"\" goes back to the bundled roots");
    dpopkit_destroy(h);
}

#[test]
fn verification_cannot_be_turned_off() {
    // No function of the C API, and nothing documented for the AuthToken, mentions
    // turning verification off: check every identifier and quoted word of the header.
    let header = std::fs::read_to_string(common::repo().join("include/dpopkit.h")).unwrap();
    let words: Vec<&str> = header.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    // `allow_insecure_http` (the AuthToken opt-in to send credentials over plain http to
    // another machine) is about http, not about verifying https: the one exception.
    for bad in ["insecure", "danger", "dangerous", "skip_verify", "no_verify", "noverify", "accept_invalid", "verify_none"] {
        let hits: Vec<_> = words.iter().filter(|w| w.to_ascii_lowercase().contains(bad) && **w != "allow_insecure_http").collect();
        assert!(hits.is_empty(), "include/dpopkit.h mentions {bad}: {hits:?}");
    }
    let verify_idents: Vec<_> = words.iter().filter(|w| w.to_ascii_lowercase().contains("verif") && w.contains('_')).collect();
    assert!(verify_idents.is_empty(), "an identifier about verification in the header: {verify_idents:?}");
    // The only "verify" in the header is prose (the OS trust store setter's comment).
    for line in header.lines().filter(|l| l.to_ascii_lowercase().contains("verif")) {
        assert!(line.trim_start().starts_with("//"), "'verif...' outside a comment: {line}");
        eprintln!("header: {}", line.trim());
    }
    // Every trust setting verifies; a new variant must be reviewed here.
    for t in [TrustRoots::Bundled, TrustRoots::Os, TrustRoots::Pem(Arc::new(vec![]))] {
        match t {
            TrustRoots::Bundled | TrustRoots::Os | TrustRoots::Pem(_) => {}
        }
    }

    // AuthToken members that other libraries use to disable checks change nothing here
    // (unknown members are extra form fields of the token request): still not trusted.
    let pki = TestPki::new();
    let peers = pki.peers(&[]);
    let http = client(&peers, TrustRoots::Bundled);
    let mut auth: serde_json::Value = serde_json::from_str(&peers.auth_token()).unwrap();
    for k in [
        "insecure",
        "verify",
        "verify_tls",
        "tls_verify",
        "ssl_verify",
        "danger_accept_invalid_certs",
        "insecure_skip_verify",
        "allow_insecure_http",
    ] {
        auth[k] = serde_json::Value::String(if k.contains("verify") && !k.contains("skip") { "false" } else { "true" }.into());
    }
    http.set_auth_token(&auth.to_string()).unwrap();
    let e = http.quick_get_str(&peers.api).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Tls, "{e}");
    assert_not_trusted(&e.message, &peers.issuer);
}

/// A CA file that is `/dev/zero` (read until memory ran out), a FIFO (blocked the call
/// forever), a directory or over 16 MiB is refused at once with a text (issue 18, item 4).
#[test]
fn ca_files_that_are_devices_fifos_directories_or_too_large_are_refused_at_once() {
    use crate::common::guard;
    guard::in_child(
        module_path!(),
        "ca_files_that_are_devices_fifos_directories_or_too_large_are_refused_at_once",
        std::time::Duration::from_secs(10),
        || {
            let dir = guard::scratch_dir("ca-files");
            let h = dpopkit_http_new();
            for (path, expect) in guard::hostile_paths(&dir, 16 << 20) {
                let p = c(path.to_str().unwrap());
                assert_eq!(unsafe { dpopkit_http_set_ca_file(h, p.as_ptr()) }, 0, "{}", path.display());
                let t = last_text(h);
                assert!(t.contains(&expect) && t.contains("CA file"), "{}: {t}", path.display());
                let want = if expect.starts_with("larger") { R::InvalidArgument } else { R::FileIo };
                assert_eq!(dpopkit_last_error_code(h), want as u32, "{}: {t}", path.display());
            }
            dpopkit_destroy(h);
            let _ = std::fs::remove_dir_all(&dir);
        },
    );
}
