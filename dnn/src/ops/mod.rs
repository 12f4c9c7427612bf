//! The ops of a model graph. Each op kind has a native implementation and a VM kernel in its own
//! file; this module dispatches between them, so adding an op is a new file and one enum arm.
//!
//! # Adding an op
//!
//! 1. A file `ops/NAME.rs` with the op's parameters (a serde struct, or none), `output_type`
//!    (every check of its inputs, each failure named), `native`, and its params [`crate::kernel::ParamLayout`]:
//!    the names of the words its kernel reads after the tensors' byte lengths. The native side
//!    writes them with `LAYOUT.encode(&[("field", value), ...])`, the kernel reads them with
//!    `a.lw(REG, LAYOUT.offset("field"), S0)`, so neither can drift from the other.
//! 2. Its kernel: [`crate::kernel::elementwise_kernel`] when each output element depends only on
//!    the same element of each input (the skeleton loads, loops and stores; the op writes the body
//!    in registers), else [`crate::kernel::build_kernel`] with its own loops.
//! 3. An arm in [`Op`], [`OpKind`] (with `ALL`, `name`, `kernel`) and the dispatch below; its
//!    kernel root pinned in `kernel_roots_are_pinned`; a `native_equals_vm` test on odd shapes and
//!    edge values from a printed seed (`testing::test_rng`).
//! 4. Its kind byte and params in the protocol (`docs/protocol.md` section 8) and the Registry's
//!    kernel list (`opml_bisect::deploy`), so that a chain can replay its nodes.

mod add;
mod argmax;
mod concat;
mod conv2d;
mod gather;
mod layernorm;
mod linear;
mod lookup;
mod matmul;
mod maxpool;
mod meanpool;
mod mul;
mod relu;
mod reshape;
mod rope;
mod softmax;
mod transpose;

pub use add::Add;
pub use conv2d::Conv2d;
pub use linear::Linear;
pub use matmul::MatMul;
pub use maxpool::MaxPool2d;
pub use mul::Mul16;
pub use rope::Rope;

use layernorm::Norm;

use crate::kernel::{run_kernel, KernelError, KernelRun};
use crate::tensor::{DType, Tensor, TensorError};
use opml_vm::ElfImage;
use std::sync::OnceLock;

/// Why an op cannot run on its inputs.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The op takes a different number of inputs.
    #[error("{op} takes {want} inputs, got {got}")]
    Arity {
        /// The op.
        op: &'static str,
        /// Inputs it takes.
        want: usize,
        /// Inputs given.
        got: usize,
    },
    /// An input's shape or type does not fit the op.
    #[error("{op}: {what}")]
    Input {
        /// The op.
        op: &'static str,
        /// What is wrong.
        what: String,
    },
    /// A tensor error.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// The VM kernel failed.
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// An op with its parameters (weights are inputs, not parameters).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// int8 → int8, `max(x, 0)`.
    Relu,
    /// Any tensor to another shape with as many elements (Flatten is a reshape to one dimension).
    Reshape {
        /// The new shape.
        shape: Vec<usize>,
    },
    /// int8 `[n]` → int32 `[1]`: the index of the first largest element.
    ArgMax,
    /// int8 `x[m, k]` (or `[k]`), int8 `w[n, k]`, int32 `bias[n]`, int32 `scale[n, 2]` (multiplier,
    /// shift per output channel) → int8 `[m, n]` (or `[n]`).
    Linear(Linear),
    /// int8 `x[c, h, w]`, int8 `w[o, c, kh, kw]`, int32 `bias[o]`, int32 `scale[o, 2]` → int8
    /// `[o, ho, wo]`.
    Conv2d(Conv2d),
    /// int8 `[c, h, w]` → int8 `[c, ho, wo]`, the largest of each window.
    MaxPool2d(MaxPool2d),
    /// int8 `a`, int8 `b` of one shape → int8, `requant(a·ma + b·mb)`.
    Add(Add),
    /// [`Op::Add`] on int16 (a transformer's residual stream), saturating to int16.
    Add16(Add),
    /// int32 `ids[t]`, any `table[v, d]` → `[t, d]`, row `ids[i]` of the table (zeros for an id
    /// outside it).
    Gather,
    /// int16 `x[t, d]`, int32 `mask[t]` → int16 `[d]`, the mean of the unmasked rows.
    MeanPool,
    /// Two tensors of one type, equal but along `axis` → joined along it (the tiles of a matmul).
    Concat {
        /// The axis joined along.
        axis: usize,
    },
    /// int16 `a[.., m, k]`, int8 `w[n, k]` or int16 `b[.., n, k]`, int32 `bias[n]` (or `[1]`), int32
    /// `scale[n, 2]` (or `[1, 2]`) → int16 `[.., m, n]`: rows narrowed so that sums fit int32.
    MatMul(MatMul),
    /// Any tensor of rank ≤ 4 → its axes in the order `perm` (output axis `d` is input axis
    /// `perm[d]`).
    Transpose {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// int16 `x[.., d]`, int32 `scale[d, 2]` (γ), int32 `bias[d]` (β) → int16, normalized over the
    /// last axis in integers (integer mean, variance and square root).
    LayerNorm,
    /// int16 `x`, int16 `table[65536]` → int16 `table[x + 32768]`: any function of an activation
    /// (GELU, SiLU) as a table that the model's weights commit to.
    Lookup,
    /// int16 scores `x[.., n]`, int32 `mask[n]` (key `j` takes part iff `mask[j] ≠ 0`), int16
    /// `exp_table[L]` → int16 probabilities in Q15 over the last axis.
    Softmax,
    /// int16 `a`, int16 `b` of one shape → int16 `requant(a·b)` (SwiGLU's `silu(gate) · up`).
    Mul16(Mul16),
    /// int16 `[n]` → int32 `[1]`: the index of the first largest element (a language model's
    /// logits).
    ArgMax16,
    /// int16 `x[.., d]`, int32 `scale[d, 2]` (γ) → int16, RMS-normalized over the last axis in
    /// integers (the LayerNorm computation without the mean and β).
    RmsNorm,
    /// int16 scores `x[.., t, n]`, int16 `exp_table[L]` → int16 probabilities in Q15 over the last
    /// axis, query `i` of each block seeing the keys `0..=i + n − t` (a decoder's attention).
    CausalSoftmax,
    /// int16 `x[.., t, hd]`, int16 `cos[P, hd/2]`, int16 `sin[P, hd/2]` (Q15) → int16: rotary
    /// position embedding, row `i` of each block at position `start + i`.
    Rope(Rope),
}

