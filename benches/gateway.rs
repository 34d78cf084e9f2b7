//! `dpopkit serve` on loopback: a DPoP GET made with the library directly against the same
//! GET made as a plain request through the gateway (which makes the DPoP request), in
//! interleaved rounds of one run, against two upstreams:
//!   1. the test peers (oidc-provider + the jose resource server, which verifies every
//!      proof, as every DPoP resource server must): the shape of a real deployment;
//!   2. a minimal Rust keep-alive server that verifies nothing: the worst case for the
//!      ratio, whose floor there is 1 + (one plain loopback request) / (the library's GET).
//!
//! Then throughput with 16 concurrent callers, through the gateway and directly (2.).
//!
//!   cargo bench --bench gateway             full run (prints the figures)
//!   DPOPKIT_BENCH_QUICK=1 cargo bench --bench gateway   a handful of requests
//!
//! Figures: per request, median (min-max) over rounds; the ratio is taken per round
//! (gateway block / library block of the same round).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use dpopkit::core::HttpClient;
use dpopkit::core::http::{ProxyChoice, Settings};

use common::{LocalServer, Stats, TestPeers, fixture, quick_mode, stats};

const CALLER_KEY: &str = "bench-caller-key-0123456789abcdef";

fn fmt_us(s: &Stats) -> String {
    format!("{:7.1} µs ({:.1} - {:.1})", s.median, s.min, s.max)
}

fn client() -> HttpClient {
    let c = HttpClient::new();
    c.set_settings(Settings { proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
    c
}

/// The library directly: a DPoP GET (cached token, a fresh proof each).
fn direct(auth_token: &str) -> HttpClient {
    let c = client();
    c.set_dpop_key(Arc::new(dpopkit::core::EcKey::load_file(&fixture("ec_pkcs8.pem"), None).unwrap()));
    c.set_auth_token(auth_token).unwrap();
    c
}

/// A caller of the gateway: a plain GET with the caller credential (keep-alive).
fn caller() -> HttpClient {
    let c = client();
    c.set_request_header("X-DpopKit-Gateway-Key", CALLER_KEY).unwrap();
    c
}

struct Gateway(Child, String);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the gateway and the library both call: the upstream's base URL (the route's
/// target), the DPoP GET's path under it, and the AuthToken's parts.
struct Upstream {
    name: &'static str,
    base: String,
    path: &'static str,
    token_endpoint: String,
    client_id: &'static str,
    secret: &'static str,
}

impl Upstream {
    fn auth_token(&self) -> String {
        serde_json::json!({"client_id": self.client_id, "client_secret": self.secret, "token_endpoint": self.token_endpoint, "scope": "api"})
            .to_string()
    }
}

fn start_gateway(up: &Upstream) -> Gateway {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dpopkit"))
        .args(["serve", "--listen", "127.0.0.1:0", "--plain-http", "--no-access-log", "--caller-secret-env", "BENCH_GW_KEY"])
        .arg("--route")
        .arg(format!("/gw/={}/", up.base))
        .arg("--key")
        .arg(fixture("ec_pkcs8.pem"))
        .args(["--client-id", up.client_id, "--scope", "api", "--token-endpoint", &up.token_endpoint, "--proxy", ""])
        .env("BENCH_GW_KEY", CALLER_KEY)
        .env("DPOPKIT_CLIENT_SECRET", up.secret)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the dpopkit binary");
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let at = line.find("http://").unwrap_or_else(|| panic!("gateway did not start: {line}"));
    let addr = line[at..].split([';', ' ']).next().unwrap().to_string();
    Gateway(child, addr)
}

/// Requests per second of `threads` callers making `total` requests in all.
fn throughput(threads: usize, total: usize, make: impl Fn() -> (HttpClient, String)) -> f64 {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let per = total / threads;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (c, url) = make();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                for _ in 0..per {
                    c.quick_get_str(&url).unwrap();
                }
            })
        })
        .collect();
    barrier.wait();
    let t = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    (per * threads) as f64 / t.elapsed().as_secs_f64()
}

