//! End to end on loopback, through the C ABI: plain GETs (an Http handle with no AuthToken)
//! against GETs with DPoP (cached token, a fresh proof each), on the same HTTP stack and
//! the same local keep-alive server, in interleaved rounds of the same run.
//!
//!   cargo bench --bench e2e                 full run (prints the figures)
//!   cargo bench --bench e2e -- --per-call   only the per-call pattern vs a reused handle
//!   cargo bench --bench e2e -- --real       also against the real test peers
//!                                           (node tests/peers/server.mjs)
//!   DPOPKIT_BENCH_QUICK=1 / cargo test      a handful of requests and sanity checks
//!
//! Figures: per request, median (min-max) over rounds; ratios are taken per round
//! (DPoP block / plain block of the same round) and summarised the same way.

mod common;

use std::ffi::{CStr, CString};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use dpopkit::core::EcKey;
use dpopkit::core::HttpClient;
use dpopkit::core::http::{ProxyChoice, Request, Role, Settings, Transport};
use dpopkit::core::proof::{Target, make_proof};

use common::{API_BODY, LocalServer, Stats, c, cpu_times, fixture, ncpu, quick_mode, stats};

struct Plan {
    /// Single-thread rounds; each runs one block of every variant.
    rounds: usize,
    /// Requests per block.
    block: usize,
    /// Rounds per thread count in the throughput part.
    mt_rounds: usize,
    /// Requests per block in the throughput part (split among the threads).
    mt_block: usize,
    /// Requests per block against `/slow`.
    slow_block: usize,
}

fn fmt_us(s: &Stats) -> String {
    format!("{:7.1} µs ({:.1} - {:.1})", s.median, s.min, s.max)
}

fn fmt_x(s: &Stats) -> String {
    format!("{:.3}x ({:.3} - {:.3})", s.median, s.min, s.max)
}

