//! MatMul of int16 activations, the transformer's product: `a[.., m, k]` (int16) times the rows of
//! `b` (int8 weights `[n, k]` shared by every batch, or int16 activations `[.., n, k]` batch by
//! batch, e.g. the keys of attention heads), plus an int32 bias, requantized to int16 per output
//! channel:
//!
//! `y[z, i, j] = requant16_j((Σ_t qa[z, i, t] · qb[z, j, t]) + (bias[j] >> e), e)`, `e = ea + eb`,
//!
//! where `qa` is row `i` of `a` narrowed by `ea` bits (`x >> ea`, arithmetic) so that no int32 sum
//! can overflow: `ea` is the least shift that brings the row's largest magnitude below
//! `2^a_bits`, and the budgets are fixed by `k` alone (`k · 2^a_bits · 2^b_bits ≤ 2^30`). Int8
//! weights (|w| ≤ 2^7) are never narrowed; int16 rows of `b` are, like those of `a`. Rows of small
//! values keep every bit; a row with one large value loses its low bits, as per-token dynamic
//! quantization would, but with a power-of-two scale that needs no division. The requantization's
//! shift is reduced by `e` (the accumulator stands for `acc · 2^e`), so the result is the exact
//! product whenever no row was narrowed.

use super::linear::channel_scales;
use super::{arity, input_error, OpError};
use crate::asm::{reg::*, Assembler};
use crate::gemm;
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::quant::emit_requant_clamped;
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use opml_vm::ElfImage;
use rayon::prelude::*;

/// Parameters of a MatMul node (none: its shapes and types say everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct MatMul {}

/// The most magnitude bits an int16 operand row keeps (|x| ≤ 2^15 always holds).
const INT16_BITS: u32 = 15;
/// Magnitude bits of an int8 weight (|w| ≤ 2^7).
const INT8_BITS: u32 = 7;
/// The bound of every sum: `k · 2^a_bits · 2^b_bits ≤ 2^SUM_BITS` (with room for the bias).
const SUM_BITS: u32 = 30;

/// Sizes and budgets of one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dims {
    /// Batches (the product of `a`'s leading dimensions).
    batches: usize,
    m: usize,
    k: usize,
    n: usize,
    /// Whether `b` is int16 activations, batch by batch (else int8 weights shared by all).
    b_wide: bool,
    /// Magnitude bits a row of `a` keeps.
    a_bits: u32,
    /// Magnitude bits a row of `b` keeps.
    b_bits: u32,
    /// Whether bias and scale are one per output channel (else one for all).
    per_channel: bool,
}

impl Dims {
    /// The most bits a row pair may be narrowed by.
    fn max_narrowing(&self) -> u32 {
        let b = if self.b_wide {
            INT16_BITS + 1 - self.b_bits
        } else {
            0
        };
        INT16_BITS + 1 - self.a_bits + b
    }
}

/// `ceil(log2(k))` for `k ≥ 1`.
fn ceil_log2(k: usize) -> u32 {
    usize::BITS - (k - 1).leading_zeros()
}

/// The bits rows of `a` and `b` keep for sums of `k` products, or `None` if `k` is too long.
fn operand_bits(k: usize, b_wide: bool) -> Option<(u32, u32)> {
    let budget = SUM_BITS.checked_sub(ceil_log2(k))?;
    let (a, b) = if b_wide {
        (budget / 2, budget / 2)
    } else {
        (budget.checked_sub(INT8_BITS)?, INT8_BITS)
    };
    (a >= 1 && b >= 1).then_some((a.min(INT16_BITS), b.min(INT16_BITS)))
}

