//! Micro benchmarks (criterion): DPoP proof creation against a raw ES256 signature with the
//! same key (ring, and p256 0.13 for comparison), key loading per format, a token cache
//! hit, the FFI round trip, and a proof signed inside a PKCS#11 token (SoftHSM2, when
//! installed: `bash scripts/setup.sh`) next to the same proof with a key file, and RS256 /
//! PS256 proofs with RSA keys next to ES256 (interleaved in the same run for the ratios).
//!
//! `cargo bench --bench proof` measures and then prints a summary (median, min-max per
//! call, from criterion's samples) plus an interleaved proof/signature ratio measured in
//! the same run. Under `cargo test --all-targets` criterion runs each bench once (test
//! mode) and the summary is skipped.

mod common;

use std::ffi::CString;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use criterion::Criterion;
use dpopkit::core::EcKey;
use dpopkit::core::http::{ProxyChoice, Settings, Transport};
use dpopkit::core::proof::{ath, make_proof, make_proof_alg_within, new_jti};
use dpopkit::core::token::{AuthConfig, FetchContext, cached, get_token};
use p256::pkcs8::DecodePrivateKey;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

use common::{LocalServer, c, fixture, quick_mode, stats};

const HTU: &str = "https://api.example.com/v1/items";
/// A realistic access token (a JWT-sized opaque string) for the `ath` claim.
const TOKEN: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJpc3MiOiJodHRwczovL2FzLmV4YW1wbGUiLCJzdWIiOiJtMm0iLCJhdWQiOiJhcGkiLCJleHAiOjE5MDAwMDAwMDAsImNuZiI6eyJqa3QiOiJhYmMifX0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZQ";

/// The fixture key three ways: dpopkit's EcKey, ring's key pair and p256's signing key.
struct Keys {
    eckey: EcKey,
    ring: EcdsaKeyPair,
    p256: p256::ecdsa::SigningKey,
    /// A message as long as a proof's JWS signing input (header.payload).
    message: Vec<u8>,
}

fn keys() -> Keys {
    let pem = std::fs::read_to_string(fixture("ec_pkcs8.pem")).unwrap();
    let eckey = EcKey::from_any_format(pem.as_bytes(), None).unwrap();
    let secret = p256::SecretKey::from_pkcs8_pem(&pem).unwrap();
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    let ring = EcdsaKeyPair::from_private_key_and_public_key(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &secret.to_bytes(),
        point.as_bytes(),
        &SystemRandom::new(),
    )
    .unwrap();
    assert_eq!(ring.public_key().as_ref(), eckey.public_point(), "the same key");
    let p256 = p256::ecdsa::SigningKey::from(&secret);
    let proof = make_proof(&eckey, "GET", HTU, Some(TOKEN), None, None).unwrap();
    let signing_input = proof.rsplit_once('.').unwrap().0.len();
    Keys { eckey, ring, p256, message: vec![b'a'; signing_input] }
}

fn ring_sign(k: &Keys, rng: &SystemRandom) -> ring::signature::Signature {
    k.ring.sign(rng, &k.message).unwrap()
}

fn proof_once(k: &Keys) -> String {
    make_proof(&k.eckey, "GET", HTU, Some(TOKEN), None, None).unwrap()
}

fn rsa_key(file: &str) -> EcKey {
    EcKey::from_any_format(&std::fs::read(fixture(file)).unwrap(), None).unwrap()
}

fn rsa_proof(key: &EcKey, alg: &str) -> String {
    make_proof_alg_within(key, alg, "GET", HTU, Some(TOKEN), None, None, None).unwrap()
}

/// ES256, RS256 and PS256 proofs (2048-bit RSA), interleaved in blocks in a rotating order
/// so that machine noise hits all three alike: the medians and the per-round ratios.
fn interleaved_algs(k: &Keys) -> [(&'static str, common::Stats, common::Stats); 3] {
    let rsa = rsa_key("rsa.pem");
    const ROUNDS: usize = 21;
    const BLOCK: u32 = 60;
    let run = |i: usize| match i {
        0 => drop(black_box(proof_once(k))),
        1 => drop(black_box(rsa_proof(&rsa, "RS256"))),
        _ => drop(black_box(rsa_proof(&rsa, "PS256"))),
    };
    for i in 0..3 {
        for _ in 0..20 {
            run(i);
        }
    }
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for j in 0..3 {
            let i = (round + j) % 3;
            let t = Instant::now();
            for _ in 0..BLOCK {
                run(i);
            }
            times[i].push(t.elapsed().as_nanos() as f64 / BLOCK as f64);
        }
    }
    let ratio = |i: usize| stats(&times[i].iter().zip(&times[0]).map(|(x, es)| x / es).collect::<Vec<_>>());
    [("ES256", stats(&times[0]), ratio(0)), ("RS256", stats(&times[1]), ratio(1)), ("PS256", stats(&times[2]), ratio(2))]
}

