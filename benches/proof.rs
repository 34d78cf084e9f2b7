//! Placeholder replaced by the benchmark work (issue 6).
use criterion::{Criterion, criterion_group, criterion_main};

fn proof(c: &mut Criterion) {
    let key = dpopkit::core::EcKey::generate().unwrap();
    c.bench_function("proof", |b| {
        b.iter(|| dpopkit::core::proof::make_proof(&key, "GET", "http://127.0.0.1:1/api", Some("t"), None, None).unwrap())
    });
}

criterion_group!(benches, proof);
criterion_main!(benches);
