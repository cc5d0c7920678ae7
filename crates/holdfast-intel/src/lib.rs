//! Threat intelligence: placeholder while the parts land.
pub mod address;
