//! ReLU on int8: `max(x, 0)`.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{build_kernel, KernelError, TABLE_ADDR};
use crate::tensor::{DType, Tensor};
use opml_vm::ElfImage;

pub(super) fn output_type(inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
    arity("relu", inputs, 1)?;
    if inputs[0].dtype() != DType::I8 {
        return Err(input_error(
            "relu",
            format!("input is {:?}, not i8", inputs[0].dtype()),
        ));
    }
    Ok((DType::I8, inputs[0].shape().to_vec()))
}

pub(super) fn native(x: &Tensor) -> Result<Tensor, OpError> {
    Ok(Tensor::I8(x.as_i8()?.mapv(|v| v.max(0))))
}

/// Params: none beyond the lengths (word 0 is the element count).
pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    build_kernel(1, 2, |a| {
        a.li(S2, TABLE_ADDR as i32)
            .lw(A0, 0, S2)
            .lw(A1, 4, S2)
            .lw(T0, 0, S0)
            .label("loop")
            .beq(T0, ZERO, "done")
            .lb(T1, 0, A0)
            .bge(T1, ZERO, "keep")
            .li(T1, 0)
            .label("keep")
            .sb(T1, 0, A1)
            .addi(A0, A0, 1)
            .addi(A1, A1, 1)
            .addi(T0, T0, -1)
            .j("loop")
            .label("done");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;

    #[test]
    fn native_equals_vm_on_odd_shapes() {
        let (mut rng, _) = test_rng("relu::native_equals_vm_on_odd_shapes");
        for shape in [
            &[1usize][..],
            &[31],
            &[32],
            &[33],
            &[3, 7, 5],
            &[97, 13],
            &[4096],
        ] {
            let x = random_i8(&mut rng, shape);
            native_equals_vm(&Op::Relu, &[&x], &format!("relu {shape:?}"));
        }
    }
}
