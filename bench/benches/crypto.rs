//! Criterion benches of the codec paths `rumor-bench crypto` measures: seal and open of one
//! rumor datagram per suite, and the bare Ed25519 verify beside them.

use bytes::BytesMut;
use codec::*;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::sync::Arc;

const TAG: u32 = 7;
const NOW: u64 = 1_790_000_000_000;

fn packet(suite: Suite, size: usize) -> Packet {
    let mut p = Packet::new(suite, DEFAULT_MTU).expect("mtu");
    let r = Rumor {
        origin: 0,
        seq: 1,
        timestamp_ms: NOW,
        payload: vec![1; size].into(),
        signature: None,
    };
    assert!(p.push(&Message::Rumor(r)).expect("encode"));
    p
}

fn seal_open(c: &mut Criterion) {
    let mut rng = rand::thread_rng();
    let ring = SharedKeyRing::new(1, ClusterKey::generate(&mut rng));
    let sk = Arc::new(SecretKey::generate(&mut rng));
    let keys = vec![sk.public()];
    for size in [64usize, 1200] {
        let mut g = c.benchmark_group(format!("datagram/{size}B"));
        g.throughput(Throughput::Elements(1));
        for suite in Suite::ALL {
            let mut sealer = Sealer::new(
                suite,
                TAG,
                0,
                1,
                HopKeys::for_suite(suite, Some(&ring), &sk).expect("every key is at hand"),
                &mut rng,
            )
            .expect("sealer");
            g.bench_function(BenchmarkId::new("seal", suite.name()), |b| {
                b.iter_batched(
                    || packet(suite, size),
                    |p| sealer.seal(NOW, p).expect("seal"),
                    BatchSize::SmallInput,
                )
            });
            let sealed = sealer.seal(NOW, packet(suite, size)).expect("seal");
            let mut opener = Opener::new(suite, Some(ring.clone())).expect("opener");
            g.bench_function(BenchmarkId::new("open", suite.name()), |b| {
                b.iter_batched(
                    || BytesMut::from(&sealed[..]),
                    |d| {
                        opener
                            .open(Unverified::parse(d, suite, TAG).expect("parse"), &keys)
                            .expect("open")
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        g.finish();
    }
    let msg = vec![3u8; 1200];
    let sig = sk.sign(&msg);
    let pk = sk.public();
    c.bench_function("ed25519/verify-1200B", |b| {
        b.iter(|| ed25519::verify(&pk, &msg, &sig).expect("valid"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(1)).warm_up_time(std::time::Duration::from_millis(300));
    targets = seal_open
}
criterion_main!(benches);
