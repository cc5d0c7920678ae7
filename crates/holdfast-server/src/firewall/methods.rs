//! What the firewall does with each JSON-RPC method: a closed classification, failing closed.
//!
//! - [`Class::Read`]: reads the node's state and sends nothing; forwarded unchanged. Only
//!   the methods in [`READS`] (and those an operator adds, see [`ReadMethods`]) are reads.
//! - [`Class::Send`]: sends a transaction; decided by the guard first, exactly like its
//!   plain twin for the `…Sync` variants (EIP-7966).
//! - [`Class::Refused`]: never forwarded: methods that make the node sign, send without a
//!   decision, or change its state or configuration; and every method not known to be a read.

use std::collections::BTreeSet;

/// Methods that only read, forwarded by default. Deliberately short: what wallets and
/// libraries call around a send (accounts, chain, nonce, fees, gas, receipts, logs,
/// filters). `eth_call`, `eth_estimateGas`, `eth_createAccessList` and `eth_simulateV1`
/// execute a call against state but never send it. Tracing (`debug_trace*`, `trace_*`,
/// `ots_*`) and the mempool (`txpool_*`) are left out: they are reads, but expensive or
/// revealing; an operator who needs them adds them (`--firewall-allow-method`).
pub const READS: &[&str] = &[
    "web3_clientVersion",
    "web3_sha3",
    "net_version",
    "net_listening",
    "net_peerCount",
    "eth_chainId",
    "eth_protocolVersion",
    "eth_syncing",
    "eth_accounts",
    "eth_requestAccounts",
    "eth_coinbase",
    "eth_mining",
    "eth_hashrate",
    "eth_blockNumber",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_blobBaseFee",
    "eth_feeHistory",
    "eth_getBalance",
    "eth_getAccount",
    "eth_getStorageAt",
    "eth_getTransactionCount",
    "eth_getCode",
    "eth_getProof",
    "eth_getBlockByHash",
    "eth_getBlockByNumber",
    "eth_getBlockReceipts",
    "eth_getBlockTransactionCountByHash",
    "eth_getBlockTransactionCountByNumber",
    "eth_getUncleCountByBlockHash",
    "eth_getUncleCountByBlockNumber",
    "eth_getUncleByBlockHashAndIndex",
    "eth_getUncleByBlockNumberAndIndex",
    "eth_getTransactionByHash",
    "eth_getTransactionByBlockHashAndIndex",
    "eth_getTransactionByBlockNumberAndIndex",
    "eth_getRawTransactionByHash",
    "eth_getRawTransactionByBlockHashAndIndex",
    "eth_getRawTransactionByBlockNumberAndIndex",
    "eth_getTransactionReceipt",
    "eth_getLogs",
    "eth_newFilter",
    "eth_newBlockFilter",
    "eth_newPendingTransactionFilter",
    "eth_getFilterChanges",
    "eth_getFilterLogs",
    "eth_uninstallFilter",
    "eth_call",
    "eth_estimateGas",
    "eth_createAccessList",
    "eth_simulateV1",
];

/// A method that sends a transaction, decided by the guard before anything reaches the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMethod {
    /// `eth_sendRawTransaction`: signed by the caller; broadcast as it is once allowed.
    Raw,
    /// `eth_sendRawTransactionSync` (EIP-7966): as `Raw`, answered with the receipt.
    RawSync,
    /// `eth_sendTransaction`: the node signs with an account it holds, once allowed.
    Node,
    /// `eth_sendTransactionSync`: as `Node`, answered with the receipt.
    NodeSync,
}

impl SendMethod {
    /// Whether the answer is the receipt (waited for) rather than the hash.
    pub fn waits_for_receipt(self) -> bool {
        matches!(self, SendMethod::RawSync | SendMethod::NodeSync)
    }
}

/// Why a method is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The node would sign with a key it holds (`eth_sign`, `personal_*`, ...), outside any
    /// decision.
    Signs,
    /// The node would send a transaction that is not one of the decided sends
    /// (`eth_sendUnsignedTransaction`, `wallet_sendTransaction`, bundles, ...).
    SendsUndecided,
    /// Changes the node's state, chain or configuration (`anvil_*`, `hardhat_*`, `evm_*`,
    /// `admin_*`, `miner_*`, `debug_set*`, `engine_*`, ...).
    Administers,
    /// Subscriptions need a WebSocket; the firewall speaks HTTP.
    Subscription,
    /// Not known to be a read: refused until an operator adds it.
    Unknown,
}