/// Microseconds per request of `n` calls of `f`.
fn per_request(n: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn core_client(key: Option<Arc<EcKey>>, auth: Option<&str>) -> HttpClient {
    let client = HttpClient::new();
    client.set_settings(Settings { proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
    if let Some(k) = key {
        client.set_dpop_key(k);
    }
    if let Some(a) = auth {
        client.set_auth_token(a).unwrap();
    }
    client
}

/// The variants of the single-thread part. Variants 4-6 go straight to the core's Transport
/// (no Http object): bare; with the very headers a DPoP request carries (a proof made once,
/// reused); and with a proof made for each request: they separate wire size, proof and
/// the client's own work. The last uses a generated Ed25519 key instead of the ES256 one.
const VARIANTS: [&str; 8] = [
    "C ABI plain GET",
    "C ABI DPoP GET",
    "core  plain GET",
    "core  DPoP GET",
    "transport GET, no headers",
    "transport GET, DPoP-sized headers",
    "transport GET + fresh make_proof",
    "C ABI DPoP GET, EdDSA key",
];

struct Clients<'a> {
    plain: i64,
    dpop: i64,
    /// DPoP with a generated Ed25519 key (its own token).
    dpop_ed: i64,
    url: &'a CStr,
    core_plain: &'a HttpClient,
    core_dpop: &'a HttpClient,
    transport: &'a Transport,
    target: &'a Target,
    /// Authorization and DPoP headers as a DPoP request sends them (proof made once).
    dpop_headers: Vec<(String, String)>,
    key: &'a EcKey,
    /// Time spent in make_proof by variant 6, in µs (proof cost in situ, caches as cold
    /// as a real request leaves them).
    proof_us: std::cell::Cell<f64>,
}

impl Clients<'_> {
    fn run(&self, variant: usize) {
        let url_s = self.url.to_str().unwrap();
        match variant {
            0 => drop(c::get(self.plain, self.url)),
            1 => drop(c::get(self.dpop, self.url)),
            2 => drop(self.core_plain.quick_get_str(url_s).unwrap()),
            3 => drop(self.core_dpop.quick_get_str(url_s).unwrap()),
            4..=6 => {
                let headers = match variant {
                    4 => Vec::new(),
                    5 => self.dpop_headers.clone(),
                    _ => {
                        let t = Instant::now();
                        let proof = make_proof(self.key, "GET", &self.target.htu, Some("x"), None, None).unwrap();
                        self.proof_us.set(self.proof_us.get() + t.elapsed().as_secs_f64() * 1e6);
                        vec![("Authorization".into(), "DPoP x".into()), ("DPoP".into(), proof)]
                    }
                };
                let r = self.transport.send(
                    Request { method: "GET", target: self.target, headers, authorization: None, body: None, role: Role::Resource },
                    None,
                    &[],
                );
                assert_eq!(r.unwrap().status, 200);
            }
            7 => drop(c::get(self.dpop_ed, self.url)),
            _ => unreachable!(),
        }
    }
}

/// Single thread: every variant once per round, rotating which goes first.
fn single_thread(plan: &Plan, cl: &Clients<'_>) {
    let n = VARIANTS.len();
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); n];
    // CPU time of this (client) thread per request: what the library costs, apart from
    // the time spent waiting for the server (and for the scheduler to wake either side).
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut cpu_ratio = Vec::new();
    let (mut ratio, mut core_ratio, mut ffi, mut wire) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut ed_ratio = Vec::new();
    let mut proof = Vec::new();
    for round in 0..plan.rounds {
        let mut this = vec![0.0; n];
        let mut this_cpu = vec![0.0; n];
        for i in 0..n {
            let v = (round + i) % n;
            cl.proof_us.set(0.0);
            let cpu0 = common::thread_cpu_ns();
            this[v] = per_request(plan.block, || cl.run(v));
            this_cpu[v] = (common::thread_cpu_ns() - cpu0) as f64 / 1e3 / plan.block as f64;
            if v == 6 {
                proof.push(cl.proof_us.get() / plan.block as f64);
            }
        }
        for v in 0..n {
            t[v].push(this[v]);
            cpu[v].push(this_cpu[v]);
        }
        cpu_ratio.push(this_cpu[1] / this_cpu[0]);
        ratio.push(this[1] / this[0]);
        ed_ratio.push(this[7] / this[0]);
        core_ratio.push(this[3] / this[2]);
        ffi.push(this[0] - this[2]);
        wire.push(this[5] - this[4]);
    }
    println!(
        "-- one thread, {} rounds x {} requests per variant (per request: median (min-max); wall clock | client thread CPU)",
        plan.rounds, plan.block
    );
    for ((name, times), cpu) in VARIANTS.iter().zip(&t).zip(&cpu) {
        println!("  {name:<36} {} | {}", fmt_us(&stats(times)), fmt_us(&stats(cpu)));
    }
    println!("  DPoP / plain (C ABI)                 {}   goal <= 1.4x", fmt_x(&stats(&ratio)));
    println!("  DPoP / plain (C ABI), client CPU     {}", fmt_x(&stats(&cpu_ratio)));
    println!("  DPoP / plain (core)                  {}", fmt_x(&stats(&core_ratio)));
    println!("  DPoP with EdDSA / plain (C ABI)      {}", fmt_x(&stats(&ed_ratio)));
    let d = stats(&ffi);
    println!("  FFI overhead (C ABI plain - core plain, per round) {:.2} µs ({:.2} - {:.2})", d.median, d.min, d.max);
    let w = stats(&wire);
    println!("  cost of the DPoP headers on the wire (transport, per round) {:.2} µs ({:.2} - {:.2})", w.median, w.min, w.max);
    println!("  make_proof in situ (inside variant 7, per request)          {}", fmt_us(&stats(&proof)));
}

/// A 1 MiB body, C ABI against core, interleaved: what the boundary's string handling costs
/// on a large response (wall clock and client thread CPU per request).
fn big_body(plan: &Plan, plain: i64, core_plain: &HttpClient, big: &CStr) {
    let big_s = big.to_str().unwrap();
    let block = (plan.block / 40).max(2);
    let (mut capi, mut core, mut capi_cpu, mut core_cpu, mut diff) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut capi_pf, mut core_pf) = (vec![], vec![]);
    for round in 0..plan.rounds {
        let one = |capi_side: bool| {
            let pf0 = common::minor_faults();
            let cpu0 = common::thread_cpu_ns();
            let wall = per_request(block, || {
                if capi_side {
                    assert_eq!(c::get(plain, big), common::BIG_SIZE);
                } else {
                    assert_eq!(core_plain.quick_get_str(big_s).unwrap().0.len(), common::BIG_SIZE);
                }
            });
            let cpu = (common::thread_cpu_ns() - cpu0) as f64 / 1e3 / block as f64;
            (wall, cpu, (common::minor_faults() - pf0) as f64 / block as f64)
        };
        let (a, b) = if round % 2 == 0 {
            let a = one(true);
            (a, one(false))
        } else {
            let b = one(false);
            (one(true), b)
        };
        capi.push(a.0);
        core.push(b.0);
        capi_cpu.push(a.1);
        core_cpu.push(b.1);
        diff.push(a.1 - b.1);
        capi_pf.push(a.2);
        core_pf.push(b.2);
    }
    println!("-- 1 MiB body, {} rounds x {block} requests (wall clock | client thread CPU)", plan.rounds);
    println!("  C ABI plain GET /big                 {} | {}", fmt_us(&stats(&capi)), fmt_us(&stats(&capi_cpu)));
    println!("  core  plain GET /big                 {} | {}", fmt_us(&stats(&core)), fmt_us(&stats(&core_cpu)));
    let d = stats(&diff);
    println!("  C ABI - core, client CPU per round   {:.1} µs ({:.1} - {:.1})", d.median, d.min, d.max);
    let (a, b) = (stats(&capi_pf), stats(&core_pf));
    println!(
        "  minor page faults per request (process): C ABI {:.0} ({:.0} - {:.0}), core {:.0} ({:.0} - {:.0})",
        a.median, a.min, a.max, b.median, b.min, b.max
    );
}

