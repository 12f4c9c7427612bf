//! Elementwise Add of two tensors of one shape and type (int8, or int16 for a transformer's
//! residual stream: kind `add16`), each at its own scale: `y = requant(a·ma + b·mb)`, where `ma`,
//! `mb` put both inputs on a common integer scale (the sum wraps in int32) and one multiplier and
//! shift bring it to the output's scale and type.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{elementwise, elementwise_kernel, KernelError, ParamLayout};
use crate::quant::{emit_requant_clamped, Requant};
use crate::tensor::{DType, Tensor};
use opml_vm::ElfImage;

/// Parameters of an Add node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Add {
    /// Integer weight of the first input.
    pub a_multiplier: i32,
    /// Integer weight of the second input.
    pub b_multiplier: i32,
    /// Scale from the weighted sum to the output.
    pub requant: Requant,
}

/// The op's name and saturation bounds for inputs of `dtype`.
fn kind(dtype: DType) -> (&'static str, (i32, i32)) {
    match dtype {
        DType::I16 => ("add16", (-32768, 32767)),
        _ => ("add", (-128, 127)),
    }
}

impl Add {
    /// Output type and shape for two inputs of `dtype` (int8 for `add`, int16 for `add16`).
    pub(super) fn output_type(
        &self,
        dtype: DType,
        inputs: &[&Tensor],
    ) -> Result<(DType, Vec<usize>), OpError> {
        let (name, _) = kind(dtype);
        arity(name, inputs, 2)?;
        self.requant
            .validate()
            .map_err(|e| input_error(name, e.to_string()))?;
        let (a, b) = (inputs[0], inputs[1]);
        if a.dtype() != dtype || b.dtype() != dtype || a.shape() != b.shape() {
            return Err(input_error(
                name,
                format!(
                    "needs two {dtype:?} tensors of one shape, got {:?} {:?} and {:?} {:?}",
                    a.dtype(),
                    a.shape(),
                    b.dtype(),
                    b.shape()
                ),
            ));
        }
        Ok((dtype, a.shape().to_vec()))
    }

    fn acc(&self, a: i32, b: i32) -> i32 {
        a.wrapping_mul(self.a_multiplier)
            .wrapping_add(b.wrapping_mul(self.b_multiplier))
    }

    pub(super) fn native(&self, dtype: DType, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        self.output_type(dtype, inputs)?;
        Ok(match dtype {
            DType::I16 => {
                let mut y = inputs[0].as_i16()?.clone();
                y.zip_mut_with(inputs[1].as_i16()?, |x, &v| {
                    *x = self
                        .requant
                        .apply_i16(self.acc(i32::from(*x), i32::from(v)), 0);
                });
                Tensor::I16(y)
            }
            _ => {
                let mut y = inputs[0].as_i8()?.clone();
                y.zip_mut_with(inputs[1].as_i8()?, |x, &v| {
                    *x = self.requant.apply(self.acc(i32::from(*x), i32::from(v)));
                });
                Tensor::I8(y)
            }
        })
    }

    pub(super) fn kernel_params(&self) -> Vec<i32> {
        LAYOUT.encode(&[
            ("a_multiplier", self.a_multiplier),
            ("b_multiplier", self.b_multiplier),
            ("multiplier", self.requant.multiplier),
            ("shift", self.requant.shift as i32),
        ])
    }
}

/// The params words of an Add node after the lengths.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 2,
    fields: &["a_multiplier", "b_multiplier", "multiplier", "shift"],
};

/// The kernel of `add` (int8) or `add16` (int16).
pub(super) fn kernel(dtype: DType) -> Result<ElfImage, KernelError> {
    let [a_el, b_el, _] = elementwise::ELEMENTS;
    let (_, bounds) = kind(dtype);
    elementwise_kernel(
        &LAYOUT,
        &[dtype, dtype],
        dtype,
        |a| {
            a.lw(S7, LAYOUT.offset("a_multiplier"), S0)
                .lw(S8, LAYOUT.offset("b_multiplier"), S0)
                .lw(S10, LAYOUT.offset("multiplier"), S0)
                .lw(S11, LAYOUT.offset("shift"), S0);
        },
        |a| {
            a.mul(a_el, a_el, S7)
                .mul(b_el, b_el, S8)
                .add(a_el, a_el, b_el);
            emit_requant_clamped(a, a_el, S10, S11, elementwise::RESULT, bounds);
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;
    use rand::Rng;

    #[test]
    fn native_equals_vm_on_odd_shapes() {
        let (mut rng, seed) = test_rng("add::native_equals_vm_on_odd_shapes");
        for shape in [&[1usize][..], &[33], &[3, 5, 7], &[8, 14, 14]] {
            let (x, y) = (random_i8(&mut rng, shape), random_i8(&mut rng, shape));
            for (ma, mb) in [
                (1, 1),
                (1 << 16, 3 << 15),
                (
                    rng.gen_range(-70_000..70_000),
                    rng.gen_range(-70_000..70_000),
                ),
                (i32::MAX, i32::MAX),
            ] {
                let op = Op::Add(Add {
                    a_multiplier: ma,
                    b_multiplier: mb,
                    requant: Requant::from_scale(rng.gen_range(1e-6..2.0)).unwrap(),
                });
                native_equals_vm(
                    &op,
                    &[&x, &y],
                    &format!("seed {seed}: add {shape:?} ma {ma} mb {mb}"),
                );
            }
        }
    }

    #[test]
    fn add16_native_equals_vm_on_odd_shapes() {
        let (mut rng, seed) = test_rng("add::add16_native_equals_vm_on_odd_shapes");
        for shape in [&[1usize][..], &[33], &[16, 384]] {
            let (x, y) = (
                random_i16(&mut rng, shape, i16::MAX),
                random_i16(&mut rng, shape, i16::MAX),
            );
            for (ma, mb) in [(1, 1), (1 << 14, 3 << 13), (i32::MAX, -7)] {
                let op = Op::Add16(Add {
                    a_multiplier: ma,
                    b_multiplier: mb,
                    requant: Requant::from_scale(rng.gen_range(1e-6..2.0)).unwrap(),
                });
                native_equals_vm(
                    &op,
                    &[&x, &y],
                    &format!("seed {seed}: add16 {shape:?} ma {ma} mb {mb}"),
                );
            }
        }
    }

    #[test]
    fn shapes_must_match() {
        let mut rng = test_rng("add::shapes_must_match").0;
        let op = Op::Add(Add {
            a_multiplier: 1,
            b_multiplier: 1,
            requant: Requant {
                multiplier: 1,
                shift: 1,
            },
        });
        let err = op
            .native(&[&random_i8(&mut rng, &[3]), &random_i8(&mut rng, &[4])])
            .unwrap_err();
        assert!(err.to_string().contains("one shape"), "{err}");
    }
}
