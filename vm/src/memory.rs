//! Paged memory with a lazily maintained Merkle tree (`docs/protocol.md` section 1.1).
//!
//! Stores only write bytes and mark their page dirty; nothing is hashed until a root or a proof is
//! asked for. Then only dirty pages are re-hashed (in parallel when there are many) and only the
//! tree nodes above them are recomputed, so the cost is proportional to the pages touched since the
//! last root, not to the address space.

use crate::hash::{hash_pair, zero_hash, Hash, MEMORY_DEPTH};
use crate::witness::MemoryProof;
use rayon::prelude::*;
use std::collections::HashMap;

/// Bytes per page: the unit of allocation and of dirty tracking.
pub const PAGE_SIZE: usize = 4096;
const PAGE_BITS: u32 = 12;
const PAGE_COUNT: usize = 1 << (32 - PAGE_BITS);
/// Height of the subtree over one page's 128 leaves.
const PAGE_DEPTH: usize = 7;
/// Levels of the tree above the page roots.
const UPPER_DEPTH: usize = MEMORY_DEPTH - PAGE_DEPTH;
/// Below this many dirty pages, hashing them on one thread is cheaper than waking the pool.
const PARALLEL_PAGES: usize = 32;

/// `repr(C)`: the block compiler's code reads `data` and `dirty` at fixed offsets.
#[derive(Clone)]
#[repr(C)]
pub(crate) struct Page {
    data: [u8; PAGE_SIZE],
    root: Hash,
    dirty: bool,
}

/// Offset of a page's bytes in [`Page`], for compiled loads and stores.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const PAGE_DATA_OFFSET: usize = std::mem::offset_of!(Page, data);
/// Offset of a page's dirty flag in [`Page`]: compiled stores write only to pages already dirty.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const PAGE_DIRTY_OFFSET: usize = std::mem::offset_of!(Page, dirty);

impl Page {
    fn zeroed() -> Box<Self> {
        Box::new(Self {
            data: [0; PAGE_SIZE],
            root: zero_hash(PAGE_DEPTH),
            dirty: true,
        })
    }
}

/// The machine's 4 GiB little-endian memory. Pages that were never written read as zero.
pub struct Memory {
    /// One slot per page; the array length lets the compiler drop bounds checks on `addr >> 12`.
    pages: Box<[Option<Box<Page>>; PAGE_COUNT]>,
    /// Page numbers allocated so far.
    present: Vec<u32>,
    /// Pages written since the last root.
    dirty: Vec<u32>,
    /// `upper[l - 1]` holds the non-zero nodes of level `l` (1..=20) above the page roots.
    upper: Vec<HashMap<u32, Hash>>,
    root: Hash,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Memory {{ pages_in_use: {} }}", self.pages_in_use())
    }
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            pages: empty_page_table(),
            present: Vec::new(),
            dirty: Vec::new(),
            upper: vec![HashMap::new(); UPPER_DEPTH],
            root: zero_hash(MEMORY_DEPTH),
        }
    }
}

/// Copies only the pages in use: the page table itself is fresh zeroed memory that the OS maps
/// lazily, so a checkpoint of a small program stays small.
impl Clone for Memory {
    fn clone(&self) -> Self {
        let mut pages = empty_page_table();
        for &pn in &self.present {
            pages[pn as usize] = self.pages[pn as usize].clone();
        }
        Self {
            pages,
            present: self.present.clone(),
            dirty: self.dirty.clone(),
            upper: self.upper.clone(),
            root: self.root,
        }
    }
}

fn empty_page_table() -> Box<[Option<Box<Page>>; PAGE_COUNT]> {
    // `vec![None; n]` of `Option<Box<_>>` is a zeroed allocation, not n writes.
    vec![None; PAGE_COUNT]
        .into_boxed_slice()
        .try_into()
        .unwrap_or_else(|_| unreachable!())
}

