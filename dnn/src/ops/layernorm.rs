//! LayerNorm over the last axis of int16 activations, in integers only:
//!
//! for each row `x` of `d` values: `c = d·x − Σx` (that is `d·(x − μ)`, exact: no rounding of the
//! mean); `c'` = `c` shifted (left or right) so that its largest magnitude has exactly `c_bits` bits;
//! `v = Σc'² / d` (unsigned); `σ16 = ⌊√(v · 2^8)⌋` (≈ 16 σ'); `n = (c' · 2^16) / σ16` (≈ the
//! normalized value in Q12, truncating division); then per channel `j`,
//! `y = clamp16(requant16_j(n) + bias[j])`, where the requantization (multiplier, shift) carries
//! `γ_j · 2^-12 / s_y` and `bias[j]` is `β_j / s_y`. A row of equal values gives `n = 0`.
//!
//! The shift of `c` makes the variance exact to about 22 bits whatever the input's scale, and keeps
//! every sum in 32 bits: `d · 2^(2·c_bits) ≤ 2^31`.
//!
//! RMSNorm (kind `rms_norm`, a LLaMA block's norm) is the same computation with `c = d·x` (no mean
//! taken out: `Σx` is taken as 0) and no β: `y = requant16_j(n)`. The factor `d` cancels in `n`, so
//! `n ≈ x / rms(x)` in Q12. One kernel writer builds both kernels.

use super::linear::channel_scales;
use super::{arity, input_error, OpError};
use crate::asm::{reg::*, Assembler};
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::quant::emit_requant_clamped;
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use opml_vm::ElfImage;
use rayon::prelude::*;

/// The longest row (so that `d·x − Σx` fits int32).
const MAX_D: usize = 1 << 14;
/// The most bits `c'` keeps (so that `v · 2^8` and `c' · 2^16` fit 32 bits).
const MAX_C_BITS: u32 = 11;

/// Which of the two norms: LayerNorm (mean taken out, β added) or RMSNorm (neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Norm {
    /// Kind `layer_norm`: inputs x, scale (γ), bias (β).
    Layer,
    /// Kind `rms_norm`: inputs x, scale (γ).
    Rms,
}

impl Norm {
    fn name(self) -> &'static str {
        match self {
            Self::Layer => "layer_norm",
            Self::Rms => "rms_norm",
        }
    }

    fn layout(self) -> &'static ParamLayout {
        match self {
            Self::Layer => &LAYOUT,
            Self::Rms => &RMS_LAYOUT,
        }
    }
}

/// `(rows, d, c_bits)` of `x [.., d]`, `scale [d, 2]`, and for LayerNorm `bias [d]`.
fn dims(norm: Norm, inputs: &[&Tensor]) -> Result<(usize, usize, u32), OpError> {
    let op = norm.name();
    arity(op, inputs, norm.layout().inputs)?;
    let (x, scale) = (inputs[0], inputs[1]);
    let bias = inputs.get(2);
    if x.dtype() != DType::I16 || bias.is_some_and(|b| b.dtype() != DType::I32) {
        return Err(input_error(
            op,
            format!(
                "needs i16 x and i32 bias; got {:?} and {:?}",
                x.dtype(),
                bias.map(|b| b.dtype())
            ),
        ));
    }
    let d = match x.shape().last() {
        Some(&d) if (1..=MAX_D).contains(&d) => d,
        _ => {
            return Err(input_error(
                op,
                format!(
                    "x must be [.., d] with 1 ≤ d ≤ {MAX_D}, got {:?}",
                    x.shape()
                ),
            ))
        }
    };
    if let Some(bias) = bias.filter(|b| b.shape() != [d]) {
        return Err(input_error(
            op,
            format!("bias must be [{d}], got {:?}", bias.shape()),
        ));
    }
    channel_scales(op, scale, d)?;
    let log_d = usize::BITS - (d - 1).leading_zeros();
    let c_bits = ((31 - log_d) / 2).min(MAX_C_BITS);
    Ok((x.len() / d, d, c_bits))
}

/// `⌊√v⌋`.
fn isqrt(v: u32) -> u32 {
    let mut r = (v as f64).sqrt() as u32;
    while u64::from(r) * u64::from(r) > u64::from(v) {
        r -= 1;
    }
    while u64::from(r + 1) * u64::from(r + 1) <= u64::from(v) {
        r += 1;
    }
    r
}

