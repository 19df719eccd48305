//! The sans-IO protocol core (issue 5, part 1): SWIM membership with Lifeguard, gossip
//! dissemination and rumors, as a deterministic state machine fed `(now, input)` that returns
//! actions. The io driver, the local cluster and the simulator all drive this one implementation.
//! Concurrency: every type here is single-owner; `Roster` is shared read-only behind an `Arc`.

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

pub use config::{Config, ConfigError};
pub use machine::{Action, Boot, Core, CoreError};
pub use roster::Roster;
pub use stats::Stats;
pub use time::Millis;

#[cfg(test)]
mod tests;
