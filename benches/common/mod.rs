//! Shared by the bench programs: a tiny HTTP/1.1 keep-alive server on 127.0.0.1, the
//! quick-mode switch, statistics and the RSS reader.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The body of every non-token response.
pub const API_BODY: &str = r#"{"ok":true,"service":"dpopkit-bench","items":[1,2,3]}"#;
/// The access token of every `/token` response: a JWT of the size an authorization server
/// issues (466 characters), so that what the client does with a token (its `ath`, the
/// `Authorization` header, masking it where a server could echo it) costs what it would.
pub const ACCESS_TOKEN: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImJlbmNoLWFzLWtleS0xIn0.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xL2JlbmNoLWFzIiwic3ViIjoiYmVuY2giLCJhdWQiOiJhcGkiLCJjbGllbnRfaWQiOiJiZW5jaCIsInNjb3BlIjoiYXBpIiwiaWF0IjoxNzY0MDAwMDAwLCJleHAiOjE3NjQwMDM2MDAsImp0aSI6ImIxYzJkM2U0ZjVhNmI3YzhkOWUwZjFhMmIzYzRkNWU2IiwiY25mIjp7ImprdCI6IjBaY09DT1JaTll5LURXcHFxMzBqWnlKR0hUTjBkMkhnbEJWM3VpZ3VBNEkifX0.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-Pw";

/// The body of every `/token` response (the server does not validate anything).
pub fn token_body() -> String {
    format!(r#"{{"access_token":"{ACCESS_TOKEN}","token_type":"DPoP","expires_in":3600}}"#)
}

/// The body of `/big...` responses: a 1 MiB JSON document.
pub fn big_body() -> String {
    format!(r#"{{"data":"{}"}}"#, "a".repeat(BIG_SIZE - 11))
}
pub const BIG_SIZE: usize = 1 << 20;

/// How long `/slow...` paths wait before answering (to show whether threads sharing one
/// handle overlap their I/O, independently of free CPU cores).
pub const SLOW: std::time::Duration = std::time::Duration::from_millis(2);

/// A fast loopback HTTP/1.1 server: one thread per connection, keep-alive, a fixed 200
/// JSON body for every path, a token response for `/token`, 1 MiB for `/big...`; `/slow...` waits [`SLOW`] first. It never validates.
pub struct LocalServer {
    pub port: u16,
    /// Serves https (see [`LocalServer::start_tls`]).
    pub tls: bool,
    /// Requests to `/token`.
    pub token_requests: Arc<AtomicU64>,
    /// All requests.
    pub requests: Arc<AtomicU64>,
    /// Requests that carried a `DPoP` header.
    pub dpop_requests: Arc<AtomicU64>,
}

impl LocalServer {
    pub fn start() -> LocalServer {
        Self::start_with(None)
    }

    /// The same server over TLS with a certificate for 127.0.0.1 from `pki`.
    pub fn start_tls(pki: &BenchPki) -> LocalServer {
        Self::start_with(Some(pki.server_config()))
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> LocalServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let token_requests = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let dpop_requests = Arc::new(AtomicU64::new(0));
        let counters = Counters { token: token_requests.clone(), all: requests.clone(), dpop: dpop_requests.clone() };
        let tls_on = tls.is_some();
        std::thread::Builder::new()
            .name("bench-server-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let counters = counters.clone();
                    let tls = tls.clone();
                    let _ = stream.set_nodelay(true);
                    let _ = std::thread::Builder::new().name("bench-server-conn".into()).stack_size(256 * 1024).spawn(move || match tls {
                        Some(cfg) => {
                            if let Ok(conn) = rustls::ServerConnection::new(cfg) {
                                serve(rustls::StreamOwned::new(conn, stream), &counters);
                            }
                        }
                        None => serve(stream, &counters),
                    });
                }
            })
            .unwrap();
        LocalServer { port, tls: tls_on, token_requests, requests, dpop_requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", if self.tls { "https" } else { "http" }, self.port)
    }

    /// AuthToken JSON pointing at this server's `/token`.
    pub fn count(&self, which: &AtomicU64) -> u64 {
        which.load(Ordering::Relaxed)
    }

    pub fn auth_token(&self) -> String {
        format!(r#"{{"token_endpoint":"{}","client_id":"bench","client_secret":"bench-secret","scope":"api"}}"#, self.url("/token"))
    }
}

fn response(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}", body.len())
        .into_bytes()
}

#[derive(Clone)]
struct Counters {
    token: Arc<AtomicU64>,
    all: Arc<AtomicU64>,
    dpop: Arc<AtomicU64>,
}

fn serve<S: Read + Write>(stream: S, counters: &Counters) {
    // Built once for all connections: the server must not add to the figures it serves.
    static RESPONSES: std::sync::OnceLock<[Vec<u8>; 3]> = std::sync::OnceLock::new();
    let [api, token, big] = RESPONSES.get_or_init(|| [response(API_BODY), response(&token_body()), response(&big_body())]);
    let mut reader = BufReader::with_capacity(16 * 1024, stream);
    let mut line = String::with_capacity(256);
    let mut discard = Vec::new();
    loop {
        // Request line.
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let path = line.split(' ').nth(1).unwrap_or("");
        let is_token = path.starts_with("/token");
        let is_slow = path.starts_with("/slow");
        let is_big = path.starts_with("/big");
        let mut content_length = 0usize;
        let mut close = false;
        let mut dpop = false;
        // Headers.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("dpop") {
                    dpop = true;
                } else if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        if content_length > 0 {
            discard.resize(content_length, 0);
            if reader.read_exact(&mut discard).is_err() {
                return;
            }
        }
        if is_slow {
            std::thread::sleep(SLOW);
        }
        counters.all.fetch_add(1, Ordering::Relaxed);
        if dpop {
            counters.dpop.fetch_add(1, Ordering::Relaxed);
        }
        let out = if is_token {
            counters.token.fetch_add(1, Ordering::Relaxed);
            token
        } else if is_big {
            big
        } else {
            api
        };
        let writer = reader.get_mut();
        if writer.write_all(out).and_then(|_| writer.flush()).is_err() || close {
            return;
        }
    }
}

