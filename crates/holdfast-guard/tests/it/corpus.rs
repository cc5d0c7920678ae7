//! The false-deny rate on benign traffic: 10 000 generated requests that each example
//! policy is meant to let through (allowed, or held / sent for approval as the policy
//! says), none of which may be denied. Then 300 simulated on anvil against a treasury Safe.

use std::sync::Arc;

use alloy::primitives::{Address, Bytes, U256, address};
use alloy::sol_types::SolCall;
use holdfast_guard::abi::erc20;
use holdfast_guard::decode::pack_multisend;
use holdfast_guard::policy::Decision;
use holdfast_guard::safe::Operation;
use holdfast_testkit::safe::{self, SafeTx};
use holdfast_testkit::{Anvil, deploy, dev_account};
use serde_json::{Value, json};

use crate::support::{self, R, check, eth, sts_json};

/// SplitMix64: deterministic, so a failure reproduces.
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn address(&mut self) -> Address {
        let mut b = [0u8; 20];
        for chunk in b.chunks_mut(8) {
            let v = self.next().to_be_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Address::from(b)
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

const USDC: Address = address!("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48");
const USDT: Address = address!("0xdAC17F958D2ee523a2206206994597C13D831ec7");
const MSCO: Address = address!("0x9641d764fc13c8B624c04430C7356C1C7C8102e2");

fn transfer(to: Address, amount: U256) -> Bytes {
    erc20::transferCall { to, amount }.abi_encode().into()
}

fn approve(spender: Address, amount: U256) -> Bytes {
    erc20::approveCall { spender, amount }.abi_encode().into()
}

fn safe_json(safe: Address, to: Address, value: U256, data: Bytes, op: u8, nonce: u64) -> Value {
    json!({"safe": safe, "chainId": 1, "to": to, "value": value.to_string(), "data": data, "operation": op, "nonce": nonce})
}

/// Benign requests for the example policies, by policy file.
pub fn corpus(n: usize, seed: u64) -> Vec<(&'static str, Value)> {
    let mut rng = Rng(seed);
    let usdc = |d: u64| U256::from(d) * U256::from(1_000_000u64);
    let treasury = address!("0x849D52316331967b6fF1198e5E32A0eB168D039d");
    let counterparties = [
        address!("0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc"),
        address!("0x5a52E96BAcdaBb82fd05763E25335261B270Efcb"),
        address!("0x9696f59E4d72E237BE84fFD425DCaD154Bf96976"),
    ];
    let spenders = [
        address!("0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"),
        address!("0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"),
        address!("0x000000000022D473030F116dDEE9F6B43aC78BA3"),
    ];
    let cold = address!("0x1Db92e2EeBC8E0c075a02BeA49a2935BcD2dFCF4");
    let own = [
        address!("0xF977814e90dA44bFA03b6295A0616a897441aceC"),
        address!("0x28C6c06298d514Db089934071355E5743bf21d60"),
    ];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let nonce = i as u64;
        out.push(match i % 10 {
            // Customer withdrawals below the cooling line.
            0..=3 => {
                let (asset, amount) = match rng.below(3) {
                    0 => ("ETH", format!("{}.{:03}", rng.below(3), rng.below(1000))),
                    1 => ("USDC", format!("{}.{:02}", 1 + rng.below(9_000), rng.below(100))),
                    _ => ("USDT", format!("{}", 1 + rng.below(9_000))),
                };
                ("exchange-hot-wallet.toml", json!({"wallet": "hot", "asset": asset, "amount": amount, "destination": rng.address(), "chainId": 1, "id": format!("w-{i}")}))
            }
            // Treasury: payments, limited approvals, swaps, batches.
            4..=6 => {
                let one = |rng: &mut Rng| -> (Address, Bytes) {
                    match rng.below(3) {
                        0 => (USDC, transfer(*rng.pick(&counterparties), usdc(1 + rng.below(200_000)))),
                        1 => (USDC, approve(*rng.pick(&spenders), usdc(1 + rng.below(500_000)))),
                        _ => (spenders[0], swap(treasury, rng)),
                    }
                };
                let json = if rng.below(3) == 0 {
                    let calls: Vec<_> = (0..1 + rng.below(5))
                        .map(|_| {
                            let (to, data) = one(&mut rng);
                            (Operation::Call, to, U256::ZERO, data)
                        })
                        .collect();
                    safe_json(treasury, MSCO, U256::ZERO, pack_multisend(&calls), 1, nonce)
                } else {
                    let (to, data) = one(&mut rng);
                    safe_json(treasury, to, U256::ZERO, data, 0, nonce)
                };
                ("defi-treasury.toml", json)
            }
            // Cold wallet payouts to own hot wallets, single or batched.
            _ => {
                let pay = |rng: &mut Rng| -> (Address, U256, Bytes) {
                    match rng.below(3) {
                        0 => (*rng.pick(&own), eth(1 + rng.below(500)), Bytes::new()),
                        1 => (USDC, U256::ZERO, transfer(*rng.pick(&own), usdc(1 + rng.below(1_000_000)))),
                        _ => (USDT, U256::ZERO, transfer(*rng.pick(&own), usdc(1 + rng.below(1_000_000)))),
                    }
                };
                let json = if rng.below(4) == 0 {
                    let calls: Vec<_> = (0..2 + rng.below(3))
                        .map(|_| {
                            let (to, v, d) = pay(&mut rng);
                            (Operation::Call, to, v, d)
                        })
                        .collect();
                    safe_json(cold, MSCO, U256::ZERO, pack_multisend(&calls), 1, nonce)
                } else {
                    let (to, v, d) = pay(&mut rng);
                    safe_json(cold, to, v, d, 0, nonce)
                };
                ("safe-cold-wallet.toml", json)
            }
        });
    }
    out
}

fn swap(to: Address, rng: &mut Rng) -> Bytes {
    alloy::sol! {
        function swapExactTokensForTokens(uint256 amountIn, uint256 amountOutMin, address[] path, address to, uint256 deadline) external returns (uint256[] amounts);
    }
    swapExactTokensForTokensCall {
        amountIn: U256::from(1 + rng.below(1_000_000_000)),
        amountOutMin: U256::from(1),
        path: vec![USDC, address!("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2")],
        to,
        deadline: U256::from(1_790_000_000u64),
    }
    .abi_encode()
    .into()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_benign_request_of_the_generated_corpus_is_denied() -> R {
    let names = [
        "exchange-hot-wallet.toml",
        "defi-treasury.toml",
        "safe-cold-wallet.toml",
    ];
    let guards: Vec<_> = names
        .iter()
        .map(|n| (*n, support::guard(&support::policy_file(n))))
        .collect();
    let corpus = corpus(10_000, 7);
    let mut denied = Vec::new();
    let mut by_decision = std::collections::BTreeMap::new();
    for (name, json) in &corpus {
        let guard = &guards.iter().find(|(n, _)| n == name).expect("guard").1;
        let r = check(guard, &support::env(json), None, vec![]).await?;
        *by_decision
            .entry((*name, r.evaluation.decision.name()))
            .or_insert(0) += 1;
        if r.evaluation.decision == Decision::Deny {
            denied.push((
                name,
                r.evaluation.rule.clone(),
                r.evaluation.reasons.clone(),
            ));
        }
    }
    eprintln!(
        "decode-only corpus: {} requests, {} denied, by decision: {by_decision:?}",
        corpus.len(),
        denied.len()
    );
    assert!(
        denied.is_empty(),
        "false denies: {:#?}",
        &denied[..denied.len().min(5)]
    );
    assert!(by_decision.keys().any(|(_, d)| *d == "allow"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_benign_request_is_denied_with_simulation_on_anvil() -> R {
    let node = Anvil::spawn().await?;
    let owner = dev_account(0);
    let infra = deploy::safe_141(&node, owner).await?;
    let treasury = infra
        .create_safe(&node, owner, &[owner, dev_account(1)], 2)
        .await?;
    node.call_ok(owner, treasury, eth(5_000), Bytes::new())
        .await?;
    let token = deploy::erc20(&node, owner, "Dollar", "USD").await?;
    alloy::sol! { function mint(address to, uint256 amount) external; }
    node.call_ok(
        owner,
        token,
        U256::ZERO,
        mintCall {
            to: treasury,
            amount: eth(1_000_000_000),
        }
        .abi_encode()
        .into(),
    )
    .await?;
    let code = node
        .rpc("eth_getCode", json!([infra.multisend, "latest"]))
        .await?;
    node.rpc("anvil_setCode", json!([MSCO, code])).await?;
    let chain_id = node.chain_id().await?;
    let nonce = safe::nonce(&node, treasury).await?;
    let mut rng = Rng(11);
    let dests: Vec<Address> = (0..20).map(|_| rng.address()).collect();
    let guard = support::guard(&support::anvil_policy(
        treasury,
        &dests,
        &[owner, dev_account(1)],
        MSCO,
    ));
    let sim = Arc::new(support::simulator(&node).await?);
    let mut denied = 0;
    let n = 300;
    for _ in 0..n {
        let one = |rng: &mut Rng| -> (Address, U256, Bytes) {
            if rng.below(2) == 0 {
                (*rng.pick(&dests), eth(1 + rng.below(5)), Bytes::new())
            } else {
                (
                    token,
                    U256::ZERO,
                    transfer(*rng.pick(&dests), eth(1 + rng.below(10_000))),
                )
            }
        };
        let tx = if rng.below(3) == 0 {
            let calls: Vec<_> = (0..1 + rng.below(4))
                .map(|_| {
                    let (t, v, d) = one(&mut rng);
                    (Operation::Call, t, v, d)
                })
                .collect();
            SafeTx::delegatecall(MSCO, pack_multisend(&calls))
        } else {
            let (t, v, d) = one(&mut rng);
            SafeTx::call(t, v, d)
        };
        let r = check(
            &guard,
            &support::env(&sts_json(treasury, chain_id, &tx, nonce)),
            Some(sim.clone()),
            vec![],
        )
        .await?;
        if r.evaluation.decision == Decision::Deny {
            denied += 1;
            eprintln!(
                "denied: {:?} {:?} {:?}",
                r.evaluation, r.findings, r.simulation
            );
        }
    }
    eprintln!(
        "simulated corpus: {n} requests, {denied} denied, {} state reads from the node",
        sim.fork().fetches()
    );
    assert_eq!(denied, 0);
    Ok(())
}
