//! Reshape (and Flatten): the same bytes under another shape.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::tensor::{DType, Tensor};
use opml_vm::ElfImage;

pub(super) fn output_type(
    shape: &[usize],
    inputs: &[&Tensor],
) -> Result<(DType, Vec<usize>), OpError> {
    arity("reshape", inputs, 1)?;
    if shape.iter().product::<usize>() != inputs[0].len() {
        return Err(input_error(
            "reshape",
            format!(
                "{:?} has {} elements, shape {shape:?} needs {}",
                inputs[0].shape(),
                inputs[0].len(),
                shape.iter().product::<usize>()
            ),
        ));
    }
    Ok((inputs[0].dtype(), shape.to_vec()))
}

pub(super) fn native(shape: &[usize], x: &Tensor) -> Result<Tensor, OpError> {
    Ok(Tensor::from_le_bytes(x.dtype(), shape, &x.to_le_bytes())?)
}

/// Params: the lengths only.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 1,
    fields: &[],
};

/// Copies the input buffer word by word (the bytes past its end are zero, as the output's must be).
pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    build_kernel(&LAYOUT, |a| {
        a.li(S2, TABLE_ADDR as i32)
            .lw(A0, 0, S2)
            .lw(A1, 4, S2)
            .lw(T0, LAYOUT.len_offset(0), S0)
            .addi(T0, T0, 3)
            .srli(T0, T0, 2)
            .label("loop")
            .beq(T0, ZERO, "done")
            .lw(T1, 0, A0)
            .sw(T1, 0, A1)
            .addi(A0, A0, 4)
            .addi(A1, A1, 4)
            .addi(T0, T0, -1)
            .j("loop")
            .label("done");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;

    /// The copy kernel's output commitment is the native one on many sizes: the accumulator that
    /// every kernel finishes on commits exactly like a tensor.
    #[test]
    fn commitments_agree_on_many_sizes() {
        let (mut rng, _) = test_rng("reshape::commitments_agree_on_many_sizes");
        for n in [
            1usize, 2, 31, 32, 33, 63, 64, 65, 96, 127, 128, 129, 255, 256, 257, 1000, 1024, 4097,
        ] {
            let x = random_i8(&mut rng, &[n]);
            native_equals_vm(
                &Op::Reshape { shape: vec![1, n] },
                &[&x],
                &format!("reshape i8 [{n}]"),
            );
            let y = random_i32(&mut rng, &[n], i32::MIN..i32::MAX);
            native_equals_vm(
                &Op::Reshape { shape: vec![n, 1] },
                &[&y],
                &format!("reshape i32 [{n}]"),
            );
        }
    }

    #[test]
    fn element_count_must_match() {
        let x = random_i8(&mut test_rng("reshape::element_count_must_match").0, &[6]);
        let err = Op::Reshape { shape: vec![4] }.native(&[&x]).unwrap_err();
        assert!(err.to_string().contains("needs 4"), "{err}");
    }
}