/// Quick mode (CI): `DPOPKIT_BENCH_QUICK=1`, or the program was not started by
/// `cargo bench` (which passes `--bench`; `cargo test --all-targets` passes nothing).
pub fn quick_mode() -> bool {
    if std::env::var("DPOPKIT_BENCH_QUICK").is_ok_and(|v| v == "1") {
        return true;
    }
    !std::env::args().skip(1).any(|a| a == "--bench")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Median, min and max of a sample (sorted copy).
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn stats(xs: &[f64]) -> Stats {
    assert!(!xs.is_empty());
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Stats { median, min: v[0], max: v[n - 1] }
}

/// Resident set size of this process in bytes, from /proc/self/statm (pages).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux only)");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("statm has a resident field");
    pages * page_size()
}

/// The kernel page size, from /proc/self/smaps_rollup's or smaps' KernelPageSize (no libc).
fn page_size() -> u64 {
    static SIZE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        for file in ["/proc/self/smaps"] {
            if let Ok(f) = std::fs::File::open(file) {
                for line in BufReader::new(f).lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix("KernelPageSize:") {
                        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().unwrap_or(4);
                        return kb * 1024;
                    }
                }
            }
        }
        4096
    })
}

pub fn mib(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The C ABI as Rust calls it, with owned strings.
pub mod c {
    use std::ffi::{CStr, CString, c_char};

    pub use dpopkit::capi::common::*;
    pub use dpopkit::capi::http::*;
    #[allow(unused_imports)] // not every bench program uses JSON objects
    pub use dpopkit::capi::json::*;
    pub use dpopkit::capi::key::*;

    pub fn cs(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    /// Takes ownership of a returned string (NULL -> None) and frees it.
    pub fn take(p: *mut c_char) -> Option<String> {
        if p.is_null() {
            return None;
        }
        let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        unsafe { dpopkit_string_free(p) };
        Some(s)
    }

    pub fn last_error(h: i64) -> String {
        take(dpopkit_last_error_text(h)).unwrap_or_default()
    }

    /// A PrivateKey handle loaded from a fixture file.
    pub fn key_from_fixture(name: &str) -> i64 {
        let k = dpopkit_key_new();
        assert!(k > 0);
        let path = cs(super::fixture(name).to_str().unwrap());
        let ok = unsafe { dpopkit_key_load_any_format_file(k, path.as_ptr(), std::ptr::null()) };
        assert_eq!(ok, 1, "loading {name}: {}", last_error(k));
        k
    }

    /// An Http handle with no proxy (the environment's proxy must not change loopback
    /// figures); with `key` and `auth_token` when given.
    pub fn http(key: Option<i64>, auth_token: Option<&str>) -> i64 {
        let h = dpopkit_http_new();
        assert!(h > 0);
        let empty = cs("");
        assert_eq!(unsafe { dpopkit_http_set_proxy(h, empty.as_ptr()) }, 1, "{}", last_error(h));
        if let Some(k) = key {
            assert_eq!(dpopkit_http_set_dpop_key(h, k), 1, "{}", last_error(h));
        }
        if let Some(a) = auth_token {
            let a = cs(a);
            assert_eq!(unsafe { dpopkit_http_set_auth_token(h, a.as_ptr()) }, 1, "{}", last_error(h));
        }
        h
    }

    /// One GET through the C ABI; panics on failure. Returns the body length.
    pub fn get(h: i64, url: &CStr) -> usize {
        let p = unsafe { dpopkit_http_quick_get_str(h, url.as_ptr()) };
        if p.is_null() {
            panic!("GET failed: {}", last_error(h));
        }
        let n = unsafe { CStr::from_ptr(p) }.to_bytes().len();
        unsafe { dpopkit_string_free(p) };
        n
    }

    /// The seed's pattern, as the SQL Server procedure runs it on every call: a new PrivateKey
    /// loaded from a file, a new JsonObject for the AuthToken, a new Http object, one GET, all
    /// destroyed. The token is cached process-wide, so what this measures is everything else
    /// a fresh set of objects costs.
    pub fn per_call_get(url: &CStr, key_file: &CStr, auth: &[(&str, String)], ca_file: Option<&CStr>) -> usize {
        seed_objects(Some(url), key_file, auth, ca_file)
    }

    /// [`per_call_get`], with the GET only when `url` is given (`None`: the objects are
    /// created, configured and destroyed without a request). Returns the body length (0
    /// without a request).
    pub fn seed_objects(url: Option<&CStr>, key_file: &CStr, auth: &[(&str, String)], ca_file: Option<&CStr>) -> usize {
        let key = dpopkit_key_new();
        assert_eq!(unsafe { dpopkit_key_load_any_format_file(key, key_file.as_ptr(), std::ptr::null()) }, 1);
        let json = dpopkit_json_new();
        for (name, value) in auth {
            let (n, v) = (cs(name), cs(value));
            assert_eq!(unsafe { dpopkit_json_update_string(json, n.as_ptr(), v.as_ptr()) }, 1);
        }
        let emitted = dpopkit_json_emit(json);
        let http = http(Some(key), None);
        if let Some(ca) = ca_file {
            assert_eq!(unsafe { dpopkit_http_set_ca_file(http, ca.as_ptr()) }, 1, "{}", last_error(http));
        }
        assert_eq!(unsafe { dpopkit_http_set_auth_token(http, emitted) }, 1);
        unsafe { dpopkit_string_free(emitted) };
        let n = url.map_or(0, |u| get(http, u));
        for h in [http, json, key] {
            assert_eq!(dpopkit_destroy(h), 1);
        }
        n
    }
}

/// CPU time so far: this process's (user + system) and the whole machine's busy and total
/// time, all in clock ticks (/proc/self/stat, /proc/stat).
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    pub process: u64,
    pub machine_busy: u64,
    pub machine_total: u64,
}

pub fn cpu_times() -> CpuTimes {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = after.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // After the command: state(0) ppid(1) ... utime(11) stime(12).
    let process = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    let all = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = all.lines().next().unwrap_or("").split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0)).collect();
    let total: u64 = cpu.iter().take(8).sum();
    let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    CpuTimes { process, machine_busy: total - idle, machine_total: total }
}

