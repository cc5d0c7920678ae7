//! Call frames, from geth's `callTracer` trees or parity's flat traces, to [`CallDetail`]s:
//! pre-order per transaction, parity-style trace addresses, inputs cut at
//! [`MAX_INPUT_BYTES`], and `reverted` on a frame that failed and on everything under it.
//!
//! Both shapes give the same details for the same block: a DELEGATECALL or STATICCALL moves
//! no value, so its `value` is zero whatever the node reports (geth omits it, parity repeats
//! the caller's); a creation's `to` is the created contract (zero when the creation failed
//! and the node names none).

use alloy::rpc::types::trace::parity::{
    Action, CallType, CreationMethod, LocalizedTransactionTrace, TraceOutput,
};
use alloy_primitives::{Address, Bytes, U256};

use super::{CallDetail, CallKind, MAX_INPUT_BYTES};
use crate::ChainError;
use crate::extract::GethFrame;

/// Every frame of each transaction's `callTracer` tree (one root per transaction, in block
/// order).
pub(crate) fn from_geth(number: u64, roots: &[GethFrame]) -> Result<Vec<CallDetail>, ChainError> {
    let mut out = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        let tx_index = index(number, "debug_traceBlockByNumber", i)?;
        walk(number, tx_index, root, &mut Vec::new(), false, &mut out)?;
    }
    Ok(out)
}

fn walk(
    number: u64,
    tx_index: u32,
    frame: &GethFrame,
    path: &mut Vec<u32>,
    parent_reverted: bool,
    out: &mut Vec<CallDetail>,
) -> Result<(), ChainError> {
    let kind = geth_kind(&frame.typ).ok_or_else(|| ChainError::Malformed {
        method: "debug_traceBlockByNumber",
        block: Some(number),
        reason: format!(
            "frame {path:?} of transaction {tx_index} has type {:?}, expected one of CALL, STATICCALL, DELEGATECALL, CALLCODE, CREATE, CREATE2, SELFDESTRUCT",
            frame.typ
        ),
    })?;
    let reverted = parent_reverted || frame.error.is_some();
    // Old geth reports a SELFDESTRUCT by its type alone (counted as incomplete by the
    // transfer extraction): its parties are unknown.
    let seen = Frame {
        kind,
        from: frame.from.unwrap_or_default(),
        to: frame.to.unwrap_or_default(),
        value: frame.value.unwrap_or_default(),
        input: frame.input.clone().unwrap_or_default(),
    };
    out.push(seen.detail(tx_index, path.clone(), reverted));
    for (i, child) in frame.calls.iter().enumerate() {
        path.push(index(number, "debug_traceBlockByNumber", i)?);
        walk(number, tx_index, child, path, reverted, out)?;
        path.pop();
    }
    Ok(())
}

fn geth_kind(typ: &str) -> Option<CallKind> {
    [
        CallKind::Call,
        CallKind::StaticCall,
        CallKind::DelegateCall,
        CallKind::CallCode,
        CallKind::Create,
        CallKind::Create2,
        CallKind::SelfDestruct,
    ]
    .into_iter()
    .find(|k| typ.eq_ignore_ascii_case(k.name()))
}

/// Every frame of parity-style flat traces (`trace_block`, or `trace_replayBlockTransactions`
/// localized): depth-first per transaction already. Block and uncle rewards are skipped.
pub(crate) fn from_parity(
    number: u64,
    method: &'static str,
    flat: &[LocalizedTransactionTrace],
) -> Result<Vec<CallDetail>, ChainError> {
    let mut out = Vec::with_capacity(flat.len());
    // Trace addresses of the current transaction's frames that failed: their descendants
    // come after them.
    let mut failed: Vec<&[usize]> = Vec::new();
    let mut current = None;
    for t in flat {
        let Some(position) = t.transaction_position else {
            continue;
        };
        if current != Some(position) {
            current = Some(position);
            failed.clear();
        }
        let tx_index = u32::try_from(position).map_err(|_| ChainError::Malformed {
            method,
            block: Some(number),
            reason: format!("transaction position {position} out of range"),
        })?;
        let address = &t.trace.trace_address;
        if t.trace.error.is_some() {
            failed.push(address);
        }
        let reverted = failed.iter().any(|f| address.starts_with(f));
        let seen = match &t.trace.action {
            Action::Call(c) => {
                let kind = match c.call_type {
                    CallType::Call | CallType::None => CallKind::Call,
                    CallType::StaticCall => CallKind::StaticCall,
                    CallType::DelegateCall => CallKind::DelegateCall,
                    CallType::CallCode => CallKind::CallCode,
                    CallType::AuthCall => {
                        return Err(ChainError::Malformed {
                            method,
                            block: Some(number),
                            reason: format!(
                                "frame {address:?} of transaction {tx_index} is an AUTHCALL, which no deployed EVM has"
                            ),
                        });
                    }
                };
                Frame {
                    kind,
                    from: c.from,
                    to: c.to,
                    value: c.value,
                    input: c.input.clone(),
                }
            }
            Action::Create(c) => {
                let kind = match c.creation_method {
                    CreationMethod::Create2 => CallKind::Create2,
                    CreationMethod::Create | CreationMethod::None | CreationMethod::EofCreate => {
                        CallKind::Create
                    }
                };
                let created = match &t.trace.result {
                    Some(TraceOutput::Create(r)) => r.address,
                    _ => Address::ZERO,
                };
                Frame {
                    kind,
                    from: c.from,
                    to: created,
                    value: c.value,
                    input: c.init.clone(),
                }
            }
            Action::Selfdestruct(s) => Frame {
                kind: CallKind::SelfDestruct,
                from: s.address,
                to: s.refund_address,
                value: s.balance,
                input: Bytes::new(),
            },
            Action::Reward(_) => continue,
        };
        let trace_address = address
            .iter()
            .map(|&a| index(number, method, a))
            .collect::<Result<_, _>>()?;
        out.push(seen.detail(tx_index, trace_address, reverted));
    }
    Ok(out)
}

