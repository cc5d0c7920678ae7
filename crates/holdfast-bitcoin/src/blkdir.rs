//! A node's block directory (`blocks/blk*.dat`) as a chain: every framed block's header read
//! once (the bodies skipped), the headers linked by their `prev` hash from the network's
//! genesis, and the best chain chosen by accumulated work, as Core does — so the stale
//! blocks a node keeps after a reorg, and blocks not connected to the genesis, are never
//! given. Then [`BlocksDir::block_at`] reads one block of that chain by height, with a
//! positioned read of its frame.
//!
//! The files are in arrival order, not height order (blocks come out of order during a
//! node's initial download), so the whole directory is scanned before the first block is
//! given: while it is scanned, about 300 bytes of memory per block (the headers' map and the
//! children lists: a mainnet directory of 900,000 blocks, about 270 MB), then 48 per block of
//! the best chain; the headers' bytes are read (88 per block; the bodies skipped by seeking).
//! Read a directory of a node that is stopped, or one that is not writing (a copy): a block
//! being written may be cut short, and is then refused with the file and offset.
//!
//! The directory is trusted as the node's own: each header's work is taken as its `bits`
//! claim (proof of work is not checked: Litecoin's is scrypt, which this crate does not
//! carry), and blocks the node marked invalid are not known (its block index, a LevelDB,
//! is not read): a longer branch the node rejected would be taken. Compare the tip printed
//! with the node's `getbestblockhash`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bitcoin::BlockHash;
use bitcoin::block::Header;
use bitcoin::consensus::Decodable;
use bitcoin::pow::Work;

use crate::blkfile::MAX_BLOCK_BYTES;
use crate::block::{Block, BlockError};
use crate::network::Network;

/// Most `blk*.dat` files read (Core numbers them from `blk00000.dat`; mainnet has about
/// 5,000 today).
pub const MAX_FILES: usize = 100_000;

/// What a block directory cannot give.
#[derive(Debug, thiserror::Error)]
pub enum BlkDirError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{dir}: no blk*.dat files (expected a node's blocks directory, e.g. ~/.bitcoin/blocks)"
    )]
    Empty { dir: String },
    #[error("{dir}: more than {MAX_FILES} blk*.dat files")]
    TooManyFiles { dir: String },
    #[error(
        "{file}: byte {offset}: magic {found} is not a known network's (the directory's first file names the network: {expected})"
    )]
    Magic {
        file: String,
        offset: u64,
        expected: String,
        found: String,
    },
    #[error(
        "{file}: byte {offset}: frame length {length} is below a header's 80 bytes or above {MAX_BLOCK_BYTES}"
    )]
    Length {
        file: String,
        offset: u64,
        length: u32,
    },
    #[error("{file}: byte {offset}: the frame claims {length} bytes, the file ends before")]
    Truncated {
        file: String,
        offset: u64,
        length: u32,
    },
    #[error("{file}: byte {offset}: the block header does not decode: {reason}")]
    Header {
        file: String,
        offset: u64,
        reason: String,
    },
    #[error(
        "{file}: its first block {hash} is no known network's genesis block (the first block of blk00000.dat is the genesis)"
    )]
    UnknownGenesis { file: String, hash: String },
    #[error("height {height}: the best chain of the directory ends at height {tip}")]
    NoSuchHeight { height: u64, tip: u64 },
    #[error("{file}: byte {offset}: block at height {height}: {source}")]
    Block {
        file: String,
        offset: u64,
        height: u64,
        source: Box<BlockError>,
    },
}

/// Where one block's bytes are.
#[derive(Debug, Clone, Copy)]
struct Loc {
    file: u32,
    /// Of the block's bytes (after the 8-byte frame).
    offset: u64,
    length: u32,
}

/// The best chain of a block directory.
#[derive(Debug)]
pub struct BlocksDir {
    network: Network,
    files: Vec<PathBuf>,
    /// Height → the block's hash and place.
    chain: Vec<(BlockHash, Loc)>,
    /// Blocks framed in the files but not on the best chain (stale branches, duplicates,
    /// blocks whose parent is not in the directory).
    off_chain: usize,
}

