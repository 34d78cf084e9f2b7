//! Requests through a real forward proxy on loopback (Debian's tinyproxy, started per test
//! with its own config): an explicit proxy URL, https through CONNECT, no proxy at all, the
//! C ABI setter, and the environment variables (checked in child processes so the
//! variables never reach other tests).
//!
//! A target on this machine (`localhost`, a loopback IP literal) never goes through a
//! proxy, so the peers are addressed as `0.0.0.0` here: on Linux that reaches their
//! 127.0.0.1 sockets, but it is no loopback literal, so for dpopkit it is "another
//! machine" — proxied, and plain http to it needs `allow_insecure_http` (see [`far`]).

use crate::common::tls as support;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::capi::key::*;
use dpopkit::core::http::{ProxyChoice, TrustRoots, parse_ca_pem};
use dpopkit::core::{EcKey, ErrorKind, HttpClient, Settings};
use dpopkit::dpopkit_result as R;

use crate::common::capi::{c, take, text as last_text};
use crate::common::{Peers, closed_port};
use support::{TempDir, TestPki};

const TINYPROXY_MISSING: &str =
    "tinyproxy is not installed: the proxy tests need Debian's `tinyproxy` package (apt-get install -y tinyproxy)";

/// A tinyproxy on 127.0.0.1 with its config, log and pid file in a temp dir; killed on drop.
struct Tinyproxy {
    child: Child,
    url: String,
    log: PathBuf,
    out: PathBuf,
    dir: TempDir,
}

