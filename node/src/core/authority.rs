//! The authority layer's state (issue 6): the signed statements behind each member's entry, the
//! witnesses' death votes and the certificates they form, the direct checks a witness makes
//! before it votes, and the members excluded by equivocation proofs.
//! Gossip's alive/suspect stays the fast soft view; a death is committed only by a certificate of
//! `q` distinct witnesses (chosen by `witness::witnesses`), and an honest witness votes only on
//! its own evidence: it pinged the suspect itself and heard nothing for a whole suspicion timeout.
//! References: Fireflies (Johansen, Allavena, van Renesse 2006) for accusations judged by
//! verifiably chosen monitors; PeerReview (Haeberlen, Kouznetsov, Druschel 2007) for equivocation
//! caught by two signed, conflicting statements that anyone can check.
//! Trust contract: the driver has verified every signature before the core sees a statement; this
//! module checks everything else (who may sign what, counts, conflicts).
//! Concurrency: owned by one `Core`; not shared.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use codec::{Certificate, EquivocationProof, MemberId, MemberState, Message, Rumor, Update};

use super::roster::Roster;
use super::time::Millis;
use super::witness::{witnesses, Quorum};

/// Signed rumors kept to catch a second story under one (origin, seq): enough for every rumor a
/// busy member hears during the rounds a rumor takes to spread (copies of an equivocator's two
/// stories meet within those rounds, or not at all).
const HELD_RUMORS: usize = 4096;
/// Witness sets remembered (one per subject and boot): recomputing costs one hash per member.
const WITNESS_SETS_CACHED: usize = 1024;
/// Incarnations of one boot (the core's `REFUTATIONS_PER_BOOT` is 2^16): witness sets are drawn
/// per boot, so refuting does not re-roll the judges.
const BOOT_SHIFT: u32 = 16;

/// The signed statements standing behind one member's entry: what push-pull restates.
#[derive(Default)]
pub(crate) struct Held {
    /// The latest statement the member signed about itself (Alive or Left).
    pub own: Option<Update>,
    /// The signed accusation (Suspect, or a witness's Dead vote) behind a Suspect entry.
    pub accusation: Option<Update>,
    /// The certificate behind a Dead entry.
    pub certificate: Option<Certificate>,
}

/// A witness's own check of a suspect: pinged, and whether it answered.
pub(crate) struct Check {
    pub incarnation: u64,
    pub seq: u32,
    pub answered: bool,
    pub next_ping: Millis,
}

/// Why a certificate or proof was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Verdict,
    UnknownSubject,
    NotAWitness,
    DuplicateWitness,
    ExcludedWitness,
    TooFewWitnesses,
    ProofUndecodable,
    ProofUnsigned,
    ProofNoConflict,
}

pub(crate) struct Authority {
    pub quorum: Quorum,
    tag: u32,
    held: BTreeMap<u32, Held>,
    votes: BTreeMap<(MemberId, u64), Vec<Update>>,
    pub checks: BTreeMap<u32, Check>,
    excluded: BTreeSet<MemberId>,
    rumors: BTreeMap<(MemberId, u64), Rumor>,
    rumor_order: VecDeque<(MemberId, u64)>,
    witness_sets: BTreeMap<(MemberId, u64), Vec<MemberId>>,
}

impl Authority {
    pub fn new(quorum: Quorum, tag: u32) -> Authority {
        Authority {
            quorum,
            tag,
            held: BTreeMap::new(),
            votes: BTreeMap::new(),
            checks: BTreeMap::new(),
            excluded: BTreeSet::new(),
            rumors: BTreeMap::new(),
            rumor_order: VecDeque::new(),
            witness_sets: BTreeMap::new(),
        }
    }

