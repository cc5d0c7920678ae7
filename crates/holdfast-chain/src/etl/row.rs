//! One row of an export, every field read and checked before anything is decided from it.

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, Position, Transfer};

use super::{EtlError, EtlKind};

/// Byzantium on Ethereum mainnet: from this block on every receipt carries a status.
const MAINNET_BYZANTIUM: u64 = 4_370_000;

/// Which column of the file each field is in (`None`: the file has no such column).
#[derive(Debug, Clone)]
pub(super) struct Columns {
    pub(super) at: Vec<Option<usize>>,
    pub(super) names: &'static [&'static str],
}

impl Columns {
    pub(super) fn index(&self, name: &str) -> Option<usize> {
        self.names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| self.at[i])
    }
}

/// A row's identity: what the file-wide consistency checks compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RowId {
    pub(super) block: u64,
    /// `None` where the format does not carry it (token transfers) or the row belongs to no
    /// transaction (block rewards).
    pub(super) tx_index: Option<u32>,
    pub(super) tx_hash: Option<B256>,
    pub(super) block_hash: Option<B256>,
    pub(super) timestamp: Option<u64>,
}

/// What a row says: who it is, and the transfer it records if it moved value.
#[derive(Debug)]
pub(super) struct Parsed {
    pub(super) id: RowId,
    pub(super) transfer: Option<Transfer>,
}

pub(super) struct Row<'a> {
    pub(super) file: &'a str,
    pub(super) line: u64,
    pub(super) record: &'a csv::StringRecord,
    pub(super) cols: &'a Columns,
}