impl MatMul {
    /// About the VM steps of a `mat_mul` of `batches × m × k` by `n` (`wide`: `b` is int16), as its
    /// kernel spends them: 7 per multiply-add, about 60 per output, about 14 per narrowed element and
    /// the prologue's reading of the inputs. An upper bound within a few percent for the shapes of a
    /// transformer (a test holds it to the kernel), so that a model can be tiled to a step bound
    /// without running it.
    pub fn vm_steps(batches: usize, m: usize, k: usize, n: usize, wide: bool) -> u64 {
        let (b, m, k, n) = (batches as u64, m as u64, k as u64, n as u64);
        let b_rows = if wide { b * n } else { n };
        let b_bytes = b_rows * k * if wide { 2 } else { 1 };
        let read = (2 * b * m * k + b_bytes + 12 * n) / 32 * 12;
        let narrowed = if wide { b * (m + n) * k } else { b * m * k };
        7 * b * m * k * n + 60 * b * m * n + 14 * narrowed + read + 1000
    }

    fn dims(&self, inputs: &[&Tensor]) -> Result<Dims, OpError> {
        arity("mat_mul", inputs, 4)?;
        let (a, b, bias, scale) = (inputs[0], inputs[1], inputs[2], inputs[3]);
        if a.dtype() != DType::I16 || bias.dtype() != DType::I32 {
            return Err(input_error(
                "mat_mul",
                format!(
                    "needs i16 a and i32 bias; got {:?} and {:?}",
                    a.dtype(),
                    bias.dtype()
                ),
            ));
        }
        let Some((&k, lead)) = a.shape().split_last() else {
            return Err(input_error("mat_mul", "a must be [.., m, k]"));
        };
        let Some((&m, batch_dims)) = lead.split_last() else {
            return Err(input_error(
                "mat_mul",
                format!("a must be [.., m, k], got {:?}", a.shape()),
            ));
        };
        let b_wide = match b.dtype() {
            DType::I8 => false,
            DType::I16 => true,
            other => {
                return Err(input_error(
                    "mat_mul",
                    format!("b must be i8 weights or i16 activations, got {other:?}"),
                ))
            }
        };
        let n = match (b_wide, b.shape()) {
            (false, [n, bk]) if *bk == k => *n,
            (true, s) if s.len() == a.shape().len() && s[..batch_dims.len()] == *batch_dims && s[s.len() - 1] == k => {
                s[s.len() - 2]
            }
            _ => {
                return Err(input_error(
                    "mat_mul",
                    format!(
                        "a {:?} and b {:?} do not fit: b must be i8 [n, k] or i16 [.., n, k] with a's batches",
                        a.shape(),
                        b.shape()
                    ),
                ))
            }
        };
        if k == 0 || m == 0 || n == 0 {
            return Err(input_error(
                "mat_mul",
                format!("empty product: m {m}, k {k}, n {n}"),
            ));
        }
        let per_channel = match bias.shape() {
            [c] if *c == n => true,
            [1] => false,
            s => {
                return Err(input_error(
                    "mat_mul",
                    format!("bias must be [{n}] or [1], got {s:?}"),
                ))
            }
        };
        let (a_bits, b_bits) = operand_bits(k, b_wide)
            .ok_or_else(|| input_error("mat_mul", format!("k = {k} is too long for int32 sums")))?;
        let d = Dims {
            batches: batch_dims.iter().product(),
            m,
            k,
            n,
            b_wide,
            a_bits,
            b_bits,
            per_channel,
        };
        let scales = channel_scales("mat_mul", scale, if per_channel { n } else { 1 })?;
        for (j, s) in scales.iter().enumerate() {
            s.validate_narrowed(d.max_narrowing())
                .map_err(|e| input_error("mat_mul", format!("output channel {j}: {e}")))?;
        }
        Ok(d)
    }

    pub(super) fn output_type(&self, inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
        let d = self.dims(inputs)?;
        let mut shape = inputs[0].shape().to_vec();
        *shape.last_mut().expect("rank ≥ 2") = d.n;
        Ok((DType::I16, shape))
    }