impl Tinyproxy {
    fn start() -> Tinyproxy {
        let dir = TempDir::new("tinyproxy");
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = closed_port();
            let (conf, log, out) = (dir.path().join("tinyproxy.conf"), dir.path().join("tinyproxy.log"), dir.path().join("stdout.log"));
            // No ConnectPort line: CONNECT is allowed to any port (the peers' random ones).
            std::fs::write(
                &conf,
                format!(
                    "Port {port}\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nMaxClients 64\n\
                     LogFile \"{}\"\nLogLevel Info\nPidFile \"{}\"\n",
                    log.display(),
                    dir.path().join("tinyproxy.pid").display()
                ),
            )
            .unwrap();
            let mut child = match Command::new("tinyproxy")
                .arg("-d")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(std::fs::File::create(&out).unwrap())
                .spawn()
            {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{TINYPROXY_MISSING}"),
                Err(e) => panic!("cannot start tinyproxy: {e}. {TINYPROXY_MISSING}"),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Tinyproxy { child, url: format!("http://127.0.0.1:{port}"), log, out, dir };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    last_err = format!("tinyproxy exited ({status}): {}", std::fs::read_to_string(&out).unwrap_or_default());
                    break; // the port was taken meanwhile, or a config problem: try again
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("tinyproxy did not listen on {port}: {}", std::fs::read_to_string(&out).unwrap_or_default());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("tinyproxy did not start: {last_err}");
    }

    fn log_text(&self) -> String {
        let mut s = std::fs::read_to_string(&self.log).unwrap_or_default();
        s.push_str(&std::fs::read_to_string(&self.out).unwrap_or_default());
        s
    }

    /// Requests the proxy received for the origin (http or https; ureq tunnels both with
    /// CONNECT, a plain-http proxy request would be `GET http://...`).
    fn requests_to(&self, origin: &str) -> usize {
        count_requests(&self.log_text(), origin)
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

fn count_requests(log: &str, origin: &str) -> usize {
    let hostport = origin.split_once("://").map_or(origin, |(_, h)| h).trim_end_matches('/');
    log.lines()
        .filter(|l| l.contains("Request (") && (l.contains(&format!(" {hostport} ")) || l.contains(&format!("//{hostport}/"))))
        .count()
}

/// `url` of a peer as another machine: `0.0.0.0` instead of `127.0.0.1` (see the top).
fn far(url: &str) -> String {
    url.replacen("://127.0.0.1:", "://0.0.0.0:", 1)
}

/// The sample AuthToken; plain http to another machine (the peers as [`far`]) needs the
/// opt-in, through a proxy as well as straight.
fn auth_token(token_endpoint: &str) -> String {
    let mut v = serde_json::json!({ "client_secret": "secret", "client_id": "m2m.dpop", "token_endpoint": token_endpoint, "scope": "api" });
    if token_endpoint.starts_with("http://0.0.0.0:") {
        v["allow_insecure_http"] = "true".into();
    }
    v.to_string()
}

fn client(token_endpoint: &str, settings: Option<Settings>) -> HttpClient {
    let http = HttpClient::new();
    http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
    http.set_auth_token(&auth_token(token_endpoint)).unwrap();
    if let Some(s) = settings {
        http.set_settings(s).unwrap();
    }
    http
}

fn assert_ok(http: &HttpClient, api: &str) {
    let (body, resp) = http.quick_get_str(api).unwrap_or_else(|e| panic!("GET {api}: {:?}: {e}", e.kind));
    assert_eq!(resp.status, 200);
    assert!(body.contains("m2m.dpop"), "{body}");
}

/// Waits briefly for the proxy log to show at least one request to each origin.
fn assert_proxied(proxy: &Tinyproxy, origins: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let log = proxy.log_text();
        let missing: Vec<_> = origins.iter().filter(|o| count_requests(&log, o) == 0).collect();
        if missing.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("the proxy saw no request to {missing:?}; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sample_flow_through_an_explicit_proxy() {
    let proxy = Tinyproxy::start();
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let http = client(&far(&peers.token_endpoint), Some(Settings { proxy: ProxyChoice::Url(proxy.url.clone()), ..Settings::default() }));
    for _ in 0..3 {
        assert_ok(&http, &far(&peers.api));
    }
    // The RS checked each proof's htu against http://0.0.0.0:RS/api/test (not the proxy).
    assert_eq!(peers.rs_stats()["ok"], 3);
    assert_eq!(peers.tokens_issued(), 1);
    assert_proxied(&proxy, &[&far(&peers.issuer), &far(&peers.rs)]);
    let log = proxy.log_text();
    assert!(log.contains(&format!("CONNECT {} ", far(&peers.rs).trim_start_matches("http://"))), "{log}");
}

#[test]
fn https_peers_through_connect() {
    let proxy = Tinyproxy::start();
    let pki = TestPki::new();
    let peers = pki.peers(&["--as-nonce", "--rs-nonce"]);
    let http = client(
        &far(&peers.token_endpoint),
        Some(Settings { trust: pki.trust(), proxy: ProxyChoice::Url(proxy.url.clone()), ..Settings::default() }),
    );
    for _ in 0..3 {
        assert_ok(&http, &far(&peers.api));
    }
    assert_eq!(pki.get_json(&format!("{}/_stats", peers.rs))["ok"], 3);
    assert_proxied(&proxy, &[&far(&peers.issuer), &far(&peers.rs)]);
    let log = proxy.log_text();
    for origin in [far(&peers.issuer), far(&peers.rs)] {
        let hostport = origin.trim_start_matches("https://");
        assert!(log.contains(&format!("CONNECT {hostport} ")), "no CONNECT {hostport}:\n{log}");
    }
    // Through the tunnel the certificate is still verified end to end: without the CA the
    // same proxy path fails.
    let untrusted =
        client(&far(&peers.token_endpoint), Some(Settings { proxy: ProxyChoice::Url(proxy.url.clone()), ..Settings::default() }));
    let e = untrusted.quick_get_str(&far(&peers.api)).unwrap_err();
    assert!(e.message.contains("certificate"), "{:?}: {e}", e.kind);
}

#[test]
fn c_abi_set_proxy() {
    let proxy = Tinyproxy::start();
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let key = dpopkit_key_new();
    assert_eq!(dpopkit_key_generate(key), 1);
    let h = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_dpop_key(h, key), 1);
    assert_eq!(unsafe { dpopkit_http_set_auth_token(h, c(&auth_token(&far(&peers.token_endpoint))).as_ptr()) }, 1);
    assert_eq!(unsafe { dpopkit_http_set_proxy(h, c(&proxy.url).as_ptr()) }, 1, "{}", last_text(h));
    let api = c(&far(&peers.api));
    let body = take(unsafe { dpopkit_http_quick_get_str(h, api.as_ptr()) })
        .unwrap_or_else(|| panic!("code {}: {}", dpopkit_last_error_code(h), last_text(h)));
    assert!(body.contains("m2m.dpop"));
    assert_proxied(&proxy, &[&far(&peers.issuer), &far(&peers.rs)]);

    for (bad, says) in [("not a url::", "proxy URL"), ("ftp://127.0.0.1:21", "only http"), ("socks5://127.0.0.1:1080", "only http")] {
        assert_eq!(unsafe { dpopkit_http_set_proxy(h, c(bad).as_ptr()) }, 0, "{bad}");
        assert_eq!(dpopkit_last_error_code(h), R::InvalidArgument as u32, "{bad}: {}", last_text(h));
        assert!(last_text(h).contains(says), "{}", last_text(h));
    }
    // A refused URL leaves the previous setting in place: still through the proxy.
    let rs_before = proxy.requests_to(&far(&peers.rs));
    let stop = proxy.url.clone();
    drop(proxy); // the proxy is gone now: a request that still uses it must fail
    assert!(unsafe { dpopkit_http_quick_get_str(h, api.as_ptr()) }.is_null(), "the proxy setting was lost (proxy {stop})");
    assert_eq!(dpopkit_last_error_code(h), R::Transport as u32, "{}", last_text(h));
    assert!(last_text(h).contains("through proxy 127.0.0.1"), "the error names the proxy: {}", last_text(h));
    assert!(rs_before >= 1);
    // "" means no proxy at all: direct again.
    assert_eq!(unsafe { dpopkit_http_set_proxy(h, c("").as_ptr()) }, 1);
    assert!(take(unsafe { dpopkit_http_quick_get_str(h, api.as_ptr()) }).is_some(), "{}", last_text(h));
    dpopkit_destroy(h);
    dpopkit_destroy(key);
}

#[test]
fn proxy_urls_with_a_bad_port_are_refused() {
    let h = dpopkit_http_new();
    for bad in ["http://127.0.0.1:99999", "http://127.0.0.1:abc", "http://127.0.0.1:0", "http://127.0.0.1:", "127.0.0.1:65536"] {
        assert_eq!(unsafe { dpopkit_http_set_proxy(h, c(bad).as_ptr()) }, 0, "{bad} was accepted");
        assert_eq!(dpopkit_last_error_code(h), R::InvalidArgument as u32, "{bad}: {}", last_text(h));
        assert!(last_text(h).contains("port"), "{bad}: {}", last_text(h));
    }
    let e = HttpClient::new()
        .set_settings(Settings { proxy: ProxyChoice::Url("http://proxy.example:99999".into()), ..Settings::default() })
        .unwrap_err();
    assert!(e.message.contains("'99999' is not a number from 1 to 65535"), "{e}");
    assert_eq!(unsafe { dpopkit_http_set_proxy(h, c("http://127.0.0.1:65535").as_ptr()) }, 1, "{}", last_text(h));
    dpopkit_destroy(h);
}

#[test]
fn proxy_passwords_stay_out_of_error_texts() {
    const PASS: &str = "pr0xy-pa55w0rd";
    let peers = Peers::start(&[]);
    let key = dpopkit_key_new();
    assert_eq!(dpopkit_key_generate(key), 1);
    let h = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_dpop_key(h, key), 1);
    assert_eq!(unsafe { dpopkit_http_set_auth_token(h, c(&auth_token(&far(&peers.token_endpoint))).as_ptr()) }, 1);
    // Refused URLs: the text shows the URL with `****@` instead of the credentials.
    for bad in [
        format!("socks5://user:{PASS}@127.0.0.1:1080"),
        format!("ftp://user:{PASS}@127.0.0.1:21"),
        format!("http://user:{PASS}@127.0.0.1:99999"),
    ] {
        assert_eq!(unsafe { dpopkit_http_set_proxy(h, c(&bad).as_ptr()) }, 0, "{bad}");
        let text = last_text(h);
        assert!(!text.contains(PASS) && text.contains("****@127.0.0.1"), "{text}");
    }
    // A proxy that refuses the connection: the error names it by host and port only.
    let port = closed_port();
    assert_eq!(unsafe { dpopkit_http_set_proxy(h, c(&format!("http://user:{PASS}@127.0.0.1:{port}")).as_ptr()) }, 1);
    assert!(unsafe { dpopkit_http_quick_get_str(h, c(&far(&peers.api)).as_ptr()) }.is_null());
    let text = last_text(h);
    assert_eq!(dpopkit_last_error_code(h), R::Transport as u32, "{text}");
    assert!(text.contains(&format!("through proxy 127.0.0.1:{port}")) && !text.contains(PASS) && !text.contains("user"), "{text}");
    // Nor in the settings' Debug text.
    let http = HttpClient::new();
    http.set_settings(Settings { proxy: ProxyChoice::Url(format!("http://user:{PASS}@127.0.0.1:{port}")), ..Settings::default() }).unwrap();
    let e = http.quick_get_str(&far(&peers.api)).unwrap_err();
    assert!(!e.message.contains(PASS), "{e}");
    assert!(!format!("{:?}", http.settings()).contains(PASS));
    dpopkit_destroy(h);
    dpopkit_destroy(key);
}

/// A "proxy" on 127.0.0.1 that only counts the connections it gets (and closes them at
/// once, so a request sent to it fails fast instead of waiting). Stops on drop, and by
/// itself after 120 s.
struct SpyProxy {
    url: String,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl SpyProxy {
    fn start() -> SpyProxy {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (connections, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (n, st) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(120);
            while !st.load(Ordering::SeqCst) && Instant::now() < end {
                match listener.accept() {
                    Ok((conn, _)) => {
                        n.fetch_add(1, Ordering::SeqCst);
                        drop(conn);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SpyProxy { url, connections, stop }
    }

    /// Connections so far, after a moment for any that are still on their way.
    fn connections(&self) -> usize {
        std::thread::sleep(Duration::from_millis(100));
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for SpyProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Issue 18 item 3: plain http is allowed to this machine only, so a loopback token
/// endpoint must not be reached through a proxy (which may be anywhere: the client secret
/// would cross the network in clear, to the proxy's own 127.0.0.1). With an explicit proxy
/// (Rust settings and the C ABI setter) the proxy gets no connection at all, and the
/// requests — token request with the secret, API call — go straight to the servers.
#[test]
fn loopback_targets_never_go_through_an_explicit_proxy() {
    use crate::common::fault::{FaultServer, json};
    let spy = SpyProxy::start();
    let srv = FaultServer::start(|r| match r.path.as_str() {
        "/token" => json(200, r#"{"access_token":"loopback-token-1","token_type":"DPoP","expires_in":300}"#),
        _ => json(200, r#"{"sub":"m2m.dpop"}"#),
    });
    for te in [srv.url("/token"), format!("http://localhost:{}/token", srv.port)] {
        let http = client(&te, Some(Settings { proxy: ProxyChoice::Url(spy.url.clone()), ..Settings::default() }));
        assert_ok(&http, &srv.url("/api"));
    }
    let key = dpopkit_key_new();
    assert_eq!(dpopkit_key_generate(key), 1);
    let h = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_dpop_key(h, key), 1);
    assert_eq!(unsafe { dpopkit_http_set_auth_token(h, c(&auth_token(&srv.url("/token"))).as_ptr()) }, 1);
    assert_eq!(unsafe { dpopkit_http_set_proxy(h, c(&spy.url).as_ptr()) }, 1, "{}", last_text(h));
    let body = take(unsafe { dpopkit_http_quick_get_str(h, c(&srv.url("/api")).as_ptr()) });
    assert!(body.is_some_and(|b| b.contains("m2m.dpop")), "{}", last_text(h));
    dpopkit_destroy(h);
    dpopkit_destroy(key);
    assert_eq!(spy.connections(), 0, "a loopback target went through the proxy");
    let posts: Vec<_> = srv.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert!(!posts.is_empty() && posts.iter().all(|r| String::from_utf8_lossy(&r.body).contains("client_secret=secret")));
    // The control: the same proxy is used for a target that is not this machine.
    let http = client(&far(&srv.url("/token")), Some(Settings { proxy: ProxyChoice::Url(spy.url.clone()), ..Settings::default() }));
    let e = http.quick_get_str(&far(&srv.url("/api"))).unwrap_err();
    assert!(e.message.contains("through proxy 127.0.0.1"), "{:?}: {e}", e.kind);
    assert!(spy.connections() >= 1, "the control went straight");
}

// ---------------------------------------------------------------------------------------
// Environment variables, in child processes: this binary runs itself with `--exact NAME`
// and DPOPKIT_PROXY_CHILD=NAME, plus the proxy variables of the case and the peers' URLs.
// ---------------------------------------------------------------------------------------

const PROXY_VARS: [&str; 8] = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"];

fn in_child(name: &str) -> bool {
    std::env::var("DPOPKIT_PROXY_CHILD").is_ok_and(|v| v == name)
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child: {name} not set"))
}

/// Runs test `name` in a child process with exactly the proxy variables `vars` and the
/// peers' URLs (plus the CA file for https peers).
fn run_child(name: &str, vars: &[(&str, &str)], peers: &Peers, ca: Option<&str>, proxy_log: Option<&Tinyproxy>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", &crate::common::test_path(module_path!(), name), "--nocapture", "--test-threads=1"]);
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    cmd.env_remove("REQUEST_METHOD");
    // The peers as another machine (see `far`), and as this one.
    cmd.env("DPOPKIT_PROXY_CHILD", name)
        .env("DPOPKIT_TEST_TOKEN_ENDPOINT", far(&peers.token_endpoint))
        .env("DPOPKIT_TEST_API", far(&peers.api))
        .env("DPOPKIT_TEST_ISSUER", far(&peers.issuer))
        .env("DPOPKIT_TEST_RS", far(&peers.rs))
        .env("DPOPKIT_TEST_LOOPBACK_TOKEN_ENDPOINT", &peers.token_endpoint)
        .env("DPOPKIT_TEST_LOOPBACK_API", &peers.api);
    if let Some(ca) = ca {
        cmd.env("DPOPKIT_TEST_CA", ca);
    }
    if let Some(p) = proxy_log {
        cmd.env("DPOPKIT_TEST_PROXY_LOG", &p.log);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.contains("child ok"), "child {name} failed:\n{stdout}\n{stderr}");
}

/// In a child: the settings for the peers (the test CA when they are https), proxy `p`.
fn child_settings(proxy: ProxyChoice) -> Settings {
    let trust = match std::env::var("DPOPKIT_TEST_CA") {
        Ok(f) => TrustRoots::Pem(Arc::new(parse_ca_pem(&std::fs::read(f).unwrap()).unwrap())),
        Err(_) => TrustRoots::Bundled,
    };
    Settings { trust, proxy, ..Settings::default() }
}

fn child_proxy_count(origin_var: &str) -> usize {
    let log = std::fs::read_to_string(env("DPOPKIT_TEST_PROXY_LOG")).unwrap_or_default();
    count_requests(&log, &env(origin_var))
}

#[test]
fn no_proxy_setting_ignores_proxy_variables() {
    const NAME: &str = "no_proxy_setting_ignores_proxy_variables";
    if in_child(NAME) {
        let (te, api) = (env("DPOPKIT_TEST_TOKEN_ENDPOINT"), env("DPOPKIT_TEST_API"));
        // The control: the default (environment) uses the dead proxy and fails.
        let e = client(&te, None).quick_get_str(&api).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transport, "{e}");
        eprintln!("child: dead proxy from the environment: {e}");
        // ProxyChoice::None goes direct.
        assert_ok(&client(&te, Some(Settings { proxy: ProxyChoice::None, ..Settings::default() })), &api);
        // The C ABI: "" is no proxy.
        let key = dpopkit_key_new();
        assert_eq!(dpopkit_key_generate(key), 1);
        let h = dpopkit_http_new();
        assert_eq!(dpopkit_http_set_dpop_key(h, key), 1);
        assert_eq!(unsafe { dpopkit_http_set_auth_token(h, c(&auth_token(&te)).as_ptr()) }, 1);
        assert!(unsafe { dpopkit_http_quick_get_str(h, c(&api).as_ptr()) }.is_null(), "env proxy is dead");
        assert_eq!(unsafe { dpopkit_http_set_proxy(h, c("").as_ptr()) }, 1);
        assert!(take(unsafe { dpopkit_http_quick_get_str(h, c(&api).as_ptr()) }).is_some(), "{}", last_text(h));
        println!("child ok");
        return;
    }
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let dead = format!("http://127.0.0.1:{}", closed_port());
    run_child(NAME, &[("HTTP_PROXY", &dead), ("HTTPS_PROXY", &dead), ("ALL_PROXY", &dead)], &peers, None, None);
    assert_eq!(peers.rs_stats()["ok"], 2);
}

#[test]
fn https_proxy_variable_is_not_used_for_http_targets() {
    const NAME: &str = "https_proxy_variable_is_not_used_for_http_targets";
    if in_child(NAME) {
        assert_ok(&client(&env("DPOPKIT_TEST_TOKEN_ENDPOINT"), None), &env("DPOPKIT_TEST_API"));
        println!("child ok");
        return;
    }
    let proxy = Tinyproxy::start();
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    run_child(NAME, &[("HTTPS_PROXY", &proxy.url)], &peers, None, None);
    assert_eq!(peers.rs_stats()["ok"], 1);
    // HTTPS_PROXY is for https:// targets only (curl's rule): these http peers went direct.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(proxy.requests_to(&far(&peers.issuer)) + proxy.requests_to(&far(&peers.rs)), 0, "{}", proxy.log_text());
}

#[test]
fn http_proxy_variable_is_not_used_for_https_targets() {
    const NAME: &str = "http_proxy_variable_is_not_used_for_https_targets";
    if in_child(NAME) {
        assert_ok(&client(&env("DPOPKIT_TEST_TOKEN_ENDPOINT"), Some(child_settings(ProxyChoice::Env))), &env("DPOPKIT_TEST_API"));
        println!("child ok");
        return;
    }
    let proxy = Tinyproxy::start();
    let pki = TestPki::new();
    let peers = pki.peers(&["--as-nonce", "--rs-nonce"]);
    run_child(NAME, &[("HTTP_PROXY", &proxy.url), ("http_proxy", &proxy.url)], &peers, Some(pki.ca.to_str().unwrap()), None);
    assert_eq!(pki.get_json(&format!("{}/_stats", peers.rs))["ok"], 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(proxy.requests_to(&far(&peers.issuer)) + proxy.requests_to(&far(&peers.rs)), 0, "{}", proxy.log_text());
}

#[test]
fn https_proxy_variable_is_used_for_https_targets() {
    const NAME: &str = "https_proxy_variable_is_used_for_https_targets";
    if in_child(NAME) {
        assert_ok(&client(&env("DPOPKIT_TEST_TOKEN_ENDPOINT"), Some(child_settings(ProxyChoice::Env))), &env("DPOPKIT_TEST_API"));
        // The C ABI reads the environment too (dpopkit_http_set_proxy NULL = the default).
        let key = dpopkit_key_new();
        assert_eq!(dpopkit_key_generate(key), 1);
        let h = dpopkit_http_new();
        assert_eq!(dpopkit_http_set_dpop_key(h, key), 1);
        assert_eq!(unsafe { dpopkit_http_set_auth_token(h, c(&auth_token(&env("DPOPKIT_TEST_TOKEN_ENDPOINT"))).as_ptr()) }, 1);
        assert_eq!(unsafe { dpopkit_http_set_ca_file(h, c(&env("DPOPKIT_TEST_CA")).as_ptr()) }, 1);
        assert_eq!(unsafe { dpopkit_http_set_proxy(h, std::ptr::null()) }, 1);
        assert!(take(unsafe { dpopkit_http_quick_get_str(h, c(&env("DPOPKIT_TEST_API")).as_ptr()) }).is_some(), "{}", last_text(h));
        println!("child ok");
        return;
    }
    let proxy = Tinyproxy::start();
    let pki = TestPki::new();
    let peers = pki.peers(&["--as-nonce", "--rs-nonce"]);
    run_child(NAME, &[("HTTPS_PROXY", &proxy.url)], &peers, Some(pki.ca.to_str().unwrap()), None);
    assert_eq!(pki.get_json(&format!("{}/_stats", peers.rs))["ok"], 2);
    assert_proxied(&proxy, &[&far(&peers.issuer), &far(&peers.rs)]);
    let log = proxy.log_text();
    assert!(log.contains(&format!("CONNECT {} ", far(&peers.rs).trim_start_matches("https://"))), "{log}");
}

#[test]
fn http_proxy_variable_is_ignored_under_cgi() {
    const NAME: &str = "http_proxy_variable_is_ignored_under_cgi";
    if in_child(NAME) {
        // REQUEST_METHOD is set: HTTP_PROXY may be a request's `Proxy:` header (httpoxy).
        // The dead proxy it names is not used: direct, and the call works.
        assert_ok(&client(&env("DPOPKIT_TEST_TOKEN_ENDPOINT"), None), &env("DPOPKIT_TEST_API"));
        println!("child ok");
        return;
    }
    let peers = Peers::start(&[]);
    let dead = format!("http://127.0.0.1:{}", closed_port());
    run_child(NAME, &[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", &dead)], &peers, None, None);
    assert_eq!(peers.rs_stats()["ok"], 1);
}

#[test]
fn lower_case_http_proxy_is_used_under_cgi() {
    const NAME: &str = "lower_case_http_proxy_is_used_under_cgi";
    if in_child(NAME) {
        assert_ok(&client(&env("DPOPKIT_TEST_TOKEN_ENDPOINT"), None), &env("DPOPKIT_TEST_API"));
        println!("child ok");
        return;
    }
    // CGI cannot set a lower-case variable (it makes HTTP_* of request headers), so
    // http_proxy is still trusted there, as curl does.
    let proxy = Tinyproxy::start();
    let peers = Peers::start(&[]);
    run_child(NAME, &[("REQUEST_METHOD", "POST"), ("http_proxy", &proxy.url)], &peers, None, None);
    assert_eq!(peers.rs_stats()["ok"], 1);
    assert_proxied(&proxy, &[&far(&peers.issuer), &far(&peers.rs)]);
}

#[test]
fn unusable_proxy_variable_is_a_clear_error() {
    const NAME: &str = "unusable_proxy_variable_is_a_clear_error";
    if in_child(NAME) {
        let e = client(&env("DPOPKIT_TEST_TOKEN_ENDPOINT"), None).quick_get_str(&env("DPOPKIT_TEST_API")).unwrap_err();
        eprintln!("child: {e}");
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
        assert!(e.message.contains("ALL_PROXY") && e.message.contains("65535"), "{e}");
        assert!(!e.message.contains("pr0xy-pa55"), "the proxy password is shown: {e}");
        println!("child ok");
        return;
    }
    // Port 99999 does not exist: not "port 80", not a silent direct connection.
    let peers = Peers::start(&[]);
    run_child(NAME, &[("ALL_PROXY", "http://user:pr0xy-pa55@127.0.0.1:99999")], &peers, None, None);
    assert_eq!(peers.tokens_issued(), 0);
}

#[test]
fn no_proxy_variable_exempts_the_hosts_it_names() {
    const NAME: &str = "no_proxy_variable_exempts_the_hosts_it_names";
    if in_child(NAME) {
        assert_ok(&client(&env("DPOPKIT_TEST_TOKEN_ENDPOINT"), None), &env("DPOPKIT_TEST_API"));
        println!("child ok");
        return;
    }
    let proxy = Tinyproxy::start();
    let peers = Peers::start(&[]);
    run_child(NAME, &[("HTTP_PROXY", &proxy.url), ("NO_PROXY", "localhost,0.0.0.0")], &peers, None, None);
    assert_eq!(peers.rs_stats()["ok"], 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(proxy.requests_to(&far(&peers.issuer)) + proxy.requests_to(&far(&peers.rs)), 0, "{}", proxy.log_text());
}

#[test]
fn environment_is_read_when_the_http_object_is_made_or_its_settings_replaced() {
    const NAME: &str = "environment_is_read_when_the_http_object_is_made_or_its_settings_replaced";
    if in_child(NAME) {
        let (te, api) = (env("DPOPKIT_TEST_TOKEN_ENDPOINT"), env("DPOPKIT_TEST_API"));
        let key = Arc::new(EcKey::generate().unwrap());
        let made_with_proxy = HttpClient::new();
        made_with_proxy.set_dpop_key(key.clone());
        made_with_proxy.set_auth_token(&auth_token(&te)).unwrap();
        // SAFETY: this child runs one test on one thread; nothing else reads the environment.
        unsafe { std::env::remove_var("HTTP_PROXY") };
        assert_ok(&made_with_proxy, &api); // token (AS) and API call (RS): through the proxy
        assert_eq!((child_proxy_count("DPOPKIT_TEST_ISSUER"), child_proxy_count("DPOPKIT_TEST_RS")), (1, 1));
        // A new object sees no variable: direct (the token is cached, only the RS is asked).
        let made_without = HttpClient::new();
        made_without.set_dpop_key(key);
        made_without.set_auth_token(&auth_token(&te)).unwrap();
        assert_ok(&made_without, &api);
        // Replacing the settings of the first object reads the environment again: direct.
        made_with_proxy.set_settings(made_with_proxy.settings()).unwrap();
        assert_ok(&made_with_proxy, &api);
        assert_eq!(child_proxy_count("DPOPKIT_TEST_RS"), 1, "later requests went direct");
        println!("child ok");
        return;
    }
    let proxy = Tinyproxy::start();
    let peers = Peers::start(&[]);
    run_child(NAME, &[("HTTP_PROXY", &proxy.url)], &peers, None, Some(&proxy));
    assert_eq!(peers.rs_stats()["ok"], 3);
}

/// Issue 18 item 3, the environment: `http_proxy` / `HTTP_PROXY` / `ALL_PROXY` (and the
/// https ones) naming a proxy are not used for loopback targets either, with no `NO_PROXY`.
#[test]
fn loopback_targets_never_go_through_an_environment_proxy() {
    const NAME: &str = "loopback_targets_never_go_through_an_environment_proxy";
    if in_child(NAME) {
        let (te, api) = (env("DPOPKIT_TEST_LOOPBACK_TOKEN_ENDPOINT"), env("DPOPKIT_TEST_LOOPBACK_API"));
        assert!(te.starts_with("http://127.0.0.1:"), "{te}");
        assert_ok(&client(&te, None), &api);
        assert_ok(&client(&te.replacen("127.0.0.1", "localhost", 1), None), &api.replacen("127.0.0.1", "localhost", 1));
        // The C ABI reads the environment too.
        let key = dpopkit_key_new();
        assert_eq!(dpopkit_key_generate(key), 1);
        let h = dpopkit_http_new();
        assert_eq!(dpopkit_http_set_dpop_key(h, key), 1);
        assert_eq!(unsafe { dpopkit_http_set_auth_token(h, c(&auth_token(&te)).as_ptr()) }, 1);
        assert!(take(unsafe { dpopkit_http_quick_get_str(h, c(&api).as_ptr()) }).is_some(), "{}", last_text(h));
        // The control: a target that is not this machine does use the variable.
        let e = client(&env("DPOPKIT_TEST_TOKEN_ENDPOINT"), None).quick_get_str(&env("DPOPKIT_TEST_API")).unwrap_err();
        assert!(e.message.contains("through proxy 127.0.0.1"), "{:?}: {e}", e.kind);
        println!("child ok");
        return;
    }
    let spy = SpyProxy::start();
    let peers = Peers::start(&[]);
    let vars = [
        ("http_proxy", spy.url.as_str()),
        ("HTTP_PROXY", spy.url.as_str()),
        ("ALL_PROXY", spy.url.as_str()),
        ("https_proxy", spy.url.as_str()),
    ];
    run_child(NAME, &vars, &peers, None, None);
    assert_eq!(peers.rs_stats()["ok"], 3, "the loopback calls went straight to the peers");
    assert_eq!(spy.connections(), 1, "only the control went through the proxy");
}
