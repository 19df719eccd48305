//! rumor: the node library. `core` is the sans-IO protocol state machine; the binary drives it.

pub mod config;
pub mod control;
pub mod core;
pub mod huge_pages;
pub mod identity;
pub mod io;
pub mod metrics;
pub mod provenance;
pub mod runtime;