impl Refusal {
    /// A stable name, also the error's `data.refused`.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Signs => "signs",
            Refusal::SendsUndecided => "sends_undecided",
            Refusal::Administers => "administers",
            Refusal::Subscription => "subscription",
            Refusal::Unknown => "unknown",
        }
    }

    /// Why `method` is refused, for the JSON-RPC error.
    pub fn explain(self, method: &str) -> String {
        match self {
            Refusal::Signs => format!(
                "{method} is refused by Holdfast's firewall: it makes the node sign with a key it holds, outside any decision"
            ),
            Refusal::SendsUndecided => format!(
                "{method} is refused by Holdfast's firewall: it sends a transaction the guard cannot decide on; send a signed transaction (eth_sendRawTransaction[Sync]) or one for the node's account (eth_sendTransaction[Sync])"
            ),
            Refusal::Administers => format!(
                "{method} is refused by Holdfast's firewall: it changes the node's state or configuration"
            ),
            Refusal::Subscription => format!(
                "{method} is refused by Holdfast's firewall: subscriptions need a WebSocket and the firewall serves HTTP; poll with filters (eth_newFilter, eth_getFilterChanges)"
            ),
            Refusal::Unknown => format!(
                "{method} is refused by Holdfast's firewall: it is not one of the methods known to only read (an operator can add a read method with --firewall-allow-method)"
            ),
        }
    }
}

/// What the firewall does with a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Read,
    Send(SendMethod),
    Refused(Refusal),
}

/// Namespaces whose every method changes the node (state, chain, configuration, peers).
const ADMIN_NAMESPACES: &[&str] = &[
    "anvil_",
    "hardhat_",
    "evm_",
    "ganache_",
    "admin_",
    "miner_",
    "engine_",
    "clique_",
    "tenderly_",
];

/// Classifies a method by its name alone (exact, case-sensitive as nodes match them).
fn builtin(method: &str) -> Class {
    match method {
        "eth_sendRawTransaction" => return Class::Send(SendMethod::Raw),
        "eth_sendRawTransactionSync" => return Class::Send(SendMethod::RawSync),
        "eth_sendTransaction" => return Class::Send(SendMethod::Node),
        "eth_sendTransactionSync" => return Class::Send(SendMethod::NodeSync),
        "eth_subscribe" | "eth_unsubscribe" => return Class::Refused(Refusal::Subscription),
        _ => {}
    }
    if READS.contains(&method) {
        return Class::Read;
    }
    let (namespace, name) = method.split_once('_').unwrap_or(("", method));
    let lower = name.to_ascii_lowercase();
    if namespace == "personal" || namespace == "wallet" || lower.contains("sign") {
        // personal_* unlocks, imports and signs with node keys; wallet_* acts as a wallet
        // (EIP-5792 sendCalls, permissions); any *sign* method signs.
        return if lower.starts_with("send") {
            Class::Refused(Refusal::SendsUndecided)
        } else {
            Class::Refused(Refusal::Signs)
        };
    }
    if lower.starts_with("send") || lower.starts_with("submit") || lower.contains("bundle") {
        return Class::Refused(Refusal::SendsUndecided);
    }
    let prefixed = format!("{namespace}_");
    if ADMIN_NAMESPACES.contains(&prefixed.as_str()) {
        return Class::Refused(Refusal::Administers);
    }
    if namespace == "debug" && !(lower.starts_with("trace") || lower.starts_with("get")) {
        // debug_setHead rewinds the chain; debug_set*/start*/stop*/write*/free* reconfigure.
        return Class::Refused(Refusal::Administers);
    }
    Class::Refused(Refusal::Unknown)
}

/// A read method an operator asked for cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadMethodError {
    #[error("--firewall-allow-method {0:?}: not a JSON-RPC method name (letters, digits, '_')")]
    Malformed(String),
    #[error(
        "--firewall-allow-method {method}: {why}; only methods that read can be allowed",
        why = match class {
            Class::Send(_) => "it sends and is always decided by the guard".to_owned(),
            Class::Read => "it is already a read".to_owned(),
            Class::Refused(r) => format!("it {}", match r {
                Refusal::Signs => "makes the node sign",
                Refusal::SendsUndecided => "sends a transaction the guard cannot decide on",
                Refusal::Administers => "changes the node's state or configuration",
                Refusal::Subscription => "is a subscription (WebSocket only)",
                Refusal::Unknown => "is unknown",
            }),
        }
    )]
    NotARead { method: String, class: Class },
}

/// The methods forwarded as reads: [`READS`] plus the operator's additions.
#[derive(Debug, Clone, Default)]
pub struct ReadMethods {
    extra: BTreeSet<String>,
}

