//! RV32IM instructions in decoded form, and the decoder from 32-bit words.
//!
//! Decoding is apart from execution: the fast interpreter decodes each code word once and keeps the
//! [`Instruction`]s in a table; the proving path decodes the one word it fetched.

/// The operation of a decoded instruction. Each variant's doc gives its effect.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// rd ← imm
    Lui,
    /// rd ← pc + imm
    Auipc,
    /// rd ← pc + 4; pc ← pc + imm
    Jal,
    /// rd ← pc + 4; pc ← (rs1 + imm) & !1
    Jalr,
    /// if rs1 = rs2: pc ← pc + imm
    Beq,
    /// if rs1 ≠ rs2: pc ← pc + imm
    Bne,
    /// if rs1 < rs2 (signed): pc ← pc + imm
    Blt,
    /// if rs1 ≥ rs2 (signed): pc ← pc + imm
    Bge,
    /// if rs1 < rs2 (unsigned): pc ← pc + imm
    Bltu,
    /// if rs1 ≥ rs2 (unsigned): pc ← pc + imm
    Bgeu,
    /// rd ← sext(mem8[rs1 + imm])
    Lb,
    /// rd ← sext(mem16[rs1 + imm])
    Lh,
    /// rd ← mem32[rs1 + imm]
    Lw,
    /// rd ← zext(mem8[rs1 + imm])
    Lbu,
    /// rd ← zext(mem16[rs1 + imm])
    Lhu,
    /// mem8[rs1 + imm] ← rs2
    Sb,
    /// mem16[rs1 + imm] ← rs2
    Sh,
    /// mem32[rs1 + imm] ← rs2
    Sw,
    /// rd ← rs1 + imm
    Addi,
    /// rd ← (rs1 < imm) signed
    Slti,
    /// rd ← (rs1 < imm) unsigned
    Sltiu,
    /// rd ← rs1 ^ imm
    Xori,
    /// rd ← rs1 | imm
    Ori,
    /// rd ← rs1 & imm
    Andi,
    /// rd ← rs1 << shamt
    Slli,
    /// rd ← rs1 >> shamt (logical)
    Srli,
    /// rd ← rs1 >> shamt (arithmetic)
    Srai,
    /// rd ← rs1 + rs2
    Add,
    /// rd ← rs1 − rs2
    Sub,
    /// rd ← rs1 << (rs2 & 31)
    Sll,
    /// rd ← (rs1 < rs2) signed
    Slt,
    /// rd ← (rs1 < rs2) unsigned
    Sltu,
    /// rd ← rs1 ^ rs2
    Xor,
    /// rd ← rs1 >> (rs2 & 31) (logical)
    Srl,
    /// rd ← rs1 >> (rs2 & 31) (arithmetic)
    Sra,
    /// rd ← rs1 | rs2
    Or,
    /// rd ← rs1 & rs2
    And,
    /// rd ← low 32 bits of rs1 × rs2
    Mul,
    /// rd ← high 32 bits of signed rs1 × signed rs2
    Mulh,
    /// rd ← high 32 bits of signed rs1 × unsigned rs2
    Mulhsu,
    /// rd ← high 32 bits of unsigned rs1 × unsigned rs2
    Mulhu,
    /// rd ← rs1 ÷ rs2 (signed, toward zero; ÷0 = −1; INT_MIN ÷ −1 = INT_MIN)
    Div,
    /// rd ← rs1 ÷ rs2 (unsigned; ÷0 = 2^32 − 1)
    Divu,
    /// rd ← rs1 rem rs2 (signed; rem 0 = rs1; INT_MIN rem −1 = 0)
    Rem,
    /// rd ← rs1 rem rs2 (unsigned; rem 0 = rs1)
    Remu,
    /// FENCE and FENCE.I: no effect
    Fence,
    /// System call, number in a7
    Ecall,
    /// Breakpoint: faults with `Breakpoint`
    Ebreak,
    /// Any word that is not a valid RV32IM instruction: faults with `IllegalInstruction`
    Illegal,
}

impl Opcode {
    /// Jumps and branches: the instructions that may continue somewhere other than `pc + 4`.
    pub fn is_control_transfer(self) -> bool {
        matches!(
            self,
            Opcode::Jal
                | Opcode::Jalr
                | Opcode::Beq
                | Opcode::Bne
                | Opcode::Blt
                | Opcode::Bge
                | Opcode::Bltu
                | Opcode::Bgeu
        )
    }
}

/// A decoded instruction: 8 bytes, so the fast interpreter's table stays small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction {
    /// What to do.
    pub opcode: Opcode,
    /// Destination register (0..32).
    pub rd: u8,
    /// First source register (0..32).
    pub rs1: u8,
    /// Second source register (0..32).
    pub rs2: u8,
    /// Immediate, already sign-extended (shift amount for the immediate shifts).
    pub imm: u32,
}