    pub(super) fn native(&self, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let d = self.dims(inputs)?;
        let (output_shape, scales) = (
            self.output_type(inputs)?.1,
            channel_scales("mat_mul", inputs[3], if d.per_channel { d.n } else { 1 })?,
        );
        let bias = inputs[2].as_i32()?.as_slice().expect("standard layout");
        let mut a = inputs[0]
            .as_i16()?
            .as_slice()
            .expect("standard layout")
            .to_vec();
        let ea = narrow_rows(&mut a, d.k, d.a_bits);
        // The int32 sums of every (row, column), by the SIMD GEMM: one product of all rows by the
        // shared int8 weights, or one per batch for int16 `b`.
        let kernel = gemm::Kernel::detect();
        let (acc, eb): (Vec<i32>, Vec<u32>) = if d.b_wide {
            let mut b = inputs[1]
                .as_i16()?
                .as_slice()
                .expect("standard layout")
                .to_vec();
            let eb = narrow_rows(&mut b, d.k, d.b_bits);
            let acc = (0..d.batches)
                .flat_map(|z| {
                    gemm::gemm_i16(
                        kernel,
                        &a[z * d.m * d.k..][..d.m * d.k],
                        &b[z * d.n * d.k..][..d.n * d.k],
                        d.m,
                        d.k,
                        d.n,
                    )
                })
                .collect();
            (acc, eb)
        } else {
            let b = inputs[1].as_i8()?.as_slice().expect("standard layout");
            let acc = gemm::gemm_i16_i8(kernel, &a, b, d.batches * d.m, d.k, d.n);
            (acc, vec![0; d.n])
        };
        let mut y = vec![0i16; d.batches * d.m * d.n];
        y.par_chunks_mut(d.n)
            .zip(acc.par_chunks(d.n))
            .enumerate()
            .for_each(|(row, (out, sums))| {
                let z = row / d.m;
                let eb = if d.b_wide {
                    &eb[z * d.n..][..d.n]
                } else {
                    &eb[..]
                };
                for (j, (dst, &acc)) in out.iter_mut().zip(sums).enumerate() {
                    let e = ea[row] + eb[j];
                    let c = if d.per_channel { j } else { 0 };
                    *dst = scales[c].apply_i16(acc.wrapping_add(bias[c] >> e), e);
                }
            });
        Ok(Tensor::I16(
            ArrayD::from_shape_vec(IxDyn(&output_shape), y).expect("batches·m·n outputs"),
        ))
    }

    pub(super) fn kernel_params(&self, inputs: &[&Tensor]) -> Vec<i32> {
        let d = self.dims(inputs).expect("checked by output_type");
        LAYOUT.encode(&[
            ("batches", d.batches as i32),
            ("m", d.m as i32),
            ("k", d.k as i32),
            ("n", d.n as i32),
            ("b_wide", d.b_wide as i32),
            ("a_bits", d.a_bits as i32),
            ("b_bits", d.b_bits as i32),
            ("channel_step", d.per_channel as i32),
        ])
    }
}

/// Narrows each `k`-element row of `x` in place to `bits` magnitude bits; returns each row's shift.
fn narrow_rows(x: &mut [i16], k: usize, bits: u32) -> Vec<u32> {
    x.chunks_exact_mut(k)
        .map(|row| {
            let mut big = row.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
            let mut e = 0;
            while big >> bits != 0 {
                big >>= 1;
                e += 1;
            }
            if e > 0 {
                row.iter_mut().for_each(|v| *v >>= e);
            }
            e
        })
        .collect()
}

/// The params words of a MatMul node after the lengths: the sizes, whether `b` is int16 (batched),
/// the operand budgets, and whether bias and scale are per channel (1) or one for all (0).
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 4,
    fields: &[
        "batches",
        "m",
        "k",
        "n",
        "b_wide",
        "a_bits",
        "b_bits",
        "channel_step",
    ],
};

