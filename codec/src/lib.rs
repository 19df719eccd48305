//! rumor's bottom layer: the wire format, the crypto suites, key files, the persisted boot
//! epoch and anti-replay. No sockets, no threads, no clocks: time is always an argument.
//!
//! The path of a received datagram through this crate:
//! [`Unverified::parse`] (cheap checks) → [`ReplayGuard::precheck`] → [`Opener::open`] or
//! [`open_ed25519_each`] (crypto) → [`Verified`] → [`ReplayGuard::commit`] → [`Verified::messages`].

pub mod anti_replay;
pub mod ed25519;
pub mod epoch;
pub mod files;
pub mod fuzz;
pub mod header;
pub mod keyfile;
pub mod keys;
pub mod message;
pub mod roster;
pub mod seal;
pub mod suite;

#[cfg(test)]
mod nonce_uniqueness;

pub use anti_replay::{Replay, ReplayConfig, ReplayGuard};
pub use ed25519::{PublicKey, SecretKey, Signature};
pub use header::{cluster_tag, Header, MemberId, DEFAULT_MTU};
pub use keys::{ClusterKey, SharedKeyRing};
pub use message::{Certificate, EquivocationProof, Frames, MemberState, Message, Rumor, Update};
pub use roster::{Roster, RosterMember};
pub use seal::{
    open_ed25519_each, HopKeys, MemberKeys, OpenError, Opener, Packet, SealError, Sealer,
    Unverified, Verified,
};
pub use suite::Suite;

/// Smallest body an MTU must leave room for: one full-size membership update with signature.
pub const MIN_BODY: usize = 128;

/// A datagram (or part of one) that does not parse. Every variant names what was wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum WireError {
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("bad magic")]
    BadMagic,
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown suite id {0}")]
    UnknownSuite(u8),
    #[error("suite {got} where this cluster uses {want}")]
    WrongSuite { got: Suite, want: Suite },
    #[error("cluster tag {0:#010x} is not this cluster's")]
    WrongCluster(u32),
    #[error("unknown message type {0}")]
    UnknownMessage(u8),
    #[error("invalid {0}")]
    BadField(&'static str),
    #[error("trailing bytes after {0}")]
    TrailingBytes(&'static str),
    #[error("too many {what} (max {max})")]
    TooMany { what: &'static str, max: usize },
    #[error("MTU {mtu} out of range {min}..={max} for this suite")]
    BadMtu { mtu: usize, min: usize, max: usize },
}
