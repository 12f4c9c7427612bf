//! Tensor commitments, the input slots a kernel reads, and the output accumulator it appends to
//! (`docs/protocol.md` sections 1.2 to 1.5).

use crate::hash::{ceil_log2, hash_pair, keccak256, zero_hash, Hash, MEMORY_DEPTH};
use crate::lanes::hash_blocks;
use crate::state::Fault;
use crate::witness::{AccumulatorSnapshot, ChunkProof, InputProof};
use std::sync::{Arc, OnceLock};

/// Number of input slots of a run.
pub const INPUT_SLOTS: usize = 16;
/// Height of the input-root tree over the slots.
pub const INPUT_DEPTH: usize = 4;
/// Frontier entries of the output accumulator.
pub const OUTPUT_DEPTH: usize = MEMORY_DEPTH;
/// Most chunks the output accumulator takes.
pub const OUTPUT_MAX_CHUNKS: u32 = (1 << OUTPUT_DEPTH) - 1;
/// Longest tensor header.
pub const MAX_HEADER_LEN: usize = 1024;

/// Errors building an input tensor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The header is shorter than its 4-byte length field or longer than [`MAX_HEADER_LEN`].
    #[error("tensor header is {0} bytes; it must be 4..={MAX_HEADER_LEN}")]
    HeaderLength(usize),
    /// The header's length field disagrees with the data.
    #[error("tensor header declares {declared} bytes but the data has {actual}")]
    LengthMismatch {
        /// Byte length in the header.
        declared: u32,
        /// Length of the data given.
        actual: usize,
    },
    /// A slot number of 16 or more.
    #[error("input slot {0} does not exist (slots are 0..16)")]
    Slot(usize),
}

/// The levels of the Merkle tree over `bytes` cut into zero-padded 32-byte chunks: `levels[0]` are
/// the chunks, the last level is the single root. Empty for empty data.
fn chunk_tree(bytes: &[u8]) -> Vec<Vec<Hash>> {
    let chunks: Vec<Hash> = bytes
        .chunks(32)
        .map(|c| {
            let mut chunk = [0u8; 32];
            chunk[..c.len()].copy_from_slice(c);
            chunk
        })
        .collect();
    if chunks.is_empty() {
        return Vec::new();
    }
    let mut levels = vec![chunks];
    while levels.last().expect("non-empty").len() > 1 {
        let h = levels.len() - 1;
        let level = levels.last().expect("non-empty");
        let next = level
            .chunks(2)
            .map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(&zero_hash(h))))
            .collect();
        levels.push(next);
    }
    levels
}

/// Data root of a byte string: the Merkle root of its 32-byte chunks padded to a power of two.
///
/// The root of [`chunk_tree`] without its levels: hashed straight from the bytes (no copy into
/// chunks), subtrees of more than [`PARALLEL_BYTES`] on rayon's threads, since a submitter commits
/// to every node output of every inference.
pub fn data_root(bytes: &[u8]) -> Hash {
    if bytes.is_empty() {
        return [0; 32];
    }
    subtree_root(bytes, ceil_log2(bytes.len().div_ceil(32) as u64) as usize)
}

/// Bytes above which [`data_root`] splits a subtree over two threads (about 0.1 ms of hashing,
/// far above what a rayon join costs).
const PARALLEL_BYTES: usize = 1 << 18;

/// Root of the height-`height` subtree whose leaves are the zero-padded 32-byte chunks of `bytes`
/// (at most `2^height` chunks).
fn subtree_root(bytes: &[u8], height: usize) -> Hash {
    if bytes.is_empty() {
        return zero_hash(height);
    }
    if height == 0 {
        let mut chunk = [0u8; 32];
        chunk[..bytes.len()].copy_from_slice(bytes);
        return chunk;
    }
    if bytes.len() <= PARALLEL_BYTES {
        return sequential_root(bytes, height);
    }
    let half = 32 << (height - 1);
    let (left, right) = bytes.split_at(half.min(bytes.len()));
    let (l, r) = rayon::join(
        || subtree_root(left, height - 1),
        || subtree_root(right, height - 1),
    );
    hash_pair(&l, &r)
}