    /// The witnesses of `subject` at `incarnation`'s boot.
    pub fn witnesses(
        &mut self,
        roster: &Roster,
        subject: MemberId,
        incarnation: u64,
    ) -> &[MemberId] {
        let key = (subject, incarnation >> BOOT_SHIFT);
        if !self.witness_sets.contains_key(&key) && self.witness_sets.len() >= WITNESS_SETS_CACHED {
            self.witness_sets.pop_first();
        }
        let (tag, w) = (self.tag, self.quorum.witnesses);
        self.witness_sets
            .entry(key)
            .or_insert_with(|| witnesses(roster, tag, subject, key.1, w))
    }

    pub fn is_witness(
        &mut self,
        roster: &Roster,
        who: MemberId,
        subject: MemberId,
        incarnation: u64,
    ) -> bool {
        self.witnesses(roster, subject, incarnation)
            .binary_search(&who)
            .is_ok()
    }

    pub fn held(&self, idx: u32) -> Option<&Held> {
        self.held.get(&idx)
    }

    pub fn held_mut(&mut self, idx: u32) -> &mut Held {
        self.held.entry(idx).or_default()
    }

    /// Highest incarnation the member itself signed: accusations count only up to it, so a liar
    /// cannot accuse at an incarnation its victim never had.
    pub fn signed_incarnation(&self, idx: u32) -> Option<u64> {
        self.held.get(&idx)?.own.as_ref().map(|u| u.incarnation)
    }

    /// A self statement conflicting with the one held at the same incarnation: the proof.
    pub fn conflicting_own(&self, idx: u32, u: &Update) -> Option<EquivocationProof> {
        let own = self.held.get(&idx)?.own.as_ref()?;
        let same = own.incarnation == u.incarnation;
        (same && (own.state, own.addr) != (u.state, u.addr))
            .then(|| proof(Message::Update(own.clone()), Message::Update(u.clone())))
            .flatten()
    }

    /// Whether an identical statement is already held (the driver skips its signature check).
    pub fn knows(&self, idx: u32, u: &Update) -> bool {
        let same = |h: &Update| {
            (h.incarnation, h.state, h.origin, h.addr) == (u.incarnation, u.state, u.origin, u.addr)
        };
        let held = self.held.get(&idx);
        held.and_then(|h| h.own.as_ref()).is_some_and(same)
            || held.and_then(|h| h.accusation.as_ref()).is_some_and(same)
            || self
                .votes
                .get(&(u.subject, u.incarnation))
                .is_some_and(|v| v.iter().any(|x| x.origin == u.origin))
    }

    /// Records a witness's signed Dead vote; returns the certificate once `q` distinct witnesses
    /// voted for the same (subject, incarnation), and whether the vote was new.
    pub fn vote(&mut self, u: Update) -> (bool, Option<Certificate>) {
        let q = self.quorum.quorum as usize;
        let votes = self.votes.entry((u.subject, u.incarnation)).or_default();
        if votes.iter().any(|v| v.origin == u.origin) {
            return (false, None);
        }
        votes.push(u);
        if votes.len() < q {
            return (true, None);
        }
        let signers: Vec<_> = votes
            .iter()
            .filter_map(|v| v.signature.map(|s| (v.origin, s)))
            .take(q)
            .collect();
        let v = &votes[0];
        let cert = Certificate::new(v.subject, v.incarnation, MemberState::Dead, &signers).ok();
        (true, cert)
    }

    /// Votes about `subject` at or below `incarnation` are settled (certified, or refuted).
    pub fn settle(&mut self, subject: MemberId, incarnation: u64) {
        self.votes
            .retain(|(s, i), _| *s != subject || *i > incarnation);
    }

    /// Structural checks of a certificate whose signatures the driver verified.
    pub fn check_certificate(&mut self, roster: &Roster, c: &Certificate) -> Result<(), Refusal> {
        if c.verdict != MemberState::Dead {
            return Err(Refusal::Verdict);
        }
        if roster.index_of(c.subject).is_none() {
            return Err(Refusal::UnknownSubject);
        }
        let mut seen = BTreeSet::new();
        for (w, _) in c.witnesses() {
            if !seen.insert(w) {
                return Err(Refusal::DuplicateWitness);
            }
            if self.excluded.contains(&w) {
                return Err(Refusal::ExcludedWitness);
            }
            if !self.is_witness(roster, w, c.subject, c.incarnation) {
                return Err(Refusal::NotAWitness);
            }
        }
        if seen.len() < self.quorum.quorum as usize {
            return Err(Refusal::TooFewWitnesses);
        }
        Ok(())
    }

