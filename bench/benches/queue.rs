//! The ingress queue: one datagram per atomic push/pop against a batch of 64 per push/pop.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use verify_pool::queue::IngressQueue;

const ITEMS: usize = 4096;

fn push_pop(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_push_pop");
    g.throughput(Throughput::Elements(ITEMS as u64));
    for batch in [1usize, 16, 64] {
        let q = IngressQueue::<u64>::new(ITEMS);
        g.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| {
                let now = Instant::now();
                for chunk in 0..ITEMS / batch {
                    let granted = q.reserve(batch);
                    q.push_reserved((0..granted as u64).map(|i| i + chunk as u64).collect(), now);
                }
                let mut n = 0;
                while let Some(b) = q.pop() {
                    n += b.items.len();
                }
                assert_eq!(n, ITEMS);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, push_pop);
criterion_main!(benches);