impl Memory {
    /// Reads `N` bytes at `addr`; `addr` must be `N`-aligned (the caller checked it).
    #[inline(always)]
    pub(crate) fn read<const N: usize>(&self, addr: u32) -> [u8; N] {
        debug_assert!(N.is_power_of_two() && N <= 32 && (addr as usize).is_multiple_of(N));
        match &self.pages[(addr >> PAGE_BITS) as usize] {
            Some(page) => {
                let off = addr as usize & (PAGE_SIZE - N);
                page.data[off..off + N].try_into().expect("N bytes")
            }
            None => [0; N],
        }
    }

    /// Writes `N` bytes at `addr`; `addr` must be `N`-aligned (the caller checked it).
    #[inline(always)]
    pub(crate) fn write<const N: usize>(&mut self, addr: u32, bytes: [u8; N]) {
        debug_assert!(N.is_power_of_two() && N <= 32 && (addr as usize).is_multiple_of(N));
        let page = self.page_mut(addr >> PAGE_BITS);
        let off = addr as usize & (PAGE_SIZE - N);
        page.data[off..off + N].copy_from_slice(&bytes);
    }

    /// Reads the aligned little-endian word at `addr`.
    #[inline(always)]
    pub fn read_word(&self, addr: u32) -> u32 {
        u32::from_le_bytes(self.read::<4>(addr))
    }

    #[inline(always)]
    fn page_mut(&mut self, pn: u32) -> &mut Page {
        let slot = &mut self.pages[pn as usize];
        match slot {
            Some(page) => {
                if !page.dirty {
                    page.dirty = true;
                    self.dirty.push(pn);
                }
            }
            None => {
                *slot = Some(Page::zeroed());
                self.present.push(pn);
                self.dirty.push(pn);
            }
        }
        slot.as_mut().expect("page just ensured")
    }

    /// Copies `bytes` to `addr..`, any alignment (used by the loader, not by instructions).
    pub fn write_bytes(&mut self, mut addr: u32, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let off = addr as usize % PAGE_SIZE;
            let n = bytes.len().min(PAGE_SIZE - off);
            self.page_mut(addr >> PAGE_BITS).data[off..off + n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            addr = addr.wrapping_add(n as u32);
        }
    }

