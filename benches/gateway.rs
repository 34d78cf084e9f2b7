//! `dpopkit serve` on loopback: a DPoP GET made with the library directly against the same
//! GET made as a plain request through the gateway (which makes the DPoP request), against
//! the same local keep-alive server, in interleaved rounds of one run; then throughput with
//! 16 concurrent callers, through the gateway and directly.
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

use common::{LocalServer, Stats, fixture, quick_mode, stats};

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
fn direct(server: &LocalServer) -> HttpClient {
    let c = client();
    c.set_dpop_key(Arc::new(dpopkit::core::EcKey::load_file(&fixture("ec_pkcs8.pem"), None).unwrap()));
    c.set_auth_token(&server.auth_token()).unwrap();
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

fn start_gateway(server: &LocalServer) -> Gateway {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dpopkit"))
        .args(["serve", "--listen", "127.0.0.1:0", "--plain-http", "--no-access-log", "--caller-secret-env", "BENCH_GW_KEY"])
        .arg("--route")
        .arg(format!("/api/={}", server.url("/")))
        .arg("--key")
        .arg(fixture("ec_pkcs8.pem"))
        .args(["--client-id", "bench", "--scope", "api", "--token-endpoint", &server.url("/token"), "--proxy", ""])
        .env("BENCH_GW_KEY", CALLER_KEY)
        .env("DPOPKIT_CLIENT_SECRET", "bench-secret")
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

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` / `cargo test --benches`
    }
    let quick = quick_mode();
    let (rounds, block, mt_total) = if quick { (2, 5, 64) } else { (21, 300, 8000) };
    let server = LocalServer::start();
    let gw = start_gateway(&server);
    let direct_url = server.url("/api/items");
    let gw_url = format!("{}/api/api/items", gw.1);
    let lib = direct(&server);
    let via = caller();
    // Warm up both (token, connections, nonce state), and check they do what they say.
    for _ in 0..20 {
        lib.quick_get_str(&direct_url).unwrap();
        via.quick_get_str(&gw_url).unwrap();
    }
    let dpop_before = server.count(&server.dpop_requests);
    via.quick_get_str(&gw_url).unwrap();
    assert_eq!(server.count(&server.dpop_requests), dpop_before + 1, "the gateway's request carried a DPoP proof");
    assert_eq!(server.count(&server.token_requests), 2, "one token for the library, one for the gateway");

    let mut lib_us = Vec::new();
    let mut gw_us = Vec::new();
    let mut ratio = Vec::new();
    let mut plain_us = Vec::new();
    let plain = client();
    plain.quick_get_str(&direct_url).unwrap();
    // Each round alternates the two request by request, so both meet the same load.
    for r in 0..rounds {
        let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
        for i in 0..block {
            // The floor of the extra hop: a plain GET to the upstream server itself.
            let t = Instant::now();
            drop(plain.quick_get_str(&direct_url).unwrap());
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
    println!("dpopkit serve vs the library, loopback, {rounds} rounds x {block} requests (one caller)");
    println!("  library DPoP GET                 {}", fmt_us(&stats(&lib_us)));
    println!("  plain GET through the gateway    {}", fmt_us(&stats(&gw_us)));
    println!("  plain GET, no gateway (one hop)  {}", fmt_us(&stats(&plain_us)));
    let s = stats(&ratio);
    println!("  gateway / library                {:.3}x ({:.3} - {:.3})   goal <= 1.5x", s.median, s.min, s.max);
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

    let threads = 16;
    let gw_rps = throughput(threads, mt_total, || (caller(), gw_url.clone()));
    let lib_rps = throughput(threads, mt_total, || (direct(&server), direct_url.clone()));
    println!("throughput, {threads} concurrent callers, {mt_total} requests each way");
    println!("  through the gateway              {gw_rps:8.0} requests/s");
    println!("  the library directly (16 threads) {lib_rps:7.0} requests/s");
    assert_eq!(server.count(&server.token_requests), 2, "still one token each: the gateway shares its token across callers");
    drop(gw);
    std::thread::sleep(Duration::from_millis(10));
}
