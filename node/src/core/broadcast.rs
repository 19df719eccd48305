//! The bounded queue of broadcasts (membership updates and rumors) that gossip and piggybacking
//! drain: each item is sent a limited number of times, the least-transmitted first, newest first
//! among equals.
//! Reference: memberlist `TransmitLimitedQueue` (queue.go): a newer update about a member
//! invalidates the queued older one; an item is dropped after `retransmit_limit` transmissions.
//! One departure from memberlist: an item goes to each member at most once. Every ack
//! piggybacks broadcasts, so an admitted member that pings us as fast as its rate limit allows
//! would otherwise receive each new item on the acks of one burst and use up its whole
//! transmission budget: honest rumors were lost that way in the flooder runs of
//! `rumor-bench attacks`. Sending an item twice to one member never informs anyone new.
//! For the same reason an item is never sent to a member known to hold it already (the one we
//! heard it from, any member that sent it to us again, its origin), as Bitcoin Core keeps a
//! per-peer set of known inventory (`m_tx_inventory_known_filter`). Where a member's datagrams
//! carry fewer items than the queue asks for (fanout 1 with signed rumors), the transmissions it
//! can afford then go to members that may still lack the item. At n = 32 each member knows
//! about as many holders as it sends, so after T sends by each member the chance that one
//! member missed a rumor falls from about exp(-T) to exp(-T·n/(n - T)).
//! Concurrency: owned by one `Core`; not shared.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

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
    key: Key,
    message: Message,
    transmits: u32,
    sent: SentTo,
}

/// The members an item was sent to (at most its transmission limit of them) or heard from. Every
/// fill asks each item whether the destination has it, and the answer is almost always no: a bit per
/// residue of the member id answers most of those without reading the list (which at n = 10,000
/// sat behind a cache miss per item: about a sixth of the simulator's time).
#[derive(Default)]
struct SentTo {
    residues: u128,
    members: Vec<MemberId>,
}

impl SentTo {
    fn bit(to: MemberId) -> u128 {
        1u128 << (to % u128::BITS)
    }

    fn contains(&self, to: MemberId) -> bool {
        self.residues & SentTo::bit(to) != 0 && self.members.contains(&to)
    }

    fn insert(&mut self, to: MemberId) {
        self.residues |= SentTo::bit(to);
        self.members.push(to);
    }
}

/// Order of selection: fewest transmissions, then newest.
type Rank = (u32, Reverse<u64>);

/// Items hang off the selection order, a B-tree, which is all a fill walks: no hash probe per
/// item. Boxed, so the B-tree's node shifts move pointers (items inline made the moves cost
/// more than the pointer chase they saved).
/// A hash map finds an item's rank by key (every received rumor is looked up and inserted, and
/// each one beyond the bound evicts another: B-tree searches there were a third of the core
/// thread in the ingest burst). Only lookups touch the hash map's per-instance random seed,
/// never an output's order, so the core stays deterministic. Both give memory back as the queue
/// drains (the map by `shrink`): a simulator holds thousands of cores whose queues fill while
/// members join and are empty afterwards.
pub(crate) struct Broadcasts {
    ranks: HashMap<Key, Rank, foldhash::quality::RandomState>,
    order: BTreeMap<Rank, Box<Item>>,
    next_id: u64,
    max: usize,
}

