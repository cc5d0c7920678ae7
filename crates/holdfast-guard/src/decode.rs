//! Exact, recursive decoding of a payload into the calls it makes.
//!
//! Every call is decoded by its exact 4-byte selector against the ABIs in [`crate::abi`], and
//! its arguments must re-encode to the very bytes given (so extra or dirty bytes that a
//! contract might read differently are reported as malformed, not ignored). Safe
//! `execTransaction`, `multiSend` batches and `upgradeToAndCall` are unpacked into child
//! calls with the account they execute as. A selector not in the table is
//! [`Action::Unknown`]: Holdfast never guesses.
//!
//! Pure: no I/O.

use alloy::primitives::{Address, Bytes, U256};
use alloy::sol_types::SolCall;
use serde::Serialize;

use crate::abi::{erc20, erc721, erc1155, permit2, proxy, safe as safe_abi};
use crate::safe::{Operation, SafeTx};

/// Deepest nesting unpacked (a Safe executing a MultiSend that calls another Safe, ...).
pub const MAX_DEPTH: u8 = 8;
/// Most calls one payload may decode to.
pub const MAX_CALLS: usize = 512;

/// How a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    Call,
    /// The target's code runs with the storage and balance of the calling account: it can
    /// rewrite anything, including a Safe's singleton (the Bybit takeover).
    DelegateCall,
    Create,
}

impl From<Operation> for CallKind {
    fn from(op: Operation) -> Self {
        match op {
            Operation::Call => CallKind::Call,
            Operation::DelegateCall => CallKind::DelegateCall,
        }
    }
}

/// A Safe configuration change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum SafeChange {
    AddOwner {
        owner: Address,
        threshold: U256,
    },
    RemoveOwner {
        owner: Address,
        threshold: U256,
    },
    SwapOwner {
        old_owner: Address,
        new_owner: Address,
    },
    ChangeThreshold {
        threshold: U256,
    },
    EnableModule {
        module: Address,
    },
    DisableModule {
        module: Address,
    },
    SetGuard {
        guard: Address,
    },
    SetModuleGuard {
        guard: Address,
    },
    SetFallbackHandler {
        handler: Address,
    },
    /// Safe 1.1.1's `changeMasterCopy`: replaces the contract code the Safe runs.
    ChangeMasterCopy {
        master_copy: Address,
    },
}

/// What one call does, as far as its exact bytes say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// No data: a plain transfer of the native coin (or nothing).
    NativeTransfer,
    Transfer {
        to: Address,
        amount: U256,
    },
    /// ERC-20 `transferFrom`, or ERC-721 `transferFrom` (same selector: `amount` is then the
    /// token id).
    TransferFrom {
        from: Address,
        to: Address,
        amount: U256,
    },
    /// ERC-20 `approve`, or ERC-721 `approve` (same selector).
    Approve {
        spender: Address,
        amount: U256,
    },
    IncreaseAllowance {
        spender: Address,
        added: U256,
    },
    /// EIP-2612: lets `spender` move `value` of `owner`'s tokens.
    Permit {
        owner: Address,
        spender: Address,
        value: U256,
        deadline: U256,
    },
    /// Permit2 allowance: `spender` may move `amount` of `token` until `expiration`.
    Permit2Approve {
        token: Address,
        spender: Address,
        amount: U256,
        expiration: u64,
    },
    /// Permit2 signed allowances for one spender.
    Permit2Permit {
        owner: Address,
        spender: Address,
        tokens: Vec<(Address, U256)>,
    },
    /// Permit2 transfers out of allowances.
    Permit2TransferFrom {
        transfers: Vec<Permit2Transfer>,
    },
    NftSafeTransferFrom {
        from: Address,
        to: Address,
        id: U256,
    },
    Erc1155Transfer {
        from: Address,
        to: Address,
        ids: Vec<U256>,
        amounts: Vec<U256>,
    },
    SetApprovalForAll {
        operator: Address,
        approved: bool,
    },
    /// A Safe executing a transaction (its child is the inner call).
    SafeExec {
        tx: SafeTx,
        signatures: Bytes,
    },
    /// A MultiSend batch (children: the batch's calls). `call_only` when the batch
    /// forbids DELEGATECALL entries (MultiSendCallOnly); only known by address.
    MultiSend,
    SafeConfig(SafeChange),
    /// A proxy's implementation replaced (`upgradeTo`, `upgradeToAndCall`, ProxyAdmin's
    /// `upgrade`). For `upgradeToAndCall` the child is the call into the new implementation.
    Upgrade {
        proxy: Address,
        implementation: Address,
    },
    /// Admin or ownership handed to another account.
    ChangeAdmin {
        new_admin: Address,
    },
    /// Contract creation code (not decoded).
    Create,
    /// A known selector whose arguments do not decode exactly.
    Malformed {
        function: &'static str,
        reason: String,
    },
    /// A selector Holdfast does not know.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Permit2Transfer {
    pub from: Address,
    pub to: Address,
    pub token: Address,
    pub amount: U256,
}

