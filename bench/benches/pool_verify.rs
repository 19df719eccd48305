//! The verify paths over the same 64 sealed datagrams: one at a time (codec's `Opener`), one
//! batch, and one batch holding a forgery (bisection).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use codec::{
    HopKeys, MemberKeys, Message, Opener, Packet, PublicKey, Rumor, Sealer, SecretKey, Suite,
    Unverified, DEFAULT_MTU,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use verify_pool::batch::{settle, single, Tally};

const N: usize = 64;
const TAG: u32 = 1;

struct Keys(Vec<PublicKey>);
impl MemberKeys for Keys {
    fn public_key(&self, m: u32) -> Option<&PublicKey> {
        self.0.get(m as usize)
    }
}

fn corpus() -> (Vec<Bytes>, Keys) {
    let mut rng = rand::thread_rng();
    let (mut out, mut keys) = (Vec::new(), Vec::new());
    for s in 0..N as u32 {
        let sk = Arc::new(SecretKey::generate(&mut rng));
        keys.push(sk.public());
        let mut sealer =
            Sealer::new(Suite::Ed25519, TAG, s, 1, HopKeys::Signer(sk), &mut rng).expect("sealer");
        let mut p = Packet::new(Suite::Ed25519, DEFAULT_MTU).expect("packet");
        let rumor = Rumor {
            origin: s,
            seq: 0,
            timestamp_ms: 0,
            payload: Bytes::from(vec![7; 128]),
            signature: None,
        };
        assert!(p.push(&Message::Rumor(rumor)).expect("encode"));
        out.push(sealer.seal(0, p).expect("seal"));
    }
    (out, Keys(keys))
}

fn parse(c: &[Bytes]) -> Vec<Unverified> {
    c.iter()
        .map(|b| Unverified::parse(BytesMut::from(&b[..]), Suite::Ed25519, TAG).expect("parses"))
        .collect()
}

fn verify_paths(c: &mut Criterion) {
    let (good, keys) = corpus();
    let mut one_bad = good.clone();
    let mut v = one_bad[N / 3].to_vec();
    let last = v.len() - 1;
    v[last] ^= 1;
    one_bad[N / 3] = Bytes::from(v);
    let mut opener = Opener::new(Suite::Ed25519, None).expect("opener");
    let mut rng = rand::thread_rng();
    let mut g = c.benchmark_group("verify_64");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("single", |b| {
        b.iter_batched(
            || parse(&good),
            |items| {
                items
                    .into_iter()
                    .map(|d| single(d, &keys, &mut opener, &mut Tally::default()).is_ok())
                    .filter(|ok| *ok)
                    .count()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("batch", |b| {
        b.iter_batched(
            || parse(&good),
            |items| settle(items, &keys, &mut rng, &mut Tally::default()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("batch_one_forgery", |b| {
        b.iter_batched(
            || parse(&one_bad),
            |items| settle(items, &keys, &mut rng, &mut Tally::default()),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20); targets = verify_paths }
criterion_main!(benches);
