//! Shared by the codec's integration tests: message strategies and sealing fixtures.
#![allow(dead_code)] // each test binary uses a different part

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rumor_codec::fuzz::{fixture, hop_keys, TAG};
use rumor_codec::message::MAX_RUMOR_PAYLOAD;
use rumor_codec::*;
use std::net::SocketAddr;

pub fn arb_sig() -> impl Strategy<Value = Signature> {
    prop::array::uniform32(any::<u8>()).prop_flat_map(|a| {
        prop::array::uniform32(any::<u8>()).prop_map(move |b| {
            let mut s = [0u8; 64];
            s[..32].copy_from_slice(&a);
            s[32..].copy_from_slice(&b);
            Signature::from_bytes(s)
        })
    })
}

pub fn arb_state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Alive),
        Just(MemberState::Suspect),
        Just(MemberState::Dead),
        Just(MemberState::Left)
    ]
}

pub fn arb_addr() -> impl Strategy<Value = Option<SocketAddr>> {
    prop_oneof![
        Just(None),
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| Some(SocketAddr::from((ip, p)))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| Some(SocketAddr::from((ip, p)))),
    ]
}

pub fn arb_update() -> impl Strategy<Value = Update> {
    (
        any::<u32>(),
        any::<u64>(),
        arb_state(),
        any::<u32>(),
        arb_addr(),
        prop::option::of(arb_sig()),
    )
        .prop_map(
            |(subject, incarnation, state, origin, addr, signature)| Update {
                subject,
                incarnation,
                state,
                origin,
                addr,
                signature,
            },
        )
}

pub fn arb_rumor() -> impl Strategy<Value = Rumor> {
    (
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..=MAX_RUMOR_PAYLOAD),
        prop::option::of(arb_sig()),
    )
        .prop_map(|(origin, seq, timestamp_ms, payload, signature)| Rumor {
            origin,
            seq,
            timestamp_ms,
            payload: payload.into(),
            signature,
        })
}

fn encoded(m: Message) -> Bytes {
    let mut v = Vec::new();
    m.encode(&mut v).unwrap();
    v.into()
}

pub fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        any::<u32>().prop_map(|seq| Message::Ping { seq }),
        any::<u32>().prop_map(|seq| Message::Ack { seq }),
        (any::<u32>(), any::<u32>()).prop_map(|(seq, target)| Message::PingReq { seq, target }),
        (any::<u32>(), any::<u32>()).prop_map(|(seq, target)| Message::IndirectAck { seq, target }),
        (any::<u32>(), any::<u32>()).prop_map(|(seq, target)| Message::Nack { seq, target }),
        arb_update().prop_map(Message::Update),
        arb_rumor().prop_map(Message::Rumor),
        Just(Message::SyncRequest),
        Just(Message::SyncReply),
        (
            any::<u32>(),
            any::<u64>(),
            arb_state(),
            prop::collection::vec((any::<u32>(), arb_sig()), 0..20)
        )
            .prop_map(|(s, i, v, w)| Message::Certificate(Certificate::new(s, i, v, &w).unwrap())),
        (arb_update(), arb_rumor()).prop_map(|(u, r)| Message::Equivocation(EquivocationProof {
            first: encoded(Message::Update(u)),
            second: encoded(Message::Rumor(r)),
        })),
    ]
}

pub const NOW: u64 = 1_790_000_000_000;

/// A sealer of the fuzz fixture for `suite`, sender 1, epoch 5.
pub fn sealer(suite: Suite) -> Sealer {
    sealer_at(suite, 5)
}

/// A sealer of the fuzz fixture for `suite`, sender 1, boot `epoch`.
pub fn sealer_at(suite: Suite, epoch: u64) -> Sealer {
    Sealer::new(
        suite,
        TAG,
        1,
        epoch,
        hop_keys(suite),
        &mut rand::thread_rng(),
    )
    .unwrap()
}

pub fn opener(suite: Suite) -> Opener {
    Opener::new(suite, Some(fixture().ring.clone())).unwrap()
}

/// Seals `msgs` (as many as fit a 1400 B datagram) and returns the bytes and how many fit.
pub fn seal(s: &mut Sealer, now: u64, msgs: &[Message]) -> (Bytes, usize) {
    let mut p = Packet::new(s.suite(), DEFAULT_MTU).unwrap();
    let mut n = 0;
    for m in msgs {
        if !p.push(m).unwrap() {
            break;
        }
        n += 1;
    }
    (s.seal(now, p).unwrap(), n)
}

pub fn open(o: &mut Opener, suite: Suite, raw: &[u8]) -> Result<Verified, String> {
    let u = Unverified::parse(BytesMut::from(raw), suite, TAG).map_err(|e| e.to_string())?;
    o.open(u, &fixture().keys).map_err(|e| e.to_string())
}