    pub fn is_excluded(&self, id: MemberId) -> bool {
        self.excluded.contains(&id)
    }

    /// Excludes `id`; returns whether it was new. Its votes stop counting.
    pub fn exclude(&mut self, id: MemberId) -> bool {
        if !self.excluded.insert(id) {
            return false;
        }
        for v in self.votes.values_mut() {
            v.retain(|u| u.origin != id);
        }
        self.rumors.retain(|(o, _), _| *o != id);
        true
    }

    /// The held copy of a rumor with the same (origin, seq) but another story, if any.
    pub fn conflicting_rumor(&self, r: &Rumor) -> Option<&Rumor> {
        self.rumors
            .get(&(r.origin, r.seq))
            .filter(|h| (h.timestamp_ms, &h.payload) != (r.timestamp_ms, &r.payload))
    }

    pub fn hold_rumor(&mut self, r: &Rumor) {
        if self.rumors.len() >= HELD_RUMORS {
            if let Some(old) = self.rumor_order.pop_front() {
                self.rumors.remove(&old);
            }
        }
        self.rumors.insert((r.origin, r.seq), r.clone());
        self.rumor_order.push_back((r.origin, r.seq));
    }

    pub fn next_check(&self) -> Option<Millis> {
        self.checks
            .values()
            .filter(|c| !c.answered)
            .map(|c| c.next_ping)
            .min()
    }
}

/// The proof that `a` and `b` (one member's signed statements) conflict.
pub(crate) fn proof(a: Message, b: Message) -> Option<EquivocationProof> {
    let (mut first, mut second) = (Vec::new(), Vec::new());
    a.encode(&mut first).ok()?;
    b.encode(&mut second).ok()?;
    Some(EquivocationProof {
        first: Bytes::from(first),
        second: Bytes::from(second),
    })
}

/// Who a proof convicts, after checking its two statements are signed by one member and
/// conflict: two rumors with one (origin, seq) and different stories, or two self statements at
/// one incarnation with different contents. The driver checks the signatures themselves.
pub(crate) fn offender(p: &EquivocationProof) -> Result<MemberId, Refusal> {
    let a = Message::decode_one(&p.first).map_err(|_| Refusal::ProofUndecodable)?;
    let b = Message::decode_one(&p.second).map_err(|_| Refusal::ProofUndecodable)?;
    match (a, b) {
        (Message::Rumor(a), Message::Rumor(b)) => {
            if a.signature.is_none() || b.signature.is_none() {
                return Err(Refusal::ProofUnsigned);
            }
            let conflict = (a.origin, a.seq) == (b.origin, b.seq)
                && (a.timestamp_ms, &a.payload) != (b.timestamp_ms, &b.payload);
            conflict.then_some(a.origin).ok_or(Refusal::ProofNoConflict)
        }
        (Message::Update(a), Message::Update(b)) => {
            if a.signature.is_none() || b.signature.is_none() {
                return Err(Refusal::ProofUnsigned);
            }
            let self_stated = |u: &Update| {
                u.origin == u.subject && matches!(u.state, MemberState::Alive | MemberState::Left)
            };
            let conflict = self_stated(&a)
                && self_stated(&b)
                && (a.subject, a.incarnation) == (b.subject, b.incarnation)
                && (a.state, a.addr) != (b.state, b.addr);
            conflict.then_some(a.origin).ok_or(Refusal::ProofNoConflict)
        }
        _ => Err(Refusal::ProofNoConflict),
    }
}
