//! Deterministic integer DNN library: integer tensors and their commitments, ops with a native
//! implementation and an RV32IM kernel each, and the assembler those kernels are written with.
//!
//! Numbers are integers (DESIGN decision 7), so the native executor and the VM agree to the bit
//! whatever the order of summation.

pub mod asm;
pub mod kernel;
pub mod ops;
pub mod quant;
pub mod tensor;

pub use ops::{Op, OpError, OpKind};
pub use quant::Requant;
pub use tensor::{DType, Tensor, TensorError};
