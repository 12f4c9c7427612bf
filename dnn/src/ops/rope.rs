//! Rotary position embedding (kind `rope`) of int16 queries or keys `x [.., t, hd]` (`hd` even;
//! LLaMA's "rotate half" pairing of element `j` with `j + hd/2`), with int16 tables
//! `cos [P, hd/2]` and `sin [P, hd/2]` in Q15 (weights of the model, so its commitment covers them):
//! row `i` of each block of `t` rows is the token at position `p = start + i` and, for
//! `j < h = hd/2`, with `c = cos[p, j]`, `s = sin[p, j]`:
//!
//! `y[j] = r(x[j]·c − x[j+h]·s)`, `y[j+h] = r(x[j+h]·c + x[j]·s)`, `r(a) = clamp16((a + 2^14) >> 15)`,
//!
//! the sums in int32, wrapping (they can wrap only when a table holds −32768), `>>` arithmetic.
//!
//! The position enters the commitment through the node's params (`start`): a KV-cached decode step
//! at position `p` is a node with `start = p`, `t = 1`, and a table of `P ≥ start + t` rows; a
//! start past the table is refused when the node is checked, so the kernel never reads outside it.

use super::{arity, input_error, OpError};
use crate::asm::{reg::*, Assembler, Reg};
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use opml_vm::ElfImage;

/// Parameters of a RoPE node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rope {
    /// The position of the first row of each block (a KV-cached step's place in the sequence).
    pub start: u32,
}

/// The longest head (so that a row's byte offsets fit the kernel's arithmetic with room to spare).
const MAX_HEAD: usize = 1 << 15;

/// `(rows, t, half, positions)` of `x [.., t, hd]`, `cos [P, hd/2]`, `sin [P, hd/2]`.
fn dims(start: u32, inputs: &[&Tensor]) -> Result<(usize, usize, usize, usize), OpError> {
    const OP: &str = "rope";
    arity(OP, inputs, 3)?;
    let (x, cos, sin) = (inputs[0], inputs[1], inputs[2]);
    let types = [x.dtype(), cos.dtype(), sin.dtype()];
    if types != [DType::I16; 3] {
        return Err(input_error(
            OP,
            format!("needs i16 x, cos and sin; got {types:?}"),
        ));
    }
    let (t, hd) = match x.shape() {
        [.., t, hd] if *t >= 1 && hd.is_multiple_of(2) && (2..=MAX_HEAD).contains(hd) => (*t, *hd),
        shape => {
            return Err(input_error(
                OP,
                format!(
                    "x must be [.., t, hd] with t ≥ 1 and hd even in 2..={MAX_HEAD}, got {shape:?}"
                ),
            ))
        }
    };
    let half = hd / 2;
    let positions = match cos.shape() {
        [p, h] if *h == half && cos.shape() == sin.shape() => *p,
        _ => {
            return Err(input_error(
                OP,
                format!(
                    "cos and sin must both be [P, {half}], got {:?} and {:?}",
                    cos.shape(),
                    sin.shape()
                ),
            ))
        }
    };
    if (start as usize)
        .checked_add(t)
        .is_none_or(|end| end > positions)
    {
        return Err(input_error(
            OP,
            format!("positions {start}..{start}+{t} are past the tables' {positions} rows"),
        ));
    }
    Ok((x.len() / hd, t, half, positions))
}

/// `clamp16((a + 2^14) >> 15)`.
fn round_q15(a: i32) -> i16 {
    (a.wrapping_add(1 << 14) >> 15).clamp(-32768, 32767) as i16
}

impl Rope {
    pub(super) fn output_type(&self, inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
        dims(self.start, inputs)?;
        Ok((DType::I16, inputs[0].shape().to_vec()))
    }

    pub(super) fn native(&self, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let (_, t, half, _) = dims(self.start, inputs)?;
        let x = inputs[0].as_i16()?.as_slice().expect("standard layout");
        let cos = inputs[1].as_i16()?.as_slice().expect("standard layout");
        let sin = inputs[2].as_i16()?.as_slice().expect("standard layout");
        let mut y = vec![0i16; x.len()];
        for (r, (out, row)) in y
            .chunks_exact_mut(2 * half)
            .zip(x.chunks_exact(2 * half))
            .enumerate()
        {
            let p = self.start as usize + r % t;
            let (c, s) = (&cos[p * half..][..half], &sin[p * half..][..half]);
            for j in 0..half {
                let (x1, x2) = (i32::from(row[j]), i32::from(row[j + half]));
                let (c, s) = (i32::from(c[j]), i32::from(s[j]));
                out[j] = round_q15((x1 * c).wrapping_sub(x2 * s));
                out[j + half] = round_q15((x2 * c).wrapping_add(x1 * s));
            }
        }
        Ok(Tensor::I16(
            ArrayD::from_shape_vec(IxDyn(inputs[0].shape()), y).expect("the input's shape"),
        ))
    }

