//! Raw blocks (consensus serialization) → [`bitcoin::Block`], with errors that say where.
//!
//! rust-bitcoin decodes: the header, then each transaction in turn from one cursor, exactly
//! as its `Block` decoder does, so the bytes accepted are the bytes rust-bitcoin accepts.
//! When a transaction fails, a walker over that transaction's layout (version, segwit marker
//! and flag, inputs, outputs, witnesses, lock time) names the field and byte offset that broke;
//! the block is named by its header's hash whenever 80 bytes are there. Nothing here
//! panics or allocates more than the input's length: every count is checked against the bytes
//! left before anything is reserved.

use std::fmt;

use bitcoin::block::Header;
use bitcoin::consensus::Decodable;
use bitcoin::{BlockHash, Transaction};

/// Smallest possible transaction: version, one-byte input and output counts, lock time.
const MIN_TX_BYTES: u64 = 10;

/// Why a block's bytes do not decode, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {field} at byte {offset}: {reason}")]
pub struct DecodeError {
    pub place: Box<Place>,
    /// The field that broke (`header`, `tx count`, `input 2 script_sig`, `lock_time`,
    /// `trailing bytes`, ...).
    pub field: String,
    /// Offset of that field from the start of the block's bytes.
    pub offset: usize,
    /// What was wrong (what was expected).
    pub reason: String,
}

/// Which block and transaction a [`DecodeError`] is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// `None` when fewer than 80 bytes were there.
    pub block: Option<BlockHash>,
    /// The block's height, when the caller knows it.
    pub height: Option<u64>,
    /// Position of the transaction in the block.
    pub tx: Option<usize>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.block, self.height) {
            (Some(hash), Some(h)) => write!(f, "block {h} ({hash})")?,
            (Some(hash), None) => write!(f, "block {hash}")?,
            (None, Some(h)) => write!(f, "block {h} (header unreadable)")?,
            (None, None) => f.write_str("block (header unreadable)")?,
        }
        if let Some(tx) = self.tx {
            write!(f, ", tx {tx}")?;
        }
        Ok(())
    }
}

/// Decodes one consensus-serialized block (no `blk*.dat` framing): every byte must belong to
/// it. `height` only names the block in errors.
pub fn decode_block(bytes: &[u8], height: Option<u64>) -> Result<bitcoin::Block, DecodeError> {
    let mut place = Place {
        block: None,
        height,
        tx: None,
    };
    let err = |place: &Place, field: &str, offset: usize, reason: String| DecodeError {
        place: Box::new(place.clone()),
        field: field.to_owned(),
        offset,
        reason,
    };
    let mut reader: &[u8] = bytes;
    let header = Header::consensus_decode(&mut reader).map_err(|_| {
        err(
            &place,
            "header",
            0,
            format!("expected 80 bytes, got {}", bytes.len()),
        )
    })?;
    place.block = Some(header.block_hash());
    let count = read_compact(bytes, 80).map_err(|reason| err(&place, "tx count", 80, reason))?;
    let (count, mut pos) = count;
    let left = (bytes.len() - pos) as u64;
    if count == 0 || count > left / MIN_TX_BYTES {
        return Err(err(
            &place,
            "tx count",
            80,
            format!(
                "{count} transactions cannot fit in the {left} bytes left (a block has at least one, each at least {MIN_TX_BYTES} bytes)"
            ),
        ));
    }
    let mut txdata = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        place.tx = Some(i);
        let mut reader: &[u8] = &bytes[pos..];
        match Transaction::consensus_decode_from_finite_reader(&mut reader) {
            Ok(tx) => {
                pos = bytes.len() - reader.len();
                txdata.push(tx);
            }
            Err(e) => {
                let (field, offset, reason) = match walk_tx(&bytes[pos..]) {
                    Err(Broken {
                        field,
                        offset,
                        reason,
                    }) => (field, pos + offset, reason),
                    Ok(_) => ("transaction".to_owned(), pos, e.to_string()),
                };
                return Err(err(&place, &field, offset, reason));
            }
        }
    }
    place.tx = None;
    if pos != bytes.len() {
        return Err(err(
            &place,
            "trailing bytes",
            pos,
            format!(
                "{} bytes after the last of the {count} transactions",
                bytes.len() - pos
            ),
        ));
    }
    Ok(bitcoin::Block { header, txdata })
}

