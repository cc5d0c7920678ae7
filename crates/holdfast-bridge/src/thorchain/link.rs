//! Linking an inbound to THORChain's payout on a UTXO chain: the inbound's memo names the
//! destination address; THORChain's outbound transaction pays that address and carries
//! `OUT:<inbound id>` in an OP_RETURN output. So the payout is found among the transactions
//! paying the destination (an address index answers that without an index of memos), and
//! it is the one whose OP_RETURN names this inbound — not any payment to the address (the
//! thief's own, a refund, another swap's). What arrived is the sum of its outputs to the
//! destination, after THORChain's fees and the swap's price: the amount the trace continues
//! with.

use alloy_primitives::B256;
use serde::Serialize;

use super::memo::Memo;

/// One output of a candidate transaction, as the UTXO index keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateOutput<'a> {
    /// The address it pays, if it pays one.
    pub address: Option<&'a str>,
    pub value: u64,
    /// An OP_RETURN output's data.
    pub op_return: Option<&'a [u8]>,
}

/// A transaction paying the destination (from the UTXO index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a, T> {
    /// The caller's id of the transaction (its txid).
    pub id: T,
    pub outputs: Vec<CandidateOutput<'a>>,
}

/// THORChain's payout of an inbound on the destination chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payout<T> {
    pub id: T,
    /// The outputs paying the destination: (position, value).
    pub outputs: Vec<(u32, u64)>,
    /// What arrived at the destination, in the chain's base unit (satoshis).
    pub amount: u64,
    /// An outbound (`OUT:`) or a refund (`REFUND:`: the swap failed and the funds went back).
    pub refund: bool,
}

/// The data an OP_RETURN output carries (`OP_RETURN` then pushes, their bytes concatenated,
/// as Bitcoin Core's `nulldata` template reads it): where THORChain writes its `OUT:` memo.
/// `None`: not an OP_RETURN script, or its pushes run past its end or use an opcode that is
/// not a push.
pub fn op_return_data(script: &[u8]) -> Option<Vec<u8>> {
    let (&first, mut rest) = script.split_first()?;
    if first != 0x6a {
        return None;
    }
    let mut data = Vec::new();
    while let Some((&op, after)) = rest.split_first() {
        let (len, after) = match op {
            0x00 => (0, after),
            0x01..=0x4b => (usize::from(op), after),
            0x4c => {
                let (&n, a) = after.split_first()?;
                (usize::from(n), a)
            }
            0x4d => {
                let n = after.get(..2)?;
                (usize::from(u16::from_le_bytes([n[0], n[1]])), &after[2..])
            }
            0x4e => {
                let n = after.get(..4)?;
                let n = u32::from_le_bytes([n[0], n[1], n[2], n[3]]);
                (usize::try_from(n).ok()?, &after[4..])
            }
            // OP_1NEGATE, OP_1..OP_16 push small numbers; Core's template allows them.
            0x4f | 0x51..=0x60 => (0, after),
            _ => return None,
        };
        data.extend_from_slice(after.get(..len)?);
        rest = &after[len..];
    }
    Some(data)
}

/// Bech32 prefixes of the UTXO chains THORChain pays out on (Bitcoin, Litecoin; main, test
/// and regtest networks).
const BECH32_HRPS: [&str; 6] = ["bc1", "tb1", "bcrt1", "ltc1", "tltc1", "rltc1"];

fn is_bech32(s: &str) -> bool {
    BECH32_HRPS
        .iter()
        .any(|h| s.get(..h.len()).is_some_and(|p| p.eq_ignore_ascii_case(h)))
}

/// `address` as an index keeps it: bech32 in lower case (a memo may write it upper-case, which
/// bech32 allows), anything else as written (base58 is case-sensitive).
pub fn canonical_address(address: &str) -> String {
    if is_bech32(address) {
        address.to_ascii_lowercase()
    } else {
        address.to_owned()
    }
}