    pub(super) fn kernel_params(&self, inputs: &[&Tensor]) -> Vec<i32> {
        let (rows, t, half, positions) = dims(self.start, inputs).expect("checked by output_type");
        LAYOUT.encode(&[
            ("rows", rows as i32),
            ("t", t as i32),
            ("half", half as i32),
            ("start", self.start as i32),
            ("positions", positions as i32),
        ])
    }
}

/// The params words of a RoPE node after the lengths: rows (all of `x`'s), rows per block, half
/// the head, the first position, the tables' rows.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 3,
    fields: &["rows", "t", "half", "start", "positions"],
};

/// Emits `reg = clamp16((reg + a3) >> 15)` with a3 = 2^14. Clobbers t6.
fn emit_round_q15(a: &mut Assembler, reg: Reg) {
    let (high, low) = (a.fresh_label("rope_high"), a.fresh_label("rope_low"));
    a.add(reg, reg, A3)
        .srai(reg, reg, 15)
        .li(T6, 32767)
        .bge(T6, reg, &high)
        .mv(reg, T6)
        .label(&high)
        .li(T6, -32768)
        .bge(reg, T6, &low)
        .mv(reg, T6)
        .label(&low);
}

/// Registers: s3 x row, s4 cos, s5 sin, s6 output row, s7 rows left, s8 half, s9 t, a5 the row's
/// index in its block, a6 start, a7 / ra the row's cos / sin, a4 bytes of half a row, a3 2^14,
/// t0 the byte offset of `j`.
pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    let p = |f| LAYOUT.offset(f);
    build_kernel(&LAYOUT, |a| {
        a.li(T3, TABLE_ADDR as i32)
            .lw(S3, 0, T3)
            .lw(S4, 4, T3)
            .lw(S5, 8, T3)
            .lw(S6, 12, T3)
            .lw(S7, p("rows"), S0)
            .lw(S8, p("half"), S0)
            .lw(S9, p("t"), S0)
            .lw(A6, p("start"), S0)
            .li(A5, 0)
            .li(A3, 1 << 14)
            .slli(A4, S8, 1)
            .label("rope_row")
            .beq(S7, ZERO, "rope_done")
            .add(T0, A5, A6)
            .mul(T0, T0, A4)
            .add(A7, S4, T0)
            .add(RA, S5, T0)
            .li(T0, 0)
            .label("rope_el")
            .bgeu(T0, A4, "rope_row_done")
            .add(T1, S3, T0)
            .lh(T2, 0, T1) // x[j]
            .add(T1, T1, A4)
            .lh(T3, 0, T1) // x[j + h]
            .add(T1, A7, T0)
            .lh(T4, 0, T1) // c
            .add(T1, RA, T0)
            .lh(T5, 0, T1) // s
            .mul(A0, T2, T4)
            .mul(A1, T3, T5)
            .sub(A0, A0, A1)
            .mul(A1, T3, T4)
            .mul(A2, T2, T5)
            .add(A1, A1, A2);
        emit_round_q15(a, A0);
        emit_round_q15(a, A1);
        a.add(T1, S6, T0)
            .sh(A0, 0, T1)
            .add(T1, T1, A4)
            .sh(A1, 0, T1)
            .addi(T0, T0, 2)
            .j("rope_el")
            .label("rope_row_done")
            .slli(T1, A4, 1)
            .add(S3, S3, T1)
            .add(S6, S6, T1)
            .addi(S7, S7, -1)
            .addi(A5, A5, 1)
            .bne(A5, S9, "rope_row")
            .li(A5, 0)
            .j("rope_row")
            .label("rope_done");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;
    use rand::Rng;

    /// The Q15 tables of LLaMA's frequencies `base^(−2j/hd)` for `positions` positions.
    fn tables(positions: usize, half: usize) -> (Tensor, Tensor) {
        let q15 = |v: f64| (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        let angle = |p: usize, j: usize| p as f64 * 10_000f64.powf(-(j as f64) / half as f64);
        let table = |f: fn(f64) -> f64| {
            Tensor::I16(
                ArrayD::from_shape_vec(
                    IxDyn(&[positions, half]),
                    (0..positions)
                        .flat_map(|p| (0..half).map(move |j| q15(f(angle(p, j)))))
                        .collect(),
                )
                .unwrap(),
            )
        };
        (table(f64::cos), table(f64::sin))
    }

    #[test]
    fn native_equals_vm_on_odd_shapes_and_positions() {
        let (mut rng, seed) = test_rng("rope::native_equals_vm_on_odd_shapes_and_positions");
        // (x's shape, positions, start)
        let cases: [(&[usize], usize, u32); 8] = [
            (&[1, 2], 1, 0),
            (&[0, 3, 4], 3, 0),
            (&[4, 1, 16], 64, 63),
            (&[4, 5, 16], 64, 0),
            (&[3, 7, 6], 9, 2),
            (&[2, 2, 3, 10], 3, 0),
            (&[1, 1, 128], 2048, 1000),
            (&[2, 33, 2], 40, 7),
        ];
        for (shape, positions, start) in cases {
            let half = shape[shape.len() - 1] / 2;
            let x = random_i16(&mut rng, shape, i16::MAX);
            let (cos, sin) = tables(positions, half);
            native_equals_vm(
                &Op::Rope(Rope { start }),
                &[&x, &cos, &sin],
                &format!("seed {seed}: rope {shape:?} start {start} of {positions}"),
            );
            // Hostile tables: any int16, −32768 included (the sums may wrap).
            let (cos, sin) = (
                random_i16(&mut rng, &[positions, half], i16::MAX),
                random_i16(&mut rng, &[positions, half], i16::MAX),
            );
            let lowest = Tensor::I16(ArrayD::from_elem(IxDyn(&[positions, half]), i16::MIN));
            let x_low = Tensor::I16(ArrayD::from_elem(IxDyn(shape), i16::MIN));
            for (x, cos, sin) in [(&x, &cos, &sin), (&x_low, &lowest, &lowest)] {
                native_equals_vm(
                    &Op::Rope(Rope { start }),
                    &[x, cos, sin],
                    &format!("seed {seed}: rope {shape:?} hostile tables"),
                );
            }
        }
    }

    /// With real tables a rotation keeps a pair's length and turns it by the position's angle.
    #[test]
    fn rotates_by_the_position() {
        let (mut rng, seed) = test_rng("rope::rotates_by_the_position");
        let (positions, half) = (50, 4);
        let (cos, sin) = tables(positions, half);
        let x = random_i16(&mut rng, &[1, 3, 2 * half], 20_000);
        let start = rng.gen_range(0..positions as u32 - 3);
        let y = Op::Rope(Rope { start }).native(&[&x, &cos, &sin]).unwrap();
        let (x, y) = (x.as_i16().unwrap(), y.as_i16().unwrap());
        for i in 0..3 {
            for j in 0..half {
                let theta = (start as usize + i) as f64 * 10_000f64.powf(-(j as f64) / half as f64);
                let (a, b) = (f64::from(x[[0, i, j]]), f64::from(x[[0, i, j + half]]));
                let want = (
                    a * theta.cos() - b * theta.sin(),
                    b * theta.cos() + a * theta.sin(),
                );
                let got = (f64::from(y[[0, i, j]]), f64::from(y[[0, i, j + half]]));
                assert!(
                    (want.0 - got.0).abs() < 3.0 && (want.1 - got.1).abs() < 3.0,
                    "seed {seed}: row {i} pair {j}: {want:?} vs {got:?}"
                );
            }
        }
    }

    #[test]
    fn what_does_not_fit_is_named() {
        let (mut rng, _) = test_rng("rope::what_does_not_fit_is_named");
        let x = random_i16(&mut rng, &[2, 3, 4], 9);
        let (cos, sin) = tables(5, 2);
        let (cos3, _) = tables(5, 3);
        let odd = random_i16(&mut rng, &[2, 3, 5], 9);
        let empty = random_i16(&mut rng, &[2, 0, 4], 9);
        let x8 = random_i8(&mut rng, &[3, 4]);
        let cases: [(u32, Vec<&Tensor>, &str); 8] = [
            (3, vec![&x, &cos, &sin], "past the tables' 5 rows"),
            (u32::MAX, vec![&x, &cos, &sin], "past the tables"),
            (0, vec![&odd, &cos, &sin], "hd even"),
            (0, vec![&empty, &cos, &sin], "t ≥ 1"),
            (0, vec![&x, &cos3, &sin], "cos and sin must both be [P, 2]"),
            (0, vec![&x, &cos3, &cos3], "cos and sin must both be [P, 2]"),
            (0, vec![&x8, &cos, &sin], "needs i16"),
            (0, vec![&x, &cos], "takes 3 inputs"),
        ];
        for (start, inputs, want) in cases {
            let err = Op::Rope(Rope { start })
                .native(&inputs)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("rope") && err.contains(want),
                "{err} (wanted {want})"
            );
        }
    }
}
