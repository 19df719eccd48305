//! The roster: the admitted members' public keys (and optional addresses), signed by the
//! cluster authority key. Only roster keys count, in any quorum or in n: the Sybil defense.
//!
//! ```toml
//! type = "rumor-roster"
//! version = 1
//! cluster = "prod-eu"           # its hash is the datagram cluster tag
//! serial = 3                    # a node never goes back to a lower serial
//! authority = "<hex public key>"
//! signature = "<hex>"           # authority's Ed25519 signature over `signed_bytes`
//! [[member]]
//! id = 0
//! key = "<hex public key>"
//! addr = "10.0.0.1:7946"        # optional
//! ```
//! Loading verifies the signature (ZIP-215, as everywhere), refuses duplicate ids or keys and
//! keys that fail admission (small order, torsion, non-canonical: `ed25519.rs`), and checks the
//! authority against the one the node pins.
//!
//! Concurrency: immutable once loaded; share it behind an `Arc`.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ed25519::{self, PublicKey, SecretKey, Signature};
use crate::files::{read_small, ReadError};
use crate::header::MemberId;
use crate::keyfile::public_key_from_hex;
use crate::seal::MemberKeys;

pub const ROSTER_TYPE: &str = "rumor-roster";
pub const ROSTER_VERSION: u32 = 1;
const DOMAIN: &[u8] = b"rumor-roster-v1";
/// A roster larger than this is refused before parsing (1 M members of ~150 bytes each).
const MAX_ROSTER_FILE: u64 = 160 << 20;

/// One admitted member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterMember {
    pub id: MemberId,
    pub key: PublicKey,
    pub addr: Option<SocketAddr>,
}

/// A verified roster.
#[derive(Clone, Debug)]
pub struct Roster {
    pub cluster: String,
    pub serial: u64,
    pub authority: PublicKey,
    members: BTreeMap<MemberId, RosterMember>,
    /// Dense id-indexed view for O(1) key lookups on the receive path.
    by_id: Vec<Option<PublicKey>>,
}