fn bench_sign_and_proof(c: &mut Criterion, k: &Keys) {
    let rng = SystemRandom::new();
    let mut g = c.benchmark_group("sign");
    g.bench_function("ring_es256", |b| b.iter(|| ring_sign(k, &rng)));
    g.bench_function("p256_ecdsa", |b| {
        use p256::ecdsa::signature::Signer;
        b.iter(|| -> p256::ecdsa::Signature { k.p256.sign(black_box(&k.message)) })
    });
    g.bench_function("eckey_sign", |b| b.iter(|| k.eckey.sign(black_box(&k.message)).unwrap()));
    g.finish();

    let mut g = c.benchmark_group("proof");
    g.bench_function("make_proof", |b| b.iter(|| proof_once(k)));
    g.bench_function("make_proof_nonce", |b| {
        b.iter(|| make_proof(&k.eckey, "GET", HTU, Some(TOKEN), Some("eyJ7S_zG.eyJH0-Z.HX4w-7v"), None).unwrap())
    });
    g.bench_function("make_proof_no_ath", |b| b.iter(|| make_proof(&k.eckey, "POST", HTU, None, None, None).unwrap()));
    // The other algorithms dpopkit signs with (generated keys), for comparison.
    let ed = EcKey::generate_alg("EdDSA").unwrap();
    let es384 = EcKey::generate_alg("ES384").unwrap();
    g.bench_function("make_proof_eddsa", |b| b.iter(|| make_proof(&ed, "GET", HTU, Some(TOKEN), None, None).unwrap()));
    g.bench_function("make_proof_es384", |b| b.iter(|| make_proof(&es384, "GET", HTU, Some(TOKEN), None, None).unwrap()));
    // RSA (tests/fixtures/rsa.pem, 2048 bits; rsa4096.pem): ring's RSASSA-PKCS1-v1_5 and PSS.
    for (name, file, alg) in [
        ("make_proof_rs256", "rsa.pem", "RS256"),
        ("make_proof_ps256", "rsa.pem", "PS256"),
        ("make_proof_ps256_4096", "rsa4096.pem", "PS256"),
    ] {
        let key = rsa_key(file);
        g.bench_function(name, |b| b.iter(|| rsa_proof(&key, alg)));
    }
    g.bench_function("jti", |b| b.iter(|| new_jti().unwrap()));
    g.bench_function("ath", |b| b.iter(|| ath(black_box(TOKEN))));
    g.finish();
}

const KEY_FILES: &[(&str, Option<&str>)] = &[
    ("ec_sec1.pem", None),
    ("ec_pkcs8.pem", None),
    ("ec_pkcs8_enc.pem", Some("test-password")),
    ("ec_sec1.der", None),
    ("ec_pkcs8.der", None),
    ("ec.jwk", None),
];

fn bench_key_load(c: &mut Criterion) {
    let mut g = c.benchmark_group("key_load");
    for (name, password) in KEY_FILES {
        let path = fixture(name);
        let expected = std::fs::read_to_string(fixture("ec.jkt")).unwrap();
        let k = EcKey::load_file(&path, *password).unwrap();
        assert_eq!(k.jkt(), expected.trim(), "{name} is the fixture key");
        g.bench_function(name.replace('.', "_"), |b| b.iter(|| EcKey::load_file(&path, *password).unwrap()));
    }
    g.bench_function("generate", |b| b.iter(|| EcKey::generate().unwrap()));
    g.finish();
}

