//! Conv2d on int8, one image: `y[o, oy, ox] = requant_o(bias[o] + Σ x[c, iy, ix] · w[o, c, ky, kx])`
//! with `iy = oy·stride + ky − pad` (taps outside the image read zero), a multiplier and shift per
//! output channel, optionally then ReLU.

use super::linear::channel_scales;
use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::gemm;
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::quant::emit_requant;
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use opml_vm::ElfImage;
use rayon::prelude::*;

/// Parameters of a Conv2d node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conv2d {
    /// Step between output pixels, in input pixels (≥ 1).
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Whether ReLU is fused after the requantization.
    #[serde(default)]
    pub relu: bool,
}

/// Sizes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Dims {
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
}

impl Conv2d {
    fn dims(&self, inputs: &[&Tensor]) -> Result<Dims, OpError> {
        arity("conv2d", inputs, 4)?;
        let (x, w, b) = (inputs[0], inputs[1], inputs[2]);
        let types = [x.dtype(), w.dtype(), b.dtype()];
        if types != [DType::I8, DType::I8, DType::I32] {
            return Err(input_error(
                "conv2d",
                format!("needs i8 x, i8 w, i32 bias; got {types:?}"),
            ));
        }
        let ([c, h, wd], [o, wc, kh, kw]) = (x.shape(), w.shape()) else {
            return Err(input_error(
                "conv2d",
                format!(
                    "x must be [c, h, w] and w [o, c, kh, kw]; got {:?} and {:?}",
                    x.shape(),
                    w.shape()
                ),
            ));
        };
        if wc != c || b.shape() != [*o] {
            return Err(input_error(
                "conv2d",
                format!(
                    "x {:?}, w {:?} and bias {:?} do not fit",
                    x.shape(),
                    w.shape(),
                    b.shape()
                ),
            ));
        }
        if self.stride == 0
            || *kh == 0
            || *kw == 0
            || h + 2 * self.padding < *kh
            || wd + 2 * self.padding < *kw
        {
            return Err(input_error(
                "conv2d",
                format!("a {kh}x{kw} kernel with stride {} and padding {} does not fit a {h}x{wd} image", self.stride, self.padding),
            ));
        }
        channel_scales("conv2d", inputs[3], *o)?;
        Ok(Dims {
            c: *c,
            h: *h,
            w: *wd,
            o: *o,
            kh: *kh,
            kw: *kw,
            ho: (h + 2 * self.padding - kh) / self.stride + 1,
            wo: (wd + 2 * self.padding - kw) / self.stride + 1,
        })
    }

    pub(super) fn output_type(&self, inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
        let d = self.dims(inputs)?;
        Ok((DType::I8, vec![d.o, d.ho, d.wo]))
    }