/// [`subtree_root`] on one thread, `height >= 1`: the first level straight from 64-byte pairs of
/// chunks, each level many pairs at a time ([`hash_blocks`]).
fn sequential_root(bytes: &[u8], height: usize) -> Hash {
    let whole = bytes.len() / 64 * 64;
    let mut level = Vec::with_capacity(bytes.len().div_ceil(64));
    hash_blocks(&bytes[..whole], &mut level);
    if whole < bytes.len() {
        let mut last = [0u8; 64];
        last[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
        hash_blocks(&last, &mut level);
    }
    for h in 1..height {
        if level.len() % 2 == 1 {
            level.push(zero_hash(h));
        }
        let mut next = Vec::with_capacity(level.len() / 2);
        hash_blocks(level.as_flattened(), &mut next);
        level = next;
    }
    level[0]
}

/// Tensor commitment: `keccak(header ‖ data_root)`.
pub fn tensor_commitment(header: &[u8], data_root: &Hash) -> Hash {
    keccak256(&[header, data_root].concat())
}

/// One input tensor: its opaque header (starting with the byte length) and its bytes.
#[derive(Debug)]
pub struct InputTensor {
    header: Vec<u8>,
    data: Vec<u8>,
    data_root: Hash,
    commitment: Hash,
    tree: OnceLock<Vec<Vec<Hash>>>,
}

impl InputTensor {
    /// A tensor with a header from the DNN layer; the header's first 4 bytes must be `data.len()`.
    pub fn new(header: Vec<u8>, data: Vec<u8>) -> Result<Self, InputError> {
        if header.len() < 4 || header.len() > MAX_HEADER_LEN {
            return Err(InputError::HeaderLength(header.len()));
        }
        let declared = u32::from_be_bytes(header[..4].try_into().expect("4 bytes"));
        if declared as usize != data.len() {
            return Err(InputError::LengthMismatch {
                declared,
                actual: data.len(),
            });
        }
        let data_root = data_root(&data);
        let commitment = tensor_commitment(&header, &data_root);
        Ok(Self {
            header,
            data,
            data_root,
            commitment,
            tree: OnceLock::new(),
        })
    }

    /// Plain bytes with the minimal header (just the length), for programs with no tensor types.
    pub fn from_bytes(data: Vec<u8>) -> Self {
        let header = (data.len() as u32).to_be_bytes().to_vec();
        Self::new(header, data).expect("minimal header is consistent")
    }

    /// `keccak(header ‖ data_root)`.
    pub fn commitment(&self) -> Hash {
        self.commitment
    }

    /// Number of 32-byte chunks.
    pub fn chunk_count(&self) -> u32 {
        self.data.len().div_ceil(32) as u32
    }

    /// Chunk `index`, zero-padded past the end of the data.
    pub fn chunk(&self, index: u32) -> Option<[u8; 32]> {
        let start = index as usize * 32;
        let bytes = self
            .data
            .get(start..)?
            .get(..32.min(self.data.len().saturating_sub(start)))?;
        if bytes.is_empty() {
            return None;
        }
        let mut chunk = [0u8; 32];
        chunk[..bytes.len()].copy_from_slice(bytes);
        Some(chunk)
    }

    /// The siblings of chunk `index` in the data root's tree, bottom up (empty for one chunk).
    pub fn chunk_path(&self, index: u32) -> Vec<Hash> {
        let tree = self.tree.get_or_init(|| chunk_tree(&self.data));
        let depth = ceil_log2(u64::from(self.chunk_count())) as usize;
        (0..depth)
            .map(|h| {
                let sibling = (index as usize >> h) ^ 1;
                tree[h]
                    .get(sibling)
                    .copied()
                    .unwrap_or_else(|| zero_hash(h))
            })
            .collect()
    }
}

/// The 16 input slots of a run. Cheap to clone: tensors are shared.
#[derive(Debug, Clone, Default)]
pub struct InputSlots {
    slots: [Option<Arc<InputTensor>>; INPUT_SLOTS],
}

impl InputSlots {
    /// Puts `tensor` in slot `slot`.
    pub fn set(&mut self, slot: usize, tensor: InputTensor) -> Result<(), InputError> {
        *self.slots.get_mut(slot).ok_or(InputError::Slot(slot))? = Some(Arc::new(tensor));
        Ok(())
    }

    /// The tensor in `slot`, if any.
    pub fn get(&self, slot: u32) -> Option<&InputTensor> {
        self.slots.get(slot as usize)?.as_deref()
    }

    fn leaves(&self) -> [Hash; INPUT_SLOTS] {
        self.slots
            .each_ref()
            .map(|s| s.as_ref().map_or([0; 32], |t| t.commitment))
    }

    /// Root of the depth-4 tree over the slots' commitments (zero for empty slots).
    pub fn root(&self) -> Hash {
        let mut level = self.leaves().to_vec();
        while level.len() > 1 {
            level = level
                .chunks_exact(2)
                .map(|p| hash_pair(&p[0], &p[1]))
                .collect();
        }
        level[0]
    }

    /// Chunk `index` of `slot`, or the fault `read_chunk` raises.
    pub(crate) fn chunk(&self, slot: u32, index: u32) -> Result<[u8; 32], Fault> {
        self.get(slot)
            .and_then(|t| t.chunk(index))
            .ok_or(Fault::InputOutOfRange)
    }

    /// The input proof of `read_chunk(slot, index)` for `slot < 16`.
    pub(crate) fn proof(&self, slot: u32, index: u32) -> InputProof {
        let mut level = self.leaves().to_vec();
        let mut slot_path = [[0u8; 32]; INPUT_DEPTH];
        let mut i = slot as usize;
        for sibling in slot_path.iter_mut() {
            *sibling = level[i ^ 1];
            level = level
                .chunks_exact(2)
                .map(|p| hash_pair(&p[0], &p[1]))
                .collect();
            i /= 2;
        }
        match self.get(slot) {
            None => InputProof {
                header: Vec::new(),
                data_root: [0; 32],
                slot_path,
                chunk: None,
            },
            Some(t) => InputProof {
                header: t.header.clone(),
                data_root: t.data_root,
                slot_path,
                chunk: t.chunk(index).map(|chunk| ChunkProof {
                    chunk,
                    path: t.chunk_path(index),
                }),
            },
        }
    }
}

/// The output accumulator. Appends only store the chunk; the frontier is brought up to date when a
/// hash is asked for, so the fast interpreter never hashes.
#[derive(Debug, Clone)]
pub struct OutputAccumulator {
    chunks: Vec<[u8; 32]>,
    frontier: [Hash; OUTPUT_DEPTH],
    /// How many of `chunks` the frontier includes.
    folded: usize,
}

impl Default for OutputAccumulator {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            frontier: [[0; 32]; OUTPUT_DEPTH],
            folded: 0,
        }
    }
}

