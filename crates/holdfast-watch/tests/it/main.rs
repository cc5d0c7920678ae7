//! The watch's integration tests: anvil, real contracts, the store (embedded and
//! PostgreSQL), a real SMTP server and webhook receivers.
mod watch_files;
