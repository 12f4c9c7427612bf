//! Concat: two tensors of one type joined along one axis, so that a matmul too big for one node can
//! be computed in tiles of output channels (each its own node, under the VM-step bound) and joined
//! (more tiles by a chain of concats: the params layout of a kernel fixes its number of inputs).

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::tensor::{DType, Tensor};
use opml_vm::ElfImage;

/// `(outer, [bytes of each part's inner block])`: the output is `outer` repetitions of each part's
/// block of `shape[axis..]` elements in turn.
fn plan(axis: usize, inputs: &[&Tensor]) -> Result<(usize, Vec<usize>, Vec<usize>), OpError> {
    arity("concat", inputs, 2)?;
    let first = inputs[0];
    let (dtype, shape) = (first.dtype(), first.shape());
    if axis >= shape.len() {
        return Err(input_error(
            "concat",
            format!("axis {axis} of a rank-{} tensor", shape.len()),
        ));
    }
    let mut out = shape.to_vec();
    out[axis] = 0;
    let mut blocks = Vec::with_capacity(inputs.len());
    for t in inputs {
        let s = t.shape();
        let fits = t.dtype() == dtype
            && s.len() == shape.len()
            && s.iter()
                .zip(shape)
                .enumerate()
                .all(|(d, (a, b))| d == axis || a == b);
        if !fits {
            return Err(input_error(
                "concat",
                format!(
                    "{:?} {:?} does not join {:?} {:?} along axis {axis}",
                    t.dtype(),
                    s,
                    dtype,
                    shape
                ),
            ));
        }
        out[axis] += s[axis];
        blocks.push(s[axis..].iter().product::<usize>() * dtype.size());
    }
    Ok((shape[..axis].iter().product(), blocks, out))
}

pub(super) fn output_type(axis: usize, inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
    let (_, _, shape) = plan(axis, inputs)?;
    Ok((inputs[0].dtype(), shape))
}

pub(super) fn native(axis: usize, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
    let (outer, blocks, shape) = plan(axis, inputs)?;
    let parts: Vec<Vec<u8>> = inputs.iter().map(|t| t.to_le_bytes()).collect();
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for o in 0..outer {
        for (part, &b) in parts.iter().zip(&blocks) {
            out.extend_from_slice(&part[o * b..(o + 1) * b]);
        }
    }
    Ok(Tensor::from_le_bytes(inputs[0].dtype(), &shape, &out)?)
}

pub(super) fn kernel_params(axis: usize, inputs: &[&Tensor]) -> Vec<i32> {
    let (outer, blocks, _) = plan(axis, inputs).expect("checked by output_type");
    LAYOUT.encode(&[
        ("outer", outer as i32),
        ("a_block", blocks[0] as i32),
        ("b_block", blocks[1] as i32),
    ])
}

/// The params words of a Concat node after the lengths: repetitions, and the bytes of each
/// input's block per repetition.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 2,
    fields: &["outer", "a_block", "b_block"],
};

/// `outer` times: a's next block, then b's, byte by byte.
pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    let p = |f| LAYOUT.offset(f);
    build_kernel(&LAYOUT, |a| {
        a.li(T3, TABLE_ADDR as i32)
            .lw(S3, 0, T3) // a
            .lw(S4, 4, T3) // b
            .lw(S6, 8, T3) // output
            .lw(S7, p("outer"), S0)
            .lw(S8, p("a_block"), S0)
            .lw(S9, p("b_block"), S0)
            .label("concat_outer")
            .beq(S7, ZERO, "concat_done")
            .add(T0, S3, S8)
            .label("concat_a")
            .bgeu(S3, T0, "concat_a_done")
            .lb(T1, 0, S3)
            .sb(T1, 0, S6)
            .addi(S3, S3, 1)
            .addi(S6, S6, 1)
            .j("concat_a")
            .label("concat_a_done")
            .add(T0, S4, S9)
            .label("concat_b")
            .bgeu(S4, T0, "concat_b_done")
            .lb(T1, 0, S4)
            .sb(T1, 0, S6)
            .addi(S4, S4, 1)
            .addi(S6, S6, 1)
            .j("concat_b")
            .label("concat_b_done")
            .addi(S7, S7, -1)
            .j("concat_outer")
            .label("concat_done");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;

    #[test]
    fn native_equals_vm_on_every_axis() {
        let (mut rng, seed) = test_rng("concat::native_equals_vm_on_every_axis");
        // (a shape, b shape, axis)
        let cases: [(&[usize], &[usize], usize); 5] = [
            (&[1], &[1], 0),
            (&[3, 5], &[4, 5], 0),
            (&[16, 512], &[16, 1024], 1),
            (&[2, 3, 5], &[2, 1, 5], 1),
            (&[2, 3, 5], &[2, 3, 7], 2),
        ];
        for (sa, sb, axis) in cases {
            for (a, b) in [
                (random_i8(&mut rng, sa), random_i8(&mut rng, sb)),
                (
                    random_i16(&mut rng, sa, i16::MAX),
                    random_i16(&mut rng, sb, i16::MAX),
                ),
            ] {
                native_equals_vm(
                    &Op::Concat { axis },
                    &[&a, &b],
                    &format!("seed {seed}: concat {sa:?} {sb:?} axis {axis}"),
                );
            }
        }
    }

    #[test]
    fn joins_like_ndarray() {
        let (mut rng, _) = test_rng("concat::joins_like_ndarray");
        let a = random_i16(&mut rng, &[2, 3], 100);
        let b = random_i16(&mut rng, &[2, 2], 100);
        let y = native(1, &[&a, &b]).unwrap();
        let want = ndarray::concatenate(
            ndarray::Axis(1),
            &[a.as_i16().unwrap().view(), b.as_i16().unwrap().view()],
        )
        .unwrap();
        assert_eq!(y.as_i16().unwrap(), &want);
    }

    #[test]
    fn what_does_not_join_is_named() {
        let (mut rng, _) = test_rng("concat::what_does_not_join_is_named");
        let a = random_i16(&mut rng, &[2, 3], 1);
        let cases = [
            (random_i16(&mut rng, &[3, 3], 1), 1, "does not join"),
            (random_i8(&mut rng, &[2, 3]), 0, "does not join"),
            (random_i16(&mut rng, &[2, 3], 1), 2, "axis 2"),
        ];
        for (b, axis, want) in cases {
            let err = native(axis, &[&a, &b]).unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }
}
