//! Sealed `ed25519` datagrams from a small roster, for the pool's tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use codec::{HopKeys, Message, Packet, Rumor, Sealer, SecretKey, Suite, DEFAULT_MTU};
use rumor_verify_pool::{Datagram, KeySource, Pool, PoolConfig, RateLimit};

pub const TAG: u32 = 0x5eed;

pub struct Roster {
    pub sealers: Vec<Sealer>,
    pub keys: Arc<Vec<[u8; 32]>>,
}

impl Roster {
    pub fn new(members: u32) -> Roster {
        let mut rng = rand::thread_rng();
        let (mut sealers, mut keys) = (Vec::new(), Vec::new());
        for id in 0..members {
            let sk = Arc::new(SecretKey::generate(&mut rng));
            keys.push(sk.public().to_bytes());
            sealers.push(
                Sealer::new(Suite::Ed25519, TAG, id, 1, HopKeys::Signer(sk), &mut rng)
                    .expect("ed25519 sealer"),
            );
        }
        Roster {
            sealers,
            keys: Arc::new(keys),
        }
    }

    /// A fresh signed datagram from `sender`.
    pub fn seal(&mut self, sender: u32) -> Bytes {
        let mut p = Packet::new(Suite::Ed25519, DEFAULT_MTU).expect("packet");
        let rumor = Rumor {
            origin: sender,
            seq: 1,
            timestamp_ms: 0,
            payload: Bytes::from_static(b"payload"),
            signature: None,
        };
        assert!(p.push(&Message::Rumor(rumor)).expect("encode"));
        self.sealers[sender as usize].seal(1, p).expect("seal")
    }

    pub fn source(&self) -> Arc<dyn KeySource> {
        self.keys.clone()
    }
}

/// The same datagram with one signature bit flipped.
pub fn forge(b: &Bytes) -> Bytes {
    let mut v = b.to_vec();
    let last = v.len() - 1;
    v[last] ^= 1;
    Bytes::from(v)
}

pub fn dg(b: &Bytes) -> Datagram {
    Datagram {
        buf: BytesMut::from(&b[..]),
        origin: None,
    }
}

/// A pool without worker threads (verification runs in `run_pending`) and without rate limits.
pub fn inline_config() -> PoolConfig {
    PoolConfig {
        workers: 0,
        cluster_tag: TAG,
        sender_limit: RateLimit::UNLIMITED,
        origin_limit: RateLimit::UNLIMITED,
        ..PoolConfig::default()
    }
}

pub fn inline_pool(roster: &Roster, cfg: PoolConfig) -> Pool {
    Pool::start(cfg, roster.source()).expect("pool").0
}