impl Instruction {
    /// The instruction that every illegal word decodes to.
    pub const ILLEGAL: Self = Self {
        opcode: Opcode::Illegal,
        rd: 0,
        rs1: 0,
        rs2: 0,
        imm: 0,
    };

    /// Decodes one 32-bit instruction word; anything outside RV32IM is [`Opcode::Illegal`].
    pub fn decode(word: u32) -> Self {
        let rd = ((word >> 7) & 31) as u8;
        let rs1 = ((word >> 15) & 31) as u8;
        let rs2 = ((word >> 20) & 31) as u8;
        let funct3 = (word >> 12) & 7;
        let funct7 = word >> 25;
        let make = |opcode, imm| Self {
            opcode,
            rd,
            rs1,
            rs2,
            imm,
        };
        if word & 3 != 3 {
            return Self::ILLEGAL;
        }
        match word & 0x7f {
            0b0110111 => make(Opcode::Lui, imm_u(word)),
            0b0010111 => make(Opcode::Auipc, imm_u(word)),
            0b1101111 => make(Opcode::Jal, imm_j(word)),
            0b1100111 if funct3 == 0 => make(Opcode::Jalr, imm_i(word)),
            0b1100011 => {
                let opcode = match funct3 {
                    0 => Opcode::Beq,
                    1 => Opcode::Bne,
                    4 => Opcode::Blt,
                    5 => Opcode::Bge,
                    6 => Opcode::Bltu,
                    7 => Opcode::Bgeu,
                    _ => return Self::ILLEGAL,
                };
                make(opcode, imm_b(word))
            }
            0b0000011 => {
                let opcode = match funct3 {
                    0 => Opcode::Lb,
                    1 => Opcode::Lh,
                    2 => Opcode::Lw,
                    4 => Opcode::Lbu,
                    5 => Opcode::Lhu,
                    _ => return Self::ILLEGAL,
                };
                make(opcode, imm_i(word))
            }
            0b0100011 => {
                let opcode = match funct3 {
                    0 => Opcode::Sb,
                    1 => Opcode::Sh,
                    2 => Opcode::Sw,
                    _ => return Self::ILLEGAL,
                };
                make(opcode, imm_s(word))
            }
            0b0010011 => {
                let opcode = match (funct3, funct7) {
                    (0, _) => Opcode::Addi,
                    (2, _) => Opcode::Slti,
                    (3, _) => Opcode::Sltiu,
                    (4, _) => Opcode::Xori,
                    (6, _) => Opcode::Ori,
                    (7, _) => Opcode::Andi,
                    (1, 0) => return make(Opcode::Slli, u32::from(rs2)),
                    (5, 0) => return make(Opcode::Srli, u32::from(rs2)),
                    (5, 0b0100000) => return make(Opcode::Srai, u32::from(rs2)),
                    _ => return Self::ILLEGAL,
                };
                make(opcode, imm_i(word))
            }
            0b0110011 => {
                let opcode = match (funct7, funct3) {
                    (0, 0) => Opcode::Add,
                    (0b0100000, 0) => Opcode::Sub,
                    (0, 1) => Opcode::Sll,
                    (0, 2) => Opcode::Slt,
                    (0, 3) => Opcode::Sltu,
                    (0, 4) => Opcode::Xor,
                    (0, 5) => Opcode::Srl,
                    (0b0100000, 5) => Opcode::Sra,
                    (0, 6) => Opcode::Or,
                    (0, 7) => Opcode::And,
                    (1, 0) => Opcode::Mul,
                    (1, 1) => Opcode::Mulh,
                    (1, 2) => Opcode::Mulhsu,
                    (1, 3) => Opcode::Mulhu,
                    (1, 4) => Opcode::Div,
                    (1, 5) => Opcode::Divu,
                    (1, 6) => Opcode::Rem,
                    (1, 7) => Opcode::Remu,
                    _ => return Self::ILLEGAL,
                };
                make(opcode, 0)
            }
            0b0001111 if funct3 <= 1 => make(Opcode::Fence, 0),
            0b1110011 => match word {
                0x0000_0073 => make(Opcode::Ecall, 0),
                0x0010_0073 => make(Opcode::Ebreak, 0),
                _ => Self::ILLEGAL,
            },
            _ => Self::ILLEGAL,
        }
    }
}

fn imm_i(word: u32) -> u32 {
    ((word as i32) >> 20) as u32
}

fn imm_s(word: u32) -> u32 {
    ((((word as i32) >> 25) << 5) as u32) | ((word >> 7) & 0x1f)
}

fn imm_b(word: u32) -> u32 {
    ((((word as i32) >> 31) << 12) as u32)
        | ((word & 0x80) << 4)
        | ((word >> 20) & 0x7e0)
        | ((word >> 7) & 0x1e)
}

fn imm_u(word: u32) -> u32 {
    word & 0xffff_f000
}

