//! The client's own CPU per request (issue 24): the calling thread's CPU time
//! (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`, not wall time, which on a VM depends on core
//! wake-ups and on the server) for a DPoP GET and a GET without auth on one reused Http
//! handle (the seed's AuthToken, token cached), through the C ABI against the local
//! keep-alive server; one raw ES256 signature with ring; and what DPoP adds, in signatures:
//! `(dpop - plain) / signature`. The same with the session log on, and for the seed's
//! per-call pattern (a new key from a file, JsonObject and Http object per GET). The
//! variants take turns block by block (a handle is used many times in a row, as a program
//! does), each call timed on its own, so that a preemption or a core wake-up spoils one
//! sample, not the block: per round the median call of each variant, and the ratios of
//! those medians.
//! Then the thread scaling: 4 threads sharing one DPoP handle against `/slow` (the server
//! waits 2 ms) against one thread.
//!
//! The per-request part runs with the client and the server on one CPU (the process is
//! pinned to the CPU it starts on, before any thread is made; `--unpinned` does not): on
//! this VM a request that wakes a thread on the other vCPU sends an inter-processor
//! interrupt, which exits to the hypervisor, and the hypervisor's time for it (a few µs,
//! or hundreds when the host is busy) is charged to the sending thread's CPU time. That
//! time is the same for a DPoP request and a plain one but swamps their difference. On
//! one CPU the wake-up is a local one and the client's CPU time is its own work. The
//! thread scaling runs unpinned, against a second server started after the pin is lifted.
//!
//!   nice cargo bench --bench cpu                 full run (figures in BENCHMARKS.md)
//!   nice cargo bench --bench cpu -- --unpinned   the same without the pin
//!   DPOPKIT_BENCH_QUICK=1 / cargo test           a few requests per variant, same checks
//!   cargo bench --bench cpu -- --only dpop 2000  only N requests of one variant (dpop,
//!                                                plain, dpop-log, per-call), for callgrind
//!
//! Exits non-zero when a request fails or the token was fetched more than once per key;
//! the goals (<= 1.3 signatures, >= 3.6x with 4 threads) are printed, not enforced (the
//! figures move with the machine's load).

mod common;

use std::ffi::{CStr, CString};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use dpopkit::core::EcKey;
use dpopkit::core::proof::make_proof;
use p256::pkcs8::DecodePrivateKey;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

use common::{API_BODY, LocalServer, Stats, c, fixture, quick_mode, stats};

/// Pins the calling thread (and every thread it makes from now on) to the CPU it runs on;
/// returns the mask it had, to lift the pin with [`set_affinity`].
fn pin_to_this_cpu() -> libc::cpu_set_t {
    // SAFETY: zeroed cpu_set_t is a valid empty set; the calls get valid pointers and sizes.
    unsafe {
        let mut before: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut before), 0, "sched_getaffinity");
        let cpu = libc::sched_getcpu();
        assert!(cpu >= 0, "sched_getcpu");
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut one);
        set_affinity(&one);
        before
    }
}

