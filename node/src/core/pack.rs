//! Packing messages into MTU-bounded datagrams, sized by codec's `Packet` (the same builder the
//! driver seals with, so a datagram the core emits always fits once sealed).
//! Concurrency: a short-lived builder owned by one `Core` call.

use codec::ed25519::{Signature, SIGNATURE_LEN};
use codec::{Certificate, MemberState, Message, Packet, Suite};

use super::config::Config;

/// An empty packet under the configured MTU.
pub(crate) fn empty_packet(cfg: &Config) -> Packet {
    new_packet(cfg.suite, cfg.mtu)
}

/// `Config::validate`, checked when a core is built, accepts only an MTU for which this succeeds.
fn new_packet(suite: Suite, mtu: usize) -> Packet {
    Packet::new(suite, mtu).expect("MTU validated at core construction")
}

/// Whether `m` fits an otherwise empty datagram.
pub(crate) fn fits_alone(cfg: &Config, m: &Message) -> bool {
    empty_packet(cfg).push(m).unwrap_or(false)
}

/// Whether a death certificate of `quorum` witness signatures fits one datagram: one that does
/// not can never be sent, and members that missed the votes would never learn of the death.
pub(crate) fn certificate_fits(cfg: &Config, quorum: u32) -> bool {
    let signature = Signature::from_bytes([0; SIGNATURE_LEN]);
    let witnesses: Vec<_> = (0..quorum).map(|w| (w, signature)).collect();
    Certificate::new(0, 0, MemberState::Dead, &witnesses)
        .is_ok_and(|c| fits_alone(cfg, &Message::Certificate(c)))
}

/// A run of datagrams to one destination, filled in order. Holds copies of the sizing inputs,
/// not the configuration, so the core can fill it from its own queues.
pub(crate) struct Datagrams {
    suite: Suite,
    mtu: usize,
    packet: Packet,
    current: Vec<Message>,
    done: Vec<Vec<Message>>,
}

impl Datagrams {
    pub fn new(cfg: &Config) -> Datagrams {
        Datagrams {
            suite: cfg.suite,
            mtu: cfg.mtu,
            packet: empty_packet(cfg),
            current: Vec::new(),
            done: Vec::new(),
        }
    }

    /// Appends `m`, starting a new datagram when the current one is full. A message that fits no
    /// datagram at all is dropped: the core only builds messages checked to fit.
    pub fn push(&mut self, m: Message) {
        if self.packet.push(&m).unwrap_or(false) {
            self.current.push(m);
            return;
        }
        if self.current.is_empty() {
            return;
        }
        self.done.push(std::mem::take(&mut self.current));
        self.packet = new_packet(self.suite, self.mtu);
        if self.packet.push(&m).unwrap_or(false) {
            self.current.push(m);
        }
    }

    /// The datagram being filled, for piggybacking broadcasts into its free space.
    pub fn last(&mut self) -> (&mut Packet, &mut Vec<Message>) {
        (&mut self.packet, &mut self.current)
    }

    pub fn finish(mut self) -> Vec<Vec<Message>> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}
