//! Native-coin transfers from call traces (geth `callTracer` or parity `trace_block`), or
//! from the transactions alone when the node serves no traces.

use alloy::rpc::types::trace::parity::{Action, CallType, LocalizedTransactionTrace, TraceOutput};
use alloy_primitives::{Address, Bytes, U256};
use holdfast_primitives::{Asset, Position, Transfer};

use super::{BlockContext, ExtractError, TxMeta};

/// A block's call traces, in the shape the node returned them.
#[derive(Debug, Clone, Copy)]
pub enum Traces<'a> {
    /// No traces: only top-level transaction values are seen (internal transfers missing).
    None,
    /// `debug_traceBlockByNumber` with `callTracer`: one root frame per transaction, in order.
    Geth(&'a [GethFrame]),
    /// `trace_block`: flat traces in depth-first order, with trace addresses.
    Parity(&'a [LocalizedTransactionTrace]),
}

impl Traces<'_> {
    pub const fn method(&self) -> &'static str {
        match self {
            Traces::None => "eth_getBlockByNumber",
            Traces::Geth(_) => "debug_traceBlockByNumber",
            Traces::Parity(_) => "trace_block",
        }
    }
}

/// A geth `callTracer` frame. Read leniently: old geth versions report a SELFDESTRUCT frame
/// with its type alone (no from, to or value), which alloy's `CallFrame` rejects; such a frame
/// is counted in [`NativeTransfers::incomplete`] instead of failing the block.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct GethFrame {
    #[serde(rename = "type")]
    pub typ: String,
    #[serde(default)]
    pub from: Option<Address>,
    #[serde(default)]
    pub to: Option<Address>,
    #[serde(default)]
    pub value: Option<U256>,
    /// The call's input (a creation's init code); read for the watch's call details.
    #[serde(default)]
    pub input: Option<Bytes>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub calls: Vec<GethFrame>,
}

/// A block's native transfers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NativeTransfers {
    pub transfers: Vec<Transfer>,
    /// Value-moving frames the node described without their parties (old geth's
    /// SELFDESTRUCT): movements that may have happened but cannot be recorded.
    pub incomplete: usize,
}

/// Every native-coin movement of the block that took effect, in block order.
pub fn native_transfers(
    ctx: &BlockContext,
    txs: &[TxMeta],
    traces: Traces<'_>,
) -> Result<NativeTransfers, ExtractError> {
    let mut out = NativeTransfers::default();
    match traces {
        Traces::None => {
            for tx in txs.iter().filter(|t| t.success && !t.value.is_zero()) {
                if let Some(to) = tx.to {
                    out.transfers
                        .push(transfer(ctx, tx, Vec::new(), tx.from, to, tx.value));
                }
            }
        }
        Traces::Geth(frames) => {
            if frames.len() != txs.len() {
                return Err(ExtractError::TraceCount {
                    block: ctx.block.number,
                    method: traces.method(),
                    got: frames.len(),
                    expected: txs.len(),
                });
            }
            for (tx, frame) in txs.iter().zip(frames) {
                if tx.success {
                    walk_geth(ctx, tx, frame, &mut Vec::new(), &mut out)?;
                }
            }
        }
        Traces::Parity(flat) => parity(ctx, txs, flat, &mut out.transfers)?,
    }
    Ok(out)
}

fn transfer(
    ctx: &BlockContext,
    tx: &TxMeta,
    trace_address: Vec<u16>,
    from: Address,
    to: Address,
    amount: U256,
) -> Transfer {
    Transfer {
        chain_id: ctx.chain_id,
        block_number: ctx.block.number,
        block_hash: ctx.block.hash,
        timestamp: ctx.block.timestamp,
        tx_hash: tx.hash,
        tx_index: tx.index,
        position: Position::Call { trace_address },
        from,
        to,
        asset: Asset::Native,
        amount,
    }
}

