//! VM kernels: one fixed RV32IM image per op kind, parameterised at run time by a params slot.
//!
//! Calling convention (`docs/protocol.md` section 8). Input slot 0 holds the params, an int32
//! tensor: words `0..k` are the byte lengths of the op's `k` inputs, word `k` the byte length of its
//! output, and the op's own words follow. Slots `1..=k` hold the inputs. The shared prologue reads the
//! params to [`PARAMS_ADDR`] and each input, chunk by chunk, into its own 32-byte-aligned buffer on
//! the heap from [`HEAP_BASE`], and leaves the buffer addresses in a table at [`TABLE_ADDR`] (input
//! `i` at word `i`, the output buffer at word `k`); the op's body computes into the output buffer;
//! the shared epilogue appends the output buffer to the output accumulator with `write_chunk` and
//! exits with code 0. The output's commitment is then `H(header ‖ accumulator data root)`.

use crate::asm::{reg::*, AsmError, Assembler, Reg};
use crate::tensor::{header, DType, Tensor, TensorError};
use opml_vm::{
    ecall, tensor_commitment, ElfImage, Hash, InputSlots, InputTensor, Machine, RunOutcome,
};

/// Where kernel code starts.
pub const KERNEL_BASE: u32 = 0x1_0000;
/// Where the prologue copies the params.
pub const PARAMS_ADDR: u32 = 0x0010_0000;
/// Where the prologue leaves the buffer addresses.
pub const TABLE_ADDR: u32 = 0x0010_1000;
/// Where input and output buffers start.
pub const HEAP_BASE: u32 = 0x0100_0000;
/// Most params words a kernel reads (8 chunks).
pub const MAX_PARAMS: usize = 64;

/// Why a kernel could not be built or run, or gave no valid output.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The kernel's code does not assemble (a bug in the op's kernel writer).
    #[error("kernel does not assemble: {0}")]
    Asm(#[from] AsmError),
    /// A tensor has the wrong shape, type or size.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A kernel skeleton asked for what it cannot build (a bug of the op's kernel writer).
    #[error("kernel layout: {0}")]
    Layout(String),
    /// More params than the prologue reads.
    #[error("{0} params words; a kernel reads at most {MAX_PARAMS}")]
    TooManyParams(usize),
    /// An input tensor cannot go into a slot (too many inputs, bad header).
    #[error("input {index}: {reason}")]
    Input {
        /// Which input (0-based).
        index: usize,
        /// What the VM said.
        reason: String,
    },
    /// The kernel did not exit with code 0 within the step limit.
    #[error("kernel ended with {outcome:?} after {steps} steps")]
    Failed {
        /// How the run ended.
        outcome: RunOutcome,
        /// Steps taken.
        steps: u64,
    },
    /// The kernel emitted a different number of bytes than the output needs.
    #[error("kernel emitted {got} bytes for a {want}-byte output")]
    OutputLength {
        /// Bytes the output needs (rounded up to whole chunks).
        want: usize,
        /// Bytes emitted.
        got: usize,
    },
}

/// Where each word of an op kind's params vector (input slot 0) lies: the byte lengths of its
/// inputs and of its output come first, then the op's own words in `fields` order. One descriptor
/// per op kind, read both by the native side that writes the words ([`ParamLayout::encode`]) and
/// by the kernel that reads them ([`ParamLayout::offset`]), so that no word can be written at one
/// offset and read at another.
#[derive(Debug)]
pub struct ParamLayout {
    /// The op's tensor inputs.
    pub inputs: usize,
    /// The names of the op's own words, in order.
    pub fields: &'static [&'static str],
}

impl ParamLayout {
    /// Words of the whole params vector.
    pub const fn words(&self) -> usize {
        self.inputs + 1 + self.fields.len()
    }

    /// Byte offset from `s0` of the byte length of input `index` (`inputs` for the output's).
    pub const fn len_offset(&self, index: usize) -> i32 {
        4 * index as i32
    }

    /// Byte offset from `s0` of the op's own word `field`. A name the layout lacks is a bug of the
    /// kernel writer, which every kernel's build (and so every op test) reports by panicking.
    pub fn offset(&self, field: &str) -> i32 {
        match self.fields.iter().position(|f| *f == field) {
            Some(i) => 4 * (self.inputs + 1 + i) as i32,
            None => panic!("params layout {:?} has no field `{field}`", self.fields),
        }
    }

    /// The op's own words from `(field, value)` pairs, which must name every field in layout
    /// order (a mismatch is a bug of the op's native writer; every op test reports it).
    pub fn encode(&self, values: &[(&str, i32)]) -> Vec<i32> {
        let names: Vec<&str> = values.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            names, self.fields,
            "params written out of their layout's order"
        );
        values.iter().map(|(_, v)| *v).collect()
    }
}

