//! Duplicate suppression for application rumors: each is delivered once per (origin, seq), in
//! bounded memory per origin (a high-water mark and a sliding window, as IPsec and WireGuard
//! keep for replay: RFC 4303 §3.4.3).
//! Concurrency: owned by one `Core`; not shared.

use std::collections::BTreeMap;

use codec::MemberId;

/// Sequence numbers tracked out of order behind an origin's newest; anything older is taken as
/// already seen. 128 outstanding rumors per origin is far beyond what gossip reorders.
pub const WINDOW: u64 = u128::BITS as u64;

#[derive(Clone, Copy)]
struct Window {
    /// Every seq below `base` counts as seen.
    base: u64,
    /// Bit i: seq `base + i` seen.
    bits: u128,
}

#[derive(Default)]
pub(crate) struct RumorLog {
    origins: BTreeMap<MemberId, Window>,
}

impl RumorLog {
    /// Whether `(origin, seq)` was already recorded (or is too old to tell, which counts as seen).
    pub fn seen(&self, origin: MemberId, seq: u64) -> bool {
        self.origins.get(&origin).is_some_and(|w| {
            seq < w.base || (seq - w.base < WINDOW && w.bits & (1u128 << (seq - w.base)) != 0)
        })
    }

    /// Records `(origin, seq)`; returns whether it is new.
    pub fn observe(&mut self, origin: MemberId, seq: u64) -> bool {
        // The first rumor heard from an origin may overtake older ones still in flight: leave
        // room behind it.
        let w = self.origins.entry(origin).or_insert(Window {
            base: seq.saturating_sub(WINDOW / 2),
            bits: 0,
        });
        if seq < w.base {
            return false;
        }
        if seq - w.base >= WINDOW {
            let shift = seq - w.base - (WINDOW - 1);
            w.bits = if shift >= WINDOW { 0 } else { w.bits >> shift };
            w.base += shift;
        }
        let bit = 1u128 << (seq - w.base);
        let new = w.bits & bit == 0;
        w.bits |= bit;
        new
    }
}

/// A cap on rumors per origin per gossip interval: an admitted member that publishes (or
/// replays its own old sequence space) faster than gossip can carry is cut at the cap instead of
/// crowding every other origin out of the broadcast queue. Fixed windows aligned to the
/// interval; one entry per origin heard in the current window.
pub(crate) struct OriginCap {
    cap: u32,
    window: u64,
    counts: BTreeMap<MemberId, u32>,
}

impl OriginCap {
    pub fn new(cap: u32) -> OriginCap {
        OriginCap {
            cap,
            window: 0,
            counts: BTreeMap::new(),
        }
    }

    /// Whether `origin` is already at its cap in window `window`.
    pub fn exhausted(&self, origin: MemberId, window: u64) -> bool {
        window == self.window && self.counts.get(&origin).is_some_and(|c| *c >= self.cap)
    }

    /// Charges one rumor to `origin`; returns false (and charges nothing) when over the cap.
    pub fn charge(&mut self, origin: MemberId, window: u64) -> bool {
        if window != self.window {
            self.window = window;
            self.counts.clear();
        }
        let c = self.counts.entry(origin).or_insert(0);
        if *c >= self.cap {
            return false;
        }
        *c += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_agrees_with_observe() {
        let mut log = RumorLog::default();
        for seq in [500, 3, 700, 499, 10_000, 9_990] {
            let before = log.seen(7, seq);
            assert_eq!(log.observe(7, seq), !before, "seq {seq}");
            assert!(log.seen(7, seq));
        }
        assert!(!log.seen(8, 1));
    }

    #[test]
    fn once_in_any_order_within_window() {
        let mut l = RumorLog::default();
        assert!(l.observe(1, 10));
        assert!(l.observe(1, 9));
        assert!(!l.observe(1, 10));
        assert!(l.observe(1, 500));
        assert!(!l.observe(1, 10), "far behind the window counts as seen");
        assert!(l.observe(1, 499));
        assert!(l.observe(2, 10));
        assert!(l.observe(3, u64::MAX) && !l.observe(3, u64::MAX));
        assert!(l.observe(4, 0) && !l.observe(4, 0));
    }

    #[test]
    fn origin_cap_per_window() {
        let mut c = OriginCap::new(2);
        assert!(c.charge(1, 5) && c.charge(1, 5));
        assert!(c.exhausted(1, 5) && !c.charge(1, 5));
        assert!(!c.exhausted(2, 5) && c.charge(2, 5), "per origin");
        assert!(
            !c.exhausted(1, 6) && c.charge(1, 6),
            "a new window starts afresh"
        );
    }
}
