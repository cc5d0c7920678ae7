//! ERC-20 drains under the running watch: the token balances come from the node
//! (`balanceOf` at the block), so a watched wallet losing most of its tokens raises the drain
//! and whole-balance alerts; the same wallet's small payment does not.

use alloy_primitives::{Address, Bytes, U256, keccak256};
use holdfast_testkit::{Anvil, deploy, dev_account};

use crate::discover::run_watch;

fn transfer(to: Address, amount: U256) -> Bytes {
    let mut d = keccak256("transfer(address,uint256)")[..4].to_vec();
    d.extend_from_slice(to.into_word().as_slice());
    d.extend_from_slice(&amount.to_be_bytes::<32>());
    d.into()
}

fn tokens(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_drain_is_alerted_from_the_nodes_balances() {
    let node = Anvil::spawn().await.expect("anvil");
    let (minter, wallet) = (dev_account(0), dev_account(5));
    let token = deploy::erc20(&node, minter, "Treasury Token", "TRT")
        .await
        .expect("token");
    let mut mint = keccak256("mint(address,uint256)")[..4].to_vec();
    mint.extend_from_slice(wallet.into_word().as_slice());
    mint.extend_from_slice(&tokens(1_000).to_be_bytes::<32>());
    node.call_ok(minter, token, U256::ZERO, mint.into())
        .await
        .expect("mint");
    let start = node.block_number().await.expect("head") + 1;
    // A small payment (5 %), then the rest leaves to a fresh address.
    node.call_ok(
        wallet,
        token,
        U256::ZERO,
        transfer(Address::repeat_byte(0x77), tokens(50)),
    )
    .await
    .expect("payment");
    node.call_ok(
        wallet,
        token,
        U256::ZERO,
        transfer(Address::repeat_byte(0x66), tokens(950)),
    )
    .await
    .expect("sweep");
    let head = node.block_number().await.expect("head");
    let text = format!(
        "[[chain]]\nname = \"anvil\"\nrpc = \"{}\"\nchain_id = 31337\nconfirmations = 0\nstart_block = {start}\n\n\
         [[asset]]\nsymbol = \"ETH\"\nchain = \"anvil\"\nkind = \"native\"\n\n\
         [[asset]]\nsymbol = \"TRT\"\nchain = \"anvil\"\ntoken = \"{token}\"\ndecimals = 18\n\n\
         [[set]]\nname = \"treasury\"\naddresses = [\"{wallet}\"]\n\n\
         [[rule]]\nname = \"drain\"\ndetector = \"outflow\"\ntargets = [\"treasury\"]\nseverity = \"critical\"\n\
         drain = {{ percent = 50, blocks = 10, assets = [\"TRT\"] }}\nwhole_balance = true\n\n\
         [[sink]]\nkind = \"stdout\"\nname = \"out\"\n",
        node.ws_url()
    );
    let alerts = run_watch(&text, head).await;
    let titles: Vec<&str> = alerts.iter().map(|a| a.title.as_str()).collect();
    assert_eq!(alerts.len(), 2, "{titles:#?}");
    assert!(alerts.iter().all(|a| a.block_number == head), "{titles:#?}");
    assert!(
        titles
            .iter()
            .any(|t| t.contains("drained") && t.contains("TRT")),
        "{titles:#?}"
    );
    assert!(
        titles
            .iter()
            .any(|t| t.contains("whole balance left") && t.contains("TRT")),
        "{titles:#?}"
    );
}
