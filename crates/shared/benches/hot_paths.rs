//! Micro-benchmarks of the CPU work on the push's hot path: a push parsed, validated and
//! mapped to its DynamoDB item (target under 10 µs). The partner signer's is in cgm-partner.

use cgm_domain::push::parse_push;
use cgm_domain::store::push::Arrival;
use cgm_domain::time::SourceZone;
use cgm_shared::store::push::dynamodb::reading_item;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const SEED: &str = include_str!("../../../crates/domain/tests/data/seed-example.json");

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

criterion_group!(benches, push);
criterion_main!(benches);
