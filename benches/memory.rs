//! Memory: resident set size (/proc/self/statm) after 1,000 and after 100,000 DPoP requests
//! on one Http handle (against the local keep-alive server), and after creating,
//! configuring (key, AuthToken; every 100th also makes a request on its own connection)
//! and destroying 1,000 and 100,000 Http handles, and after 1,000 and 100,000 cycles of the
//! seed's objects (a PrivateKey loaded from a file, a JsonObject with the four AuthToken
//! members, an Http object given both; every 100th makes a request; all three destroyed).
//! Exits non-zero when any part grows by more than [`BOUND`] between its two checkpoints,
//! so it can fail.
//!
//!   cargo bench --bench memory             full run
//!   DPOPKIT_BENCH_QUICK=1 / cargo test     a few hundred iterations, same checks
//!   DPOPKIT_BENCH_LEAK=1                   leaks on purpose, to see the check fail

mod common;

use common::{API_BODY, LocalServer, c, mib, quick_mode, rss_bytes};

/// Allowed RSS growth between the first and the last checkpoint of each part.
const BOUND: i64 = 8 * 1024 * 1024;

struct Part {
    name: &'static str,
    first: (usize, u64),
    last: (usize, u64),
    /// RSS at every tenth of the run, to show a trend.
    trend: Vec<(usize, u64)>,
}

impl Part {
    fn growth(&self) -> i64 {
        self.last.1 as i64 - self.first.1 as i64
    }
}

/// Runs `step(i)` `total` times, reading RSS after `checkpoint` and after `total` steps.
fn measure(name: &'static str, checkpoint: usize, total: usize, mut step: impl FnMut(usize)) -> Part {
    let mut first = (0, 0);
    let mut trend = Vec::new();
    for i in 0..total {
        step(i);
        if i + 1 == checkpoint {
            first = (checkpoint, rss_bytes());
        }
        if (i + 1) % (total / 10) == 0 {
            trend.push((i + 1, rss_bytes()));
        }
    }
    Part { name, first, last: (total, rss_bytes()), trend }
}

fn main() {
    let quick = quick_mode();
    let (checkpoint, total) = if quick { (50, 300) } else { (1_000, 100_000) };
    let server = LocalServer::start();
    let auth = server.auth_token();
    let auth_c = c::cs(&auth);
    let key = c::key_from_fixture("ec_pkcs8.pem");
    let url = c::cs(&server.url("/api/items"));
    let handles_at_start = c::dpopkit_live_handles(); // the key
    let rss_start = rss_bytes();

    // DPOPKIT_BENCH_LEAK=1 leaks 64 KiB per request on purpose: the check must then fail.
    let leak = std::env::var("DPOPKIT_BENCH_LEAK").is_ok_and(|v| v == "1");
    let http = c::http(Some(key), Some(&auth));
    let requests = measure("DPoP requests on one handle", checkpoint, total, |_| {
        assert_eq!(c::get(http, &url), API_BODY.len());
        if leak {
            std::hint::black_box(Box::leak(vec![1u8; 64 * 1024].into_boxed_slice()));
        }
    });
    c::dpopkit_destroy(http);

    // Every 100th handle also makes a request: it opens its own connection, which must go
    // away with the handle.
    let handles = measure("Http handles created, configured, destroyed", checkpoint, total, |i| {
        let h = c::dpopkit_http_new();
        assert!(h > 0);
        assert_eq!(c::dpopkit_http_set_dpop_key(h, key), 1);
        assert_eq!(unsafe { c::dpopkit_http_set_auth_token(h, auth_c.as_ptr()) }, 1);
        if i % 100 == 0 {
            let empty = c::cs("");
            assert_eq!(unsafe { c::dpopkit_http_set_proxy(h, empty.as_ptr()) }, 1);
            assert_eq!(c::get(h, &url), API_BODY.len());
        }
        assert_eq!(c::dpopkit_destroy(h), 1);
    });
    // The seed's pattern (what the SQL Server procedure does on every call).
    let key_file = c::cs(common::fixture("ec_pkcs8.pem").to_str().unwrap());
    let members = vec![
        ("client_secret", "bench-secret".to_string()),
        ("client_id", "bench".to_string()),
        ("token_endpoint", server.url("/token")),
        ("scope", "api".to_string()),
    ];
    let seed = measure("seed's objects (key, JsonObject, Http) per call", checkpoint, total, |i| {
        let n = c::seed_objects((i % 100 == 0).then_some(url.as_c_str()), &key_file, &members, None);
        assert_eq!(n, if i % 100 == 0 { API_BODY.len() } else { 0 });
    });
    let handles_at_end = c::dpopkit_live_handles();
    c::dpopkit_destroy(key);

    println!("dpopkit memory (RSS from /proc/self/statm){}", if quick { " -- QUICK MODE (sanity only)" } else { "" });
    println!("{}", common::machine());
    println!("  at start (server, key loaded)             {:8.2} MiB", mib(rss_start as i64));
    let mut failed = false;
    for p in [&requests, &handles, &seed] {
        let g = p.growth();
        let ok = g <= BOUND;
        failed |= !ok;
        println!(
            "  {:<44} after {:>7}: {:8.2} MiB   after {:>7}: {:8.2} MiB   growth {:+.2} MiB  [{}; bound {} MiB]",
            p.name,
            p.first.0,
            mib(p.first.1 as i64),
            p.last.0,
            mib(p.last.1 as i64),
            mib(g),
            if ok { "ok" } else { "FAIL" },
            BOUND / (1024 * 1024)
        );
        let trend: Vec<String> = p.trend.iter().map(|(n, r)| format!("{}k {:.2}", n / 1000, mib(*r as i64))).collect();
        println!("    trend (MiB): {}", trend.join(", "));
    }
    println!(
        "  live handles (the key): {handles_at_start} before, {handles_at_end} after; server saw {} requests, {} token request(s)",
        server.count(&server.requests),
        server.count(&server.token_requests)
    );
    if handles_at_end != handles_at_start {
        eprintln!("FAIL: handles leaked: {handles_at_start} live before, {handles_at_end} after");
        failed = true;
    }
    if server.count(&server.token_requests) != 1 {
        eprintln!("FAIL: the token was fetched {} times (1 expected)", server.count(&server.token_requests));
        failed = true;
    }
    if failed {
        eprintln!("FAIL: memory grew beyond the bound (or handles leaked)");
        std::process::exit(1);
    }
}
