//! Integer GEMM kernels of the native executor: `out[i, j] = Σ_t a[i, t] · b[j, t]` for int8 × int8,
//! int16 × int8 and int16 × int16 operands (both row-major, `b` given by its rows, as weights are
//! stored), accumulated in int32.
//!
//! **Exactness.** Every sum wraps modulo 2^32, as the VM's `add` does, and every kernel here only
//! uses instructions that are exact modulo 2^32 (`vpdpbusd`, `vpdpwssd` and `vpmaddwd` of
//! sign-extended values; never the saturating `vpmaddubsw` or `vpdpbusds`). Integer sums modulo
//! 2^32 do not depend on their order, so every kernel and every split over threads gives the bits
//! of the scalar reference for any `k`. The sum equals the true (unwrapped) dot product whenever
//! it fits in int32: for int8 × int8 always when `k ≤ 2^31 / 2^14 = 131072`, for int16 × int8 when
//! `k ≤ 2^31 / (2^15 · 2^7) = 512`, for int16 × int16 when `k ≤ 1`; beyond these bounds it
//! depends on the values. The ops that need true sums (MatMul narrows its rows) bound them
//! themselves; Linear and Conv2d are defined as the wrapped sum.
//!
//! **Kernels.** [`Kernel::detect`] picks the best the CPU has at run time: AVX-512 VNNI (`vpdpbusd`
//! on `a + 128` as unsigned bytes, minus `128 · Σ b` per row of `b`; `vpdpwssd` for int16), AVX2
//! (`vpmaddwd` on sign-extended int16), else the portable scalar loop, which is also the reference
//! the others are tested against. Tests and `opml bench gemm` can force any available kernel.
//!
//! **Threads.** The work is split over rayon in blocks of rows of `b` (output columns); each output
//! is computed by exactly one task, so the result does not depend on the split.

use rayon::prelude::*;
use std::sync::OnceLock;

/// One implementation of the GEMM loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Plain Rust loops, on every CPU: the reference.
    Scalar,
    /// x86-64 AVX2: `vpmaddwd` on int16 (int8 operands sign-extended).
    Avx2,
    /// x86-64 AVX-512 (F, BW, VL) with VNNI: `vpdpbusd` for int8, `vpdpwssd` for int16.
    Avx512Vnni,
}

impl Kernel {
    /// Every kernel, slowest first.
    pub const ALL: [Kernel; 3] = [Kernel::Scalar, Kernel::Avx2, Kernel::Avx512Vnni];

    /// The kernel's name, as `opml bench gemm` prints it and `--kernel` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512Vnni => "avx512_vnni",
        }
    }

    /// The kernel named `name` (see [`Kernel::name`]), or `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Kernel> {
        Kernel::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this CPU can run the kernel.
    pub fn available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest kernel this CPU can run (detected once per process).
    pub fn detect() -> Kernel {
        static BEST: OnceLock<Kernel> = OnceLock::new();
        *BEST.get_or_init(|| {
            Kernel::ALL
                .into_iter()
                .rev()
                .find(|k| k.available())
                .unwrap_or(Kernel::Scalar)
        })
    }

    /// Panics unless the CPU has the kernel's instructions: running them anyway would be undefined
    /// behaviour, so no caller may pick an unavailable kernel.
    fn require(self) {
        assert!(
            self.available(),
            "the {} GEMM kernel needs CPU features this machine lacks",
            self.name()
        );
    }
}

/// Checks the operand lengths of an `m × k` by `n × k` product.
fn check(a: usize, b: usize, m: usize, k: usize, n: usize) {
    assert_eq!(a, m * k, "a must hold m·k = {m}·{k} elements");
    assert_eq!(b, n * k, "b must hold n·k = {n}·{k} elements");
}