/// The normalized values `n` (Q12) of one row.
fn normalize(norm: Norm, row: &[i16], c_bits: u32, n: &mut [i32]) {
    let d = row.len() as i32;
    let sum = match norm {
        Norm::Layer => row.iter().map(|&v| i32::from(v)).sum::<i32>(),
        Norm::Rms => 0,
    };
    let big = row
        .iter()
        .map(|&v| (d * i32::from(v) - sum).unsigned_abs())
        .max()
        .unwrap_or(0);
    if big == 0 {
        n.fill(0);
        return;
    }
    let bits = u32::BITS - big.leading_zeros();
    let centred = |v: i16| {
        let c = d * i32::from(v) - sum;
        if bits > c_bits {
            c >> (bits - c_bits)
        } else {
            c << (c_bits - bits)
        }
    };
    let var = row
        .iter()
        .map(|&v| (centred(v) * centred(v)) as u32)
        .fold(0u32, u32::wrapping_add)
        / d as u32;
    let sigma = isqrt(var << 8) as i32;
    for (dst, &v) in n.iter_mut().zip(row) {
        *dst = (centred(v) << 16) / sigma;
    }
}

pub(super) fn output_type(norm: Norm, inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
    dims(norm, inputs)?;
    Ok((DType::I16, inputs[0].shape().to_vec()))
}

pub(super) fn native(norm: Norm, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
    let (_, d, c_bits) = dims(norm, inputs)?;
    let x = inputs[0].as_i16()?.as_slice().expect("standard layout");
    let scales = channel_scales(norm.name(), inputs[1], d)?;
    let bias = match inputs.get(2) {
        Some(b) => b.as_i32()?.as_slice().expect("standard layout"),
        None => &[],
    };
    let mut y = vec![0i16; x.len()];
    y.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .for_each(|(out, row)| {
            let mut n = vec![0i32; d];
            normalize(norm, row, c_bits, &mut n);
            for (j, (dst, &v)) in out.iter_mut().zip(&n).enumerate() {
                let r = scales[j].apply_i16(v, 0);
                *dst = match bias.get(j) {
                    Some(&b) => i32::from(r).saturating_add(b).clamp(-32768, 32767) as i16,
                    None => r,
                };
            }
        });
    Ok(Tensor::I16(
        ArrayD::from_shape_vec(IxDyn(inputs[0].shape()), y).expect("the input's shape"),
    ))
}

pub(super) fn kernel_params(norm: Norm, inputs: &[&Tensor]) -> Vec<i32> {
    let (rows, d, c_bits) = dims(norm, inputs).expect("checked by output_type");
    norm.layout().encode(&[
        ("rows", rows as i32),
        ("d", d as i32),
        ("c_bits", c_bits as i32),
    ])
}

/// The params words of a LayerNorm node after the lengths: rows, row length, bits of `c'`.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 3,
    fields: &["rows", "d", "c_bits"],
};

/// The params words of an RMSNorm node after the lengths: as LayerNorm's, for two inputs.
pub(super) const RMS_LAYOUT: ParamLayout = ParamLayout {
    inputs: 2,
    fields: &["rows", "d", "c_bits"],
};

/// Emits `out = ⌊√v⌋` (unsigned, bit by bit). Clobbers t3..t5 and `v`.
fn emit_isqrt(a: &mut Assembler, v: u32, out: u32) {
    let (top, bit, next, done) = (
        a.fresh_label("sqrt_top"),
        a.fresh_label("sqrt_bit"),
        a.fresh_label("sqrt_next"),
        a.fresh_label("sqrt_done"),
    );
    // bit = the highest power of 4 ≤ 2^30; out = 0.
    a.li(out, 0).li(T3, 1 << 30);
    a.label(&top)
        .bgeu(v, T3, &bit)
        .beq(T3, ZERO, &done)
        .srli(T3, T3, 2)
        .j(&top);
    a.label(&bit)
        .beq(T3, ZERO, &done)
        .add(T4, out, T3)
        .srli(out, out, 1)
        .bltu(v, T4, &next)
        .sub(v, v, T4)
        .add(out, out, T3)
        .label(&next)
        .srli(T3, T3, 2)
        .j(&bit)
        .label(&done);
}

