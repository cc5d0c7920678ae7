//! Exits through EVM bridges other than THORChain: the event a bridge contract emits when
//! funds leave names the destination chain and the recipient there. Decoded here, from the
//! bridges' own contracts (signatures checked against the topics their clients and indexers
//! publish, see the tests):
//!
//! - Multichain (Anyswap) routers V3–V6: `LogAnySwapOut(token, from, to, amount, fromChainID,
//!   toChainID)`, and the variant whose recipient is a string (a non-EVM destination).
//! - Celer cBridge's pool bridge: `Send(transferId, sender, receiver, token, amount,
//!   dstChainId, nonce, maxSlippage)`.
//! - Across V3 spoke pools: `V3FundsDeposited(inputToken, outputToken, inputAmount,
//!   outputAmount, destinationChainId, depositId, …, depositor, recipient, …)`, and the
//!   event that replaced it (V3.5), `FundsDeposited`, with 32-byte addresses (a recipient on
//!   a non-EVM chain, e.g. Solana, fills all 32).
//! - Synapse's bridge: `TokenDeposit(to, chainId, token, amount)` and
//!   `TokenDepositAndSwap(to, chainId, token, amount, …)` (the tokens are transferred into
//!   the bridge; its redeems burn them instead, so they are no transfer into the bridge).
//!
//! As for THORChain's router, the event's signature says nothing of who emitted it: the caller
//! takes only events emitted by an address intel labels a bridge.

use alloy::sol_types::SolEvent;
use alloy_primitives::{Address, Log, U256};
use serde::Serialize;

mod abi {
    alloy::sol! {
        event LogAnySwapOut(address indexed token, address indexed from, address indexed to, uint amount, uint fromChainID, uint toChainID);
    }
    pub mod string_to {
        alloy::sol! {
            event LogAnySwapOut(address indexed token, address indexed from, string to, uint amount, uint fromChainID, uint toChainID);
        }
    }
    pub mod celer {
        alloy::sol! {
            event Send(bytes32 transferId, address sender, address receiver, address token, uint256 amount, uint64 dstChainId, uint64 nonce, uint32 maxSlippage);
        }
    }
    pub mod across {
        alloy::sol! {
            event V3FundsDeposited(address inputToken, address outputToken, uint256 inputAmount, uint256 outputAmount, uint256 indexed destinationChainId, uint32 indexed depositId, uint32 quoteTimestamp, uint32 fillDeadline, uint32 exclusivityDeadline, address indexed depositor, address recipient, address exclusiveRelayer, bytes message);
            event FundsDeposited(bytes32 inputToken, bytes32 outputToken, uint256 inputAmount, uint256 outputAmount, uint256 indexed destinationChainId, uint256 indexed depositId, uint32 quoteTimestamp, uint32 fillDeadline, uint32 exclusivityDeadline, bytes32 indexed depositor, bytes32 recipient, bytes32 exclusiveRelayer, bytes message);
        }
    }
    pub mod synapse {
        alloy::sol! {
            event TokenDeposit(address indexed to, uint256 chainId, address token, uint256 amount);
            event TokenDepositAndSwap(address indexed to, uint256 chainId, address token, uint256 amount, uint8 tokenIndexFrom, uint8 tokenIndexTo, uint256 minDy, uint256 deadline);
        }
    }
}

/// The bridges whose exit events are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bridge {
    Multichain,
    Cbridge,
    Across,
    Synapse,
}

impl Bridge {
    pub fn name(self) -> &'static str {
        match self {
            Bridge::Multichain => "Multichain",
            Bridge::Cbridge => "Celer cBridge",
            Bridge::Across => "Across",
            Bridge::Synapse => "Synapse",
        }
    }
}

/// What a bridge's exit event says: `amount` of `token` (`None`: the native coin, or a token
/// the event does not name) leaves for `recipient` on chain `chain_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BridgeExit {
    pub bridge: Bridge,
    /// The destination's EIP-155 chain id as the bridge numbers it (Multichain and cBridge
    /// also number non-EVM chains their own way).
    pub chain_id: U256,
    /// The recipient on that chain: an EVM address (checksummed), or the string the event
    /// holds for a non-EVM one.
    pub recipient: String,
    pub token: Option<Address>,
    pub amount: U256,
}

