//! The committed artifacts, without a node.

use alloy_primitives::b256;
use holdfast_testkit::{Artifact, deploy};

#[test]
fn every_shipped_artifact_loads_with_its_abi() {
    let all = [
        ("safe-1.4.1", "Safe"),
        ("safe-1.4.1", "SafeL2"),
        ("safe-1.4.1", "SafeProxyFactory"),
        ("safe-1.4.1", "MultiSendCallOnly"),
        ("safe-1.1.1", "GnosisSafe"),
        ("safe-1.1.1", "ProxyFactory"),
        ("safe-1.1.1", "MultiSend"),
        ("uniswap-v2-core", "UniswapV2Factory"),
        ("uniswap-v2-core", "UniswapV2Pair"),
        ("uniswap-v2-periphery", "UniswapV2Router02"),
        ("uniswap-v2-periphery", "WETH9"),
        ("openzeppelin-contracts", "ERC20PresetMinterPauser"),
        ("openzeppelin-contracts", "ERC721PresetMinterPauserAutoId"),
        ("openzeppelin-contracts", "ERC1155PresetMinterPauser"),
        ("holdfast", "Forwarder"),
        ("holdfast", "Reverter"),
        ("holdfast", "BybitStyleImpl"),
        ("holdfast", "MasterCopySwap"),
        ("holdfast", "SweeperImpl"),
    ];
    for (package, name) in all {
        let a = Artifact::load(package, name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.name, name);
        assert!(a.bytecode.len() > 100, "{name}: bytecode");
        let abi = a.abi.as_array().unwrap_or_else(|| panic!("{name}: abi"));
        // Reverter has only a fallback.
        assert!(!abi.is_empty(), "{name}: empty abi");
    }
}

/// The router finds pairs by CREATE2 with a hard-coded hash of the pair's creation code;
/// the shipped pair and router agree, on mainnet's value.
#[test]
fn uniswap_router_knows_the_pair_bytecode_it_is_shipped_with() {
    assert_eq!(
        deploy::router_pair_init_code_hash().unwrap(),
        b256!("96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f")
    );
}
