//! Byte encodings shared by the backends: order-preserving keys (big-endian integers, so
//! byte order is block order) and compact values.

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, AssetKind, BlockRef, Conversion, ConversionKind, Position};

use crate::StoreError;

/// Position bytes: calls (`0x00` + trace address as big-endian u16s) sort before logs
/// (`0x01` + log index + item), a call before its sub-calls: the order of [`Position`].
pub fn position(p: &Position, out: &mut Vec<u8>) {
    match p {
        Position::Call { trace_address } => {
            out.push(0);
            for a in trace_address {
                out.extend_from_slice(&a.to_be_bytes());
            }
        }
        Position::Log { log_index, item } => {
            out.push(1);
            out.extend_from_slice(&log_index.to_be_bytes());
            out.extend_from_slice(&item.to_be_bytes());
        }
    }
}

pub fn read_position(b: &[u8]) -> Result<Position, StoreError> {
    match b.split_first() {
        Some((0, rest)) if rest.len() % 2 == 0 => Ok(Position::Call {
            trace_address: rest
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect(),
        }),
        Some((1, rest)) if rest.len() == 6 => Ok(Position::Log {
            log_index: u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]),
            item: u16::from_be_bytes([rest[4], rest[5]]),
        }),
        _ => Err(corrupt("position")),
    }
}

pub fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// The smallest key above every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

/// A cursor over a stored value.
pub struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    pub fn take(&mut self, n: usize) -> Result<&[u8], StoreError> {
        if self.0.len() < n {
            return Err(corrupt("short value"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64, StoreError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    pub fn address(&mut self) -> Result<Address, StoreError> {
        Ok(Address::from_slice(self.take(20)?))
    }
    pub fn b256(&mut self) -> Result<B256, StoreError> {
        Ok(B256::from_slice(self.take(32)?))
    }
    /// A U256 stored as a length byte and its minimal big-endian bytes.
    pub fn amount(&mut self) -> Result<U256, StoreError> {
        let n = self.u8()? as usize;
        let b = self.take(n)?;
        U256::try_from_be_slice(b).ok_or_else(|| corrupt("amount"))
    }
    pub fn asset(&mut self) -> Result<Asset, StoreError> {
        let kind = AssetKind::from_u8(self.u8()?).ok_or_else(|| corrupt("asset kind"))?;
        let token = (kind != AssetKind::Native)
            .then(|| self.address())
            .transpose()?;
        let id = matches!(kind, AssetKind::Erc721 | AssetKind::Erc1155)
            .then(|| self.amount())
            .transpose()?;
        Asset::from_parts(kind, token, id).ok_or_else(|| corrupt("asset"))
    }
}

pub fn put_amount(v: U256, out: &mut Vec<u8>) {
    let bytes = v.to_be_bytes::<32>();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push((32 - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

pub fn put_asset(a: &Asset, out: &mut Vec<u8>) {
    out.push(a.kind() as u8);
    if let Some(t) = a.token() {
        out.extend_from_slice(t.as_slice());
    }
    if let Some(id) = a.token_id() {
        put_amount(id, out);
    }
}

pub fn block_value(b: &BlockRef) -> [u8; 72] {
    let mut v = [0u8; 72];
    v[..32].copy_from_slice(b.hash.as_slice());
    v[32..64].copy_from_slice(b.parent_hash.as_slice());
    v[64..].copy_from_slice(&b.timestamp.to_be_bytes());
    v
}

pub fn read_block(number: u64, v: &[u8]) -> Result<BlockRef, StoreError> {
    let mut r = Reader(v);
    Ok(BlockRef {
        number,
        hash: r.b256()?,
        parent_hash: r.b256()?,
        timestamp: r.u64()?,
    })
}

pub fn conversion_value(c: &Conversion, out: &mut Vec<u8>) {
    out.extend_from_slice(c.tx_hash.as_slice());
    out.push(match c.kind {
        ConversionKind::Wrap => 0,
        ConversionKind::Unwrap => 1,
        ConversionKind::UniswapV2Swap => 2,
    });
    out.extend_from_slice(c.venue.as_slice());
    out.extend_from_slice(c.account.as_slice());
    out.extend_from_slice(c.recipient.as_slice());
    put_asset(&c.asset_in, out);
    put_amount(c.amount_in, out);
    put_asset(&c.asset_out, out);
    put_amount(c.amount_out, out);
}

/// Decodes a conversion from its key suffix (block, tx index, log index) and value.
pub fn read_conversion(
    chain_id: u64,
    suffix: &[u8],
    value: &[u8],
    block_hash: B256,
) -> Result<Conversion, StoreError> {
    let mut k = Reader(suffix);
    let (block_number, tx_index, log_index) = (k.u64()?, k.u32()?, k.u32()?);
    let mut r = Reader(value);
    let tx_hash = r.b256()?;
    let kind = match r.u8()? {
        0 => ConversionKind::Wrap,
        1 => ConversionKind::Unwrap,
        2 => ConversionKind::UniswapV2Swap,
        _ => return Err(corrupt("conversion kind")),
    };
    Ok(Conversion {
        chain_id,
        block_number,
        block_hash,
        tx_hash,
        tx_index,
        log_index,
        kind,
        venue: r.address()?,
        account: r.address()?,
        recipient: r.address()?,
        asset_in: r.asset()?,
        amount_in: r.amount()?,
        asset_out: r.asset()?,
        amount_out: r.amount()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_bytes_sort_like_positions() {
        let call = |t: &[u16]| Position::Call {
            trace_address: t.to_vec(),
        };
        let log = |i, item| Position::Log { log_index: i, item };
        let mut ps = vec![
            log(3, 1),
            call(&[0, 1]),
            log(3, 0),
            call(&[]),
            call(&[0]),
            log(1, 0),
            call(&[1]),
            call(&[256]),
        ];
        let mut by_bytes = ps.clone();
        by_bytes.sort_by_key(|p| {
            let mut b = Vec::new();
            position(p, &mut b);
            b
        });
        ps.sort();
        assert_eq!(by_bytes, ps);
        for p in ps {
            let mut b = Vec::new();
            position(&p, &mut b);
            assert_eq!(read_position(&b).expect("decodes"), p);
        }
    }

    #[test]
    fn amounts_round_trip() {
        for v in [
            U256::ZERO,
            U256::from(1),
            U256::from(255),
            U256::from(256),
            U256::MAX,
        ] {
            let mut b = Vec::new();
            put_amount(v, &mut b);
            assert_eq!(Reader(&b).amount().expect("decodes"), v);
        }
    }
}