/// Where a transaction's bytes broke (offset from the transaction's start).
#[derive(Debug)]
struct Broken {
    field: String,
    offset: usize,
    reason: String,
}

/// Walks a transaction's layout as rust-bitcoin reads it, for naming the broken field. Returns
/// the transaction's length when nothing is wrong with its layout.
fn walk_tx(b: &[u8]) -> Result<usize, Broken> {
    let mut w = Walker { b, pos: 0 };
    w.take("version", 4)?;
    let mut inputs = w.count("input count", 41)?;
    let mut segwit = false;
    if inputs == 0 {
        let at = w.pos;
        let flag = w.take("segwit flag", 1)?[0];
        if flag != 1 {
            return Err(w.broken_at(
                "segwit flag",
                at,
                format!("expected 1 after the zero marker, got {flag}"),
            ));
        }
        segwit = true;
        inputs = w.count("input count", 41)?;
    }
    for i in 0..inputs {
        w.take(&format!("input {i} prevout"), 36)?;
        let n = w.count(&format!("input {i} script_sig length"), 0)?;
        w.take(&format!("input {i} script_sig"), n)?;
        w.take(&format!("input {i} sequence"), 4)?;
    }
    let outputs = w.count("output count", 9)?;
    for o in 0..outputs {
        w.take(&format!("output {o} value"), 8)?;
        let n = w.count(&format!("output {o} script_pubkey length"), 0)?;
        w.take(&format!("output {o} script_pubkey"), n)?;
    }
    if segwit {
        let start = w.pos;
        let mut any = false;
        for i in 0..inputs {
            let items = w.count(&format!("input {i} witness item count"), 1)?;
            any |= items > 0;
            for k in 0..items {
                let n = w.count(&format!("input {i} witness item {k} length"), 0)?;
                w.take(&format!("input {i} witness item {k}"), n)?;
            }
        }
        if !any {
            return Err(w.broken_at(
                "witnesses",
                start,
                "segwit flag set but every witness is empty".to_owned(),
            ));
        }
    }
    w.take("lock_time", 4)?;
    Ok(w.pos)
}

struct Walker<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Walker<'_> {
    fn broken_at(&self, field: &str, offset: usize, reason: String) -> Broken {
        Broken {
            field: field.to_owned(),
            offset,
            reason,
        }
    }

    fn take(&mut self, field: &str, n: u64) -> Result<&[u8], Broken> {
        let left = self.b.len() - self.pos;
        if n > left as u64 {
            return Err(self.broken_at(field, self.pos, format!("needs {n} bytes, {left} left")));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.b[start..self.pos])
    }

    /// A compact-size count of items at least `min_item` bytes each (0: the count is a byte
    /// length), checked against the bytes left only as far as needed to bound the walk: an item
    /// cut short is named itself.
    fn count(&mut self, field: &str, min_item: u64) -> Result<u64, Broken> {
        let at = self.pos;
        let (n, next) = read_compact(self.b, at).map_err(|r| self.broken_at(field, at, r))?;
        self.pos = next;
        let left = (self.b.len() - self.pos) as u64;
        if min_item > 0 && n > left / min_item + 1 {
            return Err(self.broken_at(
                field,
                at,
                format!(
                    "{n} items of at least {min_item} bytes cannot fit in the {left} bytes left"
                ),
            ));
        }
        Ok(n)
    }
}

