//! Many Merkle nodes at once: keccak-f[1600] on `N` independent states side by side, so that the
//! compiler keeps each lane of the `N` states in one SIMD register (8 states in an AVX-512
//! register, 4 in AVX2). A tensor's data root hashes tens of thousands of 64-byte pairs, all
//! independent within a level; hashed 8 at a time they cost a fraction of 8 single permutations.
//!
//! The permutation is FIPS 202's, written over arrays of lanes; a test holds it to
//! `keccak::f1600` (the one [`crate::hash::hash_pair`] uses) on random states, for every width.

use crate::hash::Hash;

/// Round constants of keccak-f[1600] (iota).
const RC: [u64; 24] = [
    0x0000_0000_0000_0001,
    0x0000_0000_0000_8082,
    0x8000_0000_0000_808a,
    0x8000_0000_8000_8000,
    0x0000_0000_0000_808b,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8009,
    0x0000_0000_0000_008a,
    0x0000_0000_0000_0088,
    0x0000_0000_8000_8009,
    0x0000_0000_8000_000a,
    0x0000_0000_8000_808b,
    0x8000_0000_0000_008b,
    0x8000_0000_0000_8089,
    0x8000_0000_0000_8003,
    0x8000_0000_0000_8002,
    0x8000_0000_0000_0080,
    0x0000_0000_0000_800a,
    0x8000_0000_8000_000a,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8080,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8008,
];

/// Rotation of each lane along the rho-pi walk.
const RHO: [u32; 24] = [
    1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44,
];

/// The rho-pi walk: the lane each step moves to.
const PI: [usize; 24] = [
    10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1,
];

/// One lane of `N` keccak states side by side: the three operations keccak-f needs.
trait Lanes: Copy {
    /// `self ^ other`.
    fn xor(self, other: Self) -> Self;
    /// `self ^ (!b & c)`: chi.
    fn xor_andnot(self, b: Self, c: Self) -> Self;
    /// Each lane rotated left by `n` (1..64).
    fn rotl(self, n: u32) -> Self;
    /// `x` in every state.
    fn splat(x: u64) -> Self;
}

