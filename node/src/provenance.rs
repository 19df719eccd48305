//! The signature checks a driver makes before the core sees a message (the core's trust
//! contract): rumor origin signatures on origin-signing suites and, with the authority layer,
//! every membership statement, every certificate witness and both halves of an equivocation
//! proof. All go through codec's one Ed25519 rule set (ZIP-215).
//! Concurrency: pure functions over read-only keys; a [`Checks`] batch belongs to one thread.

use std::collections::HashMap;

use codec::{ed25519, MemberId, MemberKeys, Message, PublicKey, Signature};
use rand::{CryptoRng, RngCore};

/// Which signatures a cluster's messages must carry.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub cluster_tag: u32,
    /// Rumors carry their origin's signature (ed25519, aead+ed25519).
    pub origin_signed: bool,
    /// The authority layer: every statement, certificate and proof is signed.
    pub authority: bool,
}

impl Rules {
    /// Whether `msg` carries signatures under these rules (what a [`Checks`] batch verifies).
    pub fn applies(&self, msg: &Message) -> bool {
        match msg {
            Message::Rumor(_) => self.origin_signed || self.authority,
            Message::Update(_) | Message::Certificate(_) | Message::Equivocation(_) => {
                self.authority
            }
            _ => false,
        }
    }

    /// Whether every signature `msg` must carry is present and valid under the roster's keys,
    /// one signature at a time: the oracle [`Checks`] is tested against.
    #[cfg(test)]
    fn check(&self, keys: &impl MemberKeys, msg: &Message) -> bool {
        self.signatures(keys, msg).is_some_and(|all| {
            all.iter()
                .all(|s| ed25519::verify(&s.key, &s.input, &s.sig).is_ok())
        })
    }

    /// The signatures `msg` must carry, or `None` when one is missing or its signer holds no
    /// admitted key (the message fails without any check). Empty when nothing is required.
    fn signatures(&self, keys: &impl MemberKeys, msg: &Message) -> Option<Vec<Signed>> {
        let signed = |who: MemberId, input: Vec<u8>, sig: Option<Signature>| {
            Some(Signed {
                key: *keys.public_key(who)?,
                input,
                sig: sig?,
            })
        };
        let tag = self.cluster_tag;
        match msg {
            Message::Rumor(r) if self.origin_signed || self.authority => {
                Some(vec![signed(r.origin, r.signing_input(tag), r.signature)?])
            }
            Message::Update(u) if self.authority => {
                Some(vec![signed(u.origin, u.signing_input(tag), u.signature)?])
            }
            Message::Certificate(c) if self.authority => c
                .witnesses()
                .map(|(w, sig)| signed(w, c.statement_for(w, tag), Some(sig)))
                .collect(),
            Message::Equivocation(p) if self.authority => {
                let mut all = Vec::new();
                for frame in [&p.first, &p.second] {
                    match Message::decode_one(frame) {
                        Ok(m @ (Message::Rumor(_) | Message::Update(_))) => {
                            all.extend(self.signatures(keys, &m)?);
                        }
                        _ => return None,
                    }
                }
                Some(all)
            }
            _ => Some(Vec::new()),
        }
    }
}

/// One signature a message carries.
#[derive(PartialEq, Eq)]
struct Signed {
    key: PublicKey,
    input: Vec<u8>,
    sig: Signature,
}

/// The provenance checks of a whole batch of datagrams, verified together ([`Checks::verify`]):
/// one Ed25519 batch instead of one check per message, and a signature carried by several of
/// the batch's messages (one rumor relayed by several peers) is checked once.
/// Concurrency: owned by the one thread that applies the batch.
#[derive(Default)]
pub struct Checks {
    signed: Vec<Signed>,
    /// Indexes into `signed` by signature bytes: a signature is checked once per key and input
    /// (the same bytes under another input or key are another check).
    by_sig: HashMap<Signature, Vec<usize>>,
    /// Per message added: its signatures (indexes into `signed`), `None` if it fails outright.
    messages: Vec<Option<Vec<usize>>>,
}