/// Emits the narrowing subroutine `narrow`: a0 = first row, a1 = rows, a2 = k, a3 = bits, a4 =
/// where each row's shift is stored (one word per row). Int16 rows; clobbers t0..t5, a0, a1, a4.
fn emit_narrow(a: &mut Assembler) {
    a.label("narrow")
        .label("narrow_row")
        .beq(A1, ZERO, "narrow_done")
        // t0 = the row's largest magnitude; t2 = the row's end.
        .li(T0, 0)
        .mv(T1, A0)
        .slli(T2, A2, 1)
        .add(T2, A0, T2)
        .label("narrow_max")
        .bgeu(T1, T2, "narrow_max_done")
        .lh(T3, 0, T1)
        .srai(T4, T3, 31)
        .xor(T3, T3, T4)
        .sub(T3, T3, T4)
        .bgeu(T0, T3, "narrow_max_keep")
        .mv(T0, T3)
        .label("narrow_max_keep")
        .addi(T1, T1, 2)
        .j("narrow_max")
        .label("narrow_max_done")
        // t5 = the least e with (t0 >> e) < 2^bits.
        .li(T5, 0)
        .label("narrow_e")
        .srl(T4, T0, A3)
        .beq(T4, ZERO, "narrow_e_done")
        .srli(T0, T0, 1)
        .addi(T5, T5, 1)
        .j("narrow_e")
        .label("narrow_e_done")
        .sw(T5, 0, A4)
        .addi(A4, A4, 4)
        .beq(T5, ZERO, "narrow_next")
        .mv(T1, A0)
        .label("narrow_shift")
        .bgeu(T1, T2, "narrow_next")
        .lh(T3, 0, T1)
        .sra(T3, T3, T5)
        .sh(T3, 0, T1)
        .addi(T1, T1, 2)
        .j("narrow_shift")
        .label("narrow_next")
        .mv(A0, T2)
        .addi(A1, A1, -1)
        .j("narrow_row")
        .label("narrow_done")
        .ret();
}

