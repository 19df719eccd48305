//! The sans-IO protocol core (issue 5, part 1): SWIM membership with Lifeguard, gossip
//! dissemination and rumors, as a deterministic state machine fed `(now, input)` that returns
//! actions. The io driver, the local cluster and the simulator all drive this one implementation.
//! Concurrency: every type here is single-owner; `Roster` is shared read-only behind an `Arc`.
//!
//! A driver's loop, here with two members and a lossless, instant network (a real driver seals
//! each `Send`, the simulator delays it, `testnet` does both for tests):
//!
//! ```
//! use std::sync::Arc;
//! use rumor::core::{Action, Boot, Config, Core, Millis, Roster};
//!
//! let roster = Arc::new(Roster::dense(2));
//! let boot = |id| Boot::from_epoch(id, 1, u64::from(id));
//! let mut cores = [
//!     Core::new(Config::default(), roster.clone(), boot(0), Millis(0))?,
//!     Core::new(Config::default(), roster, boot(1), Millis(0))?,
//! ];
//! cores[1].join(Millis(0), &[0]);
//! let mut now = Millis(0);
//! for _ in 0..50 {
//!     let mut sends = Vec::new();
//!     for c in cores.iter_mut() {
//!         if c.poll_timeout().is_some_and(|t| t <= now) {
//!             c.handle_timeout(now);
//!         }
//!         let from = c.id();
//!         for action in c.drain_actions() {
//!             if let Action::Send { to, messages } = action {
//!                 sends.push((from, to, messages));
//!             }
//!         }
//!     }
//!     for (from, to, messages) in sends {
//!         cores[to as usize].handle_datagram(now, from, messages);
//!     }
//!     now = cores.iter().filter_map(Core::poll_timeout).min().unwrap_or(now).max(now);
//! }
//! assert!(cores.iter().all(|c| c.cluster_size() == 2));
//! # Ok::<(), rumor::core::CoreError>(())
//! ```

mod authority;
mod broadcast;
mod config;
mod health;
mod machine;
mod membership;
mod pack;
mod probe;
mod roster;
mod rumors;
mod stats;
mod suspicion;
pub mod testnet;
mod time;
mod witness;

pub use config::{Config, ConfigError};
pub use machine::{Action, Boot, Core, CoreError};
pub use roster::Roster;
/// Rumors per origin told apart out of order (a load generator keeps its rumors inside it).
pub use rumors::WINDOW as RUMOR_WINDOW;
pub use stats::Stats;
pub use time::Millis;
pub use witness::{Quorum, Tolerance, DEFAULT_WITNESSES};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_authority;
