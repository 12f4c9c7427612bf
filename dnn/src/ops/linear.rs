//! Linear (fully connected / MatMul): `y[i, j] = requant_j(bias[j] + Σ x[i, ·] · w[j, ·])`, with a
//! multiplier and shift per output channel `j`, optionally followed by ReLU.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::gemm;
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::quant::{emit_requant, Requant};
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use opml_vm::ElfImage;
use rayon::prelude::*;

/// Parameters of a Linear node (the weights, bias and per-channel scales are its inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Linear {
    /// Whether ReLU is fused after the requantization.
    #[serde(default)]
    pub relu: bool,
}

/// The per-channel requantizations of an int32 `[n, 2]` scale tensor (multiplier, shift).
pub(super) fn channel_scales(
    op: &'static str,
    scale: &Tensor,
    n: usize,
) -> Result<Vec<Requant>, OpError> {
    if scale.dtype() != DType::I32 || scale.shape() != [n, 2] {
        return Err(input_error(
            op,
            format!(
                "scale must be i32 [{n}, 2], got {:?} {:?}",
                scale.dtype(),
                scale.shape()
            ),
        ));
    }
    let v = scale.as_i32()?.as_slice().expect("standard layout");
    v.chunks_exact(2)
        .enumerate()
        .map(|(j, ms)| {
            Requant {
                multiplier: ms[0],
                shift: ms[1] as u32,
            }
            .validate()
            .map_err(|e| input_error(op, format!("output channel {j}: {e}")))
        })
        .collect()
}

/// `(m, k, n)` of inputs `x [m, k] or [k]`, `w [n, k]`, `bias [n]`, `scale [n, 2]`.
fn dims(inputs: &[&Tensor]) -> Result<(usize, usize, usize), OpError> {
    arity("linear", inputs, 4)?;
    let (x, w, b) = (inputs[0], inputs[1], inputs[2]);
    let types = [x.dtype(), w.dtype(), b.dtype()];
    if types != [DType::I8, DType::I8, DType::I32] {
        return Err(input_error(
            "linear",
            format!("needs i8 x, i8 w, i32 bias; got {types:?}"),
        ));
    }
    let (m, k) = match x.shape() {
        [k] => (1, *k),
        [m, k] => (*m, *k),
        s => {
            return Err(input_error(
                "linear",
                format!("x must be [k] or [m, k], got {s:?}"),
            ))
        }
    };
    let [n, wk] = w.shape() else {
        return Err(input_error(
            "linear",
            format!("w must be [n, k], got {:?}", w.shape()),
        ));
    };
    if *wk != k || b.shape() != [*n] {
        return Err(input_error(
            "linear",
            format!(
                "x {:?}, w {:?} and bias {:?} do not fit",
                x.shape(),
                w.shape(),
                b.shape()
            ),
        ));
    }
    channel_scales("linear", inputs[3], *n)?;
    Ok((m, k, *n))
}

impl Linear {
    pub(super) fn output_type(&self, inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
        let (m, _, n) = dims(inputs)?;
        let shape = if inputs[0].shape().len() == 1 {
            vec![n]
        } else {
            vec![m, n]
        };
        Ok((DType::I8, shape))
    }

    pub(super) fn native(&self, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let (m, k, n) = dims(inputs)?;
        let x = inputs[0].as_i8()?.as_slice().expect("standard layout");
        let w = inputs[1].as_i8()?.as_slice().expect("standard layout");
        let bias = inputs[2].as_i32()?.as_slice().expect("standard layout");
        let scales = channel_scales("linear", inputs[3], n)?;
        // Output (i, j) = bias[j] + row i of x · row j of w, by the SIMD GEMM (exact wrapping sums).
        let acc = gemm::gemm_i8(gemm::Kernel::detect(), x, w, m, k, n);
        let y: Vec<i8> = acc
            .par_chunks(n.max(1))
            .flat_map_iter(|row| {
                row.iter().zip(bias).zip(&scales).map(|((&a, &b), s)| {
                    let v = s.apply(a.wrapping_add(b));
                    if self.relu {
                        v.max(0)
                    } else {
                        v
                    }
                })
            })
            .collect();
        let (_, shape) = self.output_type(inputs)?;
        Ok(Tensor::I8(
            ArrayD::from_shape_vec(IxDyn(&shape), y).expect("m·n outputs"),
        ))
    }

    pub(super) fn kernel_params(&self, inputs: &[&Tensor]) -> Vec<i32> {
        let (m, k, n) = dims(inputs).expect("checked by output_type");
        LAYOUT.encode(&[
            ("m", m as i32),
            ("k", k as i32),
            ("n", n as i32),
            ("relu", self.relu as i32),
        ])
    }
}

/// The params words of a Linear node after the lengths: rows, inner and output sizes, fused ReLU.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 4,
    fields: &["m", "k", "n", "relu"],
};

pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    build_kernel(&LAYOUT, |a| {
        a.li(S2, TABLE_ADDR as i32)
            .lw(S3, 0, S2) // x row
            .lw(S4, 4, S2) // w
            .lw(S5, 8, S2) // bias
            .lw(GP, 12, S2) // scales
            .lw(S6, 16, S2) // output pointer
            .lw(S7, LAYOUT.offset("m"), S0) // m
            .lw(S8, LAYOUT.offset("k"), S0) // k
            .lw(S9, LAYOUT.offset("n"), S0) // n
            .lw(TP, LAYOUT.offset("relu"), S0) // relu
            .li(T0, 0)
            .label("rows")
            .bgeu(T0, S7, "done")
            .li(T1, 0)
            .mv(A1, S4)
            .mv(S1, S5)
            .mv(S2, GP)
            .label("cols")
            .bgeu(T1, S9, "next_row")
            .lw(S10, 0, S2) // multiplier of channel j
            .lw(S11, 4, S2) // shift of channel j
            .lw(T2, 0, S1)
            .mv(T5, S3)
            .mv(T6, A1)
            .add(A3, S3, S8)
            .label("dot")
            .bgeu(T5, A3, "dot_done")
            .lb(T3, 0, T5)
            .lb(T4, 0, T6)
            .mul(T3, T3, T4)
            .add(T2, T2, T3)
            .addi(T5, T5, 1)
            .addi(T6, T6, 1)
            .j("dot")
            .label("dot_done");
        emit_requant(a, T2, S10, S11, A0);
        a.beq(TP, ZERO, "store")
            .bge(A0, ZERO, "store")
            .li(A0, 0)
            .label("store")
            .sb(A0, 0, S6)
            .addi(S6, S6, 1)
            .add(A1, A1, S8)
            .addi(S1, S1, 4)
            .addi(S2, S2, 8)
            .addi(T1, T1, 1)
            .j("cols")
            .label("next_row")
            .add(S3, S3, S8)
            .addi(T0, T0, 1)
            .j("rows")
            .label("done");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;

    #[test]
    fn native_equals_vm_on_odd_shapes_and_scales() {
        let (mut rng, seed) = test_rng("linear::native_equals_vm_on_odd_shapes_and_scales");
        let shapes: &[(&[usize], usize)] = &[
            (&[1], 1),
            (&[7], 3),
            (&[1, 33], 5),
            (&[3, 64], 10),
            (&[2, 97], 13),
            (&[784], 10),
        ];
        for &(xs, n) in shapes {
            let k = *xs.last().unwrap();
            let x = random_i8(&mut rng, xs);
            let w = random_i8(&mut rng, &[n, k]);
            let b = random_i32(&mut rng, &[n], -50_000..50_000);
            for relu in [false, true] {
                let sc = random_scales(&mut rng, n);
                native_equals_vm(
                    &Op::Linear(Linear { relu }),
                    &[&x, &w, &b, &sc],
                    &format!("seed {seed}: linear x{xs:?} n={n} relu {relu}"),
                );
            }
        }
    }

    /// Every branch of the requantization: shifts on both sides of 32, negative multipliers,
    /// saturation both ways and from beyond int32.
    #[test]
    fn requantization_edges_match() {
        let x = Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![127, -128]).unwrap());
        let w = Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![127, 127]).unwrap());
        for bias in [
            i32::MIN + 20_000,
            -1000,
            -3,
            0,
            1,
            2,
            1000,
            i32::MAX - 20_000,
        ] {
            let b = Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[1]), vec![bias]).unwrap());
            for (multiplier, shift) in [
                (1, 1),
                (3, 2),
                (1 << 30, 31),
                (i32::MAX, 32),
                (-(1 << 30), 33),
                (i32::MIN, 62),
                (12345, 17),
                (i32::MAX, 1),
            ] {
                let sc = Tensor::I32(
                    ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![multiplier, shift]).unwrap(),
                );
                native_equals_vm(
                    &Op::Linear(Linear { relu: false }),
                    &[&x, &w, &b, &sc],
                    &format!("bias {bias} m {multiplier} s {shift}"),
                );
            }
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_named() {
        let mut rng = test_rng("linear::shapes_that_do_not_fit_are_named").0;
        let op = Op::Linear(Linear { relu: false });
        let (x, w, b) = (
            random_i8(&mut rng, &[4]),
            random_i8(&mut rng, &[3, 5]),
            random_i32(&mut rng, &[3], 0..1),
        );
        let sc = random_scales(&mut rng, 3);
        let err = op.native(&[&x, &w, &b, &sc]).unwrap_err().to_string();
        assert!(err.contains("do not fit"), "{err}");
        assert!(op.native(&[&x, &w, &b]).is_err());
        let (x, w) = (random_i8(&mut rng, &[5]), random_i8(&mut rng, &[3, 5]));
        let bad =
            Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[3, 2]), vec![1, 1, 1, 0, 1, 1]).unwrap());
        let err = op.native(&[&x, &w, &b, &bad]).unwrap_err().to_string();
        assert!(err.contains("output channel 1"), "{err}");
    }
}
