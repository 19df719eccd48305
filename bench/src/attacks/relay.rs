//! An on-path relay in front of one honest node, for the tamperer and the replayer.
//!
//! Honest nodes learn each other's addresses from signed-or-not Alive statements, so a roster
//! entry pointing at a relay is bypassed as soon as the target announces itself. The relay
//! therefore joins the target's own `SO_REUSEPORT` group (same user, same port): the kernel then
//! hands it the flows whose 4-tuple hashes to one of its sockets, as a router on the path would
//! see them. Everything it takes it passes on to the target from a forwarder socket whose flow
//! hashes to the target's own socket (found by probing), tampered or captured on the way.
//!
//! Concurrency: one receive thread per relay socket; they share the forwarder and the relay's
//! state (budget, captures) behind a mutex. [`Relay::close`] stops them and leaves the group.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use codec::header::Header;
use codec::suite::HopAuth;
use codec::{Message, Suite};
use socket2::{Domain, Socket, Type};

/// Relay sockets in the target's group (the target has one: the harness runs one io thread):
/// each honest flow is the relay's with probability 15/16, so at least one of the target's three
/// honest peers passes through it except with probability 16^-3 (1 in 4,096). With 7 sockets
/// that was 1 in 512, and over the matrix's 14 relay cells it happened: a chacha20-poly1305
/// tamperer saw no honest flow in one run (2026-12-05).
const RELAY_SOCKETS: usize = 15;
/// Forwarder candidates tried; each reaches the target with probability 1/16, so all of them
/// miss with probability (15/16)^300, about 4e-9.
const FORWARDER_TRIES: usize = 300;
/// A probe that loops back to the relay does so within this on loopback.
const PROBE_WAIT: Duration = Duration::from_millis(15);
const RECV_WAIT: Duration = Duration::from_millis(20);
const RECV_BUF: usize = 65_536;

/// What the relay does to the datagrams that pass through it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    /// Flip one byte of the first `budget` datagrams that carry a rumor (found in the plaintext
    /// where the suite has one; by size where the body is encrypted).
    Tamper { budget: usize, min_rumor_len: usize },
    /// Keep copies of the first `budget` datagrams.
    Capture { budget: usize },
}

/// A datagram the relay kept, with when it passed.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub(crate) bytes: Vec<u8>,
    pub(crate) at: Instant,
}

#[derive(Default)]
struct State {
    tampered: usize,
    captured: Vec<Captured>,
    passed: u64,
}

struct Shared {
    suite: Suite,
    mode: Mode,
    target: SocketAddr,
    forwarder: UdpSocket,
    state: Mutex<State>,
    stop: AtomicBool,
}

pub(crate) struct Relay {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Joins `target`'s reuse-port group and starts relaying.
    pub(crate) fn start(target: SocketAddr, suite: Suite, mode: Mode) -> anyhow::Result<Relay> {
        let mut socks = Vec::with_capacity(RELAY_SOCKETS);
        for _ in 0..RELAY_SOCKETS {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
            s.set_reuse_port(true)?;
            s.bind(&target.into())
                .with_context(|| format!("joining the reuse-port group of {target}"))?;
            let s: UdpSocket = s.into();
            s.set_nonblocking(true)?;
            socks.push(s);
        }
        let mut held = Vec::new();
        let forwarder = find_forwarder(target, &socks, &mut held)?;
        let shared = Arc::new(Shared {
            suite,
            mode,
            target,
            forwarder,
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
        });
        // What arrived while probing is the target's traffic: pass it on.
        for d in held {
            shared.pass(d);
        }
        let mut threads = Vec::with_capacity(socks.len());
        for s in socks {
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(RECV_WAIT))?;
            let sh = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name("relay".into())
                    .spawn(move || sh.relay_loop(&s))?,
            );
        }
        Ok(Relay { shared, threads })
    }

    pub(crate) fn tampered(&self) -> usize {
        self.shared.state().tampered
    }

    pub(crate) fn captured(&self) -> Vec<Captured> {
        self.shared.state().captured.clone()
    }

    /// Datagrams that passed through the relay.
    pub(crate) fn passed(&self) -> u64 {
        self.shared.state().passed
    }

    /// Stops relaying and leaves the group (the target can then be restarted on its port).
    pub(crate) fn close(self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// A socket whose datagrams to `target` land at the target's own socket, not back at the relay.
/// Datagrams of others that arrive meanwhile are kept in `held`.
fn find_forwarder(
    target: SocketAddr,
    relay: &[UdpSocket],
    held: &mut Vec<Vec<u8>>,
) -> anyhow::Result<UdpSocket> {
    let mut buf = vec![0u8; RECV_BUF];
    for _ in 0..FORWARDER_TRIES {
        let cand = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let me = cand.local_addr()?;
        // One byte: the target drops it as malformed before anything else.
        cand.send_to(&[0], target)?;
        std::thread::sleep(PROBE_WAIT);
        let mut looped = false;
        for s in relay {
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                if from == me {
                    looped = true;
                } else {
                    held.push(buf[..n].to_vec());
                }
            }
        }
        if !looped {
            return Ok(cand);
        }
    }
    bail!("no forwarder socket reached {target} in {FORWARDER_TRIES} tries")
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn relay_loop(&self, sock: &UdpSocket) {
        let mut buf = vec![0u8; RECV_BUF];
        while !self.stop.load(Ordering::Relaxed) {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                self.pass(buf[..n].to_vec());
            }
        }
    }

    fn pass(&self, mut d: Vec<u8>) {
        {
            let mut st = self.state();
            st.passed += 1;
            match self.mode {
                Mode::Tamper {
                    budget,
                    min_rumor_len,
                } => {
                    if st.tampered < budget && tamper(self.suite, &mut d, min_rumor_len) {
                        st.tampered += 1;
                    }
                }
                Mode::Capture { budget } => {
                    if st.captured.len() < budget {
                        st.captured.push(Captured {
                            bytes: d.clone(),
                            at: Instant::now(),
                        });
                    }
                }
            }
        }
        // A lost forward is a lost datagram, which gossip is built to survive.
        let _ = self.forwarder.send_to(&d, self.target);
    }
}

