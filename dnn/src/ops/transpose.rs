//! Transpose: the axes of a tensor (of any type, rank ≤ 4) in another order, as attention needs to
//! split a `[tokens, heads·d]` activation into `[heads, tokens, d]` and back.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::tensor::{DType, Tensor};
use opml_vm::ElfImage;

/// The most axes a transposed tensor may have.
pub(super) const MAX_RANK: usize = 4;

/// How the output is read from the input: output dimensions (outermost first, padded with 1s in
/// front to [`MAX_RANK`]) and, for each, the input's byte stride along it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    dims: [usize; MAX_RANK],
    strides: [usize; MAX_RANK],
}

/// Checks `perm` against `x` and returns the output shape and the copy plan.
fn plan(perm: &[usize], x: &Tensor) -> Result<(Vec<usize>, Plan), OpError> {
    let shape = x.shape();
    let rank = shape.len();
    let mut seen = [false; MAX_RANK];
    if rank > MAX_RANK
        || perm.len() != rank
        || perm
            .iter()
            .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
    {
        return Err(input_error(
            "transpose",
            format!("perm {perm:?} is not a permutation of the {rank} axes of {shape:?} (rank ≤ {MAX_RANK})"),
        ));
    }
    let size = x.dtype().size();
    let mut in_strides = vec![size; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        in_strides[d] = in_strides[d + 1] * shape[d + 1];
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut p = Plan {
        dims: [1; MAX_RANK],
        strides: [0; MAX_RANK],
    };
    for (d, &axis) in perm.iter().enumerate() {
        p.dims[MAX_RANK - rank + d] = shape[axis];
        p.strides[MAX_RANK - rank + d] = in_strides[axis];
    }
    Ok((out_shape, p))
}

pub(super) fn output_type(
    perm: &[usize],
    inputs: &[&Tensor],
) -> Result<(DType, Vec<usize>), OpError> {
    arity("transpose", inputs, 1)?;
    Ok((inputs[0].dtype(), plan(perm, inputs[0])?.0))
}

pub(super) fn native(perm: &[usize], x: &Tensor) -> Result<Tensor, OpError> {
    let (shape, p) = plan(perm, x)?;
    let size = x.dtype().size();
    let src = x.to_le_bytes();
    let mut out = Vec::with_capacity(src.len());
    for i0 in 0..p.dims[0] {
        for i1 in 0..p.dims[1] {
            for i2 in 0..p.dims[2] {
                for i3 in 0..p.dims[3] {
                    let at = i0 * p.strides[0]
                        + i1 * p.strides[1]
                        + i2 * p.strides[2]
                        + i3 * p.strides[3];
                    out.extend_from_slice(&src[at..at + size]);
                }
            }
        }
    }
    Ok(Tensor::from_le_bytes(x.dtype(), &shape, &out)?)
}

pub(super) fn kernel_params(perm: &[usize], x: &Tensor) -> Vec<i32> {
    let (_, p) = plan(perm, x).expect("checked by output_type");
    let w = |v: usize| v as i32;
    LAYOUT.encode(&[
        ("size", w(x.dtype().size())),
        ("d0", w(p.dims[0])),
        ("d1", w(p.dims[1])),
        ("d2", w(p.dims[2])),
        ("d3", w(p.dims[3])),
        ("s0", w(p.strides[0])),
        ("s1", w(p.strides[1])),
        ("s2", w(p.strides[2])),
        ("s3", w(p.strides[3])),
    ])
}

/// The params words of a Transpose node after the lengths: the element size in bytes, the four
/// output dimensions and, for each, the input's byte stride along it.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 1,
    fields: &["size", "d0", "d1", "d2", "d3", "s0", "s1", "s2", "s3"],
};