fn bench_token_cache(c: &mut Criterion, server: &LocalServer, k: &Keys) {
    let cfg = AuthConfig::from_json(&server.auth_token()).unwrap();
    let transport = Transport::new(Settings { proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
    let ctx = FetchContext { transport: &transport, log: None, assertion_key: None };
    let before = server.token_requests.load(std::sync::atomic::Ordering::Relaxed);
    let first = get_token(&cfg, &k.eckey, &ctx, None).unwrap();
    assert_eq!(first.value(), common::ACCESS_TOKEN);
    let mut g = c.benchmark_group("token_cache");
    g.bench_function("get_token_hit", |b| b.iter(|| get_token(&cfg, &k.eckey, &ctx, None).unwrap()));
    g.bench_function("cached", |b| b.iter(|| cached(&cfg, &k.eckey, None).unwrap()));
    g.finish();
    let fetched = server.token_requests.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert_eq!(fetched, 1, "every lookup after the first is a cache hit");
}

fn bench_ffi(c: &mut Criterion, server: &LocalServer) {
    let h = c::http(None, None);
    let bad = CString::new("not a url").unwrap();
    let url_s = server.url("/api/items");
    let url = CString::new(url_s.clone()).unwrap();
    let client = dpopkit::core::HttpClient::new();
    client.set_settings(Settings { proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
    c::get(h, &url);
    client.quick_get_str(&url_s).unwrap();

    let mut g = c.benchmark_group("ffi");
    g.bench_function("capi_invalid_url", |b| {
        b.iter(|| {
            let p = unsafe { c::dpopkit_http_quick_get_str(h, bad.as_ptr()) };
            assert!(p.is_null());
        })
    });
    g.bench_function("core_invalid_url", |b| b.iter(|| client.quick_get_str(black_box("not a url")).unwrap_err()));
    g.bench_function("capi_get_local", |b| b.iter(|| c::get(h, &url)));
    g.bench_function("core_get_local", |b| b.iter(|| client.quick_get_str(&url_s).unwrap().0.len()));
    // The resolver: a host name instead of an IP literal (cached by dpopkit's resolver).
    let by_name = CString::new(format!("http://localhost:{}/api/items", server.port)).unwrap();
    if unsafe { c::take(c::dpopkit_http_quick_get_str(h, by_name.as_ptr())) }.is_some() {
        g.bench_function("capi_get_localhost", |b| b.iter(|| c::get(h, &by_name)));
    } else {
        eprintln!("localhost does not reach 127.0.0.1 here: {}", c::last_error(h));
    }
    // A 1 MiB body: what copying the body costs on each side of the boundary.
    let big_s = server.url("/big");
    let big = CString::new(big_s.clone()).unwrap();
    assert_eq!(c::get(h, &big), common::BIG_SIZE);
    g.bench_function("capi_get_1mib", |b| b.iter(|| c::get(h, &big)));
    g.bench_function("core_get_1mib", |b| b.iter(|| client.quick_get_str(&big_s).unwrap().0.len()));
    // Its parts: handing a 1 MiB string to C (copy into a length-prefixed block) and
    // dpopkit_string_free (which wipes the block), against one plain copy.
    let text = common::big_body();
    g.bench_function("string_out_free_1mib", |b| {
        b.iter(|| unsafe { dpopkit::ffi::strings::free(dpopkit::ffi::strings::out(black_box(&text)).unwrap()) })
    });
    g.bench_function("string_copy_1mib", |b| b.iter(|| black_box(text.to_string())));
    g.finish();
    c::dpopkit_destroy(h);
}

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A SoftHSM2 token in a temporary directory; must run before any other thread starts
/// (SOFTHSM2_CONF is read when the module initialises). `None` when SoftHSM2 is missing.
fn softhsm_token() -> Option<(PathBuf, String)> {
    if !std::path::Path::new(SOFTHSM).exists() {
        eprintln!("SoftHSM2 is not installed ({SOFTHSM}): the pkcs11 benchmarks are left out (bash scripts/setup.sh installs it)");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("dpopkit-bench-softhsm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", dir.join("tokens").display()),
    )
    .unwrap();
    let ok = std::process::Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "bench", "--so-pin", "12345678", "--pin", "1234"])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "softhsm2-util --init-token failed");
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
    let uri = format!("pkcs11:token=bench;object=dpop?module-path={SOFTHSM}");
    EcKey::generate_in_token(&uri, Some("1234"), "ES256").unwrap();
    Some((dir, uri))
}

/// The same proof with a key file and with the key inside SoftHSM2 (CKM_ECDSA over the
/// digest, one pooled session, the login shared).
fn bench_pkcs11(c: &mut Criterion, k: &Keys, uri: &str) {
    let token_key = EcKey::from_pkcs11_uri(uri, Some("1234")).unwrap();
    let mut g = c.benchmark_group("pkcs11");
    g.bench_function("make_proof_file_es256", |b| b.iter(|| proof_once(k)));
    g.bench_function("make_proof_softhsm_es256", |b| b.iter(|| make_proof(&token_key, "GET", HTU, Some(TOKEN), None, None).unwrap()));
    g.bench_function("sign_softhsm_es256", |b| b.iter(|| token_key.sign(black_box(&k.message)).unwrap()));
    // Opening a key by URI once the module is loaded and the token logged in: find the
    // objects, read the public point, one verified test signature.
    g.bench_function("load_uri_softhsm", |b| b.iter(|| EcKey::from_pkcs11_uri(uri, Some("1234")).unwrap()));
    g.finish();
}

/// Per-iteration times (ns) of one criterion benchmark, from its last run's sample.json.
/// Samples older than `since` (an earlier run, filtered out of this one) are ignored.
fn samples(dir: &std::path::Path, id: &str, since: std::time::SystemTime) -> Option<Vec<f64>> {
    let path = dir.join(id).join("new/sample.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let iters = v["iters"].as_array()?;
    let times = v["times"].as_array()?;
    Some(iters.iter().zip(times).map(|(i, t)| t.as_f64().unwrap() / i.as_f64().unwrap()).collect())
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Proof vs ring signature, interleaved in blocks so that machine noise hits both alike.
fn interleaved_ratio(k: &Keys) -> (common::Stats, common::Stats, common::Stats) {
    let rng = SystemRandom::new();
    const ROUNDS: usize = 41;
    const BLOCK: u32 = 400;
    let (mut proof, mut sign, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..200 {
        black_box(proof_once(k));
        black_box(ring_sign(k, &rng));
    }
    for round in 0..ROUNDS {
        let time = |f: &dyn Fn()| {
            let t = Instant::now();
            for _ in 0..BLOCK {
                f();
            }
            t.elapsed().as_nanos() as f64 / BLOCK as f64
        };
        let (p, s) = if round % 2 == 0 {
            let p = time(&|| drop(black_box(proof_once(k))));
            (
                p,
                time(&|| {
                    black_box(ring_sign(k, &rng));
                }),
            )
        } else {
            let s = time(&|| {
                black_box(ring_sign(k, &rng));
            });
            (time(&|| drop(black_box(proof_once(k)))), s)
        };
        proof.push(p);
        sign.push(s);
        ratio.push(p / s);
    }
    (stats(&proof), stats(&sign), stats(&ratio))
}

fn summary(dir: &std::path::Path, k: &Keys, since: std::time::SystemTime) {
    println!("\n=== dpopkit micro benchmarks: median (min-max) per call over criterion's samples ===");
    println!("{}", common::machine());
    println!("(raw signatures sign {} bytes: the length of a proof's JWS signing input)", k.message.len());
    let ids = [
        "sign/ring_es256",
        "sign/p256_ecdsa",
        "sign/eckey_sign",
        "proof/make_proof",
        "proof/make_proof_nonce",
        "proof/make_proof_no_ath",
        "proof/make_proof_eddsa",
        "proof/make_proof_es384",
        "proof/make_proof_rs256",
        "proof/make_proof_ps256",
        "proof/make_proof_ps256_4096",
        "proof/jti",
        "proof/ath",
        "key_load/ec_sec1_pem",
        "key_load/ec_pkcs8_pem",
        "key_load/ec_pkcs8_enc_pem",
        "key_load/ec_sec1_der",
        "key_load/ec_pkcs8_der",
        "key_load/ec_jwk",
        "key_load/generate",
        "token_cache/get_token_hit",
        "token_cache/cached",
        "ffi/capi_invalid_url",
        "ffi/core_invalid_url",
        "ffi/capi_get_local",
        "ffi/core_get_local",
        "ffi/capi_get_localhost",
        "ffi/capi_get_1mib",
        "ffi/core_get_1mib",
        "ffi/string_out_free_1mib",
        "ffi/string_copy_1mib",
        "pkcs11/make_proof_file_es256",
        "pkcs11/make_proof_softhsm_es256",
        "pkcs11/sign_softhsm_es256",
        "pkcs11/load_uri_softhsm",
    ];
    let mut med = std::collections::HashMap::new();
    for id in ids {
        match samples(dir, id, since) {
            Some(s) => {
                let st = stats(&s);
                println!("{id:<28} {:>10}  ({} - {})", fmt_ns(st.median), fmt_ns(st.min), fmt_ns(st.max));
                med.insert(id, st.median);
            }
            None => println!("{id:<28} (not run)"),
        }
    }
    let r = |a: &str, b: &str| med.get(a).zip(med.get(b)).map(|(a, b)| a / b);
    if let Some(x) = r("proof/make_proof", "sign/ring_es256") {
        println!("make_proof / ring ES256 signature (criterion medians): {x:.3}x  (goal <= 1.3x)");
    }
    for rsa in ["proof/make_proof_rs256", "proof/make_proof_ps256", "proof/make_proof_ps256_4096"] {
        if let Some(x) = r(rsa, "proof/make_proof") {
            println!("{rsa:<28} / ES256 make_proof (criterion medians): {x:.1}x");
        }
    }
    if let Some(x) = r("sign/p256_ecdsa", "sign/ring_es256") {
        println!("p256 0.13 ECDSA sign / ring ES256 sign:               {x:.2}x");
    }
    if let (Some(a), Some(b)) = (med.get("ffi/capi_get_local"), med.get("ffi/core_get_local")) {
        println!("FFI overhead of a local GET (capi - core medians):     {}", fmt_ns(a - b));
    }
    if let (Some(a), Some(b)) = (med.get("ffi/capi_invalid_url"), med.get("ffi/core_invalid_url")) {
        println!("FFI error path: capi {} vs core {} (boundary cost {})", fmt_ns(*a), fmt_ns(*b), fmt_ns(a - b));
    }
    if let (Some(a), Some(b)) = (med.get("ffi/capi_get_1mib"), med.get("ffi/core_get_1mib")) {
        println!("1 MiB body: capi - core medians:                       {}", fmt_ns(a - b));
    }
    if let (Some(a), Some(b)) = (med.get("ffi/capi_get_localhost"), med.get("ffi/capi_get_local")) {
        println!("by name (localhost) - by IP literal, medians:           {}", fmt_ns(a - b));
    }
    if let Some(x) = r("pkcs11/make_proof_softhsm_es256", "pkcs11/make_proof_file_es256") {
        println!("proof signed in SoftHSM2 / proof with the key file:   {x:.2}x");
    }
    let (p, s, ratio) = interleaved_ratio(k);
    println!(
        "interleaved, same run: make_proof {} ({} - {}), ring sign {} ({} - {}); ratio {:.3}x ({:.3} - {:.3}) (goal <= 1.3x)",
        fmt_ns(p.median),
        fmt_ns(p.min),
        fmt_ns(p.max),
        fmt_ns(s.median),
        fmt_ns(s.min),
        fmt_ns(s.max),
        ratio.median,
        ratio.min,
        ratio.max
    );
    for (alg, t, ratio) in interleaved_algs(k) {
        println!(
            "interleaved, same run: make_proof {alg} {} ({} - {}); / ES256 {:.1}x ({:.1} - {:.1})",
            fmt_ns(t.median),
            fmt_ns(t.min),
            fmt_ns(t.max),
            ratio.median,
            ratio.min,
            ratio.max
        );
    }
}

/// criterion's output folder: $CRITERION_HOME, else <target dir>/criterion, where the
/// target dir is found from this executable (target/<profile>/deps/proof-HASH).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).map(|t| t.join("criterion")).unwrap_or_else(|| PathBuf::from("target/criterion"))
}

fn main() {
    let started = std::time::SystemTime::now();
    let softhsm = softhsm_token();
    let dir = criterion_dir();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3))
        .configure_from_args();
    let k = keys();
    let server = LocalServer::start();
    bench_sign_and_proof(&mut c, &k);
    bench_key_load(&mut c);
    bench_token_cache(&mut c, &server, &k);
    bench_ffi(&mut c, &server);
    if let Some((_, uri)) = &softhsm {
        bench_pkcs11(&mut c, &k, uri);
    }
    c.final_summary();
    // Under `cargo test` (no --bench) criterion ran each bench once: no figures to show.
    if !quick_mode() {
        summary(&dir, &k, started);
    }
    if let Some((tokens, _)) = softhsm {
        let _ = std::fs::remove_dir_all(tokens);
    }
}