/// One throughput block: requests per second, and the CPU used meanwhile (cores).
struct Block {
    rps: f64,
    process_cores: f64,
    machine_cores: f64,
}

/// `threads` threads share one handle and make `total` requests between them.
fn throughput(threads: usize, total: usize, handle: i64, url: &CString) -> Block {
    let per_thread = total / threads;
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..per_thread {
                    c::get(handle, url);
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let (t, cpu) = (Instant::now(), cpu_times());
        barrier.wait();
        let rps = (per_thread * threads) as f64 / t.elapsed().as_secs_f64();
        let (process_cores, machine_cores) = cpu.cores_until(&cpu_times(), ncpu());
        Block { rps, process_cores, machine_cores }
    })
}

fn multi_thread(plan: &Plan, plain: i64, dpop: i64, url: &CString) {
    println!(
        "-- threads sharing one handle, {} rounds x {} requests per variant (req/s: median (min-max)); \
         CPU: cores used by this process (client + server) / busy machine-wide, of {}",
        plan.mt_rounds,
        plan.mt_block,
        ncpu()
    );
    let mut base = None;
    for threads in [1, 2, 4] {
        let (mut p, mut d, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        let (mut pc, mut mc) = (Vec::new(), Vec::new());
        for round in 0..plan.mt_rounds {
            let (a, b) = if round % 2 == 0 {
                let a = throughput(threads, plan.mt_block, plain, url);
                (a, throughput(threads, plan.mt_block, dpop, url))
            } else {
                let b = throughput(threads, plan.mt_block, dpop, url);
                (throughput(threads, plan.mt_block, plain, url), b)
            };
            ratio.push(a.rps / b.rps); // time per request, DPoP / plain
            for x in [&a, &b] {
                pc.push(x.process_cores);
                mc.push(x.machine_cores);
            }
            p.push(a.rps);
            d.push(b.rps);
        }
        let (ps, ds) = (stats(&p), stats(&d));
        let (b1p, b1d) = *base.get_or_insert((ps.median, ds.median));
        println!(
            "  {threads} thread(s): plain {:6.0} req/s ({:.0} - {:.0})  DPoP {:6.0} req/s ({:.0} - {:.0})  DPoP/plain time {}",
            ps.median,
            ps.min,
            ps.max,
            ds.median,
            ds.min,
            ds.max,
            fmt_x(&stats(&ratio)),
        );
        println!(
            "               scaling vs 1 thread: plain {:.2}x, DPoP {:.2}x; CPU {:.2} cores by this process, {:.2} busy machine-wide",
            ps.median / b1p,
            ds.median / b1d,
            stats(&pc).median,
            stats(&mc).median
        );
    }
}

/// Threads sharing one handle against `/slow` (the server waits 2 ms): with no lock held
/// across I/O, T threads make ~T times the requests of one, whatever the CPU load.
fn overlap(plan: &Plan, plain: i64, dpop: i64, slow: &CString) {
    println!("-- I/O overlap: threads sharing one handle, server waits {} ms per request", common::SLOW.as_millis());
    let mut base = None;
    for threads in [1, 2, 4] {
        let (mut p, mut d) = (Vec::new(), Vec::new());
        for _ in 0..plan.mt_rounds.min(3) {
            p.push(throughput(threads, plan.slow_block, plain, slow).rps);
            d.push(throughput(threads, plan.slow_block, dpop, slow).rps);
        }
        let (ps, ds) = (stats(&p), stats(&d));
        let (b1p, b1d) = *base.get_or_insert((ps.median, ds.median));
        println!(
            "  {threads} thread(s): plain {:5.0} req/s, DPoP {:5.0} req/s; scaling vs 1 thread: plain {:.2}x, DPoP {:.2}x (ideal {threads}x)",
            ps.median,
            ds.median,
            ps.median / b1p,
            ds.median / b1d
        );
    }
}

/// Per call (the seed's pattern) against one reused Http handle, for http and https on
/// loopback, interleaved in the same run. Goal: per-call <= 1.3x reused.
fn per_call(plan: &Plan) {
    let pki = common::BenchPki::new();
    let key_file = c::cs(fixture("ec_pkcs8.pem").to_str().unwrap());
    let ca = c::cs(pki.ca.to_str().unwrap());
    let block = (plan.block / 4).max(2);
    println!(
        "-- per call (new key from file + JsonObject + Http per GET, the seed's pattern) vs one reused handle, {} rounds x {block}",
        plan.rounds
    );
    for tls in [false, true] {
        let server = if tls { LocalServer::start_tls(&pki) } else { LocalServer::start() };
        let url = c::cs(&server.url("/api/items"));
        let auth = vec![
            ("client_secret", "bench-secret".to_string()),
            ("client_id", "bench".to_string()),
            ("token_endpoint", server.url("/token")),
            ("scope", "api".to_string()),
        ];
        let ca_file = tls.then_some(ca.as_c_str());
        let key = c::key_from_fixture("ec_pkcs8.pem");
        let json: serde_json::Map<String, serde_json::Value> =
            auth.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone()))).collect();
        let reused = c::http(Some(key), Some(&serde_json::Value::Object(json).to_string()));
        if let Some(ca) = ca_file {
            assert_eq!(unsafe { c::dpopkit_http_set_ca_file(reused, ca.as_ptr()) }, 1, "{}", c::last_error(reused));
        }
        for _ in 0..if quick_mode() { 2 } else { 200 } {
            assert_eq!(c::get(reused, &url), API_BODY.len());
            assert_eq!(c::per_call_get(&url, &key_file, &auth, ca_file), API_BODY.len());
        }
        let (mut r, mut p, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..plan.rounds {
            let reused_run = || per_request(block, || assert_eq!(c::get(reused, &url), API_BODY.len()));
            let per_call_run = || per_request(block, || assert_eq!(c::per_call_get(&url, &key_file, &auth, ca_file), API_BODY.len()));
            let (a, b) = if round % 2 == 0 {
                let a = reused_run();
                (a, per_call_run())
            } else {
                let b = per_call_run();
                (reused_run(), b)
            };
            r.push(a);
            p.push(b);
            ratio.push(b / a);
        }
        let scheme = if tls { "https" } else { "http " };
        println!("  {scheme} reused handle                  {}", fmt_us(&stats(&r)));
        println!("  {scheme} per call                       {}", fmt_us(&stats(&p)));
        println!("  {scheme} per call / reused              {}   goal <= 1.3x", fmt_x(&stats(&ratio)));
        assert_eq!(server.count(&server.token_requests), 1, "one token for the reused handle and every per-call object");
        c::dpopkit_destroy(reused);
        c::dpopkit_destroy(key);
    }
}