/// Whether `a` and `b` are the same address as memos and indexes write them: bech32 is
/// case-insensitive (THORChain may upper-case it), base58 is not.
fn same_address(a: &str, b: &str) -> bool {
    if is_bech32(a) && is_bech32(b) {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// THORChain's payouts of the inbound transaction `inbound` to `destination` among
/// `candidates` (transactions paying `destination`, in chain order): every one whose OP_RETURN
/// reads `OUT:<inbound>` (or `REFUND:<inbound>`), with what its outputs paid `destination`, in
/// chain order. Empty: not paid out in the candidates (not yet, or the index does not reach
/// that far).
///
/// More than one is not THORChain's doing (it pays an inbound once): anyone can pay the
/// destination with such a memo — the thief owns that address and may plant a decoy before
/// the real payout to send a tracer down the wrong path. So every match is returned, none
/// chosen: the caller follows them all and reports that the link is ambiguous.
pub fn find_payouts<'a, T>(
    inbound: B256,
    destination: &str,
    candidates: impl IntoIterator<Item = Candidate<'a, T>>,
) -> Vec<Payout<T>> {
    let mut found = Vec::new();
    for c in candidates {
        let names_inbound = c.outputs.iter().find_map(|o| {
            let memo = Memo::parse_bytes(o.op_return?).ok()?;
            match memo {
                Memo::Outbound { inbound: id } if id.hash() == Some(inbound) => Some(false),
                Memo::Refund { inbound: id } if id.hash() == Some(inbound) => Some(true),
                _ => None,
            }
        });
        let Some(refund) = names_inbound else {
            continue;
        };
        let outputs: Vec<(u32, u64)> = c
            .outputs
            .iter()
            .enumerate()
            .filter(|(_, o)| o.address.is_some_and(|a| same_address(a, destination)))
            .filter_map(|(i, o)| Some((u32::try_from(i).ok()?, o.value)))
            .collect();
        if outputs.is_empty() {
            // Names this inbound but pays elsewhere (a refund to the sender's address on this
            // chain, or a forged memo): not a payout to the memo's destination.
            continue;
        }
        let amount = outputs
            .iter()
            .map(|(_, v)| *v)
            .fold(0u64, u64::saturating_add);
        found.push(Payout {
            id: c.id,
            outputs,
            amount,
            refund,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEST: &str = "bc1q3a2le4lazts64u8mqte5vuxvug25z5w6rhs95g";

    fn out(address: &'static str, value: u64) -> CandidateOutput<'static> {
        CandidateOutput {
            address: Some(address),
            value,
            op_return: None,
        }
    }

    fn memo(data: &'static [u8]) -> CandidateOutput<'static> {
        CandidateOutput {
            address: None,
            value: 0,
            op_return: Some(data),
        }
    }

    #[test]
    fn the_payout_is_the_payment_that_names_the_inbound() {
        let inbound = B256::repeat_byte(0x9f);
        let out_memo: &'static [u8] = Box::leak(
            format!("OUT:{}", alloy_primitives::hex::encode_upper(inbound))
                .into_bytes()
                .into_boxed_slice(),
        );
        let other: &'static [u8] = Box::leak(
            format!(
                "OUT:{}",
                alloy_primitives::hex::encode_upper(B256::repeat_byte(1))
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let candidates = vec![
            // The thief paying the address himself: no memo.
            Candidate {
                id: "a",
                outputs: vec![out(DEST, 5_000)],
            },
            // Another swap's payout to the same address.
            Candidate {
                id: "b",
                outputs: vec![out(DEST, 7_000), memo(other)],
            },
            // A transaction naming this inbound but paying elsewhere.
            Candidate {
                id: "c",
                outputs: vec![out("bc1qother", 9_000), memo(out_memo)],
            },
            // THORChain's payout: upper-cased address, change back to the vault.
            Candidate {
                id: "d",
                outputs: vec![
                    out("BC1Q3A2LE4LAZTS64U8MQTE5VUXVUG25Z5W6RHS95G", 58_557_570),
                    out("bc1qvault", 1_000_000),
                    memo(out_memo),
                ],
            },
        ];
        let found = find_payouts(inbound, DEST, candidates.clone());
        let [p] = found.as_slice() else {
            panic!("one payout: {found:?}")
        };
        assert_eq!(
            (p.id, p.outputs.clone(), p.amount, p.refund),
            ("d", vec![(0, 58_557_570)], 58_557_570, false)
        );
        assert!(find_payouts(B256::repeat_byte(2), DEST, candidates.clone()).is_empty());
        // The thief plants a decoy before the real payout: his own payment to the address
        // with the same memo. Both are returned, in chain order; neither is chosen.
        let mut with_decoy = vec![Candidate {
            id: "decoy",
            outputs: vec![out(DEST, 1_000), memo(out_memo)],
        }];
        with_decoy.extend(candidates);
        let ids: Vec<&str> = find_payouts(inbound, DEST, with_decoy)
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids, ["decoy", "d"]);
    }

    /// Scripts as Bitcoin Core writes them for `createrawtransaction`'s "data" output (one
    /// push: direct under 76 bytes, PUSHDATA1 above), several pushes, and what is not one.
    #[test]
    fn op_return_data_reads_every_push_form() {
        let memo = b"OUT:9F36B2F0E6BB50C4D59CAA9C6FAA1CE39D0B68C8AB0DA6A4B3ECDEAC8A3C5B7D";
        assert_eq!(memo.len(), 68);
        let direct = [&[0x6a, 68][..], memo].concat();
        assert_eq!(op_return_data(&direct).as_deref(), Some(&memo[..]));
        let long = [0x41u8; 80];
        let pushdata1 = [&[0x6a, 0x4c, 80][..], &long].concat();
        assert_eq!(op_return_data(&pushdata1).as_deref(), Some(&long[..]));
        let pushdata2 = [&[0x6a, 0x4d, 3, 0][..], b"abc"].concat();
        assert_eq!(op_return_data(&pushdata2).as_deref(), Some(&b"abc"[..]));
        let two = [&[0x6a, 2][..], b"OU", &[2], b"T:"].concat();
        assert_eq!(op_return_data(&two).as_deref(), Some(&b"OUT:"[..]));
        assert_eq!(op_return_data(&[0x6a]).as_deref(), Some(&b""[..]));
        assert!(op_return_data(&[0x00, 0x14]).is_none(), "not OP_RETURN");
        assert!(
            op_return_data(&[0x6a, 5, b'a']).is_none(),
            "push past the end"
        );
        assert!(
            op_return_data(&[0x6a, 0x4d, 1]).is_none(),
            "length cut short"
        );
        assert!(
            op_return_data(&[0x6a, 0xac]).is_none(),
            "OP_CHECKSIG is not a push"
        );
    }

    #[test]
    fn bech32_is_compared_without_case_and_base58_with_it() {
        assert!(same_address(DEST, &DEST.to_uppercase()));
        assert!(same_address("rltc1qabc", "RLTC1QABC"));
        let base58 = "1BoatSLRHtKNngkdXEeobR76b53LETtpyT";
        assert!(same_address(base58, base58));
        assert!(!same_address(base58, &base58.to_lowercase()));
        assert_eq!(canonical_address(&DEST.to_uppercase()), DEST);
        assert_eq!(canonical_address(base58), base58);
    }
}
