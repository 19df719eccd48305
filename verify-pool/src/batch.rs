//! Verdicts for `ed25519` datagrams, alone or in batches. The batches and their bisection are
//! codec's ([`open_ed25519_each`] over [`codec::ed25519::verify_each`]: ed25519-zebra's
//! random-linear-combination batch under ZIP-215, a failed batch split in halves down to single
//! checks), the same search the node's provenance checks use; this module gives the verdicts
//! the header each rejection claimed, for the pool's stats and quarantine.
//!
//! Concurrency: plain functions over the caller's (one worker's) state.

use codec::{open_ed25519_each, Header, MemberKeys, OpenError, Opener, Unverified, Verified};
use rand::{CryptoRng, RngCore};

pub use codec::ed25519::Tally;

/// A datagram that failed to open, with the header it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub header: Header,
    pub error: OpenError,
}

pub type Verdict = Result<Verified, Rejected>;

/// Verifies one datagram alone, with the suite's own opener.
pub fn single(
    d: Unverified,
    keys: &impl MemberKeys,
    opener: &mut Opener,
    tally: &mut Tally,
) -> Verdict {
    tally.singles += 1;
    tally.verifications += 1;
    let header = *d.header();
    opener
        .open(d, keys)
        .map_err(|error| Rejected { header, error })
}

/// Verdicts for `items`, in order, each the same as [`single`] would give.
pub fn settle<R: RngCore + CryptoRng>(
    items: Vec<Unverified>,
    keys: &impl MemberKeys,
    rng: &mut R,
    tally: &mut Tally,
) -> Vec<Verdict> {
    let headers: Vec<Header> = items.iter().map(|d| *d.header()).collect();
    open_ed25519_each(items, keys, rng, tally)
        .into_iter()
        .zip(headers)
        .map(|(v, header)| v.map_err(|error| Rejected { header, error }))
        .collect()
}
