//! Batch verification with bisection, for `ed25519` datagrams, through codec's
//! [`open_ed25519_batch`] (ed25519-zebra's random-linear-combination batch, ZIP-215 rules; see
//! the crate docs for why those rules). A failed batch only says "some item is bad": it is split
//! in halves, each re-verified, down to single verification, so honest items sharing a batch
//! with a forgery are still accepted (the divide-and-conquer search of Pastuszak, Michałek,
//! Pieprzyk and Seberry, "Identification of bad signatures in batches", PKC 2000).
//!
//! Saving: when a failed batch's left half verifies, the right half must hold the bad item, so it
//! is split at once instead of being verified whole again.
//!
//! Concurrency: plain functions over the caller's (one worker's) state.

use codec::{open_ed25519_batch, Header, MemberKeys, OpenError, Opener, Unverified, Verified};
use rand::{CryptoRng, RngCore};

/// Batches this small are verified one by one: a failed pair would be followed by two singles
/// anyway, so batching it saves nothing.
pub const SINGLE_AT: usize = 2;

/// A datagram that failed to open, with the header it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub header: Header,
    pub error: OpenError,
}

pub type Verdict = Result<Verified, Rejected>;

/// Crypto paid, for the stats.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Signature checks, counting every item of every batch attempt.
    pub verifications: u64,
    /// Batch verifications run (first attempts and bisection halves).
    pub batches: u64,
    /// Of those, how many failed and were split.
    pub bisections: u64,
    /// Single verifications.
    pub singles: u64,
}

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
    opener: &mut Opener,
    rng: &mut R,
    tally: &mut Tally,
) -> Vec<Verdict> {
    let mut out = Vec::with_capacity(items.len());
    let mut ctx = Ctx {
        keys,
        opener,
        rng,
        tally,
        out: &mut out,
    };
    ctx.split_or_verify(items, false);
    out
}

struct Ctx<'a, K, R> {
    keys: &'a K,
    opener: &'a mut Opener,
    rng: &'a mut R,
    tally: &'a mut Tally,
    out: &'a mut Vec<Verdict>,
}

impl<K: MemberKeys, R: RngCore + CryptoRng> Ctx<'_, K, R> {
    /// Appends the verdicts of `items` in order; returns whether all verified. `known_bad`: the
    /// caller already knows the batch fails as a whole.
    fn split_or_verify(&mut self, items: Vec<Unverified>, known_bad: bool) -> bool {
        if items.len() <= SINGLE_AT {
            let mut all = true;
            for d in items {
                let v = single(d, self.keys, self.opener, self.tally);
                all &= v.is_ok();
                self.out.push(v);
            }
            return all;
        }
        let mut left = if known_bad {
            items
        } else {
            self.tally.batches += 1;
            self.tally.verifications += items.len() as u64;
            match open_ed25519_batch(items, self.keys, &mut *self.rng) {
                Ok(verified) => {
                    self.out.extend(verified.into_iter().map(Ok));
                    return true;
                }
                Err(back) => {
                    self.tally.bisections += 1;
                    back
                }
            }
        };
        let right = left.split_off(left.len() / 2);
        let left_ok = self.split_or_verify(left, false);
        // The whole failed; if the left half is clean, the right half is known to fail.
        self.split_or_verify(right, left_ok);
        false
    }
}
