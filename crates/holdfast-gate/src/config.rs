//! The guard service's configuration file (TOML, unknown keys rejected), parsed once into
//! a validated [`GateConfig`].
//!
//! ```toml
//! [gate]
//! policy = "policies/exchange-hot-wallet.toml"   # relative to this file
//! rpc = "http://127.0.0.1:8545"                  # simulation, nonces, broadcast
//! simulate = true
//! sim_budget = "5s"
//! fork_max_age = "12s"                            # re-pin the simulation's state this often
//! release_interval = "1s"                         # how often due holds are released
//! unfreeze_group = "officers"                     # a policy group; approvals lift a freeze
//! unfreeze_approvals = 2
//!
//! [signer]                                        # the key Holdfast signs with
//! keystore = "keys/holdfast.json"                 # an encrypted JSON keystore (geth / cast)
//! password_file = "keys/holdfast.pass"
//!
//! [[token]]                                       # API access: the token's SHA-256, never the token
//! name = "withdrawal-service"
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! roles = ["initiator"]
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use holdfast_guard::units::parse_duration;

/// What a token may do. Least privilege: each role allows only its own endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Submits requests.
    Initiator,
    /// Cancels holds, freezes signing.
    Operator,
    /// Submits approvals (the approval's signature names the approver; the role only lets
    /// the token post it).
    Approver,
    /// Reads the audit log, lifts freezes with approvals, reloads.
    Admin,
}