/// Assembles a kernel image: the shared prologue for an op of params `layout`, then `body`, then
/// the shared epilogue. `body` finds the params at `s0` (`PARAMS_ADDR`) and must keep `s0`.
pub fn build_kernel(
    layout: &ParamLayout,
    body: impl FnOnce(&mut Assembler),
) -> Result<ElfImage, KernelError> {
    let (inputs, params) = (layout.inputs, layout.words());
    if params > MAX_PARAMS {
        return Err(KernelError::TooManyParams(params));
    }
    let mut a = Assembler::new();
    a.li(S0, PARAMS_ADDR as i32);
    for chunk in 0..(4 * params).div_ceil(32) {
        a.li(A0, 0)
            .li(A1, chunk as i32)
            .addi(A2, S0, 32 * chunk as i32)
            .li(A7, ecall::READ_CHUNK as i32)
            .ecall();
    }
    a.li(S1, HEAP_BASE as i32).li(S2, TABLE_ADDR as i32);
    for input in 0..inputs {
        let (top, done) = (a.fresh_label("read"), a.fresh_label("read_done"));
        a.sw(S1, 4 * input as i32, S2)
            .lw(T0, 4 * input as i32, S0)
            .addi(T0, T0, 31)
            .srli(T0, T0, 5)
            .li(T1, 0)
            .label(&top)
            .bgeu(T1, T0, &done)
            .li(A0, input as i32 + 1)
            .mv(A1, T1)
            .mv(A2, S1)
            .li(A7, ecall::READ_CHUNK as i32)
            .ecall()
            .addi(S1, S1, 32)
            .addi(T1, T1, 1)
            .j(&top)
            .label(&done);
    }
    a.sw(S1, 4 * inputs as i32, S2);
    body(&mut a);
    let (top, done) = ("emit", "emit_done");
    a.li(S2, TABLE_ADDR as i32)
        .lw(S1, 4 * inputs as i32, S2)
        .lw(T0, 4 * inputs as i32, S0)
        .addi(T0, T0, 31)
        .srli(T0, T0, 5)
        .label(top)
        .beq(T0, ZERO, done)
        .mv(A0, S1)
        .li(A7, ecall::WRITE_CHUNK as i32)
        .ecall()
        .addi(S1, S1, 32)
        .addi(T0, T0, -1)
        .j(top)
        .label(done)
        .li(A0, 0)
        .li(A7, ecall::EXIT as i32)
        .ecall();
    Ok(ElfImage::from_words(KERNEL_BASE, &a.finish()?, 0, &[]))
}

/// Registers of an element-wise kernel's loop body (see [`elementwise_kernel`]).
pub mod elementwise {
    use crate::asm::{reg::*, Reg};
    /// The current element of each input, sign-extended: input 0 in `T1`, input 1 in `T2`, input
    /// 2 in `T3`.
    pub const ELEMENTS: [Reg; 3] = [T1, T2, T3];
    /// Where the body leaves the output element.
    pub const RESULT: Reg = A0;
    /// Registers the loop keeps (pointers and count); neither setup nor body may write them.
    pub const KEPT: [Reg; 6] = [S0, S3, S4, S5, S6, T0];
}

/// Assembles an element-wise kernel: for each element `i` of its inputs (all of one element count,
/// the output's too), loads element `i` of every input into [`elementwise::ELEMENTS`], runs `body`,
/// and stores [`elementwise::RESULT`] as output element `i`. `setup` runs once before the loop (to
/// load the op's own params words into free registers, e.g. `S7`..`S11`). The element count is
/// the output's byte length over its element size.
pub fn elementwise_kernel(
    layout: &ParamLayout,
    inputs: &[DType],
    output: DType,
    setup: impl FnOnce(&mut Assembler),
    body: impl FnOnce(&mut Assembler),
) -> Result<ElfImage, KernelError> {
    const POINTERS: [Reg; 3] = [S3, S4, S5];
    if inputs.len() != layout.inputs || inputs.len() > POINTERS.len() {
        return Err(KernelError::Layout(format!(
            "an element-wise kernel of {} inputs for a layout of {} (at most {})",
            inputs.len(),
            layout.inputs,
            POINTERS.len()
        )));
    }
    build_kernel(layout, |a| {
        a.li(S2, TABLE_ADDR as i32);
        for (i, p) in POINTERS.iter().take(inputs.len()).enumerate() {
            a.lw(*p, 4 * i as i32, S2);
        }
        a.lw(S6, 4 * inputs.len() as i32, S2)
            .lw(T0, layout.len_offset(inputs.len()), S0);
        shift_right_by_size(a, T0, output);
        setup(a);
        a.label("elementwise").beq(T0, ZERO, "elementwise_done");
        for ((dtype, p), e) in inputs.iter().zip(POINTERS).zip(elementwise::ELEMENTS) {
            match dtype {
                DType::I8 => a.lb(e, 0, p),
                DType::I16 => a.lh(e, 0, p),
                DType::I32 => a.lw(e, 0, p),
            };
        }
        body(a);
        match output {
            DType::I8 => a.sb(elementwise::RESULT, 0, S6),
            DType::I16 => a.sh(elementwise::RESULT, 0, S6),
            DType::I32 => a.sw(elementwise::RESULT, 0, S6),
        };
        for (dtype, p) in inputs.iter().zip(POINTERS) {
            a.addi(p, p, dtype.size() as i32);
        }
        a.addi(S6, S6, output.size() as i32)
            .addi(T0, T0, -1)
            .j("elementwise")
            .label("elementwise_done");
    })
}

