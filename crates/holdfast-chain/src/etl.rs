//! Transfers from blockchain-etl CSV exports (`ethereumetl export_*`), for users who have
//! exported data and no node: `token_transfers.csv`, `traces.csv`, and `transactions.csv`
//! when it carries `receipt_status`.
//!
//! The same rules as extraction from a node apply: a trace moved value only if its status is
//! 1 (blockchain-etl propagates a failure to every sub-trace) and it is a CALL (not
//! DELEGATECALL, STATICCALL or CALLCODE), a CREATE or a SELFDESTRUCT. Limits of the format,
//! documented rather than guessed around: `token_transfers.csv` does not tell ERC-20 from
//! ERC-721 (blockchain-etl puts a token id in `value`) so every row is imported as ERC-20, and
//! it has no transaction index (recorded as 0: such transfers order by log index within their
//! block); none of the files carries block hashes, so imported transfers are not tied to a
//! block hash and are not unwound by reorg handling.

use std::io::Read;

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, Position, Transfer};

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
}

/// A file that is not a usable blockchain-etl export, or a row that does not parse. Names
/// the line, column and value.
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    #[error("{file}: not a CSV file: {message}")]
    Csv { file: String, message: String },
    #[error("{file}: the header {header:?} is not a blockchain-etl token_transfers, traces or transactions export; expected columns such as {:?}", EtlKind::TokenTransfers.required())]
    UnknownHeader { file: String, header: Vec<String> },
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
}

/// What a file yielded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtlImport {
    pub kind: EtlKind,
    pub rows: usize,
    pub transfers: Vec<Transfer>,
}

/// Reads a whole export; all or nothing (any bad row fails the file).
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
        if has("hash") && has("nonce") && !has("receipt_status") {
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
    let col = |name: &str| header.iter().position(|h| h == name).unwrap_or(usize::MAX);
    let cols: Vec<usize> = kind.required().iter().map(|c| col(c)).collect();
    let mut out = EtlImport {
        kind,
        rows: 0,
        transfers: Vec::new(),
    };
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
            names: kind.required(),
        };
        out.rows += 1;
        if let Some(t) = row.transfer(kind, chain_id)? {
            out.transfers.push(t);
        }
    }
    Ok(out)
}

struct Row<'a> {
    file: &'a str,
    line: u64,
    record: &'a csv::StringRecord,
    cols: &'a [usize],
    names: &'static [&'static str],
}