impl Lanes for u64 {
    #[inline(always)]
    fn xor(self, other: Self) -> Self {
        self ^ other
    }
    #[inline(always)]
    fn xor_andnot(self, b: Self, c: Self) -> Self {
        self ^ (!b & c)
    }
    #[inline(always)]
    fn rotl(self, n: u32) -> Self {
        self.rotate_left(n)
    }
    #[inline(always)]
    fn splat(x: u64) -> Self {
        x
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes;
    use std::arch::x86_64::*;

    /// Eight states in one AVX-512 register. Only built inside `avx512f` functions.
    #[derive(Clone, Copy)]
    pub(super) struct X8(pub(super) __m512i);

    impl Lanes for X8 {
        #[inline(always)]
        fn xor(self, other: Self) -> Self {
            // SAFETY: an `X8` exists only in code compiled for and run on AVX-512F.
            Self(unsafe { _mm512_xor_si512(self.0, other.0) })
        }
        #[inline(always)]
        fn xor_andnot(self, b: Self, c: Self) -> Self {
            // a ^ (!b & c) as one ternary-logic instruction (truth table 0xd2). SAFETY: as above.
            Self(unsafe { _mm512_ternarylogic_epi64::<0xd2>(self.0, b.0, c.0) })
        }
        #[inline(always)]
        fn rotl(self, n: u32) -> Self {
            // SAFETY: as above.
            Self(unsafe { _mm512_rolv_epi64(self.0, _mm512_set1_epi64(i64::from(n))) })
        }
        #[inline(always)]
        fn splat(x: u64) -> Self {
            // SAFETY: as above.
            Self(unsafe { _mm512_set1_epi64(x as i64) })
        }
    }

    /// Four states in one AVX2 register. Only built inside `avx2` functions.
    #[derive(Clone, Copy)]
    pub(super) struct X4(pub(super) __m256i);

    impl Lanes for X4 {
        #[inline(always)]
        fn xor(self, other: Self) -> Self {
            // SAFETY: an `X4` exists only in code compiled for and run on AVX2.
            Self(unsafe { _mm256_xor_si256(self.0, other.0) })
        }
        #[inline(always)]
        fn xor_andnot(self, b: Self, c: Self) -> Self {
            // SAFETY: as above.
            Self(unsafe { _mm256_xor_si256(self.0, _mm256_andnot_si256(b.0, c.0)) })
        }
        #[inline(always)]
        fn rotl(self, n: u32) -> Self {
            // SAFETY: as above.
            Self(unsafe {
                _mm256_or_si256(
                    _mm256_sll_epi64(self.0, _mm_cvtsi32_si128(n as i32)),
                    _mm256_srl_epi64(self.0, _mm_cvtsi32_si128(64 - n as i32)),
                )
            })
        }
        #[inline(always)]
        fn splat(x: u64) -> Self {
            // SAFETY: as above.
            Self(unsafe { _mm256_set1_epi64x(x as i64) })
        }
    }
}

/// keccak-f[1600] on the states held side by side in `state`'s lanes.
#[inline(always)]
fn f1600<L: Lanes>(state: &mut [L; 25]) {
    for rc in RC {
        // Theta.
        let c: [L; 5] = std::array::from_fn(|x| {
            state[x]
                .xor(state[x + 5])
                .xor(state[x + 10])
                .xor(state[x + 15])
                .xor(state[x + 20])
        });
        for x in 0..5 {
            let d = c[(x + 4) % 5].xor(c[(x + 1) % 5].rotl(1));
            for y in 0..5 {
                state[5 * y + x] = state[5 * y + x].xor(d);
            }
        }
        // Rho and pi.
        let mut last = state[1];
        for (&to, &rho) in PI.iter().zip(&RHO) {
            let moved = state[to];
            state[to] = last.rotl(rho);
            last = moved;
        }
        // Chi.
        for y in (0..25).step_by(5) {
            let row: [L; 5] = std::array::from_fn(|x| state[y + x]);
            for x in 0..5 {
                state[y + x] = row[x].xor_andnot(row[(x + 1) % 5], row[(x + 2) % 5]);
            }
        }
        // Iota.
        state[0] = state[0].xor(L::splat(rc));
    }
}

/// keccak-256 of each 64-byte block of `blocks` (whose length is a multiple of 64) into `out`,
/// `N` blocks per permutation: `out[i]` = `hash_pair` of block `i`'s halves. `load` builds a
/// lane from `N` words, `store` splits one.
#[inline(always)]
fn hash_blocks_n<L: Lanes, const N: usize>(
    blocks: &[u8],
    out: &mut Vec<Hash>,
    load: impl Fn([u64; N]) -> L,
    store: impl Fn(L) -> [u64; N],
) {
    // The last blocks fill a group with zeros: one permutation of `N` beats up to `N - 1` single ones.
    let whole = blocks.len() / (64 * N) * (64 * N);
    let rest = &blocks[whole..];
    let mut padded = Vec::new();
    if !rest.is_empty() {
        padded = vec![0u8; 64 * N];
        padded[..rest.len()].copy_from_slice(rest);
    }
    let groups = blocks[..whole]
        .chunks_exact(64 * N)
        .map(|g| (g, N))
        .chain(padded.chunks_exact(64 * N).map(|g| (g, rest.len() / 64)));
    for (group, keep) in groups {
        let mut words = [[0u64; N]; 25];
        for (i, block) in group.chunks_exact(64).enumerate() {
            for (lane, word) in block.chunks_exact(8).enumerate() {
                words[lane][i] = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            }
        }
        // keccak padding of a 64-byte message in a 136-byte block, as in `hash_pair`.
        words[8] = [0x01; N];
        words[16] = [0x80 << 56; N];
        let mut state: [L; 25] = std::array::from_fn(|lane| load(words[lane]));
        f1600(&mut state);
        let lanes: [[u64; N]; 4] = std::array::from_fn(|lane| store(state[lane]));
        out.extend((0..keep).map(|i| {
            let mut hash = [0u8; 32];
            for (bytes, lane) in hash.chunks_exact_mut(8).zip(&lanes) {
                bytes.copy_from_slice(&lane[i].to_le_bytes());
            }
            hash
        }));
    }
}

/// [`hash_blocks_n`], 8 states per permutation in AVX-512 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn hash_blocks_avx512(blocks: &[u8], out: &mut Vec<Hash>) {
    use std::arch::x86_64::*;
    hash_blocks_n::<_, 8>(
        blocks,
        out,
        |w| x86::X8(unsafe { _mm512_loadu_si512(w.as_ptr().cast()) }),
        |l| {
            let mut w = [0u64; 8];
            unsafe { _mm512_storeu_si512(w.as_mut_ptr().cast(), l.0) };
            w
        },
    );
}

