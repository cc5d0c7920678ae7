//! Safe executions and the Bybit mechanism, on real Safe 1.1.1 and 1.4.1 contracts.

use alloy::sol_types::SolCall;
use alloy_primitives::{Address, B256, Bytes, U256};
use holdfast_primitives::Asset;

use super::{ExpectedTransfer, Record, Scenario, eth, mintCall, transferCall};
use crate::safe::{Operation, SafeTx, exec, exec_signed, master_copy};
use crate::{Anvil, Artifact, TestkitError, deploy, dev_account, dev_signer};

mod drain {
    alloy::sol! {
        function sweepETH(address to) external;
        function sweepERC20(address token, address to) external;
    }
}

/// What [`Scenario::safe_heist`] did.
#[derive(Debug, Clone)]
pub struct SafeHeist {
    /// A 2-of-2 Gnosis Safe 1.1.1 (the version Bybit ran), then drained.
    pub safe_111: Address,
    /// A 1-of-1 Safe 1.4.1 that paid out once through `execTransaction`.
    pub safe_141: Address,
    pub sweeper: Address,
    pub attacker: Address,
    /// The owners' DELEGATECALL that replaced the 1.1.1 Safe's masterCopy.
    pub delegatecall_tx: B256,
    /// The attacker's sweep of the Safe's ETH.
    pub sweep_tx: B256,
    pub transfers: Vec<ExpectedTransfer>,
}

impl Scenario<'_> {
    /// The Bybit mechanism on real Safe contracts: both owners of a Safe 1.1.1 approve what
    /// looks like a token `transfer`, executed as DELEGATECALL into `MasterCopySwap`, which
    /// overwrites the masterCopy with the attacker's `SweeperImpl`; the attacker then sweeps
    /// the Safe's ETH. Also a Safe 1.4.1 paying out through `execTransaction`.
    pub async fn safe_heist(&self) -> Result<SafeHeist, TestkitError> {
        let n = self.node;
        let (a, b, c, attacker) = (
            dev_account(0),
            dev_account(1),
            dev_account(2),
            dev_account(9),
        );
        let mut transfers = Vec::new();
        let infra = deploy::safe_111(n, a).await?;
        let safe_111 = infra.create_safe(n, a, &[a, b], 2).await?;
        let tx = n.call_ok(a, safe_111, eth(10_000), Bytes::new()).await?;
        transfers.push((tx, a, safe_111, Asset::Native, eth(10_000)));
        let tx = exec(
            n,
            safe_111,
            &[a, b],
            c,
            eth(1000),
            Bytes::new(),
            Operation::Call,
        )
        .await?;
        transfers.push((tx, safe_111, c, Asset::Native, eth(1000)));
        let swap = n
            .deploy(
                attacker,
                &Artifact::load("holdfast", "MasterCopySwap")?.bytecode,
                &[],
            )
            .await?;
        let sweeper = n
            .deploy(
                attacker,
                &Artifact::load("holdfast", "SweeperImpl")?.bytecode,
                &[],
            )
            .await?;
        let looks_like_a_transfer: Bytes = transferCall {
            to: sweeper,
            amount: U256::ZERO,
        }
        .abi_encode()
        .into();
        let delegatecall_tx = exec(
            n,
            safe_111,
            &[a, b],
            swap,
            U256::ZERO,
            looks_like_a_transfer,
            Operation::DelegateCall,
        )
        .await?;
        ensure_master_copy(n, safe_111, sweeper).await?;
        let sweep_tx = n
            .call_ok(
                attacker,
                safe_111,
                U256::ZERO,
                drain::sweepETHCall { to: attacker }.abi_encode().into(),
            )
            .await?;
        transfers.push((sweep_tx, safe_111, attacker, Asset::Native, eth(9000)));

        let infra = deploy::safe_141(n, a).await?;
        let safe_141 = infra.create_safe(n, a, &[a], 1).await?;
        let tx = n.call_ok(a, safe_141, eth(500), Bytes::new()).await?;
        transfers.push((tx, a, safe_141, Asset::Native, eth(500)));
        let tx = exec(
            n,
            safe_141,
            &[a],
            b,
            eth(200),
            Bytes::new(),
            Operation::Call,
        )
        .await?;
        transfers.push((tx, safe_141, b, Asset::Native, eth(200)));
        Ok(SafeHeist {
            safe_111,
            safe_141,
            sweeper,
            attacker,
            delegatecall_tx,
            sweep_tx,
            transfers,
        })
    }
}