fn set_affinity(mask: &libc::cpu_set_t) {
    // SAFETY: a valid mask of the right size, for the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), mask) };
    assert_eq!(rc, 0, "sched_setaffinity");
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out pointer; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Thread CPU µs per call of `f`, over `n` calls.
fn cpu_per_call(n: usize, mut f: impl FnMut()) -> f64 {
    let t0 = thread_cpu_ns();
    for _ in 0..n {
        f();
    }
    (thread_cpu_ns() - t0) as f64 / 1000.0 / n as f64
}

/// The fixture key as ring's key pair, and a message as long as a proof's signing input.
fn ring_key() -> (EcdsaKeyPair, Vec<u8>) {
    let pem = std::fs::read_to_string(fixture("ec_pkcs8.pem")).unwrap();
    let secret = p256::SecretKey::from_pkcs8_pem(&pem).unwrap();
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    let pair = EcdsaKeyPair::from_private_key_and_public_key(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &secret.to_bytes(),
        point.as_bytes(),
        &SystemRandom::new(),
    )
    .unwrap();
    let eckey = EcKey::from_any_format(pem.as_bytes(), None).unwrap();
    let token = "x".repeat(64);
    let proof = make_proof(&eckey, "GET", "http://127.0.0.1:65000/api/items", Some(&token), None, None).unwrap();
    (pair, vec![b'a'; proof.rsplit_once('.').unwrap().0.len()])
}

struct Setup {
    url: CString,
    big: CString,
    plain: i64,
    dpop: i64,
    plain_log: i64,
    dpop_log: i64,
    key_file: CString,
    auth: Vec<(&'static str, String)>,
    ring: EcdsaKeyPair,
    message: Vec<u8>,
    rng: SystemRandom,
}

const VARIANTS: [&str; 7] = ["sign", "sign-after-get", "plain", "dpop", "plain-log", "dpop-log", "per-call"];

impl Setup {
    /// The thread CPU (ns) of one call of `variant`; "sign-after-get" makes a plain GET
    /// first, untimed, and times the signature alone (with the caches as a request leaves
    /// them, as for the signature inside a DPoP request).
    fn timed(&self, variant: &str) -> u64 {
        if variant == "sign-after-get" {
            self.run("plain");
            let t0 = thread_cpu_ns();
            self.run("sign");
            return thread_cpu_ns() - t0;
        }
        let t0 = thread_cpu_ns();
        self.run(variant);
        thread_cpu_ns() - t0
    }

    fn run(&self, variant: &str) {
        match variant {
            "sign" | "sign-after-get" => {
                std::hint::black_box(self.ring.sign(&self.rng, std::hint::black_box(&self.message)).unwrap());
            }
            "plain" => assert_eq!(c::get(self.plain, &self.url), API_BODY.len()),
            "dpop" => assert_eq!(c::get(self.dpop, &self.url), API_BODY.len()),
            "plain-log" => assert_eq!(c::get(self.plain_log, &self.url), API_BODY.len()),
            "dpop-log" => assert_eq!(c::get(self.dpop_log, &self.url), API_BODY.len()),
            "per-call" => assert_eq!(c::per_call_get(&self.url, &self.key_file, &self.auth, None), API_BODY.len()),
            // A 1 MiB response (masked for every form of every secret of the call).
            "plain-big" => assert_eq!(c::get(self.plain, &self.big), common::BIG_SIZE),
            "dpop-big" => assert_eq!(c::get(self.dpop, &self.big), common::BIG_SIZE),
            other => panic!("unknown variant {other} (one of {VARIANTS:?})"),
        }
    }
}

/// The `q` quantile of `xs` (nearest rank).
fn percentile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn fmt(s: &Stats, unit: &str) -> String {
    format!("{:8.2}{unit} ({:.2} - {:.2})", s.median, s.min, s.max)
}

/// Requests per second of `threads` threads sharing `handle`, `total` GETs of `url` in all.
fn throughput(handle: i64, url: &CStr, threads: usize, total: usize) -> f64 {
    let per = total / threads;
    let barrier = Arc::new(Barrier::new(threads + 1));
    let url = Arc::new(url.to_owned());
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (barrier, url) = (barrier.clone(), url.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..per {
                    assert_eq!(c::get(handle, &url), API_BODY.len());
                }
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    for w in workers {
        w.join().expect("a worker thread failed");
    }
    (per * threads) as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let quick = quick_mode();
    let args: Vec<String> = std::env::args().collect();
    let (rounds, block, warm, slow_total, slow_rounds) = if quick { (2, 3, 2, 8, 1) } else { (151, 30, 300, 400, 7) };
    let pinned = !args.iter().any(|a| a == "--unpinned");
    let unpinned_mask = pinned.then(pin_to_this_cpu); // before the server's threads are made
    let server = LocalServer::start();
    let auth_json = server.auth_token();
    let key = c::key_from_fixture("ec_pkcs8.pem");
    let log_dir = std::env::temp_dir().join(format!("dpopkit-bench-cpu-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir).unwrap();
    let with_log = |h: i64, name: &str| {
        let p = c::cs(log_dir.join(name).to_str().unwrap());
        assert_eq!(unsafe { c::dpopkit_http_set_session_log_filename(h, p.as_ptr()) }, 1, "{}", c::last_error(h));
        h
    };
    let (ring, message) = ring_key();
    let s = Setup {
        url: c::cs(&server.url("/api/items")),
        big: c::cs(&server.url("/big")),
        plain: c::http(None, None),
        dpop: c::http(Some(key), Some(&auth_json)),
        plain_log: with_log(c::http(None, None), "plain.log"),
        dpop_log: with_log(c::http(Some(key), Some(&auth_json)), "dpop.log"),
        key_file: c::cs(fixture("ec_pkcs8.pem").to_str().unwrap()),
        auth: vec![
            ("client_secret", "bench-secret".to_string()),
            ("client_id", "bench".to_string()),
            ("token_endpoint", server.url("/token")),
            ("scope", "api".to_string()),
        ],
        ring,
        message,
        rng: SystemRandom::new(),
    };
    if let Some(i) = args.iter().position(|a| a == "--only") {
        // One variant alone (for a profiler: nothing else in the profile but a short warm-up).
        let variant = args.get(i + 1).map(String::as_str).unwrap_or("dpop");
        let n: usize = args.get(i + 2).and_then(|n| n.parse().ok()).unwrap_or(1000);
        for _ in 0..20 {
            s.run(variant);
        }
        let us = cpu_per_call(n, || s.run(variant));
        println!("{variant}: {n} calls, {us:.2} µs thread CPU each");
        let _ = std::fs::remove_dir_all(&log_dir);
        return;
    }

    // Warm-up: connections, the token (fetched once: every handle has the same AuthToken
    // and key), the caches, the CPU's frequency.
    for _ in 0..warm {
        for v in VARIANTS {
            s.run(v);
        }
    }
    assert_eq!(server.count(&server.token_requests), 1, "one token for every handle");

    println!(
        "dpopkit client CPU per request (thread CPU time, CLOCK_THREAD_CPUTIME_ID), C ABI, loopback keep-alive server{}",
        if quick { " -- QUICK MODE (sanity only, figures meaningless)" } else { "" }
    );
    println!("{}", common::machine());
    println!(
        "-- {}",
        if pinned {
            "client and server threads pinned to one CPU (no wake-up across vCPUs: see the top of benches/cpu.rs; --unpinned)"
        } else {
            "unpinned: the client's CPU time includes what the hypervisor charges for waking the server on another vCPU"
        }
    );
    println!(
        "-- {rounds} rounds; each runs every variant {block} times in a row (variants in a rotated order), each call timed on \
         its own; per round the median call of each variant; figures: the median over rounds (min - max)"
    );
    let mut us: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut samples = Vec::with_capacity(block);
    for round in 0..rounds {
        for k in 0..VARIANTS.len() {
            let v = (round + k) % VARIANTS.len();
            samples.clear();
            for _ in 0..block {
                samples.push(s.timed(VARIANTS[v]) as f64 / 1000.0);
            }
            us[v].push(stats(&samples).median);
        }
    }
    let at = |name: &str| &us[VARIANTS.iter().position(|v| *v == name).unwrap()];
    let per_round = |f: &dyn Fn(usize) -> f64| stats(&(0..rounds).map(f).collect::<Vec<_>>());
    let labels = [
        ("sign", "one raw ES256 signature (ring)"),
        ("sign-after-get", "the same, right after a plain GET"),
        ("plain", "GET, no auth, reused handle"),
        ("dpop", "GET, DPoP, reused handle"),
        ("plain-log", "GET, no auth, session log on"),
        ("dpop-log", "GET, DPoP, session log on"),
        ("per-call", "GET, DPoP, seed's per-call objects"),
    ];
    for (v, label) in labels {
        println!("  {label:<40} {} thread CPU per call", fmt(&stats(at(v)), " µs"));
    }
    let sig = at("sign");
    let over = |a: &str, b: &str| per_round(&|r| (at(a)[r] - at(b)[r]) / sig[r]);
    let minus = |a: &str, b: &str| per_round(&|r| at(a)[r] - at(b)[r]);
    println!("  DPoP - plain                             {}", fmt(&minus("dpop", "plain"), " µs"));
    println!("  DPoP - plain, in signatures              {}   goal <= 1.3", fmt(&over("dpop", "plain"), ""));
    let cold = at("sign-after-get");
    println!("  DPoP - plain, in signatures after a GET  {}", fmt(&per_round(&|r| (at("dpop")[r] - at("plain")[r]) / cold[r]), ""));
    println!("  DPoP - plain, session log on, signatures {}", fmt(&over("dpop-log", "plain-log"), ""));
    println!("  per-call DPoP - plain, in signatures     {}", fmt(&over("per-call", "plain"), ""));
    println!("  session log on - off, DPoP               {}", fmt(&minus("dpop-log", "dpop"), " µs"));
    // When the host is busy, whole runs of rounds are slowed (the VM's neighbours pollute
    // the caches; the median round is then a slowed one). The quietest rounds say what the
    // code costs: each variant's 10th percentile over rounds, and the overhead from those.
    let p10 = |name: &str| percentile(at(name), 0.10);
    println!(
        "  quiet rounds (10th percentile of each): signature {:.2} µs, plain {:.2} µs, DPoP {:.2} µs: DPoP - plain {:.2} signatures",
        p10("sign"),
        p10("plain"),
        p10("dpop"),
        (p10("dpop") - p10("plain")) / p10("sign")
    );

    // A 1 MiB response: masked for every form of every secret the call knows (its own and
    // those of earlier calls), which is where the masking's automaton is made and used.
    let (big_rounds, big_block) = if quick { (1, 1) } else { (7, 5) };
    let (mut pb, mut db) = (Vec::new(), Vec::new());
    for round in 0..big_rounds {
        for v in if round % 2 == 0 { ["plain-big", "dpop-big"] } else { ["dpop-big", "plain-big"] } {
            let x: Vec<f64> = (0..big_block).map(|_| s.timed(v) as f64 / 1000.0).collect();
            if v == "plain-big" { pb.push(stats(&x).median) } else { db.push(stats(&x).median) }
        }
    }
    println!("-- a 1 MiB response, {big_rounds} rounds x {big_block}");
    println!("  GET, no auth                             {}", fmt(&stats(&pb), " µs"));
    println!("  GET, DPoP                                {}", fmt(&stats(&db), " µs"));

    // Threads on every CPU, against a server whose threads may run on every CPU too.
    if let Some(mask) = &unpinned_mask {
        set_affinity(mask);
    }
    let scaling_server = LocalServer::start();
    let slow = c::cs(&scaling_server.url("/slow"));
    println!("-- threads sharing one handle, server waits 2 ms (/slow), {slow_rounds} rounds x {slow_total} requests, unpinned");
    for (name, h) in [("plain", s.plain), ("DPoP", s.dpop)] {
        let (mut one, mut four, mut x) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..slow_rounds {
            let (a, b) = if round % 2 == 0 {
                let a = throughput(h, &slow, 1, slow_total / 4);
                (a, throughput(h, &slow, 4, slow_total))
            } else {
                let b = throughput(h, &slow, 4, slow_total);
                (throughput(h, &slow, 1, slow_total / 4), b)
            };
            one.push(a);
            four.push(b);
            x.push(b / a);
        }
        println!(
            "  {name:<5} 1 thread {} req/s, 4 threads {} req/s, 4 / 1 {}   goal >= 3.6x",
            fmt(&stats(&one), ""),
            fmt(&stats(&four), ""),
            fmt(&stats(&x), "x")
        );
    }
    assert_eq!(server.count(&server.token_requests), 1, "the token stayed cached: no refetch during the run");
    for h in [s.plain, s.dpop, s.plain_log, s.dpop_log, key] {
        c::dpopkit_destroy(h);
    }
    let _ = std::fs::remove_dir_all(&log_dir);
}