impl CpuTimes {
    /// (cores used by this process, cores busy machine-wide) between `self` and `later`.
    pub fn cores_until(&self, later: &CpuTimes, ncpu: usize) -> (f64, f64) {
        let total = (later.machine_total - self.machine_total).max(1) as f64;
        let busy = (later.machine_busy - self.machine_busy) as f64;
        let wall_ticks = total / ncpu as f64;
        ((later.process - self.process) as f64 / wall_ticks, busy / wall_ticks)
    }
}

pub fn ncpu() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One line about the machine and its load right now, printed with the figures.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "rustc ?".into());
    // The CPUs of the machine, not those this process may use (a bench may pin itself).
    let cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count().max(1);
    format!("machine: {cpus} CPUs ({model}), {rustc}, load average {}", load.join(" "))
}

/// CPU time of the calling thread in nanoseconds (/proc/thread-self/schedstat), 0 if unknown.
pub fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

/// Minor page faults of this process so far (/proc/self/stat).
pub fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // After the command: state(0) ppid(1) pgrp(2) session(3) tty(4) tpgid(5) flags(6) minflt(7).
    after.split_whitespace().nth(7).and_then(|x| x.parse().ok()).unwrap_or(0)
}

/// A throw-away test CA and a leaf for 127.0.0.1, made with the openssl CLI in a temp dir
/// (removed on drop), for the https variant of the local server.
pub struct BenchPki {
    dir: PathBuf,
    pub ca: PathBuf,
}

