//! Encoding RV32IM instructions from their fields: for tests, benchmarks and code generators that
//! write machine code without an external assembler. Register numbers are 0..32; immediates are the
//! values the instruction adds (already scaled, e.g. a branch offset in bytes).

/// Major opcode of register-register ALU and M instructions.
pub const OP: u32 = 0b0110011;
/// Major opcode of register-immediate ALU instructions.
pub const OP_IMM: u32 = 0b0010011;
/// Major opcode of loads.
pub const LOAD: u32 = 0b0000011;
/// Major opcode of LUI.
pub const LUI: u32 = 0b0110111;
/// Major opcode of AUIPC.
pub const AUIPC: u32 = 0b0010111;
/// Major opcode of JALR.
pub const JALR: u32 = 0b1100111;
/// The `ecall` word.
pub const ECALL: u32 = 0x0000_0073;
/// The `ebreak` word.
pub const EBREAK: u32 = 0x0010_0073;

/// R-type: `funct7 | rs2 | rs1 | funct3 | rd | opcode`.
pub fn r(funct7: u32, rs2: u32, rs1: u32, funct3: u32, rd: u32, opcode: u32) -> u32 {
    funct7 << 25 | rs2 << 20 | rs1 << 15 | funct3 << 12 | rd << 7 | opcode
}

/// I-type (ALU immediates, loads, JALR); `imm` is 12-bit signed.
pub fn i(imm: i32, rs1: u32, funct3: u32, rd: u32, opcode: u32) -> u32 {
    ((imm as u32) & 0xfff) << 20 | rs1 << 15 | funct3 << 12 | rd << 7 | opcode
}

/// S-type store: `mem[rs1 + imm] ← rs2`, width by `funct3`.
pub fn s(imm: i32, rs2: u32, rs1: u32, funct3: u32) -> u32 {
    let imm = imm as u32;
    (imm >> 5 & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | funct3 << 12 | (imm & 31) << 7 | 0b0100011
}

/// B-type branch to `pc + imm` (even, 13-bit signed), condition by `funct3`.
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

/// U-type (LUI, AUIPC): the upper 20 bits of `imm`.
pub fn u(imm: u32, rd: u32, opcode: u32) -> u32 {
    imm & 0xffff_f000 | rd << 7 | opcode
}

/// J-type JAL to `pc + imm` (even, 21-bit signed).
pub fn j(imm: i32, rd: u32) -> u32 {
    let imm = imm as u32;
    (imm >> 20 & 1) << 31
        | (imm >> 1 & 0x3ff) << 21
        | (imm >> 11 & 1) << 20
        | (imm >> 12 & 0xff) << 12
        | rd << 7
        | 0b1101111
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruction::{Instruction, Opcode};

    /// Each format round-trips through the decoder (itself checked against GNU objdump).
    #[test]
    fn formats_round_trip_through_the_decoder() {
        let cases: &[(u32, Opcode, u8, u8, u8, u32)] = &[
            (r(0x20, 7, 6, 0, 5, OP), Opcode::Sub, 5, 6, 7, 0),
            (r(1, 31, 1, 7, 30, OP), Opcode::Remu, 30, 1, 31, 0),
            (
                i(-2048, 3, 0, 4, OP_IMM),
                Opcode::Addi,
                4,
                3,
                0,
                (-2048i32) as u32,
            ),
            (i(2047, 3, 2, 4, LOAD), Opcode::Lw, 4, 3, 31, 2047),
            (i(-1, 1, 0, 0, JALR), Opcode::Jalr, 0, 1, 31, u32::MAX),
            (s(-4, 11, 10, 2), Opcode::Sw, 28, 10, 11, (-4i32) as u32),
            (b(-4096, 2, 1, 5), Opcode::Bge, 0, 1, 2, (-4096i32) as u32),
            (b(4094, 2, 1, 6), Opcode::Bltu, 31, 1, 2, 4094),
            (u(0xabcd_e123, 9, LUI), Opcode::Lui, 9, 26, 28, 0xabcd_e000),
            (
                j(-(1 << 20), 1),
                Opcode::Jal,
                1,
                0,
                0,
                (-(1i32 << 20)) as u32,
            ),
            (j((1 << 20) - 2, 1), Opcode::Jal, 1, 31, 31, (1 << 20) - 2),
        ];
        for &(word, opcode, rd, rs1, rs2, imm) in cases {
            let d = Instruction::decode(word);
            assert_eq!((d.opcode, d.rd, d.imm), (opcode, rd, imm), "{word:#010x}");
            if !matches!(opcode, Opcode::Lui | Opcode::Jal) {
                assert_eq!(d.rs1, rs1, "{word:#010x}");
            }
            if matches!(
                opcode,
                Opcode::Sub | Opcode::Remu | Opcode::Sw | Opcode::Bge | Opcode::Bltu
            ) {
                assert_eq!(d.rs2, rs2, "{word:#010x}");
            }
        }
    }
}