/// The kinds of op; each has one fixed VM kernel image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// [`Op::Relu`]
    Relu,
    /// [`Op::Reshape`]
    Reshape,
    /// [`Op::ArgMax`]
    ArgMax,
    /// [`Op::Linear`]
    Linear,
    /// [`Op::Conv2d`]
    Conv2d,
    /// [`Op::MaxPool2d`]
    MaxPool2d,
    /// [`Op::Add`]
    Add,
    /// [`Op::MatMul`]
    MatMul,
    /// [`Op::Transpose`]
    Transpose,
    /// [`Op::LayerNorm`]
    LayerNorm,
    /// [`Op::Lookup`]
    Lookup,
    /// [`Op::Softmax`]
    Softmax,
    /// [`Op::Add16`]
    Add16,
    /// [`Op::Gather`]
    Gather,
    /// [`Op::MeanPool`]
    MeanPool,
    /// [`Op::Concat`]
    Concat,
    /// [`Op::Mul16`]
    Mul16,
    /// [`Op::ArgMax16`]
    ArgMax16,
    /// [`Op::RmsNorm`]
    RmsNorm,
    /// [`Op::CausalSoftmax`]
    CausalSoftmax,
    /// [`Op::Rope`]
    Rope,
}

impl OpKind {
    /// Every kind.
    pub const ALL: [OpKind; 21] = [
        Self::Relu,
        Self::Reshape,
        Self::ArgMax,
        Self::Linear,
        Self::Conv2d,
        Self::MaxPool2d,
        Self::Add,
        Self::MatMul,
        Self::Transpose,
        Self::LayerNorm,
        Self::Lookup,
        Self::Softmax,
        Self::Add16,
        Self::Gather,
        Self::MeanPool,
        Self::Concat,
        Self::Mul16,
        Self::ArgMax16,
        Self::RmsNorm,
        Self::CausalSoftmax,
        Self::Rope,
    ];