/// Registers: s3 x row, s4 scales, s5 bias (LayerNorm), s6 output (advancing), s7 rows left, s8
/// d, s9 the row's end, s10 the row's sum (0 for RMSNorm), s11 the shift of `c` (positive: left),
/// gp σ16, tp whether it is a right shift.
pub(super) fn kernel(norm: Norm) -> Result<ElfImage, KernelError> {
    let layout = norm.layout();
    let p = |f| layout.offset(f);
    build_kernel(layout, |a| {
        a.li(T3, TABLE_ADDR as i32).lw(S3, 0, T3).lw(S4, 4, T3);
        match norm {
            Norm::Layer => a.lw(S5, 8, T3).lw(S6, 12, T3),
            Norm::Rms => a.lw(S6, 8, T3),
        };
        a.lw(S7, p("rows"), S0)
            .lw(S8, p("d"), S0)
            .label("row")
            .beq(S7, ZERO, "norm_done")
            .slli(S9, S8, 1)
            .add(S9, S3, S9);
        match norm {
            // Mean.
            Norm::Layer => a
                .li(T0, 0)
                .mv(T1, S3)
                .label("sum")
                .lh(T2, 0, T1)
                .add(T0, T0, T2)
                .addi(T1, T1, 2)
                .bltu(T1, S9, "sum")
                .mv(S10, T0),
            Norm::Rms => a.li(S10, 0),
        };
        // Largest |d·x − Σx|.
        a.li(T0, 0)
            .mv(T1, S3)
            .label("big")
            .lh(T2, 0, T1)
            .mul(T2, T2, S8)
            .sub(T2, T2, S10)
            .srai(T3, T2, 31)
            .xor(T2, T2, T3)
            .sub(T2, T2, T3)
            .bgeu(T0, T2, "big_keep")
            .mv(T0, T2)
            .label("big_keep")
            .addi(T1, T1, 2)
            .bltu(T1, S9, "big")
            .bne(T0, ZERO, "spread")
            // Every value equal: n = 0 for the whole row.
            .li(GP, 0)
            .j("ln_emit")
            .label("spread")
            // bits = bit length of the largest; the shift brings it to c_bits.
            .li(T1, 0)
            .label("bits")
            .beq(T0, ZERO, "bits_done")
            .srli(T0, T0, 1)
            .addi(T1, T1, 1)
            .j("bits")
            .label("bits_done")
            .lw(T2, p("c_bits"), S0)
            .sub(S11, T2, T1)
            .slt(TP, S11, ZERO)
            .beq(TP, ZERO, "shift_ready")
            .sub(S11, ZERO, S11)
            .label("shift_ready")
            // v = Σc'² / d (unsigned).
            .li(T0, 0)
            .mv(T1, S3)
            .label("var");
        emit_centred(a, T1, T2);
        a.mul(T2, T2, T2)
            .add(T0, T0, T2)
            .addi(T1, T1, 2)
            .bltu(T1, S9, "var")
            .divu(T0, T0, S8)
            .slli(T0, T0, 8);
        emit_isqrt(a, T0, GP);
        a.label("ln_emit").mv(T1, S3).mv(A7, S4);
        if norm == Norm::Layer {
            a.mv(RA, S5);
        }
        a.label("out").li(T0, 0).beq(GP, ZERO, "normalized");
        emit_centred(a, T1, T0);
        a.slli(T0, T0, 16)
            .div(T0, T0, GP)
            .label("normalized")
            .lw(A1, 0, A7)
            .lw(A2, 4, A7);
        emit_requant_clamped(a, T0, A1, A2, A0, (-32768, 32767));
        if norm == Norm::Layer {
            // y = clamp16(r + bias[j]), the sum taken in 32 bits (r and bias both well inside).
            a.lw(T2, 0, RA)
                .add(A0, A0, T2)
                .li(T2, 32767)
                .bge(T2, A0, "not_high")
                .mv(A0, T2)
                .label("not_high")
                .li(T2, -32768)
                .bge(A0, T2, "not_low")
                .mv(A0, T2)
                .label("not_low");
        }
        a.sh(A0, 0, S6).addi(S6, S6, 2).addi(A7, A7, 8);
        if norm == Norm::Layer {
            a.addi(RA, RA, 4);
        }
        a.addi(T1, T1, 2)
            .bltu(T1, S9, "out")
            .mv(S3, S9)
            .addi(S7, S7, -1)
            .j("row")
            .label("norm_done");
    })
}