    /// Reads `len` bytes from `addr..`, any alignment, wrapping at 4 GiB.
    pub fn read_bytes(&self, mut addr: u32, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let off = addr as usize % PAGE_SIZE;
            let n = (len - out.len()).min(PAGE_SIZE - off);
            match &self.pages[(addr >> PAGE_BITS) as usize] {
                Some(page) => out.extend_from_slice(&page.data[off..off + n]),
                None => out.resize(out.len() + n, 0),
            }
            addr = addr.wrapping_add(n as u32);
        }
        out
    }

    /// The page table as compiled code reads it: `PAGE_COUNT` nullable page pointers (the layout
    /// of `Option<Box<Page>>` is that of a pointer, null for `None`), indexed by `addr >> 12`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn page_table_ptr(&mut self) -> *mut Option<Box<Page>> {
        self.pages.as_mut_ptr()
    }

    /// Number of pages ever written.
    pub fn pages_in_use(&self) -> usize {
        self.present.len()
    }

    /// The Merkle root of the whole address space, re-hashing only what changed since the last call.
    pub fn merkle_root(&mut self) -> Hash {
        if self.dirty.is_empty() {
            return self.root;
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        let pages = &self.pages;
        let hash_one =
            |&pn: &u32| page_root(&pages[pn as usize].as_ref().expect("dirty page").data);
        let roots: Vec<Hash> = if dirty.len() >= PARALLEL_PAGES {
            dirty.par_iter().map(hash_one).collect()
        } else {
            dirty.iter().map(hash_one).collect()
        };
        for (&pn, root) in dirty.iter().zip(roots) {
            let page = self.pages[pn as usize].as_mut().expect("dirty page");
            page.root = root;
            page.dirty = false;
        }
        // Recompute the ancestors of the dirty pages, level by level.
        let mut indices = dirty;
        for level in 1..=UPPER_DEPTH {
            for i in indices.iter_mut() {
                *i >>= 1;
            }
            indices.dedup();
            for &i in &indices {
                let node = hash_pair(
                    &self.node(level - 1, 2 * i),
                    &self.node(level - 1, 2 * i + 1),
                );
                if node == zero_hash(PAGE_DEPTH + level) {
                    self.upper[level - 1].remove(&i);
                } else {
                    self.upper[level - 1].insert(i, node);
                }
            }
        }
        self.root = self.node(UPPER_DEPTH, 0);
        self.dirty = indices; // reuse the allocation
        self.dirty.clear();
        self.root
    }

    /// Node `index` of `level` above the page roots (level 0 = page roots). Valid after `merkle_root`.
    fn node(&self, level: usize, index: u32) -> Hash {
        if level == 0 {
            return match &self.pages[index as usize] {
                Some(page) => page.root,
                None => zero_hash(PAGE_DEPTH),
            };
        }
        self.upper[level - 1]
            .get(&index)
            .copied()
            .unwrap_or_else(|| zero_hash(PAGE_DEPTH + level))
    }

    /// The memory proof (leaf and 27 siblings) of the 32-byte leaf that holds `addr`.
    pub fn proof(&mut self, addr: u32) -> MemoryProof {
        self.merkle_root();
        let pn = addr >> PAGE_BITS;
        let leaf_in_page = (addr as usize % PAGE_SIZE) / 32;
        let mut path = [[0u8; 32]; MEMORY_DEPTH];
        let leaf = match &self.pages[pn as usize] {
            Some(page) => {
                let mut level: Vec<Hash> = leaves(&page.data).collect();
                let mut index = leaf_in_page;
                for sibling in path.iter_mut().take(PAGE_DEPTH) {
                    *sibling = level[index ^ 1];
                    level = level
                        .chunks_exact(2)
                        .map(|p| hash_pair(&p[0], &p[1]))
                        .collect();
                    index /= 2;
                }
                page.data[leaf_in_page * 32..leaf_in_page * 32 + 32]
                    .try_into()
                    .expect("32 bytes")
            }
            None => {
                for (h, sibling) in path.iter_mut().take(PAGE_DEPTH).enumerate() {
                    *sibling = zero_hash(h);
                }
                [0; 32]
            }
        };
        for level in 0..UPPER_DEPTH {
            path[PAGE_DEPTH + level] = self.node(level, (pn >> level) ^ 1);
        }
        MemoryProof { leaf, path }
    }
}

fn leaves(data: &[u8; PAGE_SIZE]) -> impl Iterator<Item = Hash> + '_ {
    data.chunks_exact(32)
        .map(|c| c.try_into().expect("32 bytes"))
}

