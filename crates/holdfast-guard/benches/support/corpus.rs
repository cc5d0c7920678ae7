//! Generated benign traffic for the example policies (shared by the guard's tests and its
//! benchmark): customer withdrawals from the exchange hot wallet, treasury payments,
//! limited approvals, swaps and MultiSendCallOnly batches, cold-wallet payouts to own
//! wallets. None of it should ever be denied.

#![allow(dead_code)]

use alloy::primitives::{Address, Bytes, U256, address};
use alloy::sol_types::SolCall;
use holdfast_guard::abi::erc20;
use holdfast_guard::decode::pack_multisend;
use holdfast_guard::safe::Operation;
use serde_json::{Value, json};

/// A Safe 1.4.1 of `owners` (threshold `threshold`) on `node` holding 5 000 ETH and 10^9 of
/// a fresh OpenZeppelin ERC-20, with MultiSendCallOnly at Safe's canonical address (the npm
/// artifact's runtime code is byte-identical to the deployment's). Returns (Safe, token).
pub async fn funded_safe(
    node: &holdfast_testkit::Anvil,
    owners: &[Address],
    threshold: u64,
) -> Result<(Address, Address), holdfast_testkit::TestkitError> {
    use holdfast_testkit::deploy;
    alloy::sol! { function mint(address to, uint256 amount) external; }
    let infra = deploy::safe_141(node, owners[0]).await?;
    let safe = infra
        .create_safe(node, owners[0], owners, threshold)
        .await?;
    node.call_ok(owners[0], safe, eth(5000), Bytes::new())
        .await?;
    let token = deploy::erc20(node, owners[0], "Dollar", "USD").await?;
    let mint = mintCall {
        to: safe,
        amount: eth(1_000_000_000),
    }
    .abi_encode();
    node.call_ok(owners[0], token, U256::ZERO, mint.into())
        .await?;
    let code = node
        .rpc("eth_getCode", json!([infra.multisend, "latest"]))
        .await?;
    node.rpc("anvil_setCode", json!([MSCO, code])).await?;
    Ok((safe, token))
}

pub fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

/// SplitMix64: deterministic, so a failure reproduces.
pub struct Rng(pub u64);

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

pub const USDC: Address = address!("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48");
pub const USDT: Address = address!("0xdAC17F958D2ee523a2206206994597C13D831ec7");
pub const MSCO: Address = address!("0x9641d764fc13c8B624c04430C7356C1C7C8102e2");

pub fn transfer(to: Address, amount: U256) -> Bytes {
    erc20::transferCall { to, amount }.abi_encode().into()
}

pub fn approve(spender: Address, amount: U256) -> Bytes {
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

pub fn swap(to: Address, rng: &mut Rng) -> Bytes {
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
