//! Bitcoin Core's block files (`blocks/blk*.dat`): each block framed by the network's magic
//! and a little-endian length. [`BlkFile`] yields the framed blocks' bytes in file order
//! (which is arrival order, not height order); Core's zero padding at the end of a file ends
//! it. For backfilling from a node's directory without RPC, and for test data kept in this
//! format (btcd's).

use crate::network::Network;

/// Largest block a frame may claim: Bitcoin's 4,000,000 weight units bound a block to 4 MB.
pub const MAX_BLOCK_BYTES: u32 = 4_000_000;

/// A frame that is not a block of the expected network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("{file}: byte {offset}: magic {found} is not {network}'s {expected}")]
    Magic {
        file: String,
        offset: usize,
        network: Network,
        expected: String,
        found: String,
    },
    #[error("{file}: byte {offset}: frame length {length} exceeds {MAX_BLOCK_BYTES} bytes")]
    TooLong {
        file: String,
        offset: usize,
        length: u32,
    },
    #[error("{file}: byte {offset}: the frame claims {length} bytes, {left} left")]
    Truncated {
        file: String,
        offset: usize,
        length: u64,
        left: usize,
    },
}

/// The framed blocks of one file's bytes.
#[derive(Debug)]
pub struct BlkFile<'a> {
    name: String,
    bytes: &'a [u8],
    pos: usize,
    network: Network,
}

impl<'a> BlkFile<'a> {
    /// `name` only names the file in errors.
    pub fn new(name: impl Into<String>, bytes: &'a [u8], network: Network) -> Self {
        BlkFile {
            name: name.into(),
            bytes,
            pos: 0,
            network,
        }
    }
}

/// One framed block: its offset in the file (of the block's bytes, after the frame) and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub offset: usize,
    pub bytes: &'a [u8],
}

impl<'a> Iterator for BlkFile<'a> {
    type Item = Result<Frame<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.bytes[self.pos..];
        // Core preallocates files in chunks: zeros after the last block.
        if rest.iter().take(8).all(|b| *b == 0) {
            self.pos = self.bytes.len();
            return None;
        }
        let at = self.pos;
        let fail = |e| Some(Err(e));
        if rest.len() < 8 {
            self.pos = self.bytes.len();
            return fail(FrameError::Truncated {
                file: self.name.clone(),
                offset: at,
                length: 8,
                left: rest.len(),
            });
        }
        let magic = self.network.magic();
        if rest[..4] != magic {
            self.pos = self.bytes.len();
            return fail(FrameError::Magic {
                file: self.name.clone(),
                offset: at,
                network: self.network,
                expected: hex::encode(magic),
                found: hex::encode(&rest[..4]),
            });
        }
        let length = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if length > MAX_BLOCK_BYTES {
            self.pos = self.bytes.len();
            return fail(FrameError::TooLong {
                file: self.name.clone(),
                offset: at + 4,
                length,
            });
        }
        let body = &rest[8..];
        let Some(block) = body.get(..length as usize) else {
            self.pos = self.bytes.len();
            return fail(FrameError::Truncated {
                file: self.name.clone(),
                offset: at + 8,
                length: u64::from(length),
                left: body.len(),
            });
        };
        self.pos = at + 8 + length as usize;
        Some(Ok(Frame {
            offset: at + 8,
            bytes: block,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(network: Network, body: &[u8]) -> Vec<u8> {
        let mut v = network.magic().to_vec();
        v.extend_from_slice(&(body.len() as u32).to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn frames_then_padding() {
        let mut file = frame(Network::Bitcoin, b"abc");
        file.extend(frame(Network::Bitcoin, b"de"));
        file.extend([0u8; 100]);
        let frames: Vec<_> = BlkFile::new("f", &file, Network::Bitcoin)
            .collect::<Result<_, _>>()
            .expect("frames");
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[1].offset, frames[1].bytes), (19, &b"de"[..]));
    }

    #[test]
    fn wrong_magic_truncation_and_huge_lengths_are_errors_naming_the_offset() {
        let file = frame(Network::Litecoin, b"abc");
        let e = BlkFile::new("blk00000.dat", &file, Network::Bitcoin)
            .next()
            .expect("one")
            .expect_err("magic");
        assert!(
            e.to_string()
                .starts_with("blk00000.dat: byte 0: magic fbc0b6db"),
            "{e}"
        );

        let mut file = frame(Network::Bitcoin, b"abcdef");
        file.truncate(10);
        let mut it = BlkFile::new("f", &file, Network::Bitcoin);
        assert!(matches!(
            it.next(),
            Some(Err(FrameError::Truncated { left: 2, .. }))
        ));
        assert_eq!(it.next(), None);

        let mut file = Network::Bitcoin.magic().to_vec();
        file.extend(u32::MAX.to_le_bytes());
        let e = BlkFile::new("f", &file, Network::Bitcoin).next();
        assert!(matches!(e, Some(Err(FrameError::TooLong { .. }))));
    }
}
