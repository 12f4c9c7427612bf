//! Mean pooling over the unmasked rows of int16 activations, the sentence embedding of a
//! transformer encoder: `y[d] = (Σ_{t: mask[t] ≠ 0} x[t, d]) / count` (int32 sum, truncating
//! division), 0 when every row is masked.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use opml_vm::ElfImage;

/// The most rows pooled (so that an int16 column's sum fits int32).
const MAX_ROWS: usize = 1 << 16;

/// `(t, d)` of `x [t, d]`, `mask [t]`.
fn dims(inputs: &[&Tensor]) -> Result<(usize, usize), OpError> {
    arity("mean_pool", inputs, 2)?;
    let (x, mask) = (inputs[0], inputs[1]);
    match (x.dtype(), mask.dtype(), x.shape(), mask.shape()) {
        (DType::I16, DType::I32, [t, d], [mt]) if t == mt && *t <= MAX_ROWS => Ok((*t, *d)),
        _ => Err(input_error(
            "mean_pool",
            format!(
                "needs i16 x [t, d] (t ≤ {MAX_ROWS}) and an i32 mask [t]; got {:?} {:?} and {:?} {:?}",
                x.dtype(),
                x.shape(),
                mask.dtype(),
                mask.shape()
            ),
        )),
    }
}

pub(super) fn output_type(inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
    let (_, d) = dims(inputs)?;
    Ok((DType::I16, vec![d]))
}

pub(super) fn native(inputs: &[&Tensor]) -> Result<Tensor, OpError> {
    let (_, d) = dims(inputs)?;
    let x = inputs[0].as_i16()?;
    let mask = inputs[1].as_i32()?;
    let rows: Vec<_> = x
        .rows()
        .into_iter()
        .zip(mask.iter())
        .filter(|(_, &m)| m != 0)
        .map(|(r, _)| r)
        .collect();
    let y = (0..d)
        .map(|j| {
            if rows.is_empty() {
                return 0;
            }
            let sum: i32 = rows.iter().map(|r| i32::from(r[j])).sum();
            (sum / rows.len() as i32) as i16
        })
        .collect();
    Ok(Tensor::I16(
        ArrayD::from_shape_vec(IxDyn(&[d]), y).expect("d outputs"),
    ))
}

pub(super) fn kernel_params(inputs: &[&Tensor]) -> Vec<i32> {
    let (t, d) = dims(inputs).expect("checked by output_type");
    LAYOUT.encode(&[("t", t as i32), ("d", d as i32)])
}

/// The params words of a MeanPool node after the lengths: rows, row length.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 2,
    fields: &["t", "d"],
};

/// Column by column: the sum and count of the unmasked rows, then one division.
pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    let p = |f| LAYOUT.offset(f);
    build_kernel(&LAYOUT, |a| {
        a.li(T3, TABLE_ADDR as i32)
            .lw(S3, 0, T3) // x column
            .lw(S4, 4, T3) // mask
            .lw(S6, 8, T3) // output
            .lw(S7, p("t"), S0)
            .lw(S8, p("d"), S0)
            .slli(S9, S8, 1) // row bytes
            .li(S10, 0) // column
            .label("pool_col")
            .bgeu(S10, S8, "pool_done")
            .li(T0, 0) // sum
            .li(T1, 0) // count
            .li(T2, 0) // row
            .mv(A0, S3)
            .label("pool_row")
            .bgeu(T2, S7, "pool_row_done")
            .slli(A1, T2, 2)
            .add(A1, S4, A1)
            .lw(A1, 0, A1)
            .beq(A1, ZERO, "pool_skip")
            .lh(A1, 0, A0)
            .add(T0, T0, A1)
            .addi(T1, T1, 1)
            .label("pool_skip")
            .add(A0, A0, S9)
            .addi(T2, T2, 1)
            .j("pool_row")
            .label("pool_row_done")
            .beq(T1, ZERO, "pool_store")
            .div(T0, T0, T1)
            .label("pool_store")
            .sh(T0, 0, S6)
            .addi(S6, S6, 2)
            .addi(S3, S3, 2)
            .addi(S10, S10, 1)
            .j("pool_col")
            .label("pool_done");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;
    use rand::Rng;

    fn mask(v: Vec<i32>) -> Tensor {
        Tensor::I32(ndarray::Array1::from(v).into_dyn())
    }

    #[test]
    fn native_equals_vm_with_masks() {
        let (mut rng, seed) = test_rng("meanpool::native_equals_vm_with_masks");
        for (t, d) in [(1usize, 1usize), (16, 384), (7, 33)] {
            let x = random_i16(&mut rng, &[t, d], i16::MAX);
            for m in [
                vec![1; t],
                (0..t).map(|_| rng.gen_range(0..3)).collect(),
                vec![0; t],
            ] {
                native_equals_vm(
                    &Op::MeanPool,
                    &[&x, &mask(m)],
                    &format!("seed {seed}: mean_pool [{t}, {d}]"),
                );
            }
        }
    }

    #[test]
    fn averages_only_unmasked_rows() {
        let x = Tensor::I16(
            ndarray::Array2::from_shape_vec((3, 2), vec![10i16, -7, 20, -8, 1000, 1000])
                .unwrap()
                .into_dyn(),
        );
        let y = native(&[&x, &mask(vec![1, 1, 0])]).unwrap();
        // (10 + 20) / 2 = 15; (−7 − 8) / 2 = −7 (truncating).
        assert_eq!(y.as_i16().unwrap().as_slice().unwrap(), [15, -7]);
    }
}