    /// The kind's name in model files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Reshape => "reshape",
            Self::ArgMax => "arg_max",
            Self::Linear => "linear",
            Self::Conv2d => "conv2d",
            Self::MaxPool2d => "max_pool2d",
            Self::Add => "add",
            Self::MatMul => "mat_mul",
            Self::Transpose => "transpose",
            Self::LayerNorm => "layer_norm",
            Self::Lookup => "lookup",
            Self::Softmax => "softmax",
            Self::Add16 => "add16",
            Self::Gather => "gather",
            Self::MeanPool => "mean_pool",
            Self::Concat => "concat",
            Self::Mul16 => "mul16",
            Self::ArgMax16 => "arg_max16",
            Self::RmsNorm => "rms_norm",
            Self::CausalSoftmax => "causal_softmax",
            Self::Rope => "rope",
        }
    }

    /// The memory root of the kind's kernel image: what a registry records so that a chain can
    /// build a node's initial VM state (with the node's input root) without the image itself.
    /// Computed once per process: it builds a machine and hashes its memory, which a per-node loop
    /// over a large model must not repeat.
    pub fn kernel_root(self) -> opml_vm::Hash {
        static ROOTS: [OnceLock<opml_vm::Hash>; OpKind::ALL.len()] =
            [const { OnceLock::new() }; OpKind::ALL.len()];
        *ROOTS[self as usize].get_or_init(|| {
            opml_vm::Machine::new(self.kernel(), opml_vm::InputSlots::default())
                .state()
                .mem_root
        })
    }

    /// The kind's VM kernel, assembled once per process.
    pub fn kernel(self) -> &'static ElfImage {
        static KERNELS: [OnceLock<ElfImage>; OpKind::ALL.len()] =
            [const { OnceLock::new() }; OpKind::ALL.len()];
        KERNELS[self as usize].get_or_init(|| {
            let built = match self {
                Self::Relu => relu::kernel(),
                Self::Reshape => reshape::kernel(),
                Self::ArgMax => argmax::kernel(DType::I8),
                Self::ArgMax16 => argmax::kernel(DType::I16),
                Self::Mul16 => mul::kernel(),
                Self::Linear => linear::kernel(),
                Self::Conv2d => conv2d::kernel(),
                Self::MaxPool2d => maxpool::kernel(),
                Self::Add => add::kernel(DType::I8),
                Self::Add16 => add::kernel(DType::I16),
                Self::Gather => gather::kernel(),
                Self::MeanPool => meanpool::kernel(),
                Self::Concat => concat::kernel(),
                Self::MatMul => matmul::kernel(),
                Self::Transpose => transpose::kernel(),
                Self::LayerNorm => layernorm::kernel(Norm::Layer),
                Self::RmsNorm => layernorm::kernel(Norm::Rms),
                Self::Lookup => lookup::kernel(),
                Self::Softmax => softmax::kernel(softmax::Keys::Masked),
                Self::CausalSoftmax => softmax::kernel(softmax::Keys::Causal),
                Self::Rope => rope::kernel(),
            };
            built.unwrap_or_else(|e| panic!("the {} kernel does not build: {e}", self.name()))
        })
    }
}

fn arity(op: &'static str, inputs: &[&Tensor], want: usize) -> Result<(), OpError> {
    if inputs.len() == want {
        Ok(())
    } else {
        Err(OpError::Arity {
            op,
            want,
            got: inputs.len(),
        })
    }
}

fn input_error(op: &'static str, what: impl Into<String>) -> OpError {
    OpError::Input {
        op,
        what: what.into(),
    }
}

