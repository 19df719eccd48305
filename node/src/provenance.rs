//! The signature checks a driver makes before the core sees a message (the core's trust
//! contract): rumor origin signatures on origin-signing suites and, with the authority layer,
//! every membership statement, every certificate witness and both halves of an equivocation
//! proof. All go through codec's one Ed25519 rule set (ZIP-215).
//! Concurrency: pure functions over read-only keys.

use codec::{ed25519, MemberId, MemberKeys, Message, Signature};

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
    /// Whether `msg` carries signatures under these rules (what [`Rules::check`] would verify).
    pub fn applies(&self, msg: &Message) -> bool {
        match msg {
            Message::Rumor(_) => self.origin_signed || self.authority,
            Message::Update(_) | Message::Certificate(_) | Message::Equivocation(_) => {
                self.authority
            }
            _ => false,
        }
    }

    /// Whether every signature `msg` must carry is present and valid under the roster's keys.
    pub fn check(&self, keys: &impl MemberKeys, msg: &Message) -> bool {
        let signed =
            |who: MemberId, input: &[u8], sig: Option<Signature>| match (sig, keys.public_key(who))
            {
                (Some(sig), Some(key)) => ed25519::verify(key, input, &sig).is_ok(),
                _ => false,
            };
        let tag = self.cluster_tag;
        match msg {
            Message::Rumor(r) if self.origin_signed || self.authority => {
                signed(r.origin, &r.signing_input(tag), r.signature)
            }
            Message::Update(u) if self.authority => {
                signed(u.origin, &u.signing_input(tag), u.signature)
            }
            Message::Certificate(c) if self.authority => c
                .witnesses()
                .all(|(w, sig)| signed(w, &c.statement_for(w, tag), Some(sig))),
            Message::Equivocation(p) if self.authority => {
                [&p.first, &p.second]
                    .into_iter()
                    .all(|frame| match Message::decode_one(frame) {
                        Ok(m @ (Message::Rumor(_) | Message::Update(_))) => self.check(keys, &m),
                        _ => false,
                    })
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use codec::{Certificate, EquivocationProof, MemberState, PublicKey, Rumor, SecretKey, Update};
    use rand::SeedableRng;

    use super::*;

    const TAG: u32 = 77;

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

    fn frame(m: Message) -> bytes::Bytes {
        let mut v = Vec::new();
        m.encode(&mut v).expect("encodes");
        v.into()
    }

    #[test]
    fn statements_certificates_and_proofs() {
        let (sk, pk) = keys(4);
        let auth = Rules {
            cluster_tag: TAG,
            origin_signed: true,
            authority: true,
        };
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

        let votes: Vec<_> = [0, 1, 3]
            .iter()
            .map(|&w| {
                (
                    w,
                    update(w, 2, MemberState::Dead, &sk[w as usize])
                        .signature
                        .unwrap(),
                )
            })
            .collect();
        let cert = Certificate::new(2, 3, MemberState::Dead, &votes).unwrap();
        assert!(auth.check(&pk, &Message::Certificate(cert)));
        let mut bad = votes.clone();
        bad[2].1 = votes[0].1;
        let cert = Certificate::new(2, 3, MemberState::Dead, &bad).unwrap();
        assert!(!auth.check(&pk, &Message::Certificate(cert)));

        let rumor = |payload: &'static [u8], sk: &SecretKey| {
            let mut r = Rumor {
                origin: 0,
                seq: 9,
                timestamp_ms: 1,
                payload: payload.into(),
                signature: None,
            };
            r.signature = Some(sk.sign(&r.signing_input(TAG)));
            Message::Rumor(r)
        };
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
}
