//! Holdfast's guard service: the enforcement point. Nothing is signed or broadcast unless
//! the guard engine's decision says so.
//!
//! - [`service`]: [`Gate`], one decision path for three modes — Safe co-signer (signs the
//!   safeTxHash Holdfast computed), hot-wallet gateway (builds, signs, broadcasts, manages
//!   nonces), JSON-RPC firewall (decides on transactions signed elsewhere) — with holds that
//!   a background task releases, EIP-712 approvals, cancels and emergency freezes.
//! - [`clock`]: the [`Clock`](clock::Clock) seam the service decides by (the system's;
//!   a manual one in tests).
//! - [`config`]: the service's configuration and API tokens with roles.
//! - [`signer`]: the [`Signer`](signer::Signer) seam (a local keystore today; an HSM or KMS
//!   later).
//!
//! State lives in `holdfast-store`'s [`GateStore`](holdfast_store::gate::GateStore): embedded
//! by default, PostgreSQL for several instances; every step is an atomic, audited transition.
//! The HTTP API and the firewall listener are in `holdfast-server`.

pub mod clock;
pub mod config;
pub mod service;
pub mod signer;

pub use config::{GateConfig, Principal, Role};
pub use service::{Gate, GateError, Outcome};