impl Op {
    /// The op's kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Self::Relu => OpKind::Relu,
            Self::Reshape { .. } => OpKind::Reshape,
            Self::ArgMax => OpKind::ArgMax,
            Self::Linear(_) => OpKind::Linear,
            Self::Conv2d(_) => OpKind::Conv2d,
            Self::MaxPool2d(_) => OpKind::MaxPool2d,
            Self::Add(_) => OpKind::Add,
            Self::Add16(_) => OpKind::Add16,
            Self::Gather => OpKind::Gather,
            Self::MeanPool => OpKind::MeanPool,
            Self::Concat { .. } => OpKind::Concat,
            Self::MatMul(_) => OpKind::MatMul,
            Self::Transpose { .. } => OpKind::Transpose,
            Self::LayerNorm => OpKind::LayerNorm,
            Self::Lookup => OpKind::Lookup,
            Self::Softmax => OpKind::Softmax,
            Self::Mul16(_) => OpKind::Mul16,
            Self::ArgMax16 => OpKind::ArgMax16,
            Self::RmsNorm => OpKind::RmsNorm,
            Self::CausalSoftmax => OpKind::CausalSoftmax,
            Self::Rope(_) => OpKind::Rope,
        }
    }

    /// Type and shape of the output for these inputs; an error names what does not fit.
    pub fn output_type(&self, inputs: &[&Tensor]) -> Result<(DType, Vec<usize>), OpError> {
        match self {
            Self::Relu => relu::output_type(inputs),
            Self::Reshape { shape } => reshape::output_type(shape, inputs),
            Self::ArgMax => argmax::output_type(DType::I8, inputs),
            Self::ArgMax16 => argmax::output_type(DType::I16, inputs),
            Self::Mul16(x) => x.output_type(inputs),
            Self::Linear(l) => l.output_type(inputs),
            Self::Conv2d(c) => c.output_type(inputs),
            Self::MaxPool2d(p) => p.output_type(inputs),
            Self::Add(x) => x.output_type(DType::I8, inputs),
            Self::Add16(x) => x.output_type(DType::I16, inputs),
            Self::Gather => gather::output_type(inputs),
            Self::MeanPool => meanpool::output_type(inputs),
            Self::Concat { axis } => concat::output_type(*axis, inputs),
            Self::MatMul(x) => x.output_type(inputs),
            Self::Transpose { perm } => transpose::output_type(perm, inputs),
            Self::LayerNorm => layernorm::output_type(Norm::Layer, inputs),
            Self::RmsNorm => layernorm::output_type(Norm::Rms, inputs),
            Self::Lookup => lookup::output_type(inputs),
            Self::Softmax => softmax::output_type(inputs),
            Self::CausalSoftmax => softmax::causal_output_type(inputs),
            Self::Rope(x) => x.output_type(inputs),
        }
    }

    /// Runs the op natively.
    pub fn native(&self, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        self.output_type(inputs)?;
        match self {
            Self::Relu => relu::native(inputs[0]),
            Self::Reshape { shape } => reshape::native(shape, inputs[0]),
            Self::ArgMax | Self::ArgMax16 => argmax::native(inputs[0]),
            Self::Mul16(x) => x.native(inputs),
            Self::Linear(l) => l.native(inputs),
            Self::Conv2d(c) => c.native(inputs),
            Self::MaxPool2d(p) => p.native(inputs),
            Self::Add(x) => x.native(DType::I8, inputs),
            Self::Add16(x) => x.native(DType::I16, inputs),
            Self::Gather => gather::native(inputs),
            Self::MeanPool => meanpool::native(inputs),
            Self::Concat { axis } => concat::native(*axis, inputs),
            Self::MatMul(x) => x.native(inputs),
            Self::Transpose { perm } => transpose::native(perm, inputs[0]),
            Self::LayerNorm => layernorm::native(Norm::Layer, inputs),
            Self::RmsNorm => layernorm::native(Norm::Rms, inputs),
            Self::Lookup => lookup::native(inputs),
            Self::Softmax => softmax::native(inputs),
            Self::CausalSoftmax => softmax::causal_native(inputs),
            Self::Rope(x) => x.native(inputs),
        }
    }

    /// The op's own params words for its kernel (after the byte lengths the prologue reads).
    pub fn kernel_params(&self, inputs: &[&Tensor]) -> Result<Vec<i32>, OpError> {
        self.output_type(inputs)?;
        Ok(match self {
            Self::Relu | Self::Reshape { .. } | Self::ArgMax | Self::ArgMax16 | Self::Lookup => {
                Vec::new()
            }
            Self::Mul16(x) => x.kernel_params(),
            Self::Linear(l) => l.kernel_params(inputs),
            Self::Conv2d(c) => c.kernel_params(inputs),
            Self::MaxPool2d(p) => p.kernel_params(inputs),
            Self::Add(x) | Self::Add16(x) => x.kernel_params(),
            Self::Gather => gather::kernel_params(inputs),
            Self::MeanPool => meanpool::kernel_params(inputs),
            Self::Concat { axis } => concat::kernel_params(*axis, inputs),
            Self::MatMul(x) => x.kernel_params(inputs),
            Self::Transpose { perm } => transpose::kernel_params(perm, inputs[0]),
            Self::LayerNorm => layernorm::kernel_params(Norm::Layer, inputs),
            Self::RmsNorm => layernorm::kernel_params(Norm::Rms, inputs),
            Self::Softmax => softmax::kernel_params(inputs),
            Self::CausalSoftmax => softmax::causal_kernel_params(inputs),
            Self::Rope(x) => x.kernel_params(inputs),
        })
    }

    /// The full params vector its kernel reads from slot 0 (lengths, then the op's own words).
    pub fn params(&self, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let (dtype, shape) = self.output_type(inputs)?;
        Ok(crate::kernel::params_vector(
            &self.kernel_params(inputs)?,
            inputs,
            (dtype, &shape),
        )?)
    }

    /// The VM at the start of this op's kernel run on `inputs` (what phase 1 of a dispute steps
    /// through), with the header of the output tensor its accumulator must finish on.
    pub fn machine(&self, inputs: &[&Tensor]) -> Result<(opml_vm::Machine, Vec<u8>), OpError> {
        let (dtype, shape) = self.output_type(inputs)?;
        let params = self.kernel_params(inputs)?;
        let slots = crate::kernel::kernel_inputs(&params, inputs, (dtype, &shape))?;
        Ok((
            opml_vm::Machine::new(self.kind().kernel(), slots),
            crate::tensor::header(dtype, &shape)?,
        ))
    }

    /// Runs the op's kernel in the VM (at most `max_steps` steps).
    pub fn run_in_vm(&self, inputs: &[&Tensor], max_steps: u64) -> Result<KernelRun, OpError> {
        let (dtype, shape) = self.output_type(inputs)?;
        let params = self.kernel_params(inputs)?;
        Ok(run_kernel(
            self.kind().kernel(),
            &params,
            inputs,
            (dtype, &shape),
            max_steps,
        )?)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Native against VM, bit for bit, for the op tests.
    use super::*;
    use ndarray::{ArrayD, IxDyn};
    use rand::Rng;

    /// The generator of one test: seeded from `OPML_TEST_SEED` when set, else fresh. The seed is
    /// printed (cargo shows it with a failing test's output), so that any failure replays.
    pub(crate) fn test_rng(test: &str) -> (rand::rngs::StdRng, u64) {
        use rand::SeedableRng;
        let seed = std::env::var("OPML_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random);
        eprintln!("{test}: seed {seed} (replay with OPML_TEST_SEED={seed})");
        (rand::rngs::StdRng::seed_from_u64(seed), seed)
    }

    /// A random int8 tensor; `full` draws the whole range, else small values.
    pub(crate) fn random_i8(rng: &mut impl Rng, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        Tensor::I8(
            ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| rng.gen()).collect()).unwrap(),
        )
    }

    /// A random int16 tensor with magnitudes up to `max`.
    pub(crate) fn random_i16(rng: &mut impl Rng, shape: &[usize], max: i16) -> Tensor {
        let n = shape.iter().product();
        Tensor::I16(
            ArrayD::from_shape_vec(
                IxDyn(shape),
                (0..n).map(|_| rng.gen_range(-max..=max)).collect(),
            )
            .unwrap(),
        )
    }

    /// Random per-channel scales (multiplier, shift) of a quantized layer.
    pub(crate) fn random_scales(rng: &mut impl Rng, n: usize) -> Tensor {
        let v = (0..n)
            .flat_map(|_| {
                let q = crate::quant::Requant::from_scale(rng.gen_range(1e-5..1e-2)).unwrap();
                [q.multiplier, q.shift as i32]
            })
            .collect();
        Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[n, 2]), v).unwrap())
    }

    /// A random int32 tensor in `range`.
    pub(crate) fn random_i32(
        rng: &mut impl Rng,
        shape: &[usize],
        range: std::ops::Range<i32>,
    ) -> Tensor {
        let n = shape.iter().product();
        Tensor::I32(
            ArrayD::from_shape_vec(
                IxDyn(shape),
                (0..n).map(|_| rng.gen_range(range.clone())).collect(),
            )
            .unwrap(),
        )
    }

    /// Runs `op` natively and in the VM; asserts equal outputs and commitments; returns VM steps.
    pub(crate) fn native_equals_vm(op: &Op, inputs: &[&Tensor], what: &str) -> u64 {
        let native = op
            .native(inputs)
            .unwrap_or_else(|e| panic!("{what}: native: {e}"));
        let vm = op
            .run_in_vm(inputs, 500_000_000)
            .unwrap_or_else(|e| panic!("{what}: vm: {e}"));
        assert_eq!(vm.output, native, "{what}: outputs differ");
        assert_eq!(
            vm.commitment,
            native.commitment().unwrap(),
            "{what}: commitments differ"
        );
        vm.steps
    }
}

