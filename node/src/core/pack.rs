//! Packing messages into MTU-bounded datagrams, sized by codec's `Packet` (the same builder the
//! driver seals with, so a datagram the core emits always fits once sealed).
//! Concurrency: a short-lived builder owned by one `Core` call.

use codec::{Message, Packet};

use super::config::Config;

pub(crate) struct Datagrams<'a> {
    cfg: &'a Config,
    packet: Packet,
    current: Vec<Message>,
    done: Vec<Vec<Message>>,
}

/// An empty packet under the configured MTU. `Config::validate`, checked when the core is built,
/// accepts only an MTU for which this succeeds.
pub(crate) fn empty_packet(cfg: &Config) -> Packet {
    Packet::new(cfg.suite, cfg.mtu).expect("MTU validated at core construction")
}

impl<'a> Datagrams<'a> {
    pub fn new(cfg: &'a Config) -> Datagrams<'a> {
        Datagrams {
            cfg,
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
        self.packet = empty_packet(self.cfg);
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

/// Whether `m` fits an otherwise empty datagram.
pub(crate) fn fits_alone(cfg: &Config, m: &Message) -> bool {
    empty_packet(cfg).push(m).unwrap_or(false)
}
