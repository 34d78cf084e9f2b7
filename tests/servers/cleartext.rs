//! Client credentials never cross a network in clear: a client secret or assertion goes
//! over plain http only to this machine (`localhost`, a loopback IP literal), unless the
//! AuthToken says `"allow_insecure_http": "true"`; metadata fetched over https never sends
//! them to a plain-http token endpoint.
//!
//! Every server here is on loopback. "Another machine" is played by a host name that the
//! system resolver maps to 127.0.0.1 but that is not a loopback literal (`2130706433`, the
//! number form of 127.0.0.1): the rule looks at the URL, as an attacker who controls DNS
//! could make any name resolve anywhere.

use crate::common::tls as support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use crate::common::capi::{c, text as last_text};
use crate::common::fault::{Action, FaultServer, json};
use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::core::http::ProxyChoice;
use dpopkit::core::{EcKey, ErrorKind, HttpClient, Settings};
use dpopkit::dpopkit_result as R;
use support::TestPki;

const TOKEN: &str = r#"{"access_token":"cleartext-test-token","token_type":"DPoP","expires_in":300}"#;

/// An AS + RS on 127.0.0.1: metadata, a token endpoint (named by `te_host`) and /api.
fn server(te_host: &'static str) -> FaultServer {
    let port = Arc::new(std::sync::OnceLock::<u16>::new());
    let p = port.clone();
    let srv = FaultServer::start(move |r| {
        let port = p.get().copied().unwrap_or(0);
        match r.path.as_str() {
            "/.well-known/openid-configuration" => {
                json(200, &format!(r#"{{"issuer":"http://127.0.0.1:{port}","token_endpoint":"http://{te_host}:{port}/token"}}"#))
            }
            "/token" => json(200, TOKEN),
            _ => json(200, r#"{"ok":true}"#),
        }
    });
    port.set(srv.port).unwrap();
    srv
}

fn auth(member: &str, url: &str, extra: &[(&str, &str)]) -> String {
    let mut v = serde_json::json!({ "client_id": "m2m.dpop", "client_secret": "cleartext-secret", "scope": "api" });
    v[member] = url.into();
    for (k, val) in extra {
        v[*k] = (*val).into();
    }
    v.to_string()
}

fn http_client() -> HttpClient {
    let http = HttpClient::new();
    http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
    http.set_settings(Settings { proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
    http
}

fn posts(srv: &FaultServer) -> usize {
    srv.requests().iter().filter(|r| r.method == "POST").count()
}

#[test]
fn set_auth_token_refuses_plain_http_to_another_machine_through_the_c_abi() {
    let h = dpopkit_http_new();
    for (member, url) in [
        ("token_endpoint", "http://as.example/token"),
        ("token_endpoint", "http://localhost.:8080/token"),
        ("issuer", "http://as.example"),
        ("metadata_url", "http://as.example/.well-known/oauth-authorization-server"),
    ] {
        for method in ["client_secret_post", "client_secret_basic", "private_key_jwt"] {
            let json = auth(member, url, &[("client_auth_method", method)]);
            assert_eq!(unsafe { dpopkit_http_set_auth_token(h, c(&json).as_ptr()) }, 0, "{member} {url} {method}");
            assert_eq!(dpopkit_last_error_code(h), R::AuthToken as u32);
            let text = last_text(h);
            assert!(text.contains("allow_insecure_http") && text.contains("https://") && text.contains(member), "{text}");
            assert!(!text.contains("cleartext-secret"), "{text}");
            let json = auth(member, url, &[("client_auth_method", method), ("allow_insecure_http", "true")]);
            assert_eq!(unsafe { dpopkit_http_set_auth_token(h, c(&json).as_ptr()) }, 1, "{}", last_text(h));
        }
    }
    for url in ["http://127.0.0.1:8080/token", "http://localhost:8080/token", "http://[::1]:8080/token", "https://as.example/token"] {
        assert_eq!(unsafe { dpopkit_http_set_auth_token(h, c(&auth("token_endpoint", url, &[])).as_ptr()) }, 1, "{url}: {}", last_text(h));
    }
    dpopkit_destroy(h);
}

#[test]
fn a_name_that_resolves_to_loopback_is_not_this_machine() {
    let srv = server("2130706433");
    let te = format!("http://2130706433:{}/token", srv.port);
    let api = srv.url("/api");
    let http = http_client();
    let e = http.set_auth_token(&auth("token_endpoint", &te, &[])).unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthToken, "{e}");
    assert!(e.message.contains("allow_insecure_http"), "{e}");
    // With the opt-in the secret goes there: the name does reach this test's server.
    http.set_auth_token(&auth("token_endpoint", &te, &[("allow_insecure_http", "true")])).unwrap();
    let (body, _) = http.quick_get_str(&api).unwrap_or_else(|e| panic!("{:?}: {e}", e.kind));
    assert!(body.contains("ok"));
    assert_eq!(posts(&srv), 1);
    assert!(srv.requests().iter().any(|r| r.method == "POST" && String::from_utf8_lossy(&r.body).contains("cleartext-secret")));
}

#[test]
fn a_discovered_plain_http_endpoint_on_another_machine_is_refused_at_fetch_time() {
    let srv = server("2130706433");
    let issuer = format!("http://127.0.0.1:{}", srv.port);
    let api = srv.url("/api");
    for method in ["client_secret_post", "client_secret_basic"] {
        // The issuer is loopback, so the AuthToken is accepted; the endpoint it names is not.
        let http = http_client();
        http.set_auth_token(&auth("issuer", &issuer, &[("client_auth_method", method)])).unwrap();
        let e = http.quick_get_str(&api).unwrap_err();
        assert_eq!(e.kind, ErrorKind::AuthToken, "{e}");
        assert!(e.message.contains("discovered token endpoint") && e.message.contains("allow_insecure_http"), "{e}");
        assert_eq!(posts(&srv), 0, "the credentials were sent");
    }
    let http = http_client();
    http.set_auth_token(&auth("issuer", &issuer, &[("allow_insecure_http", "true")])).unwrap();
    http.quick_get_str(&api).unwrap_or_else(|e| panic!("{:?}: {e}", e.kind));
    assert_eq!(posts(&srv), 1);
}

/// A TLS server (Python's http.server) that serves metadata naming `token_endpoint`.
struct TlsMetadata(Child, u16);

impl TlsMetadata {
    fn start(pki: &TestPki, token_endpoint: &str) -> TlsMetadata {
        const SCRIPT: &str = r#"
import http.server, json, ssl, sys
cert, key, te = sys.argv[1:4]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"issuer": "https://127.0.0.1:%d" % self.server.server_port, "token_endpoint": te}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_port, flush=True)
s.serve_forever()
"#;
        let mut child = Command::new("python3")
            .args(["-c", SCRIPT, pki.cert.to_str().unwrap(), pki.key.to_str().unwrap(), token_endpoint])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed for the TLS metadata server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("the TLS metadata server said {line:?}"));
        TlsMetadata(child, port)
    }
}

impl Drop for TlsMetadata {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn https_metadata_naming_a_plain_http_token_endpoint_is_refused() {
    let pki = TestPki::new();
    // Even a loopback http endpoint: from https metadata it is a downgrade, never followed.
    let srv = server("127.0.0.1");
    let meta = TlsMetadata::start(&pki, &srv.url("/token"));
    for (member, url) in
        [("metadata_url", format!("https://127.0.0.1:{}/meta", meta.1)), ("issuer", format!("https://127.0.0.1:{}", meta.1))]
    {
        for allow in ["false", "true"] {
            let http = HttpClient::new();
            http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
            http.set_settings(Settings { trust: pki.trust(), proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
            http.set_auth_token(&auth(member, &url, &[("allow_insecure_http", allow)])).unwrap();
            let e = http.quick_get_str(&srv.url("/api")).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Discovery, "{member} allow={allow}: {e}");
            assert!(e.message.contains("plain-http token endpoint"), "{e}");
        }
    }
    assert_eq!(posts(&srv), 0, "the credentials went to the plain-http endpoint");
}

/// Counts connections to 127.0.0.1:80 while it lives, when that port can be bound here
/// (root, nothing else on it); `None` otherwise. Stops on drop, and by itself after 60 s.
struct Port80(Option<(Arc<std::sync::atomic::AtomicUsize>, Arc<std::sync::atomic::AtomicBool>)>);

impl Port80 {
    fn start() -> Port80 {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let Ok(listener) = std::net::TcpListener::bind("127.0.0.1:80") else { return Port80(None) };
        listener.set_nonblocking(true).unwrap();
        let (n, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (n2, stop2) = (n.clone(), stop.clone());
        std::thread::spawn(move || {
            let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !stop2.load(Ordering::SeqCst) && std::time::Instant::now() < end {
                match listener.accept() {
                    Ok((conn, _)) => {
                        n2.fetch_add(1, Ordering::SeqCst);
                        drop(conn);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Port80(Some((n, stop)))
    }
}

impl Drop for Port80 {
    fn drop(&mut self) {
        if let Some((_, stop)) = &self.0 {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Issue 18 item 11: a port outside 1-65535 in any URL the library takes is refused with a
/// text that names the URL and the valid range — not read as "no port" and so as port 80,
/// where the client secret would go to whatever listens there.
#[test]
fn urls_with_ports_outside_1_to_65535_are_refused_everywhere() {
    let port80 = Port80::start();
    const BAD: [&str; 4] = ["65616", "0", "99999999999", "65536"];
    // The AuthToken's URLs, through the C ABI.
    let h = dpopkit_http_new();
    for member in ["token_endpoint", "issuer", "metadata_url"] {
        for port in BAD {
            let url = format!("http://127.0.0.1:{port}/token");
            assert_eq!(unsafe { dpopkit_http_set_auth_token(h, c(&auth(member, &url, &[])).as_ptr()) }, 0, "{member} {url} was accepted");
            assert_eq!(dpopkit_last_error_code(h), R::AuthToken as u32, "{member} {url}");
            let text = last_text(h);
            assert!(text.contains(member) && text.contains(&url) && text.contains("1 to 65535"), "{member} {url}: {text}");
            assert!(!text.contains("cleartext-secret"), "{text}");
        }
    }
    // A proxy URL, and a resource URL.
    for port in BAD {
        assert_eq!(unsafe { dpopkit_http_set_proxy(h, c(&format!("http://127.0.0.1:{port}")).as_ptr()) }, 0, "proxy port {port}");
        assert!(last_text(h).contains("1 to 65535"), "{}", last_text(h));
        let url = format!("http://127.0.0.1:{port}/api");
        assert!(unsafe { dpopkit_http_quick_get_str(h, c(&url).as_ptr()) }.is_null(), "{url}");
        assert_eq!(dpopkit_last_error_code(h), R::InvalidArgument as u32, "{url}: {}", last_text(h));
        assert!(last_text(h).contains(&url) && last_text(h).contains("1 to 65535"), "{url}: {}", last_text(h));
    }
    dpopkit_destroy(h);
    // Resource URLs (Rust API), a redirect's Location and a token endpoint that metadata
    // names: refused before anything is sent there.
    let srv = FaultServer::start(|r| {
        let port = r.path.rsplit('/').next().unwrap_or("0").to_string();
        match r.path.as_str() {
            p if p.starts_with("/redirect/") => {
                Action::Respond(302, vec![("Location".into(), format!("http://127.0.0.1:{port}/next"))], Vec::new())
            }
            p if p.contains("/.well-known/") => json(200, &format!(r#"{{"token_endpoint":"http://127.0.0.1:{port}/token"}}"#)),
            "/token" => json(200, TOKEN),
            _ => json(200, r#"{"ok":true}"#),
        }
    });
    let http = http_client();
    http.set_auth_token(&auth("token_endpoint", &srv.url("/token"), &[])).unwrap();
    for port in BAD {
        let url = format!("http://127.0.0.1:{port}/api?x=1");
        let e = http.quick_get_str(&url).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{url}: {e}");
        assert!(e.message.contains(&format!("http://127.0.0.1:{port}/api")) && e.message.contains("1 to 65535"), "{url}: {e}");
        let e = http.quick_get_str(&srv.url(&format!("/redirect/{port}"))).unwrap_err();
        assert!(e.message.contains("1 to 65535"), "redirect to port {port}: {e}");
    }
    for port in BAD {
        // The metadata (at a metadata_url, so no issuer to compare) names the endpoint.
        let discovering = http_client();
        discovering.set_auth_token(&auth("metadata_url", &srv.url(&format!("/.well-known/x/{port}")), &[])).unwrap();
        let e = discovering.quick_get_str(&srv.url("/api")).unwrap_err();
        assert!(e.message.contains("1 to 65535"), "metadata naming port {port}: {:?}: {e}", e.kind);
    }
    assert_eq!(posts(&srv), 1, "only the valid token endpoint was asked");
    if let Some((n, _)) = &port80.0 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 0, "a request went to port 80");
    } else {
        eprintln!("127.0.0.1:80 cannot be bound here: the errors above are the check");
    }
}
