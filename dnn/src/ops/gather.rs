//! Gather: rows of a table picked by int32 ids, the token embedding of a transformer. An id
//! outside the table (negative or ≥ its rows) picks a row of zeros on both sides, so that a
//! hostile request cannot make the native and VM runs disagree or fail.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, Axis};
use opml_vm::ElfImage;

/// `(ids, rows, row bytes)` of `ids [t]`, `table [v, d]`.
fn dims(inputs: &[&Tensor]) -> Result<(usize, usize, usize), OpError> {
    arity("gather", inputs, 2)?;
    let (ids, table) = (inputs[0], inputs[1]);
    match (ids.dtype(), ids.shape(), table.shape()) {
        (DType::I32, [t], [v, d]) => Ok((*t, *v, d * table.dtype().size())),
        _ => Err(input_error(
            "gather",
            format!(
                "needs i32 ids [t] and a table [v, d]; got {:?} {:?} and {:?}",
                ids.dtype(),
                ids.shape(),
                table.shape()
            ),
        )),
    }
}

pub(super) fn output_type(inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
    let (t, _, _) = dims(inputs)?;
    Ok((inputs[1].dtype(), vec![t, inputs[1].shape()[1]]))
}

pub(super) fn native(inputs: &[&Tensor]) -> Result<Tensor, OpError> {
    let (_, shape) = output_type(inputs)?;
    let ids = inputs[0].as_i32()?;
    // Row by row from the typed table: the table (a vocabulary, tens of MB) is never copied.
    fn rows<T: Copy + Default>(
        ids: &ArrayD<i32>,
        table: &ArrayD<T>,
        shape: &[usize],
    ) -> Result<ArrayD<T>, OpError> {
        let mut out = ArrayD::<T>::default(shape);
        for (mut dst, &id) in out.outer_iter_mut().zip(ids.iter()) {
            if let Some(row) = usize::try_from(id).ok().filter(|&id| id < table.shape()[0]) {
                dst.assign(&table.index_axis(Axis(0), row));
            }
        }
        Ok(out)
    }
    Ok(match inputs[1] {
        Tensor::I8(table) => Tensor::I8(rows(ids, table, &shape)?),
        Tensor::I16(table) => Tensor::I16(rows(ids, table, &shape)?),
        Tensor::I32(table) => Tensor::I32(rows(ids, table, &shape)?),
    })
}

pub(super) fn kernel_params(inputs: &[&Tensor]) -> Vec<i32> {
    let (t, v, row) = dims(inputs).expect("checked by output_type");
    LAYOUT.encode(&[("t", t as i32), ("v", v as i32), ("row_bytes", row as i32)])
}

/// The params words of a Gather node after the lengths: ids, table rows, bytes per row.
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 2,
    fields: &["t", "v", "row_bytes"],
};

/// For each id: the row's bytes, one by one (the output starts zeroed, so an id outside the
/// table leaves its row alone).
pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    let p = |f| LAYOUT.offset(f);
    build_kernel(&LAYOUT, |a| {
        a.li(T3, TABLE_ADDR as i32)
            .lw(S3, 0, T3) // ids
            .lw(S4, 4, T3) // table
            .lw(S6, 8, T3) // output row
            .lw(S7, p("t"), S0)
            .lw(S8, p("v"), S0)
            .lw(S9, p("row_bytes"), S0)
            .label("gather_id")
            .beq(S7, ZERO, "gather_done")
            .lw(T0, 0, S3)
            .bgeu(T0, S8, "gather_next")
            .mul(T1, T0, S9)
            .add(T1, S4, T1)
            .mv(T2, S6)
            .add(A0, S6, S9)
            .label("gather_copy")
            .bgeu(T2, A0, "gather_next")
            .lb(T3, 0, T1)
            .sb(T3, 0, T2)
            .addi(T1, T1, 1)
            .addi(T2, T2, 1)
            .j("gather_copy")
            .label("gather_next")
            .add(S6, S6, S9)
            .addi(S3, S3, 4)
            .addi(S7, S7, -1)
            .j("gather_id")
            .label("gather_done");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;
    use rand::Rng;

    #[test]
    fn native_equals_vm_with_ids_in_and_out_of_range() {
        let (mut rng, seed) = test_rng("gather::native_equals_vm_with_ids_in_and_out_of_range");
        for (v, d, t) in [(1usize, 1usize, 1usize), (50, 7, 9), (1000, 384, 16)] {
            for table in [
                random_i8(&mut rng, &[v, d]),
                random_i16(&mut rng, &[v, d], i16::MAX),
                random_i32(&mut rng, &[v, d], i32::MIN..i32::MAX),
            ] {
                let mut ids: Vec<i32> = (0..t).map(|_| rng.gen_range(0..v as i32)).collect();
                ids.extend([-1, v as i32, i32::MAX, i32::MIN]);
                let ids = Tensor::I32(ndarray::Array1::from(ids).into_dyn());
                native_equals_vm(
                    &Op::Gather,
                    &[&ids, &table],
                    &format!("seed {seed}: gather {:?} [{v}, {d}]", table.dtype()),
                );
            }
        }
    }

    #[test]
    fn picks_the_rows_and_zeros_outside() {
        let table = Tensor::I16(
            ndarray::Array2::from_shape_vec((3, 2), vec![1i16, 2, 3, 4, 5, 6])
                .unwrap()
                .into_dyn(),
        );
        let ids = Tensor::I32(ndarray::Array1::from(vec![2, 0, 3, -1]).into_dyn());
        let y = native(&[&ids, &table]).unwrap();
        assert_eq!(
            y.as_i16().unwrap().as_slice().unwrap(),
            [5, 6, 1, 2, 0, 0, 0, 0]
        );
    }
}