#[derive(Debug, thiserror::Error)]
#[error("roster {}: {problem}", path.display())]
pub struct RosterFileError {
    pub path: PathBuf,
    pub problem: RosterError,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RosterError {
    #[error("not found")]
    Missing,
    #[error("cannot be read: {0}")]
    Unreadable(String),
    #[error("is not a rumor roster ({0})")]
    Malformed(String),
    #[error("has version {0}, this build reads version {ROSTER_VERSION}")]
    UnsupportedVersion(u32),
    #[error("member {id}: {why}")]
    BadMember { id: MemberId, why: String },
    #[error("member id {0} appears twice")]
    DuplicateId(MemberId),
    #[error("members {0} and {1} share one key")]
    DuplicateKey(MemberId, MemberId),
    #[error("authority signature does not verify")]
    BadSignature,
    #[error("signed by authority {found}, but this node trusts {pinned}")]
    WrongAuthority { found: String, pinned: String },
    #[error("member id {0} is too large (ids index a table; keep them below {MAX_MEMBER_ID})")]
    IdTooLarge(MemberId),
    #[error("has no members")]
    Empty,
}

/// Ids index dense tables everywhere (membership, windows): bounded so a roster cannot make a
/// node allocate gigabytes.
pub const MAX_MEMBER_ID: MemberId = 1 << 20;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterDoc {
    #[serde(rename = "type")]
    kind: String,
    version: u32,
    cluster: String,
    serial: u64,
    authority: String,
    signature: String,
    #[serde(default, rename = "member")]
    members: Vec<MemberDoc>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberDoc {
    id: MemberId,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    addr: Option<SocketAddr>,
}

/// The bytes the authority signs: domain, cluster, serial and every member in id order.
fn signed_bytes(cluster: &str, serial: u64, members: &BTreeMap<MemberId, RosterMember>) -> Vec<u8> {
    let mut v = Vec::with_capacity(64 + members.len() * 64);
    v.extend_from_slice(DOMAIN);
    v.extend_from_slice(&(cluster.len() as u64).to_be_bytes());
    v.extend_from_slice(cluster.as_bytes());
    v.extend_from_slice(&serial.to_be_bytes());
    v.extend_from_slice(&(members.len() as u64).to_be_bytes());
    for m in members.values() {
        v.extend_from_slice(&m.id.to_be_bytes());
        v.extend_from_slice(&m.key.to_bytes());
        let addr = m.addr.map(|a| a.to_string()).unwrap_or_default();
        v.extend_from_slice(&(addr.len() as u64).to_be_bytes());
        v.extend_from_slice(addr.as_bytes());
    }
    v
}

impl Roster {
    /// Checks members for admission and builds the roster (unsigned: see [`Roster::write`]).
    pub fn new(
        cluster: &str,
        serial: u64,
        authority: PublicKey,
        members: Vec<RosterMember>,
    ) -> Result<Roster, RosterError> {
        if members.is_empty() {
            return Err(RosterError::Empty);
        }
        let mut map = BTreeMap::new();
        let mut keys: BTreeMap<[u8; 32], MemberId> = BTreeMap::new();
        for m in members {
            if m.id >= MAX_MEMBER_ID {
                return Err(RosterError::IdTooLarge(m.id));
            }
            m.key
                .check_admissible()
                .map_err(|e| RosterError::BadMember {
                    id: m.id,
                    why: e.to_string(),
                })?;
            if let Some(&other) = keys.get(&m.key.to_bytes()) {
                return Err(RosterError::DuplicateKey(other, m.id));
            }
            keys.insert(m.key.to_bytes(), m.id);
            if map.insert(m.id, m.clone()).is_some() {
                return Err(RosterError::DuplicateId(m.id));
            }
        }
        let top = map.keys().next_back().map_or(0, |&id| id as usize + 1);
        let mut by_id = vec![None; top];
        for m in map.values() {
            by_id[m.id as usize] = Some(m.key);
        }
        Ok(Roster {
            cluster: cluster.to_string(),
            serial,
            authority,
            members: map,
            by_id,
        })
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    pub fn members(&self) -> impl Iterator<Item = &RosterMember> {
        self.members.values()
    }
    pub fn get(&self, id: MemberId) -> Option<&RosterMember> {
        self.members.get(&id)
    }
    /// The member whose key this is, if admitted.
    pub fn id_of(&self, key: &PublicKey) -> Option<MemberId> {
        self.members.values().find(|m| m.key == *key).map(|m| m.id)
    }
    pub fn cluster_tag(&self) -> u32 {
        crate::header::cluster_tag(&self.cluster)
    }

    /// Signs with the authority key and writes the roster file.
    pub fn write(&self, path: &Path, authority: &SecretKey) -> Result<(), RosterFileError> {
        let err = |problem| RosterFileError {
            path: path.into(),
            problem,
        };
        if authority.public() != self.authority {
            return Err(err(RosterError::WrongAuthority {
                found: hex::encode(authority.public().to_bytes()),
                pinned: hex::encode(self.authority.to_bytes()),
            }));
        }
        let sig = authority.sign(&signed_bytes(&self.cluster, self.serial, &self.members));
        let doc = RosterDoc {
            kind: ROSTER_TYPE.into(),
            version: ROSTER_VERSION,
            cluster: self.cluster.clone(),
            serial: self.serial,
            authority: hex::encode(self.authority.to_bytes()),
            signature: hex::encode(sig.to_bytes()),
            members: self
                .members
                .values()
                .map(|m| MemberDoc {
                    id: m.id,
                    key: hex::encode(m.key.to_bytes()),
                    addr: m.addr,
                })
                .collect(),
        };
        let text = toml::to_string(&doc).map_err(|e| err(RosterError::Malformed(e.to_string())))?;
        std::fs::write(path, text).map_err(|e| err(RosterError::Unreadable(e.to_string())))
    }

    /// Loads and verifies a roster file. `pinned`: the authority this node trusts (None: accept
    /// the file's own authority, for tools that only inspect a roster).
    pub fn load(path: &Path, pinned: Option<&PublicKey>) -> Result<Roster, RosterFileError> {
        let err = |problem| RosterFileError {
            path: path.into(),
            problem,
        };
        let (raw, _) = read_small(path, MAX_ROSTER_FILE).map_err(|e| {
            err(match e {
                ReadError::Missing => RosterError::Missing,
                ReadError::NotAFile => RosterError::Malformed("not a regular file".into()),
                ReadError::TooLarge(n) => RosterError::Malformed(format!("{n} bytes is too large")),
                ReadError::Unreadable(e) => RosterError::Unreadable(e.to_string()),
            })
        })?;
        let text = std::str::from_utf8(&raw)
            .map_err(|_| err(RosterError::Malformed("not UTF-8 text".into())))?;
        Self::parse(text, pinned).map_err(err)
    }

    fn parse(text: &str, pinned: Option<&PublicKey>) -> Result<Roster, RosterError> {
        let doc: RosterDoc =
            toml::from_str(text).map_err(|e| RosterError::Malformed(e.message().to_string()))?;
        if doc.kind != ROSTER_TYPE {
            return Err(RosterError::Malformed(format!(
                "type {:?}, expected {ROSTER_TYPE:?}",
                doc.kind
            )));
        }
        if doc.version != ROSTER_VERSION {
            return Err(RosterError::UnsupportedVersion(doc.version));
        }
        let authority = public_key_from_hex(&doc.authority)
            .map_err(|why| RosterError::Malformed(format!("authority: {why}")))?;
        if let Some(p) = pinned {
            if *p != authority {
                return Err(RosterError::WrongAuthority {
                    found: doc.authority.clone(),
                    pinned: hex::encode(p.to_bytes()),
                });
            }
        }
        let mut members = Vec::with_capacity(doc.members.len());
        for m in &doc.members {
            let key = public_key_from_hex(&m.key)
                .map_err(|why| RosterError::BadMember { id: m.id, why })?;
            members.push(RosterMember {
                id: m.id,
                key,
                addr: m.addr,
            });
        }
        let roster = Roster::new(&doc.cluster, doc.serial, authority, members)?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(doc.signature.trim(), &mut sig)
            .map_err(|_| RosterError::BadSignature)?;
        ed25519::verify(
            &authority,
            &signed_bytes(&roster.cluster, roster.serial, &roster.members),
            &Signature::from_bytes(sig),
        )
        .map_err(|_| RosterError::BadSignature)?;
        Ok(roster)
    }

    /// Ids of members whose keys are in `keys` (for tests and tools).
    pub fn ids(&self) -> HashSet<MemberId> {
        self.members.keys().copied().collect()
    }
}

impl MemberKeys for Roster {
    fn public_key(&self, member: MemberId) -> Option<&PublicKey> {
        self.by_id.get(member as usize).and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;

    fn members(n: u32) -> (Vec<SecretKey>, Vec<RosterMember>) {
        let mut rng = rand::thread_rng();
        let sks: Vec<_> = (0..n).map(|_| SecretKey::generate(&mut rng)).collect();
        let ms = sks
            .iter()
            .enumerate()
            .map(|(i, sk)| RosterMember {
                id: i as u32,
                key: sk.public(),
                addr: None,
            })
            .collect();
        (sks, ms)
    }

    #[test]
    fn sign_load_and_lookup() {
        let auth = SecretKey::generate(&mut rand::thread_rng());
        let (_, ms) = members(5);
        let r = Roster::new("c", 1, auth.public(), ms.clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("roster.toml");
        r.write(&p, &auth).unwrap();
        let l = Roster::load(&p, Some(&auth.public())).unwrap();
        assert_eq!(l.len(), 5);
        assert_eq!(l.public_key(3), Some(&ms[3].key));
        assert_eq!(l.public_key(5), None);
        assert_eq!(l.public_key(u32::MAX), None);
        // another authority pinned
        let other = SecretKey::generate(&mut rand::thread_rng());
        assert!(matches!(
            Roster::load(&p, Some(&other.public())).unwrap_err().problem,
            RosterError::WrongAuthority { .. }
        ));
        // tampering with a member key or serial breaks the signature
        let text = std::fs::read_to_string(&p).unwrap();
        let tampered = text.replace("serial = 1", "serial = 2");
        assert_eq!(
            Roster::parse(&tampered, None).unwrap_err(),
            RosterError::BadSignature
        );
        let (_, extra) = members(1);
        let swapped = text.replace(
            &hex::encode(ms[2].key.to_bytes()),
            &hex::encode(extra[0].key.to_bytes()),
        );
        assert_eq!(
            Roster::parse(&swapped, None).unwrap_err(),
            RosterError::BadSignature
        );
        assert!(matches!(
            Roster::load(&dir.path().join("missing.toml"), None)
                .unwrap_err()
                .problem,
            RosterError::Missing
        ));
    }

    #[test]
    fn admission_refuses_bad_keys_and_duplicates() {
        let auth = SecretKey::generate(&mut rand::thread_rng()).public();
        let (_, mut ms) = members(3);
        let small = PublicKey::from_bytes(EIGHT_TORSION[2].compress().to_bytes()).unwrap();
        ms.push(RosterMember {
            id: 9,
            key: small,
            addr: None,
        });
        assert!(matches!(
            Roster::new("c", 1, auth, ms.clone()),
            Err(RosterError::BadMember { id: 9, .. })
        ));
        ms.pop();
        let dup = RosterMember {
            id: 7,
            ..ms[0].clone()
        };
        assert_eq!(
            Roster::new("c", 1, auth, [ms.clone(), vec![dup]].concat()).unwrap_err(),
            RosterError::DuplicateKey(0, 7)
        );
        let (_, more) = members(1);
        let same_id = RosterMember {
            id: 1,
            ..more[0].clone()
        };
        assert_eq!(
            Roster::new("c", 1, auth, [ms.clone(), vec![same_id]].concat()).unwrap_err(),
            RosterError::DuplicateId(1)
        );
        let big = RosterMember {
            id: MAX_MEMBER_ID,
            ..more[0].clone()
        };
        assert_eq!(
            Roster::new("c", 1, auth, vec![big]).unwrap_err(),
            RosterError::IdTooLarge(MAX_MEMBER_ID)
        );
        assert_eq!(
            Roster::new("c", 1, auth, vec![]).unwrap_err(),
            RosterError::Empty
        );
    }
}
