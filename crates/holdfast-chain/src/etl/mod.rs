//! Transfers from blockchain-etl CSV exports (`ethereumetl export_*`), for users who have
//! exported data and no node: `token_transfers.csv`, `traces.csv`, and `transactions.csv`
//! when it carries `receipt_status`.
//!
//! The same rules as extraction from a node apply: a trace moved value only if its status is
//! 1 (blockchain-etl propagates a failure to every sub-trace) and it is a CALL (not
//! DELEGATECALL, STATICCALL or CALLCODE), a CREATE or a SELFDESTRUCT; a transaction moved its
//! value only if its receipt status is 1 (a contract creation to the address in
//! `receipt_contract_address`). Limits of the format, documented rather than guessed around:
//! `token_transfers.csv` does not tell ERC-20 from ERC-721 (blockchain-etl puts a token id in
//! `value`) so every row is imported as ERC-20, and it has no transaction index (recorded as
//! 0: such transfers order by log index within their block); none of the files is tied to a
//! block hash, so imported transfers are not unwound by reorg handling.
//!
//! Nothing is dropped quietly. Every field Holdfast reads is checked on every row, whether
//! or not the row moved value (addresses as everywhere else: mixed case must be a valid
//! EIP-55 checksum); a receipt status other than 0, 1 or (before Byzantium, for a row that
//! carries no value) empty is an error. The rows must also fit together, or the file fails
//! naming both lines: one block and transaction index hold one transaction hash, a hash is
//! at one block and index, one place in block order (block, transaction index, position)
//! holds one transfer, and a block has one hash and one timestamp. A row repeated exactly is
//! counted ([`EtlImport::duplicates`]) and stored once.

mod row;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Read;

use alloy_primitives::{B256, U256};
use holdfast_primitives::{Position, Transfer};

use row::{Columns, Row, RowId};

/// The export a file holds, recognized by its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtlKind {
    TokenTransfers,
    Traces,
    Transactions,
}

impl EtlKind {
    pub const fn name(self) -> &'static str {
        match self {
            EtlKind::TokenTransfers => "token_transfers",
            EtlKind::Traces => "traces",
            EtlKind::Transactions => "transactions",
        }
    }

    const fn required(self) -> &'static [&'static str] {
        match self {
            EtlKind::TokenTransfers => &[
                "token_address",
                "from_address",
                "to_address",
                "value",
                "transaction_hash",
                "log_index",
                "block_number",
            ],
            EtlKind::Traces => &[
                "block_number",
                "transaction_hash",
                "transaction_index",
                "from_address",
                "to_address",
                "value",
                "trace_type",
                "call_type",
                "trace_address",
                "status",
            ],
            EtlKind::Transactions => &[
                "hash",
                "block_number",
                "transaction_index",
                "from_address",
                "to_address",
                "value",
                "block_timestamp",
                "receipt_status",
            ],
        }
    }

    /// Columns read when present: every column Holdfast reads, required ones first.
    const fn read(self) -> &'static [&'static str] {
        match self {
            EtlKind::TokenTransfers | EtlKind::Traces => self.required(),
            EtlKind::Transactions => &[
                "hash",
                "block_number",
                "transaction_index",
                "from_address",
                "to_address",
                "value",
                "block_timestamp",
                "receipt_status",
                "receipt_contract_address",
                "block_hash",
            ],
        }
    }
}

/// Two rows of one file that cannot both be true.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Collision {
    #[error(
        "block {block} transaction index {tx_index} holds transaction {first}, and this row says {this}"
    )]
    TxAtPlace {
        block: u64,
        tx_index: u32,
        first: B256,
        this: B256,
    },
    #[error(
        "transaction {tx_hash} is at block {first_block} (index {first_index}), and this row puts it at block {block} (index {index})"
    )]
    TxTwice {
        tx_hash: B256,
        first_block: u64,
        first_index: String,
        block: u64,
        index: String,
    },
    #[error(
        "block {block} transaction index {tx_index} position {position} holds a different transfer (transaction, parties, asset or amount)"
    )]
    Transfer {
        block: u64,
        tx_index: u32,
        position: Position,
    },
    #[error("block {block} has hash {first}, and this row says {this}")]
    BlockHash { block: u64, first: B256, this: B256 },
    #[error("block {block} has timestamp {first}, and this row says {this}")]
    BlockTimestamp { block: u64, first: u64, this: u64 },
}

