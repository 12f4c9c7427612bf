//! Softmax over the last axis of int16 scores, with a padding mask, in integers:
//!
//! for each row `x` of `n` scores: `m = max x_j` over the keys `j` with `mask[j] ≠ 0`;
//! `e_j = exp_table[m − x_j]` (0 when `m − x_j` is past the table's end, or `j` is masked);
//! `S = Σ e_j`; `p_j = clamp16((e_j · 2^15 + S/2) / S)` (truncating division), or 0 when `S ≤ 0`.
//!
//! The table holds `round(2^15 · exp(−δ · s))` for the scores' scale `s` (the import fills it; it is
//! a weight of the model, so its commitment covers it), and the output is the probability in Q15
//! (scale 2^-15). A table of `L` entries covers score gaps up to `L − 1`; beyond, a key's weight is
//! taken as 0, which the import makes true to int16 precision by sizing the table.
//!
//! Causal softmax (kind `causal_softmax`, a decoder's attention) is the same with the mask given by
//! position instead of an input: `x [.., t, n]` holds the scores of `t` queries, the last `t` of `n`
//! positions, so query `i` sees the keys `0..=i + (n − t)` (itself and those before it). The offset
//! comes from the shapes alone, so a KV-cached decode step (`t = 1`, `n` cached keys plus its own)
//! and a prefill (`t = n`) need no extra input. One kernel writer builds both kernels.

use super::{arity, input_error, OpError};
use crate::asm::{reg::*, Assembler};
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use opml_vm::ElfImage;
use rayon::prelude::*;

/// The most entries of the exp table (every gap between two int16 scores).
pub(super) const MAX_TABLE: usize = 1 << 16;

/// Checks the exp table `[L]`, 1 ≤ L ≤ [`MAX_TABLE`].
fn check_table(op: &'static str, table: &Tensor) -> Result<(), OpError> {
    if !matches!(table.shape(), [l] if (1..=MAX_TABLE).contains(l)) {
        return Err(input_error(
            op,
            format!(
                "the exp table must be [L], 1 ≤ L ≤ {MAX_TABLE}; got {:?}",
                table.shape()
            ),
        ));
    }
    Ok(())
}

/// `(rows, t, n)` of a causal softmax's `x [.., t, n]`, `table [L]`: 1 ≤ t ≤ n.
fn causal_dims(inputs: &[&Tensor]) -> Result<(usize, usize, usize), OpError> {
    const OP: &str = "causal_softmax";
    arity(OP, inputs, 2)?;
    let (x, table) = (inputs[0], inputs[1]);
    if [x.dtype(), table.dtype()] != [DType::I16, DType::I16] {
        return Err(input_error(
            OP,
            format!(
                "needs i16 x and an i16 exp table; got {:?}",
                [x.dtype(), table.dtype()]
            ),
        ));
    }
    let (t, n) = match x.shape() {
        [.., t, n] if (1..=MAX_TABLE).contains(n) && (1..=*n).contains(t) => (*t, *n),
        shape => {
            return Err(input_error(
                OP,
                format!("x must be [.., t, n] with 1 ≤ t ≤ n ≤ {MAX_TABLE}, got {shape:?}"),
            ))
        }
    };
    check_table(OP, table)?;
    Ok((x.len() / n, t, n))
}

/// `(rows, n)` of `x [.., n]`, `mask [n]`, `table [L]`.
fn dims(inputs: &[&Tensor]) -> Result<(usize, usize), OpError> {
    arity("softmax", inputs, 3)?;
    let (x, mask, table) = (inputs[0], inputs[1], inputs[2]);
    let types = [x.dtype(), mask.dtype(), table.dtype()];
    if types != [DType::I16, DType::I32, DType::I16] {
        return Err(input_error(
            "softmax",
            format!("needs i16 x, i32 mask, i16 exp table; got {types:?}"),
        ));
    }
    let n = match x.shape().last() {
        Some(&n) if (1..=MAX_TABLE).contains(&n) => n,
        _ => {
            return Err(input_error(
                "softmax",
                format!(
                    "x must be [.., n] with 1 ≤ n ≤ {MAX_TABLE}, got {:?}",
                    x.shape()
                ),
            ))
        }
    };
    if mask.shape() != [n] {
        return Err(input_error(
            "softmax",
            format!("mask must be [{n}], got {:?}", mask.shape()),
        ));
    }
    check_table("softmax", table)?;
    Ok((x.len() / n, n))
}

