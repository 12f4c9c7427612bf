//! Softmax over the last axis of int16 scores, with a padding mask, in integers:
//!
//! for each row `x` of `n` scores: `m = max x_j` over the keys `j` with `mask[j] ≠ 0`;
//! `e_j = exp_table[m − x_j]` (0 when `m − x_j` is past the table's end, or `j` is masked);
//! `S = Σ e_j`; `p_j = clamp16((e_j · 2^15 + S/2) / S)` (truncating division), or 0 when `S ≤ 0`.
//!
//! The table holds `round(2^15 · exp(−δ · s))` for the scores' scale `s` (the import fills it; it is
//! a weight of the model, so its commitment covers it), and the output is the probability in Q15
//! (scale 2^-15). A table of `L` entries covers score gaps up to `L − 1`; beyond, a key's weight is
//! taken as 0, which the import makes true to int16 precision by sizing the table.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use opml_vm::ElfImage;
use rayon::prelude::*;

/// The most entries of the exp table (every gap between two int16 scores).
pub(super) const MAX_TABLE: usize = 1 << 16;

/// `(rows, n)` of `x [.., n]`, `mask [n]`, `table [L]`.
fn dims(inputs: &[&Tensor]) -> Result<(usize, usize), OpError> {
    arity("softmax", inputs, 3)?;
    let (x, mask, table) = (inputs[0], inputs[1], inputs[2]);
    let types = [x.dtype(), mask.dtype(), table.dtype()];
    if types != [DType::I16, DType::I32, DType::I16] {
        return Err(input_error(
            "softmax",
            format!("needs i16 x, i32 mask, i16 exp table; got {types:?}"),
        ));
    }
    let n = match x.shape().last() {
        Some(&n) if (1..=MAX_TABLE).contains(&n) => n,
        _ => {
            return Err(input_error(
                "softmax",
                format!(
                    "x must be [.., n] with 1 ≤ n ≤ {MAX_TABLE}, got {:?}",
                    x.shape()
                ),
            ))
        }
    };
    if mask.shape() != [n] {
        return Err(input_error(
            "softmax",
            format!("mask must be [{n}], got {:?}", mask.shape()),
        ));
    }
    if !matches!(table.shape(), [l] if (1..=MAX_TABLE).contains(l)) {
        return Err(input_error(
            "softmax",
            format!(
                "the exp table must be [L], 1 ≤ L ≤ {MAX_TABLE}; got {:?}",
                table.shape()
            ),
        ));
    }
    Ok((x.len() / n, n))
}

pub(super) fn output_type(inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
    dims(inputs)?;
    Ok((DType::I16, inputs[0].shape().to_vec()))
}

/// One row's probabilities.
fn row_softmax(x: &[i16], mask: &[i32], table: &[i16], out: &mut [i16]) {
    let m = x
        .iter()
        .zip(mask)
        .filter(|(_, &k)| k != 0)
        .map(|(&v, _)| i32::from(v))
        .max();
    let Some(m) = m else {
        out.fill(0);
        return;
    };
    let mut sum = 0i32;
    for ((dst, &v), &k) in out.iter_mut().zip(x).zip(mask) {
        let gap = (m - i32::from(v)) as usize;
        *dst = if k != 0 && gap < table.len() {
            table[gap]
        } else {
            0
        };
        sum = sum.wrapping_add(i32::from(*dst));
    }
    for p in out.iter_mut() {
        *p = if sum <= 0 {
            0
        } else {
            ((i32::from(*p) << 15).wrapping_add(sum >> 1) / sum).clamp(-32768, 32767) as i16
        };
    }
}

pub(super) fn native(inputs: &[&Tensor]) -> Result<Tensor, OpError> {
    let (_, n) = dims(inputs)?;
    let x = inputs[0].as_i16()?.as_slice().expect("standard layout");
    let mask = inputs[1].as_i32()?.as_slice().expect("standard layout");
    let table = inputs[2].as_i16()?.as_slice().expect("standard layout");
    let mut y = vec![0i16; x.len()];
    y.par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .for_each(|(out, row)| row_softmax(row, mask, table, out));
    Ok(Tensor::I16(
        ArrayD::from_shape_vec(IxDyn(inputs[0].shape()), y).expect("the input's shape"),
    ))
}

