//! Contracts the guard knows by address: every released Safe deployment (from
//! `data/safe-deployments/`, embedded), so policies can allow DELEGATECALL to
//! `safe:multisend-call-only` without copying addresses, and a node can confirm that such an
//! address holds the listed code.

use std::collections::HashMap;
use std::sync::OnceLock;

use alloy::primitives::{Address, B256};
use serde::Deserialize;

const DEPLOYMENTS: &str = include_str!("../../../data/safe-deployments/deployments.json");

#[derive(Debug, Deserialize)]
struct File {
    contracts: Vec<Contract>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Contract {
    contract_name: String,
    version: String,
    deployments: Vec<Deployment>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Deployment {
    address: Address,
    code_hash: B256,
}

/// A known contract at an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub name: String,
    pub version: String,
    /// The runtime code's hash at the canonical deployment.
    pub code_hash: B256,
}

#[derive(Debug)]
struct Registry {
    by_address: HashMap<Address, Known>,
    by_list: HashMap<&'static str, Vec<Address>>,
}

/// The built-in lists a policy can name, with the Safe contract names they hold.
pub const LISTS: [(&str, &[&str]); 8] = [
    ("safe:multisend-call-only", &["MultiSendCallOnly"]),
    ("safe:multisend", &["MultiSend"]),
    ("safe:sign-message-lib", &["SignMessageLib"]),
    (
        "safe:safe-migration",
        &["SafeMigration", "SafeToL2Migration"],
    ),
    ("safe:create-call", &["CreateCall"]),
    (
        "safe:singletons",
        &["GnosisSafe", "GnosisSafeL2", "Safe", "SafeL2"],
    ),
    (
        "safe:fallback-handlers",
        &[
            "CompatibilityFallbackHandler",
            "DefaultCallbackHandler",
            "ExtensibleFallbackHandler",
            "TokenCallbackHandler",
        ],
    ),
    ("safe:simulate-tx-accessor", &["SimulateTxAccessor"]),
];

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        // The file is ours and embedded: a parse failure is caught by the unit test below,
        // and an empty registry then only makes policies stricter.
        let file: File = serde_json::from_str(DEPLOYMENTS).unwrap_or(File {
            contracts: Vec::new(),
        });
        let mut by_address = HashMap::new();
        let mut by_list: HashMap<&'static str, Vec<Address>> = HashMap::new();
        for c in &file.contracts {
            for d in &c.deployments {
                by_address.insert(
                    d.address,
                    Known {
                        name: c.contract_name.clone(),
                        version: c.version.clone(),
                        code_hash: d.code_hash,
                    },
                );
                for (list, names) in LISTS {
                    if names.contains(&c.contract_name.as_str()) {
                        by_list.entry(list).or_default().push(d.address);
                    }
                }
            }
        }
        Registry {
            by_address,
            by_list,
        }
    })
}

/// What Holdfast knows is at `address` (a Safe deployment), if anything.
pub fn known(address: &Address) -> Option<&'static Known> {
    registry().by_address.get(address)
}

/// The addresses of a built-in list (`safe:...`), `None` if there is no such list.
pub fn list(name: &str) -> Option<&'static [Address]> {
    registry().by_list.get(name).map(Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    #[test]
    fn the_shipped_deployments_parse_and_fill_every_list() {
        let file: File = serde_json::from_str(DEPLOYMENTS).expect("deployments.json parses");
        assert!(file.contracts.len() > 40);
        for (name, _) in LISTS {
            assert!(list(name).is_some_and(|l| !l.is_empty()), "{name} is empty");
        }
        let m = address!("0x9641d764fc13c8B624c04430C7356C1C7C8102e2");
        assert!(list("safe:multisend-call-only").expect("list").contains(&m));
        let k = known(&m).expect("known");
        assert_eq!(
            (k.name.as_str(), k.version.as_str()),
            ("MultiSendCallOnly", "1.4.1")
        );
        // Bybit's Safe ran the 1.1.1 singleton.
        let s = known(&address!("0x34CfAC646f301356fAa8B21e94227e3583Fe3F5F")).expect("1.1.1");
        assert_eq!(s.version, "1.1.1");
        assert!(list("safe:nope").is_none());
    }
}
