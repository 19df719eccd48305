//! Key files: small TOML documents with a type and a version, so a cluster key is never loaded
//! where a member key is expected and a future format is refused rather than misread.
//!
//! ```toml
//! type = "rumor-member-key"      # or "rumor-authority-key", "rumor-cluster-key"
//! version = 1
//! secret = "<64 hex digits>"
//! public = "<64 hex digits>"     # member keys: checked against the secret on load
//! key_id = 1                     # cluster keys: the id in datagram headers
//! ```
//! Secret files are written 0600 and refused when group or others can read them.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ed25519::{PublicKey, SecretKey};
use crate::files::{read_small, ReadError};
use crate::keys::ClusterKey;

pub const MEMBER_KEY_TYPE: &str = "rumor-member-key";
pub const AUTHORITY_KEY_TYPE: &str = "rumor-authority-key";
pub const CLUSTER_KEY_TYPE: &str = "rumor-cluster-key";

/// What an Ed25519 key file is for: a member's identity, or the cluster authority that signs
/// rosters. Distinct types so one is never loaded where the other is expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningRole {
    Member,
    Authority,
}

impl SigningRole {
    fn file_type(self) -> &'static str {
        match self {
            SigningRole::Member => MEMBER_KEY_TYPE,
            SigningRole::Authority => AUTHORITY_KEY_TYPE,
        }
    }
}
pub const KEY_FILE_VERSION: u32 = 1;
/// A key file is a few hundred bytes; anything far larger is not one, and is not read whole.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// A key file could not be used. Always names the file.
#[derive(Debug, thiserror::Error)]
#[error("key file {}: {problem}", path.display())]
pub struct KeyFileError {
    pub path: PathBuf,
    pub problem: KeyFileProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileProblem {
    #[error("not found (create it with `rumor keygen`)")]
    Missing,
    #[error("cannot be read: {0}")]
    Unreadable(std::io::Error),
    #[error("is {0} bytes, too large to be a key file")]
    TooLarge(u64),
    #[error("is not a regular file")]
    NotAFile,
    #[error("is not a rumor key file ({0})")]
    Malformed(String),
    #[error("has type {found:?}, expected {expected:?}")]
    WrongType {
        expected: &'static str,
        found: String,
    },
    #[error("has version {0}, this build reads version {KEY_FILE_VERSION}")]
    UnsupportedVersion(u32),
    #[error("field `{field}` is invalid: {why}")]
    BadField { field: &'static str, why: String },
    #[error("permissions {0:04o} let group or others read a secret; run `chmod 600` on it")]
    TooOpen(u32),
    #[error("already exists; refusing to overwrite a key")]
    Exists,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyDoc {
    #[serde(rename = "type")]
    kind: String,
    version: u32,
    secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<u32>,
}

/// An Ed25519 signing key (member or authority) loaded from a file.
#[derive(Debug)]
pub struct SigningKeyFile {
    pub secret: SecretKey,
}

/// A cluster key loaded from a file, with its ring id.
#[derive(Debug)]
pub struct ClusterKeyFile {
    pub key_id: u32,
    pub key: ClusterKey,
}

fn err(path: &Path, problem: KeyFileProblem) -> KeyFileError {
    KeyFileError {
        path: path.to_path_buf(),
        problem,
    }
}

fn read_doc(path: &Path, expected: &'static str) -> Result<KeyDoc, KeyFileError> {
    let (raw, meta) = read_small(path, MAX_KEY_FILE_LEN).map_err(|e| {
        err(
            path,
            match e {
                ReadError::Missing => KeyFileProblem::Missing,
                ReadError::NotAFile => KeyFileProblem::NotAFile,
                ReadError::TooLarge(n) => KeyFileProblem::TooLarge(n),
                ReadError::Unreadable(e) => KeyFileProblem::Unreadable(e),
            },
        )
    })?;
    let text = std::str::from_utf8(&raw)
        .map_err(|_| err(path, KeyFileProblem::Malformed("not UTF-8 text".into())))?;
    let doc: KeyDoc = toml::from_str(text).map_err(|e| {
        let first = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_string();
        err(path, KeyFileProblem::Malformed(first))
    })?;
    if doc.kind != expected {
        return Err(err(
            path,
            KeyFileProblem::WrongType {
                expected,
                found: doc.kind,
            },
        ));
    }
    if doc.version != KEY_FILE_VERSION {
        return Err(err(path, KeyFileProblem::UnsupportedVersion(doc.version)));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(err(path, KeyFileProblem::TooOpen(mode)));
    }
    Ok(doc)
}

fn hex32(path: &Path, field: &'static str, s: &str) -> Result<[u8; 32], KeyFileError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|e| {
        err(
            path,
            KeyFileProblem::BadField {
                field,
                why: format!("{e} (want 64 hex digits)"),
            },
        )
    })?;
    Ok(out)
}

fn write_doc(path: &Path, doc: &KeyDoc) -> Result<(), KeyFileError> {
    let text =
        toml::to_string(doc).map_err(|e| err(path, KeyFileProblem::Malformed(e.to_string())))?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => err(path, KeyFileProblem::Exists),
            _ => err(path, KeyFileProblem::Unreadable(e)),
        })?;
    f.write_all(format!("# rumor key file: keep secret\n{text}").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| err(path, KeyFileProblem::Unreadable(e)))
}

