//! Safe gas refunds: what `execTransaction` pays out of the Safe for the gas of its own
//! execution, and the most that can be.
//!
//! When `gasPrice > 0`, `execTransaction` ends with `handlePayment` (every version from
//! 1.0.0 to 1.5.0), paying
//! - in ETH (`gasToken` zero): `(gasUsed + baseGas) × min(gasPrice, tx.gasprice)` from
//!   1.1.1 on, `(gasUsed + baseGas) × gasPrice` in 1.0.0;
//! - in `gasToken`: `(gasUsed + baseGas) × gasPrice`, by the Safe calling
//!   `gasToken.transfer(receiver, payment)`;
//!
//! to `refundReceiver`, or to `tx.origin` (whoever sends the execution) when it is zero.
//! The executor picks `tx.gasprice`, so the owners' signatures fix only the upper bound.
//! `baseGas` is whatever the signed transaction says: a refund of `baseGas × gasPrice` is
//! paid even when nothing else happens. The refund is paid also when the inner call fails.
//!
//! `gasUsed` is measured around the inner call. With `gasPrice > 0` the inner call gets
//! exactly `safeTxGas` gas in every version (`safeTxGas == 0` gives it none: only the 2,300
//! stipend of a value transfer, and the refund is still paid; the executor's choice of gas
//! reaches the inner call only when `gasPrice` is 0, and then nothing is refunded). Around
//! it, the Safe's own work is the CALL or DELEGATECALL itself (cold access, value transfer,
//! new account: at most [`CALL_GAS`] with margin) and copying `data` into memory, whose
//! price grows with the memory already in use — which the executor controls through the
//! `signatures` argument (not covered by the hash). That memory is bounded by the gas one
//! transaction can have: no chain Holdfast knows allows [`MAX_TX_GAS`] (Ethereum caps a
//! transaction at 2^24 since Fusaka, EIP-7825). So
//!
//! `refund ≤ (safeTxGas + baseGas + CALL_GAS + copy(data)) × gasPrice`
//!
//! ([`gas_bound`]), and by the executing transaction's gas limit where the request carries
//! one. A product that does not fit in 256 bits has no finite bound: it is reported as
//! unbounded (`max_amount: None`) and counted as everything.
//!
//! Pure: no I/O.

use alloy::primitives::{Address, U256};
use holdfast_primitives::Asset;
use serde::Serialize;

use crate::decode::{Action, DecodedCall};
use crate::policy::{Policy, describe_amount};
use crate::request::Request;
use crate::safe::SafeTx;

/// Gas of the inner CALL or DELEGATECALL beyond what the callee gets, with margin: cold
/// account access (2,600), value transfer (9,000), new account (25,000), the Solidity
/// around it; the 2,300 stipend is part of the value transfer's price.
pub const CALL_GAS: u64 = 40_000;

/// The most gas one transaction can use on any chain Holdfast knows (block gas limits are
/// in the tens to hundreds of millions; Ethereum's per-transaction cap is 2^24).
pub const MAX_TX_GAS: u64 = 1 << 30;

/// The most memory (in 32-byte words) a transaction of [`MAX_TX_GAS`] can pay for:
/// `3·m + m²/512 ≤ MAX_TX_GAS`.
pub const MAX_MEMORY_WORDS: u64 = 740_687;

/// The most gas copying `data_len` bytes of `data` into memory can cost, with memory
/// already as large as the executor can make it.
pub fn copy_gas(data_len: usize) -> U256 {
    // The bytes, their length word and a word of padding.
    let words = U256::from(data_len.div_ceil(32) + 2);
    let m = U256::from(MAX_MEMORY_WORDS);
    // Copy (3 per word), expansion linear part (3 per word), quadratic part
    // ((m + w)² − m²) / 512 = (2·m·w + w²) / 512, rounded up.
    words * U256::from(6) + (U256::from(2) * m * words + words * words).div_ceil(U256::from(512))
}

/// The most gas a Safe transaction's refund can count: `safeTxGas`, the call around it and
/// the copy of its data (not `baseGas`, which is added as it is).
pub fn gas_bound(tx: &SafeTx) -> U256 {
    tx.safe_tx_gas
        .saturating_add(U256::from(CALL_GAS))
        .saturating_add(copy_gas(tx.data.len()))
}

/// A Safe's payment for the gas of its own execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GasRefund {
    /// The Safe that pays.
    pub payer: Address,
    /// Who is paid: the refund receiver, or the transaction's sender (`tx.origin`) when
    /// `refundReceiver` is zero. `None`: that sender is not known before execution (anyone
    /// holding the signatures may execute).
    pub receiver: Option<Address>,
    /// `refundReceiver` is zero: the executor is paid.
    pub to_executor: bool,
    /// ETH, or the gas token (an ERC-20 the Safe calls `transfer` on).
    pub asset: Asset,
    pub gas_price: U256,
    pub base_gas: U256,
    pub safe_tx_gas: U256,
    /// The most gas the payment counts besides `baseGas`.
    pub max_gas: U256,
    /// At most this much leaves the Safe; `None`: no finite bound.
    pub max_amount: Option<U256>,
    /// The decoded call that executes it (`None`: the request's own Safe transaction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<usize>,
}