/// The `blk*.dat` files of `dir`, in Core's numbering order.
fn blk_files(dir: &Path) -> Result<Vec<PathBuf>, BlkDirError> {
    let io = |source| BlkDirError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut files: Vec<(u32, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix("blk"))
            .and_then(|n| n.strip_suffix(".dat"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        files.push((n, entry.path()));
        if files.len() > MAX_FILES {
            return Err(BlkDirError::TooManyFiles {
                dir: dir.display().to_string(),
            });
        }
    }
    if files.is_empty() {
        return Err(BlkDirError::Empty {
            dir: dir.display().to_string(),
        });
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// One framed header read from a file: its place, and the decoded header.
struct Framed {
    loc: Loc,
    header: Header,
    magic: [u8; 4],
}

/// Reads the frames of one file, calling `f` with each header; the bodies are skipped.
fn scan_file(
    file_no: u32,
    path: &Path,
    f: &mut dyn FnMut(Framed) -> Result<(), BlkDirError>,
) -> Result<(), BlkDirError> {
    let name = path.display().to_string();
    let io = |source| BlkDirError::Io {
        path: name.clone(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut at = 0u64;
    let mut head = [0u8; 88];
    while at + 8 <= size {
        file.seek(SeekFrom::Start(at)).map_err(io)?;
        let want = usize::try_from((size - at).min(88)).unwrap_or(88);
        file.read_exact(&mut head[..want]).map_err(io)?;
        // Core preallocates files in chunks: zeros after the last block.
        if head[..8].iter().all(|b| *b == 0) {
            break;
        }
        let magic = [head[0], head[1], head[2], head[3]];
        let length = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if !(80..=MAX_BLOCK_BYTES).contains(&length) {
            return Err(BlkDirError::Length {
                file: name,
                offset: at + 4,
                length,
            });
        }
        if at + 8 + u64::from(length) > size || want < 88 {
            return Err(BlkDirError::Truncated {
                file: name,
                offset: at + 8,
                length,
            });
        }
        let header =
            Header::consensus_decode(&mut &head[8..88]).map_err(|e| BlkDirError::Header {
                file: name.clone(),
                offset: at + 8,
                reason: e.to_string(),
            })?;
        f(Framed {
            loc: Loc {
                file: file_no,
                offset: at + 8,
                length,
            },
            header,
            magic,
        })?;
        at += 8 + u64::from(length);
    }
    Ok(())
}

impl BlocksDir {
    /// Scans `dir` (a node's `blocks` directory): the network is the one whose genesis block
    /// opens `blk00000.dat` (magic and hash), and every frame of every file must carry its
    /// magic.
    pub fn open(dir: &Path) -> Result<BlocksDir, BlkDirError> {
        let files = blk_files(dir)?;
        let mut network: Option<Network> = None;
        // hash → (parent, place)
        let mut headers: HashMap<BlockHash, (BlockHash, Loc, Work)> = HashMap::new();
        let mut framed = 0usize;
        for (i, path) in files.iter().enumerate() {
            let file_no = u32::try_from(i).unwrap_or(u32::MAX);
            scan_file(file_no, path, &mut |h: Framed| {
                let hash = h.header.block_hash();
                let net = match network {
                    Some(n) => n,
                    None => {
                        let found = Network::ALL.into_iter().find(|n| {
                            n.magic() == h.magic && Network::from_genesis(&hash) == Some(*n)
                        });
                        let Some(n) = found else {
                            return Err(BlkDirError::UnknownGenesis {
                                file: path.display().to_string(),
                                hash: hash.to_string(),
                            });
                        };
                        network = Some(n);
                        n
                    }
                };
                if h.magic != net.magic() {
                    return Err(BlkDirError::Magic {
                        file: path.display().to_string(),
                        offset: h.loc.offset - 8,
                        expected: format!("{net}'s {}", hex::encode(net.magic())),
                        found: hex::encode(h.magic),
                    });
                }
                framed += 1;
                headers
                    .entry(hash)
                    .or_insert((h.header.prev_blockhash, h.loc, h.header.work()));
                Ok(())
            })?;
        }
        let Some(network) = network else {
            return Err(BlkDirError::Empty {
                dir: dir.display().to_string(),
            });
        };
        let chain = best_chain(network, &headers);
        Ok(BlocksDir {
            network,
            files,
            off_chain: framed - chain.len(),
            chain,
        })
    }

    pub fn network(&self) -> Network {
        self.network
    }

    /// Blocks on the best chain (heights `0..len`).
    pub fn len(&self) -> u64 {
        self.chain.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }

    /// Blocks framed in the files but not on the best chain.
    pub fn off_chain(&self) -> usize {
        self.off_chain
    }

    /// The hash of the best chain's block at `height`.
    pub fn hash_at(&self, height: u64) -> Option<BlockHash> {
        let i = usize::try_from(height).ok()?;
        self.chain.get(i).map(|(h, _)| *h)
    }

    /// The best chain's block at `height`, read and decoded (its commitments checked, as a
    /// block from a node is).
    pub fn block_at(&self, height: u64) -> Result<Block, BlkDirError> {
        let bytes = self.raw_block_at(height)?;
        let (_, loc) = self.chain[height as usize];
        Block::from_raw(self.network, &bytes, Some(height)).map_err(|e| BlkDirError::Block {
            file: self.files[loc.file as usize].display().to_string(),
            offset: loc.offset,
            height,
            source: Box::new(e),
        })
    }

    /// The bytes of the best chain's block at `height`.
    pub fn raw_block_at(&self, height: u64) -> Result<Vec<u8>, BlkDirError> {
        let Some((_, loc)) = usize::try_from(height)
            .ok()
            .and_then(|i| self.chain.get(i))
            .copied()
        else {
            return Err(BlkDirError::NoSuchHeight {
                height,
                tip: self.len().saturating_sub(1),
            });
        };
        let path = &self.files[loc.file as usize];
        let io = |source| BlkDirError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        file.seek(SeekFrom::Start(loc.offset)).map_err(io)?;
        let mut bytes = vec![0u8; loc.length as usize];
        file.read_exact(&mut bytes).map_err(io)?;
        Ok(bytes)
    }
}

/// The chain from `network`'s genesis to the tip with the most accumulated work among the
/// blocks connected to it (the first found of equal work, as Core keeps the first it saw).
fn best_chain(
    network: Network,
    headers: &HashMap<BlockHash, (BlockHash, Loc, Work)>,
) -> Vec<(BlockHash, Loc)> {
    let Ok(genesis) = network.genesis_hex().parse::<BlockHash>() else {
        return Vec::new();
    };
    if !headers.contains_key(&genesis) {
        return Vec::new();
    }
    let mut children: HashMap<BlockHash, Vec<BlockHash>> = HashMap::new();
    for (hash, (prev, _, _)) in headers {
        if *hash != genesis {
            children.entry(*prev).or_default().push(*hash);
        }
    }
    // Where a block is in the files: of equal work, the tip first in them wins.
    let place = |h: &BlockHash| {
        let (_, loc, _) = headers[h];
        (loc.file, loc.offset)
    };
    for list in children.values_mut() {
        list.sort_by_key(place);
    }
    // Accumulated work from the genesis, depth first without recursion.
    let mut best = (headers[&genesis].2, genesis);
    let mut stack = vec![(genesis, headers[&genesis].2)];
    while let Some((hash, work)) = stack.pop() {
        if work > best.0 || (work == best.0 && place(&hash) < place(&best.1)) {
            best = (work, hash);
        }
        if let Some(kids) = children.get(&hash) {
            for k in kids.iter().rev() {
                stack.push((*k, work + headers[k].2));
            }
        }
    }
    let mut chain = Vec::new();
    let mut at = best.1;
    loop {
        let (prev, loc, _) = headers[&at];
        chain.push((at, loc));
        if at == genesis {
            break;
        }
        at = prev;
    }
    chain.reverse();
    chain
}
