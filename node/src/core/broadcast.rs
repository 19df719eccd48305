//! The bounded queue of broadcasts (membership updates and rumors) that gossip and piggybacking
//! drain: each item is sent a limited number of times, the least-transmitted first, newest first
//! among equals.
//! Reference: memberlist `TransmitLimitedQueue` (queue.go): a newer update about a member
//! invalidates the queued older one; an item is dropped after `retransmit_limit` transmissions.
//! Concurrency: owned by one `Core`; not shared.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use codec::{MemberId, Message, Packet};

/// Consecutive items that did not fit after which filling a datagram stops: keeps the cost of a
/// fill bounded by what fits, not by the queue length.
const MAX_MISFITS: usize = 8;

/// What a queued item is about; a newer item with the same key replaces the older.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Key {
    Member(MemberId),
    Rumor(MemberId, u64),
    /// A witness's Dead vote about a subject: one per (subject, witness), so votes do not
    /// replace each other.
    Vote(MemberId, MemberId),
    /// An equivocation proof against a member.
    Proof(MemberId),
}

/// How many transmissions a membership update and a rumor each get before leaving the queue.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    pub member: u32,
    pub rumor: u32,
}

impl Limits {
    fn of(&self, key: &Key) -> u32 {
        match key {
            Key::Member(_) | Key::Vote(..) | Key::Proof(_) => self.member,
            Key::Rumor(..) => self.rumor,
        }
    }
}

struct Item {
    message: Message,
    transmits: u32,
    id: u64,
}

/// Order of selection: fewest transmissions, then newest.
type Rank = (u32, Reverse<u64>);

/// Both maps are B-trees, which give memory back as the queue drains: a simulator holds
/// thousands of cores whose queues fill while members join and are empty afterwards.
pub(crate) struct Broadcasts {
    items: BTreeMap<Key, Item>,
    order: BTreeMap<Rank, Key>,
    next_id: u64,
    max: usize,
}

impl Broadcasts {
    pub fn new(max: usize) -> Broadcasts {
        Broadcasts {
            items: BTreeMap::new(),
            order: BTreeMap::new(),
            next_id: 0,
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues `message`, replacing any item with the same key. Returns how many items were
    /// dropped to stay within the bound (the most transmitted ones).
    pub fn push(&mut self, key: Key, message: Message) -> usize {
        if let Some(old) = self.items.remove(&key) {
            self.order.remove(&(old.transmits, Reverse(old.id)));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.order.insert((0, Reverse(id)), key);
        self.items.insert(
            key,
            Item {
                message,
                transmits: 0,
                id,
            },
        );
        let mut dropped = 0;
        while self.items.len() > self.max {
            if let Some((_, k)) = self.order.pop_last() {
                self.items.remove(&k);
                dropped += 1;
            }
        }
        dropped
    }

    /// Drops every queued rumor of `origin` (a convicted equivocator).
    pub fn drop_rumors_of(&mut self, origin: MemberId) {
        let doomed: Vec<Key> = self
            .items
            .range(Key::Rumor(origin, 0)..=Key::Rumor(origin, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in doomed {
            if let Some(old) = self.items.remove(&k) {
                self.order.remove(&(old.transmits, Reverse(old.id)));
            }
        }
    }

    /// Appends to `packet` (and `out`) as many queued items as fit, counting one transmission
    /// each; items reaching their limit leave the queue.
    pub fn fill(&mut self, packet: &mut Packet, out: &mut Vec<Message>, limits: Limits) {
        let mut chosen = Vec::new();
        let mut misfits = 0;
        for (rank, key) in &self.order {
            let Some(item) = self.items.get(key) else {
                continue;
            };
            // An item that cannot be encoded (never produced by the core) is treated as not fitting.
            if packet.push(&item.message).unwrap_or(false) {
                out.push(item.message.clone());
                chosen.push((*rank, *key));
                misfits = 0;
            } else {
                misfits += 1;
                if misfits >= MAX_MISFITS {
                    break;
                }
            }
        }
        for (rank, key) in chosen {
            self.order.remove(&rank);
            if let Some(item) = self.items.get_mut(&key) {
                item.transmits += 1;
                if item.transmits >= limits.of(&key) {
                    self.items.remove(&key);
                } else {
                    self.order.insert((item.transmits, rank.1), key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::Suite;

    const TWICE: Limits = Limits {
        member: 2,
        rumor: 2,
    };

    fn ping(seq: u32) -> Message {
        Message::Ping { seq }
    }

    #[test]
    fn least_transmitted_first_and_limit() {
        let mut b = Broadcasts::new(10);
        b.push(Key::Member(1), ping(1));
        let mut p = Packet::new(Suite::None, 1400).unwrap();
        let mut out = Vec::new();
        b.fill(&mut p, &mut out, TWICE);
        b.push(Key::Member(2), ping(2));
        let (mut p, mut out) = (Packet::new(Suite::None, 200).unwrap(), Vec::new());
        b.fill(&mut p, &mut out, TWICE);
        assert_eq!(out, vec![ping(2), ping(1)]);
        assert_eq!(b.len(), 1, "item 1 reached its limit");
        b.push(Key::Member(2), ping(3));
        assert_eq!(
            b.len(),
            1,
            "newer item replaces the older with the same key"
        );
    }

    #[test]
    fn bounded() {
        let mut b = Broadcasts::new(3);
        let dropped: usize = (0..5)
            .map(|i| b.push(Key::Rumor(1, i), ping(i as u32)))
            .sum();
        assert_eq!((b.len(), dropped), (3, 2));
    }
}