impl GasRefund {
    /// The refund `tx` pays, if it pays one (`gasPrice > 0`). `executor`: the sender, when
    /// known; `gas_limit`: the executing transaction's gas limit, when known.
    pub fn of(
        payer: Address,
        tx: &SafeTx,
        executor: Option<Address>,
        gas_limit: Option<u64>,
        call: Option<usize>,
    ) -> Option<GasRefund> {
        if tx.gas_price.is_zero() {
            return None;
        }
        let mut max_gas = gas_bound(tx);
        if let Some(limit) = gas_limit {
            max_gas = max_gas.min(U256::from(limit));
        }
        let to_executor = tx.refund_receiver.is_zero();
        Some(GasRefund {
            payer,
            receiver: if to_executor {
                executor
            } else {
                Some(tx.refund_receiver)
            },
            to_executor,
            asset: if tx.gas_token.is_zero() {
                Asset::Native
            } else {
                Asset::Erc20 {
                    token: tx.gas_token,
                }
            },
            gas_price: tx.gas_price,
            base_gas: tx.base_gas,
            safe_tx_gas: tx.safe_tx_gas,
            max_gas,
            max_amount: max_gas
                .checked_add(tx.base_gas)
                .and_then(|g| g.checked_mul(tx.gas_price)),
            call,
        })
    }

    /// The amount counted against limits: the bound, or everything when there is none.
    pub fn counted_amount(&self) -> U256 {
        self.max_amount.unwrap_or(U256::MAX)
    }

    /// The refund in words, for the report's summary.
    pub fn summary(&self, policy: &Policy) -> String {
        format!(
            "{} pays a gas refund of {} to {}: (up to {} gas + baseGas {}) × gasPrice {}{}",
            self.payer_name(policy),
            match self.max_amount {
                Some(a) => format!("at most {}", describe_amount(policy, &self.asset, a)),
                None => UNBOUNDED.to_owned(),
            },
            self.payee(),
            self.max_gas,
            self.base_gas,
            self.gas_price,
            if self.asset == Asset::Native {
                " (or the lower gas price the executor sends with)"
            } else {
                ""
            }
        )
    }

    /// The refund as a policy's reason: what the Safe pays, to whom, and why the amount is
    /// a bound.
    pub fn reason(&self, policy: &Policy) -> String {
        format!(
            "a Safe gas refund: {} pays {} to {} (baseGas {}, safeTxGas {}, gasPrice {}; {})",
            self.payer_name(policy),
            match self.max_amount {
                Some(a) => format!("up to {}", describe_amount(policy, &self.asset, a)),
                None => UNBOUNDED.to_owned(),
            },
            self.payee(),
            self.base_gas,
            self.safe_tx_gas,
            self.gas_price,
            if self.asset.token().is_some() {
                "in the gas token the full gasPrice is paid"
            } else {
                "the executor picks the gas price, up to gasPrice"
            }
        )
    }

    fn payer_name(&self, policy: &Policy) -> String {
        policy.wallet(self.payer).map_or_else(
            || self.payer.to_string(),
            |w| format!("{} ({})", w.name, self.payer),
        )
    }

    /// Who is paid, in words.
    pub fn payee(&self) -> String {
        match (self.receiver, self.to_executor) {
            (Some(r), false) => format!("refund receiver {r}"),
            (Some(r), true) => format!("the executor {r} (tx.origin: refundReceiver is zero)"),
            (None, _) => "whoever executes it (tx.origin: refundReceiver is zero; not known before execution, so not screened)".to_owned(),
        }
    }
}

const UNBOUNDED: &str = "an unbounded amount (gas × gasPrice does not fit in 256 bits: counted as everything the Safe holds)";

/// The gas refunds a request pays: a Safe transaction's own, and those of the
/// `execTransaction` calls it decodes to, executed by the request's sender when it is a
/// transaction (its gas limit then caps them).
pub fn of_request(request: &Request, calls: &[DecodedCall]) -> Vec<GasRefund> {
    match request {
        Request::Safe(s) => refunds(Some((s.safe, &s.tx)), calls, None, None),
        Request::Transaction(t) => refunds(None, calls, Some(t.from), t.gas),
        Request::Withdrawal(_) => Vec::new(),
    }
}