impl SigningKeyFile {
    pub fn load(path: &Path, role: SigningRole) -> Result<SigningKeyFile, KeyFileError> {
        let doc = read_doc(path, role.file_type())?;
        let secret = SecretKey::from_seed(hex32(path, "secret", &doc.secret)?);
        let public = doc.public.as_deref().ok_or_else(|| {
            err(
                path,
                KeyFileProblem::BadField {
                    field: "public",
                    why: "missing".into(),
                },
            )
        })?;
        if hex32(path, "public", public)? != secret.public().to_bytes() {
            return Err(err(
                path,
                KeyFileProblem::BadField {
                    field: "public",
                    why: "does not match the secret key".into(),
                },
            ));
        }
        Ok(SigningKeyFile { secret })
    }

    pub fn write(path: &Path, role: SigningRole, secret: &SecretKey) -> Result<(), KeyFileError> {
        write_doc(
            path,
            &KeyDoc {
                kind: role.file_type().into(),
                version: KEY_FILE_VERSION,
                secret: hex::encode(secret.seed()),
                public: Some(hex::encode(secret.public().to_bytes())),
                key_id: None,
            },
        )
    }
}

impl ClusterKeyFile {
    pub fn load(path: &Path) -> Result<ClusterKeyFile, KeyFileError> {
        let doc = read_doc(path, CLUSTER_KEY_TYPE)?;
        let key = ClusterKey::from_bytes(hex32(path, "secret", &doc.secret)?);
        let key_id = doc.key_id.ok_or_else(|| {
            err(
                path,
                KeyFileProblem::BadField {
                    field: "key_id",
                    why: "missing".into(),
                },
            )
        })?;
        Ok(ClusterKeyFile { key_id, key })
    }

    pub fn write(path: &Path, key_id: u32, key: &ClusterKey) -> Result<(), KeyFileError> {
        write_doc(
            path,
            &KeyDoc {
                kind: CLUSTER_KEY_TYPE.into(),
                version: KEY_FILE_VERSION,
                secret: hex::encode(key.bytes()),
                public: None,
                key_id: Some(key_id),
            },
        )
    }
}