fn walk_geth(
    ctx: &BlockContext,
    tx: &TxMeta,
    frame: &GethFrame,
    path: &mut Vec<u16>,
    out: &mut NativeTransfers,
) -> Result<(), ExtractError> {
    if frame.error.is_some() {
        // Reverted: nothing in this frame or under it took effect.
        return Ok(());
    }
    let moves_value = ["CALL", "CREATE", "CREATE2", "SELFDESTRUCT"]
        .iter()
        .any(|k| frame.typ.eq_ignore_ascii_case(k));
    if moves_value {
        match (frame.from, frame.to, frame.value) {
            (Some(from), Some(to), Some(value)) if !value.is_zero() => out
                .transfers
                .push(transfer(ctx, tx, path.clone(), from, to, value)),
            // No value, or zero: nothing moved.
            (_, _, Some(value)) if value.is_zero() => {}
            (Some(_), Some(_), None) => {}
            _ => {
                tracing::warn!(target: "chain::extract", block = ctx.block.number, tx = %tx.hash, trace_address = ?path, kind = %frame.typ, "the node's trace omits this frame's parties or value: a native transfer may be missing");
                out.incomplete += 1;
            }
        }
    }
    for (i, child) in frame.calls.iter().enumerate() {
        let i = u16::try_from(i).map_err(|_| trace_address_error(ctx, tx, path, i))?;
        path.push(i);
        walk_geth(ctx, tx, child, path, out)?;
        path.pop();
    }
    Ok(())
}

fn trace_address_error(ctx: &BlockContext, tx: &TxMeta, path: &[u16], i: usize) -> ExtractError {
    let mut trace_address: Vec<usize> = path.iter().map(|&p| p as usize).collect();
    trace_address.push(i);
    ExtractError::TraceAddress {
        block: ctx.block.number,
        method: "debug_traceBlockByNumber",
        tx: tx.hash,
        trace_address,
    }
}

fn parity(
    ctx: &BlockContext,
    txs: &[TxMeta],
    flat: &[LocalizedTransactionTrace],
    out: &mut Vec<Transfer>,
) -> Result<(), ExtractError> {
    const METHOD: &str = "trace_block";
    // Trace addresses of failed frames of the current transaction: traces come depth-first,
    // so a frame's ancestors are seen before it.
    let mut failed: Vec<&[usize]> = Vec::new();
    let mut current: Option<u64> = None;
    for t in flat {
        let Some(pos) = t.transaction_position else {
            continue; // block and uncle rewards
        };
        if current != Some(pos) {
            current = Some(pos);
            failed.clear();
        }
        let tx = usize::try_from(pos)
            .ok()
            .and_then(|p| txs.get(p))
            .filter(|tx| t.transaction_hash.is_none_or(|h| h == tx.hash))
            .ok_or(ExtractError::UnknownTransaction {
                block: ctx.block.number,
                method: METHOD,
                index: pos,
            })?;
        let addr = &t.trace.trace_address;
        if !tx.success || failed.iter().any(|f| addr.starts_with(f)) {
            continue;
        }
        if t.trace.error.is_some() {
            failed.push(addr);
            continue;
        }
        let (from, to, value) = match &t.trace.action {
            Action::Call(c) if matches!(c.call_type, CallType::Call | CallType::None) => {
                (c.from, Some(c.to), c.value)
            }
            Action::Create(c) => (c.from, created(t), c.value),
            Action::Selfdestruct(s) => (s.address, Some(s.refund_address), s.balance),
            Action::Call(_) | Action::Reward(_) => continue,
        };
        let Some(to) = to.filter(|_| !value.is_zero()) else {
            continue;
        };
        let trace_address = addr
            .iter()
            .map(|&a| u16::try_from(a))
            .collect::<Result<Vec<u16>, _>>()
            .map_err(|_| ExtractError::TraceAddress {
                block: ctx.block.number,
                method: METHOD,
                tx: tx.hash,
                trace_address: addr.clone(),
            })?;
        out.push(transfer(ctx, tx, trace_address, from, to, value));
    }
    Ok(())
}

fn created(t: &LocalizedTransactionTrace) -> Option<Address> {
    match &t.trace.result {
        Some(TraceOutput::Create(c)) => Some(c.address),
        _ => None,
    }
}