/// A message's place in a [`Checks`] batch.
#[derive(Clone, Copy, Debug)]
pub struct CheckId(usize);

impl Checks {
    /// Queues the checks `rules` ask of `msg`.
    pub fn add(&mut self, rules: &Rules, keys: &impl MemberKeys, msg: &Message) -> CheckId {
        let id = CheckId(self.messages.len());
        let signed = rules.signatures(keys, msg).map(|all| {
            all.into_iter()
                .map(|s| {
                    let same = self.by_sig.entry(s.sig).or_default();
                    match same.iter().find(|&&i| self.signed[i] == s) {
                        Some(&i) => i,
                        None => {
                            same.push(self.signed.len());
                            self.signed.push(s);
                            self.signed.len() - 1
                        }
                    }
                })
                .collect()
        });
        self.messages.push(signed);
        id
    }

    /// Distinct signatures queued so far.
    pub fn signatures(&self) -> usize {
        self.signed.len()
    }

    pub fn verify<R: RngCore + CryptoRng>(self, rng: &mut R) -> Verdicts {
        let items: Vec<ed25519::Item> = self
            .signed
            .iter()
            .map(|s| (&s.key, s.input.as_slice(), &s.sig))
            .collect();
        let good = ed25519::verify_each(&items, rng, &mut ed25519::Tally::default());
        Verdicts(
            self.messages
                .into_iter()
                .map(|m| m.is_some_and(|at| at.iter().all(|&i| good[i])))
                .collect(),
        )
    }
}

/// Whether each message of a [`Checks`] batch carries every signature it must.
pub struct Verdicts(Vec<bool>);

impl Verdicts {
    pub fn ok(&self, id: CheckId) -> bool {
        self.0[id.0]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use codec::{Certificate, EquivocationProof, MemberState, PublicKey, Rumor, SecretKey, Update};
    use rand::SeedableRng;

    use super::*;

    const TAG: u32 = 77;
    /// Origin signatures and the authority layer: every kind of signed message is checked.
    const AUTHORITY: Rules = Rules {
        cluster_tag: TAG,
        origin_signed: true,
        authority: true,
    };

    fn keys(n: u32) -> (Vec<SecretKey>, HashMap<MemberId, PublicKey>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let sks: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate(&mut rng)).collect();
        let pks = sks
            .iter()
            .enumerate()
            .map(|(i, k)| (i as u32, k.public()))
            .collect();
        (sks, pks)
    }

    fn update(origin: u32, subject: u32, state: MemberState, sk: &SecretKey) -> Update {
        let mut u = Update {
            subject,
            incarnation: 3,
            state,
            origin,
            addr: None,
            signature: None,
        };
        u.signature = Some(sk.sign(&u.signing_input(TAG)));
        u
    }

    /// A rumor of member 0, signed by `signer`.
    fn signed_rumor(seq: u64, payload: &'static [u8], signer: &SecretKey) -> Rumor {
        let mut r = Rumor {
            origin: 0,
            seq,
            timestamp_ms: 1,
            payload: payload.into(),
            signature: None,
        };
        r.signature = Some(signer.sign(&r.signing_input(TAG)));
        r
    }

    /// Members 0, 1 and 3 witnessing member 2 dead at incarnation 3.
    fn dead_votes(sk: &[SecretKey]) -> Vec<(MemberId, Signature)> {
        [0, 1, 3]
            .iter()
            .map(|&w| {
                let vote = update(w, 2, MemberState::Dead, &sk[w as usize]);
                (w, vote.signature.expect("signed"))
            })
            .collect()
    }

    fn frame(m: Message) -> bytes::Bytes {
        let mut v = Vec::new();
        m.encode(&mut v).expect("encodes");
        v.into()
    }

