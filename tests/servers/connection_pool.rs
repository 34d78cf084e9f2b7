//! The process-wide connection pool (issue 11): new Http objects whose transport settings
//! are equal reuse the keep-alive connections of earlier ones; objects whose settings
//! differ (a CA file, a proxy, timeouts) never share one; the pool stays bounded however
//! many objects come and go. Against a loopback server that counts TCP connections (plain
//! and TLS with a test CA made by the openssl CLI), through the C ABI.

use crate::common;
use crate::common::tls as support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::core::http::{MAX_IDLE_CONNECTIONS, MAX_SHARED_TRANSPORTS, Transport};
use dpopkit::ffi::result::dpopkit_result;

use crate::common::capi::{c, code, take, text};
use support::TestPki;

/// Counts connections: accepted in all, and open right now (closed by the client or idle
/// for 20 s). Answers every request with a small 200, keep-alive.
struct CountingServer {
    port: u16,
    tls: bool,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

fn serve<S: Read + Write>(stream: S) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut content_length = 0usize;
        let mut first = true;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if first && line.trim().is_empty() {
                continue;
            }
            first = false;
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let out = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
        let w = reader.get_mut();
        if w.write_all(out).and_then(|_| w.flush()).is_err() {
            return;
        }
    }
}

impl CountingServer {
    fn start(pki: Option<&TestPki>) -> CountingServer {
        let tls_config = pki.map(|p| {
            let pem = |path: &std::path::Path| std::fs::read(path).unwrap();
            let certs: Vec<_> = ureq::tls::parse_pem(&pem(&p.cert))
                .filter_map(|i| match i.unwrap() {
                    ureq::tls::PemItem::Certificate(c) => Some(rustls::pki_types::CertificateDer::from(c.der().to_vec())),
                    _ => None,
                })
                .collect();
            let key = ureq::tls::parse_pem(&pem(&p.key))
                .find_map(|i| match i.unwrap() {
                    ureq::tls::PemItem::PrivateKey(k) => Some(rustls::pki_types::PrivateKeyDer::Pkcs8(k.der().to_vec().into())),
                    _ => None,
                })
                .unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Arc::new(
                rustls::ServerConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_no_client_auth()
                    .with_single_cert(certs, key)
                    .unwrap(),
            )
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (accepted, open, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (a, o, st) = (accepted.clone(), open.clone(), stop.clone());
        let tls = tls_config.is_some();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                a.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let (o, cfg) = (o.clone(), tls_config.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
                    match cfg {
                        Some(cfg) => {
                            if let Ok(sc) = rustls::ServerConnection::new(cfg) {
                                serve(rustls::StreamOwned::new(sc, conn))
                            }
                        }
                        None => serve(conn),
                    }
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        CountingServer { port, tls, accepted, open, stop }
    }

    fn url(&self) -> String {
        format!("{}://127.0.0.1:{}/api", if self.tls { "https" } else { "http" }, self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

impl Drop for CountingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The tests share the process-wide pool and count connections: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The seed's per-call pattern: a new Http object, one GET, destroyed. `setup` configures it.
fn one_call(url: &str, setup: impl Fn(i64)) -> (Option<String>, u32, String) {
    let http = dpopkit_http_new();
    assert_ne!(http, 0);
    assert_eq!(unsafe { dpopkit_http_set_proxy(http, c("").as_ptr()) }, 1, "no proxy from the environment");
    setup(http);
    let body = take(unsafe { dpopkit_http_quick_get_str(http, c(url).as_ptr()) });
    let (code, text) = (code(http), text(http));
    assert_eq!(dpopkit_destroy(http), 1);
    (body, code, text)
}

#[test]
fn new_objects_with_equal_settings_reuse_one_connection() {
    // Process-wide counters: in a process of its own (the other tests of the binary run meanwhile).
    if !common::alone(module_path!(), "new_objects_with_equal_settings_reuse_one_connection") {
        return;
    }
    let _serial = serial();
    let server = CountingServer::start(None);
    for i in 0..20 {
        let (body, code, text) = one_call(&server.url(), |_| {});
        assert_eq!(body.as_deref(), Some("ok"), "call {i}: {code} {text}");
    }
    assert_eq!(server.accepted(), 1, "20 objects made one after the other share one keep-alive connection");
}

#[test]
fn objects_with_different_trust_settings_never_share_a_connection() {
    // Process-wide counters: in a process of its own (the other tests of the binary run meanwhile).
    if !common::alone(module_path!(), "objects_with_different_trust_settings_never_share_a_connection") {
        return;
    }
    let _serial = serial();
    let pki = TestPki::new();
    let server = CountingServer::start(Some(&pki));
    let ca = pki.ca.to_str().unwrap().to_string();
    let with_ca = |h: i64| assert_eq!(unsafe { dpopkit_http_set_ca_file(h, c(&ca).as_ptr()) }, 1);

    // An object trusting the test CA leaves a verified connection in the pool.
    let (body, code0, text0) = one_call(&server.url(), with_ca);
    assert_eq!(body.as_deref(), Some("ok"), "{code0} {text0}");
    assert_eq!(server.accepted(), 1);
    // A default object (bundled roots) must not ride on it: it connects itself and fails.
    let (body, code1, text1) = one_call(&server.url(), |_| {});
    assert_eq!(body, None, "a default-trust object must not reuse the CA-file object's connection");
    assert_eq!(code1, dpopkit_result::Tls as u32, "{text1}");
    assert_eq!(server.accepted(), 2, "the default object opened (and failed) its own connection");
    // Another CA-file object reuses the first one's connection.
    let (body, code2, text2) = one_call(&server.url(), with_ca);
    assert_eq!(body.as_deref(), Some("ok"), "{code2} {text2}");
    assert_eq!(server.accepted(), 2, "equal trust settings share the pooled TLS connection");
    // A different timeout is a different transport: its own connection.
    let (body, code3, text3) = one_call(&server.url(), |h| {
        with_ca(h);
        assert_eq!(dpopkit_http_set_timeouts(h, 5000, 30_000), 1);
    });
    assert_eq!(body.as_deref(), Some("ok"), "{code3} {text3}");
    assert_eq!(server.accepted(), 3);
}

#[test]
fn the_pool_stays_bounded_over_10000_objects() {
    // Process-wide counters: in a process of its own (the other tests of the binary run meanwhile).
    if !common::alone(module_path!(), "the_pool_stays_bounded_over_10000_objects") {
        return;
    }
    let _serial = serial();
    let server = CountingServer::start(None);
    // 10,000 objects with 10,000 different settings: each needs a transport of its own.
    for i in 0..10_000u32 {
        let (body, code, text) = one_call(&server.url(), |h| {
            assert_eq!(dpopkit_http_set_timeouts(h, 10_000, 60_000 + i), 1);
        });
        assert_eq!(body.as_deref(), Some("ok"), "object {i}: {code} {text}");
        assert!(Transport::shared_count() <= MAX_SHARED_TRANSPORTS);
    }
    assert_eq!(server.accepted(), 10_000);
    // Evicted transports close their idle connections once their last object is gone.
    let bound = MAX_SHARED_TRANSPORTS * MAX_IDLE_CONNECTIONS;
    let t = Instant::now();
    while server.open() > bound && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.open() <= bound, "{} connections still open, bound {bound}", server.open());
    assert!(server.open() <= MAX_SHARED_TRANSPORTS, "each kept transport holds one idle connection here");
}

#[test]
fn a_rewritten_ca_file_is_read_again() {
    // Process-wide counters: in a process of its own (the other tests of the binary run meanwhile).
    if !common::alone(module_path!(), "a_rewritten_ca_file_is_read_again") {
        return;
    }
    let _serial = serial();
    let (pki, other) = (TestPki::new(), TestPki::new());
    let server = CountingServer::start(Some(&pki));
    let path = pki.dir.path().join("trust.pem");
    let with_ca = |h: i64| assert_eq!(unsafe { dpopkit_http_set_ca_file(h, c(path.to_str().unwrap()).as_ptr()) }, 1);
    // The file names another CA: per-call objects fail, again and again (parsed CA files are
    // kept process-wide, so this also warms that cache).
    std::fs::copy(&other.ca, &path).unwrap();
    for _ in 0..2 {
        let (body, code, text) = one_call(&server.url(), with_ca);
        assert_eq!((body, code), (None, dpopkit_result::Tls as u32), "{text}");
    }
    // The operator fixes the file in place: the next object trusts the new content at once.
    std::fs::copy(&pki.ca, &path).unwrap();
    let (body, code, text) = one_call(&server.url(), with_ca);
    assert_eq!(body.as_deref(), Some("ok"), "{code} {text}");
}
