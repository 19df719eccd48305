//! The local control socket: `rumor members`, `publish`, `keys` and benchmark harnesses talk to
//! a running node over a unix stream socket, one JSON request line and one JSON response line
//! per connection. Local only: the socket file is created 0600 in the node's state directory.
//!
//! Concurrency: the node serves requests on its control thread; each request is answered from
//! a snapshot or forwarded to the core thread, which owns the state.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest request line accepted: a rumor payload in hex plus framing.
pub const MAX_REQUEST: usize = 8 << 10;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// The node's view of the membership.
    Members,
    /// Publish a rumor (payload as hex).
    Publish { payload_hex: String },
    /// Counters and recent deliveries (since `since_ms`, unix ms).
    Stats { since_ms: u64 },
    /// Shared-key ring: list the installed ids.
    KeysList,
    /// Install a cluster key file's key into the ring.
    KeysInstall { path: String },
    /// Make an installed key the primary (sending) key.
    KeysUse { key_id: u32 },
    /// Remove a non-primary key.
    KeysRemove { key_id: u32 },
    /// Leave the cluster gracefully and exit.
    Leave,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemberView {
    pub id: u32,
    pub state: String,
    pub incarnation: u64,
    pub addr: Option<String>,
    /// This node has decided the member is dead: without the authority layer, its soft view
    /// says dead; with it, only a quorum certificate commits a death.
    #[serde(default)]
    pub committed_dead: bool,
    /// A verified equivocation proof excludes the member: its rumors are dropped, and with the
    /// authority layer it no longer counts in any quorum.
    #[serde(default)]
    pub excluded: bool,
}

/// A rumor delivered to the application, with the unix ms at which it was delivered here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Delivery {
    pub origin: u32,
    pub seq: u64,
    pub at_ms: u64,
    #[serde(default)]
    pub digest: PayloadDigest,
}

/// First 8 bytes of a payload's SHA-256: tells two stories under one (origin, seq) apart
/// without shipping payloads. Bytes on the core thread, which records one per delivered rumor;
/// hex on the control socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PayloadDigest(pub [u8; 8]);

impl Serialize for PayloadDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for PayloadDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 8];
        hex::decode_to_slice(&text, &mut out).map_err(|e| {
            serde::de::Error::custom(format!("payload digest {text:?}: {e} (want 16 hex digits)"))
        })?;
        Ok(PayloadDigest(out))
    }
}

/// The `digest` of a delivered payload.
pub fn payload_digest(payload: &[u8]) -> PayloadDigest {
    let mut out = [0u8; 8];
    out.copy_from_slice(&ring::digest::digest(&ring::digest::SHA256, payload).as_ref()[..8]);
    PayloadDigest(out)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Response {
    Members {
        me: u32,
        members: Vec<MemberView>,
    },
    Published {
        origin: u32,
        seq: u64,
        at_ms: u64,
    },
    Stats {
        counters: std::collections::BTreeMap<String, u64>,
        deliveries: Vec<Delivery>,
    },
    Keys {
        primary: u32,
        installed: Vec<u32>,
    },
    Ok,
    Error {
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("control socket {path}: no reply within {after:?}: the node is busy or hung")]
    Timeout { path: String, after: Duration },
    #[error("control socket {path}: {why}")]
    Protocol { path: String, why: String },
}

/// Sends one request to the node at `path` and returns its response.
pub fn request(path: &Path, req: &Request, timeout: Duration) -> Result<Response, ControlError> {
    let p = path.display().to_string();
    let conn = |source: std::io::Error| match source.kind() {
        // A socket timeout shows as EAGAIN ("Resource temporarily unavailable"): say what it is.
        ErrorKind::WouldBlock | ErrorKind::TimedOut => ControlError::Timeout {
            path: p.clone(),
            after: timeout,
        },
        _ => ControlError::Connect {
            path: p.clone(),
            source,
        },
    };
    let mut s = UnixStream::connect(path).map_err(conn)?;
    s.set_read_timeout(Some(timeout)).map_err(conn)?;
    s.set_write_timeout(Some(timeout)).map_err(conn)?;
    let mut line = serde_json::to_string(req).map_err(|e| ControlError::Protocol {
        path: p.clone(),
        why: e.to_string(),
    })?;
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(conn)?;
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).map_err(conn)?;
    serde_json::from_str(&reply).map_err(|e| ControlError::Protocol {
        path: p,
        why: format!("bad reply: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_is_stable() {
        let r = Request::Publish {
            payload_hex: "ab".into(),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"cmd":"publish","payload_hex":"ab"}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"stats","since_ms":5}"#).unwrap(),
            Request::Stats { since_ms: 5 }
        );
        let resp = Response::Published {
            origin: 1,
            seq: 2,
            at_ms: 3,
        };
        let text = serde_json::to_string(&resp).unwrap();
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), resp);
    }

    #[test]
    fn a_node_that_never_replies_is_a_timeout_that_names_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.sock");
        // Accepted by the kernel's backlog, never read or answered.
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let after = Duration::from_millis(50);
        let e = request(&path, &Request::Members, after).unwrap_err();
        drop(listener);
        assert!(
            matches!(e, ControlError::Timeout { after: a, .. } if a == after),
            "{e:?}"
        );
        assert!(e.to_string().contains("no reply within 50ms"), "{e}");
    }
}