/// A frame as either node describes it.
struct Frame {
    kind: CallKind,
    from: Address,
    to: Address,
    value: U256,
    input: Bytes,
}

impl Frame {
    fn detail(self, tx_index: u32, trace_address: Vec<u32>, reverted: bool) -> CallDetail {
        let input_len = self.input.len();
        CallDetail {
            tx_index,
            trace_address,
            kind: self.kind,
            from: self.from,
            to: self.to,
            value: match self.kind {
                CallKind::DelegateCall | CallKind::StaticCall => U256::ZERO,
                _ => self.value,
            },
            input: if input_len > MAX_INPUT_BYTES {
                self.input.slice(..MAX_INPUT_BYTES)
            } else {
                self.input
            },
            input_len,
            reverted,
        }
    }
}

fn index(number: u64, method: &'static str, i: usize) -> Result<u32, ChainError> {
    u32::try_from(i).map_err(|_| ChainError::Malformed {
        method,
        block: Some(number),
        reason: format!("index {i} out of range"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(typ: &str, error: bool, calls: Vec<GethFrame>) -> GethFrame {
        GethFrame {
            typ: typ.into(),
            from: Some(Address::repeat_byte(1)),
            to: Some(Address::repeat_byte(2)),
            value: Some(U256::from(5)),
            input: Some(Bytes::from(vec![7u8; MAX_INPUT_BYTES + 10])),
            error: error.then(|| "execution reverted".to_owned()),
            calls,
        }
    }

    #[test]
    fn geth_frames_flatten_pre_order_with_reverted_subtrees() {
        let root = frame(
            "CALL",
            false,
            vec![
                frame("DELEGATECALL", false, vec![]),
                frame("CALL", true, vec![frame("STATICCALL", false, vec![])]),
                frame("create2", false, vec![]),
            ],
        );
        let calls = from_geth(7, &[frame("CALL", false, vec![]), root]).expect("flattens");
        let got: Vec<_> = calls
            .iter()
            .map(|c| (c.tx_index, c.trace_address.clone(), c.kind, c.reverted))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, vec![], CallKind::Call, false),
                (1, vec![], CallKind::Call, false),
                (1, vec![0], CallKind::DelegateCall, false),
                (1, vec![1], CallKind::Call, true),
                (1, vec![1, 0], CallKind::StaticCall, true),
                (1, vec![2], CallKind::Create2, false),
            ]
        );
        assert!(
            calls
                .iter()
                .all(|c| c.input.len() == MAX_INPUT_BYTES && c.input_len == MAX_INPUT_BYTES + 10)
        );
        assert_eq!(calls[2].value, U256::ZERO, "a DELEGATECALL moves no value");
        assert_eq!(calls[3].value, U256::from(5));
    }

    #[test]
    fn an_unknown_geth_frame_type_is_an_error_naming_it() {
        let err = from_geth(
            9,
            &[frame("CALL", false, vec![frame("EXTCALL", false, vec![])])],
        )
        .expect_err("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("\"EXTCALL\"") && msg.contains("block 9") && msg.contains("[0]"),
            "{msg}"
        );
        assert!(!err.is_transient(), "the same answer would come again");
    }
}