/// A compact-size integer at `at`: its value and the offset after it. Non-minimal encodings are
/// refused, as Bitcoin Core and rust-bitcoin refuse them.
fn read_compact(b: &[u8], at: usize) -> Result<(u64, usize), String> {
    let first = *b.get(at).ok_or("needs 1 byte, 0 left")?;
    let (width, min) = match first {
        0..=0xfc => return Ok((u64::from(first), at + 1)),
        0xfd => (2, 0xfd),
        0xfe => (4, 0x1_0000),
        0xff => (8, 0x1_0000_0000),
    };
    let body = b
        .get(at + 1..at + 1 + width)
        .ok_or_else(|| format!("needs {} bytes, {} left", width + 1, b.len() - at))?;
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(body);
    let n = u64::from_le_bytes(v);
    if n < min {
        return Err(format!(
            "non-minimal compact size {n} in {} bytes",
            width + 1
        ));
    }
    Ok((n, at + 1 + width))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Mainnet block 1 (bitcoin-etl's `getblock` fixture `hex`, rebuilt from its header fields).
    const BLOCK_1: &str = "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e362990101000000010000000000000000000000000000000000000000000000000000000000000000ffffffff0704ffff001d0104ffffffff0100f2052a0100000043410496b538e853519c726a2c91e61ec11600ae1390813a627c66fb8be7947be63c52da7589379515d4e0a604f8141781e62294721166bf621e73a82cbf2342c858eeac00000000";

    fn block1() -> Vec<u8> {
        hex::decode(BLOCK_1).expect("hex")
    }

    #[test]
    fn a_real_block_decodes() {
        let b = decode_block(&block1(), Some(1)).expect("decodes");
        assert_eq!(
            b.block_hash().to_string(),
            "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048"
        );
        assert_eq!(b.txdata.len(), 1);
    }

    #[test]
    fn every_truncation_is_an_error_naming_the_field() {
        let full = block1();
        for cut in 0..full.len() {
            let e = decode_block(&full[..cut], Some(1)).expect_err("truncated");
            let msg = e.to_string();
            if cut >= 80 {
                assert!(msg.starts_with("block 1 (00000000839a8e"), "{cut}: {msg}");
            } else {
                assert_eq!(e.field, "header", "{cut}: {msg}");
            }
            assert!(!msg.contains("Some("), "{msg}");
        }
        let e = decode_block(&full[..80 + 1 + 4 + 1 + 20], None).expect_err("cut");
        assert_eq!(e.field, "input 0 prevout", "{e}");
        assert_eq!(e.place.tx, Some(0));
        assert_eq!(e.offset, 86);
    }

    #[test]
    fn trailing_bytes_and_impossible_counts_are_named() {
        let mut b = block1();
        b.push(0);
        let e = decode_block(&b, None).expect_err("trailing");
        assert_eq!(
            (e.field.as_str(), e.offset),
            ("trailing bytes", b.len() - 1)
        );

        let mut b = block1();
        b[80] = 0xfe; // 4-byte count follows: far more transactions than bytes
        let e = decode_block(&b, None).expect_err("count");
        assert_eq!(e.field, "tx count", "{e}");

        let mut b = block1();
        b[80] = 0xfd;
        b[81] = 0x01;
        b[82] = 0x00; // 1 in three bytes: non-minimal
        let e = decode_block(&b, None).expect_err("non-minimal");
        assert!(e.reason.contains("non-minimal"), "{e}");
    }

    #[test]
    fn an_oversized_script_length_is_refused_before_allocating() {
        let mut b = block1();
        // output 0's script length (0x43) → 0xfe ffffffff: 4 GiB claimed
        let at = b.len() - 4 - 67 - 1;
        assert_eq!(b[at], 0x43);
        b.splice(at..at + 1, [0xfe, 0xff, 0xff, 0xff, 0xff]);
        let e = decode_block(&b, None).expect_err("oversized");
        assert_eq!(e.field, "output 0 script_pubkey", "{e}");
        assert!(e.reason.starts_with("needs 4294967295 bytes"), "{e}");
    }

    #[test]
    fn a_segwit_flag_without_witnesses_is_named() {
        let mut b = block1();
        let lock_time = b.len() - 4;
        b.insert(lock_time, 0x00); // input 0's witness: no items
        b.splice(85..85, [0x00, 0x01]);
        let e = decode_block(&b, None).expect_err("no witnesses");
        assert_eq!(e.field, "witnesses", "{e}");
        assert_eq!(e.offset, lock_time + 2);
    }

    #[test]
    fn a_bad_segwit_flag_is_named() {
        let mut b = block1();
        // tx 0: version, then marker 0 and flag 2
        b.splice(85..85, [0x00, 0x02]);
        let e = decode_block(&b, None).expect_err("flag");
        assert_eq!(e.field, "segwit flag", "{e}");
    }
}
