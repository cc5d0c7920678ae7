//! holdfast-gate end to end on anvil: a Safe on which Holdfast's signature is required, a
//! hot wallet whose key Holdfast holds, the embedded state store (and PostgreSQL where the
//! test says).

mod approvals;
mod refund;
mod safe_cosigner;
mod support;
mod velocity_race;
mod wallet_gateway;