/// `a [m, k] · b [n, k]ᵀ` of int8 operands: `out [m, n]`, int32 sums wrapping modulo 2^32.
///
/// # Panics
/// If the slices do not hold `m·k` and `n·k` elements, or `kernel` is not [`Kernel::available`].
pub fn gemm_i8(kernel: Kernel, a: &[i8], b: &[i8], m: usize, k: usize, n: usize) -> Vec<i32> {
    check(a.len(), b.len(), m, k, n);
    kernel.require();
    match kernel {
        Kernel::Scalar => drive(a, b, m, k, n, 1, &|rows, br, out| {
            scalar_rows(rows, br, out)
        }),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => {
            let a16: Vec<i16> = a.iter().map(|&v| i16::from(v)).collect();
            // SAFETY: `require` checked that the CPU has AVX2.
            drive(&a16, b, m, k, n, 2, &|rows, br, out| unsafe {
                x86::rows_i16_i8_avx2(rows, br, out)
            })
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Vnni => {
            // a + 128 as unsigned bytes; each dot is then Σ a·b + 128·Σ b, corrected per row of b.
            let au: Vec<u8> = a.iter().map(|&v| v as u8 ^ 0x80).collect();
            // SAFETY: `require` checked that the CPU has AVX-512 F, BW, VL and VNNI.
            drive(&au, b, m, k, n, 1, &|rows, br, out| unsafe {
                x86::rows_u8_i8_vnni(rows, br, out)
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("require() admits only the scalar kernel here"),
    }
}

/// `a [m, k] · b [n, k]ᵀ` of int16 activations and int8 weights: `out [m, n]`, int32 sums
/// wrapping modulo 2^32.
///
/// # Panics
/// If the slices do not hold `m·k` and `n·k` elements, or `kernel` is not [`Kernel::available`].
pub fn gemm_i16_i8(kernel: Kernel, a: &[i16], b: &[i8], m: usize, k: usize, n: usize) -> Vec<i32> {
    check(a.len(), b.len(), m, k, n);
    kernel.require();
    match kernel {
        Kernel::Scalar => drive(a, b, m, k, n, 1, &|rows, br, out| {
            scalar_rows(rows, br, out)
        }),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `require` checked that the CPU has AVX2.
        Kernel::Avx2 => drive(a, b, m, k, n, 2, &|rows, br, out| unsafe {
            x86::rows_i16_i8_avx2(rows, br, out)
        }),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `require` checked that the CPU has AVX-512 F, BW, VL and VNNI.
        Kernel::Avx512Vnni => drive(a, b, m, k, n, 2, &|rows, br, out| unsafe {
            x86::rows_i16_i8_vnni(rows, br, out)
        }),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("require() admits only the scalar kernel here"),
    }
}

/// `a [m, k] · b [n, k]ᵀ` of int16 operands: `out [m, n]`, int32 sums wrapping modulo 2^32.
///
/// # Panics
/// If the slices do not hold `m·k` and `n·k` elements, or `kernel` is not [`Kernel::available`].
pub fn gemm_i16(kernel: Kernel, a: &[i16], b: &[i16], m: usize, k: usize, n: usize) -> Vec<i32> {
    check(a.len(), b.len(), m, k, n);
    kernel.require();
    match kernel {
        Kernel::Scalar => drive(a, b, m, k, n, 2, &|rows, br, out| {
            scalar_rows(rows, br, out)
        }),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `require` checked that the CPU has AVX2.
        Kernel::Avx2 => drive(a, b, m, k, n, 2, &|rows, br, out| unsafe {
            x86::rows_i16_i16_avx2(rows, br, out)
        }),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `require` checked that the CPU has AVX-512 F, BW, VL and VNNI.
        Kernel::Avx512Vnni => drive(a, b, m, k, n, 2, &|rows, br, out| unsafe {
            x86::rows_i16_i16_vnni(rows, br, out)
        }),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("require() admits only the scalar kernel here"),
    }
}

/// The scalar reference of one dot product: wrapping int32 sum of the products.
pub fn dot_scalar<A: Copy + Into<i32>, B: Copy + Into<i32>>(a: &[A], b: &[B]) -> i32 {
    a.iter().zip(b).fold(0i32, |acc, (&x, &y)| {
        acc.wrapping_add(x.into().wrapping_mul(y.into()))
    })
}

/// The block function of the scalar kernel: `out[r] = a_rows[r] · b_row`.
fn scalar_rows<A: Copy + Into<i32>, B: Copy + Into<i32>>(rows: &[&[A]], b: &[B], out: &mut [i32]) {
    for (row, o) in rows.iter().zip(out) {
        *o = dot_scalar(row, b);
    }
}

/// The most rows of `a` a block function is given at once (it keeps one accumulator per row, and
/// loads each piece of the row of `b` once for all of them).
const ROWS: usize = 4;

/// Runs a block function over the whole product: `dots(rows, b_row, out)` writes
/// `out[r] = rows[r] · b_row` for up to [`ROWS`] rows of `a`. Parallel over blocks of rows of `b`
/// (sized so that a block stays in the L2 cache and a task does at least ~64k multiply-adds);
/// each output belongs to exactly one block.
fn drive<A: Sync, B: Sync>(
    a: &[A],
    b: &[B],
    m: usize,
    k: usize,
    n: usize,
    b_bytes: usize,
    dots: &(dyn Fn(&[&[A]], &[B], &mut [i32]) + Sync),
) -> Vec<i32> {
    if m == 0 || n == 0 {
        return Vec::new();
    }
    if k == 0 {
        return vec![0; m * n];
    }
    let by_cache = (128 * 1024 / (k * b_bytes)).clamp(4, 64);
    let by_work = (65_536 / (m * k)).max(1);
    let threads = rayon::current_num_threads().max(1);
    let by_split = n.div_ceil(4 * threads).max(1);
    let nb = by_cache.max(by_work).min(by_split.max(by_work)).min(n);
    let a_rows: Vec<&[A]> = a.chunks_exact(k).collect();
    let blocks: Vec<Vec<i32>> = b
        .par_chunks(nb * k)
        .map(|block| {
            let cols = block.len() / k;
            // out_block[j * m + i]: column j of this block, row i of a.
            let mut out = vec![0i32; cols * m];
            for (j, b_row) in block.chunks_exact(k).enumerate() {
                for (g, rows) in a_rows.chunks(ROWS).enumerate() {
                    let o = &mut out[j * m + g * ROWS..][..rows.len()];
                    dots(rows, b_row, o);
                }
            }
            out
        })
        .collect();
    let mut y = vec![0i32; m * n];
    for (bi, block) in blocks.iter().enumerate() {
        let cols = block.len() / m;
        for j in 0..cols {
            for i in 0..m {
                y[i * n + bi * nb + j] = block[j * m + i];
            }
        }
    }
    y
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The x86-64 block functions. Each takes up to [`super::ROWS`] rows of `a` and one row of `b`,
    //! all of the same length `k` (the driver's `chunks_exact(k)` guarantees it), and loads only
    //! inside those slices: full vectors while a whole vector fits, then masked loads (which never
    //! touch the masked-off bytes) or a scalar tail.

    use super::ROWS;
    use std::arch::x86_64::*;

    /// Sum of the 8 int32 lanes, wrapping.
    #[target_feature(enable = "avx2")]
    unsafe fn hsum256(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// `out[r] = rows[r] · b` for int16 rows and int8 `b`, by `vpmaddwd` on `b` sign-extended.
    ///
    /// # Safety
    /// The CPU must have AVX2; every row must have `b.len()` elements.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows_i16_i8_avx2(rows: &[&[i16]], b: &[i8], out: &mut [i32]) {
        let k = b.len();
        let r = rows.len().min(ROWS);
        let mut acc = [_mm256_setzero_si256(); ROWS];
        let mut t = 0;
        while t + 16 <= k {
            // SAFETY: t + 16 ≤ k = the length of b and of every row.
            let vb = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.as_ptr().add(t).cast()));
            for i in 0..r {
                let va = _mm256_loadu_si256(rows[i].as_ptr().add(t).cast());
                acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(va, vb));
            }
            t += 16;
        }
        for i in 0..r {
            out[i] = hsum256(acc[i]).wrapping_add(super::dot_scalar(&rows[i][t..], &b[t..]));
        }
    }

    /// `out[r] = rows[r] · b` for int16 rows and int16 `b`, by `vpmaddwd`.
    ///
    /// # Safety
    /// The CPU must have AVX2; every row must have `b.len()` elements.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows_i16_i16_avx2(rows: &[&[i16]], b: &[i16], out: &mut [i32]) {
        let k = b.len();
        let r = rows.len().min(ROWS);
        let mut acc = [_mm256_setzero_si256(); ROWS];
        let mut t = 0;
        while t + 16 <= k {
            // SAFETY: t + 16 ≤ k = the length of b and of every row.
            let vb = _mm256_loadu_si256(b.as_ptr().add(t).cast());
            for i in 0..r {
                let va = _mm256_loadu_si256(rows[i].as_ptr().add(t).cast());
                acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(va, vb));
            }
            t += 16;
        }
        for i in 0..r {
            out[i] = hsum256(acc[i]).wrapping_add(super::dot_scalar(&rows[i][t..], &b[t..]));
        }
    }

    /// `out[r] = (rows[r] − 128) · b` for rows of `a + 128` as unsigned bytes and int8 `b`:
    /// `vpdpbusd` gives `Σ (a + 128)·b`, from which `128 · Σ b` (by `vpdpbusd` of ones) is taken.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW, VL and VNNI; every row must have `b.len()` elements.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn rows_u8_i8_vnni(rows: &[&[u8]], b: &[i8], out: &mut [i32]) {
        let k = b.len();
        let r = rows.len().min(ROWS);
        let ones = _mm512_set1_epi8(1);
        let mut sum_b = _mm512_setzero_si512();
        let mut acc = [_mm512_setzero_si512(); ROWS];
        let mut t = 0;
        while t < k {
            let left = k - t;
            let mask: __mmask64 = if left >= 64 { !0 } else { (1u64 << left) - 1 };
            // SAFETY: the mask admits only the lanes t..min(t + 64, k), inside b and every row;
            // masked-off lanes are neither read nor faulted on, and read as zero.
            let vb = _mm512_maskz_loadu_epi8(mask, b.as_ptr().add(t));
            sum_b = _mm512_dpbusd_epi32(sum_b, ones, vb);
            for i in 0..r {
                let va = _mm512_maskz_loadu_epi8(mask, rows[i].as_ptr().add(t).cast());
                acc[i] = _mm512_dpbusd_epi32(acc[i], va, vb);
            }
            t += 64;
        }
        let correction = _mm512_reduce_add_epi32(sum_b).wrapping_mul(128);
        for i in 0..r {
            out[i] = _mm512_reduce_add_epi32(acc[i]).wrapping_sub(correction);
        }
    }

    /// `out[r] = rows[r] · b` for int16 rows and int8 `b`, by `vpdpwssd` on `b` sign-extended.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW, VL and VNNI; every row must have `b.len()` elements.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn rows_i16_i8_vnni(rows: &[&[i16]], b: &[i8], out: &mut [i32]) {
        let k = b.len();
        let r = rows.len().min(ROWS);
        let mut acc = [_mm512_setzero_si512(); ROWS];
        let mut t = 0;
        while t < k {
            let left = k - t;
            let mask: __mmask32 = if left >= 32 { !0 } else { (1u32 << left) - 1 };
            // SAFETY: the mask admits only the lanes t..min(t + 32, k), inside b and every row.
            let vb = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, b.as_ptr().add(t)));
            for i in 0..r {
                let va = _mm512_maskz_loadu_epi16(mask, rows[i].as_ptr().add(t));
                acc[i] = _mm512_dpwssd_epi32(acc[i], va, vb);
            }
            t += 32;
        }
        for i in 0..r {
            out[i] = _mm512_reduce_add_epi32(acc[i]);
        }
    }

    /// `out[r] = rows[r] · b` for int16 rows and int16 `b`, by `vpdpwssd`.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW, VL and VNNI; every row must have `b.len()` elements.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn rows_i16_i16_vnni(rows: &[&[i16]], b: &[i16], out: &mut [i32]) {
        let k = b.len();
        let r = rows.len().min(ROWS);
        let mut acc = [_mm512_setzero_si512(); ROWS];
        let mut t = 0;
        while t < k {
            let left = k - t;
            let mask: __mmask32 = if left >= 32 { !0 } else { (1u32 << left) - 1 };
            // SAFETY: the mask admits only the lanes t..min(t + 32, k), inside b and every row.
            let vb = _mm512_maskz_loadu_epi16(mask, b.as_ptr().add(t));
            for i in 0..r {
                let va = _mm512_maskz_loadu_epi16(mask, rows[i].as_ptr().add(t));
                acc[i] = _mm512_dpwssd_epi32(acc[i], va, vb);
            }
            t += 32;
        }
        for i in 0..r {
            out[i] = _mm512_reduce_add_epi32(acc[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The plain triple loop, written independently of `drive`.
    fn reference<A: Copy + Into<i32>, B: Copy + Into<i32>>(
        a: &[A],
        b: &[B],
        m: usize,
        k: usize,
        n: usize,
    ) -> Vec<i32> {
        let mut y = Vec::with_capacity(m * n);
        for i in 0..m {
            for j in 0..n {
                y.push(dot_scalar(&a[i * k..][..k], &b[j * k..][..k]));
            }
        }
        y
    }

    /// Shapes (m, k, n): k around every vector width and its tails, m = 1 and m around the row
    /// group of 4, n across several blocks.
    const SHAPES: &[(usize, usize, usize)] = &[
        (1, 1, 1),
        (1, 3, 5),
        (2, 15, 3),
        (3, 16, 7),
        (4, 17, 9),
        (5, 31, 2),
        (1, 32, 33),
        (6, 33, 4),
        (7, 63, 5),
        (8, 64, 6),
        (9, 65, 3),
        (1, 127, 70),
        (3, 129, 11),
        (1, 4097, 3),
        (2, 4099, 5),
    ];

    /// The value patterns: random, every extreme, and alternating extremes.
    fn fill<T: Copy>(
        len: usize,
        pattern: usize,
        lo: T,
        hi: T,
        rng: &mut impl FnMut() -> T,
    ) -> Vec<T> {
        (0..len)
            .map(|i| match pattern {
                0 => rng(),
                1 => lo,
                2 => hi,
                _ => {
                    if i % 2 == 0 {
                        lo
                    } else {
                        hi
                    }
                }
            })
            .collect()
    }

    #[test]
    fn every_kernel_matches_the_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let kernels: Vec<Kernel> = Kernel::ALL.into_iter().filter(|k| k.available()).collect();
        for &(m, k, n) in SHAPES {
            for (pa, pb) in [(0, 0), (1, 1), (2, 2), (1, 2), (3, 3), (3, 1)] {
                let a8 = fill(m * k, pa, i8::MIN, i8::MAX, &mut || rng.gen());
                let b8 = fill(n * k, pb, i8::MIN, i8::MAX, &mut || rng.gen());
                let a16 = fill(m * k, pa, i16::MIN, i16::MAX, &mut || rng.gen());
                let b16 = fill(n * k, pb, i16::MIN, i16::MAX, &mut || rng.gen());
                let want8 = reference(&a8, &b8, m, k, n);
                let want16_8 = reference(&a16, &b8, m, k, n);
                let want16 = reference(&a16, &b16, m, k, n);
                for &kern in &kernels {
                    let what = format!("{} m {m} k {k} n {n} pattern {pa}/{pb}", kern.name());
                    assert_eq!(gemm_i8(kern, &a8, &b8, m, k, n), want8, "i8 {what}");
                    assert_eq!(
                        gemm_i16_i8(kern, &a16, &b8, m, k, n),
                        want16_8,
                        "i16×i8 {what}"
                    );
                    assert_eq!(gemm_i16(kern, &a16, &b16, m, k, n), want16, "i16 {what}");
                }
            }
        }
    }

    #[test]
    fn wrapping_sums_are_those_of_the_reference() {
        // All -32768: every pair of products is 2^31, which wraps; the sum must wrap the same way.
        let (m, k, n) = (2, 67, 3);
        let (a, b) = (vec![i16::MIN; m * k], vec![i16::MIN; n * k]);
        let want = reference(&a, &b, m, k, n);
        assert_eq!(want[0], (k as i32).wrapping_mul(1 << 30));
        for kern in Kernel::ALL.into_iter().filter(|k| k.available()) {
            assert_eq!(gemm_i16(kern, &a, &b, m, k, n), want, "{}", kern.name());
        }
    }

    #[test]
    fn kernels_are_named_and_detected() {
        for kern in Kernel::ALL {
            assert_eq!(Kernel::from_name(kern.name()), Some(kern));
        }
        assert_eq!(Kernel::from_name("sse9"), None);
        assert!(Kernel::detect().available());
        assert!(Kernel::Scalar.available());
    }

    #[test]
    fn empty_products() {
        for kern in Kernel::ALL.into_iter().filter(|k| k.available()) {
            assert_eq!(gemm_i8(kern, &[], &[], 0, 3, 0), Vec::<i32>::new());
            assert_eq!(gemm_i8(kern, &[], &[], 2, 0, 3), vec![0; 6]);
        }
    }
}