/// [`hash_blocks_n`], 4 states per permutation in AVX2 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn hash_blocks_avx2(blocks: &[u8], out: &mut Vec<Hash>) {
    use std::arch::x86_64::*;
    hash_blocks_n::<_, 4>(
        blocks,
        out,
        |w| x86::X4(unsafe { _mm256_loadu_si256(w.as_ptr().cast()) }),
        |l| {
            let mut w = [0u64; 4];
            unsafe { _mm256_storeu_si256(w.as_mut_ptr().cast(), l.0) };
            w
        },
    );
}

/// [`hash_blocks_n`] one state at a time, on any CPU.
fn hash_blocks_scalar(blocks: &[u8], out: &mut Vec<Hash>) {
    hash_blocks_n::<u64, 1>(blocks, out, |w| w[0], |l| [l]);
}

/// Appends to `out` the Merkle node of each 64-byte block of `blocks` (a pair of 32-byte nodes):
/// `out[k]` = `hash_pair(block[..32], block[32..])`, the widest SIMD the CPU has hashing many at
/// once. `blocks.len()` must be a multiple of 64.
pub fn hash_blocks(blocks: &[u8], out: &mut Vec<Hash>) {
    assert!(blocks.len().is_multiple_of(64), "blocks of 64 bytes");
    out.reserve(blocks.len() / 64);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { hash_blocks_avx512(blocks, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { hash_blocks_avx2(blocks, out) };
        }
    }
    hash_blocks_scalar(blocks, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_pair;
    use rand::{Rng, SeedableRng};

    /// The permutation over lanes is `keccak::f1600` (the one `hash_pair` uses).
    #[test]
    fn the_lanes_permutation_is_keccak_f1600() {
        let seed = 0x5eed_1600;
        println!("seed {seed:#x}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..8 {
            let mut state: [u64; 25] = std::array::from_fn(|_| rng.gen());
            let mut want = state;
            keccak::f1600(&mut want);
            f1600(&mut state);
            assert_eq!(state, want);
        }
    }

    /// Each block's hash is `hash_pair` of its halves, for counts around every group width, on
    /// every width this CPU runs, random blocks from a printed seed.
    #[test]
    fn hash_blocks_equals_hash_pair_per_block() {
        let seed = 0x5eed_b10c;
        println!("seed {seed:#x}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let bytes: Vec<u8> = (0..64 * 37).map(|_| rng.gen()).collect();
        let mut widths: Vec<(&str, fn(&[u8], &mut Vec<Hash>))> =
            vec![("selected", hash_blocks), ("scalar", hash_blocks_scalar)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                widths.push(("avx2", |b, o| unsafe { hash_blocks_avx2(b, o) }));
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F.
                widths.push(("avx512", |b, o| unsafe { hash_blocks_avx512(b, o) }));
            }
        }
        for blocks in [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 37] {
            let data = &bytes[..64 * blocks];
            let want: Vec<Hash> = data
                .chunks_exact(64)
                .map(|b| hash_pair(b[..32].try_into().unwrap(), b[32..].try_into().unwrap()))
                .collect();
            for (name, hash) in &widths {
                let mut got = vec![[7; 32]];
                hash(data, &mut got);
                assert_eq!(got[0], [7; 32], "{name} keeps what `out` held");
                assert_eq!(got[1..], want, "{blocks} blocks, {name}");
            }
        }
    }
}