/// Root of one page's 128 leaves; pairs of zero subtrees cost a comparison instead of a hash.
fn page_root(data: &[u8; PAGE_SIZE]) -> Hash {
    let mut level: [Hash; PAGE_SIZE / 64] = [[0; 32]; PAGE_SIZE / 64];
    let zero = [0u8; 64];
    for (node, pair) in level.iter_mut().zip(data.chunks_exact(64)) {
        *node = if pair == zero {
            zero_hash(1)
        } else {
            hash_pair(
                pair[..32].try_into().expect("32"),
                pair[32..].try_into().expect("32"),
            )
        };
    }
    let mut width = level.len();
    for h in 1..PAGE_DEPTH {
        for i in 0..width / 2 {
            let (l, r) = (level[2 * i], level[2 * i + 1]);
            level[i] = if l == zero_hash(h) && r == zero_hash(h) {
                zero_hash(h + 1)
            } else {
                hash_pair(&l, &r)
            };
        }
        width /= 2;
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::root_from_path;
    use rand::{Rng, SeedableRng};

    /// Reference root: the whole tree built from the list of non-zero leaves, no caching.
    fn reference_root(mem: &Memory) -> Hash {
        let mut level: HashMap<u64, Hash> = HashMap::new();
        for &pn in &mem.present {
            let page = mem.pages[pn as usize].as_ref().unwrap();
            for (i, leaf) in leaves(&page.data).enumerate() {
                if leaf != [0; 32] {
                    level.insert(u64::from(pn) * 128 + i as u64, leaf);
                }
            }
        }
        for h in 0..MEMORY_DEPTH {
            let mut next = HashMap::new();
            for &i in level.keys() {
                let get = |j: u64| level.get(&j).copied().unwrap_or_else(|| zero_hash(h));
                next.insert(i / 2, hash_pair(&get(i & !1), &get(i | 1)));
            }
            level = next;
        }
        level
            .get(&0)
            .copied()
            .unwrap_or_else(|| zero_hash(MEMORY_DEPTH))
    }

    #[test]
    fn empty_memory_root_is_zero_hash() {
        assert_eq!(Memory::default().merkle_root(), zero_hash(MEMORY_DEPTH));
    }

    #[test]
    fn incremental_root_matches_reference_after_random_writes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut mem = Memory::default();
        let regions = [0x1000u32, 0x1_0000, 0x7fff_f000, 0xffff_f000, 0x8000_0000];
        for round in 0..20 {
            for _ in 0..rng.gen_range(1..200) {
                let base = regions[rng.gen_range(0..regions.len())];
                let addr = base.wrapping_add(rng.gen_range(0..0x3000u32)) & !3;
                mem.write::<4>(addr, rng.gen::<u32>().to_le_bytes());
            }
            if round % 3 == 0 {
                // Writing zeros back must bring nodes back to the zero hashes.
                mem.write::<32>(0x1000, [0; 32]);
            }
            assert_eq!(mem.merkle_root(), reference_root(&mem), "round {round}");
        }
    }

    #[test]
    fn proofs_verify_against_root_for_present_and_absent_pages() {
        let mut mem = Memory::default();
        mem.write_bytes(
            0x1_0003,
            b"hello merkle memory, this spans leaves and pages",
        );
        mem.write::<4>(0x2fff_fffc, 0xdead_beefu32.to_le_bytes());
        let root = mem.merkle_root();
        for addr in [
            0x1_0000u32,
            0x1_0020,
            0x1_0fe0,
            0x2fff_ffe0,
            0x5000_0000,
            0xffff_ffe0,
            0,
        ] {
            let proof = mem.proof(addr);
            assert_eq!(
                proof.leaf.to_vec(),
                mem.read_bytes(addr & !31, 32),
                "{addr:#x}"
            );
            assert_eq!(
                root_from_path(&proof.leaf, u64::from(addr >> 5), &proof.path),
                root,
                "{addr:#x}"
            );
        }
    }

    #[test]
    fn clone_is_independent_and_keeps_roots() {
        let mut mem = Memory::default();
        mem.write_bytes(0x4000, &[1; 5000]);
        let root = mem.merkle_root();
        let mut copy = mem.clone();
        assert_eq!(copy.merkle_root(), root);
        copy.write::<1>(0x4000, [9]);
        assert_ne!(copy.merkle_root(), root);
        assert_eq!(mem.merkle_root(), root);
        assert_eq!(mem.read::<1>(0x4000), [1]);
    }

    #[test]
    fn read_and_write_widths() {
        let mut mem = Memory::default();
        mem.write::<4>(0x2000, 0x8070_6050u32.to_le_bytes());
        let cases: [(u32, Vec<u8>); 4] = [
            (0x2000, vec![0x50]),
            (0x2003, vec![0x80]),
            (0x2002, vec![0x70, 0x80]),
            (0x2004, vec![0]),
        ];
        for (addr, want) in cases {
            assert_eq!(mem.read_bytes(addr, want.len()), want, "{addr:#x}");
        }
        assert_eq!(mem.read::<2>(0x2002), [0x70, 0x80]);
        assert_eq!(mem.read_word(0x9000), 0);
    }
}
