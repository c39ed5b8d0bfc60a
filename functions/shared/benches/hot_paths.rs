//! Micro-benchmarks of the CPU work on the hot paths: a push parsed, validated and mapped
//! to its DynamoDB item (target under 10 µs), and one partner request signed.

use cgm_shared::partner::sign::Signer;
use cgm_shared::push::parse_push;
use cgm_shared::sensitive::Sensitive;
use cgm_shared::store::Arrival;
use cgm_shared::store::dynamodb::reading_item;
use cgm_shared::time::SourceZone;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const SEED: &str = include_str!("../tests/data/seed-example.json");

fn push(c: &mut Criterion) {
    let zone = SourceZone::default();
    let arrival = Arrival { received_at_ms: 1_700_000_000_000, request_id: "bench".into() };
    c.bench_function("push: parse + validate + item", |b| {
        b.iter(|| {
            let r = parse_push(black_box(SEED.as_bytes()), &zone).expect("seed parses");
            black_box(reading_item(&r, &arrival))
        })
    });
    c.bench_function("push: parse + validate", |b| b.iter(|| black_box(parse_push(black_box(SEED.as_bytes()), &zone))));
}

fn sign(c: &mut Criterion) {
    let signer = Signer::new("app_123", Sensitive::new("secret_abc".into()));
    let q = [("open_id", "user_xxx"), ("start_time", "1700000000000"), ("end_time", "1702592000000")];
    c.bench_function("partner: sign a GET", |b| {
        b.iter(|| black_box(signer.sign("GET", "/partner/v1/user/glucose", &q, b"", 1_700_000_000_000, "abcd1234")))
    });
}

criterion_group!(benches, push, sign);
criterion_main!(benches);