/// One decoded call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecodedCall {
    /// The call this one is part of (`None` for the payload's own call).
    pub parent: Option<usize>,
    pub depth: u8,
    /// The account the call is made from: `msg.sender` for a call, and for a DELEGATECALL
    /// the account whose storage and balance the target's code gets.
    pub from: Address,
    pub to: Address,
    pub kind: CallKind,
    pub value: U256,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<alloy::primitives::FixedBytes<4>>,
    /// The function's name in the ABI it was decoded with (`None`: no data, or unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<&'static str>,
    #[serde(flatten)]
    pub action: Action,
    #[serde(skip)]
    pub data: Bytes,
}

/// A payload that cannot be unpacked within bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the payload nests calls deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the payload decodes to more than {MAX_CALLS} calls")]
    TooManyCalls,
}

/// The calls of a payload, parents before children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decoded {
    pub calls: Vec<DecodedCall>,
}

/// Decodes the call `from` makes to `to` (`None`: a creation) with `value` and `data`.
pub fn decode(
    from: Address,
    to: Option<Address>,
    kind: CallKind,
    value: U256,
    data: &Bytes,
) -> Result<Decoded, DecodeError> {
    let mut out = Decoded { calls: Vec::new() };
    match to {
        Some(to) => push(&mut out, None, 0, from, to, kind, value, data)?,
        None => {
            out.calls.push(DecodedCall {
                parent: None,
                depth: 0,
                from,
                to: Address::ZERO,
                kind: CallKind::Create,
                value,
                selector: None,
                function: None,
                action: Action::Create,
                data: data.clone(),
            });
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn push(
    out: &mut Decoded,
    parent: Option<usize>,
    depth: u8,
    from: Address,
    to: Address,
    kind: CallKind,
    value: U256,
    data: &Bytes,
) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    if out.calls.len() >= MAX_CALLS {
        return Err(DecodeError::TooManyCalls);
    }
    let (selector, function, action, children) = classify(to, data);
    let index = out.calls.len();
    out.calls.push(DecodedCall {
        parent,
        depth,
        from,
        to,
        kind,
        value,
        selector,
        function,
        action,
        data: data.clone(),
    });
    // The account the children run as: a DELEGATECALL's children act for its caller.
    let executing = match kind {
        CallKind::DelegateCall => from,
        CallKind::Call | CallKind::Create => to,
    };
    for child in children {
        push(
            out,
            Some(index),
            depth + 1,
            executing,
            child.to,
            child.kind,
            child.value,
            &child.data,
        )?;
    }
    Ok(())
}

struct Child {
    to: Address,
    kind: CallKind,
    value: U256,
    data: Bytes,
}

type Classified = (
    Option<alloy::primitives::FixedBytes<4>>,
    Option<&'static str>,
    Action,
    Vec<Child>,
);

/// Decodes `C` exactly: the arguments must re-encode to the same bytes.
fn exact<C: SolCall>(data: &[u8]) -> Result<C, String> {
    let call = C::abi_decode(data).map_err(|e| e.to_string())?;
    if call.abi_encode() != data {
        return Err(format!(
            "the arguments are not in canonical ABI encoding ({} bytes given, {} expected): a contract may read them differently",
            data.len(),
            4 + call.abi_encoded_size()
        ));
    }
    Ok(call)
}

fn classify(to: Address, data: &Bytes) -> Classified {
    if data.is_empty() {
        return (None, None, Action::NativeTransfer, Vec::new());
    }
    if data.len() < 4 {
        return (
            None,
            None,
            Action::Malformed {
                function: "(none)",
                reason: format!(
                    "{} bytes of data are too short for a function selector",
                    data.len()
                ),
            },
            Vec::new(),
        );
    }
    let selector = alloy::primitives::FixedBytes::<4>::from_slice(&data[..4]);
    let s = selector.0;
    macro_rules! decode_as {
        ($call:ty, $name:literal, |$c:ident| $body:expr) => {
            match exact::<$call>(data) {
                Ok($c) => {
                    let (action, children): (Action, Vec<Child>) = $body;
                    (Some(selector), Some($name), action, children)
                }
                Err(reason) => (
                    Some(selector),
                    Some($name),
                    Action::Malformed {
                        function: $name,
                        reason,
                    },
                    Vec::new(),
                ),
            }
        };
    }
    let none = Vec::new;
    let config = |c: SafeChange| (Action::SafeConfig(c), Vec::new());
    match s {
        erc20::transferCall::SELECTOR => decode_as!(erc20::transferCall, "transfer", |c| (
            Action::Transfer {
                to: c.to,
                amount: c.amount
            },
            none()
        )),
        erc20::transferFromCall::SELECTOR => {
            decode_as!(erc20::transferFromCall, "transferFrom", |c| (
                Action::TransferFrom {
                    from: c.from,
                    to: c.to,
                    amount: c.amount
                },
                none()
            ))
        }
        erc20::approveCall::SELECTOR => decode_as!(erc20::approveCall, "approve", |c| (
            Action::Approve {
                spender: c.spender,
                amount: c.amount
            },
            none()
        )),
        erc20::increaseAllowanceCall::SELECTOR => {
            decode_as!(erc20::increaseAllowanceCall, "increaseAllowance", |c| (
                Action::IncreaseAllowance {
                    spender: c.spender,
                    added: c.addedValue
                },
                none()
            ))
        }
        erc20::permitCall::SELECTOR => decode_as!(erc20::permitCall, "permit", |c| (
            Action::Permit {
                owner: c.owner,
                spender: c.spender,
                value: c.value,
                deadline: c.deadline
            },
            none()
        )),
        erc721::safeTransferFrom_0Call::SELECTOR => {
            decode_as!(erc721::safeTransferFrom_0Call, "safeTransferFrom", |c| (
                Action::NftSafeTransferFrom {
                    from: c.from,
                    to: c.to,
                    id: c.tokenId
                },
                none()
            ))
        }
        erc721::safeTransferFrom_1Call::SELECTOR => {
            decode_as!(erc721::safeTransferFrom_1Call, "safeTransferFrom", |c| (
                Action::NftSafeTransferFrom {
                    from: c.from,
                    to: c.to,
                    id: c.tokenId
                },
                none()
            ))
        }
        erc721::setApprovalForAllCall::SELECTOR => {
            decode_as!(erc721::setApprovalForAllCall, "setApprovalForAll", |c| (
                Action::SetApprovalForAll {
                    operator: c.operator,
                    approved: c.approved
                },
                none()
            ))
        }
        erc1155::safeTransferFromCall::SELECTOR => {
            decode_as!(erc1155::safeTransferFromCall, "safeTransferFrom", |c| (
                Action::Erc1155Transfer {
                    from: c.from,
                    to: c.to,
                    ids: vec![c.id],
                    amounts: vec![c.amount]
                },
                none()
            ))
        }
        erc1155::safeBatchTransferFromCall::SELECTOR => decode_as!(
            erc1155::safeBatchTransferFromCall,
            "safeBatchTransferFrom",
            |c| (
                Action::Erc1155Transfer {
                    from: c.from,
                    to: c.to,
                    ids: c.ids,
                    amounts: c.amounts
                },
                none()
            )
        ),
        permit2::approveCall::SELECTOR => decode_as!(permit2::approveCall, "approve", |c| (
            Action::Permit2Approve {
                token: c.token,
                spender: c.spender,
                amount: U256::from(c.amount),
                expiration: c.expiration.to()
            },
            none()
        )),
        permit2::permit_0Call::SELECTOR => decode_as!(permit2::permit_0Call, "permit", |c| (
            Action::Permit2Permit {
                owner: c.owner,
                spender: c.permitSingle.spender,
                tokens: vec![(
                    c.permitSingle.details.token,
                    U256::from(c.permitSingle.details.amount)
                )]
            },
            none()
        )),
        permit2::permit_1Call::SELECTOR => decode_as!(permit2::permit_1Call, "permit", |c| (
            Action::Permit2Permit {
                owner: c.owner,
                spender: c.permitBatch.spender,
                tokens: c
                    .permitBatch
                    .details
                    .iter()
                    .map(|d| (d.token, U256::from(d.amount)))
                    .collect()
            },
            none()
        )),
        permit2::transferFrom_0Call::SELECTOR => {
            decode_as!(permit2::transferFrom_0Call, "transferFrom", |c| (
                Action::Permit2TransferFrom {
                    transfers: vec![Permit2Transfer {
                        from: c.from,
                        to: c.to,
                        token: c.token,
                        amount: U256::from(c.amount)
                    }]
                },
                none()
            ))
        }
        permit2::transferFrom_1Call::SELECTOR => {
            decode_as!(permit2::transferFrom_1Call, "transferFrom", |c| (
                Action::Permit2TransferFrom {
                    transfers: c
                        .transferDetails
                        .iter()
                        .map(|d| Permit2Transfer {
                            from: d.from,
                            to: d.to,
                            token: d.token,
                            amount: U256::from(d.amount)
                        })
                        .collect()
                },
                none()
            ))
        }
        permit2::permitTransferFromCall::SELECTOR => {
            decode_as!(permit2::permitTransferFromCall, "permitTransferFrom", |c| (
                Action::Permit2TransferFrom {
                    transfers: vec![Permit2Transfer {
                        from: c.owner,
                        to: c.transferDetails.to,
                        token: c.permit.permitted.token,
                        amount: c.transferDetails.requestedAmount
                    }]
                },
                none()
            ))
        }
        safe_abi::execTransactionCall::SELECTOR => {
            decode_as!(safe_abi::execTransactionCall, "execTransaction", |c| {
                match Operation::from_u8(c.operation) {
                    Some(op) => {
                        let tx = SafeTx {
                            to: c.to,
                            value: c.value,
                            data: c.data.clone(),
                            operation: op,
                            safe_tx_gas: c.safeTxGas,
                            base_gas: c.baseGas,
                            gas_price: c.gasPrice,
                            gas_token: c.gasToken,
                            refund_receiver: c.refundReceiver,
                            nonce: U256::ZERO,
                        };
                        let child = Child {
                            to: c.to,
                            kind: op.into(),
                            value: c.value,
                            data: c.data,
                        };
                        (
                            Action::SafeExec {
                                tx,
                                signatures: c.signatures,
                            },
                            vec![child],
                        )
                    }
                    None => (
                        Action::Malformed {
                            function: "execTransaction",
                            reason: format!(
                                "operation {} is neither 0 (CALL) nor 1 (DELEGATECALL)",
                                c.operation
                            ),
                        },
                        none(),
                    ),
                }
            })
        }
        safe_abi::multiSendCall::SELECTOR => {
            decode_as!(
                safe_abi::multiSendCall,
                "multiSend",
                |c| match unpack_multisend(&c.transactions) {
                    Ok(children) => (Action::MultiSend, children),
                    Err(reason) => (
                        Action::Malformed {
                            function: "multiSend",
                            reason,
                        },
                        none(),
                    ),
                }
            )
        }
        safe_abi::addOwnerWithThresholdCall::SELECTOR => decode_as!(
            safe_abi::addOwnerWithThresholdCall,
            "addOwnerWithThreshold",
            |c| config(SafeChange::AddOwner {
                owner: c.owner,
                threshold: c._threshold
            })
        ),
        safe_abi::removeOwnerCall::SELECTOR => {
            decode_as!(safe_abi::removeOwnerCall, "removeOwner", |c| config(
                SafeChange::RemoveOwner {
                    owner: c.owner,
                    threshold: c._threshold
                }
            ))
        }
        safe_abi::swapOwnerCall::SELECTOR => {
            decode_as!(safe_abi::swapOwnerCall, "swapOwner", |c| config(
                SafeChange::SwapOwner {
                    old_owner: c.oldOwner,
                    new_owner: c.newOwner
                }
            ))
        }
        safe_abi::changeThresholdCall::SELECTOR => {
            decode_as!(
                safe_abi::changeThresholdCall,
                "changeThreshold",
                |c| config(SafeChange::ChangeThreshold {
                    threshold: c._threshold
                })
            )
        }
        safe_abi::enableModuleCall::SELECTOR => {
            decode_as!(safe_abi::enableModuleCall, "enableModule", |c| config(
                SafeChange::EnableModule { module: c.module }
            ))
        }
        safe_abi::disableModuleCall::SELECTOR => {
            decode_as!(safe_abi::disableModuleCall, "disableModule", |c| config(
                SafeChange::DisableModule { module: c.module }
            ))
        }
        safe_abi::setGuardCall::SELECTOR => {
            decode_as!(safe_abi::setGuardCall, "setGuard", |c| config(
                SafeChange::SetGuard { guard: c.guard }
            ))
        }
        safe_abi::setModuleGuardCall::SELECTOR => {
            decode_as!(safe_abi::setModuleGuardCall, "setModuleGuard", |c| config(
                SafeChange::SetModuleGuard {
                    guard: c.moduleGuard
                }
            ))
        }
        safe_abi::setFallbackHandlerCall::SELECTOR => decode_as!(
            safe_abi::setFallbackHandlerCall,
            "setFallbackHandler",
            |c| config(SafeChange::SetFallbackHandler { handler: c.handler })
        ),
        safe_abi::changeMasterCopyCall::SELECTOR => {
            decode_as!(safe_abi::changeMasterCopyCall, "changeMasterCopy", |c| {
                config(SafeChange::ChangeMasterCopy {
                    master_copy: c._masterCopy,
                })
            })
        }
        proxy::upgradeToCall::SELECTOR => decode_as!(proxy::upgradeToCall, "upgradeTo", |c| (
            Action::Upgrade {
                proxy: to,
                implementation: c.newImplementation
            },
            none()
        )),
        proxy::upgradeToAndCallCall::SELECTOR => {
            decode_as!(proxy::upgradeToAndCallCall, "upgradeToAndCall", |c| {
                let child = Child {
                    to: c.newImplementation,
                    kind: CallKind::DelegateCall,
                    value: U256::ZERO,
                    data: c.data,
                };
                (
                    Action::Upgrade {
                        proxy: to,
                        implementation: c.newImplementation,
                    },
                    if child.data.is_empty() {
                        none()
                    } else {
                        vec![child]
                    },
                )
            })
        }
        proxy::upgradeCall::SELECTOR => decode_as!(proxy::upgradeCall, "upgrade", |c| (
            Action::Upgrade {
                proxy: c.proxy,
                implementation: c.implementation
            },
            none()
        )),
        proxy::upgradeAndCallCall::SELECTOR => {
            decode_as!(proxy::upgradeAndCallCall, "upgradeAndCall", |c| (
                Action::Upgrade {
                    proxy: c.proxy,
                    implementation: c.implementation
                },
                none()
            ))
        }
        proxy::changeAdminCall::SELECTOR => {
            decode_as!(proxy::changeAdminCall, "changeAdmin", |c| (
                Action::ChangeAdmin {
                    new_admin: c.newAdmin
                },
                none()
            ))
        }
        proxy::changeProxyAdminCall::SELECTOR => {
            decode_as!(proxy::changeProxyAdminCall, "changeProxyAdmin", |c| (
                Action::ChangeAdmin {
                    new_admin: c.newAdmin
                },
                none()
            ))
        }
        proxy::transferOwnershipCall::SELECTOR => {
            decode_as!(proxy::transferOwnershipCall, "transferOwnership", |c| (
                Action::ChangeAdmin {
                    new_admin: c.newOwner
                },
                none()
            ))
        }
        _ => (Some(selector), None, Action::Unknown, Vec::new()),
    }
}

/// MultiSend's packed batch: per call `operation (1) ‖ to (20) ‖ value (32) ‖ length (32) ‖
/// data`, back to back. Trailing bytes that do not form a whole entry are an error.
fn unpack_multisend(packed: &[u8]) -> Result<Vec<Child>, String> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < packed.len() {
        let head = packed
            .get(i..i + 85)
            .ok_or_else(|| format!("entry {} at byte {i} is truncated", out.len()))?;
        let op = Operation::from_u8(head[0]).ok_or_else(|| {
            format!(
                "entry {} has operation {}: neither 0 (CALL) nor 1 (DELEGATECALL)",
                out.len(),
                head[0]
            )
        })?;
        let to = Address::from_slice(&head[1..21]);
        let value = U256::from_be_slice(&head[21..53]);
        let len = usize::try_from(U256::from_be_slice(&head[53..85]))
            .ok()
            .filter(|l| *l <= packed.len())
            .ok_or_else(|| {
                format!(
                    "entry {} declares more data than the batch holds",
                    out.len()
                )
            })?;
        let data = packed
            .get(i + 85..i + 85 + len)
            .ok_or_else(|| format!("entry {}'s data is truncated", out.len()))?;
        out.push(Child {
            to,
            kind: op.into(),
            value,
            data: Bytes::copy_from_slice(data),
        });
        i += 85 + len;
        if out.len() > MAX_CALLS {
            return Err(format!("more than {MAX_CALLS} entries"));
        }
    }
    Ok(out)
}

/// Packs calls as MultiSend expects them (for tests, examples and corpus generation).
pub fn pack_multisend(calls: &[(Operation, Address, U256, Bytes)]) -> Bytes {
    let mut out = Vec::new();
    for (op, to, value, data) in calls {
        out.push(op.as_u8());
        out.extend_from_slice(to.as_slice());
        out.extend_from_slice(&value.to_be_bytes::<32>());
        out.extend_from_slice(&U256::from(data.len()).to_be_bytes::<32>());
        out.extend_from_slice(data);
    }
    safe_abi::multiSendCall {
        transactions: out.into(),
    }
    .abi_encode()
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    const SAFE: Address = address!("0x1Db92e2EeBC8E0c075a02BeA49a2935BcD2dFCF4");

    fn transfer(to: Address, amount: u64) -> Bytes {
        erc20::transferCall {
            to,
            amount: U256::from(amount),
        }
        .abi_encode()
        .into()
    }

    #[test]
    fn a_multisend_is_unpacked_with_the_safe_as_sender() {
        let token = Address::repeat_byte(0x70);
        let bob = Address::repeat_byte(0xb0);
        let batch = pack_multisend(&[
            (Operation::Call, token, U256::ZERO, transfer(bob, 5)),
            (Operation::Call, bob, U256::from(7), Bytes::new()),
        ]);
        let multisend = Address::repeat_byte(0x55);
        let d = decode(
            SAFE,
            Some(multisend),
            CallKind::DelegateCall,
            U256::ZERO,
            &batch,
        )
        .expect("decodes");
        assert_eq!(d.calls.len(), 3);
        assert_eq!(d.calls[0].action, Action::MultiSend);
        assert_eq!(
            d.calls[1].from, SAFE,
            "delegatecalled batch runs as the Safe"
        );
        assert_eq!(
            d.calls[1].action,
            Action::Transfer {
                to: bob,
                amount: U256::from(5)
            }
        );
        assert_eq!(d.calls[2].value, U256::from(7));
        assert_eq!(d.calls[2].parent, Some(0));
    }

    #[test]
    fn the_bybit_payload_decodes_as_a_delegatecalled_transfer() {
        // execTransaction(to = attacker contract, data = transfer(attacker, 0), operation = 1).
        let attacker = address!("0x96221423681A6d52E184D440a8eFCEbB105C7242");
        let inner = transfer(address!("0xbDd077f651EBe7f7b3cE16fe5F2b025BE2969516"), 0);
        let exec = safe_abi::execTransactionCall {
            to: attacker,
            value: U256::ZERO,
            data: inner,
            operation: 1,
            safeTxGas: U256::from(45746),
            baseGas: U256::ZERO,
            gasPrice: U256::ZERO,
            gasToken: Address::ZERO,
            refundReceiver: Address::ZERO,
            signatures: Bytes::from(vec![0u8; 65]),
        }
        .abi_encode();
        let signer = Address::repeat_byte(0x01);
        let d =
            decode(signer, Some(SAFE), CallKind::Call, U256::ZERO, &exec.into()).expect("decodes");
        assert!(matches!(d.calls[0].action, Action::SafeExec { .. }));
        assert_eq!(d.calls[1].kind, CallKind::DelegateCall);
        assert_eq!(d.calls[1].to, attacker);
        assert_eq!(d.calls[1].from, SAFE);
        assert!(matches!(d.calls[1].action, Action::Transfer { .. }));
    }

    #[test]
    fn unknown_and_malformed_are_reported_not_guessed() {
        let d = decode(
            SAFE,
            Some(SAFE),
            CallKind::Call,
            U256::ZERO,
            &Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef, 0]),
        )
        .expect("decodes");
        assert_eq!(d.calls[0].action, Action::Unknown);
        let mut data = transfer(SAFE, 1).to_vec();
        data.push(0);
        let d = decode(SAFE, Some(SAFE), CallKind::Call, U256::ZERO, &data.into()).expect("d");
        assert!(
            matches!(
                &d.calls[0].action,
                Action::Malformed {
                    function: "transfer",
                    ..
                }
            ),
            "{:?}",
            d.calls[0].action
        );
        // Dirty high bytes in an address argument.
        let mut data = transfer(SAFE, 1).to_vec();
        data[4] = 0xff;
        let d = decode(SAFE, Some(SAFE), CallKind::Call, U256::ZERO, &data.into()).expect("d");
        assert!(matches!(&d.calls[0].action, Action::Malformed { .. }));
        // A truncated batch entry.
        let mut batch =
            pack_multisend(&[(Operation::Call, SAFE, U256::ZERO, transfer(SAFE, 1))]).to_vec();
        let n = batch.len();
        batch[n - 1] = 0;
        let inner = &batch[4..];
        assert!(unpack_multisend(&inner[64..inner.len() - 40]).is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut data = transfer(SAFE, 1);
        for _ in 0..=MAX_DEPTH {
            data = pack_multisend(&[(Operation::DelegateCall, SAFE, U256::ZERO, data)]);
        }
        assert_eq!(
            decode(SAFE, Some(SAFE), CallKind::Call, U256::ZERO, &data),
            Err(DecodeError::TooDeep)
        );
    }
}
