//! The fuzz entry point for the decoder and the open path: any bytes in, never a panic out.
//!
//! Driven three ways: by the AFL++ target in `fuzz/` (coverage-guided, stable toolchain; see
//! fuzz/README.md), by a bounded mutation run in `tests/fuzz_bounded.rs` on every `cargo test`,
//! and by anyone holding a crash input (`fuzz::open_any(&bytes)`).

use std::sync::OnceLock;

use bytes::BytesMut;

use crate::{
    ClusterKey, HopKeys, MemberKeys, Opener, PublicKey, ReplayConfig, ReplayGuard, SecretKey,
    SharedKeyRing, Suite, Unverified,
};

/// Cluster tag of the fuzzing fixture.
pub const TAG: u32 = 0x5eed_0001;

/// Fixed keys so a fuzzer's corpus of sealed datagrams stays valid across runs.
pub struct Fixture {
    pub ring: SharedKeyRing,
    pub member: std::sync::Arc<SecretKey>,
    pub keys: Vec<PublicKey>,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ring = SharedKeyRing::new(1, ClusterKey::from_bytes([7; 32]));
        let member = std::sync::Arc::new(SecretKey::from_seed([9; 32]));
        let keys = vec![member.public(); 4];
        Fixture { ring, member, keys }
    })
}

/// Hop keys of the fixture for `suite`.
pub fn hop_keys(suite: Suite) -> HopKeys {
    let f = fixture();
    HopKeys::for_suite(suite, Some(&f.ring), &f.member)
        .expect("the fixture holds every kind of key")
}

/// Parses, freshness-checks, opens and decodes `data` under every suite. Returns how many
/// suites opened it (a fuzzer finds the interesting ones; the count is for tests).
pub fn open_any(data: &[u8]) -> usize {
    let f = fixture();
    let mut opened = 0;
    for suite in Suite::ALL {
        let Ok(u) = Unverified::parse(BytesMut::from(data), suite, TAG) else {
            continue;
        };
        let now = u.header().timestamp_ms;
        let mut guard = ReplayGuard::new(ReplayConfig::default(), now);
        if guard.precheck(now, u.header()).is_err() {
            continue;
        }
        let _ = f.keys.public_key(u.header().sender);
        // Opening needs a fresh opener per input, else the subkey cache would make the fuzzer's
        // result depend on earlier inputs.
        let Ok(mut opener) = Opener::new(suite, Some(f.ring.clone())) else {
            continue;
        };
        if let Ok(v) = opener.open(u, &f.keys) {
            opened += 1;
            let _ = guard.commit(now, &v);
            for m in v.messages() {
                if let Ok(crate::Message::Equivocation(p)) = m {
                    let _ = crate::Message::decode_one(&p.first);
                    let _ = crate::Message::decode_one(&p.second);
                }
            }
        }
    }
    opened
}