/// utime + stime of a process, in seconds (Linux /proc; None elsewhere).
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The library's DPoP GET and the plain GET through the gateway, alternated request by
/// request in `rounds` blocks of `block` (so both meet the same load); also a plain GET to
/// the upstream (`plain_url`), the floor of the extra hop. Prints the figures; returns the
/// gateway's address (its process keeps running) for the caller's checks.
fn compare(up: &Upstream, plain_url: &str, rounds: usize, block: usize) -> Gateway {
    let gw = start_gateway(up);
    let direct_url = format!("{}{}", up.base, up.path);
    let gw_url = format!("{}/gw{}", gw.1, up.path);
    let lib = direct(&up.auth_token());
    let via = caller();
    let plain = client();
    // Warm up both (token, connections, nonce state), and check they do what they say.
    for _ in 0..20 {
        assert_eq!(lib.quick_get_str(&direct_url).unwrap().1.status, 200);
        let (body, r) = via.quick_get_str(&gw_url).unwrap();
        assert_eq!(r.status, 200, "through the gateway: {body}");
        plain.quick_get_str(plain_url).unwrap();
    }
    let (mut lib_us, mut gw_us, mut plain_us, mut ratio) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
        for i in 0..block {
            let t = Instant::now();
            drop(plain.quick_get_str(plain_url).unwrap());
            c += t.elapsed().as_secs_f64();
            let lib_first = (i + r) % 2 == 0;
            for which in [lib_first, !lib_first] {
                let t = Instant::now();
                if which {
                    drop(lib.quick_get_str(&direct_url).unwrap());
                    a += t.elapsed().as_secs_f64();
                } else {
                    drop(via.quick_get_str(&gw_url).unwrap());
                    b += t.elapsed().as_secs_f64();
                }
            }
        }
        let (a, b) = (a * 1e6 / block as f64, b * 1e6 / block as f64);
        plain_us.push(c * 1e6 / block as f64);
        lib_us.push(a);
        gw_us.push(b);
        ratio.push(b / a);
    }
    println!("-- upstream: {}, {rounds} rounds x {block} requests (one caller)", up.name);
    println!("  library DPoP GET                 {}", fmt_us(&stats(&lib_us)));
    println!("  plain GET through the gateway    {}", fmt_us(&stats(&gw_us)));
    println!("  plain GET, no gateway (one hop)  {}", fmt_us(&stats(&plain_us)));
    let s = stats(&ratio);
    println!("  gateway / library                {:.3}x ({:.3} - {:.3})   goal <= 1.5x", s.median, s.min, s.max);
    let floor = stats(&plain_us).median / stats(&lib_us).median;
    println!("  floor of the ratio: 1 + one plain hop / library GET = {:.3}x", 1.0 + floor);
    // Where the gateway's time goes: its upstream call (the same DPoP GET as the library's,
    // timed inside the gateway) and its CPU time per request (all threads).
    let metrics = via.quick_get_str(&format!("{}/metrics", gw.1)).unwrap().0;
    let metric = |name: &str| -> f64 {
        metrics.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
    };
    let up_sum = metric("dpopkit_gateway_upstream_duration_seconds_sum");
    let up_count = metric("dpopkit_gateway_upstream_duration_seconds_count");
    println!("  of which the gateway's upstream call (mean, all requests so far) {:.1} µs", up_sum / up_count * 1e6);
    if let Some(cpu) = process_cpu_seconds(gw.0.id()) {
        println!("  gateway process CPU per request (all threads, mean)   {:.1} µs", cpu / up_count * 1e6);
    }
    gw
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` / `cargo test --benches`
    }
    let quick = quick_mode();
    let (rounds, block, mt_total) = if quick { (2, 5, 64) } else { (21, 300, 8000) };
    println!("dpopkit serve vs the library, loopback{}", if quick { " -- QUICK MODE (sanity only)" } else { "" });
    println!("{}", common::machine());

    // 1. The test peers: a resource server that verifies the proof, as a real one does.
    {
        let peers = TestPeers::start(&["--ttl", "3600"]);
        let up = Upstream {
            name: "the test peers (oidc-provider AS, jose RS verifying each proof)",
            base: peers.rs.clone(),
            path: "/api/test",
            token_endpoint: peers.token_endpoint.clone(),
            client_id: "m2m.dpop",
            secret: "secret",
        };
        let (r, b) = if quick { (2, 5) } else { (11, 100) };
        drop(compare(&up, &format!("{}/_stats", peers.rs), r, b));
    }

    // 2. The minimal server: the worst case for the ratio.
    let server = LocalServer::start();
    let up = Upstream {
        name: "minimal Rust server (verifies nothing)",
        base: server.url(""),
        path: "/api/items",
        token_endpoint: server.url("/token"),
        client_id: "bench",
        secret: "bench-secret",
    };
    let dpop_before = server.count(&server.dpop_requests);
    let gw = compare(&up, &server.url("/api/items"), rounds, block);
    assert!(server.count(&server.dpop_requests) > dpop_before, "the gateway's requests carried DPoP proofs");
    assert_eq!(server.count(&server.token_requests), 2, "one token for the library, one for the gateway");

    let threads = 16;
    let gw_url = format!("{}/gw/api/items", gw.1);
    let direct_url = server.url("/api/items");
    let gw_rps = throughput(threads, mt_total, || (caller(), gw_url.clone()));
    let auth = up.auth_token();
    let lib_rps = throughput(threads, mt_total, || (direct(&auth), direct_url.clone()));
    println!("throughput, {threads} concurrent callers, {mt_total} requests each way (minimal server)");
    println!("  through the gateway              {gw_rps:8.0} requests/s");
    println!("  the library directly (16 threads) {lib_rps:7.0} requests/s");
    assert_eq!(server.count(&server.token_requests), 2, "still one token each: the gateway shares its token across callers");
    drop(gw);
    std::thread::sleep(Duration::from_millis(10));
}