/// A file that is not a usable blockchain-etl export, or a row that does not parse or does
/// not fit the others. Names the line, column and value (or both lines).
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    #[error("{file}: not a CSV file: {message}")]
    Csv { file: String, message: String },
    #[error("{file}: the header {header:?} is not a blockchain-etl token_transfers, traces or transactions export; expected columns such as {:?}", EtlKind::TokenTransfers.required())]
    UnknownHeader { file: String, header: Vec<String> },
    #[error("{file}: the header has the column {column:?} twice")]
    DuplicateColumn { file: String, column: String },
    #[error(
        "{file}: a blockchain-etl transactions export without receipt_status: a failed transaction's value would be recorded as moved; import traces.csv (it carries status) or export transactions with receipts"
    )]
    NoReceiptStatus { file: String },
    #[error("{file}:{line}: column {column}: {value:?} is not {expected}")]
    Field {
        file: String,
        line: u64,
        column: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "{file}:{line}: a contract creation that moved {value} wei, and the export has no receipt_contract_address column to say where: export transactions with receipts, or import traces.csv"
    )]
    CreationWithoutAddress {
        file: String,
        line: u64,
        value: U256,
    },
    #[error("{file}:{line}: collides with line {first}: {collision}")]
    Collision {
        file: String,
        line: u64,
        first: u64,
        collision: Box<Collision>,
    },
}

/// What a file yielded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtlImport {
    pub kind: EtlKind,
    pub rows: usize,
    /// The transfers, each once, in file order.
    pub transfers: Vec<Transfer>,
    /// The file line of each transfer (`lines[i]` is where `transfers[i]` was read).
    pub lines: Vec<u64>,
    /// Rows that repeat an earlier row's transfer exactly (stored once).
    pub duplicates: usize,
}

impl EtlImport {
    /// The file line of a transfer of this import (by its place in block order).
    pub fn line_of(&self, t: &Transfer) -> Option<u64> {
        self.transfers
            .iter()
            .position(|x| x.order_key() == t.order_key())
            .and_then(|i| self.lines.get(i).copied())
    }
}

