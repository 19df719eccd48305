//! The core thread's share of a rumor burst: a fresh protocol core taking new rumors from 256
//! origins, its actions drained as the runtime drains them. Its broadcast queue fills and then
//! evicts on every push, which is where an ingest burst spends the core thread.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rumor::core::{Boot, Config, Core, Millis, Roster};

const ORIGINS: u32 = 256;
const RUMORS: u64 = 20_000;

fn intake(c: &mut Criterion) {
    let mut g = c.benchmark_group("core_intake");
    g.throughput(Throughput::Elements(RUMORS));
    let roster = Arc::new(Roster::dense(ORIGINS + 1));
    let payload = Bytes::from(vec![7u8; 64]);
    let rumors: Vec<(u32, codec::Message)> = (0..RUMORS)
        .map(|i| {
            let origin = 1 + (i % u64::from(ORIGINS)) as u32;
            let r = codec::Rumor {
                origin,
                seq: i / u64::from(ORIGINS),
                timestamp_ms: 1,
                payload: payload.clone(),
                signature: None,
            };
            (origin, codec::Message::Rumor(r))
        })
        .collect();
    g.bench_function("fresh_core", |b| {
        b.iter_batched(
            || {
                let core = Core::new(
                    Config::default(),
                    Arc::clone(&roster),
                    Boot::from_epoch(0, 1, 1),
                    Millis(0),
                )
                .expect("core");
                (core, rumors.clone())
            },
            |(mut core, rumors)| {
                for (i, (from, m)) in rumors.into_iter().enumerate() {
                    core.handle_datagram(Millis(1 + i as u64 / 1000), from, [m]);
                    if i % 64 == 63 {
                        while core.poll_action().is_some() {}
                    }
                }
                core
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20); targets = intake }
criterion_main!(benches);
