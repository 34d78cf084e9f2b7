//! Redaction cost (criterion), issue 10 item 1: session-log redaction of hostile bodies
//! (runs of `password=`, whose values each reach the end of the text) against an ordinary
//! JSON body of the same size, and masking a call's secrets in response bodies of growing
//! size. Throughput is in bytes, so linear work shows as the same MiB/s at every size;
//! quadratic work would fall by half each time the size doubles.
//!
//! `cargo bench --bench redact`; under `cargo test --all-targets` each case runs once.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use dpopkit::core::redact::{Secrets, redact_body};

fn hostile(unit: &str, len: usize) -> Vec<u8> {
    unit.repeat(len / unit.len()).into_bytes()
}

fn ordinary_json(len: usize) -> Vec<u8> {
    let item = r#"{"id":12345,"name":"widget","tags":["a","b"],"price":9.99},"#;
    let mut s = String::from("[");
    while s.len() + item.len() < len {
        s.push_str(item);
    }
    s.push_str(r#"{"access_token":"Tok3n-value"}]"#);
    s.into_bytes()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("session log redaction");
    for kib in [16usize, 32, 64] {
        let len = kib * 1024;
        g.throughput(Throughput::Bytes(len as u64));
        for (name, body) in [
            ("password= runs", hostile("password=", len)),
            ("\"client_secret\":\" runs", hostile("\"client_secret\":\"", len)),
            ("ordinary JSON", ordinary_json(len)),
        ] {
            g.bench_with_input(BenchmarkId::new(name, format!("{kib} KiB")), &body, |b, body| {
                b.iter(|| black_box(redact_body("text/plain", black_box(body), usize::MAX)))
            });
        }
    }
    // The log cuts at 64 KiB before it looks: a 16 MiB hostile body costs what 64 KiB does.
    let big = hostile("password=", 16 << 20);
    g.throughput(Throughput::Bytes(64 * 1024));
    g.bench_function("password= runs, 16 MiB body logged at 64 KiB", |b| {
        b.iter(|| black_box(redact_body("text/plain", black_box(&big), 64 * 1024)))
    });
    g.finish();

    let mut g = c.benchmark_group("masking echoed secrets");
    let mut secrets = Secrets::new();
    secrets.add_client_secret("m2m.dpop", "S3cr&t/Value+42");
    secrets.add_token("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtMm0ifQ.c2lnbmF0dXJl");
    secrets.add_token("eyJ0eXAiOiJkcG9wK2p3dCJ9.eyJqdGkiOiJ4In0.c2ln");
    for mib in [1usize, 4, 16] {
        let body = ordinary_json(mib << 20);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("response body", format!("{mib} MiB")), &body, |b, body| {
            b.iter(|| black_box(secrets.scrub_bytes(black_box(body))))
        });
    }
    g.finish();
    c.final_summary();
}