/// Reads a whole export; all or nothing (any bad row, or two rows that do not fit together,
/// fail the file).
pub fn read_etl_csv(reader: impl Read, chain_id: u64, file: &str) -> Result<EtlImport, EtlError> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let header: Vec<String> = csv
        .headers()
        .map_err(|e| EtlError::Csv {
            file: file.to_owned(),
            message: e.to_string(),
        })?
        .iter()
        .map(str::to_owned)
        .collect();
    let has = |c: &str| header.iter().any(|h| h == c);
    let kind = [
        EtlKind::TokenTransfers,
        EtlKind::Traces,
        EtlKind::Transactions,
    ]
    .into_iter()
    .find(|k| k.required().iter().all(|c| has(c)))
    .ok_or_else(|| {
        if has("hash") && has("from_address") && has("nonce") && !has("receipt_status") {
            EtlError::NoReceiptStatus {
                file: file.to_owned(),
            }
        } else {
            EtlError::UnknownHeader {
                file: file.to_owned(),
                header: header.clone(),
            }
        }
    })?;
    let names = kind.read();
    let mut at = Vec::with_capacity(names.len());
    for name in names {
        let mut found = header.iter().enumerate().filter(|(_, h)| h == name);
        at.push(found.next().map(|(i, _)| i));
        if found.next().is_some() {
            return Err(EtlError::DuplicateColumn {
                file: file.to_owned(),
                column: (*name).to_owned(),
            });
        }
    }
    let cols = Columns { at, names };
    let mut out = EtlImport {
        kind,
        rows: 0,
        transfers: Vec::new(),
        lines: Vec::new(),
        duplicates: 0,
    };
    let mut seen = Seen::default();
    for record in csv.records() {
        let record = record.map_err(|e| EtlError::Csv {
            file: file.to_owned(),
            message: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let row = Row {
            file,
            line,
            record: &record,
            cols: &cols,
        };
        out.rows += 1;
        let parsed = row.parse(kind, chain_id)?;
        let collide = |first: u64, collision: Collision| EtlError::Collision {
            file: file.to_owned(),
            line,
            first,
            collision: Box::new(collision),
        };
        seen.row(&parsed.id, line).map_err(|(f, c)| collide(f, c))?;
        if let Some(t) = parsed.transfer {
            let key = (t.block_number, t.tx_index, t.position.clone());
            match seen.places.entry(key) {
                Entry::Occupied(e) => {
                    let i = *e.get();
                    if !same_transfer(&out.transfers[i], &t) {
                        return Err(collide(
                            out.lines[i],
                            Collision::Transfer {
                                block: t.block_number,
                                tx_index: t.tx_index,
                                position: t.position,
                            },
                        ));
                    }
                    out.duplicates += 1;
                }
                Entry::Vacant(e) => {
                    e.insert(out.transfers.len());
                    out.transfers.push(t);
                    out.lines.push(line);
                }
            }
        }
    }
    Ok(out)
}

/// Two records of one place in block order say the same: transaction, parties, asset and
/// amount (a timestamp only where both rows carry one).
fn same_transfer(a: &Transfer, b: &Transfer) -> bool {
    a.tx_hash == b.tx_hash
        && a.from == b.from
        && a.to == b.to
        && a.asset == b.asset
        && a.amount == b.amount
        && (a.timestamp == 0 || b.timestamp == 0 || a.timestamp == b.timestamp)
}

/// A block's hash and timestamp, each with the line that gave it first.
#[derive(Default)]
struct BlockSeen {
    hash: Option<(B256, u64)>,
    timestamp: Option<(u64, u64)>,
}

/// What the rows read so far said, with the line that said it first.
#[derive(Default)]
struct Seen {
    /// (block, transaction index) → transaction hash.
    tx_at: HashMap<(u64, u32), (B256, u64)>,
    /// Transaction hash → block and index.
    tx_where: HashMap<B256, (u64, Option<u32>, u64)>,
    /// Block → its hash and timestamp, where rows carry them.
    blocks: HashMap<u64, BlockSeen>,
    /// Place in block order → index in `EtlImport::transfers`.
    places: HashMap<(u64, u32, Position), usize>,
}

impl Seen {
    fn row(&mut self, id: &RowId, line: u64) -> Result<(), (u64, Collision)> {
        let index =
            |i: Option<u32>| i.map_or_else(|| "not in the export".to_owned(), |i| i.to_string());
        if let (Some(tx_hash), Some(tx_index)) = (id.tx_hash, id.tx_index) {
            match self.tx_at.entry((id.block, tx_index)) {
                Entry::Occupied(e) if e.get().0 != tx_hash => {
                    return Err((
                        e.get().1,
                        Collision::TxAtPlace {
                            block: id.block,
                            tx_index,
                            first: e.get().0,
                            this: tx_hash,
                        },
                    ));
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(e) => {
                    e.insert((tx_hash, line));
                }
            }
        }
        if let Some(tx_hash) = id.tx_hash {
            match self.tx_where.entry(tx_hash) {
                Entry::Occupied(mut e) => {
                    let (block, tx_index, first) = *e.get();
                    let index_differs =
                        matches!((tx_index, id.tx_index), (Some(a), Some(b)) if a != b);
                    if block != id.block || index_differs {
                        return Err((
                            first,
                            Collision::TxTwice {
                                tx_hash,
                                first_block: block,
                                first_index: index(tx_index),
                                block: id.block,
                                index: index(id.tx_index),
                            },
                        ));
                    }
                    if tx_index.is_none() && id.tx_index.is_some() {
                        e.insert((block, id.tx_index, first));
                    }
                }
                Entry::Vacant(e) => {
                    e.insert((id.block, id.tx_index, line));
                }
            }
        }
        let block = self.blocks.entry(id.block).or_default();
        if let Some(this) = id.block_hash {
            match block.hash {
                Some((first, at)) if first != this => {
                    return Err((
                        at,
                        Collision::BlockHash {
                            block: id.block,
                            first,
                            this,
                        },
                    ));
                }
                Some(_) => {}
                None => block.hash = Some((this, line)),
            }
        }
        if let Some(this) = id.timestamp {
            match block.timestamp {
                Some((first, at)) if first != this => {
                    return Err((
                        at,
                        Collision::BlockTimestamp {
                            block: id.block,
                            first,
                            this,
                        },
                    ));
                }
                Some(_) => {}
                None => block.timestamp = Some((this, line)),
            }
        }
        Ok(())
    }
}