impl BenchPki {
    pub fn new() -> BenchPki {
        let dir = std::env::temp_dir().join(format!("dpopkit-bench-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("the openssl CLI makes the https bench's test certificate");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        run(&[
            &["req", "-x509", "-new"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=dpopkit bench CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat());
        run(&[&["req", "-new"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]].concat());
        std::fs::write(dir.join("ext"), "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n").unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext",
            "-out",
            "server.pem",
        ]);
        BenchPki { ca: dir.join("ca.pem"), dir }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let read = |name: &str| std::fs::read(self.dir.join(name)).unwrap();
        let certs = ureq::tls::parse_pem(&read("server.pem"))
            .filter_map(|i| match i.ok()? {
                ureq::tls::PemItem::Certificate(c) => Some(rustls::pki_types::CertificateDer::from(c.der().to_vec())),
                _ => None,
            })
            .collect();
        let key = ureq::tls::parse_pem(&read("server.key"))
            .find_map(|i| match i.ok()? {
                ureq::tls::PemItem::PrivateKey(k) => Some(rustls::pki_types::PrivateKeyDer::Pkcs8(k.der().to_vec().into())),
                _ => None,
            })
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Arc::new(config)
    }
}

impl Drop for BenchPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The test peers (tests/peers/server.mjs: oidc-provider and a jose-validating resource
/// server, which verifies every proof) on 127.0.0.1; stopped when dropped. Runs `npm ci`
/// in tests/peers first when its packages are missing.
pub struct TestPeers {
    child: std::process::Child,
    pub token_endpoint: String,
    /// The RS's base URL (`http://127.0.0.1:PORT`).
    pub rs: String,
    /// The RS's validated `/api/test`.
    pub api: String,
}

impl TestPeers {
    pub fn start(args: &[&str]) -> TestPeers {
        let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
        if !peers.join("node_modules/oidc-provider").exists() {
            let ok = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&peers)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "npm ci in tests/peers failed (Node 20+ and npm are needed)");
        }
        let mut child = std::process::Command::new("node")
            .arg(peers.join("server.mjs"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node is needed for the test peers");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("the peers print one JSON line");
        let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("no {k} in the peers' line: {line}")).to_string();
        TestPeers { token_endpoint: s("token_endpoint"), rs: s("rs"), api: s("api"), child }
    }

    /// The seed's AuthToken for these peers (client m2m.dpop, scope api).
    pub fn auth_token(&self) -> String {
        serde_json::json!({"client_id":"m2m.dpop","client_secret":"secret","token_endpoint":self.token_endpoint,"scope":"api"}).to_string()
    }
}

impl Drop for TestPeers {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // the peers exit when their stdin closes
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