/// `--real`: the test peers (oidc-provider + a jose-validating RS). Plain GETs go to the
/// RS's unauthenticated `/_stats`, DPoP GETs to its validated `/api/test`.
fn real(plan: &Plan, key: i64) {
    let peers = common::TestPeers::start(&["--ttl", "3600"]);
    let (api, rs) = (peers.api.as_str(), peers.rs.as_str());
    let auth = peers.auth_token();
    let plain = c::http(None, None);
    let dpop = c::http(Some(key), Some(&auth));
    let (stats_url, api_url) = (c::cs(&format!("{rs}/_stats")), c::cs(api));
    for _ in 0..10 {
        c::get(plain, &stats_url);
        c::get(dpop, &api_url);
    }
    let rounds = plan.rounds.min(11);
    let block = (plan.block / 10).max(2);
    let (mut p, mut d, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let run = |h: i64, u: &CString| {
            per_request(block, || {
                c::get(h, u);
            })
        };
        let (a, b) = if round % 2 == 0 {
            let a = run(plain, &stats_url);
            (a, run(dpop, &api_url))
        } else {
            let b = run(dpop, &api_url);
            (run(plain, &stats_url), b)
        };
        p.push(a);
        d.push(b);
        ratio.push(b / a);
    }
    println!("-- real peers (node: oidc-provider + jose RS, which verifies every proof), {rounds} rounds x {block}");
    println!("  plain GET /_stats        {}", fmt_us(&stats(&p)));
    println!("  DPoP GET /api/test       {}", fmt_us(&stats(&d)));
    println!("  DPoP / plain             {}  (includes the RS's JWT verification)", fmt_x(&stats(&ratio)));
    c::dpopkit_destroy(plain);
    c::dpopkit_destroy(dpop);
}

