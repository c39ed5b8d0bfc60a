//! Micro-benchmark of the partner proxy's CPU work per upstream call: one request signed.

use cgm_domain::sensitive::Sensitive;
use cgm_partner::sign::Signer;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn sign(c: &mut Criterion) {
    let signer = Signer::new("app_123", Sensitive::new("secret_abc".into()));
    let q = [("open_id", "user_xxx"), ("start_time", "1700000000000"), ("end_time", "1702592000000")];
    c.bench_function("partner: sign a GET", |b| {
        b.iter(|| black_box(signer.sign("GET", "/partner/v1/user/glucose", &q, b"", 1_700_000_000_000, "abcd1234")))
    });
}

criterion_group!(benches, sign);
criterion_main!(benches);