impl Broadcasts {
    pub fn new(max: usize) -> Broadcasts {
        Broadcasts {
            ranks: HashMap::default(),
            order: BTreeMap::new(),
            next_id: 0,
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.ranks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranks.is_empty()
    }

    /// Queues `message`, replacing any item with the same key. Returns how many items were
    /// dropped to stay within the bound (the most transmitted ones).
    pub fn push(&mut self, key: Key, message: Message) -> usize {
        let id = self.next_id;
        self.next_id += 1;
        let rank = (0, Reverse(id));
        if self.ranks.len() >= self.max {
            // A full queue churns: every push evicts. With the map at most half full,
            // hashbrown clears the tombstones that churn leaves in place; fuller, it
            // reallocated the whole table every few thousand pushes (fresh pages each time: a
            // tenth of the core thread in the ingest burst). A no-op once reserved.
            self.ranks.reserve(self.max);
        }
        match self.ranks.entry(key) {
            Entry::Occupied(mut e) => {
                let old = std::mem::replace(e.get_mut(), rank);
                self.order.remove(&old);
            }
            Entry::Vacant(e) => {
                e.insert(rank);
            }
        }
        self.order.insert(
            rank,
            Box::new(Item {
                key,
                message,
                transmits: 0,
                sent: SentTo::default(),
            }),
        );
        let mut dropped = 0;
        while self.ranks.len() > self.max {
            if let Some((_, item)) = self.order.pop_last() {
                self.ranks.remove(&item.key);
                dropped += 1;
            }
        }
        dropped
    }

    /// Records that `member` holds the item queued under `key` (it sent it to us, or is its
    /// origin), so no transmission of it is spent on `member`. Not a transmission.
    pub fn held_by(&mut self, key: &Key, member: MemberId) {
        let Some(rank) = self.ranks.get(key) else {
            return;
        };
        if let Some(item) = self.order.get_mut(rank) {
            if !item.sent.contains(member) {
                item.sent.insert(member);
            }
        }
    }

    /// Drops every queued rumor of `origin` (a convicted equivocator).
    pub fn drop_rumors_of(&mut self, origin: MemberId) {
        let doomed = |k: &Key| matches!(k, Key::Rumor(o, _) if *o == origin);
        self.ranks.retain(|k, _| !doomed(k));
        self.order.retain(|_, item| !doomed(&item.key));
        self.shrink();
    }

    /// Gives memory back once the map is mostly empty.
    fn shrink(&mut self) {
        if self.ranks.capacity() > 4 * self.ranks.len() + 64 {
            self.ranks.shrink_to(2 * self.ranks.len());
        }
    }

    /// Appends to `packet` (and `out`) as many queued items not yet sent to `to` as fit,
    /// counting one transmission each; items reaching their limit leave the queue.
    pub fn fill(
        &mut self,
        packet: &mut Packet,
        out: &mut Vec<Message>,
        limits: Limits,
        to: MemberId,
    ) {
        let mut chosen = Vec::new();
        let mut misfits = 0;
        for (rank, item) in &self.order {
            if item.sent.contains(to) {
                continue;
            }
            // An item that cannot be encoded (never produced by the core) is treated as not fitting.
            if packet.push(&item.message).unwrap_or(false) {
                out.push(item.message.clone());
                chosen.push(*rank);
                misfits = 0;
            } else {
                misfits += 1;
                if misfits >= MAX_MISFITS {
                    break;
                }
            }
        }
        for rank in chosen {
            let Some(mut item) = self.order.remove(&rank) else {
                continue;
            };
            item.transmits += 1;
            item.sent.insert(to);
            if item.transmits >= limits.of(&item.key) {
                self.ranks.remove(&item.key);
            } else {
                let next = (item.transmits, rank.1);
                if let Some(r) = self.ranks.get_mut(&item.key) {
                    *r = next;
                }
                self.order.insert(next, item);
            }
        }
        self.shrink();
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
        b.fill(&mut p, &mut out, TWICE, 7);
        b.push(Key::Member(2), ping(2));
        let (mut p, mut out) = (Packet::new(Suite::None, 200).unwrap(), Vec::new());
        b.fill(&mut p, &mut out, TWICE, 8);
        assert_eq!(out, vec![ping(2), ping(1)]);
        assert_eq!(b.len(), 1, "item 1 reached its limit");
        b.push(Key::Member(2), ping(3));
        assert_eq!(
            b.len(),
            1,
            "newer item replaces the older with the same key"
        );
    }

    /// How many items one fill for `to` carries, every item allowed `limit` transmissions.
    fn items_sent(b: &mut Broadcasts, limit: u32, to: MemberId) -> usize {
        let (mut p, mut out) = (Packet::new(Suite::None, 1400).unwrap(), Vec::new());
        let limits = Limits {
            member: limit,
            rumor: limit,
        };
        b.fill(&mut p, &mut out, limits, to);
        out.len()
    }

    #[test]
    fn an_item_goes_to_each_member_once() {
        let mut b = Broadcasts::new(10);
        b.push(Key::Rumor(1, 1), ping(1));
        let mut sent = |to| items_sent(&mut b, 4, to);
        // A member asking again and again (a flood of pings, each acked) gets it once, and the
        // budget is left for the others.
        assert_eq!((0..10).map(|_| sent(5)).sum::<usize>(), 1);
        assert_eq!([6, 7, 8, 9].map(&mut sent), [1, 1, 1, 0]);
    }

    #[test]
    fn an_item_skips_its_known_holders() {
        let mut b = Broadcasts::new(10);
        let key = Key::Rumor(1, 1);
        b.push(key, ping(1));
        b.held_by(&key, 5);
        b.held_by(&key, 5);
        b.held_by(&Key::Rumor(1, 2), 6);
        // Member 5 holds it; 6 was named for another item. Knowing a holder is no transmission:
        // both of the item's go to others.
        assert_eq!(
            [5, 6, 7, 8].map(|to| items_sent(&mut b, 2, to)),
            [0, 1, 1, 0]
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
