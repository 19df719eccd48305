//! The datagram header: fixed layout, big-endian, always authenticated (MAC input, AEAD
//! associated data or signed bytes). Parsing it is the cheap, crypto-free first check.
//!
//! ```text
//! off len field
//!   0   2 magic "RU"
//!   2   1 version
//!   3   1 suite id
//!   4   4 cluster tag   (hash of the cluster name: datagrams of another cluster are dropped unopened)
//!   8   4 key id        (shared-key suites: which ring key; 0 otherwise)
//!  12   4 sender        (member id on the roster)
//!  16   8 boot epoch    (sender's persisted, strictly increasing boot number)
//!  24   8 counter       (per sender and epoch; the AEAD nonce and the anti-replay sequence)
//!  32   8 timestamp     (sender's unix time in ms; freshness window)
//!  40  16 salt          (AEAD suites only: per-boot random salt of the sending subkey)
//! ```

use crate::suite::Suite;
use crate::WireError;

pub const MAGIC: [u8; 2] = *b"RU";
pub const VERSION: u8 = 1;
pub const FIXED_LEN: usize = 40;
pub const SALT_LEN: usize = 16;
pub const MAC_LEN: usize = 32;
pub const AEAD_TAG_LEN: usize = 16;
/// Default datagram size bound: memberlist's 1400 B, under a 1500 B Ethernet MTU with room for
/// IPv6 and UDP headers.
pub const DEFAULT_MTU: usize = 1400;
/// Largest MTU accepted by configuration: the largest UDP payload over IPv4.
pub const MAX_MTU: usize = 65_507;

/// The per-boot random salt of an AEAD sender's subkey. 16-byte aligned so that copying a
/// header moves it in one aligned load and store (byte alignment made the copies stall on
/// store forwarding in the per-datagram parse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(align(16))]
pub struct Salt(pub [u8; SALT_LEN]);

/// A roster member id.
pub type MemberId = u32;

/// The parsed header. Produced by [`Header::parse`] from untrusted bytes: nothing in it is
/// authenticated until the datagram is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub suite: Suite,
    pub cluster_tag: u32,
    pub key_id: u32,
    pub sender: MemberId,
    pub epoch: u64,
    pub counter: u64,
    pub timestamp_ms: u64,
    pub salt: Option<Salt>,
}

impl Header {
    pub fn len_for(suite: Suite) -> usize {
        FIXED_LEN + if suite.has_salt() { SALT_LEN } else { 0 }
    }

    pub fn encoded_len(&self) -> usize {
        Self::len_for(self.suite)
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.suite.id());
        out.extend_from_slice(&self.cluster_tag.to_be_bytes());
        out.extend_from_slice(&self.key_id.to_be_bytes());
        out.extend_from_slice(&self.sender.to_be_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        if let Some(salt) = &self.salt {
            out.extend_from_slice(&salt.0);
        }
    }

    /// Parses the header at the start of `buf`. Checks magic, version, suite and lengths; the
    /// salt is present exactly when the suite needs one.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<Header, WireError> {
        if buf.len() < FIXED_LEN {
            return Err(WireError::Truncated {
                what: "header",
                need: FIXED_LEN,
                have: buf.len(),
            });
        }
        if buf[0..2] != MAGIC {
            return Err(WireError::BadMagic);
        }
        if buf[2] != VERSION {
            return Err(WireError::UnsupportedVersion(buf[2]));
        }
        let suite = Suite::from_id(buf[3]).ok_or(WireError::UnknownSuite(buf[3]))?;
        let salt = if suite.has_salt() {
            let s = buf
                .get(FIXED_LEN..FIXED_LEN + SALT_LEN)
                .ok_or(WireError::Truncated {
                    what: "header salt",
                    need: FIXED_LEN + SALT_LEN,
                    have: buf.len(),
                })?;
            Some(Salt(arr(s)))
        } else {
            None
        };
        Ok(Header {
            suite,
            cluster_tag: be32(&buf[4..8]),
            key_id: be32(&buf[8..12]),
            sender: be32(&buf[12..16]),
            epoch: be64(&buf[16..24]),
            counter: be64(&buf[24..32]),
            timestamp_ms: be64(&buf[32..40]),
            salt,
        })
    }
}

/// A stable 32-bit tag of a cluster name (first bytes of its SHA-256): lets a node drop another
/// cluster's datagrams before any crypto. Not a secret and not a security boundary.
pub fn cluster_tag(name: &str) -> u32 {
    let d = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    be32(&d.as_ref()[..4])
}

pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(arr(b))
}
pub(crate) fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(arr(b))
}
pub(crate) fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes(arr(b))
}

/// Copies a slice whose length the caller has already checked into an array.
pub(crate) fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}
