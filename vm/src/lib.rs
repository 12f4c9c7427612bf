//! The opml fraud-proof VM: a deterministic RV32IM machine whose state is committed by keccak Merkle
//! trees, with a fast interpreter that never hashes (and compiles hot blocks to native code on
//! x86-64) and a proving path that produces one-step witnesses checkable by [`verify_step`] (and by
//! the Solidity step contract) from the pre-state hash alone.
//!
//! The byte-level rules live in `docs/protocol.md`.

pub mod checkpoint;
pub mod commitment;
pub mod elf;
pub mod encode;
mod execute;
pub mod hash;
pub mod instruction;
mod jit;
pub mod lanes;
pub mod machine;
pub mod memory;
pub mod state;
pub mod verify;
pub mod witness;

pub use checkpoint::Checkpoints;
pub use commitment::{data_root, tensor_commitment, InputSlots, InputTensor, OutputAccumulator};
pub use elf::{parse_elf, ElfError, ElfImage, Segment};
pub use execute::ecall;
pub use hash::{keccak256, Hash};
pub use machine::{Machine, RunOutcome};
pub use state::{Fault, Status, VmState};
pub use verify::{verify_step, VerifyError};
pub use witness::{StepClass, StepProof, StepWitness};