impl OutputAccumulator {
    /// Appends one chunk, or faults when full.
    pub(crate) fn append(&mut self, chunk: [u8; 32]) -> Result<(), Fault> {
        if self.chunks.len() >= OUTPUT_MAX_CHUNKS as usize {
            return Err(Fault::OutputFull);
        }
        self.chunks.push(chunk);
        Ok(())
    }

    /// The accumulator that a run emitting `bytes` (in 32-byte chunks, the last zero-padded) ends
    /// with; what a claim about a run's output must match.
    pub fn from_output(bytes: &[u8]) -> Result<Self, Fault> {
        let mut acc = Self::default();
        for chunk in bytes.chunks(32) {
            let mut padded = [0u8; 32];
            padded[..chunk.len()].copy_from_slice(chunk);
            acc.append(padded)?;
        }
        Ok(acc)
    }

    /// Chunks appended so far.
    pub fn count(&self) -> u32 {
        self.chunks.len() as u32
    }

    /// The output bytes (whole chunks).
    pub fn bytes(&self) -> Vec<u8> {
        self.chunks.concat()
    }

    /// `count ‖ frontier`, with the frontier folded up to date.
    pub fn snapshot(&mut self) -> AccumulatorSnapshot {
        while self.folded < self.chunks.len() {
            let mut node = self.chunks[self.folded];
            self.folded += 1;
            let mut size = self.folded;
            for h in 0..OUTPUT_DEPTH {
                if size & 1 == 1 {
                    self.frontier[h] = node;
                    break;
                }
                node = hash_pair(&self.frontier[h], &node);
                size >>= 1;
            }
        }
        AccumulatorSnapshot {
            count: self.count(),
            frontier: self.frontier,
        }
    }

    /// Hash of the accumulator, as held in the state.
    pub fn hash(&mut self) -> Hash {
        self.snapshot().hash()
    }
}

impl AccumulatorSnapshot {
    /// `keccak(count ‖ frontier)`.
    pub fn hash(&self) -> Hash {
        keccak256(&self.encode())
    }