/// Four nested loops over the output (s7..s10 the indices, s3..s6 the input offsets of the outer
/// three levels), copying one element of `size` bytes each.
pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    let p = |f| LAYOUT.offset(f);
    build_kernel(&LAYOUT, |a| {
        a.li(T3, TABLE_ADDR as i32)
            .lw(S1, 0, T3) // input
            .lw(S2, 4, T3) // output (advancing)
            .lw(S11, p("size"), S0)
            .li(S7, 0)
            .mv(S3, S1)
            .label("l0")
            .lw(T0, p("d0"), S0)
            .bgeu(S7, T0, "copy_done")
            .li(S8, 0)
            .mv(S4, S3)
            .label("l1")
            .lw(T0, p("d1"), S0)
            .bgeu(S8, T0, "l0_next")
            .li(S9, 0)
            .mv(S5, S4)
            .label("l2")
            .lw(T0, p("d2"), S0)
            .bgeu(S9, T0, "l1_next")
            .li(S10, 0)
            .mv(S6, S5)
            .label("l3")
            .lw(T0, p("d3"), S0)
            .bgeu(S10, T0, "l2_next")
            .li(T1, 1)
            .beq(S11, T1, "byte")
            .li(T1, 2)
            .beq(S11, T1, "half")
            .lw(T2, 0, S6)
            .sw(T2, 0, S2)
            .j("copied")
            .label("half")
            .lh(T2, 0, S6)
            .sh(T2, 0, S2)
            .j("copied")
            .label("byte")
            .lb(T2, 0, S6)
            .sb(T2, 0, S2)
            .label("copied")
            .add(S2, S2, S11)
            .lw(T0, p("s3"), S0)
            .add(S6, S6, T0)
            .addi(S10, S10, 1)
            .j("l3")
            .label("l2_next")
            .lw(T0, p("s2"), S0)
            .add(S5, S5, T0)
            .addi(S9, S9, 1)
            .j("l2")
            .label("l1_next")
            .lw(T0, p("s1"), S0)
            .add(S4, S4, T0)
            .addi(S8, S8, 1)
            .j("l1")
            .label("l0_next")
            .lw(T0, p("s0"), S0)
            .add(S3, S3, T0)
            .addi(S7, S7, 1)
            .j("l0")
            .label("copy_done");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;

    #[test]
    fn native_equals_vm_on_every_type_and_rank() {
        let (mut rng, seed) = test_rng("transpose::native_equals_vm_on_every_type_and_rank");
        // (shape, perm)
        let cases: [(&[usize], &[usize]); 7] = [
            (&[5], &[0]),
            (&[3, 7], &[1, 0]),
            (&[4, 3, 5], &[1, 0, 2]),
            (&[16, 12, 32], &[1, 0, 2]),
            (&[4, 3, 5], &[1, 2, 0]),
            (&[2, 3, 4, 5], &[3, 1, 0, 2]),
            (&[1, 1, 1], &[2, 0, 1]),
        ];
        for (shape, perm) in cases {
            for x in [
                random_i8(&mut rng, shape),
                random_i16(&mut rng, shape, i16::MAX),
                random_i32(&mut rng, shape, i32::MIN..i32::MAX),
            ] {
                let op = Op::Transpose {
                    perm: perm.to_vec(),
                };
                native_equals_vm(
                    &op,
                    &[&x],
                    &format!(
                        "seed {seed}: transpose {:?} {shape:?} by {perm:?}",
                        x.dtype()
                    ),
                );
            }
        }
    }

    #[test]
    fn matches_ndarray() {
        let (mut rng, _) = test_rng("transpose::matches_ndarray");
        let x = random_i16(&mut rng, &[2, 3, 4], 1000);
        let y = native(&[2, 0, 1], &x).unwrap();
        let want = x.as_i16().unwrap().clone().permuted_axes(vec![2, 0, 1]);
        assert_eq!(y.as_i16().unwrap(), &want.as_standard_layout().to_owned());
    }

    #[test]
    fn bad_permutations_are_named() {
        let (mut rng, _) = test_rng("transpose::bad_permutations_are_named");
        let x = random_i8(&mut rng, &[2, 3]);
        let five = random_i8(&mut rng, &[1, 1, 1, 1, 1]);
        let cases: [(&Tensor, &[usize]); 4] = [
            (&x, &[0]),
            (&x, &[0, 0]),
            (&x, &[0, 2]),
            (&five, &[0, 1, 2, 3, 4]),
        ];
        for (t, perm) in cases {
            let err = native(perm, t).unwrap_err().to_string();
            assert!(err.contains("not a permutation"), "{perm:?}: {err}");
        }
    }
}
