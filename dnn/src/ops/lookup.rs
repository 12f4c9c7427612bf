//! Lookup: any function of an int16 activation, as a table of its 65,536 values. The import
//! fills the table from the float function and the input and output scales (GELU, SiLU, ...), and
//! the table is a weight of the model, so its commitment covers it: no float and no polynomial
//! approximation in the VM, and the native and VM results are equal by construction.

use super::{arity, input_error, OpError};
use crate::asm::reg::*;
use crate::kernel::{build_kernel, KernelError, ParamLayout, TABLE_ADDR};
use crate::tensor::{DType, Tensor};
use ndarray::ArrayD;
use opml_vm::ElfImage;

/// Entries of a lookup table: one per int16 value, `table[x + 32768]` for `x`.
pub(super) const TABLE_LEN: usize = 1 << 16;

pub(super) fn output_type(inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
    arity("lookup", inputs, 2)?;
    let (x, table) = (inputs[0], inputs[1]);
    if x.dtype() != DType::I16 || table.dtype() != DType::I16 || table.shape() != [TABLE_LEN] {
        return Err(input_error(
            "lookup",
            format!(
                "needs i16 x and an i16 [{TABLE_LEN}] table; got {:?} and {:?} {:?}",
                x.dtype(),
                table.dtype(),
                table.shape()
            ),
        ));
    }
    Ok((DType::I16, x.shape().to_vec()))
}

pub(super) fn native(inputs: &[&Tensor]) -> Result<Tensor, OpError> {
    output_type(inputs)?;
    let table = inputs[1].as_i16()?.as_slice().expect("standard layout");
    let y: ArrayD<i16> = inputs[0]
        .as_i16()?
        .mapv(|v| table[(i32::from(v) + 32768) as usize]);
    Ok(Tensor::I16(y))
}

/// Params: the lengths only (word 0: the input's bytes).
pub(super) const LAYOUT: ParamLayout = ParamLayout {
    inputs: 2,
    fields: &[],
};

pub(super) fn kernel() -> Result<ElfImage, KernelError> {
    build_kernel(&LAYOUT, |a| {
        a.li(T3, TABLE_ADDR as i32)
            .lw(S3, 0, T3) // x
            .lw(S4, 4, T3) // table
            .lw(S6, 8, T3) // output
            .lw(T0, LAYOUT.len_offset(0), S0)
            .add(T0, S3, T0) // x's end
            .li(T1, 32768)
            .label("lookup")
            .bgeu(S3, T0, "lookup_done")
            .lh(T2, 0, S3)
            .add(T2, T2, T1)
            .slli(T2, T2, 1)
            .add(T2, S4, T2)
            .lh(T2, 0, T2)
            .sh(T2, 0, S6)
            .addi(S3, S3, 2)
            .addi(S6, S6, 2)
            .j("lookup")
            .label("lookup_done");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Op;
    use super::*;

    #[test]
    fn native_equals_vm_on_odd_shapes() {
        let (mut rng, seed) = test_rng("lookup::native_equals_vm_on_odd_shapes");
        let table = random_i16(&mut rng, &[TABLE_LEN], i16::MAX);
        for shape in [&[1usize][..], &[17], &[3, 5, 7], &[16, 1536]] {
            let x = random_i16(&mut rng, shape, i16::MAX);
            native_equals_vm(
                &Op::Lookup,
                &[&x, &table],
                &format!("seed {seed}: lookup {shape:?}"),
            );
        }
    }

    #[test]
    fn extremes_index_the_ends_of_the_table() {
        let table = Tensor::I16(
            ndarray::Array1::from_iter((0..TABLE_LEN).map(|i| (i as i32 - 32768) as i16))
                .into_dyn(),
        );
        let x = Tensor::I16(ndarray::Array1::from(vec![i16::MIN, -1, 0, 1, i16::MAX]).into_dyn());
        let y = native(&[&x, &table]).unwrap();
        assert_eq!(y, x, "the identity table");
    }

    #[test]
    fn a_table_of_another_size_is_refused() {
        let (mut rng, _) = test_rng("lookup::a_table_of_another_size_is_refused");
        let x = random_i16(&mut rng, &[4], 10);
        let short = random_i16(&mut rng, &[256], 10);
        let err = native(&[&x, &short]).unwrap_err().to_string();
        assert!(err.contains("[65536] table"), "{err}");
    }
}