/// What [`Scenario::safe_activity`] did.
#[derive(Debug, Clone)]
pub struct SafeActivity {
    /// A 2-of-3 Safe 1.4.1 (`SafeL2` singleton): ETH and token payouts, a multisend batch,
    /// an execution whose inner call failed.
    pub safe_141: Address,
    /// A 2-of-3 Gnosis Safe 1.1.1, taken over through `BybitStyleImpl` and swept.
    pub safe_111: Address,
    /// The owners of both (dev accounts 0, 1, 2).
    pub owners: [Address; 3],
    /// The ERC-20 both Safes hold.
    pub token: Address,
    pub bybit_impl: Address,
    pub reverter: Address,
    pub attacker: Address,
    /// The 1.4.1 execution whose inner call (3 ETH to `reverter`) reverted while the
    /// transaction succeeded.
    pub inner_failure_tx: B256,
    /// The signed DELEGATECALL that replaced the 1.1.1 Safe's masterCopy.
    pub delegatecall_tx: B256,
    pub sweep_eth_tx: B256,
    pub sweep_erc20_tx: B256,
    pub record: Record,
}

impl Scenario<'_> {
    /// Safes run by owners' ECDSA signatures (EIP-712 `safeTxHash`, sorted by owner), sent
    /// by a relayer that is not an owner. A Safe 1.4.1 pays ETH and tokens, batches two
    /// payouts through `MultiSendCallOnly` (DELEGATECALL), and runs a call that fails inside
    /// a successful `execTransaction`. Then the Bybit mechanism with one contract: owners of
    /// a Safe 1.1.1 sign a "token transfer" that is a DELEGATECALL into `BybitStyleImpl`,
    /// which makes itself the masterCopy; the attacker sweeps the ETH and the tokens.
    pub async fn safe_activity(&self) -> Result<SafeActivity, TestkitError> {
        let n = self.node;
        let owners = [dev_account(0), dev_account(1), dev_account(2)];
        let keys = [dev_signer(0)?, dev_signer(1)?, dev_signer(2)?];
        let (a, relayer, attacker) = (owners[0], dev_account(8), dev_account(9));
        let (b, c, d, e) = (
            dev_account(3),
            dev_account(4),
            dev_account(5),
            dev_account(6),
        );
        let mut x = Record::default();
        let token = deploy::erc20(n, a, "Holdfast USD", "HUSD").await?;
        let husd = Asset::Erc20 { token };
        let token_transfer = |to: Address, amount: U256| -> Bytes {
            transferCall { to, amount }.abi_encode().into()
        };
        let fund = async |safe: Address, ether: U256, tokens: U256, x: &mut Record| {
            let tx = n.call_ok(a, safe, ether, Bytes::new()).await?;
            x.transfers.push((tx, a, safe, Asset::Native, ether));
            let mint = mintCall {
                to: safe,
                amount: tokens,
            }
            .abi_encode()
            .into();
            let tx = n.call_ok(a, token, U256::ZERO, mint).await?;
            x.transfers.push((tx, Address::ZERO, safe, husd, tokens));
            Ok::<_, TestkitError>(())
        };

        // Safe 1.4.1 (L2 singleton), 2 of 3.
        let infra = deploy::safe_141_l2(n, a).await?;
        let safe_141 = infra.create_safe(n, a, &owners, 2).await?;
        fund(safe_141, eth(20_000), eth(1_000_000), &mut x).await?;
        let signed = [keys[0].clone(), keys[1].clone()];
        let pay = SafeTx::call(b, eth(1000), Bytes::new());
        let tx = exec_signed(n, safe_141, &pay, &signed, relayer).await?;
        x.transfers
            .push((tx, safe_141, b, Asset::Native, eth(1000)));
        let pay = SafeTx::call(token, U256::ZERO, token_transfer(c, eth(100_000)));
        let signed = [keys[2].clone(), keys[0].clone()];
        let tx = exec_signed(n, safe_141, &pay, &signed, relayer).await?;
        x.transfers.push((tx, safe_141, c, husd, eth(100_000)));
        let batch = infra.multisend(&[
            (d, eth(2000), Bytes::new()),
            (token, U256::ZERO, token_transfer(e, eth(50_000))),
        ]);
        let tx = exec_signed(n, safe_141, &batch, &signed, relayer).await?;
        x.transfers
            .push((tx, safe_141, d, Asset::Native, eth(2000)));
        x.transfers.push((tx, safe_141, e, husd, eth(50_000)));
        let reverter = deploy::holdfast(n, a, "Reverter").await?;
        let doomed = SafeTx {
            safe_tx_gas: U256::from(100_000),
            ..SafeTx::call(reverter, eth(3000), Bytes::new())
        };
        let inner_failure_tx = exec_signed(n, safe_141, &doomed, &signed, relayer).await?;
        x.reverted_frames
            .push((inner_failure_tx, safe_141, reverter, eth(3000)));

        // Gnosis Safe 1.1.1, 2 of 3, then the takeover.
        let infra = deploy::safe_111(n, a).await?;
        let safe_111 = infra.create_safe(n, a, &owners, 2).await?;
        fund(safe_111, eth(30_000), eth(500_000), &mut x).await?;
        let pay = SafeTx::call(b, eth(1000), Bytes::new());
        let tx = exec_signed(n, safe_111, &pay, &signed, relayer).await?;
        x.transfers
            .push((tx, safe_111, b, Asset::Native, eth(1000)));
        let bybit_impl = deploy::holdfast(n, attacker, "BybitStyleImpl").await?;
        let trojan = SafeTx::delegatecall(bybit_impl, token_transfer(bybit_impl, U256::ZERO));
        let delegatecall_tx = exec_signed(n, safe_111, &trojan, &signed, relayer).await?;
        ensure_master_copy(n, safe_111, bybit_impl).await?;
        let sweep = drain::sweepETHCall { to: attacker }.abi_encode().into();
        let sweep_eth_tx = n.call_ok(attacker, safe_111, U256::ZERO, sweep).await?;
        x.transfers
            .push((sweep_eth_tx, safe_111, attacker, Asset::Native, eth(29_000)));
        let sweep = drain::sweepERC20Call {
            token,
            to: attacker,
        }
        .abi_encode()
        .into();
        let sweep_erc20_tx = n.call_ok(attacker, safe_111, U256::ZERO, sweep).await?;
        x.transfers
            .push((sweep_erc20_tx, safe_111, attacker, husd, eth(500_000)));
        Ok(SafeActivity {
            safe_141,
            safe_111,
            owners,
            token,
            bybit_impl,
            reverter,
            attacker,
            inner_failure_tx,
            delegatecall_tx,
            sweep_eth_tx,
            sweep_erc20_tx,
            record: x,
        })
    }
}

/// The masterCopy really was replaced.
async fn ensure_master_copy(n: &Anvil, safe: Address, want: Address) -> Result<(), TestkitError> {
    let now = master_copy(n, safe).await?;
    if now == want {
        Ok(())
    } else {
        Err(TestkitError::Scenario(format!(
            "masterCopy of {safe} is {now}, expected {want}"
        )))
    }
}