fn imm_j(word: u32) -> u32 {
    ((((word as i32) >> 31) << 20) as u32)
        | (word & 0x000f_f000)
        | ((word >> 9) & 0x800)
        | ((word >> 20) & 0x7fe)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(opcode: Opcode, rd: u8, rs1: u8, rs2: u8, imm: u32) -> Instruction {
        Instruction {
            opcode,
            rd,
            rs1,
            rs2,
            imm,
        }
    }

    /// Words from `riscv64-unknown-elf-objdump` output, with their expected decoding.
    #[test]
    fn decode_table() {
        let cases: &[(u32, Instruction)] = &[
            (0x12345537, ins(Opcode::Lui, 10, 8, 3, 0x12345000)), // lui a0,0x12345
            (0xfffff517, ins(Opcode::Auipc, 10, 31, 31, 0xfffff000)), // auipc a0,0xfffff
            (0x008000ef, ins(Opcode::Jal, 1, 0, 8, 8)),           // jal ra,+8
            (0xffdff06f, ins(Opcode::Jal, 0, 31, 29, (-4i32) as u32)), // j -4
            (0x00008067, ins(Opcode::Jalr, 0, 1, 0, 0)),          // ret
            (0xfe000ee3, ins(Opcode::Beq, 29, 0, 0, (-4i32) as u32)), // beqz zero,-4
            (0x00b51463, ins(Opcode::Bne, 8, 10, 11, 8)),         // bne a0,a1,+8
            (0x80000163, ins(Opcode::Beq, 2, 0, 0, (-4094i32) as u32)), // beq zero,zero,-4094
            (0x7e000fe3, ins(Opcode::Beq, 31, 0, 0, 4094)),       // beq zero,zero,+4094
            (0xffc52503, ins(Opcode::Lw, 10, 10, 28, (-4i32) as u32)), // lw a0,-4(a0)
            (0x00054583, ins(Opcode::Lbu, 11, 10, 0, 0)),         // lbu a1,0(a0)
            (0xfeb52e23, ins(Opcode::Sw, 28, 10, 11, (-4i32) as u32)), // sw a1,-4(a0)
            (0x7eb51fa3, ins(Opcode::Sh, 31, 10, 11, 2047)),      // sh a1,2047(a0)
            (0x80050513, ins(Opcode::Addi, 10, 10, 0, (-2048i32) as u32)), // addi a0,a0,-2048
            (0x01f51513, ins(Opcode::Slli, 10, 10, 31, 31)),      // slli a0,a0,31
            (0x41f55513, ins(Opcode::Srai, 10, 10, 31, 31)),      // srai a0,a0,31
            (0x40b50533, ins(Opcode::Sub, 10, 10, 11, 0)),        // sub a0,a0,a1
            (0x02b52533, ins(Opcode::Mulhsu, 10, 10, 11, 0)),     // mulhsu a0,a0,a1
            (0x02b57533, ins(Opcode::Remu, 10, 10, 11, 0)),       // remu a0,a0,a1
            (0x0ff0000f, ins(Opcode::Fence, 0, 0, 31, 0)),        // fence
            (0x0000100f, ins(Opcode::Fence, 0, 0, 0, 0)),         // fence.i
            (0x00000073, ins(Opcode::Ecall, 0, 0, 0, 0)),
            (0x00100073, ins(Opcode::Ebreak, 0, 0, 1, 0)),
        ];
        for &(word, want) in cases {
            assert_eq!(Instruction::decode(word), want, "word {word:#010x}");
        }
    }

    #[test]
    fn illegal_words() {
        let cases: &[(u32, &str)] = &[
            (0x0000_0000, "all zero"),
            (0xffff_ffff, "all ones"),
            (0x0000_4501, "compressed c.li"),
            (0x3005_2573, "csrrs a0,mstatus"),
            (0xc000_2573, "rdcycle"),
            (0x3020_0073, "mret"),
            (0x1050_0073, "wfi"),
            (0x0010_0173, "ebreak with rd"),
            (0x0000_3503, "ld (RV64)"),
            (0x0000_6503, "lwu (RV64)"),
            (0x0000_3023, "sd (RV64)"),
            (0x0000_2063, "branch funct3 2"),
            (0x0000_1067, "jalr funct3 1"),
            (0x0200_1513, "slli with shamt[5] (RV64)"),
            (0x2000_5513, "srli with bad funct7"),
            (0x0400_0533, "op funct7 2"),
            (0x4000_1533, "sll with funct7 0x20"),
            (0x0000_2007, "flw (F extension)"),
            (0x0000_200f, "misc-mem funct3 2"),
            (0x0000_202f, "amo (A extension)"),
            (0x0000_051b, "addiw (RV64)"),
        ];
        for &(word, what) in cases {
            assert_eq!(
                Instruction::decode(word).opcode,
                Opcode::Illegal,
                "{what}: {word:#010x}"
            );
        }
    }

    #[test]
    fn instruction_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<Instruction>(), 8);
    }
}
