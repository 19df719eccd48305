//! Who may judge whom: the quorum parameters of the authority layer and the verifiable choice of
//! each member's witnesses.
//! References: rendezvous (highest-random-weight) hashing, Thaler and Ravishankar 1998;
//! Fireflies (Johansen, Allavena, van Renesse 2006) and Rapid (Suresh et al. 2018) pick monitors
//! from rings of hashed ids for the same reason: a liar cannot choose who judges its victim.
//! Quorum sizes: Bracha and Toueg 1985 (f + 1 guarantees one honest signer; 2f + 1 of 3f + 1
//! makes any two quorums share an honest member).
//! Concurrency: `Quorum` is plain data; `witnesses` is a pure function of the roster.

use codec::message::MAX_CERT_WITNESSES;
use codec::MemberId;
use ring::digest::{Context, SHA256};

use super::config::ConfigError;
use super::roster::Roster;

/// Witnesses per member when the roster is large: DESIGN.md's reference point (w = 16 keeps a
/// 10 %-Byzantine roster from reaching q = 11 alone with probability ≈ 2e-8).
pub const DEFAULT_WITNESSES: u32 = 16;

/// How many Byzantine members to tolerate, as the operator states it (`--tolerate`, `--quorum`,
/// `--witnesses`); `None` fields take the derived defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tolerance {
    pub f: u32,
    pub quorum: Option<u32>,
    pub witnesses: Option<u32>,
}

/// The resolved quorum rule for a roster of n members: each subject has `witnesses` judges, and
/// a verdict needs `quorum` of their signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quorum {
    pub f: u32,
    pub witnesses: u32,
    pub quorum: u32,
}

impl Tolerance {
    /// Defaults: w = min(n − 1, max(16, 3f + 1)) and q = 2f + 1. Refuses what cannot be safe
    /// (f liars alone reach q) or live (with f witnesses silent, a crash never reaches q; the
    /// crashed subject is not one of the f, so w ≥ q + f, hence n ≥ 3f + 2 at the defaults).
    pub fn resolve(self, n: usize) -> Result<Quorum, ConfigError> {
        let f = self.f;
        let others = u32::try_from(n.saturating_sub(1)).unwrap_or(u32::MAX);
        let witnesses = self.witnesses.unwrap_or_else(|| {
            others.min(DEFAULT_WITNESSES.max(f.saturating_mul(3).saturating_add(1)))
        });
        // Saturating: an absurd --tolerate is refused below (q + f > w), not an overflow.
        let quorum = self.quorum.unwrap_or(f.saturating_mul(2).saturating_add(1));
        let why = if f == 0 {
            Some("--tolerate must be at least 1: f = 0 needs no quorum".to_string())
        } else if witnesses > others {
            Some(format!(
                "{witnesses} witnesses per member, but only {others} other members are admitted"
            ))
        } else if quorum <= f {
            Some(format!(
                "quorum {quorum} ≤ f = {f}: f colluding witnesses could certify an honest member dead by themselves (need q ≥ f + 1)"
            ))
        } else if u64::from(quorum) + u64::from(f) > u64::from(witnesses) {
            Some(format!(
                "quorum {quorum} + f = {f} > {witnesses} witnesses: with f witnesses silent a crashed member could never be certified dead (n = {n} admitted members tolerate f = {f} only with at least q + f witnesses besides the subject; at the default q = 2f + 1 that is n ≥ 3f + 2)"
            ))
        } else if quorum as usize > MAX_CERT_WITNESSES {
            Some(format!(
                "quorum {quorum} exceeds the {MAX_CERT_WITNESSES} signatures a certificate carries"
            ))
        } else {
            None
        };
        match why {
            Some(why) => Err(ConfigError::Authority(why)),
            None => Ok(Quorum {
                f,
                witnesses,
                quorum,
            }),
        }
    }
}

/// The witnesses of `subject` during boot `epoch` (incarnation's high bits): the `w` other
/// members whose hash with the subject ranks highest. Anyone holding the roster computes the
/// same set, so a certificate's signers are checked against it, and a new boot draws a new set.
pub fn witnesses(
    roster: &Roster,
    tag: u32,
    subject: MemberId,
    epoch: u64,
    w: u32,
) -> Vec<MemberId> {
    let mut ranked: Vec<([u8; 8], MemberId)> = roster
        .ids()
        .iter()
        .filter(|id| **id != subject)
        .map(|&id| {
            let mut h = Context::new(&SHA256);
            h.update(b"rumor witness v1");
            h.update(&tag.to_be_bytes());
            h.update(&subject.to_be_bytes());
            h.update(&epoch.to_be_bytes());
            h.update(&id.to_be_bytes());
            let d = h.finish();
            let mut rank = [0u8; 8];
            rank.copy_from_slice(&d.as_ref()[..8]);
            (rank, id)
        })
        .collect();
    ranked.sort_unstable();
    ranked.truncate(w as usize);
    let mut ids: Vec<MemberId> = ranked.into_iter().map(|(_, id)| id).collect();
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(f: u32) -> Tolerance {
        Tolerance {
            f,
            ..Tolerance::default()
        }
    }

    #[test]
    fn defaults_and_refusals() {
        assert_eq!(
            tol(1).resolve(5),
            Ok(Quorum {
                f: 1,
                witnesses: 4,
                quorum: 3
            })
        );
        assert_eq!(
            tol(1).resolve(1000),
            Ok(Quorum {
                f: 1,
                witnesses: 16,
                quorum: 3
            })
        );
        assert_eq!(tol(6).resolve(1000).map(|q| q.witnesses), Ok(19));
        // n = 3f + 1 leaves only 3f witnesses besides the subject
        assert!(tol(1).resolve(4).is_err());
        assert!(tol(0).resolve(10).is_err());
        let unsafe_q = Tolerance {
            f: 2,
            quorum: Some(2),
            witnesses: None,
        };
        let e = unsafe_q.resolve(20).unwrap_err().to_string();
        assert!(e.contains("could certify"), "{e}");
        let f_plus_one = Tolerance {
            f: 1,
            quorum: Some(2),
            witnesses: Some(3),
        };
        assert!(f_plus_one.resolve(4).is_ok());
        assert!(tol(u32::MAX).resolve(1000).is_err());
        assert!(tol(u32::MAX / 2).resolve(1000).is_err());
    }

    #[test]
    fn witness_sets_are_verifiable_and_exclude_the_subject() {
        let r = Roster::new((0..50).map(|i| (i * 7, None)));
        let a = witnesses(&r, 9, 14, 3, 16);
        assert_eq!(a, witnesses(&r, 9, 14, 3, 16));
        assert_eq!(a.len(), 16);
        assert!(!a.contains(&14));
        assert_ne!(a, witnesses(&r, 9, 14, 4, 16), "a new boot draws anew");
        assert_ne!(
            a,
            witnesses(&r, 9, 21, 3, 16),
            "each subject has its own set"
        );
        assert_eq!(witnesses(&r, 9, 14, 3, 100).len(), 49);
    }
}