/// An exit event that matched a known signature but did not decode (short or malformed
/// data): names the bridge and what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{bridge} exit event does not decode: {reason}")]
pub struct BridgeExitError {
    pub bridge: &'static str,
    pub reason: String,
}

fn token(a: Address) -> Option<Address> {
    (a != Address::ZERO).then_some(a)
}

/// A 32-byte address (Across V3.5): an EVM address (checksummed) when its first 12 bytes are
/// zero, else the 32 bytes in hex (a Solana or other non-EVM recipient).
fn wide_address(w: alloy_primitives::B256) -> String {
    if w[..12].iter().all(|b| *b == 0) {
        Address::from_word(w).to_string()
    } else {
        w.to_string()
    }
}

/// The exit `log` records, if it is one of the known bridges' exit events (by signature;
/// `Err`: the signature matches, the data does not decode).
pub fn decode_exit(log: &Log) -> Option<Result<BridgeExit, BridgeExitError>> {
    use abi::{across, celer, string_to, synapse};
    let topic = *log.topics().first()?;
    Some(match topic {
        t if t == abi::LogAnySwapOut::SIGNATURE_HASH => {
            exit(log, Bridge::Multichain, |e: abi::LogAnySwapOut| {
                (e.toChainID, e.to.to_string(), token(e.token), e.amount)
            })
        }
        t if t == string_to::LogAnySwapOut::SIGNATURE_HASH => {
            exit(log, Bridge::Multichain, |e: string_to::LogAnySwapOut| {
                (e.toChainID, e.to, token(e.token), e.amount)
            })
        }
        t if t == celer::Send::SIGNATURE_HASH => exit(log, Bridge::Cbridge, |e: celer::Send| {
            (
                U256::from(e.dstChainId),
                e.receiver.to_string(),
                token(e.token),
                e.amount,
            )
        }),
        t if t == across::V3FundsDeposited::SIGNATURE_HASH => {
            exit(log, Bridge::Across, |e: across::V3FundsDeposited| {
                (
                    e.destinationChainId,
                    e.recipient.to_string(),
                    token(e.inputToken),
                    e.inputAmount,
                )
            })
        }
        t if t == across::FundsDeposited::SIGNATURE_HASH => {
            exit(log, Bridge::Across, |e: across::FundsDeposited| {
                (
                    e.destinationChainId,
                    wide_address(e.recipient),
                    // On the origin (an EVM chain) the input token is an address.
                    token(Address::from_word(e.inputToken)),
                    e.inputAmount,
                )
            })
        }
        t if t == synapse::TokenDeposit::SIGNATURE_HASH => {
            exit(log, Bridge::Synapse, |e: synapse::TokenDeposit| {
                (e.chainId, e.to.to_string(), token(e.token), e.amount)
            })
        }
        t if t == synapse::TokenDepositAndSwap::SIGNATURE_HASH => {
            exit(log, Bridge::Synapse, |e: synapse::TokenDepositAndSwap| {
                (e.chainId, e.to.to_string(), token(e.token), e.amount)
            })
        }
        _ => return None,
    })
}

/// Decodes `log` as `E`, then reads (destination chain id, recipient, token, amount) from it.
fn exit<E: SolEvent>(
    log: &Log,
    bridge: Bridge,
    read: impl FnOnce(E) -> (U256, String, Option<Address>, U256),
) -> Result<BridgeExit, BridgeExitError> {
    let e = E::decode_log(log).map_err(|e| BridgeExitError {
        bridge: bridge.name(),
        reason: e.to_string(),
    })?;
    let (chain_id, recipient, token, amount) = read(e.data);
    Ok(BridgeExit {
        bridge,
        chain_id,
        recipient,
        token,
        amount,
    })
}

#[cfg(test)]
mod tests {
    use alloy::sol_types::SolEvent;
    use alloy_primitives::{B256, Bytes, b256};

    use super::*;