    pub(super) fn native(&self, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let d = self.dims(inputs)?;
        let x = inputs[0].as_i8()?.as_slice().expect("standard layout");
        let w = inputs[1].as_i8()?.as_slice().expect("standard layout");
        let bias = inputs[2].as_i32()?.as_slice().expect("standard layout");
        let scales = channel_scales("conv2d", inputs[3], d.o)?;
        // im2col: row p of `cols` holds the taps (c, ky, kx) under output pixel p, zero where they
        // fall in the padding; then y[o, p] = bias[o] + w[o] · cols[p] by the SIMD GEMM (exact
        // wrapping sums, as the VM's), with the weights as the left operand so that the result
        // comes out channel by channel.
        let taps = d.c * d.kh * d.kw;
        let pixels = d.ho * d.wo;
        let mut cols = vec![0i8; pixels * taps];
        cols.par_chunks_mut(taps.max(1))
            .enumerate()
            .for_each(|(p, col)| {
                let (oy, ox) = (p / d.wo, p % d.wo);
                for c in 0..d.c {
                    for ky in 0..d.kh {
                        let iy = (oy * self.stride + ky).checked_sub(self.padding);
                        let Some(iy) = iy.filter(|&iy| iy < d.h) else {
                            continue;
                        };
                        for kx in 0..d.kw {
                            let ix = (ox * self.stride + kx).checked_sub(self.padding);
                            if let Some(ix) = ix.filter(|&ix| ix < d.w) {
                                col[(c * d.kh + ky) * d.kw + kx] = x[(c * d.h + iy) * d.w + ix];
                            }
                        }
                    }
                }
            });
        let acc = gemm::gemm_i8(gemm::Kernel::detect(), w, &cols, d.o, taps, pixels);
        let mut y = vec![0i8; d.o * pixels];
        y.par_chunks_mut(pixels.max(1))
            .zip(acc.par_chunks(pixels.max(1)))
            .enumerate()
            .for_each(|(o, (out, sums))| {
                for (dst, &a) in out.iter_mut().zip(sums) {
                    let v = scales[o].apply(a.wrapping_add(bias[o]));
                    *dst = if self.relu { v.max(0) } else { v };
                }
            });
        Ok(Tensor::I8(
            ArrayD::from_shape_vec(IxDyn(&[d.o, d.ho, d.wo]), y).expect("o·ho·wo outputs"),
        ))
    }

    pub(super) fn kernel_params(&self, inputs: &[&Tensor]) -> Vec<i32> {
        let d = self.dims(inputs).expect("checked by output_type");
        LAYOUT.encode(&[
            ("c", d.c as i32),
            ("h", d.h as i32),
            ("w", d.w as i32),
            ("o", d.o as i32),
            ("kh", d.kh as i32),
            ("kw", d.kw as i32),
            ("stride", self.stride as i32),
            ("padding", self.padding as i32),
            ("relu", self.relu as i32),
            ("ho", d.ho as i32),
            ("wo", d.wo as i32),
        ])
    }
}

/// The params words of a Conv2d node after the lengths: input and kernel sizes, stride, padding, fused ReLU, output sizes.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 4,
    fields: &[
        "c", "h", "w", "o", "kh", "kw", "stride", "padding", "relu", "ho", "wo",
    ],
};

pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    build_kernel(&LAYOUT, |a| {
        a.li(T3, TABLE_ADDR as i32)
            .lw(S3, 0, T3) // x
            .lw(S5, 8, T3) // bias pointer
            .lw(S2, 12, T3) // scale pointer
            .lw(S6, 16, T3) // output pointer
            .lw(S11, LAYOUT.offset("c"), S0) // C
            .lw(S9, LAYOUT.offset("h"), S0) // H
            .lw(S10, LAYOUT.offset("w"), S0) // W
            .lw(TP, LAYOUT.offset("kh"), S0) // KH
            .lw(S4, LAYOUT.offset("kw"), S0) // KW
            .li(T0, 0)
            .label("o")
            .lw(T3, LAYOUT.offset("o"), S0)
            .bgeu(T0, T3, "conv_done")
            .lw(RA, 0, S2) // multiplier of channel o
            .lw(SP, 4, S2) // shift of channel o
            .li(T1, 0)
            .label("oy")
            .lw(T3, LAYOUT.offset("ho"), S0)
            .bgeu(T1, T3, "o_next")
            .li(T2, 0)
            .label("ox")
            .lw(T3, LAYOUT.offset("wo"), S0)
            .bgeu(T2, T3, "oy_next")
            // Window origin: oy·stride − pad, ox·stride − pad.
            .lw(T3, LAYOUT.offset("stride"), S0)
            .lw(T4, LAYOUT.offset("padding"), S0)
            .mul(S7, T1, T3)
            .sub(S7, S7, T4)
            .mul(S8, T2, T3)
            .sub(S8, S8, T4)
            .lw(GP, 0, S5)
            // Weights of output channel o: w + o·C·KH·KW, read in order.
            .li(T3, TABLE_ADDR as i32)
            .lw(S1, 4, T3)
            .mul(T3, S11, TP)
            .mul(T3, T3, S4)
            .mul(T3, T3, T0)
            .add(S1, S1, T3)
            .li(A0, 0)
            .label("c")
            .bgeu(A0, S11, "pixel")
            .li(A1, 0)
            .label("ky")
            .bgeu(A1, TP, "c_next")
            .add(T3, S7, A1)
            .li(A2, 0)
            .label("kx")
            .bgeu(A2, S4, "ky_next")
            .add(T4, S8, A2)
            // Taps outside the image (negative indices compare as large) read zero.
            .bgeu(T3, S9, "tap_next")
            .bgeu(T4, S10, "tap_next")
            .mul(T5, A0, S9)
            .add(T5, T5, T3)
            .mul(T5, T5, S10)
            .add(T5, T5, T4)
            .add(T5, T5, S3)
            .lb(T5, 0, T5)
            .lb(T6, 0, S1)
            .mul(T5, T5, T6)
            .add(GP, GP, T5)
            .label("tap_next")
            .addi(S1, S1, 1)
            .addi(A2, A2, 1)
            .j("kx")
            .label("ky_next")
            .addi(A1, A1, 1)
            .j("ky")
            .label("c_next")
            .addi(A0, A0, 1)
            .j("c")
            .label("pixel");
        emit_requant(a, GP, RA, SP, A7);
        a.lw(T3, LAYOUT.offset("relu"), S0)
            .beq(T3, ZERO, "store")
            .bge(A7, ZERO, "store")
            .li(A7, 0)
            .label("store")
            .sb(A7, 0, S6)
            .addi(S6, S6, 1)
            .addi(T2, T2, 1)
            .j("ox")
            .label("oy_next")
            .addi(T1, T1, 1)
            .j("oy")
            .label("o_next")
            .addi(S5, S5, 4)
            .addi(S2, S2, 8)
            .addi(T0, T0, 1)
            .j("o")
            .label("conv_done");
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
        let (mut rng, seed) = test_rng("conv2d::native_equals_vm_on_odd_shapes");
        // (c, h, w, o, kh, kw, stride, padding)
        let cases = [
            (1, 1, 1, 1, 1, 1, 1, 0),
            (1, 5, 7, 2, 3, 3, 1, 1),
            (3, 9, 6, 4, 3, 2, 2, 0),
            (2, 8, 8, 3, 5, 5, 3, 2),
            (1, 28, 28, 8, 3, 3, 1, 1),
            (8, 14, 14, 16, 3, 3, 1, 1),
        ];
        for (c, h, w, o, kh, kw, stride, padding) in cases {
            let x = random_i8(&mut rng, &[c, h, w]);
            let wt = random_i8(&mut rng, &[o, c, kh, kw]);
            let b = random_i32(&mut rng, &[o], -20_000..20_000);
            let sc = random_scales(&mut rng, o);
            let op = Op::Conv2d(Conv2d {
                stride,
                padding,
                relu: rng.gen(),
            });
            native_equals_vm(
                &op,
                &[&x, &wt, &b, &sc],
                &format!("seed {seed}: conv {c}x{h}x{w} -> {o} k{kh}x{kw} s{stride} p{padding}"),
            );
        }
    }

    #[test]
    fn bad_geometry_is_named() {
        let mut rng = test_rng("conv2d::bad_geometry_is_named").0;
        let (x, w, b) = (
            random_i8(&mut rng, &[1, 2, 2]),
            random_i8(&mut rng, &[1, 1, 5, 5]),
            random_i32(&mut rng, &[1], 0..1),
        );
        let op = Op::Conv2d(Conv2d {
            stride: 1,
            padding: 0,
            relu: false,
        });
        let sc = random_scales(&mut rng, 1);
        let err = op.native(&[&x, &w, &b, &sc]).unwrap_err().to_string();
        assert!(err.contains("does not fit a 2x2 image"), "{err}");
    }
}