impl Role {
    pub const fn name(self) -> &'static str {
        match self {
            Role::Initiator => "initiator",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub roles: Vec<Role>,
    /// The Ethereum account of the token's holder, if configured: as an initiator it cannot
    /// approve its own request.
    pub address: Option<alloy_primitives::Address>,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The service itself (the release task, recovery).
    pub fn service() -> Principal {
        Principal {
            name: "holdfast".into(),
            roles: vec![Role::Initiator, Role::Operator, Role::Approver, Role::Admin],
            address: None,
        }
    }
}

/// An API token: its SHA-256 and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub sha256: [u8; 32],
    pub roles: Vec<Role>,
    pub address: Option<alloy_primitives::Address>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateConfig {
    /// `None`: the built-in default policy.
    pub policy: Option<PathBuf>,
    pub rpc: Option<String>,
    pub simulate: bool,
    pub sim_budget: Duration,
    pub fork_max_age: Duration,
    pub release_interval: Duration,
    pub unfreeze_group: Option<String>,
    pub unfreeze_approvals: u32,
    pub keystore: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    pub tokens: Vec<Token>,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            policy: None,
            rpc: None,
            simulate: true,
            sim_budget: Duration::from_secs(5),
            fork_max_age: Duration::from_secs(12),
            release_interval: Duration::from_secs(1),
            unfreeze_group: None,
            unfreeze_approvals: 2,
            keystore: None,
            password_file: None,
            tokens: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    gate: RawGate,
    #[serde(default)]
    signer: Option<RawSigner>,
    #[serde(default, rename = "token")]
    tokens: Vec<RawToken>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    policy: Option<String>,
    rpc: Option<String>,
    simulate: Option<bool>,
    sim_budget: Option<String>,
    fork_max_age: Option<String>,
    release_interval: Option<String>,
    unfreeze_group: Option<String>,
    unfreeze_approvals: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigner {
    keystore: String,
    password_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    sha256: String,
    roles: Vec<Role>,
    #[serde(default)]
    address: Option<String>,
}

/// A configuration that does not parse, with the file and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

impl GateConfig {
    /// Parses `text` (the file at `path`; relative paths in it are relative to its folder).
    pub fn parse(path: &Path, text: &str) -> Result<GateConfig, ConfigError> {
        let file = path.display().to_string();
        let err = |message: String| ConfigError {
            file: file.clone(),
            message,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            err(format!(
                "{}{}",
                line.map(|l| format!("line {l}: ")).unwrap_or_default(),
                e.message().trim()
            ))
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let rel = |p: &str| {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { dir.join(p) }
        };
        let dur =
            |key: &str, v: &Option<String>, default: Duration| -> Result<Duration, ConfigError> {
                match v {
                    Some(s) => parse_duration(s).map_err(|e| err(format!("gate.{key}: {e}"))),
                    None => Ok(default),
                }
            };
        let d = GateConfig::default();
        let mut tokens = Vec::new();
        for (i, t) in raw.tokens.iter().enumerate() {
            let bytes = alloy_primitives::hex::decode(&t.sha256)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| err(format!("token[{i}] ({}): sha256 must be 64 hex digits (the SHA-256 of the token, e.g. `printf %s TOKEN | sha256sum`)", t.name)))?;
            if t.roles.is_empty() {
                return Err(err(format!("token[{i}] ({}): roles is empty", t.name)));
            }
            if tokens.iter().any(|x: &Token| x.sha256 == bytes) {
                return Err(err(format!(
                    "token[{i}] ({}): the same token is listed twice",
                    t.name
                )));
            }
            let address = match &t.address {
                Some(a) => Some(holdfast_guard::request::parse_address(a).ok_or_else(|| {
                    err(format!(
                        "token[{i}] ({}): address {a:?} is not an address",
                        t.name
                    ))
                })?),
                None => None,
            };
            tokens.push(Token {
                name: t.name.clone(),
                sha256: bytes,
                roles: t.roles.clone(),
                address,
            });
        }
        Ok(GateConfig {
            policy: raw.gate.policy.as_deref().map(rel),
            rpc: raw.gate.rpc.clone(),
            simulate: raw.gate.simulate.unwrap_or(d.simulate),
            sim_budget: dur("sim_budget", &raw.gate.sim_budget, d.sim_budget)?,
            fork_max_age: dur("fork_max_age", &raw.gate.fork_max_age, d.fork_max_age)?,
            release_interval: dur(
                "release_interval",
                &raw.gate.release_interval,
                d.release_interval,
            )?,
            unfreeze_group: raw.gate.unfreeze_group.clone(),
            unfreeze_approvals: raw.gate.unfreeze_approvals.unwrap_or(d.unfreeze_approvals),
            keystore: raw.signer.as_ref().map(|s| rel(&s.keystore)),
            password_file: raw.signer.as_ref().map(|s| rel(&s.password_file)),
            tokens,
        })
    }

    /// The principal a bearer token stands for (compared by SHA-256 in constant time).
    pub fn principal(&self, bearer: &str) -> Option<Principal> {
        self.principal_of_digest(&token_digest(bearer))
    }

    /// The principal of the token whose SHA-256 is `digest` (compared in constant time):
    /// a console session keeps the digest, so a token taken out of the configuration ends
    /// its sessions and a changed role applies to them.
    pub fn principal_of_digest(&self, digest: &[u8; 32]) -> Option<Principal> {
        let mut found = None;
        for t in &self.tokens {
            let same = t
                .sha256
                .iter()
                .zip(digest)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
            if same {
                found = Some(Principal {
                    name: t.name.clone(),
                    roles: t.roles.clone(),
                    address: t.address,
                });
            }
        }
        found
    }
}

/// The SHA-256 of a token.
pub fn token_digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// The SHA-256 of a token, hex (what the configuration lists).
pub fn token_hash(token: &str) -> String {
    alloy_primitives::hex::encode(token_digest(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_parses_and_tokens_match_by_hash() {
        let text = format!(
            "[gate]\npolicy = \"p.toml\"\nrelease_interval = \"2s\"\n[[token]]\nname = \"ops\"\nsha256 = \"{}\"\nroles = [\"operator\"]\n",
            token_hash("secret")
        );
        let c = GateConfig::parse(Path::new("/etc/holdfast/gate.toml"), &text).expect("parses");
        assert_eq!(c.policy, Some(PathBuf::from("/etc/holdfast/p.toml")));
        assert_eq!(c.release_interval, Duration::from_secs(2));
        assert_eq!(
            c.principal("secret").map(|p| p.roles),
            Some(vec![Role::Operator])
        );
        assert!(c.principal("Secret").is_none());
        let e = GateConfig::parse(Path::new("g.toml"), "[gate]\nrealease_interval = \"1s\"\n")
            .unwrap_err();
        assert!(
            e.to_string().contains("g.toml") && e.to_string().contains("realease_interval"),
            "{e}"
        );
        let e = GateConfig::parse(
            Path::new("g.toml"),
            "[[token]]\nname = \"x\"\nsha256 = \"ab\"\nroles = [\"admin\"]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("64 hex digits"), "{e}");
        let e = GateConfig::parse(
            Path::new("g.toml"),
            "[[token]]\nname = \"x\"\nsha256 = \"ab\"\nroles = [\"root\"]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("root"), "{e}");
    }
}
