//! One function per contract the tests deploy, from the committed artifacts
//! (`contracts/artifacts/`, provenance in its README).

use alloy::sol_types::SolValue;
use alloy_primitives::{Address, B256, keccak256};

use crate::safe::{SafeInfra, SafeVersion};
use crate::{Anvil, Artifact, TestkitError};

/// OpenZeppelin's `ERC20PresetMinterPauser` (4.9.6): 18 decimals, `from` holds the minter
/// role (`mint(to, amount)`).
pub async fn erc20(
    node: &Anvil,
    from: Address,
    name: &str,
    symbol: &str,
) -> Result<Address, TestkitError> {
    let code = Artifact::load("openzeppelin-contracts", "ERC20PresetMinterPauser")?.bytecode;
    let args = (name.to_owned(), symbol.to_owned()).abi_encode_params();
    node.deploy(from, &code, &args).await
}

/// Our `PermitToken` (`contracts/src/PermitToken.sol`): an ERC-20 (18 decimals) with EIP-2612
/// `permit`, `increaseAllowance` and an owner (`from`; `mint` and `transferOwnership`, which
/// emits `OwnershipTransferred`).
pub async fn permit_token(
    node: &Anvil,
    from: Address,
    name: &str,
    symbol: &str,
) -> Result<Address, TestkitError> {
    let code = Artifact::load("holdfast", "PermitToken")?.bytecode;
    let args = (name.to_owned(), symbol.to_owned()).abi_encode_params();
    node.deploy(from, &code, &args).await
}

/// The canonical WETH9.
pub async fn weth(node: &Anvil, from: Address) -> Result<Address, TestkitError> {
    let code = Artifact::load("uniswap-v2-periphery", "WETH9")?.bytecode;
    node.deploy(from, &code, &[]).await
}

/// One of our contracts (`contracts/src/`): `Forwarder`, `Reverter`, `BybitStyleImpl`,
/// `MasterCopySwap`, `SweeperImpl`.
pub async fn holdfast(node: &Anvil, from: Address, name: &str) -> Result<Address, TestkitError> {
    let code = Artifact::load("holdfast", name)?.bytecode;
    node.deploy(from, &code, &[]).await
}

/// OpenZeppelin's `TransparentUpgradeableProxy` (4.9.6) in front of `implementation`,
/// administered by `admin` (an account, which alone may call `upgradeTo`).
pub async fn transparent_proxy(
    node: &Anvil,
    from: Address,
    implementation: Address,
    admin: Address,
) -> Result<Address, TestkitError> {
    let code = Artifact::load("openzeppelin-contracts", "TransparentUpgradeableProxy")?.bytecode;
    let args = (implementation, admin, alloy_primitives::Bytes::new()).abi_encode_params();
    node.deploy(from, &code, &args).await
}

/// Uniswap V2 as deployed on mainnet: core's factory (whose pairs have the shipped
/// `UniswapV2Pair` code) and periphery's `UniswapV2Router02`.
#[derive(Debug, Clone, Copy)]
pub struct UniswapV2 {
    pub factory: Address,
    pub router: Address,
    pub weth: Address,
    /// keccak256 of the pair's creation code, which the router has hard-coded.
    pub init_code_hash: B256,
}

impl UniswapV2 {
    /// The pair of `a` and `b` as the router finds it (CREATE2 from the factory), whether
    /// or not it exists yet.
    pub fn pair_for(&self, a: Address, b: Address) -> Address {
        let (t0, t1) = if a < b { (a, b) } else { (b, a) };
        let salt = keccak256([t0.as_slice(), t1.as_slice()].concat());
        self.factory.create2(salt, self.init_code_hash)
    }
}

/// Deploys the factory (`from` is its `feeToSetter`, no protocol fee) and the router over
/// `weth`, after checking that the router knows the shipped pair code.
pub async fn uniswap_v2(
    node: &Anvil,
    from: Address,
    weth: Address,
) -> Result<UniswapV2, TestkitError> {
    let init_code_hash = router_pair_init_code_hash()?;
    let factory_code = Artifact::load("uniswap-v2-core", "UniswapV2Factory")?.bytecode;
    let factory = node.deploy(from, &factory_code, &from.abi_encode()).await?;
    let router_code = Artifact::load("uniswap-v2-periphery", "UniswapV2Router02")?.bytecode;
    let router = node
        .deploy(from, &router_code, &(factory, weth).abi_encode_params())
        .await?;
    Ok(UniswapV2 {
        factory,
        router,
        weth,
        init_code_hash,
    })
}

/// keccak256 of the shipped `UniswapV2Pair` creation code, checked to be the hash
/// hard-coded in the shipped `UniswapV2Router02` (`UniswapV2Library.pairFor`): if they
/// differed, the router would look for pairs where there are none and revert.
pub fn router_pair_init_code_hash() -> Result<B256, TestkitError> {
    let pair = Artifact::load("uniswap-v2-core", "UniswapV2Pair")?.bytecode;
    let router = Artifact::load("uniswap-v2-periphery", "UniswapV2Router02")?.bytecode;
    let hash = keccak256(&pair);
    if router.windows(32).any(|w| w == hash.as_slice()) {
        Ok(hash)
    } else {
        Err(TestkitError::Artifact(format!(
            "UniswapV2Router02 does not contain the pair init-code hash {hash}: \
             the router would not find the pairs"
        )))
    }
}

/// Safe 1.4.1: `Safe` singleton, `SafeProxyFactory`, `MultiSendCallOnly`.
pub async fn safe_141(node: &Anvil, from: Address) -> Result<SafeInfra, TestkitError> {
    SafeInfra::deploy(node, SafeVersion::V1_4_1, from).await
}

/// Safe 1.4.1 with the `SafeL2` singleton (events for every execution, as on L2s).
pub async fn safe_141_l2(node: &Anvil, from: Address) -> Result<SafeInfra, TestkitError> {
    SafeInfra::deploy(node, SafeVersion::V1_4_1L2, from).await
}

/// Gnosis Safe 1.1.1 (the version Bybit ran): `GnosisSafe`, `ProxyFactory`, `MultiSend`.
pub async fn safe_111(node: &Anvil, from: Address) -> Result<SafeInfra, TestkitError> {
    SafeInfra::deploy(node, SafeVersion::V1_1_1, from).await
}