    /// The data root of the chunks appended (section 1.5), equal to [`data_root`] of their bytes.
    pub fn data_root(&self) -> Hash {
        if self.count == 0 {
            return [0; 32];
        }
        let d = ceil_log2(u64::from(self.count)) as usize;
        if self.count == 1 << d {
            return self.frontier[d];
        }
        let mut node = [0u8; 32];
        let mut size = self.count;
        for h in 0..d {
            node = if size & 1 == 1 {
                hash_pair(&self.frontier[h], &node)
            } else {
                hash_pair(&node, &zero_hash(h))
            };
            size >>= 1;
        }
        node
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::root_from_path;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    /// The direct, parallel root equals the root of the whole chunk tree, at every length where
    /// the padding, the first level or the parallel split changes.
    #[test]
    fn data_root_equals_the_chunk_tree_root() {
        let p = PARALLEL_BYTES;
        for n in [
            1,
            31,
            32,
            33,
            63,
            64,
            65,
            96,
            1000,
            p - 1,
            p,
            p + 1,
            p + 33,
            2 * p,
            3 * p + 5,
            16 * p + 64,
        ] {
            let data = bytes(n);
            let tree = chunk_tree(&data);
            assert_eq!(data_root(&data), tree.last().unwrap()[0], "{n} bytes");
        }
        assert_eq!(data_root(&[]), [0; 32]);
    }

    #[test]
    fn data_root_small_cases() {
        assert_eq!(data_root(&[]), [0; 32]);
        let mut one = [0u8; 32];
        one[..3].copy_from_slice(&[1, 2, 3]);
        assert_eq!(data_root(&[1, 2, 3]), one, "one chunk is its own root");
        let b = bytes(64);
        let two = hash_pair(b[..32].try_into().unwrap(), b[32..].try_into().unwrap());
        assert_eq!(data_root(&b), two);
    }

    /// The accumulator finishes on exactly the data root of the bytes, for many sizes.
    #[test]
    fn accumulator_root_equals_data_root() {
        for n in (0..=70).chain([127, 128, 129, 255, 256, 257, 1000, 1024, 1025]) {
            let data = bytes(n * 32);
            let mut acc = OutputAccumulator::default();
            for c in data.chunks(32) {
                acc.append(c.try_into().unwrap()).unwrap();
            }
            assert_eq!(acc.snapshot().data_root(), data_root(&data), "{n} chunks");
        }
    }

    /// An accumulator rebuilt from output bytes (odd lengths padded) is the one the chunks make, and
    /// each chunk's path leads to the data root.
    #[test]
    fn accumulator_from_output_and_chunk_paths() {
        for len in [0usize, 1, 31, 32, 33, 95, 96, 300] {
            let data = bytes(len);
            let mut acc = OutputAccumulator::from_output(&data).unwrap();
            assert_eq!(acc.snapshot().data_root(), data_root(&data), "{len} bytes");
            let tensor = InputTensor::from_bytes(data.clone());
            for index in 0..tensor.chunk_count() {
                let mut node = tensor.chunk(index).unwrap();
                for (h, sibling) in tensor.chunk_path(index).iter().enumerate() {
                    node = if (index >> h) & 1 == 1 {
                        hash_pair(sibling, &node)
                    } else {
                        hash_pair(&node, sibling)
                    };
                }
                assert_eq!(node, data_root(&data), "{len} bytes, chunk {index}");
            }
        }
    }

    #[test]
    fn accumulator_hash_is_independent_of_when_it_is_folded() {
        let mut eager = OutputAccumulator::default();
        let mut lazy = OutputAccumulator::default();
        for i in 0..37u8 {
            eager.append([i; 32]).unwrap();
            eager.hash();
            lazy.append([i; 32]).unwrap();
        }
        assert_eq!(eager.hash(), lazy.hash());
    }

    #[test]
    fn input_proofs_verify() {
        let mut slots = InputSlots::default();
        for (slot, len) in [(0usize, 1usize), (2, 95), (5, 32 * 9), (15, 0)] {
            slots
                .set(slot, InputTensor::from_bytes(bytes(len)))
                .unwrap();
        }
        let root = slots.root();
        for slot in 0..16u32 {
            let tensor = slots.get(slot);
            let n = tensor.map_or(0, |t| t.chunk_count());
            for index in [0, 1, 2, 8, 9] {
                let p = slots.proof(slot, index);
                let leaf = if p.header.is_empty() {
                    [0; 32]
                } else {
                    tensor_commitment(&p.header, &p.data_root)
                };
                assert_eq!(root_from_path(&leaf, u64::from(slot), &p.slot_path), root);
                assert_eq!(p.chunk.is_some(), index < n, "slot {slot} chunk {index}");
                if let Some(c) = p.chunk {
                    assert_eq!(
                        root_from_path(&c.chunk, u64::from(index), &c.path),
                        p.data_root
                    );
                    assert_eq!(Ok(c.chunk), slots.chunk(slot, index));
                }
            }
        }
    }

    #[test]
    fn input_errors() {
        let cases = [
            (vec![0, 0, 0], vec![], InputError::HeaderLength(3)),
            (
                vec![0, 0, 0, 5],
                vec![1, 2],
                InputError::LengthMismatch {
                    declared: 5,
                    actual: 2,
                },
            ),
        ];
        for (header, data, want) in cases {
            assert_eq!(InputTensor::new(header, data).unwrap_err(), want);
        }
        let mut slots = InputSlots::default();
        assert_eq!(
            slots.set(16, InputTensor::from_bytes(vec![])),
            Err(InputError::Slot(16))
        );
    }
}
