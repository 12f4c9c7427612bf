//! Shared by the integration tests: an RV32IM encoder for writing instructions by field, and a
//! harness that runs steps through the proving path and checks each witness with `verify_step`.
#![allow(dead_code, unreachable_pub)]

use opml_vm::{verify_step, ElfImage, InputSlots, Machine, Segment, StepProof};

/// Where the test programs' code starts.
pub const CODE: u32 = 0x1_0000;
/// A data region the tests point registers at.
pub const DATA: u32 = 0x2_0000;

pub fn r(funct7: u32, rs2: u32, rs1: u32, funct3: u32, rd: u32, opcode: u32) -> u32 {
    funct7 << 25 | rs2 << 20 | rs1 << 15 | funct3 << 12 | rd << 7 | opcode
}
pub fn i(imm: i32, rs1: u32, funct3: u32, rd: u32, opcode: u32) -> u32 {
    ((imm as u32) & 0xfff) << 20 | rs1 << 15 | funct3 << 12 | rd << 7 | opcode
}
pub fn s(imm: i32, rs2: u32, rs1: u32, funct3: u32) -> u32 {
    let imm = imm as u32;
    (imm >> 5 & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | funct3 << 12 | (imm & 31) << 7 | 0b0100011
}
pub fn b(imm: i32, rs2: u32, rs1: u32, funct3: u32) -> u32 {
    let imm = imm as u32;
    (imm >> 12 & 1) << 31
        | (imm >> 5 & 0x3f) << 25
        | rs2 << 20
        | rs1 << 15
        | funct3 << 12
        | (imm >> 1 & 0xf) << 8
        | (imm >> 11 & 1) << 7
        | 0b1100011
}
pub fn u(imm: u32, rd: u32, opcode: u32) -> u32 {
    imm & 0xffff_f000 | rd << 7 | opcode
}
pub fn j(imm: i32, rd: u32) -> u32 {
    let imm = imm as u32;
    (imm >> 20 & 1) << 31
        | (imm >> 1 & 0x3ff) << 21
        | (imm >> 11 & 1) << 20
        | (imm >> 12 & 0xff) << 12
        | rd << 7
        | 0b1101111
}

pub const OP: u32 = 0b0110011;
pub const OP_IMM: u32 = 0b0010011;
pub const LOAD: u32 = 0b0000011;
pub const ECALL: u32 = 0x0000_0073;
pub const EBREAK: u32 = 0x0010_0073;

/// An image with `code` at [`CODE`] and `data` at [`DATA`].
pub fn image(code: &[u32], data: &[u8]) -> ElfImage {
    let code_bytes: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut segments = vec![Segment {
        vaddr: CODE,
        mem_size: code_bytes.len() as u32,
        data: code_bytes,
    }];
    if !data.is_empty() {
        segments.push(Segment {
            vaddr: DATA,
            mem_size: data.len() as u32,
            data: data.to_vec(),
        });
    }
    ElfImage {
        entry: CODE,
        segments,
    }
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