pub(super) fn output_type(inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
    dims(inputs)?;
    Ok((DType::I16, inputs[0].shape().to_vec()))
}

pub(super) fn causal_output_type(inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
    causal_dims(inputs)?;
    Ok((DType::I16, inputs[0].shape().to_vec()))
}

/// One row's probabilities over the keys `j` with `visible(j)`.
fn row_softmax(x: &[i16], visible: impl Fn(usize) -> bool, table: &[i16], out: &mut [i16]) {
    let m = x
        .iter()
        .enumerate()
        .filter(|(j, _)| visible(*j))
        .map(|(_, &v)| i32::from(v))
        .max();
    let Some(m) = m else {
        out.fill(0);
        return;
    };
    let mut sum = 0i32;
    for (j, (dst, &v)) in out.iter_mut().zip(x).enumerate() {
        let gap = (m - i32::from(v)) as usize;
        *dst = if visible(j) && gap < table.len() {
            table[gap]
        } else {
            0
        };
        sum = sum.wrapping_add(i32::from(*dst));
    }
    for p in out.iter_mut() {
        *p = if sum <= 0 {
            0
        } else {
            ((i32::from(*p) << 15).wrapping_add(sum >> 1) / sum).clamp(-32768, 32767) as i16
        };
    }
}

pub(super) fn native(inputs: &[&Tensor]) -> Result<Tensor, OpError> {
    let (_, n) = dims(inputs)?;
    let x = inputs[0].as_i16()?.as_slice().expect("standard layout");
    let mask = inputs[1].as_i32()?.as_slice().expect("standard layout");
    let table = inputs[2].as_i16()?.as_slice().expect("standard layout");
    let mut y = vec![0i16; x.len()];
    y.par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .for_each(|(out, row)| row_softmax(row, |j| mask[j] != 0, table, out));
    Ok(Tensor::I16(
        ArrayD::from_shape_vec(IxDyn(inputs[0].shape()), y).expect("the input's shape"),
    ))
}

pub(super) fn causal_native(inputs: &[&Tensor]) -> Result<Tensor, OpError> {
    let (_, t, n) = causal_dims(inputs)?;
    let x = inputs[0].as_i16()?.as_slice().expect("standard layout");
    let table = inputs[1].as_i16()?.as_slice().expect("standard layout");
    let mut y = vec![0i16; x.len()];
    y.par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .enumerate()
        .for_each(|(r, (out, row))| {
            let last = r % t + (n - t);
            row_softmax(row, |j| j <= last, table, out)
        });
    Ok(Tensor::I16(
        ArrayD::from_shape_vec(IxDyn(inputs[0].shape()), y).expect("the input's shape"),
    ))
}

pub(super) fn causal_kernel_params(inputs: &[&Tensor]) -> Vec<i32> {
    let (rows, t, n) = causal_dims(inputs).expect("checked by output_type");
    CAUSAL_LAYOUT.encode(&[
        ("rows", rows as i32),
        ("t", t as i32),
        ("n", n as i32),
        ("table_len", inputs[1].len() as i32),
    ])
}

pub(super) fn kernel_params(inputs: &[&Tensor]) -> Vec<i32> {
    let (rows, n) = dims(inputs).expect("checked by output_type");
    LAYOUT.encode(&[
        ("rows", rows as i32),
        ("n", n as i32),
        ("table_len", inputs[2].len() as i32),
    ])
}

/// The params words of a Softmax node after the lengths: rows, row length, exp table entries.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 3,
    fields: &["rows", "n", "table_len"],
};

/// The params words of a causal softmax node after the lengths: rows (all of `x`'s), queries per
/// block, row length, exp table entries.
pub(super) const CAUSAL_LAYOUT: ParamLayout = ParamLayout {
    inputs: 2,
    fields: &["rows", "t", "n", "table_len"],
};

/// Which keys a softmax row sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keys {
    /// Kind `softmax`: those with `mask[j] ≠ 0`.
    Masked,
    /// Kind `causal_softmax`: `0..=i + (n − t)` for query `i` of its block.
    Causal,
}

/// Emits a jump to `hidden` when key `t0` is not visible to the current row.
fn emit_hidden(a: &mut Assembler, keys: Keys, hidden: &str) {
    match keys {
        Keys::Masked => a
            .slli(T1, T0, 2)
            .add(T1, S4, T1)
            .lw(T1, 0, T1)
            .beq(T1, ZERO, hidden),
        Keys::Causal => a.bltu(S4, T0, hidden),
    };
}