#[cfg(test)]
mod tests {
    use super::OpKind;
    use std::collections::HashSet;

    /// Every kind's kernel assembles, and each image has its own memory root.
    #[test]
    fn every_kernel_builds_with_a_distinct_root() {
        let roots: HashSet<_> = OpKind::ALL.iter().map(|k| k.kernel_root()).collect();
        assert_eq!(roots.len(), OpKind::ALL.len());
        assert_eq!(OpKind::Conv2d.kernel_root(), OpKind::Conv2d.kernel_root());
    }

    /// The kernel images are part of the protocol: a Registry records their roots, and a chain
    /// that has them cannot replay a node of a changed kernel. A change of a root here must be
    /// deliberate (and the contracts redeployed); a refactor of a kernel writer must not move one.
    #[test]
    fn kernel_roots_are_pinned() {
        let pinned = [
            (
                OpKind::Relu,
                "113e4d5c9f9ab3e5a1eb5ab511a5f7be7095bd671511cd96c9fdec9fe82933ea",
            ),
            (
                OpKind::Reshape,
                "60b983d3a8681cf22b52a0818eed07a1ea715fbc801f8a95d3c05cf765b20dfb",
            ),
            (
                OpKind::ArgMax,
                "0c3eae9dca80d007448c68bb787ab73ece4cedba3374915f40fa8907d8f8bc61",
            ),
            (
                OpKind::Linear,
                "e1f1d1526dee559af921dfc880fa45f553aa489702932a7a7923063d77a54af6",
            ),
            (
                OpKind::Conv2d,
                "633493b472f7999e057943e641db7e45c0f02b26cb4a3687d6cb150911bf6402",
            ),
            (
                OpKind::MaxPool2d,
                "bf102ad7c37dbb1144e2e0854739dbcf7827e71fedb7fed6d22d0dae954802b9",
            ),
            (
                OpKind::Add,
                "9fd371e5eba055a153552d73d4b09194518efe155dd9b27596b8b4f9faffdf01",
            ),
            (
                OpKind::MatMul,
                "654bec104c85c0010a60eac8570f7f58b1f7142fb8212afe56e0c8315c83108e",
            ),
            (
                OpKind::Transpose,
                "0ee26556ec008c488dc06e460f5790e6ae5d0fca1ad232ee587c46844e8aeb00",
            ),
            (
                OpKind::LayerNorm,
                "722c5728833d74018e792c4411773f29a429f1897b57fd65e1b32c75ddff6519",
            ),
            (
                OpKind::Lookup,
                "88b88efffb7bf4ef0a6cd3afbeb7948e9dcec1815a4bdf9df5acfb547ae8d34d",
            ),
            (
                OpKind::Softmax,
                "5622328a8006f1d594ac520963697bdbfe44936230cb7bc8362cc6a03c69b739",
            ),
            (
                OpKind::Add16,
                "eac17a2fb9bfd17ad01ca81b9e96210143b6f51bdd5c7bf5e97e24fbed6ea914",
            ),
            (
                OpKind::Gather,
                "0e3b2768ed04e0aa699c04e164f028357e705d2980386d305030467e998f06c3",
            ),
            (
                OpKind::MeanPool,
                "9432eee7f468c3ef4711ea14ab81378045a671c138ee9029e90c46c081b773d5",
            ),
            (
                OpKind::Concat,
                "9066ef41ac6c9fb3d7248f36b655e30a2ccd11e1332688c1e2809eb98c16a086",
            ),
            (
                OpKind::Mul16,
                "b6579426f6068303d44636087aee9b43cc2103c024111347eb74ef62d9ef3ea2",
            ),
            (
                OpKind::ArgMax16,
                "f5a2c421a4f85bdc17124b349eec4c807076d29321ad01c3b4ae368e49605754",
            ),
            (
                OpKind::RmsNorm,
                "297d54a81c700bea795c62354794242c0be14025364721e9a70c51c33cdfcb5f",
            ),
            (
                OpKind::CausalSoftmax,
                "739e09bfdcccc08247feb6610cd27feaf90f128d693ba4ce826784ca591bd5c7",
            ),
            (
                OpKind::Rope,
                "fe88dd87d9a1622cb82c3942989bd6027e32f5b71db8178778930061c915a72a",
            ),
        ];
        assert_eq!(pinned.len(), OpKind::ALL.len(), "pin every kind");
        for (kind, root) in pinned {
            assert_eq!(
                hex::encode(kind.kernel_root()),
                root,
                "the {} kernel's image changed",
                kind.name()
            );
        }
    }
}
