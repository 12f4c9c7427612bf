//! Element-wise product of two int16 tensors of one shape, requantized to int16 (kind `mul16`):
//! `y = clamp16(requant(a · b))`. SwiGLU's `silu(gate) · up` in a LLaMA feed-forward block. The
//! product of two int16 values always fits int32 (|a·b| ≤ 2^30), so nothing wraps.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{elementwise, elementwise_kernel, KernelError, ParamLayout};
use crate::quant::{emit_requant_clamped, Requant};
use crate::tensor::{DType, Tensor};
use opml_vm::ElfImage;

/// Parameters of a Mul16 node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mul16 {
    /// Scale from the product `a·b` to the output.
    pub requant: Requant,
}

impl Mul16 {
    pub(super) fn output_type(&self, inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
        arity("mul16", inputs, 2)?;
        self.requant
            .validate()
            .map_err(|e| input_error("mul16", e.to_string()))?;
        let (a, b) = (inputs[0], inputs[1]);
        if a.dtype() != DType::I16 || b.dtype() != DType::I16 || a.shape() != b.shape() {
            return Err(input_error(
                "mul16",
                format!(
                    "needs two i16 tensors of one shape, got {:?} {:?} and {:?} {:?}",
                    a.dtype(),
                    a.shape(),
                    b.dtype(),
                    b.shape()
                ),
            ));
        }
        Ok((DType::I16, a.shape().to_vec()))
    }

    pub(super) fn native(&self, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        self.output_type(inputs)?;
        let mut y = inputs[0].as_i16()?.clone();
        y.zip_mut_with(inputs[1].as_i16()?, |x, &v| {
            *x = self.requant.apply_i16(i32::from(*x) * i32::from(v), 0);
        });
        Ok(Tensor::I16(y))
    }

    pub(super) fn kernel_params(&self) -> Vec<i32> {
        LAYOUT.encode(&[
            ("multiplier", self.requant.multiplier),
            ("shift", self.requant.shift as i32),
        ])
    }
}

/// The params words of a Mul16 node after the lengths: the requantization of the product.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 2,
    fields: &["multiplier", "shift"],
};

pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    let [a_el, b_el, _] = elementwise::ELEMENTS;
    elementwise_kernel(
        &LAYOUT,
        &[DType::I16, DType::I16],
        DType::I16,
        |a| {
            a.lw(S10, LAYOUT.offset("multiplier"), S0)
                .lw(S11, LAYOUT.offset("shift"), S0);
        },
        |a| {
            a.mul(a_el, a_el, b_el);
            emit_requant_clamped(a, a_el, S10, S11, elementwise::RESULT, (-32768, 32767));
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;
    use ndarray::{ArrayD, IxDyn};
    use rand::Rng;

    #[test]
    fn native_equals_vm_on_odd_shapes_and_extremes() {
        let (mut rng, seed) = test_rng("mul::native_equals_vm_on_odd_shapes_and_extremes");
        let extremes = Tensor::I16(
            ArrayD::from_shape_vec(IxDyn(&[6]), vec![-32768, -32768, 32767, 0, 1, -1]).unwrap(),
        );
        let extremes_b = Tensor::I16(
            ArrayD::from_shape_vec(IxDyn(&[6]), vec![-32768, 32767, 32767, -32768, -1, -1])
                .unwrap(),
        );
        let mut pairs = vec![(extremes, extremes_b)];
        for shape in [&[0usize][..], &[1], &[33], &[3, 0], &[3, 5, 7], &[2, 172]] {
            let max = if shape.len() == 1 { i16::MAX } else { 300 };
            pairs.push((
                random_i16(&mut rng, shape, max),
                random_i16(&mut rng, shape, max),
            ));
        }
        for (a, b) in &pairs {
            for requant in [
                Requant {
                    multiplier: 1 << 30,
                    shift: 30,
                },
                Requant {
                    multiplier: i32::MIN,
                    shift: 62,
                },
                Requant {
                    multiplier: -7,
                    shift: 1,
                },
                Requant::from_scale(rng.gen_range(1e-6..2.0)).unwrap(),
            ] {
                native_equals_vm(
                    &Op::Mul16(Mul16 { requant }),
                    &[a, b],
                    &format!("seed {seed}: mul16 {:?} {requant:?}", a.shape()),
                );
            }
        }
    }

    #[test]
    fn what_does_not_fit_is_named() {
        let mut rng = test_rng("mul::what_does_not_fit_is_named").0;
        let ok = Requant {
            multiplier: 1,
            shift: 1,
        };
        let bad = Requant {
            multiplier: 1,
            shift: 0,
        };
        let (a, b3) = (random_i16(&mut rng, &[4], 9), random_i16(&mut rng, &[3], 9));
        let a8 = random_i8(&mut rng, &[4]);
        let cases: [(Requant, &[&Tensor], &str); 4] = [
            (ok, &[&a, &b3], "one shape"),
            (ok, &[&a, &a8], "two i16"),
            (ok, &[&a], "takes 2 inputs"),
            (bad, &[&a, &a], "shift 0"),
        ];
        for (requant, inputs, want) in cases {
            let err = Op::Mul16(Mul16 { requant })
                .native(inputs)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }
}
