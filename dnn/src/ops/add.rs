//! Elementwise Add of two int8 tensors of one shape, each at its own scale:
//! `y = requant(a·ma + b·mb)`, where `ma`, `mb` put both inputs on a common integer scale (the sum
//! wraps in int32) and one multiplier and shift bring it to the output's scale.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{build_kernel, KernelError, TABLE_ADDR};
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
        vec![
            self.a_multiplier,
            self.b_multiplier,
            self.requant.multiplier,
            self.requant.shift as i32,
        ]
    }
}

/// Params after the lengths (byte offsets from s0): a_multiplier 12, b_multiplier 16,
/// multiplier 20, shift 24. The element count is word 0.
pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    build_kernel(2, 7, |a| {
        a.li(S2, TABLE_ADDR as i32)
            .lw(S3, 0, S2) // a
            .lw(S4, 4, S2) // b
            .lw(S6, 8, S2) // output pointer
            .lw(T0, 0, S0) // elements
            .lw(S7, 12, S0)
            .lw(S8, 16, S0)
            .lw(S10, 20, S0)
            .lw(S11, 24, S0)
            .label("loop")
            .beq(T0, ZERO, "done")
            .lb(T1, 0, S3)
            .lb(T2, 0, S4)
            .mul(T1, T1, S7)
            .mul(T2, T2, S8)
            .add(T1, T1, T2);
        emit_requant(a, T1, S10, S11, A0);
        a.sb(A0, 0, S6)
            .addi(S3, S3, 1)
            .addi(S4, S4, 1)
            .addi(S6, S6, 1)
            .addi(T0, T0, -1)
            .j("loop")
            .label("done");
    })
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
