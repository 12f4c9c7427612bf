//! 2-D max pooling on int8 `[c, h, w]`, no padding.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use opml_vm::ElfImage;

/// Parameters of a MaxPool2d node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MaxPool2d {
    /// Window size (square).
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
}

impl MaxPool2d {
    fn dims(&self, inputs: &[&Tensor]) -> Result<[usize; 5], OpError> {
        arity("max_pool2d", inputs, 1)?;
        let x = inputs[0];
        let (DType::I8, [c, h, w]) = (x.dtype(), x.shape()) else {
            return Err(input_error(
                "max_pool2d",
                format!("needs i8 [c, h, w], got {:?} {:?}", x.dtype(), x.shape()),
            ));
        };
        if self.kernel == 0 || self.stride == 0 || *h < self.kernel || *w < self.kernel {
            return Err(input_error(
                "max_pool2d",
                format!(
                    "a {k}x{k} window with stride {} does not fit a {h}x{w} image",
                    self.stride,
                    k = self.kernel
                ),
            ));
        }
        Ok([
            *c,
            *h,
            *w,
            (h - self.kernel) / self.stride + 1,
            (w - self.kernel) / self.stride + 1,
        ])
    }

    pub(super) fn output_type(&self, inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
        let [c, _, _, ho, wo] = self.dims(inputs)?;
        Ok((DType::I8, vec![c, ho, wo]))
    }

    pub(super) fn native(&self, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let [c, h, w, ho, wo] = self.dims(inputs)?;
        let x = inputs[0].as_i8()?.as_slice().expect("standard layout");
        let (k, s) = (self.kernel, self.stride);
        let mut y = Vec::with_capacity(c * ho * wo);
        for ch in 0..c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut m = i8::MIN;
                    for ky in 0..k {
                        for kx in 0..k {
                            m = m.max(x[(ch * h + oy * s + ky) * w + ox * s + kx]);
                        }
                    }
                    y.push(m);
                }
            }
        }
        Ok(Tensor::I8(
            ArrayD::from_shape_vec(IxDyn(&[c, ho, wo]), y).expect("c·ho·wo outputs"),
        ))
    }

    pub(super) fn kernel_params(&self, inputs: &[&Tensor]) -> Vec<i32> {
        let [c, h, w, ho, wo] = self.dims(inputs).expect("checked by output_type");
        LAYOUT.encode(&[
            ("c", c as i32),
            ("h", h as i32),
            ("w", w as i32),
            ("kernel", self.kernel as i32),
            ("stride", self.stride as i32),
            ("ho", ho as i32),
            ("wo", wo as i32),
        ])
    }
}

/// The params words of a MaxPool2d node after the lengths: input sizes, window, stride, output sizes.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 1,
    fields: &["c", "h", "w", "kernel", "stride", "ho", "wo"],
};

pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    build_kernel(&LAYOUT, |a| {
        a.li(T3, TABLE_ADDR as i32)
            .lw(S3, 0, T3) // x
            .lw(S6, 4, T3) // output pointer
            .lw(S9, LAYOUT.offset("h"), S0) // H
            .lw(S10, LAYOUT.offset("w"), S0) // W
            .lw(S4, LAYOUT.offset("kernel"), S0) // K
            .lw(S5, LAYOUT.offset("stride"), S0) // stride
            .li(T0, 0)
            .label("c")
            .lw(T3, LAYOUT.offset("c"), S0)
            .bgeu(T0, T3, "pool_done")
            .li(T1, 0)
            .label("oy")
            .lw(T3, LAYOUT.offset("ho"), S0)
            .bgeu(T1, T3, "c_next")
            .li(T2, 0)
            .label("ox")
            .lw(T3, LAYOUT.offset("wo"), S0)
            .bgeu(T2, T3, "oy_next")
            .li(GP, -128)
            // Top-left input of the window: x + (c·H + oy·S)·W + ox·S.
            .mul(S7, T0, S9)
            .mul(T3, T1, S5)
            .add(S7, S7, T3)
            .mul(S7, S7, S10)
            .mul(T3, T2, S5)
            .add(S7, S7, T3)
            .add(S7, S7, S3)
            .li(A1, 0)
            .label("ky")
            .bgeu(A1, S4, "window_done")
            .mul(T4, A1, S10)
            .add(T4, T4, S7)
            .li(A2, 0)
            .label("kx")
            .bgeu(A2, S4, "ky_next")
            .add(T5, T4, A2)
            .lb(T5, 0, T5)
            .bge(GP, T5, "kx_next")
            .mv(GP, T5)
            .label("kx_next")
            .addi(A2, A2, 1)
            .j("kx")
            .label("ky_next")
            .addi(A1, A1, 1)
            .j("ky")
            .label("window_done")
            .sb(GP, 0, S6)
            .addi(S6, S6, 1)
            .addi(T2, T2, 1)
            .j("ox")
            .label("oy_next")
            .addi(T1, T1, 1)
            .j("oy")
            .label("c_next")
            .addi(T0, T0, 1)
            .j("c")
            .label("pool_done");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;

    #[test]
    fn native_equals_vm_on_odd_shapes() {
        let (mut rng, seed) = test_rng("maxpool::native_equals_vm_on_odd_shapes");
        for (c, h, w, kernel, stride) in [
            (1, 1, 1, 1, 1),
            (1, 5, 7, 2, 2),
            (3, 9, 9, 3, 2),
            (8, 28, 28, 2, 2),
            (16, 14, 14, 2, 2),
            (2, 6, 11, 3, 1),
        ] {
            let x = random_i8(&mut rng, &[c, h, w]);
            let op = Op::MaxPool2d(MaxPool2d { kernel, stride });
            native_equals_vm(
                &op,
                &[&x],
                &format!("seed {seed}: maxpool {c}x{h}x{w} k{kernel} s{stride}"),
            );
        }
    }
}