/// Registers: s3 a, s4 b, s5 bias, gp scales, s6 output (advancing), s1 the shifts of `a`'s rows
/// (advancing), s2 the shifts of the current batch's `b` rows, s7/s8/s9 the batch, row and column
/// counters, s10 the current row of `a`, s11 the current batch of `b`, tp the current row of `b`,
/// sp and ra the byte lengths of a row of `a` and of `b`.
pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    let p = |f| LAYOUT.offset(f);
    build_kernel(&LAYOUT, |a| {
        a.li(T3, TABLE_ADDR as i32)
            .lw(S3, 0, T3)
            .lw(S4, 4, T3)
            .lw(S5, 8, T3)
            .lw(GP, 12, T3)
            .lw(S6, 16, T3)
            // Scratch for the row shifts past the output buffer: a's rows at s1, then b's.
            .lw(T0, LAYOUT.len_offset(4), S0)
            .addi(T0, T0, 31)
            .andi(T0, T0, -32)
            .add(S1, S6, T0)
            .lw(T0, p("batches"), S0)
            .lw(T1, p("m"), S0)
            .mul(A1, T0, T1)
            .slli(T2, A1, 2)
            .add(S2, S1, T2)
            .mv(A0, S3)
            .lw(A2, p("k"), S0)
            .lw(A3, p("a_bits"), S0)
            .mv(A4, S1)
            .call("narrow")
            .lw(T0, p("b_wide"), S0)
            .beq(T0, ZERO, "narrowed")
            .lw(T0, p("batches"), S0)
            .lw(T1, p("n"), S0)
            .mul(A1, T0, T1)
            .mv(A0, S4)
            .lw(A2, p("k"), S0)
            .lw(A3, p("b_bits"), S0)
            .mv(A4, S2)
            .call("narrow")
            .label("narrowed")
            // Row lengths in bytes: sp for a (int16), ra for b (int16 or int8).
            .lw(T0, p("k"), S0)
            .slli(SP, T0, 1)
            .lw(T1, p("b_wide"), S0)
            .sll(RA, T0, T1)
            .mv(S10, S3)
            .mv(S11, S4)
            .li(S7, 0)
            .label("batch")
            .lw(T0, p("batches"), S0)
            .bgeu(S7, T0, "matmul_done")
            .li(S8, 0)
            .label("row")
            .lw(T0, p("m"), S0)
            .bgeu(S8, T0, "batch_next")
            .li(S9, 0)
            .mv(TP, S11)
            .label("col")
            .lw(T0, p("n"), S0)
            .bgeu(S9, T0, "row_next")
            // t0 = Σ a[row]·b[col]
            .li(T0, 0)
            .mv(T1, S10)
            .mv(T2, TP)
            .add(A0, S10, SP)
            .lw(A1, p("b_wide"), S0)
            .beq(A1, ZERO, "dot8")
            .label("dot16")
            .lh(A1, 0, T1)
            .lh(A2, 0, T2)
            .mul(A1, A1, A2)
            .add(T0, T0, A1)
            .addi(T1, T1, 2)
            .addi(T2, T2, 2)
            .bltu(T1, A0, "dot16")
            .j("dot_done")
            .label("dot8")
            .lh(A1, 0, T1)
            .lb(A2, 0, T2)
            .mul(A1, A1, A2)
            .add(T0, T0, A1)
            .addi(T1, T1, 2)
            .addi(T2, T2, 1)
            .bltu(T1, A0, "dot8")
            .label("dot_done")
            // a7 = e = ea + eb (eb = 0 for int8 weights).
            .lw(A7, 0, S1)
            .lw(A1, p("b_wide"), S0)
            .beq(A1, ZERO, "e_done")
            .slli(A1, S9, 2)
            .add(A1, S2, A1)
            .lw(A1, 0, A1)
            .add(A7, A7, A1)
            .label("e_done")
            // The channel: j, or 0 when bias and scale are one for all.
            .lw(T1, p("channel_step"), S0)
            .mul(T1, T1, S9)
            .slli(A1, T1, 2)
            .add(A1, S5, A1)
            .lw(A1, 0, A1)
            .sra(A1, A1, A7)
            .add(T0, T0, A1)
            .slli(A1, T1, 3)
            .add(A1, GP, A1)
            .lw(A2, 4, A1)
            .sub(A2, A2, A7)
            .lw(A1, 0, A1);
        emit_requant_clamped(a, T0, A1, A2, A0, (-32768, 32767));
        a.sh(A0, 0, S6)
            .addi(S6, S6, 2)
            .add(TP, TP, RA)
            .addi(S9, S9, 1)
            .j("col")
            .label("row_next")
            .add(S10, S10, SP)
            .addi(S1, S1, 4)
            .addi(S8, S8, 1)
            .j("row")
            .label("batch_next")
            // Next batch of b (int16 only; int8 weights are shared) and of its row shifts.
            .lw(T0, p("b_wide"), S0)
            .beq(T0, ZERO, "batch_b_done")
            .lw(T0, p("n"), S0)
            .mul(T1, T0, RA)
            .add(S11, S11, T1)
            .slli(T0, T0, 2)
            .add(S2, S2, T0)
            .label("batch_b_done")
            .addi(S7, S7, 1)
            .j("batch")
            .label("matmul_done")
            .j("after_narrow");
        emit_narrow(a);
        a.label("after_narrow");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;
    use crate::quant::Requant;
    use rand::Rng;

    fn scales(rng: &mut impl Rng, n: usize, range: std::ops::Range<f64>) -> Tensor {
        let v = (0..n)
            .flat_map(|_| {
                let q = Requant::from_scale(rng.gen_range(range.clone())).unwrap();
                [q.multiplier, q.shift as i32]
            })
            .collect();
        Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[n, 2]), v).unwrap())
    }

    /// The estimate bounds the kernel's steps from above, closely.
    #[test]
    fn step_estimate_bounds_the_kernel() {
        let (mut rng, seed) = test_rng("matmul::step_estimate_bounds_the_kernel");
        // (batches, m, k, n, wide)
        let cases = [
            (1, 16, 384, 64, false),
            (1, 3, 17, 5, false),
            (12, 16, 32, 16, true),
            (12, 16, 16, 32, true),
        ];
        for (b, m, k, n, wide) in cases {
            let (a_shape, b_shape) = if wide {
                (vec![b, m, k], vec![b, n, k])
            } else {
                (vec![m, k], vec![n, k])
            };
            let x = random_i16(&mut rng, &a_shape, i16::MAX);
            let y = if wide {
                random_i16(&mut rng, &b_shape, i16::MAX)
            } else {
                random_i8(&mut rng, &b_shape)
            };
            let bias = random_i32(&mut rng, &[1], 0..1);
            let scale = scales(&mut rng, 1, 1e-6..1e-3);
            let steps = native_equals_vm(
                &Op::MatMul(MatMul {}),
                &[&x, &y, &bias, &scale],
                &format!("seed {seed}"),
            );
            let estimate = MatMul::vm_steps(b, m, k, n, wide);
            assert!(
                estimate >= steps && estimate as f64 <= steps as f64 * 1.15 + 2000.0,
                "{b}x{m}x{k}x{n} wide {wide}: estimate {estimate}, kernel {steps}"
            );
        }
    }

    #[test]
    fn operand_budgets_keep_sums_in_int32() {
        // (k, b_wide, a_bits, b_bits)
        let cases = [
            (1, false, 15, 7),
            (384, false, 14, 7),
            (1536, false, 12, 7),
            (32, true, 12, 12),
            (128, true, 11, 11),
            (1 << 22, false, 1, 7),
        ];
        for (k, wide, a, b) in cases {
            assert_eq!(operand_bits(k, wide), Some((a, b)), "k {k} wide {wide}");
            assert!(k as u64 * (1u64 << a) * (1u64 << b) <= 1 << 30, "k {k}");
        }
        assert_eq!(operand_bits(1 << 23, false), None);
    }

    #[test]
    fn narrowing_keeps_small_rows_and_bounds_large_ones() {
        // (row, bits, shift, narrowed row)
        let cases: [(&[i16], u32, u32, &[i16]); 5] = [
            (&[0, 0], 3, 0, &[0, 0]),
            (&[7, -7], 3, 0, &[7, -7]),
            (&[8, -1], 3, 1, &[4, -1]),
            (&[-32768, 1], 15, 1, &[-16384, 0]),
            (&[32767, -32767], 12, 3, &[4095, -4096]),
        ];
        for (row, bits, e, want) in cases {
            let mut x = row.to_vec();
            assert_eq!(narrow_rows(&mut x, row.len(), bits), [e], "{row:?}");
            assert_eq!(x, want, "{row:?}");
        }
    }

    #[test]
    fn native_equals_vm_with_weights() {
        let (mut rng, seed) = test_rng("matmul::native_equals_vm_with_weights");
        // (a shape, n, largest |a|, per-channel)
        let cases: [(&[usize], usize, i16, bool); 6] = [
            (&[1, 1], 1, 100, true),
            (&[3, 17], 5, i16::MAX, true),
            (&[2, 4, 33], 7, 300, false),
            (&[5, 384], 9, i16::MAX, true),
            (&[2, 1536], 3, 2000, true),
            (&[4, 8], 6, 0, true),
        ];
        for (shape, n, max, per_channel) in cases {
            let k = shape[shape.len() - 1];
            let x = random_i16(&mut rng, shape, max);
            let w = random_i8(&mut rng, &[n, k]);
            let c = if per_channel { n } else { 1 };
            let bias = random_i32(&mut rng, &[c], -1 << 20..1 << 20);
            let scale = scales(&mut rng, c, 1e-5..0.5);
            native_equals_vm(
                &Op::MatMul(MatMul {}),
                &[&x, &w, &bias, &scale],
                &format!("seed {seed}: matmul {shape:?} x [{n}, {k}] (|a| ≤ {max})"),
            );
        }
    }

    #[test]
    fn native_equals_vm_between_activations() {
        let (mut rng, seed) = test_rng("matmul::native_equals_vm_between_activations");
        // (a shape, n, largest |a| and |b|)
        let cases: [(&[usize], usize, i16); 4] = [
            (&[1, 1, 1], 1, i16::MAX),
            (&[3, 5, 32], 5, i16::MAX),
            (&[2, 7, 13], 9, 2047),
            (&[12, 4, 32], 4, 20_000),
        ];
        for (shape, n, max) in cases {
            let (k, lead) = shape.split_last().unwrap();
            let mut b_shape = lead[..lead.len() - 1].to_vec();
            b_shape.extend([n, *k]);
            let x = random_i16(&mut rng, shape, max);
            let y = random_i16(&mut rng, &b_shape, max);
            let bias = random_i32(&mut rng, &[1], -1000..1000);
            let scale = scales(&mut rng, 1, 1e-6..1e-2);
            native_equals_vm(
                &Op::MatMul(MatMul {}),
                &[&x, &y, &bias, &scale],
                &format!("seed {seed}: matmul {shape:?} x {b_shape:?}"),
            );
        }
    }

    /// Without narrowing (small values) the result is the exact product, requantized once.
    #[test]
    fn small_values_give_the_exact_product() {
        let x = Tensor::I16(ArrayD::from_shape_vec(IxDyn(&[1, 3]), vec![100, -200, 300]).unwrap());
        let w =
            Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1, 2, 3, -4, 5, -6]).unwrap());
        let bias = Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[2]), vec![10, -10]).unwrap());
        let half = Requant::from_scale(0.5).unwrap();
        let scale = Tensor::I32(
            ArrayD::from_shape_vec(
                IxDyn(&[2, 2]),
                vec![
                    half.multiplier,
                    half.shift as i32,
                    half.multiplier,
                    half.shift as i32,
                ],
            )
            .unwrap(),
        );
        let y = Op::MatMul(MatMul {})
            .native(&[&x, &w, &bias, &scale])
            .unwrap();
        // (100 − 400 + 900 + 10) / 2 = 305; (−400 − 1000 − 1800 − 10) / 2 = −1605.
        assert_eq!(y.as_i16().unwrap().as_slice().unwrap(), [305, -1605]);
    }

    #[test]
    fn what_does_not_fit_is_named() {
        let (mut rng, _) = test_rng("matmul::what_does_not_fit_is_named");
        let x = random_i16(&mut rng, &[2, 4], 10);
        let w = random_i8(&mut rng, &[3, 4]);
        let bias = random_i32(&mut rng, &[3], 0..1);
        let ok_scale = scales(&mut rng, 3, 0.1..0.2);
        let tiny_shift = Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![1, 1]).unwrap());
        let x8 = random_i8(&mut rng, &[2, 4]);
        let w5 = random_i8(&mut rng, &[3, 5]);
        let bias2 = random_i32(&mut rng, &[2], 0..1);
        let cases: [(&[&Tensor], &str); 4] = [
            (&[&x8, &w, &bias, &ok_scale], "needs i16 a"),
            (&[&x, &w5, &bias, &ok_scale], "do not fit"),
            (&[&x, &w, &bias2, &ok_scale], "bias must be"),
            (
                &[&x, &w, &random_i32(&mut rng, &[1], 0..1), &tiny_shift],
                "must exceed",
            ),
        ];
        for (inputs, want) in cases {
            let err = Op::MatMul(MatMul {})
                .native(inputs)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }
}