impl Row<'_> {
    fn raw(&self, name: &'static str) -> &str {
        self.cols
            .index(name)
            .and_then(|i| self.record.get(i))
            .unwrap_or("")
    }

    fn err(&self, column: &'static str, expected: &'static str) -> EtlError {
        EtlError::Field {
            file: self.file.to_owned(),
            line: self.line,
            column,
            value: self.raw(column).chars().take(100).collect(),
            expected,
        }
    }

    fn address(&self, column: &'static str) -> Result<Address, EtlError> {
        parse_address(self.raw(column)).ok_or_else(|| {
            self.err(
                column,
                "an address: 0x and 40 hex digits, all lowercase, all uppercase or EIP-55 checksummed",
            )
        })
    }

    fn opt_address(&self, column: &'static str) -> Result<Option<Address>, EtlError> {
        if self.raw(column).is_empty() {
            return Ok(None);
        }
        self.address(column).map(Some)
    }

    fn hash(&self, column: &'static str) -> Result<B256, EtlError> {
        parse_hash(self.raw(column))
            .ok_or_else(|| self.err(column, "a 32-byte hash (0x and 64 hex digits)"))
    }

    fn opt_hash(&self, column: &'static str) -> Result<Option<B256>, EtlError> {
        if self.raw(column).is_empty() {
            return Ok(None);
        }
        self.hash(column).map(Some)
    }

    fn uint(&self, column: &'static str) -> Result<U256, EtlError> {
        let s = self.raw(column);
        digits(s)
            .then(|| U256::from_str_radix(s, 10).ok())
            .flatten()
            .ok_or_else(|| self.err(column, "a decimal integer below 2^256"))
    }

    fn int<T: std::str::FromStr>(&self, column: &'static str) -> Result<T, EtlError> {
        let s = self.raw(column);
        digits(s)
            .then(|| s.parse().ok())
            .flatten()
            .ok_or_else(|| self.err(column, "a non-negative decimal integer in range"))
    }

    fn opt_int<T: std::str::FromStr>(&self, column: &'static str) -> Result<Option<T>, EtlError> {
        if self.raw(column).is_empty() {
            return Ok(None);
        }
        self.int(column).map(Some)
    }

    fn status(&self, column: &'static str) -> Result<bool, EtlError> {
        match self.raw(column) {
            "1" => Ok(true),
            "0" => Ok(false),
            _ => Err(self.err(column, "0 or 1")),
        }
    }

    pub(super) fn parse(&self, kind: EtlKind, chain_id: u64) -> Result<Parsed, EtlError> {
        match kind {
            EtlKind::TokenTransfers => self.token_transfer(chain_id),
            EtlKind::Traces => self.trace(chain_id),
            EtlKind::Transactions => self.transaction(chain_id),
        }
    }

    /// Every row is a transfer, zero-valued ones too (extraction from a node keeps those:
    /// address-poisoning decoys are zero-value token transfers).
    fn token_transfer(&self, chain_id: u64) -> Result<Parsed, EtlError> {
        let token = self.address("token_address")?;
        let from = self.address("from_address")?;
        let to = self.address("to_address")?;
        let amount = self.uint("value")?;
        let tx_hash = self.hash("transaction_hash")?;
        let log_index = self.int("log_index")?;
        let block = self.int("block_number")?;
        Ok(Parsed {
            id: RowId {
                block,
                tx_index: None,
                tx_hash: Some(tx_hash),
                block_hash: None,
                timestamp: None,
            },
            transfer: Some(Transfer {
                chain_id,
                block_number: block,
                block_hash: B256::ZERO,
                timestamp: 0,
                tx_hash,
                tx_index: 0,
                position: Position::Log { log_index, item: 0 },
                from,
                to,
                asset: Asset::Erc20 { token },
                amount,
            }),
        })
    }

    /// A trace moved value if its status is 1 and it is a CALL (not DELEGATECALL,
    /// STATICCALL or CALLCODE), a CREATE or a SELFDESTRUCT, with a non-zero value. Rewards,
    /// genesis allocations and the DAO fork's transfers are not transactions' transfers
    /// (extraction from a node does not record them either); their fields are still checked.
    fn trace(&self, chain_id: u64) -> Result<Parsed, EtlError> {
        let block = self.int("block_number")?;
        let value = self.uint("value")?;
        let status = self.status("status")?;
        let trace_type = self.raw("trace_type");
        let call_type = self.raw("call_type");
        let in_tx = match trace_type {
            "call" | "create" | "suicide" => true,
            "reward" | "genesis" | "daofork" => false,
            _ => {
                return Err(self.err(
                    "trace_type",
                    "one of call, create, suicide, reward, genesis, daofork",
                ));
            }
        };
        let value_call = match (trace_type, call_type) {
            ("call", "call") => true,
            ("call", "delegatecall" | "staticcall" | "callcode") => false,
            ("call", _) => {
                return Err(self.err(
                    "call_type",
                    "one of call, delegatecall, staticcall, callcode for a call trace",
                ));
            }
            (_, "") => trace_type != "reward" && trace_type != "genesis" && trace_type != "daofork",
            _ => return Err(self.err("call_type", "empty for a trace that is not a call")),
        };
        let trace_address = match self.raw("trace_address") {
            "" => Vec::new(),
            s => s
                .split(',')
                .map(|a| digits(a).then(|| a.parse::<u16>().ok()).flatten())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.err("trace_address", "comma-separated integers below 65536"))?,
        };
        let (tx_hash, tx_index, from) = if in_tx {
            (
                Some(self.hash("transaction_hash")?),
                Some(self.int("transaction_index")?),
                Some(self.address("from_address")?),
            )
        } else {
            (
                self.opt_hash("transaction_hash")?,
                self.opt_int("transaction_index")?,
                self.opt_address("from_address")?,
            )
        };
        // A failed creation created nothing: blockchain-etl leaves its address empty.
        let to = if trace_type == "create" && !status {
            self.opt_address("to_address")?
        } else {
            Some(self.address("to_address")?)
        };
        let id = RowId {
            block,
            tx_index,
            tx_hash,
            block_hash: None,
            timestamp: None,
        };
        let transfer = match (tx_hash, tx_index, from, to) {
            (Some(tx_hash), Some(tx_index), Some(from), Some(to))
                if value_call && status && !value.is_zero() =>
            {
                Some(Transfer {
                    chain_id,
                    block_number: block,
                    block_hash: B256::ZERO,
                    timestamp: 0,
                    tx_hash,
                    tx_index,
                    position: Position::Call { trace_address },
                    from,
                    to,
                    asset: Asset::Native,
                    amount: value,
                })
            }
            _ => None,
        };
        Ok(Parsed { id, transfer })
    }

    /// A transaction's own value transfer. `receipt_status` is 1 (succeeded), 0 (failed:
    /// nothing moved) or empty: blockchain-etl leaves it empty for receipts from before
    /// Byzantium, which carry no status. Whether such a transaction moved its value is then
    /// unknown, so a value-carrying one is an error (traces.csv carries a status for every
    /// block); a zero-value one moves nothing either way. On Ethereum mainnet an empty
    /// status from Byzantium (block 4,370,000) on is an error.
    fn transaction(&self, chain_id: u64) -> Result<Parsed, EtlError> {
        let tx_hash = self.hash("hash")?;
        let block = self.int("block_number")?;
        let tx_index = self.int("transaction_index")?;
        let from = self.address("from_address")?;
        let to = self.opt_address("to_address")?;
        let value = self.uint("value")?;
        let timestamp = self.int("block_timestamp")?;
        let block_hash = self.opt_hash("block_hash")?;
        let created = self.opt_address("receipt_contract_address")?;
        let status = match self.raw("receipt_status") {
            "" if chain_id == 1 && block >= MAINNET_BYZANTIUM => {
                return Err(self.err(
                    "receipt_status",
                    "0 or 1 (every mainnet receipt since Byzantium, block 4370000, has a status)",
                ));
            }
            "" if !value.is_zero() => {
                return Err(self.err(
                    "receipt_status",
                    "0 or 1: the receipt has no status (before Byzantium), so whether this value moved is unknown; import traces.csv for these blocks, whose status is known",
                ));
            }
            "" => false,
            _ => self.status("receipt_status")?,
        };
        if to.is_some() && created.is_some() {
            return Err(self.err(
                "receipt_contract_address",
                "empty: the transaction has a to_address, so it created no contract",
            ));
        }
        let id = RowId {
            block,
            tx_index: Some(tx_index),
            tx_hash: Some(tx_hash),
            block_hash,
            timestamp: Some(timestamp),
        };
        if !status || value.is_zero() {
            return Ok(Parsed { id, transfer: None });
        }
        // A contract creation moves its value to the contract it created.
        let to = match (to, created) {
            (Some(to), _) | (None, Some(to)) => to,
            (None, None) => {
                return Err(if self.cols.index("receipt_contract_address").is_some() {
                    self.err(
                        "receipt_contract_address",
                        "the created contract's address: a successful contract creation carrying value",
                    )
                } else {
                    EtlError::CreationWithoutAddress {
                        file: self.file.to_owned(),
                        line: self.line,
                        value,
                    }
                });
            }
        };
        Ok(Parsed {
            id,
            transfer: Some(Transfer {
                chain_id,
                block_number: block,
                block_hash: B256::ZERO,
                timestamp,
                tx_hash,
                tx_index,
                position: Position::Call {
                    trace_address: Vec::new(),
                },
                from,
                to,
                asset: Asset::Native,
                amount: value,
            }),
        })
    }
}

/// Non-empty and ASCII digits only (`str::parse` would also take a sign).
fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn hex_body(s: &str, len: usize) -> Option<&str> {
    let body = s.strip_prefix("0x")?;
    (body.len() == len && body.bytes().all(|b| b.is_ascii_hexdigit())).then_some(body)
}

/// `0x` and 40 hex digits; mixed case must be a valid EIP-55 checksum, as everywhere else in
/// Holdfast (a mistyped checksummed address is caught rather than read as another).
pub(super) fn parse_address(s: &str) -> Option<Address> {
    let body = hex_body(s, 40)?;
    let lower = body.bytes().all(|b| !b.is_ascii_uppercase());
    let upper = body.bytes().all(|b| !b.is_ascii_lowercase());
    if lower || upper {
        s.parse().ok()
    } else {
        Address::parse_checksummed(s, None).ok()
    }
}

fn parse_hash(s: &str) -> Option<B256> {
    hex_body(s, 64)?;
    s.parse().ok()
}
