//! A small RV32IM assembler with labels, for writing the VM kernels of the ops in Rust.
//!
//! Each method appends one instruction (or a short pseudo-instruction sequence); branches and jumps
//! name labels that [`Assembler::finish`] resolves. Mistakes of the kernel writer (an immediate out
//! of range, an unknown or duplicate label, a branch too far) are collected and reported by
//! `finish`, naming the instruction, rather than encoded silently wrong.

use opml_vm::encode::{b, i, j, r, s, u, AUIPC, ECALL, JALR, LOAD, LUI, OP, OP_IMM};
use std::collections::HashMap;

/// A register number, 0..32.
pub type Reg = u32;

/// ABI register names.
#[allow(missing_docs)]
pub mod reg {
    use super::Reg;
    pub const ZERO: Reg = 0;
    pub const RA: Reg = 1;
    pub const SP: Reg = 2;
    pub const GP: Reg = 3;
    pub const TP: Reg = 4;
    pub const T0: Reg = 5;
    pub const T1: Reg = 6;
    pub const T2: Reg = 7;
    pub const S0: Reg = 8;
    pub const S1: Reg = 9;
    pub const A0: Reg = 10;
    pub const A1: Reg = 11;
    pub const A2: Reg = 12;
    pub const A3: Reg = 13;
    pub const A4: Reg = 14;
    pub const A5: Reg = 15;
    pub const A6: Reg = 16;
    pub const A7: Reg = 17;
    pub const S2: Reg = 18;
    pub const S3: Reg = 19;
    pub const S4: Reg = 20;
    pub const S5: Reg = 21;
    pub const S6: Reg = 22;
    pub const S7: Reg = 23;
    pub const S8: Reg = 24;
    pub const S9: Reg = 25;
    pub const S10: Reg = 26;
    pub const S11: Reg = 27;
    pub const T3: Reg = 28;
    pub const T4: Reg = 29;
    pub const T5: Reg = 30;
    pub const T6: Reg = 31;
}

/// What went wrong while assembling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsmError {
    /// An immediate does not fit its instruction's field.
    #[error("instruction {index}: immediate {value} does not fit {what}")]
    ImmediateOutOfRange {
        /// Index of the instruction (in words from the start).
        index: usize,
        /// The immediate.
        value: i64,
        /// The field it was meant for.
        what: &'static str,
    },
    /// A register number is not in 0..32.
    #[error("instruction {index}: x{reg} is not a register")]
    BadRegister {
        /// Index of the instruction.
        index: usize,
        /// The number given.
        reg: u32,
    },
    /// A label is defined twice.
    #[error("label {0} is defined twice")]
    DuplicateLabel(String),
    /// A branch or jump names a label that is never defined.
    #[error("instruction {index}: label {label} is not defined")]
    UndefinedLabel {
        /// Index of the branch or jump.
        index: usize,
        /// The label.
        label: String,
    },
}

#[derive(Debug, Clone, Copy)]
enum FixupKind {
    Branch { funct3: u32, rs1: Reg, rs2: Reg },
    Jal { rd: Reg },
}

#[derive(Debug, Clone)]
struct Fixup {
    index: usize,
    label: String,
    kind: FixupKind,
}

/// Builds a sequence of RV32IM instruction words.
#[derive(Debug, Default, Clone)]
pub struct Assembler {
    words: Vec<u32>,
    labels: HashMap<String, usize>,
    fixups: Vec<Fixup>,
    errors: Vec<AsmError>,
    fresh: usize,
}

