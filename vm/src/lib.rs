//! The opml fraud-proof VM: a deterministic RV32IM machine whose state is committed by keccak Merkle
//! trees, with a fast interpreter that never hashes and a proving path that produces one-step witnesses
//! checkable by [`verify_step`] (and by the Solidity step contract) from the pre-state hash alone.
//!
//! The byte-level rules live in `docs/protocol.md`.

pub mod elf;
pub mod hash;
pub mod verify;

pub use elf::{parse_elf, ElfError, ElfImage, Segment};
pub use hash::{keccak256, Hash};
pub use verify::{verify_step, VerifyError};