/// Emits `out = c'` of the int16 at `ptr`: `d·x − Σx` shifted left by s11 (tp = 0) or right (tp = 1).
fn emit_centred(a: &mut Assembler, ptr: u32, out: u32) {
    let (right, done) = (a.fresh_label("c_right"), a.fresh_label("c_done"));
    a.lh(out, 0, ptr)
        .mul(out, out, S8)
        .sub(out, out, S10)
        .bne(TP, ZERO, &right)
        .sll(out, out, S11)
        .j(&done)
        .label(&right)
        .sra(out, out, S11)
        .label(&done);
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;
    use crate::quant::Requant;
    use rand::Rng;

    fn gammas(rng: &mut impl Rng, d: usize) -> Tensor {
        let v = (0..d)
            .flat_map(|_| {
                let g: f64 = rng.gen_range(-3.0..3.0);
                let q = Requant::from_scale(g.abs().max(1e-6) / 4096.0 * 1000.0).unwrap();
                let m = if g < 0.0 { -q.multiplier } else { q.multiplier };
                [m, q.shift as i32]
            })
            .collect();
        Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[d, 2]), v).unwrap())
    }

    #[test]
    fn integer_square_root_is_the_floor() {
        for v in [0u32, 1, 2, 3, 4, 15, 16, 17, 1 << 30, u32::MAX, 999_999_999] {
            let r = isqrt(v);
            assert!(u64::from(r) * u64::from(r) <= u64::from(v), "{v}");
            assert!(u64::from(r + 1) * u64::from(r + 1) > u64::from(v), "{v}");
        }
    }

    #[test]
    fn native_equals_vm_on_odd_shapes_and_scales() {
        let (mut rng, seed) = test_rng("layernorm::native_equals_vm_on_odd_shapes_and_scales");
        // (shape, largest |x|)
        let cases: [(&[usize], i16); 7] = [
            (&[1, 1], 100),
            (&[3, 7], 3),
            (&[5, 384], i16::MAX),
            (&[2, 384], 40),
            (&[4, 3, 33], 5000),
            (&[2, 1536], i16::MAX),
            (&[3, 16], 0),
        ];
        for (shape, max) in cases {
            let d = shape[shape.len() - 1];
            let x = random_i16(&mut rng, shape, max);
            let scale = gammas(&mut rng, d);
            let bias = random_i32(&mut rng, &[d], -2000..2000);
            native_equals_vm(
                &Op::LayerNorm,
                &[&x, &scale, &bias],
                &format!("seed {seed}: layer_norm {shape:?} |x| ≤ {max}"),
            );
        }
    }

    /// With γ = 1 (in units of 1/1000) and β = 0 the output is the float LayerNorm within a few
    /// thousandths, whatever the input's scale.
    #[test]
    fn close_to_the_float_layer_norm() {
        let (mut rng, seed) = test_rng("layernorm::close_to_the_float_layer_norm");
        let d = 384;
        let one = Requant::from_scale(1000.0 / 4096.0).unwrap();
        let scale = Tensor::I32(
            ArrayD::from_shape_vec(
                IxDyn(&[d, 2]),
                (0..d)
                    .flat_map(|_| [one.multiplier, one.shift as i32])
                    .collect(),
            )
            .unwrap(),
        );
        let bias = Tensor::I32(ArrayD::zeros(IxDyn(&[d])));
        for max in [50i16, 3000, i16::MAX] {
            let x = random_i16(&mut rng, &[2, d], max);
            let y = native(Norm::Layer, &[&x, &scale, &bias]).unwrap();
            for (row, out) in x
                .as_i16()
                .unwrap()
                .rows()
                .into_iter()
                .zip(y.as_i16().unwrap().rows())
            {
                let v: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
                let mean = v.iter().sum::<f64>() / d as f64;
                let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / d as f64).sqrt();
                for (x, &y) in v.iter().zip(out) {
                    let want = (x - mean) / sd * 1000.0;
                    assert!(
                        (want - f64::from(y)).abs() < 5.0,
                        "seed {seed}: |x| ≤ {max}: {want} vs {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn rms_norm_native_equals_vm_on_odd_shapes_and_extremes() {
        let (mut rng, seed) =
            test_rng("layernorm::rms_norm_native_equals_vm_on_odd_shapes_and_extremes");
        // (shape, largest |x|)
        let cases: [(&[usize], i16); 8] = [
            (&[1, 1], 100),
            (&[0, 5], 100),
            (&[3, 7], 3),
            (&[5, 64], i16::MAX),
            (&[4, 3, 33], 5000),
            (&[2, 1536], i16::MAX),
            (&[3, 16], 0),
            (&[1, 1 << 14], i16::MAX),
        ];
        for (shape, max) in cases {
            let d = shape[shape.len() - 1];
            let x = random_i16(&mut rng, shape, max);
            native_equals_vm(
                &Op::RmsNorm,
                &[&x, &gammas(&mut rng, d)],
                &format!("seed {seed}: rms_norm {shape:?} |x| ≤ {max}"),
            );
        }
        // Rows of one extreme value, and of int16's two ends.
        let mut v = vec![i16::MIN; 8];
        v.extend([i16::MAX; 8]);
        v.extend([i16::MIN, i16::MAX, 0, 1, -1, i16::MIN, i16::MAX, 7]);
        let x = Tensor::I16(ArrayD::from_shape_vec(IxDyn(&[3, 8]), v).unwrap());
        native_equals_vm(
            &Op::RmsNorm,
            &[&x, &gammas(&mut rng, 8)],
            &format!("seed {seed}: rms_norm extremes"),
        );
    }

    /// With γ = 1 (in units of 1/1000) the output is the float RMSNorm within a few thousandths.
    #[test]
    fn rms_norm_is_close_to_the_float_one() {
        let (mut rng, seed) = test_rng("layernorm::rms_norm_is_close_to_the_float_one");
        let d = 64;
        let one = Requant::from_scale(1000.0 / 4096.0).unwrap();
        let scale = Tensor::I32(
            ArrayD::from_shape_vec(
                IxDyn(&[d, 2]),
                (0..d)
                    .flat_map(|_| [one.multiplier, one.shift as i32])
                    .collect(),
            )
            .unwrap(),
        );
        for max in [50i16, 3000, i16::MAX] {
            let x = random_i16(&mut rng, &[3, d], max);
            let y = native(Norm::Rms, &[&x, &scale]).unwrap();
            for (row, out) in x
                .as_i16()
                .unwrap()
                .rows()
                .into_iter()
                .zip(y.as_i16().unwrap().rows())
            {
                let v: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
                let rms = (v.iter().map(|x| x * x).sum::<f64>() / d as f64).sqrt();
                for (x, &y) in v.iter().zip(out) {
                    let want = x / rms * 1000.0;
                    assert!(
                        (want - f64::from(y)).abs() < 5.0,
                        "seed {seed}: |x| ≤ {max}: {want} vs {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn rms_norm_names_what_does_not_fit() {
        let (mut rng, _) = test_rng("layernorm::rms_norm_names_what_does_not_fit");
        let x = random_i16(&mut rng, &[2, 4], 10);
        let x8 = random_i8(&mut rng, &[2, 4]);
        let empty = random_i16(&mut rng, &[2, 0], 10);
        let scale = gammas(&mut rng, 4);
        let scale3 = gammas(&mut rng, 3);
        let bias = random_i32(&mut rng, &[4], 0..1);
        let bad_shift = Tensor::I32(
            ArrayD::from_shape_vec(IxDyn(&[4, 2]), vec![1, 0, 1, 63, 1, 1, 1, 1]).unwrap(),
        );
        let cases: [(&[&Tensor], &str); 6] = [
            (&[&x8, &scale], "needs i16 x"),
            (&[&x, &scale3], "scale must be i32 [4, 2]"),
            (&[&x, &scale, &bias], "takes 2 inputs"),
            (&[&empty, &scale], "1 ≤ d"),
            (&[&x, &bad_shift], "output channel 0"),
            (&[&x], "takes 2 inputs"),
        ];
        for (inputs, want) in cases {
            let err = Op::RmsNorm.native(inputs).unwrap_err().to_string();
            assert!(
                err.contains("rms_norm") && err.contains(want),
                "{err} (wanted {want})"
            );
        }
    }

    #[test]
    fn what_does_not_fit_is_named() {
        let (mut rng, _) = test_rng("layernorm::what_does_not_fit_is_named");
        let x = random_i16(&mut rng, &[2, 4], 10);
        let x8 = random_i8(&mut rng, &[2, 4]);
        let scale = gammas(&mut rng, 4);
        let bias = random_i32(&mut rng, &[4], 0..1);
        let bias3 = random_i32(&mut rng, &[3], 0..1);
        let scale3 = gammas(&mut rng, 3);
        let cases: [(&[&Tensor], &str); 3] = [
            (&[&x8, &scale, &bias], "needs i16 x"),
            (&[&x, &scale, &bias3], "bias must be [4]"),
            (&[&x, &scale3, &bias], "scale must be i32 [4, 2]"),
        ];
        for (inputs, want) in cases {
            let err = Op::LayerNorm.native(inputs).unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }
}