    #[test]
    fn statements_certificates_and_proofs() {
        let (sk, pk) = keys(4);
        let auth = AUTHORITY;
        let good = update(1, 2, MemberState::Suspect, &sk[1]);
        assert!(auth.check(&pk, &Message::Update(good.clone())));
        let forged = update(1, 2, MemberState::Suspect, &sk[3]);
        assert!(!auth.check(&pk, &Message::Update(forged.clone())));
        let unsigned = Update {
            signature: None,
            ..good.clone()
        };
        assert!(!auth.check(&pk, &Message::Update(unsigned.clone())));
        let plain = Rules {
            authority: false,
            ..auth
        };
        assert!(plain.check(&pk, &Message::Update(unsigned)));

        let votes = dead_votes(&sk);
        let cert = Certificate::new(2, 3, MemberState::Dead, &votes).unwrap();
        assert!(auth.check(&pk, &Message::Certificate(cert)));
        let mut bad = votes.clone();
        bad[2].1 = votes[0].1;
        let cert = Certificate::new(2, 3, MemberState::Dead, &bad).unwrap();
        assert!(!auth.check(&pk, &Message::Certificate(cert)));

        let rumor = |payload, sk| Message::Rumor(signed_rumor(9, payload, sk));
        let proof = EquivocationProof {
            first: frame(rumor(b"a", &sk[0])),
            second: frame(rumor(b"b", &sk[0])),
        };
        assert!(auth.check(&pk, &Message::Equivocation(proof)));
        // a framed member cannot be convicted by a forged second story
        let framed = EquivocationProof {
            first: frame(rumor(b"a", &sk[0])),
            second: frame(rumor(b"b", &sk[1])),
        };
        assert!(!auth.check(&pk, &Message::Equivocation(framed)));
        let junk = EquivocationProof {
            first: frame(Message::Update(forged)),
            second: bytes::Bytes::from_static(&[1, 2, 3]),
        };
        assert!(!auth.check(&pk, &Message::Equivocation(junk)));
    }

    #[test]
    fn a_batch_gives_each_message_the_single_verdict_and_checks_a_relayed_signature_once() {
        let (sk, pk) = keys(4);
        let rules = AUTHORITY;
        let honest = signed_rumor(1, b"a", &sk[0]);
        // The honest signature under another payload, and a rumor signed by the wrong member.
        let replayed = Rumor {
            payload: b"b".as_slice().into(),
            ..honest.clone()
        };
        let forged = signed_rumor(2, b"c", &sk[1]);
        let unsigned = Rumor {
            signature: None,
            ..signed_rumor(3, b"d", &sk[0])
        };
        let votes = dead_votes(&sk);
        let mut bad_votes = votes.clone();
        bad_votes[1].1 = votes[0].1;
        let msgs: Vec<Message> = [
            Message::Rumor(honest.clone()),
            Message::Rumor(replayed),
            Message::Rumor(honest),
            Message::Rumor(forged),
            Message::Rumor(unsigned),
            Message::Certificate(Certificate::new(2, 3, MemberState::Dead, &votes).unwrap()),
            Message::Certificate(Certificate::new(2, 3, MemberState::Dead, &bad_votes).unwrap()),
            Message::Update(update(1, 2, MemberState::Suspect, &sk[1])),
            Message::Ping { seq: 4 },
        ]
        .into_iter()
        .cycle()
        .take(27)
        .collect();
        let mut checks = Checks::default();
        let ids: Vec<CheckId> = msgs.iter().map(|m| checks.add(&rules, &pk, m)).collect();
        // The honest rumor (twice in each cycle, checked once), the replayed and the
        // forged one; three witnesses, and the one vote the bad certificate does not share;
        // the update. Three cycles add nothing.
        assert_eq!(checks.signatures(), 3 + 3 + 1 + 1);
        let verdicts = checks.verify(&mut rand::thread_rng());
        let got: Vec<bool> = ids.iter().map(|id| verdicts.ok(*id)).collect();
        let expected: Vec<bool> = msgs.iter().map(|m| rules.check(&pk, m)).collect();
        assert_eq!(got, expected);
        assert_eq!(
            &expected[..9],
            [true, false, true, false, false, true, false, true, true]
        );
    }
}