/// Registers: s3 x row, s4 mask (causal: the row's last visible key), s5 table, s6 output row, s7
/// rows left, s8 n, s9 table length, s10 the row's max, s11 the row's sum; causal only: a5 the
/// query's index in its block, a6 `n − t`.
pub(super) fn kernel(keys: Keys) -> Result<ElfImage, KernelError> {
    let layout = match keys {
        Keys::Masked => &LAYOUT,
        Keys::Causal => &CAUSAL_LAYOUT,
    };
    let p = |f| layout.offset(f);
    build_kernel(layout, |a| {
        a.li(T3, TABLE_ADDR as i32).lw(S3, 0, T3);
        match keys {
            Keys::Masked => a.lw(S4, 4, T3).lw(S5, 8, T3).lw(S6, 12, T3),
            Keys::Causal => a
                .lw(S5, 4, T3)
                .lw(S6, 8, T3)
                .li(A5, 0)
                .lw(A6, p("n"), S0)
                .lw(T1, p("t"), S0)
                .sub(A6, A6, T1),
        };
        a.lw(S7, p("rows"), S0)
            .lw(S8, p("n"), S0)
            .lw(S9, p("table_len"), S0)
            .label("sm_row")
            .beq(S7, ZERO, "sm_done");
        if keys == Keys::Causal {
            a.add(S4, A5, A6);
        }
        // s10 = max over visible keys, or below every int16 when none is.
        a.li(S10, -32769)
            .li(T0, 0)
            .label("sm_max")
            .bgeu(T0, S8, "sm_max_done");
        emit_hidden(a, keys, "sm_max_next");
        a.slli(T1, T0, 1)
            .add(T1, S3, T1)
            .lh(T1, 0, T1)
            .bge(S10, T1, "sm_max_next")
            .mv(S10, T1)
            .label("sm_max_next")
            .addi(T0, T0, 1)
            .j("sm_max")
            .label("sm_max_done")
            // e_j into the output row, their sum into s11.
            .li(S11, 0)
            .li(T0, 0)
            .label("sm_exp")
            .bgeu(T0, S8, "sm_exp_done")
            .li(T2, 0);
        emit_hidden(a, keys, "sm_exp_store");
        a.slli(T1, T0, 1)
            .add(T1, S3, T1)
            .lh(T1, 0, T1)
            .sub(T1, S10, T1)
            .bgeu(T1, S9, "sm_exp_store")
            .slli(T1, T1, 1)
            .add(T1, S5, T1)
            .lh(T2, 0, T1)
            .label("sm_exp_store")
            .slli(T1, T0, 1)
            .add(T1, S6, T1)
            .sh(T2, 0, T1)
            .add(S11, S11, T2)
            .addi(T0, T0, 1)
            .j("sm_exp")
            .label("sm_exp_done")
            // p_j = clamp16((e_j · 2^15 + S/2) / S), or 0 when S ≤ 0.
            .srai(A1, S11, 1)
            .li(A2, 32767)
            .li(A3, -32768)
            .li(T0, 0)
            .label("sm_div")
            .bgeu(T0, S8, "sm_div_done")
            .slli(T1, T0, 1)
            .add(T1, S6, T1)
            .li(T2, 0)
            .bge(ZERO, S11, "sm_div_store")
            .lh(T2, 0, T1)
            .slli(T2, T2, 15)
            .add(T2, T2, A1)
            .div(T2, T2, S11)
            .bge(A2, T2, "sm_not_high")
            .mv(T2, A2)
            .label("sm_not_high")
            .bge(T2, A3, "sm_div_store")
            .mv(T2, A3)
            .label("sm_div_store")
            .sh(T2, 0, T1)
            .addi(T0, T0, 1)
            .j("sm_div")
            .label("sm_div_done")
            .slli(T0, S8, 1)
            .add(S3, S3, T0)
            .add(S6, S6, T0)
            .addi(S7, S7, -1);
        if keys == Keys::Causal {
            // The next query of the block, or the first of the next block.
            a.addi(A5, A5, 1)
                .lw(T1, p("t"), S0)
                .bne(A5, T1, "sm_row")
                .li(A5, 0);
        }
        a.j("sm_row").label("sm_done");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;
    use rand::Rng;

    /// The table of `exp(−δ·scale)` in Q15, as the import builds it.
    fn exp_table(scale: f64, len: usize) -> Tensor {
        Tensor::I16(
            ndarray::Array1::from_iter(
                (0..len)
                    .map(|d| ((-(d as f64) * scale).exp() * 32768.0).round().min(32767.0) as i16),
            )
            .into_dyn(),
        )
    }

    fn mask(v: Vec<i32>) -> Tensor {
        Tensor::I32(ndarray::Array1::from(v).into_dyn())
    }

    #[test]
    fn native_equals_vm_with_masks() {
        let (mut rng, seed) = test_rng("softmax::native_equals_vm_with_masks");
        // (shape, largest |x|, masked keys, table length)
        let cases: [(&[usize], i16, &[usize], usize); 6] = [
            (&[1, 1], 100, &[], 1),
            (&[12, 16, 16], 3000, &[9, 10, 11, 12, 13, 14, 15], 4096),
            (&[3, 7], i16::MAX, &[], MAX_TABLE),
            (&[2, 5], 10, &[0, 1, 2, 3, 4], 64),
            (&[4, 33], 20_000, &[32], 700),
            (&[2, 3, 9], 50, &[0], 16),
        ];
        for (shape, max, masked, len) in cases {
            let n = shape[shape.len() - 1];
            let x = random_i16(&mut rng, shape, max);
            let m = mask(
                (0..n)
                    .map(|j| {
                        if masked.contains(&j) {
                            0
                        } else {
                            rng.gen_range(1..30_000)
                        }
                    })
                    .collect(),
            );
            let table = exp_table(rng.gen_range(1e-4..0.05), len);
            native_equals_vm(
                &Op::Softmax,
                &[&x, &m, &table],
                &format!("seed {seed}: softmax {shape:?} masked {masked:?} table {len}"),
            );
        }
    }

    #[test]
    fn causal_native_equals_vm_on_odd_shapes() {
        let (mut rng, seed) = test_rng("softmax::causal_native_equals_vm_on_odd_shapes");
        // (shape [.., t, n], largest |x|, table length)
        let cases: [(&[usize], i16, usize); 9] = [
            (&[1, 1], 100, 1),
            (&[0, 2, 3], 100, 16),
            (&[4, 1, 1], 100, 16),
            (&[4, 1, 9], 3000, 4096),
            (&[4, 7, 7], i16::MAX, MAX_TABLE),
            (&[3, 5, 12], 20_000, 700),
            (&[2, 2, 3, 3], 50, 16),
            (&[1, 33, 40], 3000, 2048),
            (&[9, 9], i16::MAX, MAX_TABLE),
        ];
        for (shape, max, len) in cases {
            let x = random_i16(&mut rng, shape, max);
            let table = exp_table(rng.gen_range(1e-4..0.05), len);
            native_equals_vm(
                &Op::CausalSoftmax,
                &[&x, &table],
                &format!("seed {seed}: causal_softmax {shape:?} table {len}"),
            );
        }
        // A hostile table, and scores at int16's ends.
        let mut v = vec![i16::MIN; 9];
        v.extend([
            i16::MAX,
            i16::MIN,
            i16::MAX,
            0,
            0,
            0,
            i16::MIN,
            i16::MAX,
            -1,
        ]);
        let x = Tensor::I16(ndarray::ArrayD::from_shape_vec(IxDyn(&[2, 3, 3]), v).unwrap());
        for table in [random_i16(&mut rng, &[300], i16::MAX), exp_table(0.01, 7)] {
            native_equals_vm(
                &Op::CausalSoftmax,
                &[&x, &table],
                &format!("seed {seed}: causal_softmax extremes"),
            );
        }
    }

    /// A causal row is the masked softmax with the mask of the keys it may see; later keys get 0.
    #[test]
    fn causal_is_the_masked_softmax_of_the_earlier_keys() {
        let (mut rng, seed) = test_rng("softmax::causal_is_the_masked_softmax_of_the_earlier_keys");
        let (t, n) = (3, 5);
        let x = random_i16(&mut rng, &[2, t, n], 400);
        let table = exp_table(0.01, 2048);
        let y = causal_native(&[&x, &table]).unwrap();
        let (xs, ys) = (x.as_i16().unwrap(), y.as_i16().unwrap());
        for h in 0..2 {
            for i in 0..t {
                let m = mask((0..n).map(|j| i32::from(j <= i + n - t)).collect());
                let row = Tensor::I16(xs.slice(ndarray::s![h, i, ..]).to_owned().into_dyn());
                let want = native(&[&row, &m, &table]).unwrap();
                let got = ys.slice(ndarray::s![h, i, ..]).to_owned().into_dyn();
                assert_eq!(Tensor::I16(got), want, "seed {seed}: head {h} query {i}");
                for j in i + n - t + 1..n {
                    assert_eq!(ys[[h, i, j]], 0, "seed {seed}: a later key");
                }
            }
        }
    }

    #[test]
    fn causal_names_what_does_not_fit() {
        let (mut rng, _) = test_rng("softmax::causal_names_what_does_not_fit");
        let t = exp_table(0.1, 10);
        let cases: [(Vec<Tensor>, &str); 6] = [
            (
                vec![random_i16(&mut rng, &[2, 5, 4], 9), t.clone()],
                "1 ≤ t ≤ n",
            ),
            (vec![random_i16(&mut rng, &[4], 9), t.clone()], "[.., t, n]"),
            (
                vec![random_i16(&mut rng, &[0, 0], 9), t.clone()],
                "1 ≤ t ≤ n",
            ),
            (
                vec![
                    random_i16(&mut rng, &[2, 4], 9),
                    random_i16(&mut rng, &[0], 1),
                ],
                "exp table must be",
            ),
            (vec![random_i8(&mut rng, &[2, 4]), t.clone()], "needs i16 x"),
            (vec![random_i16(&mut rng, &[2, 4], 9)], "takes 2 inputs"),
        ];
        for (inputs, want) in cases {
            let refs: Vec<&Tensor> = inputs.iter().collect();
            let err = Op::CausalSoftmax.native(&refs).unwrap_err().to_string();
            assert!(
                err.contains("causal_softmax") && err.contains(want),
                "{err} (wanted {want})"
            );
        }
    }

    /// A hostile table (negative or zero weights) still gives a defined answer on both sides.
    #[test]
    fn hostile_tables_agree_too() {
        let (mut rng, seed) = test_rng("softmax::hostile_tables_agree_too");
        let x = random_i16(&mut rng, &[3, 8], 200);
        let m = mask(vec![1; 8]);
        for table in [
            random_i16(&mut rng, &[300], i16::MAX),
            Tensor::I16(ndarray::Array1::zeros(5).into_dyn()),
        ] {
            native_equals_vm(
                &Op::Softmax,
                &[&x, &m, &table],
                &format!("seed {seed}: hostile table"),
            );
        }
    }

    #[test]
    fn close_to_the_float_softmax_and_masked_keys_get_nothing() {
        let scale = 0.01;
        let x = Tensor::I16(ndarray::Array1::from(vec![100i16, 0, -100, 250, 30000]).into_dyn());
        let y = native(&[&x, &mask(vec![5, 7, 9, 11, 0]), &exp_table(scale, 2048)]).unwrap();
        let y = y.as_i16().unwrap();
        let logits = [1.0f64, 0.0, -1.0, 2.5];
        let total: f64 = logits.iter().map(|v| v.exp()).sum();
        for (j, l) in logits.iter().enumerate() {
            let want = l.exp() / total;
            assert!(
                (f64::from(y[j]) / 32768.0 - want).abs() < 2e-4,
                "{j}: {} vs {want}",
                y[j]
            );
        }
        assert_eq!(y[4], 0, "a masked key");
    }

    #[test]
    fn what_does_not_fit_is_named() {
        let (mut rng, _) = test_rng("softmax::what_does_not_fit_is_named");
        let x = random_i16(&mut rng, &[2, 4], 10);
        let t = exp_table(0.1, 10);
        let cases: [(Vec<Tensor>, &str); 3] = [
            (
                vec![x.clone(), mask(vec![1; 3]), t.clone()],
                "mask must be [4]",
            ),
            (
                vec![x.clone(), mask(vec![1; 4]), random_i16(&mut rng, &[0], 1)],
                "exp table must be",
            ),
            (
                vec![random_i8(&mut rng, &[2, 4]), mask(vec![1; 4]), t],
                "needs i16 x",
            ),
        ];
        for (inputs, want) in cases {
            let refs: Vec<&Tensor> = inputs.iter().collect();
            let err = native(&refs).unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }
}
