//! THORChain: memos ([`memo`]), asset notation ([`asset`]), the router's events
//! ([`router`]) and the link from an inbound to its payout ([`link`]).
//!
//! Sources: THORChain's developer docs, "Transaction Memos", "Asset Notation" and "Memo
//! Length Reduction" (dev.thorchain.org, concepts/), and thornode's parser
//! (`x/thorchain/memo/`, `common/asset.go`) as of the 2024-06 code-423n4 audit snapshot,
//! whose router (`chain/ethereum/contracts/THORChain_Router.sol`, version 5.0) the tests
//! deploy (`contracts/src/THORChain_Router.sol`).

pub mod asset;
pub mod link;
pub mod memo;
pub mod router;

pub use asset::{Asset, AssetKind};
pub use link::{
    Candidate, CandidateOutput, Payout, canonical_address, find_payouts, op_return_data,
};
pub use memo::{Memo, MemoError, MemoKind, Swap, TxId};
pub use router::{Deposit, RouterEvent, TRANSFER_OUT_TOPIC, TransferOut};
