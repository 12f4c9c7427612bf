//! ArgMax over an int8 vector (kind `arg_max`) or an int16 one (kind `arg_max16`: a language
//! model's logits): the index of the first largest element, as int32.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use opml_vm::ElfImage;

/// The kind's name for an input of `dtype`.
fn name(dtype: DType) -> &'static str {
    match dtype {
        DType::I16 => "arg_max16",
        _ => "arg_max",
    }
}

/// Output type of the arg max of an input of `dtype` (int8 for `arg_max`, int16 for `arg_max16`).
pub(super) fn output_type(
    dtype: DType,
    inputs: &[&Tensor],
) -> Result<(DType, Vec<usize>), OpError> {
    let op = name(dtype);
    arity(op, inputs, 1)?;
    let x = inputs[0];
    if x.dtype() != dtype || x.shape().len() != 1 || x.is_empty() {
        return Err(input_error(
            op,
            format!(
                "needs a non-empty {dtype:?} vector, got {:?} {:?}",
                x.dtype(),
                x.shape()
            ),
        ));
    }
    Ok((DType::I32, vec![1]))
}

/// The index of the first largest value.
fn first_largest<T: PartialOrd + Copy>(x: impl Iterator<Item = T>) -> usize {
    let mut best: Option<(usize, T)> = None;
    for (k, v) in x.enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((k, v));
        }
    }
    best.map_or(0, |(k, _)| k)
}

pub(super) fn native(x: &Tensor) -> Result<Tensor, OpError> {
    let best = match x {
        Tensor::I16(v) => first_largest(v.iter().copied()),
        _ => first_largest(x.as_i8()?.iter().copied()),
    };
    Ok(Tensor::I32(
        ArrayD::from_shape_vec(IxDyn(&[1]), vec![best as i32]).expect("one element"),
    ))
}

/// Params: the lengths only.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 1,
    fields: &[],
};

/// The kernel of `arg_max` (int8) or `arg_max16` (int16); t0 counts bytes, t3 the index.
pub(super) fn kernel(dtype: DType) -> Result<ElfImage, KernelError> {
    build_kernel(&LAYOUT, |a| {
        a.li(S2, TABLE_ADDR as i32)
            .lw(A0, 0, S2)
            .lw(A1, 4, S2)
            .lw(T0, LAYOUT.len_offset(0), S0);
        if dtype == DType::I16 {
            a.srli(T0, T0, 1);
        }
        // The best value so far starts below every value of the type.
        let below = if dtype == DType::I16 { -32769 } else { -129 };
        a.li(T1, below)
            .li(T2, 0) // its index
            .li(T3, 0) // index
            .label("loop")
            .bgeu(T3, T0, "done");
        if dtype == DType::I16 {
            a.lh(T4, 0, A0);
        } else {
            a.lb(T4, 0, A0);
        }
        a.bge(T1, T4, "next")
            .mv(T1, T4)
            .mv(T2, T3)
            .label("next")
            .addi(A0, A0, dtype.size() as i32)
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
    fn arg_max16_native_matches_vm() {
        let (mut rng, seed) = test_rng("argmax::arg_max16_native_matches_vm");
        for n in [1usize, 2, 33, 256, 1001] {
            let x = random_i16(&mut rng, &[n], i16::MAX);
            native_equals_vm(
                &Op::ArgMax16,
                &[&x],
                &format!("seed {seed}: arg_max16 [{n}]"),
            );
        }
        for (values, want) in [
            (vec![3i16, 700, 700, 1], 1),
            (vec![i16::MIN; 5], 0),
            (vec![-5, i16::MIN, i16::MAX], 2),
            (vec![i16::MAX, i16::MAX], 0),
            (vec![-200, -129, -130], 1),
        ] {
            let x = Tensor::I16(ArrayD::from_shape_vec(IxDyn(&[values.len()]), values).unwrap());
            native_equals_vm(&Op::ArgMax16, &[&x], "arg_max16 ties and extremes");
            assert_eq!(
                Op::ArgMax16.native(&[&x]).unwrap().as_i32().unwrap()[[0]],
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
        for x in [
            random_i16(&mut rng, &[2, 2], 5),
            random_i16(&mut rng, &[0], 5),
            random_i8(&mut rng, &[3]),
        ] {
            let err = Op::ArgMax16.native(&[&x]).unwrap_err().to_string();
            assert!(err.contains("arg_max16"), "{err}");
        }
    }
}