/// `reg /= dtype.size()` for a byte count.
fn shift_right_by_size(a: &mut Assembler, reg: Reg, dtype: DType) {
    match dtype {
        DType::I8 => {}
        DType::I16 => {
            a.srli(reg, reg, 1);
        }
        DType::I32 => {
            a.srli(reg, reg, 2);
        }
    }
}

/// The params vector of a kernel run (slot 0): the inputs' byte lengths, the output's, then the
/// op's own words.
pub fn params_vector(
    op_params: &[i32],
    inputs: &[&Tensor],
    output: (DType, &[usize]),
) -> Result<Tensor, KernelError> {
    let out_bytes = output.1.iter().product::<usize>() * output.0.size();
    let mut words: Vec<i32> = inputs.iter().map(|t| t.byte_len() as i32).collect();
    words.push(out_bytes as i32);
    words.extend_from_slice(op_params);
    if words.len() > MAX_PARAMS {
        return Err(KernelError::TooManyParams(words.len()));
    }
    Ok(Tensor::I32(ndarray::Array1::from(words).into_dyn()))
}

/// The input slots of one kernel run: params in slot 0, the inputs in slots 1.., each with its
/// tensor header.
pub fn kernel_inputs(
    op_params: &[i32],
    inputs: &[&Tensor],
    output: (DType, &[usize]),
) -> Result<InputSlots, KernelError> {
    let params = params_vector(op_params, inputs, output)?;
    let mut slots = InputSlots::default();
    for (index, t) in std::iter::once(&params)
        .chain(inputs.iter().copied())
        .enumerate()
    {
        let tensor =
            InputTensor::new(t.header()?, t.to_le_bytes()).map_err(|e| KernelError::Input {
                index,
                reason: e.to_string(),
            })?;
        slots.set(index, tensor).map_err(|e| KernelError::Input {
            index,
            reason: e.to_string(),
        })?;
    }
    Ok(slots)
}

/// The result of running a kernel in the VM.
#[derive(Debug, Clone)]
pub struct KernelRun {
    /// The output, decoded from the output accumulator.
    pub output: Tensor,
    /// Its commitment: the header with the accumulator's data root.
    pub commitment: Hash,
    /// VM steps the kernel took.
    pub steps: u64,
}

/// Runs `image` on `op_params` and `inputs` until it exits (at most `max_steps` steps); decodes the
/// output tensor of type and shape `output` from the output accumulator.
pub fn run_kernel(
    image: &ElfImage,
    op_params: &[i32],
    inputs: &[&Tensor],
    output: (DType, &[usize]),
    max_steps: u64,
) -> Result<KernelRun, KernelError> {
    let slots = kernel_inputs(op_params, inputs, output)?;
    let mut machine = Machine::new(image, slots);
    let outcome = machine.run(max_steps);
    let steps = machine.step_count();
    if outcome != RunOutcome::Exited(0) {
        return Err(KernelError::Failed { outcome, steps });
    }
    let (dtype, shape) = output;
    let want = shape.iter().product::<usize>() * dtype.size();
    let bytes = machine.output().bytes();
    if bytes.len() != want.div_ceil(32) * 32 {
        return Err(KernelError::OutputLength {
            want: want.div_ceil(32) * 32,
            got: bytes.len(),
        });
    }
    let root = machine.output().snapshot().data_root();
    let output = Tensor::from_le_bytes(dtype, shape, &bytes[..want])?;
    Ok(KernelRun {
        commitment: tensor_commitment(&header(dtype, shape)?, &root),
        output,
        steps,
    })
}
