//! Elementwise Add of two int8 tensors of one shape, each at its own scale:
//! `y = requant(a·ma + b·mb)`, where `ma`, `mb` put both inputs on a common integer scale (the sum
//! wraps in int32) and one multiplier and shift bring it to the output's scale.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{elementwise, elementwise_kernel, KernelError, ParamLayout};
use crate::quant::{emit_requant, Requant};
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

impl Add {
    pub(super) fn output_type(&self, inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
        arity("add", inputs, 2)?;
        self.requant
            .validate()
            .map_err(|e| input_error("add", e.to_string()))?;
        let (a, b) = (inputs[0], inputs[1]);
        if a.dtype() != DType::I8 || b.dtype() != DType::I8 || a.shape() != b.shape() {
            return Err(input_error(
                "add",
                format!(
                    "needs two i8 tensors of one shape, got {:?} {:?} and {:?} {:?}",
                    a.dtype(),
                    a.shape(),
                    b.dtype(),
                    b.shape()
                ),
            ));
        }
        Ok((DType::I8, a.shape().to_vec()))
    }

    pub(super) fn native(&self, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let (a, b) = (inputs[0].as_i8()?, inputs[1].as_i8()?);
        let mut y = a.clone();
        y.zip_mut_with(b, |x, &v| {
            let acc = (i32::from(*x).wrapping_mul(self.a_multiplier))
                .wrapping_add(i32::from(v).wrapping_mul(self.b_multiplier));
            *x = self.requant.apply(acc);
        });
        Ok(Tensor::I8(y))
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

pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    let [a_el, b_el, _] = elementwise::ELEMENTS;
    elementwise_kernel(
        &LAYOUT,
        &[DType::I8, DType::I8],
        DType::I8,
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
            emit_requant(a, a_el, S10, S11, elementwise::RESULT);
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