/// Parses a public key given as 64 hex digits (rosters, CLI).
pub fn public_key_from_hex(s: &str) -> Result<PublicKey, String> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut b).map_err(|e| format!("{e} (want 64 hex digits)"))?;
    PublicKey::from_bytes(b).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn member_and_cluster_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let sk = SecretKey::generate(&mut rand::thread_rng());
        SigningKeyFile::write(&d.join("m.key"), SigningRole::Member, &sk).unwrap();
        assert_eq!(
            SigningKeyFile::load(&d.join("m.key"), SigningRole::Member)
                .unwrap()
                .secret
                .public(),
            sk.public()
        );
        assert!(matches!(
            SigningKeyFile::write(&d.join("m.key"), SigningRole::Member, &sk)
                .unwrap_err()
                .problem,
            KeyFileProblem::Exists
        ));
        let ck = ClusterKey::generate(&mut rand::thread_rng());
        ClusterKeyFile::write(&d.join("c.key"), 7, &ck).unwrap();
        let l = ClusterKeyFile::load(&d.join("c.key")).unwrap();
        assert_eq!((l.key_id, l.key.bytes()), (7, ck.bytes()));
        // wrong type every way
        assert!(matches!(
            SigningKeyFile::load(&d.join("m.key"), SigningRole::Authority)
                .unwrap_err()
                .problem,
            KeyFileProblem::WrongType { .. }
        ));
        assert!(matches!(
            SigningKeyFile::load(&d.join("c.key"), SigningRole::Member)
                .unwrap_err()
                .problem,
            KeyFileProblem::WrongType { .. }
        ));
        assert!(matches!(
            ClusterKeyFile::load(&d.join("m.key")).unwrap_err().problem,
            KeyFileProblem::WrongType { .. }
        ));
    }

    #[test]
    fn every_bad_file_is_named_and_typed() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let write = |name: &str, body: &[u8], mode: u32| {
            let p = d.join(name);
            fs::write(&p, body).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let sk = SecretKey::generate(&mut rand::thread_rng());
        let good = format!(
            "type = \"rumor-member-key\"\nversion = 1\nsecret = \"{}\"\npublic = \"{}\"\n",
            hex::encode(sk.seed()),
            hex::encode(sk.public().to_bytes())
        );
        type Want = fn(&KeyFileProblem) -> bool;
        let cases: Vec<(PathBuf, Want)> = vec![
            (d.join("absent.key"), |p| {
                matches!(p, KeyFileProblem::Missing)
            }),
            (write("trunc.key", &good.as_bytes()[..20], 0o600), |p| {
                matches!(p, KeyFileProblem::Malformed(_))
            }),
            (write("bin.key", &[0xff, 0xfe, 0, 1, 2], 0o600), |p| {
                matches!(p, KeyFileProblem::Malformed(_))
            }),
            (write("open.key", good.as_bytes(), 0o644), |p| {
                matches!(p, KeyFileProblem::TooOpen(0o644))
            }),
            (
                write(
                    "v2.key",
                    good.replace("version = 1", "version = 2").as_bytes(),
                    0o600,
                ),
                |p| matches!(p, KeyFileProblem::UnsupportedVersion(2)),
            ),
            (
                write(
                    "short.key",
                    good.replacen(&hex::encode(sk.seed()), "abcd", 1).as_bytes(),
                    0o600,
                ),
                |p| {
                    matches!(
                        p,
                        KeyFileProblem::BadField {
                            field: "secret",
                            ..
                        }
                    )
                },
            ),
            (
                write(
                    "mismatch.key",
                    good.replacen(&hex::encode(sk.seed()), &"11".repeat(32), 1)
                        .as_bytes(),
                    0o600,
                ),
                |p| {
                    matches!(
                        p,
                        KeyFileProblem::BadField {
                            field: "public",
                            ..
                        }
                    )
                },
            ),
            (write("big.key", &vec![b'#'; 10_000], 0o600), |p| {
                matches!(p, KeyFileProblem::TooLarge(_))
            }),
        ];
        for (path, want) in cases {
            let e =
                SigningKeyFile::load(&path, SigningRole::Member).expect_err("bad file accepted");
            assert!(want(&e.problem), "{}: {}", path.display(), e);
            assert!(e.to_string().contains(&path.display().to_string()));
        }
    }
}