impl ReadMethods {
    /// Adds reads beyond [`READS`]: only methods that are otherwise unknown (a tracing or
    /// chain-specific read); a method that signs, sends or administers cannot be added.
    pub fn with_extra<I, S>(methods: I) -> Result<ReadMethods, ReadMethodError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut extra = BTreeSet::new();
        for m in methods {
            let m = m.as_ref().trim();
            if m.is_empty()
                || m.len() > 64
                || !m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(ReadMethodError::Malformed(m.to_owned()));
            }
            match builtin(m) {
                Class::Refused(Refusal::Unknown) => {
                    extra.insert(m.to_owned());
                }
                class => {
                    return Err(ReadMethodError::NotARead {
                        method: m.to_owned(),
                        class,
                    });
                }
            }
        }
        Ok(ReadMethods { extra })
    }

    /// What the firewall does with `method`.
    pub fn classify(&self, method: &str) -> Class {
        match builtin(method) {
            Class::Refused(Refusal::Unknown) if self.extra.contains(method) => Class::Read,
            c => c,
        }
    }

    /// The operator's additions.
    pub fn extra(&self) -> impl Iterator<Item = &str> {
        self.extra.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_are_decided_and_reads_forwarded() {
        let m = ReadMethods::default();
        assert_eq!(
            m.classify("eth_sendRawTransaction"),
            Class::Send(SendMethod::Raw)
        );
        assert_eq!(
            m.classify("eth_sendRawTransactionSync"),
            Class::Send(SendMethod::RawSync)
        );
        assert_eq!(
            m.classify("eth_sendTransaction"),
            Class::Send(SendMethod::Node)
        );
        assert_eq!(
            m.classify("eth_sendTransactionSync"),
            Class::Send(SendMethod::NodeSync)
        );
        for r in READS {
            assert_eq!(m.classify(r), Class::Read, "{r}");
        }
    }

    #[test]
    fn signing_sending_and_admin_methods_are_refused() {
        let m = ReadMethods::default();
        for (method, why) in [
            ("eth_sign", Refusal::Signs),
            ("eth_signTransaction", Refusal::Signs),
            ("eth_signTypedData", Refusal::Signs),
            ("eth_signTypedData_v3", Refusal::Signs),
            ("eth_signTypedData_v4", Refusal::Signs),
            ("personal_sign", Refusal::Signs),
            ("personal_unlockAccount", Refusal::Signs),
            ("personal_importRawKey", Refusal::Signs),
            ("personal_sendTransaction", Refusal::SendsUndecided),
            ("eth_sendUnsignedTransaction", Refusal::SendsUndecided),
            ("wallet_sendTransaction", Refusal::SendsUndecided),
            ("wallet_sendCalls", Refusal::SendsUndecided),
            ("odyssey_sendTransaction", Refusal::SendsUndecided),
            ("eth_sendBundle", Refusal::SendsUndecided),
            ("eth_callBundle", Refusal::SendsUndecided),
            ("eth_sendRawTransactionConditional", Refusal::SendsUndecided),
            ("eth_sendPrivateTransaction", Refusal::SendsUndecided),
            ("eth_submitWork", Refusal::SendsUndecided),
            ("eth_submitTransaction", Refusal::SendsUndecided),
            ("anvil_setBalance", Refusal::Administers),
            ("anvil_impersonateAccount", Refusal::Administers),
            ("hardhat_impersonateAccount", Refusal::Administers),
            ("evm_mine", Refusal::Administers),
            ("evm_revert", Refusal::Administers),
            ("admin_addPeer", Refusal::Administers),
            ("miner_start", Refusal::Administers),
            ("engine_forkchoiceUpdatedV3", Refusal::Administers),
            ("debug_setHead", Refusal::Administers),
            ("debug_startCPUProfile", Refusal::Administers),
            ("eth_subscribe", Refusal::Subscription),
            ("eth_fillTransaction", Refusal::Unknown),
            ("debug_traceTransaction", Refusal::Unknown),
            ("trace_block", Refusal::Unknown),
            ("ETH_SENDRAWTRANSACTION", Refusal::SendsUndecided),
            ("eth_SendRawTransaction", Refusal::SendsUndecided),
            ("", Refusal::Unknown),
        ] {
            assert_eq!(m.classify(method), Class::Refused(why), "{method}");
            assert!(why.explain(method).contains(method));
        }
    }

    #[test]
    fn operators_can_add_reads_but_nothing_that_signs_sends_or_administers() {
        let m = ReadMethods::with_extra(["debug_traceTransaction", "trace_block"]).expect("reads");
        assert_eq!(m.classify("debug_traceTransaction"), Class::Read);
        assert_eq!(m.classify("trace_block"), Class::Read);
        assert_eq!(m.classify("trace_filter"), Class::Refused(Refusal::Unknown));
        for bad in [
            "eth_sendUnsignedTransaction",
            "eth_sign",
            "anvil_setBalance",
            "debug_setHead",
            "eth_sendRawTransaction",
            "eth_call",
            "eth_subscribe",
        ] {
            let e = ReadMethods::with_extra([bad]).expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert!(matches!(
            ReadMethods::with_extra(["eth call"]),
            Err(ReadMethodError::Malformed(_))
        ));
    }
}
