//! The admitted members, shared read-only by every core of a process (and by all simulated
//! cores): ids and, when the roster file has them, addresses. Cores index their membership by the
//! dense position of an id here, so a per-member entry holds no id and no address.
//! Concurrency: immutable after construction; share it as `Arc<Roster>`.

use std::net::SocketAddr;

use codec::MemberId;

/// Admitted member ids, sorted, with optional addresses.
#[derive(Clone, Debug, Default)]
pub struct Roster {
    ids: Vec<MemberId>,
    addrs: Vec<Option<SocketAddr>>,
    /// Ids are exactly `0..len`: lookups skip the binary search (the simulator's case).
    dense: bool,
}

impl Roster {
    /// A roster of the given members; duplicate ids keep their first address.
    pub fn new(members: impl IntoIterator<Item = (MemberId, Option<SocketAddr>)>) -> Roster {
        let mut m: Vec<_> = members.into_iter().collect();
        m.sort_by_key(|(id, _)| *id);
        m.dedup_by_key(|(id, _)| *id);
        let (ids, addrs): (Vec<_>, Vec<_>) = m.into_iter().unzip();
        let dense = ids.iter().enumerate().all(|(i, id)| *id as usize == i);
        Roster { ids, addrs, dense }
    }

    /// Members `0..n` without addresses: the driver (or simulator) routes by id.
    pub fn dense(n: u32) -> Roster {
        Roster::new((0..n).map(|id| (id, None)))
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Dense position of `id`, `None` for an id not on the roster.
    pub fn index_of(&self, id: MemberId) -> Option<u32> {
        if self.dense {
            return ((id as usize) < self.ids.len()).then_some(id);
        }
        self.ids.binary_search(&id).ok().map(|i| i as u32)
    }

    pub(crate) fn id_at(&self, idx: u32) -> MemberId {
        self.ids[idx as usize]
    }

    /// The roster's address for `id`, if it lists one.
    pub fn addr(&self, id: MemberId) -> Option<SocketAddr> {
        self.index_of(id).and_then(|i| self.addrs[i as usize])
    }

    /// The member the roster lists at `addr`: how a driver turns seed addresses into ids.
    pub fn id_at_addr(&self, addr: SocketAddr) -> Option<MemberId> {
        let i = self.addrs.iter().position(|a| *a == Some(addr))?;
        Some(self.ids[i])
    }

    pub fn ids(&self) -> &[MemberId] {
        &self.ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_and_dense_lookups() {
        let a: SocketAddr = "127.0.0.1:7000".parse().expect("addr");
        let r = Roster::new([(40, None), (7, Some(a)), (7, None), (1_000_000, None)]);
        assert_eq!(
            (r.len(), r.index_of(7), r.index_of(40), r.index_of(8)),
            (3, Some(0), Some(1), None)
        );
        assert_eq!(
            (r.addr(7), r.id_at_addr(a), r.id_at(2)),
            (Some(a), Some(7), 1_000_000)
        );
        let d = Roster::dense(5);
        assert_eq!(
            (d.index_of(4), d.index_of(5), d.index_of(u32::MAX)),
            (Some(4), None, None)
        );
    }
}