/// Every refund a request pays: its own Safe transaction's (`own`: the Safe and its
/// transaction, with the executor if known), and those of the `execTransaction` calls it
/// makes, executed by `executor` (the request's sender, when known: it is `tx.origin` for
/// nested executions too).
pub fn refunds(
    own: Option<(Address, &SafeTx)>,
    calls: &[DecodedCall],
    executor: Option<Address>,
    gas_limit: Option<u64>,
) -> Vec<GasRefund> {
    let mut out = Vec::new();
    if let Some((safe, tx)) = own {
        out.extend(GasRefund::of(safe, tx, executor, gas_limit, None));
    }
    for (i, c) in calls.iter().enumerate() {
        if let Action::SafeExec { tx, .. } = &c.action {
            // The Safe whose `execTransaction` runs pays: the call's target.
            out.extend(GasRefund::of(c.to, tx, executor, gas_limit, Some(i)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safe::Operation;
    use alloy::primitives::{Bytes, address};

    fn tx(safe_tx_gas: u64, base_gas: u64, gas_price: u64, data: usize) -> SafeTx {
        SafeTx {
            to: Address::repeat_byte(0x11),
            value: U256::from(1),
            data: Bytes::from(vec![0u8; data]),
            operation: Operation::Call,
            safe_tx_gas: U256::from(safe_tx_gas),
            base_gas: U256::from(base_gas),
            gas_price: U256::from(gas_price),
            gas_token: Address::ZERO,
            refund_receiver: address!("0x098B716B8Aaf21512996dC57EB0615e2383E2f96"),
            nonce: U256::ZERO,
        }
    }

    #[test]
    fn max_memory_words_is_the_most_a_transaction_can_pay_for() {
        let cost = |m: u64| 3 * m + m * m / 512;
        assert!(cost(MAX_MEMORY_WORDS) <= MAX_TX_GAS);
        assert!(cost(MAX_MEMORY_WORDS + 1) > MAX_TX_GAS);
    }

    #[test]
    fn no_gas_price_no_refund() {
        assert_eq!(
            GasRefund::of(Address::ZERO, &tx(0, 1_000_000_000, 0, 0), None, None, None),
            None
        );
    }

    #[test]
    fn the_bound_covers_base_gas_safe_tx_gas_and_the_call() {
        // The drain: baseGas 1e9 at 1,000 gwei, safeTxGas 0.
        let r = GasRefund::of(
            Address::ZERO,
            &tx(0, 1_000_000_000, 1_000_000_000_000, 0),
            None,
            None,
            None,
        )
        .expect("a refund");
        let gas = U256::from(CALL_GAS) + copy_gas(0);
        assert_eq!(r.max_gas, gas);
        assert_eq!(
            r.max_amount,
            Some((gas + U256::from(1_000_000_000u64)) * U256::from(1_000_000_000_000u64))
        );
        assert!(r.max_amount.expect("bounded") > U256::from(10u64).pow(U256::from(21)));
        assert_eq!(r.asset, Asset::Native);
        // safeTxGas adds to it one for one; a known gas limit caps the execution's part.
        let r2 = GasRefund::of(Address::ZERO, &tx(100_000, 0, 1, 0), None, None, None)
            .expect("a refund");
        assert_eq!(r2.max_gas, gas + U256::from(100_000));
        let r3 = GasRefund::of(
            Address::ZERO,
            &tx(100_000, 0, 1, 0),
            None,
            Some(60_000),
            None,
        )
        .expect("a refund");
        assert_eq!(r3.max_gas, U256::from(60_000));
    }

    #[test]
    fn larger_data_costs_more_to_copy_and_a_product_past_256_bits_is_unbounded() {
        assert!(copy_gas(128 * 1024) > copy_gas(0));
        let mut t = tx(0, 1, 1, 0);
        t.gas_price = U256::MAX;
        let r = GasRefund::of(Address::ZERO, &t, None, None, None).expect("a refund");
        assert_eq!(r.max_amount, None);
        assert_eq!(r.counted_amount(), U256::MAX);
    }

    #[test]
    fn a_zero_receiver_pays_the_executor_and_a_gas_token_is_the_asset() {
        let mut t = tx(0, 10, 1, 0);
        t.refund_receiver = Address::ZERO;
        t.gas_token = Address::repeat_byte(0x77);
        let unknown = GasRefund::of(Address::ZERO, &t, None, None, None).expect("a refund");
        assert_eq!(unknown.receiver, None);
        assert!(unknown.to_executor);
        assert!(unknown.payee().contains("not known"), "{}", unknown.payee());
        assert_eq!(
            unknown.asset,
            Asset::Erc20 {
                token: Address::repeat_byte(0x77)
            }
        );
        let known = GasRefund::of(
            Address::ZERO,
            &t,
            Some(Address::repeat_byte(0x55)),
            None,
            None,
        )
        .expect("a refund");
        assert_eq!(known.receiver, Some(Address::repeat_byte(0x55)));
    }
}