    /// The topics the bridges' clients and indexers publish for these events (Multichain's
    /// router client, Celer's generated Go bindings, Across's relayer): the signatures
    /// written here are the contracts' own.
    #[test]
    fn signatures_are_the_bridges_own() {
        assert_eq!(
            abi::LogAnySwapOut::SIGNATURE_HASH,
            b256!("0x97116cf6cd4f6412bb47914d6db18da9e16ab2142f543b86e207c24fbd16b23a")
        );
        assert_eq!(
            abi::string_to::LogAnySwapOut::SIGNATURE_HASH,
            b256!("0x409e0ad946b19f77602d6cf11d59e1796ddaa4828159a0b4fb7fa2ff6b161b79")
        );
        assert_eq!(
            abi::celer::Send::SIGNATURE_HASH,
            b256!("0x89d8051e597ab4178a863a5190407b98abfeff406aa8db90c59af76612e58f01")
        );
        assert_eq!(
            abi::across::V3FundsDeposited::SIGNATURE_HASH,
            b256!("0xa123dc29aebf7d0c3322c8eeb5b999e859f39937950ed31056532713d0de396f")
        );
        // Across V3.5's, as seen on its spoke pools' logs; Synapse's, as its indexers filter.
        assert_eq!(
            abi::across::FundsDeposited::SIGNATURE_HASH,
            b256!("0x32ed1a409ef04c7b0227189c3a103dc5ac10e775a15b785dcc510201f7c25ad3")
        );
        assert_eq!(
            abi::synapse::TokenDeposit::SIGNATURE_HASH,
            b256!("0xda5273705dbef4bf1b902a131c2eac086b7e1476a8ab0cb4da08af1fe1bd8e3b")
        );
        assert_eq!(
            abi::synapse::TokenDepositAndSwap::SIGNATURE_HASH,
            b256!("0x79c15604b92ef54d3f61f0c40caab8857927ca3d5092367163b4562c1699eb5f")
        );
    }

    fn log_of<E: SolEvent>(e: &E) -> Log {
        Log {
            address: Address::repeat_byte(0xb1),
            data: e.encode_log_data(),
        }
    }

    #[test]
    fn each_bridges_exit_names_chain_recipient_token_and_amount() {
        let (token_a, to) = (Address::repeat_byte(0x11), Address::repeat_byte(0x22));
        let any = abi::LogAnySwapOut {
            token: token_a,
            from: Address::repeat_byte(3),
            to,
            amount: U256::from(5u64),
            fromChainID: U256::from(1u64),
            toChainID: U256::from(56u64),
        };
        let x = decode_exit(&log_of(&any)).expect("known").expect("decodes");
        assert_eq!(
            (
                x.bridge,
                x.chain_id,
                x.recipient.as_str(),
                x.token,
                x.amount
            ),
            (
                Bridge::Multichain,
                U256::from(56u64),
                to.to_string().as_str(),
                Some(token_a),
                U256::from(5u64)
            )
        );
        let any_str = abi::string_to::LogAnySwapOut {
            token: token_a,
            from: Address::repeat_byte(3),
            to: "bc1qrecipient".into(),
            amount: U256::from(6u64),
            fromChainID: U256::from(1u64),
            toChainID: U256::from(1000004346947u64),
        };
        let x = decode_exit(&log_of(&any_str))
            .expect("known")
            .expect("decodes");
        assert_eq!(
            (x.recipient.as_str(), x.amount),
            ("bc1qrecipient", U256::from(6u64))
        );
        let celer = abi::celer::Send {
            transferId: B256::repeat_byte(9),
            sender: Address::repeat_byte(3),
            receiver: to,
            token: Address::ZERO,
            amount: U256::from(7u64),
            dstChainId: 42161,
            nonce: 1,
            maxSlippage: 5000,
        };
        let x = decode_exit(&log_of(&celer))
            .expect("known")
            .expect("decodes");
        assert_eq!(
            (x.bridge, x.chain_id, x.token, x.amount),
            (
                Bridge::Cbridge,
                U256::from(42161u64),
                None,
                U256::from(7u64)
            )
        );
        let across = abi::across::V3FundsDeposited {
            inputToken: token_a,
            outputToken: Address::repeat_byte(0x12),
            inputAmount: U256::from(8u64),
            outputAmount: U256::from(7u64),
            destinationChainId: U256::from(10u64),
            depositId: 77,
            quoteTimestamp: 1,
            fillDeadline: 2,
            exclusivityDeadline: 0,
            depositor: Address::repeat_byte(3),
            recipient: to,
            exclusiveRelayer: Address::ZERO,
            message: Bytes::new(),
        };
        let x = decode_exit(&log_of(&across))
            .expect("known")
            .expect("decodes");
        assert_eq!(
            (x.bridge, x.chain_id, x.recipient, x.token, x.amount),
            (
                Bridge::Across,
                U256::from(10u64),
                to.to_string(),
                Some(token_a),
                U256::from(8u64)
            )
        );
    }

