//! Anti-replay: a sliding bitmap window per sender and boot epoch, plus a timestamp freshness
//! rule that still holds after the receiver restarts and loses its windows.
//!
//! The window follows RFC 6479 and WireGuard's `replay.go`: a ring of 64-bit blocks, one bit per
//! counter, O(1) per check; sliding forward clears whole blocks. [`ReplayGuard::precheck`] is the
//! cheap read-only test made before any crypto; [`ReplayGuard::commit`] is the test-and-set made
//! only with a [`Verified`] datagram, so forgeries never move a window and, of two identical
//! copies in one batch, only the first commits.
//!
//! Freshness: a datagram's timestamp must be within `max_skew` of our clock in the future and
//! `max_age` in the past, and never before our own boot minus `max_skew`: after a restart every
//! window is gone, and that floor is what stops a replay of traffic captured before it. A sender
//! whose window was evicted (LRU bound) is held to the newest timestamp that window had seen.
//! Once a newer epoch of a sender authenticates, its older epochs are refused; an epoch further
//! ahead of our clock than [`crate::epoch::EPOCH_LEAD_SECS`] is refused before it can
//! ([`crate::epoch::reachable`]).
//!
//! Concurrency: one `ReplayGuard` per receiving owner (not shared between threads).

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroUsize;

use lru::LruCache;

use crate::header::{Header, MemberId};
use crate::seal::Verified;

const BLOCK_BITS: u64 = u64::BITS as u64;
/// Counters the window remembers behind the newest one: 8192, as the issue asks, as RFC 6479's
/// recommended minimum for high-rate links.
pub const WINDOW: u64 = 8192;
/// One more block than the window spans, so sliding never clears a block still in the window.
const RING_BLOCKS: usize = (WINDOW / BLOCK_BITS) as usize + 1;

/// Why a datagram is not fresh.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum Replay {
    #[error("counter already seen (replay)")]
    Duplicate,
    #[error("counter older than the replay window")]
    BehindWindow,
    #[error("epoch {got} is older than the sender's current epoch {current}")]
    StaleEpoch { got: u64, current: u64 },
    #[error("epoch {0} is past any boot's by this clock")]
    FutureEpoch(u64),
    #[error("timestamp too far in the past")]
    Stale,
    #[error("timestamp too far in the future")]
    Future,
    #[error("timestamp before the receiver's boot (or an evicted window's last datagram)")]
    BeforeFloor,
    #[error("counter zero is never sent")]
    ZeroCounter,
}

/// One sliding window of counters.
#[derive(Clone, Debug)]
pub struct Window {
    blocks: [u64; RING_BLOCKS],
    last: u64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            blocks: [0; RING_BLOCKS],
            last: 0,
        }
    }
}

impl Window {
    fn locate(c: u64) -> (usize, u64) {
        (
            ((c / BLOCK_BITS) % RING_BLOCKS as u64) as usize,
            1u64 << (c % BLOCK_BITS),
        )
    }

