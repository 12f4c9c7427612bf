//! ArgMax over an int8 vector: the index of the first largest element, as int32.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use opml_vm::ElfImage;

pub(super) fn output_type(inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
    arity("arg_max", inputs, 1)?;
    let x = inputs[0];
    if x.dtype() != DType::I8 || x.shape().len() != 1 || x.is_empty() {
        return Err(input_error(
            "arg_max",
            format!(
                "needs a non-empty i8 vector, got {:?} {:?}",
                x.dtype(),
                x.shape()
            ),
        ));
    }
    Ok((DType::I32, vec![1]))
}

pub(super) fn native(x: &Tensor) -> Result<Tensor, OpError> {
    let x = x.as_i8()?;
    let mut best = 0;
    for (k, &v) in x.iter().enumerate() {
        if v > x[[best]] {
            best = k;
        }
    }
    Ok(Tensor::I32(
        ArrayD::from_shape_vec(IxDyn(&[1]), vec![best as i32]).expect("one element"),
    ))
}

/// Params: the lengths only.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 1,
    fields: &[],
};

pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    build_kernel(&LAYOUT, |a| {
        a.li(S2, TABLE_ADDR as i32)
            .lw(A0, 0, S2)
            .lw(A1, 4, S2)
            .lw(T0, LAYOUT.len_offset(0), S0)
            .li(T1, -129) // best value so far
            .li(T2, 0) // its index
            .li(T3, 0) // index
            .label("loop")
            .bgeu(T3, T0, "done")
            .lb(T4, 0, A0)
            .bge(T1, T4, "next")
            .mv(T1, T4)
            .mv(T2, T3)
            .label("next")
            .addi(A0, A0, 1)
            .addi(T3, T3, 1)
            .j("loop")
            .label("done")
            .sw(T2, 0, A1);
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use crate::tensor::Tensor;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn native_matches_vm() {
        let (mut rng, _) = test_rng("argmax::native_matches_vm");
        for n in [1usize, 2, 10, 33, 1000] {
            let x = random_i8(&mut rng, &[n]);
            native_equals_vm(&Op::ArgMax, &[&x], &format!("arg_max [{n}]"));
        }
        // Ties go to the first; all -128 gives 0.
        for (values, want) in [
            (vec![3i8, 7, 7, 1], 1),
            (vec![-128; 5], 0),
            (vec![-5, -4, 127], 2),
        ] {
            let x = Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[values.len()]), values).unwrap());
            native_equals_vm(&Op::ArgMax, &[&x], "ties");
            assert_eq!(
                Op::ArgMax.native(&[&x]).unwrap().as_i32().unwrap()[[0]],
                want
            );
        }
    }

    #[test]
    fn rejects_what_it_cannot_take() {
        let mut rng = test_rng("argmax::rejects_what_it_cannot_take").0;
        for x in [
            random_i8(&mut rng, &[2, 2]),
            random_i8(&mut rng, &[0]),
            random_i32(&mut rng, &[3], 0..5),
        ] {
            assert!(Op::ArgMax.native(&[&x]).is_err());
        }
    }
}
