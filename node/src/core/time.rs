//! Virtual time: the only clock the core knows is the one its caller passes in.
//! The real driver feeds unix milliseconds, the simulator and `testnet` a virtual clock, so the
//! same inputs give the same outputs (the determinism DESIGN.md asks of the core).
//! Concurrency: plain `Copy` values.

use std::ops::Add;
use std::time::Duration;

/// A point in time, in milliseconds since an epoch chosen by the driver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// Time elapsed since `earlier`, zero if `earlier` is in the future.
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Millis {
    type Output = Millis;
    fn add(self, d: Duration) -> Millis {
        Millis(self.0.saturating_add(ms(d)))
    }
}

/// Whole milliseconds of `d`, saturating: configuration durations are far below `u64::MAX` ms.
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
