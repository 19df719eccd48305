//! The crypto suites: how a datagram is authenticated hop by hop, and whether rumors carry an
//! end-to-end origin signature. One enum, one byte on the wire; see DESIGN.md "Crypto suites".

use std::fmt;
use std::str::FromStr;

/// A cluster-wide choice of datagram protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Suite {
    /// No protection at all: the cost baseline. Anyone can inject anything.
    None,
    /// HMAC-SHA256 with the shared cluster key: stops outsiders, not members.
    HmacSha256,
    /// AES-256-GCM with a per-boot subkey of the shared cluster key: as HMAC, plus confidentiality.
    Aes256Gcm,
    /// ChaCha20-Poly1305, same construction as `Aes256Gcm`.
    ChaCha20Poly1305,
    /// Each hop signed by its sender; rumors also carry their origin's signature.
    Ed25519,
    /// AES-256-GCM per hop; rumors carry their origin's Ed25519 signature end to end.
    AeadEd25519,
}

/// What a suite protects one hop with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HopAuth {
    None,
    Mac,
    Aead(AeadAlg),
    Signature,
}

/// AEAD algorithms, all with 256-bit keys, 96-bit nonces and 128-bit tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AeadAlg {
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl AeadAlg {
    pub(crate) fn ring(self) -> &'static ring::aead::Algorithm {
        match self {
            AeadAlg::Aes256Gcm => &ring::aead::AES_256_GCM,
            AeadAlg::ChaCha20Poly1305 => &ring::aead::CHACHA20_POLY1305,
        }
    }
}

impl Suite {
    pub const ALL: [Suite; 6] = [
        Suite::None,
        Suite::HmacSha256,
        Suite::Aes256Gcm,
        Suite::ChaCha20Poly1305,
        Suite::Ed25519,
        Suite::AeadEd25519,
    ];

    /// The wire byte. Stable: changing one is a protocol version change.
    pub const fn id(self) -> u8 {
        match self {
            Suite::None => 0,
            Suite::HmacSha256 => 1,
            Suite::Aes256Gcm => 2,
            Suite::ChaCha20Poly1305 => 3,
            Suite::Ed25519 => 4,
            Suite::AeadEd25519 => 5,
        }
    }

    pub fn from_id(id: u8) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The name used by flags, config files and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Suite::None => "none",
            Suite::HmacSha256 => "hmac-sha256",
            Suite::Aes256Gcm => "aes-256-gcm",
            Suite::ChaCha20Poly1305 => "chacha20-poly1305",
            Suite::Ed25519 => "ed25519",
            Suite::AeadEd25519 => "aead+ed25519",
        }
    }

    pub const fn hop(self) -> HopAuth {
        match self {
            Suite::None => HopAuth::None,
            Suite::HmacSha256 => HopAuth::Mac,
            Suite::Aes256Gcm | Suite::AeadEd25519 => HopAuth::Aead(AeadAlg::Aes256Gcm),
            Suite::ChaCha20Poly1305 => HopAuth::Aead(AeadAlg::ChaCha20Poly1305),
            Suite::Ed25519 => HopAuth::Signature,
        }
    }

    /// Whether rumors carry an Ed25519 signature by their origin, checked end to end.
    pub const fn signs_origin(self) -> bool {
        matches!(self, Suite::Ed25519 | Suite::AeadEd25519)
    }

    /// Whether a receiver can tell which member wrote a statement (not just "some key holder").
    /// The authority layer refuses to run without it.
    pub const fn per_member_provenance(self) -> bool {
        self.signs_origin()
    }

    /// Whether the suite uses the shared cluster key ring.
    pub const fn uses_cluster_key(self) -> bool {
        matches!(self.hop(), HopAuth::Mac | HopAuth::Aead(_))
    }

    /// Whether members need an Ed25519 key pair.
    pub const fn uses_member_key(self) -> bool {
        self.signs_origin()
    }

    /// Bytes after the body: MAC, AEAD tag or signature.
    pub const fn trailer_len(self) -> usize {
        match self.hop() {
            HopAuth::None => 0,
            HopAuth::Mac => crate::header::MAC_LEN,
            HopAuth::Aead(_) => crate::header::AEAD_TAG_LEN,
            HopAuth::Signature => crate::ed25519::SIGNATURE_LEN,
        }
    }

    /// Whether the header carries the per-boot salt that AEAD subkeys are derived from.
    pub const fn has_salt(self) -> bool {
        matches!(self.hop(), HopAuth::Aead(_))
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name given was not one of [`Suite::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown suite {0:?}; expected one of: none, hmac-sha256, aes-256-gcm, chacha20-poly1305, ed25519, aead+ed25519")]
pub struct UnknownSuite(pub String);

impl FromStr for Suite {
    type Err = UnknownSuite;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Suite::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| UnknownSuite(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_round_trip() {
        for s in Suite::ALL {
            assert_eq!(Suite::from_id(s.id()), Some(s));
            assert_eq!(s.name().parse::<Suite>().unwrap(), s);
        }
        assert!(Suite::from_id(200).is_none());
        assert!("rot13".parse::<Suite>().is_err());
    }
}
