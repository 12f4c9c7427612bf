//! Keccak-256, the one hash of the protocol, and the Merkle primitives built on it.

use std::sync::LazyLock;

/// A 32-byte keccak-256 digest or Merkle node.
pub type Hash = [u8; 32];

/// Height of the memory tree: 2^27 leaves of 32 bytes cover the 4 GiB address space.
pub const MEMORY_DEPTH: usize = 27;

/// keccak-256 of `data` (the EVM's `keccak256`).
pub fn keccak256(data: &[u8]) -> Hash {
    use sha3::Digest;
    sha3::Keccak256::digest(data).into()
}

/// `keccak256(left ‖ right)`: one Merkle node. Absorbs the 64 bytes straight into the sponge, which
/// makes it several times cheaper than going through a streaming hasher.
#[inline]
pub fn hash_pair(left: &Hash, right: &Hash) -> Hash {
    let mut lanes = [0u64; 25];
    for (i, chunk) in left
        .chunks_exact(8)
        .chain(right.chunks_exact(8))
        .enumerate()
    {
        lanes[i] = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
    }
    // keccak padding for a 64-byte message in a 136-byte block: 0x01 after the data, 0x80 at the end.
    lanes[8] ^= 0x01;
    lanes[16] ^= 0x80 << 56;
    keccak::f1600(&mut lanes);
    let mut out = [0u8; 32];
    for (i, lane) in lanes[..4].iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&lane.to_le_bytes());
    }
    out
}

static ZERO_HASHES: LazyLock<[Hash; 33]> = LazyLock::new(|| {
    let mut zeros = [[0u8; 32]; 33];
    for k in 1..zeros.len() {
        zeros[k] = hash_pair(&zeros[k - 1], &zeros[k - 1]);
    }
    zeros
});

/// Root of a subtree of height `height` whose leaves are all zero (`Z[height]` in the protocol).
#[inline]
pub fn zero_hash(height: usize) -> Hash {
    ZERO_HASHES[height]
}

/// Recomputes a Merkle root from a leaf, its index and its sibling path (bottom to top).
pub fn root_from_path(leaf: &Hash, index: u64, path: &[Hash]) -> Hash {
    let mut node = *leaf;
    for (k, sibling) in path.iter().enumerate() {
        node = if (index >> k) & 1 == 0 {
            hash_pair(&node, sibling)
        } else {
            hash_pair(sibling, &node)
        };
    }
    node
}

/// `ceil(log2(n))` for `n >= 1`: the depth of the smallest power-of-two tree holding `n` leaves.
pub fn ceil_log2(n: u64) -> u32 {
    debug_assert!(n >= 1);
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha3::{Digest, Keccak256};

    #[test]
    fn hash_pair_matches_streaming_keccak() {
        let cases: [(Hash, Hash); 3] = [([0; 32], [0; 32]), ([0xff; 32], [1; 32]), {
            let mut a = [0u8; 32];
            let mut b = [0u8; 32];
            for i in 0..32 {
                a[i] = i as u8;
                b[i] = 200 - i as u8;
            }
            (a, b)
        }];
        for (a, b) in cases {
            let mut h = Keccak256::new();
            h.update(a);
            h.update(b);
            let want: Hash = h.finalize().into();
            assert_eq!(hash_pair(&a, &b), want);
        }
    }

    #[test]
    fn keccak_of_empty_is_the_evm_constant() {
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn ceil_log2_table() {
        for (n, want) in [
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (8, 3),
            (9, 4),
            (1 << 27, 27),
        ] {
            assert_eq!(ceil_log2(n), want, "n = {n}");
        }
    }

    #[test]
    fn root_from_path_of_zero_leaf_is_zero_hash() {
        let path: Vec<Hash> = (0..MEMORY_DEPTH).map(zero_hash).collect();
        assert_eq!(
            root_from_path(&[0; 32], 12345, &path),
            zero_hash(MEMORY_DEPTH)
        );
    }
}
