//! Deterministic integer DNN library: integer tensors and their commitments, ops with a native
//! implementation and an RV32IM kernel each (written with the crate's assembler), model graphs and
//! their files, a native executor with the phase-2 trace, and quantization of f32 models (from
//! safetensors, or from ONNX with the `onnx` feature).
//!
//! [`bert`] is the f32 reference of the sentence encoders (all-MiniLM-L6-v2); with the `text`
//! feature, `text` turns sentences into their token ids.
//!
//! Numbers are integers (DESIGN decision 7), so the native executor and the VM agree to the bit
//! whatever the order of summation.

pub mod asm;
pub mod bert;
pub mod executor;
pub mod float;
pub mod gemm;
pub mod graph;
pub mod kernel;
pub mod llama;
pub mod mnist;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod ops;
pub mod quant;
pub mod quantize;
pub mod tensor;
#[cfg(feature = "text")]
pub mod text;

#[cfg(all(test, feature = "text"))]
mod minilm_fixture;

pub use executor::{NodeResult, Trace};
pub use graph::{Model, ModelError, ModelManifest, Node, TensorRef};
pub use ops::{Op, OpError, OpKind};
pub use quant::Requant;
pub use tensor::{DType, Tensor, TensorError};