macro_rules! r_type {
    ($($(#[$doc:meta])* $name:ident = ($funct7:expr, $funct3:expr);)*) => {
        $($(#[$doc])* pub fn $name(&mut self, rd: Reg, rs1: Reg, rs2: Reg) -> &mut Self {
            self.regs(&[rd, rs1, rs2]);
            self.emit(r($funct7, rs2, rs1, $funct3, rd, OP))
        })*
    };
}

macro_rules! i_type {
    ($($(#[$doc:meta])* $name:ident = ($funct3:expr, $opcode:expr);)*) => {
        $($(#[$doc])* pub fn $name(&mut self, rd: Reg, rs1: Reg, imm: i32) -> &mut Self {
            self.regs(&[rd, rs1]);
            self.imm12(imm);
            self.emit(i(imm, rs1, $funct3, rd, $opcode))
        })*
    };
}

macro_rules! loads {
    ($($(#[$doc:meta])* $name:ident = $funct3:expr;)*) => {
        $($(#[$doc])* pub fn $name(&mut self, rd: Reg, offset: i32, base: Reg) -> &mut Self {
            self.regs(&[rd, base]);
            self.imm12(offset);
            self.emit(i(offset, base, $funct3, rd, LOAD))
        })*
    };
}

macro_rules! stores {
    ($($(#[$doc:meta])* $name:ident = $funct3:expr;)*) => {
        $($(#[$doc])* pub fn $name(&mut self, src: Reg, offset: i32, base: Reg) -> &mut Self {
            self.regs(&[src, base]);
            self.imm12(offset);
            self.emit(s(offset, src, base, $funct3))
        })*
    };
}

macro_rules! shifts {
    ($($(#[$doc:meta])* $name:ident = ($funct3:expr, $high:expr);)*) => {
        $($(#[$doc])* pub fn $name(&mut self, rd: Reg, rs1: Reg, shamt: u32) -> &mut Self {
            self.regs(&[rd, rs1]);
            if shamt >= 32 {
                self.error_imm(i64::from(shamt), "a shift amount (0..32)");
            }
            self.emit(i(($high | (shamt & 31)) as i32, rs1, $funct3, rd, OP_IMM))
        })*
    };
}

macro_rules! branches {
    ($($(#[$doc:meta])* $name:ident = $funct3:expr;)*) => {
        $($(#[$doc])* pub fn $name(&mut self, rs1: Reg, rs2: Reg, label: &str) -> &mut Self {
            self.regs(&[rs1, rs2]);
            self.fixup(label, FixupKind::Branch { funct3: $funct3, rs1, rs2 })
        })*
    };
}

impl Assembler {
    /// An empty program.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of instructions so far.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether no instruction has been emitted.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Defines `name` at the next instruction.
    pub fn label(&mut self, name: &str) -> &mut Self {
        if self
            .labels
            .insert(name.to_string(), self.words.len())
            .is_some()
        {
            self.errors.push(AsmError::DuplicateLabel(name.to_string()));
        }
        self
    }

    /// A label name not used before, starting with `prefix` (for loops emitted by helpers).
    pub fn fresh_label(&mut self, prefix: &str) -> String {
        self.fresh += 1;
        format!("{prefix}.{}", self.fresh)
    }

    fn emit(&mut self, word: u32) -> &mut Self {
        self.words.push(word);
        self
    }

    fn regs(&mut self, regs: &[Reg]) {
        for &reg in regs {
            if reg >= 32 {
                self.errors.push(AsmError::BadRegister {
                    index: self.words.len(),
                    reg,
                });
            }
        }
    }

    fn error_imm(&mut self, value: i64, what: &'static str) {
        self.errors.push(AsmError::ImmediateOutOfRange {
            index: self.words.len(),
            value,
            what,
        });
    }

    fn imm12(&mut self, imm: i32) {
        if !(-2048..2048).contains(&imm) {
            self.error_imm(i64::from(imm), "a 12-bit signed immediate");
        }
    }

    fn fixup(&mut self, label: &str, kind: FixupKind) -> &mut Self {
        self.fixups.push(Fixup {
            index: self.words.len(),
            label: label.to_string(),
            kind,
        });
        self.emit(0)
    }

    r_type! {
        /// `rd ← rs1 + rs2`
        add = (0, 0);
        /// `rd ← rs1 − rs2`
        sub = (0x20, 0);
        /// `rd ← rs1 << (rs2 & 31)`
        sll = (0, 1);
        /// `rd ← rs1 < rs2` (signed)
        slt = (0, 2);
        /// `rd ← rs1 < rs2` (unsigned)
        sltu = (0, 3);
        /// `rd ← rs1 ^ rs2`
        xor = (0, 4);
        /// `rd ← rs1 >> (rs2 & 31)` (logical)
        srl = (0, 5);
        /// `rd ← rs1 >> (rs2 & 31)` (arithmetic)
        sra = (0x20, 5);
        /// `rd ← rs1 | rs2`
        or = (0, 6);
        /// `rd ← rs1 & rs2`
        and = (0, 7);
        /// `rd ← low 32 bits of rs1 × rs2`
        mul = (1, 0);
        /// `rd ← high 32 bits of rs1 × rs2` (signed × signed)
        mulh = (1, 1);
        /// `rd ← high 32 bits of rs1 × rs2` (signed × unsigned)
        mulhsu = (1, 2);
        /// `rd ← high 32 bits of rs1 × rs2` (unsigned × unsigned)
        mulhu = (1, 3);
        /// `rd ← rs1 / rs2` (signed)
        div = (1, 4);
        /// `rd ← rs1 / rs2` (unsigned)
        divu = (1, 5);
        /// `rd ← rs1 % rs2` (signed)
        rem = (1, 6);
        /// `rd ← rs1 % rs2` (unsigned)
        remu = (1, 7);
    }

    i_type! {
        /// `rd ← rs1 + imm`
        addi = (0, OP_IMM);
        /// `rd ← rs1 < imm` (signed)
        slti = (2, OP_IMM);
        /// `rd ← rs1 < imm` (unsigned)
        sltiu = (3, OP_IMM);
        /// `rd ← rs1 ^ imm`
        xori = (4, OP_IMM);
        /// `rd ← rs1 | imm`
        ori = (6, OP_IMM);
        /// `rd ← rs1 & imm`
        andi = (7, OP_IMM);
        /// `rd ← pc + 4; pc ← (rs1 + imm) & !1`
        jalr = (0, JALR);
    }

    shifts! {
        /// `rd ← rs1 << shamt`
        slli = (1, 0);
        /// `rd ← rs1 >> shamt` (logical)
        srli = (5, 0);
        /// `rd ← rs1 >> shamt` (arithmetic)
        srai = (5, 0x400);
    }

    loads! {
        /// `rd ← sext(mem8[base + offset])`
        lb = 0;
        /// `rd ← sext(mem16[base + offset])`
        lh = 1;
        /// `rd ← mem32[base + offset]`
        lw = 2;
        /// `rd ← zext(mem8[base + offset])`
        lbu = 4;
        /// `rd ← zext(mem16[base + offset])`
        lhu = 5;
    }

    stores! {
        /// `mem8[base + offset] ← src`
        sb = 0;
        /// `mem16[base + offset] ← src`
        sh = 1;
        /// `mem32[base + offset] ← src`
        sw = 2;
    }

    branches! {
        /// Branch to `label` if `rs1 = rs2`.
        beq = 0;
        /// Branch to `label` if `rs1 ≠ rs2`.
        bne = 1;
        /// Branch to `label` if `rs1 < rs2` (signed).
        blt = 4;
        /// Branch to `label` if `rs1 ≥ rs2` (signed).
        bge = 5;
        /// Branch to `label` if `rs1 < rs2` (unsigned).
        bltu = 6;
        /// Branch to `label` if `rs1 ≥ rs2` (unsigned).
        bgeu = 7;
    }

    /// `rd ← imm << 12` (the upper 20 bits).
    pub fn lui(&mut self, rd: Reg, upper: u32) -> &mut Self {
        self.regs(&[rd]);
        if upper >= 1 << 20 {
            self.error_imm(i64::from(upper), "a 20-bit upper immediate");
        }
        self.emit(u(upper << 12, rd, LUI))
    }

    /// `rd ← pc + (upper << 12)`
    pub fn auipc(&mut self, rd: Reg, upper: u32) -> &mut Self {
        self.regs(&[rd]);
        if upper >= 1 << 20 {
            self.error_imm(i64::from(upper), "a 20-bit upper immediate");
        }
        self.emit(u(upper << 12, rd, AUIPC))
    }

    /// `rd ← pc + 4; pc ← label`
    pub fn jal(&mut self, rd: Reg, label: &str) -> &mut Self {
        self.regs(&[rd]);
        self.fixup(label, FixupKind::Jal { rd })
    }

    /// `pc ← label`
    pub fn j(&mut self, label: &str) -> &mut Self {
        self.jal(reg::ZERO, label)
    }

    /// Calls the subroutine at `label` (return address in `ra`).
    pub fn call(&mut self, label: &str) -> &mut Self {
        self.jal(reg::RA, label)
    }

    /// Returns from a subroutine (`jalr zero, ra, 0`).
    pub fn ret(&mut self) -> &mut Self {
        self.jalr(reg::ZERO, reg::RA, 0)
    }

    /// `ecall`
    pub fn ecall(&mut self) -> &mut Self {
        self.emit(ECALL)
    }

    /// `rd ← rs`
    pub fn mv(&mut self, rd: Reg, rs: Reg) -> &mut Self {
        self.addi(rd, rs, 0)
    }

    /// `rd ← value`, in one instruction when it fits 12 bits, else `lui` + `addi`.
    pub fn li(&mut self, rd: Reg, value: i32) -> &mut Self {
        if (-2048..2048).contains(&value) {
            return self.addi(rd, reg::ZERO, value);
        }
        let low = (value << 20) >> 20; // sign-extended low 12 bits
        let upper = ((value.wrapping_sub(low)) as u32) >> 12;
        self.lui(rd, upper);
        if low != 0 {
            self.addi(rd, rd, low);
        }
        self
    }

    /// Resolves labels; returns the instruction words or every mistake found (the first one).
    pub fn finish(mut self) -> Result<Vec<u32>, AsmError> {
        for fixup in std::mem::take(&mut self.fixups) {
            let Some(&target) = self.labels.get(&fixup.label) else {
                self.errors.push(AsmError::UndefinedLabel {
                    index: fixup.index,
                    label: fixup.label,
                });
                continue;
            };
            let offset = (target as i64 - fixup.index as i64) * 4;
            self.words[fixup.index] = match fixup.kind {
                FixupKind::Branch { funct3, rs1, rs2 } => {
                    if !(-4096..4096).contains(&offset) {
                        self.errors.push(AsmError::ImmediateOutOfRange {
                            index: fixup.index,
                            value: offset,
                            what: "a branch offset (±4 KiB)",
                        });
                    }
                    b(offset as i32, rs2, rs1, funct3)
                }
                FixupKind::Jal { rd } => {
                    if !(-(1 << 20)..(1 << 20)).contains(&offset) {
                        self.errors.push(AsmError::ImmediateOutOfRange {
                            index: fixup.index,
                            value: offset,
                            what: "a jump offset (±1 MiB)",
                        });
                    }
                    j(offset as i32, rd)
                }
            };
        }
        match self.errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(self.words),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reg::*;
    use super::*;
    use opml_vm::instruction::{Instruction, Opcode};

    #[test]
    fn encodes_like_the_vm_decodes() {
        let mut a = Assembler::new();
        a.add(T0, A0, A1)
            .sub(T1, T0, A2)
            .mulh(T2, T0, T1)
            .addi(A0, A0, -1)
            .srai(A1, A1, 31)
            .lb(T3, -4, SP)
            .sw(T4, 2044, GP)
            .lui(A5, 0xfffff)
            .ecall();
        let words = a.finish().unwrap();
        // (opcode, rd, rs1, rs2, imm); None where the format has no such field.
        let want = [
            (Opcode::Add, Some(5), Some(10), Some(11), None),
            (Opcode::Sub, Some(6), Some(5), Some(12), None),
            (Opcode::Mulh, Some(7), Some(5), Some(6), None),
            (Opcode::Addi, Some(10), Some(10), None, Some(u32::MAX)),
            (Opcode::Srai, Some(11), Some(11), None, Some(31)),
            (Opcode::Lb, Some(28), Some(2), None, Some((-4i32) as u32)),
            (Opcode::Sw, None, Some(3), Some(29), Some(2044)),
            (Opcode::Lui, Some(15), None, None, Some(0xffff_f000)),
            (Opcode::Ecall, None, None, None, None),
        ];
        for (k, (word, (op, rd, rs1, rs2, imm))) in words.iter().zip(want).enumerate() {
            let d = Instruction::decode(*word);
            assert_eq!(d.opcode, op, "instruction {k}");
            for (field, got, want) in [("rd", d.rd, rd), ("rs1", d.rs1, rs1), ("rs2", d.rs2, rs2)] {
                if let Some(want) = want {
                    assert_eq!(got, want, "instruction {k} {field}");
                }
            }
            if let Some(imm) = imm {
                assert_eq!(d.imm, imm, "instruction {k} immediate");
            }
        }
    }

    #[test]
    fn labels_resolve_forward_and_back() {
        let mut a = Assembler::new();
        a.label("top")
            .addi(T0, T0, 1)
            .bne(T0, T1, "top")
            .j("end")
            .addi(T2, T2, 1)
            .label("end");
        let words = a.finish().unwrap();
        assert_eq!(Instruction::decode(words[1]).imm, (-4i32) as u32);
        assert_eq!(Instruction::decode(words[2]).imm, 8);
    }

    #[test]
    fn li_loads_every_kind_of_constant() {
        for value in [
            0,
            1,
            -1,
            2047,
            -2048,
            2048,
            0x1234_5678,
            i32::MIN,
            i32::MAX,
            -2049,
            0x7ff_f800,
        ] {
            let mut a = Assembler::new();
            a.li(A0, value);
            let words = a.finish().unwrap();
            // Evaluate the lui/addi pair as the VM would.
            let mut x = 0u32;
            for w in words {
                let d = Instruction::decode(w);
                x = match d.opcode {
                    Opcode::Lui => d.imm,
                    Opcode::Addi if d.rs1 == 0 => d.imm,
                    Opcode::Addi => x.wrapping_add(d.imm),
                    other => panic!("unexpected {other:?}"),
                };
            }
            assert_eq!(x, value as u32, "li {value}");
        }
    }

    #[test]
    fn mistakes_are_reported() {
        let cases: Vec<(Box<dyn Fn(&mut Assembler)>, AsmError)> = vec![
            (
                Box::new(|a| {
                    a.addi(A0, A0, 4096);
                }),
                AsmError::ImmediateOutOfRange {
                    index: 0,
                    value: 4096,
                    what: "a 12-bit signed immediate",
                },
            ),
            (
                Box::new(|a| {
                    a.j("nowhere");
                }),
                AsmError::UndefinedLabel {
                    index: 0,
                    label: "nowhere".into(),
                },
            ),
            (
                Box::new(|a| {
                    a.label("x").label("x");
                }),
                AsmError::DuplicateLabel("x".into()),
            ),
            (
                Box::new(|a| {
                    a.add(32, 0, 0);
                }),
                AsmError::BadRegister { index: 0, reg: 32 },
            ),
            (
                Box::new(|a| {
                    a.slli(A0, A0, 32);
                }),
                AsmError::ImmediateOutOfRange {
                    index: 0,
                    value: 32,
                    what: "a shift amount (0..32)",
                },
            ),
        ];
        for (build, want) in cases {
            let mut a = Assembler::new();
            build(&mut a);
            assert_eq!(a.finish(), Err(want));
        }
    }
}
