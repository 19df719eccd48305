//! A bounded, seeded mutation run of the fuzz entry point on every `cargo test`: valid sealed
//! datagrams of every suite, mutated (bit flips, truncation, splices, length-field edits,
//! random bytes), must never panic; unmutated ones must open.

mod common;
use common::*;
use rand::{Rng, SeedableRng};
use rumor_codec::fuzz::open_any;
use rumor_codec::*;

const ITERATIONS: usize = 30_000;

#[test]
fn mutated_datagrams_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut seeds = Vec::new();
    for suite in Suite::ALL {
        let msgs = [
            Message::Ping { seq: 1 },
            Message::Update(Update {
                subject: 2,
                incarnation: 3,
                state: MemberState::Suspect,
                origin: 1,
                addr: Some("127.0.0.1:7000".parse().unwrap()),
                signature: None,
            }),
            Message::Rumor(Rumor {
                origin: 1,
                seq: 9,
                timestamp_ms: NOW,
                payload: vec![5; 100].into(),
                signature: Some(Signature::from_bytes([3; 64])),
            }),
            Message::Certificate(
                Certificate::new(
                    2,
                    3,
                    MemberState::Dead,
                    &[(1, Signature::from_bytes([1; 64])); 3],
                )
                .unwrap(),
            ),
        ];
        let (raw, n) = seal(&mut sealer(suite), NOW, &msgs);
        assert_eq!(n, msgs.len());
        assert!(
            open_any(&raw) >= 1,
            "{suite}: unmutated datagram did not open"
        );
        seeds.push(raw.to_vec());
    }
    for _ in 0..ITERATIONS {
        let mut d = seeds[rng.gen_range(0..seeds.len())].clone();
        for _ in 0..rng.gen_range(1..4) {
            match rng.gen_range(0..6) {
                0 => {
                    let i = rng.gen_range(0..d.len());
                    d[i] ^= 1 << rng.gen_range(0..8);
                }
                1 => d.truncate(rng.gen_range(0..d.len().max(1))),
                2 => {
                    let other = &seeds[rng.gen_range(0..seeds.len())];
                    let at = rng.gen_range(0..d.len().min(other.len()).max(1));
                    d.truncate(at);
                    d.extend_from_slice(&other[at.min(other.len())..]);
                }
                3 => {
                    // length fields: hit bytes just after the header with extreme values
                    let i = rng
                        .gen_range(40..d.len().max(41))
                        .min(d.len().saturating_sub(1));
                    if let Some(b) = d.get_mut(i) {
                        *b = [0, 0xff, 0x80, 1][rng.gen_range(0..4)];
                    }
                }
                4 => d.extend((0..rng.gen_range(1..64)).map(|_| rng.gen::<u8>())),
                _ => {
                    d = (0..rng.gen_range(0..1500))
                        .map(|_| rng.gen::<u8>())
                        .collect()
                }
            }
            if d.is_empty() {
                break;
            }
        }
        open_any(&d);
    }
}
