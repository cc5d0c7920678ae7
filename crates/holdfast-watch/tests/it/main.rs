//! The watch's integration tests: anvil, real contracts, the store (embedded and
//! PostgreSQL), a real SMTP server and webhook receivers.

mod deliver;
mod detectors;
mod discover;
mod discover_kept;
mod engine;
mod heist;
mod history;
mod laundering;
mod receivers;
mod replay;
mod sinks;
mod token_drain;
mod watch_files;
