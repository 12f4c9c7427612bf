//! Shared by the integration tests: the RV32IM encoder for writing instructions by field, and a
//! harness that runs steps through the proving path and checks each witness with `verify_step`.
#![allow(dead_code, unreachable_pub)]

use opml_vm::{verify_step, ElfImage, InputSlots, Machine, StepProof};

/// Where the test programs' code starts.
pub const CODE: u32 = 0x1_0000;
/// A data region the tests point registers at.
pub const DATA: u32 = 0x2_0000;

#[allow(unused_imports)] // programs.rs uses the harness but not the encoder
pub use opml_vm::encode::*;

/// An image with `code` at [`CODE`] and `data` at [`DATA`].
pub fn image(code: &[u32], data: &[u8]) -> ElfImage {
    ElfImage::from_words(CODE, code, DATA, data)
}

/// A machine on `code`/`data` with registers set as given.
pub fn machine(code: &[u32], data: &[u8], regs: &[(usize, u32)], inputs: InputSlots) -> Machine {
    let mut m = Machine::new(&image(code, data), inputs);
    for &(reg, value) in regs {
        m.set_register(reg, value);
    }
    m
}

/// Proves one step and checks that `verify_step` computes the same post-state from the witness.
pub fn prove_and_verify(m: &mut Machine) -> StepProof {
    let proof = m.prove_step();
    let verified = verify_step(&proof.pre_state_hash, &proof.witness)
        .unwrap_or_else(|e| panic!("step {}: witness rejected: {e}", proof.step));
    assert_eq!(
        verified, proof.post_state_hash,
        "step {}: verify_step disagrees with the machine",
        proof.step
    );
    proof
}