pub(super) fn kernel_params(inputs: &[&Tensor]) -> Vec<i32> {
    let (rows, n) = dims(inputs).expect("checked by output_type");
    LAYOUT.encode(&[
        ("rows", rows as i32),
        ("n", n as i32),
        ("table_len", inputs[2].len() as i32),
    ])
}

/// The params words of a Softmax node after the lengths: rows, row length, exp table entries.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 3,
    fields: &["rows", "n", "table_len"],
};

/// Registers: s3 x row, s4 mask, s5 table, s6 output row, s7 rows left, s8 n, s9 table length,
/// s10 the row's max, s11 the row's sum.
pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    let p = |f| LAYOUT.offset(f);
    build_kernel(&LAYOUT, |a| {
        a.li(T3, TABLE_ADDR as i32)
            .lw(S3, 0, T3)
            .lw(S4, 4, T3)
            .lw(S5, 8, T3)
            .lw(S6, 12, T3)
            .lw(S7, p("rows"), S0)
            .lw(S8, p("n"), S0)
            .lw(S9, p("table_len"), S0)
            .label("sm_row")
            .beq(S7, ZERO, "sm_done")
            // s10 = max over unmasked keys, or below every int16 when none is.
            .li(S10, -32769)
            .li(T0, 0)
            .label("sm_max")
            .bgeu(T0, S8, "sm_max_done")
            .slli(T1, T0, 2)
            .add(T1, S4, T1)
            .lw(T1, 0, T1)
            .beq(T1, ZERO, "sm_max_next")
            .slli(T1, T0, 1)
            .add(T1, S3, T1)
            .lh(T1, 0, T1)
            .bge(S10, T1, "sm_max_next")
            .mv(S10, T1)
            .label("sm_max_next")
            .addi(T0, T0, 1)
            .j("sm_max")
            .label("sm_max_done")
            // e_j into the output row, their sum into s11.
            .li(S11, 0)
            .li(T0, 0)
            .label("sm_exp")
            .bgeu(T0, S8, "sm_exp_done")
            .li(T2, 0)
            .slli(T1, T0, 2)
            .add(T1, S4, T1)
            .lw(T1, 0, T1)
            .beq(T1, ZERO, "sm_exp_store")
            .slli(T1, T0, 1)
            .add(T1, S3, T1)
            .lh(T1, 0, T1)
            .sub(T1, S10, T1)
            .bgeu(T1, S9, "sm_exp_store")
            .slli(T1, T1, 1)
            .add(T1, S5, T1)
            .lh(T2, 0, T1)
            .label("sm_exp_store")
            .slli(T1, T0, 1)
            .add(T1, S6, T1)
            .sh(T2, 0, T1)
            .add(S11, S11, T2)
            .addi(T0, T0, 1)
            .j("sm_exp")
            .label("sm_exp_done")
            // p_j = clamp16((e_j · 2^15 + S/2) / S), or 0 when S ≤ 0.
            .srai(A1, S11, 1)
            .li(A2, 32767)
            .li(A3, -32768)
            .li(T0, 0)
            .label("sm_div")
            .bgeu(T0, S8, "sm_div_done")
            .slli(T1, T0, 1)
            .add(T1, S6, T1)
            .li(T2, 0)
            .bge(ZERO, S11, "sm_div_store")
            .lh(T2, 0, T1)
            .slli(T2, T2, 15)
            .add(T2, T2, A1)
            .div(T2, T2, S11)
            .bge(A2, T2, "sm_not_high")
            .mv(T2, A2)
            .label("sm_not_high")
            .bge(T2, A3, "sm_div_store")
            .mv(T2, A3)
            .label("sm_div_store")
            .sh(T2, 0, T1)
            .addi(T0, T0, 1)
            .j("sm_div")
            .label("sm_div_done")
            .slli(T0, S8, 1)
            .add(S3, S3, T0)
            .add(S6, S6, T0)
            .addi(S7, S7, -1)
            .j("sm_row")
            .label("sm_done");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;
    use rand::Rng;

    /// The table of `exp(−δ·scale)` in Q15, as the import builds it.
    fn exp_table(scale: f64, len: usize) -> Tensor {
        Tensor::I16(
            ndarray::Array1::from_iter(
                (0..len)
                    .map(|d| ((-(d as f64) * scale).exp() * 32768.0).round().min(32767.0) as i16),
            )
            .into_dyn(),
        )
    }

    fn mask(v: Vec<i32>) -> Tensor {
        Tensor::I32(ndarray::Array1::from(v).into_dyn())
    }

    #[test]
    fn native_equals_vm_with_masks() {
        let (mut rng, seed) = test_rng("softmax::native_equals_vm_with_masks");
        // (shape, largest |x|, masked keys, table length)
        let cases: [(&[usize], i16, &[usize], usize); 6] = [
            (&[1, 1], 100, &[], 1),
            (&[12, 16, 16], 3000, &[9, 10, 11, 12, 13, 14, 15], 4096),
            (&[3, 7], i16::MAX, &[], MAX_TABLE),
            (&[2, 5], 10, &[0, 1, 2, 3, 4], 64),
            (&[4, 33], 20_000, &[32], 700),
            (&[2, 3, 9], 50, &[0], 16),
        ];
        for (shape, max, masked, len) in cases {
            let n = shape[shape.len() - 1];
            let x = random_i16(&mut rng, shape, max);
            let m = mask(
                (0..n)
                    .map(|j| {
                        if masked.contains(&j) {
                            0
                        } else {
                            rng.gen_range(1..30_000)
                        }
                    })
                    .collect(),
            );
            let table = exp_table(rng.gen_range(1e-4..0.05), len);
            native_equals_vm(
                &Op::Softmax,
                &[&x, &m, &table],
                &format!("seed {seed}: softmax {shape:?} masked {masked:?} table {len}"),
            );
        }
    }

    /// A hostile table (negative or zero weights) still gives a defined answer on both sides.
    #[test]
    fn hostile_tables_agree_too() {
        let (mut rng, seed) = test_rng("softmax::hostile_tables_agree_too");
        let x = random_i16(&mut rng, &[3, 8], 200);
        let m = mask(vec![1; 8]);
        for table in [
            random_i16(&mut rng, &[300], i16::MAX),
            Tensor::I16(ndarray::Array1::zeros(5).into_dyn()),
        ] {
            native_equals_vm(
                &Op::Softmax,
                &[&x, &m, &table],
                &format!("seed {seed}: hostile table"),
            );
        }
    }

    #[test]
    fn close_to_the_float_softmax_and_masked_keys_get_nothing() {
        let scale = 0.01;
        let x = Tensor::I16(ndarray::Array1::from(vec![100i16, 0, -100, 250, 30000]).into_dyn());
        let y = native(&[&x, &mask(vec![5, 7, 9, 11, 0]), &exp_table(scale, 2048)]).unwrap();
        let y = y.as_i16().unwrap();
        let logits = [1.0f64, 0.0, -1.0, 2.5];
        let total: f64 = logits.iter().map(|v| v.exp()).sum();
        for (j, l) in logits.iter().enumerate() {
            let want = l.exp() / total;
            assert!(
                (f64::from(y[j]) / 32768.0 - want).abs() < 2e-4,
                "{j}: {} vs {want}",
                y[j]
            );
        }
        assert_eq!(y[4], 0, "a masked key");
    }

    #[test]
    fn what_does_not_fit_is_named() {
        let (mut rng, _) = test_rng("softmax::what_does_not_fit_is_named");
        let x = random_i16(&mut rng, &[2, 4], 10);
        let t = exp_table(0.1, 10);
        let cases: [(Vec<Tensor>, &str); 3] = [
            (
                vec![x.clone(), mask(vec![1; 3]), t.clone()],
                "mask must be [4]",
            ),
            (
                vec![x.clone(), mask(vec![1; 4]), random_i16(&mut rng, &[0], 1)],
                "exp table must be",
            ),
            (
                vec![random_i8(&mut rng, &[2, 4]), mask(vec![1; 4]), t],
                "needs i16 x",
            ),
        ];
        for (inputs, want) in cases {
            let refs: Vec<&Tensor> = inputs.iter().collect();
            let err = native(&refs).unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }
}
