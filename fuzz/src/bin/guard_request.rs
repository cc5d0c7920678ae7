//! Guard requests: `holdfast_guard::request::parse` on the bytes (transaction, raw signed
//! transaction, Safe Transaction Service JSON, withdrawal), then what the guard does with
//! what parsed, without a node: the root call, the recursive decoding (Safe
//! `execTransaction`, MultiSend nesting, ABI by selector) and `Guard::check` with the
//! built-in policy and the shipped intel.
//!
//! Checks: no panic; bounded memory; a parse error names its field; every call the decoder
//! accepted re-encodes to exactly its bytes (the ABI promise), a MultiSend batch re-packs to
//! its bytes, the tree is well formed (parents before children, depth and count within
//! `MAX_DEPTH` and `MAX_CALLS`); the report serialises.

use std::sync::{Arc, LazyLock};

use alloy_primitives::Bytes;
use alloy_sol_types::SolCall;
use holdfast_fuzz::{Bound, bounded, check_field, check_message, run};
use holdfast_guard::abi::{erc20, erc721, erc1155, permit2, proxy, safe as safe_abi};
use holdfast_guard::decode::{self, Action, CallKind, DecodedCall, MAX_CALLS, MAX_DEPTH};
use holdfast_guard::request::{self, RequestError};
use holdfast_guard::safe::{Operation, SafeVersion};
use holdfast_guard::{CheckOptions, Guard, Policy};

static GUARD: LazyLock<Guard> = LazyLock::new(|| {
    let policy = Policy::default_policy().expect("the built-in policy parses");
    let intel = holdfast_intel::load(None).expect("the shipped intel loads");
    Guard::new(Arc::new(policy), Arc::new(intel.index))
});

/// `Some(true)`: `data` decodes as `C` and re-encodes to itself; `Some(false)`: it decodes
/// but re-encodes differently or does not decode; `None`: not `C`'s selector.
fn reencodes<C: SolCall>(data: &[u8]) -> Option<bool> {
    if data.get(..4)? != C::SELECTOR {
        return None;
    }
    Some(C::abi_decode(data).is_ok_and(|c| c.abi_encode() == data))
}

/// Every ABI the decoder knows, by selector: does `data` re-encode to itself?
fn known_reencodes(data: &[u8]) -> Option<bool> {
    macro_rules! any_of {
        ($($t:ty),* $(,)?) => {
            None $(.or_else(|| reencodes::<$t>(data)))*
        };
    }
    any_of!(
        erc20::transferCall,
        erc20::transferFromCall,
        erc20::approveCall,
        erc20::increaseAllowanceCall,
        erc20::permitCall,
        erc721::safeTransferFrom_0Call,
        erc721::safeTransferFrom_1Call,
        erc721::setApprovalForAllCall,
        erc1155::safeTransferFromCall,
        erc1155::safeBatchTransferFromCall,
        permit2::approveCall,
        permit2::permit_0Call,
        permit2::permit_1Call,
        permit2::transferFrom_0Call,
        permit2::transferFrom_1Call,
        permit2::permitTransferFromCall,
        safe_abi::execTransactionCall,
        safe_abi::multiSendCall,
        safe_abi::addOwnerWithThresholdCall,
        safe_abi::removeOwnerCall,
        safe_abi::swapOwnerCall,
        safe_abi::changeThresholdCall,
        safe_abi::enableModuleCall,
        safe_abi::disableModuleCall,
        safe_abi::setGuardCall,
        safe_abi::setModuleGuardCall,
        safe_abi::setFallbackHandlerCall,
        safe_abi::changeMasterCopyCall,
        proxy::upgradeToCall,
        proxy::upgradeToAndCallCall,
        proxy::upgradeCall,
        proxy::upgradeAndCallCall,
        proxy::changeAdminCall,
        proxy::changeProxyAdminCall,
        proxy::transferOwnershipCall,
    )
}

fn check_tree(calls: &[DecodedCall]) {
    assert!(calls.len() <= MAX_CALLS, "{} calls decoded", calls.len());
    for (i, c) in calls.iter().enumerate() {
        assert!(c.depth <= MAX_DEPTH, "call {i} at depth {}", c.depth);
        match c.parent {
            None => assert_eq!(c.depth, 0, "call {i} has no parent but depth {}", c.depth),
            Some(p) => {
                assert!(p < i, "call {i}'s parent {p} comes after it");
                assert_eq!(c.depth, calls[p].depth + 1, "call {i}'s depth");
            }
        }
        match &c.action {
            Action::Malformed { function, reason } => {
                check_field("decode", function, reason);
                check_message("decode", reason);
            }
            Action::Unknown | Action::NativeTransfer | Action::Create => {}
            _ => {
                // Accepted by the decoder: the arguments must re-encode to the same bytes.
                if c.function.is_some() {
                    assert_eq!(
                        known_reencodes(&c.data),
                        Some(true),
                        "call {i} ({:?}) was accepted but does not re-encode to its bytes",
                        c.function
                    );
                }
            }
        }
        if matches!(c.action, Action::MultiSend) {
            let children: Vec<(Operation, _, _, Bytes)> = calls
                .iter()
                .filter(|k| k.parent == Some(i))
                .map(|k| {
                    let op = match k.kind {
                        CallKind::Call => Operation::Call,
                        CallKind::DelegateCall => Operation::DelegateCall,
                        CallKind::Create => panic!("a MultiSend child is a creation"),
                    };
                    (op, k.to, k.value, k.data.clone())
                })
                .collect();
            assert_eq!(
                decode::pack_multisend(&children),
                c.data,
                "MultiSend call {i} does not re-pack to its bytes"
            );
        }
    }
}

fn check_request_error(e: &RequestError) {
    let message = e.to_string();
    check_message("request", &message);
    match e {
        RequestError::Missing { field, expected } => {
            check_field("request", field, &message);
            check_message("request", expected);
        }
        RequestError::Invalid {
            field, expected, ..
        } => {
            check_field("request", field, &message);
            check_message("request", expected);
        }
        // An unknown key is named as it is, quoted, even when it is empty (`{"": 1}`).
        RequestError::UnknownField { .. } | RequestError::DuplicateKey { .. } => {}
        RequestError::Json(m) => check_message("request", m),
        RequestError::TooLarge(_) | RequestError::NotObject(_) | RequestError::UnknownShape => {}
    }
}

fn main() {
    LazyLock::force(&GUARD);
    run(|data| {
        bounded(Bound::DEFAULT, data, || {
            let env = match request::parse(data) {
                Ok(env) => env,
                Err(e) => return check_request_error(&e),
            };
            let guard = &*GUARD;
            match guard.root_call(&env) {
                Ok((_, root, _)) => {
                    if let Ok(d) =
                        decode::decode(root.from, root.to, root.kind, root.value, &root.data)
                    {
                        check_tree(&d.calls);
                    }
                }
                Err(e) => check_message("root call", &e.to_string()),
            }
            let opts = CheckOptions {
                safe_version: Some(SafeVersion::V1_4_1),
                now: 1_764_000_000,
                ..CheckOptions::default()
            };
            match guard.check(&env, &opts) {
                Ok(report) => {
                    serde_json::to_string(&report).expect("a report serialises");
                }
                Err(e) => check_message("check", &e.to_string()),
            }
        });
    });
}