impl Row<'_> {
    fn get(&self, i: usize) -> &str {
        self.record.get(self.cols[i]).unwrap_or("")
    }

    fn err(&self, i: usize, expected: &'static str) -> EtlError {
        EtlError::Field {
            file: self.file.to_owned(),
            line: self.line,
            column: self.names[i],
            value: self.get(i).chars().take(100).collect(),
            expected,
        }
    }

    fn address(&self, i: usize) -> Result<Address, EtlError> {
        self.get(i)
            .parse()
            .map_err(|_| self.err(i, "an address (0x and 40 hex digits)"))
    }

    fn hash(&self, i: usize) -> Result<B256, EtlError> {
        self.get(i)
            .parse()
            .map_err(|_| self.err(i, "a 32-byte hash (0x and 64 hex digits)"))
    }

    fn uint(&self, i: usize) -> Result<U256, EtlError> {
        U256::from_str_radix(self.get(i), 10)
            .map_err(|_| self.err(i, "a decimal integer below 2^256"))
    }

    fn int<T: std::str::FromStr>(&self, i: usize) -> Result<T, EtlError> {
        self.get(i)
            .parse()
            .map_err(|_| self.err(i, "a non-negative integer in range"))
    }

    fn transfer(&self, kind: EtlKind, chain_id: u64) -> Result<Option<Transfer>, EtlError> {
        let t = |block_number, timestamp, tx_hash, tx_index, position, from, to, asset, amount| {
            Transfer {
                chain_id,
                block_number,
                block_hash: B256::ZERO,
                timestamp,
                tx_hash,
                tx_index,
                position,
                from,
                to,
                asset,
                amount,
            }
        };
        Ok(match kind {
            EtlKind::TokenTransfers => {
                let token = self.address(0)?;
                let position = Position::Log {
                    log_index: self.int(5)?,
                    item: 0,
                };
                Some(t(
                    self.int(6)?,
                    0,
                    self.hash(4)?,
                    0,
                    position,
                    self.address(1)?,
                    self.address(2)?,
                    Asset::Erc20 { token },
                    self.uint(3)?,
                ))
            }
            EtlKind::Traces => {
                let value = self.uint(5)?;
                let moves = match self.get(6) {
                    "call" => self.get(7) == "call",
                    "create" | "suicide" => true,
                    "reward" | "genesis" | "daofork" => false,
                    _ => {
                        return Err(
                            self.err(6, "one of call, create, suicide, reward, genesis, daofork")
                        );
                    }
                };
                let status = match self.get(9) {
                    "1" => true,
                    "0" => false,
                    _ => return Err(self.err(9, "0 or 1")),
                };
                if !moves || !status || value.is_zero() {
                    return Ok(None);
                }
                let trace_address = match self.get(8) {
                    "" => Vec::new(),
                    s => s
                        .split(',')
                        .map(|a| a.trim().parse::<u16>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| self.err(8, "comma-separated integers below 65536"))?,
                };
                Some(t(
                    self.int(0)?,
                    0,
                    self.hash(1)?,
                    self.int(2)?,
                    Position::Call { trace_address },
                    self.address(3)?,
                    self.address(4)?,
                    Asset::Native,
                    value,
                ))
            }
            EtlKind::Transactions => {
                let value = self.uint(5)?;
                if value.is_zero() || self.get(7) != "1" || self.get(4).is_empty() {
                    return Ok(None);
                }
                Some(t(
                    self.int(1)?,
                    self.int(6)?,
                    self.hash(0)?,
                    self.int(2)?,
                    Position::Call {
                        trace_address: Vec::new(),
                    },
                    self.address(3)?,
                    self.address(4)?,
                    Asset::Native,
                    value,
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_transfers_rows() {
        let csv = "token_address,from_address,to_address,value,transaction_hash,log_index,block_number\n\
0x6b175474e89094c44da98b954eedeac495271d0f,0x1111111111111111111111111111111111111111,0x2222222222222222222222222222222222222222,1000000000000000000000,0x04cbcb236043d8fb7839e07bbc7f5eed692fb2ca55d897f1101eac3e3ad4fab8,7,10000000\n";
        let out = read_etl_csv(csv.as_bytes(), 1, "t.csv").expect("parses");
        assert_eq!(out.kind, EtlKind::TokenTransfers);
        assert_eq!(out.transfers.len(), 1);
        assert_eq!(out.transfers[0].amount, U256::from(10).pow(U256::from(21)));
        assert_eq!(
            out.transfers[0].position,
            Position::Log {
                log_index: 7,
                item: 0
            }
        );
    }

    #[test]
    fn bad_rows_name_line_column_and_value() {
        let csv = "token_address,from_address,to_address,value,transaction_hash,log_index,block_number\n\
0x6b175474e89094c44da98b954eedeac495271d0f,0x1111111111111111111111111111111111111111,0x2222222222222222222222222222222222222222,12abc,0x04cbcb236043d8fb7839e07bbc7f5eed692fb2ca55d897f1101eac3e3ad4fab8,7,10000000\n";
        let err = read_etl_csv(csv.as_bytes(), 1, "t.csv")
            .expect_err("bad value")
            .to_string();
        assert!(
            err.contains("t.csv:2") && err.contains("value") && err.contains("12abc"),
            "{err}"
        );
        let err = read_etl_csv("a,b\n1,2\n".as_bytes(), 1, "x.csv")
            .expect_err("unknown")
            .to_string();
        assert!(
            err.contains("x.csv") && err.contains("token_address"),
            "{err}"
        );
        let tx = "hash,nonce,block_hash,block_number,transaction_index,from_address,to_address,value,gas,gas_price,input,block_timestamp\n";
        assert!(matches!(
            read_etl_csv(tx.as_bytes(), 1, "tx.csv"),
            Err(EtlError::NoReceiptStatus { .. })
        ));
    }
}