fn main() {
    let quick = quick_mode();
    let want_real = std::env::args().any(|a| a == "--real");
    let plan = if quick {
        Plan { rounds: 2, block: 5, mt_rounds: 1, mt_block: 8, slow_block: 8 }
    } else {
        Plan { rounds: 21, block: 2000, mt_rounds: 9, mt_block: 8000, slow_block: 400 }
    };
    if std::env::args().any(|a| a == "--per-call") {
        per_call(&plan); // only this part (the figures of issue 11)
        return;
    }
    let server = LocalServer::start();
    let auth = server.auth_token();
    let key = c::key_from_fixture("ec_pkcs8.pem");
    let plain = c::http(None, None);
    let dpop = c::http(Some(key), Some(&auth));
    let url = c::cs(&server.url("/api/items"));

    // Sanity: the right body, one token fetch, every DPoP request carries a proof.
    assert_eq!(c::get(plain, &url), API_BODY.len());
    assert_eq!(c::get(dpop, &url), API_BODY.len());
    assert_eq!(server.count(&server.token_requests), 1, "one token fetch");
    assert_eq!(server.count(&server.dpop_requests), 2, "token request + one API request carry DPoP");

    let eckey = Arc::new(EcKey::load_file(&fixture("ec_pkcs8.pem"), None).unwrap());
    let core_plain = core_client(None, None);
    let core_dpop = core_client(Some(eckey.clone()), Some(&auth));
    let transport = Transport::new(Settings { proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
    let target = Target::parse(url.to_str().unwrap()).unwrap();
    let proof = make_proof(&eckey, "GET", &target.htu, Some("x"), None, None).unwrap();
    let ed_key = c::dpopkit_key_new();
    assert_eq!(unsafe { c::dpopkit_key_generate_alg(ed_key, c::cs("EdDSA").as_ptr()) }, 1);
    let dpop_ed = c::http(Some(ed_key), Some(&auth));
    assert_eq!(c::get(dpop_ed, &url), API_BODY.len());
    let clients = Clients {
        plain,
        dpop,
        dpop_ed,
        url: &url,
        core_plain: &core_plain,
        core_dpop: &core_dpop,
        transport: &transport,
        target: &target,
        dpop_headers: vec![("Authorization".into(), "DPoP x".into()), ("DPoP".into(), proof)],
        key: &eckey,
        proof_us: std::cell::Cell::new(0.0),
    };
    // Warm-up (connections, caches, CPU frequency).
    let warm = if quick { 2 } else { 500 };
    for _ in 0..warm {
        for v in 0..VARIANTS.len() {
            clients.run(v);
        }
    }

    println!(
        "dpopkit e2e on loopback (local keep-alive server, 127.0.0.1:{}){}",
        server.port,
        if quick { " -- QUICK MODE (sanity only, figures meaningless)" } else { "" }
    );
    println!("{}", common::machine());
    let dpop_before = server.count(&server.dpop_requests);
    let all_before = server.count(&server.requests);
    single_thread(&plan, &clients);
    big_body(&plan, plain, &core_plain, &c::cs(&server.url("/big")));
    multi_thread(&plan, plain, dpop, &url);
    overlap(&plan, plain, dpop, &c::cs(&server.url("/slow")));
    per_call(&plan);
    let sent = server.count(&server.requests) - all_before;
    let with_dpop = server.count(&server.dpop_requests) - dpop_before;
    assert!(sent > 0 && with_dpop > 0 && with_dpop < sent, "both kinds of requests reached the server");
    assert_eq!(server.count(&server.token_requests), 2, "the tokens stayed cached: no refetch during the run");
    println!("  server saw {sent} requests ({with_dpop} with DPoP), 2 token requests (ES256 and EdDSA keys)");

    if want_real {
        real(&plan, key);
    }
    c::dpopkit_destroy(plain);
    c::dpopkit_destroy(dpop);
    c::dpopkit_destroy(dpop_ed);
    c::dpopkit_destroy(ed_key);
    c::dpopkit_destroy(key);
}