    /// Read-only: would `c` be accepted?
    pub fn check(&self, c: u64) -> Result<(), Replay> {
        if c == 0 {
            return Err(Replay::ZeroCounter);
        }
        if c > self.last {
            return Ok(());
        }
        if self.last - c >= WINDOW {
            return Err(Replay::BehindWindow);
        }
        let (i, bit) = Self::locate(c);
        if self.blocks[i] & bit != 0 {
            Err(Replay::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Test-and-set: accepts `c` at most once.
    pub fn commit(&mut self, c: u64) -> Result<(), Replay> {
        self.check(c)?;
        if c > self.last {
            let (old, new) = (self.last / BLOCK_BITS, c / BLOCK_BITS);
            let clear = (new - old).min(RING_BLOCKS as u64);
            for k in 1..=clear {
                self.blocks[((old + k) % RING_BLOCKS as u64) as usize] = 0;
            }
            self.last = c;
        }
        let (i, bit) = Self::locate(c);
        self.blocks[i] |= bit;
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
pub struct ReplayConfig {
    /// Senders whose windows are kept; the least recently used is evicted beyond it.
    pub max_windows: usize,
    /// Tolerated clock difference between members.
    pub max_skew_ms: u64,
    /// Oldest timestamp accepted, relative to our clock.
    pub max_age_ms: u64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        // 30 s of age as Solana's gossip allows; 2 s of skew: what NTP-synced hosts keep, and
        // the span of pre-restart traffic a replayer could still use after our restart.
        ReplayConfig {
            max_windows: 65_536,
            max_skew_ms: 2_000,
            max_age_ms: 30_000,
        }
    }
}

struct SenderWindow {
    epoch: u64,
    window: Window,
    newest_ts: u64,
}

/// Per-receiver freshness state: windows per sender (newest epoch only), bounded by LRU.
/// An LRU table bounded at `cap` whose hash map grows as it fills. `LruCache::new` and
/// `with_hasher` size the map for the bound at once: a few hundred live senders then sat
/// scattered over megabytes (65,536 anti-replay windows; the pool's token buckets and key
/// cache alike), each lookup a cache miss, and those lookups were a seventh of the io thread
/// in the ingest burst.
pub fn growing_lru<K: Hash + Eq, V, S: BuildHasher>(
    cap: NonZeroUsize,
    hasher: S,
) -> LruCache<K, V, S> {
    let mut t = LruCache::unbounded_with_hasher(hasher);
    t.resize(cap);
    t
}

pub struct ReplayGuard {
    cfg: ReplayConfig,
    floor_ms: u64,
    evicted_floor_ms: u64,
    windows: LruCache<MemberId, SenderWindow>,
}

impl ReplayGuard {
    /// `boot_unix_ms`: when this receiver started (its windows are empty from then on).
    pub fn new(cfg: ReplayConfig, boot_unix_ms: u64) -> ReplayGuard {
        let cap = NonZeroUsize::new(cfg.max_windows).unwrap_or(NonZeroUsize::MIN);
        let floor_ms = boot_unix_ms.saturating_sub(cfg.max_skew_ms);
        ReplayGuard {
            cfg,
            floor_ms,
            evicted_floor_ms: floor_ms,
            windows: growing_lru(cap, Default::default()),
        }
    }

    fn fresh(&self, now_ms: u64, h: &Header, floor: u64) -> Result<(), Replay> {
        // A forged far-future epoch would replace the sender's window and refuse all its real
        // datagrams as `StaleEpoch` for as long as this receiver runs.
        if !crate::epoch::reachable(h.epoch, now_ms) {
            return Err(Replay::FutureEpoch(h.epoch));
        }
        if h.timestamp_ms > now_ms.saturating_add(self.cfg.max_skew_ms) {
            return Err(Replay::Future);
        }
        if h.timestamp_ms < now_ms.saturating_sub(self.cfg.max_age_ms) {
            return Err(Replay::Stale);
        }
        if h.timestamp_ms < floor {
            return Err(Replay::BeforeFloor);
        }
        Ok(())
    }

    /// Read-only check on an unauthenticated header: cheap, before any crypto.
    pub fn precheck(&self, now_ms: u64, h: &Header) -> Result<(), Replay> {
        match self.windows.peek(&h.sender) {
            Some(w) => {
                self.fresh(now_ms, h, self.floor_ms)?;
                match h.epoch.cmp(&w.epoch) {
                    std::cmp::Ordering::Less => Err(Replay::StaleEpoch {
                        got: h.epoch,
                        current: w.epoch,
                    }),
                    std::cmp::Ordering::Equal => w.window.check(h.counter),
                    std::cmp::Ordering::Greater => {
                        (h.counter != 0).then_some(()).ok_or(Replay::ZeroCounter)
                    }
                }
            }
            None => {
                self.fresh(now_ms, h, self.evicted_floor_ms)?;
                (h.counter != 0).then_some(()).ok_or(Replay::ZeroCounter)
            }
        }
    }

    /// Test-and-set for an authenticated datagram. A newer epoch replaces the sender's window.
    pub fn commit(&mut self, now_ms: u64, d: &Verified) -> Result<(), Replay> {
        let h = d.header();
        self.precheck(now_ms, h)?;
        match self.windows.get_mut(&h.sender) {
            Some(w) if w.epoch == h.epoch => {
                w.window.commit(h.counter)?;
                w.newest_ts = w.newest_ts.max(h.timestamp_ms);
            }
            Some(w) => {
                // precheck refused older epochs, so this one is newer.
                *w = SenderWindow {
                    epoch: h.epoch,
                    window: Window::default(),
                    newest_ts: h.timestamp_ms,
                };
                w.window.commit(h.counter)?;
            }
            None => {
                let mut w = SenderWindow {
                    epoch: h.epoch,
                    window: Window::default(),
                    newest_ts: h.timestamp_ms,
                };
                w.window.commit(h.counter)?;
                if let Some((_, old)) = self.windows.push(h.sender, w) {
                    // Strictly after: the evicted window may have accepted a datagram stamped exactly then.
                    self.evicted_floor_ms =
                        self.evicted_floor_ms.max(old.newest_ts.saturating_add(1));
                }
            }
        }
        Ok(())
    }

    pub fn windows(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_accepts_each_counter_once_and_slides() {
        let mut w = Window::default();
        assert_eq!(w.commit(0), Err(Replay::ZeroCounter));
        for c in [5, 3, 4, 1, 2] {
            w.commit(c).unwrap();
        }
        for c in 1..=5 {
            assert_eq!(w.commit(c), Err(Replay::Duplicate));
        }
        w.commit(5 + WINDOW - 1).unwrap();
        assert_eq!(w.check(5), Err(Replay::Duplicate)); // still inside
        assert_eq!(w.check(6), Ok(())); // inside, never seen
        assert_eq!(w.check(5 + WINDOW - 1 - WINDOW), Err(Replay::BehindWindow));
        // a huge jump clears everything and old counters fall behind
        w.commit(1_000_000).unwrap();
        assert_eq!(w.check(1_000_000 - WINDOW + 1), Ok(()));
        assert_eq!(w.check(1_000_000 - WINDOW), Err(Replay::BehindWindow));
    }

    #[test]
    fn window_matches_a_set_model() {
        use std::collections::HashSet;
        let mut w = Window::default();
        let mut seen = HashSet::new();
        let mut top = 0u64;
        let mut x = 12345u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = (top + 64).saturating_sub(x % (WINDOW + 300)).max(1);
            let want = if top >= c && top - c >= WINDOW {
                Err(Replay::BehindWindow)
            } else if seen.contains(&c) {
                Err(Replay::Duplicate)
            } else {
                Ok(())
            };
            assert_eq!(w.commit(c), want, "counter {c} top {top}");
            if want.is_ok() {
                seen.insert(c);
                top = top.max(c);
            }
        }
    }
}