    #[test]
    fn across_v3_5_and_synapse_exits_decode() {
        let (token_a, to) = (Address::repeat_byte(0x11), Address::repeat_byte(0x22));
        let solana = B256::repeat_byte(0x5a);
        let across = abi::across::FundsDeposited {
            inputToken: token_a.into_word(),
            outputToken: solana,
            inputAmount: U256::from(9u64),
            outputAmount: U256::from(8u64),
            destinationChainId: U256::from(34268394551451u64),
            depositId: U256::from(5u64),
            quoteTimestamp: 1,
            fillDeadline: 2,
            exclusivityDeadline: 0,
            depositor: Address::repeat_byte(3).into_word(),
            recipient: solana,
            exclusiveRelayer: B256::ZERO,
            message: Bytes::new(),
        };
        let x = decode_exit(&log_of(&across))
            .expect("known")
            .expect("decodes");
        assert_eq!(
            (x.bridge, x.recipient, x.token, x.amount),
            (
                Bridge::Across,
                solana.to_string(),
                Some(token_a),
                U256::from(9u64)
            ),
            "a non-EVM recipient is its 32 bytes"
        );
        let across_evm = abi::across::FundsDeposited {
            recipient: to.into_word(),
            ..across
        };
        let x = decode_exit(&log_of(&across_evm))
            .expect("known")
            .expect("decodes");
        assert_eq!(
            x.recipient,
            to.to_string(),
            "an EVM recipient is an address"
        );
        let synapse = abi::synapse::TokenDeposit {
            to,
            chainId: U256::from(43114u64),
            token: token_a,
            amount: U256::from(10u64),
        };
        let x = decode_exit(&log_of(&synapse))
            .expect("known")
            .expect("decodes");
        assert_eq!(
            (x.bridge, x.chain_id, x.recipient, x.token, x.amount),
            (
                Bridge::Synapse,
                U256::from(43114u64),
                to.to_string(),
                Some(token_a),
                U256::from(10u64)
            )
        );
        let swap = abi::synapse::TokenDepositAndSwap {
            to,
            chainId: U256::from(42161u64),
            token: token_a,
            amount: U256::from(11u64),
            tokenIndexFrom: 0,
            tokenIndexTo: 1,
            minDy: U256::from(10u64),
            deadline: U256::from(u64::MAX),
        };
        let x = decode_exit(&log_of(&swap))
            .expect("known")
            .expect("decodes");
        assert_eq!(
            (x.bridge, x.chain_id, x.amount),
            (Bridge::Synapse, U256::from(42161u64), U256::from(11u64))
        );
    }

    #[test]
    fn a_known_signature_with_bad_data_is_an_error_and_others_are_not_exits() {
        let mut bad = log_of(&abi::celer::Send {
            transferId: B256::ZERO,
            sender: Address::ZERO,
            receiver: Address::ZERO,
            token: Address::ZERO,
            amount: U256::ZERO,
            dstChainId: 1,
            nonce: 0,
            maxSlippage: 0,
        });
        bad.data = alloy_primitives::LogData::new_unchecked(
            bad.data.topics().to_vec(),
            Bytes::from(vec![0u8; 7]),
        );
        let e = decode_exit(&bad).expect("known").expect_err("short data");
        assert_eq!(e.bridge, "Celer cBridge");
        let other = Log {
            address: Address::ZERO,
            data: alloy_primitives::LogData::new_unchecked(
                vec![B256::repeat_byte(1)],
                Bytes::new(),
            ),
        };
        assert!(decode_exit(&other).is_none());
    }
}
