//! ReLU on int8: `max(x, 0)`.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{elementwise, elementwise_kernel, KernelError, ParamLayout};
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

/// Params: the lengths only.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 1,
    fields: &[],
};

pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    let x = elementwise::ELEMENTS[0];
    elementwise_kernel(
        &LAYOUT,
        &[DType::I8],
        DType::I8,
        |_| {},
        |a| {
            a.mv(elementwise::RESULT, x)
                .bge(x, ZERO, "keep")
                .li(elementwise::RESULT, 0)
                .label("keep");
        },
    )
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