/// Flips one byte of a rumor-carrying datagram in place; returns whether it did. Where the body
/// is plaintext the byte is the last of the first rumor's payload (an altered statement if
/// nothing notices); where it is encrypted, the last body byte of a datagram big enough to hold
/// a rumor.
pub(crate) fn tamper(suite: Suite, d: &mut [u8], min_rumor_len: usize) -> bool {
    let hlen = Header::len_for(suite);
    let Some(body_end) = d.len().checked_sub(suite.trailer_len()) else {
        return false;
    };
    if body_end <= hlen {
        return false;
    }
    let at = if matches!(suite.hop(), HopAuth::Aead(_)) {
        (d.len() >= min_rumor_len).then_some(body_end - 1)
    } else {
        rumor_payload_end(&d[hlen..body_end]).map(|end| hlen + end - 1)
    };
    match at {
        Some(i) => {
            d[i] ^= 0x01;
            true
        }
        None => false,
    }
}

/// Offset just past the first non-empty rumor payload in a plaintext body.
fn rumor_payload_end(body: &[u8]) -> Option<usize> {
    let bytes = Bytes::copy_from_slice(body);
    let msgs = codec::message::decode_body(bytes.clone()).ok()?;
    msgs.iter().find_map(|m| match m {
        Message::Rumor(r) if !r.payload.is_empty() => {
            // The payload is a slice of `bytes` (zero-copy decoding).
            let start = r.payload.as_ptr() as usize - bytes.as_ptr() as usize;
            Some(start + r.payload.len())
        }
        _ => None,
    })
}

/// The same datagram under a fresh counter and timestamp: a replay that slips past counter and
/// freshness checks wherever the header is not authenticated. The counter moves half a replay
/// window ahead: unseen, yet the sender's own next datagrams stay inside the window.
pub(crate) fn restamp(d: &[u8], now_ms: u64) -> Vec<u8> {
    rewrite_header(d, |h| {
        h.counter = h.counter.saturating_add(codec::anti_replay::WINDOW / 2);
        h.timestamp_ms = now_ms;
    })
}

/// A copy of `d` with its header changed by `f` (the rest untouched, so any authentication
/// over the header no longer holds). A datagram without a parsable header is copied as is.
pub(crate) fn rewrite_header(d: &[u8], f: impl FnOnce(&mut Header)) -> Vec<u8> {
    let mut v = d.to_vec();
    if let Ok(mut h) = Header::parse(d) {
        f(&mut h);
        let mut head = Vec::with_capacity(h.encoded_len());
        h.write(&mut head);
        v[..head.len()].copy_from_slice(&head);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::seal::{HopKeys, Packet, Sealer};
    use codec::{Rumor, SecretKey};
    use std::sync::Arc;

    fn sealed(suite: Suite, msgs: &[Message]) -> Vec<u8> {
        let key = Arc::new(SecretKey::generate(&mut rand::rngs::OsRng));
        let hop = HopKeys::for_suite(suite, None, &key).unwrap();
        let mut s = Sealer::new(suite, 7, 1, 9, hop, &mut rand::rngs::OsRng).unwrap();
        let mut p = Packet::new(suite, codec::DEFAULT_MTU).unwrap();
        for m in msgs {
            assert!(p.push(m).unwrap());
        }
        s.seal(1000, p).unwrap().to_vec()
    }

    fn rumor(payload: &[u8]) -> Message {
        Message::Rumor(Rumor {
            origin: 1,
            seq: 5,
            timestamp_ms: 1,
            payload: Bytes::copy_from_slice(payload),
            signature: None,
        })
    }

    #[test]
    fn tamper_alters_the_rumor_payload_and_nothing_else() {
        let d = sealed(Suite::None, &[Message::Ping { seq: 3 }, rumor(b"abcd")]);
        let mut t = d.clone();
        assert!(tamper(Suite::None, &mut t, usize::MAX));
        let diff: Vec<usize> = (0..d.len()).filter(|&i| d[i] != t[i]).collect();
        assert_eq!(diff.len(), 1);
        let body =
            codec::message::decode_body(Bytes::copy_from_slice(&t[Header::len_for(Suite::None)..]))
                .unwrap();
        assert!(matches!(&body[1], Message::Rumor(r) if &r.payload[..] == b"abce"));
        // No rumor: nothing to alter.
        let mut ping = sealed(Suite::None, &[Message::Ping { seq: 3 }]);
        assert!(!tamper(Suite::None, &mut ping, usize::MAX));
    }

    #[test]
    fn restamp_moves_counter_and_clock_only() {
        let d = sealed(Suite::None, &[Message::Ping { seq: 3 }]);
        let r = restamp(&d, 5000);
        let (a, b) = (Header::parse(&d).unwrap(), Header::parse(&r).unwrap());
        assert_eq!(b.counter, a.counter + codec::anti_replay::WINDOW / 2);
        assert_eq!(b.timestamp_ms, 5000);
        assert_eq!((b.sender, b.epoch), (a.sender, a.epoch));
        assert_eq!(
            d[Header::len_for(Suite::None)..],
            r[Header::len_for(Suite::None)..]
        );
    }
}
